//! Canonical writing (RFC 8785): a `serde_json::Value` as canonical bytes ([`write_value`]),
//! strings escaped minimally ([`write_str`]), numbers printed as ECMAScript does (integers up
//! to 2^53 exactly, anything larger as the nearest double, `-0` as `0`), and member names
//! ordered by UTF-16 code units ([`cmp_utf16`]). The streaming canonicalizer in
//! [`super::parse`] writes its scalars with the same functions.

use std::cmp::Ordering;

use serde_json::Value;

/// Canonical bytes of a `Value`, appended to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_u64(u, out)
            } else if let Some(i) = n.as_i64() {
                write_i64(i, out)
            } else {
                write_f64(n.as_f64().unwrap_or(0.0), out)
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(v, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // serde_json's map is sorted by UTF-8 bytes; JCS wants UTF-16 code units.
            members.sort_by(|a, b| cmp_utf16(a.0, b.0));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_value(v, out);
            }
            out.push(b'}');
        }
    }
}

pub fn to_canonical_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(value, &mut out);
    out
}
/// Orders member names by UTF-16 code units, as JCS requires. UTF-8 byte order agrees with it
/// except between U+E000..U+FFFF (lead byte 0xEE/0xEF) and supplementary characters (lead byte
/// 0xF0..), which UTF-16 encodes as surrogates (0xD800..) and so sorts first.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.iter().zip(b).position(|(x, y)| x != y) {
        None => a.len().cmp(&b.len()),
        Some(i) => {
            let (x, y) = (a[i], b[i]);
            let high_bmp = |c: u8| c == 0xEE || c == 0xEF;
            let supplementary = |c: u8| c >= 0xF0;
            if (high_bmp(x) && supplementary(y)) || (supplementary(x) && high_bmp(y)) {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        }
    }
}

pub(super) fn write_u64(u: u64, out: &mut Vec<u8>) {
    if u <= MAX_SAFE_INTEGER {
        out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
    } else {
        write_f64(u as f64, out)
    }
}

pub(super) fn write_i64(i: i64, out: &mut Vec<u8>) {
    if i.unsigned_abs() <= MAX_SAFE_INTEGER {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else {
        write_f64(i as f64, out)
    }
}

const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub(super) fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f == 0.0 {
        // -0 prints as 0 in ECMAScript.
        out.push(b'0');
    } else {
        out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
    }
}

/// JCS string escaping: `"`, `\`, and U+0000..U+001F only; `\b \t \n \f \r` by name, the rest
/// as `\u00xx` (lower-case hex). Everything else is written as UTF-8.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0A => out.extend_from_slice(b"\\n"),
            0x0C => out.extend_from_slice(b"\\f"),
            0x0D => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xF) as usize],
            ]),
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// [`write_str`] for a string serde_json borrowed from the input text: it had no escape
/// sequences, and JSON (and serde_json) forbids `"`, `\` and control characters unescaped, so
/// there is nothing to escape and the bytes go out as they are. Saves rescanning every name
/// and string value; `Canon` is only ever driven by text parsers (serde_json's, or [`fast`], which
/// borrows a string only when it has none of these).
pub(super) fn write_unescaped_str(s: &str, out: &mut Vec<u8>) {
    debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

//! Canonical bytes (RFC 8785, JCS) and the version's identity, `sha256(canonical bytes)`.
//!
//! The decision a newcomer would get wrong: we never build a `serde_json::Value` tree of the
//! whole dataset. A 30 MB covid file as a `Value` takes ~500 MB (one B-tree node per small
//! object). Instead the parser streams straight into canonical bytes, sorting each object's
//! members in place in the output buffer, and a top-level array is remembered as *record
//! spans* into that one buffer (with each record's key). Diffing then compares records as byte
//! slices and parses only the ones that changed, one pair at a time.
//!
//! JCS details that matter: members sorted by UTF-16 code units (not UTF-8 bytes), numbers
//! printed as ECMAScript does (`1e+21`, `1.5`, integers beyond 2^53 rounded to the nearest
//! double), strings escaped minimally (only `"`, `\` and control characters), no whitespace.
//! Duplicate member names are rejected, as I-JSON requires.
//!
//! Two parsers drive the same visitors: [`fast`], a tokenizer for the common case that gives
//! up on anything it is not sure of, and serde_json's, which then decides and words the error.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use bytestring::ByteString;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod fast;

/// A JSON Pointer (RFC 6901) naming each record's key, e.g. `/country/key`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPointer {
    tokens: Vec<String>,
    text: String,
}

impl KeyPointer {
    /// `""` means "records have no key" (matched by content).
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = if text.is_empty() {
            Vec::new()
        } else {
            parse_pointer(text)?
        };
        Ok(KeyPointer {
            tokens,
            text: text.to_string(),
        })
    }

    pub fn is_none(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for KeyPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits an RFC 6901 pointer into unescaped tokens. `""` is the whole document.
pub fn parse_pointer(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!("JSON pointer {text:?} must start with '/'"));
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("JSON pointer {text:?} has a bad '~' escape")),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// Escapes one token for a JSON pointer (`~` → `~0`, `/` → `~1`).
pub fn escape_token(token: &str, out: &mut String) {
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// One element of a top-level array: where its canonical bytes are, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub start: usize,
    pub end: usize,
    /// Canonical bytes of the value at the key pointer, when the record has one.
    pub key: Option<Box<[u8]>>,
    /// Where the members of an object record are, found while it was written (or scanned):
    /// diff and apply start from them instead of scanning each record again.
    pub members: Option<Box<[MemberSpan]>>,
}

/// One member of an object, as offsets into the document's bytes: the quoted name is
/// `name..value - 1` (a colon follows it), the value `value..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSpan {
    pub name: usize,
    pub value: usize,
    pub end: usize,
}

/// A dataset version in canonical form.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    /// Checked to be UTF-8 once, when the document is made: diff and apply read it as text.
    text: ByteString,
    sha256: String,
    /// `Some` when the top level is an array: its elements, in order.
    records: Option<Vec<Record>>,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("len", &self.text.len())
            .field("sha256", &self.sha256)
            .field("records", &self.records.as_ref().map(Vec::len))
            .finish()
    }
}

impl Document {
    /// Parses any JSON text into canonical form, remembering records of a top-level array and
    /// their keys. The error says what is wrong and where (line and column).
    pub fn from_json(raw: &[u8], key: &KeyPointer) -> Result<Self, String> {
        Self::from_json_dropping(raw, key, &[])
    }

    /// [`Document::from_json`] that leaves out every member or element matching one of `drops`
    /// (JSON pointer tokens, `*` matching any name or index) while it streams: the `drop`
    /// transform at parsing speed. A pattern must not name whole top-level records.
    pub fn from_json_dropping(
        raw: &[u8],
        key: &KeyPointer,
        drops: &[Vec<String>],
    ) -> Result<Self, String> {
        let drops: Vec<&[String]> = drops
            .iter()
            .map(Vec::as_slice)
            .filter(|d| !d.is_empty())
            .collect();
        let fast = std::str::from_utf8(raw).ok().and_then(|text| {
            canonicalize(&mut fast::Parser::new(text), raw.len(), key, &drops).ok()
        });
        let (out, records) = match fast {
            Some(parsed) => parsed,
            // serde_json's parser decides what the fast path gave up on, and words the error.
            None => canonicalize(
                &mut serde_json::Deserializer::from_slice(raw),
                raw.len(),
                key,
                &drops,
            )
            .map_err(|e| explain_json_error(raw, &e))?,
        };
        Self::from_parts(out, records)
    }

    /// Canonical bytes of one `Value` (for small documents and tests).
    pub fn from_value(value: &Value, key: &KeyPointer) -> Self {
        let text = serde_json::to_vec(value).expect("a Value always serializes");
        Self::from_json(&text, key).expect("a serialized Value is valid JSON")
    }

    fn from_parts(bytes: Vec<u8>, records: Option<Vec<Record>>) -> Result<Self, String> {
        let sha256 = sha256_hex(&bytes);
        // The canonicalizer writes only UTF-8; checked here once rather than at every use.
        let text = ByteString::try_from(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
        Ok(Document {
            text,
            sha256,
            records,
        })
    }

    /// Wraps a stored version's canonical bytes without rewriting them, after checking they
    /// hash to `sha256`. Record spans and keys come from a scan of the (trusted, canonical)
    /// text that allocates nothing per value: loading the previous version costs little more
    /// than hashing it.
    ///
    /// The text is not parsed: such a document is a base to diff from or to patch (where
    /// text that does not split is an error), not the new side of a diff.
    pub fn from_canonical(bytes: Bytes, key: &KeyPointer, sha256: &str) -> Result<Self, String> {
        let got = sha256_hex(&bytes);
        if got != sha256 {
            return Err(format!("content hashes to {got}, expected {sha256}"));
        }
        let text = ByteString::try_from(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
        let records = if text.starts_with('[') {
            let base = text.as_ptr() as usize;
            let items = split_array(&text).ok_or("not a canonical JSON array")?;
            let records = items
                .into_iter()
                .map(|item| {
                    let start = item.as_ptr() as usize - base;
                    Record {
                        start,
                        end: start + item.len(),
                        key: if key.tokens.is_empty() {
                            None
                        } else {
                            scan::pointer(item.as_bytes(), &key.tokens).map(Box::from)
                        },
                        members: member_spans(item, start),
                    }
                })
                .collect();
            Some(records)
        } else {
            None
        };
        Ok(Document {
            sha256: got,
            text,
            records,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
    /// The canonical text.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The canonical bytes, shared (no copy).
    pub fn shared_bytes(&self) -> Bytes {
        self.text.as_bytes().clone()
    }
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    pub fn records(&self) -> Option<&[Record]> {
        self.records.as_deref()
    }
    pub fn record_count(&self) -> Option<usize> {
        self.records.as_ref().map(Vec::len)
    }
    pub fn record_bytes(&self, r: &Record) -> &[u8] {
        &self.text.as_bytes()[r.start..r.end]
    }
    /// The members of an object record (names unescaped, values as text), from its spans.
    pub fn record_members(&self, r: &Record) -> Option<Vec<(Cow<'_, str>, &str)>> {
        let text = self.text();
        r.members
            .as_ref()?
            .iter()
            .map(|m| {
                Some((
                    member_name(text.get(m.name..m.value - 1)?)?,
                    text.get(m.value..m.end)?,
                ))
            })
            .collect()
    }
    /// The whole document as a `Value` (only for small documents, or a fallback path).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.text).expect("canonical bytes are valid JSON")
    }
}

/// A JSON text parser the canonicalizer can be driven by: serde_json's, or the fast path.
trait TextParser<'de> {
    type Error;
    /// Parses one value into `visitor`, then checks that only whitespace follows it.
    fn parse<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Self::Error>;
}

impl<'de, R: serde_json::de::Read<'de>> TextParser<'de> for serde_json::Deserializer<R> {
    type Error = serde_json::Error;
    fn parse<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Self::Error> {
        let value = self.deserialize_any(visitor)?;
        self.end()?;
        Ok(value)
    }
}

impl<'de> TextParser<'de> for fast::Parser<'de> {
    type Error = fast::GiveUp;
    fn parse<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Self::Error> {
        let value = self.deserialize_any(visitor)?;
        self.end()?;
        Ok(value)
    }
}

/// serde_json's message for `raw`, made specific where it says only "expected value": NaN
/// and Infinity (Python's `json.dumps` writes them) and UTF-16 text (every other byte NUL).
fn explain_json_error(raw: &[u8], e: &serde_json::Error) -> String {
    let at = (e.line() > 0 && e.column() > 0)
        .then(|| {
            let line_start = if e.line() == 1 {
                Some(0)
            } else {
                raw.iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .nth(e.line() - 2)
                    .map(|(i, _)| i + 1)
            };
            line_start.map(|s| (s + e.column() - 1).min(raw.len()))
        })
        .flatten();
    // A NUL (or a UTF-16 byte order mark) at or before the error is its cause.
    let nul_first = raw.iter().position(|&b| b == 0);
    if raw.starts_with(b"\xFF\xFE")
        || raw.starts_with(b"\xFE\xFF")
        || nul_first.is_some_and(|n| at.is_none_or(|at| n <= at + 1))
    {
        if let Some(hint) = utf16_hint(raw) {
            return format!("the text {hint}");
        }
    }
    if let Some(at) = at {
        // serde_json stops at the token or just after its sign.
        for start in at.saturating_sub(2)..=at {
            let rest = &raw[start..];
            let word = [&b"nan"[..], b"infinity", b"inf"].into_iter().find(|w| {
                rest.len() >= w.len()
                    && rest[..w.len()].eq_ignore_ascii_case(w)
                    && rest.get(w.len()).is_none_or(|c| !c.is_ascii_alphanumeric())
            });
            if let Some(word) = word {
                let signed = start > 0 && matches!(raw[start - 1], b'-' | b'+');
                let from = if signed { start - 1 } else { start };
                let token = String::from_utf8_lossy(&raw[from..start + word.len()]);
                let (line, column) = line_column(raw, from);
                return format!(
                    "NaN and Infinity are not JSON: {token} at line {line} column {column} (write null or a string)"
                );
            }
        }
    }
    e.to_string()
}

/// When `raw` is UTF-16 (or UTF-32), or holds a NUL byte (never allowed in JSON text), what
/// to say about it after "the body"/"the text": `looks like UTF-16 (…); JSON must be UTF-8`.
pub fn utf16_hint(raw: &[u8]) -> Option<String> {
    if raw.starts_with(b"\xFF\xFE") || raw.starts_with(b"\xFE\xFF") {
        return Some(
            "starts with a UTF-16 byte order mark (bytes 0xFF 0xFE or 0xFE 0xFF); JSON must be UTF-8"
                .into(),
        );
    }
    let first = raw.iter().position(|&b| b == 0)?;
    let (line, column) = line_column(raw, first);
    let head = &raw[..raw.len().min(64)];
    let nuls = head.iter().filter(|&&b| b == 0).count();
    Some(if nuls * 4 >= head.len() {
        format!(
            "looks like UTF-16 (NUL bytes, the first at line {line} column {column}); JSON must be UTF-8"
        )
    } else {
        format!("has a NUL byte at line {line} column {column}; JSON text cannot contain one")
    })
}

/// 1-based line and column (in bytes) of the byte at `offset`.
fn line_column(raw: &[u8], offset: usize) -> (usize, usize) {
    let before = &raw[..offset.min(raw.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, column)
}

/// Canonical bytes, and the records when the top level is an array.
type Parsed = (Vec<u8>, Option<Vec<Record>>);

/// Streams the text `parser` reads into canonical bytes and records (see
/// [`Document::from_json_dropping`]). `len` is the text's length, the output's capacity.
fn canonicalize<'de, P: TextParser<'de>>(
    parser: &mut P,
    len: usize,
    key: &KeyPointer,
    drops: &[&[String]],
) -> Result<Parsed, P::Error> {
    let mut ctx = Ctx {
        out: Vec::with_capacity(len),
        key: None,
        members: Vec::new(),
        scratch: Vec::new(),
        drops: Vec::new(),
        want_spans: false,
        spans: None,
    };
    let records = parser.parse(TopLevel {
        ctx: &mut ctx,
        key: &key.tokens,
        drops,
    })?;
    Ok((ctx.out, records))
}

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

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Renders a record key (canonical JSON) for people: strings without their quotes.
pub fn display_key(key: &[u8]) -> String {
    if key.first() == Some(&b'"') {
        if let Ok(s) = serde_json::from_slice::<String>(key) {
            return s;
        }
    }
    String::from_utf8_lossy(key).into_owned()
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

fn write_u64(u: u64, out: &mut Vec<u8>) {
    if u <= MAX_SAFE_INTEGER {
        out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
    } else {
        write_f64(u as f64, out)
    }
}

fn write_i64(i: i64, out: &mut Vec<u8>) {
    if i.unsigned_abs() <= MAX_SAFE_INTEGER {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else {
        write_f64(i as f64, out)
    }
}

const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

fn write_f64(f: f64, out: &mut Vec<u8>) {
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
fn write_unescaped_str(s: &str, out: &mut Vec<u8>) {
    debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

// ---------------------------------------------------------------------------------------------
// The streaming canonicalizer: serde visitors that write canonical bytes as they parse.

/// State shared by every value of one parse. The stacks are reused across objects so that
/// canonicalizing allocates nothing per object (a covid file has ~750k of them).
struct Ctx<'de, 'p> {
    out: Vec<u8>,
    /// Canonical bytes of the value found at the key pointer in the current record.
    key: Option<Box<[u8]>>,
    /// The members written so far of each object being parsed, innermost last: an object's
    /// entries start where the stack stood when it began, and are popped when it ends.
    members: Vec<Member<'de>>,
    /// Where an unsorted object's body is copied to be written back in order. Only one
    /// object is reordered at a time: its inner objects were finished (and reordered) first.
    scratch: Vec<u8>,
    /// The rest of each drop pattern still on the path of each value being parsed, innermost
    /// last: a value's entries are a range above its parent's (see [`Canon::descend`]).
    drops: Vec<&'p [String]>,
    /// Set for the value of a record: if it is an object, its member spans go to `spans`.
    want_spans: bool,
    spans: Option<Box<[MemberSpan]>>,
}

/// A member written to `out`: its name, and where `"name":value` starts and ends.
type Member<'de> = (Cow<'de, str>, usize, usize);

/// The top level: an array becomes records, anything else one canonical value.
struct TopLevel<'a, 'de, 'p> {
    ctx: &'a mut Ctx<'de, 'p>,
    key: &'p [String],
    drops: &'a [&'p [String]],
}

impl<'de> Visitor<'de> for TopLevel<'_, 'de, '_> {
    type Value = Option<Vec<Record>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let mut records = Vec::new();
        ctx.out.push(b'[');
        loop {
            let comma = ctx.out.len();
            if !records.is_empty() {
                ctx.out.push(b',');
            }
            let start = ctx.out.len();
            ctx.key = None;
            let key_path = if self.key.is_empty() {
                None
            } else {
                Some(self.key)
            };
            let index = records.len();
            // A pattern naming a whole record drops nothing (and an empty rest matches nothing
            // further down, so it is not kept).
            ctx.drops.clear();
            for d in self.drops {
                if let [first, rest @ ..] = d {
                    if !rest.is_empty() && (first == "*" || first.parse::<usize>() == Ok(index)) {
                        ctx.drops.push(rest);
                    }
                }
            }
            let drops = 0..ctx.drops.len();
            ctx.want_spans = true;
            let seed = Canon {
                ctx: &mut *ctx,
                key_path,
                drops,
            };
            let more = seq.next_element_seed(seed)?.is_some();
            ctx.want_spans = false;
            if !more {
                ctx.out.truncate(comma);
                break;
            }
            records.push(Record {
                start,
                end: ctx.out.len(),
                key: ctx.key.take(),
                members: ctx.spans.take(),
            });
        }
        ctx.out.push(b']');
        Ok(Some(records))
    }

    // Every other top-level value: canonicalize as a whole.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.ctx.drops.extend_from_slice(self.drops);
        let mut c = Canon::new(self.ctx);
        c.drops = 0..self.drops.len();
        c.visit_map(map).map(|()| None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Canon::new(self.ctx).visit_bool(v).map(|()| None)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Canon::new(self.ctx).visit_i64(v).map(|()| None)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Canon::new(self.ctx).visit_u64(v).map(|()| None)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Canon::new(self.ctx).visit_f64(v).map(|()| None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Canon::new(self.ctx).visit_str(v).map(|()| None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Canon::new(self.ctx).visit_unit().map(|()| None)
    }
}

/// Writes one value canonically. `key_path` is the rest of the key pointer when this value lies
/// on it; at its end the value's canonical bytes are captured as the record key.
struct Canon<'a, 'de, 'p> {
    ctx: &'a mut Ctx<'de, 'p>,
    key_path: Option<&'p [String]>,
    /// Where in `ctx.drops` the rest of each drop pattern still on this value's path is.
    drops: Range<usize>,
}

impl<'a, 'de, 'p> Canon<'a, 'de, 'p> {
    fn new(ctx: &'a mut Ctx<'de, 'p>) -> Self {
        Canon {
            ctx,
            key_path: None,
            drops: 0..0,
        }
    }

    fn capture(self, start: usize) {
        if self.key_path.is_some_and(<[String]>::is_empty) {
            self.ctx.key = Some(self.ctx.out[start..].into());
        }
    }

    /// Where a child value stands on the key path and the drop patterns, or `None` when a
    /// drop pattern ends at it. `matches(token)` says whether a pointer token names this child.
    ///
    /// The child's patterns are pushed onto `ctx.drops` just above this value's own, replacing
    /// those of the previous child: ranges only ever grow upwards, so an ancestor's entries are
    /// never overwritten, and without drop patterns nothing is pushed at all.
    fn descend(&mut self, matches: impl Fn(&str) -> bool) -> Option<Descent<'p>> {
        let key_path = match self.key_path {
            Some([first, rest @ ..]) if matches(first) => Some(rest),
            _ => None,
        };
        let stack = &mut self.ctx.drops;
        let above = self.drops.end;
        stack.truncate(above);
        for i in self.drops.clone() {
            if let [first, rest @ ..] = stack[i] {
                if first == "*" || matches(first) {
                    if rest.is_empty() {
                        return None;
                    }
                    stack.push(rest);
                }
            }
        }
        let drops = above..stack.len();
        Some(Descent { key_path, drops })
    }

    fn child(&mut self, d: Descent<'p>) -> Canon<'_, 'de, 'p> {
        Canon {
            ctx: self.ctx,
            key_path: d.key_path,
            drops: d.drops,
        }
    }
}

struct Descent<'p> {
    key_path: Option<&'p [String]>,
    drops: Range<usize>,
}

impl<'de> DeserializeSeed<'de> for Canon<'_, 'de, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canon<'_, 'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let start = self.ctx.out.len();
        self.ctx
            .out
            .extend_from_slice(if v { b"true" } else { b"false" });
        self.capture(start);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_i64(v, &mut self.ctx.out);
        self.capture(start);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_u64(v, &mut self.ctx.out);
        self.capture(start);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_f64(v, &mut self.ctx.out);
        self.capture(start);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_str(v, &mut self.ctx.out);
        self.capture(start);
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_unescaped_str(v, &mut self.ctx.out);
        self.capture(start);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        let start = self.ctx.out.len();
        self.ctx.out.extend_from_slice(b"null");
        self.capture(start);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        // A record that is an array has no member spans (nor have the objects inside it).
        self.ctx.want_spans = false;
        let start = self.ctx.out.len();
        self.ctx.out.push(b'[');
        let (mut index, mut written) = (0usize, 0usize);
        loop {
            let comma = self.ctx.out.len();
            if written > 0 {
                self.ctx.out.push(b',');
            }
            let more = match self.descend(|t| t.parse::<usize>() == Ok(index)) {
                Some(d) => {
                    let more = seq.next_element_seed(self.child(d))?.is_some();
                    written += usize::from(more);
                    more
                }
                None => {
                    self.ctx.out.truncate(comma);
                    seq.next_element::<de::IgnoredAny>()?.is_some()
                }
            };
            if !more {
                self.ctx.out.truncate(comma);
                break;
            }
            index += 1;
        }
        self.ctx.out.push(b']');
        self.capture(start);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let start = self.ctx.out.len();
        self.ctx.out.push(b'{');
        // Only the record itself, not the objects inside it.
        let want_spans = std::mem::take(&mut self.ctx.want_spans);
        // Members are written in arrival order, remembering where each one is; if they did not
        // arrive sorted, the object's bytes are reordered once at the end.
        let base = self.ctx.members.len();
        let mut sorted = true;
        while let Some(name) = map.next_key_seed(NameSeed)? {
            if let Some(prev) = self.ctx.members[base..].last() {
                match cmp_utf16(&prev.0, &name) {
                    Ordering::Less => {}
                    Ordering::Equal => {
                        return Err(de::Error::custom(format_args!(
                            "duplicate member name {name:?}"
                        )))
                    }
                    Ordering::Greater => sorted = false,
                }
            }
            let Some(descent) = self.descend(|t| t == name) else {
                map.next_value::<de::IgnoredAny>()?;
                continue;
            };
            if self.ctx.members.len() > base {
                self.ctx.out.push(b',');
            }
            let member_start = self.ctx.out.len();
            match &name {
                Cow::Borrowed(name) => write_unescaped_str(name, &mut self.ctx.out),
                Cow::Owned(name) => write_str(name, &mut self.ctx.out),
            }
            self.ctx.out.push(b':');
            map.next_value_seed(self.child(descent))?;
            let member_end = self.ctx.out.len();
            self.ctx.members.push((name, member_start, member_end));
        }
        if !sorted {
            let Ctx {
                out,
                members,
                scratch,
                ..
            } = &mut *self.ctx;
            let members = &mut members[base..];
            members.sort_by(|a, b| cmp_utf16(&a.0, &b.0));
            if let Some(dup) = members.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(de::Error::custom(format_args!(
                    "duplicate member name {:?}",
                    dup[0].0
                )));
            }
            let body_start = start + 1;
            scratch.clear();
            scratch.extend_from_slice(&out[body_start..]);
            out.truncate(body_start);
            for (i, (_, s, e)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&scratch[s - body_start..e - body_start]);
            }
            // A key captured inside a moved member keeps its bytes: it was copied out already.
        }
        if want_spans {
            // Members are now in their final order, one comma apart.
            let Ctx {
                out,
                members,
                spans,
                ..
            } = &mut *self.ctx;
            let mut at = start + 1;
            let mut found = Vec::with_capacity(members.len() - base);
            for (_, s, e) in &members[base..] {
                let colon = scan::string_end(out, at).unwrap_or(at);
                found.push(MemberSpan {
                    name: at,
                    value: colon + 1,
                    end: at + (e - s),
                });
                at += e - s + 1;
            }
            *spans = Some(found.into_boxed_slice());
        }
        self.ctx.members.truncate(base);
        self.ctx.out.push(b'}');
        self.capture(start);
        Ok(())
    }
}

/// Reads a member name, borrowing it from the input when it has no escapes.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Navigation of canonical JSON text (no whitespace) by skipping values byte by byte. Only
/// for text known to be canonical; malformed input gives `None`, never a panic.
mod scan {
    /// What the container scan stops at: 0 nothing, 1 a quote, 2 an opening and 3 a closing
    /// bracket.
    static CLASS: [u8; 256] = {
        let mut t = [0u8; 256];
        t[b'"' as usize] = 1;
        t[b'{' as usize] = 2;
        t[b'[' as usize] = 2;
        t[b'}' as usize] = 3;
        t[b']' as usize] = 3;
        t
    };

    /// The index just after the string starting at `i` (an opening quote).
    pub fn string_end(b: &[u8], i: usize) -> Option<usize> {
        let mut j = i + 1;
        loop {
            while j < b.len() && b[j] != b'"' && b[j] != b'\\' {
                j += 1;
            }
            match *b.get(j)? {
                b'"' => return Some(j + 1),
                _ => j += 2,
            }
        }
    }

    /// The index just after the value starting at `i`.
    pub fn value_end(b: &[u8], i: usize) -> Option<usize> {
        match *b.get(i)? {
            b'"' => string_end(b, i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                loop {
                    while j < b.len() && CLASS[b[j] as usize] == 0 {
                        j += 1;
                    }
                    match CLASS[*b.get(j)? as usize] {
                        1 => j = string_end(b, j)?,
                        2 => {
                            depth += 1;
                            j += 1;
                        }
                        _ => {
                            depth -= 1;
                            j += 1;
                            if depth == 0 {
                                return Some(j);
                            }
                        }
                    }
                }
            }
            _ => {
                let mut j = i;
                while j < b.len() && !matches!(b[j], b',' | b'}' | b']') {
                    j += 1;
                }
                (j > i).then_some(j)
            }
        }
    }

    /// The text of the value at `tokens` inside the canonical value `b`.
    pub fn pointer<'a>(mut b: &'a [u8], tokens: &[String]) -> Option<&'a [u8]> {
        for t in tokens {
            let mut i = 1;
            let mut index = 0usize;
            let found = loop {
                match (*b.first()?, *b.get(i)?) {
                    (_, b'}' | b']') => return None,
                    (b'{', b'"') => {
                        let name_end = string_end(b, i)?;
                        let raw = &b[i..name_end];
                        let matches = if raw.contains(&b'\\') {
                            serde_json::from_slice::<String>(raw).ok()? == *t
                        } else {
                            &raw[1..raw.len() - 1] == t.as_bytes()
                        };
                        let start = name_end + 1; // past ':'
                        let end = value_end(b, start)?;
                        if matches {
                            break (start, end);
                        }
                        i = end;
                    }
                    (b'[', _) => {
                        let end = value_end(b, i)?;
                        if t.parse::<usize>().ok() == Some(index)
                            && (t == "0" || !t.starts_with('0'))
                        {
                            break (i, end);
                        }
                        index += 1;
                        i = end;
                    }
                    _ => return None,
                }
                if *b.get(i)? == b',' {
                    i += 1;
                }
            };
            b = &b[found.0..found.1];
        }
        Some(b)
    }
}

/// The members of a canonical JSON object text, borrowed, in their (canonical) order: names
/// unescaped (owned only when they had escapes), values as text. `None` when `text` is not one
/// well-formed object: one pass of [`scan`], no parsing, so splitting the large containers of a
/// dataset costs a byte scan rather than serde_json's validation of every value.
pub fn split_object(text: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
    split_object_like(text, &[])
}

/// [`split_object`] of a text expected to resemble `like` (the same object's members in an
/// earlier version): where a member has the same name and the same value bytes as in `like`,
/// its end is known without scanning it. That halves the scanning when diffing two versions of
/// a large, mostly unchanged object. Same result as `split_object(text)` for any `like`.
pub fn split_object_like<'t>(
    text: &'t str,
    like: &[(Cow<'_, str>, &str)],
) -> Option<Vec<(Cow<'t, str>, &'t str)>> {
    let b = text.as_bytes();
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    let mut guide = 0;
    if *b.get(i)? == b'}' {
        return (b.len() == 2).then_some(out);
    }
    loop {
        if *b.get(i)? != b'"' {
            return None;
        }
        let name_end = scan::string_end(b, i)?;
        if *b.get(name_end)? != b':' {
            return None;
        }
        let name = member_name(text.get(i..name_end)?)?;
        let start = name_end + 1;
        // The guide's member of this name (both are sorted, so the cursor only moves on).
        while guide < like.len() && cmp_utf16(&like[guide].0, &name) == Ordering::Less {
            guide += 1;
        }
        let value_end = match like.get(guide) {
            // The scan of a value reads exactly its bytes, and for a scalar the delimiter
            // after it: the same bytes followed by a delimiter end at the same place.
            Some((n, v))
                if *n == name
                    && b[start..].starts_with(v.as_bytes())
                    && matches!(b.get(start + v.len()), Some(b',' | b'}')) =>
            {
                start + v.len()
            }
            _ => scan::value_end(b, start)?,
        };
        out.push((name, text.get(start..value_end)?));
        match *b.get(value_end)? {
            b',' => i = value_end + 1,
            b'}' if value_end + 1 == b.len() => return Some(out),
            _ => return None,
        }
    }
}

/// The elements of a canonical JSON array text, borrowed; `None` when `text` is not one
/// well-formed array.
pub fn split_array(text: &str) -> Option<Vec<&str>> {
    let b = text.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    if *b.get(i)? == b']' {
        return (b.len() == 2).then_some(out);
    }
    loop {
        let end = scan::value_end(b, i)?;
        out.push(text.get(i..end)?);
        match *b.get(end)? {
            b',' => i = end + 1,
            b']' if end + 1 == b.len() => return Some(out),
            _ => return None,
        }
    }
}

/// Member spans of the object `text`, which starts at `offset` in its document.
fn member_spans(text: &str, offset: usize) -> Option<Box<[MemberSpan]>> {
    let base = text.as_ptr() as usize;
    // The first name follows the brace; each next one the comma after a value.
    let mut at = 1;
    let mut out = Vec::new();
    for (_, value) in split_object(text)? {
        let start = value.as_ptr() as usize - base;
        let end = start + value.len();
        out.push(MemberSpan {
            name: offset + at,
            value: offset + start,
            end: offset + end,
        });
        at = end + 1;
    }
    Some(out.into_boxed_slice())
}

/// A member name from its quoted text: borrowed unless it has escapes.
fn member_name(quoted: &str) -> Option<Cow<'_, str>> {
    if quoted.contains('\\') {
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    } else {
        quoted.get(1..quoted.len() - 1).map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        let doc = Document::from_json(text.as_bytes(), &KeyPointer::default()).unwrap();
        String::from_utf8(doc.bytes().to_vec()).unwrap()
    }

    #[test]
    fn sorts_members_and_drops_whitespace() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": [ true, null ] }"#),
            r#"{"a":[true,null],"b":1}"#
        );
        assert_eq!(
            canon(r#"{"a":{"d":1,"c":2},"b":0}"#),
            r#"{"a":{"c":2,"d":1},"b":0}"#
        );
    }

    #[test]
    fn numbers_follow_ecmascript() {
        assert_eq!(
            canon("[1.0, -0, 1e21, 1e-7, 0.000001, 123.456e2, 9007199254740993, -5]"),
            "[1,0,1e+21,1e-7,0.000001,12345.6,9007199254740992,-5]"
        );
        assert_eq!(
            canon("[4.50, 2e-3, 333333333.33333329, 1E30]"),
            "[4.5,0.002,333333333.3333333,1e+30]"
        );
    }

    #[test]
    fn strings_escape_minimally() {
        assert_eq!(
            canon(r#""\u20ac\/\u0001\n\"\\\u2028""#),
            "\"€/\\u0001\\n\\\"\\\\\u{2028}\""
        );
    }

    #[test]
    fn rfc8785_member_order_uses_utf16() {
        // The example from RFC 8785 section 3.2.3.
        let text = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#;
        let doc = Document::from_json(text.as_bytes(), &KeyPointer::default()).unwrap();
        let v: serde_json::Map<String, Value> = serde_json::from_slice(doc.bytes()).unwrap();
        let order: Vec<&str> = {
            // Re-read the order from the bytes, not the (sorted) map.
            let s = std::str::from_utf8(doc.bytes()).unwrap();
            let mut names: Vec<(usize, &str)> = v
                .keys()
                .map(|k| {
                    (
                        s.find(&format!("\"{}\"", k.replace('\r', "\\r"))).unwrap(),
                        k.as_str(),
                    )
                })
                .collect();
            names.sort();
            names.into_iter().map(|(_, k)| k).collect()
        };
        assert_eq!(order, ["\r", "1", "\u{80}", "ö", "€", "😀", "\u{fb33}"]);
        assert_eq!(
            write_value_string(&serde_json::to_value(&v).unwrap()),
            String::from_utf8(doc.bytes().to_vec()).unwrap()
        );
    }

    fn write_value_string(v: &Value) -> String {
        String::from_utf8(to_canonical_vec(v)).unwrap()
    }

    #[test]
    fn rejects_duplicate_names_and_trailing_garbage() {
        let k = KeyPointer::default();
        assert!(Document::from_json(br#"{"a":1,"a":2}"#, &k)
            .unwrap_err()
            .contains("duplicate"));
        assert!(Document::from_json(br#"{"b":1,"a":2,"b":3}"#, &k)
            .unwrap_err()
            .contains("duplicate"));
        assert!(Document::from_json(b"[1] x", &k)
            .unwrap_err()
            .contains("trailing"));
        assert!(Document::from_json(b"[1,", &k).is_err());
    }

    #[test]
    fn records_carry_spans_and_keys() {
        let key = KeyPointer::parse("/country/key").unwrap();
        let doc = Document::from_json(
            br#"[ {"dates":{}, "country":{"name":"France","key":"france"}}, {"x":1}, {"country":{"key":7}} ]"#,
            &key,
        )
        .unwrap();
        let recs = doc.records().unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(
            doc.record_bytes(&recs[0]),
            br#"{"country":{"key":"france","name":"France"},"dates":{}}"#
        );
        assert_eq!(recs[0].key.as_deref(), Some(&br#""france""#[..]));
        assert_eq!(recs[1].key, None);
        assert_eq!(display_key(recs[2].key.as_deref().unwrap()), "7");
        assert_eq!(doc.sha256(), sha256_hex(doc.bytes()));
        let again = Document::from_canonical(doc.shared_bytes(), &key, doc.sha256()).unwrap();
        assert_eq!(again, doc);
        assert!(Document::from_canonical(doc.shared_bytes(), &key, &"0".repeat(64)).is_err());
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_hash() {
        let key = KeyPointer::parse("/id").unwrap();
        let a = Document::from_json(br#"[{"id":1,"v":[1,2]},{"id":2}]"#, &key).unwrap();
        let b =
            Document::from_json(b"[ {\"v\" : [1, 2],\n \"id\":1}, {\"id\":2} ]\n", &key).unwrap();
        assert_eq!(a.sha256(), b.sha256());
        assert_eq!(a, b);
    }

    #[test]
    fn from_value_agrees_with_the_streaming_path() {
        let v = json!({"z": [1, 2.5, "x"], "a": {"b": null, "\u{e000}": 1, "\u{10000}": 2}});
        let doc = Document::from_value(&v, &KeyPointer::default());
        assert_eq!(doc.bytes(), to_canonical_vec(&v).as_slice());
    }

    /// JSON text as a producer might write it: members in arrival order (not sorted), each
    /// string either as serde_json writes it or with everything but plain ASCII as `\u`
    /// escapes (so both the borrowed and the unescaped-copy paths of the parser are taken).
    #[derive(Debug, Clone)]
    enum Text {
        Scalar(Value),
        Str(String, bool),
        Array(Vec<Text>),
        Object(Vec<((String, bool), Text)>),
    }

    fn arb_text() -> impl Strategy<Value = Text> {
        let leaf = prop_oneof![
            Just(Text::Scalar(Value::Null)),
            any::<bool>().prop_map(|b| Text::Scalar(json!(b))),
            any::<i64>().prop_map(|n| Text::Scalar(json!(n))),
            any::<u64>().prop_map(|n| Text::Scalar(json!(n))),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| Text::Scalar(json!(f))),
            (
                "[a-z\"\\\\/\u{1}\u{1f}\u{7f}é\u{2028}😀]{0,6}",
                any::<bool>()
            )
                .prop_map(|(s, escaped)| Text::Str(s, escaped)),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let name = (
                "[a-c\"\\\\\u{1}\u{80}é\u{e000}\u{ffff}😀\u{10000}]{0,3}",
                any::<bool>(),
            );
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Text::Array),
                prop::collection::vec((name, inner), 0..6).prop_map(|mut members| {
                    let mut seen = std::collections::HashSet::new();
                    members.retain(|((n, _), _)| seen.insert(n.clone()));
                    Text::Object(members)
                }),
            ]
        })
    }

    fn write_text(t: &Text, out: &mut String) {
        match t {
            Text::Scalar(v) => out.push_str(&v.to_string()),
            Text::Str(s, escaped) => write_text_str(s, *escaped, out),
            Text::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    out.push_str(if i > 0 { ", " } else { "" });
                    write_text(v, out);
                }
                out.push(']');
            }
            Text::Object(members) => {
                out.push('{');
                for (i, ((name, escaped), v)) in members.iter().enumerate() {
                    out.push_str(if i > 0 { ", " } else { " " });
                    write_text_str(name, *escaped, out);
                    out.push_str(": ");
                    write_text(v, out);
                }
                out.push('}');
            }
        }
    }

    fn write_text_str(s: &str, escaped: bool, out: &mut String) {
        if !escaped {
            out.push_str(&serde_json::to_string(s).unwrap());
            return;
        }
        out.push('"');
        for c in s.chars() {
            if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                out.push(c);
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out.push('"');
    }

    /// The fast path's result (`None` when it gave up) and serde_json's, on the same text.
    fn both_paths(
        text: &[u8],
        key: &KeyPointer,
        drops: &[&[String]],
    ) -> (Option<Parsed>, Result<Parsed, String>) {
        let fast = std::str::from_utf8(text)
            .ok()
            .and_then(|t| canonicalize(&mut fast::Parser::new(t), text.len(), key, drops).ok());
        let serde = canonicalize(
            &mut serde_json::Deserializer::from_slice(text),
            text.len(),
            key,
            drops,
        )
        .map_err(|e| e.to_string());
        (fast, serde)
    }

    /// What the fast path accepts, serde_json accepts, with the same bytes, records, keys and
    /// member spans.
    fn assert_fast_agrees(text: &[u8], key: &KeyPointer, drops: &[&[String]]) -> Option<Parsed> {
        let (fast, serde) = both_paths(text, key, drops);
        if let Some(fast) = &fast {
            match &serde {
                Ok(serde) => assert!(
                    fast == serde,
                    "the paths disagree on {:?}",
                    String::from_utf8_lossy(text)
                ),
                Err(e) => panic!(
                    "the fast path accepted what serde_json rejects ({e}): {:?}",
                    String::from_utf8_lossy(text)
                ),
            }
        }
        fast
    }

    #[test]
    fn fast_path_gives_up_where_serde_json_decides() {
        let k = KeyPointer::default();
        let accepted = [
            "[1,-5,0,123456789012345678,-123456789012345678]",
            "[1234567890123456789,-1234567890123456789,18446744073709551616,-9223372036854775809]",
            "[-0,0.0,1e300,1.5,2E-3,1e+21,-0.0,1E-400]",
            r#"{"a\"b":"\u00e9\ud83d\ude00\n","\u0041":[true,false,null]}"#,
            " \t\n\r[ {\"b\" : 1 , \"a\" : \"x\" } ] \n",
            "\"just a string\"",
            "7",
            "[[[[[[[[[[[]]]]]]]]]]]",
            r#"["\uD83D\uDE00","\u00E9\u00e9x","a\/b","\b\f\r\t","\u0000","\u001f","\uffff","é\n😀"]"#,
            r#"{"\u00e9":1,"é ":2,"\"":3,"\\":4,"\ud83d\ude00":5}"#,
        ];
        for text in accepted {
            let fast = assert_fast_agrees(text.as_bytes(), &k, &[]);
            assert!(fast.is_some(), "the fast path gave up on {text:?}");
        }
        let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(assert_fast_agrees(deep_ok.as_bytes(), &k, &[]).is_some());
        let rejected_or_left = [
            "[1,]",
            "{\"a\":1,}",
            "[01]",
            "[1.]",
            "[-]",
            "[+1]",
            "[.5]",
            "[1e]",
            "[--1]",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{1:2}",
            "[tru]",
            "[nulls]",
            "[True]",
            "[\"a\u{1}\"]",
            "[\"\\ud800\"]",
            "[\"\\x\"]",
            "[\"abc]",
            "[",
            "]",
            "",
            " ",
            "[1] x",
            "{\"a\":1,\"a\":2}",
            "\u{feff}[1]",
            "[1]]",
            "{\"a\":1}}",
            "[1,,2]",
            "[NaN]",
            "[Infinity]",
            "[1e400]",
            "[1e999999999999999999999]",
            r#"["\udc00"]"#,
            r#"["\ud800\u0041"]"#,
            r#"["\ud800x"]"#,
            r#"["\ud800\"]"#,
            r#"["\u12"]"#,
            r#"["\u12G4"]"#,
            r#"["\x"]"#,
            r#"["\"#,
            r#"["\é"]"#,
            "[\"a\\\u{1}\"]",
        ];
        for text in rejected_or_left {
            let (fast, serde) = both_paths(text.as_bytes(), &k, &[]);
            assert!(fast.is_none(), "the fast path accepted {text:?}");
            assert!(serde.is_err(), "serde_json accepted {text:?}");
        }
        for depth in [101, 127, 128, 500] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert!(assert_fast_agrees(deep.as_bytes(), &k, &[]).is_none());
            assert_eq!(
                Document::from_json(deep.as_bytes(), &k).is_ok(),
                depth < 128,
                "depth {depth}"
            );
        }
        // Not UTF-8: serde_json's error, with its position.
        let err = Document::from_json(b"[\"\xff\"]", &k).unwrap_err();
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn errors_name_nan_infinity_and_utf16() {
        let k = KeyPointer::parse("").unwrap();
        for (text, says) in [
            ("[1, NaN]", "NaN at line 1 column 5"),
            ("[1,\n Infinity]", "Infinity at line 2 column 2"),
            ("[-Infinity]", "-Infinity at line 1 column 2"),
            ("{\"a\": nan}", "nan at line 1 column 7"),
        ] {
            let err = Document::from_json(text.as_bytes(), &k).unwrap_err();
            assert!(
                err.starts_with("NaN and Infinity are not JSON: ") && err.contains(says),
                "{text}: {err}"
            );
        }
        // A word that only starts like one keeps serde_json's message.
        let err = Document::from_json(b"[info]", &k).unwrap_err();
        assert!(err.contains("expected value at line 1 column 2"), "{err}");
        let utf16: Vec<u8> = "[1]".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let err = Document::from_json(&utf16, &k).unwrap_err();
        assert!(
            err.contains(
                "looks like UTF-16 (NUL bytes, the first at line 1 column 2); JSON must be UTF-8"
            ),
            "{err}"
        );
        // A NUL after the real error is not blamed.
        let err = Document::from_json(b"[}, \"\x00\"]", &k).unwrap_err();
        assert!(
            err.contains("line 1 column 2") && !err.contains("NUL"),
            "{err}"
        );
    }

    /// A damage to a text: a byte removed, replaced or inserted.
    fn damage(text: &str, at: prop::sample::Index, how: u8, byte: u8) -> Vec<u8> {
        const BYTES: &[u8] = b"{}[],:\"\\ \n0123456789-+.eEtrufalsn\x01\x7f\xc3\xa9";
        let mut b = text.as_bytes().to_vec();
        let byte = BYTES[byte as usize % BYTES.len()];
        if b.is_empty() {
            return vec![byte];
        }
        let i = at.index(b.len());
        match how % 3 {
            0 => {
                b.remove(i);
            }
            1 => b[i] = byte,
            _ => b.insert(i, byte),
        }
        b
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_serde_json(
            t in arb_text(),
            records in prop::collection::vec(arb_text(), 0..4),
            damages in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 0..3),
        ) {
            // A value on its own, and records of an array with a key and drop patterns.
            let mut text = String::new();
            write_text(&t, &mut text);
            let mut array = String::from("[");
            for (i, r) in records.iter().enumerate() {
                array.push_str(if i > 0 { ",\n" } else { "" });
                write_text(r, &mut array);
            }
            array.push(']');
            let key = KeyPointer::parse("/a").unwrap();
            let (star_b, zero) = (["*".to_string(), "b".to_string()], ["0".to_string()]);
            let drops: [&[String]; 2] = [&star_b, &zero];
            for (text, key, drops) in [
                (&text, &KeyPointer::default(), &[][..]),
                (&array, &key, &drops[..]),
            ] {
                prop_assert!(
                    assert_fast_agrees(text.as_bytes(), key, drops).is_some(),
                    "the fast path gave up on valid {:?}", text
                );
                let mut damaged = text.as_bytes().to_vec();
                for (at, how, byte) in &damages {
                    damaged = damage(&String::from_utf8_lossy(&damaged), *at, *how, *byte);
                    assert_fast_agrees(&damaged, key, drops);
                }
            }
        }

        #[test]
        fn streaming_agrees_with_write_value_on_unsorted_text(t in arb_text()) {
            let mut text = String::new();
            write_text(&t, &mut text);
            let doc = Document::from_json(text.as_bytes(), &KeyPointer::default()).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(
                String::from_utf8(doc.bytes().to_vec()).unwrap(),
                write_value_string(&value)
            );
        }
    }
}

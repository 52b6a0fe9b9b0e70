//! [`check_body`]: what a JSON parser would report badly about a body, named before the body
//! leaves the source.

use super::one_line;
use crate::error::{Error, Result};

/// What a JSON parser would report badly: an empty body, an HTML page (an error or login page
/// served with 200), UTF-16 text, bytes that are not UTF-8. A leading UTF-8 byte order mark is dropped
/// (RFC 8259 lets a parser ignore it; serde_json does not).
pub(super) fn check_body(
    shown: &str,
    mut bytes: Vec<u8>,
    content_type: Option<&str>,
) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::Fetch {
        url: shown.to_string(),
        reason: one_line(&reason),
        retryable: false,
    };
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    // UTF-16 (NULs between ASCII bytes) would otherwise pass as UTF-8 and fail as "expected
    // value"; a NUL anywhere is caught by the parser, these first bytes show the encoding.
    if let Some(hint) = crate::canonical::utf16_hint(&bytes[..bytes.len().min(64)]) {
        return Err(bad(format!("invalid JSON: the body {hint}")));
    }
    let Some(first) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(bad(if bytes.is_empty() {
            "invalid JSON: the body is empty".to_string()
        } else {
            "invalid JSON: the body is only whitespace".to_string()
        }));
    };
    let html_type = content_type.is_some_and(|t| {
        let t = t.trim_start().to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("application/xhtml")
    });
    if bytes[first] == b'<' || (html_type && !matches!(bytes[first], b'[' | b'{')) {
        let excerpt: String = String::from_utf8_lossy(&bytes[first..bytes.len().min(first + 60)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let ct = content_type
            .map(|t| format!(" (Content-Type {})", one_line(t)))
            .unwrap_or_default();
        return Err(bad(format!(
            "invalid JSON: the server sent what looks like an HTML page{ct}, not JSON: {:?}",
            excerpt.trim_end()
        )));
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        let at = e.valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        return Err(bad(format!(
            "the body is not valid UTF-8: byte 0x{:02X} at line {line} column {column} (offset {at}); JSON must be UTF-8",
            bytes[at]
        )));
    }
    Ok(bytes)
}

//! JSON Pointers (RFC 6901): [`KeyPointer`], the pointer naming each record's key, and the
//! parsing and escaping of pointer tokens that the key, the drop transform and patch paths use,
//! and the value a pointer names in a tree (the filter transform, the join's keys).

use std::fmt;

use serde_json::Value;

/// A JSON Pointer (RFC 6901) naming each record's key, e.g. `/country/key`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPointer {
    pub(super) tokens: Vec<String>,
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

/// The value at a pointer's tokens inside `v` (object members, array indices).
pub(crate) fn pointer<'v>(v: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    tokens.iter().try_fold(v, |cur, t| match cur {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

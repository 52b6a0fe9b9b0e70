//! Navigation of canonical JSON text (no whitespace) by skipping values byte by byte, and the
//! splitting of canonical objects and arrays built on it ([`split_object`], [`split_array`],
//! member spans). Only for text known to be canonical; malformed input gives `None`, never a
//! panic.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::write::cmp_utf16;

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
                    if t.parse::<usize>().ok() == Some(index) && (t == "0" || !t.starts_with('0')) {
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

/// The members of a canonical JSON object text, borrowed, in their (canonical) order: names
/// unescaped (owned only when they had escapes), values as text. `None` when `text` is not one
/// well-formed object: one pass of [`value_end`], no parsing, so splitting the large containers of a
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
        let name_end = string_end(b, i)?;
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
            _ => value_end(b, start)?,
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
        let end = value_end(b, i)?;
        out.push(text.get(i..end)?);
        match *b.get(end)? {
            b',' => i = end + 1,
            b']' if end + 1 == b.len() => return Some(out),
            _ => return None,
        }
    }
}

/// Member spans of the object `text`, as (name, value, end) offsets from its start.
pub(super) fn member_spans(text: &str) -> Option<Vec<(usize, usize, usize)>> {
    let base = text.as_ptr() as usize;
    // The first name follows the brace; each next one the comma after a value.
    let mut at = 1;
    let mut out = Vec::new();
    for (_, value) in split_object(text)? {
        let start = value.as_ptr() as usize - base;
        let end = start + value.len();
        out.push((at, start, end));
        at = end + 1;
    }
    Some(out)
}

/// A member name from its quoted text: borrowed unless it has escapes.
pub(super) fn member_name(quoted: &str) -> Option<Cow<'_, str>> {
    if quoted.contains('\\') {
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    } else {
        quoted.get(1..quoted.len() - 1).map(Cow::Borrowed)
    }
}

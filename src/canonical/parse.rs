//! The streaming canonicalizer: JSON text to canonical bytes without building a `Value` tree.
//! serde visitors ([`TopLevel`], [`Canon`]) write each value as it is parsed, sort an object's
//! members in place in the output buffer, drop what the drop patterns name, and remember a
//! top-level array's records (spans, keys and member spans). Either text parser drives them:
//! [`super::fast`], or serde_json's, whose errors are then explained ([`explain_json_error`],
//! [`utf16_hint`]) with line and column.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::write::{cmp_utf16, write_f64, write_i64, write_str, write_u64, write_unescaped_str};
use super::{fast, scan, KeyPointer, Record, Tables};

/// A JSON text parser the canonicalizer can be driven by: serde_json's, or the fast path.
pub(super) trait TextParser<'de> {
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
pub(super) fn explain_json_error(raw: &[u8], e: &serde_json::Error) -> String {
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
pub(super) type Parsed = (Vec<u8>, Option<Vec<Record>>, Tables);

/// Streams the text `parser` reads into canonical bytes and records (see
/// [`Document::from_json_dropping`]). `len` is the text's length, the output's capacity.
pub(super) fn canonicalize<'de, P: TextParser<'de>>(
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
        tables: Tables::default(),
    };
    let records = parser.parse(TopLevel {
        ctx: &mut ctx,
        key: &key.tokens,
        drops,
    })?;
    Ok((ctx.out, records, ctx.tables))
}

/// State shared by every value of one parse. The stacks are reused across objects so that
/// canonicalizing allocates nothing per object (a covid file has ~750k of them).
struct Ctx<'de, 'p> {
    out: Vec<u8>,
    /// Where in `tables` the value found at the key pointer in the current record is.
    key: Option<(u32, u32)>,
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
    /// Where in `tables` the current record's member spans are.
    spans: Option<(u32, u32)>,
    /// The records' keys and member spans.
    tables: Tables,
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
            records.push(Tables::record(
                start,
                ctx.out.len(),
                ctx.key.take(),
                ctx.spans.take(),
            ));
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

    /// Copies the value just written from `start` into the key table, when it is the key.
    fn capture<E: de::Error>(self, start: usize) -> Result<(), E> {
        if self.key_path.is_some_and(<[String]>::is_empty) {
            let Ctx { out, tables, .. } = &mut *self.ctx;
            let key = tables
                .key(&out[start..])
                .map_err(|e| E::custom(format_args!("a record {e}")))?;
            self.ctx.key = Some(key);
        }
        Ok(())
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
        self.capture(start)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_i64(v, &mut self.ctx.out);
        self.capture(start)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_u64(v, &mut self.ctx.out);
        self.capture(start)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_f64(v, &mut self.ctx.out);
        self.capture(start)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_str(v, &mut self.ctx.out);
        self.capture(start)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        let start = self.ctx.out.len();
        write_unescaped_str(v, &mut self.ctx.out);
        self.capture(start)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        let start = self.ctx.out.len();
        self.ctx.out.extend_from_slice(b"null");
        self.capture(start)
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
        self.capture(start)
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
                tables,
                ..
            } = &mut *self.ctx;
            let mut at = start + 1;
            let found = members[base..].iter().map(|(_, s, e)| {
                let colon = scan::string_end(out, at).unwrap_or(at);
                let span = (at - start, colon + 1 - start, at + (e - s) - start);
                at += e - s + 1;
                span
            });
            let found = tables
                .members(found)
                .map_err(|e| de::Error::custom(format_args!("a record {e}")))?;
            *spans = Some(found);
        }
        self.ctx.members.truncate(base);
        self.ctx.out.push(b'}');
        self.capture(start)
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

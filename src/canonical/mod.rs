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
//!
//! The code is cut by what it does: `pointer` the JSON Pointers that name record keys,
//! `parse` the streaming canonicalizer that turns JSON text into a [`Document`], `write`
//! canonical writing of strings, numbers and `Value`s, and `scan` the byte scanners that
//! split canonical text without parsing it. This file holds [`Document`] and the identity
//! hash, and re-exports the public API so callers name everything as `canonical::X`.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;
use serde_json::Value;
use sha2::{Digest, Sha256};

mod fast;
mod parse;
mod pointer;
mod scan;
mod write;

pub use parse::utf16_hint;
use parse::{canonicalize, explain_json_error};
pub(crate) use pointer::pointer;
pub use pointer::{escape_token, parse_pointer, KeyPointer};
use scan::{member_name, member_spans};
pub use scan::{split_array, split_object, split_object_like};
pub use write::{cmp_utf16, to_canonical_vec, write_str, write_value};

/// One element of a top-level array: where its canonical bytes are, and where its key and
/// member spans are in the document's tables. 32 bytes and nothing on the heap of its own: a
/// million small records with two members take 66 MB with their tables, where a box for each
/// key and for each record's spans took 144 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub start: usize,
    pub end: usize,
    /// The canonical bytes of the value at the key pointer, as (offset, length) in the
    /// document's key table; offset [`NONE`] when the record has none.
    key: (u32, u32),
    /// Where the members of an object record are, found while it was written (or scanned), as
    /// (first, count) in the document's member table; first [`NONE`] when it is not an object.
    /// Diff and apply start from them instead of scanning each record again.
    members: (u32, u32),
}

const NONE: u32 = u32::MAX;

/// One member of an object record, as offsets from the record's start: the quoted name is
/// `name..value - 1` (a colon follows it), the value `value..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSpan {
    pub name: u32,
    pub value: u32,
    pub end: u32,
}

/// The keys and member spans of a document's records, one buffer each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tables {
    keys: Vec<u8>,
    members: Vec<MemberSpan>,
}

/// Why a record does not fit the tables' 32-bit offsets.
const TOO_LARGE: &str = "is larger than 4 GiB (or the document's keys or members are)";

impl Tables {
    /// Adds a key's canonical bytes; its place in the key table.
    fn key(&mut self, key: &[u8]) -> Result<(u32, u32), &'static str> {
        let at = u32::try_from(self.keys.len()).map_err(|_| TOO_LARGE)?;
        let len = u32::try_from(key.len()).map_err(|_| TOO_LARGE)?;
        (at != NONE).then_some(()).ok_or(TOO_LARGE)?;
        self.keys.extend_from_slice(key);
        Ok((at, len))
    }

    /// Adds the member spans of an object record, given as (name, value, end) offsets from
    /// the record's start; their place in the member table.
    fn members(
        &mut self,
        spans: impl IntoIterator<Item = (usize, usize, usize)>,
    ) -> Result<(u32, u32), &'static str> {
        let first = self.members.len();
        let narrow = |v: usize| u32::try_from(v).map_err(|_| TOO_LARGE);
        for (name, value, end) in spans {
            let span = MemberSpan {
                name: narrow(name)?,
                value: narrow(value)?,
                end: narrow(end)?,
            };
            self.members.push(span);
        }
        let count = narrow(self.members.len() - first)?;
        let first = narrow(first).ok().filter(|&f| f != NONE).ok_or(TOO_LARGE)?;
        Ok((first, count))
    }

    /// Adds the key of the record `item` (canonical text) found at `key`, if any.
    fn scanned_key(
        &mut self,
        item: &str,
        key: &KeyPointer,
    ) -> Result<Option<(u32, u32)>, &'static str> {
        if key.tokens.is_empty() {
            return Ok(None);
        }
        scan::pointer(item.as_bytes(), &key.tokens)
            .map(|k| self.key(k))
            .transpose()
    }

    fn record(
        start: usize,
        end: usize,
        key: Option<(u32, u32)>,
        members: Option<(u32, u32)>,
    ) -> Record {
        Record {
            start,
            end,
            key: key.unwrap_or((NONE, 0)),
            members: members.unwrap_or((NONE, 0)),
        }
    }
}

/// Below this many bytes a document is hashed on the calling thread: a thread would cost more
/// than it saves.
pub(crate) const HASH_BESIDE: usize = 1 << 20;

/// `bytes` as the text of the version `sha256` names: its hash (returned) checked, and UTF-8,
/// then given to `build` (which finds its records). `hashed` is the hash of `bytes` when
/// whatever wrote them took it as they were written; otherwise it is taken on another core
/// while `build` runs here. A hash that does not match is the error whatever `build` said.
fn checked_text<T>(
    bytes: Bytes,
    sha256: &str,
    hashed: Option<String>,
    build: impl FnOnce(ByteString) -> Result<T, String>,
) -> Result<(String, T), String> {
    let text = |bytes: Bytes| {
        ByteString::try_from(bytes)
            .map_err(|e| format!("not UTF-8 text: {e}"))
            .and_then(build)
    };
    let mismatch = |got: &str| format!("content hashes to {got}, expected {sha256}");
    if hashed.is_some() || bytes.len() < HASH_BESIDE {
        let got = hashed.unwrap_or_else(|| sha256_hex(&bytes));
        if got != sha256 {
            return Err(mismatch(&got));
        }
        return text(bytes).map(|built| (got, built));
    }
    let (got, built) = std::thread::scope(|s| {
        let hashing = s.spawn(|| sha256_hex(&bytes));
        let built = text(bytes.clone());
        let got = hashing
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (got, built)
    });
    if got != sha256 {
        return Err(mismatch(&got));
    }
    built.map(|built| (got, built))
}

/// The records of canonical text (none unless it is an array) and their tables, from a scan
/// that allocates nothing per value.
fn scanned_records(text: &str, key: &KeyPointer) -> Result<(Option<Vec<Record>>, Tables), String> {
    let mut tables = Tables::default();
    if !text.starts_with('[') {
        return Ok((None, tables));
    }
    let base = text.as_ptr() as usize;
    let items = split_array(text).ok_or("not a canonical JSON array")?;
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let start = item.as_ptr() as usize - base;
        let too_large = |e: &str| format!("record {i} {e}");
        let key = tables.scanned_key(item, key).map_err(too_large)?;
        let members = member_spans(item)
            .map(|spans| tables.members(spans))
            .transpose()
            .map_err(too_large)?;
        records.push(Tables::record(start, start + item.len(), key, members));
    }
    Ok((Some(records), tables))
}

/// Whether `spans` (from whatever wrote `item`) are member spans of the object `item`: each
/// name a quoted string followed by a colon, each value ending where a comma, or the closing
/// brace after the last, follows. Cheap (no scan of the values), and enough that a wrong span
/// cannot pass: the bytes between spans are checked, and a value's own bounds were written.
fn members_fit(item: &str, spans: &[(usize, usize, usize)]) -> bool {
    let b = item.as_bytes();
    let mut at = 1;
    for (i, &(name, value, end)) in spans.iter().enumerate() {
        let sep_ok = i == 0 || b.get(at) == Some(&b',');
        let name_at = if i == 0 { 1 } else { at + 1 };
        if !sep_ok
            || name != name_at
            || b.get(name) != Some(&b'"')
            || value < name + 3
            || b.get(value - 1) != Some(&b':')
            || b.get(value - 2) != Some(&b'"')
            || end <= value
            || end > b.len()
        {
            return false;
        }
        at = end;
    }
    b.first() == Some(&b'{') && b.len() == at + 1 && b.last() == Some(&b'}')
}

/// A dataset version in canonical form.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    /// Checked to be UTF-8 once, when the document is made: diff and apply read it as text.
    text: ByteString,
    sha256: String,
    /// `Some` when the top level is an array: its elements, in order.
    records: Option<Vec<Record>>,
    /// The records' keys and member spans.
    tables: Tables,
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
        let (out, records, tables) = match fast {
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
        Self::from_parts(out, records, tables)
    }

    /// Canonical bytes of one `Value` (for small documents and tests).
    pub fn from_value(value: &Value, key: &KeyPointer) -> Self {
        let text = serde_json::to_vec(value).expect("a Value always serializes");
        Self::from_json(&text, key).expect("a serialized Value is valid JSON")
    }

    fn from_parts(
        bytes: Vec<u8>,
        records: Option<Vec<Record>>,
        tables: Tables,
    ) -> Result<Self, String> {
        let sha256 = sha256_hex(&bytes);
        // The canonicalizer writes only UTF-8; checked here once rather than at every use.
        let text = ByteString::try_from(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
        Ok(Document {
            text,
            sha256,
            records,
            tables,
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
        let (got, (text, records, tables)) = checked_text(bytes, sha256, None, |text| {
            let (records, tables) = scanned_records(&text, key)?;
            Ok((text, records, tables))
        })?;
        Ok(Document {
            sha256: got,
            text,
            records,
            tables,
        })
    }

    /// [`Document::from_canonical`] of bytes whose records' spans are known already: a delta
    /// applied record by record to `base` ([`crate::delta::apply_document_records`]) says
    /// where each record of the result is, which are untouched copies of a record of `base`
    /// (whose member spans are taken from there), and the member spans of the records it
    /// rewrote (checked against their text); only other records are scanned. Checked against
    /// `sha256` (`hashed`: the hash of `bytes`, when the apply took it as it wrote them), and
    /// refused unless the spans tile the top-level array exactly.
    pub fn from_applied(
        (bytes, hashed): (Bytes, Option<String>),
        key: &KeyPointer,
        sha256: &str,
        base: &Document,
        applied: &[crate::delta::AppliedRecord<'_>],
    ) -> Result<Self, String> {
        let (got, (text, records, tables)) = checked_text(bytes, sha256, hashed, |text| {
            let b = text.as_bytes();
            // The spans must be exactly `[` r0 `,` r1 … `]`: whatever wrote them, the document's
            // records are then the array's elements.
            let mut at = 0;
            for (i, r) in applied.iter().enumerate() {
                let sep = if i == 0 { b'[' } else { b',' };
                if r.start != at + 1 || b.get(at) != Some(&sep) || r.end < r.start {
                    return Err(format!("record {i} is not where the applied spans say"));
                }
                at = r.end;
            }
            let closes = if applied.is_empty() { &b"[]"[..] } else { b"]" };
            if b.len() != at + closes.len() || !b.ends_with(closes) || b.len() < 2 {
                return Err("the applied spans do not end the array".into());
            }
            let mut tables = Tables::default();
            let mut records = Vec::with_capacity(applied.len());
            for (i, r) in applied.iter().enumerate() {
                let too_large = |e: &str| format!("record {i} {e}");
                let item = &text[r.start..r.end];
                let k = tables.scanned_key(item, key).map_err(too_large)?;
                // A copy's spans, relative to its start, are its base record's: the same bytes.
                let copied = r
                    .copy_of
                    .filter(|c| base.bytes().get(c.start..c.end) == Some(item.as_bytes()))
                    .and_then(|c| base.members_of(c));
                let members = match (copied, &r.members) {
                    (Some(spans), _) => {
                        let spans = spans
                            .iter()
                            .map(|m| (m.name as usize, m.value as usize, m.end as usize));
                        Some(tables.members(spans))
                    }
                    (None, Some(spans)) if members_fit(item, spans) => {
                        Some(tables.members(spans.iter().copied()))
                    }
                    (None, _) => member_spans(item).map(|spans| tables.members(spans)),
                };
                let members = members.transpose().map_err(too_large)?;
                records.push(Tables::record(r.start, r.end, k, members));
            }
            Ok((text, records, tables))
        })?;
        Ok(Document {
            sha256: got,
            text,
            records: Some(records),
            tables,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
    /// The canonical text.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The document's buffer, emptied, for the next document to be written into, when nothing
    /// else holds its bytes: a chain of versions (`verify`, `restore`) then writes each version
    /// into the memory of the one two steps back, instead of faulting in fresh pages for every
    /// version (a third of `verify`'s time went to the kernel).
    pub fn into_buffer(self) -> Option<Vec<u8>> {
        let mut buffer = self.text.into_bytes().try_into_mut().ok()?;
        buffer.clear();
        Some(buffer.into())
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
    /// A record's canonical text (the document's text is checked UTF-8 once, when it is made).
    pub fn record_text(&self, r: &Record) -> &str {
        &self.text[r.start..r.end]
    }
    /// The canonical bytes of a record's key, found when the document was made (`None`: the
    /// record has none, or the document was made without a key pointer).
    pub fn key(&self, r: &Record) -> Option<&[u8]> {
        let (at, len) = r.key;
        (at != NONE).then(|| &self.tables.keys[at as usize..at as usize + len as usize])
    }
    /// The canonical bytes of a record's key: the one found when the document was made, or
    /// (a document made without a key pointer, such as a version rebuilt from a delta) the
    /// value at `key` in the record.
    pub fn record_key<'d>(&'d self, r: &'d Record, key: &KeyPointer) -> Option<&'d [u8]> {
        match self.key(r) {
            Some(k) => Some(k),
            None if key.tokens.is_empty() => None,
            None => scan::pointer(self.record_bytes(r), &key.tokens),
        }
    }
    /// The member spans of an object record (`None` for any other record).
    fn members_of(&self, r: &Record) -> Option<&[MemberSpan]> {
        let (first, count) = r.members;
        if first == NONE {
            return None;
        }
        let first = first as usize;
        self.tables.members.get(first..first + count as usize)
    }

    /// The members of an object record (names unescaped, values as text), from its spans.
    pub fn record_members(&self, r: &Record) -> Option<Vec<(Cow<'_, str>, &str)>> {
        let text = self.text();
        let at = |offset: u32| r.start + offset as usize;
        self.members_of(r)?
            .iter()
            .map(|m| {
                Some((
                    member_name(text.get(at(m.name)..at(m.value) - 1)?)?,
                    text.get(at(m.value)..at(m.end))?,
                ))
            })
            .collect()
    }
    /// The whole document as a `Value` (only for small documents, or a fallback path).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.text).expect("canonical bytes are valid JSON")
    }
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

#[cfg(test)]
mod tests;

//! Applying a patch, written independently of the diff: [`apply_document`] (and its streaming
//! forms [`apply_document_into`] and [`apply_and_compare`]) keeps the document as canonical
//! text and splits only the containers on an operation's path, through the `Lazy` values and
//! the block-wise `Seq` of array elements. It refuses results nested deeper than `MAX_DEPTH`.
//! The property tests and the fuzz target check it against an independent engine, the
//! `json-patch` crate (a dev-dependency).

use std::borrow::Cow;
use std::io::Write;

use serde_json::Value;

use crate::canonical::{
    cmp_utf16, parse_pointer, split_array, split_object, to_canonical_vec, write_value, Document,
    Record,
};

use super::{ApplyError, PatchOp};

/// Deepest nesting a patch may produce: serde_json's parse limit, which already bounds every
/// document snapsync canonicalizes and every value a delta file can carry. Applying, writing
/// and dropping values recurse, so without it a patch that nests one level deeper with each
/// `add` (or `copy`) would overflow the stack of whoever applies it (`verify`, a consumer)
/// instead of being refused.
const MAX_DEPTH: usize = 128;

/// Refuses an operation that would put a value `depth` levels deep at a path `path_len` deep.
fn check_nesting(path_len: usize, depth: usize) -> Result<(), String> {
    if path_len + depth > MAX_DEPTH {
        Err(format!(
            "the result would nest deeper than {MAX_DEPTH} levels"
        ))
    } else {
        Ok(())
    }
}

/// Nesting depth of a value (a scalar is 0), without recursion.
fn value_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            Value::Object(m) => {
                max = max.max(d + 1);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Nesting depth of JSON text, without parsing it.
fn text_depth(t: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0, false, false);
    for b in t.bytes() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Applies `patch` to a canonical document and returns the canonical bytes of the result.
///
/// The document stays text: only the containers on an operation's path are split into their
/// members (borrowed slices), so applying a delta to a 30 MB dataset parses little more than
/// the changed paths and copies the rest through.
pub fn apply_document(doc: &Document, patch: &[PatchOp]) -> Result<Vec<u8>, ApplyError> {
    let mut out = Vec::with_capacity(doc.bytes().len() + 1024);
    apply_document_into(doc, patch, &mut out)?;
    Ok(out)
}

/// [`apply_document`], streaming the result into `out` (a hasher, to check a delta without
/// holding a second copy of the document). On an error, what was written to `out` so far is
/// not a document.
///
/// A patch in the shape the diff writes for keyed records (record-level removes, moves and
/// adds first, then each record's own operations in ascending record order) is applied record
/// by record: each changed record is split, patched, written and dropped before the next, so
/// checking a delta holds one record's tree at a time, not every changed record's. Any other
/// patch is applied to the whole document first.
pub fn apply_document_into(
    doc: &Document,
    patch: &[PatchOp],
    out: &mut impl Write,
) -> Result<(), ApplyError> {
    apply_records_into(doc, patch, out, |_| {}).map(drop)
}

/// Where one record of an applied document is in its bytes, and the record of the base it is
/// an untouched copy of (moved or not), if it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRecord<'d> {
    pub start: usize,
    pub end: usize,
    pub copy_of: Option<&'d Record>,
    /// The members of an object record the patch rewrote, as (name, value, end) offsets from
    /// its start (as `Document`'s member spans), found while writing it.
    pub members: Option<Vec<(usize, usize, usize)>>,
}

/// [`apply_document`], telling where each record of the result is: `None` when the result was
/// not written record by record (the base is no array of records, the patch is empty, or it
/// replaced the array whole). What lets `verify` and `restore` make the next [`Document`]
/// without scanning its bytes again ([`Document::from_applied`]).
pub fn apply_document_records<'d>(
    doc: &'d Document,
    patch: &[PatchOp],
) -> Result<(Vec<u8>, Option<Vec<AppliedRecord<'d>>>), ApplyError> {
    let mut out = Vec::with_capacity(doc.bytes().len() + 1024);
    let mut records = Vec::with_capacity(doc.record_count().unwrap_or(0));
    let by_record = apply_records_into(doc, patch, &mut out, |r| records.push(r))?;
    Ok((out, by_record.then_some(records)))
}

/// [`apply_document_into`], calling `on_record` for each record of the result as it is written
/// when it is written record by record (then `Ok(true)`).
pub(super) fn apply_records_into<'d>(
    doc: &'d Document,
    patch: &[PatchOp],
    out: &mut impl Write,
    on_record: impl FnMut(AppliedRecord<'d>),
) -> Result<bool, ApplyError> {
    if !patch.is_empty() && doc.records().is_some() && record_wise(patch) {
        let mut stream = Stream::new(doc, out, on_record);
        for op in patch {
            stream.op(op)?;
        }
        return stream.finish().map(|()| true);
    }
    let mut root = Lazy::Raw(doc.text());
    for (index, op) in patch.iter().enumerate() {
        apply_lazy(&mut root, op, 0).map_err(|reason| op_error(index, op, reason))?;
    }
    root.write(out, &mut Vec::new())
        .map(|()| false)
        .map_err(|e| write_error(patch.len(), e))
}

fn write_error(index: usize, e: std::io::Error) -> ApplyError {
    ApplyError {
        index,
        op: "write",
        path: String::new(),
        reason: e.to_string(),
    }
}

/// A patch in the record-wise shape applied one operation at a time, as it comes (from a
/// slice, or parsed from a delta file as it is read): the record-level operations on the array
/// of records, then each record's own, each record written out (and dropped) as soon as the
/// operations move past it. It never holds more than the array of records and one record's
/// tree; an operation out of that order is an error, not a fallback.
pub(super) struct Stream<'d, 'w, W, F> {
    /// The records, while record-level operations come.
    head: Option<Seq<Lazy<'d>>>,
    /// The records not written yet, once the operations went inside them.
    rest: std::iter::Flatten<std::vec::IntoIter<Vec<Lazy<'d>>>>,
    /// The record the last operation went into, and its index.
    current: Option<(usize, Lazy<'d>)>,
    /// Index of the next record to write, and how many the array has.
    next: usize,
    len: usize,
    /// Operations applied so far (the next one's index).
    index: usize,
    /// Whether an operation came out of the record-wise order (the error says so too).
    pub(super) out_of_order: bool,
    out: Counted<'w, W>,
    buf: Vec<u8>,
    on_record: F,
}

impl<'d, 'w, W: Write, F: FnMut(AppliedRecord<'d>)> Stream<'d, 'w, W, F> {
    /// `doc` must be an array of records.
    pub(super) fn new(doc: &'d Document, out: &'w mut W, on_record: F) -> Self {
        let records = doc.records().unwrap_or_default();
        Stream {
            head: Some(records.iter().map(|r| Lazy::Record(doc, r)).collect()),
            rest: Vec::new().into_iter().flatten(),
            current: None,
            next: 0,
            len: 0,
            index: 0,
            out_of_order: false,
            out: Counted { inner: out, n: 0 },
            buf: Vec::new(),
            on_record,
        }
    }

    pub(super) fn op(&mut self, op: &PatchOp) -> Result<(), ApplyError> {
        let index = self.index;
        self.index += 1;
        let error = |reason: String| op_error(index, op, reason);
        let place = op_place(op);
        if let (
            Some(records),
            Some(Place {
                records_level: true,
                ..
            }),
        ) = (&mut self.head, &place)
        {
            let mut root = Lazy::Array(std::mem::replace(records, Seq::from_iter([])));
            let applied = apply_lazy(&mut root, op, 0);
            if let Lazy::Array(records) = root {
                self.head = Some(records);
            }
            return applied.map_err(error);
        }
        let at = place.and_then(|p| p.record);
        let Some(i) = at else {
            self.out_of_order = true;
            return Err(error(
                "out of the order a delta of records has (record-level operations first, then \
                 each record's own in ascending record order)"
                    .into(),
            ));
        };
        self.start_records()?;
        match &self.current {
            Some((c, _)) if *c == i => {}
            Some((c, _)) if *c > i => {
                self.out_of_order = true;
                return Err(error(format!(
                    "comes after operations on record {c}: out of ascending record order"
                )));
            }
            _ => {
                self.write_current()?;
                while self.next < i {
                    let Some(record) = self.rest.next() else {
                        break;
                    };
                    self.write_record(record)?;
                }
                let record = match self.rest.next() {
                    Some(record) if self.next == i => record,
                    _ => {
                        let len = self.len;
                        return Err(error(format!("index {i} is out of bounds (length {len})")));
                    }
                };
                self.current = Some((i, record));
            }
        }
        let (_, record) = self.current.as_mut().expect("set above");
        apply_lazy(record, op, 1).map_err(error)
    }

    /// Writes the rest of the records and closes the array.
    pub(super) fn finish(mut self) -> Result<(), ApplyError> {
        self.start_records()?;
        self.write_current()?;
        while let Some(record) = self.rest.next() {
            self.write_record(record)?;
        }
        let index = self.index;
        self.out.write_all(b"]").map_err(|e| write_error(index, e))
    }

    /// Past the record-level operations: opens the array.
    fn start_records(&mut self) -> Result<(), ApplyError> {
        if let Some(records) = self.head.take() {
            self.len = records.len();
            self.rest = records.blocks.into_iter().flatten();
            let index = self.index;
            self.out
                .write_all(b"[")
                .map_err(|e| write_error(index, e))?;
        }
        Ok(())
    }

    fn write_current(&mut self) -> Result<(), ApplyError> {
        match self.current.take() {
            Some((_, record)) => self.write_record(record),
            None => Ok(()),
        }
    }

    fn write_record(&mut self, record: Lazy<'d>) -> Result<(), ApplyError> {
        let index = self.index;
        let write_error = |e| write_error(index, e);
        if self.next > 0 {
            self.out.write_all(b",").map_err(write_error)?;
        }
        self.next += 1;
        let start = self.out.n;
        let members = record
            .write_record(&mut self.out, &mut self.buf)
            .map_err(write_error)?;
        let copy_of = match record {
            Lazy::Record(_, r) => Some(r),
            _ => None,
        };
        (self.on_record)(AppliedRecord {
            start,
            end: self.out.n,
            copy_of,
            members,
        });
        Ok(())
    }
}

/// `"name":` of a member into `buf` (cleared first).
#[allow(clippy::ptr_arg)] // the variant matters: a borrowed name is canonical text already
fn member_name(name: &Cow<'_, str>, buf: &mut Vec<u8>) {
    buf.clear();
    match name {
        // Split from the text with no escape in its quotes: already canonical.
        Cow::Borrowed(name) => {
            buf.push(b'"');
            buf.extend_from_slice(name.as_bytes());
            buf.push(b'"');
        }
        Cow::Owned(name) => crate::canonical::write_str(name, buf),
    }
    buf.push(b':');
}

/// A writer that counts the bytes written through it.
struct Counted<'w, W> {
    inner: &'w mut W,
    n: usize,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n;
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.n += buf.len();
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn op_error(index: usize, op: &PatchOp, reason: String) -> ApplyError {
    ApplyError {
        index,
        op: op.name(),
        path: op.path().to_string(),
        reason,
    }
}

/// Where an operation of a record-wise patch works: on the array of records (its path, and
/// `from`, one array index: removes, moves and adds of whole records), and/or inside record
/// `i`: its path starts with index `i`, goes deeper unless it replaces or tests the record
/// whole, and its `from` (a move or copy) lies deeper inside record `i` too. `None` for
/// anything else.
struct Place {
    records_level: bool,
    record: Option<usize>,
}

fn op_place(op: &PatchOp) -> Option<Place> {
    let path = parse_pointer(op.path()).ok()?;
    let from = match op {
        PatchOp::Move { from, .. } | PatchOp::Copy { from, .. } => Some(parse_pointer(from).ok()?),
        _ => None,
    };
    let records_level = path.len() == 1 && from.as_ref().is_none_or(|f| f.len() == 1);
    let first = path.first()?;
    let deep_enough = match op {
        PatchOp::Replace { .. } | PatchOp::Test { .. } => true,
        PatchOp::Add { .. } | PatchOp::Remove { .. } => path.len() >= 2,
        PatchOp::Move { .. } | PatchOp::Copy { .. } => from
            .as_ref()
            .is_some_and(|from| path.len() >= 2 && from.len() >= 2 && from[0] == *first),
    };
    // A canonical index only ("-" or a leading zero is no record of the stream).
    let record = first
        .parse()
        .ok()
        .filter(|i: &usize| i.to_string() == *first && deep_enough);
    Some(Place {
        records_level,
        record,
    })
}

/// Whether `patch` can be applied record by record ([`Stream`]): its record-level operations
/// first, then each record's own in ascending record order.
fn record_wise(patch: &[PatchOp]) -> bool {
    let mut last = None;
    for op in patch {
        match op_place(op) {
            Some(Place {
                records_level: true,
                ..
            }) if last.is_none() => {}
            Some(Place {
                record: Some(i), ..
            }) if last.is_none_or(|last| last <= i) => last = Some(i),
            _ => return false,
        }
    }
    true
}

/// Applies `patch` to `doc` and compares the result with `expected` as it streams, with no
/// copy and no hash: `Ok(None)` when they are equal, else the offset of the first difference.
/// A publishing run checks its delta this way against the new version's own bytes, which is
/// what their hash stands for.
pub fn apply_and_compare(
    doc: &Document,
    patch: &[PatchOp],
    expected: &[u8],
) -> Result<Option<usize>, ApplyError> {
    let mut c = Compare::new(expected);
    apply_document_into(doc, patch, &mut c)?;
    Ok(c.differs())
}

/// A writer that compares what it is given with `expected`, keeping the offset of the first
/// difference.
pub(super) struct Compare<'e> {
    expected: &'e [u8],
    pos: usize,
    differs: Option<usize>,
}

impl<'e> Compare<'e> {
    pub(super) fn new(expected: &'e [u8]) -> Self {
        Compare {
            expected,
            pos: 0,
            differs: None,
        }
    }

    /// `None` when what was written is `expected`, else the offset of the first difference.
    pub(super) fn differs(&self) -> Option<usize> {
        self.differs
            .or((self.pos != self.expected.len()).then_some(self.pos.min(self.expected.len())))
    }
}

impl Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.differs.is_none() {
            let have = self.expected.get(self.pos..).unwrap_or_default();
            if !have.starts_with(buf) {
                let same = have.iter().zip(buf).take_while(|(a, b)| a == b).count();
                self.differs = Some(self.pos + same);
            }
        }
        self.pos += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl super::Rewind for Compare<'_> {
    fn rewind(&mut self) {
        (self.pos, self.differs) = (0, None);
    }
}

/// A JSON value being patched: canonical text until an operation needs to look inside it.
#[derive(Clone)]
enum Lazy<'a> {
    Raw(&'a str),
    /// A record of the document, untouched so far: split from its member spans when an
    /// operation looks inside it (no scan, and nothing allocated for the records no
    /// operation touches).
    Record(&'a Document, &'a Record),
    /// Members in canonical (UTF-16) order.
    Object(Vec<(Cow<'a, str>, Lazy<'a>)>),
    Array(Seq<Lazy<'a>>),
    Owned(Value),
}

/// The elements of an array being patched, kept in blocks of about [`BLOCK`], so that an
/// insert or a remove shifts one block, not the whole array: a re-sorted day of a million
/// records is a move per record, and each move is a remove plus an insert.
#[derive(Clone)]
pub(super) struct Seq<T> {
    pub(super) blocks: Vec<Vec<T>>,
    len: usize,
}

const BLOCK: usize = 1024;

impl<T> FromIterator<T> for Seq<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        // Sized for what comes (most arrays are small), never more than a block at a time.
        let capacity = |hint: usize| hint.min(BLOCK);
        let mut blocks = Vec::new();
        let mut block = Vec::with_capacity(capacity(iter.size_hint().0));
        for item in iter {
            if block.len() == BLOCK {
                blocks.push(std::mem::replace(&mut block, Vec::with_capacity(BLOCK)));
            }
            block.push(item);
        }
        blocks.push(block);
        let len = blocks.iter().map(Vec::len).sum();
        Seq { blocks, len }
    }
}

impl<T> Seq<T> {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The block holding index `i` and the offset in it; `i == len` is the end of the last
    /// block. There is always at least one block.
    fn locate(&self, mut i: usize) -> (usize, usize) {
        let last = self.blocks.len() - 1;
        for (b, block) in self.blocks.iter().enumerate() {
            if i < block.len() || b == last {
                return (b, i);
            }
            i -= block.len();
        }
        unreachable!("blocks is never empty")
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let (b, at) = self.locate(i);
        self.blocks[b].get_mut(at)
    }

    /// Inserts at `i` (`i <= len`).
    pub(super) fn insert(&mut self, i: usize, value: T) {
        let (b, at) = self.locate(i);
        let block = &mut self.blocks[b];
        block.insert(at, value);
        if block.len() >= 2 * BLOCK {
            let tail = block.split_off(BLOCK);
            self.blocks.insert(b + 1, tail);
        }
        self.len += 1;
    }

    /// Removes the element at `i` (`i < len`).
    pub(super) fn remove(&mut self, i: usize) -> T {
        let (b, at) = self.locate(i);
        let value = self.blocks[b].remove(at);
        if self.blocks[b].is_empty() && self.blocks.len() > 1 {
            self.blocks.remove(b);
        }
        self.len -= 1;
        value
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.blocks.iter().flatten()
    }
}

impl<'a> Lazy<'a> {
    /// Splits a container into its members or elements; an error when the document's text
    /// there is not well-formed (a damaged stored version), never a panic.
    fn expand(&mut self) -> Result<(), String> {
        let malformed = || "the document is not well-formed JSON there".to_string();
        let expanded = match self {
            Lazy::Record(doc, r) => match doc.record_members(r) {
                Some(m) => Lazy::Object(m.into_iter().map(|(k, v)| (k, Lazy::Raw(v))).collect()),
                None => {
                    *self = Lazy::Raw(doc.record_text(r));
                    return self.expand();
                }
            },
            Lazy::Raw(t) if t.starts_with('{') => Lazy::Object(
                split_object(t)
                    .ok_or_else(malformed)?
                    .into_iter()
                    .map(|(k, v)| (k, Lazy::Raw(v)))
                    .collect(),
            ),
            Lazy::Raw(t) if t.starts_with('[') => Lazy::Array(
                split_array(t)
                    .ok_or_else(malformed)?
                    .into_iter()
                    .map(Lazy::Raw)
                    .collect(),
            ),
            Lazy::Owned(Value::Object(m)) => {
                let mut members: Vec<(Cow<'a, str>, Lazy<'a>)> = std::mem::take(m)
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Lazy::Owned(v)))
                    .collect();
                members.sort_by(|a, b| cmp_utf16(&a.0, &b.0));
                Lazy::Object(members)
            }
            Lazy::Owned(Value::Array(a)) => {
                Lazy::Array(std::mem::take(a).into_iter().map(Lazy::Owned).collect())
            }
            _ => return Ok(()),
        };
        *self = expanded;
        Ok(())
    }

    fn child(&mut self, token: &str) -> Result<&mut Lazy<'a>, String> {
        self.expand()?;
        match self {
            Lazy::Object(m) => match m.binary_search_by(|(k, _)| cmp_utf16(k, token)) {
                Ok(i) => Ok(&mut m[i].1),
                Err(_) => Err(format!("member {token:?} does not exist")),
            },
            Lazy::Array(a) => {
                let len = a.len();
                let i = array_index(token, len)?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} is out of bounds (length {len})"))
            }
            _ => Err(format!("cannot descend into a scalar at {token:?}")),
        }
    }

    fn resolve(&mut self, path: &[String]) -> Result<&mut Lazy<'a>, String> {
        path.iter().try_fold(self, |cur, t| cur.child(t))
    }

    fn add(&mut self, path: &[String], value: Lazy<'a>) -> Result<(), String> {
        let Some((last, parent)) = path.split_last() else {
            *self = value;
            return Ok(());
        };
        let parent = self.resolve(parent)?;
        parent.expand()?;
        match parent {
            Lazy::Object(m) => {
                match m.binary_search_by(|(k, _)| cmp_utf16(k, last)) {
                    Ok(i) => m[i].1 = value,
                    Err(i) => m.insert(i, (Cow::Owned(last.clone()), value)),
                }
                Ok(())
            }
            Lazy::Array(a) => {
                let i = if last == "-" {
                    a.len()
                } else {
                    array_index(last, a.len())?
                };
                a.insert(i, value);
                Ok(())
            }
            _ => Err("parent is not an object or array".into()),
        }
    }

    fn remove(&mut self, path: &[String]) -> Result<Lazy<'a>, String> {
        let Some((last, parent)) = path.split_last() else {
            return Err("cannot remove the whole document".into());
        };
        let parent = self.resolve(parent)?;
        parent.expand()?;
        match parent {
            Lazy::Object(m) => match m.binary_search_by(|(k, _)| cmp_utf16(k, last)) {
                Ok(i) => Ok(m.remove(i).1),
                Err(_) => Err(format!("member {last:?} does not exist")),
            },
            Lazy::Array(a) => {
                let i = array_index(last, a.len())?;
                if i >= a.len() {
                    return Err(format!("index {i} is out of bounds (length {})", a.len()));
                }
                Ok(a.remove(i))
            }
            _ => Err("parent is not an object or array".into()),
        }
    }

    /// [`Lazy::write`] of a record, with its member spans when it is an object rewritten here
    /// (offsets from its start: `"name":` at the first, the value from the second to the third).
    fn write_record<W: Write>(
        &self,
        out: &mut Counted<'_, W>,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Option<Vec<(usize, usize, usize)>>> {
        let Lazy::Object(members) = self else {
            return self.write(out, buf).map(|()| None);
        };
        let start = out.n;
        let mut spans = Vec::with_capacity(members.len());
        out.write_all(b"{")?;
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            let name = out.n - start;
            member_name(k, buf);
            out.write_all(buf)?;
            let value = out.n - start;
            v.write(out, buf)?;
            spans.push((name, value, out.n - start));
        }
        out.write_all(b"}")?;
        Ok(Some(spans))
    }

    /// Canonical bytes; `buf` is scratch space for owned values.
    fn write(&self, out: &mut impl Write, buf: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Lazy::Raw(t) => out.write_all(t.as_bytes()),
            Lazy::Record(doc, r) => out.write_all(doc.record_bytes(r)),
            Lazy::Owned(v) => {
                buf.clear();
                write_value(v, buf);
                out.write_all(buf)
            }
            Lazy::Array(items) => {
                out.write_all(b"[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    item.write(out, buf)?;
                }
                out.write_all(b"]")
            }
            Lazy::Object(members) => {
                out.write_all(b"{")?;
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    member_name(k, buf);
                    out.write_all(buf)?;
                    v.write(out, buf)?;
                }
                out.write_all(b"}")
            }
        }
    }

    /// Nesting depth, without recursion.
    fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 0)];
        while let Some((v, d)) = stack.pop() {
            match v {
                Lazy::Raw(t) => max = max.max(d + text_depth(t)),
                Lazy::Record(doc, r) => max = max.max(d + text_depth(doc.record_text(r))),
                Lazy::Owned(v) => max = max.max(d + value_depth(v)),
                Lazy::Array(items) => {
                    max = max.max(d + 1);
                    stack.extend(items.iter().map(|c| (c, d + 1)));
                }
                Lazy::Object(members) => {
                    max = max.max(d + 1);
                    stack.extend(members.iter().map(|(_, c)| (c, d + 1)));
                }
            }
        }
        max
    }

    fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out, &mut Vec::new())
            .expect("writing to a Vec cannot fail");
        out
    }
}

/// Applies `op` to `root`, the value at the first `skip` tokens of its path (and of its `from`:
/// the document itself with 0, one record with 1). Nesting is counted from the document.
fn apply_lazy<'a>(root: &mut Lazy<'a>, op: &PatchOp, skip: usize) -> Result<(), String> {
    let full = parse_pointer(op.path())?;
    let depth = full.len();
    let path = &full[skip.min(depth)..];
    match op {
        PatchOp::Add { value, .. } => {
            check_nesting(depth, value_depth(value))?;
            root.add(path, Lazy::Owned(value.clone()))
        }
        PatchOp::Remove { .. } => root.remove(path).map(drop),
        PatchOp::Replace { value, .. } => {
            check_nesting(depth, value_depth(value))?;
            *root.resolve(path)? = Lazy::Owned(value.clone());
            Ok(())
        }
        PatchOp::Move { from, .. } => {
            let from = parse_pointer(from)?;
            let from = &from[skip.min(from.len())..];
            if from == path {
                return root.resolve(from).map(drop);
            }
            if path.len() > from.len() && path.starts_with(from) {
                return Err("cannot move a value into one of its own children".into());
            }
            check_nesting(depth, root.resolve(from)?.depth())?;
            let v = root.remove(from)?;
            root.add(path, v)
        }
        PatchOp::Copy { from, .. } => {
            let from = parse_pointer(from)?;
            let source = root.resolve(&from[skip.min(from.len())..])?;
            check_nesting(depth, source.depth())?;
            let v = source.clone();
            root.add(path, v)
        }
        PatchOp::Test { value, .. } => {
            if root.resolve(path)?.canonical() == to_canonical_vec(value) {
                Ok(())
            } else {
                Err("test failed: value differs".into())
            }
        }
    }
}

fn array_index(token: &str, len: usize) -> Result<usize, String> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let i: usize = if valid { token.parse().ok() } else { None }
        .ok_or_else(|| format!("{token:?} is not an array index"))?;
    if i > len {
        return Err(format!("index {i} is out of bounds (length {len})"));
    }
    Ok(i)
}

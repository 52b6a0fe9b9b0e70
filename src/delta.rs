//! Deltas: an RFC 6902 JSON Patch from one canonical document to the next, and its application.
//!
//! Diff: records of a top-level array are matched by their key and aligned with `similar`, so
//! one inserted record is one `add` (not a cascade of index-by-index replaces); equal records
//! are skipped by comparing their canonical bytes, and only changed pairs are parsed and
//! diffed recursively, replacing values at the deepest changed path.
//!
//! Apply is written independently of diff, because the run uses it to *check* its own delta
//! before publishing: the patch is applied to the previous document and the canonical result
//! must hash to the new version. It works record by record, parsing at most one record at a
//! time, so checking a delta of a 30 MB dataset never holds the whole tree in memory.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use similar::{Algorithm, DiffOp};

use crate::canonical::{
    display_key, escape_token, parse_pointer, to_canonical_vec, write_value, Document, Record,
};

pub const FORMAT: &str = "snapsync-delta/1";

/// One RFC 6902 operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
    Move { from: String, path: String },
    Copy { from: String, path: String },
    Test { path: String, value: Value },
}

impl PatchOp {
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. }
            | PatchOp::Remove { path }
            | PatchOp::Replace { path, .. }
            | PatchOp::Move { path, .. }
            | PatchOp::Copy { path, .. }
            | PatchOp::Test { path, .. } => path,
        }
    }
    fn from(&self) -> Option<&str> {
        match self {
            PatchOp::Move { from, .. } | PatchOp::Copy { from, .. } => Some(from),
            _ => None,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            PatchOp::Add { .. } => "add",
            PatchOp::Remove { .. } => "remove",
            PatchOp::Replace { .. } => "replace",
            PatchOp::Move { .. } => "move",
            PatchOp::Copy { .. } => "copy",
            PatchOp::Test { .. } => "test",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub op: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// What changed between two documents: the patch plus a per-record account of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub patch: Vec<PatchOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub version: u64,
    pub sha256: String,
}

/// The delta file, as DESIGN.md specifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub format: String,
    pub dataset: String,
    pub from: VersionRef,
    pub to: VersionRef,
    pub created_at: String,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub patch: Vec<PatchOp>,
}

/// Alignment of long arrays gives up on optimality after this long (the result stays correct,
/// only less minimal).
const ALIGN_DEADLINE: Duration = Duration::from_secs(2);

/// Computes the patch from `old` to `new`.
pub fn diff(old: &Document, new: &Document) -> Diff {
    let mut d = Diff::default();
    match (old.records(), new.records()) {
        (Some(old_recs), Some(new_recs)) => {
            let ident = |doc: &Document, r: &Record| -> Vec<u8> {
                match &r.key {
                    Some(k) => k.to_vec(),
                    None => doc.record_bytes(r).to_vec(),
                }
            };
            let old_ids: Vec<Vec<u8>> = old_recs.iter().map(|r| ident(old, r)).collect();
            let new_ids: Vec<Vec<u8>> = new_recs.iter().map(|r| ident(new, r)).collect();
            let ops = similar::capture_diff_slices_deadline(
                Algorithm::Myers,
                &old_ids,
                &new_ids,
                Some(Instant::now() + ALIGN_DEADLINE),
            );
            // Positions are tracked here rather than taken from the ops: `similar` can report
            // a `new_index` on a Delete that lies after the following Equal.
            let (mut i, mut j) = (0usize, 0usize);
            for op in ops {
                match op {
                    DiffOp::Equal { len, .. } => {
                        for k in 0..len {
                            let (o, n) = (&old_recs[i + k], &new_recs[j + k]);
                            let (ob, nb) = (old.record_bytes(o), new.record_bytes(n));
                            if ob == nb {
                                continue;
                            }
                            let ov: Value = serde_json::from_slice(ob).expect("canonical");
                            let nv: Value = serde_json::from_slice(nb).expect("canonical");
                            let mut path = String::new();
                            push_index(&mut path, j + k);
                            diff_values(&mut path, &ov, &nv, &mut d.patch);
                            d.summary.changed += 1;
                            d.changes.push(Change {
                                key: change_key(n),
                                op: ChangeKind::Changed,
                            });
                        }
                        (i, j) = (i + len, j + len);
                    }
                    DiffOp::Delete { old_len, .. } => {
                        remove_records(&mut d, &old_recs[i..i + old_len], j);
                        i += old_len;
                    }
                    DiffOp::Insert { new_len, .. } => {
                        add_records(&mut d, new, &new_recs[j..j + new_len], j);
                        j += new_len;
                    }
                    DiffOp::Replace {
                        old_len, new_len, ..
                    } => {
                        // Different keys: the old records go, the new ones come.
                        remove_records(&mut d, &old_recs[i..i + old_len], j);
                        add_records(&mut d, new, &new_recs[j..j + new_len], j);
                        (i, j) = (i + old_len, j + new_len);
                    }
                }
            }
        }
        _ => {
            if old.bytes() != new.bytes() {
                let (ov, nv) = (old.to_value(), new.to_value());
                diff_values(&mut String::new(), &ov, &nv, &mut d.patch);
                d.summary.changed = 1;
            }
        }
    }
    d
}

/// How a record is named in `changes`: its key, or "" for datasets without one.
fn change_key(r: &Record) -> String {
    r.key.as_deref().map(display_key).unwrap_or_default()
}

fn remove_records(d: &mut Diff, recs: &[Record], at: usize) {
    for r in recs {
        let mut path = String::new();
        push_index(&mut path, at);
        d.patch.push(PatchOp::Remove { path });
        d.summary.removed += 1;
        d.changes.push(Change {
            key: change_key(r),
            op: ChangeKind::Removed,
        });
    }
}

fn add_records(d: &mut Diff, doc: &Document, recs: &[Record], at: usize) {
    for (k, r) in recs.iter().enumerate() {
        let mut path = String::new();
        push_index(&mut path, at + k);
        let value = serde_json::from_slice(doc.record_bytes(r)).expect("canonical");
        d.patch.push(PatchOp::Add { path, value });
        d.summary.added += 1;
        d.changes.push(Change {
            key: change_key(r),
            op: ChangeKind::Added,
        });
    }
}

fn push_index(path: &mut String, i: usize) {
    path.push('/');
    path.push_str(itoa::Buffer::new().format(i));
}

fn push_name(path: &mut String, name: &str) {
    path.push('/');
    escape_token(name, path);
}

/// Recursive value diff at `path`: objects member by member, arrays aligned with `similar`,
/// anything else replaced whole.
pub fn diff_values(path: &mut String, old: &Value, new: &Value, ops: &mut Vec<PatchOp>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => diff_objects(path, o, n, ops),
        (Value::Array(o), Value::Array(n)) => diff_arrays(path, o, n, ops),
        _ => ops.push(PatchOp::Replace {
            path: path.clone(),
            value: new.clone(),
        }),
    }
}

fn diff_objects(
    path: &mut String,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    ops: &mut Vec<PatchOp>,
) {
    let len = path.len();
    for (k, ov) in old {
        push_name(path, k);
        match new.get(k) {
            None => ops.push(PatchOp::Remove { path: path.clone() }),
            Some(nv) => diff_values(path, ov, nv, ops),
        }
        path.truncate(len);
    }
    for (k, nv) in new {
        if !old.contains_key(k) {
            push_name(path, k);
            ops.push(PatchOp::Add {
                path: path.clone(),
                value: nv.clone(),
            });
            path.truncate(len);
        }
    }
}

fn diff_arrays(path: &mut String, old: &[Value], new: &[Value], ops: &mut Vec<PatchOp>) {
    let digest = |v: &Value| -> [u8; 32] { Sha256::digest(to_canonical_vec(v)).into() };
    let old_ids: Vec<[u8; 32]> = old.iter().map(digest).collect();
    let new_ids: Vec<[u8; 32]> = new.iter().map(digest).collect();
    let len = path.len();
    let deadline = Some(Instant::now() + ALIGN_DEADLINE);
    let (mut i, mut j) = (0usize, 0usize);
    for op in similar::capture_diff_slices_deadline(Algorithm::Myers, &old_ids, &new_ids, deadline)
    {
        match op {
            DiffOp::Equal { len: n, .. } => (i, j) = (i + n, j + n),
            DiffOp::Delete { old_len, .. } => {
                for _ in 0..old_len {
                    push_index(path, j);
                    ops.push(PatchOp::Remove { path: path.clone() });
                    path.truncate(len);
                }
                i += old_len;
            }
            DiffOp::Insert { new_len, .. } => {
                for k in 0..new_len {
                    push_index(path, j + k);
                    ops.push(PatchOp::Add {
                        path: path.clone(),
                        value: new[j + k].clone(),
                    });
                    path.truncate(len);
                }
                j += new_len;
            }
            DiffOp::Replace {
                old_len, new_len, ..
            } => {
                // Pair up what can be paired and diff it in place; then remove or add the rest.
                let paired = old_len.min(new_len);
                for k in 0..paired {
                    push_index(path, j + k);
                    diff_values(path, &old[i + k], &new[j + k], ops);
                    path.truncate(len);
                }
                for _ in paired..old_len {
                    push_index(path, j + paired);
                    ops.push(PatchOp::Remove { path: path.clone() });
                    path.truncate(len);
                }
                for k in paired..new_len {
                    push_index(path, j + k);
                    ops.push(PatchOp::Add {
                        path: path.clone(),
                        value: new[j + k].clone(),
                    });
                    path.truncate(len);
                }
                (i, j) = (i + old_len, j + new_len);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Apply

/// Why a patch does not apply: which operation, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("patch operation {index} ({op} {path}): {reason}")]
pub struct ApplyError {
    pub index: usize,
    pub op: &'static str,
    pub path: String,
    pub reason: String,
}

/// Applies `patch` to a whole `Value` (RFC 6902, all six operations).
pub fn apply_value(doc: &mut Value, patch: &[PatchOp]) -> Result<(), ApplyError> {
    for (index, op) in patch.iter().enumerate() {
        apply_one(doc, op, None).map_err(|reason| ApplyError {
            index,
            op: op.name(),
            path: op.path().to_string(),
            reason,
        })?;
    }
    Ok(())
}

/// Applies `patch` to a canonical document and returns the canonical bytes of the result.
///
/// Operations inside one top-level record parse that record alone; the rest of the document is
/// carried over as bytes. Operations that span records or the root fall back to the whole tree.
pub fn apply_document(doc: &Document, patch: &[PatchOp]) -> Result<Vec<u8>, ApplyError> {
    let Some(records) = doc.records() else {
        let mut v = doc.to_value();
        apply_value(&mut v, patch)?;
        return Ok(to_canonical_vec(&v));
    };
    let mut slots: Vec<Slot<'_>> = records
        .iter()
        .map(|r| Slot::Bytes(std::borrow::Cow::Borrowed(doc.record_bytes(r))))
        .collect();
    for (index, op) in patch.iter().enumerate() {
        let err = |reason: String| ApplyError {
            index,
            op: op.name(),
            path: op.path().to_string(),
            reason,
        };
        let path = parse_pointer(op.path()).map_err(err)?;
        let from = op.from().map(parse_pointer).transpose().map_err(err)?;
        let record_of = |tokens: &[String]| -> Option<usize> {
            (tokens.len() >= 2)
                .then(|| array_index(&tokens[0], usize::MAX).ok())
                .flatten()
        };
        let single = record_of(&path).filter(|&i| {
            i < slots.len() && from.as_deref().is_none_or(|f| record_of(f) == Some(i))
        });
        if path.len() == 1 && from.is_none() {
            top_level_op(&mut slots, op, &path[0]).map_err(err)?;
            continue;
        }
        match single {
            Some(i) => {
                // Inside record i: parse it (once), apply with the record-relative pointers.
                for (j, s) in slots.iter_mut().enumerate() {
                    if j != i {
                        s.close();
                    }
                }
                let value = slots[i].open();
                apply_one(value, op, Some(1)).map_err(err)?;
            }
            None => {
                // Top-level or cross-record: do it on the whole array.
                let mut whole = Value::Array(slots.iter_mut().map(Slot::take_value).collect());
                apply_one(&mut whole, op, None).map_err(err)?;
                slots = match whole {
                    Value::Array(items) => items.into_iter().map(Slot::Value).collect(),
                    other => return finish_non_array(other, &patch[index + 1..], index + 1),
                };
            }
        }
    }
    let mut out = Vec::with_capacity(doc.bytes().len() + 1024);
    out.push(b'[');
    for (i, s) in slots.iter_mut().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match s {
            Slot::Bytes(b) => out.extend_from_slice(b),
            Slot::Value(v) => write_value(v, &mut out),
        }
    }
    out.push(b']');
    Ok(out)
}

/// add/remove/replace/test of a whole record, without parsing the others.
fn top_level_op(slots: &mut Vec<Slot<'_>>, op: &PatchOp, token: &str) -> Result<(), String> {
    let len = slots.len();
    let existing = |i: usize| {
        if i < len {
            Ok(i)
        } else {
            Err(format!("index {i} is out of bounds (length {len})"))
        }
    };
    let bytes = |v: &Value| Slot::Bytes(std::borrow::Cow::Owned(to_canonical_vec(v)));
    match op {
        PatchOp::Add { value, .. } => {
            let i = if token == "-" {
                len
            } else {
                array_index(token, len)?
            };
            slots.insert(i, bytes(value));
        }
        PatchOp::Remove { .. } => {
            slots.remove(existing(array_index(token, len)?)?);
        }
        PatchOp::Replace { value, .. } => slots[existing(array_index(token, len)?)?] = bytes(value),
        PatchOp::Test { value, .. } => {
            let slot = &mut slots[existing(array_index(token, len)?)?];
            slot.close();
            match slot {
                Slot::Bytes(b) if **b == *to_canonical_vec(value) => {}
                _ => return Err("test failed: value differs".into()),
            }
        }
        PatchOp::Move { .. } | PatchOp::Copy { .. } => {
            unreachable!("callers pass ops without from")
        }
    }
    Ok(())
}

fn finish_non_array(mut v: Value, rest: &[PatchOp], offset: usize) -> Result<Vec<u8>, ApplyError> {
    apply_value(&mut v, rest).map_err(|mut e| {
        e.index += offset;
        e
    })?;
    Ok(to_canonical_vec(&v))
}

/// A record while a patch is applied: its canonical bytes, or parsed while operations touch it.
enum Slot<'a> {
    Bytes(std::borrow::Cow<'a, [u8]>),
    Value(Value),
}

impl Slot<'_> {
    fn open(&mut self) -> &mut Value {
        if let Slot::Bytes(b) = self {
            *self = Slot::Value(serde_json::from_slice(b).expect("record bytes are valid JSON"));
        }
        match self {
            Slot::Value(v) => v,
            Slot::Bytes(_) => unreachable!(),
        }
    }
    /// Back to bytes, so at most one record is a tree at any time.
    fn close(&mut self) {
        if let Slot::Value(v) = self {
            *self = Slot::Bytes(std::borrow::Cow::Owned(to_canonical_vec(v)));
        }
    }
    fn take_value(&mut self) -> Value {
        match std::mem::replace(self, Slot::Value(Value::Null)) {
            Slot::Value(v) => v,
            Slot::Bytes(b) => serde_json::from_slice(&b).expect("record bytes are valid JSON"),
        }
    }
}

/// Applies one operation; `skip` drops that many leading tokens (the record index).
fn apply_one(doc: &mut Value, op: &PatchOp, skip: Option<usize>) -> Result<(), String> {
    let skip = skip.unwrap_or(0);
    let path = parse_pointer(op.path())?;
    let path = &path[skip..];
    match op {
        PatchOp::Add { value, .. } => add(doc, path, value.clone()),
        PatchOp::Remove { .. } => remove(doc, path).map(drop),
        PatchOp::Replace { value, .. } => {
            let target = resolve_mut(doc, path)?;
            *target = value.clone();
            Ok(())
        }
        PatchOp::Move { from, .. } => {
            let from = parse_pointer(from)?;
            let from = &from[skip..];
            if from == path {
                return Ok(());
            }
            if path.len() > from.len() && path.starts_with(from) {
                return Err("cannot move a value into one of its own children".into());
            }
            let v = remove(doc, from)?;
            add(doc, path, v)
        }
        PatchOp::Copy { from, .. } => {
            let from = parse_pointer(from)?;
            let v = resolve_mut(doc, &from[skip..])?.clone();
            add(doc, path, v)
        }
        PatchOp::Test { value, .. } => {
            let target = resolve_mut(doc, path)?;
            if to_canonical_vec(target) == to_canonical_vec(value) {
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

fn resolve_mut<'v>(doc: &'v mut Value, path: &[String]) -> Result<&'v mut Value, String> {
    let mut cur = doc;
    for t in path {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| format!("member {t:?} does not exist"))?,
            Value::Array(a) => {
                let len = a.len();
                let i = array_index(t, len)?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} is out of bounds (length {len})"))?
            }
            _ => return Err(format!("cannot descend into a scalar at {t:?}")),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match resolve_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
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

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = path.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match resolve_mut(doc, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("member {last:?} does not exist")),
        Value::Array(a) => {
            let i = array_index(last, a.len())?;
            if i >= a.len() {
                return Err(format!("index {i} is out of bounds (length {})", a.len()));
            }
            Ok(a.remove(i))
        }
        _ => Err("parent is not an object or array".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::KeyPointer;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        Document::from_value(&v, &KeyPointer::parse("/k").unwrap())
    }

    fn roundtrip(a: Value, b: Value) -> Diff {
        let (da, db) = (doc(a), doc(b));
        let d = diff(&da, &db);
        let out = apply_document(&da, &d.patch).unwrap();
        assert_eq!(out, db.bytes(), "patch {:?}", d.patch);
        let mut v = da.to_value();
        apply_value(&mut v, &d.patch).unwrap();
        assert_eq!(to_canonical_vec(&v), db.bytes());
        d
    }

    #[test]
    fn inserted_record_in_the_middle_is_one_add() {
        let d = roundtrip(
            json!([{"k":"a"},{"k":"b"},{"k":"d"}]),
            json!([{"k":"a"},{"k":"b"},{"k":"c","x":1},{"k":"d"}]),
        );
        assert_eq!(
            d.patch,
            vec![PatchOp::Add {
                path: "/2".into(),
                value: json!({"k":"c","x":1})
            }]
        );
        assert_eq!(
            d.summary,
            Summary {
                added: 1,
                removed: 0,
                changed: 0
            }
        );
        assert_eq!(
            d.changes,
            vec![Change {
                key: "c".into(),
                op: ChangeKind::Added
            }]
        );
    }

    #[test]
    fn removed_record_is_one_remove() {
        let d = roundtrip(
            json!([{"k":"a"},{"k":"b"},{"k":"c"}]),
            json!([{"k":"a"},{"k":"c"}]),
        );
        assert_eq!(d.patch, vec![PatchOp::Remove { path: "/1".into() }]);
        assert_eq!(
            d.changes,
            vec![Change {
                key: "b".into(),
                op: ChangeKind::Removed
            }]
        );
    }

    #[test]
    fn deep_change_is_replaced_at_the_deepest_path() {
        let d = roundtrip(
            json!([{"k":"a","dates":{"2020-01-01":{"new":{"cases":1}}}},{"k":"b"}]),
            json!([{"k":"a","dates":{"2020-01-01":{"new":{"cases":2}}}},{"k":"b"}]),
        );
        assert_eq!(
            d.patch,
            vec![PatchOp::Replace {
                path: "/0/dates/2020-01-01/new/cases".into(),
                value: json!(2)
            }]
        );
        assert_eq!(d.summary.changed, 1);
    }

    #[test]
    fn names_with_slash_and_tilde_are_escaped() {
        let d = roundtrip(
            json!({"a/b": 1, "c~d": 1}),
            json!({"a/b": 2, "c~d": 1, "e": 3}),
        );
        assert!(d.patch.contains(&PatchOp::Replace {
            path: "/a~1b".into(),
            value: json!(2)
        }));
    }

    #[test]
    fn mixed_edits_roundtrip() {
        roundtrip(
            json!([{"k":1,"v":[1,2,3]},{"k":2},{"k":3,"o":{"x":1}},{"k":4}]),
            json!([{"k":0},{"k":1,"v":[1,9,3,4]},{"k":3,"o":{"y":1}},{"k":5},{"k":4,"z":null}]),
        );
        roundtrip(json!({"a": [1, 2]}), json!([1]));
        roundtrip(json!([]), json!([{"k": "x"}]));
        roundtrip(json!([{"k":1}]), json!([]));
        roundtrip(json!("x"), json!(null));
    }

    #[test]
    fn apply_rejects_bad_operations_with_their_index() {
        let d = doc(json!([{"k":1}]));
        let err = apply_document(
            &d,
            &[PatchOp::Remove {
                path: "/0/nope".into(),
            }],
        )
        .unwrap_err();
        assert_eq!(err.index, 0);
        assert!(err.reason.contains("does not exist"), "{err}");
        assert!(apply_document(&d, &[PatchOp::Remove { path: "/5".into() }]).is_err());
        assert!(apply_document(
            &d,
            &[PatchOp::Add {
                path: "/01".into(),
                value: json!(1)
            }]
        )
        .is_err());
        assert!(apply_document(
            &d,
            &[PatchOp::Add {
                path: "x".into(),
                value: json!(1)
            }]
        )
        .is_err());
    }

    #[test]
    fn apply_supports_every_operation() {
        let mut v = json!({"a": {"b": [1, 2]}, "c": 1});
        let patch: Vec<PatchOp> = serde_json::from_value(json!([
            {"op": "copy", "from": "/a/b", "path": "/d"},
            {"op": "move", "from": "/c", "path": "/a/c"},
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "test", "path": "/d", "value": [1, 2.0]},
            {"op": "replace", "path": "/d/0", "value": "x"}
        ]))
        .unwrap();
        apply_value(&mut v, &patch).unwrap();
        assert_eq!(v, json!({"a": {"b": [1, 2, 3], "c": 1}, "d": ["x", 2]}));
        let d = doc(json!([{"k":1,"a":1},{"k":2}]));
        let cross: Vec<PatchOp> = serde_json::from_value(json!([
            {"op": "move", "from": "/0/a", "path": "/1/a"},
            {"op": "copy", "from": "/1", "path": "/-"}
        ]))
        .unwrap();
        let out = apply_document(&d, &cross).unwrap();
        assert_eq!(out, br#"[{"k":1},{"a":1,"k":2},{"a":1,"k":2}]"#);
    }
}

//! Deltas: an RFC 6902 JSON Patch from one canonical document to the next, and its application.
//!
//! Diff: records of a top-level array are matched by their key wherever they sit, because the
//! real upstream re-sorts its records every day and a position means nothing. A record that
//! changed position is one RFC 6902 `move` (the fewest moves the two key orders allow: only
//! records outside a longest common subsequence move), never a `remove` plus an `add` of its
//! whole body; `added`/`removed` are exactly the keys that appeared and disappeared. Equal
//! records are skipped by comparing their canonical bytes, and only changed pairs are parsed
//! and diffed recursively, replacing values at the deepest changed path. Records without
//! unique keys are aligned by content with `similar` instead (one inserted record is one
//! `add`).
//!
//! Apply is written independently of diff, because the run uses it to *check* its own delta
//! before publishing: the patch is applied to the previous document and the canonical result
//! must hash to the new version. It works record by record, parsing at most one record at a
//! time, so checking a delta of a 30 MB dataset never holds the whole tree in memory.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use similar::{Algorithm, DiffOp};

use std::borrow::Cow;
use std::cmp::Ordering;
use std::io::Write;

use crate::canonical::{
    cmp_utf16, display_key, escape_token, parse_pointer, split_array, split_object,
    split_object_like, to_canonical_vec, write_value, Document, Record,
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
    /// Records that kept their key but changed position (one `move` each). Absent from deltas
    /// written before moves existed, which never moved a record.
    #[serde(default)]
    pub moved: u64,
    pub changed: u64,
}

/// What happened to one record (one entry per key). `op` says what happened to its content;
/// `moved` whether its position changed too: `{"op":"moved","moved":true}` is a record that
/// only moved, `{"op":"changed","moved":true}` one that moved and changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub op: ChangeKind,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    /// Moved, content unchanged.
    Moved,
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

/// The delta file, as DESIGN.md specifies it. Borrows its change list and patch when
/// writing (a delta can hold hundreds of thousands of operations), owns them when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta<'a> {
    pub format: String,
    pub dataset: String,
    pub from: VersionRef,
    pub to: VersionRef,
    pub created_at: String,
    pub summary: Summary,
    pub changes: Cow<'a, [Change]>,
    pub patch: Cow<'a, [PatchOp]>,
}

/// Alignment of long arrays gives up on optimality after this long (the result stays correct,
/// only less minimal).
const ALIGN_DEADLINE: Duration = Duration::from_secs(2);

/// Computes the patch from `old` to `new`.
pub fn diff(old: &Document, new: &Document) -> Diff {
    let mut d = Diff::default();
    match (old.records(), new.records()) {
        (Some(old_recs), Some(new_recs)) => match KeyMatch::new(old_recs, new_recs) {
            Some(m) => diff_keyed(&mut d, old, new, &m),
            None => diff_aligned(&mut d, old, new),
        },
        _ => {
            if old.bytes() != new.bytes() {
                diff_raw(&mut String::new(), old.text(), new.text(), &mut d.patch);
                d.summary.changed = 1;
            }
        }
    }
    d
}

/// Records of two keyed documents matched by key: where each new record was in the old one.
/// Only when every record of both has a key and no key repeats (what validation guarantees
/// for a configured dataset); anything else is aligned by content instead.
struct KeyMatch {
    /// For each new record, the index of the old record with its key.
    old_of_new: Vec<Option<usize>>,
    /// For each old record, whether the new document still has its key.
    kept: Vec<bool>,
}

impl KeyMatch {
    fn new(old: &[Record], new: &[Record]) -> Option<KeyMatch> {
        let mut index = std::collections::HashMap::with_capacity(old.len());
        for (i, r) in old.iter().enumerate() {
            if index.insert(r.key.as_deref()?, i).is_some() {
                return None;
            }
        }
        let mut kept = vec![false; old.len()];
        let mut old_of_new = Vec::with_capacity(new.len());
        let mut seen = std::collections::HashSet::with_capacity(new.len());
        for r in new {
            let key = r.key.as_deref()?;
            if !seen.insert(key) {
                return None;
            }
            let i = index.get(key).copied();
            if let Some(i) = i {
                kept[i] = true;
            }
            old_of_new.push(i);
        }
        Some(KeyMatch { old_of_new, kept })
    }
}

/// The record-level patch of two keyed documents, in three passes that standard appliers
/// (Python `jsonpatch`, JS `fast-json-patch`) apply in order:
///
/// 1. `remove` each record whose key is gone, from the last to the first (so every index is
///    the old document's);
/// 2. in the new document's order, `move` each record that is outside a longest common
///    subsequence of the two key orders to its place, and `add` each new record: records in
///    the subsequence never move, so a record that moved is one `move`, never its body
///    again, and no order needs fewer moves;
/// 3. member-level ops of each record whose content changed, at its index in the new
///    document (where it now is).
///
/// Indices in pass 2 are those of the array as it is at that op (RFC 6902 `move` removes
/// first, then inserts). They are counted with a Fenwick tree over the final layout, so a
/// full re-sort of a million records costs O(n log n), not O(n²).
fn diff_keyed(d: &mut Diff, old: &Document, new: &Document, m: &KeyMatch) {
    let (old_recs, new_recs) = (
        old.records().unwrap_or_default(),
        new.records().unwrap_or_default(),
    );
    // 1. Removes, last first.
    for i in (0..old_recs.len()).rev() {
        if !m.kept[i] {
            let mut path = String::new();
            push_index(&mut path, i);
            d.patch.push(PatchOp::Remove { path });
        }
    }
    for (r, _) in old_recs.iter().zip(&m.kept).filter(|(_, k)| !**k) {
        d.summary.removed += 1;
        d.changes.push(Change {
            key: change_key(r),
            op: ChangeKind::Removed,
            moved: false,
        });
    }
    // Rank of each kept old record among the kept ones: its index once the removes are done.
    let mut rank = vec![usize::MAX; old_recs.len()];
    let mut kept_count = 0;
    for (i, k) in m.kept.iter().enumerate() {
        if *k {
            rank[i] = kept_count;
            kept_count += 1;
        }
    }
    let ranks: Vec<Option<usize>> = m.old_of_new.iter().map(|o| o.map(|i| rank[i])).collect();
    let stays = longest_increasing(&ranks);

    // The final layout as slots: before the first record that stays, the records placed
    // before it (moved or added, in new order); then each record that stays, followed by
    // those placed after it. `anchor` is the rank of the record a placed one follows.
    let mut group_len = vec![0usize; kept_count + 1]; // placed records per anchor (+1: none)
    let mut anchor = 0usize; // group index: 0 = before any staying record, a + 1 = after rank a
    let mut placed_group = vec![0usize; new_recs.len()];
    for (j, r) in ranks.iter().enumerate() {
        if stays[j] {
            anchor = r.expect("a staying record was in the old document") + 1;
        } else {
            placed_group[j] = anchor;
            group_len[anchor] += 1;
        }
    }
    // First slot of each group: group 0 is placed records only; group a + 1 starts with the
    // slot of the staying or not-yet-moved record of rank a.
    let mut group_start = vec![0usize; kept_count + 1];
    let mut next = group_len[0];
    for a in 0..kept_count {
        group_start[a + 1] = next;
        next += 1 + group_len[a + 1];
    }
    let own_slot = |rank: usize| group_start[rank + 1];
    let mut present = Fenwick::new(next);
    for a in 0..kept_count {
        present.add(own_slot(a), 1);
    }
    let mut filled = vec![0usize; kept_count + 1];
    // 2. Moves and adds, in new order.
    for (j, r) in ranks.iter().enumerate() {
        if stays[j] {
            continue;
        }
        let g = placed_group[j];
        filled[g] += 1;
        let slot = if g == 0 {
            filled[g] - 1
        } else {
            group_start[g] + filled[g]
        };
        match r {
            Some(rank) => {
                let from = own_slot(*rank);
                let from_index = present.prefix(from);
                present.add(from, -1);
                let to_index = present.prefix(slot);
                present.add(slot, 1);
                let (mut from, mut path) = (String::new(), String::new());
                push_index(&mut from, from_index);
                push_index(&mut path, to_index);
                d.patch.push(PatchOp::Move { from, path });
                d.summary.moved += 1;
            }
            None => {
                let at = present.prefix(slot);
                present.add(slot, 1);
                let mut path = String::new();
                push_index(&mut path, at);
                let value = parse_bytes(new.record_bytes(&new_recs[j]));
                d.patch.push(PatchOp::Add { path, value });
                d.summary.added += 1;
            }
        }
    }
    // 3. Content, at the records' new indices; one change per key, in new order.
    for (j, n) in new_recs.iter().enumerate() {
        let moved = !stays[j] && m.old_of_new[j].is_some();
        let op = match m.old_of_new[j] {
            None => ChangeKind::Added,
            Some(i) => {
                let o = &old_recs[i];
                if old.record_bytes(o) == new.record_bytes(n) {
                    if !moved {
                        continue;
                    }
                    ChangeKind::Moved
                } else {
                    diff_record(j, (old, o), (new, n), &mut d.patch);
                    d.summary.changed += 1;
                    ChangeKind::Changed
                }
            }
        };
        d.changes.push(Change {
            key: change_key(n),
            op,
            moved,
        });
    }
}

/// Marks the elements of a longest strictly increasing subsequence of the `Some` values
/// (patience sorting with back links, O(n log n)); `None`s are never marked.
fn longest_increasing(seq: &[Option<usize>]) -> Vec<bool> {
    // tails[l]: index into seq of the smallest tail of an increasing run of length l + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev = vec![usize::MAX; seq.len()];
    for (j, v) in seq.iter().enumerate() {
        let Some(v) = *v else { continue };
        let l = tails.partition_point(|&t| seq[t].expect("only Somes in tails") < v);
        if l > 0 {
            prev[j] = tails[l - 1];
        }
        if l == tails.len() {
            tails.push(j);
        } else {
            tails[l] = j;
        }
    }
    let mut marked = vec![false; seq.len()];
    let mut at = tails.last().copied().unwrap_or(usize::MAX);
    while at != usize::MAX {
        marked[at] = true;
        at = prev[at];
    }
    marked
}

/// Counts of present slots, with prefix sums in O(log n).
struct Fenwick(Vec<i64>);

impl Fenwick {
    fn new(n: usize) -> Self {
        Fenwick(vec![0; n + 1])
    }
    fn add(&mut self, slot: usize, delta: i64) {
        let mut i = slot + 1;
        while i < self.0.len() {
            self.0[i] += delta;
            i += i & i.wrapping_neg();
        }
    }
    /// Present slots before `slot`.
    fn prefix(&self, slot: usize) -> usize {
        let (mut i, mut sum) = (slot, 0);
        while i > 0 {
            sum += self.0[i];
            i -= i & i.wrapping_neg();
        }
        sum as usize
    }
}

/// Records without unique keys: aligned by identity with `similar` (one inserted record is
/// one `add`); equal records are skipped by comparing their canonical bytes.
fn diff_aligned(d: &mut Diff, old: &Document, new: &Document) {
    let (old_recs, new_recs) = (
        old.records().unwrap_or_default(),
        new.records().unwrap_or_default(),
    );
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
    // Positions are tracked here rather than taken from the ops: `similar` can report a
    // `new_index` on a Delete that lies after the following Equal.
    let (mut i, mut j) = (0usize, 0usize);
    for op in ops {
        match op {
            DiffOp::Equal { len, .. } => {
                for k in 0..len {
                    let (o, n) = (&old_recs[i + k], &new_recs[j + k]);
                    if old.record_bytes(o) == new.record_bytes(n) {
                        continue;
                    }
                    diff_record(j + k, (old, o), (new, n), &mut d.patch);
                    d.summary.changed += 1;
                    d.changes.push(Change {
                        key: change_key(n),
                        op: ChangeKind::Changed,
                        moved: false,
                    });
                }
                (i, j) = (i + len, j + len);
            }
            DiffOp::Delete { old_len, .. } => {
                remove_records(d, &old_recs[i..i + old_len], j);
                i += old_len;
            }
            DiffOp::Insert { new_len, .. } => {
                add_records(d, new, &new_recs[j..j + new_len], j);
                j += new_len;
            }
            DiffOp::Replace {
                old_len, new_len, ..
            } => {
                // Different identities: the old records go, the new ones come.
                remove_records(d, &old_recs[i..i + old_len], j);
                add_records(d, new, &new_recs[j..j + new_len], j);
                (i, j) = (i + old_len, j + new_len);
            }
        }
    }
}

/// The member-level ops turning record `o` of `old` into record `n` of `new`, which sits at
/// `index` when they apply. Object records start from the member spans found while they were
/// written: no scan of either record.
fn diff_record(
    index: usize,
    (old, o): (&Document, &Record),
    (new, n): (&Document, &Record),
    ops: &mut Vec<PatchOp>,
) {
    let mut path = String::new();
    push_index(&mut path, index);
    match (old.record_members(o), new.record_members(n)) {
        (Some(om), Some(nm)) => diff_members(&mut path, &om, &nm, ops),
        _ => diff_raw(
            &mut path,
            &old.text()[o.start..o.end],
            &new.text()[n.start..n.end],
            ops,
        ),
    }
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
            moved: false,
        });
    }
}

fn add_records(d: &mut Diff, doc: &Document, recs: &[Record], at: usize) {
    for (k, r) in recs.iter().enumerate() {
        let mut path = String::new();
        push_index(&mut path, at + k);
        let value = parse_bytes(doc.record_bytes(r));
        d.patch.push(PatchOp::Add { path, value });
        d.summary.added += 1;
        d.changes.push(Change {
            key: change_key(r),
            op: ChangeKind::Added,
            moved: false,
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

/// Recursive diff of two canonical JSON texts at `path`: objects member by member, arrays
/// aligned with `similar`, anything else replaced whole. It works on borrowed slices: only the
/// containers on a changed path are split, and only added or replaced values are parsed.
pub fn diff_raw(path: &mut String, old: &str, new: &str, ops: &mut Vec<PatchOp>) {
    if old == new {
        return;
    }
    match (old.as_bytes().first(), new.as_bytes().first()) {
        (Some(b'{'), Some(b'{')) => diff_raw_objects(path, old, new, ops),
        (Some(b'['), Some(b'[')) => diff_raw_arrays(path, old, new, ops),
        _ => replace(path, new, ops),
    }
}

/// Replaces the value at `path` whole (also the way out when a stored text fails to split).
fn replace(path: &str, new: &str, ops: &mut Vec<PatchOp>) {
    ops.push(PatchOp::Replace {
        path: path.to_string(),
        value: parse(new),
    });
}

fn parse(canonical: &str) -> Value {
    parse_bytes(canonical.as_bytes())
}

fn parse_bytes(canonical: &[u8]) -> Value {
    serde_json::from_slice(canonical).expect("canonical text is valid JSON")
}

fn diff_raw_objects(path: &mut String, old: &str, new: &str, ops: &mut Vec<PatchOp>) {
    let Some(o) = split_object(old) else {
        return replace(path, new, ops);
    };
    let Some(n) = split_object_like(new, &o) else {
        return replace(path, new, ops);
    };
    diff_members(path, &o, &n, ops);
}

/// Diffs two objects given as their members (canonical order) at `path`.
fn diff_members(
    path: &mut String,
    o: &[(Cow<'_, str>, &str)],
    n: &[(Cow<'_, str>, &str)],
    ops: &mut Vec<PatchOp>,
) {
    let len = path.len();
    // Canonical members are sorted (UTF-16 order): one merge pass.
    let (mut a, mut b) = (0, 0);
    while a < o.len() || b < n.len() {
        let ord = match (o.get(a), n.get(b)) {
            (Some(x), Some(y)) => cmp_utf16(&x.0, &y.0),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                push_name(path, &o[a].0);
                ops.push(PatchOp::Remove { path: path.clone() });
                a += 1;
            }
            Ordering::Greater => {
                push_name(path, &n[b].0);
                ops.push(PatchOp::Add {
                    path: path.clone(),
                    value: parse(n[b].1),
                });
                b += 1;
            }
            Ordering::Equal => {
                push_name(path, &n[b].0);
                diff_raw(path, o[a].1, n[b].1, ops);
                a += 1;
                b += 1;
            }
        }
        path.truncate(len);
    }
}

fn diff_raw_arrays(path: &mut String, old: &str, new: &str, ops: &mut Vec<PatchOp>) {
    let (Some(old), Some(new)) = (split_array(old), split_array(new)) else {
        return replace(path, new, ops);
    };
    let len = path.len();
    let deadline = Some(Instant::now() + ALIGN_DEADLINE);
    let (mut i, mut j) = (0usize, 0usize);
    for op in similar::capture_diff_slices_deadline(Algorithm::Myers, &old, &new, deadline) {
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
                        value: parse(new[j + k]),
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
                    diff_raw(path, old[i + k], new[j + k], ops);
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
                        value: parse(new[j + k]),
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
        apply_one(doc, op).map_err(|reason| ApplyError {
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
/// The document stays text: only the containers on an operation's path are split into their
/// members (borrowed slices), so applying a delta to a 30 MB dataset parses little more than
/// the changed paths and copies the rest through.
pub fn apply_document(doc: &Document, patch: &[PatchOp]) -> Result<Vec<u8>, ApplyError> {
    let mut out = Vec::with_capacity(doc.bytes().len() + 1024);
    apply_document_into(doc, patch, &mut out)?;
    Ok(out)
}

/// [`apply_document`], streaming the result into `out` (a hasher, to check a delta without
/// holding a second copy of the document).
pub fn apply_document_into(
    doc: &Document,
    patch: &[PatchOp],
    out: &mut impl Write,
) -> Result<(), ApplyError> {
    let text = doc.text();
    // A top-level array's records are known already: no need to scan 30 MB to split it.
    let mut root = match doc.records() {
        Some(records) if !patch.is_empty() => Lazy::Array(
            records
                .iter()
                .map(|r| match doc.record_members(r) {
                    Some(m) => {
                        Lazy::Object(m.into_iter().map(|(k, v)| (k, Lazy::Raw(v))).collect())
                    }
                    None => Lazy::Raw(&text[r.start..r.end]),
                })
                .collect(),
        ),
        _ => Lazy::Raw(text),
    };
    for (index, op) in patch.iter().enumerate() {
        apply_lazy(&mut root, op).map_err(|reason| ApplyError {
            index,
            op: op.name(),
            path: op.path().to_string(),
            reason,
        })?;
    }
    let mut buf = Vec::new();
    root.write(out, &mut buf).map_err(|e| ApplyError {
        index: patch.len(),
        op: "write",
        path: String::new(),
        reason: e.to_string(),
    })
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
    struct Compare<'e> {
        expected: &'e [u8],
        pos: usize,
        differs: Option<usize>,
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
    let mut c = Compare {
        expected,
        pos: 0,
        differs: None,
    };
    apply_document_into(doc, patch, &mut c)?;
    Ok(c.differs
        .or((c.pos != expected.len()).then_some(c.pos.min(expected.len()))))
}

/// A JSON value being patched: canonical text until an operation needs to look inside it.
#[derive(Clone)]
enum Lazy<'a> {
    Raw(&'a str),
    /// Members in canonical (UTF-16) order.
    Object(Vec<(Cow<'a, str>, Lazy<'a>)>),
    Array(Seq<Lazy<'a>>),
    Owned(Value),
}

/// The elements of an array being patched, kept in blocks of about [`BLOCK`], so that an
/// insert or a remove shifts one block, not the whole array: a re-sorted day of a million
/// records is a move per record, and each move is a remove plus an insert.
#[derive(Clone)]
struct Seq<T> {
    blocks: Vec<Vec<T>>,
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
    fn len(&self) -> usize {
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

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let (b, at) = self.locate(i);
        self.blocks[b].get_mut(at)
    }

    /// Inserts at `i` (`i <= len`).
    fn insert(&mut self, i: usize, value: T) {
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
    fn remove(&mut self, i: usize) -> T {
        let (b, at) = self.locate(i);
        let value = self.blocks[b].remove(at);
        if self.blocks[b].is_empty() && self.blocks.len() > 1 {
            self.blocks.remove(b);
        }
        self.len -= 1;
        value
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.blocks.iter().flatten()
    }
}

impl<'a> Lazy<'a> {
    /// Splits a container into its members or elements; an error when the document's text
    /// there is not well-formed (a damaged stored version), never a panic.
    fn expand(&mut self) -> Result<(), String> {
        let malformed = || "the document is not well-formed JSON there".to_string();
        let expanded = match self {
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

    /// Canonical bytes; `buf` is scratch space for owned values.
    fn write(&self, out: &mut impl Write, buf: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Lazy::Raw(t) => out.write_all(t.as_bytes()),
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
                    buf.clear();
                    match k {
                        // Split from the text with no escape in its quotes: already canonical.
                        Cow::Borrowed(name) => {
                            buf.push(b'"');
                            buf.extend_from_slice(name.as_bytes());
                            buf.push(b'"');
                        }
                        Cow::Owned(name) => crate::canonical::write_str(name, buf),
                    }
                    buf.push(b':');
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

fn apply_lazy<'a>(root: &mut Lazy<'a>, op: &PatchOp) -> Result<(), String> {
    let path = parse_pointer(op.path())?;
    match op {
        PatchOp::Add { value, .. } => {
            check_nesting(path.len(), value_depth(value))?;
            root.add(&path, Lazy::Owned(value.clone()))
        }
        PatchOp::Remove { .. } => root.remove(&path).map(drop),
        PatchOp::Replace { value, .. } => {
            check_nesting(path.len(), value_depth(value))?;
            *root.resolve(&path)? = Lazy::Owned(value.clone());
            Ok(())
        }
        PatchOp::Move { from, .. } => {
            let from = parse_pointer(from)?;
            if from == path {
                return root.resolve(&from).map(drop);
            }
            if path.len() > from.len() && path.starts_with(&from) {
                return Err("cannot move a value into one of its own children".into());
            }
            check_nesting(path.len(), root.resolve(&from)?.depth())?;
            let v = root.remove(&from)?;
            root.add(&path, v)
        }
        PatchOp::Copy { from, .. } => {
            let source = root.resolve(&parse_pointer(from)?)?;
            check_nesting(path.len(), source.depth())?;
            let v = source.clone();
            root.add(&path, v)
        }
        PatchOp::Test { value, .. } => {
            if root.resolve(&path)?.canonical() == to_canonical_vec(value) {
                Ok(())
            } else {
                Err("test failed: value differs".into())
            }
        }
    }
}

/// Applies one operation to a whole tree.
fn apply_one(doc: &mut Value, op: &PatchOp) -> Result<(), String> {
    let path = parse_pointer(op.path())?;
    let path = &path[..];
    match op {
        PatchOp::Add { value, .. } => {
            check_nesting(path.len(), value_depth(value))?;
            add(doc, path, value.clone())
        }
        PatchOp::Remove { .. } => remove(doc, path).map(drop),
        PatchOp::Replace { value, .. } => {
            check_nesting(path.len(), value_depth(value))?;
            let target = resolve_mut(doc, path)?;
            *target = value.clone();
            Ok(())
        }
        PatchOp::Move { from, .. } => {
            let from = parse_pointer(from)?;
            let from = &from[..];
            if from == path {
                return resolve_mut(doc, from).map(drop);
            }
            if path.len() > from.len() && path.starts_with(from) {
                return Err("cannot move a value into one of its own children".into());
            }
            check_nesting(path.len(), value_depth(resolve_mut(doc, from)?))?;
            let v = remove(doc, from)?;
            add(doc, path, v)
        }
        PatchOp::Copy { from, .. } => {
            let from = parse_pointer(from)?;
            let source = resolve_mut(doc, &from)?;
            check_nesting(path.len(), value_depth(source))?;
            let v = source.clone();
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
                ..Summary::default()
            }
        );
        assert_eq!(d.changes, vec![change("c", ChangeKind::Added, false)]);
    }

    #[test]
    fn removed_record_is_one_remove() {
        let d = roundtrip(
            json!([{"k":"a"},{"k":"b"},{"k":"c"}]),
            json!([{"k":"a"},{"k":"c"}]),
        );
        assert_eq!(d.patch, vec![PatchOp::Remove { path: "/1".into() }]);
        assert_eq!(d.changes, vec![change("b", ChangeKind::Removed, false)]);
    }

    fn change(key: &str, op: ChangeKind, moved: bool) -> Change {
        Change {
            key: key.into(),
            op,
            moved,
        }
    }

    fn keys(v: &Value) -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["k"].clone())
            .collect()
    }

    fn moves(d: &Diff) -> Vec<(&str, &str)> {
        d.patch
            .iter()
            .filter_map(|op| match op {
                PatchOp::Move { from, path } => Some((from.as_str(), path.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_record_that_moved_is_one_move() {
        let d = roundtrip(
            json!([{"k":"a","x":[1,2]},{"k":"b"},{"k":"c"}]),
            json!([{"k":"b"},{"k":"c"},{"k":"a","x":[1,2]}]),
        );
        assert_eq!(moves(&d), vec![("/0", "/2")]);
        assert_eq!(d.patch.len(), 1);
        assert_eq!(
            d.summary,
            Summary {
                moved: 1,
                ..Summary::default()
            }
        );
        assert_eq!(d.changes, vec![change("a", ChangeKind::Moved, true)]);
    }

    #[test]
    fn a_record_that_moved_and_changed_is_a_move_then_its_edits_at_the_new_index() {
        let d = roundtrip(
            json!([{"k":"a","n":1},{"k":"b"},{"k":"c"},{"k":"d"}]),
            json!([{"k":"b"},{"k":"c"},{"k":"a","n":2},{"k":"d"}]),
        );
        assert_eq!(
            d.patch,
            vec![
                PatchOp::Move {
                    from: "/0".into(),
                    path: "/2".into()
                },
                PatchOp::Replace {
                    path: "/2/n".into(),
                    value: json!(2)
                },
            ]
        );
        assert_eq!((d.summary.moved, d.summary.changed), (1, 1));
        assert_eq!(d.changes, vec![change("a", ChangeKind::Changed, true)]);
    }

    #[test]
    fn a_reversal_moves_all_but_one_and_carries_no_record_body() {
        let old: Vec<Value> = (0..50).map(|i| json!({"k": i, "v": i * i})).collect();
        let new: Vec<Value> = old.iter().rev().cloned().collect();
        let d = roundtrip(Value::Array(old), Value::Array(new));
        assert_eq!(d.summary.moved, 49);
        assert!(d.patch.iter().all(|op| matches!(op, PatchOp::Move { .. })));
        assert_eq!(
            (d.summary.added, d.summary.removed, d.summary.changed),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_renamed_key_is_one_remove_and_one_add_and_nothing_else_moves() {
        let d = roundtrip(
            json!([{"k":"fr"},{"k":"uk","n":1},{"k":"us"}]),
            json!([{"k":"fr"},{"k":"united-kingdom","n":1},{"k":"us"}]),
        );
        assert_eq!(
            d.summary,
            Summary {
                added: 1,
                removed: 1,
                ..Summary::default()
            }
        );
        assert_eq!(
            d.changes,
            vec![
                change("uk", ChangeKind::Removed, false),
                change("united-kingdom", ChangeKind::Added, false)
            ]
        );
        assert!(moves(&d).is_empty());
    }

    /// Length of a longest common subsequence, by the textbook O(n·m) table.
    fn lcs(a: &[Value], b: &[Value]) -> usize {
        let mut t = vec![vec![0; b.len() + 1]; a.len() + 1];
        for i in 0..a.len() {
            for j in 0..b.len() {
                t[i + 1][j + 1] = if a[i] == b[j] {
                    t[i][j] + 1
                } else {
                    t[i][j + 1].max(t[i + 1][j])
                };
            }
        }
        t[a.len()][b.len()]
    }

    #[test]
    fn moves_are_the_fewest_the_key_orders_allow() {
        // Every permutation of five records plus one added, one removed and one changed.
        let base: Vec<Value> = (0..5).map(|i| json!({"k": i, "v": 0})).collect();
        let mut perm: Vec<usize> = (0..5).collect();
        let mut count = 0;
        loop {
            let mut new: Vec<Value> = perm.iter().map(|&i| base[i].clone()).collect();
            new.retain(|r| r["k"] != json!(3));
            new.insert(perm[0] % 4, json!({"k": 9}));
            if let Some(r) = new.iter_mut().find(|r| r["k"] == json!(1)) {
                r["v"] = json!(1);
            }
            let old = Value::Array(base.clone());
            let new = Value::Array(new);
            let d = roundtrip(old.clone(), new.clone());
            let common = |a: &Value, b: &Value| -> Vec<Value> {
                keys(a)
                    .into_iter()
                    .filter(|k| keys(b).contains(k))
                    .collect()
            };
            let (ca, cb) = (common(&old, &new), common(&new, &old));
            let fewest = (ca.len() - lcs(&ca, &cb)) as u64;
            assert_eq!(d.summary.moved, fewest, "{perm:?}");
            assert_eq!(moves(&d).len() as u64, fewest);
            assert_eq!(
                (d.summary.added, d.summary.removed, d.summary.changed),
                (1, 1, 1)
            );
            // One entry per key: the added, the removed, the changed (which may have moved
            // too) and the other moved ones.
            let moved_keys = d.changes.iter().filter(|c| c.moved).count() as u64;
            assert_eq!(moved_keys, fewest);
            let changed_moved = d.changes.iter().any(|c| c.key == "1" && c.moved);
            assert_eq!(
                d.changes.len() as u64,
                3 + fewest - u64::from(changed_moved)
            );
            count += 1;
            // next permutation
            let Some(i) = (0..4).rev().find(|&i| perm[i] < perm[i + 1]) else {
                break;
            };
            let j = (i + 1..5).rev().find(|&j| perm[j] > perm[i]).unwrap();
            perm.swap(i, j);
            perm[i + 1..].reverse();
        }
        assert_eq!(count, 120);
    }

    #[test]
    fn blocked_arrays_behave_like_vectors_across_blocks() {
        let mut model: Vec<u32> = (0..5000).collect();
        let mut seq: Seq<u32> = model.iter().copied().collect();
        let mut x = 12345u64;
        let mut next = |n: usize| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize % n
        };
        for step in 0..20_000u32 {
            if next(3) == 0 && !model.is_empty() {
                let i = next(model.len());
                assert_eq!(seq.remove(i), model.remove(i));
            } else {
                let i = next(model.len() + 1);
                seq.insert(i, step);
                model.insert(i, step);
            }
            assert_eq!(seq.len(), model.len());
        }
        assert!(seq.blocks.len() > 1);
        assert_eq!(seq.iter().copied().collect::<Vec<_>>(), model);
        assert_eq!(seq.get_mut(model.len()), None);
        for i in [0, 1023, 1024, model.len() - 1] {
            assert_eq!(seq.get_mut(i).copied(), Some(model[i]));
        }
        // emptied to nothing and filled again
        let mut small: Seq<u8> = std::iter::empty().collect();
        small.insert(0, 1);
        assert_eq!(small.remove(0), 1);
        small.insert(0, 2);
        assert_eq!(small.iter().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_shuffle_of_thousands_of_records_roundtrips_across_blocks() {
        let old: Vec<Value> = (0..5000).map(|i| json!({"k": i})).collect();
        let mut new = old.clone();
        // a deterministic shuffle, one record changed, one added
        let mut x = 7u64;
        for i in (1..new.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            new.swap(i, (x >> 33) as usize % (i + 1));
        }
        new[10]["v"] = json!(1);
        new.insert(2500, json!({"k": "new"}));
        let d = roundtrip(Value::Array(old), Value::Array(new));
        assert!(d.summary.moved > 4800, "{:?}", d.summary);
        assert_eq!((d.summary.added, d.summary.changed), (1, 1));
    }

    #[test]
    fn deltas_written_before_moves_existed_still_read() {
        let old = json!({
            "format": FORMAT, "dataset": "d",
            "from": {"version": 1, "sha256": "a"}, "to": {"version": 2, "sha256": "b"},
            "created_at": "2026-11-24T06:00:00Z",
            "summary": {"added": 1, "removed": 1, "changed": 0},
            "changes": [{"key": "x", "op": "removed"}, {"key": "x", "op": "added"}],
            "patch": [{"op": "remove", "path": "/0"}, {"op": "add", "path": "/1", "value": {"k": "x"}}]
        });
        let d: Delta = serde_json::from_value(old).unwrap();
        assert_eq!(d.summary.moved, 0);
        assert_eq!(d.changes[1], change("x", ChangeKind::Added, false));
        // and what is written now says `moved` only where a record moved
        let written = serde_json::to_value(change("y", ChangeKind::Changed, false)).unwrap();
        assert_eq!(written, json!({"key": "y", "op": "changed"}));
        let written = serde_json::to_value(change("y", ChangeKind::Moved, true)).unwrap();
        assert_eq!(written, json!({"key": "y", "op": "moved", "moved": true}));
    }

    #[test]
    fn records_without_unique_keys_are_aligned_by_content() {
        let d = roundtrip(
            json!([{"k":"a"},{"k":"a"},{"x":1}]),
            json!([{"x":1},{"k":"a"},{"k":"a"}]),
        );
        assert_eq!(d.summary.moved, 0);
        roundtrip(json!([1, 2, 3, 2]), json!([2, 3, 2, 1]));
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

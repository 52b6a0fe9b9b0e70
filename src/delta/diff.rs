//! The diff: records of a top-level array matched by key (moves only outside a longest
//! increasing subsequence of the key order) or, without unique keys, aligned by content with
//! `similar` under a deadline; changed records and values diffed recursively on their canonical
//! text, splitting objects and arrays without parsing them, down to the deepest changed path.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use similar::{Algorithm, DiffOp};

use crate::canonical::{
    cmp_utf16, display_key, escape_token, split_array, split_object, split_object_like, Document,
    Record,
};

use super::{Change, ChangeKind, Diff, PatchOp};

/// only less minimal).
const ALIGN_DEADLINE: Duration = Duration::from_secs(2);

/// Computes the patch from `old` to `new`.
pub fn diff(old: &Document, new: &Document) -> Diff {
    let planned = plan(old, new);
    let mut d = Diff::default();
    let mut ops = Vec::new();
    for k in 0..planned.record_count() {
        planned.record_ops(k, &mut ops);
        d.patch.append(&mut ops);
    }
    let mut head = planned.diff;
    head.patch.append(&mut d.patch);
    head
}

/// A diff whose changed records' own operations are not made yet: [`Planned::record_ops`]
/// makes them one record at a time, so that a run can write and check its delta without ever
/// holding the whole patch (on a day that revises history it is millions of operations).
pub struct Planned<'d> {
    /// The summary, the change list and the operations made already: for keyed records the
    /// record-level removes, moves and adds; for any other document the whole patch.
    pub diff: Diff,
    old: &'d Document,
    new: &'d Document,
    /// (index in the new document, index in the old) of each changed record whose operations
    /// follow `diff.patch`, in ascending new index.
    changed: Vec<(usize, usize)>,
}

impl Planned<'_> {
    /// How many records' operations follow `diff.patch`.
    pub fn record_count(&self) -> usize {
        self.changed.len()
    }

    /// Appends the operations of the `k`th changed record (at its index in the new document).
    pub fn record_ops(&self, k: usize, ops: &mut Vec<PatchOp>) {
        let (j, i) = self.changed[k];
        let (old_recs, new_recs) = (
            self.old.records().unwrap_or_default(),
            self.new.records().unwrap_or_default(),
        );
        diff_record(j, (self.old, &old_recs[i]), (self.new, &new_recs[j]), ops);
    }
}

/// [`diff`], with the operations of keyed records that changed left to make one by one.
pub fn plan<'d>(old: &'d Document, new: &'d Document) -> Planned<'d> {
    let mut d = Diff::default();
    let mut changed = Vec::new();
    match (old.records(), new.records()) {
        (Some(old_recs), Some(new_recs)) => match KeyMatch::new((old, old_recs), (new, new_recs)) {
            Some(m) => diff_keyed(&mut d, old, new, &m, &mut changed),
            None => diff_aligned(&mut d, old, new),
        },
        _ => {
            if old.bytes() != new.bytes() {
                diff_raw(&mut String::new(), old.text(), new.text(), &mut d.patch);
                d.summary.changed = 1;
            }
        }
    }
    Planned {
        diff: d,
        old,
        new,
        changed,
    }
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
    fn new(
        (old_doc, old): (&Document, &[Record]),
        (new_doc, new): (&Document, &[Record]),
    ) -> Option<KeyMatch> {
        let mut index = std::collections::HashMap::with_capacity(old.len());
        for (i, r) in old.iter().enumerate() {
            if index.insert(old_doc.key(r)?, i).is_some() {
                return None;
            }
        }
        let mut kept = vec![false; old.len()];
        let mut old_of_new = Vec::with_capacity(new.len());
        let mut seen = std::collections::HashSet::with_capacity(new.len());
        for r in new {
            let key = new_doc.key(r)?;
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
///    document (where it now is): listed in `changed` here, made by [`Planned::record_ops`].
///
/// Indices in pass 2 are those of the array as it is at that op (RFC 6902 `move` removes
/// first, then inserts). They are counted with a Fenwick tree over the final layout, so a
/// full re-sort of a million records costs O(n log n), not O(n²).
fn diff_keyed(
    d: &mut Diff,
    old: &Document,
    new: &Document,
    m: &KeyMatch,
    changed: &mut Vec<(usize, usize)>,
) {
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
            key: change_key(old, r),
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
                    changed.push((j, i));
                    d.summary.changed += 1;
                    ChangeKind::Changed
                }
            }
        };
        d.changes.push(Change {
            key: change_key(new, n),
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
        match doc.key(r) {
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
                        key: change_key(new, n),
                        op: ChangeKind::Changed,
                        moved: false,
                    });
                }
                (i, j) = (i + len, j + len);
            }
            DiffOp::Delete { old_len, .. } => {
                remove_records(d, old, &old_recs[i..i + old_len], j);
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
                remove_records(d, old, &old_recs[i..i + old_len], j);
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
        _ => diff_raw(&mut path, old.record_text(o), new.record_text(n), ops),
    }
}

/// How a record is named in `changes`: its key, or "" for datasets without one.
fn change_key(doc: &Document, r: &Record) -> String {
    doc.key(r).map(display_key).unwrap_or_default()
}

fn remove_records(d: &mut Diff, old: &Document, recs: &[Record], at: usize) {
    for r in recs {
        let mut path = String::new();
        push_index(&mut path, at);
        d.patch.push(PatchOp::Remove { path });
        d.summary.removed += 1;
        d.changes.push(Change {
            key: change_key(old, r),
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
            key: change_key(doc, r),
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

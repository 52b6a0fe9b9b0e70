//! Tests of diff and apply on small documents: keyed and aligned records, moves, nested
//! changes, the nesting limit and apply's errors.

use std::borrow::Cow;

use super::apply::Seq;
use super::*;
use crate::canonical::{to_canonical_vec, Document, KeyPointer};
use serde_json::json;

fn doc(v: Value) -> Document {
    Document::from_value(&v, &KeyPointer::parse("/k").unwrap())
}

fn roundtrip(a: Value, b: Value) -> Diff {
    let (da, db) = (doc(a), doc(b));
    let d = diff(&da, &db);
    let out = apply_document(&da, &d.patch).unwrap();
    assert_eq!(out, db.bytes(), "patch {:?}", d.patch);
    streamed_roundtrip(&da, &db, &d);
    d
}

fn header<'a>(d: &'a Diff, patch: &'a [PatchOp]) -> Delta<'a> {
    Delta {
        format: FORMAT.into(),
        dataset: "d".into(),
        from: VersionRef {
            version: 1,
            sha256: "a".into(),
        },
        to: VersionRef {
            version: 2,
            sha256: "b".into(),
        },
        created_at: "2026-12-04T06:00:00Z".into(),
        summary: d.summary,
        changes: Cow::Borrowed(&d.changes),
        patch: Cow::Borrowed(patch),
    }
}

/// The delta of `d` written from its plan (records' operations made as they are written) is
/// the file serializing the whole diff gives; applied as it is parsed, from its text and from
/// its gzip, it gives `db` and the records `apply_document_records` reports.
fn streamed_roundtrip(da: &Document, db: &Document, d: &Diff) {
    let planned = plan(da, db);
    let mut written = Vec::new();
    write_delta(
        &header(&planned.diff, &planned.diff.patch),
        Some(&planned),
        &mut written,
    )
    .unwrap();
    let whole = serde_json::to_vec(&header(d, &d.patch)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&whole)
    );
    let (expected, expected_records) = apply_document_records(da, &d.patch).unwrap();
    let gz = crate::gzip::gzip(&written, 1);
    for bytes in [DeltaBytes::Json(&written), DeltaBytes::Gzip(&gz)] {
        let (mut out, mut records) = (Vec::new(), Vec::new());
        let (read, by_record) = apply_delta(da, bytes, None, &mut out, Some(&mut records)).unwrap();
        assert_eq!(out, db.bytes());
        assert_eq!(read, header(d, &[]));
        match &expected_records {
            Some(expected) => assert_eq!(&records, expected),
            // An empty patch streams every record through as a copy.
            None if by_record => {
                assert!(d.patch.is_empty());
                assert_eq!(Some(records.len()), da.record_count());
                assert!(records.iter().all(|r| r.copy_of.is_some()));
            }
            None => assert!(records.is_empty()),
        }
        assert_eq!(check_delta(da, bytes, db.bytes()).unwrap().1, None);
        assert_eq!(out, expected);
    }
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
    let v = doc(json!({"a": {"b": [1, 2]}, "c": 1}));
    let patch: Vec<PatchOp> = serde_json::from_value(json!([
        {"op": "copy", "from": "/a/b", "path": "/d"},
        {"op": "move", "from": "/c", "path": "/a/c"},
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "test", "path": "/d", "value": [1, 2.0]},
        {"op": "replace", "path": "/d/0", "value": "x"}
    ]))
    .unwrap();
    let out = apply_document(&v, &patch).unwrap();
    assert_eq!(
        out,
        to_canonical_vec(&json!({"a": {"b": [1, 2, 3], "c": 1}, "d": ["x", 2]}))
    );
    let d = doc(json!([{"k":1,"a":1},{"k":2}]));
    let cross: Vec<PatchOp> = serde_json::from_value(json!([
        {"op": "move", "from": "/0/a", "path": "/1/a"},
        {"op": "copy", "from": "/1", "path": "/-"}
    ]))
    .unwrap();
    let out = apply_document(&d, &cross).unwrap();
    assert_eq!(out, br#"[{"k":1},{"a":1,"k":2},{"a":1,"k":2}]"#);
}

/// A file of `patch` applied to `base` by [`apply_delta`] from its text.
fn apply_file(base: &Document, patch: Value) -> Result<Vec<u8>, DeltaError> {
    let patch: Vec<PatchOp> = serde_json::from_value(patch).unwrap();
    let file = serde_json::to_vec(&header(&Diff::default(), &patch)).unwrap();
    let mut out = Vec::new();
    apply_delta(base, DeltaBytes::Json(&file), None, &mut out, None).map(|_| out)
}

#[test]
fn a_patch_out_of_record_order_is_applied_whole_from_its_file() {
    let base = doc(json!([{"k":1,"a":1},{"k":2},{"k":3}]));
    // A record's own operation, then one on the array of records, then an earlier record:
    // no stream can apply this in one pass, so the file is parsed again and applied whole.
    let patch = json!([
        {"op": "add", "path": "/2/x", "value": 1},
        {"op": "remove", "path": "/1"},
        {"op": "add", "path": "/0/b", "value": 2}
    ]);
    let out = apply_file(&base, patch.clone()).unwrap();
    let whole: Vec<PatchOp> = serde_json::from_value(patch).unwrap();
    assert_eq!(out, apply_document(&base, &whole).unwrap());
    assert_eq!(out, br#"[{"a":1,"b":2,"k":1},{"k":3,"x":1}]"#);
}

#[test]
fn a_streamed_patch_fails_with_the_operation_that_does_not_apply() {
    let base = doc(json!([{"k":1},{"k":2}]));
    let err = apply_file(
        &base,
        json!([{"op": "move", "from": "/1", "path": "/0"}, {"op": "add", "path": "/5/x", "value": 1}]),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DeltaError::Apply(e) if e.index == 1 && e.reason.contains("out of bounds (length 2)")),
        "{err}"
    );
    let err = apply_file(&base, json!([{"op": "remove", "path": "/0/nope"}])).unwrap_err();
    assert!(
        matches!(&err, DeltaError::Apply(e) if e.index == 0 && e.reason.contains("does not exist")),
        "{err}"
    );
}

#[test]
fn a_damaged_delta_file_is_refused_as_no_delta() {
    let base = doc(json!([{"k":1}]));
    let file = serde_json::to_vec(&header(&Diff::default(), &[])).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", file[..file.len() - 3].to_vec()),
        ("trailing", [&file[..], b"x"].concat()),
        ("no patch", br#"{"format":"snapsync-delta/1"}"#.to_vec()),
        ("patch twice", br#"{"patch":[],"patch":[]}"#.to_vec()),
        ("an array", b"[]".to_vec()),
    ];
    for (what, bytes) in cases {
        let mut out = Vec::new();
        let err = apply_delta(&base, DeltaBytes::Json(&bytes), None, &mut out, None).unwrap_err();
        assert!(matches!(err, DeltaError::Format(_)), "{what}: {err}");
    }
    let mut out = Vec::new();
    let err = apply_delta(&base, DeltaBytes::Gzip(b"not gzip"), None, &mut out, None).unwrap_err();
    assert!(matches!(err, DeltaError::Format(_)), "{err}");
}

#[test]
fn a_delta_that_does_not_reproduce_the_version_says_where() {
    let (a, b) = (doc(json!([{"k":1,"v":1}])), doc(json!([{"k":1,"v":2}])));
    let d = diff(&a, &b);
    let file = serde_json::to_vec(&header(&d, &d.patch)).unwrap();
    let other = to_canonical_vec(&json!([{"k":1,"v":3}]));
    let (_, differs) = check_delta(&a, DeltaBytes::Json(&file), &other).unwrap();
    assert_eq!(differs, Some(br#"[{"k":1,"v":"#.len()));
}

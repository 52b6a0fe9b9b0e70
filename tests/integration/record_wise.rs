//! The run's delta check applies a patch record by record (issue 20): on days shaped like the
//! real upstream (re-sorted by cases, ties reshuffled, keys renamed, records dropped and added,
//! revisions anywhere so running totals shift), the record-wise apply and the whole-document
//! apply give the new version's bytes, and the same error for a patch that does not apply;
//! and the value counts a run takes before its commit point are the listed changes counted;
//! and the document `verify` makes of an applied delta without scanning it again is the one a
//! scan makes; and the delta file a run writes from its plan is the whole diff's, checked as
//! its compressed bytes are read through a pipe (and, out of record order, checked whole).

use std::io::Write;
use std::path::Path;

use serde_json::json;
use snapsync::canonical::{Document, KeyPointer};
use snapsync::changes::{value_changes, value_counts, PathPattern, ValueCounts};
use snapsync::delta::{
    apply_delta, apply_document, apply_document_records, check_delta, check_delta_read, diff, plan,
    AppliedRecord, Delta, DeltaBytes, DeltaError, PatchOp,
};
use snapsync::plan::delta_gz;

use crate::common::cli::snapsync_gen;

/// Day 0 and three next days of `countries` records, with every upstream habit.
fn upstream_days(dir: &Path, countries: usize) -> Vec<Document> {
    let key = KeyPointer::parse("/country/key").unwrap();
    let path = |i: usize| dir.join(format!("day{i}.json"));
    let n = countries.to_string();
    snapsync_gen(&[
        "--countries",
        &n,
        "--days",
        "90",
        "--seed",
        "3",
        "--upstream",
        "--out",
        path(0).to_str().unwrap(),
    ]);
    for i in 1..4 {
        let seed = (10 + i).to_string();
        snapsync_gen(&[
            "next",
            "--in",
            path(i - 1).to_str().unwrap(),
            "--out",
            path(i).to_str().unwrap(),
            "--seed",
            &seed,
            "--revise",
            "0.01",
            "--upstream",
            "--rename",
            "0.05",
            "--churn",
            "0.05",
        ]);
    }
    (0..4)
        .map(|i| Document::from_json(&std::fs::read(path(i)).unwrap(), &key).unwrap())
        .collect()
}

/// `patch` followed by two tests that hold but go back to record 0: no longer in ascending
/// record order, so applied to the whole document at once.
fn whole_document(new: &Document, patch: &[PatchOp]) -> Vec<PatchOp> {
    let records: serde_json::Value = serde_json::from_slice(new.bytes()).unwrap();
    let mut p = patch.to_vec();
    for i in [1, 0] {
        p.push(PatchOp::Test {
            path: format!("/{i}/country/key"),
            value: records[i]["country"]["key"].clone(),
        });
    }
    p
}

#[test]
fn record_wise_and_whole_document_apply_agree_on_upstream_shaped_days() {
    let dir = tempfile::tempdir().unwrap();
    let days = upstream_days(dir.path(), 80);
    let (mut moved, mut removed, mut added) = (0, 0, 0);
    for pair in days.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let d = diff(old, new);
        (moved, removed, added) = (
            moved + d.summary.moved,
            removed + d.summary.removed,
            added + d.summary.added,
        );
        assert!(d.summary.changed > 0);
        assert_eq!(apply_document(old, &d.patch).unwrap(), new.bytes());
        let whole = whole_document(new, &d.patch);
        assert_eq!(apply_document(old, &whole).unwrap(), new.bytes());

        // An operation past the last record: the same error either way.
        let len = new.record_count().unwrap();
        let past = PatchOp::Replace {
            path: format!("/{}/country/name", len + 5),
            value: json!("x"),
        };
        let reason = format!("index {} is out of bounds (length {len})", len + 5);
        for mut p in [d.patch.clone(), whole] {
            p.push(past.clone());
            let e = apply_document(old, &p).unwrap_err();
            assert_eq!(
                (e.index, e.op, e.reason.as_str()),
                (p.len() - 1, "replace", &*reason)
            );
        }
    }
    // The days exercised every kind of record-level operation.
    assert!(
        moved > 0 && removed > 0 && added > 0,
        "{moved} {removed} {added}"
    );
}

#[test]
fn counting_value_changes_walks_what_listing_them_walks() {
    let dir = tempfile::tempdir().unwrap();
    let days = upstream_days(dir.path(), 40);
    let key = KeyPointer::parse("/country/key").unwrap();
    let derived = [PathPattern::parse("/dates/*/cumulative").unwrap()];
    for pair in days.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let d = diff(old, new);
        let listed = value_changes(old, new, &key, &d.changes, &derived).unwrap();
        let counts = value_counts(old, new, &key, &d.changes, &derived).unwrap();
        assert_eq!(counts, ValueCounts::of(&listed));
        assert!(
            counts.appended > 0 && counts.revised > 0 && counts.derived > 0,
            "{counts:?}"
        );
    }
}

/// `verify` builds each version from the spans the record-wise apply reports (untouched records
/// keep their member spans, rewritten ones bring those found while writing them): the same
/// document, tables and all, as scanning the bytes gives; spans that do not tile the array are
/// refused. Every record changes on these days (a new date each), so a second patch keeps the
/// record-level operations and those of records 0 to 9 only, leaving the rest untouched copies.
#[test]
fn a_document_from_applied_spans_is_the_scanned_one() {
    let dir = tempfile::tempdir().unwrap();
    let days = upstream_days(dir.path(), 60);
    let first_index = |op: &PatchOp| -> (usize, usize) {
        let mut tokens = op.path().split('/').skip(1);
        let i = tokens.next().unwrap().parse().unwrap_or(usize::MAX);
        (i, tokens.count())
    };
    for key in [
        KeyPointer::parse("/country/key").unwrap(),
        KeyPointer::default(),
    ] {
        for pair in days.windows(2) {
            let (old, new) = (&pair[0], &pair[1]);
            let d = diff(old, new);
            let partial: Vec<PatchOp> = d
                .patch
                .iter()
                .filter(|op| matches!(first_index(op), (_, 0) | (0..=9, _)))
                .cloned()
                .collect();
            for (patch, some_copied) in [(&d.patch, false), (&partial, true)] {
                let (bytes, records) = apply_document_records(old, patch).unwrap();
                let records = records.expect("a keyed diff is applied record by record");
                let copies = records.iter().filter(|r| r.copy_of.is_some()).count();
                if some_copied {
                    assert!(copies > 0 && copies < records.len(), "{copies}");
                }
                // The records a patch rewrote carry the member spans their writing found.
                assert!(records.iter().any(|r| r.members.is_some()));
                let bytes = bytes::Bytes::from(bytes);
                let sha = snapsync::canonical::sha256_hex(&bytes);
                let scanned = Document::from_canonical(bytes.clone(), &key, &sha).unwrap();
                let made = Document::from_applied((bytes.clone(), None), &key, &sha, old, &records);
                assert!(made.unwrap() == scanned, "the documents differ");
                // A span one byte off, or one record short, is refused.
                let mut off = records.clone();
                off[1].start += 1;
                let mut short = records.clone();
                short.pop();
                for bad in [off, short] {
                    let bad: Vec<AppliedRecord<'_>> = bad;
                    let made = Document::from_applied((bytes.clone(), None), &key, &sha, old, &bad);
                    assert!(made.is_err());
                }
            }
        }
    }
}

/// A delta file of `patch` from `old` to `new`, as the run writes its fields.
fn header<'a>(d: &'a snapsync::delta::Diff, patch: &'a [PatchOp]) -> Delta<'a> {
    let from = snapsync::manifest::Entry {
        version: 1,
        sha256: "a".repeat(64),
        ..Default::default()
    };
    snapsync::plan::delta_header(
        "covid",
        &from,
        (2, &"b".repeat(64)),
        "2026-12-04T06:00:00.000Z",
        d,
        patch,
    )
}

/// `check_delta_read` of `gz`, fed through a pipe by another thread in small pieces, as a run
/// feeds it while it compresses.
fn check_through_pipe(
    base: &Document,
    gz: &[u8],
    expected: &[u8],
) -> Result<Option<usize>, DeltaError> {
    std::thread::scope(|scope| {
        let (mut w, r) = snapsync::pipe::pipe(2, snapsync::pipe::CHUNK);
        scope.spawn(move || {
            for piece in gz.chunks(1000) {
                if w.write_all(piece).is_err() {
                    break;
                }
            }
        });
        check_delta_read(base, r, expected).map(|(_, differs)| differs)
    })
}

#[test]
fn a_delta_written_from_its_plan_is_the_whole_diff_and_checks_as_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let days = upstream_days(dir.path(), 80);
    for pair in days.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let whole = diff(old, new);
        let planned = plan(old, new);
        assert!(planned.record_count() > 0);
        // Written from the plan, the file is the whole diff's, byte for byte.
        let gz = delta_gz(
            &header(&planned.diff, &planned.diff.patch),
            Some(&planned),
            1,
        );
        let text = snapsync::gzip::gunzip(&gz, 1 << 40, 0).unwrap();
        assert_eq!(
            text,
            serde_json::to_vec(&header(&whole, &whole.patch)).unwrap()
        );

        // Read as it comes, it gives the new version; against other bytes, where they differ.
        assert_eq!(check_through_pipe(old, &gz, new.bytes()).unwrap(), None);
        let mut other = new.bytes().to_vec();
        let at = other.len() / 2;
        other[at] = if other[at] == b'1' { b'2' } else { b'1' };
        assert_eq!(check_through_pipe(old, &gz, &other).unwrap(), Some(at));
        // Its text applied as it is parsed: the records apply_document_records reports.
        let (mut out, mut records) = (Vec::new(), Vec::new());
        let (read, by_record) = apply_delta(
            old,
            DeltaBytes::Json(&text),
            None,
            &mut out,
            Some(&mut records),
        )
        .unwrap();
        assert!(by_record);
        assert_eq!(read, header(&whole, &[]));
        let (applied, expected): (Vec<u8>, Option<Vec<AppliedRecord>>) =
            apply_document_records(old, &whole.patch).unwrap();
        assert_eq!((out, Some(records)), (applied, expected));
    }
}

#[test]
fn a_delta_out_of_record_order_is_refused_by_the_reader_and_checked_whole() {
    let dir = tempfile::tempdir().unwrap();
    let days = upstream_days(dir.path(), 40);
    // A key that repeats (a record duplicated in both days): records are aligned by key
    // instead of matched, so a changed record's own operations come before the removes and
    // adds of later records, which no single pass applies.
    let key = KeyPointer::parse("/country/key").unwrap();
    let with_a_duplicate = |doc: &Document| {
        let mut v = doc.to_value();
        let records = v.as_array_mut().unwrap();
        records.push(records[0].clone());
        Document::from_value(&v, &key)
    };
    let (old, new) = (with_a_duplicate(&days[0]), with_a_duplicate(&days[1]));
    let planned = plan(&old, &new);
    assert_eq!(planned.record_count(), 0);
    let gz = delta_gz(
        &header(&planned.diff, &planned.diff.patch),
        Some(&planned),
        1,
    );
    let read = check_through_pipe(&old, &gz, new.bytes());
    assert!(matches!(read, Err(DeltaError::Unordered)), "{read:?}");
    let (_, differs) = check_delta(&old, DeltaBytes::Gzip(&gz), new.bytes()).unwrap();
    assert_eq!(differs, None);
}

#[test]
fn a_streamed_delta_that_does_not_apply_names_its_operation() {
    let dir = tempfile::tempdir().unwrap();
    let days = upstream_days(dir.path(), 40);
    let (old, new) = (&days[0], &days[1]);
    let mut d = diff(old, new);
    // Past the last record once the record-level operations are done.
    let len = new.record_count().unwrap();
    d.patch.push(PatchOp::Remove {
        path: format!("/{}/country", len + 1),
    });
    let gz = delta_gz(&header(&d, &d.patch), None, 1);
    let e = check_through_pipe(old, &gz, new.bytes()).unwrap_err();
    let reason = format!("index {} is out of bounds (length {len})", len + 1);
    assert!(
        matches!(&e, DeltaError::Apply(a) if a.index == d.patch.len() - 1 && a.reason == reason),
        "{e}"
    );
}

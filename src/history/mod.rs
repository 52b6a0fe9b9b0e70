//! Working with a published history as a whole: `verify` (and `--repair`), `restore`, `prune`
//! and `replay`.
//!
//! Verification trusts nothing but hashes: every kept snapshot must decompress to its recorded
//! sha256, every delta applied to the version before it must give the next version's sha256,
//! the manifest must be one unbroken chain, `latest.json` must be its last version, and the
//! local database (when there is one) must mirror it. Objects in `snapshots/` or `deltas/` that
//! no manifest entry names are orphans of uncommitted attempts (or of an interrupted prune):
//! reported, not errors.
//!
//! The decision a newcomer would get wrong: `prune` deletes *snapshots only*, never deltas, and
//! never version 1's snapshot (the chain's base) or the newest one. Every version therefore
//! stays restorable from the nearest older kept snapshot plus deltas, `verify` can still walk
//! the whole chain from version 1, and a consumer at any old version can still catch up by
//! deltas. A pruned snapshot is marked `pruned: true` in its manifest entry (the key stays, so
//! older readers still parse the manifest). The manifest is rewritten *before* the snapshots
//! are deleted: a prune interrupted in between leaves orphans, never a manifest naming
//! missing objects.
//!
//! Everything that changes the store is planned first as data (`Fix`, `PrunePlan`), then
//! executed; the plans are what `--dry-run` prints.

mod chain;
mod janitor;
mod prune;
mod restore;
mod verify;

pub use crate::replay::*;
pub use chain::*;
pub use janitor::*;
pub use prune::*;
pub use restore::*;
pub use verify::*;

/// Most attempts at rewriting the manifest while other writers keep changing it.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
/// How long a janitor waits, between those attempts, for a writer between its commit
/// (`latest.json`) and its manifest write to finish.
pub(crate) const WRITER_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);
/// Orphans younger than this, by the store's own clock (S3 `LastModified` against the `Date`
/// the server sends; a file's mtime), may belong to a run that has not reached its commit point
/// yet: never deleted. The time in a key is the version's `created_at`, which says nothing of
/// when the object was written (`replay` writes keys dated years back; a writer's clock may be
/// hours off), so it is never used to judge age.
pub const ORPHAN_GRACE: time::Duration = time::Duration::hours(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{self, DatasetKeys};
    use crate::manifest::{Entry, Manifest};
    use crate::store::ListEntry;
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use time::macros::datetime;
    use time::OffsetDateTime;

    fn entry(version: u64, created_at: &str) -> Entry {
        Entry {
            version,
            created_at: created_at.into(),
            sha256: format!("{version:064x}"),
            prev_sha256: (version > 1).then(|| format!("{:064x}", version - 1)),
            snapshot: format!("d/snapshots/{version}.json.gz"),
            delta: (version > 1).then(|| format!("d/deltas/{version}.delta.json.gz")),
            canonical_bytes: 1000,
            snapshot_bytes: 100,
            delta_bytes: (version > 1).then_some(10),
            records: None,
            ..Entry::default()
        }
    }

    /// One version a day from 2026-01-01 for `days` days.
    fn daily(days: u64) -> Manifest {
        let mut m = Manifest::new("d");
        let start = datetime!(2026-01-01 06:00 UTC);
        m.versions = (1..=days)
            .map(|v| {
                entry(
                    v,
                    &keys::rfc3339(start + time::Duration::days(v as i64 - 1)),
                )
            })
            .collect();
        m
    }

    #[test]
    fn prune_keeps_base_latest_recent_days_and_month_ends() {
        let m = daily(100); // 2026-01-01 .. 2026-04-10
        let p = prune_plan(
            &m,
            Retention {
                daily: 7,
                monthly: 2,
            },
        );
        let kept: Vec<u64> = p.keep.keys().copied().collect();
        // base 1; days 94..=100; month ends: April (100) and March (90).
        assert_eq!(kept, vec![1, 90, 94, 95, 96, 97, 98, 99, 100]);
        assert_eq!(p.delete_snapshots.len(), 91);
        assert!(p.manifest.check_chain().is_ok());
        assert!(p
            .manifest
            .versions
            .iter()
            .all(|e| e.pruned != p.keep.contains_key(&e.version)));
        // Planning again over the result deletes nothing more.
        let again = prune_plan(
            &p.manifest,
            Retention {
                daily: 7,
                monthly: 2,
            },
        );
        assert!(again.delete_snapshots.is_empty());
        assert_eq!(again.manifest, p.manifest);
    }

    #[test]
    fn prune_keeps_everything_with_generous_retention_and_the_last_of_each_day() {
        let mut m = daily(3);
        m.versions.push(entry(4, "2026-01-03T18:00:00Z"));
        let p = prune_plan(
            &m,
            Retention {
                daily: 30,
                monthly: 0,
            },
        );
        assert_eq!(p.keep.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
        assert_eq!(
            p.delete_snapshots,
            vec!["d/snapshots/3.json.gz".to_string()]
        );
        let none = prune_plan(
            &m,
            Retention {
                daily: 0,
                monthly: 0,
            },
        );
        assert_eq!(none.keep.keys().copied().collect::<Vec<_>>(), vec![1, 4]);
    }

    #[test]
    fn orphans_are_judged_by_the_store_clock_and_their_names() {
        let keys = DatasetKeys::new("", "d");
        let now = datetime!(2026-05-01 00:30 UTC);
        let obj = |key: &str, modified: Option<OffsetDateTime>| ListEntry {
            key: key.into(),
            size: 1,
            modified,
        };
        // Keys dated years back (replay) or in the future (a clock ahead) say nothing: only
        // the store's modification time counts.
        let listed = [
            obj(
                "d/snapshots/2021-03-01T000000Z-aaaaaaaaaaaa.json.gz",
                Some(now - time::Duration::minutes(59)),
            ),
            obj(
                "d/deltas/2999-01-01T000000Z-bbbbbbbbbbbb.delta.json.gz",
                Some(now - time::Duration::hours(2)),
            ),
            obj("d/snapshots/2021-03-02T000000Z-cccccccccccc.json.gz", None),
            obj(
                "d/snapshots/2021-03-03T000000.000Z-dddddddddddd.json.gz",
                Some(now - ORPHAN_GRACE),
            ),
            obj(
                "d/snapshots/NOTES.txt",
                Some(now - time::Duration::days(400)),
            ),
            obj(
                "d/snapshots/backup/old.json.gz",
                Some(now - time::Duration::days(400)),
            ),
            obj(
                "d/deltas/2021-03-04T000000Z-eeeeeeeeeeee.delta.json.gz",
                Some(now - time::Duration::days(9)),
            ),
        ];
        let named = BTreeSet::from([listed[6].key.clone()]);
        let sweep = classify_orphans(&keys, &listed, &named, now);
        assert_eq!(
            sweep.deleted,
            [listed[1].key.clone(), listed[3].key.clone()]
        );
        assert_eq!(sweep.young, [listed[0].key.clone(), listed[2].key.clone()]);
        assert_eq!(
            sweep.foreign,
            [listed[4].key.clone(), listed[5].key.clone()]
        );
    }

    #[test]
    fn restore_starts_from_the_nearest_kept_snapshot() {
        let mut m = daily(10);
        for v in [2, 3, 4, 6, 7] {
            m.versions[v - 1].pruned = true;
        }
        let plans = restore_plans(&m, m.get(7).unwrap());
        let bases: Vec<u64> = plans.iter().map(|p| p.base.version).collect();
        assert_eq!(bases, vec![5, 1]);
        assert_eq!(
            plans[0]
                .deltas
                .iter()
                .map(|e| e.version)
                .collect::<Vec<_>>(),
            vec![6, 7]
        );
        assert_eq!(restore_plans(&m, m.get(5).unwrap())[0].deltas, vec![]);
        assert_eq!(
            resolve_target(&m, Target::At(datetime!(2026-01-03 12:00 UTC)))
                .unwrap()
                .version,
            3
        );
        assert_eq!(
            resolve_target(&m, Target::At(datetime!(2026-01-03 06:00 UTC)))
                .unwrap()
                .version,
            3
        );
        assert!(
            resolve_target(&m, Target::At(datetime!(2025-12-31 0:00 UTC)))
                .unwrap_err()
                .contains("first is from")
        );
        assert!(resolve_target(&m, Target::Version(11)).is_err());
    }

    #[test]
    fn recorded_files_are_dated_by_name_or_flag() {
        let p = |s: &str| PathBuf::from(s);
        let files = date_files(
            &[p("x/2021-03-05.json"), p("x/stats-2021-03-04.json")],
            None,
        )
        .unwrap();
        assert_eq!(files[0].path, p("x/stats-2021-03-04.json"));
        assert_eq!(files[1].date, datetime!(2021-03-05 0:00 UTC));
        assert!(date_files(&[p("a.json")], None)
            .unwrap_err()
            .contains("no date"));
        assert!(date_files(&[p("2021-02-30.json")], None).is_err());
        assert!(
            date_files(&[p("a/2021-03-04.json"), p("b/2021-03-04.json")], None)
                .unwrap_err()
                .contains("both dated")
        );
        let dates = vec!["2021-01-02".to_string(), "2021-01-01T06:00:00Z".to_string()];
        let files = date_files(&[p("a.json"), p("b.json")], Some(&dates)).unwrap();
        assert_eq!(files[0].path, p("b.json"));
        assert!(date_files(&[p("a.json")], Some(&dates)).is_err());
        assert!(date_files(&[p("a.json")], Some(&["yesterday".to_string()])).is_err());
        let (kept, skipped) = files_after(files, Some(datetime!(2021-01-01 06:00 UTC)));
        assert_eq!((kept.len(), skipped), (1, 1));
    }

    #[test]
    fn key_times_parse() {
        assert_eq!(
            key_time("p/d/snapshots/2026-11-24T060000Z-0123456789ab.json.gz"),
            Some(datetime!(2026-11-24 06:00 UTC))
        );
        assert_eq!(
            key_time("p/d/deltas/2026-11-24T060000.250Z-0123456789ab.delta.json.gz"),
            Some(datetime!(2026-11-24 06:00:00.25 UTC))
        );
        assert_eq!(key_time("p/d/snapshots/x.json.gz"), None);
    }
}

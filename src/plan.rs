//! Plan, then do: given the new document and what the store holds, decide what to publish and
//! build every object's bytes and metadata, without any I/O. `sync.rs` then executes the plan.
//!
//! `created_at` has millisecond precision and strictly increases: a new version is created at
//! the clock's time, or one millisecond after the previous version when the clock is not past
//! it (a burst of versions runs ahead of the clock by a millisecond each, not a second; stores
//! written with second precision are followed the same way). Object keys embed `created_at`
//! and the content's hash, so two attempts can still meet at one key: same content, same
//! millisecond, but another version number or base (a writer that re-based after a lost race
//! onto a version created just before its first attempt, or two writers of the same data a
//! version apart). Such a key is *taken*: `decide` is asked again with its time as `taken`
//! and moves past it (see `sync.rs`).

use std::borrow::Cow;

use bytes::Bytes;
use time::{Duration, OffsetDateTime};

use crate::canonical::Document;
use crate::delta::{Delta, Diff, PatchOp, Planned, VersionRef, FORMAT};
use crate::gzip;
use crate::keys::{self, DatasetKeys};
use crate::manifest::Entry;
use crate::store::{PutMode, PutOptions};

/// The version the store holds now, as read at the start of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub entry: Entry,
    pub etag: String,
    /// The [`keys::META_ATTEMPT`] that committed it (none in stores written before it).
    pub attempt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The store already has this version.
    Unchanged,
    /// A new version; `prev` is what it follows.
    Publish {
        version: u64,
        created_at: OffsetDateTime,
    },
}

/// Whether `new_sha256` is a new version after `remote`, and if so its number and
/// `created_at`: `now` to the millisecond, but always after the previous version's
/// `created_at` and after `taken` (a `created_at` another attempt's objects of this content
/// already hold), by at least a millisecond.
pub fn decide(
    new_sha256: &str,
    remote: Option<&Remote>,
    now: OffsetDateTime,
    taken: Option<OffsetDateTime>,
) -> Decision {
    let after = |t: OffsetDateTime| keys::to_millis(t) + Duration::milliseconds(1);
    let floor = remote
        .and_then(|r| keys::parse_rfc3339(&r.entry.created_at))
        .into_iter()
        .chain(taken)
        .map(after)
        .max();
    let now = keys::to_millis(now);
    let created_at = floor.map_or(now, |floor| now.max(floor));
    match remote {
        Some(r) if r.entry.sha256 == new_sha256 => Decision::Unchanged,
        Some(r) => Decision::Publish {
            version: r.entry.version + 1,
            created_at,
        },
        None => Decision::Publish {
            version: 1,
            created_at,
        },
    }
}

/// How far `now` is behind the newest version's `created_at`, when by more than a minute: a
/// clock that ran ahead once dated that version in the future, and every version after it is
/// dated after it (`restore --at now` then finds an older one). Worth a warning.
pub fn clock_behind(newest: &Entry, now: OffsetDateTime) -> Option<Duration> {
    let newest = keys::parse_rfc3339(&newest.created_at)?;
    let behind = newest - now;
    (behind > Duration::minutes(1)).then_some(behind)
}

/// One object to write.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub body: Bytes,
    pub opts: PutOptions,
}

/// Everything a publish writes, in order: immutable objects first, the commit point last.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub entry: Entry,
    /// Snapshot, then delta (when there is a previous version); created with `If-None-Match`.
    pub immutable: Vec<Upload>,
    /// `latest.json`: the commit point.
    pub latest: Upload,
}

impl PublishPlan {
    pub fn bytes_out(&self) -> u64 {
        self.immutable
            .iter()
            .chain([&self.latest])
            .map(|u| u.body.len() as u64)
            .sum()
    }
}

/// Inputs of [`build`]: the new document, and the previous version with the diff to it.
pub struct Inputs<'a> {
    pub keys: &'a DatasetKeys,
    pub dataset: &'a str,
    pub doc: &'a Document,
    /// The already-compressed snapshot (computed in parallel with the diff).
    pub snapshot_gz: Bytes,
    pub prev: Option<(&'a Remote, &'a Diff)>,
    /// The delta file from `prev`, gzip ([`delta_gz`]), made and checked with the diff.
    pub delta_gz: Option<Vec<u8>>,
    pub version: u64,
    pub created_at: OffsetDateTime,
    /// This attempt's id, written as [`keys::META_ATTEMPT`] on every object it puts.
    pub attempt: &'a str,
}

/// The delta file's fields from the version `from` to version `version` of `sha256`, created at
/// `created_at`, with `diff`'s summary and changes and `patch` (the operations made already).
pub fn delta_header<'a>(
    dataset: &str,
    from: &Entry,
    (version, sha256): (u64, &str),
    created_at: &str,
    diff: &'a Diff,
    patch: &'a [PatchOp],
) -> Delta<'a> {
    Delta {
        format: FORMAT.to_string(),
        dataset: dataset.to_string(),
        from: VersionRef {
            version: from.version,
            sha256: from.sha256.clone(),
        },
        to: VersionRef {
            version,
            sha256: sha256.to_string(),
        },
        created_at: created_at.to_string(),
        summary: diff.summary,
        changes: Cow::Borrowed(&diff.changes),
        patch: Cow::Borrowed(patch),
    }
}

/// The delta file `header` and `planned` describe ([`crate::delta::write_delta`]), written
/// straight into the compressor: a delta of millions of operations is never held as JSON
/// text, nor (with `planned`) as operations.
pub fn delta_gz(header: &Delta<'_>, planned: Option<&Planned<'_>>, level: u32) -> Vec<u8> {
    write_delta_gz(header, planned, level, Vec::new()).expect("writing to memory cannot fail")
}

/// [`delta_gz`], compressed into `out`.
pub fn write_delta_gz<W: std::io::Write>(
    header: &Delta<'_>,
    planned: Option<&Planned<'_>>,
    level: u32,
    out: W,
) -> std::io::Result<W> {
    let mut enc = gzip::encoder_into(out, level);
    crate::delta::write_delta(header, planned, &mut enc)?;
    enc.finish()
}

pub fn build(i: Inputs<'_>) -> PublishPlan {
    let sha = i.doc.sha256();
    let created_at = keys::created_at(i.created_at);
    let snapshot_key = i.keys.snapshot(i.created_at, sha);
    let (delta, summary) = match (i.prev, i.delta_gz) {
        (Some((_, diff)), Some(gz)) => (Some((i.keys.delta(i.created_at, sha), gz)), diff.summary),
        (Some(_), None) => panic!("a version after another is published with its delta"),
        (None, _) => (
            None,
            crate::delta::Summary {
                added: i.doc.record_count().unwrap_or(0) as u64,
                ..Default::default()
            },
        ),
    };
    let entry = Entry {
        version: i.version,
        created_at,
        sha256: sha.to_string(),
        prev_sha256: i.prev.map(|(r, _)| r.entry.sha256.clone()),
        snapshot: snapshot_key.clone(),
        delta: delta.as_ref().map(|(k, _)| k.clone()),
        canonical_bytes: i.doc.bytes().len() as u64,
        snapshot_bytes: i.snapshot_gz.len() as u64,
        delta_bytes: delta.as_ref().map(|(_, b)| b.len() as u64),
        records: i.doc.record_count().map(|n| n as u64),
        added: summary.added,
        removed: summary.removed,
        moved: summary.moved,
        changed: summary.changed,
        values: i.prev.and_then(|(_, d)| d.counts),
        pruned: false,
    };
    let mut meta = entry.to_metadata();
    meta.insert(keys::META_ATTEMPT.into(), i.attempt.to_string());
    let mut immutable = vec![Upload {
        key: snapshot_key,
        body: i.snapshot_gz,
        opts: PutOptions::gzip_json(PutMode::Create).with_metadata(meta.clone()),
    }];
    if let Some((key, gz)) = delta {
        immutable.push(Upload {
            key,
            body: Bytes::from(gz),
            opts: PutOptions::gzip_json(PutMode::Create).with_metadata(meta.clone()),
        });
    }
    let latest_mode = match i.prev {
        Some((remote, _)) => PutMode::Update(remote.etag.clone()),
        None => PutMode::Create,
    };
    let latest = Upload {
        key: i.keys.latest(),
        body: i.doc.shared_bytes(),
        opts: PutOptions::json(latest_mode)
            .with_metadata(meta)
            .with_sha256(sha),
    };
    PublishPlan {
        entry,
        immutable,
        latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn remote(version: u64, sha: &str, created_at: &str) -> Remote {
        Remote {
            entry: Entry {
                version,
                created_at: created_at.into(),
                sha256: sha.into(),
                prev_sha256: None,
                snapshot: String::new(),
                delta: None,
                canonical_bytes: 0,
                snapshot_bytes: 0,
                delta_bytes: None,
                records: None,
                ..Entry::default()
            },
            etag: "e".into(),
            attempt: None,
        }
    }

    #[test]
    fn a_clock_behind_the_newest_version_is_noticed() {
        let r = remote(3, "abc", "2026-11-24T06:00:00.000Z").entry;
        assert_eq!(clock_behind(&r, datetime!(2026-11-24 06:00 UTC)), None);
        assert_eq!(clock_behind(&r, datetime!(2026-11-24 05:59 UTC)), None);
        assert_eq!(
            clock_behind(&r, datetime!(2026-11-24 04:00 UTC)),
            Some(Duration::hours(2))
        );
    }

    #[test]
    fn same_hash_is_unchanged() {
        let r = remote(3, "abc", "2026-11-24T06:00:00Z");
        assert_eq!(
            decide("abc", Some(&r), datetime!(2026-11-25 06:00 UTC), None),
            Decision::Unchanged
        );
    }

    #[test]
    fn first_version_is_one() {
        let now = datetime!(2026-11-25 06:00:00.5004 UTC);
        assert_eq!(
            decide("abc", None, now, None),
            Decision::Publish {
                version: 1,
                created_at: datetime!(2026-11-25 06:00:00.500 UTC)
            }
        );
    }

    fn created_at(d: Decision) -> OffsetDateTime {
        match d {
            Decision::Publish { created_at, .. } => created_at,
            Decision::Unchanged => panic!("unchanged"),
        }
    }

    #[rstest::rstest]
    #[case::clock_ahead("2026-11-25T06:00:00.000Z", datetime!(2026-11-25 06:00:00.250 UTC), None, datetime!(2026-11-25 06:00:00.250 UTC))]
    #[case::clock_behind("2026-11-25T06:00:00.000Z", datetime!(2026-11-25 05:00 UTC), None, datetime!(2026-11-25 06:00:00.001 UTC))]
    #[case::same_millisecond("2026-11-25T06:00:00.250Z", datetime!(2026-11-25 06:00:00.2509 UTC), None, datetime!(2026-11-25 06:00:00.251 UTC))]
    #[case::after_a_second_precision_version("2026-11-25T06:00:00Z", datetime!(2026-11-25 06:00 UTC), None, datetime!(2026-11-25 06:00:00.001 UTC))]
    #[case::past_a_taken_key("2026-11-25T05:00:00Z", datetime!(2026-11-25 06:00 UTC), Some(datetime!(2026-11-25 06:00 UTC)), datetime!(2026-11-25 06:00:00.001 UTC))]
    #[case::taken_key_before_the_clock("2026-11-25T05:00:00Z", datetime!(2026-11-25 06:00 UTC), Some(datetime!(2026-11-25 05:59 UTC)), datetime!(2026-11-25 06:00 UTC))]
    fn created_at_strictly_increases_by_a_millisecond_at_least(
        #[case] prev: &str,
        #[case] now: OffsetDateTime,
        #[case] taken: Option<OffsetDateTime>,
        #[case] want: OffsetDateTime,
    ) {
        let r = remote(3, "abc", prev);
        let d = decide("def", Some(&r), now, taken);
        assert_eq!(
            d,
            Decision::Publish {
                version: 4,
                created_at: want
            }
        );
    }

    #[test]
    fn a_burst_of_versions_runs_ahead_of_the_clock_by_a_millisecond_each() {
        let now = datetime!(2026-11-25 06:00:00.999 UTC);
        let mut prev = remote(1, "sha0", "2026-11-25T06:00:00.999Z");
        for v in 2..=21u64 {
            let t = created_at(decide(&format!("sha{v}"), Some(&prev), now, None));
            assert_eq!(t, now + Duration::milliseconds(v as i64 - 1));
            prev = remote(v, &format!("sha{v}"), &keys::created_at(t));
        }
    }
}

//! Every object key and metadata name, built in one place.
//!
//! Layout (docs/design.md): `{prefix}/{dataset}/latest.json`, `manifest.json`,
//! `snapshots/{ts}-{sha12}.json.gz`, `deltas/{ts}-{sha12}.delta.json.gz`, where `ts` is the
//! version's `created_at` to the millisecond without colons (`2026-11-24T060000.123Z`; stores
//! written before millisecond precision hold `2026-11-24T060000Z`, and everything that reads
//! keys or `created_at` accepts both). Dataset names are validated here (`[a-z0-9._-]+`, no
//! leading `.`) so no name can escape the prefix or collide with the store's own entries.

use time::OffsetDateTime;

use crate::error::{Error, Result};

pub const META_VERSION: &str = "snapsync-version";
pub const META_SHA256: &str = "snapsync-sha256";
pub const META_PREV_SHA256: &str = "snapsync-prev-sha256";
pub const META_CREATED_AT: &str = "snapsync-created-at";
/// The rest of the version's manifest entry rides on `latest.json` (and the delta) so a crash
/// between the commit point and the manifest write can be repaired from metadata alone.
pub const META_SNAPSHOT: &str = "snapsync-snapshot";
pub const META_DELTA: &str = "snapsync-delta";
pub const META_STATS: &str = "snapsync-stats";
/// A random id of the publish attempt that wrote a version's objects and `latest.json`: the
/// only way a writer can tell its own object from an identical one another writer put at the
/// same key (same data, same `created_at`), and so whether the commit was its own.
pub const META_ATTEMPT: &str = "snapsync-attempt";

pub const LATEST: &str = "latest.json";
pub const MANIFEST: &str = "manifest.json";

/// Checks a dataset name against `[a-z0-9._-]+`, not starting with `.`: that rules out `.` and
/// `..`, and names that would collide with a store's own entries beside the datasets (the file
/// store's `.snapsync/` state, doctor's `.snapsync-probe-*` objects), which otherwise pass
/// here and fail only after the fetch.
pub fn validate_dataset_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "dataset name {name:?} must match [a-z0-9._-]+ and not start with '.' (names like .snapsync are the store's own)"
        )))
    }
}

/// Normalises a store prefix: no leading/trailing slashes, no empty, `.` or `..` segments.
pub fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
            return Err(Error::Config(format!(
                "store prefix {prefix:?} has an empty, '.', '..' or NUL segment"
            )));
        }
    }
    Ok(trimmed.to_string())
}

/// The keys of one dataset under one prefix.
#[derive(Debug, Clone)]
pub struct DatasetKeys {
    base: String,
}

impl DatasetKeys {
    /// `prefix` must come from [`normalize_prefix`], `dataset` pass [`validate_dataset_name`].
    pub fn new(prefix: &str, dataset: &str) -> Self {
        let base = if prefix.is_empty() {
            dataset.to_string()
        } else {
            format!("{prefix}/{dataset}")
        };
        DatasetKeys { base }
    }

    pub fn base(&self) -> &str {
        &self.base
    }
    pub fn latest(&self) -> String {
        format!("{}/{LATEST}", self.base)
    }
    pub fn manifest(&self) -> String {
        format!("{}/{MANIFEST}", self.base)
    }
    pub fn snapshots_dir(&self) -> String {
        format!("{}/snapshots/", self.base)
    }
    pub fn deltas_dir(&self) -> String {
        format!("{}/deltas/", self.base)
    }
    pub fn snapshot(&self, created_at: OffsetDateTime, sha256: &str) -> String {
        format!(
            "{}/snapshots/{}-{}.json.gz",
            self.base,
            key_timestamp(created_at),
            &sha256[..12]
        )
    }
    pub fn delta(&self, created_at: OffsetDateTime, sha256: &str) -> String {
        format!(
            "{}/deltas/{}-{}.delta.json.gz",
            self.base,
            key_timestamp(created_at),
            &sha256[..12]
        )
    }
    /// The history page, for people (`views::page`).
    pub fn page(&self) -> String {
        format!("{}/index.html", self.base)
    }
    /// The change table's folder: one Hive-style partition per version.
    pub fn changes_dir(&self) -> String {
        format!("{}/changes/", self.base)
    }
    /// Version `version`'s part of the change table.
    pub fn changes(&self, version: u64) -> String {
        format!("{}/changes/version={version}/part-0.parquet", self.base)
    }
    /// A key of this dataset relative to its folder (`snapshots/….json.gz`), as the history
    /// page links it; `None` for a key outside it.
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.base.as_str())?.strip_prefix('/')
    }
    /// The probe object `doctor` writes and deletes.
    pub fn probe(&self, nonce: &str) -> String {
        format!("{}/.snapsync-probe-{nonce}", self.base)
    }
}

/// The time in object keys, `2026-11-24T060000.123Z`: sortable (fixed width), and free of `:`
/// (awkward in file names and URLs). Stores written before millisecond precision hold keys
/// like `2026-11-24T060000Z`; [`parse_key_timestamp`] reads both.
pub fn key_timestamp(t: OffsetDateTime) -> String {
    created_at(t).replace(':', "")
}

/// A version's `created_at`: RFC 3339 in UTC with millisecond precision,
/// `2026-11-24T06:00:00.123Z` (always three digits, so the text sorts like the time). Stores
/// written before hold second precision (`2026-11-24T06:00:00Z`); [`parse_rfc3339`] reads both.
pub fn created_at(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}.{:03}Z",
        rfc3339(t).trim_end_matches('Z'),
        t.millisecond()
    )
}

/// `t` truncated to the millisecond: the precision of `created_at` and of object keys, so a
/// time and the key built from it name the same instant.
pub fn to_millis(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond() / 1_000_000 * 1_000_000;
    t.replace_nanosecond(nanos)
        .expect("a truncated nanosecond is valid")
}

/// RFC 3339 in UTC with second precision: `2026-11-24T06:00:00Z` (run times, schedules,
/// messages; a version's time is [`created_at`]).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Any RFC 3339 time, with or without fractional seconds.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Whether `key` is named the way snapsync names a snapshot or delta in `dir` (`snapshots/` or
/// `deltas/` of one dataset): `{time}-{12 hex}.json.gz` or `{time}-{12 hex}.delta.json.gz`
/// directly inside it. Janitors only ever delete objects named so (and whose metadata says
/// snapsync wrote them); anything else in those directories belongs to someone else.
pub fn is_version_object(dir: &str, key: &str) -> bool {
    let Some(name) = key.strip_prefix(dir) else {
        return false;
    };
    let suffix = if dir.ends_with("/deltas/") {
        ".delta.json.gz"
    } else {
        ".json.gz"
    };
    let Some(stem) = name.strip_suffix(suffix) else {
        return false;
    };
    let Some((time, hash)) = stem.rsplit_once('-') else {
        return false;
    };
    hash.len() == 12
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && matches!(time.len(), 18 | 22)
        // The timestamp is all of it: its only `Z` ends it.
        && time.find('Z') == Some(time.len() - 1)
        && parse_key_timestamp(time).is_some()
}

/// The time at the start of an object key's file name: `2026-11-24T060000.123Z-…` or, in stores
/// written before millisecond precision, `2026-11-24T060000Z-…`.
pub fn parse_key_timestamp(name: &str) -> Option<OffsetDateTime> {
    let end = name.bytes().take(23).position(|b| b == b'Z')?;
    let ts = &name[..=end];
    let fmt = match ts.len() {
        18 => time::macros::format_description!("[year]-[month]-[day]T[hour][minute][second]Z"),
        22 => time::macros::format_description!(
            "[year]-[month]-[day]T[hour][minute][second].[subsecond digits:3]Z"
        ),
        _ => return None,
    };
    time::PrimitiveDateTime::parse(ts, fmt)
        .ok()
        .map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn layout_matches_design() {
        let k = DatasetKeys::new("history", "covid-countries");
        let t = datetime!(2026-11-24 06:00:00 UTC);
        let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(k.latest(), "history/covid-countries/latest.json");
        assert_eq!(k.manifest(), "history/covid-countries/manifest.json");
        assert_eq!(
            k.snapshot(t, sha),
            "history/covid-countries/snapshots/2026-11-24T060000.000Z-0123456789ab.json.gz"
        );
        assert_eq!(
            k.delta(t, sha),
            "history/covid-countries/deltas/2026-11-24T060000.000Z-0123456789ab.delta.json.gz"
        );
        assert_eq!(DatasetKeys::new("", "x").latest(), "x/latest.json");
        assert_eq!(rfc3339(t), "2026-11-24T06:00:00Z");
        assert_eq!(created_at(t), "2026-11-24T06:00:00.000Z");
        let t = datetime!(2026-11-24 06:00:00.123 UTC);
        assert_eq!(created_at(t), "2026-11-24T06:00:00.123Z");
        assert_eq!(
            k.snapshot(t, sha),
            "history/covid-countries/snapshots/2026-11-24T060000.123Z-0123456789ab.json.gz"
        );
    }

    #[rstest::rstest]
    #[case::millis("2026-11-24T060000.123Z-0123456789ab.json.gz", Some(datetime!(2026-11-24 06:00:00.123 UTC)))]
    #[case::seconds_in_older_stores("2026-11-24T060000Z-0123456789ab.delta.json.gz", Some(datetime!(2026-11-24 06:00 UTC)))]
    #[case::not_a_time("x.json.gz", None)]
    #[case::too_many_digits("2026-11-24T060000.1234Z-0123456789ab.json.gz", None)]
    #[case::short("2026-11-24T0600Z", None)]
    fn key_timestamps_parse_in_both_precisions(
        #[case] name: &str,
        #[case] want: Option<OffsetDateTime>,
    ) {
        assert_eq!(parse_key_timestamp(name), want);
    }

    #[rstest::rstest]
    #[case::snapshot(
        "d/snapshots/",
        "d/snapshots/2026-11-24T060000.123Z-0123456789ab.json.gz",
        true
    )]
    #[case::seconds(
        "d/snapshots/",
        "d/snapshots/2026-11-24T060000Z-0123456789ab.json.gz",
        true
    )]
    #[case::delta(
        "d/deltas/",
        "d/deltas/2026-11-24T060000.123Z-0123456789ab.delta.json.gz",
        true
    )]
    #[case::delta_name_in_snapshots(
        "d/snapshots/",
        "d/snapshots/2026-11-24T060000.123Z-0123456789ab.delta.json.gz",
        false
    )]
    #[case::notes("d/snapshots/", "d/snapshots/NOTES.txt", false)]
    #[case::nested(
        "d/snapshots/",
        "d/snapshots/backup/2026-11-24T060000.123Z-0123456789ab.json.gz",
        false
    )]
    #[case::short_hash(
        "d/snapshots/",
        "d/snapshots/2026-11-24T060000.123Z-0123.json.gz",
        false
    )]
    #[case::upper_hash(
        "d/snapshots/",
        "d/snapshots/2026-11-24T060000.123Z-0123456789AB.json.gz",
        false
    )]
    #[case::junk_after_the_time(
        "d/snapshots/",
        "d/snapshots/2026-11-24T060000Zx/yZ-0123456789ab.json.gz",
        false
    )]
    #[case::other_dir(
        "d/snapshots/",
        "e/snapshots/2026-11-24T060000.123Z-0123456789ab.json.gz",
        false
    )]
    fn version_object_names(#[case] dir: &str, #[case] key: &str, #[case] want: bool) {
        assert_eq!(is_version_object(dir, key), want);
    }

    #[test]
    fn created_at_round_trips_and_old_ones_parse() {
        let t = datetime!(2026-11-24 06:00:00.123456789 UTC);
        assert_eq!(to_millis(t), datetime!(2026-11-24 06:00:00.123 UTC));
        assert_eq!(parse_rfc3339(&created_at(t)), Some(to_millis(t)));
        assert_eq!(
            parse_rfc3339("2026-11-24T06:00:00Z"),
            Some(datetime!(2026-11-24 06:00 UTC))
        );
    }

    #[test]
    fn names_cannot_escape_the_prefix() {
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "A", "a\0b", "é"] {
            assert!(validate_dataset_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_dataset_name("covid-countries.v1_x").is_ok());
        assert!(normalize_prefix("a/../b").is_err());
        assert!(normalize_prefix("a//b").is_err());
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "a/b");
        assert_eq!(normalize_prefix("").unwrap(), "");
    }
}

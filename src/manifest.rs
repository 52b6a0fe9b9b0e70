//! The manifest (`manifest.json`): the index of every version, and the metadata each object
//! carries so the manifest can be rebuilt from the objects alone.
//!
//! Every object of a version (snapshot, delta, `latest.json`) carries the version's whole
//! manifest entry in its user metadata. That is what makes the publish protocol repairable: a
//! crash after the commit point (latest.json) but before the manifest write leaves an entry
//! that the next run reads back from `latest.json`'s metadata (or, further back, from the
//! delta objects) and appends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::changes::ValueCounts;
use crate::keys;

pub const FORMAT: &str = "snapsync-manifest/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub dataset: String,
    pub versions: Vec<Entry>,
}

impl Manifest {
    pub fn new(dataset: &str) -> Self {
        Manifest {
            format: FORMAT.to_string(),
            dataset: dataset.to_string(),
            versions: Vec::new(),
        }
    }

    pub fn last(&self) -> Option<&Entry> {
        self.versions.last()
    }

    pub fn get(&self, version: u64) -> Option<&Entry> {
        self.versions.iter().find(|e| e.version == version)
    }

    /// Checks the chain: versions 1..n in order, each `prev_sha256` the previous `sha256`.
    pub fn check_chain(&self) -> Result<(), String> {
        let mut prev: Option<&Entry> = None;
        for e in &self.versions {
            let want_version = prev.map_or(1, |p| p.version + 1);
            if e.version != want_version {
                return Err(format!(
                    "version {} follows {}",
                    e.version,
                    want_version - 1
                ));
            }
            if e.prev_sha256.as_deref() != prev.map(|p| p.sha256.as_str()) {
                return Err(format!(
                    "version {} does not follow from the one before it",
                    e.version
                ));
            }
            prev = Some(e);
        }
        Ok(())
    }
}

/// One version, as listed in the manifest and carried in object metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u64,
    pub created_at: String,
    pub sha256: String,
    pub prev_sha256: Option<String>,
    /// Object keys, relative to the bucket (the store's root).
    pub snapshot: String,
    pub delta: Option<String>,
    pub canonical_bytes: u64,
    pub snapshot_bytes: u64,
    pub delta_bytes: Option<u64>,
    pub records: Option<u64>,
    pub added: u64,
    pub removed: u64,
    /// Records that only changed position (or also changed; they count in `changed` too).
    /// Absent (0) in manifests and metadata written before moves were diffed as moves.
    #[serde(default)]
    pub moved: u64,
    pub changed: u64,
    /// Values appended, revised, derived and deleted inside records that kept their key
    /// ([`crate::changes`]). Absent for the first version, for data without keyed records, and
    /// in manifests written before values were counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<ValueCounts>,
    /// `prune` deleted this version's snapshot: the version is restored from an older kept
    /// snapshot plus deltas. Absent (false) in manifests written before prune existed, and in
    /// every object's metadata at publish time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pruned: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Entry {
    /// The key of the snapshot when it still exists (not pruned).
    pub fn live_snapshot(&self) -> Option<&str> {
        (!self.pruned).then_some(self.snapshot.as_str())
    }

    /// The same version with the same objects, whatever `prune` did to its snapshot since.
    pub fn same_version(&self, other: &Entry) -> bool {
        Entry {
            pruned: other.pruned,
            ..self.clone()
        } == *other
    }

    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(keys::META_VERSION.into(), self.version.to_string());
        m.insert(keys::META_SHA256.into(), self.sha256.clone());
        if let Some(p) = &self.prev_sha256 {
            m.insert(keys::META_PREV_SHA256.into(), p.clone());
        }
        m.insert(keys::META_CREATED_AT.into(), self.created_at.clone());
        m.insert(keys::META_SNAPSHOT.into(), self.snapshot.clone());
        if let Some(d) = &self.delta {
            m.insert(keys::META_DELTA.into(), d.clone());
        }
        let mut stats = format!(
            "canonical={};snapshot={};added={};removed={};moved={};changed={}",
            self.canonical_bytes,
            self.snapshot_bytes,
            self.added,
            self.removed,
            self.moved,
            self.changed
        );
        if let Some(d) = self.delta_bytes {
            stats.push_str(&format!(";delta={d}"));
        }
        if let Some(r) = self.records {
            stats.push_str(&format!(";records={r}"));
        }
        if let Some(v) = self.values {
            stats.push_str(&format!(
                ";appended={};revised={};derived={};deleted={}",
                v.appended, v.revised, v.derived, v.deleted
            ));
        }
        if self.pruned {
            stats.push_str(";pruned=1");
        }
        m.insert(keys::META_STATS.into(), stats);
        m
    }

    /// Reads an entry back from object metadata; `None` when it is not a snapsync object.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Option<Entry> {
        let stats: BTreeMap<&str, u64> = m
            .get(keys::META_STATS)?
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        let sha256 = m.get(keys::META_SHA256)?.clone();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Entry {
            version: m.get(keys::META_VERSION)?.parse().ok()?,
            created_at: m.get(keys::META_CREATED_AT)?.clone(),
            sha256,
            prev_sha256: m.get(keys::META_PREV_SHA256).cloned(),
            snapshot: m.get(keys::META_SNAPSHOT)?.clone(),
            delta: m.get(keys::META_DELTA).cloned(),
            canonical_bytes: *stats.get("canonical")?,
            snapshot_bytes: *stats.get("snapshot")?,
            delta_bytes: stats.get("delta").copied(),
            records: stats.get("records").copied(),
            added: stats.get("added").copied().unwrap_or(0),
            removed: stats.get("removed").copied().unwrap_or(0),
            moved: stats.get("moved").copied().unwrap_or(0),
            changed: stats.get("changed").copied().unwrap_or(0),
            values: stats.get("appended").map(|&appended| ValueCounts {
                appended,
                revised: stats.get("revised").copied().unwrap_or(0),
                derived: stats.get("derived").copied().unwrap_or(0),
                deleted: stats.get("deleted").copied().unwrap_or(0),
            }),
            pruned: stats.get("pruned") == Some(&1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, prev: Option<&str>, sha: char) -> Entry {
        Entry {
            version,
            created_at: "2026-11-24T06:00:00Z".into(),
            sha256: sha.to_string().repeat(64),
            prev_sha256: prev.map(str::to_string),
            snapshot: "p/d/snapshots/x.json.gz".into(),
            delta: prev.map(|_| "p/d/deltas/x.delta.json.gz".into()),
            canonical_bytes: 100,
            snapshot_bytes: 40,
            delta_bytes: prev.map(|_| 10),
            records: Some(3),
            added: 1,
            removed: 0,
            moved: 4,
            changed: 2,
            values: prev.map(|_| ValueCounts {
                appended: 3,
                revised: 1,
                derived: 2,
                deleted: 0,
            }),
            pruned: false,
        }
    }

    #[test]
    fn metadata_roundtrip() {
        let mut pruned = entry(3, Some(&"b".repeat(64)), 'c');
        pruned.pruned = true;
        for e in [
            entry(1, None, 'a'),
            entry(2, Some(&"a".repeat(64)), 'b'),
            pruned,
        ] {
            assert_eq!(Entry::from_metadata(&e.to_metadata()), Some(e));
        }
        assert_eq!(Entry::from_metadata(&BTreeMap::new()), None);
    }

    #[test]
    fn pruned_is_absent_unless_set_and_old_manifests_still_parse() {
        let e = entry(1, None, 'a');
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("pruned"), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
        let mut p = e.clone();
        p.pruned = true;
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains(r#""pruned":true"#), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), p);
        assert!(p.same_version(&e) && e.same_version(&p));
        assert_eq!(
            (p.live_snapshot(), e.live_snapshot().is_some()),
            (None, true)
        );
    }

    #[test]
    fn chain_check_finds_gaps_and_forks() {
        let a = "a".repeat(64);
        let mut m = Manifest::new("d");
        m.versions = vec![entry(1, None, 'a'), entry(2, Some(&a), 'b')];
        assert!(m.check_chain().is_ok());
        m.versions.push(entry(4, Some(&"b".repeat(64)), 'c'));
        assert!(m.check_chain().is_err());
        m.versions[2] = entry(3, Some(&a), 'c');
        assert!(m.check_chain().unwrap_err().contains("does not follow"));
    }
}

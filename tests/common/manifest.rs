//! Manifest entries made by hand, and objects planted the way other writers leave them.

use bytes::Bytes;
use snapsync::gzip;
use snapsync::manifest::Entry;
use snapsync::store::{DynStore, PutMode, PutOptions};

/// Version `version` with hash `sha256` and snapshot `snapshot` (1 byte, canonical 1 byte),
/// created at `created_at`; no delta, no predecessor.
pub fn entry(version: u64, created_at: &str, sha256: &str, snapshot: &str) -> Entry {
    Entry {
        version,
        created_at: created_at.into(),
        sha256: sha256.into(),
        prev_sha256: None,
        snapshot: snapshot.into(),
        delta: None,
        canonical_bytes: 1,
        snapshot_bytes: 1,
        delta_bytes: None,
        records: None,
        ..Entry::default()
    }
}

/// Puts an object at `key` the way a writer that lost its race leaves one: `like`'s metadata,
/// naming `key` as its snapshot or delta.
pub async fn plant_orphan(store: &DynStore, key: &str, like: &Entry) {
    let mut e = like.clone();
    if key.contains("/deltas/") {
        e.delta = Some(key.to_string());
    } else {
        e.snapshot = key.to_string();
    }
    store
        .put(
            key,
            Bytes::from(gzip::gzip(b"[]", 1)),
            PutOptions::gzip_json(PutMode::Create).with_metadata(e.to_metadata()),
        )
        .await
        .unwrap();
}

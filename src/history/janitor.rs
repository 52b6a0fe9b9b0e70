//! The janitor: deleting orphans (objects no version names) safely beside writers that commit
//! meanwhile (see [`sweep_orphans`] for the protocol).

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::keys::{self, DatasetKeys};
use crate::manifest::{Entry, Manifest};
use crate::remote::{latest_entry, read_manifest};
use crate::store::{DynStore, ListEntry};

use super::*;

/// The time in an object key's file name (`2026-11-24T060000.123Z-…`, or `…T060000Z-…` in
/// stores written before millisecond precision).
pub fn key_time(key: &str) -> Option<OffsetDateTime> {
    keys::parse_key_timestamp(key.rsplit('/').next()?)
}

/// What a janitor found under `snapshots/` and `deltas/` besides the versions' objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// snapsync's orphans old enough to go: deleted (or, in a dry run, to be deleted).
    pub deleted: Vec<String>,
    /// snapsync's orphans younger than [`ORPHAN_GRACE`] by the store's clock: kept, since a
    /// run may be about to commit them.
    pub young: Vec<String>,
    /// Files snapsync did not write (by name, or by missing metadata): never deleted.
    pub foreign: Vec<String>,
}

/// Splits listed objects that `named` does not hold into deletable, young and foreign, by
/// name and by the store's clock (`store_now`). Pure: the protocol around it is
/// [`sweep_orphans`].
pub fn classify_orphans(
    keys: &DatasetKeys,
    listed: &[ListEntry],
    named: &BTreeSet<String>,
    store_now: OffsetDateTime,
) -> Sweep {
    let mut out = Sweep::default();
    let (snapshots, deltas) = (keys.snapshots_dir(), keys.deltas_dir());
    for obj in listed {
        if named.contains(&obj.key) {
            continue;
        }
        let ours = keys::is_version_object(&snapshots, &obj.key)
            || keys::is_version_object(&deltas, &obj.key);
        if !ours {
            out.foreign.push(obj.key.clone());
        } else if obj.modified.is_some_and(|t| t + ORPHAN_GRACE <= store_now) {
            out.deleted.push(obj.key.clone());
        } else {
            out.young.push(obj.key.clone());
        }
    }
    out
}

/// Every object key the history names right now: the manifest's versions and `latest.json`'s.
/// The manifest may lag `latest.json` by one version (a writer between its commit and its
/// manifest write; latest names that version's objects itself). Further behind, the objects
/// of the versions in between cannot be told from other attempts' of the same data, so the
/// janitor waits for the writers to catch up, and then refuses rather than guess. A manifest
/// that cannot be read stops the janitor too.
async fn named_now(store: &DynStore, keys: &DatasetKeys) -> Result<BTreeSet<String>> {
    let mut attempt = 0;
    let (manifest, latest) = loop {
        let latest = latest_entry(store, keys).await?;
        let manifest = read_manifest(store, keys)
            .await?
            .unwrap_or_else(|| Manifest::new(dataset_name(keys)));
        let have = manifest.last().map_or(0, |e| e.version);
        let behind = latest
            .as_ref()
            .map_or(0, |l| l.version.saturating_sub(have));
        if behind <= 1 {
            break (manifest, latest);
        }
        attempt += 1;
        if attempt == MAX_ATTEMPTS {
            return Err(Error::corrupt(store.url(), keys.manifest(), format!("is {behind} versions behind latest.json; run `snapsync verify --repair` before deleting orphans")));
        }
        tokio::time::sleep(WRITER_SETTLE).await;
    };
    Ok(named_keys(manifest.versions.iter().chain(&latest)))
}

/// The object keys these versions name: each one's live snapshot and its delta.
pub(crate) fn named_keys<'a>(versions: impl Iterator<Item = &'a Entry>) -> BTreeSet<String> {
    versions
        .flat_map(|e| [e.live_snapshot(), e.delta.as_deref()])
        .flatten()
        .map(str::to_string)
        .collect()
}

/// Deletes snapsync's orphans (objects no version names) that are older than [`ORPHAN_GRACE`]
/// by the store's clock, safely beside writers that commit meanwhile:
///
/// 1. read what the history names (latest, manifest, and any versions between them);
/// 2. list `snapshots/` and `deltas/`, and take the store's clock after listing;
/// 3. keep everything named, everything young by the store's clock, and everything not named
///    like snapsync's objects;
/// 4. read what the history names *again* (a writer may have committed since step 1: its
///    objects are then named, whatever their age) and keep those;
/// 5. delete a candidate only when its own metadata says snapsync wrote it as that very key.
///
/// `now` is this machine's clock; [`store_now`](crate::store::store_now) corrects it by the store's measured skew.
pub async fn sweep_orphans(
    store: &DynStore,
    keys: &DatasetKeys,
    now: OffsetDateTime,
    dry_run: bool,
) -> Result<Sweep> {
    let named = named_now(store, keys).await?;
    let mut listed = store.list(&keys.snapshots_dir()).await?;
    listed.extend(store.list(&keys.deltas_dir()).await?);
    let store_now = crate::store::store_now(store.as_ref(), now);
    let mut sweep = classify_orphans(keys, &listed, &named, store_now);
    if sweep.deleted.is_empty() {
        return Ok(sweep);
    }
    let named_after = named_now(store, keys).await?;
    let mut candidates = std::mem::take(&mut sweep.deleted);
    candidates.retain(|k| !named_after.contains(k));
    for key in candidates {
        let written_as_this = store
            .head(&key)
            .await?
            .and_then(|m| Entry::from_metadata(&m.metadata))
            .is_some_and(|e| e.snapshot == key || e.delta.as_deref() == Some(key.as_str()));
        if !written_as_this {
            sweep.foreign.push(key);
            continue;
        }
        if !dry_run {
            store.delete(&key).await?;
        }
        sweep.deleted.push(key);
    }
    Ok(sweep)
}

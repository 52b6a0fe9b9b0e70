//! Working with a published history as a whole: `verify` replays the chain.
//!
//! Verification trusts nothing but hashes: every snapshot must decompress to its recorded
//! sha256, every delta applied to its base's snapshot must give the next version's sha256, the
//! manifest must be one unbroken chain, and `latest.json` must be its last version. Objects in
//! `snapshots/` or `deltas/` that no manifest entry names are orphans of uncommitted attempts:
//! reported, not errors.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::canonical::{Document, KeyPointer};
use crate::delta::{self, Delta};
use crate::error::{Error, Result};
use crate::keys::DatasetKeys;
use crate::manifest::{Entry, Manifest};
use crate::plan;
use crate::store::DynStore;
use crate::sync::fetch_body;

/// Decompressed deltas are at most this large.
const MAX_DELTA: u64 = 4 << 30;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub versions: usize,
    /// What is wrong; empty when the history is sound.
    pub problems: Vec<String>,
    /// Objects no manifest entry refers to.
    pub orphans: Vec<String>,
}

impl VerifyReport {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads a dataset's manifest (`None` when the dataset has none).
pub async fn read_manifest(store: &DynStore, keys: &DatasetKeys) -> Result<Option<Manifest>> {
    let key = keys.manifest();
    match store.get(&key).await? {
        None => Ok(None),
        Some((bytes, _)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                store: store.url().to_string(),
                key,
                reason: format!("not a valid manifest: {e}"),
            }),
    }
}

/// Replays the whole chain of one dataset.
pub async fn verify(
    store: &DynStore,
    keys: &DatasetKeys,
    key: &KeyPointer,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let Some(manifest) = read_manifest(store, keys).await? else {
        if store.head(&keys.latest()).await?.is_some() {
            report
                .problems
                .push("latest.json exists but manifest.json does not".into());
        }
        return Ok(report);
    };
    report.versions = manifest.versions.len();
    if let Err(e) = manifest.check_chain() {
        report.problems.push(format!("manifest: {e}"));
    }
    match store.head(&keys.latest()).await? {
        None if !manifest.versions.is_empty() => {
            report.problems.push("latest.json is missing".into())
        }
        None => {}
        Some(meta) => {
            let latest = Entry::from_metadata(&meta.metadata);
            if latest.as_ref() != manifest.last() {
                let v = latest.map_or("no snapsync metadata".to_string(), |e| {
                    format!("version {}", e.version)
                });
                report.problems.push(format!(
                    "latest.json ({v}) is not the manifest's last version ({})",
                    manifest.last().map_or(0, |e| e.version)
                ));
            } else if let Some(last) = manifest.last() {
                if let Err(e) = fetch_body(store, &keys.latest(), &last.sha256).await {
                    report.problems.push(e.to_string());
                }
            }
        }
    }
    let mut prev: Option<(Entry, Document)> = None;
    for entry in &manifest.versions {
        let doc = match fetch_body(store, &entry.snapshot, &entry.sha256).await {
            Ok(body) => Document::from_canonical(Bytes::from(body), key, &entry.sha256).ok(),
            Err(e) => {
                report
                    .problems
                    .push(format!("version {}: {e}", entry.version));
                None
            }
        };
        if let (Some(delta_key), Some((prev_entry, prev_doc))) = (&entry.delta, &prev) {
            if let Err(problem) = check_delta(store, delta_key, prev_entry, prev_doc, entry).await {
                report.problems.push(format!(
                    "version {}: delta {delta_key}: {problem}",
                    entry.version
                ));
            }
        } else if entry.delta.is_none() && entry.version > 1 {
            report
                .problems
                .push(format!("version {} has no delta", entry.version));
        }
        prev = doc.map(|d| (entry.clone(), d));
    }
    let named: BTreeSet<&str> = manifest
        .versions
        .iter()
        .flat_map(|e| std::iter::once(e.snapshot.as_str()).chain(e.delta.as_deref()))
        .collect();
    for dir in [keys.snapshots_dir(), keys.deltas_dir()] {
        for obj in store.list(&dir).await? {
            if !named.contains(obj.key.as_str()) {
                report.orphans.push(obj.key);
            }
        }
    }
    Ok(report)
}

/// Applies one delta to its base and checks the result's hash.
async fn check_delta(
    store: &DynStore,
    delta_key: &str,
    base: &Entry,
    base_doc: &Document,
    entry: &Entry,
) -> std::result::Result<(), String> {
    let delta = read_delta(store, delta_key)
        .await
        .map_err(|e| e.to_string())?;
    if delta.from.sha256 != base.sha256 || delta.to.sha256 != entry.sha256 {
        return Err("its from/to hashes are not this version's".into());
    }
    let applied = delta::apply_document(base_doc, &delta.patch).map_err(|e| e.to_string())?;
    let got = crate::canonical::sha256_hex(&applied);
    if got != entry.sha256 {
        return Err(format!(
            "applied to version {} it gives {got}",
            base.version
        ));
    }
    Ok(())
}

/// Reads and parses a delta object.
pub async fn read_delta(store: &DynStore, key: &str) -> Result<Delta<'static>> {
    let corrupt = |reason: String| Error::Corrupt {
        store: store.url().to_string(),
        key: key.to_string(),
        reason,
    };
    let (bytes, _) = store
        .get(key)
        .await?
        .ok_or_else(|| corrupt("missing".into()))?;
    let json =
        plan::gunzip(&bytes, MAX_DELTA, 0).map_err(|e| corrupt(format!("not valid gzip: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(format!("not a valid delta: {e}")))
}

//! `prune`: snapshots only, never deltas, never version 1's or the newest; planned first
//! ([`PrunePlan`]), the manifest rewritten before anything is deleted.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::keys::DatasetKeys;
use crate::manifest::Manifest;
use crate::remote::{delete_objects, latest_entry, read_manifest_with_etag, write_manifest};
use crate::store::{DynStore, PutMode};

use super::*;

/// How many snapshots to keep: the last version of each of the `daily` most recent days that
/// have versions, and of each of the `monthly` most recent months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub daily: u32,
    pub monthly: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePlan {
    /// The manifest with the pruned entries marked (written first).
    pub manifest: Manifest,
    /// Versions whose snapshots stay, and why.
    pub keep: BTreeMap<u64, Vec<&'static str>>,
    /// Snapshots to delete (after the manifest is written).
    pub delete_snapshots: Vec<String>,
    /// What the orphan sweep found (see [`sweep_orphans`]), after the snapshots went.
    pub orphans: Sweep,
}

/// Decides which snapshots go. Version 1 (the chain's base) and the newest version always stay;
/// deltas all stay, so every version remains restorable. A version whose `created_at` cannot
/// be read is kept.
pub fn prune_plan(manifest: &Manifest, retention: Retention) -> PrunePlan {
    let mut keep: BTreeMap<u64, Vec<&'static str>> = BTreeMap::new();
    if let Some(first) = manifest.versions.first() {
        keep.entry(first.version).or_default().push("base");
    }
    if let Some(last) = manifest.last() {
        keep.entry(last.version).or_default().push("latest");
    }
    let mut by = |len: usize, n: u32, why: &'static str| {
        let mut periods = 0u32;
        let mut seen: Option<&str> = None;
        for e in manifest.versions.iter().rev() {
            let Some(period) = e.created_at.get(..len) else {
                keep.entry(e.version).or_default().push("undated");
                continue;
            };
            if seen == Some(period) {
                continue;
            }
            seen = Some(period);
            if periods >= n {
                continue;
            }
            periods += 1;
            keep.entry(e.version).or_default().push(why);
        }
    };
    by(10, retention.daily, "daily");
    by(7, retention.monthly, "monthly");
    let mut m = manifest.clone();
    let mut delete_snapshots = Vec::new();
    for e in &mut m.versions {
        if !keep.contains_key(&e.version) && !e.pruned {
            e.pruned = true;
            delete_snapshots.push(e.snapshot.clone());
        }
    }
    PrunePlan {
        manifest: m,
        keep,
        delete_snapshots,
        orphans: Sweep::default(),
    }
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    pub plan: Option<PrunePlan>,
    pub deleted: usize,
}

/// Plans and (unless `dry_run`) carries out a prune: the manifest first (conditionally, planning
/// again when another writer changed it), then the deletions.
pub async fn prune(
    store: &DynStore,
    keys: &DatasetKeys,
    retention: Retention,
    now: OffsetDateTime,
    dry_run: bool,
) -> Result<PruneOutcome> {
    for attempt in 0..MAX_ATTEMPTS {
        let Some((manifest, etag, _)) = read_manifest_with_etag(store, keys).await? else {
            return Ok(PruneOutcome::default());
        };
        manifest.check_chain().map_err(|reason| {
            Error::corrupt(
                store.url(),
                keys.manifest(),
                format!("{reason}; run `snapsync verify` before pruning"),
            )
        })?;
        let latest = latest_entry(store, keys).await?;
        if latest.as_ref().map(|l| l.version) != manifest.last().map(|e| e.version) {
            // A writer between its commit (latest.json) and its manifest write looks the same
            // for a moment: wait for it. Only a manifest that stays behind is a problem.
            if attempt + 1 < MAX_ATTEMPTS {
                tokio::time::sleep(WRITER_SETTLE).await;
                continue;
            }
            return Err(Error::corrupt(store.url(), keys.manifest(), "does not end at latest.json's version; run `snapsync verify --repair` before pruning"));
        }
        let mut plan = prune_plan(&manifest, retention);
        if !dry_run {
            if plan.manifest != manifest {
                match write_manifest(store, keys, &plan.manifest, PutMode::Update(etag)).await {
                    Ok(_) => {}
                    Err(Error::PreconditionFailed { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            delete_objects(store, &plan.delete_snapshots).await?;
        }
        plan.orphans = sweep_orphans(store, keys, now, dry_run).await?;
        let deleted = if dry_run {
            0
        } else {
            plan.delete_snapshots.len() + plan.orphans.deleted.len()
        };
        return Ok(PruneOutcome {
            plan: Some(plan),
            deleted,
        });
    }
    Err(Error::Contended {
        dataset: keys.base().to_string(),
        attempts: MAX_ATTEMPTS,
    })
}

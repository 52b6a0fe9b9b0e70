//! `verify` and `verify --repair`: every kept snapshot, every delta applied to the version
//! before it, the manifest's chain, `latest.json` and the local database, checked by hash; the
//! fixes planned as data ([`Fix`]) and then carried out.

use std::sync::Arc;

use crate::canonical::{Document, KeyPointer};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{self, DatasetKeys};
use crate::manifest::{Entry, Manifest};
use crate::remote::{
    apply_step_into, check_stored_hash, read_delta, read_document, read_manifest_with_etag,
    read_verified, recover_entries, write_manifest,
};
use crate::store::{DynStore, PutMode};

use super::*;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub versions: usize,
    /// What is wrong; empty when the history is sound.
    pub problems: Vec<String>,
    /// Worth knowing, not wrong (a local database behind the store).
    pub notes: Vec<String>,
    /// snapsync's own objects (by name) that no manifest entry refers to.
    pub orphans: Vec<String>,
    /// Other files under `snapshots/` and `deltas/` (a `NOTES.txt`, a `backup/` folder):
    /// reported, never deleted.
    pub foreign: Vec<String>,
    /// What `--repair` would do: only what the store's own objects prove.
    pub fixes: Vec<Fix>,
}

impl VerifyReport {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One repair, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Rewrite `manifest.json` (conditionally on the ETag read, or create it).
    Manifest {
        manifest: Manifest,
        etag: Option<String>,
        why: String,
    },
    /// Make the database's versions of this dataset the manifest's.
    Db {
        dataset_id: i64,
        entries: Vec<Entry>,
        why: String,
    },
}

impl Fix {
    pub fn describe(&self) -> String {
        match self {
            Fix::Manifest { why, .. } => format!("rewrite manifest.json: {why}"),
            Fix::Db { why, .. } => format!("update the database: {why}"),
        }
    }
}

/// The local database to compare with, for the store it describes.
pub struct DbCheck<'a> {
    pub db: &'a Db,
    pub store_url: &'a str,
    pub dataset: &'a str,
}

/// Replays the whole chain of one dataset (no database check).
pub async fn verify(
    store: &DynStore,
    keys: &DatasetKeys,
    key: &KeyPointer,
) -> Result<VerifyReport> {
    verify_with(store, keys, key, None).await
}

/// Replays the whole chain of one dataset and, when given, compares the local database.
pub async fn verify_with(
    store: &DynStore,
    keys: &DatasetKeys,
    key: &KeyPointer,
    db: Option<DbCheck<'_>>,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let latest_head = crate::remote::head_latest(store, keys).await?;
    let latest = latest_head.as_ref().and_then(|h| h.entry.clone());
    if latest_head.is_some() && latest.is_none() {
        report
            .problems
            .push("latest.json has no snapsync metadata".into());
    }
    let (manifest, etag) = match read_manifest_with_etag(store, keys).await {
        Ok(Some((m, etag, _))) => (Some(m), Some(etag)),
        Ok(None) => (None, None),
        Err(Error::Corrupt { reason, .. }) => {
            report.problems.push(format!("manifest.json: {reason}"));
            let etag = store.head(&keys.manifest()).await?.map(|m| m.etag);
            (None, etag)
        }
        Err(e) => return Err(e),
    };
    if manifest.is_none() && etag.is_none() && latest.is_some() {
        report
            .problems
            .push("latest.json exists but manifest.json does not".into());
    }

    // The manifest behind latest.json (a crash between the commit point and the manifest
    // write), unreadable or missing: the versions it lacks are proven by the objects' own
    // metadata. The chain walked is the manifest plus what was recovered.
    let mut walk = manifest
        .clone()
        .unwrap_or_else(|| Manifest::new(dataset_name(keys)));
    let have = walk.last().map_or(0, |e| e.version);
    let mut recovered = Vec::new();
    if let Some(l) = &latest {
        if l.version > have {
            if manifest.is_some() {
                report.problems.push(format!(
                    "manifest.json ends at version {have} but latest.json is version {}",
                    l.version
                ));
            }
            match recover_entries(store, keys, have, l, None).await {
                Ok(found) => recovered = found,
                Err(reason) => report.problems.push(format!(
                    "versions {} to {} cannot be recovered: {reason}",
                    have + 1,
                    l.version
                )),
            }
        }
    }
    walk.versions.extend(recovered.iter().cloned());
    report.versions = walk.versions.len();
    if let Err(e) = walk.check_chain() {
        report.problems.push(format!("manifest: {e}"));
    }

    match (&latest_head, walk.last()) {
        (None, Some(_)) => report.problems.push("latest.json is missing".into()),
        (Some(_), Some(last)) => match &latest {
            Some(l) if l.same_version(last) => {
                if let Err(e) = read_verified(store, &keys.latest(), last).await {
                    report.problems.push(e.to_string());
                }
            }
            Some(l) => report.problems.push(format!(
                "latest.json (version {}) is not the manifest's last version ({})",
                l.version, last.version
            )),
            None => {}
        },
        _ => {}
    }

    let mut newly_pruned = Vec::new();
    let mut prev: Option<(Entry, Arc<Document>)> = None;
    // The buffer of the version before `prev`, for the next one the deltas rebuild.
    let mut spare: Option<Vec<u8>> = None;
    let progress = crate::progress::start(
        format!("verifying {}", dataset_name(keys)),
        Some(walk.versions.len() as u64),
        crate::progress::Unit::Versions,
    );
    for entry in &walk.versions {
        progress.inc(1);
        let v = entry.version;
        let chained = match (&entry.delta, &prev) {
            (Some(delta_key), Some((prev_entry, prev_doc))) if prev_entry.version + 1 == v => {
                Some((delta_key.as_str(), prev_doc.clone()))
            }
            (None, _) if v > 1 => {
                report.problems.push(format!("version {v} has no delta"));
                None
            }
            _ => None,
        };
        // The snapshot, when the delta can rebuild the version, is only streamed through the
        // hash: on the other core, while the delta is applied here. (Applied here, not on a
        // blocking thread: the 30 MB buffers of each version then come from one thread's
        // malloc arena, where spreading them over several kept 260 MB resident, not 150.)
        let hashed = entry
            .live_snapshot()
            .filter(|_| chained.is_some())
            .map(|snapshot| {
                let (store, snapshot, sha) =
                    (store.clone(), snapshot.to_string(), entry.sha256.clone());
                tokio::spawn(async move { check_stored_hash(&store, &snapshot, &sha).await })
            });
        let by_delta = match chained {
            Some((delta_key, prev_doc)) => Some(match read_delta(store, delta_key).await {
                Ok((text, _)) => {
                    apply_step_into(&text, &prev_doc, entry, spare.take().unwrap_or_default())
                        .map(|(doc, _)| doc)
                        .map_err(|why| format!("version {v}: delta {delta_key}: {why}"))
                }
                Err(e) => Err(format!("version {v}: {e}")),
            }),
            None => None,
        };
        let hashed = match hashed {
            Some(task) => Some(
                task.await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
            ),
            None => None,
        };
        let mut doc = match by_delta {
            Some(Ok(doc)) => Some(Arc::new(doc)),
            Some(Err(problem)) => {
                report.problems.push(problem);
                None
            }
            None => None,
        };
        if let Some(snapshot) = entry.live_snapshot() {
            // Without the delta's version, the snapshot's document is the version.
            let read = match hashed.filter(|_| doc.is_some()) {
                Some(checked) => checked.map(|()| None),
                None => read_document(store, snapshot, key, &entry.sha256)
                    .await
                    .map(Some),
            };
            match read {
                Ok(Some(d)) if doc.is_none() => doc = Some(Arc::new(d)),
                Ok(_) => {}
                Err(Error::NotFound { .. }) if doc.is_some() => {
                    report.problems.push(format!(
                        "version {v}: snapshot {snapshot} is missing (the version is still restorable through its delta)"
                    ));
                    newly_pruned.push(v);
                }
                Err(e) => report.problems.push(format!("version {v}: {e}")),
            }
        } else if doc.is_none() {
            report.problems.push(format!(
                "version {v} cannot be restored: its snapshot was pruned and the chain to it is broken"
            ));
        }
        let before = std::mem::replace(&mut prev, doc.map(|d| (entry.clone(), d)));
        spare = before.and_then(|(_, d)| Arc::try_unwrap(d).ok()?.into_buffer());
    }

    // Repairing the manifest: what was recovered, and snapshots the deltas make unnecessary.
    if !recovered.is_empty() || !newly_pruned.is_empty() {
        let mut m = walk.clone();
        for e in &mut m.versions {
            if newly_pruned.contains(&e.version) {
                e.pruned = true;
            }
        }
        if m.check_chain().is_ok() {
            let mut why = Vec::new();
            if !recovered.is_empty() {
                why.push(format!(
                    "add versions {} to {} from the objects' metadata",
                    recovered[0].version,
                    recovered[recovered.len() - 1].version
                ));
            }
            if !newly_pruned.is_empty() {
                why.push(format!(
                    "mark the missing snapshots of versions {newly_pruned:?} as pruned"
                ));
            }
            report.fixes.push(Fix::Manifest {
                manifest: m,
                etag: etag.clone(),
                why: why.join("; "),
            });
        }
    }

    // Orphans: what no version names (a pruned snapshot left behind counts).
    let named = named_keys(walk.versions.iter().chain(&latest));
    for dir in [keys.snapshots_dir(), keys.deltas_dir()] {
        for obj in store.list(&dir).await? {
            if !keys::is_version_object(&dir, &obj.key) {
                report.foreign.push(obj.key);
            } else if !named.contains(&obj.key) {
                report.orphans.push(obj.key);
            }
        }
    }
    report.notes.extend(store.housekeeping());

    if let Some(check) = db {
        compare_db(&check, &walk, &mut report).await?;
    }
    Ok(report)
}

/// The dataset name: the last segment of its keys' base (`{prefix}/{dataset}`).
pub(crate) fn dataset_name(keys: &DatasetKeys) -> &str {
    keys.base().rsplit('/').next().unwrap_or_default()
}

/// Compares the database's versions with the (verified) chain.
async fn compare_db(
    check: &DbCheck<'_>,
    chain: &Manifest,
    report: &mut VerifyReport,
) -> Result<()> {
    let state = check.db.dataset(check.store_url, check.dataset).await?;
    let local = check.db.versions(state.id).await?;
    let n = local.len().min(chain.versions.len());
    let conflict = local[..n]
        .iter()
        .zip(&chain.versions[..n])
        .find(|(a, b)| !a.same_version(b))
        .map(|(a, _)| a.version);
    let why = if let Some(v) = conflict {
        let why = format!("the database's version {v} is not the store's");
        report.problems.push(why.clone());
        why
    } else if local.len() > chain.versions.len() {
        let why = format!(
            "the database lists {} versions, the store {}",
            local.len(),
            chain.versions.len()
        );
        report.problems.push(why.clone());
        why
    } else if local.len() < chain.versions.len() {
        let why = format!(
            "the database is behind the store ({} of {} versions; the next run catches up)",
            local.len(),
            chain.versions.len()
        );
        report.notes.push(why.clone());
        why
    } else {
        return Ok(());
    };
    report.fixes.push(Fix::Db {
        dataset_id: state.id,
        entries: chain.versions.clone(),
        why,
    });
    Ok(())
}

/// Carries out the fixes of a report. Returns what was done, one line each.
pub async fn repair(
    store: &DynStore,
    keys: &DatasetKeys,
    db: Option<&Db>,
    fixes: &[Fix],
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for fix in fixes {
        match fix {
            Fix::Manifest { manifest, etag, .. } => {
                let mode = etag.clone().map_or(PutMode::Create, PutMode::Update);
                write_manifest(store, keys, manifest, mode).await?;
                done.push(fix.describe());
            }
            Fix::Db {
                dataset_id,
                entries,
                ..
            } => {
                let Some(db) = db else { continue };
                let last = entries.last().map_or(0, |e| e.version);
                db.forget_versions_after(*dataset_id, last).await?;
                db.record_versions(*dataset_id, entries.clone(), None, None)
                    .await?;
                done.push(fix.describe());
            }
        }
    }
    Ok(done)
}

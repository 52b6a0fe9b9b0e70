//! [`pull`]: the local file read and identified by its hash, the plan carried out (deltas
//! applied one by one and checked, or the newest version downloaded whole), then the file and
//! its sidecar replaced.

use std::path::Path;

use bytes::Bytes;

use super::atomic::write_atomically;
use super::plan::{plan_pull, FullDownload, PullAction, PullCosts};
use super::{sidecar_path, PullReport, Sidecar, Via, SIDECAR_FORMAT};
use crate::canonical::{sha256_hex, Document, KeyPointer};
use crate::error::{Error, Result};
use crate::keys::DatasetKeys;
use crate::manifest::{Entry, Manifest};
use crate::remote::{apply_step, read_delta, read_latest, read_manifest_with_etag, read_verified};
use crate::store::DynStore;

/// What is on disk: the file's bytes and hash, and the sidecar if it is readable.
struct Local {
    doc_bytes: Bytes,
    sha256: String,
    sidecar: Option<Sidecar>,
}

fn read_local(out: &Path, warnings: &mut Vec<String>) -> Result<Option<Local>> {
    let bytes = match std::fs::read(out) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(out, e)),
    };
    let side = sidecar_path(out);
    let sidecar = match std::fs::read(&side) {
        Ok(text) => match serde_json::from_slice::<Sidecar>(&text) {
            Ok(s) => Some(s),
            Err(e) => {
                warnings.push(format!(
                    "{}: not a valid sidecar ({e}); identifying the file by its hash",
                    side.display()
                ));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&side, e)),
    };
    Ok(Some(Local {
        sha256: sha256_hex(&bytes),
        doc_bytes: Bytes::from(bytes),
        sidecar,
    }))
}

/// Brings `out` up to date with the dataset's newest version.
pub async fn pull(
    store: &DynStore,
    keys: &DatasetKeys,
    dataset: &str,
    out: &Path,
) -> Result<PullReport> {
    let mut warnings = Vec::new();
    let mut bytes = 0u64;
    let latest_head = crate::remote::head_latest(store, keys)
        .await?
        .ok_or_else(|| Error::Store {
            store: store.url().to_string(),
            key: keys.latest(),
            reason: "missing: nothing has been published for this dataset".into(),
            retryable: false,
        })?;
    let latest = latest_head
        .entry
        .ok_or_else(|| Error::corrupt(store.url(), keys.latest(), "has no snapsync metadata"))?;
    let local = read_local(out, &mut warnings)?;
    let manifest = match read_manifest_with_etag(store, keys).await {
        Ok(Some((m, _, size))) => {
            bytes += size;
            Some(m)
        }
        Ok(None) => None,
        Err(e @ Error::Corrupt { .. }) => {
            warnings.push(e.to_string());
            None
        }
        Err(e) => return Err(e),
    };

    // Which version the local file is: the sidecar's when the file still hashes to it, else
    // whichever version has the file's hash.
    let have: Option<Entry> = local.as_ref().and_then(|l| {
        let by_hash = |m: &Manifest| {
            m.versions
                .iter()
                .rev()
                .find(|e| e.sha256 == l.sha256)
                .cloned()
        };
        match (&l.sidecar, &manifest) {
            (Some(s), Some(m)) if s.sha256 == l.sha256 => {
                m.get(s.version).filter(|e| e.sha256 == s.sha256).cloned()
            }
            (_, Some(m)) => by_hash(m),
            (_, None) if l.sha256 == latest.sha256 => Some(latest.clone()),
            _ => None,
        }
    });
    if let (Some(l), None) = (&local, &have) {
        if l.sidecar.is_some() || manifest.is_some() {
            warnings.push(format!(
                "{} is not a version of {dataset} in {} (sha256 {}); replacing it with the newest version",
                out.display(),
                store.url(),
                &l.sha256[..12]
            ));
        }
    }

    let from_version = have.as_ref().map(|e| e.version);
    let plan = plan_pull(manifest.as_ref(), have.as_ref(), &latest, latest_head.size);
    tracing::info!(
        dataset,
        planned = plan.via().as_str(),
        deltas_bytes = plan.costs.deltas_bytes,
        snapshot_bytes = plan.costs.snapshot_bytes,
        latest_bytes = plan.costs.latest_bytes,
        reason = %plan.reason,
        "pull plan"
    );
    let mut route = Route {
        via: plan.via(),
        planned: plan.via(),
        reason: plan.reason.clone(),
        costs: plan.costs,
        from_version,
        deltas_applied: 0,
        bytes,
        warnings,
    };
    let (entry, doc) = match plan.action {
        PullAction::UpToDate => {
            let l = local.as_ref().expect("up to date implies a local file");
            (latest.clone(), l.doc_bytes.clone())
        }
        PullAction::Deltas(steps) => {
            let l = local.as_ref().expect("deltas imply a local file");
            match apply_deltas(store, l, &steps, &mut route.bytes).await {
                Ok(doc) => {
                    route.deltas_applied = steps.len();
                    (latest.clone(), doc)
                }
                Err(why) => {
                    route
                        .warnings
                        .push(format!("{why}; downloading the whole version instead"));
                    download_whole(store, keys, &plan.full, &mut route).await?
                }
            }
        }
        PullAction::Full => download_whole(store, keys, &plan.full, &mut route).await?,
    };
    if route.via != route.planned {
        tracing::warn!(
            dataset,
            via = route.via.as_str(),
            planned = route.planned.as_str(),
            "pull took another route than planned"
        );
    }
    finish(out, dataset, store, &entry, doc, route)
}

/// How a pull went, for its report.
struct Route {
    via: Via,
    planned: Via,
    reason: String,
    costs: PullCosts,
    from_version: Option<u64>,
    deltas_applied: usize,
    bytes: u64,
    warnings: Vec<String>,
}

/// The newest version whole: its gzip snapshot when that is the cheaper download, else (or
/// when the snapshot is missing or does not hash right) `latest.json`. Returns the entry it
/// got: `latest.json` may be a newer version than planned, committed since the HEAD.
async fn download_whole(
    store: &DynStore,
    keys: &DatasetKeys,
    full: &FullDownload,
    route: &mut Route,
) -> Result<(Entry, Bytes)> {
    if let FullDownload::Snapshot(entry) = full {
        match read_verified(store, &entry.snapshot, entry).await {
            Ok(read) => {
                route.bytes += read.transferred;
                route.via = Via::Snapshot;
                return Ok((Entry::clone(entry), read.body));
            }
            Err(e) => route
                .warnings
                .push(format!("{e}; downloading latest.json instead")),
        }
    }
    route.via = Via::Latest;
    let (entry, read) = read_latest(store, keys).await?;
    route.bytes += read.transferred;
    Ok((entry, read.body))
}

fn finish(
    out: &Path,
    dataset: &str,
    store: &DynStore,
    entry: &Entry,
    doc: Bytes,
    route: Route,
) -> Result<PullReport> {
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT.to_string(),
        dataset: dataset.to_string(),
        store: store.url().to_string(),
        version: entry.version,
        sha256: entry.sha256.clone(),
        created_at: entry.created_at.clone(),
    };
    if route.via != Via::UpToDate {
        write_atomically(out, &doc)?;
    }
    let side = serde_json::to_vec_pretty(&sidecar).expect("a sidecar serializes");
    let side_path = sidecar_path(out);
    if std::fs::read(&side_path).ok().as_deref() != Some(&side[..]) {
        write_atomically(&side_path, &side)?;
    }
    Ok(PullReport {
        dataset: dataset.to_string(),
        version: entry.version,
        sha256: entry.sha256.clone(),
        from_version: route.from_version,
        via: route.via,
        planned: route.planned,
        reason: route.reason,
        costs: route.costs,
        deltas_applied: route.deltas_applied,
        bytes: route.bytes,
        warnings: route.warnings,
    })
}

/// Applies each delta in turn; the error says which delta failed and why.
async fn apply_deltas(
    store: &DynStore,
    local: &Local,
    steps: &[Entry],
    bytes: &mut u64,
) -> std::result::Result<Bytes, String> {
    let mut doc = Document::from_canonical(
        local.doc_bytes.clone(),
        &KeyPointer::default(),
        &local.sha256,
    )?;
    let progress = crate::progress::start(
        "pulling deltas",
        Some(steps.len() as u64),
        crate::progress::Unit::Deltas,
    );
    for e in steps {
        progress.inc(1);
        let key = e.delta.as_deref().expect("planned steps have deltas");
        let (delta, n) = read_delta(store, key).await.map_err(|e| e.to_string())?;
        *bytes += n;
        doc = crate::blocking({
            let e = e.clone();
            move || apply_step(&delta, &doc, &e).map(|(doc, _)| doc)
        })
        .await
        .map_err(|why| format!("delta {key} in {}: {why}", store.url()))?;
    }
    Ok(doc.shared_bytes())
}

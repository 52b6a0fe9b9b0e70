//! `pull`: keep a local copy of a dataset up to date, reading only what a consumer may read
//! (the manifest, deltas and `latest.json`, through the `Store` trait; no SQLite, no writes to
//! the store, so read-only credentials are enough).
//!
//! The local file's version is remembered in a sidecar (`FILE.snapsync.json`: version and
//! sha256). The file itself is the authority: its hash is computed on every pull, and when the
//! sidecar disagrees (edited, or a pull interrupted between the two renames) the version is
//! looked up by that hash in the manifest. Deltas since that version are applied one by one,
//! each result checked against the next version's sha256; when the deltas together are not
//! smaller than `latest.json`, or any delta is missing or does not reproduce its hash, the
//! pull downloads `latest.json` instead (with a warning in the latter case).
//!
//! The file is replaced atomically (written beside it, synced, renamed over it), then the
//! sidecar: an interrupted pull leaves the old file, or the new file with a stale sidecar,
//! which the next pull recognises by hash. Never a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::canonical::{sha256_hex, Document, KeyPointer};
use crate::error::{Error, Result};
use crate::history::{apply_step, read_delta_counted, read_manifest_with_etag};
use crate::keys::DatasetKeys;
use crate::manifest::{Entry, Manifest};
use crate::plan;
use crate::store::DynStore;

pub const SIDECAR_FORMAT: &str = "snapsync-pull/1";
/// `latest.json` is at most this large when decompressed.
const MAX_BODY: u64 = 8 << 30;

/// `FILE.snapsync.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: String,
    pub dataset: String,
    pub store: String,
    pub version: u64,
    pub sha256: String,
    pub created_at: String,
}

pub fn sidecar_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".snapsync.json");
    PathBuf::from(s)
}

/// How to bring the local copy up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullPlan {
    UpToDate,
    /// Apply these versions' deltas, in order.
    Deltas(Vec<Entry>),
    /// Download `latest.json`; why (for the report).
    Latest(String),
}

/// Decides between deltas and `latest.json`. `have` is the local version (if known),
/// `latest` what `latest.json`'s metadata says and `latest_size` its size in bytes.
pub fn plan_pull(
    manifest: Option<&Manifest>,
    have: Option<&Entry>,
    latest: &Entry,
    latest_size: u64,
) -> PullPlan {
    let Some(have) = have else {
        return PullPlan::Latest("no local copy of a known version".into());
    };
    if have.sha256 == latest.sha256 {
        return PullPlan::UpToDate;
    }
    let Some(manifest) = manifest else {
        return PullPlan::Latest("the manifest is unreadable".into());
    };
    if manifest.last().map(|e| e.version) != Some(latest.version) {
        return PullPlan::Latest("the manifest does not list latest.json's version yet".into());
    }
    if have.version >= latest.version {
        return PullPlan::Latest("the local copy is not an ancestor of latest.json".into());
    }
    let steps: Vec<Entry> = manifest
        .versions
        .iter()
        .filter(|e| e.version > have.version)
        .cloned()
        .collect();
    if steps.iter().any(|e| e.delta.is_none()) {
        return PullPlan::Latest("a delta is missing from the manifest".into());
    }
    let delta_bytes: u64 = steps
        .iter()
        .map(|e| e.delta_bytes.unwrap_or(u64::MAX / 2))
        .sum();
    if delta_bytes >= latest_size {
        return PullPlan::Latest(format!(
            "{} deltas ({delta_bytes} bytes) are not smaller than latest.json ({latest_size} bytes)",
            steps.len()
        ));
    }
    PullPlan::Deltas(steps)
}

/// How the pull got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    UpToDate,
    Deltas,
    Latest,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub dataset: String,
    pub version: u64,
    pub sha256: String,
    pub from_version: Option<u64>,
    pub via: Via,
    pub deltas_applied: usize,
    /// Bytes of object bodies downloaded (manifest, deltas, latest.json).
    pub bytes: u64,
    pub warnings: Vec<String>,
}

impl PullReport {
    pub fn summary_line(&self) -> String {
        let via = match self.via {
            Via::UpToDate => "up-to-date".to_string(),
            Via::Deltas => format!("deltas({})", self.deltas_applied),
            Via::Latest => "latest".to_string(),
        };
        format!(
            "{} pulled version={} sha256={} from={} via={via} bytes={}",
            self.dataset,
            self.version,
            self.sha256,
            self.from_version.map_or("-".to_string(), |v| v.to_string()),
            self.bytes
        )
    }
}

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
    let latest_meta = store
        .head(&keys.latest())
        .await?
        .ok_or_else(|| Error::Store {
            store: store.url().to_string(),
            key: keys.latest(),
            reason: "missing: nothing has been published for this dataset".into(),
            retryable: false,
        })?;
    let latest = Entry::from_metadata(&latest_meta.metadata).ok_or_else(|| Error::Corrupt {
        store: store.url().to_string(),
        key: keys.latest(),
        reason: "has no snapsync metadata".into(),
    })?;
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
                "{} is not a version of {dataset} in {} (sha256 {}); replacing it with latest.json",
                out.display(),
                store.url(),
                &l.sha256[..12]
            ));
        }
    }

    let from_version = have.as_ref().map(|e| e.version);
    let plan = plan_pull(manifest.as_ref(), have.as_ref(), &latest, latest_meta.size);
    let (doc, via, applied) = match plan {
        PullPlan::UpToDate => {
            let l = local.as_ref().expect("up to date implies a local file");
            (l.doc_bytes.clone(), Via::UpToDate, 0)
        }
        PullPlan::Deltas(steps) => {
            let l = local.as_ref().expect("deltas imply a local file");
            match apply_deltas(store, l, &steps, &mut bytes).await {
                Ok(doc) => (doc, Via::Deltas, steps.len()),
                Err(why) => {
                    warnings.push(format!("{why}; downloading latest.json instead"));
                    (
                        download_latest(store, keys, &mut bytes).await?.1,
                        Via::Latest,
                        0,
                    )
                }
            }
        }
        PullPlan::Latest(_) => {
            let (entry, body) = download_latest(store, keys, &mut bytes).await?;
            if entry.sha256 != latest.sha256 {
                // A new version was committed between the HEAD and the GET: that one it is.
                return finish(
                    out,
                    dataset,
                    store,
                    &entry,
                    body,
                    from_version,
                    Via::Latest,
                    0,
                    bytes,
                    warnings,
                );
            }
            (body, Via::Latest, 0)
        }
    };
    finish(
        out,
        dataset,
        store,
        &latest,
        doc,
        from_version,
        via,
        applied,
        bytes,
        warnings,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    out: &Path,
    dataset: &str,
    store: &DynStore,
    entry: &Entry,
    doc: Bytes,
    from_version: Option<u64>,
    via: Via,
    deltas_applied: usize,
    bytes: u64,
    warnings: Vec<String>,
) -> Result<PullReport> {
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT.to_string(),
        dataset: dataset.to_string(),
        store: store.url().to_string(),
        version: entry.version,
        sha256: entry.sha256.clone(),
        created_at: entry.created_at.clone(),
    };
    if via != Via::UpToDate {
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
        from_version,
        via,
        deltas_applied,
        bytes,
        warnings,
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
    for e in steps {
        let key = e.delta.as_deref().expect("planned steps have deltas");
        let (delta, n) = read_delta_counted(store, key)
            .await
            .map_err(|e| e.to_string())?;
        *bytes += n;
        doc = tokio::task::spawn_blocking({
            let e = e.clone();
            move || apply_step(&delta, &doc, &e)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(|why| format!("delta {key} in {}: {why}", store.url()))?;
    }
    Ok(doc.shared_bytes())
}

/// `latest.json`'s body, checked against the hash in its own metadata.
async fn download_latest(
    store: &DynStore,
    keys: &DatasetKeys,
    bytes: &mut u64,
) -> Result<(Entry, Bytes)> {
    let key = keys.latest();
    let corrupt = |reason: String| Error::Corrupt {
        store: store.url().to_string(),
        key: key.clone(),
        reason,
    };
    let (raw, meta) = store
        .get(&key)
        .await?
        .ok_or_else(|| corrupt("missing".into()))?;
    *bytes += raw.len() as u64;
    let entry = Entry::from_metadata(&meta.metadata)
        .ok_or_else(|| corrupt("has no snapsync metadata".into()))?;
    let body = if meta.content_encoding.as_deref() == Some("gzip") {
        Bytes::from(
            plan::gunzip(&raw, MAX_BODY, entry.canonical_bytes)
                .map_err(|e| corrupt(format!("not valid gzip: {e}")))?,
        )
    } else {
        raw
    };
    let got = sha256_hex(&body);
    if got != entry.sha256 {
        return Err(corrupt(format!(
            "content hashes to {got}, its metadata says {}",
            entry.sha256
        )));
    }
    Ok((entry, body))
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: write a temporary file beside it, sync it, rename it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::io(path, std::io::Error::other("not a file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".snapsync-tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is synced (best effort: not every
        // platform can open a directory).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, delta_bytes: u64) -> Entry {
        Entry {
            version,
            created_at: "2026-01-01T00:00:00Z".into(),
            sha256: format!("{version:064x}"),
            prev_sha256: (version > 1).then(|| format!("{:064x}", version - 1)),
            snapshot: format!("s/{version}"),
            delta: (version > 1).then(|| format!("d/{version}")),
            canonical_bytes: 1000,
            snapshot_bytes: 100,
            delta_bytes: (version > 1).then_some(delta_bytes),
            records: None,
            added: 0,
            removed: 0,
            moved: 0,
            changed: 0,
            pruned: false,
        }
    }

    fn manifest(n: u64) -> Manifest {
        let mut m = Manifest::new("d");
        m.versions = (1..=n).map(|v| entry(v, 10)).collect();
        m
    }

    #[test]
    fn deltas_when_smaller_latest_otherwise() {
        let m = manifest(5);
        let latest = m.last().unwrap().clone();
        match plan_pull(Some(&m), m.get(2), &latest, 1000) {
            PullPlan::Deltas(steps) => assert_eq!(
                steps.iter().map(|e| e.version).collect::<Vec<_>>(),
                vec![3, 4, 5]
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(plan_pull(Some(&m), m.get(2), &latest, 30), PullPlan::Latest(w) if w.contains("not smaller"))
        );
        assert_eq!(
            plan_pull(Some(&m), m.get(5), &latest, 1000),
            PullPlan::UpToDate
        );
        assert!(matches!(
            plan_pull(Some(&m), None, &latest, 1000),
            PullPlan::Latest(_)
        ));
        assert!(matches!(
            plan_pull(None, m.get(2), &latest, 1000),
            PullPlan::Latest(_)
        ));
        let newer = entry(6, 10);
        assert!(
            matches!(plan_pull(Some(&m), m.get(2), &newer, 1000), PullPlan::Latest(w) if w.contains("does not list"))
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_atomically(&dir.path().join("missing/x.json"), b"x").is_err());
    }
}

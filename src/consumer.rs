//! `pull`: keep a local copy of a dataset up to date, reading only what a consumer may read
//! (the manifest, deltas, snapshots and `latest.json`, through the `Store` trait; no SQLite, no
//! writes to the store, so read-only credentials are enough).
//!
//! The local file's version is remembered in a sidecar (`FILE.snapsync.json`: version and
//! sha256). The file itself is the authority: its hash is computed on every pull, and when the
//! sidecar disagrees (edited, or a pull interrupted between the two renames) the version is
//! looked up by that hash in the manifest. Deltas since that version are applied one by one,
//! each result checked against the next version's sha256.
//!
//! [`plan_pull`] compares the deltas with the cheapest *whole* download, not with
//! `latest.json` alone: the newest version's gzip snapshot (its size is in the manifest entry;
//! it is immutable and checked by hash) is usually several times smaller than the plain
//! `latest.json`. When the whole download wins (or there is no known local version, or a
//! delta is missing or does not reproduce its hash, with a warning in the latter case) the
//! pull downloads that snapshot, and `latest.json` only when the snapshot is pruned, larger,
//! missing or does not hash right. The report says which (`via=deltas|snapshot|latest`), the
//! figures compared and why.
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
use crate::keys::DatasetKeys;
use crate::manifest::{Entry, Manifest};
use crate::remote::{
    apply_step, read_delta_counted, read_latest, read_manifest_with_etag, read_verified,
};
use crate::store::DynStore;

pub const SIDECAR_FORMAT: &str = "snapsync-pull/1";

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

/// What a pull does to bring the local copy up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullAction {
    UpToDate,
    /// Apply these versions' deltas, in order.
    Deltas(Vec<Entry>),
    /// Download the newest version whole, from [`PullPlan::full`].
    Full,
}

/// The cheapest way to download the newest version whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullDownload {
    /// This entry's gzip snapshot: immutable and checked against the entry's sha256.
    Snapshot(Box<Entry>),
    /// `latest.json`, checked against the hash in its own metadata.
    Latest,
}

/// The byte figures a plan compares (as stored, i.e. what a download transfers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PullCosts {
    /// The deltas from the local version to the newest, summed; `None` when they cannot be
    /// used (no known local version, a delta missing from the manifest, …).
    pub deltas_bytes: Option<u64>,
    /// The newest version's gzip snapshot; `None` when it has none (pruned).
    pub snapshot_bytes: Option<u64>,
    /// `latest.json`.
    pub latest_bytes: u64,
}

/// How to bring the local copy up to date, with the figures compared and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPlan {
    pub action: PullAction,
    /// The cheapest whole download: what `Full` downloads, and where a failed delta falls
    /// back to.
    pub full: FullDownload,
    pub costs: PullCosts,
    pub reason: String,
}

impl PullPlan {
    /// The route planned (the one taken unless a download fails).
    pub fn via(&self) -> Via {
        match (&self.action, &self.full) {
            (PullAction::UpToDate, _) => Via::UpToDate,
            (PullAction::Deltas(_), _) => Via::Deltas,
            (PullAction::Full, FullDownload::Snapshot(_)) => Via::Snapshot,
            (PullAction::Full, FullDownload::Latest) => Via::Latest,
        }
    }
}

/// Decides between deltas, the newest gzip snapshot and `latest.json`. `have` is the local
/// version (if known), `latest` what `latest.json`'s metadata says and `latest_size` its size
/// in bytes as stored.
///
/// A whole download costs the smaller of the newest version's gzip snapshot (unless prune
/// deleted it: the manifest says so) and `latest.json` (plain, unless the store gzips it).
/// Comparing the deltas with `latest.json` alone would send a consumer through 30 small
/// deltas that together outweigh one gzip snapshot several times over.
pub fn plan_pull(
    manifest: Option<&Manifest>,
    have: Option<&Entry>,
    latest: &Entry,
    latest_size: u64,
) -> PullPlan {
    // latest.json's metadata names its version's snapshot (written before latest.json commits;
    // prune never deletes the newest): only the manifest can say it was pruned since.
    let pruned = manifest
        .and_then(|m| m.get(latest.version))
        .is_some_and(|e| e.sha256 == latest.sha256 && e.pruned);
    let snapshot = (!pruned && !latest.snapshot.is_empty()).then_some(latest);
    let mut costs = PullCosts {
        deltas_bytes: None,
        snapshot_bytes: snapshot.map(|e| e.snapshot_bytes),
        latest_bytes: latest_size,
    };
    let (full, full_name, full_bytes) = match snapshot {
        Some(e) if e.snapshot_bytes < latest_size => (
            FullDownload::Snapshot(Box::new(e.clone())),
            "the gzip snapshot",
            e.snapshot_bytes,
        ),
        _ => (FullDownload::Latest, "latest.json", latest_size),
    };
    // Why the whole version is downloaded from where it is.
    let full_why = match (&full, costs.snapshot_bytes) {
        (FullDownload::Snapshot(_), _) => {
            format!("the gzip snapshot ({full_bytes} bytes) is smaller than latest.json ({latest_size} bytes)")
        }
        (FullDownload::Latest, Some(s)) => {
            format!("latest.json ({latest_size} bytes) is not larger than the gzip snapshot ({s} bytes)")
        }
        (FullDownload::Latest, None) => {
            "the newest version's snapshot was pruned: latest.json".to_string()
        }
    };
    let plan = |action, costs, reason: String| PullPlan {
        action,
        full: full.clone(),
        costs,
        reason,
    };
    let whole = |costs, why: &str| plan(PullAction::Full, costs, format!("{why}; {full_why}"));

    let Some(have) = have else {
        return whole(costs, "no local copy of a known version");
    };
    if have.sha256 == latest.sha256 {
        return plan(
            PullAction::UpToDate,
            costs,
            "the local copy is the newest version".into(),
        );
    }
    let Some(manifest) = manifest else {
        return whole(costs, "the manifest is unreadable");
    };
    if manifest.last().map(|e| e.version) != Some(latest.version) {
        return whole(
            costs,
            "the manifest does not list latest.json's version yet",
        );
    }
    if have.version >= latest.version {
        return whole(costs, "the local copy is not an ancestor of latest.json");
    }
    let steps: Vec<Entry> = manifest
        .versions
        .iter()
        .filter(|e| e.version > have.version)
        .cloned()
        .collect();
    if steps
        .iter()
        .any(|e| e.delta.is_none() || e.delta_bytes.is_none())
    {
        return whole(costs, "a delta is missing from the manifest");
    }
    let delta_bytes: u64 = steps.iter().filter_map(|e| e.delta_bytes).sum();
    costs.deltas_bytes = Some(delta_bytes);
    let n = steps.len();
    if delta_bytes >= full_bytes {
        return whole(
            costs,
            &format!("{n} deltas ({delta_bytes} bytes) are not smaller than {full_name} ({full_bytes} bytes)"),
        );
    }
    plan(
        PullAction::Deltas(steps),
        costs,
        format!(
            "{n} deltas ({delta_bytes} bytes) are smaller than {full_name} ({full_bytes} bytes)"
        ),
    )
}

/// How the pull got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    UpToDate,
    Deltas,
    /// The newest version's gzip snapshot.
    Snapshot,
    Latest,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::UpToDate => "up-to-date",
            Via::Deltas => "deltas",
            Via::Snapshot => "snapshot",
            Via::Latest => "latest",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub dataset: String,
    pub version: u64,
    pub sha256: String,
    pub from_version: Option<u64>,
    /// The route taken.
    pub via: Via,
    /// The route planned; differs from `via` when a download failed (see `warnings`).
    pub planned: Via,
    /// Why the plan chose its route, in words.
    pub reason: String,
    /// The figures the plan compared.
    #[serde(flatten)]
    pub costs: PullCosts,
    pub deltas_applied: usize,
    /// Bytes of object bodies downloaded (manifest, deltas, snapshot, latest.json).
    pub bytes: u64,
    pub warnings: Vec<String>,
}

impl PullReport {
    pub fn summary_line(&self) -> String {
        let via = match self.via {
            Via::Deltas => format!("deltas({})", self.deltas_applied),
            v => v.as_str().to_string(),
        };
        let planned = if self.planned == self.via {
            String::new()
        } else {
            format!(" planned={}", self.planned.as_str())
        };
        let figure = |b: Option<u64>| b.map_or("-".to_string(), |b| b.to_string());
        format!(
            "{} pulled version={} sha256={} from={} via={via}{planned} bytes={} deltas_bytes={} snapshot_bytes={} latest_bytes={}",
            self.dataset,
            self.version,
            self.sha256,
            self.from_version.map_or("-".to_string(), |v| v.to_string()),
            self.bytes,
            figure(self.costs.deltas_bytes),
            figure(self.costs.snapshot_bytes),
            self.costs.latest_bytes,
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
    for e in steps {
        let key = e.delta.as_deref().expect("planned steps have deltas");
        let (delta, n) = read_delta_counted(store, key)
            .await
            .map_err(|e| e.to_string())?;
        *bytes += n;
        doc = crate::blocking({
            let e = e.clone();
            move || apply_step(&delta, &doc, &e)
        })
        .await
        .map_err(|why| format!("delta {key} in {}: {why}", store.url()))?;
    }
    Ok(doc.shared_bytes())
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: write a temporary file beside it (`.NAME.<random>.snapsync-tmp`), sync it,
/// rename it over `path`, sync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::io(path, std::io::Error::other("not a file name")))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    // The temporary's name is random and it is created with O_CREAT|O_EXCL, so nothing
    // planted in the directory (a symlink at a name we would pick, say) can redirect the
    // write: an existing name is skipped, never opened. Mode 0666 less the umask, as a plain
    // create would give (a temporary file's default is 0600).
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".snapsync-tmp");
    #[cfg(unix)]
    builder
        .permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666));
    let result = (|| {
        // Removed on every error path when dropped.
        let mut tmp = builder.tempfile_in(&dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        let written_at = tmp.as_file().metadata()?.modified().ok();
        // rename(2) replaces the directory entry at `path`: if `path` is a symlink, the
        // symlink itself becomes this regular file and whatever it pointed at is untouched.
        // That is intended: `--out` names the file snapsync owns, not a way to write
        // somewhere else.
        tmp.persist(path).map_err(|e| e.error)?;
        // The rename is durable once the directory is synced (best effort: not every
        // platform can open a directory).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        if let (Some(at), Some(prefix)) = (written_at, prefix.to_str()) {
            remove_stale_temporaries(&dir, prefix, at);
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| Error::io(path, e))
}

/// A temporary this much older than the one just written is a leftover of a killed write.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes what killed writes of the same file left in `dir`: regular files named
/// `PREFIX…snapsync-tmp` (`.NAME.<random>.snapsync-tmp`, and `.NAME.snapsync-tmp` of earlier
/// releases) last modified an hour or more before `now` — the modification time of the
/// temporary just written, so the file system's clock, not ours, says what is old. Younger
/// ones may be another process's write in progress; symlinks are never snapsync's (and
/// `remove_file` would only unlink the link). Best effort: a failure here loses nothing.
fn remove_stale_temporaries(dir: &Path, prefix: &str, now: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) || !name.ends_with(".snapsync-tmp") {
            continue;
        }
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.file_type().is_file())
            .and_then(|m| m.modified().ok())
            .is_some_and(|t| {
                now.duration_since(t)
                    .is_ok_and(|age| age >= STALE_TEMPORARY)
            });
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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
            ..Entry::default()
        }
    }

    fn manifest(n: u64) -> Manifest {
        let mut m = Manifest::new("d");
        m.versions = (1..=n).map(|v| entry(v, 10)).collect();
        m
    }

    fn steps(p: &PullPlan) -> Vec<u64> {
        match &p.action {
            PullAction::Deltas(steps) => steps.iter().map(|e| e.version).collect(),
            other => panic!("not deltas: {other:?} ({})", p.reason),
        }
    }

    // Versions 2..=5 have 10-byte deltas; every snapshot is 100 bytes (gzip), latest.json 1000.
    #[test]
    fn deltas_when_smaller_than_the_gzip_snapshot() {
        let m = manifest(5);
        let latest = m.last().unwrap().clone();
        let p = plan_pull(Some(&m), m.get(2), &latest, 1000);
        assert_eq!(steps(&p), vec![3, 4, 5]);
        assert_eq!(p.via(), Via::Deltas);
        assert_eq!(
            p.costs,
            PullCosts {
                deltas_bytes: Some(30),
                snapshot_bytes: Some(100),
                latest_bytes: 1000
            }
        );
        assert!(
            p.reason
                .contains("smaller than the gzip snapshot (100 bytes)"),
            "{}",
            p.reason
        );
        // The fallback, should a delta fail, is the snapshot too.
        assert_eq!(p.full, FullDownload::Snapshot(Box::new(latest)));
    }

    #[test]
    fn snapshot_when_deltas_outweigh_it_though_smaller_than_latest_json() {
        let mut m = manifest(5);
        for e in &mut m.versions[1..] {
            e.delta_bytes = Some(40);
        }
        let latest = m.last().unwrap().clone();
        // 3 deltas = 120 bytes: less than latest.json (1000), more than the snapshot (100).
        let p = plan_pull(Some(&m), m.get(2), &latest, 1000);
        assert_eq!(
            (p.action.clone(), p.via()),
            (PullAction::Full, Via::Snapshot)
        );
        assert_eq!(p.full, FullDownload::Snapshot(Box::new(latest.clone())));
        assert_eq!(p.costs.deltas_bytes, Some(120));
        assert!(
            p.reason.contains(
                "3 deltas (120 bytes) are not smaller than the gzip snapshot (100 bytes)"
            ),
            "{}",
            p.reason
        );
        // One delta (40 bytes) still beats the snapshot.
        assert_eq!(
            steps(&plan_pull(Some(&m), m.get(4), &latest, 1000)),
            vec![5]
        );
        // Equal is not smaller: the whole version, one download instead of several.
        assert_eq!(
            plan_pull(
                Some(&m),
                m.get(3),
                &{
                    let mut l = latest.clone();
                    l.snapshot_bytes = 80;
                    l
                },
                1000
            )
            .via(),
            Via::Snapshot
        );
    }

    #[test]
    fn latest_json_when_the_snapshot_is_pruned_or_not_smaller() {
        let mut m = manifest(5);
        for e in &mut m.versions[1..] {
            e.delta_bytes = Some(400);
        }
        let latest = m.last().unwrap().clone();
        // A store that gzips latest.json: 90 bytes beat the 100-byte snapshot.
        let p = plan_pull(Some(&m), m.get(2), &latest, 90);
        assert_eq!(p.via(), Via::Latest);
        assert!(
            p.reason.contains("not smaller than latest.json (90 bytes)"),
            "{}",
            p.reason
        );
        assert!(
            p.reason.contains("not larger than the gzip snapshot"),
            "{}",
            p.reason
        );
        // Deltas (1200) vs latest.json (1000) once prune deleted the newest snapshot.
        m.versions[4].pruned = true;
        let p = plan_pull(Some(&m), m.get(2), &latest, 1000);
        assert_eq!((p.via(), p.costs.snapshot_bytes), (Via::Latest, None));
        assert_eq!(p.full, FullDownload::Latest);
        assert!(p.reason.contains("pruned"), "{}", p.reason);
        // Cheap deltas still win over latest.json when there is no snapshot.
        for e in &mut m.versions[1..] {
            e.delta_bytes = Some(10);
        }
        assert_eq!(
            steps(&plan_pull(Some(&m), m.get(2), &latest, 1000)),
            vec![3, 4, 5]
        );
    }

    #[test]
    fn without_a_usable_chain_the_cheapest_whole_download() {
        let m = manifest(5);
        let latest = m.last().unwrap().clone();
        assert_eq!(
            plan_pull(Some(&m), m.get(5), &latest, 1000).via(),
            Via::UpToDate
        );
        for p in [
            plan_pull(Some(&m), None, &latest, 1000),
            plan_pull(None, m.get(2), &latest, 1000),
        ] {
            assert_eq!(
                (p.action.clone(), p.via()),
                (PullAction::Full, Via::Snapshot),
                "{p:?}"
            );
            assert_eq!(p.costs.deltas_bytes, None);
        }
        assert!(plan_pull(Some(&m), None, &latest, 1000)
            .reason
            .starts_with("no local copy"));
        // Without a manifest latest.json's own metadata names its snapshot; it may be the
        // larger download.
        assert_eq!(plan_pull(None, None, &latest, 60).via(), Via::Latest);
        let newer = entry(6, 10);
        let p = plan_pull(Some(&m), m.get(2), &newer, 1000);
        assert!(p.reason.contains("does not list"), "{}", p.reason);
        assert_eq!(p.via(), Via::Snapshot);
        let mut gap = m.clone();
        gap.versions[3].delta = None;
        let p = plan_pull(Some(&gap), gap.get(2), &latest, 1000);
        assert!(p.reason.contains("a delta is missing"), "{}", p.reason);
    }

    #[test]
    fn the_summary_line_names_the_route_and_the_figures() {
        let r = PullReport {
            dataset: "d".into(),
            version: 5,
            sha256: "ab".into(),
            from_version: Some(2),
            via: Via::Latest,
            planned: Via::Snapshot,
            reason: "why".into(),
            costs: PullCosts {
                deltas_bytes: Some(120),
                snapshot_bytes: Some(100),
                latest_bytes: 1000,
            },
            deltas_applied: 0,
            bytes: 1100,
            warnings: vec![],
        };
        assert_eq!(
            r.summary_line(),
            "d pulled version=5 sha256=ab from=2 via=latest planned=snapshot bytes=1100 \
             deltas_bytes=120 snapshot_bytes=100 latest_bytes=1000"
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (
                v["via"].as_str(),
                v["planned"].as_str(),
                v["snapshot_bytes"].as_u64()
            ),
            (Some("latest"), Some("snapshot"), Some(100))
        );
        assert_eq!(v["reason"], "why");
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

    #[test]
    fn atomic_write_removes_only_stale_temporaries_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let aged = |name: &str, secs: u64| {
            let f = std::fs::File::create(at(name)).unwrap();
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
                .unwrap();
        };
        aged(".data.json.snapsync-tmp", 7200); // an earlier release's, killed
        aged(".data.json.Ab12Cd.snapsync-tmp", 7200); // killed
        aged(".data.json.Ef34Gh.snapsync-tmp", 60); // maybe another write in progress
        aged(".other.json.Ij56Kl.snapsync-tmp", 7200); // another file's
        aged("victim", 7200);
        std::os::unix::fs::symlink(at("victim"), at(".data.json.Mn78Op.snapsync-tmp")).unwrap();
        write_atomically(&at("data.json"), b"new").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".data.json.Ef34Gh.snapsync-tmp",
                ".data.json.Mn78Op.snapsync-tmp",
                ".other.json.Ij56Kl.snapsync-tmp",
                "data.json",
                "victim"
            ]
        );
    }
}

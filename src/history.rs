//! Working with a published history as a whole: `verify` (and `--repair`), `restore`, `prune`
//! and `replay`.
//!
//! Verification trusts nothing but hashes: every kept snapshot must decompress to its recorded
//! sha256, every delta applied to the version before it must give the next version's sha256,
//! the manifest must be one unbroken chain, `latest.json` must be its last version, and the
//! local database (when there is one) must mirror it. Objects in `snapshots/` or `deltas/` that
//! no manifest entry names are orphans of uncommitted attempts (or of an interrupted prune):
//! reported, not errors.
//!
//! The decision a newcomer would get wrong: `prune` deletes *snapshots only*, never deltas, and
//! never version 1's snapshot (the chain's base) or the newest one. Every version therefore
//! stays restorable from the nearest older kept snapshot plus deltas, `verify` can still walk
//! the whole chain from version 1, and a consumer at any old version can still catch up by
//! deltas. A pruned snapshot is marked `pruned: true` in its manifest entry (the key stays, so
//! older readers still parse the manifest). The manifest is rewritten *before* the snapshots
//! are deleted: a prune interrupted in between leaves orphans, never a manifest naming
//! missing objects.
//!
//! Everything that changes the store is planned first as data (`Fix`, `PrunePlan`), then
//! executed; the plans are what `--dry-run` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use crate::canonical::{Document, KeyPointer};
use crate::clock::FixedClock;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{self, DatasetKeys};
use crate::manifest::{Entry, Manifest};
use crate::remote::{
    apply_step, delete_objects, latest_entry, read_delta, read_document, read_manifest,
    read_manifest_with_etag, read_verified, recover_entries, write_manifest,
};
use crate::source::{Fetched, Source, Validators};
use crate::store::{DynStore, ListEntry, PutMode};
use crate::sync::{self, DatasetConfig, Deps, Report, RunOptions};

/// Most attempts at rewriting the manifest while other writers keep changing it.
const MAX_ATTEMPTS: u32 = 8;
/// How long a janitor waits, between those attempts, for a writer between its commit
/// (`latest.json`) and its manifest write to finish.
const WRITER_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);
/// Orphans younger than this, by the store's own clock (S3 `LastModified` against the `Date`
/// the server sends; a file's mtime), may belong to a run that has not reached its commit point
/// yet: never deleted. The time in a key is the version's `created_at`, which says nothing of
/// when the object was written (`replay` writes keys dated years back; a writer's clock may be
/// hours off), so it is never used to judge age.
pub const ORPHAN_GRACE: time::Duration = time::Duration::hours(1);

// ---------------------------------------------------------------------------------------------
// Verify

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
                    "versions {}..={} cannot be recovered: {reason}",
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
                if let Err(e) = read_verified(store, &keys.latest(), &last.sha256).await {
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
    let mut prev: Option<(Entry, Document)> = None;
    for entry in &walk.versions {
        let v = entry.version;
        let mut doc = None;
        match (&entry.delta, &prev) {
            (Some(delta_key), Some((prev_entry, prev_doc))) if prev_entry.version + 1 == v => {
                match read_delta(store, delta_key).await {
                    Ok(d) => match apply_step(&d, prev_doc, entry) {
                        Ok(next) => doc = Some(next),
                        Err(why) => report
                            .problems
                            .push(format!("version {v}: delta {delta_key}: {why}")),
                    },
                    Err(e) => report.problems.push(format!("version {v}: {e}")),
                }
            }
            (None, _) if v > 1 => report.problems.push(format!("version {v} has no delta")),
            _ => {}
        }
        if let Some(snapshot) = entry.live_snapshot() {
            match read_document(store, snapshot, key, &entry.sha256).await {
                Ok(d) if doc.is_none() => doc = Some(d),
                Ok(_) => {}
                Err(Error::Store { reason, .. }) if reason == "missing" && doc.is_some() => {
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
        prev = doc.map(|d| (entry.clone(), d));
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
                    "add versions {}..={} from the objects' metadata",
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
fn dataset_name(keys: &DatasetKeys) -> &str {
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
            return Err(Error::Corrupt {
                store: store.url().to_string(),
                key: keys.manifest(),
                reason: format!("is {behind} versions behind latest.json; run `snapsync verify --repair` before deleting orphans"),
            });
        }
        tokio::time::sleep(WRITER_SETTLE).await;
    };
    Ok(named_keys(manifest.versions.iter().chain(&latest)))
}

/// The object keys these versions name: each one's live snapshot and its delta.
fn named_keys<'a>(versions: impl Iterator<Item = &'a Entry>) -> BTreeSet<String> {
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
/// `now` is this machine's clock; [`store_now`] corrects it by the store's measured skew.
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

// ---------------------------------------------------------------------------------------------
// Restore

/// Which version to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Version(u64),
    /// The version current at that time: the last one created at or before it.
    At(OffsetDateTime),
}

/// How to rebuild one version: a kept snapshot, then deltas in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    pub target: Entry,
    pub base: Entry,
    pub deltas: Vec<Entry>,
}

impl RestorePlan {
    pub fn bytes(&self) -> u64 {
        self.base.snapshot_bytes
            + self
                .deltas
                .iter()
                .map(|e| e.delta_bytes.unwrap_or(0))
                .sum::<u64>()
    }
}

/// The version a target names.
pub fn resolve_target(manifest: &Manifest, target: Target) -> std::result::Result<&Entry, String> {
    match target {
        Target::Version(n) => manifest.get(n).ok_or_else(|| {
            format!(
                "there is no version {n} (the history has versions 1..={})",
                manifest.last().map_or(0, |e| e.version)
            )
        }),
        Target::At(t) => manifest
            .versions
            .iter()
            .rev()
            .find(|e| keys::parse_rfc3339(&e.created_at).is_some_and(|c| c <= t))
            .ok_or_else(|| match manifest.versions.first() {
                Some(first) => format!(
                    "no version existed at {} (the first is from {})",
                    keys::rfc3339(t),
                    first.created_at
                ),
                None => "the history has no versions".to_string(),
            }),
    }
}

/// Ways to rebuild `target`, best first: from each kept snapshot at or before it (nearest
/// first), plus the deltas after it. Deltas only go forward, so later snapshots are no use.
pub fn restore_plans(manifest: &Manifest, target: &Entry) -> Vec<RestorePlan> {
    let upto: Vec<&Entry> = manifest
        .versions
        .iter()
        .filter(|e| e.version <= target.version)
        .collect();
    let mut plans = Vec::new();
    for (i, base) in upto.iter().enumerate().rev() {
        if base.pruned {
            continue;
        }
        let deltas: Vec<Entry> = upto[i + 1..].iter().map(|e| (*e).clone()).collect();
        if deltas.iter().any(|e| e.delta.is_none()) {
            continue;
        }
        plans.push(RestorePlan {
            target: target.clone(),
            base: (*base).clone(),
            deltas,
        });
    }
    plans
}

/// Rebuilds one version: the first plan whose snapshot reads back; each delta checked against
/// the next version's hash, the result against the manifest's.
pub async fn restore(
    store: &DynStore,
    manifest: &Manifest,
    target: &Entry,
) -> Result<(Document, RestorePlan)> {
    let corrupt = |reason: String| Error::Corrupt {
        store: store.url().to_string(),
        key: target.snapshot.clone(),
        reason,
    };
    let plans = restore_plans(manifest, target);
    if plans.is_empty() {
        return Err(corrupt(format!(
            "version {} cannot be restored: no kept snapshot at or before it with deltas up to it",
            target.version
        )));
    }
    let mut last_err = None;
    for p in plans {
        let mut doc = match read_document(
            store,
            &p.base.snapshot,
            &KeyPointer::default(),
            &p.base.sha256,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "snapshot unusable; trying an older one");
                last_err = Some(e);
                continue;
            }
        };
        for e in &p.deltas {
            let key = e
                .delta
                .as_deref()
                .expect("plans only hold entries with deltas");
            let d = read_delta(store, key).await?;
            doc = apply_step(&d, &doc, e).map_err(|why| Error::Corrupt {
                store: store.url().to_string(),
                key: key.to_string(),
                reason: why,
            })?;
        }
        if doc.sha256() != target.sha256 {
            return Err(corrupt(format!(
                "restored version {} hashes to {}, the manifest says {}",
                target.version,
                doc.sha256(),
                target.sha256
            )));
        }
        return Ok((doc, p));
    }
    Err(last_err.expect("at least one plan was tried"))
}

// ---------------------------------------------------------------------------------------------
// Prune

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
        manifest.check_chain().map_err(|reason| Error::Corrupt {
            store: store.url().to_string(),
            key: keys.manifest(),
            reason: format!("{reason}; run `snapsync verify` before pruning"),
        })?;
        let latest = latest_entry(store, keys).await?;
        if latest.as_ref().map(|l| l.version) != manifest.last().map(|e| e.version) {
            // A writer between its commit (latest.json) and its manifest write looks the same
            // for a moment: wait for it. Only a manifest that stays behind is a problem.
            if attempt + 1 < MAX_ATTEMPTS {
                tokio::time::sleep(WRITER_SETTLE).await;
                continue;
            }
            return Err(Error::Corrupt {
                store: store.url().to_string(),
                key: keys.manifest(),
                reason: "does not end at latest.json's version; run `snapsync verify --repair` before pruning".into(),
            });
        }
        let mut plan = prune_plan(&manifest, retention);
        if !dry_run {
            if plan.manifest != manifest {
                match write_manifest(store, keys, &plan.manifest, PutMode::Update(etag)).await {
                    Ok(()) => {}
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

// ---------------------------------------------------------------------------------------------
// Replay

/// One recorded dataset file and the date it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    pub path: PathBuf,
    pub date: OffsetDateTime,
}

/// Parses `2021-03-04` (midnight UTC) or an RFC 3339 time.
pub fn parse_date(text: &str) -> Option<OffsetDateTime> {
    if let Some(t) = keys::parse_rfc3339(text) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, &fmt)
        .ok()
        .map(|d| PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc())
}

/// The first `YYYY-MM-DD` in a file name.
pub fn date_in_name(path: &Path) -> Option<OffsetDateTime> {
    let name = path.file_name()?.to_str()?;
    let b = name.as_bytes();
    (0..b.len().saturating_sub(9)).find_map(|i| {
        let s = name.get(i..i + 10)?;
        let shape = s.bytes().enumerate().all(|(j, c)| match j {
            4 | 7 => c == b'-',
            _ => c.is_ascii_digit(),
        });
        if shape {
            parse_date(s)
        } else {
            None
        }
    })
}

/// Dates the files (from `dates`, in the order given, or from their names) and sorts them.
/// Two files of one date are an error: the history could not say which came first.
pub fn date_files(
    paths: &[PathBuf],
    dates: Option<&[String]>,
) -> std::result::Result<Vec<RecordedFile>, String> {
    let mut files = Vec::with_capacity(paths.len());
    if let Some(dates) = dates {
        if dates.len() != paths.len() {
            return Err(format!(
                "--dates gives {} dates for {} files",
                dates.len(),
                paths.len()
            ));
        }
        for (p, d) in paths.iter().zip(dates) {
            let date = parse_date(d)
                .ok_or_else(|| format!("--dates: {d:?} is not a date (YYYY-MM-DD or RFC 3339)"))?;
            files.push(RecordedFile {
                path: p.clone(),
                date,
            });
        }
    } else {
        for p in paths {
            let date = date_in_name(p).ok_or_else(|| {
                format!(
                    "{}: no date (YYYY-MM-DD) in its name; name the files like 2021-03-04.json or pass --dates",
                    p.display()
                )
            })?;
            files.push(RecordedFile {
                path: p.clone(),
                date,
            });
        }
    }
    files.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.path.cmp(&b.path)));
    if let Some(w) = files.windows(2).find(|w| w[0].date == w[1].date) {
        return Err(format!(
            "{} and {} are both dated {}",
            w[0].path.display(),
            w[1].path.display(),
            keys::rfc3339(w[0].date)
        ));
    }
    Ok(files)
}

/// The files of the arguments: a directory gives its `*.json` files (not recursively).
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(input).map_err(|e| Error::io(input, e))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

/// A `Source` that serves one recorded file as the dataset's body and passes every other URL
/// (a joined table) to the real source.
struct RecordedSource {
    path: PathBuf,
    url: String,
    max_bytes: u64,
    others: Arc<dyn Source>,
}

#[async_trait::async_trait]
impl Source for RecordedSource {
    async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        if url != self.url {
            return self.others.fetch(url, validators).await;
        }
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| Error::io(&self.path, e))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(Error::TooLarge {
                url: self.path.display().to_string(),
                limit: self.max_bytes,
            });
        }
        Ok(Fetched::Body {
            bytes,
            validators: Validators::default(),
            content_type: None,
        })
    }

    async fn fetch_file(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        if url != self.url {
            return self.others.fetch_file(url, validators).await;
        }
        self.fetch(url, validators).await
    }
}

/// Files dated after `after` (the store's newest version): replaying again resumes where the
/// history ends instead of appending old data as new versions.
pub fn files_after(
    files: Vec<RecordedFile>,
    after: Option<OffsetDateTime>,
) -> (Vec<RecordedFile>, usize) {
    let total = files.len();
    let kept: Vec<RecordedFile> = files
        .into_iter()
        // At created_at's precision: a file dated within a millisecond of the newest version
        // made that version.
        .filter(|f| after.is_none_or(|a| keys::to_millis(f.date) > a))
        .collect();
    let skipped = total - kept.len();
    (kept, skipped)
}

/// Feeds one recorded file through the normal pipeline, with the clock at its recorded date.
pub async fn replay_file(
    deps: &Deps,
    ds: &DatasetConfig,
    file: &RecordedFile,
    max_bytes: u64,
    opts: RunOptions,
) -> Report {
    let (deps, ds) = replay_setup(deps, ds, file, max_bytes);
    sync::run_dataset(&deps, &ds, opts).await
}

/// Reads and canonicalizes a recorded file ahead of its [`replay_file`] (see
/// [`sync::prepare`]).
pub async fn prepare_file(
    deps: &Deps,
    ds: &DatasetConfig,
    file: &RecordedFile,
    max_bytes: u64,
) -> Result<sync::Prepared> {
    let (deps, ds) = replay_setup(deps, ds, file, max_bytes);
    sync::prepare(&deps, &ds).await
}

/// A recorded file's run: its date is the clock and the file is the dataset's body.
fn replay_setup(
    deps: &Deps,
    ds: &DatasetConfig,
    file: &RecordedFile,
    max_bytes: u64,
) -> (Deps, DatasetConfig) {
    let url = format!("file://{}", file.path.display());
    let deps = Deps {
        store: deps.store.clone(),
        db: deps.db.clone(),
        source: Arc::new(RecordedSource {
            path: file.path.clone(),
            url: url.clone(),
            max_bytes,
            others: deps.source.clone(),
        }),
        clock: Arc::new(FixedClock(file.date)),
    };
    let ds = DatasetConfig { url, ..ds.clone() };
    (deps, ds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entry(version: u64, created_at: &str) -> Entry {
        Entry {
            version,
            created_at: created_at.into(),
            sha256: format!("{version:064x}"),
            prev_sha256: (version > 1).then(|| format!("{:064x}", version - 1)),
            snapshot: format!("d/snapshots/{version}.json.gz"),
            delta: (version > 1).then(|| format!("d/deltas/{version}.delta.json.gz")),
            canonical_bytes: 1000,
            snapshot_bytes: 100,
            delta_bytes: (version > 1).then_some(10),
            records: None,
            ..Entry::default()
        }
    }

    /// One version a day from 2026-01-01 for `days` days.
    fn daily(days: u64) -> Manifest {
        let mut m = Manifest::new("d");
        let start = datetime!(2026-01-01 06:00 UTC);
        m.versions = (1..=days)
            .map(|v| {
                entry(
                    v,
                    &keys::rfc3339(start + time::Duration::days(v as i64 - 1)),
                )
            })
            .collect();
        m
    }

    #[test]
    fn prune_keeps_base_latest_recent_days_and_month_ends() {
        let m = daily(100); // 2026-01-01 .. 2026-04-10
        let p = prune_plan(
            &m,
            Retention {
                daily: 7,
                monthly: 2,
            },
        );
        let kept: Vec<u64> = p.keep.keys().copied().collect();
        // base 1; days 94..=100; month ends: April (100) and March (90).
        assert_eq!(kept, vec![1, 90, 94, 95, 96, 97, 98, 99, 100]);
        assert_eq!(p.delete_snapshots.len(), 91);
        assert!(p.manifest.check_chain().is_ok());
        assert!(p
            .manifest
            .versions
            .iter()
            .all(|e| e.pruned != p.keep.contains_key(&e.version)));
        // Planning again over the result deletes nothing more.
        let again = prune_plan(
            &p.manifest,
            Retention {
                daily: 7,
                monthly: 2,
            },
        );
        assert!(again.delete_snapshots.is_empty());
        assert_eq!(again.manifest, p.manifest);
    }

    #[test]
    fn prune_keeps_everything_with_generous_retention_and_the_last_of_each_day() {
        let mut m = daily(3);
        m.versions.push(entry(4, "2026-01-03T18:00:00Z"));
        let p = prune_plan(
            &m,
            Retention {
                daily: 30,
                monthly: 0,
            },
        );
        assert_eq!(p.keep.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
        assert_eq!(
            p.delete_snapshots,
            vec!["d/snapshots/3.json.gz".to_string()]
        );
        let none = prune_plan(
            &m,
            Retention {
                daily: 0,
                monthly: 0,
            },
        );
        assert_eq!(none.keep.keys().copied().collect::<Vec<_>>(), vec![1, 4]);
    }

    #[test]
    fn orphans_are_judged_by_the_store_clock_and_their_names() {
        let keys = DatasetKeys::new("", "d");
        let now = datetime!(2026-05-01 00:30 UTC);
        let obj = |key: &str, modified: Option<OffsetDateTime>| ListEntry {
            key: key.into(),
            size: 1,
            modified,
        };
        // Keys dated years back (replay) or in the future (a clock ahead) say nothing: only
        // the store's modification time counts.
        let listed = [
            obj(
                "d/snapshots/2021-03-01T000000Z-aaaaaaaaaaaa.json.gz",
                Some(now - time::Duration::minutes(59)),
            ),
            obj(
                "d/deltas/2999-01-01T000000Z-bbbbbbbbbbbb.delta.json.gz",
                Some(now - time::Duration::hours(2)),
            ),
            obj("d/snapshots/2021-03-02T000000Z-cccccccccccc.json.gz", None),
            obj(
                "d/snapshots/2021-03-03T000000.000Z-dddddddddddd.json.gz",
                Some(now - ORPHAN_GRACE),
            ),
            obj(
                "d/snapshots/NOTES.txt",
                Some(now - time::Duration::days(400)),
            ),
            obj(
                "d/snapshots/backup/old.json.gz",
                Some(now - time::Duration::days(400)),
            ),
            obj(
                "d/deltas/2021-03-04T000000Z-eeeeeeeeeeee.delta.json.gz",
                Some(now - time::Duration::days(9)),
            ),
        ];
        let named = BTreeSet::from([listed[6].key.clone()]);
        let sweep = classify_orphans(&keys, &listed, &named, now);
        assert_eq!(
            sweep.deleted,
            [listed[1].key.clone(), listed[3].key.clone()]
        );
        assert_eq!(sweep.young, [listed[0].key.clone(), listed[2].key.clone()]);
        assert_eq!(
            sweep.foreign,
            [listed[4].key.clone(), listed[5].key.clone()]
        );
    }

    #[test]
    fn restore_starts_from_the_nearest_kept_snapshot() {
        let mut m = daily(10);
        for v in [2, 3, 4, 6, 7] {
            m.versions[v - 1].pruned = true;
        }
        let plans = restore_plans(&m, m.get(7).unwrap());
        let bases: Vec<u64> = plans.iter().map(|p| p.base.version).collect();
        assert_eq!(bases, vec![5, 1]);
        assert_eq!(
            plans[0]
                .deltas
                .iter()
                .map(|e| e.version)
                .collect::<Vec<_>>(),
            vec![6, 7]
        );
        assert_eq!(restore_plans(&m, m.get(5).unwrap())[0].deltas, vec![]);
        assert_eq!(
            resolve_target(&m, Target::At(datetime!(2026-01-03 12:00 UTC)))
                .unwrap()
                .version,
            3
        );
        assert_eq!(
            resolve_target(&m, Target::At(datetime!(2026-01-03 06:00 UTC)))
                .unwrap()
                .version,
            3
        );
        assert!(
            resolve_target(&m, Target::At(datetime!(2025-12-31 0:00 UTC)))
                .unwrap_err()
                .contains("first is from")
        );
        assert!(resolve_target(&m, Target::Version(11)).is_err());
    }

    #[test]
    fn recorded_files_are_dated_by_name_or_flag() {
        let p = |s: &str| PathBuf::from(s);
        let files = date_files(
            &[p("x/2021-03-05.json"), p("x/stats-2021-03-04.json")],
            None,
        )
        .unwrap();
        assert_eq!(files[0].path, p("x/stats-2021-03-04.json"));
        assert_eq!(files[1].date, datetime!(2021-03-05 0:00 UTC));
        assert!(date_files(&[p("a.json")], None)
            .unwrap_err()
            .contains("no date"));
        assert!(date_files(&[p("2021-02-30.json")], None).is_err());
        assert!(
            date_files(&[p("a/2021-03-04.json"), p("b/2021-03-04.json")], None)
                .unwrap_err()
                .contains("both dated")
        );
        let dates = vec!["2021-01-02".to_string(), "2021-01-01T06:00:00Z".to_string()];
        let files = date_files(&[p("a.json"), p("b.json")], Some(&dates)).unwrap();
        assert_eq!(files[0].path, p("b.json"));
        assert!(date_files(&[p("a.json")], Some(&dates)).is_err());
        assert!(date_files(&[p("a.json")], Some(&["yesterday".to_string()])).is_err());
        let (kept, skipped) = files_after(files, Some(datetime!(2021-01-01 06:00 UTC)));
        assert_eq!((kept.len(), skipped), (1, 1));
    }

    #[test]
    fn key_times_parse() {
        assert_eq!(
            key_time("p/d/snapshots/2026-11-24T060000Z-0123456789ab.json.gz"),
            Some(datetime!(2026-11-24 06:00 UTC))
        );
        assert_eq!(
            key_time("p/d/deltas/2026-11-24T060000.250Z-0123456789ab.delta.json.gz"),
            Some(datetime!(2026-11-24 06:00:00.25 UTC))
        );
        assert_eq!(key_time("p/d/snapshots/x.json.gz"), None);
    }
}

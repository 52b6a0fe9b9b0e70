//! [`plan_pull`]: deltas or a whole download, whichever costs fewer bytes, as data.

use serde::Serialize;

use crate::manifest::{Entry, Manifest};

use super::Via;

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

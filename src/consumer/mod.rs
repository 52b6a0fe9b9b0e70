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
//!
//! The code is cut by step: `plan` decides what to download ([`plan_pull`], pure data), `run`
//! does it ([`pull`]: read the local file, download, apply, check, replace), and `atomic`
//! replaces a file so that no reader sees half of it ([`write_atomically`]). This file holds
//! the sidecar and the report.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

mod atomic;
mod plan;
mod run;

pub use atomic::{write_atomically, write_new_atomically};
pub use plan::{plan_pull, FullDownload, PullAction, PullCosts, PullPlan};
pub use run::pull;

#[cfg(test)]
mod tests;

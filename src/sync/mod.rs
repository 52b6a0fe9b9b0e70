//! One run of one dataset: fetch → validate → canonicalize → compare → diff and verify →
//! publish → record. The glue of the pure modules and the I/O edges.
//!
//! The publish protocol (docs/design.md): immutable objects first (`If-None-Match: *`), then
//! `latest.json` with `If-Match` on the ETag read at the start of the attempt — the commit
//! point — then the manifest, then SQLite. A 412 on the commit point means another writer got
//! there first: the attempt starts over from the new `latest.json` (re-basing the delta onto
//! it), so concurrent writers produce a linear history, never a fork. Nothing is written before
//! the run has applied its own delta to the previous document and got the new hash back.
//!
//! The rule a newcomer gets wrong: a create-only put of a snapshot or delta that meets an
//! existing object is not corruption when that object is another attempt's of the same content.
//! Keys are `{created_at}-{sha12}`, and two attempts of one content can land on the same
//! millisecond with different metadata (another version number or base): a writer that
//! re-based onto a version created just before its first attempt meets its own orphan, and
//! two writers fetching the same data a version apart meet each other's. That key is *taken*:
//! the run reads `latest.json` again and publishes at a `created_at` after the taken one
//! (`plan::decide`), or ends `unchanged` if that content got committed meanwhile. A taken key
//! is not counted against the commit-point attempts (it does not mean anyone committed); only
//! an object without snapsync metadata, or one describing other content, stops the run as
//! corrupt. An object with exactly this version's metadata is this run's own earlier put.

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::canonical::Document;
use crate::clock::Clock;
use crate::db::Db;
use crate::source::Source;
use crate::store::DynStore;

/// Most keys found taken by other attempts' objects of the same content in one run. Each moves
/// `created_at` on by a millisecond at least and needs one more such object; a handful of
/// writers leave a handful of them, so this only stops a run that something keeps tripping.
const MAX_TAKEN_KEYS: u32 = 32;
/// Canonical JSON bodies read back from the store are at most this large when decompressed.
const MAX_BODY: u64 = 8 << 30;

pub use crate::config::DatasetConfig;

/// What a run needs from outside.
#[derive(Clone)]
pub struct Deps {
    pub store: DynStore,
    pub db: Db,
    pub source: Arc<dyn Source>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Publish even when a guard fails (logged).
    pub force: bool,
    /// Stop where a publish would begin: fetch, canonicalize, check the guards, diff and
    /// compress, and report what would be published. Writes nothing to the store; the caller
    /// gives it a database nobody keeps ([`crate::db::Db::open_in_memory`]).
    pub dry_run: bool,
    /// Shutdown: a run abandons its work while it is still before the commit point; once
    /// `latest.json` is being written it finishes (manifest and database included).
    pub cancel: Option<CancellationToken>,
    /// This dataset's body already fetched and canonicalized by [`prepare`]: used instead of
    /// loading the transforms' tables and fetching.
    pub prepared: Option<Arc<Prepared>>,
    /// A document the caller holds from an earlier run (its [`Report::document`]); used as
    /// the previous version when its hash is the store's latest, instead of reading it back.
    pub previous: Option<Arc<Document>>,
    /// Leave the database's copy of the newest version as it is (replay sets it on all but its
    /// last file: it keeps the documents in memory, and a stale copy is only ever not used).
    pub skip_body_cache: bool,
    /// How long after its first put a run checks, just before its commit, that its snapshot
    /// and delta are still there (default [`RECHECK_OBJECTS_AFTER`]).
    pub recheck_objects_after: Option<std::time::Duration>,
}

/// A janitor deletes an unnamed object only once the store says it is an hour old
/// ([`crate::history::ORPHAN_GRACE`]). A run that took half of that from its first put to its
/// commit (a stalled process, a huge upload) looks at its objects again first and puts back
/// what a janitor swept meanwhile, so it never commits a version whose objects are gone.
pub const RECHECK_OBJECTS_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 60);

impl RunOptions {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }
}

static L2MET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether each run's `run finished` line also carries l2met keys (`count#snapsync.changed=1`,
/// `sample#snapsync.duration_ms=812`, `source=DATASET`), which Heroku's log-based metrics and
/// log drains (Librato, Papertrail, l2met) chart with no agent. The binary turns them on with
/// logfmt logs; a terminal's text log stays without them.
pub fn set_l2met(on: bool) {
    L2MET.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn l2met() -> bool {
    L2MET.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Changed,
    Unchanged,
    NotModified,
    Failed,
    /// A shutdown stopped the run before its commit point: nothing published. The `runs`
    /// table records it as `failed` (with its error), so it never counts as a success.
    Abandoned,
}

impl Outcome {
    /// Whether the run did what it set out to (nothing new counts); a shutdown's abandoned run
    /// did not.
    pub fn succeeded(self) -> bool {
        !matches!(self, Outcome::Failed | Outcome::Abandoned)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::NotModified => "not-modified",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// The result of one run of one dataset: the summary line, and the `runs` row.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dataset: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    /// Records a join found no row for (datasets with a join).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmatched: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `run --dry-run`: `changed` means "would publish"; nothing was written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// With `dry_run`, the sizes of what would have been uploaded (snapshot, delta).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_bytes: Option<u64>,
    #[serde(skip)]
    pub retryable: bool,
    /// The canonical document now latest, when this run canonicalized it: the next run's
    /// [`RunOptions::previous`].
    #[serde(skip)]
    pub document: Option<Arc<Document>>,
}

impl Report {
    /// A run of `dataset` that failed before it began (its store or database unusable).
    pub fn failed(dataset: &str, error: String) -> Report {
        Report {
            error: Some(error),
            ..Report::new(dataset)
        }
    }

    /// A run of `dataset` with nothing known yet: `failed` until it says otherwise.
    fn new(dataset: &str) -> Report {
        Report {
            dataset: dataset.to_string(),
            outcome: Outcome::Failed,
            version: None,
            sha256: None,
            added: None,
            removed: None,
            moved: None,
            changed: None,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
            unmatched: None,
            error: None,
            dry_run: false,
            snapshot_bytes: None,
            delta_bytes: None,
            retryable: false,
            document: None,
        }
    }

    /// `covid-countries changed version=7 sha256=… added=0 removed=0 moved=28 changed=190`
    pub fn summary_line(&self) -> String {
        let outcome = match (self.dry_run, self.outcome) {
            (true, Outcome::Changed) => "would publish",
            (true, Outcome::Unchanged) => "unchanged (dry run)",
            (_, o) => o.as_str(),
        };
        let mut s = format!("{} {outcome}", self.dataset);
        if let Some(v) = self.version {
            s.push_str(&format!(" version={v}"));
        }
        if let Some(h) = &self.sha256 {
            s.push_str(&format!(" sha256={h}"));
        }
        if let (Some(a), Some(r), Some(m), Some(c)) =
            (self.added, self.removed, self.moved, self.changed)
        {
            s.push_str(&format!(" added={a} removed={r} moved={m} changed={c}"));
        }
        if let Some(n) = self.unmatched {
            s.push_str(&format!(" unmatched={n}"));
        }
        if let Some(n) = self.snapshot_bytes {
            s.push_str(&format!(" snapshot_bytes={n}"));
        }
        if let Some(n) = self.delta_bytes {
            s.push_str(&format!(" delta_bytes={n}"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" error={:?}", e));
        }
        s
    }
}

mod prepare;
mod run;

pub use prepare::{join_reports, prepare, Prepared};
pub use run::run_dataset;

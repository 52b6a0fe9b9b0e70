//! Views of a published history, derived from it and written after each commit point: the
//! history page for people (`{dataset}/index.html`, [`page`]) and the change table for query
//! engines (`{dataset}/changes/version=N/part-0.parquet`, [`table`], feature `parquet`).
//!
//! Neither is part of the history: a version is published once `latest.json` names it, and a
//! view that fails to write is a warning. The next publish rewrites the page (a version whose
//! changes it never saw shows its counts from the manifest); `verify` notes what is missing and
//! `verify --repair` walks the chain to write it ([`repair`]).

use std::collections::BTreeMap;

use tracing::warn;

use crate::changes::{self, ValueChange};
use crate::config::DatasetConfig;
use crate::delta::Diff;
use crate::error::{Error, Result};
use crate::history::Chain;
use crate::keys::DatasetKeys;
use crate::manifest::{Entry, Manifest};
use crate::source::redact_url;
use crate::store::{DynStore, PutMode, PutOptions};

pub mod page;
#[cfg(feature = "parquet")]
pub mod table;

pub use page::{PageData, PageVersion};

/// Whether this build writes the change table (the `parquet` cargo feature).
pub const CHANGE_TABLE: bool = cfg!(feature = "parquet");

/// Writes the views of `entry`, just committed, whose changes from the version before are
/// `diff` (`None` for version 1). `manifest` is the one the commit was recorded in. A view
/// that cannot be written is logged as a warning, never an error: the version is published.
pub async fn publish_or_warn(
    store: &DynStore,
    keys: &DatasetKeys,
    ds: &DatasetConfig,
    manifest: &Manifest,
    entry: &Entry,
    diff: Option<Diff>,
) {
    let warn_of = |e: Error| {
        warn!(error = %e, version = entry.version, "the history page or change table was not written (the version is published); the next publish rewrites the page, `verify --repair` writes what is missing");
    };
    let mut texts = BTreeMap::new();
    let mut values = None;
    if let Some(d) = diff {
        let text = changes::describe(&d.summary, d.values.as_deref());
        texts.insert(entry.version, (entry.sha256.clone(), text));
        values = d.values;
    }
    if let (Some(values), true) = (values, entry.version > 1) {
        if let Err(e) = write_table(store, keys, entry, values).await {
            warn_of(e);
        }
    }
    if let Err(e) = page::update(store, keys, &source_of(ds), manifest, &texts).await {
        warn_of(e);
    }
}

/// The source as the page shows it: redacted (a URL may carry a token).
fn source_of(ds: &DatasetConfig) -> String {
    redact_url(&ds.url)
}

/// Writes one version's part of the change table (nothing in a build without `parquet`).
pub async fn write_table(
    store: &DynStore,
    keys: &DatasetKeys,
    entry: &Entry,
    rows: Vec<ValueChange>,
) -> Result<()> {
    #[cfg(feature = "parquet")]
    {
        let (version, created_at) = (entry.version, entry.created_at.clone());
        let key = keys.changes(entry.version);
        let body = crate::blocking(move || table::encode(version, &created_at, &rows))
            .await
            .map_err(|e| Error::Io {
                path: key.clone().into(),
                reason: format!("encoding the change table: {e}"),
            })?;
        let opts = PutOptions::view(PutMode::Overwrite, table::CONTENT_TYPE);
        store.put(&key, body.into(), opts).await?;
    }
    #[cfg(not(feature = "parquet"))]
    let _ = (store, keys, entry, rows);
    Ok(())
}

/// What of a history's views is missing or behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewsState {
    /// The page is missing, unreadable, or does not list every version.
    pub page_behind: bool,
    /// Versions the page lists without their changes.
    pub page_untold: Vec<u64>,
    /// Versions after the first without a part of the change table (only with `parquet`).
    pub table_missing: Vec<u64>,
}

impl ViewsState {
    pub fn is_complete(&self) -> bool {
        !self.page_behind && self.page_untold.is_empty() && self.table_missing.is_empty()
    }

    /// One line for `verify`'s notes, when something is missing.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.page_behind {
            parts.push("index.html is missing or behind the manifest".to_string());
        }
        if !self.page_untold.is_empty() {
            parts.push(format!(
                "index.html lacks the changes of {}",
                versions(&self.page_untold)
            ));
        }
        if !self.table_missing.is_empty() {
            parts.push(format!(
                "the change table lacks {}",
                versions(&self.table_missing)
            ));
        }
        (!parts.is_empty()).then(|| format!("{} (verify --repair writes them)", parts.join("; ")))
    }
}

fn versions(v: &[u64]) -> String {
    match v {
        [one] => format!("version {one}"),
        [first, .., last] if (last - first) as usize + 1 == v.len() => {
            format!("versions {first} to {last}")
        }
        _ => format!(
            "versions {}",
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Compares the views with the manifest.
pub async fn check(
    store: &DynStore,
    keys: &DatasetKeys,
    manifest: &Manifest,
) -> Result<ViewsState> {
    let mut state = ViewsState::default();
    match page::read(store, keys).await? {
        None => state.page_behind = !manifest.versions.is_empty(),
        Some(data) => {
            let told: BTreeMap<u64, &PageVersion> =
                data.versions.iter().map(|v| (v.version, v)).collect();
            for e in &manifest.versions {
                match told.get(&e.version) {
                    Some(v) if v.sha256 == e.sha256 => {
                        if e.version > 1 && v.changes.is_none() {
                            state.page_untold.push(e.version);
                        }
                    }
                    _ => state.page_behind = true,
                }
            }
        }
    }
    if CHANGE_TABLE {
        let have: std::collections::HashSet<String> = store
            .list(&keys.changes_dir())
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        state.table_missing = manifest
            .versions
            .iter()
            .filter(|e| e.version > 1 && !have.contains(&keys.changes(e.version)))
            .map(|e| e.version)
            .collect();
    }
    Ok(state)
}

/// Writes what `state` says is missing, walking the chain from version 1 and telling each
/// needed version's values apart. Returns what was done, one line each.
pub async fn repair(
    store: &DynStore,
    keys: &DatasetKeys,
    ds: &DatasetConfig,
    manifest: &Manifest,
    state: &ViewsState,
) -> Result<Vec<String>> {
    if state.is_complete() {
        return Ok(Vec::new());
    }
    let mut texts = BTreeMap::new();
    let mut tables = 0;
    let need_text = |v: u64| state.page_behind || state.page_untold.contains(&v);
    let progress = crate::progress::start(
        format!("writing the views of {}", ds.name),
        Some(manifest.versions.len() as u64),
        crate::progress::Unit::Versions,
    );
    let mut chain = Chain::new(store, &ds.key, &manifest.versions);
    while let Some(step) = chain.step().await? {
        progress.inc(1);
        let v = step.entry.version;
        let (Some(prev), Some(delta)) = (step.prev, step.delta) else {
            continue;
        };
        let want_table = state.table_missing.contains(&v);
        if !want_table && !need_text(v) {
            continue;
        }
        let values = changes::value_changes(prev, step.doc, &ds.key, &delta.changes, &ds.derived);
        texts.insert(
            v,
            (
                step.entry.sha256.clone(),
                changes::describe(&delta.summary, values.as_deref()),
            ),
        );
        if want_table {
            if let Some(values) = values {
                write_table(store, keys, step.entry, values).await?;
                tables += 1;
            }
        }
    }
    let mut done = Vec::new();
    if tables > 0 {
        done.push(format!("wrote the change table of {tables} version(s)"));
    }
    if state.page_behind || !state.page_untold.is_empty() {
        page::update(store, keys, &source_of(ds), manifest, &texts).await?;
        done.push("rewrote index.html".to_string());
    }
    Ok(done)
}

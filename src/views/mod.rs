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
use crate::delta::Summary;
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
/// `told` (`None` for version 1). `manifest` is the one the commit was recorded in. A view
/// that cannot be written is logged as a warning, never an error: the version is published.
pub async fn publish_or_warn(
    store: &DynStore,
    keys: &DatasetKeys,
    ds: &DatasetConfig,
    manifest: &Manifest,
    entry: &Entry,
    told: Option<Told>,
) {
    let warn_of = |e: Error| {
        warn!(error = %e, version = entry.version, "the history page or change table was not written (the version is published); the next publish rewrites the page, `verify --repair` writes what is missing");
    };
    let mut texts = BTreeMap::new();
    if let Some(told) = told {
        texts.insert(entry.version, (entry.sha256.clone(), told.text));
        if let Some(table) = told.table.filter(|_| entry.version > 1) {
            if let Err(e) = put_table(store, keys, entry, table).await {
                warn_of(e);
            }
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

/// A version's changes as its views show them: its line on the history page and its part of
/// the change table, made from its value changes one at a time ([`tell`]).
#[derive(Debug)]
pub struct Told {
    pub text: String,
    /// The part of the change table, encoded, or why it could not be; `None` when none was
    /// asked for, the build has no change table, or the values were not told apart.
    pub table: Option<Result<Vec<u8>, String>>,
}

/// The views of a version (number and `created_at`) whose delta's summary is `summary`, from
/// the value changes that `values` tells one at a time into the function it is given (`None`
/// when the documents' values are not told apart: the line then counts records). With `table`,
/// the part of the change table is encoded too, a row group at a time: nothing here holds the
/// list.
pub fn tell(
    summary: &Summary,
    (version, created_at): (u64, &str),
    table: bool,
    values: impl FnOnce(&mut dyn FnMut(ValueChange)) -> Option<()>,
) -> Told {
    let mut description = changes::Description::default();
    #[cfg(feature = "parquet")]
    let mut encoder =
        table.then(|| table::Encoder::new(version, created_at).map_err(|e| e.to_string()));
    #[cfg(not(feature = "parquet"))]
    let _ = (version, created_at, table);
    let told = values(&mut |v| {
        description.add(&v);
        #[cfg(feature = "parquet")]
        if let Some(Ok(e)) = &mut encoder {
            if let Err(err) = e.push(v) {
                encoder = Some(Err(err.to_string()));
            }
        }
    });
    if told.is_none() {
        return Told {
            text: changes::describe(summary, None),
            table: None,
        };
    }
    #[cfg(feature = "parquet")]
    let table = encoder.map(|e| e.and_then(|e| e.finish().map_err(|e| e.to_string())));
    #[cfg(not(feature = "parquet"))]
    let table = None;
    Told {
        text: description.text(summary),
        table,
    }
}

/// Writes one version's part of the change table, encoded by [`tell`].
async fn put_table(
    store: &DynStore,
    keys: &DatasetKeys,
    entry: &Entry,
    table: Result<Vec<u8>, String>,
) -> Result<()> {
    let key = keys.changes(entry.version);
    let body = table.map_err(|e| Error::Io {
        path: key.clone().into(),
        reason: format!("encoding the change table: {e}"),
    })?;
    #[cfg(feature = "parquet")]
    let content_type = table::CONTENT_TYPE;
    #[cfg(not(feature = "parquet"))]
    let content_type = "application/octet-stream";
    let opts = PutOptions::view(PutMode::Overwrite, content_type);
    store.put(&key, body.into(), opts).await?;
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
        let version = (v, step.entry.created_at.as_str());
        let told = tell(&delta.summary, version, want_table, |each| {
            changes::for_each_value_change(
                prev,
                step.doc,
                &ds.key,
                &delta.changes,
                &ds.derived,
                each,
            )
        });
        texts.insert(v, (step.entry.sha256.clone(), told.text));
        if let Some(table) = told.table {
            put_table(store, keys, step.entry, table).await?;
            tables += 1;
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

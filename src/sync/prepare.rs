//! The CPU-heavy half of a run, done ahead ([`prepare`]): tables loaded, body fetched,
//! canonicalized, compressed and possibly diffed; and the join reports `doctor` prints.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use crate::canonical::{Document, KeyPointer};
use crate::changes::{self, PathPattern};
use crate::delta::{self, Diff};
use crate::error::{Error, Result};
use crate::gzip;
use crate::manifest::Entry;
use crate::source::{redact_url, Fetched, Source, Validators};
use crate::transform::{self, Transform, TransformSpec};

use super::*;

/// A dataset's body fetched, canonicalized and compressed ahead of the run that publishes it,
/// with that dataset's settings, and possibly diffed from the version expected before it:
/// `replay` prepares day N+1 on the other core while day N uploads.
#[derive(Debug)]
pub struct Prepared {
    /// The pipeline fingerprint it was made under (joined tables as they were then).
    pub(super) pipeline: String,
    /// Bytes fetched: the body and the joined tables.
    pub(super) bytes_in: u64,
    pub(super) doc: Arc<Document>,
    pub(super) stats: transform::Stats,
    /// The snapshot, gzip at the dataset's level.
    pub(super) snapshot_gz: Bytes,
    /// The checked diff from the version expected to be the store's newest when this one runs
    /// (see [`Prepared::diff_against`]).
    pub(super) diff: Option<PreparedDiff>,
}

#[derive(Debug, Clone)]
pub(super) struct PreparedDiff {
    pub(super) base_sha256: String,
    pub(super) diff: Arc<Diff>,
}

impl Prepared {
    pub fn document(&self) -> &Arc<Document> {
        &self.doc
    }

    /// Diffs from `base` and checks the delta, ahead of the run: `replay` diffs day N+1 from
    /// day N while day N uploads. The run uses the diff only if the store's newest version is
    /// `base`'s hash when it runs, and diffs again otherwise; a diff that fails its check is
    /// dropped here, for the run to find again and report.
    pub async fn diff_against(&mut self, ds: &DatasetConfig, base: Arc<Document>) {
        let (new, spec) = (self.doc.clone(), DiffSpec::of(ds));
        let base_sha256 = base.sha256().to_string();
        let diff = crate::blocking(move || checked_diff(&base, &new, spec)).await;
        self.diff = diff.ok().map(|diff| PreparedDiff {
            base_sha256,
            diff: Arc::new(diff),
        });
    }
}

/// Fetches `ds` (unconditionally), validates and canonicalizes it and compresses its snapshot:
/// the CPU-heavy half of a run, for [`RunOptions::prepared`].
#[tracing::instrument(name = "prepare", skip_all, fields(dataset = %ds.name))]
pub async fn prepare(deps: &Deps, ds: &DatasetConfig) -> Result<Prepared> {
    let mut bytes_in = 0;
    let transforms = load_transforms(deps, ds, &mut bytes_in).await?;
    let pipeline = ds.pipeline_fingerprint(&transforms);
    let raw = match deps.source.fetch(&ds.url, &Validators::default()).await? {
        Fetched::Body { bytes, .. } => bytes,
        // The server's mistake, not the user's: a fetch failure, not a usage error (exit 2).
        Fetched::NotModified => {
            return Err(Error::Fetch {
                url: redact_url(&ds.url),
                reason: "the server answered 304 Not Modified to a request without validators"
                    .into(),
                retryable: false,
            })
        }
    };
    bytes_in += raw.len() as u64;
    let (key, level) = (ds.key.clone(), ds.gzip_level);
    let made = crate::blocking(move || {
        transform::apply(&raw, &key, &transforms).map(|(doc, stats)| {
            let snapshot_gz = Bytes::from(gzip::gzip(doc.bytes(), level));
            (doc, stats, snapshot_gz)
        })
    })
    .await;
    let (doc, stats, snapshot_gz) = made.map_err(|reason| invalid_json(ds, reason))?;
    Ok(Prepared {
        pipeline,
        bytes_in,
        doc: Arc::new(doc),
        stats,
        snapshot_gz,
        diff: None,
    })
}

/// Loads the tables of join transforms (through the source, with their validators cached
/// in the database) and returns the transforms ready to apply.
pub(super) async fn load_transforms(
    deps: &Deps,
    ds: &DatasetConfig,
    bytes_in: &mut u64,
) -> Result<Vec<Transform>> {
    let mut out = Vec::with_capacity(ds.transforms.len());
    for spec in &ds.transforms {
        match spec {
            TransformSpec::Ready(t) => out.push(t.clone()),
            TransformSpec::Join(j) => {
                let db = &deps.db;
                let cache_key = crate::source::cache_key(&j.source);
                let cached = db.join_cache(&cache_key).await?;
                let validators = cached
                    .as_ref()
                    .map(|c| c.validators.clone())
                    .unwrap_or_default();
                let (table, fresh) = match deps.source.fetch_file(&j.source, &validators).await? {
                    Fetched::NotModified => match cached {
                        Some(c) => (c, false),
                        None => {
                            return Err(table_error(
                                ds,
                                &j.source,
                                "the server answered 304 to a request without validators".into(),
                            ))
                        }
                    },
                    Fetched::Body {
                        bytes,
                        validators,
                        content_type,
                    } => (
                        crate::db::JoinCached {
                            validators,
                            body: bytes,
                            content_type,
                        },
                        true,
                    ),
                };
                *bytes_in += table.body.len() as u64;
                let t = Instant::now();
                let join = j
                    .load(&table.body, table.content_type.as_deref())
                    .map_err(|reason| table_error(ds, &j.source, reason))?;
                debug!(
                    ms = t.elapsed().as_millis() as u64,
                    bytes = table.body.len(),
                    table = %redact_url(&j.source),
                    "joined table read"
                );
                // Kept for the next conditional fetch: only a table that loads, and only when
                // the server gave validators to send back (a file has none).
                let v = &table.validators;
                if fresh && (v.etag.is_some() || v.last_modified.is_some()) {
                    db.save_join_cache(&cache_key, table).await?;
                }
                out.push(Transform::Join(Box::new(join)));
            }
        }
    }
    Ok(out)
}

/// A joined table's error: `what` names the dataset and the table.
fn table_error(ds: &DatasetConfig, source: &str, reason: String) -> Error {
    Error::Table {
        what: format!("{}: joined table {}", ds.name, redact_url(source)),
        reason,
    }
}

/// Each join transform of a run with what it matched, as a report.
fn join_reports_of<'t>(
    transforms: &'t [Transform],
    stats: &'t transform::Stats,
) -> impl Iterator<Item = crate::join::JoinReport> + 't {
    let joins = transforms.iter().filter_map(|t| match t {
        Transform::Join(j) => Some(j),
        _ => None,
    });
    joins.zip(&stats.joins).map(|(j, s)| j.report(s))
}

/// What each join of `ds` does to `body` (the dataset as fetched), for `doctor`: the tables
/// are fetched fresh (no cache, nothing recorded). `Err` is the first table that cannot be
/// read, or a body the transforms refuse.
pub async fn join_reports(
    source: &dyn Source,
    ds: &DatasetConfig,
    body: Vec<u8>,
) -> Result<Vec<(String, crate::join::JoinReport)>> {
    let mut transforms = Vec::with_capacity(ds.transforms.len());
    let mut shown = Vec::new();
    for spec in &ds.transforms {
        match spec {
            TransformSpec::Ready(t) => transforms.push(t.clone()),
            TransformSpec::Join(j) => {
                let (bytes, content_type) =
                    match source.fetch_file(&j.source, &Validators::default()).await? {
                        Fetched::Body {
                            bytes,
                            content_type,
                            ..
                        } => (bytes, content_type),
                        Fetched::NotModified => (Vec::new(), None),
                    };
                let join = j
                    .load(&bytes, content_type.as_deref())
                    .map_err(|reason| table_error(ds, &j.source, reason))?;
                shown.push(redact_url(&j.source));
                transforms.push(Transform::Join(Box::new(join)));
            }
        }
    }
    let key = ds.key.clone();
    let (stats, transforms) = crate::blocking(move || {
        transform::apply(&body, &key, &transforms).map(|(_, s)| (s, transforms))
    })
    .await
    .map_err(|reason| invalid_json(ds, reason))?;
    Ok(shown
        .into_iter()
        .zip(join_reports_of(&transforms, &stats))
        .collect())
}

/// At debug level, what each join matched: unmatched keys and unused rows with their closest
/// names (what `doctor` prints), so a run's log is enough to finish a `names` map.
pub(super) fn log_join_reports(
    _ds: &DatasetConfig,
    transforms: &[Transform],
    stats: &transform::Stats,
) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for report in join_reports_of(transforms, stats) {
        debug!("join: {}", report.summary());
        for line in report.details() {
            debug!("join: {line}");
        }
    }
}

/// The diff from `prev` to `new`, checked by applying it to `prev` and comparing the result
/// with `new`'s bytes (`dataset` names the dataset in the error).
/// What [`checked_diff`] needs of a dataset, owned, to move onto a blocking thread.
pub(super) struct DiffSpec {
    dataset: String,
    key: KeyPointer,
    derived: Vec<PathPattern>,
}

impl DiffSpec {
    pub(super) fn of(ds: &DatasetConfig) -> Self {
        DiffSpec {
            dataset: ds.name.clone(),
            key: ds.key.clone(),
            derived: ds.derived.clone(),
        }
    }
}

/// Diffs, checks the delta by applying it, and lists the changed records' values: a diff made
/// ahead, whose base is not kept (a run only counts them, [`checked_delta`], and tells them to
/// the views one at a time while it publishes, [`tell_values`]).
pub(super) fn checked_diff(prev: &Document, new: &Document, spec: DiffSpec) -> Result<Diff> {
    let t = Instant::now();
    let mut d = delta::diff(prev, new);
    debug!(
        ms = t.elapsed().as_millis() as u64,
        ops = d.patch.len(),
        "diffed"
    );
    let differs = delta::apply_and_compare(prev, &d.patch, new.bytes())
        .map_err(|e| mismatch(&spec, e.to_string()))?;
    debug!(
        ms = t.elapsed().as_millis() as u64,
        "delta applied and checked"
    );
    if let Some(offset) = differs {
        return Err(does_not_give(&spec, new, offset));
    }
    d.values = changes::value_changes(prev, new, &spec.key, &d.changes, &spec.derived);
    d.counts = d.values.as_deref().map(changes::ValueCounts::of);
    debug!(
        ms = t.elapsed().as_millis() as u64,
        values = ?d.counts,
        "values told apart"
    );
    Ok(d)
}

/// Which delta file a run writes: from the version `from` to version `version` created at
/// `created_at`, compressed at `level`.
pub(super) struct DeltaAt {
    pub(super) from: Entry,
    pub(super) version: u64,
    pub(super) created_at: String,
    pub(super) level: u32,
}

/// Diffs, writes the delta file (gzip) with each changed record's operations made only as they
/// are written, and checks it by applying those very bytes to `prev` as they are read, comparing
/// the result with `new`'s bytes; and counts the changed values. The diff returned has no
/// patch: the file holds it. So a changed run never holds its patch, which on a day that
/// revises history is the largest thing it would (about 100 bytes per operation).
///
/// The check runs on another thread, reading the compressed bytes through a pipe as they are
/// written: diff, serialization and compression on one core, decompression, parse and apply on
/// the other, so it adds little wall time to the write; the values are counted while the
/// checker finishes.
pub(super) fn checked_delta(
    prev: &Document,
    new: &Document,
    spec: DiffSpec,
    at: &DeltaAt,
) -> Result<(Diff, Vec<u8>)> {
    let t = Instant::now();
    let planned = delta::plan(prev, new);
    let to = (at.version, new.sha256());
    let header = crate::plan::delta_header(
        &spec.dataset,
        &at.from,
        to,
        &at.created_at,
        &planned.diff,
        &planned.diff.patch,
    );
    let mut counts = None;
    let (gz, checked) = std::thread::scope(|scope| {
        let (pipe, reader) = crate::pipe::pipe(16, crate::pipe::CHUNK);
        let checker = scope.spawn(move || delta::check_delta_read(prev, reader, new.bytes()));
        let tee = crate::pipe::Tee::new(Vec::new(), Some(pipe));
        // The pipe ends with the tee: the checker then reads to the end of the file.
        let gz = crate::plan::write_delta_gz(&header, Some(&planned), at.level, tee)
            .map(|tee| tee.finish().0)
            .expect("writing to memory cannot fail");
        // The checker has more to do than the writer: the values are counted meanwhile.
        let changes = &planned.diff.changes;
        counts = changes::value_counts(prev, new, &spec.key, changes, &spec.derived);
        let checked = checker
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (gz, checked)
    });
    debug!(
        ms = t.elapsed().as_millis() as u64,
        bytes = gz.len(),
        "diffed, written, applied and checked"
    );
    let checked = match checked {
        // Not in one pass (no keyed records): the whole file, now that it is written.
        Err(delta::DeltaError::Unordered) => {
            delta::check_delta(prev, delta::DeltaBytes::Gzip(&gz), new.bytes())
        }
        checked => checked,
    };
    let (read, differs) =
        checked.map_err(|e| mismatch(&spec, format!("its file does not apply: {e}")))?;
    if let Some(offset) = differs {
        return Err(does_not_give(&spec, new, offset));
    }
    let written = delta::Delta {
        patch: Default::default(),
        ..header
    };
    if read != written {
        return Err(mismatch(
            &spec,
            "its file does not read back as it was written".into(),
        ));
    }
    drop(written);
    let mut d = planned.diff;
    d.patch = Vec::new();
    d.counts = counts;
    debug!(values = ?d.counts, "values told apart");
    Ok((d, gz))
}

fn mismatch(spec: &DiffSpec, reason: String) -> Error {
    Error::DeltaMismatch {
        dataset: spec.dataset.clone(),
        reason,
    }
}

fn does_not_give(spec: &DiffSpec, new: &Document, offset: usize) -> Error {
    mismatch(
        spec,
        format!(
            "applying it does not give sha256 {}: the bytes differ at offset {offset}",
            new.sha256()
        ),
    )
}

/// The views of a version (number and `created_at`) published with `diff`: its changed values
/// told one at a time into the history page's line and the change table's part
/// ([`crate::views::tell`]), never listed (on a day that revises history they are hundreds of
/// thousands). The patch is dropped here when this holds the diff's last reference. `prev` is
/// the diff's base; a diff made ahead lists its values itself, and without either only records
/// are counted. CPU-bound: a run calls it on a blocking thread while its objects upload.
pub(super) fn tell_values(
    spec: DiffSpec,
    (version, created_at): (u64, String),
    diff: Arc<Diff>,
    prev: Option<Arc<Document>>,
    new: Arc<Document>,
) -> crate::views::Told {
    let mut d = Arc::try_unwrap(diff).unwrap_or_else(|shared| Diff {
        summary: shared.summary,
        changes: shared.changes.clone(),
        patch: Vec::new(),
        values: shared.values.clone(),
        counts: shared.counts,
    });
    d.patch = Vec::new();
    let table = crate::views::CHANGE_TABLE && version > 1;
    let t = Instant::now();
    let at = (version, created_at.as_str());
    let told = crate::views::tell(&d.summary, at, table, |each| match (d.values, prev) {
        (Some(list), _) => {
            list.into_iter().for_each(each);
            Some(())
        }
        (None, Some(prev)) => {
            changes::for_each_value_change(&prev, &new, &spec.key, &d.changes, &spec.derived, each)
        }
        (None, None) => None,
    });
    debug!(ms = t.elapsed().as_millis() as u64, "values told");
    told
}

pub(super) fn invalid_json(ds: &DatasetConfig, reason: String) -> Error {
    Error::InvalidJson {
        what: format!("{}: {}", ds.name, redact_url(&ds.url)),
        reason,
    }
}

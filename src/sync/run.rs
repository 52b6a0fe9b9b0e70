//! [`run_dataset`]: one run's steps, from the fetch to the commit point and the record (the
//! publish protocol of the module docs, step by step).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use crate::canonical::{sha256_hex, Document};
use crate::db::{DatasetState, RunRecord, SourceState};
use crate::delta::Diff;
use crate::error::{Error, Result};
use crate::gzip;
use crate::keys::{self, DatasetKeys};
use crate::manifest::{Entry, Manifest};
use crate::plan::{self, Decision, Remote};
use crate::remote::{read_document, MAX_ATTEMPTS};
use crate::source::{redact_url, Fetched, Validators};
use crate::transform::{self, Transform};
use crate::validate;

use super::prepare::{
    checked_delta, invalid_json, load_transforms, log_join_reports, tell_values, DeltaAt, DiffSpec,
    PreparedDiff,
};
use super::*;

/// Runs one dataset; never panics on input, always returns a report (failures included) and
/// records it in the database when it can. Its log events carry `dataset` from its span.
#[tracing::instrument(name = "run", skip_all, fields(dataset = %ds.name))]
pub async fn run_dataset(deps: &Deps, ds: &DatasetConfig, opts: RunOptions) -> Report {
    let t0 = Instant::now();
    let started_at = deps.clock.now();
    let mut run = Run {
        deps,
        ds,
        opts,
        keys: DatasetKeys::new(deps.store.prefix(), &ds.name),
        bytes_in: 0,
        bytes_out: 0,
        fetch_ms: None,
        dataset_id: None,
        known: None,
        unmatched: None,
    };
    let result = run.execute().await;
    let duration_ms = t0.elapsed().as_millis() as u64;
    let mut report = Report {
        bytes_in: run.bytes_in,
        bytes_out: run.bytes_out,
        duration_ms,
        unmatched: run.unmatched,
        dry_run: run.opts.dry_run,
        ..Report::new(&ds.name)
    };
    match &result {
        Ok(done) => {
            report.outcome = done.outcome;
            report.document = done.doc.clone();
            report.version = done.entry.as_ref().map(|e| e.version);
            report.sha256 = done.entry.as_ref().map(|e| e.sha256.clone());
            if done.outcome == Outcome::Changed {
                let e = done.entry.as_ref().expect("a changed run has an entry");
                if run.opts.dry_run {
                    report.snapshot_bytes = Some(e.snapshot_bytes);
                    report.delta_bytes = e.delta_bytes;
                }
                (report.added, report.removed, report.moved, report.changed) = (
                    Some(e.added),
                    Some(e.removed),
                    Some(e.moved),
                    Some(e.changed),
                );
            }
        }
        Err(e) => {
            if matches!(e, Error::Cancelled { .. }) {
                report.outcome = Outcome::Abandoned;
            }
            report.error = Some(e.to_string());
            report.retryable = e.is_retryable();
        }
    }
    if let Some(id) = run.dataset_id {
        let record = RunRecord {
            started_at: keys::rfc3339(started_at),
            finished_at: keys::rfc3339(deps.clock.now()),
            outcome: report.outcome.as_str().to_string(),
            version: report.version,
            sha256: report.sha256.clone(),
            bytes_in: report.bytes_in,
            bytes_out: report.bytes_out,
            fetch_ms: run.fetch_ms,
            total_ms: duration_ms,
            error: report.error.clone(),
        };
        if let Err(e) = deps.db.record_run(id, record).await {
            warn!(error = %e, "could not record the run");
        }
    }
    // One line per run; with l2met keys, one counter per outcome (0 or 1, so a chart of each
    // is continuous) and the run's figures as samples, split by dataset (`source`).
    macro_rules! finished {
        ($($metrics:tt)*) => {
            info!(
                outcome = report.outcome.as_str(),
                version = report.version,
                sha256 = report.sha256.as_deref(),
                bytes_in = report.bytes_in,
                bytes_out = report.bytes_out,
                duration_ms,
                error = report.error.as_deref(),
                $($metrics)*
                "run finished"
            )
        };
    }
    if l2met() && !run.opts.dry_run {
        let is = |o: &[Outcome]| u64::from(o.contains(&report.outcome));
        finished!(
            source = ds.name.as_str(),
            "count#snapsync.runs" = 1u64,
            "count#snapsync.changed" = is(&[Outcome::Changed]),
            "count#snapsync.unchanged" = is(&[Outcome::Unchanged, Outcome::NotModified]),
            "count#snapsync.failed" = is(&[Outcome::Failed]),
            "count#snapsync.abandoned" = is(&[Outcome::Abandoned]),
            "sample#snapsync.duration_ms" = duration_ms,
            "sample#snapsync.fetch_ms" = run.fetch_ms,
            "sample#snapsync.bytes_in" = report.bytes_in,
            "sample#snapsync.bytes_out" = report.bytes_out,
            "sample#snapsync.version" = report.version,
            "sample#snapsync.records_changed" = report.changed,
        );
    } else {
        finished!();
    }
    report
}

struct Run<'a> {
    deps: &'a Deps,
    ds: &'a DatasetConfig,
    opts: RunOptions,
    keys: DatasetKeys,
    bytes_in: u64,
    bytes_out: u64,
    fetch_ms: Option<u64>,
    dataset_id: Option<i64>,
    /// The newest version the database had when the run began.
    known: Option<Entry>,
    unmatched: Option<u64>,
}

/// What a run canonicalizes: a fetched body, or one [`prepare`]d ahead.
enum Body {
    Raw(Vec<u8>, Vec<Transform>),
    Prepared(Arc<Prepared>),
}

/// What step 1 found: the run is over already (the source answered 304), or a body to go on.
enum Fetch {
    Done(Done),
    Body(Body, SourceState),
}

/// What [`Run::diff_and_compress`] made.
struct Compared {
    diff: Option<Arc<Diff>>,
    snapshot_gz: Bytes,
    /// The delta file from the previous version, gzip.
    delta_gz: Option<Vec<u8>>,
    /// The previous version, when it was loaded here: its values are told after the commit.
    base: Option<Arc<Document>>,
    /// The diff made ahead that was used (it has its patch), for a retry on the same base.
    prepared: Option<PreparedDiff>,
}

/// What a create-only put of a snapshot or delta found.
enum Placed {
    /// The object is in place: written now, or by this very attempt before.
    Written,
    /// Another attempt's object of this content holds the key.
    Taken,
}

struct Done {
    outcome: Outcome,
    entry: Option<Entry>,
    /// The canonical document of `entry`, when this run has it.
    doc: Option<Arc<Document>>,
}

impl Run<'_> {
    /// Step 1: load the transforms' tables and fetch, conditionally when the last fetch led to
    /// the version we know; or take what `prepare` did ahead (tables included).
    async fn fetch(&mut self, state: &DatasetState) -> Result<Fetch> {
        let (deps, ds) = (self.deps, self.ds);
        let same_pipeline = |pipeline: &str| state.pipeline.as_deref() == Some(pipeline);
        Ok(match self.opts.prepared.take() {
            Some(p) => {
                self.bytes_in += p.bytes_in;
                let source = SourceState {
                    source_url: redact_url(&ds.url),
                    validators_url: None,
                    etag: None,
                    last_modified: None,
                    // The hash of the fetched bytes serves the next fetch of a live source
                    // (nothing to parse when they are the same); a prepared body is a
                    // recorded file, so it is not computed.
                    source_sha256: None,
                    pipeline: p.pipeline.clone(),
                };
                Fetch::Body(Body::Prepared(p), source)
            }
            None => {
                let transforms = self.load_transforms().await?;
                let pipeline = ds.pipeline_fingerprint(&transforms);
                // Validators are the server's word about one resource: sent to another URL
                // (the dataset's URL was changed) a 304 would hide a different file. The
                // source_sha256 short-cut below needs no such guard: it compares the bytes
                // actually fetched, whatever URL they came from.
                let url_key = crate::source::cache_key(&ds.url);
                let same_url = state.validators_url.as_deref() == Some(url_key.as_str());
                let validators = match (&state.last, same_pipeline(&pipeline)) {
                    (Some(_), true) if same_url => Validators {
                        etag: state.etag.clone(),
                        last_modified: state.last_modified.clone(),
                    },
                    _ => Validators::default(),
                };
                let fetch_start = Instant::now();
                let fetched = match &self.opts.cancel {
                    Some(token) => tokio::select! {
                        r = deps.source.fetch(&ds.url, &validators) => r?,
                        () = token.cancelled() => return Err(self.abandoned()),
                    },
                    None => deps.source.fetch(&ds.url, &validators).await?,
                };
                self.fetch_ms = Some(fetch_start.elapsed().as_millis() as u64);
                let (raw, validators) = match fetched {
                    Fetched::NotModified => {
                        // Nothing to publish, so nothing touched the store: check it once per
                        // process (one HEAD), so wrong credentials do not wait for a change.
                        if !deps.store.answered() {
                            self.remote().await?;
                        }
                        return Ok(Fetch::Done(Done {
                            outcome: Outcome::NotModified,
                            entry: state.last.clone(),
                            doc: None,
                        }));
                    }
                    Fetched::Body {
                        bytes, validators, ..
                    } => (bytes, validators),
                };
                self.bytes_in += raw.len() as u64;
                let source = SourceState {
                    source_url: redact_url(&ds.url),
                    validators_url: Some(url_key),
                    etag: validators.etag,
                    last_modified: validators.last_modified,
                    source_sha256: Some(sha256_hex(&raw)),
                    pipeline,
                };
                Fetch::Body(Body::Raw(raw, transforms), source)
            }
        })
    }

    /// Step 3: validate and canonicalize (unless prepared): the document, a diff and a snapshot
    /// made ahead when prepared.
    async fn canonicalize(
        &mut self,
        body: Body,
    ) -> Result<(Arc<Document>, Option<PreparedDiff>, Option<Bytes>)> {
        let ds = self.ds;
        let mut prepared_diff = None;
        let (doc, stats, snapshot_gz) = match body {
            Body::Prepared(p) => {
                prepared_diff = p.diff.clone();
                (p.doc.clone(), p.stats.clone(), Some(p.snapshot_gz.clone()))
            }
            Body::Raw(raw, transforms) => {
                let key = ds.key.clone();
                let (doc, stats, transforms) = crate::blocking(move || {
                    transform::apply(&raw, &key, &transforms).map(|(d, s)| (d, s, transforms))
                })
                .await
                .map_err(|reason| invalid_json(ds, reason))?;
                log_join_reports(ds, &transforms, &stats);
                (Arc::new(doc), stats, None)
            }
        };
        if stats.unmatched_count > 0 {
            warn!(unmatched = stats.unmatched_count, keys = %stats.unmatched.join(","), "records the join found no row for");
        }
        self.unmatched = Some(stats.unmatched_count).filter(|_| ds.has_join());
        Ok((doc, prepared_diff, snapshot_gz))
    }

    async fn execute(&mut self) -> Result<Done> {
        let deps = self.deps;
        let ds = self.ds;
        let state = deps.db.dataset(deps.store.url(), &ds.name).await?;
        self.dataset_id = Some(state.id);
        self.known = state.last.clone();
        let same_pipeline = |pipeline: &str| state.pipeline.as_deref() == Some(pipeline);

        // 1. Load the transforms' tables and fetch (see `fetch`).
        let t = Instant::now();
        let (body, source) = match self.fetch(&state).await? {
            Fetch::Done(done) => return Ok(done),
            Fetch::Body(body, source) => (body, source),
        };

        // 2. The same bytes through the same pipeline as the version we know: if the store
        //    still has that version, nothing can have changed. One HEAD, nothing parsed.
        if let (Some(last), true) = (&state.last, same_pipeline(&source.pipeline)) {
            if source.source_sha256.is_some() && state.source_sha256 == source.source_sha256 {
                let remote = self.remote().await?;
                if remote.as_ref().is_some_and(|r| r.entry == *last) {
                    deps.db
                        .record_versions(state.id, Vec::new(), None, Some(source))
                        .await?;
                    return Ok(Done {
                        outcome: Outcome::Unchanged,
                        entry: Some(last.clone()),
                        doc: None,
                    });
                }
            }
        }

        // 3. Validate and canonicalize (unless prepared).
        let (doc, mut prepared_diff, mut snapshot_gz) = self.canonicalize(body).await?;
        debug!(
            ms = t.elapsed().as_millis() as u64,
            bytes = doc.bytes().len(),
            "fetched and canonicalized"
        );

        // 4. Compare with the store and publish; start over when another writer commits first.
        // What this run last tried to commit: a 412 can also be our own commit, when the
        // answer to the PUT was lost and the SDK's retry met the new ETag.
        let mut attempted: Option<(Entry, Bytes, String)> = None;
        // The latest `created_at` whose keys another attempt's objects of this content hold:
        // the next attempt's is later. A taken key is a lost race too, but one that says
        // nothing about the commit point, so it does not count as an attempt.
        let mut taken: Option<OffsetDateTime> = None;
        let (mut attempt, mut taken_keys) = (1, 0);
        let mut base_doc: Option<Arc<Document>> = None;
        'attempts: loop {
            if attempt > MAX_ATTEMPTS || taken_keys > MAX_TAKEN_KEYS {
                return Err(Error::Contended {
                    dataset: ds.name.clone(),
                    attempts: attempt - 1 + taken_keys,
                });
            }
            let remote = self.remote().await?;
            if remote.is_none() && state.last.is_some() {
                warn!(store = deps.store.url(), "the store has no latest.json although the database remembers versions; starting a new history there");
                deps.db.forget_versions_after(state.id, 0).await?;
            }
            let now = deps.clock.now();
            if let Some(behind) = remote
                .as_ref()
                .filter(|_| attempt == 1 && taken.is_none())
                .and_then(|r| plan::clock_behind(&r.entry, now))
            {
                let newest = remote.as_ref().map(|r| r.entry.created_at.as_str());
                warn!(newest, now = %keys::created_at(now), behind_s = behind.whole_seconds(), "the clock is behind the newest version's created_at (a clock ran ahead when it was published?); a new version is dated after it, not now");
            }
            let created_at = match plan::decide(doc.sha256(), remote.as_ref(), now, taken) {
                Decision::Unchanged => {
                    let r = remote.expect("unchanged implies a remote version");
                    // Ours only when latest.json carries this run's attempt id: an identical
                    // writer's commit (same data, same `created_at`) is not.
                    let ours = |(e, _, id): &(Entry, Bytes, String)| {
                        *e == r.entry && r.attempt.as_deref() == Some(id.as_str())
                    };
                    if let Some((entry, gz, _)) = attempted.take().filter(ours) {
                        info!(
                            version = entry.version,
                            "the commit had succeeded (its answer was lost)"
                        );
                        let manifest = self.reconcile_manifest(&entry, None).await?;
                        self.record(&Some(manifest), &entry, Some(gz), source)
                            .await?;
                        return Ok(Done {
                            outcome: Outcome::Changed,
                            entry: Some(entry),
                            doc: Some(doc),
                        });
                    }
                    if self.opts.dry_run {
                        return Ok(Done {
                            outcome: Outcome::Unchanged,
                            entry: Some(r.entry),
                            doc: Some(doc),
                        });
                    }
                    let agrees = state.last.as_ref() == Some(&r.entry);
                    let manifest = if agrees {
                        None
                    } else {
                        Some(self.reconcile_manifest(&r.entry, None).await?)
                    };
                    // A body prepared ahead is this very version's snapshot: cache it too.
                    self.record(&manifest, &r.entry, snapshot_gz.clone(), source)
                        .await?;
                    return Ok(Done {
                        outcome: Outcome::Unchanged,
                        entry: Some(r.entry),
                        doc: Some(doc),
                    });
                }
                Decision::Publish { created_at, .. } => created_at,
            };
            validate::check(
                &format!("{}: {}", ds.name, redact_url(&ds.url)),
                &ds.key,
                &ds.guards,
                &doc,
                remote.as_ref().and_then(|r| r.entry.records),
                self.opts.force,
            )?;
            let version = remote.as_ref().map_or(1, |r| r.entry.version + 1);
            let at = DeltaAt {
                from: remote.as_ref().map(|r| r.entry.clone()).unwrap_or_default(),
                version,
                created_at: keys::created_at(created_at),
                level: ds.gzip_level,
            };
            let Compared {
                diff,
                snapshot_gz: gz,
                delta_gz,
                base,
                prepared,
            } = self
                .diff_and_compress(
                    &doc,
                    remote.as_ref(),
                    state.id,
                    (snapshot_gz.clone(), prepared_diff.take()),
                    base_doc.as_ref(),
                    at,
                )
                .await?;
            // The diff's base, for its values after the commit (kept for a retry on it).
            base_doc = base.or(base_doc);
            // Trying again on the same base (after a taken key) needs no new diff when the
            // diff was made ahead (it has its patch); one made here wrote its patch to the
            // delta file only, and is made again.
            prepared_diff = prepared;
            snapshot_gz = Some(gz.clone());
            // The views' values are told on the other core while this attempt uploads (the walk
            // and the change table's encoding are a quarter of a changed run's CPU); they are written only once the version is committed. A retry
            // or a dry run drops them.
            let views = diff.clone().filter(|_| !self.opts.dry_run).map(|diff| {
                let base = base_doc.clone().filter(|b| {
                    remote
                        .as_ref()
                        .is_some_and(|r| r.entry.sha256 == b.sha256())
                });
                let (spec, new) = (DiffSpec::of(ds), doc.clone());
                let at = (version, keys::created_at(created_at));
                tokio::task::spawn_blocking(move || tell_values(spec, at, diff, base, new))
            });
            let attempt_id = format!("{:016x}", rand::random::<u64>());
            let publish = plan::build(plan::Inputs {
                keys: &self.keys,
                dataset: &ds.name,
                doc: &doc,
                snapshot_gz: gz,
                prev: remote.as_ref().zip(diff.as_deref()),
                delta_gz,
                version,
                created_at,
                attempt: &attempt_id,
            });
            if self.opts.dry_run {
                info!(
                    version,
                    sha256 = doc.sha256(),
                    "dry run: this version would be published; nothing written"
                );
                return Ok(Done {
                    outcome: Outcome::Changed,
                    entry: Some(publish.entry),
                    doc: Some(doc),
                });
            }
            if self.opts.cancelled() {
                return Err(self.abandoned());
            }
            let first_put = Instant::now();
            for up in &publish.immutable {
                if let Placed::Taken = self.put_immutable(up, &publish.entry, &attempt_id).await? {
                    info!(key = %up.key, "another attempt's object of this content holds the key; comparing again, to publish after it");
                    taken = Some(created_at);
                    taken_keys += 1;
                    continue 'attempts;
                }
            }
            // ETags are hashes of the bytes, so `If-Match` cannot tell this attempt's base
            // from a later version of the same data (A, then B, then A again): a writer still
            // holding A's ETag would move latest.json back. Looking again just before the
            // commit narrows that window to this request's round trip; it does not close it
            // (`tests/integration/publish_protocol.rs`, known_bugs).
            if let Some(base) = &remote {
                if self.remote().await?.map(|r| r.entry).as_ref() != Some(&base.entry) {
                    info!(attempt, "another writer committed first (seen before the commit point); comparing again with its version");
                    attempt += 1;
                    continue;
                }
            }
            let recheck = self
                .opts
                .recheck_objects_after
                .unwrap_or(RECHECK_OBJECTS_AFTER);
            if first_put.elapsed() >= recheck {
                for up in &publish.immutable {
                    if deps.store.head(&up.key).await?.is_none() {
                        warn!(key = %up.key, waited_s = first_put.elapsed().as_secs(), "an object of this attempt was deleted while it waited to commit (a janitor?); putting it again");
                        if let Placed::Taken =
                            self.put_immutable(up, &publish.entry, &attempt_id).await?
                        {
                            taken = Some(created_at);
                            taken_keys += 1;
                            continue 'attempts;
                        }
                    }
                }
            }
            // Last chance to stop: past this line the version is committed and recorded.
            if self.opts.cancelled() {
                return Err(self.abandoned());
            }
            let latest = publish.latest;
            attempted = Some((
                publish.entry.clone(),
                publish.immutable[0].body.clone(),
                attempt_id.clone(),
            ));
            match deps
                .store
                .put(&latest.key, latest.body.clone(), latest.opts.clone())
                .await
            {
                Ok(_) => debug!(ms = t.elapsed().as_millis() as u64, "uploaded"),
                Err(Error::PreconditionFailed { .. }) => {
                    info!(
                        attempt,
                        "another writer committed first; comparing again with its version"
                    );
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.bytes_out += latest.body.len() as u64;
            info!(version, sha256 = doc.sha256(), "committed");
            // The patch is not needed past the commit (a diff kept for a retry shares it):
            // dropped before the record, whose cache write copies the snapshot.
            drop((prepared_diff, diff, base_doc));
            let base = remote.as_ref().map(|r| &r.entry);
            let manifest = self.reconcile_manifest(&publish.entry, base).await?;
            let snapshot_gz = publish.immutable[0].body.clone();
            // Past the commit point and recorded: the views never block or undo a publish.
            let manifest = Some(manifest);
            self.record(&manifest, &publish.entry, Some(snapshot_gz), source)
                .await?;
            debug!(ms = t.elapsed().as_millis() as u64, "recorded");
            let told = match views {
                Some(views) => Some(
                    views
                        .await
                        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
                ),
                None => None,
            };
            if let Some(m) = &manifest {
                crate::views::publish_or_warn(&deps.store, &self.keys, ds, m, &publish.entry, told)
                    .await;
            }
            debug!(ms = t.elapsed().as_millis() as u64, "views written");
            return Ok(Done {
                outcome: Outcome::Changed,
                entry: Some(publish.entry),
                doc: Some(doc),
            });
        }
    }

    fn abandoned(&self) -> Error {
        Error::Cancelled {
            dataset: self.ds.name.clone(),
        }
    }

    async fn load_transforms(&mut self) -> Result<Vec<Transform>> {
        load_transforms(self.deps, self.ds, &mut self.bytes_in).await
    }

    /// `HEAD latest.json`: the version the store holds and the ETag to commit against.
    async fn remote(&self) -> Result<Option<Remote>> {
        let Some(head) = crate::remote::head_latest(&self.deps.store, &self.keys).await? else {
            return Ok(None);
        };
        let entry = head.entry.ok_or_else(|| {
            Error::corrupt(
                self.deps.store.url(),
                self.keys.latest(),
                "has no snapsync metadata (written by something else?); refusing to overwrite it",
            )
        })?;
        Ok(Some(Remote {
            entry,
            attempt: head.attempt,
            etag: head.etag,
        }))
    }

    /// Diffs against the previous version, writes the delta file and checks it by applying it
    /// (the check on another thread), while the snapshot is compressed on a third (unless
    /// `snapshot_gz` has it already). A diff made ahead (`prepared`) is used when its base is
    /// the previous version. `held` is the base an earlier attempt loaded.
    async fn diff_and_compress(
        &mut self,
        doc: &Arc<Document>,
        remote: Option<&Remote>,
        dataset_id: i64,
        (snapshot_gz, prepared): (Option<Bytes>, Option<PreparedDiff>),
        held: Option<&Arc<Document>>,
        at: DeltaAt,
    ) -> Result<Compared> {
        let level = self.ds.gzip_level;
        let gz_doc = doc.clone();
        let gz = tokio::task::spawn_blocking(move || match snapshot_gz {
            Some(gz) => gz,
            None => Bytes::from(gzip::gzip(gz_doc.bytes(), level)),
        });
        let mut compared = Compared {
            diff: None,
            snapshot_gz: Bytes::new(),
            delta_gz: None,
            base: None,
            prepared: None,
        };
        if let Some(r) = remote {
            match prepared.filter(|p| p.base_sha256 == r.entry.sha256) {
                Some(p) => {
                    debug!(ops = p.diff.patch.len(), "diffed and checked ahead");
                    let (diff, name) = (p.diff.clone(), self.ds.name.clone());
                    let to = (at.version, doc.sha256().to_string());
                    let delta_gz = crate::blocking(move || {
                        let header = plan::delta_header(
                            &name,
                            &at.from,
                            (to.0, &to.1),
                            &at.created_at,
                            &diff,
                            &diff.patch,
                        );
                        plan::delta_gz(&header, None, at.level)
                    })
                    .await;
                    compared.diff = Some(p.diff.clone());
                    compared.delta_gz = Some(delta_gz);
                    compared.prepared = Some(p);
                }
                None => {
                    let t = Instant::now();
                    let prev = match held.filter(|b| b.sha256() == r.entry.sha256) {
                        Some(held) => held.clone(),
                        None => self.previous(&r.entry, dataset_id).await?,
                    };
                    debug!(
                        ms = t.elapsed().as_millis() as u64,
                        "previous version loaded"
                    );
                    let (new, spec) = (doc.clone(), DiffSpec::of(self.ds));
                    compared.base = Some(prev.clone());
                    let (d, delta_gz) =
                        crate::blocking(move || checked_delta(&prev, &new, spec, &at)).await?;
                    compared.diff = Some(Arc::new(d));
                    compared.delta_gz = Some(delta_gz);
                }
            }
        }
        compared.snapshot_gz = gz
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Ok(compared)
    }

    /// The previous version's document: the one the caller holds when it has that hash, else
    /// from the local cache, else from `latest.json` (or, if that is torn, the version's
    /// snapshot), checked against its hash.
    async fn previous(&mut self, entry: &Entry, dataset_id: i64) -> Result<Arc<Document>> {
        if let Some(doc) = self.opts.previous.as_ref() {
            if doc.sha256() == entry.sha256 {
                return Ok(doc.clone());
            }
        }
        self.previous_stored(entry, dataset_id).await.map(Arc::new)
    }

    async fn previous_stored(&mut self, entry: &Entry, dataset_id: i64) -> Result<Document> {
        let store = &self.deps.store;
        if let Some(gz) = self.deps.db.cached_body(dataset_id, &entry.sha256).await? {
            let (key, sha, size) = (
                self.ds.key.clone(),
                entry.sha256.clone(),
                entry.canonical_bytes,
            );
            let cached = crate::blocking(move || {
                let body = gzip::gunzip(&gz, MAX_BODY, size).map_err(|e| e.to_string())?;
                Document::from_canonical(Bytes::from(body), &key, &sha)
            })
            .await;
            match cached {
                Ok(doc) => return Ok(doc),
                Err(e) => {
                    warn!(error = %e, "the cached previous version is unusable; reading it from the store")
                }
            }
        }
        match read_document(store, &self.keys.latest(), &self.ds.key, &entry.sha256).await {
            Ok(doc) => Ok(doc),
            Err(e) => {
                warn!(error = %e, "latest.json unreadable; reading the version's snapshot instead");
                read_document(store, &entry.snapshot, &self.ds.key, &entry.sha256).await
            }
        }
    }

    /// Writes a snapshot or delta with `If-None-Match: *`. When the key exists already, what
    /// holds it decides (see the module docs): this very object (a retried put: its metadata
    /// is this version's and carries this `attempt` id) is [`Placed::Written`]; another
    /// attempt's object of the same content (even one identical to ours, put by a writer with
    /// the same data at the same millisecond) is [`Placed::Taken`]; anything else is not ours
    /// to judge and the run stops.
    async fn put_immutable(
        &mut self,
        up: &plan::Upload,
        entry: &Entry,
        attempt: &str,
    ) -> Result<Placed> {
        let store = &self.deps.store;
        match store.put(&up.key, up.body.clone(), up.opts.clone()).await {
            Ok(_) => {
                self.bytes_out += up.body.len() as u64;
                Ok(Placed::Written)
            }
            Err(Error::PreconditionFailed { .. }) => {
                // Gone again already: whatever held the key a moment ago, it is not ours.
                let Some(existing) = store.head(&up.key).await? else {
                    return Ok(Placed::Taken);
                };
                let corrupt = |reason: String| Error::corrupt(store.url(), up.key.clone(), reason);
                let same_attempt = existing
                    .metadata
                    .get(keys::META_ATTEMPT)
                    .map(String::as_str)
                    == Some(attempt);
                match Entry::from_metadata(&existing.metadata) {
                    Some(e) if e == *entry && same_attempt => Ok(Placed::Written),
                    Some(e) if e.sha256 == entry.sha256 => {
                        debug!(key = %up.key, version = e.version, created_at = %e.created_at, "the key holds another attempt's object");
                        Ok(Placed::Taken)
                    }
                    Some(e) => Err(corrupt(format!(
                        "already exists with version {} of other content (sha256 {}); not overwriting",
                        e.version, e.sha256
                    ))),
                    None => Err(corrupt(
                        "already exists without snapsync metadata (written by something else?); not overwriting"
                            .into(),
                    )),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// [`crate::remote::reconcile_manifest`], counting the bytes written.
    async fn reconcile_manifest(&mut self, upto: &Entry, base: Option<&Entry>) -> Result<Manifest> {
        let (manifest, written) = crate::remote::reconcile_manifest(
            &self.deps.store,
            &self.keys,
            &self.ds.name,
            upto,
            base,
        )
        .await?;
        self.bytes_out += written;
        Ok(manifest)
    }

    /// Mirrors the store's state into SQLite after a commit or a confirmed unchanged run.
    async fn record(
        &self,
        manifest: &Option<Manifest>,
        entry: &Entry,
        snapshot_gz: Option<Bytes>,
        source: SourceState,
    ) -> Result<()> {
        let id = self.dataset_id.expect("set at the start");
        // The database has the versions up to the one it knew when the run began: only those
        // after it are written (a replayed history would otherwise rewrite them all each day).
        let entries = match (manifest, &self.known) {
            (Some(m), Some(k)) if m.get(k.version) == Some(k) => m
                .versions
                .iter()
                .filter(|e| e.version > k.version)
                .cloned()
                .collect(),
            (Some(m), _) => m.versions.clone(),
            (None, _) => vec![entry.clone()],
        };
        // Only the newest body is cached (as its gzip snapshot: a fifth of the bytes to write);
        // an unchanged run on a fresh database leaves the cache empty and the next changed run
        // reads latest.json once.
        let body = snapshot_gz
            .filter(|_| !self.opts.skip_body_cache)
            .map(|gz| (entry.version, entry.sha256.clone(), gz));
        self.deps
            .db
            .record_versions(id, entries, body, Some(source))
            .await
    }
}

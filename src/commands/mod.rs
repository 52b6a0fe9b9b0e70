//! Command glue: builds the real store, database and source from the `Config`, runs a
//! command, and prints its result. Output for scripts goes to stdout (through [`out`], so a
//! closed pipe stops a command quietly instead of panicking); logs go to stderr.

pub mod history;

use std::io::Write as _;
use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::json;

use snapsync::canonical::Document;
use snapsync::clock::{Clock, StoreClock, SystemClock};
use snapsync::config::Config;
use snapsync::db::Db;
use snapsync::keys::DatasetKeys;
use snapsync::manifest::Manifest;
use snapsync::probe;
use snapsync::source::HttpSource;
use snapsync::source::{Fetched, Source, Validators};
use snapsync::store;
use snapsync::store::ConditionalWrites;
use snapsync::sync::{self, Deps, Outcome, Report, RunOptions};

/// How many datasets run at once.
const PARALLEL_DATASETS: usize = 4;

/// The reader of stdout is gone (`snapsync log | head -1`). The command stops where it is,
/// as a program killed by SIGPIPE would, and `main` exits with status 0 and no message: the
/// reader had what it wanted. What was already published stays published (every commit is
/// atomic, and `replay` resumes after the store's newest version).
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Whether `e` is (or was caused by) [`StdoutClosed`].
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

/// Writes all of `bytes` to stdout and flushes: every command's result goes through here (or
/// [`out`]), so a closed pipe is an error a command returns, never a `println!` panic.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Writes one line of a command's result to stdout (see [`write_stdout`]).
pub fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    write_stdout(format!("{line}\n").as_bytes())
}

pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let (db, warning) = Db::open(&config.db).await?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    Ok(db)
}

pub async fn deps(config: &Config) -> anyhow::Result<Deps> {
    let store = store::open(&config.store, &config.s3).await?;
    let db = open_db(config).await?;
    let source = HttpSource::new(config.source.clone())?;
    Ok(Deps {
        clock: Arc::new(StoreClock(store.clone())) as Arc<dyn Clock>,
        store,
        db,
        source: Arc::new(source),
    })
}

/// Runs every configured dataset (a few at a time) and prints one line (or JSON object) each,
/// in configuration order. Returns the reports.
pub async fn run(config: &Config, json: bool, force: bool) -> anyhow::Result<Vec<Report>> {
    let deps = deps(config).await?;
    check_safe_to_publish(&deps, config.single_writer).await?;
    let opts = RunOptions {
        force,
        ..RunOptions::default()
    };
    let reports: Vec<Report> = futures_util::stream::iter(&config.datasets)
        .map(|ds| sync::run_dataset(&deps, ds, opts.clone()))
        .buffered(PARALLEL_DATASETS)
        .collect()
        .await;
    for r in &reports {
        let written = if json {
            out(serde_json::to_string(r).expect("a report serializes"))
        } else {
            out(r.summary_line())
        };
        match written {
            Ok(()) => {}
            // Every dataset has run: the exit status still says whether one failed.
            Err(e) if is_stdout_closed(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(reports)
}

/// [`probe::check_safe_to_publish`] for these deps.
pub async fn check_safe_to_publish(deps: &Deps, single_writer: bool) -> snapsync::Result<()> {
    probe::check_safe_to_publish(&*deps.store, &deps.db, deps.clock.now(), single_writer).await
}

pub fn any_failed(reports: &[Report]) -> bool {
    reports.iter().any(|r| r.outcome == Outcome::Failed)
}

pub async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = store::open(&config.store, &config.s3).await?;
    let db = open_db(config).await?;
    let now = SystemClock.now();
    for ds in &config.datasets {
        // When the worker would run it next, from the last successful run it knows of.
        let next_run = {
            let st = db.dataset(store.url(), &ds.name).await?;
            let last_ok = db.last_runs(st.id).await?.1;
            let last = last_ok.and_then(|r| snapsync::keys::parse_rfc3339(&r.started_at));
            snapsync::keys::rfc3339(snapsync::schedule::first_due(&ds.schedule, last, now))
        };
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let state = db.dataset(store.url(), &ds.name).await?;
        let (last_run, last_ok) = db.last_runs(state.id).await?;
        let remote = snapsync::remote::latest_entry(&store, &keys).await?;
        let agreement = match (&state.last, &remote) {
            (None, None) => "no versions yet",
            (Some(l), Some(r)) if l == r => "agrees",
            (Some(l), Some(r)) if l.version < r.version => {
                "database behind the store (the next run catches up)"
            }
            (None, Some(_)) => "database empty (rebuilt from the store on the next run)",
            (Some(_), None) => "store has no latest.json (the next run starts a new history there)",
            _ => "database and store disagree",
        };
        if json {
            let v = json!({
                "dataset": ds.name,
                "store": store.url(),
                "source": snapsync::source::redact_url(&ds.url),
                "last_run": last_run.as_ref().map(|r| json!({
                    "started_at": r.started_at, "outcome": r.outcome, "version": r.version,
                    "duration_ms": r.total_ms, "error": r.error})),
                "last_success": last_ok.as_ref().map(|r| json!({"started_at": r.started_at, "outcome": r.outcome})),
                "local_version": state.last.as_ref().map(|e| json!({"version": e.version, "sha256": e.sha256, "created_at": e.created_at})),
                "store_version": remote.as_ref().map(|e| json!({"version": e.version, "sha256": e.sha256, "created_at": e.created_at})),
                "agreement": agreement,
                "next_run": next_run,
                "schedule": ds.schedule.as_str(),
            });
            out(format_args!("{v}"))?;
        } else {
            out(format_args!("{}", ds.name))?;
            out(format_args!("  store:         {}", store.url()))?;
            out(format_args!(
                "  source:        {}",
                snapsync::source::redact_url(&ds.url)
            ))?;
            match &last_run {
                Some(r) => out(format_args!(
                    "  last run:      {} {} ({} ms){}",
                    r.started_at,
                    r.outcome,
                    r.total_ms,
                    r.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ))?,
                None => out(format_args!("  last run:      never (on this database)"))?,
            }
            if let Some(r) = &last_ok {
                out(format_args!(
                    "  last success:  {} {}",
                    r.started_at, r.outcome
                ))?;
            }
            match &remote {
                Some(e) => out(format_args!(
                    "  version:       {} sha256={} ({})",
                    e.version, e.sha256, e.created_at
                ))?,
                None => out(format_args!("  version:       none published"))?,
            }
            out(format_args!("  local state:   {agreement}"))?;
            out(format_args!(
                "  next run:      {next_run} (worker schedule \"{}\")",
                ds.schedule.as_str()
            ))?;
        }
    }
    Ok(())
}

pub async fn log(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = store::open(&config.store, &config.s3).await?;
    for ds in &config.datasets {
        let keys = DatasetKeys::new(store.prefix(), &ds.name);
        let manifest = snapsync::remote::read_manifest(&store, &keys)
            .await?
            .unwrap_or_else(|| Manifest::new(&ds.name));
        if json {
            out(format_args!(
                "{}",
                serde_json::to_string(&manifest).expect("a manifest serializes")
            ))?;
            continue;
        }
        if config.datasets.len() > 1 {
            out(format_args!("{}", ds.name))?;
        }
        if manifest.versions.is_empty() {
            out(format_args!(
                "no versions of {} in {}",
                ds.name,
                store.url()
            ))?;
        }
        for e in manifest.versions.iter().rev() {
            out(format_args!(
                "v{:<4} {}  {}  +{} -{} ~{} moved={}  records={}  snapshot={} delta={}",
                e.version,
                e.created_at,
                &e.sha256[..12],
                e.added,
                e.removed,
                e.changed,
                e.moved,
                e.records.map_or("-".to_string(), |n| n.to_string()),
                human_bytes(e.snapshot_bytes),
                e.delta_bytes.map_or("-".to_string(), human_bytes),
            ))?;
        }
    }
    Ok(())
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `snapsync doctor`: every check prints one line; the result is whether all passed.
pub async fn doctor(config: &Config) -> anyhow::Result<bool> {
    let mut ok = true;
    // Every check runs even when stdout is closed; the first write error is returned at the
    // end (a closed pipe ends quietly in `main`).
    let mut written = Ok(());
    let mut line = |good: bool, what: &str, detail: String| {
        ok &= good;
        if written.is_ok() {
            written = out(format_args!(
                "{} {what:<12} {detail}",
                if good { "ok  " } else { "FAIL" }
            ));
        }
    };
    let names: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
    line(
        true,
        "config",
        format!(
            "store={} db={} datasets={}",
            config.store_text,
            config.db.display(),
            names.join(",")
        ),
    );
    let db = match Db::open(&config.db).await {
        Ok((db, warning)) => {
            line(
                warning.is_none(),
                "database",
                warning.unwrap_or_else(|| format!("{} opens and is migrated", config.db.display())),
            );
            Some(db)
        }
        Err(e) => {
            line(false, "database", e.to_string());
            None
        }
    };
    let store = match store::open(&config.store, &config.s3).await {
        Ok(s) => {
            line(true, "store", format!("{} reachable", s.url()));
            Some(s)
        }
        Err(e) => {
            line(false, "store", e.to_string());
            None
        }
    };
    if let store::StoreUrl::S3 { .. } = &config.store {
        match store::s3::S3Store::credentials_summary(&config.s3).await {
            Ok(summary) => line(true, "credentials", summary),
            Err(e) => line(false, "credentials", e),
        }
    }
    if let Some(store) = &store {
        let report = probe::probe(&**store, store.prefix()).await;
        for s in &report.steps {
            line(s.ok, "store probe", format!("{}: {}", s.name, s.detail));
        }
        let verdict = report.conditional_writes;
        match verdict {
            ConditionalWrites::Honoured => line(
                true,
                "conditional",
                "writes honoured: safe with concurrent writers".into(),
            ),
            ConditionalWrites::Ignored => line(
                config.single_writer,
                "conditional",
                "writes IGNORED by this server: `run` refuses to publish unless --single-writer"
                    .into(),
            ),
            ConditionalWrites::Unknown => {
                line(false, "conditional", "writes could not be probed".into())
            }
        }
        if let (Some(db), ConditionalWrites::Honoured | ConditionalWrites::Ignored) = (&db, verdict)
        {
            let now = SystemClock.now();
            let _ = db
                .save_store_probe(
                    store.url(),
                    verdict == ConditionalWrites::Honoured,
                    &snapsync::keys::rfc3339(now),
                )
                .await;
        }
    }
    let source = HttpSource::new(config.source.clone())?;
    for ds in &config.datasets {
        let shown = snapsync::source::redact_url(&ds.url);
        match source.fetch(&ds.url, &Validators::default()).await {
            Ok(Fetched::Body { bytes, .. }) => match Document::from_json(&bytes, &ds.key) {
                Ok(doc) => {
                    line(
                        true,
                        "source",
                        format!(
                            "{} {shown}: {} of valid JSON{}",
                            ds.name,
                            human_bytes(bytes.len() as u64),
                            doc.record_count()
                                .map(|n| format!(", {n} records"))
                                .unwrap_or_default()
                        ),
                    );
                    drop(doc);
                    if ds.has_join() {
                        match snapsync::sync::join_reports(&source, ds, bytes).await {
                            // Unmatched keys are news, not a failure: a table rarely covers
                            // every record (cruise ships in the covid data).
                            Ok(reports) => join_lines(&ds.name, &reports)
                                .into_iter()
                                .for_each(|l| line(true, "join", l)),
                            Err(e) => line(false, "join", e.to_string()),
                        }
                    }
                }
                Err(e) => line(
                    false,
                    "source",
                    format!("{} {shown}: invalid JSON: {e}", ds.name),
                ),
            },
            Ok(Fetched::NotModified) => {
                line(true, "source", format!("{} {shown}: reachable", ds.name))
            }
            Err(e) => line(false, "source", format!("{}: {e}", ds.name)),
        }
    }
    written?;
    Ok(ok)
}

/// `doctor`'s lines for a dataset's joins: each table's summary, then its details.
fn join_lines(dataset: &str, reports: &[(String, snapsync::join::JoinReport)]) -> Vec<String> {
    let mut out = Vec::new();
    for (table, r) in reports {
        let sheet = r
            .sheet
            .as_ref()
            .map(|s| format!(" sheet {s:?}"))
            .unwrap_or_default();
        out.push(format!("{dataset} {table}{sheet}: {}", r.summary()));
        out.extend(r.details().into_iter().map(|d| format!("{dataset} - {d}")));
    }
    out
}

/// `snapsync worker`: until `shutdown`.
pub async fn worker(
    config: &Config,
    args: &snapsync::cli::WorkerArgs,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let opts = snapsync::worker::WorkerOptions::from_args(args, config.source.allow_insecure_http)?;
    let deps = deps(config).await?;
    // A store that is down when the dyno starts is waited for, not a reason to crash-loop.
    loop {
        match check_safe_to_publish(&deps, config.single_writer).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "cannot check the store yet; retrying in a minute");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(opts.retry_base) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let clock = deps.clock.clone();
    snapsync::worker::run(deps, config.datasets.clone(), opts, clock, shutdown).await;
    Ok(())
}

//! `snapsync run`: every dataset once, a few at a time; one report line each; then the
//! notifications and the heartbeat ping.

use futures_util::StreamExt;

use snapsync::cli::RunArgs;
use snapsync::config::Config;
use snapsync::notify::{Notifier, NotifyOptions};
use snapsync::sync::{self, Deps, Report, RunOptions};

use std::process::ExitCode;
use std::sync::Arc;

use snapsync::clock::{Clock, StoreClock};
use snapsync::db::Db;
use snapsync::source::HttpSource;
use snapsync::sync::Outcome;
use tokio_util::sync::CancellationToken;

use crate::commands::{
    check_safe_to_publish, deps, is_stdout_closed, open_store, out, PARALLEL_DATASETS,
};
use crate::{exit, Signals};

/// Runs every configured dataset (a few at a time) and prints one line (or JSON object) each,
/// in configuration order. Returns the reports. `cancel` (a signal) stops the runs the way the
/// worker's shutdown does: what is before its commit point is abandoned, what is past it
/// finishes.
pub async fn run(
    config: &Config,
    args: &RunArgs,
    cancel: CancellationToken,
) -> anyhow::Result<Vec<Report>> {
    if args.dry_run {
        return dry_run(config, args).await;
    }
    let notifier = Notifier::new(NotifyOptions::from_args(
        &args.notify,
        config.source.allow_insecure_http,
    )?);
    notifier.started().await;
    // A run that cannot even start (store unreachable, refused) is a failed run to the
    // dead-man switch too.
    let deps = match ready(config).await {
        Ok(deps) => deps,
        Err(e) => {
            // Each dataset failed, with this error: the webhooks hear of it as they would of
            // a failed run (the database may be what is missing, so no streak is read).
            let error = format!("{e:#}");
            let failed: Vec<Report> = config
                .datasets
                .iter()
                .map(|ds| Report::failed(&ds.name, error.clone()))
                .collect();
            notifier.tell(&failed, &[]).await;
            return Err(e);
        }
    };
    // One-shot: whether a run recovers is the previous run's outcome, read before this run
    // records its own.
    let mut before = Vec::new();
    for ds in &config.datasets {
        before.push(
            notifier
                .before_run(&deps.db, deps.store.url(), &ds.name)
                .await,
        );
    }
    let opts = RunOptions {
        force: args.force,
        cancel: Some(cancel.clone()),
        ..RunOptions::default()
    };
    let reports = run_all(&deps, config, &opts).await;
    if cancel.is_cancelled() {
        for r in &reports {
            match r.outcome {
                Outcome::Abandoned => {
                    tracing::warn!(dataset = %r.dataset, "stopped by a signal before the commit point: nothing was published")
                }
                Outcome::Changed => {
                    tracing::info!(dataset = %r.dataset, version = r.version, "the signal came after the commit point: this version is published and recorded")
                }
                _ => {
                    tracing::info!(dataset = %r.dataset, outcome = r.outcome.as_str(), "finished before the signal")
                }
            }
        }
    }
    print_reports(&reports, args.json)?;
    notifier.tell(&reports, &before).await;
    Ok(reports)
}

/// `run --dry-run`: no probe object, no heartbeat or webhook, a database in memory.
async fn dry_run(config: &Config, args: &RunArgs) -> anyhow::Result<Vec<Report>> {
    let store = open_store(config).await?;
    let deps = Deps {
        clock: Arc::new(StoreClock(store.clone())) as Arc<dyn Clock>,
        store,
        db: Db::open_in_memory()?,
        source: Arc::new(HttpSource::new(config.source.clone())?),
    };
    let opts = RunOptions {
        force: args.force,
        dry_run: true,
        ..RunOptions::default()
    };
    let reports = run_all(&deps, config, &opts).await;
    print_reports(&reports, args.json)?;
    Ok(reports)
}

/// Every dataset once, a few at a time; the reports in configuration order.
async fn run_all(deps: &Deps, config: &Config, opts: &RunOptions) -> Vec<Report> {
    futures_util::stream::iter(&config.datasets)
        .map(|ds| sync::run_dataset(deps, ds, opts.clone()))
        .buffered(PARALLEL_DATASETS)
        .collect()
        .await
}

fn print_reports(reports: &[Report], json: bool) -> anyhow::Result<()> {
    for r in reports {
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
    Ok(())
}

/// The exit status of a `run`: a signal's (130, 143) when one stopped a dataset before its
/// commit point, else 1 when any failed, else 3 when asked (`--exit-code`) and any changed.
pub fn run_status(reports: &[Report], args: &RunArgs, signals: &Signals) -> ExitCode {
    let abandoned = reports.iter().any(|r| r.outcome == Outcome::Abandoned);
    if let Some(code) = signals.status().filter(|_| abandoned) {
        return ExitCode::from(code);
    }
    if crate::commands::any_failed(reports) {
        return ExitCode::from(exit::FAILED);
    }
    let changed = reports.iter().any(|r| r.outcome == Outcome::Changed);
    if args.exit_code && changed {
        return ExitCode::from(exit::CHANGED);
    }
    ExitCode::SUCCESS
}

async fn ready(config: &Config) -> anyhow::Result<Deps> {
    let deps = deps(config).await?;
    check_safe_to_publish(&deps, config.single_writer).await?;
    Ok(deps)
}

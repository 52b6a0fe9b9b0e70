//! `snapsync run`: every dataset once, a few at a time; one report line each; then the
//! notifications and the heartbeat ping.

use futures_util::StreamExt;

use snapsync::cli::RunArgs;
use snapsync::config::Config;
use snapsync::notify::{Notifier, NotifyOptions};
use snapsync::sync::{self, Deps, Report, RunOptions};

use crate::commands::{check_safe_to_publish, deps, is_stdout_closed, out, PARALLEL_DATASETS};

/// Runs every configured dataset (a few at a time) and prints one line (or JSON object) each,
/// in configuration order. Returns the reports.
pub async fn run(config: &Config, args: &RunArgs) -> anyhow::Result<Vec<Report>> {
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
        ..RunOptions::default()
    };
    let reports: Vec<Report> = futures_util::stream::iter(&config.datasets)
        .map(|ds| sync::run_dataset(&deps, ds, opts.clone()))
        .buffered(PARALLEL_DATASETS)
        .collect()
        .await;
    for r in &reports {
        let written = if args.json {
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
    notifier.tell(&reports, &before).await;
    Ok(reports)
}

async fn ready(config: &Config) -> anyhow::Result<Deps> {
    let deps = deps(config).await?;
    check_safe_to_publish(&deps, config.single_writer).await?;
    Ok(deps)
}

//! `snapsync run`: every dataset once, a few at a time; one report line each; then the
//! notifications and the heartbeat ping.

use futures_util::StreamExt;

use snapsync::cli::RunArgs;
use snapsync::config::Config;
use snapsync::notify::{Before, Notifier, NotifyOptions};
use snapsync::sync::{self, Deps, Outcome, Report, RunOptions};

use crate::commands::{
    any_failed, check_safe_to_publish, deps, is_stdout_closed, out, PARALLEL_DATASETS,
};

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
            notifier.finished(false).await;
            return Err(e);
        }
    };
    // One-shot: whether a run recovers is the previous run's outcome, read before this run
    // records its own.
    let mut before = Vec::new();
    if notifier.has_targets() {
        for ds in &config.datasets {
            before.push(previous(&deps, &ds.name).await);
        }
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
    let tell = futures_util::future::join_all(
        reports
            .iter()
            .enumerate()
            .map(|(i, r)| notifier.report(r, before.get(i).copied().unwrap_or(Before::Succeeded))),
    );
    tokio::join!(tell, notifier.finished(!any_failed(&reports)));
    Ok(reports)
}

async fn ready(config: &Config) -> anyhow::Result<Deps> {
    let deps = deps(config).await?;
    check_safe_to_publish(&deps, config.single_writer).await?;
    Ok(deps)
}

/// How the dataset's last recorded run ended (before this one).
async fn previous(deps: &Deps, dataset: &str) -> Before {
    let last = match deps.db.dataset(deps.store.url(), dataset).await {
        Ok(state) => deps.db.last_runs(state.id).await.map(|(last, _)| last),
        Err(e) => Err(e),
    };
    match last {
        Ok(Some(r)) if r.outcome == Outcome::Failed.as_str() => Before::Failed { runs: None },
        Ok(_) => Before::Succeeded,
        Err(e) => {
            tracing::warn!(dataset, error = %e, "cannot read the last run; a recovery will not be told");
            Before::Succeeded
        }
    }
}

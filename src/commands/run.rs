//! `snapsync run`: every dataset once, a few at a time; one report line each.

use futures_util::StreamExt;

use snapsync::config::Config;
use snapsync::sync::{self, Report, RunOptions};

use crate::commands::{check_safe_to_publish, deps, is_stdout_closed, out, PARALLEL_DATASETS};

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

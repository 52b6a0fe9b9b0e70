//! `snapsync replay`: recorded files published as the versions they were (see `snapsync::replay`).

use std::io::Write;

use serde_json::Value;

use crate::commands::{self, one_dataset, out};
use snapsync::cli::ReplayArgs;
use snapsync::config::Config;
use snapsync::error::Error;
use snapsync::history::{self};
use snapsync::keys::{self, DatasetKeys};
use snapsync::remote;

/// `replay`: the result is whether every file was published (or already there).
pub async fn replay(config: &Config, args: ReplayArgs) -> anyhow::Result<bool> {
    let ds = one_dataset(config)?;
    let paths = history::collect_files(&args.inputs)?;
    if paths.is_empty() {
        return Err(Error::Config(format!(
            "no *.json files in {}",
            args.inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let files = history::date_files(&paths, args.dates.as_deref()).map_err(Error::Config)?;
    let deps = commands::deps(config).await?;
    commands::check_safe_to_publish(&deps, config.single_writer).await?;
    let keys = DatasetKeys::new(deps.store.prefix(), &ds.name);
    let after = remote::latest_created_at(&deps.store, &keys).await?;
    let (files, skipped) = history::files_after(files, after);
    if skipped > 0 {
        tracing::info!(
            dataset = %ds.name,
            skipped,
            latest = after.map(keys::created_at).as_deref(),
            "files not after the store's newest version are skipped (already replayed?)"
        );
    }
    // Lines printed go above the bar (`out` suspends it).
    let bar = snapsync::progress::start(
        format!("replaying {}", ds.name),
        Some(files.len() as u64),
        snapsync::progress::Unit::Files,
    );
    let done = history::replay_files(
        &deps,
        ds,
        &files,
        config.source.max_bytes,
        args.force,
        |step| match step {
            history::Progress::Starting(_) => Ok(()),
            history::Progress::Finished(f, r) => {
                let date = keys::rfc3339(f.date);
                let line = if args.json {
                    let mut v = serde_json::to_value(r).expect("a report serializes");
                    v["file"] = Value::from(f.path.display().to_string());
                    v["date"] = Value::from(date);
                    v.to_string()
                } else {
                    format!("{date} {} {}", f.path.display(), r.summary_line())
                };
                out(&line)?;
                bar.inc(1);
                anyhow::Ok(())
            }
        },
    )
    .await?;
    let (changed, unchanged, failed) = (done.changed, done.unchanged, done.failed);
    drop(bar);
    let not_run = files.len() - changed - unchanged - failed;
    let summary = format!(
        "{} replayed files={} changed={changed} unchanged={unchanged} failed={failed} skipped={skipped} not_run={not_run}",
        ds.name,
        files.len() + skipped
    );
    if args.json {
        let _ = writeln!(std::io::stderr(), "{summary}");
    } else {
        out(format_args!("{summary}"))?;
    }
    Ok(failed == 0)
}

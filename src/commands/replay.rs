//! `snapsync replay`: recorded files published as the versions they were (see `snapsync::replay`).

use std::io::{IsTerminal, Write};

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
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replaying [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let printed = |line: &str| match &bar {
        Some(bar) => bar.suspend(|| out(line)),
        None => out(line),
    };
    let done = history::replay_files(
        &deps,
        ds,
        &files,
        config.source.max_bytes,
        args.force,
        |step| match step {
            history::Progress::Starting(f) => {
                if let Some(bar) = &bar {
                    bar.set_message(keys::rfc3339(f.date));
                }
                Ok(())
            }
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
                printed(&line)?;
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                anyhow::Ok(())
            }
        },
    )
    .await?;
    let (changed, unchanged, failed) = (done.changed, done.unchanged, done.failed);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
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

//! `snapsync restore`: one version, rebuilt from the nearest kept snapshot and its deltas.

use std::io::Write;

use anyhow::Context;

use crate::commands::{manifest_of, one_dataset, open_store, out, write_stdout};
use snapsync::cli::RestoreArgs;
use snapsync::clock::{Clock, StoreClock};
use snapsync::config::Config;
use snapsync::consumer;
use snapsync::error::Error;
use snapsync::history::{self, Target};
use snapsync::keys::{self, DatasetKeys};

pub async fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    let ds = one_dataset(config)?;
    let to_stdout = args.out.as_os_str() == "-";
    if !to_stdout {
        check_out(&args.out, args.force)?;
    }
    let store = open_store(config).await?;
    let keys = DatasetKeys::new(store.prefix(), &ds.name);
    let manifest = manifest_of(&store, &keys).await?;
    let now = StoreClock(store.clone()).now();
    let target = match (&args.at, args.version) {
        (Some(at), _) if at == "now" => Target::At(now),
        (Some(at), _) => Target::At(end_of_day(at).ok_or_else(|| {
            Error::Config(format!(
                "--at {at:?}: expected a time: RFC 3339 (2026-05-01T12:00:00Z), a date (2026-05-01, meaning the end of that day, UTC), or now"
            ))
        })?),
        (None, Some(v)) => Target::Version(v),
        (None, None) => unreachable!("clap requires --at or --version"),
    };
    if let (Target::At(_), Some(last)) = (target, manifest.last()) {
        if snapsync::plan::clock_behind(last, now).is_some() {
            tracing::warn!(dataset = %ds.name, version = last.version, created_at = %last.created_at, now = %keys::created_at(now), "the newest version is dated in the future (a clock ran ahead when it was published); --at picks versions by their created_at");
        }
    }
    let entry = history::resolve_target(&manifest, target)
        .map_err(|e| anyhow::anyhow!("{}: {e}", ds.name))?
        .clone();
    let (doc, plan) = history::restore(&store, &manifest, &entry)
        .await
        .with_context(|| format!("restoring {} version {}", ds.name, entry.version))?;
    if to_stdout {
        write_stdout(doc.bytes())?;
    } else {
        if args.force {
            consumer::write_atomically(&args.out, doc.bytes())?;
        } else {
            // Checked before the work began; refused here too if a file appeared since.
            consumer::write_new_atomically(&args.out, doc.bytes()).map_err(|e| match e {
                Error::Io { .. } if args.out.symlink_metadata().is_ok() => Error::Config(format!(
                    "--out {}: appeared while restoring; add --force to replace it",
                    args.out.display()
                )),
                e => e,
            })?;
        }
    }
    let line = format!(
        "{} restored version={} sha256={} created_at={} base={} deltas={} out={}",
        ds.name,
        entry.version,
        entry.sha256,
        entry.created_at,
        plan.base.version,
        plan.deltas.len(),
        args.out.display()
    );
    if to_stdout {
        let _ = writeln!(std::io::stderr(), "{line}");
    } else if args.json {
        let v = serde_json::json!({
            "dataset": ds.name,
            "version": entry.version,
            "sha256": entry.sha256,
            "created_at": entry.created_at,
            "base": plan.base.version,
            "deltas": plan.deltas.len(),
            "out": args.out.display().to_string(),
            "bytes": doc.bytes().len(),
        });
        out(v)?;
    } else {
        out(format_args!("{line}"))?;
    }
    Ok(())
}

/// `--at`: a time, or a date meaning the end of that day (UTC): `--at 2026-12-01` is the version
/// current when that day ended, the one a person asking for "December 1st's data" means.
fn end_of_day(at: &str) -> Option<time::OffsetDateTime> {
    let t = history::parse_date(at)?;
    let is_date = at.len() == 10 && at.as_bytes().get(4) == Some(&b'-');
    Some(if is_date {
        t + time::Duration::days(1) - time::Duration::milliseconds(1)
    } else {
        t
    })
}

/// Before any work: `out`'s directory exists, and `out` does not (unless `force`).
fn check_out(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "--out {}: the directory {} does not exist (create it first)",
            out.display(),
            dir.display()
        ))
        .into());
    }
    if out.is_dir() {
        return Err(Error::Config(format!(
            "--out {}: is a directory; expected a file name",
            out.display()
        ))
        .into());
    }
    if !force && out.symlink_metadata().is_ok() {
        return Err(Error::Config(format!(
            "--out {}: exists; add --force to replace it",
            out.display()
        ))
        .into());
    }
    Ok(())
}

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
    let store = open_store(config).await?;
    let keys = DatasetKeys::new(store.prefix(), &ds.name);
    let manifest = manifest_of(&store, &keys).await?;
    let now = StoreClock(store.clone()).now();
    let target = match (&args.at, args.version) {
        (Some(at), _) if at == "now" => Target::At(now),
        (Some(at), _) => Target::At(history::parse_date(at).ok_or_else(|| {
            Error::Config(format!(
                "--at {at:?}: not a time (RFC 3339 like 2026-05-01T00:00:00Z, YYYY-MM-DD, or now)"
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
    let to_stdout = args.out.as_os_str() == "-";
    if to_stdout {
        write_stdout(doc.bytes())?;
    } else {
        consumer::write_atomically(&args.out, doc.bytes())?;
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
    } else {
        out(format_args!("{line}"))?;
    }
    Ok(())
}

//! Command glue: builds the real store, database and source from the `Config`, runs a
//! command, and prints its result. Output for scripts goes to stdout (through [`out`], so a
//! closed pipe stops a command quietly instead of panicking); logs go to stderr.

mod diff;
mod doctor;
mod history;
mod log;
pub mod progress;
mod prune;
mod pull;
mod replay;
mod restore;
mod run;
mod status;
mod verify;
mod worker;

pub use diff::diff;
pub use doctor::doctor;
pub use history::history;
pub use log::log;
pub use prune::prune;
pub use pull::pull;
pub use replay::replay;
pub use restore::restore;
pub use run::{run, run_status};
pub use status::status;
pub use verify::verify;
pub use worker::worker;

/// `snapsync completions SHELL`: the script clap_complete writes for [`snapsync::cli::command`].
pub fn completions(shell: &str) -> anyhow::Result<()> {
    let shell: clap_complete::Shell = shell
        .parse()
        .map_err(|e| Error::Config(format!("completions {shell:?}: {e}")))?;
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut snapsync::cli::command(), "snapsync", &mut buf);
    write_stdout(&buf)
}

/// `snapsync man`: the man page (section 1): the global options, the commands, exit status.
pub fn man() -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(snapsync::cli::command()).render(&mut buf)?;
    write_stdout(&buf)
}

use std::io::Write as _;
use std::sync::Arc;

use snapsync::clock::{Clock, StoreClock};
use snapsync::config::Config;
use snapsync::config::DatasetConfig;
use snapsync::db::Db;
use snapsync::error::Error;
use snapsync::keys::DatasetKeys;
use snapsync::manifest::Manifest;
use snapsync::probe;
use snapsync::remote;
use snapsync::source::HttpSource;
use snapsync::store;
use snapsync::store::DynStore;
use snapsync::sync::{Deps, Report};

/// How many datasets run at once.
pub const PARALLEL_DATASETS: usize = 4;

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
    let written = progress::suspend(|| {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes).and_then(|()| stdout.flush())
    });
    match written {
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

/// [`probe::check_safe_to_publish`] for these deps.
pub async fn check_safe_to_publish(deps: &Deps, single_writer: bool) -> snapsync::Result<()> {
    probe::check_safe_to_publish(&*deps.store, &deps.db, deps.clock.now(), single_writer).await
}

pub fn any_failed(reports: &[Report]) -> bool {
    reports.iter().any(|r| !r.outcome.succeeded())
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

/// The one dataset a command works on: `--dataset`, or the only one configured.
pub fn one_dataset(config: &Config) -> anyhow::Result<&DatasetConfig> {
    match config.datasets.as_slice() {
        [one] => Ok(one),
        many => Err(Error::Config(format!(
            "this command works on one dataset; pick one of {} with --dataset",
            many.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

/// The error of a read command naming datasets the store has no history of: which ones, and
/// which datasets the store does have (a typo in `--dataset` is the usual cause).
pub async fn no_history(store: &DynStore, names: &[&str]) -> anyhow::Error {
    let prefix = match store.prefix() {
        "" => String::new(),
        p => format!("{p}/"),
    };
    let have = match store.list(&prefix).await {
        Ok(objects) => {
            let mut found: Vec<String> = objects
                .iter()
                .filter_map(|o| {
                    let rest = o.key.strip_prefix(&prefix)?;
                    let (name, file) = rest.split_once('/')?;
                    (file == "manifest.json" || file == "latest.json").then(|| name.to_string())
                })
                .collect();
            found.sort();
            found.dedup();
            if found.is_empty() {
                "it has no datasets at all".to_string()
            } else {
                format!("it has: {}", found.join(", "))
            }
        }
        Err(e) => format!("listing its datasets failed: {e}"),
    };
    anyhow::anyhow!(
        "no history of {} in {} ({have}; pick one with --dataset)",
        names.join(", "),
        store.url()
    )
}

pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    Ok(store::open(&config.store, &config.s3).await?)
}

pub async fn manifest_of(store: &DynStore, keys: &DatasetKeys) -> anyhow::Result<Manifest> {
    match remote::read_manifest(store, keys).await? {
        Some(m) => Ok(m),
        None => {
            let name = keys.base().rsplit('/').next().unwrap_or_default();
            Err(no_history(store, &[name]).await)
        }
    }
}

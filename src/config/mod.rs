//! One validated `Config` from flags, `SNAPSYNC_*` variables, `snapsync.toml` and defaults.
//!
//! Everything a user can get wrong is checked here, once, before any work starts, and reported
//! in one line naming the file, line and field (or the flag). Nothing secret is ever part of
//! the configuration: credentials stay in aws-config's chain.
//!
//! The code is cut by step: this file holds the resolved types ([`Config`], [`DatasetConfig`],
//! [`WorkerOptions`]) and the file's format as it is read (`snapsync.toml`, its parse errors and
//! which files it may name); `resolve` merges flags, variables, the file and defaults into a
//! `Config` and checks each dataset; `transforms` validates `[[dataset.transform]]` entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::canonical::KeyPointer;
use crate::changes::PathPattern;
use crate::error::{Error, Result};
use crate::schedule::Schedule;
use crate::source::SourceOptions;
use crate::store::s3::S3Options;
use crate::store::StoreUrl;
use crate::transform::{Transform, TransformSpec};
use crate::validate::Guards;
pub use notify::NotifyOptions;

pub const DEFAULT_URL: &str = "https://coviddata.github.io/coviddata/v1/countries/stats.json";
pub const DEFAULT_DATASET: &str = "covid-countries";
pub const DEFAULT_KEY: &str = "/country/key";
/// The default dataset's running totals: each day's `cumulative` figures follow from the `new`
/// ones, so a revised day shifts every later day's.
pub const DEFAULT_DERIVED: &[&str] = &["/dates/*/cumulative"];
pub const DEFAULT_STORE: &str = "file://./snapsync-data";
pub const DEFAULT_DB: &str = "./snapsync.db";
pub const DEFAULT_CONFIG: &str = "./snapsync.toml";
/// gzip level of snapshots and deltas (libdeflate's levels): on the 30 MB covid-shaped
/// benchmark file level 1 takes 45 ms for 3.60 MB, level 3 65 ms for 3.55 MB, level 6 144 ms
/// for 2.93 MB. Level 1 is as small as zlib's level 3, the default before libdeflate.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreUrl,
    pub store_text: String,
    pub db: PathBuf,
    pub datasets: Vec<DatasetConfig>,
    pub source: SourceOptions,
    pub s3: S3Options,
    pub single_writer: bool,
}

/// One dataset's settings.
#[derive(Clone)]
pub struct DatasetConfig {
    pub name: String,
    /// May carry credentials (`https://user:pass@…`, `?token=…`): shown only redacted.
    pub url: String,
    pub key: KeyPointer,
    pub guards: Guards,
    pub gzip_level: u32,
    /// Applied in order between fetching and canonicalizing.
    pub transforms: Vec<TransformSpec>,
    /// When the worker runs it.
    pub schedule: Schedule,
    /// Paths of values that change only because an earlier value did (running totals):
    /// their revisions are told apart as `derived` ([`crate::changes`]).
    pub derived: Vec<PathPattern>,
}

impl std::fmt::Debug for DatasetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetConfig")
            .field("name", &self.name)
            .field("url", &crate::source::redact_url(&self.url))
            .field("key", &self.key)
            .field("guards", &self.guards)
            .field("gzip_level", &self.gzip_level)
            .field("schedule", &self.schedule.as_str())
            .finish()
    }
}

impl DatasetConfig {
    /// What turns fetched bytes into canonical bytes ([`crate::transform::pipeline_fingerprint`]).
    pub fn pipeline_fingerprint(&self, transforms: &[Transform]) -> String {
        crate::transform::pipeline_fingerprint(&self.key, transforms)
    }

    /// Whether a transform joins a table.
    pub fn has_join(&self) -> bool {
        self.transforms
            .iter()
            .any(|t| matches!(t, TransformSpec::Join(_)))
    }
}

/// The worker's settings (`snapsync worker` flags), validated.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub heartbeat: Duration,
    pub retry_base: Duration,
    pub max_retries: u32,
    /// Webhooks and the dead-man ping; never fail a run.
    pub notify: NotifyOptions,
    /// How long an in-flight run may take to finish after a shutdown signal (Heroku kills 30 s
    /// after SIGTERM).
    pub grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            heartbeat: Duration::from_secs(60),
            retry_base: Duration::from_secs(60),
            max_retries: 5,
            notify: NotifyOptions::default(),
            grace: Duration::from_secs(20),
        }
    }
}

impl WorkerOptions {
    /// From the worker's flags: intervals between 0 and a day, notify and heartbeat URLs that
    /// are https (or http on loopback, or anywhere with `allow_insecure_http`).
    pub fn from_args(args: &crate::cli::WorkerArgs, allow_insecure_http: bool) -> Result<Self> {
        let secs = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 86_400.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(Error::Config(format!(
                    "{what} {v}: expected more than 0 and at most 86400 seconds (a day)"
                )))
            }
        };
        Ok(WorkerOptions {
            heartbeat: secs("--heartbeat", args.heartbeat)?,
            retry_base: secs("--retry", args.retry)?,
            max_retries: args.max_retries,
            notify: NotifyOptions::from_args(&args.notify, allow_insecure_http)?,
            ..WorkerOptions::default()
        })
    }
}

/// `snapsync.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<PathBuf>,
    #[serde(default)]
    store: FileStoreSection,
    #[serde(default)]
    source: FileSourceSection,
    #[serde(default, rename = "dataset")]
    datasets: Vec<FileDataset>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStoreSection {
    url: Option<String>,
    endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSourceSection {
    max_bytes: Option<u64>,
    timeout_secs: Option<f64>,
    connect_timeout_secs: Option<f64>,
    total_timeout_secs: Option<f64>,
    retries: Option<u32>,
    retry_backoff_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDataset {
    name: String,
    url: String,
    key: Option<String>,
    #[serde(default)]
    allow_insecure_http: bool,
    gzip_level: Option<u32>,
    /// `daily`, `daily HH:MM` (UTC) or a cron expression.
    schedule: Option<String>,
    /// Paths of derived values (`["/dates/*/cumulative"]`).
    derived: Option<Vec<String>>,
    #[serde(default)]
    guards: FileGuards,
    /// `[[dataset.transform]]`, applied in order.
    #[serde(default, rename = "transform")]
    transforms: Vec<FileTransform>,
}

/// One `[[dataset.transform]]`: exactly one of its keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTransform {
    drop: Option<Vec<String>>,
    keep: Option<Vec<String>>,
    filter: Option<FileFilter>,
    rename: Option<BTreeMap<String, String>>,
    join: Option<FileJoin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFilter {
    field: String,
    equals: Option<toml::Value>,
    #[serde(rename = "in")]
    one_of: Option<Vec<toml::Value>>,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJoin {
    /// A file (relative to the configuration file) or an https:// URL.
    source: String,
    /// `csv`, `json`, `xlsx`, `xls` or `ods` (default: from the source's extension, the
    /// server's Content-Type, or the file's signature).
    format: Option<String>,
    /// A workbook's sheet: its name or its 1-based number (default: the first).
    sheet: Option<FileSheet>,
    /// 1-based row of the column names (default: the first row with a cell).
    header_row: Option<u32>,
    /// Cell texts that mean "no value" (default: "", NA, N/A, n/a, #N/A, null).
    missing: Option<Vec<String>>,
    /// Column -> integer, number, boolean or string (default: inferred from the column).
    #[serde(default)]
    types: BTreeMap<String, String>,
    /// `as-is` (default) or `snake_case`.
    column_names: Option<String>,
    /// Header as written -> column name.
    #[serde(default)]
    columns: BTreeMap<String, String>,
    /// Refuse a table file larger than this (default 32 MiB).
    max_bytes: Option<u64>,
    /// The table's key column.
    key: String,
    /// A column of ISO 3166-1 codes to match countries by.
    iso: Option<String>,
    /// Pointer to the key inside each record.
    on: String,
    /// Pointer to an ISO 3166-1 code inside each record.
    on_iso: Option<String>,
    /// Pointer (inside each record) of the object the fields go into; "" for the record.
    #[serde(default)]
    into: String,
    /// Output member -> table column (default: every column but the key).
    fields: Option<BTreeMap<String, String>>,
    /// Table key -> dataset key (or keys), where the names differ.
    #[serde(default)]
    names: BTreeMap<String, OneOrMany>,
    /// Match country names through the built-in alias table (default true).
    aliases: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileSheet {
    Index(i64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGuards {
    min_records: Option<u64>,
    max_shrink: Option<f64>,
    require_key: Option<bool>,
    allow_duplicates: Option<bool>,
}

/// `Ok` when the file `path` (relative to the working directory, as it is read) lies inside
/// `dir`, the configuration file's directory, after symlinks and `..` are resolved: a
/// configuration may read its own neighbours but not `~/.aws/credentials` into a store it
/// names. A path that does not exist yet is judged by its parent directory.
fn file_inside(dir: &Path, path: &Path) -> Result<(), String> {
    let real = |p: &Path| -> PathBuf {
        std::fs::canonicalize(p)
            .or_else(|_| {
                let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
                let parent = std::fs::canonicalize(parent.unwrap_or(Path::new(".")))?;
                Ok::<_, std::io::Error>(match p.file_name() {
                    Some(name) => parent.join(name),
                    None => parent,
                })
            })
            .unwrap_or_else(|_| lexical_absolute(p))
    };
    let (real_dir, real_path) = (real(dir), real(path));
    if real_path.starts_with(&real_dir) {
        Ok(())
    } else {
        Err(format!(
            "file source {} is outside the configuration file's directory {}; pass --allow-files-outside (SNAPSYNC_ALLOW_FILES_OUTSIDE) to read it",
            real_path.display(),
            real_dir.display()
        ))
    }
}

/// `p` made absolute against the working directory, with `.` and `..` folded away.
fn lexical_absolute(p: &Path) -> PathBuf {
    let joined = std::env::current_dir()
        .unwrap_or_else(|_| PathBuf::from("/"))
        .join(p);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig> {
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        Error::Config(format!("{}{at}: {}", path.display(), e.message().trim()))
    })
}

pub mod notify;
mod resolve;
mod transforms;

#[cfg(test)]
mod tests;

//! One validated `Config` from flags, `SNAPSYNC_*` variables, `snapsync.toml` and defaults.
//!
//! Everything a user can get wrong is checked here, once, before any work starts, and reported
//! in one line naming the file, line and field (or the flag). Nothing secret is ever part of
//! the configuration: credentials stay in aws-config's chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::canonical::KeyPointer;
use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use crate::join::JoinSpec;
use crate::keys;
use crate::schedule::{Schedule, DEFAULT_SCHEDULE};
use crate::source::{check_url, SourceOptions};
use crate::store::s3::S3Options;
use crate::store::StoreUrl;
use crate::table::{ColumnType, NameStyle, ReadOptions, SheetRef, TableFormat};
use crate::transform::{Condition, Pattern, Transform, TransformSpec};
use crate::validate::Guards;

pub const DEFAULT_URL: &str = "https://coviddata.github.io/coviddata/v1/countries/stats.json";
pub const DEFAULT_DATASET: &str = "covid-countries";
pub const DEFAULT_KEY: &str = "/country/key";
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
    pub notify: crate::notify::NotifyOptions,
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
            notify: crate::notify::NotifyOptions::default(),
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
                    "{what} must be between 0 and 86400 seconds, not {v}"
                )))
            }
        };
        Ok(WorkerOptions {
            heartbeat: secs("--heartbeat", args.heartbeat)?,
            retry_base: secs("--retry", args.retry)?,
            max_retries: args.max_retries,
            notify: crate::notify::NotifyOptions::from_args(&args.notify, allow_insecure_http)?,
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

impl Config {
    /// Resolves the configuration. `cwd_config_exists` is whether `./snapsync.toml` exists
    /// (passed in so tests do not depend on the working directory).
    ///
    /// Which file was read is logged (one info line): a `./snapsync.toml` is picked up from
    /// whatever directory snapsync runs in, so a planted one must at least show.
    pub fn resolve(args: &GlobalArgs) -> Result<Config> {
        let path = match &args.config {
            Some(p) => Some((p.clone(), "named by --config or SNAPSYNC_CONFIG")),
            None if Path::new(DEFAULT_CONFIG).exists() => Some((
                PathBuf::from(DEFAULT_CONFIG),
                "found in the current directory",
            )),
            None => None,
        };
        match path {
            Some((p, how)) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?;
                let config = Config::from_text(args, &text, &p)?;
                tracing::info!(config = %p.display(), "loaded configuration ({how})");
                Ok(config)
            }
            None => Config::build(args, FileConfig::default(), None),
        }
    }

    /// Resolves with `text` as the contents of the configuration file `path` (named in
    /// messages only). Never panics, whatever the text.
    pub fn from_text(args: &GlobalArgs, text: &str, path: &Path) -> Result<Config> {
        let file = parse_file(text, path)?;
        Config::build(args, file, Some(path.to_path_buf()))
    }

    fn build(args: &GlobalArgs, file: FileConfig, file_path: Option<PathBuf>) -> Result<Config> {
        let store_text = args
            .store
            .clone()
            .or(file.store.url.clone())
            .unwrap_or_else(|| DEFAULT_STORE.to_string());
        let store = StoreUrl::parse(&store_text)?;
        let db = args
            .db
            .clone()
            .or(file.db.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB));

        let mut source = SourceOptions::default();
        if let Some(n) = args.max_bytes.or(file.source.max_bytes) {
            if n == 0 {
                return Err(Error::Config("max_bytes must be more than 0".into()));
            }
            source.max_bytes = n;
        }
        if let Some(t) = args.timeout.or(file.source.timeout_secs) {
            source.read_timeout = seconds("timeout", t)?;
            source.connect_timeout = source.connect_timeout.min(source.read_timeout);
        }
        if let Some(t) = args.connect_timeout.or(file.source.connect_timeout_secs) {
            source.connect_timeout = seconds("connect timeout", t)?;
        }
        if let Some(t) = args.total_timeout.or(file.source.total_timeout_secs) {
            source.total_timeout = seconds("total timeout", t)?;
        }
        if let Some(r) = args.retries.or(file.source.retries) {
            source.retries = r.min(20);
        }
        if let Some(ms) = args.retry_backoff_ms.or(file.source.retry_backoff_ms) {
            if ms > 600_000 {
                return Err(Error::Config(format!(
                    "retry backoff {ms} ms must be at most 600000 ms"
                )));
            }
            source.backoff = Duration::from_millis(ms);
        }
        source.allow_insecure_http = args.allow_insecure_http;

        let key_text = |k: Option<&str>| {
            args.key
                .clone()
                .or(k.map(str::to_string))
                .unwrap_or_else(|| DEFAULT_KEY.to_string())
        };
        let where_ = |i: usize| match &file_path {
            Some(p) => format!("{} [[dataset]] #{}", p.display(), i + 1),
            None => "command line".to_string(),
        };
        let mut datasets = Vec::new();
        let schedule = |text: Option<&str>, where_: &str| {
            let text = args
                .schedule
                .as_deref()
                .or(text)
                .unwrap_or(DEFAULT_SCHEDULE);
            Schedule::parse(text).map_err(|e| Error::Config(format!("{where_}: {e}")))
        };
        if file.datasets.is_empty() {
            let name = args
                .dataset
                .clone()
                .unwrap_or_else(|| DEFAULT_DATASET.to_string());
            let url = args.url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
            datasets.push(dataset(
                &name,
                &url,
                &key_text(None),
                &Guards::default(),
                DEFAULT_GZIP_LEVEL,
                args.allow_insecure_http,
                "command line",
            )?);
            datasets.last_mut().expect("just pushed").schedule = schedule(None, "command line")?;
        } else {
            for (i, d) in file.datasets.iter().enumerate() {
                if args.dataset.as_ref().is_some_and(|n| n != &d.name) {
                    continue;
                }
                let defaults = Guards::default();
                let guards = Guards {
                    min_records: d.guards.min_records.unwrap_or(defaults.min_records),
                    max_shrink: d.guards.max_shrink.unwrap_or(defaults.max_shrink),
                    require_key: d.guards.require_key.unwrap_or(defaults.require_key),
                    allow_duplicates: d
                        .guards
                        .allow_duplicates
                        .unwrap_or(defaults.allow_duplicates),
                };
                let url = args.url.clone().unwrap_or_else(|| d.url.clone());
                let base = file_path
                    .as_deref()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."));
                if args.url.is_none() && !args.allow_files_outside {
                    if let Some(path) = url.strip_prefix("file://") {
                        // The fetch reads it relative to the working directory.
                        file_inside(base, Path::new(path))
                            .map_err(|m| Error::Config(format!("{}: {m}", where_(i))))?;
                    }
                }
                let insecure = d.allow_insecure_http || args.allow_insecure_http;
                if d.allow_insecure_http {
                    // The fetch (and its redirects) may use plain http to this dataset's host.
                    if let Some(host) = url::Url::parse(&url)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string))
                    {
                        source.insecure_http_hosts.push(host);
                    }
                }
                datasets.push(dataset(
                    &d.name,
                    &url,
                    &key_text(d.key.as_deref()),
                    &guards,
                    d.gzip_level.unwrap_or(DEFAULT_GZIP_LEVEL),
                    insecure,
                    &where_(i),
                )?);
                let last = datasets.last_mut().expect("just pushed");
                last.schedule = schedule(d.schedule.as_deref(), &where_(i))?;
                let files = (!args.allow_files_outside).then_some(base);
                last.transforms = transforms(&d.transforms, base, files, insecure, &where_(i))?;
            }
            if datasets.is_empty() {
                return Err(Error::Config(format!(
                    "dataset {:?} is not in {}",
                    args.dataset.as_deref().unwrap_or_default(),
                    file_path.as_deref().unwrap_or(Path::new("")).display()
                )));
            }
            if datasets.len() > 1 && args.url.is_some() {
                return Err(Error::Config(
                    "--url names the source of one dataset; pick it with --dataset".into(),
                ));
            }
            let mut names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(Error::Config(format!(
                    "dataset {:?} is defined twice",
                    w[0]
                )));
            }
        }
        let s3 = S3Options {
            endpoint: args.endpoint.clone().or(file.store.endpoint),
            path_style: true,
            ..S3Options::default()
        };
        Ok(Config {
            store,
            store_text,
            db,
            datasets,
            source,
            s3,
            single_writer: args.single_writer,
        })
    }
}

/// A timeout setting: more than 0, at most a day.
fn seconds(what: &str, t: f64) -> Result<Duration> {
    if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
        return Err(Error::Config(format!(
            "{what} {t} must be between 0 and 86400 seconds"
        )));
    }
    Ok(Duration::from_secs_f64(t))
}

fn dataset(
    name: &str,
    url: &str,
    key: &str,
    guards: &Guards,
    gzip_level: u32,
    allow_insecure_http: bool,
    where_: &str,
) -> Result<DatasetConfig> {
    let ctx = |e: Error| match e {
        Error::Config(m) => Error::Config(format!("{where_}: {m}")),
        other => other,
    };
    keys::validate_dataset_name(name).map_err(ctx)?;
    if !url.starts_with("file://") {
        check_url(url, allow_insecure_http).map_err(ctx)?;
    }
    let key = KeyPointer::parse(key).map_err(|m| Error::Config(format!("{where_}: key: {m}")))?;
    if !(0.0..=1.0).contains(&guards.max_shrink) {
        return Err(Error::Config(format!(
            "{where_}: guards.max_shrink must be between 0 and 1"
        )));
    }
    if gzip_level > 9 {
        return Err(Error::Config(format!("{where_}: gzip_level must be 0..=9")));
    }
    Ok(DatasetConfig {
        name: name.to_string(),
        url: url.to_string(),
        key,
        guards: guards.clone(),
        gzip_level,
        transforms: Vec::new(),
        schedule: Schedule::default(),
    })
}

/// Validates `[[dataset.transform]]` entries into transform specs.
///
/// `files_inside`: the directory a joined file must lie in (`None` when files anywhere are
/// allowed).
fn transforms(
    list: &[FileTransform],
    base: &Path,
    files_inside: Option<&Path>,
    allow_insecure_http: bool,
    where_: &str,
) -> Result<Vec<TransformSpec>> {
    let mut out = Vec::new();
    for (j, t) in list.iter().enumerate() {
        let at = format!("{where_} transform #{}", j + 1);
        let err = |what: &str, m: String| Error::Config(format!("{at} ({what}): {m}"));
        let set = [
            t.drop.is_some(),
            t.keep.is_some(),
            t.filter.is_some(),
            t.rename.is_some(),
            t.join.is_some(),
        ];
        if set.iter().filter(|&&b| b).count() != 1 {
            return Err(Error::Config(format!(
                "{at}: needs exactly one of drop, keep, filter, rename, join"
            )));
        }
        let patterns = |what: &str, list: &[String]| -> Result<Vec<Pattern>> {
            if list.is_empty() {
                return Err(err(what, "lists no path".into()));
            }
            list.iter()
                .map(|p| {
                    let pat = Pattern::parse(p).map_err(|m| err(what, m))?;
                    Ok(pat)
                })
                .collect()
        };
        let spec = if let Some(list) = &t.drop {
            TransformSpec::Ready(Transform::Drop(patterns("drop", list)?))
        } else if let Some(list) = &t.keep {
            TransformSpec::Ready(Transform::Keep(patterns("keep", list)?))
        } else if let Some(f) = &t.filter {
            let field = crate::canonical::parse_pointer(&f.field).map_err(|m| err("filter", m))?;
            let json =
                |v: &toml::Value| serde_json::to_value(v).map_err(|e| err("filter", e.to_string()));
            let condition = match (&f.equals, &f.one_of, f.min, f.max) {
                (Some(v), None, None, None) => Condition::Equals(json(v)?),
                (None, Some(vs), None, None) => {
                    Condition::In(vs.iter().map(json).collect::<Result<_>>()?)
                }
                (None, None, min, max) if min.is_some() || max.is_some() => {
                    Condition::Range { min, max }
                }
                _ => return Err(err("filter", "needs one of equals, in, or min/max".into())),
            };
            TransformSpec::Ready(Transform::Filter { field, condition })
        } else if let Some(map) = &t.rename {
            let mut renames = Vec::new();
            for (from, to) in map {
                if to.is_empty() || to.contains('/') {
                    return Err(err(
                        "rename",
                        format!("{to:?} must be a member name, not a path"),
                    ));
                }
                renames.push((
                    Pattern::parse(from).map_err(|m| err("rename", m))?,
                    to.clone(),
                ));
            }
            TransformSpec::Ready(Transform::Rename(renames))
        } else {
            let j = t.join.as_ref().expect("one is set");
            let format = match j.format.as_deref() {
                None => None,
                Some(name) => Some(TableFormat::parse(name).ok_or_else(|| {
                    err(
                        "join",
                        format!("format {name:?}: use {}", TableFormat::NAMES),
                    )
                })?),
            };
            let source = if j.source.contains("://") {
                match j.source.strip_prefix("file://") {
                    Some(path) => {
                        if let Some(dir) = files_inside {
                            file_inside(dir, Path::new(path)).map_err(|m| err("join", m))?;
                        }
                    }
                    None => check_url(&j.source, allow_insecure_http)
                        .map_err(|e| err("join", e.to_string()))?,
                }
                j.source.clone()
            } else {
                let path = base.join(&j.source);
                let abs = std::fs::canonicalize(&path)
                    .map_err(|e| err("join", format!("source {}: {e}", path.display())))?;
                if let Some(dir) = files_inside {
                    file_inside(dir, &abs).map_err(|m| err("join", m))?;
                }
                format!("file://{}", abs.display())
            };
            let pointer = |p: &str| crate::canonical::parse_pointer(p).map_err(|m| err("join", m));
            if j.fields.as_ref().is_some_and(BTreeMap::is_empty) {
                return Err(err("join", "fields maps no column".into()));
            }
            let sheet = match &j.sheet {
                None => None,
                Some(FileSheet::Name(n)) => Some(SheetRef::Name(n.clone())),
                Some(FileSheet::Index(i)) if *i >= 1 => Some(SheetRef::Index(*i as usize)),
                Some(FileSheet::Index(i)) => {
                    return Err(err(
                        "join",
                        format!("sheet {i}: sheets are numbered from 1 (or give the sheet's name)"),
                    ))
                }
            };
            if sheet.is_some() && format.is_some_and(|f| !f.is_spreadsheet()) {
                return Err(err(
                    "join",
                    "sheet is set, but the format has no sheets".into(),
                ));
            }
            if j.header_row == Some(0) {
                return Err(err(
                    "join",
                    "header_row is 1-based (the first row is 1)".into(),
                ));
            }
            let mut types = BTreeMap::new();
            for (column, ty) in &j.types {
                let ty = ColumnType::parse(ty).ok_or_else(|| {
                    err(
                        "join",
                        format!(
                            "types.{column} = {ty:?}: use \"integer\", \"number\", \"boolean\" or \"string\""
                        ),
                    )
                })?;
                types.insert(column.clone(), ty);
            }
            let column_names = match j.column_names.as_deref() {
                None | Some("as-is") => NameStyle::AsIs,
                Some("snake_case") => NameStyle::SnakeCase,
                Some(other) => {
                    return Err(err(
                        "join",
                        format!("column_names {other:?}: use \"as-is\" or \"snake_case\""),
                    ))
                }
            };
            let mut names = BTreeMap::new();
            for (row, keys) in &j.names {
                let keys = match keys {
                    OneOrMany::One(k) => vec![k.clone()],
                    OneOrMany::Many(ks) if !ks.is_empty() => ks.clone(),
                    OneOrMany::Many(_) => {
                        return Err(err("join", format!("names.{row:?} lists no key")))
                    }
                };
                names.insert(row.clone(), keys);
            }
            TransformSpec::Join(Box::new(JoinSpec {
                source,
                format,
                read: ReadOptions {
                    sheet,
                    header_row: j.header_row,
                    missing: j.missing.clone().unwrap_or_else(|| {
                        crate::table::DEFAULT_MISSING
                            .iter()
                            .map(|s| s.to_string())
                            .collect()
                    }),
                    types,
                    column_names,
                    rename: j.columns.clone(),
                    literal: Vec::new(),
                },
                max_bytes: j.max_bytes.unwrap_or(crate::table::DEFAULT_MAX_BYTES),
                key_column: j.key.clone(),
                iso_column: j.iso.clone(),
                names,
                aliases: j.aliases.unwrap_or(true),
                on: pointer(&j.on)?,
                on_iso: j.on_iso.as_deref().map(pointer).transpose()?,
                into: pointer(&j.into)?,
                fields: j.fields.clone(),
            }))
        };
        out.push(spec);
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(argv: &[&str], toml: Option<&str>) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = vec!["snapsync".into()];
        args.extend(argv.iter().map(|s| s.to_string()));
        if let Some(t) = toml {
            let p = dir.path().join("snapsync.toml");
            std::fs::write(&p, t).unwrap();
            args.push("--config".into());
            args.push(p.display().to_string());
        }
        args.push("run".into());
        let cli = crate::cli::Cli::try_parse_from(args).unwrap();
        Config::resolve(&cli.global)
    }

    #[test]
    fn defaults_sync_covid_into_the_current_directory() {
        let c = resolve(&[], None).unwrap();
        assert_eq!(
            c.store,
            StoreUrl::File {
                dir: "./snapsync-data".into()
            }
        );
        assert_eq!(c.db, PathBuf::from("./snapsync.db"));
        assert_eq!(c.datasets.len(), 1);
        assert_eq!(c.datasets[0].name, "covid-countries");
        assert_eq!(c.datasets[0].url, DEFAULT_URL);
        assert_eq!(c.datasets[0].key.as_str(), "/country/key");
    }

    #[test]
    fn flags_win_over_the_file() {
        let toml = "db = \"x.db\"\n[store]\nurl = \"s3://bucket-a/p\"\n[[dataset]]\nname = \"a\"\nurl = \"https://example.com/a.json\"\n";
        let c = resolve(&["--store", "file:///tmp/s"], Some(toml)).unwrap();
        assert_eq!(
            c.store,
            StoreUrl::File {
                dir: "/tmp/s".into()
            }
        );
        assert_eq!(c.db, PathBuf::from("x.db"));
        assert_eq!(c.datasets[0].name, "a");
    }

    #[test]
    fn file_errors_name_file_line_and_field() {
        let err = resolve(&[], Some("[store]\nurl = \"s3://b/p\"\nbogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("snapsync.toml:3:1"), "{err}");
        assert!(err.contains("bogus"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn source_settings_come_from_flags_and_the_file() {
        let toml =
            "[source]\ntimeout_secs = 5\nconnect_timeout_secs = 2\ntotal_timeout_secs = 60\n\
                    retries = 1\nretry_backoff_ms = 50\nmax_bytes = 1000\n\
                    [[dataset]]\nname = \"a\"\nurl = \"http://data.example.com/a.json\"\n\
                    allow_insecure_http = true\n";
        let s = resolve(&["--retry-backoff-ms", "7"], Some(toml))
            .unwrap()
            .source;
        assert_eq!(s.read_timeout, Duration::from_secs(5));
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.total_timeout, Duration::from_secs(60));
        assert_eq!((s.retries, s.max_bytes), (1, 1000));
        assert_eq!(s.backoff, Duration::from_millis(7));
        assert!(!s.allow_insecure_http);
        assert_eq!(s.insecure_http_hosts, vec!["data.example.com".to_string()]);
        let s = resolve(&["--timeout", "0.5"], None).unwrap().source;
        assert_eq!(s.connect_timeout, Duration::from_millis(500));
        assert!(resolve(&["--connect-timeout", "0"], None).is_err());
    }

    #[test]
    fn the_default_body_limit_fits_a_small_machine() {
        assert_eq!(resolve(&[], None).unwrap().source.max_bytes, 256 << 20);
    }

    #[test]
    fn names_of_the_stores_own_entries_are_refused_before_any_fetch() {
        for name in [".snapsync", ".snapsync-probe-1", ".hidden"] {
            let toml = format!("[[dataset]]\nname = \"{name}\"\nurl = \"https://e.com/x\"\n");
            let err = resolve(&[], Some(&toml)).unwrap_err().to_string();
            assert!(err.contains("not start with '.'"), "{name}: {err}");
            assert!(resolve(&["--dataset", name], None).is_err(), "{name}");
        }
    }

    #[test]
    fn file_sources_of_a_config_stay_in_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("snapsync.toml");
        let inside = dir.path().join("d.json");
        let args = |extra: &[&str]| {
            let mut argv = vec!["snapsync"];
            argv.extend_from_slice(extra);
            argv.push("run");
            crate::cli::Cli::try_parse_from(argv).unwrap().global
        };
        let with = |url: &str, extra: &[&str]| {
            let toml = format!("[[dataset]]\nname = \"a\"\nurl = \"{url}\"\n");
            Config::from_text(&args(extra), &toml, &config)
        };
        assert!(with(&format!("file://{}", inside.display()), &[]).is_ok());
        let err = with("file:///etc/passwd", &[]).unwrap_err().to_string();
        assert!(
            err.contains("[[dataset]] #1: file source /etc/passwd is outside the configuration file's directory"),
            "{err}"
        );
        let dotdot = format!("file://{}/../x.json", dir.path().display());
        assert!(with(&dotdot, &[]).is_err());
        assert!(with("file:///etc/passwd", &["--allow-files-outside"]).is_ok());
        // The command line's own source may be anywhere.
        assert!(with("https://e.com/x", &["--url", "file:///etc/passwd"]).is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(resolve(&["--dataset", "../etc"], None)
            .unwrap_err()
            .to_string()
            .contains("must match"));
        assert!(resolve(&["--url", "http://example.com/x"], None)
            .unwrap_err()
            .to_string()
            .contains("loopback"));
        assert!(resolve(&["--key", "country"], None)
            .unwrap_err()
            .to_string()
            .contains("must start with '/'"));
        assert!(resolve(&["--store", "ftp://x"], None).is_err());
        let dup = "[[dataset]]\nname = \"a\"\nurl = \"https://e.com/1\"\n[[dataset]]\nname = \"a\"\nurl = \"https://e.com/2\"\n";
        assert!(resolve(&[], Some(dup))
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }
}

//! [`Config::resolve`]: flags, `SNAPSYNC_*` variables, the file and defaults merged into one
//! `Config`, every dataset checked, before any work starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::transforms::transforms;
use super::{
    file_inside, parse_file, Config, DatasetConfig, FileConfig, DEFAULT_CONFIG, DEFAULT_DATASET,
    DEFAULT_DB, DEFAULT_DERIVED, DEFAULT_GZIP_LEVEL, DEFAULT_KEY, DEFAULT_STORE, DEFAULT_URL,
};
use crate::canonical::KeyPointer;
use crate::changes::PathPattern;
use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use crate::keys;
use crate::schedule::{Schedule, DEFAULT_SCHEDULE};
use crate::source::{check_url, SourceOptions};
use crate::store::s3::S3Options;
use crate::store::StoreUrl;
use crate::validate::Guards;

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
            let last = datasets.last_mut().expect("just pushed");
            last.schedule = schedule(None, "command line")?;
            last.derived = DEFAULT_DERIVED
                .iter()
                .map(|p| PathPattern::parse(p).expect("the default patterns parse"))
                .collect();
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
                last.derived = derived(d.derived.as_deref().unwrap_or_default(), &where_(i))?;
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

/// A dataset's `derived` patterns.
fn derived(patterns: &[String], where_: &str) -> Result<Vec<PathPattern>> {
    patterns
        .iter()
        .map(|p| {
            PathPattern::parse(p).map_err(|m| {
                Error::Config(format!(
                    "{where_}: derived pattern {p:?}: {m} (expected a JSON Pointer such as \"/dates/*/cumulative\", * for any one key)"
                ))
            })
        })
        .collect()
}

/// A timeout setting: more than 0, at most a day.
fn seconds(what: &str, t: f64) -> Result<Duration> {
    if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
        return Err(Error::Config(format!(
            "{what} {t}: expected more than 0 and at most 86400 seconds (a day)"
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
        derived: Vec::new(),
    })
}

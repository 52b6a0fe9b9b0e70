//! Command-line definitions. Every setting has a flag and a `SNAPSYNC_*` variable (flags win
//! over the environment, the environment over `snapsync.toml`, that over defaults), so the
//! same binary is configured by hand, by cron, or by Heroku config vars.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "snapsync",
    version,
    about = "Keeps a versioned, verifiable history of a remote JSON dataset in S3 or a local directory",
    long_about = "Keeps a versioned, verifiable history of a remote JSON dataset in S3 or a local directory.\n\n\
        Each run fetches the dataset, canonicalizes and hashes it, and only when it changed publishes a \
        dated snapshot, a new latest.json and a changes-only delta (RFC 6902 JSON Patch).\n\n\
        With no configuration at all, `snapsync run` syncs the coviddata countries dataset into \
        ./snapsync-data and ./snapsync.db."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes. They are global (accepted before or after the command's
/// name) and listed under "Global options"; [`command`] hides from each command's help the ones
/// it ignores.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Configuration file [default: ./snapsync.toml if present]
    #[arg(long, env = "SNAPSYNC_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the history lives: file://DIR or s3://BUCKET/PREFIX [default: file://./snapsync-data]
    #[arg(long, env = "SNAPSYNC_STORE", global = true, value_name = "URL")]
    pub store: Option<String>,
    /// Local state database [default: ./snapsync.db]
    #[arg(long, env = "SNAPSYNC_DB", global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Dataset name, [a-z0-9._-]+ [default: covid-countries, or all datasets of the config file]
    #[arg(long, env = "SNAPSYNC_DATASET", global = true, value_name = "NAME")]
    pub dataset: Option<String>,
    /// Source URL of a single dataset [default: the coviddata countries stats URL]
    #[arg(
        long,
        env = "SNAPSYNC_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub url: Option<String>,
    /// JSON Pointer to each record's key inside top-level array items; "" for none [default: /country/key]
    #[arg(long, env = "SNAPSYNC_KEY", global = true, value_name = "POINTER")]
    pub key: Option<String>,
    /// Largest accepted (decoded) source body, in bytes [default: 268435456, 256 MiB]
    #[arg(long, env = "SNAPSYNC_MAX_BYTES", global = true, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// Seconds to wait for the source to send anything (headers or more body) [default: 30]
    #[arg(long, env = "SNAPSYNC_TIMEOUT", global = true, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Seconds to wait for the source's TCP/TLS connection [default: 10, at most --timeout]
    #[arg(
        long,
        env = "SNAPSYNC_CONNECT_TIMEOUT",
        global = true,
        value_name = "SECS"
    )]
    pub connect_timeout: Option<f64>,
    /// Seconds one whole fetch attempt may take, body included [default: 300]
    #[arg(
        long,
        env = "SNAPSYNC_TOTAL_TIMEOUT",
        global = true,
        value_name = "SECS"
    )]
    pub total_timeout: Option<f64>,
    /// Extra fetch attempts after connection errors, timeouts and 5xx [default: 3]
    #[arg(long, env = "SNAPSYNC_RETRIES", global = true, value_name = "N")]
    pub retries: Option<u32>,
    /// Wait before the first retry of a fetch, in milliseconds; doubles each retry [default: 500]
    #[arg(
        long,
        env = "SNAPSYNC_RETRY_BACKOFF_MS",
        global = true,
        value_name = "MS"
    )]
    pub retry_backoff_ms: Option<u64>,
    /// Allow plain http:// sources that are not on loopback
    #[arg(long, env = "SNAPSYNC_ALLOW_INSECURE_HTTP", global = true)]
    pub allow_insecure_http: bool,
    /// Allow a configuration file's file:// sources (and joined tables) outside the file's own
    /// directory; only the command line or the environment can allow it, never the file
    #[arg(long, env = "SNAPSYNC_ALLOW_FILES_OUTSIDE", global = true)]
    pub allow_files_outside: bool,
    /// S3-compatible endpoint (e.g. http://127.0.0.1:8333)
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub endpoint: Option<String>,
    /// Publish even to a store that ignores conditional writes (only safe when a single
    /// snapsync process ever writes there)
    #[arg(long, env = "SNAPSYNC_SINGLE_WRITER", global = true)]
    pub single_writer: bool,
    /// When the worker runs each dataset: "daily", "daily HH:MM" (UTC) or a cron expression
    /// (5 fields, or 6 with seconds first) [default: daily 06:00]
    #[arg(long, env = "SNAPSYNC_SCHEDULE", global = true, value_name = "WHEN")]
    pub schedule: Option<String>,
    /// Log format on stderr: text, logfmt (key=value, what Heroku's router parses) or json (one
    /// object per line) [default: text on a terminal, logfmt otherwise]
    #[arg(long, env = "SNAPSYNC_LOG_FORMAT", global = true, value_parser = ["text", "logfmt", "json"])]
    pub log_format: Option<String>,
    /// Machine-readable output: JSON on stdout, and an error as one JSON object on stderr
    /// ({"error": …, "exit_code": …})
    #[arg(long, env = "SNAPSYNC_JSON", global = true)]
    pub json: bool,
    /// No progress bars (on a terminal) or progress log lines (elsewhere)
    #[arg(long, env = "SNAPSYNC_NO_PROGRESS", global = true)]
    pub no_progress: bool,
    /// Off a terminal, seconds between progress log lines of a long operation
    #[arg(
        long,
        env = "SNAPSYNC_PROGRESS_SECS",
        global = true,
        default_value_t = 10.0,
        value_name = "SECS"
    )]
    pub progress_secs: f64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One pass over the configured datasets; exit 0 when all ended changed, unchanged or
    /// not-modified, 1 when any failed, 2 on a usage or configuration error
    Run(RunArgs),
    /// Per dataset: last run, last version, and whether the database and the store agree
    Status,
    /// The version history, from the store's manifest (pruned snapshots are marked)
    Log,
    /// Long-running: run each dataset on its schedule (at once if a slot was missed while the
    /// worker was down), log a heartbeat, retry failures, stop cleanly on SIGTERM/SIGINT
    Worker(WorkerArgs),
    /// Check the configuration, the database, credentials, write access to the store (a probe
    /// object under the prefix), conditional-write support, and each source
    Doctor,
    /// Consumer: bring a local copy up to date through deltas (each checked by its sha256), or
    /// latest.json when that is cheaper; needs only read access to the store
    Pull(PullArgs),
    /// Write the dataset as of a time or version (nearest kept snapshot plus deltas, checked
    /// against the manifest's sha256)
    Restore(RestoreArgs),
    /// Replay the whole chain: snapshots, deltas, manifest, latest.json and the database agree;
    /// exit 0 only when the history is sound
    Verify(VerifyArgs),
    /// Feed recorded dataset files through the pipeline in date order, each published with its
    /// recorded date: backfill a history or rehearse one
    Replay(ReplayArgs),
    /// Retention: delete old snapshots, keeping N daily and M monthly, version 1's, the newest,
    /// and every delta (so every version stays restorable)
    Prune(PruneArgs),
    /// What changed between two versions or files
    Diff(DiffArgs),
    /// One record's history (or one value's, with --pointer): each version that changed it,
    /// from what to what
    History(HistoryArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout: `snapsync man > snapsync.1`
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `snapsync completions bash > /etc/bash_completion.d/snapsync`
    #[arg(value_parser = ["bash", "zsh", "fish", "elvish", "powershell"])]
    pub shell: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// With the global --json: one JSON object per dataset instead of the summary line
    #[arg(skip)]
    pub json: bool,
    /// Fetch, transform, check the guards and diff, then print what would be published; write
    /// nothing (no store object, not even the local database)
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 3 when a dataset changed (or, with --dry-run, would change) and none failed, like
    /// `git diff --exit-code`; 0 then means nothing changed
    #[arg(long)]
    pub exit_code: bool,
    /// Publish even when a guard (empty data, shrinking record count, missing keys) fails
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// Who hears about runs: webhooks (`--notify-url`) and a dead-man ping (`--heartbeat-url`), on
/// `run` and `worker`. Neither ever fails a run.
#[derive(Clone, Args)]
#[command(next_help_heading = "Notifications")]
pub struct NotifyArgs {
    /// Send a message here when a dataset changed, failed, or recovered after failing
    /// (repeatable; the variable takes a comma-separated list). The message's shape follows
    /// the host: Slack, Discord, Microsoft Teams (Workflows), else a generic JSON object
    #[arg(
        long = "notify-url",
        env = "SNAPSYNC_NOTIFY_URL",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub notify_urls: Vec<String>,
    /// The message shape for every --notify-url, instead of guessing it from the host
    #[arg(
        long,
        env = "SNAPSYNC_NOTIFY_FORMAT",
        default_value = "auto",
        value_parser = ["auto", "slack", "discord", "teams", "json"]
    )]
    pub notify_format: String,
    /// Also send a message when a run found nothing new
    #[arg(long, env = "SNAPSYNC_NOTIFY_UNCHANGED")]
    pub notify_unchanged: bool,
    /// Dead-man switch (healthchecks.io, Cronitor, Uptime Kuma): GET this URL after each
    /// successful run, and URL + --heartbeat-fail-suffix after a failed one
    #[arg(
        long,
        env = "SNAPSYNC_HEARTBEAT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub heartbeat_url: Option<String>,
    /// Appended to the heartbeat URL's path on a failed run; "" pings nothing on failure
    #[arg(
        long,
        env = "SNAPSYNC_HEARTBEAT_FAIL_SUFFIX",
        default_value = "/fail",
        value_name = "SUFFIX"
    )]
    pub heartbeat_fail_suffix: String,
    /// Also GET the heartbeat URL + /start before a run (the monitor then measures its duration)
    #[arg(long, env = "SNAPSYNC_HEARTBEAT_START")]
    pub heartbeat_start: bool,
}

/// The URLs are secrets (their tokens are in the path): only how many there are is shown.
impl std::fmt::Debug for NotifyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyArgs")
            .field("notify_urls", &self.notify_urls.len())
            .field("notify_format", &self.notify_format)
            .field("notify_unchanged", &self.notify_unchanged)
            .field("heartbeat_url", &self.heartbeat_url.is_some())
            .field("heartbeat_fail_suffix", &self.heartbeat_fail_suffix)
            .field("heartbeat_start", &self.heartbeat_start)
            .finish()
    }
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Seconds between "worker alive" log lines
    #[arg(
        long,
        env = "SNAPSYNC_HEARTBEAT_SECS",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub heartbeat: f64,
    /// First retry delay after a failed run, doubling up to --max-retries (never past the next slot)
    #[arg(
        long,
        env = "SNAPSYNC_RETRY_SECS",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub retry: f64,
    /// Retries of a failed run before waiting for the next slot
    #[arg(long, env = "SNAPSYNC_MAX_RETRIES", default_value_t = 5)]
    pub max_retries: u32,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

// ---------------------------------------------------------------------------------------------
// Consumers and history: pull, restore, verify, replay, prune, diff (src/commands/history.rs).

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Store to pull from: file://DIR or s3://BUCKET/PREFIX [default: --store]
    #[arg(long, env = "SNAPSYNC_FROM", value_name = "STORE_URL")]
    pub from: Option<String>,
    /// The local copy to keep up to date (its version is remembered in FILE.snapsync.json)
    #[arg(long, env = "SNAPSYNC_OUT", value_name = "FILE")]
    pub out: PathBuf,
    /// Set from the global --json
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["at", "version"])))]
pub struct RestoreArgs {
    /// The version current at this time: RFC 3339 (2026-05-01T12:00:00Z), a date (2026-05-01:
    /// the end of that day, UTC), or now
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// This version number
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
    /// Where to write the canonical JSON ("-" for stdout); its directory must exist
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace --out if it exists
    #[arg(long)]
    pub force: bool,
    /// Set from the global --json
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Fix what the store's own objects prove: missing manifest entries, snapshots lost but
    /// restorable through deltas, and the local database
    #[arg(long)]
    pub repair: bool,
    /// With --repair: also delete orphan objects older than an hour
    #[arg(long, requires = "repair")]
    pub prune_orphans: bool,
    /// Set from the global --json
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recorded dataset files, or directories of *.json files, dated by a YYYY-MM-DD in their
    /// names (2021-03-04.json) unless --dates is given
    #[arg(required = true, value_name = "DIR|FILE")]
    pub inputs: Vec<PathBuf>,
    /// The files' dates, in the order the files are given (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_delimiter = ',', value_name = "DATE,...")]
    pub dates: Option<Vec<String>>,
    /// Publish even when a guard (empty data, shrinking record count, missing keys) fails
    #[arg(long)]
    pub force: bool,
    /// Set from the global --json: one JSON object per file
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the last snapshot of each of the N most recent days that have versions
    #[arg(long, env = "SNAPSYNC_KEEP_DAILY", value_name = "N")]
    pub keep_daily: u32,
    /// Keep the last snapshot of each of the M most recent months that have versions
    #[arg(long, env = "SNAPSYNC_KEEP_MONTHLY", value_name = "M")]
    pub keep_monthly: u32,
    /// Show what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Set from the global --json
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// A version (3, v3, latest) or a JSON file (write ./3 for a file named 3)
    #[arg(value_name = "A")]
    pub a: String,
    /// A version (3, v3, latest) or a JSON file
    #[arg(value_name = "B")]
    pub b: String,
    /// summary: the changed records; changes: the changed values, for people (appended,
    /// revised from → to, derived); patch: the RFC 6902 JSON Patch; unified: a unified diff of
    /// the pretty-printed changed records (coloured on a terminal)
    #[arg(long, default_value = "summary", value_parser = ["summary", "changes", "patch", "unified"])]
    pub format: String,
    /// Set from the global --json
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The record's key, as `diff` shows it (e.g. spain)
    #[arg(value_name = "KEY")]
    pub record: String,
    /// Only the value at this JSON Pointer inside the record, e.g. /dates/2020-03-14/new/cases
    #[arg(long, value_name = "POINTER")]
    pub pointer: Option<String>,
    /// text: one line per changed value; csv: version,created_at,key,path,op,old,new (values
    /// as JSON)
    #[arg(long, default_value = "text", value_parser = ["text", "csv"])]
    pub format: String,
    /// Set from the global --json (one JSON object per changed value)
    #[arg(skip)]
    pub json: bool,
}

/// Global options each command ignores: hidden from its help (still accepted, as globals are).
const IGNORED: &[(&str, &[&[&str]])] = &[
    ("run", &[SCHEDULE]),
    (
        "status",
        &[&["key", "max_bytes", "allow_files_outside"], FETCH, WRITER],
    ),
    ("log", &[DB, SOURCE, WRITER, SCHEDULE, PROGRESS]),
    ("pull", &[DB, SOURCE, WRITER, SCHEDULE]),
    ("restore", &[DB, SOURCE, WRITER, SCHEDULE]),
    (
        "verify",
        &[
            &["url", "max_bytes", "allow_files_outside"],
            FETCH,
            WRITER,
            SCHEDULE,
        ],
    ),
    ("replay", &[&["url"], FETCH, SCHEDULE]),
    ("prune", &[DB, SOURCE, WRITER, SCHEDULE]),
    (
        "diff",
        &[DB, &["url", "allow_files_outside"], FETCH, WRITER, SCHEDULE],
    ),
    ("history", &[DB, SOURCE, WRITER, SCHEDULE]),
    (
        "completions",
        &[BASE, DB, SOURCE, WRITER, SCHEDULE, PROGRESS],
    ),
    ("man", &[BASE, DB, SOURCE, WRITER, SCHEDULE, PROGRESS]),
];
const BASE: &[&str] = &[
    "config",
    "store",
    "dataset",
    "endpoint",
    "log_format",
    "json",
];
const DB: &[&str] = &["db"];
/// How a source is fetched (and whether plain http is allowed).
const FETCH: &[&str] = &[
    "timeout",
    "connect_timeout",
    "total_timeout",
    "retries",
    "retry_backoff_ms",
    "allow_insecure_http",
];
const SOURCE: &[&str] = &[
    "url",
    "key",
    "max_bytes",
    "allow_files_outside",
    "timeout",
    "connect_timeout",
    "total_timeout",
    "retries",
    "retry_backoff_ms",
    "allow_insecure_http",
];
const WRITER: &[&str] = &["single_writer"];
const SCHEDULE: &[&str] = &["schedule"];
const PROGRESS: &[&str] = &["no_progress", "progress_secs"];

/// The command line as `snapsync` parses it: [`Cli`], with each command's help listing its own
/// options first and hiding the global ones it ignores ([`IGNORED`]).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd.get_arguments().cloned().collect();
    for (name, hidden) in IGNORED {
        // A subcommand's own argument of a global's id is kept when clap propagates the
        // globals (it skips ids the subcommand has): a hidden copy hides it from that help.
        cmd = cmd.mut_subcommand(*name, |sub| {
            globals
                .iter()
                .filter(|a| hidden.iter().any(|g| g.contains(&a.get_id().as_str())))
                .fold(sub, |sub, a| sub.arg(a.clone().hide(true)))
        });
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A misspelt id in [`IGNORED`] would hide nothing, silently.
    #[test]
    fn every_hidden_option_and_command_exists() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let globals: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
        for (name, groups) in IGNORED {
            assert!(cmd.find_subcommand(name).is_some(), "no command {name}");
            for id in groups.iter().flat_map(|g| g.iter()) {
                assert!(globals.contains(id), "{name}: no global option {id}");
            }
        }
        command().debug_assert();
    }
}

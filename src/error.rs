//! The library's one error type.
//!
//! Every variant names the thing that failed (dataset, URL, key, file) so the one-line message a
//! user sees says *what* and *where*; [`Error::is_retryable`] tells the worker whether trying
//! again later can help (a 503 can, a failed guard cannot). Secrets never enter these messages:
//! URLs are stored with credentials stripped (see [`crate::source::redact_url`]).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fetching {url}: {reason}")]
    Fetch {
        url: String,
        reason: String,
        retryable: bool,
    },
    #[error("{url}: HTTP {status}{detail}")]
    HttpStatus {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{url}: body is larger than the limit of {limit} bytes (max_bytes, --max-bytes)")]
    TooLarge { url: String, limit: u64 },
    #[error("{what}: invalid JSON: {reason}")]
    InvalidJson { what: String, reason: String },
    /// A joined table that cannot be read or matched (`what` names the dataset and table).
    #[error("{what}: {reason}")]
    Table { what: String, reason: String },
    #[error("{dataset}: guard failed: {reason} (nothing published; --force overrides)")]
    Guard { dataset: String, reason: String },
    #[error("{dataset}: the computed delta does not reproduce the new version ({reason}); nothing published")]
    DeltaMismatch { dataset: String, reason: String },
    #[error("store {store}: object {key}: {reason}")]
    Store {
        store: String,
        key: String,
        reason: String,
        retryable: bool,
    },
    #[error("store {store}: object {key} was changed by another writer")]
    PreconditionFailed { store: String, key: String },
    /// An object the history names is not in the store.
    #[error("store {store}: object {key}: missing")]
    NotFound { store: String, key: String },
    #[error("store {store}: {key}: {reason}")]
    Corrupt {
        store: String,
        key: String,
        reason: String,
    },
    #[error("database {path}: {reason}")]
    Db { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("{dataset}: shutting down: abandoned before the commit point (nothing published)")]
    Cancelled { dataset: String },
    #[error("{dataset}: gave up after {attempts} attempts: another writer keeps committing first")]
    Contended { dataset: String, attempts: u32 },
}

impl Error {
    /// Whether a later attempt of the same operation can succeed without anyone changing
    /// anything (network blips, 5xx, lost races). Guards, bad data and bad config are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Fetch { retryable, .. } | Error::Store { retryable, .. } => *retryable,
            Error::HttpStatus { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Error::PreconditionFailed { .. } | Error::Contended { .. } => true,
            _ => false,
        }
    }

    pub fn not_found(store: &str, key: &str) -> Self {
        Error::NotFound {
            store: store.to_string(),
            key: key.to_string(),
        }
    }

    /// An object the store holds that is not what the history says it is (`reason`: how).
    pub fn corrupt(store: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            store: store.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            reason: err.to_string(),
        }
    }
}

//! Local state in SQLite: datasets, versions (a mirror of the manifest), runs, HTTP validators
//! and the last canonical body.
//!
//! It is a cache, never the source of truth: every decision that matters is checked against
//! the store, and a missing or unreadable file is rebuilt from it. So a database SQLite calls
//! corrupt (`SQLITE_CORRUPT`, `SQLITE_NOTADB`, a failed `quick_check`) is moved aside with a
//! one-line warning rather than failing the run. Nothing else is: a lock held by another
//! process, a full disk or a missing permission is an error that leaves the file alone (the
//! file is fine, the moment is not), and a path holding something that is not SQLite at all
//! (a text, JSON or credentials file) is refused, never renamed or overwritten. Several
//! processes may open a new database at once (a worker and a `run`): migrations take the
//! write lock first. rusqlite is blocking: every call runs on tokio's blocking pool.
//! Pragmas (WAL, busy timeout, foreign keys) are set here, outside the migrations.
//!
//! The code is cut by what it does: `open` opens the file (pragmas, the corruption check,
//! moving a corrupt file aside), `migrate` brings the schema up to date from `migrations/`,
//! and `queries` holds the typed reads and writes. This file holds [`Db`] and the state it
//! returns.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::manifest::Entry;

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// What the database remembers of one dataset on one store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetState {
    pub id: i64,
    /// The (redacted) URL of the last fetch, for display.
    pub source_url: Option<String>,
    /// `source::cache_key` of the exact URL that `etag` and `last_modified` came from.
    pub validators_url: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub source_sha256: Option<String>,
    pub pipeline: Option<String>,
    pub last: Option<Entry>,
}

/// One finished run, for the `runs` table.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub started_at: String,
    pub finished_at: String,
    pub outcome: String,
    pub version: Option<u64>,
    pub sha256: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub fetch_ms: Option<u64>,
    pub total_ms: u64,
    pub error: Option<String>,
}

/// Validators and fingerprint of a fetch that ended in a published or confirmed version.
#[derive(Debug, Clone, Default)]
pub struct SourceState {
    pub source_url: String,
    /// `source::cache_key` of the exact URL fetched (the validators belong to it).
    pub validators_url: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub source_sha256: Option<String>,
    pub pipeline: String,
}

impl Db {
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard).map_err(|e| Error::Db {
                path,
                reason: e.to_string(),
            })
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// A joined table as last fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCached {
    pub validators: crate::source::Validators,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

mod migrate;
mod open;
mod queries;

pub use migrate::migrations;

#[cfg(test)]
mod tests;

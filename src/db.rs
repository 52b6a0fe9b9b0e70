//! Local state in SQLite: datasets, versions (a mirror of the manifest), runs, HTTP validators
//! and the last canonical body.
//!
//! It is a cache, never the source of truth: every decision that matters is checked against
//! the store, and a missing or unreadable file is rebuilt from it. So a database that cannot be
//! opened (garbage bytes, a truncated file) is moved aside with a one-line warning rather than
//! failing the run. rusqlite is blocking: every call runs on tokio's blocking pool.
//! Pragmas (WAL, busy timeout, foreign keys) are set here, outside the migrations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use include_dir::{include_dir, Dir};
use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::Migrations;

use crate::error::{Error, Result};
use crate::manifest::Entry;

static MIGRATIONS_DIR: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations");

pub fn migrations() -> Migrations<'static> {
    Migrations::from_directory(&MIGRATIONS_DIR).expect("migrations/ is well formed")
}

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// What the database remembers of one dataset on one store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetState {
    pub id: i64,
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
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub source_sha256: Option<String>,
    pub pipeline: String,
}

impl Db {
    /// Opens (creating and migrating) the database. A file that is not a usable SQLite
    /// database is moved aside to `FILE.corrupt-<unix time>` and a fresh one created; the
    /// returned warning says so.
    pub async fn open(path: &Path) -> Result<(Db, Option<String>)> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Db::open_blocking(&path))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    fn open_blocking(path: &Path) -> Result<(Db, Option<String>)> {
        match Self::try_open(path) {
            Ok(db) => Ok((db, None)),
            Err(first) if path.exists() => {
                let aside = path.with_extension(format!(
                    "corrupt-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                ));
                std::fs::rename(path, &aside).map_err(|e| Error::io(path, e))?;
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.as_os_str().to_owned();
                    side.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(side));
                }
                let db = Self::try_open(path)?;
                let warning = format!(
                    "database {} was unusable ({first}); moved it to {} and started a new one (state is rebuilt from the store)",
                    path.display(),
                    aside.display()
                );
                Ok((db, Some(warning)))
            }
            Err(e) => Err(e),
        }
    }

    fn try_open(path: &Path) -> Result<Db> {
        let err = |e: &dyn std::fmt::Display| Error::Db {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut conn = Connection::open(path).map_err(|e| err(&e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| err(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err(&e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| err(&e))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| err(&e))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| err(&e))?;
        if check != "ok" {
            return Err(err(&format!("integrity check failed: {check}")));
        }
        migrations().to_latest(&mut conn).map_err(|e| err(&e))?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

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

    /// The dataset's state, creating its row on first use.
    pub async fn dataset(&self, store: &str, name: &str) -> Result<DatasetState> {
        let (store, name) = (store.to_string(), name.to_string());
        self.call(move |c| {
            c.execute(
                "INSERT INTO datasets (store, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![store, name],
            )?;
            let mut st = c.query_row(
                "SELECT id, etag, last_modified, source_sha256, pipeline FROM datasets WHERE store = ?1 AND name = ?2",
                params![store, name],
                |r| {
                    Ok(DatasetState {
                        id: r.get(0)?,
                        etag: r.get(1)?,
                        last_modified: r.get(2)?,
                        source_sha256: r.get(3)?,
                        pipeline: r.get(4)?,
                        last: None,
                    })
                },
            )?;
            st.last = c
                .query_row(
                    &format!("{SELECT_ENTRY} WHERE dataset_id = ?1 ORDER BY version DESC LIMIT 1"),
                    [st.id],
                    entry_from_row,
                )
                .optional()?;
            Ok(st)
        })
        .await
    }

    /// Every known version of a dataset, oldest first.
    pub async fn versions(&self, dataset_id: i64) -> Result<Vec<Entry>> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "{SELECT_ENTRY} WHERE dataset_id = ?1 ORDER BY version"
            ))?;
            let rows = stmt.query_map([dataset_id], entry_from_row)?;
            rows.collect()
        })
        .await
    }

    /// The cached canonical body (gzip), if it is the one with this hash.
    pub async fn cached_body(&self, dataset_id: i64, sha256: &str) -> Result<Option<Vec<u8>>> {
        let sha256 = sha256.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT body_gz FROM body_cache WHERE dataset_id = ?1 AND sha256 = ?2",
                params![dataset_id, sha256],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Records versions the store has (idempotent), optionally the body of the newest one, and
    /// the source validators that led to it — in one transaction.
    pub async fn record_versions(
        &self,
        dataset_id: i64,
        entries: Vec<Entry>,
        body: Option<(u64, String, bytes::Bytes)>,
        source: Option<SourceState>,
    ) -> Result<()> {
        self.call(move |c| {
            let tx = c.transaction()?;
            for e in &entries {
                tx.execute(
                    "INSERT OR REPLACE INTO versions (dataset_id, version, sha256, prev_sha256, created_at, \
                     snapshot_key, delta_key, canonical_bytes, snapshot_bytes, delta_bytes, records, added, removed, moved, changed) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                    params![
                        dataset_id,
                        e.version as i64,
                        e.sha256,
                        e.prev_sha256,
                        e.created_at,
                        e.snapshot,
                        e.delta,
                        e.canonical_bytes as i64,
                        e.snapshot_bytes as i64,
                        e.delta_bytes.map(|v| v as i64),
                        e.records.map(|v| v as i64),
                        e.added as i64,
                        e.removed as i64,
                        e.moved as i64,
                        e.changed as i64,
                    ],
                )?;
            }
            if let Some((version, sha256, body)) = body {
                tx.execute(
                    "INSERT OR REPLACE INTO body_cache (dataset_id, version, sha256, body_gz) VALUES (?1, ?2, ?3, ?4)",
                    params![dataset_id, version as i64, sha256, &body[..]],
                )?;
            }
            if let Some(s) = source {
                tx.execute(
                    "UPDATE datasets SET source_url = ?2, etag = ?3, last_modified = ?4, source_sha256 = ?5, pipeline = ?6 WHERE id = ?1",
                    params![dataset_id, s.source_url, s.etag, s.last_modified, s.source_sha256, s.pipeline],
                )?;
            }
            tx.commit()
        })
        .await
    }

    /// Forgets versions the store does not have (the store was reset, or another history).
    pub async fn forget_versions_after(&self, dataset_id: i64, version: u64) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM versions WHERE dataset_id = ?1 AND version > ?2",
                params![dataset_id, version as i64],
            )?;
            c.execute(
                "DELETE FROM body_cache WHERE dataset_id = ?1 AND version > ?2",
                params![dataset_id, version as i64],
            )
            .map(drop)
        })
        .await
    }

    pub async fn record_run(&self, dataset_id: i64, run: RunRecord) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO runs (dataset_id, started_at, finished_at, outcome, version, sha256, bytes_in, bytes_out, fetch_ms, total_ms, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    dataset_id,
                    run.started_at,
                    run.finished_at,
                    run.outcome,
                    run.version.map(|v| v as i64),
                    run.sha256,
                    run.bytes_in as i64,
                    run.bytes_out as i64,
                    run.fetch_ms.map(|v| v as i64),
                    run.total_ms as i64,
                    run.error,
                ],
            )
            .map(drop)
        })
        .await
    }

    /// The most recent run, and the most recent successful one.
    pub async fn last_runs(
        &self,
        dataset_id: i64,
    ) -> Result<(Option<RunRecord>, Option<RunRecord>)> {
        self.call(move |c| {
            let q = |filter: &str| {
                c.query_row(
                    &format!(
                        "SELECT started_at, finished_at, outcome, version, sha256, bytes_in, bytes_out, fetch_ms, total_ms, error \
                         FROM runs WHERE dataset_id = ?1 {filter} ORDER BY id DESC LIMIT 1"
                    ),
                    [dataset_id],
                    |r| {
                        Ok(RunRecord {
                            started_at: r.get(0)?,
                            finished_at: r.get(1)?,
                            outcome: r.get(2)?,
                            version: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                            sha256: r.get(4)?,
                            bytes_in: r.get::<_, i64>(5)? as u64,
                            bytes_out: r.get::<_, i64>(6)? as u64,
                            fetch_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                            total_ms: r.get::<_, i64>(8)? as u64,
                            error: r.get(9)?,
                        })
                    },
                )
                .optional()
            };
            Ok((q("")?, q("AND outcome != 'failed'")?))
        })
        .await
    }
}

impl Db {
    /// The cached verdict of the conditional-write probe for a store: (honoured, probed_at).
    pub async fn store_probe(&self, url: &str) -> Result<Option<(bool, String)>> {
        let url = url.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT conditional_writes, probed_at FROM stores WHERE url = ?1",
                [url],
                |r| Ok((r.get::<_, String>(0)? == "honoured", r.get(1)?)),
            )
            .optional()
        })
        .await
    }

    pub async fn save_store_probe(&self, url: &str, honoured: bool, probed_at: &str) -> Result<()> {
        let (url, at) = (url.to_string(), probed_at.to_string());
        let verdict = if honoured { "honoured" } else { "ignored" };
        self.call(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO stores (url, conditional_writes, probed_at) VALUES (?1, ?2, ?3)",
                params![url, verdict, at],
            )
            .map(drop)
        })
        .await
    }
}

impl Db {
    /// A cached joined dataset: (validators, body).
    pub async fn join_cache(
        &self,
        url: &str,
    ) -> Result<Option<(crate::source::Validators, Vec<u8>)>> {
        let url = url.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT etag, last_modified, body FROM join_cache WHERE url = ?1",
                [url],
                |r| {
                    Ok((
                        crate::source::Validators {
                            etag: r.get(0)?,
                            last_modified: r.get(1)?,
                        },
                        r.get(2)?,
                    ))
                },
            )
            .optional()
        })
        .await
    }

    pub async fn save_join_cache(
        &self,
        url: &str,
        v: crate::source::Validators,
        body: Vec<u8>,
    ) -> Result<()> {
        let url = url.to_string();
        self.call(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO join_cache (url, etag, last_modified, body) VALUES (?1, ?2, ?3, ?4)",
                params![url, v.etag, v.last_modified, body],
            )
            .map(drop)
        })
        .await
    }
}

const SELECT_ENTRY: &str =
    "SELECT version, created_at, sha256, prev_sha256, snapshot_key, delta_key, \
     canonical_bytes, snapshot_bytes, delta_bytes, records, added, removed, moved, changed FROM versions";

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        version: r.get::<_, i64>(0)? as u64,
        created_at: r.get(1)?,
        sha256: r.get(2)?,
        prev_sha256: r.get(3)?,
        snapshot: r.get(4)?,
        delta: r.get(5)?,
        canonical_bytes: r.get::<_, i64>(6)? as u64,
        snapshot_bytes: r.get::<_, i64>(7)? as u64,
        delta_bytes: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        records: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
        added: r.get::<_, i64>(10)? as u64,
        removed: r.get::<_, i64>(11)? as u64,
        moved: r.get::<_, i64>(12)? as u64,
        changed: r.get::<_, i64>(13)? as u64,
        // The database mirrors versions, not retention: `prune` is recorded in the manifest.
        pruned: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[tokio::test]
    async fn garbage_file_is_moved_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(
            &path,
            b"this is not a database, just garbage bytes..........",
        )
        .unwrap();
        let (db, warning) = Db::open(&path).await.unwrap();
        let warning = warning.expect("a warning");
        assert!(warning.contains("moved it to"), "{warning}");
        assert!(!warning.contains('\n'));
        let st = db.dataset("file:///x", "d").await.unwrap();
        assert_eq!(st.last, None);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
    }
}

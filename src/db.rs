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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use include_dir::{include_dir, Dir};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use rusqlite_migration::Migrations;

use crate::error::{Error, Result};
use crate::manifest::Entry;

static MIGRATIONS_DIR: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations");

/// `migrations/` as rusqlite_migration reads it: validated by a test, and the reference for
/// how `migrate` numbers versions.
pub fn migrations() -> Migrations<'static> {
    Migrations::from_directory(&MIGRATIONS_DIR).expect("migrations/ is well formed")
}

/// How long a statement waits for another connection's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why the database did not open: only `Corrupt` moves the file aside.
enum Failure {
    Corrupt(String),
    Other(Error),
}

impl Failure {
    /// Corruption is SQLite saying so (`SQLITE_CORRUPT`, `SQLITE_NOTADB`); everything else —
    /// a lock held by another process, a full disk, a read-only directory — is about the
    /// moment, not the file, and moving a healthy file aside would lose its state.
    fn of(path: &Path, e: rusqlite::Error) -> Failure {
        use rusqlite::ffi::ErrorCode;
        let reason = match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                return Failure::Corrupt(e.to_string())
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
                "{e}: another process holds a lock on it (left as it is; try again when that process is done)"
            ),
            _ => e.to_string(),
        };
        Failure::Other(Error::Db {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn into_error(self, path: &Path) -> Error {
        match self {
            Failure::Other(e) => e,
            Failure::Corrupt(reason) => Error::Db {
                path: path.to_path_buf(),
                reason: format!("corrupt even after it was moved aside and created anew: {reason}"),
            },
        }
    }
}

/// Refuses a file that exists, is not empty and does not start with the SQLite header: a
/// `--db` (or a `db =` in a config file) naming a text, JSON or credentials file must not
/// be renamed, truncated or turned into a database. An empty file is a new database.
fn refuse_unless_sqlite(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut head = Vec::with_capacity(SQLITE_HEADER.len());
    (&mut file)
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    if head.is_empty() || head == SQLITE_HEADER {
        return Ok(());
    }
    Err(Error::Db {
        path: path.to_path_buf(),
        reason: "is not a SQLite database (it does not start with \"SQLite format 3\"); \
                 refusing to use, move or overwrite it (pass another --db)"
            .into(),
    })
}

/// Which file is at `path` now (device and inode), if any.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `FILE.corrupt-<unix time>`: the full name is kept (`state.db` stays recognisable).
fn aside_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{secs}"));
    PathBuf::from(name)
}

/// Renames a corrupt database and its `-wal`, `-shm` and `-journal` files to `aside` (and
/// `aside-wal`, …). They move together rather than being deleted: a WAL or a hot journal
/// left beside the new database would be replayed into it (corrupting it again), while
/// deleting them would unlink files another connection may still have open and lose the
/// only copy of what they hold. Moved, they stay one openable set for whoever investigates.
fn move_aside(path: &Path, aside: &Path) -> Result<()> {
    std::fs::rename(path, aside).map_err(|e| Error::io(path, e))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = |p: &Path| {
            let mut s = p.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        match std::fs::rename(side(path), side(aside)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(side(path), e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `PRAGMA journal_mode = WAL`. Switching a new file to WAL fails at once with SQLITE_BUSY,
/// without calling the busy handler, while another connection is doing the same (three
/// processes opening one new database); so it is retried here for as long as the busy timeout
/// would have waited. On a file already in WAL mode it is a no-op.
fn set_wal(conn: &Connection, busy: Duration) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + busy;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ffi::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// Why migrating failed.
enum Migrate {
    Sqlite(rusqlite::Error),
    TooNew { found: i64, known: usize },
}

impl From<rusqlite::Error> for Migrate {
    fn from(e: rusqlite::Error) -> Self {
        Migrate::Sqlite(e)
    }
}

/// The `up.sql` of every migration in `migrations/`, in order (`NN-name/up.sql`).
fn migration_steps() -> Vec<&'static str> {
    let mut steps: Vec<(u32, &'static str)> = MIGRATIONS_DIR
        .dirs()
        .map(|d| {
            let name = d.path().to_string_lossy();
            let id = name
                .split_once('-')
                .and_then(|(n, _)| n.parse().ok())
                .expect("migrations/ entries are NN-name");
            let up = d
                .files()
                .find(|f| f.path().ends_with("up.sql"))
                .and_then(|f| f.contents_utf8())
                .expect("each migration has a UTF-8 up.sql");
            (id, up)
        })
        .collect();
    steps.sort_by_key(|(id, _)| *id);
    steps.into_iter().map(|(_, up)| up).collect()
}

/// Brings the schema to the newest version, numbered as rusqlite_migration numbers it
/// (`user_version` = migrations applied; [`migrations`] validates the directory).
///
/// Not `Migrations::to_latest`: it reads the version before it starts its transaction, so
/// of several processes opening a new database at once, all but the first re-run the first
/// migration after it committed (`table datasets already exists`). Here the version is read
/// again inside `BEGIN IMMEDIATE` — the write lock, waited for with the busy timeout — so
/// exactly one process migrates and the others see that it did.
fn migrate(conn: &mut Connection) -> std::result::Result<(), Migrate> {
    let steps = migration_steps();
    let version = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    // Versions only grow: one that is current without the lock stays current.
    if version(conn)? == steps.len() as i64 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    let done = usize::try_from(found)
        .ok()
        .filter(|&n| n <= steps.len())
        .ok_or(Migrate::TooNew {
            found,
            known: steps.len(),
        })?;
    for up in &steps[done..] {
        tx.execute_batch(up)?;
    }
    tx.pragma_update(None, "user_version", steps.len() as i64)?;
    tx.commit()?;
    Ok(())
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
    /// Opens (creating and migrating) the database. A SQLite file that is corrupt is moved
    /// aside to `FILE.corrupt-<unix time>` and a fresh one created; the returned warning says
    /// so. Anything else that keeps it from opening (another process's lock, a full disk, a
    /// file that is not SQLite at all) is an error and leaves the file as it is.
    pub async fn open(path: &Path) -> Result<(Db, Option<String>)> {
        Db::open_with_busy_timeout(path, BUSY_TIMEOUT).await
    }

    /// [`Db::open`], waiting at most `busy_timeout` for another connection's lock (here and
    /// in every later statement).
    pub async fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<(Db, Option<String>)> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Db::open_blocking(&path, busy_timeout))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    fn open_blocking(path: &Path, busy: Duration) -> Result<(Db, Option<String>)> {
        refuse_unless_sqlite(path)?;
        let found = file_identity(path);
        let reason = match Self::try_open(path, busy) {
            Ok(db) => return Ok((db, None)),
            Err(Failure::Other(e)) => return Err(e),
            Err(Failure::Corrupt(reason)) => reason,
        };
        // Another process that found the same corrupt file may have moved it aside and
        // created a new one since: that new file is not ours to move.
        if found.is_none() || file_identity(path) != found {
            let db = Self::try_open(path, busy).map_err(|f| f.into_error(path))?;
            return Ok((db, None));
        }
        let aside = aside_path(path);
        move_aside(path, &aside)?;
        let db = Self::try_open(path, busy).map_err(|f| f.into_error(path))?;
        let warning = format!(
            "database {} is corrupt ({reason}); moved it to {} (its -wal/-shm/-journal files beside it, if any) and started a new one (state is rebuilt from the store)",
            path.display(),
            aside.display()
        );
        Ok((db, Some(warning)))
    }

    fn try_open(path: &Path, busy: Duration) -> Result<Db, Failure> {
        let fail = |e: rusqlite::Error| Failure::of(path, e);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Failure::Other(Error::io(parent, e)))?;
        }
        let mut conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(busy).map_err(fail)?;
        set_wal(&conn, busy).map_err(fail)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(fail)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(fail)?;
        if check != "ok" {
            // Its first message can span lines; the warning is one.
            let check = check.split_whitespace().collect::<Vec<_>>().join(" ");
            return Err(Failure::Corrupt(format!("quick_check: {check}")));
        }
        migrate(&mut conn).map_err(|e| match e {
            Migrate::Sqlite(e) => fail(e),
            Migrate::TooNew { found, known } => Failure::Other(Error::Db {
                path: path.to_path_buf(),
                reason: format!(
                    "its schema version {found} is not one this snapsync knows (0 to {known}): \
                     written by a newer snapsync or another program; left as it is"
                ),
            }),
        })?;
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
                "SELECT id, source_url, etag, last_modified, source_sha256, pipeline, validators_url FROM datasets WHERE store = ?1 AND name = ?2",
                params![store, name],
                |r| {
                    Ok(DatasetState {
                        id: r.get(0)?,
                        source_url: r.get(1)?,
                        etag: r.get(2)?,
                        last_modified: r.get(3)?,
                        source_sha256: r.get(4)?,
                        pipeline: r.get(5)?,
                        validators_url: r.get(6)?,
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
                    "UPDATE datasets SET source_url = ?2, etag = ?3, last_modified = ?4, source_sha256 = ?5, pipeline = ?6, validators_url = ?7 WHERE id = ?1",
                    params![dataset_id, s.source_url, s.etag, s.last_modified, s.source_sha256, s.pipeline, s.validators_url],
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
    /// A joined table's last body: its validators, bytes and Content-Type.
    pub async fn join_cache(&self, url: &str) -> Result<Option<JoinCached>> {
        let url = url.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT etag, last_modified, body, content_type FROM join_cache WHERE url = ?1",
                [url],
                |r| {
                    Ok(JoinCached {
                        validators: crate::source::Validators {
                            etag: r.get(0)?,
                            last_modified: r.get(1)?,
                        },
                        body: r.get(2)?,
                        content_type: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    pub async fn save_join_cache(&self, url: &str, cached: JoinCached) -> Result<()> {
        let url = url.to_string();
        self.call(move |c| {
            let JoinCached {
                validators: v,
                body,
                content_type,
            } = cached;
            c.execute(
                "INSERT OR REPLACE INTO join_cache (url, etag, last_modified, body, content_type) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![url, v.etag, v.last_modified, body, content_type],
            )
            .map(drop)
        })
        .await
    }
}

/// A joined table as last fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCached {
    pub validators: crate::source::Validators,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
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

    /// Every `*.corrupt-*` file in `dir`.
    fn moved_aside(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        names.sort();
        names
    }

    fn schema_version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    /// A healthy database with a table of a few hundred rows (many pages), closed.
    fn healthy_db_with_pages(path: &Path) {
        let (db, warning) = Db::open_blocking(path, BUSY_TIMEOUT).unwrap();
        assert_eq!(warning, None);
        let conn = db.conn.lock().unwrap();
        conn.execute_batch("CREATE TABLE filler (x TEXT)").unwrap();
        for i in 0..400 {
            conn.execute("INSERT INTO filler VALUES (?1)", [format!("{i:0>200}")])
                .unwrap();
        }
    }

    #[test]
    fn migrate_numbers_versions_as_rusqlite_migration_does() {
        let schema = |c: &Connection| -> (i64, Vec<String>) {
            let mut stmt = c
                .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
                .unwrap();
            let sql = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            (
                c.query_row("PRAGMA user_version", [], |r| r.get(0))
                    .unwrap(),
                sql,
            )
        };
        let mut ours = Connection::open_in_memory().unwrap();
        assert!(migrate(&mut ours).is_ok());
        let mut theirs = Connection::open_in_memory().unwrap();
        migrations().to_latest(&mut theirs).unwrap();
        assert_eq!(schema(&ours), schema(&theirs));
        // A database the library migrated is current for `migrate`.
        assert!(migrate(&mut theirs).is_ok());
        assert_eq!(schema(&theirs).0, migration_steps().len() as i64);
    }

    /// Three connections (as three processes would) open one new database at the same
    /// instant: all of them work with it, and nobody moves anybody's file aside.
    #[test]
    fn three_at_once_open_a_new_database() {
        const TRIALS: usize = 20;
        let dir = tempfile::tempdir().unwrap();
        for trial in 0..TRIALS {
            let path = dir.path().join(format!("new-{trial}.db"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(3));
            let openers: Vec<_> = (0..3)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        Db::open_blocking(&path, BUSY_TIMEOUT).map(|(_, warning)| warning)
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().unwrap();
                assert!(matches!(opened, Ok(None)), "trial {trial}: {opened:?}");
            }
            assert_eq!(
                moved_aside(dir.path()),
                Vec::<String>::new(),
                "trial {trial}"
            );
            assert_eq!(schema_version(&path), migration_steps().len() as i64);
        }
    }

    #[test]
    fn a_lock_held_by_another_process_is_an_error_and_the_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Db::open_blocking(&path, BUSY_TIMEOUT).unwrap());
        let holder = Connection::open(&path).unwrap();
        holder
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = Db::open_blocking(&path, Duration::from_millis(200))
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(err.contains("database is locked"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(moved_aside(dir.path()), Vec::<String>::new());
        // Once the other process is done, the same file opens.
        drop(holder);
        let (_, warning) = Db::open_blocking(&path, BUSY_TIMEOUT).unwrap();
        assert_eq!(warning, None);
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 4] = [
            (
                "garbage.db",
                b"this is not a database, just garbage bytes..........",
            ),
            (
                "credentials",
                b"[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t\n",
            ),
            ("data.json", b"{\"not\": \"sqlite\"}"),
            ("short.db", b"SQLite"),
        ];
        for (name, bytes) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = Db::open_blocking(&path, BUSY_TIMEOUT)
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not a SQLite database"), "{name}: {err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(!err.contains('\n'), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
        }
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["credentials", "data.json", "garbage.db", "short.db"]);
    }

    #[test]
    fn an_empty_file_becomes_a_new_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, b"").unwrap();
        let (_, warning) = Db::open_blocking(&path, BUSY_TIMEOUT).unwrap();
        assert_eq!(warning, None);
        assert_eq!(schema_version(&path), migration_steps().len() as i64);
    }

    #[test]
    fn a_database_from_a_newer_snapsync_is_an_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Db::open_blocking(&path, BUSY_TIMEOUT).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Db::open_blocking(&path, BUSY_TIMEOUT)
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 99"), "{err}");
        assert_eq!(schema_version(&path), 99);
        assert_eq!(moved_aside(dir.path()), Vec::<String>::new());
    }

    #[rstest::rstest]
    #[case::header_then_garbage(false)]
    #[case::garbage_pages_inside(true)]
    fn a_corrupt_database_is_moved_aside_with_a_warning(#[case] keep_first_page: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        healthy_db_with_pages(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        // The header stays valid; the pages after it (or after page 1) are overwritten.
        let from = if keep_first_page { 4096 * 4 } else { 100 };
        assert!(bytes.len() > from + 4096, "{}", bytes.len());
        for (i, b) in bytes[from..].iter_mut().enumerate() {
            *b = (i * 7919 % 251) as u8;
        }
        std::fs::write(&path, &bytes).unwrap();
        let (db, warning) = Db::open_blocking(&path, BUSY_TIMEOUT).unwrap();
        let warning = warning.expect("a warning");
        // The database itself; its -wal/-shm, if SQLite made any while failing, beside it.
        let aside: Vec<_> = moved_aside(dir.path())
            .into_iter()
            .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        let aside = dir.path().join(&aside[0]);
        assert!(
            aside
                .to_string_lossy()
                .starts_with(&format!("{}.corrupt-", path.display())),
            "{aside:?}"
        );
        assert!(warning.contains(&path.display().to_string()), "{warning}");
        assert!(warning.contains(&aside.display().to_string()), "{warning}");
        assert!(!warning.contains('\n'), "{warning}");
        assert_eq!(std::fs::read(&aside).unwrap(), bytes);
        drop(db);
        assert_eq!(schema_version(&path), migration_steps().len() as i64);
    }

    #[test]
    fn only_corruption_moves_a_file_aside() {
        use rusqlite::ffi;
        let path = Path::new("state.db");
        let failure = |code| {
            Failure::of(
                path,
                rusqlite::Error::SqliteFailure(ffi::Error::new(code), None),
            )
        };
        for code in [ffi::SQLITE_CORRUPT, ffi::SQLITE_NOTADB] {
            assert!(matches!(failure(code), Failure::Corrupt(_)), "{code}");
        }
        for code in [
            ffi::SQLITE_FULL,
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_PERM,
        ] {
            match failure(code) {
                Failure::Other(e) => assert!(e.to_string().starts_with("database state.db: ")),
                Failure::Corrupt(r) => panic!("{code} counted as corruption: {r}"),
            }
        }
    }
}

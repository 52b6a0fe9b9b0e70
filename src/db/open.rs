//! Opening the database: the pragmas, the corruption check, and what is moved aside (only a
//! file SQLite calls corrupt) or refused (a file that is not SQLite at all).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::migrate::{migrate, Migrate};
use super::Db;
use crate::error::{Error, Result};

/// How long a statement waits for another connection's lock before it fails.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why the database did not open: only `Corrupt` moves the file aside.
pub(super) enum Failure {
    Corrupt(String),
    Other(Error),
}

impl Failure {
    /// Corruption is SQLite saying so (`SQLITE_CORRUPT`, `SQLITE_NOTADB`); everything else —
    /// a lock held by another process, a full disk, a read-only directory — is about the
    /// moment, not the file, and moving a healthy file aside would lose its state.
    pub(super) fn of(path: &Path, e: rusqlite::Error) -> Failure {
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

    /// A database in memory, gone with the process: `run --dry-run` runs against it, so that
    /// it writes nothing, not even `snapsync.db` (it then reads the previous version from the
    /// store, as on a new disk).
    pub fn open_in_memory() -> Result<Db> {
        let path = Path::new(":memory:");
        let fail = |e: rusqlite::Error| Failure::of(path, e).into_error(path);
        let mut conn = Connection::open_in_memory().map_err(fail)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(fail)?;
        migrate(&mut conn).map_err(|e| match e {
            Migrate::Sqlite(e) => fail(e),
            Migrate::TooNew { found, known } => Error::Db {
                path: path.to_path_buf(),
                reason: format!("a new database reports schema version {found} (known: {known})"),
            },
        })?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    pub(super) fn open_blocking(path: &Path, busy: Duration) -> Result<(Db, Option<String>)> {
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
}

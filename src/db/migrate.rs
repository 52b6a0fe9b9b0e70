//! Migrations embedded from `migrations/`, applied under the write lock so that several
//! processes opening a new database at once migrate it exactly once.

use include_dir::{include_dir, Dir};
use rusqlite::{Connection, TransactionBehavior};
use rusqlite_migration::Migrations;

static MIGRATIONS_DIR: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations");

/// `migrations/` as rusqlite_migration reads it: validated by a test, and the reference for
/// how `migrate` numbers versions.
pub fn migrations() -> Migrations<'static> {
    Migrations::from_directory(&MIGRATIONS_DIR).expect("migrations/ is well formed")
}

/// Why migrating failed.
pub(super) enum Migrate {
    Sqlite(rusqlite::Error),
    TooNew { found: i64, known: usize },
}

impl From<rusqlite::Error> for Migrate {
    fn from(e: rusqlite::Error) -> Self {
        Migrate::Sqlite(e)
    }
}

/// The `up.sql` of every migration in `migrations/`, in order (`NN-name/up.sql`).
pub(super) fn migration_steps() -> Vec<&'static str> {
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
pub(super) fn migrate(conn: &mut Connection) -> std::result::Result<(), Migrate> {
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

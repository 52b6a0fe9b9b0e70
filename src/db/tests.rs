//! Tests of the database: the migrations, several processes opening one file, and what is
//! moved aside (corruption only) or refused and left alone.

use std::time::Duration;

use super::migrate::{migrate, migration_steps};
use super::open::{Failure, BUSY_TIMEOUT};

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

#[tokio::test]
async fn a_failure_streak_counts_failed_runs_since_the_last_success_and_skips_abandoned_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = Db::open(&dir.path().join("s.db")).await.unwrap();
    let (store, other) = ("file:///s", "file:///other");
    assert_eq!(
        db.failures_in_a_row(store, "d").await.unwrap(),
        0,
        "never run"
    );
    let id = db.dataset(store, "d").await.unwrap().id;
    let elsewhere = db.dataset(other, "d").await.unwrap().id;
    let record = |outcome: &str| RunRecord {
        started_at: "2026-12-01T00:00:00Z".into(),
        finished_at: "2026-12-01T00:00:01Z".into(),
        outcome: outcome.into(),
        ..RunRecord::default()
    };
    let mut expect = Vec::new();
    for (outcome, streak) in [
        ("failed", 1),
        ("failed", 2),
        ("abandoned", 2),
        ("failed", 3),
        ("changed", 0),
        ("failed", 1),
        ("abandoned", 1),
        ("not-modified", 0),
        ("abandoned", 0),
        ("failed", 1),
    ] {
        db.record_run(id, record(outcome)).await.unwrap();
        // The same dataset name in another store has its own streak.
        db.record_run(elsewhere, record("changed")).await.unwrap();
        let got = db.failures_in_a_row(store, "d").await.unwrap();
        expect.push((outcome, streak, got));
        assert_eq!(db.failures_in_a_row(other, "d").await.unwrap(), 0);
    }
    assert!(
        expect.iter().all(|(_, want, got)| want == got),
        "{expect:?}"
    );
    // An abandoned run is not the last success either.
    db.record_run(id, record("abandoned")).await.unwrap();
    let (last, ok) = db.last_runs(id).await.unwrap();
    assert_eq!(last.unwrap().outcome, "abandoned");
    assert_eq!(ok.unwrap().outcome, "not-modified");
}

#[test]
fn migration_5_keeps_every_run_and_accepts_abandoned() {
    let mut c = Connection::open_in_memory().unwrap();
    for step in &migration_steps()[..4] {
        c.execute_batch(step).unwrap();
    }
    c.pragma_update(None, "user_version", 4).unwrap();
    c.execute(
        "INSERT INTO datasets (store, name) VALUES ('file:///s', 'd')",
        [],
    )
    .unwrap();
    let insert = |c: &Connection, outcome: &str| {
        c.execute(
            "INSERT INTO runs (dataset_id, started_at, finished_at, outcome, total_ms, error) \
             VALUES (1, 'a', 'b', ?1, 7, 'e')",
            [outcome],
        )
    };
    insert(&c, "failed").unwrap();
    insert(&c, "changed").unwrap();
    assert!(insert(&c, "abandoned").is_err(), "schema 4 refuses it");
    assert!(migrate(&mut c).is_ok());
    let rows: Vec<(i64, String, i64, String)> = c
        .prepare("SELECT id, outcome, total_ms, error FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (1, "failed".into(), 7, "e".into()),
            (2, "changed".into(), 7, "e".into())
        ]
    );
    insert(&c, "abandoned").unwrap();
    assert!(insert(&c, "bogus").is_err());
    let indexes: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'runs_by_dataset'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 1);
}

#[tokio::test]
async fn the_body_cache_keeps_the_newest_body_of_each_dataset_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = Db::open(&dir.path().join("s.db")).await.unwrap();
    let (a, b) = (
        db.dataset("file:///s", "a").await.unwrap().id,
        db.dataset("file:///s", "b").await.unwrap().id,
    );
    // Larger than a page and not a multiple of one: written and read through blob handles.
    let body = |seed: u8, len: usize| -> bytes::Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    };
    let entry = |version: u64, sha: &str| Entry {
        version,
        sha256: sha.into(),
        ..Entry::default()
    };
    let (first, second, other) = (body(1, 100_003), body(2, 5_001), body(3, 70_000));
    db.record_versions(
        a,
        vec![entry(1, "s1")],
        Some((1, "s1".into(), first.clone())),
        None,
    )
    .await
    .unwrap();
    db.record_versions(
        b,
        vec![entry(1, "o1")],
        Some((1, "o1".into(), other.clone())),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        db.cached_body(a, "s1").await.unwrap().as_deref(),
        Some(&first[..])
    );
    assert_eq!(db.cached_body(a, "o1").await.unwrap(), None, "another hash");
    // A newer version's body replaces the older one (a shorter one too).
    db.record_versions(
        a,
        vec![entry(2, "s2")],
        Some((2, "s2".into(), second.clone())),
        None,
    )
    .await
    .unwrap();
    assert_eq!(db.cached_body(a, "s1").await.unwrap(), None);
    assert_eq!(
        db.cached_body(a, "s2").await.unwrap().as_deref(),
        Some(&second[..])
    );
    assert_eq!(
        db.cached_body(b, "o1").await.unwrap().as_deref(),
        Some(&other[..])
    );
    let empty = bytes::Bytes::new();
    db.record_versions(a, vec![entry(3, "s3")], Some((3, "s3".into(), empty)), None)
        .await
        .unwrap();
    assert_eq!(
        db.cached_body(a, "s3").await.unwrap().as_deref(),
        Some(&[][..])
    );
}

//! "SQLite is a cache": the local database deleted, emptied, truncated, overwritten with
//! garbage after its header (or a stale copy put back) between runs of the real binary. The
//! next run must rebuild what it needs from the store: the same data is `unchanged` at the same
//! version (never a duplicate version), new data becomes exactly the next version, and the
//! history verifies. But only a SQLite file is ever moved aside: a `--db` that holds something
//! else is refused, and processes opening one new database at once all use it.

use std::io::Write as _;

use crate::common::cli::{to_result, RunResult};
use crate::common::history::{check, data, sha_of};
use crate::common::http::HttpServer;
use crate::common::target::Target;
use rstest::rstest;

const DATASET: &str = "cached";
const KEY: &str = "/country/key";

#[derive(Debug, Clone, Copy)]
enum Damage {
    Deleted,
    Emptied,
    TruncatedToHalf,
    /// A valid SQLite header followed by garbage.
    GarbageAfterHeader,
    /// A copy taken one version ago, put back (with its WAL and shared-memory files removed).
    Stale,
}

fn damage(db: &std::path::Path, how: Damage, stale: &[u8]) {
    let side = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    match how {
        Damage::Deleted => {
            std::fs::remove_file(db).unwrap();
            for s in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(side(s));
            }
        }
        Damage::Emptied => std::fs::write(db, b"").unwrap(),
        Damage::TruncatedToHalf => {
            let len = std::fs::metadata(db).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(db)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }
        Damage::GarbageAfterHeader => {
            let mut f = std::fs::File::create(db).unwrap();
            f.write_all(b"SQLite format 3\0").unwrap();
            f.write_all(&[0x10, 0x00, 0x01, 0x01]).unwrap();
            f.write_all(&vec![0xA5; 40_000]).unwrap();
        }
        Damage::Stale => {
            std::fs::write(db, stale).unwrap();
            for s in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(side(s));
            }
        }
    }
}

fn run(target: &Target, server: &HttpServer) -> RunResult {
    let url = server.url("/d.json");
    to_result(
        target
            .cmd(
                &target.db("local"),
                &["run", "--dataset", DATASET, "--url", &url, "--key", KEY],
            )
            .output()
            .unwrap(),
    )
}

/// A self-contained copy of the database as it is now (checkpointed by the process's exit).
fn snapshot_db(target: &Target) -> Vec<u8> {
    std::fs::read(target.db("local")).unwrap()
}

async fn damaged_between_runs(target: Target, how: Damage) {
    let server = HttpServer::start();
    let store = target.store().await;
    let (a, b, c) = (data(1, 25), data(2, 25), data(3, 25));
    server.set("/d.json", a);
    let r = run(&target, &server);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let stale = snapshot_db(&target);
    server.set("/d.json", b.clone());
    let r = run(&target, &server);
    assert_eq!(
        (r.code, r.field("version").as_deref()),
        (0, Some("2")),
        "{r:?}"
    );

    // Same data after the damage: the store already has it.
    damage(&target.db("local"), how, &stale);
    let r = run(&target, &server);
    assert_eq!(
        (r.code, r.outcome(), r.field("version").as_deref()),
        (0, "unchanged", Some("2")),
        "{how:?}: {r:?}"
    );
    assert_eq!(r.field("sha256"), Some(sha_of(&b, KEY)), "{r:?}");

    // New data after the damage: exactly the next version, with a delta from version 2.
    damage(&target.db("local"), how, &stale);
    server.set("/d.json", c.clone());
    let r = run(&target, &server);
    assert_eq!(
        (r.code, r.outcome(), r.field("version").as_deref()),
        (0, "changed", Some("3")),
        "{how:?}: {r:?}"
    );
    let checked = check(&store, DATASET, KEY)
        .await
        .unwrap_or_else(|e| panic!("{how:?}: {e}"));
    assert_eq!(
        (checked.len(), checked.last_sha()),
        (3, Some(sha_of(&c, KEY).as_str()))
    );
    // And the rebuilt database agrees with the store.
    let url = server.url("/d.json");
    let status = to_result(
        target
            .cmd(
                &target.db("local"),
                &["status", "--dataset", DATASET, "--url", &url, "--key", KEY],
            )
            .output()
            .unwrap(),
    );
    assert!(status.stdout.contains("agrees"), "{how:?}: {status:?}");
}

#[rstest]
#[case::deleted(Damage::Deleted)]
#[case::emptied(Damage::Emptied)]
#[case::truncated(Damage::TruncatedToHalf)]
#[case::garbage_after_header(Damage::GarbageAfterHeader)]
#[case::stale_copy(Damage::Stale)]
#[tokio::test]
async fn file_store(#[case] how: Damage) {
    damaged_between_runs(Target::file(), how).await;
}

#[rstest]
#[case::deleted(Damage::Deleted)]
#[case::emptied(Damage::Emptied)]
#[case::truncated(Damage::TruncatedToHalf)]
#[case::garbage_after_header(Damage::GarbageAfterHeader)]
#[case::stale_copy(Damage::Stale)]
#[tokio::test]
async fn s3(#[case] how: Damage) {
    let Some(target) = Target::s3("local-state") else {
        return;
    };
    damaged_between_runs(target, how).await;
}

/// Files in `dir` whose names say they were moved aside.
fn moved_aside(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".corrupt-"))
        .collect()
}

/// A `--db` naming a file that is not SQLite (overwritten with garbage, or a credentials or
/// JSON file named by mistake or by a planted `snapsync.toml`): the run refuses it in one
/// line, and the file is neither renamed nor changed.
#[rstest]
#[case::garbage((0..50_000u32).map(|i| (i * 7919 % 251) as u8).collect())]
#[case::credentials(b"[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t\n".to_vec())]
#[case::json(b"{\"datasets\": []}\n".to_vec())]
fn a_db_that_is_not_sqlite_is_refused_and_left_alone(#[case] bytes: Vec<u8>) {
    let target = Target::file();
    let server = HttpServer::start();
    server.set("/d.json", data(1, 25));
    let db = target.db("local");
    std::fs::write(&db, &bytes).unwrap();
    let r = run(&target, &server);
    assert_eq!(r.code, 1, "{r:?}");
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("snapsync:"))
        .collect();
    assert_eq!(errors.len(), 1, "{r:?}");
    assert!(
        errors[0].contains("is not a SQLite database")
            && errors[0].contains(&db.display().to_string()),
        "{r:?}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert_eq!(moved_aside(target.dir.path()), Vec::<String>::new());
    // Nothing was fetched for a run that could not have recorded it.
    assert_eq!(server.requests("/d.json"), 0);
}

/// Three processes (a worker and two `run`s, say) start on one new database at the same
/// moment: each migrates or sees the migration done, none fails, none moves the database
/// aside.
#[test]
fn three_processes_open_one_new_database_at_once() {
    const TRIALS: usize = 20;
    let target = Target::file();
    let server = HttpServer::start();
    let url = server.url("/d.json");
    for trial in 0..TRIALS {
        let db = target.db(&format!("new-{trial}"));
        let children: Vec<_> = (0..3)
            .map(|_| {
                target
                    .cmd(&db, &["status", "--dataset", DATASET, "--url", &url])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let r = to_result(child.wait_with_output().unwrap());
            assert_eq!(r.code, 0, "trial {trial}: {r:?}");
            assert!(!r.stderr.contains("corrupt"), "trial {trial}: {r:?}");
        }
        assert_eq!(
            moved_aside(target.dir.path()),
            Vec::<String>::new(),
            "trial {trial}"
        );
    }
}

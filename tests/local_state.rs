//! "SQLite is a cache": the local database deleted, emptied, truncated, overwritten with
//! garbage (or a stale copy put back) between runs of the real binary. The next run must rebuild
//! what it needs from the store: the same data is `unchanged` at the same version (never a
//! duplicate version), new data becomes exactly the next version, and the history verifies.

mod common;

use std::io::Write as _;

use common::cli::{to_result, RunResult};
use common::history::{check, data, sha_of};
use common::http::HttpServer;
use common::target::Target;
use rstest::rstest;

const DATASET: &str = "cached";
const KEY: &str = "/country/key";

#[derive(Debug, Clone, Copy)]
enum Damage {
    Deleted,
    Emptied,
    TruncatedToHalf,
    Garbage,
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
        Damage::Garbage => {
            let junk: Vec<u8> = (0..50_000u32).map(|i| (i * 7919 % 251) as u8).collect();
            std::fs::write(db, junk).unwrap();
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
#[case::garbage(Damage::Garbage)]
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
#[case::garbage(Damage::Garbage)]
#[case::garbage_after_header(Damage::GarbageAfterHeader)]
#[case::stale_copy(Damage::Stale)]
#[tokio::test]
async fn s3(#[case] how: Damage) {
    let Some(target) = Target::s3("local-state") else {
        return;
    };
    damaged_between_runs(target, how).await;
}

//! docs/design.md's promise "a crash at any step leaves a history that verify accepts", checked at
//! every S3 request of a publish: a loopback proxy in front of the real S3 server fails request
//! number N of a changed run (500, connection cut mid-request, response lost after the server
//! did the work, or held past the client's timeout and delivered late), for every N of the run
//! and every kind. Afterwards one normal run must leave exactly one new version: versions
//! 1..n, no gap, no duplicate, latest.json = last, every delta applying to its base.
//!
//! Three settings: the SDK's retries off (each fault fails the request it hits) on a machine
//! whose database is warm and on a fresh one (which also reads the previous version from
//! S3), and the default 3 attempts (the SDK retries: the run itself must not fail, even when
//! its retried `If-Match` meets its own earlier success).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::history::{check, data, sha_of};
use crate::common::http::HttpServer;
use crate::common::machine::{dataset, http_source};
use crate::common::proxy::{FaultKind, Proxy};
use crate::common::store::connect_s3;
use rstest::rstest;
use snapsync::clock::SystemClock;
use snapsync::db::Db;
use snapsync::store::s3::{S3Options, S3Store};
use snapsync::store::DynStore;
use snapsync::sync::{self, Deps, Outcome, Report, RunOptions};

const DATASET: &str = "faulty";
const KEY: &str = "/country/key";
const RECORDS: u64 = 40;

#[derive(Debug, Clone, Copy)]
enum Setting {
    /// `max_attempts = 1`, the same database for every run.
    NoRetriesWarm,
    /// `max_attempts = 1`, a new database for the faulted run and for the repair run.
    NoRetriesFresh,
    /// The SDK's default 3 attempts, warm database: a single fault must be absorbed.
    Retries,
}

struct Rig {
    env: crate::common::s3::S3Env,
    prefix: String,
    proxy: Proxy,
    server: HttpServer,
    /// The warm machine's database.
    warm: Db,
    dirs: tempfile::TempDir,
}

impl Rig {
    async fn new(name: &str) -> Option<Rig> {
        let env = crate::common::s3::s3_env()?;
        let proxy = Proxy::start(&env.endpoint);
        proxy.set_hold(Duration::from_millis(1300));
        let dirs = tempfile::tempdir().unwrap();
        let (warm, _) = Db::open(&dirs.path().join("warm.db")).await.unwrap();
        Some(Rig {
            prefix: format!("faults-{name}-{:016x}", rand::random::<u64>()),
            env,
            proxy,
            server: HttpServer::start(),
            warm,
            dirs,
        })
    }

    /// A store that talks to S3 directly, with the default retries (the repair runs' store).
    async fn direct(&self) -> DynStore {
        let opts = crate::common::s3::s3_options(&self.env);
        Arc::new(connect_s3(&self.env, &self.prefix, &opts).await)
    }

    /// A store whose every request goes through the proxy.
    async fn proxied(&self, max_attempts: u32) -> DynStore {
        let opts = S3Options {
            endpoint: Some(self.proxy.endpoint()),
            max_attempts: Some(max_attempts),
            attempt_timeout: Some(Duration::from_secs(1)),
            ..crate::common::s3::s3_options(&self.env)
        };
        Arc::new(connect_s3(&self.env, &self.prefix, &opts).await)
    }

    async fn db(&self, fresh: bool) -> Db {
        if fresh {
            let path = self
                .dirs
                .path()
                .join(format!("fresh-{:016x}.db", rand::random::<u64>()));
            Db::open(&path).await.unwrap().0
        } else {
            self.warm.clone()
        }
    }

    async fn run(&self, store: DynStore, db: Db) -> Report {
        let deps = Deps {
            store,
            db,
            source: http_source(Some(0)),
            clock: Arc::new(SystemClock),
        };
        let ds = dataset(DATASET, &self.server.url("/d.json"));
        sync::run_dataset(&deps, &ds, RunOptions::default()).await
    }
}

/// A clean changed run on the warm machine: the base of the next faulted run, and what warms
/// its cache.
async fn warm_up(rig: &Rig, direct: &DynStore) {
    let r = rig.run(direct.clone(), rig.warm.clone()).await;
    assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
}

/// Tallies of one matrix, printed for the note.
#[derive(Debug, Default)]
struct Tally {
    points: usize,
    faulted_failed: usize,
    faulted_changed: usize,
    faulted_unchanged: usize,
    repaired_by_unchanged: usize,
    orphans: usize,
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_a_publish_can_fail(
    #[values(
        FaultKind::InternalError,
        FaultKind::CutMidRequest,
        FaultKind::LostResponse,
        FaultKind::DelayPastTimeout
    )]
    kind: FaultKind,
    #[values(Setting::NoRetriesWarm, Setting::NoRetriesFresh, Setting::Retries)] setting: Setting,
) {
    let name = format!("{kind:?}-{setting:?}").to_ascii_lowercase();
    let Some(rig) = Rig::new(&name).await else {
        return;
    };
    let t0 = Instant::now();
    let (attempts, fresh) = match setting {
        Setting::NoRetriesWarm => (1, false),
        Setting::NoRetriesFresh => (1, true),
        Setting::Retries => (3, false),
    };
    let direct = rig.direct().await;
    let mut tag = 0u64;
    let mut expected = 0u64;
    let mut next_data = |server: &HttpServer| {
        tag += 1;
        let body = data(tag, RECORDS);
        server.set("/d.json", body.clone());
        sha_of(&body, KEY)
    };

    next_data(&rig.server);
    warm_up(&rig, &direct).await;
    expected += 1;
    // Calibration: a clean changed run through the proxy, counting its requests.
    next_data(&rig.server);
    let store = rig.proxied(attempts).await;
    rig.proxy.reset([]);
    let r = rig.run(store, rig.db(fresh).await).await;
    assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    expected += 1;
    let requests: Vec<String> = rig.proxy.seen().iter().map(|s| s.label()).collect();
    let n_requests = requests.len();
    assert!(n_requests >= 5, "{requests:#?}");
    eprintln!(
        "fault matrix {name}: a changed run makes {n_requests} requests: {}",
        requests
            .iter()
            .map(|l| l.rsplit('/').next().unwrap_or("").to_string()
                + &format!("({})", l.split(' ').next().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut tally = Tally::default();
    for n in 0..n_requests {
        // The base: one clean version, so that the faulted run always starts from the same
        // situation (warm cache on the warm machine).
        next_data(&rig.server);
        warm_up(&rig, &direct).await;
        expected += 1;

        let want = next_data(&rig.server);
        let store = rig.proxied(attempts).await;
        rig.proxy.reset([(n, kind)]);
        let faulted = rig.run(store, rig.db(fresh).await).await;
        let seen = rig.proxy.seen();
        let hit = seen
            .get(n)
            .map(|s| s.label())
            .unwrap_or_else(|| "(not reached)".into());
        match faulted.outcome {
            Outcome::Failed => tally.faulted_failed += 1,
            Outcome::Changed => tally.faulted_changed += 1,
            Outcome::Unchanged => tally.faulted_unchanged += 1,
            Outcome::NotModified => panic!("the source changed: {faulted:?}"),
            Outcome::Abandoned => panic!("nothing cancels this run: {faulted:?}"),
        }
        if attempts > 1 {
            // Even when the retried `If-Match` meets the run's own lost commit.
            assert_eq!(
                faulted.outcome,
                Outcome::Changed,
                "one {kind:?} at request {n} ({hit}) is retried by the SDK, yet the run did not report its change: {faulted:?}"
            );
        }
        // Nothing held by the proxy may land after this point.
        rig.proxy.wait_idle(Duration::from_secs(20));

        let repair = rig.run(direct.clone(), rig.db(fresh).await).await;
        assert_ne!(
            repair.outcome,
            Outcome::Failed,
            "the run after a {kind:?} at request {n} ({hit}) failed: {repair:?}\nfaulted run: {faulted:?}"
        );
        if repair.outcome == Outcome::Unchanged {
            tally.repaired_by_unchanged += 1;
        }
        expected += 1;
        let checked = check(&direct, DATASET, KEY).await.unwrap_or_else(|e| {
            panic!("after a {kind:?} at request {n} ({hit}): inconsistent history: {e}\nfaulted run: {faulted:?}")
        });
        assert_eq!(
            (checked.len(), checked.last_sha()),
            (expected, Some(want.as_str())),
            "after a {kind:?} at request {n} ({hit}): a version was lost or duplicated\nfaulted run: {faulted:?}\nrepair run: {repair:?}"
        );
        // The warm machine's database mirrors the store again.
        if !fresh {
            let id = rig.warm.dataset(direct.url(), DATASET).await.unwrap().id;
            let local = rig.warm.versions(id).await.unwrap();
            assert_eq!(local.last(), checked.versions.last(), "after request {n}");
            for e in &local {
                assert_eq!(Some(e), checked.versions.get(e.version as usize - 1));
            }
        }
        tally.orphans = checked.orphans;
        tally.points += 1;
    }
    eprintln!(
        "fault matrix {name}: {} points, 0 inconsistent histories; faulted runs: {} failed, {} changed, {} unchanged; repair runs that found the version already committed: {}; {} versions, {} orphans; {:.1}s",
        tally.points,
        tally.faulted_failed,
        tally.faulted_changed,
        tally.faulted_unchanged,
        tally.repaired_by_unchanged,
        expected,
        tally.orphans,
        t0.elapsed().as_secs_f64()
    );
}

/// A server that accepts connections and never answers: the error gives the limit of one
/// attempt, the number of attempts, and how long they took in all (it once said "timed out
/// after 60s" after 182 s and 3 attempts).
#[tokio::test]
async fn a_hung_server_says_how_long_it_waited_and_how_often() {
    let Some(env) = crate::common::s3::s3_env() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let opts = S3Options {
        endpoint: Some(format!("http://{addr}")),
        max_attempts: Some(2),
        attempt_timeout: Some(Duration::from_secs(1)),
        ..crate::common::s3::s3_options(&env)
    };
    let t = Instant::now();
    let err = S3Store::connect(&env.bucket, "x", &opts)
        .await
        .expect_err("a hung server cannot be connected to");
    let took = t.elapsed().as_secs_f64();
    let line = err.to_string();
    assert!(
        line.contains("each attempt times out after 1s, up to 2 attempts"),
        "{line}"
    );
    let waited: f64 = line
        .split(" in ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no total in {line}"));
    assert!(
        (1.5..=took + 0.5).contains(&waited),
        "said {waited}s, took {took:.1}s: {line}"
    );
}

/// The store's clock is read off its responses (the `Date` header): on loopback it agrees with
/// ours to within the header's one-second resolution plus the round trip.
#[tokio::test]
async fn the_s3_store_measures_the_servers_clock() {
    let Some(env) = crate::common::s3::s3_env() else {
        return;
    };
    let store = S3Store::connect(&env.bucket, "clock", &crate::common::s3::s3_options(&env))
        .await
        .unwrap();
    use snapsync::store::Store as _;
    let skew = store.clock_skew().expect("measured by the bucket check");
    assert!(skew.abs() < time::Duration::seconds(3), "{skew}");
    assert!(store.answered());
}

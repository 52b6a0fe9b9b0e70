//! The worker: on a schedule with a fake clock; cancelled in the middle of a publish to a slow
//! store; and as a real `snapsync worker` process that publishes, logs heartbeats and stops on
//! SIGTERM within Heroku's deadline.

use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::cli::{sigterm, spawn_worker, wait_for, Sandbox};
use crate::common::http::{Fault, HttpServer};
use crate::common::machine::{self, deps};
use crate::common::store::Intercept;
use snapsync::canonical::KeyPointer;
use snapsync::clock::Clock;
use snapsync::history;
use snapsync::keys::DatasetKeys;
use snapsync::schedule::Schedule;
use snapsync::source::{Fetched, Source, Validators};
use snapsync::store::file::FileStore;
use snapsync::store::DynStore;
use snapsync::sync::{self, DatasetConfig, Outcome, RunOptions};
use snapsync::worker::{self, WorkerOptions};
use snapsync::Result;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Wall time that moves with tokio's (paused) clock.
struct TokioClock {
    base: OffsetDateTime,
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.base + self.start.elapsed()
    }
}

/// A source whose data changes on every fetch; remembers when (by its clock) it was fetched.
struct Changing(
    AtomicU64,
    Option<Arc<dyn Clock>>,
    std::sync::Mutex<Vec<OffsetDateTime>>,
);

impl Changing {
    fn new(clock: Option<Arc<dyn Clock>>) -> Self {
        Changing(AtomicU64::new(0), clock, std::sync::Mutex::new(Vec::new()))
    }
    fn times(&self) -> Vec<String> {
        self.2
            .lock()
            .unwrap()
            .iter()
            .map(|t| snapsync::keys::rfc3339(*t))
            .collect()
    }
}

#[async_trait::async_trait]
impl Source for Changing {
    async fn fetch(&self, _url: &str, _v: &Validators) -> Result<Fetched> {
        if let Some(c) = &self.1 {
            self.2.lock().unwrap().push(c.now());
        }
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Fetched::Body {
            bytes: format!(r#"[{{"country":{{"key":"a"}},"n":{n}}},{{"country":{{"key":"b"}}}}]"#)
                .into_bytes(),
            validators: Validators::default(),
            content_type: None,
        })
    }
}

fn dataset() -> DatasetConfig {
    machine::dataset("d", "https://example.invalid/never-fetched")
}

async fn versions(store: &DynStore) -> usize {
    let keys = DatasetKeys::new("", "d");
    let report = history::verify(store, &keys, &KeyPointer::parse("/country/key").unwrap())
        .await
        .unwrap();
    assert!(report.is_sound(), "{report:?}");
    report.versions
}

// Paused tokio time auto-advances while the runtime waits for blocking work (SQLite, files),
// so this test asserts *when* (by the fake clock) each run fetched, not how many ran by when.
#[tokio::test(start_paused = true)]
async fn runs_at_start_then_on_every_slot_and_again_after_a_restart_only_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(FileStore::open(&dir.path().join("store")).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock {
        base: time::macros::datetime!(2026-11-24 06:00:03 UTC),
        start: tokio::time::Instant::now(),
    });
    let source = Arc::new(Changing::new(Some(clock.clone())));
    let schedule = Schedule::parse("*/10 * * * * *").unwrap();
    let opts = WorkerOptions {
        heartbeat: Duration::from_secs(1),
        ..WorkerOptions::default()
    };
    let start = |stop: CancellationToken| {
        let (store, source, clock, schedule, opts) = (
            store.clone(),
            source.clone(),
            clock.clone(),
            schedule.clone(),
            opts.clone(),
        );
        let path = dir.path().to_path_buf();
        async move {
            let d = deps(store, source, clock.clone(), &path).await;
            // Spawned, so the test can watch it; the handle is awaited after `stop`.
            let handle = tokio::spawn(worker::run(
                d,
                vec![DatasetConfig {
                    schedule,
                    ..dataset()
                }],
                opts,
                clock,
                stop,
            ));
            Some(handle)
        }
    };
    // Never ran: at once (06:00:03), then on every slot.
    let stop = CancellationToken::new();
    let w = start(stop.clone()).await.expect("started");
    while source.0.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    w.await.unwrap();
    let times = source.times();
    assert_eq!(
        times[..4],
        [
            "2026-11-24T06:00:03Z",
            "2026-11-24T06:00:10Z",
            "2026-11-24T06:00:20Z",
            "2026-11-24T06:00:30Z"
        ]
    );
    let last = *source.2.lock().unwrap().last().unwrap();
    // A restart right after the last run (same database): its next run is the next slot, not
    // "at once" — no period runs twice.
    let stop = CancellationToken::new();
    let w = start(stop.clone()).await.expect("started");
    let restarted_at = clock.now();
    while source.0.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    w.await.unwrap();
    let fifth = *source.2.lock().unwrap().last().unwrap();
    let next_slot = schedule.next_after(last).unwrap();
    assert!(
        restarted_at < next_slot,
        "restart {restarted_at} should precede the next slot {next_slot}"
    );
    assert_eq!(
        fifth,
        next_slot,
        "after a restart the next run waits for its slot: {:?}",
        source.times()
    );
    assert_eq!(versions(&store).await, 5);
}

#[tokio::test]
async fn a_shutdown_during_a_publish_never_leaves_half_a_version() {
    // Cancel at many moments of a slow publish: each time, either the version is fully
    // committed (manifest included) or nothing is, and the history verifies.
    let (mut committed, mut abandoned) = (0, 0);
    for cancel_after_ms in [0u64, 30, 70, 110, 150, 190, 260, 400] {
        let dir = tempfile::tempdir().unwrap();
        let file: DynStore = Arc::new(FileStore::open(&dir.path().join("store")).unwrap());
        // Every put takes a while, so a shutdown can land in the middle of a publish.
        let slow = Intercept::new(file.clone());
        slow.delay_puts(Duration::from_millis(40));
        let store: DynStore = slow;
        let source = Arc::new(Changing::new(None));
        let d = deps(
            store,
            source,
            Arc::new(snapsync::clock::SystemClock),
            dir.path(),
        )
        .await;
        assert_eq!(
            sync::run_dataset(&d, &dataset(), RunOptions::default())
                .await
                .outcome,
            Outcome::Changed
        );
        let token = CancellationToken::new();
        let opts = RunOptions {
            cancel: Some(token.clone()),
            ..RunOptions::default()
        };
        let ds = dataset();
        let run = sync::run_dataset(&d, &ds, opts);
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(cancel_after_ms)).await;
            token.cancel();
        };
        let (report, ()) = tokio::join!(run, cancel);
        let n = versions(&file).await;
        match report.outcome {
            Outcome::Changed => {
                committed += 1;
                assert_eq!(n, 2, "{report:?}");
            }
            Outcome::Abandoned => {
                abandoned += 1;
                assert!(
                    report
                        .error
                        .as_deref()
                        .unwrap()
                        .contains("abandoned before the commit point"),
                    "{report:?}"
                );
                assert_eq!(n, 1, "{report:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        committed > 0 && abandoned > 0,
        "both sides of the commit point were hit: {committed} committed, {abandoned} abandoned"
    );
}

/// Waits for the process to exit, at most `limit`.
fn wait_exit(mut child: Child, limit: Duration) -> (i32, String, Duration) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                t.elapsed(),
            );
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("the worker did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_worker_process_publishes_logs_heartbeats_and_stops_on_sigterm() {
    let server = HttpServer::start();
    server.set("/d.json", r#"[{"country":{"key":"a"},"n":1}]"#);
    let sb = Sandbox::new();
    let child = spawn_worker(
        &sb,
        &server.url("/d.json"),
        &["--schedule", "*/2 * * * * *"],
    );
    let manifest = sb.dataset_dir("covid-countries").join("manifest.json");
    wait_for("version 1", Duration::from_secs(20), || manifest.exists());
    server.set("/d.json", r#"[{"country":{"key":"a"},"n":2}]"#);
    wait_for("version 2", Duration::from_secs(20), || {
        std::fs::read_to_string(&manifest).is_ok_and(|m| m.contains("\"version\": 2"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    let (code, stderr, took) = wait_exit(child, Duration::from_secs(25));
    assert_eq!(code, 0, "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(stderr.contains("message=\"worker alive\""), "{stderr}");
    assert!(stderr.contains("next_runs=\"covid-countries=2"), "{stderr}");
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("message=\"run finished\""))
            .count()
            >= 2,
        "{stderr}"
    );
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    let store: DynStore = Arc::new(FileStore::open(&sb.store_dir()).unwrap());
    let keys = DatasetKeys::new("", "covid-countries");
    let report = history::verify(&store, &keys, &KeyPointer::parse("/country/key").unwrap())
        .await
        .unwrap();
    assert!(report.is_sound() && report.versions >= 2, "{report:?}");
}

#[test]
fn sigterm_during_a_slow_fetch_abandons_the_run_and_exits_0() {
    let server = HttpServer::start();
    let body = r#"[{"country":{"key":"a"},"n":1}]"#;
    server.set("/d.json", body);
    server.push_faults(
        "/d.json",
        [Fault::StallBody {
            after: 5,
            stall: Duration::from_secs(60),
        }],
    );
    let sb = Sandbox::new();
    let child = spawn_worker(&sb, &server.url("/d.json"), &["--timeout", "120"]);
    wait_for("the fetch to start", Duration::from_secs(20), || {
        server.requests("/d.json") >= 1
    });
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let (code, stderr, took) = wait_exit(child, Duration::from_secs(25));
    assert_eq!(code, 0, "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {stderr}");
    assert!(
        stderr.contains("abandoned before the commit point"),
        "{stderr}"
    );
    assert!(!sb
        .dataset_dir("covid-countries")
        .join("latest.json")
        .exists());
}

#[test]
fn a_failing_webhook_never_fails_the_run() {
    let server = HttpServer::start();
    server.set("/d.json", r#"[{"country":{"key":"a"},"n":1}]"#);
    server.set("/hook", "");
    server.push_faults("/hook", [Fault::Status(500)]);
    let sb = Sandbox::new();
    let child = spawn_worker(
        &sb,
        &server.url("/d.json"),
        &["--notify-url", &server.url("/hook")],
    );
    wait_for("the webhook call", Duration::from_secs(20), || {
        server.requests("/hook") >= 1
    });
    sigterm(&child);
    let (code, stderr, _) = wait_exit(child, Duration::from_secs(25));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("webhook refused"), "{stderr}");
    assert!(stderr.contains("outcome=changed"), "{stderr}");
    let headers = server.last_headers("/hook");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"),
        "{headers:?}"
    );
}

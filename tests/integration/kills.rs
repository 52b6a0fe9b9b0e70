//! SIGKILL of a real `snapsync run` at seeded random moments of a changed run, on the file
//! store and on S3 (through a proxy that slows each request so the publish window is wide
//! enough to hit). After each kill a normal run must succeed and leave exactly one new version,
//! and the whole history must verify.
//!
//! Half the kill times are uniform over a changed run (timed by a calibration run), half fall
//! just after the publish reached a random step (S3: the proxy's count of the run's requests;
//! file store: the new snapshot, latest.json or manifest.json appearing), so every step of the
//! protocol gets hit; the summary line says where the kills landed. `SNAPSYNC_KILL_SEED` and
//! `SNAPSYNC_KILL_TRIALS` change the seed and the count (`scripts/soak.sh` runs many more).

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::env;
use crate::common::history::{check, data, sha_of};
use crate::common::http::HttpServer;
use crate::common::proxy::Proxy;
use crate::common::target::Target;
use rand::{Rng, SeedableRng};
use snapsync::keys::DatasetKeys;
use snapsync::manifest::Entry;
use snapsync::store::DynStore;

const DATASET: &str = "killed";
const KEY: &str = "/country/key";
const RECORDS: u64 = 2000;

/// Where a kill landed, judged from the store afterwards.
#[derive(Debug, Default)]
struct Landed {
    exited_before: usize,
    before_uploads: usize,
    uploads_not_committed: usize,
    committed_manifest_behind: usize,
    committed_with_manifest: usize,
}

fn run_args(url: &str) -> Vec<String> {
    ["run", "--dataset", DATASET, "--url", url, "--key", KEY]
        .map(String::from)
        .to_vec()
}

fn spawn(target: &Target, url: &str) -> Child {
    let args = run_args(url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    target
        .cmd(&target.db("runner"), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snapsync starts")
}

/// Where the file store's publish is, read without the library (fast polling): the number of
/// snapshot files and the inodes of latest.json and manifest.json (a put renames a new file
/// into place, so each commit of them changes the inode).
fn file_marks(target: &Target) -> [u64; 3] {
    use std::os::unix::fs::MetadataExt as _;
    let dir = target.dir.path().join("store").join(DATASET);
    let ino = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.ino());
    let snapshots = std::fs::read_dir(dir.join("snapshots")).map_or(0, |d| d.count() as u64);
    [snapshots, ino("latest.json"), ino("manifest.json")]
}

fn normal_run(target: &Target, url: &str) -> crate::common::cli::RunResult {
    let args = run_args(url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::common::cli::to_result(
        target
            .cmd(&target.db("runner"), &args)
            .output()
            .expect("snapsync runs"),
    )
}

async fn object_count(store: &DynStore) -> usize {
    let keys = DatasetKeys::new(store.prefix(), DATASET);
    store.list(&keys.snapshots_dir()).await.unwrap().len()
        + store.list(&keys.deltas_dir()).await.unwrap().len()
}

async fn landed(store: &DynStore, want: &str, objects_before: usize, l: &mut Landed) {
    let keys = DatasetKeys::new(store.prefix(), DATASET);
    let latest = store
        .head(&keys.latest())
        .await
        .unwrap()
        .and_then(|m| Entry::from_metadata(&m.metadata));
    let manifest_last = snapsync::remote::read_manifest(store, &keys)
        .await
        .unwrap()
        .and_then(|m| m.last().cloned());
    match latest {
        Some(e) if e.sha256 == want => {
            if manifest_last.as_ref() == Some(&e) {
                l.committed_with_manifest += 1;
            } else {
                l.committed_manifest_behind += 1;
            }
        }
        _ if object_count(store).await > objects_before => l.uploads_not_committed += 1,
        _ => l.before_uploads += 1,
    }
}

async fn kill_trials(mut target: Target) {
    let seed = env::number::<u64>("SNAPSYNC_KILL_SEED", 20_261_124);
    let trials = env::number::<usize>("SNAPSYNC_KILL_TRIALS", 16);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let proxy = if let Some(endpoint) = target.s3_endpoint() {
        let proxy = Proxy::start(endpoint);
        proxy.set_delay_each(Duration::from_millis(40));
        target.set_endpoint(&proxy.endpoint());
        Some(proxy)
    } else {
        None
    };
    let server = HttpServer::start();
    let url = server.url("/d.json");
    let store = target.store().await;
    let t0 = Instant::now();

    // Calibration: version 1, then a changed run, timed (and its S3 requests counted).
    let mut tag = 1;
    server.set("/d.json", data(tag, RECORDS));
    let r = normal_run(&target, &url);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    tag += 1;
    server.set("/d.json", data(tag, RECORDS));
    if let Some(p) = &proxy {
        p.reset([]);
    }
    let started = Instant::now();
    let r = normal_run(&target, &url);
    let total = started.elapsed().as_millis() as u64;
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let requests = proxy.as_ref().map_or(0, |p| p.count());
    if let (Some(p), Some(_)) = (&proxy, std::env::var_os("SNAPSYNC_KILL_VERBOSE")) {
        let steps: Vec<String> = p.seen().iter().map(|s| s.label()).collect();
        eprintln!("steps of a changed run: {steps:#?}");
    }
    let mut expected = 2u64;

    let mut l = Landed::default();
    for trial in 0..trials {
        tag += 1;
        let body = data(tag, RECORDS);
        let want = sha_of(&body, KEY);
        server.set("/d.json", body);
        let objects_before = object_count(&store).await;
        let marks_before = file_marks(&target);
        if let Some(p) = &proxy {
            p.reset([]);
        }
        let mut child = spawn(&target, &url);
        let t = Instant::now();
        // Even trials: a uniform moment of the whole run. Odd ones: a moment just after the
        // publish reached a random step (S3: request k of the run, each held 40 ms by the
        // proxy; file store: the new snapshot, the commit of latest.json, or the manifest
        // appearing, each a few ms apart at most).
        let what = if trial % 2 == 0 {
            let at = rng.random_range(0..=total);
            std::thread::sleep(Duration::from_millis(at));
            format!("at {at} ms")
        } else {
            let (step, jitter_us) = match &proxy {
                Some(_) => (rng.random_range(0..requests), rng.random_range(0..60_000)),
                None => (rng.random_range(0..3), rng.random_range(0..=1_500)),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let reached = match &proxy {
                    Some(p) => p.count() > step,
                    None => file_marks(&target)[step] != marks_before[step],
                };
                if reached || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            std::thread::sleep(Duration::from_micros(jitter_us));
            format!(
                "{jitter_us} us after step {step} ({} ms)",
                t.elapsed().as_millis()
            )
        };
        if child.try_wait().unwrap().is_some() {
            l.exited_before += 1;
        } else {
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
            landed(&store, &want, objects_before, &mut l).await;
        }
        if std::env::var_os("SNAPSYNC_KILL_VERBOSE").is_some() {
            eprintln!("trial {trial}: kill {what}: {l:?}");
        }
        let r = normal_run(&target, &url);
        assert_eq!(
            r.code, 0,
            "trial {trial} (seed {seed}, kill {what}): the run after the kill failed: {r:?}"
        );
        // not-modified: the killed run had finished, the source's ETag recorded included.
        assert!(
            ["changed", "unchanged", "not-modified"].contains(&r.outcome()),
            "trial {trial}: {r:?}"
        );
        expected += 1;
        let checked = check(&store, DATASET, KEY).await.unwrap_or_else(|e| {
            panic!("trial {trial} (seed {seed}, kill {what}): inconsistent history: {e}")
        });
        assert_eq!(
            (checked.len(), checked.last_sha()),
            (expected, Some(want.as_str())),
            "trial {trial} (seed {seed}, kill {what}): a version was lost or duplicated"
        );
    }
    eprintln!(
        "kills {}: {trials} SIGKILL trials (seed {seed}; a changed run takes {total} ms), 0 inconsistent histories; \
         landed: {} before any upload, {} after uploads but before the commit, {} after the commit with the manifest behind, \
         {} after the manifest, {} after the process had exited; {expected} versions; {:.1}s",
        target.kind(),
        l.before_uploads,
        l.uploads_not_committed,
        l.committed_manifest_behind,
        l.committed_with_manifest,
        l.exited_before,
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_publish_file_store() {
    kill_trials(Target::file()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_publish_s3() {
    let Some(target) = Target::s3("kills") else {
        return;
    };
    kill_trials(target).await;
}

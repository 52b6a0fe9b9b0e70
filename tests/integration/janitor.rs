//! Janitors beside writers (issue 14, item 1): `prune` and the orphan sweep of
//! `verify --repair --prune-orphans` loop on a store while a writer publishes into it, on both
//! stores. The writers are the ones whose objects look old by the dates in their keys: `replay`
//! of dated files from 2021, and a `run` whose clock is two hours behind the janitor's; plus a
//! plain `run`. Afterwards every version must be there and restorable: 0 versions lost.
//!
//! A janitor that judged an orphan's age by the time in its key deleted the in-flight snapshot
//! and delta of each replayed version (29 of 30 versions unrestorable). The sweep now judges by
//! the store's own modification time and re-reads what the history names after listing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::env;
use crate::common::history::sha_of;
use crate::common::machine::{self, any_shrink, country_key as key, deps, http_source};
use crate::common::manifest::plant_orphan;
use bytes::Bytes;
use serde_json::{json, Value};
use snapsync::clock::{Clock, SystemClock};
use snapsync::history::{self, Retention, Target};
use snapsync::keys::DatasetKeys;
use snapsync::remote;
use snapsync::store::{DynStore, PutMode, PutOptions};
use snapsync::sync::{self, DatasetConfig, Outcome, RunOptions};
use time::OffsetDateTime;

const DATASET: &str = "covid";
/// Versions each writer publishes (`scripts/soak.sh` sets more).
fn versions() -> u64 {
    env::number::<u64>("SNAPSYNC_JANITOR_VERSIONS", 30)
}

/// Version `n` of a small dataset, re-sorted every day like the real file.
fn day(n: u64) -> Value {
    let mut recs: Vec<Value> = (0..40u64)
        .map(|c| json!({"country": {"key": format!("c{c:02}")}, "cases": (c * 31 + n * 7) % 97, "day": n}))
        .collect();
    recs.sort_by_key(|r| r["cases"].as_u64());
    Value::Array(recs)
}

fn dataset(url: String) -> DatasetConfig {
    DatasetConfig {
        guards: any_shrink(),
        gzip_level: 1,
        ..machine::dataset(DATASET, &url)
    }
}

/// A writer's clock two hours behind the janitor's.
struct Behind;

impl Clock for Behind {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() - time::Duration::hours(2)
    }
}

#[derive(Debug, Clone, Copy)]
enum Writer {
    Replay,
    Run,
    SkewedRun,
}

/// Publishes versions 1..=versions(); returns each version's canonical sha256.
async fn write(store: DynStore, kind: Writer) -> Vec<String> {
    let clock: Arc<dyn Clock> = match kind {
        Writer::Replay => return replay_days(&store, versions()).await,
        Writer::SkewedRun => Arc::new(Behind),
        Writer::Run => Arc::new(SystemClock),
    };
    let work = tempfile::tempdir().unwrap();
    let deps = deps(store.clone(), http_source(None), clock, work.path()).await;
    let file = work.path().join("stats.json");
    let ds = dataset(format!("file://{}", file.display()));
    let mut shas = Vec::new();
    for n in 1..=versions() {
        let text = serde_json::to_vec(&day(n)).unwrap();
        shas.push(sha_of(&text, "/country/key"));
        std::fs::write(&file, text).unwrap();
        let r = sync::run_dataset(&deps, &ds, RunOptions::default()).await;
        assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    }
    shas
}

async fn janitor_beside(kind: &str, writer: Writer) {
    let Some(b) = crate::common::store::under_test(kind, "janitor").await else {
        return;
    };
    let store = b.store.clone();
    let keys = DatasetKeys::new(store.prefix(), DATASET);
    let done = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let deleted = Arc::new(AtomicUsize::new(0));
    let janitor = {
        let (store, keys, done, passes, deleted) = (
            store.clone(),
            keys.clone(),
            done.clone(),
            passes.clone(),
            deleted.clone(),
        );
        tokio::spawn(async move {
            let retention = Retention {
                daily: 7,
                monthly: 3,
            };
            let mut errors = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let now = OffsetDateTime::now_utc();
                match history::prune(&store, &keys, retention, now, false).await {
                    Ok(o) => {
                        deleted.fetch_add(o.deleted, Ordering::SeqCst);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                match history::sweep_orphans(&store, &keys, now, false).await {
                    Ok(s) => {
                        deleted.fetch_add(s.deleted.len(), Ordering::SeqCst);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                passes.fetch_add(1, Ordering::SeqCst);
            }
            errors
        })
    };
    let shas = write(store.clone(), writer).await;
    done.store(true, Ordering::SeqCst);
    let errors = janitor.await.unwrap();

    // Leftovers of a lost race, two hours old by the store's clock, still go afterwards.
    let m = remote::read_manifest(&store, &keys).await.unwrap().unwrap();
    let stray = format!(
        "{}2021-01-01T000000Z-0123456789ab.json.gz",
        keys.snapshots_dir()
    );
    plant_orphan(&store, &stray, &m.versions[0]).await;
    let later = OffsetDateTime::now_utc() + time::Duration::hours(2);
    let sweep = history::sweep_orphans(&store, &keys, later, false)
        .await
        .unwrap();
    assert_eq!(sweep.deleted, [stray], "{sweep:?}");

    let report = history::verify(&store, &keys, &key()).await.unwrap();
    let m = remote::read_manifest(&store, &keys).await.unwrap().unwrap();
    let mut lost = Vec::new();
    for (i, sha) in shas.iter().enumerate() {
        let v = i as u64 + 1;
        let ok = match history::resolve_target(&m, Target::Version(v)) {
            Ok(e) if &e.sha256 == sha => history::restore(&store, &m, e)
                .await
                .is_ok_and(|(d, _)| d.sha256() == sha),
            _ => false,
        };
        if !ok {
            lost.push(v);
        }
    }
    let passes = passes.load(Ordering::SeqCst);
    eprintln!(
        "janitor beside {writer:?} on {kind}: {} versions, {} lost; {passes} janitor passes, {} objects deleted, {} janitor errors {:?}",
        shas.len(),
        lost.len(),
        deleted.load(Ordering::SeqCst),
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(lost.is_empty(), "versions lost: {lost:?}; {report:?}");
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.versions, shas.len());
    assert!(passes >= 3, "the janitor ran only {passes} times");
    // Snapshots were pruned meanwhile: the janitor really worked beside the writer.
    assert!(m.versions.iter().any(|e| e.pruned), "nothing was pruned");
}

#[rstest::rstest]
#[case::replay_file(Writer::Replay, "file")]
#[case::replay_s3(Writer::Replay, "s3")]
#[case::run_file(Writer::Run, "file")]
#[case::run_s3(Writer::Run, "s3")]
#[case::clock_behind_file(Writer::SkewedRun, "file")]
#[case::clock_behind_s3(Writer::SkewedRun, "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_janitor_beside_a_writer_loses_no_version(#[case] writer: Writer, #[case] kind: &str) {
    janitor_beside(kind, writer).await;
}

/// Replays `n` versions (one a day from 2021-03-01, as dated files) into `store`; returns each
/// version's canonical sha256.
async fn replay_days(store: &DynStore, n: u64) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let days = work.path().join("days");
    std::fs::create_dir(&days).unwrap();
    let mut shas = Vec::new();
    for d in 1..=n {
        let date =
            time::macros::datetime!(2021-03-01 0:00 UTC) + time::Duration::days(d as i64 - 1);
        let text = serde_json::to_vec(&day(d)).unwrap();
        shas.push(sha_of(&text, "/country/key"));
        std::fs::write(
            days.join(format!("{}.json", &snapsync::keys::rfc3339(date)[..10])),
            text,
        )
        .unwrap();
    }
    let deps = deps(
        store.clone(),
        http_source(None),
        Arc::new(SystemClock),
        work.path(),
    )
    .await;
    let files = history::date_files(&history::collect_files(&[days]).unwrap(), None).unwrap();
    for f in &files {
        let r = history::replay_file(
            &deps,
            &dataset(String::new()),
            f,
            1 << 30,
            RunOptions::default(),
        )
        .await;
        assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    }
    shas
}

/// Files someone else keeps beside the history, all old: a janitor reports them and deletes
/// none, not even one named like a snapshot that lacks snapsync's metadata.
#[rstest::rstest]
#[case::file("file")]
#[case::s3("s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_janitor_deletes_only_what_snapsync_wrote(#[case] kind: &str) {
    let Some(b) = crate::common::store::under_test(kind, "janitor-own").await else {
        return;
    };
    let store = b.store.clone();
    replay_days(&store, 3).await;
    let keys = DatasetKeys::new(store.prefix(), DATASET);
    let foreign = [
        format!("{}NOTES.txt", keys.snapshots_dir()),
        format!("{}backup/old.json.gz", keys.deltas_dir()),
        format!(
            "{}2020-01-01T000000Z-0123456789ab.json.gz",
            keys.snapshots_dir()
        ),
    ];
    for k in &foreign {
        store
            .put(
                k,
                Bytes::from_static(b"mine"),
                PutOptions::json(PutMode::Create),
            )
            .await
            .unwrap();
    }
    // Old by the store's clock: backdated files, or a janitor running well after them.
    let mut now = OffsetDateTime::now_utc();
    match &b.dir {
        Some(dir) => {
            for k in &foreign {
                std::fs::File::options()
                    .write(true)
                    .open(dir.path().join(k))
                    .unwrap()
                    .set_modified((now - time::Duration::days(400)).into())
                    .unwrap();
            }
        }
        None => now += time::Duration::days(2),
    }
    let retention = Retention {
        daily: 1,
        monthly: 0,
    };
    let pruned = history::prune(&store, &keys, retention, now, false)
        .await
        .unwrap();
    let plan = pruned.plan.unwrap();
    assert_eq!(plan.delete_snapshots.len(), 1, "{plan:?}");
    assert!(plan.orphans.deleted.is_empty(), "{plan:?}");
    let mut left_alone = plan.orphans.foreign.clone();
    left_alone.sort();
    let mut want = foreign.to_vec();
    want.sort();
    assert_eq!(left_alone, want);
    for k in &foreign {
        assert!(store.head(k).await.unwrap().is_some(), "{k} was deleted");
    }
    let report = history::verify(&store, &keys, &key()).await.unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.foreign, foreign[..2]);
    assert_eq!(report.orphans, foreign[2..]);
}

/// A symbolic link planted in the store (a dataset's `snapshots/` pointing elsewhere, a link
/// in place of a delta) is never followed: reads, writes, listings and deletions through it
/// are refused or skip it, and what it points at is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_never_follows_a_link_out_of_its_directory() {
    use snapsync::store::file::FileStore;
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside
        .path()
        .join("2021-03-01T000000Z-0123456789ab.json.gz");
    std::fs::write(&victim, b"not yours").unwrap();
    let store: DynStore = Arc::new(FileStore::open(root.path()).unwrap());
    replay_days(&store, 2).await;
    let keys = DatasetKeys::new("", DATASET);
    let snapshots = root.path().join(DATASET).join("snapshots");

    // A link in place of a delta: not listed, not read, not deleted; its target stays.
    let deltas = root.path().join(DATASET).join("deltas");
    let link = deltas.join("2021-02-01T000000Z-0123456789ab.delta.json.gz");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let listed = store.list(&keys.deltas_dir()).await.unwrap();
    assert!(
        listed.iter().all(|e| !e.key.contains("2021-02-01")),
        "{listed:?}"
    );
    let key = format!(
        "{}2021-02-01T000000Z-0123456789ab.delta.json.gz",
        keys.deltas_dir()
    );
    let err = store.get(&key).await.unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert!(store.delete(&key).await.is_err());
    let later = OffsetDateTime::now_utc() + time::Duration::days(2);
    history::sweep_orphans(&store, &keys, later, false)
        .await
        .unwrap();
    assert!(
        link.symlink_metadata().is_ok(),
        "the link itself was removed"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
    std::fs::remove_file(&link).unwrap();

    // `snapshots/` replaced by a link to another directory: every janitor refuses.
    let moved = root.path().join("snapshots-real");
    std::fs::rename(&snapshots, &moved).unwrap();
    std::os::unix::fs::symlink(outside.path(), &snapshots).unwrap();
    let retention = Retention {
        daily: 0,
        monthly: 0,
    };
    let err = history::prune(&store, &keys, retention, later, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    let err = history::sweep_orphans(&store, &keys, later, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    let put = store
        .put(
            &format!(
                "{}2021-04-01T000000Z-0123456789ab.json.gz",
                keys.snapshots_dir()
            ),
            Bytes::from_static(b"x"),
            PutOptions::json(PutMode::Create),
        )
        .await;
    assert!(put.is_err(), "a put went through the link");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");

    // The dataset directory itself a link: refused too.
    std::fs::remove_file(&snapshots).unwrap();
    std::fs::rename(&moved, &snapshots).unwrap();
    let real = root.path().join("covid-real");
    std::fs::rename(root.path().join(DATASET), &real).unwrap();
    std::os::unix::fs::symlink(&real, root.path().join(DATASET)).unwrap();
    let err = store.head(&keys.latest()).await.unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

/// A manifest two versions behind latest.json (crashes, or a repair not yet run): which objects
/// the missing versions committed cannot be told from other attempts' of the same data, so no
/// orphan is deleted until `verify --repair` has caught the manifest up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_janitor_refuses_while_the_manifest_is_far_behind() {
    let b = crate::common::store::under_test("file", "janitor-behind")
        .await
        .unwrap();
    let store = b.store.clone();
    replay_days(&store, 4).await;
    let keys = DatasetKeys::new(store.prefix(), DATASET);
    let (bytes, meta) = store.get(&keys.manifest()).await.unwrap().unwrap();
    let mut m: snapsync::manifest::Manifest = serde_json::from_slice(&bytes).unwrap();
    m.versions.truncate(2);
    store
        .put(
            &keys.manifest(),
            Bytes::from(serde_json::to_vec(&m).unwrap()),
            PutOptions::json(PutMode::Update(meta.etag)),
        )
        .await
        .unwrap();
    let later = OffsetDateTime::now_utc() + time::Duration::days(2);
    let err = history::sweep_orphans(&store, &keys, later, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is 2 versions behind latest.json"), "{err}");
    let report = history::verify(&store, &keys, &key()).await.unwrap();
    assert_eq!(report.versions, 4, "{report:?}");
    assert!(
        report.orphans.is_empty(),
        "nothing deleted, nothing orphaned: {report:?}"
    );
}

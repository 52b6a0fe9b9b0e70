//! Consumers and history (issue 7) on both stores: a replayed history of dated files, restored
//! at every version and pulled from every version; pull choosing between deltas, the gzip
//! snapshot and latest.json by their sizes; prune then verify; tampered and missing objects
//! caught by verify, pull and restore; an interrupted pull; verify --repair. Then the commands
//! end to end on the file store (replay, pull, restore, verify, prune, diff).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::cli::{sha256_hex, snapsync_gen, Sandbox};
use crate::common::history::sha_of;
use crate::common::machine::{any_shrink, country_key as key, dataset, deps, http_source};
use crate::common::manifest::plant_orphan;
use crate::common::store::{Intercept, StoreUnderTest as Backend};
use bytes::Bytes;
use serde_json::{json, Value};
use snapsync::canonical::Document;
use snapsync::consumer::{self, Via};
use snapsync::db::Db;
use snapsync::gzip;
use snapsync::history::{self, Fix, Retention, Target};
use snapsync::keys::DatasetKeys;
use snapsync::manifest::Manifest;
use snapsync::remote;
use snapsync::source::{HttpSource, SourceOptions};
use snapsync::store::file::FileStore;
use snapsync::store::{DynStore, PutMode, PutOptions, Store};
use snapsync::sync::{self, DatasetConfig, Deps, Outcome, RunOptions};
use snapsync::Result;
use time::macros::datetime;

const DATASET: &str = "covid";

/// Day `n` (1-based) of a small covid-shaped dataset: a country joins every 10 days, one
/// leaves on day 30, every day adds a date to each country and revises an older value. Each
/// record also carries ~1 kB that never changes and compresses poorly, so that, as with the
/// real file, a day's delta is much smaller than the gzip snapshot and a pull from a recent
/// version goes through deltas.
fn day(n: u64) -> Value {
    let countries = 8 + n / 10;
    let recs: Vec<Value> = (0..countries)
        .filter(|c| !(n >= 30 && *c == 3))
        .map(|c| {
            let mut dates = serde_json::Map::new();
            for d in 1..=n {
                let revised = u64::from(d == n / 2 && c % 3 == n % 3);
                dates.insert(
                    format!("2020-{:02}-{:02}", 1 + (d - 1) / 28, 1 + (d - 1) % 28),
                    json!({"new": {"cases": (c * 7 + d * 3) % 11 + revised, "deaths": d % 2}}),
                );
            }
            let notes: Vec<String> = (0..60).map(|i| format!("{:016x}", mix(c * 1000 + i))).collect();
            json!({"country": {"key": format!("c{c:02}"), "name": format!("Country {c}")}, "dates": dates, "notes": notes})
        })
        .collect();
    Value::Array(recs)
}

/// splitmix64's finalizer: digits gzip cannot squeeze much.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes days 1..=n as `DIR/YYYY-MM-DD.json` (one a day from 2021-01-01, not canonical:
/// pretty-printed) and returns their paths and canonical hashes.
fn write_days(dir: &Path, n: u64) -> Vec<(PathBuf, String)> {
    (1..=n)
        .map(|d| {
            let date = datetime!(2021-01-01 0:00 UTC) + time::Duration::days(d as i64 - 1);
            let path = dir.join(format!("{}.json", &snapsync::keys::rfc3339(date)[..10]));
            let text = serde_json::to_vec_pretty(&day(d)).unwrap();
            std::fs::write(&path, &text).unwrap();
            let sha = sha_of(&text, "/country/key");
            (path, sha)
        })
        .collect()
}

/// A history replayed from `n` dated files, with what it needs to check it.
struct History {
    store: DynStore,
    keys: DatasetKeys,
    /// Canonical sha256 of day 1..=n (index 0 is version 1).
    shas: Vec<String>,
    db: Db,
    work: tempfile::TempDir,
}

fn dataset_config() -> DatasetConfig {
    DatasetConfig {
        guards: any_shrink(),
        ..dataset(DATASET, "")
    }
}

async fn replayed(store: DynStore, n: u64) -> History {
    let work = tempfile::tempdir().unwrap();
    let days = work.path().join("days");
    std::fs::create_dir(&days).unwrap();
    let written = write_days(&days, n);
    let deps = deps(
        store.clone(),
        http_source(None),
        Arc::new(snapsync::clock::SystemClock),
        work.path(),
    )
    .await;
    let db = deps.db.clone();
    let paths = history::collect_files(&[days]).unwrap();
    let files = history::date_files(&paths, None).unwrap();
    assert_eq!(files.len() as u64, n);
    for f in &files {
        let r =
            history::replay_file(&deps, &dataset_config(), f, 1 << 30, RunOptions::default()).await;
        assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    }
    History {
        keys: DatasetKeys::new(store.prefix(), DATASET),
        store,
        shas: written.into_iter().map(|(_, s)| s).collect(),
        db,
        work,
    }
}

impl History {
    async fn manifest(&self) -> Manifest {
        remote::read_manifest(&self.store, &self.keys)
            .await
            .unwrap()
            .unwrap()
    }
    async fn verify(&self) -> history::VerifyReport {
        history::verify(&self.store, &self.keys, &key())
            .await
            .unwrap()
    }
    async fn restore(&self, version: u64) -> Result<Document> {
        let m = self.manifest().await;
        let e = history::resolve_target(&m, Target::Version(version))
            .unwrap()
            .clone();
        history::restore(&self.store, &m, &e).await.map(|(d, _)| d)
    }
    /// A local copy at `version` (written the way pull writes it, without a sidecar).
    async fn local_copy(&self, version: u64, name: &str) -> PathBuf {
        let out = self.work.path().join(name);
        let doc = self.restore(version).await.unwrap();
        std::fs::write(&out, doc.bytes()).unwrap();
        let _ = std::fs::remove_file(consumer::sidecar_path(&out));
        out
    }
    async fn pull(&self, out: &Path) -> Result<consumer::PullReport> {
        consumer::pull(&self.store, &self.keys, DATASET, out).await
    }
    fn last(&self) -> &str {
        self.shas.last().unwrap()
    }
}

/// Rewrites a stored gzip object through the store (as someone with write access could),
/// keeping its metadata: only the content's hash can tell.
async fn tamper(store: &DynStore, key: &str, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let (raw, meta) = store.get(key).await.unwrap().unwrap();
    let body = f(gzip::gunzip(&raw, 1 << 30, 0).unwrap());
    let opts = PutOptions::gzip_json(PutMode::Overwrite).with_metadata(meta.metadata);
    store
        .put(key, Bytes::from(gzip::gzip(&body, 3)), opts)
        .await
        .unwrap();
}

/// Changes the first digit of a JSON text (still valid JSON, different content).
fn flip_a_digit(mut body: Vec<u8>) -> Vec<u8> {
    let i = body.iter().position(u8::is_ascii_digit).unwrap();
    body[i] = if body[i] == b'7' { b'8' } else { b'7' };
    body
}

/// Adds an operation to a delta's patch (the delta still parses and applies).
fn extra_patch_op(body: Vec<u8>) -> Vec<u8> {
    let mut d: Value = serde_json::from_slice(&body).unwrap();
    d["patch"]
        .as_array_mut()
        .unwrap()
        .push(json!({"op": "add", "path": "/0/tampered", "value": true}));
    serde_json::to_vec(&d).unwrap()
}

on_both_stores!(
    name = "history", worker_threads = 2;
    replayed_history_restores_and_pulls_from_every_version,
    pull_downloads_the_gzip_snapshot_when_the_deltas_outweigh_it,
    prune_keeps_every_version_restorable_and_verify_passes,
    tampered_delta_is_caught_by_verify_and_pull_falls_back_to_latest,
    tampered_snapshot_is_caught_by_verify_and_restore_uses_an_older_one,
    missing_delta_is_caught_and_pull_falls_back,
    verify_repair_restores_the_manifest_and_the_database,
    a_store_written_with_second_precision_is_extended_and_still_verifies,
);

/// A store as releases before millisecond precision wrote it (see its README): versions 1-3
/// replayed from days 1-3 (2021-01-01..03), `created_at` like `2021-01-03T00:00:00Z`, keys like
/// `covid/snapshots/2021-01-03T000000Z-<sha12>.json.gz`, as a file store with no prefix.
const SECOND_PRECISION_STORE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/second-precision-store"
);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Copies the fixture's objects into `store`, under its prefix (the keys the manifest and the
/// metadata name included), bytes and metadata otherwise as they are.
async fn load_second_precision_store(store: &DynStore) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(Path::new(SECOND_PRECISION_STORE), copy.path());
    let fixture = FileStore::open(copy.path()).unwrap();
    let under = |key: &str| match store.prefix() {
        "" => key.to_string(),
        prefix => format!("{prefix}/{key}"),
    };
    let objects = fixture.list("").await.unwrap();
    assert!(objects.len() >= 7, "{objects:?}");
    for obj in objects {
        let (mut body, meta) = fixture.get(&obj.key).await.unwrap().unwrap();
        let mut metadata = meta.metadata;
        for name in [snapsync::keys::META_SNAPSHOT, snapsync::keys::META_DELTA] {
            if let Some(v) = metadata.get_mut(name) {
                *v = under(v);
            }
        }
        if obj.key.ends_with(snapsync::keys::MANIFEST) {
            let mut m: Manifest = serde_json::from_slice(&body).unwrap();
            for e in &mut m.versions {
                e.snapshot = under(&e.snapshot);
                e.delta = e.delta.as_deref().map(under);
            }
            body = Bytes::from(serde_json::to_vec_pretty(&m).unwrap());
        }
        let opts = match meta.content_encoding.as_deref() {
            Some("gzip") => PutOptions::gzip_json(PutMode::Create),
            _ => PutOptions::json(PutMode::Create),
        };
        store
            .put(&under(&obj.key), body, opts.with_metadata(metadata))
            .await
            .unwrap();
    }
}

/// Issue 13: `created_at` and keys went from second to millisecond precision. A store written
/// before is read (latest, manifest, deltas), extended by runs and by a resumed replay, and
/// restored by time, pruned and verified across both precisions.
async fn a_store_written_with_second_precision_is_extended_and_still_verifies(b: Backend) {
    load_second_precision_store(&b.store).await;
    let keys = DatasetKeys::new(b.store.prefix(), DATASET);
    let old = remote::read_manifest(&b.store, &keys)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.versions.len(), 3);
    assert_eq!(old.versions[2].created_at, "2021-01-03T00:00:00Z");
    assert!(
        old.versions[2]
            .snapshot
            .contains("/snapshots/2021-01-03T000000Z-"),
        "{:?}",
        old.versions[2]
    );
    let report = history::verify(&b.store, &keys, &key()).await.unwrap();
    assert!(report.is_sound() && report.versions == 3, "{report:?}");

    let work = tempfile::tempdir().unwrap();
    let (db, _) = Db::open(&work.path().join("state.db")).await.unwrap();
    let deps_at = |clock: Arc<dyn snapsync::clock::Clock>| Deps {
        store: b.store.clone(),
        db: db.clone(),
        source: Arc::new(HttpSource::new(SourceOptions::default()).unwrap()),
        clock,
    };
    // A run in the very second of the last old version publishes a millisecond after it.
    let day10 = work.path().join("day10.json");
    std::fs::write(&day10, serde_json::to_vec(&day(10)).unwrap()).unwrap();
    let ds = DatasetConfig {
        url: format!("file://{}", day10.display()),
        ..dataset_config()
    };
    let deps = deps_at(Arc::new(snapsync::clock::FixedClock(
        datetime!(2021-01-03 0:00 UTC),
    )));
    let r = sync::run_dataset(&deps, &ds, RunOptions::default()).await;
    assert_eq!((r.outcome, r.version), (Outcome::Changed, Some(4)), "{r:?}");

    // Replaying days 1-6 resumes after the newest version: days 4-6 are versions 5-7.
    let days = work.path().join("days");
    std::fs::create_dir(&days).unwrap();
    let written = write_days(&days, 6);
    let files = history::date_files(&history::collect_files(&[days]).unwrap(), None).unwrap();
    let after = remote::latest_created_at(&b.store, &keys).await.unwrap();
    assert_eq!(after, Some(datetime!(2021-01-03 00:00:00.001 UTC)));
    let (files, skipped) = history::files_after(files, after);
    assert_eq!((files.len(), skipped), (3, 3));
    let deps = deps_at(Arc::new(snapsync::clock::SystemClock));
    for f in &files {
        let r =
            history::replay_file(&deps, &dataset_config(), f, 1 << 30, RunOptions::default()).await;
        assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    }

    let m = remote::read_manifest(&b.store, &keys)
        .await
        .unwrap()
        .unwrap();
    let created: Vec<&str> = m.versions.iter().map(|e| e.created_at.as_str()).collect();
    assert_eq!(
        created,
        [
            "2021-01-01T00:00:00Z",
            "2021-01-02T00:00:00Z",
            "2021-01-03T00:00:00Z",
            "2021-01-03T00:00:00.001Z",
            "2021-01-04T00:00:00.000Z",
            "2021-01-05T00:00:00.000Z",
            "2021-01-06T00:00:00.000Z",
        ]
    );
    assert!(m.versions[3]
        .snapshot
        .contains("/snapshots/2021-01-03T000000.001Z-"));
    let shas: Vec<&str> = m.versions.iter().map(|e| e.sha256.as_str()).collect();
    assert_eq!(
        shas[..3],
        old.versions
            .iter()
            .map(|e| e.sha256.as_str())
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(
        shas[4..],
        written[3..]
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()[..]
    );
    let report = history::verify(&b.store, &keys, &key()).await.unwrap();
    assert!(
        report.is_sound() && report.versions == 7 && report.orphans.is_empty(),
        "{report:?}"
    );

    // Restore by time, on either side of the change of precision.
    for (at, version) in [
        (datetime!(2021-01-02 12:00 UTC), 2),
        (datetime!(2021-01-03 0:00 UTC), 3),
        (datetime!(2021-01-03 00:00:00.001 UTC), 4),
        (datetime!(2021-01-05 12:00 UTC), 6),
    ] {
        let e = history::resolve_target(&m, Target::At(at)).unwrap();
        assert_eq!(e.version, version, "at {at}");
        let (doc, _) = history::restore(&b.store, &m, e).await.unwrap();
        assert_eq!(doc.sha256(), e.sha256);
    }

    // Orphans of both precisions: a prune judges them by the store's clock, not by the dates
    // in their keys (years old here), so at first they are young and stay.
    let old_orphan = format!(
        "{}2021-01-02T000000Z-0123456789ab.json.gz",
        keys.snapshots_dir()
    );
    let young_orphan = format!(
        "{}2021-01-06T235959.999Z-0123456789ab.delta.json.gz",
        keys.deltas_dir()
    );
    for k in [&old_orphan, &young_orphan] {
        plant_orphan(&b.store, k, &m.versions[3]).await;
    }
    let retention = Retention {
        daily: 2,
        monthly: 0,
    };
    let now = time::OffsetDateTime::now_utc();
    let done = history::prune(&b.store, &keys, retention, now, false)
        .await
        .unwrap();
    let plan = done.plan.unwrap();
    assert_eq!(plan.keep.keys().copied().collect::<Vec<_>>(), [1, 6, 7]);
    assert!(plan.orphans.deleted.is_empty(), "{plan:?}");
    assert_eq!(
        plan.orphans.young,
        [old_orphan.clone(), young_orphan.clone()]
    );
    let m = remote::read_manifest(&b.store, &keys)
        .await
        .unwrap()
        .unwrap();
    for e in &m.versions {
        let (doc, _) = history::restore(&b.store, &m, e).await.unwrap();
        assert_eq!(doc.sha256(), e.sha256, "version {}", e.version);
    }
    // Two hours on (by the store's clock), both go.
    let later = now + time::Duration::hours(2);
    let done = history::prune(&b.store, &keys, retention, later, false)
        .await
        .unwrap();
    assert_eq!(
        done.plan.unwrap().orphans.deleted,
        [old_orphan, young_orphan]
    );
    let report = history::verify(&b.store, &keys, &key()).await.unwrap();
    assert!(report.is_sound() && report.orphans.is_empty(), "{report:?}");
}

/// 60 versions on the file store (the test); a third of that on S3 to stay fast.
fn versions(kind: &str) -> u64 {
    if kind == "file" {
        60
    } else {
        20
    }
}

async fn replayed_history_restores_and_pulls_from_every_version(b: Backend) {
    let n = versions(b.kind);
    let h = replayed(b.store, n).await;
    let m = h.manifest().await;
    assert_eq!(m.versions.len() as u64, n);
    assert_eq!(
        m.versions[9].created_at, "2021-01-10T00:00:00.000Z",
        "created_at is the recorded date"
    );
    let report = h.verify().await;
    assert!(report.is_sound() && report.orphans.is_empty(), "{report:?}");
    assert_eq!(report.versions as u64, n);
    for v in 1..=n {
        let doc = h.restore(v).await.unwrap();
        assert_eq!(
            doc.sha256(),
            h.shas[v as usize - 1],
            "restore of version {v}"
        );
    }
    // Pull from every version (and from nothing) to the latest: the route of each.
    let mut routes = Vec::new();
    for v in 0..=n {
        let out = if v == 0 {
            h.work.path().join("fresh.json")
        } else {
            h.local_copy(v, &format!("copy-{v}.json")).await
        };
        let r = h.pull(&out).await.unwrap();
        assert_eq!(r.sha256, h.last(), "pull from version {v}");
        assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), h.last());
        assert!(r.warnings.is_empty(), "{r:?}");
        assert!(r.bytes > 0);
        match r.via {
            Via::Latest => panic!("the newest snapshot exists and is smaller: {r:?}"),
            Via::UpToDate => assert_eq!(v, n),
            via => routes.push(via),
        }
        if v > 0 && v < n {
            assert_eq!(r.from_version, Some(v));
        }
        // The sidecar remembers the version; the next pull downloads nothing but the manifest.
        let side: consumer::Sidecar =
            serde_json::from_slice(&std::fs::read(consumer::sidecar_path(&out)).unwrap()).unwrap();
        assert_eq!((side.version, side.sha256.as_str()), (n, h.last()));
        let again = h.pull(&out).await.unwrap();
        assert_eq!(again.via, Via::UpToDate);
    }
    // Old versions (and none) download the snapshot, recent ones catch up by deltas, and the
    // sum of the deltas grows with the distance: one switch from one route to the other.
    let by_snapshot = routes.iter().take_while(|v| **v == Via::Snapshot).count();
    assert!(
        by_snapshot >= 2
            && routes.len() - by_snapshot >= 5
            && routes[by_snapshot..].iter().all(|v| *v == Via::Deltas),
        "{routes:?}"
    );
}

/// Pull weighs the deltas against the newest gzip snapshot, not against latest.json alone:
/// from a version whose deltas are heavier than the snapshot but lighter than latest.json it
/// downloads the snapshot (and nothing else); one version later the deltas win. With the
/// snapshot gone it falls back to latest.json.
async fn pull_downloads_the_gzip_snapshot_when_the_deltas_outweigh_it(b: Backend) {
    let h = replayed(b.store, 20).await;
    let m = h.manifest().await;
    let newest = m.last().unwrap().clone();
    let latest_size = h.store.head(&h.keys.latest()).await.unwrap().unwrap().size;
    let manifest_size = h
        .store
        .get(&h.keys.manifest())
        .await
        .unwrap()
        .unwrap()
        .0
        .len() as u64;
    let deltas_after = |v: u64| -> u64 {
        m.versions
            .iter()
            .filter(|e| e.version > v)
            .map(|e| e.delta_bytes.unwrap())
            .sum()
    };
    // The newest version whose deltas to the end weigh at least the snapshot.
    let v = (1..newest.version)
        .rev()
        .find(|&v| deltas_after(v) >= newest.snapshot_bytes)
        .expect("the fixture's deltas outweigh its snapshot from some version on");
    assert!(
        deltas_after(v) < latest_size,
        "the fixture puts the snapshot between: deltas {} snapshot {} latest.json {latest_size}",
        deltas_after(v),
        newest.snapshot_bytes
    );

    let out = h.local_copy(v, "between.json").await;
    let r = h.pull(&out).await.unwrap();
    assert_eq!(
        (r.via, r.planned, r.from_version, r.deltas_applied),
        (Via::Snapshot, Via::Snapshot, Some(v), 0),
        "{r:?}"
    );
    assert_eq!(
        (
            r.costs.deltas_bytes,
            r.costs.snapshot_bytes,
            r.costs.latest_bytes
        ),
        (
            Some(deltas_after(v)),
            Some(newest.snapshot_bytes),
            latest_size
        )
    );
    assert_eq!(
        r.bytes,
        manifest_size + newest.snapshot_bytes,
        "the manifest and the snapshot, nothing else: {r:?}"
    );
    assert!(
        r.warnings.is_empty() && r.reason.contains("not smaller than the gzip snapshot"),
        "{r:?}"
    );
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), h.last());

    // One version later the deltas are lighter than the snapshot.
    let out = h.local_copy(v + 1, "after.json").await;
    let r = h.pull(&out).await.unwrap();
    assert_eq!(
        (r.via, r.deltas_applied),
        (Via::Deltas, (newest.version - v - 1) as usize),
        "{r:?}"
    );
    assert_eq!(r.bytes, manifest_size + deltas_after(v + 1));
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), h.last());

    // The snapshot gone (a store someone pruned by hand): latest.json, with a warning.
    h.store.delete(&newest.snapshot).await.unwrap();
    let out = h.local_copy(v, "gone.json").await;
    let r = h.pull(&out).await.unwrap();
    assert_eq!((r.via, r.planned), (Via::Latest, Via::Snapshot), "{r:?}");
    assert!(
        r.warnings.len() == 1
            && r.warnings[0].contains(&newest.snapshot)
            && r.warnings[0].contains("latest.json instead"),
        "{r:?}"
    );
    assert_eq!(r.bytes, manifest_size + latest_size);
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), h.last());
}

async fn prune_keeps_every_version_restorable_and_verify_passes(b: Backend) {
    let n = versions(b.kind);
    let h = replayed(b.store, n).await;
    let retention = Retention {
        daily: 3,
        monthly: 1,
    };
    let now = datetime!(2026-01-01 0:00 UTC);
    let dry = history::prune(&h.store, &h.keys, retention, now, true)
        .await
        .unwrap();
    let plan = dry.plan.unwrap();
    assert_eq!(dry.deleted, 0);
    assert_eq!(
        h.manifest()
            .await
            .versions
            .iter()
            .filter(|e| e.pruned)
            .count(),
        0
    );
    // Base, the last 3 days (which include the newest and the last month's end), the month
    // before's end.
    let kept: Vec<u64> = plan.keep.keys().copied().collect();
    assert_eq!(kept.first(), Some(&1));
    assert!(kept.contains(&n) && kept.contains(&(n - 2)));
    let done = history::prune(&h.store, &h.keys, retention, now, false)
        .await
        .unwrap();
    assert_eq!(done.deleted, n as usize - kept.len());
    let m = h.manifest().await;
    assert_eq!(m.versions.iter().filter(|e| !e.pruned).count(), kept.len());
    let snapshots = h.store.list(&h.keys.snapshots_dir()).await.unwrap();
    assert_eq!(snapshots.len(), kept.len());
    let report = h.verify().await;
    assert!(report.is_sound() && report.orphans.is_empty(), "{report:?}");
    for v in 1..=n {
        assert_eq!(h.restore(v).await.unwrap().sha256(), h.shas[v as usize - 1]);
    }
    let out = h.local_copy(2, "old.json").await;
    assert_eq!(h.pull(&out).await.unwrap().sha256, h.last());
    // Pruning again changes nothing.
    let again = history::prune(&h.store, &h.keys, retention, now, false)
        .await
        .unwrap();
    assert_eq!(again.deleted, 0);
}

async fn tampered_delta_is_caught_by_verify_and_pull_falls_back_to_latest(b: Backend) {
    let h = replayed(b.store, 8).await;
    let out = h.local_copy(5, "local.json").await;
    let before = std::fs::read(&out).unwrap();
    let m = h.manifest().await;
    let delta = m.get(7).unwrap().delta.clone().unwrap();
    tamper(&h.store, &delta, extra_patch_op).await;
    let report = h.verify().await;
    assert!(!report.is_sound());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&delta) && p.contains("version 7")),
        "{report:?}"
    );
    let r = h.pull(&out).await.unwrap();
    assert_eq!(
        (r.via, r.planned, r.sha256.as_str()),
        (Via::Snapshot, Via::Deltas, h.last())
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains(&delta) && w.contains("whole version instead")),
        "{r:?}"
    );
    assert_ne!(std::fs::read(&out).unwrap(), before);
    // Restore reads version 7 from its own snapshot; once that is pruned it has to go through
    // the tampered delta, and fails naming it.
    assert_eq!(h.restore(7).await.unwrap().sha256(), h.shas[6]);
    let mut m = h.manifest().await;
    m.versions[6].pruned = true;
    let body = serde_json::to_vec_pretty(&m).unwrap();
    let opts = PutOptions::json(PutMode::Overwrite);
    h.store
        .put(&h.keys.manifest(), Bytes::from(body), opts)
        .await
        .unwrap();
    let err = h.restore(7).await.unwrap_err().to_string();
    assert!(err.contains(&delta), "{err}");
    assert!(!err.contains('\n'));
    assert_eq!(h.restore(8).await.unwrap().sha256(), h.shas[7]);
}

async fn tampered_snapshot_is_caught_by_verify_and_restore_uses_an_older_one(b: Backend) {
    let h = replayed(b.store, 6).await;
    let m = h.manifest().await;
    let snapshot = m.get(4).unwrap().snapshot.clone();
    tamper(&h.store, &snapshot, flip_a_digit).await;
    let report = h.verify().await;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&snapshot) && p.contains("version 4")),
        "{report:?}"
    );
    assert_eq!(
        report.problems.len(),
        1,
        "the chain itself is intact: {report:?}"
    );
    // Restore falls back to version 3's snapshot plus delta 4.
    assert_eq!(h.restore(4).await.unwrap().sha256(), h.shas[3]);
    // A fresh pull downloads the newest snapshot; tampered, it falls back to latest.json.
    let newest = m.last().unwrap().snapshot.clone();
    tamper(&h.store, &newest, flip_a_digit).await;
    let out = h.work.path().join("fresh.json");
    let r = h.pull(&out).await.unwrap();
    assert_eq!((r.via, r.planned), (Via::Latest, Via::Snapshot), "{r:?}");
    assert!(
        r.warnings[0].contains(&newest) && r.warnings[0].contains("hashes to"),
        "{r:?}"
    );
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), h.last());
    // A tampered latest.json is not given to a consumer either.
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(consumer::sidecar_path(&out)).unwrap();
    let latest = h.keys.latest();
    let (raw, meta) = h.store.get(&latest).await.unwrap().unwrap();
    let opts = PutOptions::json(PutMode::Overwrite).with_metadata(meta.metadata);
    h.store
        .put(&latest, Bytes::from(flip_a_digit(raw.to_vec())), opts)
        .await
        .unwrap();
    let err = h.pull(&out).await.unwrap_err().to_string();
    assert!(
        err.contains("latest.json") && err.contains("hashes to"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    assert!(!h.verify().await.is_sound());
}

async fn missing_delta_is_caught_and_pull_falls_back(b: Backend) {
    let h = replayed(b.store, 6).await;
    let out = h.local_copy(3, "local.json").await;
    let m = h.manifest().await;
    let delta = m.get(5).unwrap().delta.clone().unwrap();
    h.store.delete(&delta).await.unwrap();
    let report = h.verify().await;
    assert!(
        report.problems.iter().any(|p| p.contains(&delta)),
        "{report:?}"
    );
    let r = h.pull(&out).await.unwrap();
    assert_eq!((r.via, r.sha256.as_str()), (Via::Snapshot, h.last()));
    assert_eq!(r.warnings.len(), 1, "{r:?}");
}

async fn verify_repair_restores_the_manifest_and_the_database(b: Backend) {
    let h = replayed(b.store, 6).await;
    let full = h.manifest().await;
    // A crash between the commit point and the manifest write, twice over: the manifest
    // lists 4 versions while latest.json is version 6.
    let mut short = full.clone();
    short.versions.truncate(4);
    let body = serde_json::to_vec_pretty(&short).unwrap();
    h.store
        .put(
            &h.keys.manifest(),
            Bytes::from(body),
            PutOptions::json(PutMode::Overwrite),
        )
        .await
        .unwrap();
    // And a database that lost its last versions.
    let state = h.db.dataset(h.store.url(), DATASET).await.unwrap();
    h.db.forget_versions_after(state.id, 2).await.unwrap();
    let check = || history::DbCheck {
        db: &h.db,
        store_url: h.store.url(),
        dataset: DATASET,
    };
    let report = history::verify_with(&h.store, &h.keys, &key(), Some(check()))
        .await
        .unwrap();
    assert!(!report.is_sound());
    assert!(
        report.orphans.is_empty(),
        "objects of versions 5 and 6 are not orphans: {report:?}"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("behind")),
        "{report:?}"
    );
    assert_eq!(report.fixes.len(), 2, "{report:?}");
    assert!(matches!(&report.fixes[0], Fix::Manifest { manifest, .. } if *manifest == full));
    let done = history::repair(&h.store, &h.keys, Some(&h.db), &report.fixes)
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
    assert_eq!(h.manifest().await, full);
    let after = history::verify_with(&h.store, &h.keys, &key(), Some(check()))
        .await
        .unwrap();
    assert!(after.is_sound() && after.fixes.is_empty(), "{after:?}");
    assert_eq!(h.db.versions(state.id).await.unwrap(), full.versions);
    // A lost snapshot that the deltas still prove: marked pruned by the repair.
    let lost = full.get(3).unwrap().snapshot.clone();
    h.store.delete(&lost).await.unwrap();
    let report = h.verify().await;
    assert!(!report.is_sound());
    history::repair(&h.store, &h.keys, None, &report.fixes)
        .await
        .unwrap();
    assert!(h.manifest().await.get(3).unwrap().pruned);
    assert!(h.verify().await.is_sound());
    assert_eq!(h.restore(3).await.unwrap().sha256(), h.shas[2]);
}

// ---------------------------------------------------------------------------------------------
// Interrupted pull (file store; the store is wrapped to fail every get after the first few,
// like a connection lost mid-pull).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_pull_leaves_the_file_intact_and_the_next_pull_finishes() {
    let b = crate::common::store::file();
    let h = replayed(b.store.clone(), 8).await;
    let out = h.local_copy(3, "local.json").await;
    // A previous pull was killed after writing its temporary file, two hours ago.
    let tmp = h.work.path().join(".local.json.X1y2Z3.snapsync-tmp");
    std::fs::write(&tmp, b"half a file").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    // The connection drops after the manifest, after one delta, after two deltas.
    let before = std::fs::read(&out).unwrap();
    for ok in [1, 2, 3] {
        let failing = Intercept::new(b.store.clone());
        failing.fail_gets_after(ok);
        let failing: DynStore = failing;
        let err = consumer::pull(&failing, &h.keys, DATASET, &out)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("connection reset"), "{err}");
        assert_eq!(std::fs::read(&out).unwrap(), before, "after {ok} reads");
        assert!(!consumer::sidecar_path(&out).exists());
    }
    let r = h.pull(&out).await.unwrap();
    assert_eq!((r.via, r.from_version), (Via::Deltas, Some(3)));
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), h.last());
    assert!(
        !tmp.exists(),
        "the killed pull's leftover temporary file was removed"
    );
    // A garbage sidecar: a warning, and the file is recognised by its hash.
    std::fs::write(consumer::sidecar_path(&out), b"{not json").unwrap();
    let r = h.pull(&out).await.unwrap();
    assert_eq!(r.via, Via::UpToDate);
    assert!(r.warnings[0].contains("not a valid sidecar"), "{r:?}");
    // A file that is no version at all is replaced by latest, with a warning.
    std::fs::write(&out, b"[1,2,3]").unwrap();
    let r = h.pull(&out).await.unwrap();
    assert_eq!(r.via, Via::Snapshot);
    assert!(r.warnings[0].contains("is not a version"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_listed_and_deleted_only_when_old_enough() {
    let b = crate::common::store::file();
    let h = replayed(b.store.clone(), 3).await;
    let m = remote::read_manifest(&h.store, &h.keys)
        .await
        .unwrap()
        .unwrap();
    // Dated years back and far ahead: the key's date is no age.
    let old = format!(
        "{}2020-01-01T000000Z-0123456789ab.json.gz",
        h.keys.snapshots_dir()
    );
    let young = format!(
        "{}2999-01-01T000000Z-0123456789ab.delta.json.gz",
        h.keys.deltas_dir()
    );
    for k in [&old, &young] {
        plant_orphan(&h.store, k, &m.versions[1]).await;
    }
    // The old one was written two hours ago, by the store's clock (its mtime).
    let root = b.dir.as_ref().unwrap().path();
    let now = time::OffsetDateTime::now_utc();
    std::fs::File::options()
        .write(true)
        .open(root.join(&old))
        .unwrap()
        .set_modified((now - time::Duration::hours(2)).into())
        .unwrap();
    let report = h.verify().await;
    assert!(report.is_sound(), "orphans are not errors: {report:?}");
    assert_eq!(report.orphans, vec![old.clone(), young.clone()]);
    let dry = history::sweep_orphans(&h.store, &h.keys, now, true)
        .await
        .unwrap();
    assert_eq!(
        (dry.deleted, dry.young),
        (vec![old.clone()], vec![young.clone()])
    );
    assert_eq!(
        h.verify().await.orphans.len(),
        2,
        "a dry run deletes nothing"
    );
    // prune removes old orphans too.
    let r = history::prune(
        &h.store,
        &h.keys,
        Retention {
            daily: 10,
            monthly: 10,
        },
        now,
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.deleted, 1);
    assert_eq!(h.verify().await.orphans, vec![young]);
}

// ---------------------------------------------------------------------------------------------
// The commands end to end (file store).

#[test]
fn commands_replay_pull_restore_diff_prune_verify() {
    let sb = Sandbox::new();
    let days = sb.path().join("days");
    std::fs::create_dir(&days).unwrap();
    let first = days.join("2021-03-01.json");
    // Enough days that a delta (revisions in the last 3 days only) is well under the gzip
    // snapshot, as with the real file.
    snapsync_gen(&[
        "--countries",
        "6",
        "--days",
        "200",
        "--out",
        first.to_str().unwrap(),
    ]);
    let mut files = vec![first];
    for d in 2..=6 {
        let next = days.join(format!("2021-03-{d:02}.json"));
        snapsync_gen(&[
            "next",
            "--in",
            files.last().unwrap().to_str().unwrap(),
            "--out",
            next.to_str().unwrap(),
            "--seed",
            &d.to_string(),
            "--revise",
            "0.02",
            "--revise-window",
            "3",
        ]);
        files.push(next);
    }
    let shas: Vec<String> = files
        .iter()
        .map(|f| {
            Document::from_json(&std::fs::read(f).unwrap(), &key())
                .unwrap()
                .sha256()
                .to_string()
        })
        .collect();

    // Replay the first four, then all six: the second run skips what the store has.
    let four: Vec<&str> = files[..4].iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = vec!["replay"];
    args.extend(&four);
    let r = sb.run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("2021-03-02T00:00:00Z"), "{r:?}");
    assert!(r.summary().contains("changed=4"), "{r:?}");
    let r = sb.run(&["replay", days.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.summary().contains("changed=2") && r.summary().contains("skipped=4"),
        "{r:?}"
    );
    let m = sb.manifest("covid-countries");
    assert_eq!(m["versions"][5]["created_at"], "2021-03-06T00:00:00.000Z");

    // Pull: first the newest gzip snapshot, then (after restoring an old copy) deltas.
    let out = sb.path().join("copy.json");
    let out_s = out.to_str().unwrap();
    let r = sb.run(&["pull", "--out", out_s]);
    assert_eq!(r.code, 0, "{r:?}");
    let newest = &sb.manifest("covid-countries")["versions"][5];
    assert!(
        r.summary().contains("via=snapshot")
            && r.summary().contains("version=6")
            && r.summary().contains(&format!(
                "deltas_bytes=- snapshot_bytes={} latest_bytes={}",
                newest["snapshot_bytes"], newest["canonical_bytes"]
            )),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("pull plan") && r.stderr.contains("no local copy"),
        "the log says what was chosen and why: {r:?}"
    );
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), shas[5]);
    // An existing file is replaced only when asked (`--force`).
    let r = sb.run(&["restore", "--version", "2", "--out", out_s]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), shas[5]);
    let r = sb.run(&["restore", "--version", "2", "--out", out_s, "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), shas[1]);
    let r = sb.run(&["pull", "--out", out_s, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(r.summary()).unwrap();
    assert_eq!(
        (v["via"].as_str(), v["from_version"].as_u64()),
        (Some("deltas"), Some(2))
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("smaller than the gzip snapshot")
            && v["deltas_bytes"].as_u64().unwrap() < v["snapshot_bytes"].as_u64().unwrap(),
        "{v}"
    );

    // Restore by time: the version current then.
    let r = sb.run(&["restore", "--at", "2021-03-03T12:00:00Z", "--out", "-"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(sha256_hex(r.stdout.as_bytes()), shas[2]);
    let r = sb.run(&["restore", "--at", "2020-01-01", "--out", out_s, "--force"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no version existed"), "{r:?}");
    // A date is the end of that day: 2021-03-03's version, published at midnight that day.
    let r = sb.run(&["restore", "--at", "2021-03-03", "--out", "-"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(sha256_hex(r.stdout.as_bytes()), shas[2]);
    let r = sb.run(&["restore", "--at", "yesterday", "--out", out_s, "--force"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");

    // Diff: versions and files, three formats.
    let r = sb.run(&["diff", "1", "v2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with("v1..v2 added=0 removed=0 moved=0 changed=6"),
        "{r:?}"
    );
    let r = sb.run(&["diff", "5", files[5].to_str().unwrap(), "--format", "patch"]);
    assert_eq!(r.code, 0, "{r:?}");
    let patch: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(!patch.as_array().unwrap().is_empty());
    let r = sb.run(&["diff", "5", "latest", "--format", "unified"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("--- v5/") && r.stdout.contains("+++ v6/"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("\n@@ ") && !r.stdout.contains('\x1b'),
        "{r:?}"
    );

    // Prune (dry run, then for real), verify.
    let r = sb.run(&[
        "prune",
        "--keep-daily",
        "2",
        "--keep-monthly",
        "0",
        "--dry-run",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.summary().contains("pruned=3") && r.summary().contains("dry run"),
        "{r:?}"
    );
    let r = sb.run(&["prune", "--keep-daily", "2", "--keep-monthly", "0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_dir(sb.dataset_dir("covid-countries").join("snapshots"))
            .unwrap()
            .count(),
        3
    );
    let r = sb.run(&["verify"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.summary().contains("sound versions=6"), "{r:?}");
    let r = sb.run(&["restore", "--version", "4", "--out", out_s, "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.summary().contains("base=1 deltas=3"), "{r:?}");
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), shas[3]);

    // Tamper with a delta by hand: verify fails (exit 1) naming it.
    let delta = sb.manifest("covid-countries")["versions"][3]["delta"]
        .as_str()
        .unwrap()
        .to_string();
    let path = sb.store_dir().join(&delta);
    let mut raw = std::fs::read(&path).unwrap();
    let n = raw.len();
    raw[n - 12] ^= 0xff;
    std::fs::write(&path, raw).unwrap();
    let r = sb.run(&["verify"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(&delta) && r.summary().contains("unsound"),
        "{r:?}"
    );
    let r = sb.run(&["verify", "--repair"]);
    assert_eq!(r.code, 1, "a tampered delta is not repairable: {r:?}");
}

#[test]
fn replay_refuses_undated_files_and_unknown_dates() {
    let sb = Sandbox::new();
    let f = sb.path().join("data.json");
    std::fs::write(&f, serde_json::to_vec(&day(1)).unwrap()).unwrap();
    let r = sb.run(&["replay", f.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("data.json") && r.stderr.contains("--dates"),
        "{r:?}"
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    let r = sb.run(&["replay", f.to_str().unwrap(), "--dates", "2021-13-01"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = sb.run(&["replay", f.to_str().unwrap(), "--dates", "2021-02-01"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        sb.manifest("covid-countries")["versions"][0]["created_at"],
        "2021-02-01T00:00:00.000Z"
    );
    let r = sb.run(&[
        "pull",
        "--out",
        sb.path().join("missing-dir/x.json").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.lines().filter(|l| !l.starts_with("ts=")).count(),
        1,
        "the error is one line (besides the log's): {r:?}"
    );
}

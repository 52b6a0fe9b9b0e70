//! docs/design.md's publish protocol, on both stores (the file store and SeaweedFS): what a fresh
//! machine uploads and downloads, two writers racing, a crash after the commit point, and a
//! store that ignores conditional writes. Library level, so every request can be counted, and
//! with fake clocks where the interleaving depends on `created_at` (object keys embed it).

use std::sync::Arc;

use crate::common::history::sha_of;
use crate::common::http::HttpServer;
use crate::common::machine::{any_shrink, dataset, Machine};
use crate::common::manifest::entry;
use crate::common::store::{Intercept, StoreUnderTest as Backend};
use bytes::Bytes;
use serde_json::{json, Value};
use snapsync::canonical::{Document, KeyPointer};
use snapsync::clock::FixedClock;
use snapsync::history;
use snapsync::keys::DatasetKeys;
use snapsync::remote;
use snapsync::store::{DynStore, PutMode, PutOptions};
use snapsync::sync::{self, DatasetConfig, Outcome, RunOptions};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The dataset every machine here runs: `covid` from `url`, allowed to shrink.
fn covid(url: &str) -> DatasetConfig {
    DatasetConfig {
        guards: any_shrink(),
        ..dataset("covid", url)
    }
}

async fn machine(store: DynStore, url: &str) -> Machine {
    Machine::system(store, covid(url)).await
}

/// A machine whose clock always says `at`.
async fn machine_fixed(store: DynStore, url: &str, at: OffsetDateTime) -> Machine {
    Machine::new(store, covid(url), Arc::new(FixedClock(at))).await
}

fn data(tag: u64, n: u64) -> Vec<u8> {
    let recs: Vec<Value> = (0..n)
        .map(|i| json!({"country": {"key": format!("c{i:03}")}, "dates": {"2020-01-01": {"new": {"cases": i * tag}}}}))
        .collect();
    serde_json::to_vec(&recs).unwrap()
}

async fn assert_sound(store: &DynStore, expect_versions: usize) {
    let keys = DatasetKeys::new(store.prefix(), "covid");
    let report = history::verify(store, &keys, &KeyPointer::parse("/country/key").unwrap())
        .await
        .unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.versions, expect_versions, "{report:?}");
}

on_both_stores!(
    name = "protocol", worker_threads = 4;
    fresh_machine_unchanged_uploads_nothing_and_downloads_no_body,
    fresh_machine_changed_reads_latest_once,
    two_writers_make_one_linear_history,
    crash_after_the_commit_point_is_repaired_by_the_next_run,
    a_store_that_ignores_conditional_writes_is_refused_unless_single_writer,
    a_diff_prepared_ahead_is_used_only_from_its_base,
    versions_published_within_one_second_are_a_millisecond_apart,
    a_writer_that_rebases_onto_its_own_orphans_key_publishes_after_it,
    a_writer_that_meets_another_writers_object_at_its_key_publishes_after_it,
    an_object_at_the_key_that_is_not_another_attempt_stops_the_run,
    the_manifest_gets_the_committed_version_not_an_orphan_of_the_same_data,
    of_identical_writers_only_the_one_that_committed_reports_changed,
    a_run_whose_snapshot_was_swept_before_its_commit_puts_it_back,
);

async fn fresh_machine_unchanged_uploads_nothing_and_downloads_no_body(b: Backend) {
    let server = HttpServer::start();
    server.set("/d.json", data(1, 20));
    server.set_validators("/d.json", false, false);
    let store = Intercept::new(b.store.clone());
    let first = machine(store.clone(), &server.url("/d.json")).await;
    assert_eq!(first.run().await.outcome, Outcome::Changed);
    // A new dyno: empty database, same store, same data.
    store.reset();
    let fresh = machine(store.clone(), &server.url("/d.json")).await;
    let r = fresh.run().await;
    assert_eq!(
        (r.outcome, r.version),
        (Outcome::Unchanged, Some(1)),
        "{r:?}"
    );
    assert_eq!(store.puts(), 0, "nothing uploaded");
    assert_eq!(r.bytes_out, 0);
    assert_eq!(
        store.gets_of("latest.json") + store.gets_of(".json.gz"),
        0,
        "no dataset body downloaded"
    );
    // And again on that machine: still nothing.
    store.reset();
    assert_eq!(fresh.run().await.outcome, Outcome::Unchanged);
    assert_eq!(store.puts(), 0);
    assert_eq!(store.gets().len(), 0, "a warm database reads nothing");
}

async fn fresh_machine_changed_reads_latest_once(b: Backend) {
    let server = HttpServer::start();
    server.set("/d.json", data(1, 20));
    let store = Intercept::new(b.store.clone());
    assert_eq!(
        machine(store.clone(), &server.url("/d.json"))
            .await
            .run()
            .await
            .outcome,
        Outcome::Changed
    );
    server.set("/d.json", data(2, 20));
    store.reset();
    let r = machine(store.clone(), &server.url("/d.json"))
        .await
        .run()
        .await;
    assert_eq!(
        (r.outcome, r.version, r.changed),
        (Outcome::Changed, Some(2), Some(19)),
        "{r:?}"
    );
    assert_eq!(store.gets_of("latest.json"), 1, "{:?}", store.gets());
    assert_sound(&b.store, 2).await;
}

async fn two_writers_make_one_linear_history(b: Backend) {
    let server = HttpServer::start();
    let a = machine(b.store.clone(), &server.url("/a.json")).await;
    let c = machine(b.store.clone(), &server.url("/c.json")).await;
    let mut published = 0;
    for round in 0..6u64 {
        server.set("/a.json", data(round * 2 + 1, 12));
        server.set("/c.json", data(round * 2 + 2, 12));
        let (ra, rc) = tokio::join!(a.run(), c.run());
        for r in [&ra, &rc] {
            assert_ne!(r.outcome, Outcome::Failed, "{r:?}");
            published += usize::from(r.outcome == Outcome::Changed);
        }
    }
    // Every committed version is in one unbroken chain, and every delta applies.
    assert_sound(&b.store, published).await;
    assert_eq!(
        published, 12,
        "each writer's data differed from the other's every time"
    );
}

async fn crash_after_the_commit_point_is_repaired_by_the_next_run(b: Backend) {
    let server = HttpServer::start();
    server.set("/d.json", data(1, 10));
    server.set_validators("/d.json", false, false);
    let store = Intercept::new(b.store.clone());
    let m = machine(store.clone(), &server.url("/d.json")).await;
    assert_eq!(m.run().await.outcome, Outcome::Changed);
    // Two runs in a row die between latest.json (committed) and manifest.json.
    for tag in [2, 3] {
        server.set("/d.json", data(tag, 10));
        store.fail_next_put("manifest.json");
        let r = m.run().await;
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
        assert!(
            r.error.as_deref().unwrap().contains("injected crash"),
            "{r:?}"
        );
    }
    // The next run (nothing new upstream) notices and appends both missing entries from
    // object metadata, without publishing anything else.
    let r = machine(store.clone(), &server.url("/d.json"))
        .await
        .run()
        .await;
    assert_eq!(
        (r.outcome, r.version),
        (Outcome::Unchanged, Some(3)),
        "{r:?}"
    );
    assert_sound(&b.store, 3).await;
}

async fn a_store_that_ignores_conditional_writes_is_refused_unless_single_writer(b: Backend) {
    let store = Intercept::new(b.store.clone());
    store.ignore_conditions();
    let m = machine(store.clone(), "http://127.0.0.1:9/unused").await;
    let err = snapsync::probe::check_safe_to_publish(
        &*m.deps.store,
        &m.deps.db,
        m.deps.clock.now(),
        false,
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("ignores If-None-Match/If-Match"),
        "{err:#}"
    );
    snapsync::probe::check_safe_to_publish(&*m.deps.store, &m.deps.db, m.deps.clock.now(), true)
        .await
        .unwrap();
    // The verdict is cached: no second probe.
    let puts = store.puts();
    assert!(snapsync::probe::check_safe_to_publish(
        &*m.deps.store,
        &m.deps.db,
        m.deps.clock.now(),
        false
    )
    .await
    .is_err());
    assert_eq!(store.puts(), puts);
}

/// `replay` prepares day N+1 with a diff from day N while day N publishes: the run takes that
/// diff only when day N is the store's newest version, and diffs from the real one otherwise.
async fn a_diff_prepared_ahead_is_used_only_from_its_base(b: Backend) {
    let server = HttpServer::start();
    let url = server.url("/d.json");
    let key = KeyPointer::parse("/country/key").unwrap();
    server.set("/d.json", data(1, 20));
    let store = Intercept::new(b.store.clone());
    assert_eq!(
        machine(store.clone(), &url).await.run().await.outcome,
        Outcome::Changed
    );
    // (base, version expected, latest.json reads): a fresh machine has no previous version
    // but the store's, so a run that diffs itself has to read it.
    let cases = [
        (data(1, 20), 2, 0),
        // Never published: the run must not trust a diff from it.
        (data(7, 20), 3, 1),
    ];
    for (base, version, reads) in cases {
        server.set("/d.json", data(version, 20));
        let m = machine(store.clone(), &url).await;
        let mut prepared = sync::prepare(&m.deps, &m.ds).await.unwrap();
        let base = Arc::new(Document::from_json(&base, &key).unwrap());
        prepared.diff_against(&m.ds, base).await;
        store.reset();
        let opts = RunOptions {
            prepared: Some(Arc::new(prepared)),
            ..RunOptions::default()
        };
        let r = sync::run_dataset(&m.deps, &m.ds, opts).await;
        assert_eq!(
            (r.outcome, r.version, r.changed),
            (Outcome::Changed, Some(version), Some(19)),
            "{r:?}"
        );
        assert_eq!(
            store.gets_of("latest.json"),
            reads as usize,
            "version {version}"
        );
    }
    // Every delta applies to the version before it.
    assert_sound(&b.store, 3).await;
}

async fn manifest_of(store: &DynStore) -> snapsync::manifest::Manifest {
    let keys = DatasetKeys::new(store.prefix(), "covid");
    remote::read_manifest(store, &keys).await.unwrap().unwrap()
}

/// Issue 13: ten versions in one second used to put `created_at` nine seconds in the future.
async fn versions_published_within_one_second_are_a_millisecond_apart(b: Backend) {
    let second = datetime!(2026-11-24 06:00:00 UTC);
    let server = HttpServer::start();
    let m = machine_fixed(b.store.clone(), &server.url("/d.json"), second).await;
    for tag in 1..=20 {
        server.set("/d.json", data(tag, 10));
        let r = m.run().await;
        assert_eq!(
            (r.outcome, r.version),
            (Outcome::Changed, Some(tag)),
            "{r:?}"
        );
    }
    let manifest = manifest_of(&b.store).await;
    let times: Vec<OffsetDateTime> = manifest
        .versions
        .iter()
        .map(|e| snapsync::keys::parse_rfc3339(&e.created_at).unwrap())
        .collect();
    assert_eq!(times.len(), 20);
    assert_eq!(times[0], second);
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {times:?}"
    );
    assert!(
        times[19] <= second + Duration::milliseconds(20),
        "at most 20 ms ahead of the clock: {}",
        manifest.versions[19].created_at
    );
    let last = &manifest.versions[19];
    assert_eq!(last.created_at, "2026-11-24T06:00:00.019Z");
    assert!(
        last.snapshot.contains("/snapshots/2026-11-24T060000.019Z-")
            && last
                .delta
                .as_deref()
                .unwrap()
                .contains("/deltas/2026-11-24T060000.019Z-"),
        "{last:?}"
    );
    assert_sound(&b.store, 20).await;
}

/// The interleaving of issue 13's failed four-writer round, made deterministic. Version 1 is
/// from `t - 2s`. Writer X (clock `t`) builds version 2 of data A at `created_at = t` and writes
/// its snapshot and delta; just before X's commit, writer Z (clock `t - 1s`) commits version 2
/// of data B at `t - 1s`; then (when `another_writer`) writer Y (clock `t`, data A) runs
/// against Z's version. Whoever next builds A on Z's version picks `created_at = t` again:
/// the same key as X's first attempt (same time, same content), holding metadata of another
/// version. That is a taken key, not corruption: the run must publish after it.
async fn race_at_one_key(b: Backend, another_writer: bool) {
    let t = datetime!(2026-11-24 06:00:00 UTC);
    let server = HttpServer::start();
    server.set("/p.json", data(1, 10));
    server.set("/a.json", data(2, 10));
    server.set("/b.json", data(3, 10));
    let first = machine_fixed(
        b.store.clone(),
        &server.url("/p.json"),
        t - Duration::seconds(2),
    )
    .await
    .run()
    .await;
    assert_eq!(first.outcome, Outcome::Changed, "{first:?}");

    let store = Intercept::new(b.store.clone());
    let x = machine_fixed(store.clone(), &server.url("/a.json"), t).await;
    let z = machine_fixed(
        b.store.clone(),
        &server.url("/b.json"),
        t - Duration::seconds(1),
    )
    .await;
    let y = machine_fixed(b.store.clone(), &server.url("/a.json"), t).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.before_put("latest.json", async move {
        let rz = z.run().await;
        let ry = if another_writer {
            Some(y.run().await)
        } else {
            None
        };
        let _ = tx.send((rz, ry));
    });
    let rx_report = x.run().await;
    let (rz, ry) = rx.await.expect("X reached its commit point");
    assert_eq!(
        (rz.outcome, rz.version),
        (Outcome::Changed, Some(2)),
        "Z: {rz:?}"
    );

    match &ry {
        Some(ry) => {
            assert_eq!(
                (ry.outcome, ry.version),
                (Outcome::Changed, Some(3)),
                "Y: {ry:?}"
            );
            // X lost the commit point to Z, and then found its data committed by Y.
            assert_eq!(
                (rx_report.outcome, rx_report.version),
                (Outcome::Unchanged, Some(3)),
                "X: {rx_report:?}"
            );
        }
        None => assert_eq!(
            (rx_report.outcome, rx_report.version),
            (Outcome::Changed, Some(3)),
            "X: {rx_report:?}"
        ),
    }
    let sha_a = sha_of(&data(2, 10), "/country/key");
    let key_t = format!("covid/snapshots/2026-11-24T060000.000Z-{}", &sha_a[..12]);
    let manifest = manifest_of(&b.store).await;
    let v3 = manifest.get(3).expect("version 3");
    assert_eq!(v3.sha256, sha_a);
    assert_eq!(
        v3.created_at, "2026-11-24T06:00:00.001Z",
        "after the taken key"
    );
    // X's first attempt is left as orphans at `t`; the history is sound.
    let keys = DatasetKeys::new(b.store.prefix(), "covid");
    let report = history::verify(&b.store, &keys, &KeyPointer::parse("/country/key").unwrap())
        .await
        .unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.versions, 3);
    assert!(
        report.orphans.iter().any(|k| k.contains(&key_t)),
        "X's first snapshot {key_t} is an orphan: {:?}",
        report.orphans
    );
}

async fn a_writer_that_rebases_onto_its_own_orphans_key_publishes_after_it(b: Backend) {
    race_at_one_key(b, false).await;
}

async fn a_writer_that_meets_another_writers_object_at_its_key_publishes_after_it(b: Backend) {
    race_at_one_key(b, true).await;
}

/// What a key may legitimately hold is this attempt's own object or another attempt's of the
/// same content; anything else is not snapsync's to step around.
async fn an_object_at_the_key_that_is_not_another_attempt_stops_the_run(b: Backend) {
    let t = datetime!(2026-11-24 06:00:00 UTC);
    let server = HttpServer::start();
    server.set("/d.json", data(1, 10));
    let sha = sha_of(&data(1, 10), "/country/key");
    let keys = DatasetKeys::new(b.store.prefix(), "covid");
    let key = keys.snapshot(t, &sha);
    // Metadata that describes other content whose hash starts the same (a different
    // sha256 with the same first 12 characters).
    let mut other = sha.clone();
    other.replace_range(63.., if sha.ends_with('0') { "1" } else { "0" });
    let other_entry = entry(1, "2026-11-24T06:00:00.000Z", &other, &key);
    let cases = [
        (
            PutOptions::gzip_json(PutMode::Create),
            "without snapsync metadata",
        ),
        (
            PutOptions::gzip_json(PutMode::Create).with_metadata(other_entry.to_metadata()),
            "of other content",
        ),
    ];
    for (opts, why) in cases {
        b.store.delete(&key).await.unwrap();
        b.store
            .put(&key, Bytes::from_static(b"not ours"), opts)
            .await
            .unwrap();
        let r = machine_fixed(b.store.clone(), &server.url("/d.json"), t)
            .await
            .run()
            .await;
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
        let error = r.error.unwrap_or_default();
        assert!(error.contains(&key) && error.contains(why), "{error}");
    }
    // Nothing was committed past the foreign object.
    assert!(b.store.head(&keys.latest()).await.unwrap().is_none());
}

/// A writer whose manifest write comes after the next writer's commit: that writer appends the
/// missing version to the manifest from object metadata, and orphans of another attempt of the
/// same data (same version number, same content, another `created_at`) must not stand in for
/// the committed one, or the first writer, which did commit, finds "a different version" and
/// fails. Version 1 is from `t - 2s`; a writer crashed before committing version 2 of data A
/// at `t - 1s`; writer X commits A as version 2 at `t`, and before X writes the manifest,
/// writer W commits version 3 on top of it.
async fn the_manifest_gets_the_committed_version_not_an_orphan_of_the_same_data(b: Backend) {
    let t = datetime!(2026-11-24 06:00:00 UTC);
    let server = HttpServer::start();
    server.set("/p.json", data(1, 10));
    server.set("/a.json", data(2, 10));
    server.set("/b.json", data(3, 10));
    let url = |path: &str| server.url(path);
    let r = machine_fixed(b.store.clone(), &url("/p.json"), t - Duration::seconds(2))
        .await
        .run()
        .await;
    assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    let crashing = Intercept::new(b.store.clone());
    crashing.fail_next_put("latest.json");
    let r = machine_fixed(crashing, &url("/a.json"), t - Duration::seconds(1))
        .await
        .run()
        .await;
    assert_eq!(r.outcome, Outcome::Failed, "the crashed attempt: {r:?}");

    let store = Intercept::new(b.store.clone());
    let x = machine_fixed(store.clone(), &url("/a.json"), t).await;
    let w = machine_fixed(b.store.clone(), &url("/b.json"), t).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.before_put("manifest.json", async move {
        let _ = tx.send(w.run().await);
    });
    let rx_report = x.run().await;
    let rw = rx.await.expect("X committed and reached the manifest");
    assert_eq!(
        (rw.outcome, rw.version),
        (Outcome::Changed, Some(3)),
        "W: {rw:?}"
    );
    assert_eq!(
        (rx_report.outcome, rx_report.version),
        (Outcome::Changed, Some(2)),
        "X: {rx_report:?}"
    );
    let manifest = manifest_of(&b.store).await;
    let v2 = manifest.get(2).unwrap();
    assert_eq!(v2.created_at, "2026-11-24T06:00:00.000Z", "{v2:?}");
    assert_sound(&b.store, 3).await;
}

/// KNOWN BUG, not fixed (found by `scripts/soak.sh` while fixing issue 13): ETags are hashes of
/// the body on both stores, and `latest.json`'s body is the version's canonical bytes, so a
/// version whose data equals an older one's has that older version's ETag. Writer W reads
/// version 1 (data A) and builds version 2 of data B; meanwhile X commits B as version 2 and
/// Y commits A again as version 3. W's `If-Match` (A's ETag) matches version 3, and W moves
/// `latest.json` back to a version 2: every run reports success, `verify` does not, and the
/// next runs fail for good ("would break the chain"). The run now looks at latest.json again
/// just before its commit, which narrows the window to that request's round trip (here the
/// other writers run inside it). Closing it means committing on an object whose bytes differ
/// per version (e.g. the manifest), a protocol change for docs/design.md. Run with `--ignored` to
/// see it fail.
async fn a_stale_writer_cannot_commit_over_a_newer_version_with_its_base_data(b: Backend) {
    let t = datetime!(2026-11-24 06:00:00 UTC);
    let server = HttpServer::start();
    server.set("/a.json", data(1, 10));
    server.set("/b.json", data(2, 10));
    let r = machine_fixed(
        b.store.clone(),
        &server.url("/a.json"),
        t - Duration::seconds(2),
    )
    .await
    .run()
    .await;
    assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    let store = Intercept::new(b.store.clone());
    let w = machine_fixed(store.clone(), &server.url("/b.json"), t).await;
    let x = machine_fixed(b.store.clone(), &server.url("/b.json"), t).await;
    let y = machine_fixed(b.store.clone(), &server.url("/a.json"), t).await;
    store.before_put("latest.json", async move {
        assert_eq!(x.run().await.version, Some(2));
        assert_eq!(y.run().await.version, Some(3));
    });
    let rw = w.run().await;
    assert_ne!(rw.outcome, Outcome::Failed, "{rw:?}");
    assert_sound(&b.store, 3).await;
}

mod known_bugs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "known bug: If-Match on content-hash ETags lets a stale writer move latest.json back (ABA)"]
    async fn a_stale_writer_cannot_commit_over_a_newer_version_with_its_base_data_file() {
        super::a_stale_writer_cannot_commit_over_a_newer_version_with_its_base_data(
            crate::common::store::file(),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "known bug: If-Match on content-hash ETags lets a stale writer move latest.json back (ABA)"]
    async fn a_stale_writer_cannot_commit_over_a_newer_version_with_its_base_data_s3() {
        if let Some(b) = crate::common::store::s3("protocol").await {
            super::a_stale_writer_cannot_commit_over_a_newer_version_with_its_base_data(b).await;
        }
    }
}

/// Writers X and Y fetch the same new data on the same base with the same clock, so their
/// objects are identical, at the same keys. X puts its snapshot and delta; before X's commit,
/// Y runs: it meets X's objects at its keys. Y must not take them for its own (it would then
/// commit them, and X, meeting its 412, would take Y's commit for its own lost answer: two
/// `changed` reports, two webhooks, for one commit). Exactly one writer reports `changed`.
async fn of_identical_writers_only_the_one_that_committed_reports_changed(b: Backend) {
    let t = datetime!(2026-11-24 06:00:00 UTC);
    let server = HttpServer::start();
    server.set("/base.json", data(1, 10));
    server.set("/new.json", data(2, 10));
    let first = machine_fixed(
        b.store.clone(),
        &server.url("/base.json"),
        t - Duration::hours(1),
    )
    .await
    .run()
    .await;
    assert_eq!(first.outcome, Outcome::Changed, "{first:?}");
    let store = Intercept::new(b.store.clone());
    let x = machine_fixed(store.clone(), &server.url("/new.json"), t).await;
    let y = machine_fixed(b.store.clone(), &server.url("/new.json"), t).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.before_put("latest.json", async move {
        let _ = tx.send(y.run().await);
    });
    let rx_report = x.run().await;
    let ry = rx.await.expect("X reached its commit point");
    let outcomes = [rx_report.outcome, ry.outcome];
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Changed).count(),
        1,
        "X: {rx_report:?}\nY: {ry:?}"
    );
    assert!(outcomes.contains(&Outcome::Unchanged), "{outcomes:?}");
    assert_eq!((rx_report.version, ry.version), (Some(2), Some(2)));
    assert_sound(&b.store, 2).await;
}

/// A run that waited long enough before its commit for a janitor to sweep its snapshot (here:
/// the snapshot deleted between its put and the delta's; the recheck threshold set to 0 to
/// stand for "half an hour later") checks its objects before the commit and puts back what is
/// gone: the version it commits is whole.
async fn a_run_whose_snapshot_was_swept_before_its_commit_puts_it_back(b: Backend) {
    let server = HttpServer::start();
    server.set("/d.json", data(1, 10));
    let first = machine(b.store.clone(), &server.url("/d.json"))
        .await
        .run()
        .await;
    assert_eq!(first.outcome, Outcome::Changed, "{first:?}");
    server.set("/d.json", data(2, 10));
    let store = Intercept::new(b.store.clone());
    let m = machine(store.clone(), &server.url("/d.json")).await;
    let inner = b.store.clone();
    let prefix = DatasetKeys::new(b.store.prefix(), "covid").snapshots_dir();
    store.before_put(".delta.json.gz", async move {
        for o in inner.list(&prefix).await.unwrap() {
            if o.key.contains(&sha_of(&data(2, 10), "/country/key")[..12]) {
                inner.delete(&o.key).await.unwrap();
            }
        }
    });
    let opts = RunOptions {
        recheck_objects_after: Some(std::time::Duration::ZERO),
        ..RunOptions::default()
    };
    let r = sync::run_dataset(&m.deps, &m.ds, opts).await;
    assert_eq!((r.outcome, r.version), (Outcome::Changed, Some(2)), "{r:?}");
    let keys = DatasetKeys::new(b.store.prefix(), "covid");
    let manifest = remote::read_manifest(&b.store, &keys)
        .await
        .unwrap()
        .unwrap();
    let v2 = manifest.get(2).unwrap();
    assert!(
        b.store.head(&v2.snapshot).await.unwrap().is_some(),
        "{v2:?}"
    );
    assert_sound(&b.store, 2).await;
}

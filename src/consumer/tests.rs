//! Tests of the pull: the plan's choice between deltas, the snapshot and `latest.json`, the
//! report's line, and the atomic write.

use crate::manifest::{Entry, Manifest};

use super::*;

fn entry(version: u64, delta_bytes: u64) -> Entry {
    Entry {
        version,
        created_at: "2026-01-01T00:00:00Z".into(),
        sha256: format!("{version:064x}"),
        prev_sha256: (version > 1).then(|| format!("{:064x}", version - 1)),
        snapshot: format!("s/{version}"),
        delta: (version > 1).then(|| format!("d/{version}")),
        canonical_bytes: 1000,
        snapshot_bytes: 100,
        delta_bytes: (version > 1).then_some(delta_bytes),
        records: None,
        ..Entry::default()
    }
}

fn manifest(n: u64) -> Manifest {
    let mut m = Manifest::new("d");
    m.versions = (1..=n).map(|v| entry(v, 10)).collect();
    m
}

fn steps(p: &PullPlan) -> Vec<u64> {
    match &p.action {
        PullAction::Deltas(steps) => steps.iter().map(|e| e.version).collect(),
        other => panic!("not deltas: {other:?} ({})", p.reason),
    }
}

// Versions 2..=5 have 10-byte deltas; every snapshot is 100 bytes (gzip), latest.json 1000.
#[test]
fn deltas_when_smaller_than_the_gzip_snapshot() {
    let m = manifest(5);
    let latest = m.last().unwrap().clone();
    let p = plan_pull(Some(&m), m.get(2), &latest, 1000);
    assert_eq!(steps(&p), vec![3, 4, 5]);
    assert_eq!(p.via(), Via::Deltas);
    assert_eq!(
        p.costs,
        PullCosts {
            deltas_bytes: Some(30),
            snapshot_bytes: Some(100),
            latest_bytes: 1000
        }
    );
    assert!(
        p.reason
            .contains("smaller than the gzip snapshot (100 bytes)"),
        "{}",
        p.reason
    );
    // The fallback, should a delta fail, is the snapshot too.
    assert_eq!(p.full, FullDownload::Snapshot(Box::new(latest)));
}

#[test]
fn snapshot_when_deltas_outweigh_it_though_smaller_than_latest_json() {
    let mut m = manifest(5);
    for e in &mut m.versions[1..] {
        e.delta_bytes = Some(40);
    }
    let latest = m.last().unwrap().clone();
    // 3 deltas = 120 bytes: less than latest.json (1000), more than the snapshot (100).
    let p = plan_pull(Some(&m), m.get(2), &latest, 1000);
    assert_eq!(
        (p.action.clone(), p.via()),
        (PullAction::Full, Via::Snapshot)
    );
    assert_eq!(p.full, FullDownload::Snapshot(Box::new(latest.clone())));
    assert_eq!(p.costs.deltas_bytes, Some(120));
    assert!(
        p.reason
            .contains("3 deltas (120 bytes) are not smaller than the gzip snapshot (100 bytes)"),
        "{}",
        p.reason
    );
    // One delta (40 bytes) still beats the snapshot.
    assert_eq!(
        steps(&plan_pull(Some(&m), m.get(4), &latest, 1000)),
        vec![5]
    );
    // Equal is not smaller: the whole version, one download instead of several.
    assert_eq!(
        plan_pull(
            Some(&m),
            m.get(3),
            &{
                let mut l = latest.clone();
                l.snapshot_bytes = 80;
                l
            },
            1000
        )
        .via(),
        Via::Snapshot
    );
}

#[test]
fn latest_json_when_the_snapshot_is_pruned_or_not_smaller() {
    let mut m = manifest(5);
    for e in &mut m.versions[1..] {
        e.delta_bytes = Some(400);
    }
    let latest = m.last().unwrap().clone();
    // A store that gzips latest.json: 90 bytes beat the 100-byte snapshot.
    let p = plan_pull(Some(&m), m.get(2), &latest, 90);
    assert_eq!(p.via(), Via::Latest);
    assert!(
        p.reason.contains("not smaller than latest.json (90 bytes)"),
        "{}",
        p.reason
    );
    assert!(
        p.reason.contains("not larger than the gzip snapshot"),
        "{}",
        p.reason
    );
    // Deltas (1200) vs latest.json (1000) once prune deleted the newest snapshot.
    m.versions[4].pruned = true;
    let p = plan_pull(Some(&m), m.get(2), &latest, 1000);
    assert_eq!((p.via(), p.costs.snapshot_bytes), (Via::Latest, None));
    assert_eq!(p.full, FullDownload::Latest);
    assert!(p.reason.contains("pruned"), "{}", p.reason);
    // Cheap deltas still win over latest.json when there is no snapshot.
    for e in &mut m.versions[1..] {
        e.delta_bytes = Some(10);
    }
    assert_eq!(
        steps(&plan_pull(Some(&m), m.get(2), &latest, 1000)),
        vec![3, 4, 5]
    );
}

#[test]
fn without_a_usable_chain_the_cheapest_whole_download() {
    let m = manifest(5);
    let latest = m.last().unwrap().clone();
    assert_eq!(
        plan_pull(Some(&m), m.get(5), &latest, 1000).via(),
        Via::UpToDate
    );
    for p in [
        plan_pull(Some(&m), None, &latest, 1000),
        plan_pull(None, m.get(2), &latest, 1000),
    ] {
        assert_eq!(
            (p.action.clone(), p.via()),
            (PullAction::Full, Via::Snapshot),
            "{p:?}"
        );
        assert_eq!(p.costs.deltas_bytes, None);
    }
    assert!(plan_pull(Some(&m), None, &latest, 1000)
        .reason
        .starts_with("no local copy"));
    // Without a manifest latest.json's own metadata names its snapshot; it may be the
    // larger download.
    assert_eq!(plan_pull(None, None, &latest, 60).via(), Via::Latest);
    let newer = entry(6, 10);
    let p = plan_pull(Some(&m), m.get(2), &newer, 1000);
    assert!(p.reason.contains("does not list"), "{}", p.reason);
    assert_eq!(p.via(), Via::Snapshot);
    let mut gap = m.clone();
    gap.versions[3].delta = None;
    let p = plan_pull(Some(&gap), gap.get(2), &latest, 1000);
    assert!(p.reason.contains("a delta is missing"), "{}", p.reason);
}

#[test]
fn the_summary_line_names_the_route_and_the_figures() {
    let r = PullReport {
        dataset: "d".into(),
        version: 5,
        sha256: "ab".into(),
        from_version: Some(2),
        via: Via::Latest,
        planned: Via::Snapshot,
        reason: "why".into(),
        costs: PullCosts {
            deltas_bytes: Some(120),
            snapshot_bytes: Some(100),
            latest_bytes: 1000,
        },
        deltas_applied: 0,
        bytes: 1100,
        warnings: vec![],
    };
    assert_eq!(
        r.summary_line(),
        "d pulled version=5 sha256=ab from=2 via=latest planned=snapshot bytes=1100 \
         deltas_bytes=120 snapshot_bytes=100 latest_bytes=1000"
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        (
            v["via"].as_str(),
            v["planned"].as_str(),
            v["snapshot_bytes"].as_u64()
        ),
        (Some("latest"), Some("snapshot"), Some(100))
    );
    assert_eq!(v["reason"], "why");
}

#[test]
fn atomic_write_replaces_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data.json");
    write_atomically(&p, b"one").unwrap();
    write_atomically(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(write_atomically(&dir.path().join("missing/x.json"), b"x").is_err());
    // Without replacing: a new file is written, an existing one is left as it was.
    let new = dir.path().join("new.json");
    super::write_new_atomically(&new, b"first").unwrap();
    assert!(super::write_new_atomically(&new, b"second").is_err());
    assert_eq!(std::fs::read(&new).unwrap(), b"first");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().ends_with(".snapsync-tmp")),
        "{names:?}"
    );
}

#[test]
fn atomic_write_removes_only_stale_temporaries_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let aged = |name: &str, secs: u64| {
        let f = std::fs::File::create(at(name)).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
            .unwrap();
    };
    aged(".data.json.snapsync-tmp", 7200); // an earlier release's, killed
    aged(".data.json.Ab12Cd.snapsync-tmp", 7200); // killed
    aged(".data.json.Ef34Gh.snapsync-tmp", 60); // maybe another write in progress
    aged(".other.json.Ij56Kl.snapsync-tmp", 7200); // another file's
    aged("victim", 7200);
    std::os::unix::fs::symlink(at("victim"), at(".data.json.Mn78Op.snapsync-tmp")).unwrap();
    write_atomically(&at("data.json"), b"new").unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".data.json.Ef34Gh.snapsync-tmp",
            ".data.json.Mn78Op.snapsync-tmp",
            ".other.json.Ij56Kl.snapsync-tmp",
            "data.json",
            "victim"
        ]
    );
}

//! Four `snapsync run` processes publishing the same dataset at once, round after round, with
//! the data changing every round: two pairs of writers, each pair fetching the same new document
//! (so they also race to upload identical objects) and the pairs different documents (so each
//! round commits at least two versions, and writers must re-base after a 412). Each process has
//! its own database, as on separate machines. Afterwards the manifest must be one linear chain
//! (no gap, no fork, no version equal to its predecessor), every delta must apply, and every
//! version a process reported must be the manifest's version of that number. Every run must end
//! `changed` or `unchanged`, whatever the timing (`scripts/soak.sh` runs this under CPU stress):
//! the rounds go on after a failed run so the figures count them all, and the test fails at the
//! end with the first failure's output.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Instant;

use crate::common::cli::to_result;
use crate::common::env;
use crate::common::history::{check, data, sha_of};
use crate::common::http::HttpServer;
use crate::common::target::Target;

const DATASET: &str = "shared";
const KEY: &str = "/country/key";
const WRITERS: usize = 4;

async fn rounds(target: Target) {
    let rounds = env::number::<u64>("SNAPSYNC_CONCURRENCY_ROUNDS", 20);
    let server = HttpServer::start();
    let store = target.store().await;
    let t0 = Instant::now();
    let mut published = BTreeSet::new();
    let mut reported = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    // How often the runs met each kind of lost race (from their logs): a 412 at the commit
    // point, and a snapshot/delta key held by another attempt of the same data.
    let (mut rebased, mut taken) = (0, 0);
    let mut why_failed = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..rounds {
        let docs: Vec<Vec<u8>> = (0..2).map(|pair| data(round * 2 + pair + 1, 30)).collect();
        for (pair, doc) in docs.iter().enumerate() {
            published.insert(sha_of(doc, KEY));
            for w in [pair * 2, pair * 2 + 1] {
                server.set(&format!("/w{w}.json"), doc.clone());
            }
        }
        let children: Vec<_> = (0..WRITERS)
            .map(|w| {
                let url = server.url(&format!("/w{w}.json"));
                target
                    .cmd(
                        &target.db(&format!("writer{w}")),
                        &["run", "--dataset", DATASET, "--url", &url, "--key", KEY],
                    )
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("snapsync starts")
            })
            .collect();
        for (w, child) in children.into_iter().enumerate() {
            let r = to_result(child.wait_with_output().unwrap());
            rebased += r.stderr.matches("another writer committed first").count();
            taken += r.stderr.matches("holds the key").count();
            if r.code != 0 {
                *outcomes.entry("failed".to_string()).or_default() += 1;
                *why_failed.entry(failure_reason(&r.stdout)).or_default() += 1;
                failures.push(format!("round {round}, writer {w}: {r:?}"));
                continue;
            }
            *outcomes.entry(r.outcome().to_string()).or_default() += 1;
            let version: u64 = r.field("version").and_then(|v| v.parse().ok()).unwrap();
            reported.push((round, w, version, r.field("sha256").unwrap()));
        }
    }
    let checked = check(&store, DATASET, KEY).await;
    eprintln!(
        "concurrency {}: {WRITERS} processes x {rounds} rounds, {} failed runs, {}; runs: {outcomes:?}; \
         lost races: {rebased} at the commit point, {taken} at a taken key; failures: {why_failed:?}; {:.1}s",
        target.kind(),
        failures.len(),
        match &checked {
            Ok(c) => format!(
                "{} versions in one linear chain, every delta applies, 0 gaps or forks, {} orphans of lost races",
                c.len(),
                c.orphans
            ),
            Err(e) => format!("inconsistent history: {e}"),
        },
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs failed; the first: {}",
        failures.len(),
        rounds * WRITERS as u64,
        failures[0]
    );
    let checked =
        checked.unwrap_or_else(|e| panic!("{} writers: inconsistent history: {e}", target.kind()));
    for (round, w, version, sha) in &reported {
        let entry = checked.versions.get(*version as usize - 1);
        assert_eq!(
            entry.map(|e| e.sha256.as_str()),
            Some(sha.as_str()),
            "round {round}, writer {w} reported version {version} = {sha}"
        );
    }
    for e in &checked.versions {
        assert!(
            published.contains(&e.sha256),
            "version {} was never fetched",
            e.version
        );
    }
    assert!(
        (2 * rounds..=WRITERS as u64 * rounds).contains(&checked.len()),
        "{} versions in {rounds} rounds",
        checked.len()
    );
}

/// What a failed run's summary line says went wrong, without the store, key, numbers or
/// hashes, so failures of one kind count together.
fn failure_reason(stdout: &str) -> String {
    let Some((_, error)) = stdout.rsplit_once("error=\"") else {
        return "no summary line".to_string();
    };
    let error = error.split('"').next().unwrap_or(error);
    let error = [".json.gz: ", ".json: "]
        .iter()
        .find_map(|sep| error.rsplit_once(sep).map(|(_, reason)| reason))
        .unwrap_or(error);
    error
        .split_whitespace()
        .map(|w| {
            if w.bytes().any(|b| b.is_ascii_digit()) {
                "N"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_s3() {
    let Some(target) = Target::s3("concurrency") else {
        return;
    };
    rounds(target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_file_store() {
    rounds(Target::file()).await;
}

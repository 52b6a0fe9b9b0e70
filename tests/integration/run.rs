//! `snapsync run` end to end on the embedded default (file store + SQLite), against a real
//! HTTP server on 127.0.0.1 serving fixture files.

use crate::common::cli::{sha256_hex, to_result, Sandbox};
use crate::common::http::{Fault, HttpServer};
use serde_json::{json, Value};

const DATASET: &str = "covid-countries";

fn country(key: &str, days: &[(&str, u64)]) -> Value {
    let mut dates = serde_json::Map::new();
    let mut total = 0;
    for (day, new) in days {
        total += new;
        dates.insert(
            day.to_string(),
            json!({"new": {"cases": new, "deaths": 0}, "cumulative": {"cases": total, "deaths": 0}}),
        );
    }
    json!({"country": {"key": key, "name": key.to_uppercase()}, "dates": dates})
}

fn dataset(keys: &[&str]) -> Value {
    Value::Array(
        keys.iter()
            .map(|k| country(k, &[("2020-01-22", 1), ("2020-01-23", 2)]))
            .collect(),
    )
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// A server with the dataset at /stats.json, and a sandbox that has published it once.
fn published(v: &Value) -> (HttpServer, Sandbox, String) {
    let server = HttpServer::start();
    server.set("/stats.json", body(v));
    let sb = Sandbox::new();
    let url = server.url("/stats.json");
    let r = sb.sync(&url, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.outcome(), "changed", "{r:?}");
    (server, sb, url)
}

#[test]
fn first_run_publishes_version_1_that_anyone_can_check_with_sha256sum() {
    let v = dataset(&["france", "spain"]);
    let (_server, sb, _) = published(&v);
    let manifest = sb.manifest(DATASET);
    let versions = manifest["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let entry = &versions[0];
    assert_eq!(entry["version"], 1);
    assert_eq!(entry["delta"], Value::Null, "version 1 has no delta");
    let sha = entry["sha256"].as_str().unwrap();
    assert_eq!(
        sha256_hex(&sb.latest_bytes(DATASET)),
        sha,
        "latest.json is the canonical bytes"
    );
    assert_eq!(
        sha256_hex(&sb.object_gunzipped(entry["snapshot"].as_str().unwrap())),
        sha
    );
    // Canonical: sorted keys, no whitespace.
    let latest = String::from_utf8(sb.latest_bytes(DATASET)).unwrap();
    assert!(
        latest.starts_with(
            r#"[{"country":{"key":"france","name":"FRANCE"},"dates":{"2020-01-22":{"cumulative""#
        ),
        "{latest}"
    );
    assert!(!sb.dataset_dir(DATASET).join("deltas").exists());
}

#[test]
fn summary_line_and_json_follow_the_contract() {
    let server = HttpServer::start();
    server.set("/stats.json", body(&dataset(&["a", "b", "c"])));
    let sb = Sandbox::new();
    let r = sb.sync(&server.url("/stats.json"), &[]);
    let sha = sha256_hex(&sb.latest_bytes(DATASET));
    assert_eq!(
        r.summary(),
        format!(
            "covid-countries changed version=1 sha256={sha} added=3 removed=0 moved=0 changed=0"
        )
    );
    server.set_validators("/stats.json", false, false);
    let r = sb.sync(&server.url("/stats.json"), &["--json"]);
    let j: Value = serde_json::from_str(r.summary()).unwrap();
    assert_eq!(j["dataset"], DATASET);
    assert_eq!(j["outcome"], "unchanged");
    assert_eq!(j["version"], 1);
    assert_eq!(j["sha256"], sha.as_str());
}

/// The `run finished` line of a run's logfmt stderr, as `key -> value`.
fn finished_line(stderr: &str) -> std::collections::HashMap<String, String> {
    let line = stderr
        .lines()
        .find(|l| l.contains("message=\"run finished\""))
        .unwrap_or_else(|| panic!("no run finished line in {stderr}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_run_line_carries_l2met_metrics_for_heroku_in_logfmt_only() {
    let (server, sb, url) = published(&dataset(&["france", "spain"]));
    server.set("/stats.json", body(&dataset(&["france", "spain", "italy"])));
    let r = sb.sync(&url, &[]);
    assert_eq!(r.outcome(), "changed", "{r:?}");
    let m = finished_line(&r.stderr);
    let get = |k: &str| m.get(k).map(String::as_str);
    assert_eq!(get("source"), Some(DATASET), "{m:?}");
    assert_eq!(get("count#snapsync.runs"), Some("1"));
    assert_eq!(get("count#snapsync.changed"), Some("1"));
    assert_eq!(get("count#snapsync.unchanged"), Some("0"));
    assert_eq!(get("count#snapsync.failed"), Some("0"));
    assert_eq!(get("sample#snapsync.version"), Some("2"));
    assert_eq!(get("sample#snapsync.records_changed"), Some("0"));
    assert_eq!(get("sample#snapsync.duration_ms"), get("duration_ms"));
    assert_eq!(get("sample#snapsync.bytes_out"), get("bytes_out"));
    let bytes_out: u64 = get("bytes_out").unwrap().parse().unwrap();
    assert!(bytes_out > 0, "{m:?}");

    server.set_validators("/stats.json", false, false);
    let m = finished_line(&sb.sync(&url, &[]).stderr);
    assert_eq!(m["count#snapsync.unchanged"], "1", "{m:?}");
    assert_eq!(m["count#snapsync.changed"], "0", "{m:?}");
    assert_eq!(m["sample#snapsync.bytes_out"], "0", "{m:?}");

    server.remove("/stats.json");
    let r = sb.sync(&url, &[]);
    assert_ne!(r.code, 0, "{r:?}");
    let m = finished_line(&r.stderr);
    assert_eq!(m["count#snapsync.failed"], "1", "{m:?}");
    assert_eq!(m["outcome"], "failed", "{m:?}");

    // A terminal's text log has no metric keys.
    let r = to_result(
        sb.cmd(&["run", "--url", &url])
            .env("SNAPSYNC_LOG_FORMAT", "text")
            .output()
            .unwrap(),
    );
    assert!(r.stderr.contains("run finished"), "{r:?}");
    assert!(!r.stderr.contains("snapsync.runs"), "{r:?}");
}

#[test]
fn same_data_again_is_unchanged_and_writes_nothing() {
    let v = dataset(&["france", "spain"]);
    let (server, sb, url) = published(&v);
    server.set_validators("/stats.json", false, false);
    let before = sb.store_files();
    let r = sb.sync(&url, &[]);
    assert_eq!((r.code, r.outcome()), (0, "unchanged"), "{r:?}");
    assert_eq!(r.field("version").as_deref(), Some("1"));
    assert_eq!(sb.store_files(), before);
}

#[test]
fn reordered_keys_and_whitespace_at_the_source_are_not_a_new_version() {
    let v = dataset(&["france", "spain"]);
    let (server, sb, url) = published(&v);
    // Same data, other member order and layout.
    let reordered = r#"[{"dates":{"2020-01-23":{"cumulative":{"deaths":0,"cases":3},"new":{"deaths":0,"cases":2}},
        "2020-01-22":{"new":{"cases":1,"deaths":0},"cumulative":{"cases":1,"deaths":0}}},"country":{"name":"FRANCE","key":"france"}},
      {"country":{"key":"spain","name":"SPAIN"},"dates":{"2020-01-22":{"new":{"cases":1,"deaths":0},"cumulative":{"cases":1,"deaths":0}},
        "2020-01-23":{"new":{"cases":2,"deaths":0},"cumulative":{"cases":3,"deaths":0}}}}]"#;
    server.set("/stats.json", reordered);
    let before = sb.store_files();
    let r = sb.sync(&url, &[]);
    assert_eq!((r.code, r.outcome()), (0, "unchanged"), "{r:?}");
    assert_eq!(sb.store_files(), before);
}

#[test]
fn changed_data_publishes_a_verified_delta_in_the_design_format() {
    let v = dataset(&["france", "spain"]);
    let (server, sb, url) = published(&v);
    let mut v2 = v.clone();
    v2[1]["dates"]["2020-01-24"] =
        json!({"new": {"cases": 5, "deaths": 1}, "cumulative": {"cases": 8, "deaths": 1}});
    server.set("/stats.json", body(&v2));
    let r = sb.sync(&url, &[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    assert_eq!(r.field("version").as_deref(), Some("2"));
    assert_eq!(r.field("changed").as_deref(), Some("1"));

    let manifest = sb.manifest(DATASET);
    let e2 = &manifest["versions"][1];
    assert_eq!(e2["prev_sha256"], manifest["versions"][0]["sha256"]);
    let delta = sb.delta(e2["delta"].as_str().unwrap());
    assert_eq!(delta["format"], "snapsync-delta/1");
    assert_eq!(delta["dataset"], DATASET);
    assert_eq!(
        delta["from"],
        json!({"version": 1, "sha256": manifest["versions"][0]["sha256"]})
    );
    assert_eq!(delta["to"], json!({"version": 2, "sha256": e2["sha256"]}));
    assert_eq!(
        delta["summary"],
        json!({"added": 0, "removed": 0, "moved": 0, "changed": 1})
    );
    assert_eq!(delta["changes"], json!([{"key": "spain", "op": "changed"}]));
    assert_eq!(
        delta["patch"],
        json!([{"op": "add", "path": "/1/dates/2020-01-24",
                "value": {"cumulative": {"cases": 8, "deaths": 1}, "new": {"cases": 5, "deaths": 1}}}])
    );
    assert!(delta["created_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_304_ends_the_run_without_parsing_or_uploading() {
    let v = dataset(&["france"]);
    let (server, sb, url) = published(&v);
    let before = sb.store_files();
    let r = sb.sync(&url, &[]);
    assert_eq!((r.code, r.outcome()), (0, "not-modified"), "{r:?}");
    let headers = server.last_headers("/stats.json");
    assert!(
        headers.iter().any(|(k, _)| k == "if-none-match"),
        "{headers:?}"
    );
    assert_eq!(sb.store_files(), before);
    // Not even a body that would fail to parse matters when the server says 304.
    assert_eq!(r.field("version").as_deref(), Some("1"));
}

/// How the dataset's URL changes between two runs, on a server that would answer the old
/// URL's validators with 304 for the new one.
#[derive(Debug, Clone, Copy)]
enum UrlChange {
    /// Another file with the same ETag (tags that name a release, not a file's content).
    PathSameEtag,
    /// Another, older file, on a server without ETags: If-Modified-Since says "not newer".
    PathOlderFile,
    /// The same path with another query (`?day=1` → `?day=2`): the exact URL counts.
    Query,
}

#[rstest::rstest]
#[case::other_path_same_etag(UrlChange::PathSameEtag)]
#[case::other_path_older_file(UrlChange::PathOlderFile)]
#[case::other_query(UrlChange::Query)]
fn validators_are_only_sent_to_the_url_they_came_from(#[case] change: UrlChange) {
    let server = HttpServer::start();
    let sb = Sandbox::new();
    let (old, new) = (
        body(&dataset(&["france", "spain"])),
        body(&dataset(&["france", "italy"])),
    );
    let (url_a, url_b, path_b) = match change {
        UrlChange::PathSameEtag => {
            server.set_with_etag("/a.json", old, "\"release-7\"");
            server.set_with_etag("/b.json", new.clone(), "\"release-7\"");
            (server.url("/a.json"), server.url("/b.json"), "/b.json")
        }
        UrlChange::PathOlderFile => {
            // b.json is set first: its Last-Modified is older than a.json's.
            server.set("/b.json", new.clone());
            server.set("/a.json", old);
            server.set_validators("/a.json", false, true);
            server.set_validators("/b.json", false, true);
            (server.url("/a.json"), server.url("/b.json"), "/b.json")
        }
        UrlChange::Query => {
            server.set_with_etag("/d.json", old, "\"release-7\"");
            (
                server.url("/d.json?day=1"),
                server.url("/d.json?day=2"),
                "/d.json",
            )
        }
    };
    let r = sb.sync(&url_a, &[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    if let UrlChange::Query = change {
        server.set_with_etag("/d.json", new.clone(), "\"release-7\"");
    }

    let r = sb.sync(&url_b, &[]);
    assert_eq!(
        (r.code, r.outcome(), r.field("version").as_deref()),
        (0, "changed", Some("2")),
        "{change:?}: a different file was taken for not-modified: {r:?}"
    );
    let headers = server.last_headers(path_b);
    assert!(
        !headers
            .iter()
            .any(|(k, _)| k == "if-none-match" || k == "if-modified-since"),
        "{change:?}: the old URL's validators went to the new one: {headers:?}"
    );
    let doc: Value = serde_json::from_slice(&sb.latest_bytes(DATASET)).unwrap();
    assert_eq!(doc[1]["country"]["key"], "italy");

    // The new URL's own validators are used on its next run.
    let r = sb.sync(&url_b, &[]);
    assert_eq!((r.code, r.outcome()), (0, "not-modified"), "{r:?}");
}

#[test]
fn a_record_inserted_in_the_middle_is_one_add() {
    let (server, sb, url) = published(&dataset(&["a", "b", "d", "e"]));
    server.set("/stats.json", body(&dataset(&["a", "b", "c", "d", "e"])));
    let r = sb.sync(&url, &[]);
    assert_eq!(r.field("added").as_deref(), Some("1"), "{r:?}");
    let delta = sb.delta(
        sb.manifest(DATASET)["versions"][1]["delta"]
            .as_str()
            .unwrap(),
    );
    let patch = delta["patch"].as_array().unwrap();
    assert_eq!(patch.len(), 1, "{patch:?}");
    assert_eq!(patch[0]["op"], "add");
    assert_eq!(patch[0]["path"], "/2");
    assert_eq!(patch[0]["value"]["country"]["key"], "c");
    assert_eq!(delta["changes"], json!([{"key": "c", "op": "added"}]));
}

#[test]
fn a_removed_record_is_one_remove() {
    let (server, sb, url) = published(&dataset(&["a", "b", "c"]));
    server.set("/stats.json", body(&dataset(&["a", "c"])));
    let r = sb.sync(&url, &[]);
    assert_eq!(r.field("removed").as_deref(), Some("1"), "{r:?}");
    let delta = sb.delta(
        sb.manifest(DATASET)["versions"][1]["delta"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(delta["patch"], json!([{"op": "remove", "path": "/1"}]));
}

#[test]
fn a_deep_value_change_is_replaced_at_its_own_path() {
    let v = dataset(&["a", "b"]);
    let (server, sb, url) = published(&v);
    let mut v2 = v.clone();
    v2[0]["dates"]["2020-01-22"]["new"]["deaths"] = json!(4);
    server.set("/stats.json", body(&v2));
    sb.sync(&url, &[]);
    let delta = sb.delta(
        sb.manifest(DATASET)["versions"][1]["delta"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        delta["patch"],
        json!([{"op": "replace", "path": "/0/dates/2020-01-22/new/deaths", "value": 4}])
    );
}

#[test]
fn deleting_the_database_loses_nothing_and_publishes_no_duplicate() {
    let v = dataset(&["a", "b"]);
    let (server, sb, url) = published(&v);
    server.set_validators("/stats.json", false, false);
    std::fs::remove_file(sb.db()).unwrap();
    let before = sb.store_files();
    let r = sb.sync(&url, &[]);
    assert_eq!((r.code, r.outcome()), (0, "unchanged"), "{r:?}");
    assert_eq!(
        sb.store_files(),
        before,
        "a fresh database re-learns the version from the store"
    );
    // A change after that builds on the store's version, reading latest.json once.
    let mut v2 = v.clone();
    v2[0]["dates"]["2020-01-22"]["new"]["cases"] = json!(7);
    server.set("/stats.json", body(&v2));
    std::fs::remove_file(sb.db()).unwrap();
    let r = sb.sync(&url, &[]);
    assert_eq!(r.field("version").as_deref(), Some("2"), "{r:?}");
    let versions = sb.manifest(DATASET)["versions"].as_array().unwrap().len();
    assert_eq!(versions, 2);
    let status = sb.run(&["status", "--json"]);
    let s: Value = serde_json::from_str(status.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(s["agreement"], "agrees", "{status:?}");
}

#[test]
fn a_corrupt_database_file_is_reported_in_one_line_and_rebuilt() {
    let v = dataset(&["a"]);
    let (server, sb, url) = published(&v);
    server.set_validators("/stats.json", false, false);
    // A SQLite header, then garbage (a file without the header is refused, not rebuilt).
    let mut garbage = b"SQLite format 3\0".to_vec();
    garbage.resize(4096, 0xAB);
    std::fs::write(sb.db(), garbage).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", sb.db().display()));
    }
    let r = sb.sync(&url, &[]);
    assert_eq!((r.code, r.outcome()), (0, "unchanged"), "{r:?}");
    let warning: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("is corrupt") && l.contains("moved it to"))
        .collect();
    assert_eq!(warning.len(), 1, "{r:?}");
    assert!(warning[0].contains("level=warn"), "{r:?}");
}

#[test]
fn failures_exit_1_with_one_line_and_publish_nothing() {
    let v = dataset(&["a"]);
    let (server, sb, url) = published(&v);
    let before = sb.store_files();
    server.push_faults("/stats.json", [Fault::Status(404)]);
    let r = sb.sync(&url, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.outcome(), "failed");
    assert!(r.summary().contains("HTTP 404"), "{r:?}");
    server.push_faults(
        "/stats.json",
        [Fault::Respond {
            status: 200,
            headers: vec![],
            body: b"<html>oops</html>".to_vec(),
        }],
    );
    let r = sb.sync(&url, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.summary().contains("invalid JSON"), "{r:?}");
    assert!(r.summary().contains(&url), "the error names the URL: {r:?}");
    server.set("/stats.json", "[]");
    let r = sb.sync(&url, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.summary()
            .contains("guard failed: the array of records is empty"),
        "{r:?}"
    );
    assert_eq!(sb.store_files(), before);
    let r = sb.sync(&url, &["--force"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
}

#[test]
fn configuration_errors_exit_2() {
    let sb = Sandbox::new();
    let r = sb.run(&["run", "--store", "ftp://nowhere"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    assert!(
        r.stderr
            .contains("expected file://DIR or s3://BUCKET/PREFIX"),
        "{r:?}"
    );
    let r = sb.run(&["run", "--dataset", "../escape"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = sb.run(&["run", "--bogus-flag"]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn log_lists_versions_newest_first() {
    let (server, sb, url) = published(&dataset(&["a", "b"]));
    server.set("/stats.json", body(&dataset(&["a", "b", "c"])));
    sb.sync(&url, &[]);
    let r = sb.run(&["log"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert!(
        lines[0].starts_with("v2 ")
            && lines[0].contains("+1 -0 ~0")
            && lines[0].contains("records=3"),
        "{r:?}"
    );
    assert!(lines[1].starts_with("v1 "), "{r:?}");
}

#[test]
fn every_command_has_help() {
    let sb = Sandbox::new();
    for cmd in ["run", "status", "log"] {
        let r = sb.run(&[cmd, "--help"]);
        assert_eq!(r.code, 0, "{cmd}: {r:?}");
        assert!(r.stdout.contains("Usage: snapsync"), "{cmd}: {r:?}");
        assert!(r.stdout.contains("--store <URL>"), "{cmd}: {r:?}");
    }
}

/// The real upstream re-sorts its records every day (by case counts). A day on which the
/// ranking changed and one new date was appended to every record: no key appeared or
/// disappeared, so nothing is added or removed; the records that changed rank are moves, and
/// every count is the same in the summary line, `--json`, the manifest, `log` and `diff`.
#[test]
fn a_re_sorted_day_is_moves_not_removes_and_adds() {
    let keys = [
        "us", "india", "brazil", "france", "uk", "russia", "spain", "italy",
    ];
    let day = |order: &[&str], days: &[(&str, u64)]| -> Value {
        Value::Array(order.iter().map(|k| country(k, days)).collect())
    };
    let d1 = [("2020-01-22", 1)];
    let (server, sb, url) = published(&day(&keys, &d1));
    // Day 2: "spain" climbs from 7th to 2nd, "us" drops to last; one date more for everyone.
    let order2 = [
        "india", "spain", "brazil", "france", "uk", "russia", "italy", "us",
    ];
    let d2 = [("2020-01-22", 1), ("2020-01-23", 5)];
    server.set("/stats.json", body(&day(&order2, &d2)));
    let r = sb.sync(&url, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let j: Value = serde_json::from_str(r.summary()).unwrap();
    assert_eq!(
        (&j["added"], &j["removed"], &j["moved"], &j["changed"]),
        (&json!(0), &json!(0), &json!(2), &json!(8)),
        "{j}"
    );
    let entry = sb.manifest(DATASET)["versions"][1].clone();
    assert_eq!((&entry["moved"], &entry["changed"]), (&json!(2), &json!(8)));
    let delta = sb.delta(entry["delta"].as_str().unwrap());
    assert_eq!(
        delta["summary"],
        json!({"added": 0, "removed": 0, "moved": 2, "changed": 8})
    );
    let patch = delta["patch"].as_array().unwrap();
    let ops = |name: &str| patch.iter().filter(|op| op["op"] == name).count();
    assert_eq!(
        (ops("move"), ops("add"), ops("remove")),
        (2, 8, 0),
        "{patch:?}"
    );
    // Every add is one date inside a record, never a whole record.
    assert!(
        patch
            .iter()
            .filter(|op| op["op"] == "add")
            .all(|op| op["path"].as_str().unwrap().ends_with("/dates/2020-01-23")),
        "{patch:?}"
    );
    // One change per key: the two that moved are marked, none is listed twice.
    let changes = delta["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 8);
    let moved: Vec<&str> = changes
        .iter()
        .filter(|c| c["moved"] == true)
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(moved.len(), 2, "{changes:?}");
    assert!(
        moved.contains(&"us") || moved.contains(&"spain"),
        "{changes:?}"
    );
    assert!(changes.iter().all(|c| c["op"] == "changed"), "{changes:?}");

    let log = sb.run(&["log"]);
    assert!(
        log.stdout
            .lines()
            .next()
            .unwrap()
            .contains("+0 -0 ~8 moved=2"),
        "{log:?}"
    );
    let diff = sb.run(&["diff", "1", "2"]);
    assert!(
        diff.stdout
            .starts_with("v1..v2 added=0 removed=0 moved=2 changed=8\n"),
        "{diff:?}"
    );
    // Day 3: the same data, only reshuffled (upstream does this with ties): moves only.
    let order3 = [
        "spain", "india", "brazil", "france", "uk", "russia", "italy", "us",
    ];
    server.set("/stats.json", body(&day(&order3, &d2)));
    let r = sb.sync(&url, &[]);
    assert_eq!(r.outcome(), "changed", "{r:?}");
    assert!(
        r.summary().ends_with("added=0 removed=0 moved=1 changed=0"),
        "{r:?}"
    );
    let entry = sb.manifest(DATASET)["versions"][2].clone();
    let delta = sb.delta(entry["delta"].as_str().unwrap());
    assert_eq!(
        delta["patch"],
        json!([{"op": "move", "from": "/1", "path": "/0"}])
    );
    assert_eq!(
        delta["changes"],
        json!([{"key": "spain", "op": "moved", "moved": true}])
    );
}

/// `snapsync log | head -1`: the reader closes the pipe early. Here it is closed before the
/// command writes anything, so the very first write finds it closed, on every command that
/// prints. The command ends quietly: no panic ("failed printing to stdout"), no error line,
/// and the status it would have had (0, or 1 when a dataset failed).
#[rstest::rstest]
#[case::log(&["log"], Some(0))]
#[case::log_json(&["log", "--json"], Some(0))]
#[case::status(&["status"], Some(0))]
#[case::status_json(&["status", "--json"], Some(0))]
#[case::verify(&["verify"], Some(0))]
#[case::verify_json(&["verify", "--json"], Some(0))]
#[case::restore_to_stdout(&["restore", "--version", "1", "--out", "-"], Some(0))]
#[case::diff(&["diff", "1", "3"], Some(0))]
#[case::diff_patch(&["diff", "1", "3", "--format", "patch"], Some(0))]
#[case::prune_dry_run(&["prune", "--keep-daily", "1", "--keep-monthly", "1", "--dry-run"], Some(0))]
#[case::pull(&["pull", "--out", "copy.json"], Some(0))]
#[case::run(&["run"], Some(0))]
#[case::doctor(&["doctor"], None)]
fn a_closed_stdout_ends_a_command_quietly(#[case] args: &[&str], #[case] code: Option<i32>) {
    let server = HttpServer::start();
    let sb = Sandbox::new();
    let url = server.url("/stats.json");
    for keys in [&["a", "b"][..], &["a", "b", "c"], &["b", "c", "d"]] {
        server.set("/stats.json", body(&dataset(keys)));
        let r = sb.sync(&url, &[]);
        assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = sb.cmd(args);
    cmd.args(["--url", &url]).stdout(writer);
    let r = crate::common::cli::to_result(cmd.output().unwrap());
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("Broken pipe"),
        "{r:?}"
    );
    assert_ne!(r.code, 101, "{r:?}");
    if let Some(code) = code {
        assert_eq!(r.code, code, "{r:?}");
    }
}

/// Closing stdout does not hide a failure that already happened: `run` prints after every
/// dataset ran, so its status still says one failed.
#[test]
fn a_closed_stdout_keeps_a_failed_runs_status() {
    let server = HttpServer::start();
    let sb = Sandbox::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = sb.cmd(&["run", "--url", &server.url("/missing.json")]);
    cmd.stdout(writer);
    let r = crate::common::cli::to_result(cmd.output().unwrap());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
}

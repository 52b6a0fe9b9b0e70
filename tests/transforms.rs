//! `snapsync.toml` with transforms, end to end: the shipped example (drop cumulative + join the
//! countries table), a change in the joined table alone, a joined table over HTTP cached by its
//! ETag, several datasets where one fails, and configuration errors that name file and place.

mod common;

use std::path::Path;

use common::cli::Sandbox;
use common::http::HttpServer;
use serde_json::{json, Value};

fn covid(keys: &[&str]) -> Vec<u8> {
    let recs: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"country": {"key": k, "name": k.to_uppercase()},
                   "dates": {"2020-01-22": {"new": {"cases": 1}, "cumulative": {"cases": 1}},
                             "2020-01-23": {"new": {"cases": 2}, "cumulative": {"cases": 3}}}})
        })
        .collect();
    serde_json::to_vec(&recs).unwrap()
}

/// The example directory copied into the sandbox (so its relative table path resolves there).
fn example(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.path().join("examples");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["snapsync.toml", "countries-info.csv"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(f),
            dir.join(f),
        )
        .unwrap();
    }
    dir
}

#[test]
fn the_example_config_drops_cumulative_and_joins_the_countries_table() {
    let server = HttpServer::start();
    server.set(
        "/stats.json",
        covid(&[
            "france",
            "south-korea",
            "russia",
            "atlantis",
            "spain",
            "italy",
            "japan",
            "india",
            "china",
            "brazil",
        ]),
    );
    let sb = Sandbox::new();
    let dir = example(&sb);
    let config = dir.join("snapsync.toml");
    let r = sb.run(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "--url",
        &server.url("/stats.json"),
    ]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    assert_eq!(r.field("unmatched").as_deref(), Some("1"), "{r:?}");
    assert!(r.stderr.contains("keys=atlantis"), "{r:?}");
    let latest: Value = serde_json::from_slice(&sb.latest_bytes("covid-countries-info")).unwrap();
    assert_eq!(
        latest[0],
        json!({"country": {"key": "france", "name": "FRANCE", "continent": "Europe", "income_group": "High income", "population": 65273511},
               "dates": {"2020-01-22": {"new": {"cases": 1}}, "2020-01-23": {"new": {"cases": 2}}}})
    );
    assert_eq!(
        latest[1]["country"]["population"], 51269185,
        "mapped by names: Korea, Rep."
    );
    assert_eq!(
        latest[2]["country"]["continent"], "Europe",
        "mapped by names: Russian Federation"
    );
    assert!(
        latest[3]["country"].get("continent").is_none(),
        "no row for atlantis"
    );

    // Same source (the server answers 304), same table: nothing to do.
    let r = sb.run(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "--url",
        &server.url("/stats.json"),
    ]);
    assert_eq!(r.outcome(), "not-modified", "{r:?}");

    // The joined table alone changes: the source is fetched again (its 304 no longer proves
    // anything) and a new version's delta is just that change.
    let csv = std::fs::read_to_string(dir.join("countries-info.csv")).unwrap();
    std::fs::write(
        dir.join("countries-info.csv"),
        csv.replace(
            "france,Europe,High income,65273511",
            "france,Europe,High income,65300000",
        ),
    )
    .unwrap();
    let r = sb.run(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "--url",
        &server.url("/stats.json"),
    ]);
    assert_eq!(
        (r.code, r.outcome(), r.field("changed").as_deref()),
        (0, "changed", Some("1")),
        "{r:?}"
    );
    let manifest = sb.manifest("covid-countries-info");
    let delta = sb.delta(manifest["versions"][1]["delta"].as_str().unwrap());
    assert_eq!(
        delta["patch"],
        json!([{"op": "replace", "path": "/0/country/population", "value": 65300000}])
    );
}

#[test]
fn a_joined_table_over_http_is_cached_by_its_etag() {
    let server = HttpServer::start();
    server.set("/stats.json", covid(&["france", "spain"]));
    server.set(
        "/info.json",
        r#"[{"id": "France", "eu": true}, {"id": "Spain", "eu": true}]"#,
    );
    let sb = Sandbox::new();
    let config = sb.path().join("snapsync.toml");
    std::fs::write(
        &config,
        format!(
            "[[dataset]]\nname = \"c\"\nurl = \"{}\"\n[[dataset.transform]]\njoin = {{ source = \"{}\", key = \"id\", on = \"/country/key\", into = \"\", fields = {{ eu = \"eu\" }} }}\n",
            server.url("/stats.json"),
            server.url("/info.json")
        ),
    )
    .unwrap();
    let r = sb.run(&["--config", config.to_str().unwrap(), "run"]);
    assert_eq!(
        (r.code, r.outcome(), r.field("unmatched").as_deref()),
        (0, "changed", Some("0")),
        "{r:?}"
    );
    let latest: Value = serde_json::from_slice(&sb.latest_bytes("c")).unwrap();
    assert_eq!(
        latest[1]["eu"], true,
        "joined on the slug of the table's names"
    );
    let r = sb.run(&["--config", config.to_str().unwrap(), "run"]);
    assert_eq!(r.code, 0, "{r:?}");
    let h = server.last_headers("/info.json");
    assert!(
        h.iter().any(|(k, _)| k == "if-none-match"),
        "the table is fetched conditionally: {h:?}"
    );
}

#[test]
fn several_datasets_run_and_one_failure_does_not_stop_the_others() {
    let server = HttpServer::start();
    server.set("/a.json", covid(&["a"]));
    server.set("/b.json", covid(&["b"]));
    let sb = Sandbox::new();
    let config = sb.path().join("snapsync.toml");
    let mut text = String::new();
    for (name, path) in [
        ("one", "/a.json"),
        ("broken", "/missing.json"),
        ("two", "/b.json"),
    ] {
        text.push_str(&format!(
            "[[dataset]]\nname = \"{name}\"\nurl = \"{}\"\n",
            server.url(path)
        ));
    }
    std::fs::write(&config, text).unwrap();
    let r = sb.run(&["--config", config.to_str().unwrap(), "run"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert!(lines[0].starts_with("one changed"), "{r:?}");
    assert!(
        lines[1].starts_with("broken failed") && lines[1].contains("404"),
        "{r:?}"
    );
    assert!(lines[2].starts_with("two changed"), "{r:?}");
}

#[test]
fn configuration_errors_name_the_file_and_the_transform() {
    let sb = Sandbox::new();
    let config = sb.path().join("snapsync.toml");
    let cases = [
        ("[[dataset]]\nname = \"a\"\nurl = \"https://e.com/x\"\n[[dataset.transform]]\ndrop = [\"/*/a\"]\nkeep = [\"/*/b\"]\n", "transform #1: needs exactly one of"),
        ("[[dataset]]\nname = \"a\"\nurl = \"https://e.com/x\"\n[[dataset.transform]]\ndrop = [\"no-slash\"]\n", "transform #1 (drop): JSON pointer"),
        ("[[dataset]]\nname = \"a\"\nurl = \"https://e.com/x\"\n[[dataset.transform]]\nexplode = true\n", "snapsync.toml:5:1"),
        ("[[dataset]]\nname = \"a\"\nurl = \"https://e.com/x\"\n[[dataset.transform]]\njoin = { source = \"nope.csv\", key = \"k\", on = \"/k\", fields = { a = \"a\" } }\n", "transform #1 (join): source"),
        ("[[dataset]]\nname = \"a\"\nurl = \"https://e.com/x\"\n[[dataset.transform]]\nfilter = { field = \"/k\" }\n", "needs one of equals, in, or min/max"),
        ("[[dataset]]\nname = \"a\"\nurl = \"https://e.com/x\"\nschedule = \"daily 25:00\"\n", "[[dataset]] #1: schedule"),
    ];
    for (text, expect) in cases {
        std::fs::write(&config, text).unwrap();
        let r = sb.run(&["--config", config.to_str().unwrap(), "run"]);
        assert_eq!(r.code, 2, "{text}\n{r:?}");
        assert!(
            r.stderr.contains(expect),
            "{text}\nexpected {expect:?} in {r:?}"
        );
        assert!(r.stderr.contains("snapsync.toml"), "{r:?}");
        assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    }
}

#[test]
fn replay_joins_the_table_into_every_day_and_stops_at_a_broken_day() {
    let sb = Sandbox::new();
    let dir = example(&sb);
    let config = dir.join("snapsync.toml");
    let with_config = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        sb.run(&all)
    };
    let days = sb.path().join("days");
    // Replays the folder: the exit code and the parts of the summary line it must show.
    let replay = |code: i32, parts: &[&str]| {
        let r = with_config(&["replay", days.to_str().unwrap()]);
        assert_eq!(r.code, code, "{r:?}");
        assert!(parts.iter().all(|p| r.summary().contains(p)), "{r:?}");
        r
    };
    std::fs::create_dir(&days).unwrap();
    let ten = [
        "france",
        "south-korea",
        "russia",
        "spain",
        "italy",
        "japan",
        "india",
        "china",
        "brazil",
        "chile",
    ];
    let mut eleven = ten.to_vec();
    eleven.push("peru");
    std::fs::write(days.join("2021-03-01.json"), covid(&ten)).unwrap();
    std::fs::write(days.join("2021-03-02.json"), covid(&eleven)).unwrap();
    std::fs::write(days.join("2021-03-03.json"), b"[{\"country\": ").unwrap();
    std::fs::write(days.join("2021-03-04.json"), covid(&ten)).unwrap();

    // Replay reads each day ahead of its run; the joined table still comes from the table's
    // own source, not from the day file, and a broken day stops the replay where it is.
    let r = replay(1, &["changed=2", "failed=1", "not_run=1"]);
    let failed = r.stdout.lines().find(|l| l.contains("failed")).unwrap();
    assert!(
        failed.contains("2021-03-03.json") && failed.contains("error="),
        "{r:?}"
    );
    let m = sb.manifest("covid-countries-info");
    assert_eq!(m["versions"].as_array().unwrap().len(), 2, "{m}");
    let latest: Value = serde_json::from_slice(&sb.latest_bytes("covid-countries-info")).unwrap();
    assert_eq!(latest.as_array().unwrap().len(), 11);
    assert_eq!(latest[0]["country"]["continent"], "Europe", "{latest}");
    assert!(latest[0]["dates"]["2020-01-22"].get("cumulative").is_none());
    let r = with_config(&["verify"]);
    assert_eq!(r.code, 0, "{r:?}");

    // Fixed, the rest replays from where the history ends; a day like the one before it is no
    // new version.
    std::fs::write(days.join("2021-03-03.json"), covid(&eleven[1..])).unwrap();
    std::fs::write(days.join("2021-03-05.json"), covid(&ten)).unwrap();
    replay(0, &["changed=2", "unchanged=1", "skipped=2"]);
    let r = with_config(&["verify"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Only the last file's body went into the database's cache, for the next run to diff from.
    let db = rusqlite::Connection::open(sb.db()).unwrap();
    let cached: Vec<i64> = db
        .prepare("SELECT version FROM body_cache")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(cached, vec![4]);
}

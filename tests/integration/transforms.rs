//! `snapsync.toml` with transforms, end to end: the shipped example (drop cumulative + join the
//! countries table), a change in the joined table alone, a joined table over HTTP cached by its
//! ETag, several datasets where one fails, and configuration errors that name file and place.

use std::path::Path;

use crate::common::cli::Sandbox;
use crate::common::http::HttpServer;
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
    for f in ["snapsync.toml", "countries-info.csv", "countries-info.xlsx"] {
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

/// The keys of the real coviddata countries file today (tests/fixtures/coviddata-countries.tsv).
fn coviddata_keys() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coviddata-countries.tsv"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.get(2) == Some(&"current")).then(|| cols[1].to_string())
        })
        .collect()
}

#[test]
fn the_example_config_joins_the_workbook_to_every_real_coviddata_key() {
    let keys = coviddata_keys();
    assert_eq!(keys.len(), 217);
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let server = HttpServer::start();
    server.set("/stats.json", covid(&key_refs));
    let sb = Sandbox::new();
    let dir = example(&sb);
    let config = dir.join("snapsync.toml");
    let run = || {
        sb.run(&[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--url",
            &server.url("/stats.json"),
        ])
    };
    let r = run();
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    // The five that are no country: three ships, "others", and "north-ireland".
    assert_eq!(r.field("unmatched").as_deref(), Some("5"), "{r:?}");
    let latest: Value = serde_json::from_slice(&sb.latest_bytes("covid-countries-info")).unwrap();
    let records = latest.as_array().unwrap();
    let by_key = |k: &str| -> &Value {
        let i = keys.iter().position(|x| x == k).unwrap();
        &records[i]["country"]
    };
    assert_eq!(
        *by_key("france"),
        json!({"key": "france", "name": "FRANCE", "continent": "Europe",
               "country_clasification": "High income", "government_type": "Full democracy",
               "corruption_preception": 69, "development_status": "Developed",
               "land_conditions": "Coastal", "gdp_per_unit_of_energy_use_constant": 11.8,
               "population_total": 67059887, "urban_population_pc_of_total_population": 80.709})
    );
    for (key, population) in [
        ("south-korea", 51709098),       // "Korea, Rep."
        ("russia", 144373535),           // "Russian Federation"
        ("congo-kinshasa", 86790567),    // "Congo, Dem. Rep."
        ("palestine", 4685306),          // "West Bank and Gaza", through `names`
        ("west-bank-and-gaza", 4685306), // the same row
    ] {
        assert_eq!(by_key(key)["population_total"], population, "{key}");
    }
    assert_eq!(
        by_key("palestine")["corruption_preception"],
        Value::Null,
        "NA is null"
    );
    assert!(by_key("cruise-ship").get("continent").is_none());
    let matched = records
        .iter()
        .filter(|r| r["country"].get("continent").is_some())
        .count();
    assert_eq!(matched, 212, "212 of 217 = 97.7% matched");
    // Whole columns typed: numbers are numbers or null, never the text "NA".
    for r in records
        .iter()
        .filter(|r| r["country"].get("continent").is_some())
    {
        let c = &r["country"];
        assert!(c["population_total"].is_u64(), "{c}");
        for f in [
            "corruption_preception",
            "gdp_per_unit_of_energy_use_constant",
            "urban_population_pc_of_total_population",
        ] {
            assert!(c[f].is_number() || c[f].is_null(), "{f}: {c}");
        }
    }
    assert!(!String::from_utf8_lossy(&sb.latest_bytes("covid-countries-info")).contains("\"NA\""));

    // Same source (the server answers 304), same table: nothing to do.
    let r = run();
    assert_eq!(r.outcome(), "not-modified", "{r:?}");

    // The joined table alone changes: the source is fetched again (its 304 no longer proves
    // anything) and a new version's delta is just that change. France is row 70, population
    // column I.
    let xlsx = dir.join("countries-info.xlsx");
    crate::common::workbook::tool(&[
        "setcell",
        xlsx.to_str().unwrap(),
        "Database_option2",
        "I70",
        "67100000",
    ]);
    let r = run();
    assert_eq!(
        (r.code, r.outcome(), r.field("changed").as_deref()),
        (0, "changed", Some("1")),
        "{r:?}"
    );
    let manifest = sb.manifest("covid-countries-info");
    let delta = sb.delta(manifest["versions"][1]["delta"].as_str().unwrap());
    let france = keys.iter().position(|k| k == "france").unwrap();
    assert_eq!(
        delta["patch"],
        json!([{"op": "replace", "path": format!("/{france}/country/population_total"), "value": 67100000}])
    );
}

/// Upstream's habits: the next day's file is re-sorted and a country's key has been renamed
/// (`czech-republic` to `czechia`, as coviddata did). The join follows the record, not its
/// position, and the new key matches the same row through the alias table.
#[test]
fn the_example_join_follows_reordered_and_renamed_records() {
    let keys = coviddata_keys();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let server = HttpServer::start();
    server.set("/stats.json", covid(&key_refs));
    let sb = Sandbox::new();
    let config = example(&sb).join("snapsync.toml");
    let run = || {
        sb.run(&[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--url",
            &server.url("/stats.json"),
        ])
    };
    let r = run();
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let joined = |k: &str| -> Value {
        let latest: Value =
            serde_json::from_slice(&sb.latest_bytes("covid-countries-info")).unwrap();
        latest
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["country"]["key"] == k)
            .map(|r| r["country"].clone())
            .unwrap_or_else(|| panic!("no record {k}"))
    };
    let before = joined("czech-republic");
    assert_eq!(
        before["population_total"].as_u64().map(|p| p > 10_000_000),
        Some(true)
    );

    let mut next: Vec<&str> = key_refs.iter().rev().copied().collect();
    for k in &mut next {
        if *k == "czech-republic" {
            *k = "czechia";
        }
    }
    server.set("/stats.json", covid(&next));
    let r = run();
    assert_eq!(
        (r.code, r.outcome(), r.field("unmatched").as_deref()),
        (0, "changed", Some("5")),
        "{r:?}"
    );
    let mut after = joined("czechia");
    // The generator names a record after its key; the rest is the row.
    after["key"] = before["key"].clone();
    after["name"] = before["name"].clone();
    assert_eq!(after, before, "the renamed key joins the same row");
}

#[test]
fn the_example_csv_and_workbook_hold_the_same_table() {
    let keys = coviddata_keys();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let server = HttpServer::start();
    server.set("/stats.json", covid(&key_refs));
    let mut published = Vec::new();
    for table in ["countries-info.xlsx", "countries-info.csv"] {
        let sb = Sandbox::new();
        let dir = example(&sb);
        let config = dir.join("snapsync.toml");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace(
                "source = \"countries-info.xlsx\"",
                &format!("source = \"{table}\""),
            )
            .replace("sheet = \"Database_option2\"", "");
        std::fs::write(&config, text).unwrap();
        let r = sb.run(&[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--url",
            &server.url("/stats.json"),
        ]);
        assert_eq!((r.code, r.outcome()), (0, "changed"), "{table}: {r:?}");
        published.push(sb.latest_bytes("covid-countries-info"));
    }
    assert!(
        published[0] == published[1],
        "xlsx and csv give the same bytes"
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

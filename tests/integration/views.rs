//! The history as people and query engines see it (issue 19), through the real binary on
//! covid-shaped data with the upstream's habits (re-sorted every day, ties reshuffled, keys
//! renamed, records dropped and added) and revisions of past values:
//!
//! - `index.html` loaded in headless Chromium: no console error, the chart and one row per
//!   version, every relative link resolving to a file of the store (a screenshot is saved in
//!   `target/test-artifacts/`);
//! - the change table read by DuckDB: its counts equal what each delta says;
//! - `history KEY` equal to what Python's `jsonpatch` rebuilds of every version;
//! - a page that cannot be written is a warning, and `verify --repair` writes what is missing;
//! - `diff --format changes` and `log` in words and counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::cli::{snapsync_gen, RunResult, Sandbox};
use crate::common::http::HttpServer;

const DATASET: &str = "covid-countries";

/// `n` days of `countries` covid-shaped records with the upstream's habits and revisions of
/// the last week's values, one file per day (`2021-03-01.json`, …).
fn days(dir: &Path, countries: usize, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let day = |i: usize| {
        let t = time::Date::from_calendar_date(2021, time::Month::March, 1).unwrap()
            + time::Duration::days(i as i64);
        dir.join(format!("{t}.json"))
    };
    let first = day(0);
    snapsync_gen(&[
        "--countries",
        &countries.to_string(),
        "--days",
        "120",
        "--upstream",
        "--out",
        first.to_str().unwrap(),
    ]);
    let mut files = vec![first];
    for i in 1..n {
        let next = day(i);
        snapsync_gen(&[
            "next",
            "--in",
            files[i - 1].to_str().unwrap(),
            "--out",
            next.to_str().unwrap(),
            "--seed",
            &i.to_string(),
            "--upstream",
            // Rates well above the real file's, so 60 days see renames, drops and adds.
            "--rename",
            "0.01",
            "--churn",
            "0.01",
            "--revise",
            "0.002",
            "--revise-window",
            "7",
        ]);
        files.push(next);
    }
    files
}

fn python() -> String {
    std::env::var("SNAPSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SNAPSYNC_TEST_PYTHON is not set: run the suite with scripts/test (it installs duckdb into a venv)")
    })
}

fn chromium() -> String {
    std::env::var("SNAPSYNC_TEST_CHROMIUM").unwrap_or_else(|_| {
        panic!("SNAPSYNC_TEST_CHROMIUM is not set: run the suite with scripts/test (scripts/chromium-env.sh installs Debian's chromium)")
    })
}

/// Headless Chromium on `url`: the DOM after load and what it logged (console messages among
/// it). `screenshot`: also save a PNG of a phone-sized window there.
fn chromium_load(url: &str, screenshot: Option<&Path>) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(png) => {
            c.arg("--window-size=412,1400")
                .arg(format!("--screenshot={}", png.display()));
        }
        None => {
            c.arg("--dump-dom");
        }
    }
    let o = c.arg(url).output().expect("chromium runs");
    assert!(
        o.status.success(),
        "chromium {url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every `href="…"` of a page.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&"))
        .collect()
}

fn page_data(sb: &Sandbox) -> Value {
    let html = std::fs::read_to_string(sb.dataset_dir(DATASET).join("index.html")).unwrap();
    let open = r#"<script type="application/json" id="snapsync-data">"#;
    let start = html.find(open).expect("the page carries its data") + open.len();
    let len = html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..start + len]).unwrap()
}

fn ok(r: RunResult) -> RunResult {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

/// Each version's record `key`, as a consumer rebuilds it with Python's `jsonpatch`: version
/// 1's snapshot, then every delta in order, each result checked against the manifest's hash
/// (`None`: the record is not in that version).
fn rebuilt_records(dir: &Path, key: &str) -> Vec<Option<Value>> {
    let script = r#"
import gzip, hashlib, json, sys, jsonpatch, rfc8785
base, key = sys.argv[1], sys.argv[2]
root = base.rsplit("/", 1)[0]
m = json.load(open(f"{base}/manifest.json"))
doc = None
for e in m["versions"]:
    if doc is None:
        doc = json.load(gzip.open(f"{root}/{e['snapshot']}"))
    else:
        doc = jsonpatch.apply_patch(doc, json.load(gzip.open(f"{root}/{e['delta']}"))["patch"])
    assert hashlib.sha256(rfc8785.dumps(doc)).hexdigest() == e["sha256"], e["version"]
    print(json.dumps(next((r for r in doc if r["country"]["key"] == key), None)))
"#;
    let o = Command::new(python())
        .args(["-c", script, dir.to_str().unwrap(), key])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str(l).unwrap() {
            Value::Null => None,
            v => Some(v),
        })
        .collect()
}

#[test]
fn sixty_versions_have_a_page_a_change_table_duckdb_reads_and_record_histories() {
    let sb = Sandbox::new();
    let files = days(&sb.path().join("days"), 40, 60);
    ok(sb.run(&["replay", sb.path().join("days").to_str().unwrap()]));
    let manifest = sb.manifest(DATASET);
    let versions = manifest["versions"].as_array().unwrap();
    assert_eq!(versions.len(), files.len());
    let dir = sb.dataset_dir(DATASET);

    // The page: one row per version, every version after the first told in words.
    let data = page_data(&sb);
    assert_eq!(data["versions"].as_array().unwrap().len(), 60);
    for v in &data["versions"].as_array().unwrap()[1..] {
        let text = v["changes"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert!(text.contains("appended /dates/"), "{text}");
    }
    let revised: usize = versions
        .iter()
        .map(|v| v["values"]["revised"].as_u64().unwrap_or(0) as usize)
        .sum();
    assert!(revised > 0, "the generator revised past values");

    // In a browser: no console error, the chart and every row; links resolve.
    let url = format!("file://{}", dir.join("index.html").display());
    let (dom, log) = chromium_load(&url, None);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(errors.is_empty(), "console: {errors:?}");
    assert!(dom.contains("<svg"), "the chart is in the page");
    assert_eq!(
        dom.matches("data-series=").count(),
        7,
        "records and values rows"
    );
    for v in 1..=60 {
        assert!(dom.contains(&format!("data-version=\"{v}\"")), "row {v}");
    }
    assert!(
        !dom.contains("<time datetime=\"2021-03-01T00:00:00.000Z\">2021-03-01 00:00 UTC"),
        "the inline script ran (times shown in local form)"
    );
    let links = hrefs(&dom);
    assert!(links.len() > 60, "{links:?}");
    for l in links
        .iter()
        .filter(|l| !l.contains("://") && !l.starts_with('#'))
    {
        assert!(dir.join(l).is_file(), "{l} does not resolve");
    }
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("history-page.png");
    let _ = std::fs::remove_file(&png);
    chromium_load(&url, Some(&png));
    assert!(
        std::fs::metadata(&png).unwrap().len() > 10_000,
        "a screenshot"
    );

    // The change table, in DuckDB, against what every delta says.
    let mut summaries = BTreeMap::new();
    for v in &versions[1..] {
        let delta = sb.delta(v["delta"].as_str().unwrap());
        summaries.insert(v["version"].as_u64().unwrap(), delta["summary"].clone());
    }
    let script = r#"
import duckdb, json, sys
rows = duckdb.sql(f"""
    SELECT version, op, count(*) AS n, count(DISTINCT key) AS keys
    FROM read_parquet('{sys.argv[1]}/changes/*/*.parquet', hive_partitioning = true)
    GROUP BY ALL ORDER BY ALL""").fetchall()
changed = duckdb.sql(f"""
    SELECT version, count(DISTINCT key) FROM read_parquet('{sys.argv[1]}/changes/*/*.parquet', hive_partitioning = true)
    WHERE op IN ('appended', 'revised', 'derived', 'deleted') GROUP BY ALL""").fetchall()
typed = duckdb.sql(f"""
    SELECT count(*) FROM read_parquet('{sys.argv[1]}/changes/*/*.parquet', hive_partitioning = true)
    WHERE op = 'revised' AND new_number IS NOT NULL AND CAST(new AS DOUBLE) = new_number""").fetchall()[0][0]
print(json.dumps({"rows": rows, "changed": changed, "typed": typed}))
"#;
    let o = Command::new(python())
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut counts: BTreeMap<(u64, String), u64> = BTreeMap::new();
    for r in got["rows"].as_array().unwrap() {
        counts.insert(
            (r[0].as_u64().unwrap(), r[1].as_str().unwrap().to_string()),
            r[2].as_u64().unwrap(),
        );
    }
    let changed: BTreeMap<u64, u64> = got["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
        .collect();
    let count = |v: u64, op: &str| counts.get(&(v, op.to_string())).copied().unwrap_or(0);
    let (mut renamed, mut moved) = (0, 0);
    for (v, s) in &summaries {
        assert_eq!(count(*v, "added"), s["added"].as_u64().unwrap(), "v{v} {s}");
        assert_eq!(
            count(*v, "removed"),
            s["removed"].as_u64().unwrap(),
            "v{v} {s}"
        );
        assert_eq!(
            changed.get(v).copied().unwrap_or(0),
            s["changed"].as_u64().unwrap(),
            "v{v} {s}"
        );
        let m = &versions[*v as usize - 1]["values"];
        for op in ["appended", "revised", "derived"] {
            assert_eq!(count(*v, op), m[op].as_u64().unwrap_or(0), "v{v} {op}");
        }
        renamed += s["added"].as_u64().unwrap();
        moved += s["moved"].as_u64().unwrap();
    }
    assert!(
        renamed > 0 && moved > 0,
        "the upstream's habits were exercised"
    );
    assert_eq!(got["typed"].as_u64().unwrap() as usize, revised);

    // The first record a revision touched, from the change table's own rows.
    let o = Command::new(python())
        .args([
            "-c",
            "import duckdb,sys;print(duckdb.sql(f\"SELECT key FROM read_parquet('{sys.argv[1]}/changes/*/*.parquet') WHERE op='revised' ORDER BY version, key LIMIT 1\").fetchall()[0][0])",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let r = ok(sb.run(&["--json", "history", &key]));
    let rows: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let restored = rebuilt_records(&dir, &key);
    let mut want_versions = Vec::new();
    for v in 1..=60usize {
        let before = if v == 1 {
            None
        } else {
            restored[v - 2].clone()
        };
        if before != restored[v - 1] {
            want_versions.push(v as u64);
        }
    }
    let mut got_versions: Vec<u64> = rows
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    got_versions.dedup();
    assert_eq!(got_versions, want_versions);
    let pointer_of = |r: &Value| r["path"].as_str().unwrap().to_string();
    for (i, row) in rows.iter().filter(|r| r["op"] == "revised").enumerate() {
        let v = row["version"].as_u64().unwrap() as usize;
        let path = pointer_of(row);
        let old = restored[v - 2].as_ref().unwrap().pointer(&path).cloned();
        let new = restored[v - 1].as_ref().unwrap().pointer(&path).cloned();
        assert_eq!(old.as_ref(), Some(&row["old"]), "{row}");
        assert_eq!(new.as_ref(), Some(&row["new"]), "{row}");
        // The same value alone, with --pointer, and as CSV (for the first few: each is a
        // walk of the whole chain).
        if i >= 2 {
            continue;
        }
        let r = ok(sb.run(&["history", &key, "--pointer", &path, "--format", "csv"]));
        let mut lines = r.stdout.lines();
        assert_eq!(lines.next(), Some("version,created_at,key,path,op,old,new"));
        assert!(
            r.stdout
                .contains(&format!(",{path},revised,{},{}", row["old"], row["new"])),
            "{r:?}"
        );
    }
    assert!(rows.iter().any(|r| r["op"] == "revised"), "{rows:?}");

    // A typo is an error that names the closest key.
    let r = sb.run(&["history", &format!("{key}x")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!("did you mean \"{key}\"")),
        "{r:?}"
    );
}

fn doc(days: u64, revise: Option<u64>) -> Vec<u8> {
    let records: Vec<Value> = ["fr", "de", "es"]
        .iter()
        .map(|k| {
            let mut total = 0;
            let dates: serde_json::Map<String, Value> = (1..=days)
                .map(|d| {
                    let new = if *k == "es" && Some(d) == revise {
                        d + 10
                    } else {
                        d
                    };
                    total += new;
                    (
                        format!("2020-02-{d:02}"),
                        json!({"new": {"cases": new}, "cumulative": {"cases": total}}),
                    )
                })
                .collect();
            json!({"country": {"key": k}, "dates": dates})
        })
        .collect();
    serde_json::to_vec(&records).unwrap()
}

#[test]
fn changes_in_words_a_page_that_cannot_be_written_and_verify_repair() {
    let server = HttpServer::start();
    let url = server.url("/stats.json");
    let sb = Sandbox::new();
    server.set("/stats.json", doc(3, None));
    ok(sb.sync(&url, &[]));
    // Day 4 appended, and day 2 of es revised: its running totals after it shift.
    server.set("/stats.json", doc(4, Some(2)));
    ok(sb.sync(&url, &[]));

    let r = ok(sb.run(&["diff", "1", "2", "--format", "changes"]));
    let first = r.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        "v1..v2 appended /dates/2020-02-04 to 3 records; revised 1 value: es /dates/2020-02-02/new/cases 2 → 12; 2 derived values shifted"
    );
    assert!(
        r.stdout.contains("~ es /dates/2020-02-02/new/cases 2 → 12"),
        "{r:?}"
    );
    let r = ok(sb.run(&["--json", "diff", "1", "2", "--format", "changes"]));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["values"].as_array().unwrap().len(), 3 + 1 + 2);
    let r = ok(sb.run(&["log"]));
    assert!(
        r.stdout
            .lines()
            .next()
            .unwrap()
            .contains("appended=3 revised=1 derived=2"),
        "{r:?}"
    );
    let page = std::fs::read_to_string(sb.dataset_dir(DATASET).join("index.html")).unwrap();
    assert!(page.contains("revised 1 value: es /dates/2020-02-02/new/cases 2 → 12"));

    // A page that cannot be written (a directory in its place): published all the same.
    let index = sb.dataset_dir(DATASET).join("index.html");
    std::fs::remove_file(&index).unwrap();
    std::fs::create_dir(&index).unwrap();
    server.set("/stats.json", doc(5, Some(2)));
    let r = ok(sb.sync(&url, &[]));
    assert_eq!(r.outcome(), "changed", "{r:?}");
    assert!(
        r.stderr
            .contains("was not written (the version is published)"),
        "{r:?}"
    );
    std::fs::remove_dir(&index).unwrap();
    let part = sb
        .dataset_dir(DATASET)
        .join("changes/version=2/part-0.parquet");
    std::fs::remove_file(&part).unwrap();

    let r = ok(sb.run(&["verify"]));
    assert!(
        r.stdout.contains("index.html is missing or behind the manifest; the change table lacks version 2 (verify --repair writes them)"),
        "{r:?}"
    );
    let r = ok(sb.run(&["verify", "--repair"]));
    assert!(r.stdout.contains("repaired: rewrote index.html"), "{r:?}");
    assert!(part.is_file());
    let data = page_data(&sb);
    assert_eq!(data["versions"].as_array().unwrap().len(), 3);
    assert!(data["versions"][2]["changes"]
        .as_str()
        .unwrap()
        .starts_with("appended /dates/2020-02-05 to 3 records"));
    let r = ok(sb.run(&["verify"]));
    assert!(!r.stdout.contains("verify --repair writes"), "{r:?}");
}

//! `join` with workbooks as users receive them: `.xlsx` (openpyxl), `.xls` (xlwt) and `.ods`
//! written by the test venv's tools, with a title above the header, `NA` cells, numbers,
//! booleans, dates, text codes with leading zeros and a distracting first sheet. The joined
//! values are checked one by one; a re-saved workbook is no new version; broken workbooks fail
//! in one line that names the file and sheet, and publish nothing.

use std::path::{Path, PathBuf};

use crate::common::cli::{RunResult, Sandbox};
use crate::common::http::HttpServer;
use crate::common::workbook;
use rstest::rstest;
use serde_json::{json, Value};

fn covid(keys: &[&str]) -> Vec<u8> {
    let recs: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"country": {"key": k},
                   "dates": {"2020-03-14": {"new": {"cases": 1}, "cumulative": {"cases": 1}}}})
        })
        .collect();
    serde_json::to_vec(&recs).unwrap()
}

const KEYS: &[&str] = &[
    "spain",
    "south-korea",
    "egypt",
    "chad",
    "palestine",
    "west-bank-and-gaza",
    "atlantis",
    "mars",
];

/// The sheet users get: a title, an empty row, then the header on row 3; Chad's population and
/// membership typed as text (Excel's "number stored as text"), codes typed as text.
fn data_rows() -> Value {
    json!([
        ["Country indicators 2019 (made up where it says so)"],
        [],
        ["COUNTRY", "Population total", "Urban %", "CPI", "EU member", "Joined EU", "Code", "Note", "Ratio"],
        ["Spain", 47076781, 80.506, 62, true, {"date": "1986-01-01"}, "007", "NA", 0.1],
        ["Korea, Rep.", 51709098, 81.41, 59, false, {"datetime": "2020-03-14T12:30:00"}, "410", "n/a", 1e-7],
        ["Egypt, Arab Rep.", 100388073, 42.727, "NA", false, null, "818", "#N/A", 123456789.123456],
        ["Chad", "15946876", 23.3, 20, "FALSE", null, "148", "landlocked", 2.675],
        ["West Bank and Gaza", 4685306, 76.4, "NA", false, null, "275", null, 2.5],
        ["Atlantis", "NA", "NA", "NA", null, null, "000", "myth", "NA"]
    ])
}

fn sheets() -> Value {
    json!([
        {"name": "Notes", "rows": [["About this workbook"], ["figures: World Bank, rounded"]]},
        {"name": "Data", "rows": data_rows()},
        {"name": "Other", "rows": [["COUNTRY", "x"], ["Spain", 1]]}
    ])
}

/// What each record of [`KEYS`] gets in `/info`.
fn expected() -> Vec<Value> {
    let spain = json!({"population_total": 47076781, "urban_pct": 80.506, "cpi": 62, "eu_member": true,
                       "joined_eu": "1986-01-01", "code": "007", "note": null, "ratio": 0.1});
    let korea = json!({"population_total": 51709098, "urban_pct": 81.41, "cpi": 59, "eu_member": false,
                       "joined_eu": "2020-03-14T12:30:00", "code": "410", "note": null, "ratio": 1e-7});
    let egypt = json!({"population_total": 100388073, "urban_pct": 42.727, "cpi": null, "eu_member": false,
                       "joined_eu": null, "code": "818", "note": null, "ratio": 123456789.123456});
    let chad = json!({"population_total": 15946876, "urban_pct": 23.3, "cpi": 20, "eu_member": false,
                      "joined_eu": null, "code": "148", "note": "landlocked", "ratio": 2.675});
    let wbg = json!({"population_total": 4685306, "urban_pct": 76.4, "cpi": null, "eu_member": false,
                     "joined_eu": null, "code": "275", "note": null, "ratio": 2.5});
    let atlantis = json!({"population_total": null, "urban_pct": null, "cpi": null, "eu_member": null,
                          "joined_eu": null, "code": "000", "note": "myth", "ratio": null});
    vec![
        spain,
        korea,
        egypt,
        chad,
        wbg.clone(),
        wbg,
        atlantis,
        Value::Null,
    ]
}

struct Setup {
    sb: Sandbox,
    server: HttpServer,
    config: PathBuf,
    table: PathBuf,
}

impl Setup {
    fn new(ext: &str, sheet: &str) -> Setup {
        let sb = Sandbox::new();
        let server = HttpServer::start();
        server.set("/stats.json", covid(KEYS));
        let table = sb.path().join(format!("table.{ext}"));
        let config = sb.path().join("snapsync.toml");
        let s = Setup {
            sb,
            server,
            config,
            table,
        };
        s.write_config(ext, sheet);
        s
    }

    fn write_config(&self, ext: &str, sheet: &str) {
        std::fs::write(
            &self.config,
            format!(
                r#"[[dataset]]
name = "c"
url = "{}"
key = "/country/key"

[[dataset.transform]]
drop = ["/*/dates/*/cumulative"]

[[dataset.transform]]
[dataset.transform.join]
source = "table.{ext}"
{sheet}
header_row = 3
column_names = "snake_case"
columns = {{ "Urban %" = "urban_pct" }}
key = "country"
on = "/country/key"
into = "/info"
names = {{ "West Bank and Gaza" = ["palestine", "west-bank-and-gaza"] }}
"#,
                self.server.url("/stats.json")
            ),
        )
        .unwrap();
    }

    fn run(&self) -> RunResult {
        self.sb
            .run(&["--config", self.config.to_str().unwrap(), "run"])
    }

    fn joined(&self) -> Vec<Value> {
        let latest: Value = serde_json::from_slice(&self.sb.latest_bytes("c")).unwrap();
        latest
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.get("info").cloned().unwrap_or(Value::Null))
            .collect()
    }
}

fn write_table(format: &str, path: &Path) {
    workbook::write(format, path, &sheets());
}

#[rstest]
#[case::xlsx("xlsx", "sheet = \"Data\"")]
#[case::xlsx_by_number("xlsx", "sheet = 2")]
#[case::xls("xls", "sheet = \"Data\"")]
#[case::ods("ods", "sheet = \"Data\"")]
fn a_workbook_joins_value_by_value(#[case] format: &str, #[case] sheet: &str) {
    let s = Setup::new(format, sheet);
    write_table(format, &s.table);
    let r = s.run();
    assert_eq!(
        (r.code, r.outcome(), r.field("unmatched").as_deref()),
        (0, "changed", Some("1")),
        "{r:?}"
    );
    let joined = s.joined();
    for (i, (got, want)) in joined.iter().zip(expected()).enumerate() {
        assert_eq!(*got, want, "record {} ({format})", KEYS[i]);
    }
    assert_eq!(joined.len(), KEYS.len());
}

#[test]
fn re_saving_a_workbook_is_no_new_version_and_a_changed_cell_is_one_replace() {
    let s = Setup::new("xlsx", "sheet = \"Data\"");
    write_table("xlsx", &s.table);
    let r = s.run();
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let before = std::fs::read(&s.table).unwrap();
    workbook::tool(&["resave", s.table.to_str().unwrap()]);
    assert!(
        std::fs::read(&s.table).unwrap() != before,
        "the file's bytes changed"
    );
    let r = s.run();
    assert_eq!(r.code, 0, "{r:?}");
    // The same cells are the same pipeline fingerprint, so the dataset's 304 still proves
    // nothing changed (a fingerprint of the file's bytes would refetch and re-diff).
    assert_eq!(r.outcome(), "not-modified", "{r:?}");
    assert_eq!(s.sb.manifest("c")["versions"].as_array().unwrap().len(), 1);

    workbook::tool(&[
        "setcell",
        s.table.to_str().unwrap(),
        "Data",
        "B4",
        "47100000",
    ]);
    let r = s.run();
    assert_eq!(
        (r.code, r.outcome(), r.field("changed").as_deref()),
        (0, "changed", Some("1")),
        "{r:?}"
    );
    let manifest = s.sb.manifest("c");
    let delta =
        s.sb.delta(manifest["versions"][1]["delta"].as_str().unwrap());
    assert_eq!(
        delta["patch"],
        json!([{"op": "replace", "path": "/0/info/population_total", "value": 47100000}])
    );
}

/// A broken table: the run fails with one line naming the table (and sheet), and the store is
/// exactly as it was.
#[rstest]
#[case::corrupt("corrupt", "sheet = \"Data\"", &["table.xlsx", "not an .xlsx workbook"])]
#[case::truncated("truncated", "sheet = \"Data\"", &["table.xlsx", "unreadable .xlsx workbook"])]
#[case::password("password", "sheet = \"Data\"", &["table.xlsx", "password protected"])]
#[case::missing_sheet("good", "sheet = \"Daten\"", &["table.xlsx", "no sheet \"Daten\"", "\"Notes\", \"Data\", \"Other\""])]
#[case::header_less("header_less", "sheet = \"Data\"", &["table.xlsx", "sheet \"Data\"", "not a header row", "cell B3 holds the number"])]
#[case::first_sheet_is_notes("good", "", &["table.xlsx", "sheet \"Notes\"", "row 3 (header_row) is empty"])]
#[case::fifty_mb("fifty_mb", "sheet = \"Data\"", &["table.xlsx", "sheet \"Data\"", "over the 33554432-byte limit"])]
#[case::zip_bomb("zip_bomb", "sheet = \"Data\"", &["table.xlsx", "unpacks to 314", "over the 268435456-byte limit"])]
fn a_broken_workbook_fails_in_one_line_and_publishes_nothing(
    #[case] damage: &str,
    #[case] sheet: &str,
    #[case] expect: &[&str],
) {
    let s = Setup::new("xlsx", "sheet = \"Data\"");
    write_table("xlsx", &s.table);
    let r = s.run();
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let store = s.sb.store_files();

    s.write_config("xlsx", sheet);
    let t = s.table.to_str().unwrap();
    match damage {
        "good" => {}
        "corrupt" => std::fs::write(&s.table, b"COUNTRY,pop\nSpain,1\n").unwrap(),
        "truncated" => {
            let bytes = std::fs::read(&s.table).unwrap();
            std::fs::write(&s.table, &bytes[..bytes.len() / 2]).unwrap();
        }
        "password" => {
            let plain = s.sb.path().join("plain.xlsx");
            std::fs::rename(&s.table, &plain).unwrap();
            workbook::tool(&["encrypt", plain.to_str().unwrap(), t, "s3cret"]);
        }
        "header_less" => {
            let rows: Vec<Value> = data_rows().as_array().unwrap()[3..].to_vec();
            let mut rows = rows;
            rows.insert(0, json!([]));
            rows.insert(0, json!([]));
            workbook::write("xlsx", &s.table, &json!([{"name": "Data", "rows": rows}]));
        }
        "fifty_mb" => workbook::tool(&["pad", t, &(50 * 1024 * 1024).to_string()]),
        "zip_bomb" => workbook::tool(&["bomb", t, &(300 * 1024 * 1024).to_string()]),
        other => unreachable!("{other}"),
    }
    let r = s.run();
    assert_eq!((r.code, r.outcome()), (1, "failed"), "{damage}: {r:?}");
    // The summary line quotes the error (logfmt): read it unquoted.
    let line = r.summary().replace("\\\"", "\"");
    assert!(line.contains("error="), "{r:?}");
    for e in expect {
        assert!(line.contains(e), "{damage}: {e:?} not in {line:?}");
    }
    assert!(!r.stdout.contains("s3cret") && !r.stderr.contains("s3cret"));
    assert_eq!(
        s.sb.store_files(),
        store,
        "{damage}: the store is untouched"
    );
}

#[rstest]
#[case::content_type(
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    None
)]
#[case::sniffed("application/octet-stream", None)]
#[case::csv_by_content_type("text/csv; charset=utf-8", Some("csv"))]
fn a_table_url_without_an_extension_is_read_by_content_type_or_signature(
    #[case] content_type: &str,
    #[case] body_format: Option<&str>,
) {
    let sb = Sandbox::new();
    let server = HttpServer::start();
    server.set("/stats.json", covid(&["spain", "chad"]));
    let body = match body_format {
        Some("csv") => b"COUNTRY,pop\nSpain,47\nChad,NA\n".to_vec(),
        _ => {
            let p = sb.path().join("t.xlsx");
            workbook::write(
                "xlsx",
                &p,
                &json!([{"name": "S", "rows": [["COUNTRY", "pop"], ["Spain", 47], ["Chad", "NA"]]}]),
            );
            std::fs::read(p).unwrap()
        }
    };
    server.set("/export", body);
    server.set_content_type("/export", content_type);
    let config = sb.path().join("snapsync.toml");
    std::fs::write(
        &config,
        format!(
            "[[dataset]]\nname = \"c\"\nurl = \"{}\"\n[[dataset.transform]]\njoin = {{ source = \"{}\", key = \"COUNTRY\", on = \"/country/key\", into = \"/country\" }}\n",
            server.url("/stats.json"),
            server.url("/export")
        ),
    )
    .unwrap();
    let r = sb.run(&["--config", config.to_str().unwrap(), "run"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let latest: Value = serde_json::from_slice(&sb.latest_bytes("c")).unwrap();
    assert_eq!(latest[0]["country"]["pop"], 47);
    assert_eq!(latest[1]["country"]["pop"], Value::Null);
    // The table answers 304 next time; its Content-Type comes from the cache.
    let r = sb.run(&["--config", config.to_str().unwrap(), "run"]);
    assert_eq!((r.code, r.outcome()), (0, "not-modified"), "{r:?}");

    // Served as text/plain, nothing says what it is: the run asks for the format.
    server.set("/export", b"COUNTRY,pop\nSpain,48\n".to_vec());
    server.set_content_type("/export", "text/plain");
    let r = sb.run(&["--config", config.to_str().unwrap(), "run"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.summary().contains("cannot tell the table's format")
            && r.summary().contains("set format = ")
            && r.summary().contains("Content-Type text/plain"),
        "{r:?}"
    );
}

#[test]
fn doctor_lists_unmatched_keys_and_unused_rows_with_the_closest_names() {
    let sb = Sandbox::new();
    let server = HttpServer::start();
    server.set(
        "/stats.json",
        covid(&["spain", "south-korea", "atlantiss", "cruise-ship"]),
    );
    let table = sb.path().join("t.xlsx");
    workbook::write(
        "xlsx",
        &table,
        &json!([{"name": "Database_option2", "rows": [
            ["COUNTRY", "Population_total"],
            ["Spain", 47076781], ["Korea, Rep.", 51709098], ["Atlantis", "NA"], ["Lemuria", 1]
        ]}]),
    );
    let config = sb.path().join("snapsync.toml");
    std::fs::write(
        &config,
        format!(
            "[[dataset]]\nname = \"c\"\nurl = \"{}\"\n[[dataset.transform]]\njoin = {{ source = \"t.xlsx\", key = \"COUNTRY\", on = \"/country/key\", into = \"/country\", names = {{ \"Mu\" = \"mu\" }} }}\n",
            server.url("/stats.json"),
        ),
    )
    .unwrap();
    let r = sb.run(&["--config", config.to_str().unwrap(), "doctor"]);
    assert_eq!(r.code, 0, "unmatched keys are news, not a failure: {r:?}");
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.contains(" join ")).collect();
    let text = lines.join("\n");
    assert!(
        lines[0].contains("t.xlsx sheet \"Database_option2\": 2 of 4 records matched; 2 keys unmatched, 2 of 4 rows unused"),
        "{text}"
    );
    assert!(
        text.contains("unmatched key \"atlantiss\"; closest rows: \"Atlantis\" (row 4)"),
        "{text}"
    );
    assert!(text.contains("unmatched key \"cruise-ship\""), "{text}");
    assert!(
        text.contains("unused row 5 \"Lemuria\"; closest unmatched keys:"),
        "{text}"
    );
    assert!(
        text.contains("names entry \"Mu\" matches no row of the table"),
        "{text}"
    );
    assert!(
        text.contains("suggested names: { \"Atlantis\" = \"atlantiss\" }"),
        "{text}"
    );

    // The run's log says the same at debug level.
    let out = sb
        .cmd(&["--config", config.to_str().unwrap(), "run"])
        .env("SNAPSYNC_LOG", "debug")
        .output()
        .unwrap();
    let r = crate::common::cli::to_result(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("unmatched key \\\"atlantiss\\\"")
            || r.stderr.contains("unmatched key \"atlantiss\""),
        "{r:?}"
    );
}

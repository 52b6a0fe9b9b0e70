//! Tests of the join: matching by name, alias, ISO code and `names` lists, ambiguous tables
//! refused, the report's suggestions, and the content hash.

use super::report::{similarity, CLOSE, LIKELY};

use super::*;
use serde_json::json;

fn spec(names: &[(&str, &[&str])]) -> JoinSpec {
    JoinSpec {
        source: "file:///t.csv".into(),
        format: Some(TableFormat::Csv),
        read: ReadOptions::default(),
        max_bytes: table::DEFAULT_MAX_BYTES,
        key_column: "COUNTRY".into(),
        iso_column: None,
        names: names
            .iter()
            .map(|(r, ks)| (r.to_string(), ks.iter().map(|k| k.to_string()).collect()))
            .collect(),
        aliases: true,
        on: vec!["k".into()],
        on_iso: None,
        into: vec!["info".into()],
        fields: None,
    }
}

fn run(join: &Join, keys: &[&str]) -> (Vec<Value>, JoinStats) {
    let mut stats = join.new_stats();
    let out = keys
        .iter()
        .map(|k| {
            let mut v = json!({ "k": k });
            join.apply(&mut v, &mut stats);
            v
        })
        .collect();
    (out, stats)
}

const TABLE: &str = "COUNTRY,pop\nSpain,47\n\"Korea, Rep.\",51\nWest Bank and Gaza,5\n\"Egypt, Arab Rep.\",100\nAtlantis,NA\n";

#[test]
fn rows_match_by_name_alias_and_names_lists() {
    let j = spec(&[("West Bank and Gaza", &["palestine", "west-bank-and-gaza"])])
        .load(TABLE.as_bytes(), None)
        .unwrap();
    let (out, stats) = run(
        &j,
        &[
            "spain",
            "south-korea",
            "palestine",
            "west-bank-and-gaza",
            "egypt",
            "mars",
        ],
    );
    assert_eq!(out[0], json!({"k": "spain", "info": {"pop": 47}}));
    assert_eq!(out[1]["info"]["pop"], 51, "by the alias table");
    assert_eq!(out[2]["info"]["pop"], 5, "one row, two keys");
    assert_eq!(out[3]["info"]["pop"], 5);
    assert_eq!(out[4]["info"]["pop"], 100);
    assert_eq!(out[5], json!({"k": "mars"}));
    let r = j.report(&stats);
    assert_eq!(
        r.summary(),
        "5 of 6 records matched; 1 keys unmatched, 1 of 5 rows unused"
    );
    assert_eq!(r.unused[0].0, "Atlantis");
}

#[test]
fn ambiguous_tables_are_refused() {
    let e = spec(&[])
        .load(b"COUNTRY,pop\n\"Korea, Rep.\",1\nSouth Korea,2\n", None)
        .unwrap_err();
    assert!(e.contains("are the same country (KOR)"), "{e}");
    let e = spec(&[])
        .load(b"COUNTRY,pop\nSpain,1\nspain,2\n", None)
        .unwrap_err();
    assert!(e.contains("have the same key"), "{e}");
    let e = spec(&[("Spain", &["x"]), ("Chad", &["x"])])
        .load(b"COUNTRY,pop\nSpain,1\nChad,2\n", None)
        .unwrap_err();
    assert!(e.contains("to \"x\""), "{e}");
}

#[test]
fn the_report_suggests_names_for_near_misses() {
    let j = spec(&[("Nowhere", &["x"])])
        .load(b"COUNTRY,pop\nSt. Maarten,1\nSpain,2\n", None)
        .unwrap();
    let (_, stats) = run(&j, &["sint-maarten-dutch", "spain"]);
    let r = j.report(&stats);
    assert_eq!(r.unmatched[0].1[0], ("St. Maarten".to_string(), 2));
    assert_eq!(r.unknown_names, ["Nowhere"]);
    let details = r.details().join("\n");
    assert!(
        details.contains("names entry \"Nowhere\" matches no row"),
        "{details}"
    );
}

#[test]
fn similarity_prefers_whole_words_to_shared_prefixes() {
    assert!(similarity("egypt", "egypt-arab-rep") >= LIKELY);
    assert!(similarity("russia", "russian-federation") >= LIKELY);
    assert!(similarity("north-ireland", "northern-mariana-islands") < LIKELY);
    assert!(similarity("cruise-ship", "turks-and-caicos-islands") < CLOSE);
    assert!(similarity("spain", "spain") > similarity("egypt", "egypt-arab-rep"));
}

#[test]
fn a_column_may_be_several_fields_and_the_key_one_too() {
    let mut s = spec(&[]);
    s.fields = Some(BTreeMap::from([
        ("a".to_string(), "pop".to_string()),
        ("b".to_string(), "pop".to_string()),
        ("name".to_string(), "COUNTRY".to_string()),
    ]));
    let j = s.load(b"COUNTRY,pop\nSpain,47\n", None).unwrap();
    let (out, _) = run(&j, &["spain"]);
    assert_eq!(out[0]["info"], json!({"a": 47, "b": 47, "name": "Spain"}));
}

#[test]
fn iso_codes_match_when_both_sides_have_them() {
    let mut s = spec(&[]);
    s.iso_column = Some("iso".into());
    s.on_iso = Some(vec!["code".into()]);
    let j = s
        .load(
            b"COUNTRY,iso,pop\nRepublic of Foo,KR,1\nNamibia,NA,2\n",
            None,
        )
        .unwrap();
    let mut stats = j.new_stats();
    let mut v = json!({"k": "whatever", "code": "KOR"});
    j.apply(&mut v, &mut stats);
    assert_eq!(v["info"]["pop"], 1);
    assert_eq!(v["info"]["iso"], "KR");
    let mut v = json!({"k": "x", "code": "NAM"});
    j.apply(&mut v, &mut stats);
    assert_eq!(
        v["info"]["iso"], "NA",
        "in the iso column NA is Namibia, not missing"
    );
}

#[test]
fn the_content_hash_follows_values_and_matching_not_bytes() {
    let a = spec(&[]).load(TABLE.as_bytes(), None).unwrap();
    let b = spec(&[])
        .load(
            TABLE
                .replace(",47", ", 47.0")
                .replace('\n', "\r\n")
                .as_bytes(),
            None,
        )
        .unwrap();
    assert_eq!(a.sha256, b.sha256);
    let c = spec(&[("Atlantis", &["mars"])])
        .load(TABLE.as_bytes(), None)
        .unwrap();
    assert_ne!(a.sha256, c.sha256, "a names entry changes what matches");
}

#[test]
fn format_is_asked_for_when_nothing_tells() {
    let mut s = spec(&[]);
    s.format = None;
    s.source = "https://h.example/table".into();
    assert_eq!(
        s.format_of(Some("text/csv; charset=utf-8"), b"a"),
        Ok(TableFormat::Csv)
    );
    let e = s.format_of(Some("text/plain"), b"a,b").unwrap_err();
    assert!(e.contains("set format = \"csv\""), "{e}");
    assert!(e.contains("Content-Type text/plain"), "{e}");
}

//! Tests of reading tables: CSV, JSON and workbooks, header rows, missing markers, column types
//! and names, and the errors naming the cell.

use super::typed::{number_of_text, number_text};
use super::*;

use rstest::rstest;
use serde_json::json;

fn csv(text: &str) -> Table {
    read(text.as_bytes(), TableFormat::Csv, &ReadOptions::default()).unwrap()
}

#[test]
fn csv_columns_are_typed_as_a_whole_with_na_as_null() {
    let t = csv("COUNTRY,pop,urban,code,flag,mixed\nSpain,47076781,80.8,007,true,1\nChad,NA,23.5,012,false,\"1,234\"\nPeru,N/A,,100,TRUE,x\n");
    assert_eq!(
        t.columns,
        ["COUNTRY", "pop", "urban", "code", "flag", "mixed"]
    );
    assert_eq!(
        t.rows[0],
        vec![
            json!("Spain"),
            json!(47076781),
            json!(80.8),
            json!("007"),
            json!(true),
            json!("1")
        ]
    );
    assert_eq!(t.rows[1][1], Value::Null);
    assert_eq!(t.rows[2][1], Value::Null);
    assert_eq!(t.rows[2][2], Value::Null);
    assert_eq!(t.rows[2][4], json!(true));
    assert_eq!(t.row_numbers, [2, 3, 4]);
}

#[test]
fn explicit_types_win_and_refuse_what_they_cannot_hold() {
    let mut opts = ReadOptions::default();
    opts.types.insert("pop".into(), ColumnType::String);
    let t = read(b"c,pop\na,12\n", TableFormat::Csv, &opts).unwrap();
    assert_eq!(t.rows[0][1], json!("12"));
    opts.types.insert("pop".into(), ColumnType::Integer);
    let e = read(b"c,pop\na,12\nb,1.5\n", TableFormat::Csv, &opts).unwrap_err();
    assert_eq!(
        e,
        "cell B3: the text \"1.5\" is not an integer (column \"pop\", as types says)"
    );
    opts.types.insert("nope".into(), ColumnType::Integer);
    let e = read(b"c,pop\na,12\n", TableFormat::Csv, &opts).unwrap_err();
    assert!(e.contains("\"nope\""), "{e}");
}

#[test]
fn header_row_skips_titles_and_names_are_normalised() {
    let mut opts = ReadOptions {
        header_row: Some(3),
        column_names: NameStyle::SnakeCase,
        ..ReadOptions::default()
    };
    opts.rename.insert("COUNTRY".into(), "name".into());
    let t = read(
        b"Country table,,\n,,\nCOUNTRY,Population_total,GDPPerCapita\nSpain,1,2\n",
        TableFormat::Csv,
        &opts,
    )
    .unwrap();
    assert_eq!(t.columns, ["name", "population_total", "gdp_per_capita"]);
    assert_eq!(t.row_numbers, [4]);
}

#[rstest]
#[case::duplicate("a,a\n1,2\n", "row 1: columns A1 and B1 are both named \"a\"")]
#[case::value_without_header(
    "a,\n1,2\n",
    "cell B2 has a value but its column has no name in the header row 1"
)]
#[case::empty("", "is empty: no header row, no rows")]
fn bad_csv_tables(#[case] text: &str, #[case] expect: &str) {
    let e = read(text.as_bytes(), TableFormat::Csv, &ReadOptions::default()).unwrap_err();
    assert_eq!(e, expect);
}

#[test]
fn json_tables_keep_their_types_and_missing_markers_apply() {
    let t = read(
        br#"[{"k":"a","n":1,"s":"7"},{"k":"b","n":"NA","x":[1]}]"#,
        TableFormat::Json,
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(t.columns, ["k", "n", "s", "x"]);
    assert_eq!(
        t.rows[0],
        vec![json!("a"), json!(1), json!("7"), Value::Null]
    );
    assert_eq!(
        t.rows[1],
        vec![json!("b"), Value::Null, Value::Null, json!([1])]
    );
}

#[test]
fn content_hash_is_of_values_not_bytes() {
    let a = csv("k,v\nx,1\n");
    let b = csv("\u{feff}k , v\r\n x ,1.0\r\n");
    assert_eq!(a.rows, b.rows);
    assert_eq!(a.content_sha256(), b.content_sha256());
    assert_ne!(a.content_sha256(), csv("k,v\nx,2\n").content_sha256());
}

#[rstest]
#[case("Population_total", "population_total")]
#[case(
    "Urban_population_PC_of_total_population",
    "urban_population_pc_of_total_population"
)]
#[case("CountryName", "country_name")]
#[case("GDPPerCapita", "gdp_per_capita")]
#[case("GDP per capita (US$)", "gdp_per_capita_us")]
#[case("COUNTRY", "country")]
fn snake_case_names(#[case] from: &str, #[case] to: &str) {
    assert_eq!(snake_case(from), to);
}

#[rstest]
#[case(0, 0, "A1")]
#[case(16, 1, "B17")]
#[case(0, 25, "Z1")]
#[case(9, 26, "AA10")]
#[case(0, 701, "ZZ1")]
#[case(0, 702, "AAA1")]
fn cell_names(#[case] r: u32, #[case] c: u32, #[case] name: &str) {
    assert_eq!(cell_name(r, c), name);
}

#[rstest]
#[case("x.xlsx", Some(TableFormat::Xlsx))]
#[case("https://h/t.ODS?x=1", Some(TableFormat::Ods))]
#[case("file:///a/b.xls", Some(TableFormat::Xls))]
#[case("https://h/table", None)]
#[case("https://h.example/dir.csv/table", None)]
fn formats_from_names(#[case] source: &str, #[case] f: Option<TableFormat>) {
    assert_eq!(TableFormat::from_name(source), f);
}

#[test]
fn numbers_from_text_are_plain_decimals_only() {
    for bad in ["inf", "NaN", "0x10", "1,5", "007", "1e999", "--1"] {
        assert_eq!(number_of_text(bad), None, "{bad}");
    }
    assert_eq!(number_of_text("0.5"), Some(0.5));
    assert_eq!(number_of_text("-1.5e3"), Some(-1500.0));
    assert_eq!(number_text(80.506), "80.506");
    assert_eq!(number_text(0.1 + 0.2), "0.30000000000000004");
}

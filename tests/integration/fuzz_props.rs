//! The fuzz targets of `fuzz/` as proptest properties, so CI runs a short fuzz on stable Rust:
//! the configuration file parser over TOML-ish text, the canonicalizer over mutated JSON text,
//! and delta files over mutated deltas (`tests/integration/delta_props.rs` already covers
//! diff/apply and the canonical form over arbitrary JSON values; this file feeds the parsers
//! broken *text*).
//! Properties: nothing panics, refusals are one line, and what is accepted is consistent.
//! `PROPTEST_CASES` scales every property (the soak script raises it).

use clap::Parser as _;
use proptest::prelude::*;
use serde_json::{json, Value};
use snapsync::canonical::{to_canonical_vec, Document, KeyPointer};
use snapsync::cli::Cli;
use snapsync::config::Config;
use snapsync::delta::{apply_document, diff, Delta, PatchOp, VersionRef};
use snapsync::schedule::Schedule;

use crate::common::oracle;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Configuration files

const KEYS: &[&str] = &[
    "db",
    "url",
    "endpoint",
    "name",
    "key",
    "allow_insecure_http",
    "gzip_level",
    "schedule",
    "max_bytes",
    "timeout_secs",
    "connect_timeout_secs",
    "total_timeout_secs",
    "retries",
    "retry_backoff_ms",
    "min_records",
    "max_shrink",
    "require_key",
    "allow_duplicates",
    "guards",
    "bogus",
    "\"quoted key\"",
    "a.b",
];

fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"https://example.com/data.json\"".to_string()),
        Just("\"http://127.0.0.1:9/d.json\"".to_string()),
        Just("\"http://example.com/d.json\"".to_string()),
        Just("\"https://u:pw@example.com/d.json?token=t\"".to_string()),
        Just("\"file:///etc/passwd\"".to_string()),
        Just("\"s3://bucket-a/pre/fix\"".to_string()),
        Just("\"s3://b/../x\"".to_string()),
        Just("\"file://\"".to_string()),
        Just("\"../etc\"".to_string()),
        Just("\"/country/key\"".to_string()),
        Just("\"\"".to_string()),
        Just("\"daily 06:00\"".to_string()),
        Just("\"*/0 * * * *\"".to_string()),
        Just("\"0 0 31 2 *\"".to_string()),
        Just("\"60 25 * * * * *\"".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("-0.0".to_string()),
        Just("1e308".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775807".to_string()),
        Just("true".to_string()),
        Just("[1, \"a\", [true]]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"unterminated".to_string()),
        Just("'''multi\nline'''".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[a-z0-9 ._:/*#?LW-]{0,24}".prop_map(|s| format!("{s:?}")),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
    ]
}

fn arb_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(KEYS), arb_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(&[
            "[store]",
            "[source]",
            "[[dataset]]",
            "[dataset.guards]",
            "[[dataset.guards]]",
            "[store.url]",
            "[bogus]",
            "[",
            "[[dataset]",
            "",
            "# comment",
            "=",
        ][..])
        .prop_map(str::to_string),
        1 => "\\PC{0,30}",
    ]
}

fn arb_config_text() -> impl Strategy<Value = String> {
    prop::collection::vec(arb_line(), 0..16).prop_map(|lines| lines.join("\n"))
}

fn global_args(extra: &[&str]) -> snapsync::cli::GlobalArgs {
    let mut argv = vec!["snapsync"];
    argv.extend_from_slice(extra);
    argv.push("run");
    Cli::try_parse_from(argv).unwrap().global
}

fn check_config(text: &str, args: &snapsync::cli::GlobalArgs) -> Result<(), TestCaseError> {
    let path = std::path::Path::new("/etc/snapsync/snapsync.toml");
    match Config::from_text(args, text, path) {
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n'), "a refusal is one line: {msg:?}");
        }
        Ok(c) => {
            prop_assert!(!c.datasets.is_empty());
            // Every dataset carries its schedule (a field now, no longer a parallel vector).
            for d in &c.datasets {
                prop_assert!(Schedule::parse(d.schedule.as_str()).is_ok());
            }
            for d in &c.datasets {
                prop_assert!(snapsync::keys::validate_dataset_name(&d.name).is_ok());
                prop_assert!(d.gzip_level <= 9);
                prop_assert!((0.0..=1.0).contains(&d.guards.max_shrink));
                // Every accepted source is https, loopback http, explicitly allowed http, or
                // a local file.
                prop_assert!(
                    d.url.starts_with("https://")
                        || d.url.starts_with("http://")
                        || d.url.starts_with("file://"),
                    "{}",
                    d.url
                );
            }
            prop_assert!(c.source.max_bytes > 0);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(768), ..ProptestConfig::default() })]

    #[test]
    fn config_files_never_panic_and_refuse_in_one_line(text in arb_config_text()) {
        check_config(&text, &global_args(&[]))?;
        // The same file under flags that override parts of it.
        check_config(&text, &global_args(&["--dataset", "a", "--url", "https://e.com/x"]))?;
    }

    #[test]
    fn arbitrary_bytes_as_a_config_file_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_config(&String::from_utf8_lossy(&bytes), &global_args(&[]))?;
    }

    #[test]
    fn schedules_and_key_pointers_never_panic(text in "[0-9*/,LW#?a-z :-]{0,30}") {
        let _ = Schedule::parse(&text);
        let _ = KeyPointer::parse(&text);
        let _ = KeyPointer::parse(&format!("/{text}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Broken JSON text through the canonicalizer

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z\"\\\\é😀\u{1}]{0,5}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-c😀]{0,2}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
    /// Repeat the slice `[at, at + len)` right after itself.
    Duplicate(usize, usize),
}

fn arb_mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let byte = prop_oneof![
        prop::sample::select(&b"{}[]\",:0123456789.eE+-\\ntrufalse \x00\xff\xc3"[..]),
        any::<u8>(),
    ];
    let m = prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ];
    prop::collection::vec(m, 1..4)
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Replace(i, b) if len > 0 => bytes[i % len] = b,
            Mutation::Duplicate(i, n) if len > 0 => {
                let at = i % len;
                let end = (at + n).min(len);
                let copy = bytes[at..end].to_vec();
                bytes.splice(end..end, copy);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn broken_json_text_is_refused_or_canonicalized_like_serde_json(
        v in arb_json(),
        pretty in any::<bool>(),
        mutations in arb_mutations(),
    ) {
        let text = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
        let broken = mutate(text, &mutations);
        let key = KeyPointer::parse("/country/key").unwrap();
        let ours = Document::from_json(&broken, &key);
        let theirs = serde_json::from_slice::<Value>(&broken);
        match (&ours, &theirs) {
            (Ok(doc), Ok(value)) => {
                prop_assert_eq!(doc.bytes(), &to_canonical_vec(value)[..]);
                let again = Document::from_json(doc.bytes(), &key).unwrap();
                prop_assert_eq!(again.bytes(), doc.bytes());
            }
            (Err(_), Err(_)) => {}
            // RFC 8785 (I-JSON) forbids duplicate member names; serde_json keeps the last one.
            (Err(e), Ok(_)) if e.contains("duplicate member name") => {}
            _ => prop_assert!(
                false,
                "snapsync {:?} vs serde_json {:?} on {:?}",
                ours.as_ref().map(|d| d.sha256().to_string()),
                theirs.as_ref().map(|_| ()),
                String::from_utf8_lossy(&broken)
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Broken delta files

fn arb_records() -> impl Strategy<Value = Value> {
    prop::collection::vec((0u8..8, arb_json()), 0..6).prop_map(|recs| {
        let mut seen = std::collections::HashSet::new();
        Value::Array(
            recs.into_iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, v)| json!({"country": {"key": format!("c{k}")}, "v": v}))
                .collect(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(768), ..ProptestConfig::default() })]

    #[test]
    fn broken_delta_files_never_panic_and_what_applies_is_canonical(
        a in arb_records(),
        b in arb_records(),
        mutations in arb_mutations(),
    ) {
        let key = KeyPointer::parse("/country/key").unwrap();
        let (da, db) = (Document::from_value(&a, &key), Document::from_value(&b, &key));
        let d = diff(&da, &db);
        let delta = Delta {
            format: snapsync::delta::FORMAT.into(),
            dataset: "d".into(),
            from: VersionRef { version: 1, sha256: da.sha256().into() },
            to: VersionRef { version: 2, sha256: db.sha256().into() },
            created_at: "2026-11-24T06:00:00Z".into(),
            summary: d.summary,
            changes: d.changes.clone().into(),
            patch: d.patch.clone().into(),
        };
        let text = serde_json::to_vec(&delta).unwrap();
        // Unbroken, the file round-trips and applies to b.
        let parsed: Delta = serde_json::from_slice(&text).unwrap();
        prop_assert_eq!(apply_document(&da, &parsed.patch).unwrap(), db.bytes().to_vec());
        let broken = mutate(text, &mutations);
        if let Ok(parsed) = serde_json::from_slice::<Delta>(&broken) {
            let applied = apply_document(&da, &parsed.patch);
            if let Ok(out) = &applied {
                let again = Document::from_json(out, &KeyPointer::default()).unwrap();
                prop_assert_eq!(again.bytes(), &out[..]);
            }
            // Whatever the damage, another engine agrees on the outcome.
            prop_assert_eq!(applied.map_err(|e| e.index), oracle::apply(&da, &parsed.patch));
        }
    }
}

/// A delta that builds a very deep document one `add` at a time must not overflow the stack
/// of whoever applies it (the run checking its delta, `verify`, a consumer).
#[test]
fn a_patch_that_nests_deeply_does_not_overflow_the_stack() {
    let depth = 20_000;
    let mut ops = Vec::with_capacity(depth);
    let mut path = String::new();
    for _ in 0..depth {
        path.push_str("/a");
        ops.push(PatchOp::Add {
            path: path.clone(),
            value: json!({}),
        });
    }
    // Or by copying the whole document into itself, one level deeper each time.
    let copies = vec![
        PatchOp::Copy {
            from: String::new(),
            path: "/a".into(),
        };
        depth
    ];
    let key = KeyPointer::default();
    let base = Document::from_value(&json!({}), &key);
    // Run where a consumer would: a thread with the default 2 MiB stack.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for ops in [ops, copies] {
                let err = apply_document(&base, &ops).unwrap_err();
                assert!(err.reason.contains("nest deeper"), "{err}");
            }
        })
        .unwrap()
        .join()
        .expect("no panic, no overflow");
}

#[test]
fn deeply_nested_json_text_is_refused_not_a_crash() {
    let key = KeyPointer::default();
    for open in [b'[', b'{'] {
        let mut text = Vec::new();
        for _ in 0..100_000 {
            text.push(open);
            if open == b'{' {
                text.extend_from_slice(b"\"a\":");
            }
        }
        assert!(Document::from_json(&text, &key).is_err());
    }
}

/// The nesting limit of patches never refuses a delta between two documents snapsync could
/// parse: the deepest text the canonicalizer accepts diffs and applies, both ways.
#[test]
fn the_deepest_parsable_documents_still_diff_and_apply() {
    let key = KeyPointer::default();
    let nested =
        |n: usize, leaf: &str| format!("{}{leaf}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let deepest = (1..300)
        .take_while(|&n| Document::from_json(&nested(n, "1"), &key).is_ok())
        .last()
        .unwrap();
    assert!(deepest >= 100, "{deepest}");
    let shallow = Document::from_json(b"{}", &key).unwrap();
    let deep = Document::from_json(&nested(deepest, "1"), &key).unwrap();
    let deep2 = Document::from_json(&nested(deepest, "2"), &key).unwrap();
    for (a, b) in [(&shallow, &deep), (&deep, &shallow), (&deep, &deep2)] {
        let d = diff(a, b);
        assert_eq!(apply_document(a, &d.patch).unwrap(), b.bytes());
        assert_eq!(oracle::apply(a, &d.patch), Ok(b.bytes().to_vec()));
    }
}

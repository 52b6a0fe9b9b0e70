//! Properties of the pure core over arbitrary JSON: apply(diff(a, b), a) == b, the canonical
//! form is a fixed point, and no input makes the parser or the patcher panic.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use snapsync::canonical::{
    cmp_utf16, split_array, split_object, split_object_like, to_canonical_vec, Document, KeyPointer,
};
use snapsync::delta::{apply_and_compare, apply_document, diff, PatchOp};

use crate::common::oracle;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z~/é😀\u{e000}\"\\\\]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-e~/😀\u{e000}]{0,3}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keyed records like the covid file, so the record-level diff paths are exercised.
fn arb_records() -> impl Strategy<Value = Value> {
    prop::collection::vec((0u8..12, arb_json()), 0..10).prop_map(|recs| {
        let mut seen = std::collections::HashSet::new();
        Value::Array(
            recs.into_iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, v)| json!({"country": {"key": format!("c{k}")}, "v": v}))
                .collect(),
        )
    })
}

fn check_roundtrip(a: &Value, b: &Value) -> Result<(), TestCaseError> {
    let key = KeyPointer::parse("/country/key").unwrap();
    let (da, db) = (Document::from_value(a, &key), Document::from_value(b, &key));
    let d = diff(&da, &db);
    let applied = apply_document(&da, &d.patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&applied[..], db.bytes());
    // The publishing run's check: equal to the new bytes, and any other text differs where
    // it first differs.
    prop_assert_eq!(apply_and_compare(&da, &d.patch, db.bytes()), Ok(None));
    let mut other = db.bytes().to_vec();
    let at = other.len() / 2;
    other[at] ^= 1;
    prop_assert_eq!(apply_and_compare(&da, &d.patch, &other), Ok(Some(at)));
    let short = &db.bytes()[..at];
    prop_assert_eq!(apply_and_compare(&da, &d.patch, short), Ok(Some(at)));
    let mut long = db.bytes().to_vec();
    long.push(b' ');
    prop_assert_eq!(
        apply_and_compare(&da, &d.patch, &long),
        Ok(Some(db.bytes().len()))
    );
    // The same patch through JSON (what consumers read), applied by another engine.
    let patch: Vec<PatchOp> =
        serde_json::from_slice(&serde_json::to_vec(&d.patch).unwrap()).unwrap();
    prop_assert_eq!(oracle::apply(&da, &patch), Ok(db.bytes().to_vec()));
    if da == db {
        prop_assert!(d.patch.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn apply_of_diff_gives_the_new_document(a in arb_json(), b in arb_json()) {
        check_roundtrip(&a, &b)?;
    }

    #[test]
    fn apply_of_diff_on_keyed_records(a in arb_records(), b in arb_records()) {
        check_roundtrip(&a, &b)?;
    }

    #[test]
    fn canonical_form_is_a_fixed_point(v in arb_json()) {
        let key = KeyPointer::default();
        let once = Document::from_value(&v, &key);
        let twice = Document::from_json(once.bytes(), &key).unwrap();
        prop_assert_eq!(once.bytes(), twice.bytes());
        prop_assert_eq!(once.bytes(), &to_canonical_vec(&v)[..]);
        // Pretty-printed input (other whitespace) has the same identity.
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        let reparsed = Document::from_json(&pretty, &key).unwrap();
        prop_assert_eq!(reparsed.sha256(), once.sha256());
    }

    #[test]
    fn loading_stored_bytes_finds_the_same_records_and_keys(v in arb_records(), other in arb_json()) {
        let key = KeyPointer::parse("/country/key").unwrap();
        for value in [v, other] {
            let doc = Document::from_value(&value, &key);
            let loaded = Document::from_canonical(doc.shared_bytes(), &key, doc.sha256()).unwrap();
            prop_assert_eq!(loaded, doc);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let key = KeyPointer::parse("/a/0").unwrap();
        let _ = Document::from_json(&bytes, &key);
        let text = String::from_utf8_lossy(&bytes);
        let _ = (split_object(&text), split_array(&text));
        let sha = snapsync::canonical::sha256_hex(&bytes);
        // Stored bytes that hash right but are not canonical JSON (a store written by hand):
        // refused, or diffed from and patched without a panic.
        if let Ok(stored) = Document::from_canonical(bytes.into(), &key, &sha) {
            let other = Document::from_value(&json!([{"a": [1]}]), &key);
            let _ = diff(&stored, &other);
            let _ = apply_document(&stored, &[PatchOp::Remove { path: "/0/a/0".into() }]);
        }
    }

    #[test]
    fn splitting_canonical_containers_agrees_with_serde_json(v in arb_json(), cut in any::<prop::sample::Index>()) {
        let text = String::from_utf8(to_canonical_vec(&v)).unwrap();
        match &v {
            Value::Object(m) => {
                let members = split_object(&text).expect("a canonical object splits");
                let mut expected: Vec<(&String, &Value)> = m.iter().collect();
                expected.sort_by(|a, b| cmp_utf16(a.0, b.0));
                prop_assert_eq!(members.len(), expected.len());
                for ((name, value), (en, ev)) in members.iter().zip(expected) {
                    prop_assert_eq!(name.as_ref(), en.as_str());
                    prop_assert_eq!(value.as_bytes(), &to_canonical_vec(ev)[..]);
                }
                prop_assert!(split_array(&text).is_none());
            }
            Value::Array(a) => {
                let items = split_array(&text).expect("a canonical array splits");
                let expected: Vec<Vec<u8>> = a.iter().map(to_canonical_vec).collect();
                prop_assert_eq!(items.iter().map(|t| t.as_bytes().to_vec()).collect::<Vec<_>>(), expected);
                prop_assert!(split_object(&text).is_none());
            }
            _ => prop_assert!(split_object(&text).is_none() && split_array(&text).is_none()),
        }
        // Cut short anywhere, or with a byte appended, a container never splits (nor panics).
        let at = cut.index(text.len().max(1));
        if text.is_char_boundary(at) && at < text.len() {
            prop_assert!(split_object(&text[..at]).is_none() && split_array(&text[..at]).is_none());
        }
        let longer = format!("{text},");
        prop_assert!(split_object(&longer).is_none() && split_array(&longer).is_none());
    }

    #[test]
    fn splitting_guided_by_an_earlier_version_gives_the_same_members(
        a in prop::collection::btree_map("[a-e~😀\u{e000}]{0,3}", arb_json(), 0..8),
        b in prop::collection::btree_map("[a-e~😀\u{e000}]{0,3}", arb_json(), 0..4),
        truncate in any::<prop::sample::Index>(),
    ) {
        // `b` overrides some of `a`'s members and adds others: most members stay identical.
        let old = Value::Object(a.clone().into_iter().collect());
        let mut merged = a;
        merged.extend(b);
        let new = Value::Object(merged.into_iter().collect());
        let (old, new) = (
            String::from_utf8(to_canonical_vec(&old)).unwrap(),
            String::from_utf8(to_canonical_vec(&new)).unwrap(),
        );
        let like = split_object(&old).unwrap();
        prop_assert_eq!(split_object_like(&new, &like), split_object(&new));
        // Also on text the guide no longer describes (cut short), or that the guide is not of.
        let at = truncate.index(new.len());
        if new.is_char_boundary(at) {
            prop_assert_eq!(split_object_like(&new[..at], &like), None);
        }
        prop_assert_eq!(split_object_like(&old, &split_object(&new).unwrap()), Some(like));
    }

    #[test]
    fn arbitrary_patches_never_panic(doc in arb_records(), ops in prop::collection::vec(arb_op(), 0..6)) {
        let d = Document::from_value(&doc, &KeyPointer::parse("/country/key").unwrap());
        let lazy = apply_document(&d, &ops);
        // Our patcher and the `json-patch` crate agree on success, failing operation and result.
        let other = oracle::apply(&d, &ops);
        match (&lazy, &other) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.index, *b),
            _ => prop_assert!(false, "ours {:?} vs json-patch {:?}", lazy.as_ref().map(|_| ()), other.as_ref().map(|_| ())),
        }
        if let Ok(out) = lazy {
            // Whatever applied is valid canonical JSON.
            let again = Document::from_json(&out, &KeyPointer::default()).unwrap();
            prop_assert_eq!(again.bytes(), &out[..]);
        }
    }
}

fn arb_pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("0".to_string()),
            Just("1".to_string()),
            Just("-".to_string()),
            Just("v".to_string()),
            Just("country".to_string()),
            Just("~1x".to_string()),
            Just("01".to_string())
        ],
        0..4,
    )
    .prop_map(|t| t.iter().map(|s| format!("/{s}")).collect())
}

fn arb_op() -> impl Strategy<Value = PatchOp> {
    prop_oneof![
        (arb_pointer(), arb_json()).prop_map(|(path, value)| PatchOp::Add { path, value }),
        arb_pointer().prop_map(|path| PatchOp::Remove { path }),
        (arb_pointer(), arb_json()).prop_map(|(path, value)| PatchOp::Replace { path, value }),
        (arb_pointer(), arb_pointer()).prop_map(|(from, path)| PatchOp::Move { from, path }),
        (arb_pointer(), arb_pointer()).prop_map(|(from, path)| PatchOp::Copy { from, path }),
        (arb_pointer(), arb_json()).prop_map(|(path, value)| PatchOp::Test { path, value }),
    ]
}

#[test]
fn member_spans_found_while_writing_match_a_scan_of_the_stored_text() {
    let key = KeyPointer::parse("/country/key").unwrap();
    let text = br#"[{"z":1,"country":{"key":"a"},"dates":{"d2":{"new":1,"cumulative":2},"d1":{}},"a\"b":[{"x":1}]},
                   [{"in":"an array"}], 7, {}, {"\u00e9":1,"e":2,"\ud83d\ude00":3,"\ue000":4}]"#;
    for drops in [vec![], vec![vec!["*".to_string(), "z".to_string()]]] {
        let written = Document::from_json_dropping(text, &key, &drops).unwrap();
        let stored =
            Document::from_canonical(written.shared_bytes(), &key, written.sha256()).unwrap();
        // Records, key table and member table alike.
        assert_eq!(written, stored);
        let recs = written.records().unwrap();
        assert!(written.record_members(&recs[1]).is_none());
        assert!(written.record_members(&recs[2]).is_none());
        assert_eq!(written.record_members(&recs[3]), Some(vec![]));
        for r in [&recs[0], &recs[4]] {
            let members = written.record_members(r).unwrap();
            let scanned = split_object(std::str::from_utf8(written.record_bytes(r)).unwrap());
            assert_eq!(Some(members), scanned);
        }
    }
}

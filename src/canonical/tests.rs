//! Tests of the canonical form: member order, numbers and string escapes as RFC 8785 has them,
//! record spans and keys, the error messages, and properties checking that the fast parser and
//! serde_json's (and the streaming and `Value` paths) agree.

use super::parse::Parsed;
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn canon(text: &str) -> String {
    let doc = Document::from_json(text.as_bytes(), &KeyPointer::default()).unwrap();
    String::from_utf8(doc.bytes().to_vec()).unwrap()
}

#[test]
fn sorts_members_and_drops_whitespace() {
    assert_eq!(
        canon(r#"{ "b": 1, "a": [ true, null ] }"#),
        r#"{"a":[true,null],"b":1}"#
    );
    assert_eq!(
        canon(r#"{"a":{"d":1,"c":2},"b":0}"#),
        r#"{"a":{"c":2,"d":1},"b":0}"#
    );
}

#[test]
fn numbers_follow_ecmascript() {
    assert_eq!(
        canon("[1.0, -0, 1e21, 1e-7, 0.000001, 123.456e2, 9007199254740993, -5]"),
        "[1,0,1e+21,1e-7,0.000001,12345.6,9007199254740992,-5]"
    );
    assert_eq!(
        canon("[4.50, 2e-3, 333333333.33333329, 1E30]"),
        "[4.5,0.002,333333333.3333333,1e+30]"
    );
}

#[test]
fn strings_escape_minimally() {
    assert_eq!(
        canon(r#""\u20ac\/\u0001\n\"\\\u2028""#),
        "\"€/\\u0001\\n\\\"\\\\\u{2028}\""
    );
}

#[test]
fn rfc8785_member_order_uses_utf16() {
    // The example from RFC 8785 section 3.2.3.
    let text = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#;
    let doc = Document::from_json(text.as_bytes(), &KeyPointer::default()).unwrap();
    let v: serde_json::Map<String, Value> = serde_json::from_slice(doc.bytes()).unwrap();
    let order: Vec<&str> = {
        // Re-read the order from the bytes, not the (sorted) map.
        let s = std::str::from_utf8(doc.bytes()).unwrap();
        let mut names: Vec<(usize, &str)> = v
            .keys()
            .map(|k| {
                (
                    s.find(&format!("\"{}\"", k.replace('\r', "\\r"))).unwrap(),
                    k.as_str(),
                )
            })
            .collect();
        names.sort();
        names.into_iter().map(|(_, k)| k).collect()
    };
    assert_eq!(order, ["\r", "1", "\u{80}", "ö", "€", "😀", "\u{fb33}"]);
    assert_eq!(
        write_value_string(&serde_json::to_value(&v).unwrap()),
        String::from_utf8(doc.bytes().to_vec()).unwrap()
    );
}

fn write_value_string(v: &Value) -> String {
    String::from_utf8(to_canonical_vec(v)).unwrap()
}

#[test]
fn rejects_duplicate_names_and_trailing_garbage() {
    let k = KeyPointer::default();
    assert!(Document::from_json(br#"{"a":1,"a":2}"#, &k)
        .unwrap_err()
        .contains("duplicate"));
    assert!(Document::from_json(br#"{"b":1,"a":2,"b":3}"#, &k)
        .unwrap_err()
        .contains("duplicate"));
    assert!(Document::from_json(b"[1] x", &k)
        .unwrap_err()
        .contains("trailing"));
    assert!(Document::from_json(b"[1,", &k).is_err());
}

#[test]
fn records_carry_spans_and_keys() {
    let key = KeyPointer::parse("/country/key").unwrap();
    let doc = Document::from_json(
            br#"[ {"dates":{}, "country":{"name":"France","key":"france"}}, {"x":1}, {"country":{"key":7}} ]"#,
            &key,
        )
        .unwrap();
    let recs = doc.records().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        doc.record_bytes(&recs[0]),
        br#"{"country":{"key":"france","name":"France"},"dates":{}}"#
    );
    assert_eq!(doc.key(&recs[0]), Some(&br#""france""#[..]));
    assert_eq!(doc.key(&recs[1]), None);
    assert_eq!(display_key(doc.key(&recs[2]).unwrap()), "7");
    assert_eq!(doc.sha256(), sha256_hex(doc.bytes()));
    let again = Document::from_canonical(doc.shared_bytes(), &key, doc.sha256()).unwrap();
    assert_eq!(again, doc);
    assert!(Document::from_canonical(doc.shared_bytes(), &key, &"0".repeat(64)).is_err());
}

#[test]
fn key_order_and_whitespace_do_not_change_the_hash() {
    let key = KeyPointer::parse("/id").unwrap();
    let a = Document::from_json(br#"[{"id":1,"v":[1,2]},{"id":2}]"#, &key).unwrap();
    let b = Document::from_json(b"[ {\"v\" : [1, 2],\n \"id\":1}, {\"id\":2} ]\n", &key).unwrap();
    assert_eq!(a.sha256(), b.sha256());
    assert_eq!(a, b);
}

#[test]
fn from_value_agrees_with_the_streaming_path() {
    let v = json!({"z": [1, 2.5, "x"], "a": {"b": null, "\u{e000}": 1, "\u{10000}": 2}});
    let doc = Document::from_value(&v, &KeyPointer::default());
    assert_eq!(doc.bytes(), to_canonical_vec(&v).as_slice());
}

/// JSON text as a producer might write it: members in arrival order (not sorted), each
/// string either as serde_json writes it or with everything but plain ASCII as `\u`
/// escapes (so both the borrowed and the unescaped-copy paths of the parser are taken).
#[derive(Debug, Clone)]
enum Text {
    Scalar(Value),
    Str(String, bool),
    Array(Vec<Text>),
    Object(Vec<((String, bool), Text)>),
}

fn arb_text() -> impl Strategy<Value = Text> {
    let leaf = prop_oneof![
        Just(Text::Scalar(Value::Null)),
        any::<bool>().prop_map(|b| Text::Scalar(json!(b))),
        any::<i64>().prop_map(|n| Text::Scalar(json!(n))),
        any::<u64>().prop_map(|n| Text::Scalar(json!(n))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Text::Scalar(json!(f))),
        (
            "[a-z\"\\\\/\u{1}\u{1f}\u{7f}é\u{2028}😀]{0,6}",
            any::<bool>()
        )
            .prop_map(|(s, escaped)| Text::Str(s, escaped)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let name = (
            "[a-c\"\\\\\u{1}\u{80}é\u{e000}\u{ffff}😀\u{10000}]{0,3}",
            any::<bool>(),
        );
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Text::Array),
            prop::collection::vec((name, inner), 0..6).prop_map(|mut members| {
                let mut seen = std::collections::HashSet::new();
                members.retain(|((n, _), _)| seen.insert(n.clone()));
                Text::Object(members)
            }),
        ]
    })
}

fn write_text(t: &Text, out: &mut String) {
    match t {
        Text::Scalar(v) => out.push_str(&v.to_string()),
        Text::Str(s, escaped) => write_text_str(s, *escaped, out),
        Text::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { "" });
                write_text(v, out);
            }
            out.push(']');
        }
        Text::Object(members) => {
            out.push('{');
            for (i, ((name, escaped), v)) in members.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                write_text_str(name, *escaped, out);
                out.push_str(": ");
                write_text(v, out);
            }
            out.push('}');
        }
    }
}

fn write_text_str(s: &str, escaped: bool, out: &mut String) {
    if !escaped {
        out.push_str(&serde_json::to_string(s).unwrap());
        return;
    }
    out.push('"');
    for c in s.chars() {
        if (' '..='~').contains(&c) && c != '"' && c != '\\' {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.push('"');
}

/// The fast path's result (`None` when it gave up) and serde_json's, on the same text.
fn both_paths(
    text: &[u8],
    key: &KeyPointer,
    drops: &[&[String]],
) -> (Option<Parsed>, Result<Parsed, String>) {
    let fast = std::str::from_utf8(text)
        .ok()
        .and_then(|t| canonicalize(&mut fast::Parser::new(t), text.len(), key, drops).ok());
    let serde = canonicalize(
        &mut serde_json::Deserializer::from_slice(text),
        text.len(),
        key,
        drops,
    )
    .map_err(|e| e.to_string());
    (fast, serde)
}

/// What the fast path accepts, serde_json accepts, with the same bytes, records, keys and
/// member spans.
fn assert_fast_agrees(text: &[u8], key: &KeyPointer, drops: &[&[String]]) -> Option<Parsed> {
    let (fast, serde) = both_paths(text, key, drops);
    if let Some(fast) = &fast {
        match &serde {
            Ok(serde) => assert!(
                fast == serde,
                "the paths disagree on {:?}",
                String::from_utf8_lossy(text)
            ),
            Err(e) => panic!(
                "the fast path accepted what serde_json rejects ({e}): {:?}",
                String::from_utf8_lossy(text)
            ),
        }
    }
    fast
}

#[test]
fn fast_path_gives_up_where_serde_json_decides() {
    let k = KeyPointer::default();
    let accepted = [
        "[1,-5,0,123456789012345678,-123456789012345678]",
        "[1234567890123456789,-1234567890123456789,18446744073709551616,-9223372036854775809]",
        "[-0,0.0,1e300,1.5,2E-3,1e+21,-0.0,1E-400]",
        r#"{"a\"b":"\u00e9\ud83d\ude00\n","\u0041":[true,false,null]}"#,
        " \t\n\r[ {\"b\" : 1 , \"a\" : \"x\" } ] \n",
        "\"just a string\"",
        "7",
        "[[[[[[[[[[[]]]]]]]]]]]",
        r#"["\uD83D\uDE00","\u00E9\u00e9x","a\/b","\b\f\r\t","\u0000","\u001f","\uffff","é\n😀"]"#,
        r#"{"\u00e9":1,"é ":2,"\"":3,"\\":4,"\ud83d\ude00":5}"#,
    ];
    for text in accepted {
        let fast = assert_fast_agrees(text.as_bytes(), &k, &[]);
        assert!(fast.is_some(), "the fast path gave up on {text:?}");
    }
    let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(assert_fast_agrees(deep_ok.as_bytes(), &k, &[]).is_some());
    let rejected_or_left = [
        "[1,]",
        "{\"a\":1,}",
        "[01]",
        "[1.]",
        "[-]",
        "[+1]",
        "[.5]",
        "[1e]",
        "[--1]",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{1:2}",
        "[tru]",
        "[nulls]",
        "[True]",
        "[\"a\u{1}\"]",
        "[\"\\ud800\"]",
        "[\"\\x\"]",
        "[\"abc]",
        "[",
        "]",
        "",
        " ",
        "[1] x",
        "{\"a\":1,\"a\":2}",
        "\u{feff}[1]",
        "[1]]",
        "{\"a\":1}}",
        "[1,,2]",
        "[NaN]",
        "[Infinity]",
        "[1e400]",
        "[1e999999999999999999999]",
        r#"["\udc00"]"#,
        r#"["\ud800\u0041"]"#,
        r#"["\ud800x"]"#,
        r#"["\ud800\"]"#,
        r#"["\u12"]"#,
        r#"["\u12G4"]"#,
        r#"["\x"]"#,
        r#"["\"#,
        r#"["\é"]"#,
        "[\"a\\\u{1}\"]",
    ];
    for text in rejected_or_left {
        let (fast, serde) = both_paths(text.as_bytes(), &k, &[]);
        assert!(fast.is_none(), "the fast path accepted {text:?}");
        assert!(serde.is_err(), "serde_json accepted {text:?}");
    }
    for depth in [101, 127, 128, 500] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(assert_fast_agrees(deep.as_bytes(), &k, &[]).is_none());
        assert_eq!(
            Document::from_json(deep.as_bytes(), &k).is_ok(),
            depth < 128,
            "depth {depth}"
        );
    }
    // Not UTF-8: serde_json's error, with its position.
    let err = Document::from_json(b"[\"\xff\"]", &k).unwrap_err();
    assert!(err.contains("line 1 column"), "{err}");
}

#[test]
fn errors_name_nan_infinity_and_utf16() {
    let k = KeyPointer::parse("").unwrap();
    for (text, says) in [
        ("[1, NaN]", "NaN at line 1 column 5"),
        ("[1,\n Infinity]", "Infinity at line 2 column 2"),
        ("[-Infinity]", "-Infinity at line 1 column 2"),
        ("{\"a\": nan}", "nan at line 1 column 7"),
    ] {
        let err = Document::from_json(text.as_bytes(), &k).unwrap_err();
        assert!(
            err.starts_with("NaN and Infinity are not JSON: ") && err.contains(says),
            "{text}: {err}"
        );
    }
    // A word that only starts like one keeps serde_json's message.
    let err = Document::from_json(b"[info]", &k).unwrap_err();
    assert!(err.contains("expected value at line 1 column 2"), "{err}");
    let utf16: Vec<u8> = "[1]".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let err = Document::from_json(&utf16, &k).unwrap_err();
    assert!(
        err.contains(
            "looks like UTF-16 (NUL bytes, the first at line 1 column 2); JSON must be UTF-8"
        ),
        "{err}"
    );
    // A NUL after the real error is not blamed.
    let err = Document::from_json(b"[}, \"\x00\"]", &k).unwrap_err();
    assert!(
        err.contains("line 1 column 2") && !err.contains("NUL"),
        "{err}"
    );
}

/// A damage to a text: a byte removed, replaced or inserted.
fn damage(text: &str, at: prop::sample::Index, how: u8, byte: u8) -> Vec<u8> {
    const BYTES: &[u8] = b"{}[],:\"\\ \n0123456789-+.eEtrufalsn\x01\x7f\xc3\xa9";
    let mut b = text.as_bytes().to_vec();
    let byte = BYTES[byte as usize % BYTES.len()];
    if b.is_empty() {
        return vec![byte];
    }
    let i = at.index(b.len());
    match how % 3 {
        0 => {
            b.remove(i);
        }
        1 => b[i] = byte,
        _ => b.insert(i, byte),
    }
    b
}

proptest! {
    #[test]
    fn fast_path_agrees_with_serde_json(
        t in arb_text(),
        records in prop::collection::vec(arb_text(), 0..4),
        damages in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 0..3),
    ) {
        // A value on its own, and records of an array with a key and drop patterns.
        let mut text = String::new();
        write_text(&t, &mut text);
        let mut array = String::from("[");
        for (i, r) in records.iter().enumerate() {
            array.push_str(if i > 0 { ",\n" } else { "" });
            write_text(r, &mut array);
        }
        array.push(']');
        let key = KeyPointer::parse("/a").unwrap();
        let (star_b, zero) = (["*".to_string(), "b".to_string()], ["0".to_string()]);
        let drops: [&[String]; 2] = [&star_b, &zero];
        for (text, key, drops) in [
            (&text, &KeyPointer::default(), &[][..]),
            (&array, &key, &drops[..]),
        ] {
            prop_assert!(
                assert_fast_agrees(text.as_bytes(), key, drops).is_some(),
                "the fast path gave up on valid {:?}", text
            );
            let mut damaged = text.as_bytes().to_vec();
            for (at, how, byte) in &damages {
                damaged = damage(&String::from_utf8_lossy(&damaged), *at, *how, *byte);
                assert_fast_agrees(&damaged, key, drops);
            }
        }
    }

    #[test]
    fn streaming_agrees_with_write_value_on_unsorted_text(t in arb_text()) {
        let mut text = String::new();
        write_text(&t, &mut text);
        let doc = Document::from_json(text.as_bytes(), &KeyPointer::default()).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(
            String::from_utf8(doc.bytes().to_vec()).unwrap(),
            write_value_string(&value)
        );
    }
}

/// The member spans a writer reports are taken only when they are an object's: the spans a scan
/// finds pass, and a span moved, dropped or past the end does not.
#[test]
fn member_spans_from_a_writer_are_checked_against_the_text() {
    for text in [
        r#"{"a":1,"bc":[1,{"x":"}"}],"d":{}}"#,
        "{}",
        r#"{"":"q\"x"}"#,
    ] {
        let good = member_spans(text).unwrap();
        assert!(members_fit(text, &good), "{text}");
        if good.is_empty() {
            assert!(!members_fit(text, &[(1, 2, 3)]));
            continue;
        }
        let last = good.len() - 1;
        let mut bad = vec![good[..last].to_vec()];
        for f in [
            |s: &mut (usize, usize, usize)| s.0 += 1,
            |s: &mut (usize, usize, usize)| s.1 -= 1,
            |s: &mut (usize, usize, usize)| s.2 -= 1,
            |s: &mut (usize, usize, usize)| s.2 += 1,
        ] {
            for i in 0..good.len() {
                let mut spans = good.clone();
                f(&mut spans[i]);
                bad.push(spans);
            }
        }
        for spans in bad {
            assert!(!members_fit(text, &spans), "{text} {spans:?}");
        }
    }
}

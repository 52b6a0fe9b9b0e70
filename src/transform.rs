//! Transforms (the assignment's Part 4): pure functions over JSON, applied in order between
//! fetching and canonicalizing. `drop` and `keep` take JSON pointers with `*` wildcards
//! (`/*/dates/*/cumulative`); `filter`, `rename` and `join` work on the records of a top-level
//! array.
//!
//! The decision to know: a leading run of `drop` transforms is done *while parsing*
//! ([`Document::from_json_dropping`]), at the canonicalizer's speed and without building trees;
//! every other transform parses one record at a time into a `Value`. Both paths give the same
//! bytes (tests check it). The join table is loaded by the caller (I/O stays in `sync.rs`); its
//! content hash is part of the pipeline fingerprint, so a change in the joined data alone is a
//! new version.

use serde_json::Value;

use crate::canonical::{parse_pointer, pointer, write_value, Document, KeyPointer};
pub use crate::join::{Join, JoinSpec, JoinStats};

/// A JSON pointer whose tokens may be `*` (any member name or array index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub Vec<String>);

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = parse_pointer(text)?;
        if tokens.is_empty() {
            return Err("a path must not be empty (it would name the whole document)".into());
        }
        Ok(Pattern(tokens))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Equals(Value),
    In(Vec<Value>),
    /// Numbers within `[min, max]` (either bound optional).
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    Drop(Vec<Pattern>),
    Keep(Vec<Pattern>),
    /// Keep only records whose value at the pointer satisfies the condition.
    Filter {
        field: Vec<String>,
        condition: Condition,
    },
    /// Rename the member at each pattern to a new name (same parent).
    Rename(Vec<(Pattern, String)>),
    Join(Box<Join>),
}

/// A transform as configured: ready to apply, or a join whose table is still to be loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum TransformSpec {
    Ready(Transform),
    Join(Box<JoinSpec>),
}

/// What turns fetched bytes into canonical bytes: the same source bytes through the same
/// pipeline (key, transforms, and the content of joined tables) cannot make a new version, so a
/// source's 304 or unchanged bytes end a run early only under the same fingerprint.
///
/// Built from an explicit text ([`Transform::identity`]), not a `Debug` rendering: renaming a
/// field or upgrading serde_json must not change every version's identity. The text is the one
/// `Debug` gave when fingerprints were first stored (tests pin it).
pub fn pipeline_fingerprint(key: &KeyPointer, transforms: &[Transform]) -> String {
    let mut text = format!("snapsync-pipeline/2\nkey={key}\n");
    for t in transforms {
        text.push_str(&t.identity());
        text.push('\n');
    }
    crate::canonical::sha256_hex(text.as_bytes())
}

impl Transform {
    /// This transform's line of the pipeline fingerprint.
    pub fn identity(&self) -> String {
        let patterns = |name: &str, ps: &[Pattern]| {
            let items: Vec<String> = ps.iter().map(|p| format!("Pattern({:?})", p.0)).collect();
            format!("{name}([{}])", items.join(", "))
        };
        match self {
            Transform::Drop(ps) => patterns("Drop", ps),
            Transform::Keep(ps) => patterns("Keep", ps),
            Transform::Filter { field, condition } => {
                let condition = match condition {
                    Condition::Equals(v) => format!("Equals({})", value_identity(v)),
                    Condition::In(vs) => {
                        let items: Vec<String> = vs.iter().map(value_identity).collect();
                        format!("In([{}])", items.join(", "))
                    }
                    Condition::Range { min, max } => {
                        format!("Range {{ min: {min:?}, max: {max:?} }}")
                    }
                };
                format!("Filter {{ field: {field:?}, condition: {condition} }}")
            }
            Transform::Rename(rs) => {
                let items: Vec<String> = rs
                    .iter()
                    .map(|(p, to)| format!("(Pattern({:?}), {to:?})", p.0))
                    .collect();
                format!("Rename([{}])", items.join(", "))
            }
            Transform::Join(j) => {
                let mut text = format!(
                    "join on={:?} into={:?} fields={:?} table={}",
                    j.on, j.into, j.fields, j.sha256
                );
                if let Some(p) = &j.on_iso {
                    text.push_str(&format!(" on_iso={p:?}"));
                }
                text
            }
        }
    }
}

/// A JSON value as serde_json 1.0's `Debug` wrote it (`String("a")`, `Number(1)`,
/// `Array [Bool(true)]`, `Object {"k": Null}`), spelled out so an upgrade cannot change it.
fn value_identity(v: &Value) -> String {
    match v {
        Value::Null => "Null".into(),
        Value::Bool(b) => format!("Bool({b})"),
        Value::Number(n) => format!("Number({n})"),
        Value::String(s) => format!("String({s:?})"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(value_identity).collect();
            format!("Array [{}]", items.join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}: {}", value_identity(v)))
                .collect();
            format!("Object {{{}}}", items.join(", "))
        }
    }
}

/// What the transforms did, for the run's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub filtered_out: u64,
    /// Record keys a join found no row for (the first 20).
    pub unmatched: Vec<String>,
    pub unmatched_count: u64,
    /// Per join transform, in order: what it matched.
    pub joins: Vec<JoinStats>,
}

/// Parses `raw`, applies `transforms` in order, and returns the canonical document.
pub fn apply(
    raw: &[u8],
    key: &KeyPointer,
    transforms: &[Transform],
) -> Result<(Document, Stats), String> {
    let streamed = transforms
        .iter()
        .take_while(|t| matches!(t, Transform::Drop(_)))
        .count();
    let drops: Vec<Vec<String>> = transforms[..streamed]
        .iter()
        .flat_map(|t| match t {
            Transform::Drop(p) => p.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    let doc = Document::from_json_dropping(raw, key, &drops)?;
    let rest = &transforms[streamed..];
    if rest.is_empty() {
        return Ok((doc, Stats::default()));
    }
    let mut stats = Stats {
        joins: rest
            .iter()
            .filter_map(|t| match t {
                Transform::Join(j) => Some(j.new_stats()),
                _ => None,
            })
            .collect(),
        ..Stats::default()
    };
    let mut out = Vec::with_capacity(doc.bytes().len());
    match doc.records() {
        Some(records) => {
            out.push(b'[');
            let mut written = 0;
            for (i, r) in records.iter().enumerate() {
                let mut v: Value =
                    serde_json::from_slice(doc.record_bytes(r)).map_err(|e| e.to_string())?;
                if !apply_record(&mut v, i, rest, &mut stats) {
                    stats.filtered_out += 1;
                    continue;
                }
                if written > 0 {
                    out.push(b',');
                }
                write_value(&v, &mut out);
                written += 1;
            }
            out.push(b']');
        }
        None => {
            // A single document: drop/keep/rename patterns address it from its root.
            let mut v = doc.to_value();
            for t in rest {
                match t {
                    Transform::Drop(p) => p.iter().for_each(|p| drop_path(&mut v, &p.0)),
                    Transform::Keep(p) => {
                        let paths: Vec<&[String]> = p.iter().map(|p| &p.0[..]).collect();
                        v = keep_paths(&v, &paths);
                    }
                    Transform::Rename(r) => r.iter().for_each(|(p, to)| rename(&mut v, &p.0, to)),
                    Transform::Filter { .. } | Transform::Join(_) => {
                        return Err("filter and join need a top-level array of records".into())
                    }
                }
            }
            write_value(&v, &mut out);
        }
    }
    let doc = Document::from_json(&out, key)?;
    Ok((doc, stats))
}

/// Applies record-level transforms to record `index`; `false` when a filter removes it.
fn apply_record(v: &mut Value, index: usize, transforms: &[Transform], stats: &mut Stats) -> bool {
    let idx = index.to_string();
    // Document-level patterns start with the record's index (or `*`).
    let local = |p: &Pattern| -> Option<Vec<String>> {
        match p.0.split_first() {
            Some((first, rest)) if (first == "*" || *first == idx) && !rest.is_empty() => {
                Some(rest.to_vec())
            }
            _ => None,
        }
    };
    let mut joins = 0;
    for t in transforms {
        match t {
            Transform::Drop(patterns) => {
                for p in patterns.iter().filter_map(local) {
                    drop_path(v, &p);
                }
            }
            Transform::Keep(patterns) => {
                let local: Vec<Vec<String>> = patterns.iter().filter_map(local).collect();
                let refs: Vec<&[String]> = local.iter().map(Vec::as_slice).collect();
                *v = keep_paths(v, &refs);
            }
            Transform::Filter { field, condition } => {
                if !condition.holds(pointer(v, field)) {
                    return false;
                }
            }
            Transform::Rename(renames) => {
                for (p, to) in renames {
                    if let Some(p) = local(p) {
                        rename(v, &p, to);
                    }
                }
            }
            Transform::Join(join) => {
                let js = &mut stats.joins[joins];
                let before = js.unmatched.len();
                join.apply(v, js);
                if js.unmatched.len() > before {
                    stats.unmatched_count += 1;
                    if stats.unmatched.len() < 20 {
                        stats.unmatched.push(js.unmatched[before].clone());
                    }
                }
                joins += 1;
            }
        }
    }
    true
}

fn token_matches(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern == name
}

/// Removes every member or element matching `tokens`.
pub fn drop_path(v: &mut Value, tokens: &[String]) {
    let Some((first, rest)) = tokens.split_first() else {
        return;
    };
    match v {
        Value::Object(m) => {
            if rest.is_empty() {
                m.retain(|k, _| !token_matches(first, k));
            } else {
                for (k, child) in m.iter_mut() {
                    if token_matches(first, k) {
                        drop_path(child, rest);
                    }
                }
            }
        }
        Value::Array(a) => {
            if rest.is_empty() {
                let mut i = 0;
                a.retain(|_| {
                    let keep = !token_matches(first, &i.to_string());
                    i += 1;
                    keep
                });
            } else {
                for (i, child) in a.iter_mut().enumerate() {
                    if token_matches(first, &i.to_string()) {
                        drop_path(child, rest);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Keeps only what lies on one of the paths (and everything below a path's end).
pub fn keep_paths(v: &Value, paths: &[&[String]]) -> Value {
    if paths.iter().any(|p| p.is_empty()) {
        return v.clone();
    }
    let below = |name: &str| -> Vec<&[String]> {
        paths
            .iter()
            .filter(|p| token_matches(&p[0], name))
            .map(|p| &p[1..])
            .collect()
    };
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter_map(|(k, child)| {
                    let sub = below(k);
                    (!sub.is_empty()).then(|| (k.clone(), keep_paths(child, &sub)))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .filter_map(|(i, child)| {
                    let sub = below(&i.to_string());
                    (!sub.is_empty()).then(|| keep_paths(child, &sub))
                })
                .collect(),
        ),
        // A path that goes on below a scalar keeps nothing of it.
        _ => Value::Null,
    }
}

/// Renames the members matching `tokens` to `to` (same parent); an existing member named `to`
/// is replaced.
pub fn rename(v: &mut Value, tokens: &[String], to: &str) {
    let Some((first, rest)) = tokens.split_first() else {
        return;
    };
    match v {
        Value::Object(m) if rest.is_empty() => {
            let names: Vec<String> = m
                .keys()
                .filter(|k| token_matches(first, k) && *k != to)
                .cloned()
                .collect();
            for name in names {
                if let Some(val) = m.remove(&name) {
                    m.insert(to.to_string(), val);
                }
            }
        }
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if token_matches(first, k) {
                    rename(child, rest, to);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                if token_matches(first, &i.to_string()) {
                    rename(child, rest, to);
                }
            }
        }
        _ => {}
    }
}

impl Condition {
    fn holds(&self, v: Option<&Value>) -> bool {
        let Some(v) = v else { return false };
        match self {
            Condition::Equals(want) => json_eq(v, want),
            Condition::In(options) => options.iter().any(|o| json_eq(v, o)),
            Condition::Range { min, max } => v
                .as_f64()
                .is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m)),
        }
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    fn run(input: Value, transforms: &[Transform]) -> Value {
        let key = KeyPointer::parse("/k").unwrap();
        let raw = serde_json::to_vec(&input).unwrap();
        let (doc, _) = apply(&raw, &key, transforms).unwrap();
        doc.to_value()
    }

    #[rstest]
    #[case::cumulative(json!([{"k":1,"d":{"a":{"new":1,"cumulative":2}}}]), "/*/d/*/cumulative", json!([{"k":1,"d":{"a":{"new":1}}}]))]
    #[case::missing_path(json!([{"k":1}]), "/*/d/*/cumulative", json!([{"k":1}]))]
    #[case::non_object_records(json!([1, "x", {"k": 2, "z": 3}]), "/*/z", json!([1, "x", {"k": 2}]))]
    #[case::array_elements(json!([{"k":1,"l":[1,2,3]}]), "/*/l/1", json!([{"k":1,"l":[1,3]}]))]
    #[case::first_array_element(json!([{"k":1,"l":[1,2,3]}]), "/*/l/0", json!([{"k":1,"l":[2,3]}]))]
    #[case::one_record_only(json!([{"k":1,"z":1},{"k":2,"z":2}]), "/1/z", json!([{"k":1,"z":1},{"k":2}]))]
    fn drop_removes_matching_paths(
        #[case] input: Value,
        #[case] pattern: &str,
        #[case] expect: Value,
    ) {
        // Streaming (a leading drop) and tree (a drop after another transform) agree.
        assert_eq!(
            run(input.clone(), &[Transform::Drop(vec![p(pattern)])]),
            expect
        );
        let noop = Transform::Rename(vec![(p("/*/nothing"), "x".into())]);
        assert_eq!(
            run(input, &[noop, Transform::Drop(vec![p(pattern)])]),
            expect
        );
    }

    #[test]
    fn drop_on_a_single_document() {
        let out = run(
            json!({"a": {"b": 1, "c": 2}}),
            &[Transform::Drop(vec![p("/a/c")])],
        );
        assert_eq!(out, json!({"a": {"b": 1}}));
    }

    #[test]
    fn keep_keeps_only_listed_paths() {
        let input = json!([{"k":1,"c":{"name":"F","pop":3},"d":{"a":{"new":1,"cum":2}}}]);
        let out = run(
            input,
            &[Transform::Keep(vec![
                p("/*/k"),
                p("/*/c/name"),
                p("/*/d/*/new"),
            ])],
        );
        assert_eq!(out, json!([{"k":1,"c":{"name":"F"},"d":{"a":{"new":1}}}]));
    }

    #[rstest]
    #[case::equals(Condition::Equals(json!("eu")), "r", 1)]
    #[case::in_list(Condition::In(vec![json!("eu"), json!("as")]), "r", 2)]
    #[case::range(Condition::Range { min: Some(2.0), max: None }, "n", 2)]
    #[case::missing_field(Condition::Equals(json!(1)), "nope", 0)]
    fn filter_keeps_matching_records(
        #[case] condition: Condition,
        #[case] field: &str,
        #[case] expect: usize,
    ) {
        let input =
            json!([{"k":1,"r":"eu","n":1},{"k":2,"r":"as","n":2},{"k":3,"r":"af","n":3},{"k":4}]);
        let out = run(
            input,
            &[Transform::Filter {
                field: vec![field.into()],
                condition,
            }],
        );
        assert_eq!(out.as_array().unwrap().len(), expect, "{out}");
    }

    #[test]
    fn rename_moves_a_member() {
        let out = run(
            json!([{"k":1,"c":{"name":"F"}}, 7]),
            &[Transform::Rename(vec![(p("/*/c/name"), "label".into())])],
        );
        assert_eq!(out, json!([{"k":1,"c":{"label":"F"}}, 7]));
    }

    #[test]
    fn join_adds_fields_by_key_and_reports_unmatched() {
        let spec = crate::join::JoinSpec {
            source: "file:///t.csv".into(),
            format: Some(crate::table::TableFormat::Csv),
            read: crate::table::ReadOptions::default(),
            max_bytes: crate::table::DEFAULT_MAX_BYTES,
            key_column: "name".into(),
            iso_column: None,
            names: BTreeMap::from([("Korea, Rep.".to_string(), vec!["south-korea".to_string()])]),
            aliases: false,
            on: vec!["k".into()],
            on_iso: None,
            into: vec!["info".into()],
            fields: None,
        };
        let join = spec
            .load(
                b"name,continent,population\nFrance,Europe,68000000\n\"Korea, Rep.\",Asia,51700000\n",
                None,
            )
            .unwrap();
        let key = KeyPointer::parse("/k").unwrap();
        let raw = serde_json::to_vec(&json!([{"k":"france"},{"k":"south-korea"},{"k":"atlantis"}]))
            .unwrap();
        let (doc, stats) = apply(&raw, &key, &[Transform::Join(Box::new(join))]).unwrap();
        assert_eq!(
            doc.to_value(),
            json!([{"k":"france","info":{"continent":"Europe","population":68000000}},
                   {"k":"south-korea","info":{"continent":"Asia","population":51700000}},
                   {"k":"atlantis"}])
        );
        assert_eq!(
            (stats.unmatched_count, stats.unmatched),
            (1, vec!["atlantis".to_string()])
        );
        assert_eq!(stats.joins[0].used, [true, true]);
    }

    /// Every transform's fingerprint line, pinned: the text `Debug` gave when fingerprints were
    /// first stored (a change here changes the identity of every stored pipeline).
    #[test]
    fn fingerprint_lines_are_pinned() {
        let cases: Vec<(Transform, &str)> = vec![
            (
                Transform::Drop(vec![p("/*/dates/*/cumulative"), p("/a~1b")]),
                r#"Drop([Pattern(["*", "dates", "*", "cumulative"]), Pattern(["a/b"])])"#,
            ),
            (
                Transform::Keep(vec![p("/*/country")]),
                r#"Keep([Pattern(["*", "country"])])"#,
            ),
            (
                Transform::Filter {
                    field: vec!["country".into(), "key".into()],
                    condition: Condition::In(vec![
                        json!("france"),
                        json!(1),
                        json!(1.5),
                        json!(null),
                    ]),
                },
                r#"Filter { field: ["country", "key"], condition: In([String("france"), Number(1), Number(1.5), Null]) }"#,
            ),
            (
                Transform::Filter {
                    field: vec!["x".into()],
                    condition: Condition::Equals(json!({"a": [true, "q\""]})),
                },
                r#"Filter { field: ["x"], condition: Equals(Object {"a": Array [Bool(true), String("q\"")]}) }"#,
            ),
            (
                Transform::Filter {
                    field: vec!["n".into()],
                    condition: Condition::Range {
                        min: Some(1.0),
                        max: None,
                    },
                },
                r#"Filter { field: ["n"], condition: Range { min: Some(1.0), max: None } }"#,
            ),
            (
                Transform::Rename(vec![(p("/*/country/name"), "label".into())]),
                r#"Rename([(Pattern(["*", "country", "name"]), "label")])"#,
            ),
        ];
        for (t, line) in &cases {
            assert_eq!(t.identity(), *line);
            // Today `Debug` still agrees; this half may go when a field is renamed.
            assert_eq!(format!("{t:?}"), *line);
        }
        // And one whole fingerprint, as stored by a version made with it.
        let key = KeyPointer::parse("/country/key").unwrap();
        let all: Vec<Transform> = cases.into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            pipeline_fingerprint(&key, &all),
            "83936a121a9fd9339059e339f38c41e44d7de15db37904489d921a19f8b6a869"
        );
    }

    #[test]
    fn patterns_must_name_something() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("no-slash").is_err());
        assert!(Pattern::parse("/*/a").is_ok());
    }
}

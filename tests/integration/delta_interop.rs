//! Proof that a delta is what docs/design.md promises, on hundreds of generated changes to keyed
//! arrays like the covid file: any permutation of the records plus any edits (records added,
//! removed, renamed, their members added, removed, replaced, nested arrays changed).
//!
//! For every case the patch must
//! - give the new canonical bytes when snapsync applies it, and the new `sha256` when Python's
//!   `jsonpatch` + `rfc8785` and node's `fast-json-patch` + `canonicalize` apply it: the
//!   consumers docs/design.md names, run once each over a JSON-lines file of all cases;
//! - account for every key the way an independent count does: `added`/`removed` are the key-set
//!   differences, `moved` is the number of `move` ops and equals the common keys minus the longest
//!   common subsequence of their two orders (computed here, not by the library), `changed` the
//!   common keys whose bytes differ; `changes` has one entry per such key and none for the rest;
//!   at the top level there is one `add` per new key, one `remove` per gone key, one `move` per
//!   moved key, and a reorder alone carries no record body.
//!
//! Cases are generated from a fixed seed (`SNAPSYNC_INTEROP_SEED` explores another). A failing
//! case prints its index, from, to and patch; `SNAPSYNC_INTEROP_CASES=3,17` runs only those.
//! The Python venv and the node modules come from `scripts/py-env.sh` and `scripts/js-env.sh`
//! (run by `scripts/test`); without them the interop test fails rather than skips.
//!
//! The batch also holds a few hand-made control cases: two correct `move` patches that every
//! applier must accept, and three broken patches that every applier must refuse. The test
//! checks each tool reported exactly those three, so a run that passes shows the external check
//! ran on every line and can fail.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use snapsync::canonical::{to_canonical_vec, Document, KeyPointer};
use snapsync::delta::{apply_document, diff, Change, ChangeKind, Diff, PatchOp, Summary};

const SEED: u64 = 0x5eed_0013;
const RANDOM_CASES: usize = 720;
/// Failing cases printed in full, and problems printed per case (all go to a file).
const PRINTED_IN_FULL: usize = 10;
const PROBLEMS_PRINTED: usize = 12;

// ---------------------------------------------------------------------------------------------
// The consumers

const PYTHON_CHECK: &str = r#"
import hashlib, json, sys
from importlib.metadata import version
import jsonpatch, rfc8785

checked = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        case = json.loads(line)
        try:
            result = jsonpatch.apply_patch(case["from"], case["patch"])  # on a copy
            got = hashlib.sha256(rfc8785.dumps(result)).hexdigest()
            error = None if got == case["sha256"] else f"sha256 {got}, expected {case['sha256']}"
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
        if error is not None:
            print(json.dumps({"i": case["i"], "error": error}), flush=True)
        checked += 1
tools = f"jsonpatch {version('jsonpatch')} + rfc8785 {version('rfc8785')}"
print(json.dumps({"checked": checked, "tools": tools}))
"#;

/// An ES module (canonicalize is one), run from the directory holding node_modules: bare
/// imports in `--eval` resolve from the working directory, and ES modules ignore NODE_PATH.
const NODE_CHECK: &str = r#"
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import jsonpatch from 'fast-json-patch';
import canonicalize from 'canonicalize';

let checked = 0;
for (const line of readFileSync(process.argv[1], 'utf8').split('\n')) {
  if (line === '') continue;
  const c = JSON.parse(line);
  let error = null;
  try {
    // validate each operation; mutateDocument=false applies them in order to a deep copy
    const result = jsonpatch.applyPatch(c.from, jsonpatch.deepClone(c.patch), true, false).newDocument;
    const got = createHash('sha256').update(canonicalize(result), 'utf8').digest('hex');
    if (got !== c.sha256) error = `sha256 ${got}, expected ${c.sha256}`;
  } catch (e) {
    // a JsonPatchError's message goes on with the whole tree: keep its first line and the op
    error = `${e.name}: ${e.message.split('\n')[0]}`;
    if (e.operation !== undefined) error += ` (${JSON.stringify(e.operation)})`;
  }
  if (error !== null) console.log(JSON.stringify({ i: c.i, error }));
  checked++;
}
const version = (name) => JSON.parse(readFileSync(`node_modules/${name}/package.json`, 'utf8')).version;
const tools = `fast-json-patch ${version('fast-json-patch')} + canonicalize ${version('canonicalize')}`;
console.log(JSON.stringify({ checked, tools }));
"#;

fn env(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test (it installs {what})")
    })
}

struct Consumer {
    name: &'static str,
    command: Command,
}

impl Consumer {
    fn python() -> Self {
        let mut command = Command::new(env(
            "SNAPSYNC_TEST_PYTHON",
            "jsonpatch and rfc8785 into a venv",
        ));
        command.arg("-c").arg(PYTHON_CHECK);
        Consumer {
            name: "python",
            command,
        }
    }

    fn node() -> Self {
        let what = "fast-json-patch and canonicalize with npm ci";
        let node = env("SNAPSYNC_TEST_NODE", what);
        let modules = env("SNAPSYNC_TEST_NODE_PATH", what);
        let dir = Path::new(&modules)
            .parent()
            .unwrap_or_else(|| panic!("SNAPSYNC_TEST_NODE_PATH={modules} has no parent"));
        let mut command = Command::new(node);
        command
            .current_dir(dir)
            .args(["--input-type=module", "-e", NODE_CHECK]);
        Consumer {
            name: "node",
            command,
        }
    }
}

/// What one consumer said: the cases it rejected (index -> why), and which tools it used.
struct Verdict {
    rejected: BTreeMap<usize, String>,
    tools: String,
    /// Since both started (they run at once, and are waited for in turn).
    secs: f64,
}

/// Runs the consumers at once over the batch file, one process each.
fn run_consumers(
    consumers: Vec<Consumer>,
    batch: &Path,
    lines: usize,
) -> Vec<(&'static str, Verdict)> {
    let started = Instant::now();
    let children: Vec<_> = consumers
        .into_iter()
        .map(|mut c| {
            let child = c
                .command
                .arg(batch)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{} does not start: {e}", c.name));
            (c.name, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(name, child)| {
            let out = child.wait_with_output().expect("consumer runs");
            let secs = started.elapsed().as_secs_f64();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{name} failed ({}):\n{stdout}\n{stderr}",
                out.status
            );
            let mut rejected = BTreeMap::new();
            let mut summary = None;
            for line in stdout.lines() {
                let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("{name} printed {line:?}, not JSON ({e})\n{stderr}")
                });
                match (v["i"].as_u64(), v["error"].as_str(), v["checked"].as_u64()) {
                    (Some(i), Some(error), _) => {
                        rejected.insert(i as usize, error.to_string());
                    }
                    (_, _, Some(checked)) => {
                        summary = Some((checked, v["tools"].as_str().unwrap_or("?").to_string()))
                    }
                    _ => panic!("{name} printed {line}"),
                }
            }
            let (checked, tools) =
                summary.unwrap_or_else(|| panic!("{name} stopped early:\n{stderr}"));
            assert_eq!(
                checked as usize, lines,
                "{name} checked {checked} of {lines} cases"
            );
            (
                name,
                Verdict {
                    rejected,
                    tools,
                    secs,
                },
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The cases

/// One change from `from` to `to`, both lists of records.
struct Case {
    label: String,
    from: Vec<Value>,
    to: Vec<Value>,
}

/// A case with both documents made and diffed.
struct Prepared {
    index: usize,
    case: Case,
    from: Document,
    to: Document,
    diff: Diff,
}

fn key_pointer() -> KeyPointer {
    KeyPointer::parse("/country/key").unwrap()
}

fn prepare(index: usize, case: Case) -> Prepared {
    let key = key_pointer();
    let from = Document::from_value(&Value::Array(case.from.clone()), &key);
    let to = Document::from_value(&Value::Array(case.to.clone()), &key);
    let diff = diff(&from, &to);
    Prepared {
        index,
        case,
        from,
        to,
        diff,
    }
}

/// Every case, in a fixed order (the index is how a failure is named), less those
/// `SNAPSYNC_INTEROP_CASES` leaves out; made once for the tests of this file.
fn cases() -> &'static [Prepared] {
    static CASES: OnceLock<Vec<Prepared>> = OnceLock::new();
    CASES.get_or_init(make_cases)
}

fn seed() -> u64 {
    match std::env::var("SNAPSYNC_INTEROP_SEED") {
        Ok(s) => s.parse().expect("SNAPSYNC_INTEROP_SEED is a number"),
        Err(_) => SEED,
    }
}

fn make_cases() -> Vec<Prepared> {
    let only: Option<HashSet<usize>> = std::env::var("SNAPSYNC_INTEROP_CASES").ok().map(|s| {
        s.split(',')
            .map(|i| {
                i.trim()
                    .parse()
                    .expect("SNAPSYNC_INTEROP_CASES is a list of indices")
            })
            .collect()
    });
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed()),
        next_key: 0,
    };
    let mut all = g.special_cases();
    for i in 0..RANDOM_CASES {
        all.push(g.random_case(i));
    }
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| only.as_ref().is_none_or(|o| o.contains(i)))
        .map(|(i, c)| prepare(i, c))
        .collect()
}

/// How the records of `to` are reordered.
#[derive(Debug, Clone, Copy)]
enum Reorder {
    Keep,
    Shuffle,
    Reverse,
    /// First record goes last, and the rest up by one.
    Rotate,
    /// A few records each taken out and put back elsewhere.
    FewMoves(usize),
    /// Neighbours swapped here and there.
    SwapNeighbours,
    /// The way the upstream re-sorts daily.
    SortByValue,
}

/// How `to` differs from `from` apart from order (probabilities per record).
#[derive(Debug, Clone, Copy)]
struct Edits {
    remove: f64,
    change: f64,
    rename: f64,
    insert: usize,
}

const NO_EDITS: Edits = Edits {
    remove: 0.0,
    change: 0.0,
    rename: 0.0,
    insert: 0,
};

struct Gen {
    rng: StdRng,
    next_key: u64,
}

/// Pieces of generated strings: pointer escapes, UTF-16 ordering (U+E000 sorts after an
/// emoji's surrogates), characters JSON escapes.
const CHARS: &[&str] = &[
    "a", "b", "z", "0", " ", "~", "/", "é", "😀", "\u{e000}", "\"", "\\", "\n", "\u{1}", "\u{2028}",
];
/// Pieces of member names: the same, plus names that look like array indices or `-`.
const NAME_CHARS: &[&str] = &[
    "a", "b", "x", "0", "1", "-", "~", "/", "é", "😀", "\u{e000}",
];
/// Numbers whose shortest form differs between careless printers (and `-0`, printed `0`).
const FLOATS: &[f64] = &[
    1.5,
    -0.0,
    0.1,
    1e21,
    1e-7,
    123456.789,
    -2.5e-5,
    5e-324,
    1.7976931348623157e308,
    9007199254740991.0,
];

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A key no other record of the run has.
    fn key(&mut self) -> String {
        self.next_key += 1;
        let n = self.next_key;
        match self.below(20) {
            0 => format!("côte-d'ivoire-{n}"),
            1 => format!("a/b~{n}"),
            2 => format!("😀{n}"),
            _ => format!("c{n}"),
        }
    }

    fn text(&mut self, pieces: &[&str], len: usize) -> String {
        (0..len).map(|_| pieces[self.below(pieces.len())]).collect()
    }

    fn name(&mut self) -> String {
        let len = self.below(4);
        self.text(NAME_CHARS, len)
    }

    fn scalar(&mut self) -> Value {
        match self.below(8) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(0.5)),
            2 | 3 => json!(self.rng.random_range(-1000i64..1000)),
            // within the integers every consumer holds exactly (rfc8785 refuses more)
            4 => json!(self.rng.random_range(-(1i64 << 53) + 1..1i64 << 53)),
            5 => json!(FLOATS[self.below(FLOATS.len())]),
            6 => json!(self.rng.random_range(-1e6..1e6)),
            _ => {
                let len = self.below(7);
                Value::String(self.text(CHARS, len))
            }
        }
    }

    fn value(&mut self, depth: usize) -> Value {
        match if depth == 0 { 0 } else { self.below(5) } {
            0..=2 => self.scalar(),
            3 => {
                let len = self.below(5);
                Value::Array((0..len).map(|_| self.value(depth - 1)).collect())
            }
            _ => {
                let len = self.below(5);
                Value::Object(
                    (0..len)
                        .map(|_| (self.name(), self.value(depth - 1)))
                        .collect(),
                )
            }
        }
    }

    fn date(&mut self) -> String {
        format!("2020-{:02}-{:02}", 1 + self.below(12), 1 + self.below(28))
    }

    fn day(&mut self) -> Value {
        let mut n = || self.rng.random_range(0..100_000);
        json!({"new": {"cases": n(), "deaths": n()}, "cumulative": {"cases": n(), "deaths": n()}})
    }

    /// A record shaped like the covid file's.
    fn record(&mut self, key: &str) -> Value {
        let mut m = Map::new();
        m.insert(
            "country".into(),
            json!({"key": key, "name": format!("Land {key}")}),
        );
        m.insert("v".into(), json!(self.below(1000)));
        let days = self.below(5);
        let dates: Map<String, Value> = (0..days).map(|_| (self.date(), self.day())).collect();
        m.insert("dates".into(), Value::Object(dates));
        if self.chance(0.5) {
            let len = self.below(6);
            m.insert(
                "tags".into(),
                Value::Array((0..len).map(|_| self.scalar()).collect()),
            );
        }
        for _ in 0..self.below(3) {
            let (name, value) = (self.name(), self.value(2));
            m.insert(name, value);
        }
        Value::Object(m)
    }

    fn records(&mut self, n: usize) -> Vec<Value> {
        (0..n)
            .map(|_| {
                let k = self.key();
                self.record(&k)
            })
            .collect()
    }

    /// One to three edits of a record's content (its key stays).
    fn edit(&mut self, record: &mut Value) {
        for _ in 0..1 + self.below(3) {
            let choice = self.below(9);
            let m = record.as_object_mut().expect("records are objects");
            match choice {
                0 => {
                    let v = self.below(1000);
                    m.insert("v".into(), json!(v));
                }
                1 => {
                    let (date, day) = (self.date(), self.day());
                    m["dates"].as_object_mut().unwrap().insert(date, day);
                }
                2 => {
                    let dates = m["dates"].as_object_mut().unwrap();
                    if let Some(d) = dates.keys().next().cloned() {
                        dates.remove(&d);
                    }
                }
                3 => {
                    let n = self.rng.random_range(0..100_000);
                    if let Some(day) = m["dates"].as_object_mut().unwrap().values_mut().last() {
                        day["new"]["cases"] = json!(n);
                    }
                }
                4 => {
                    let (at, action, value) = (self.below(7), self.below(3), self.scalar());
                    let tags = m.entry("tags").or_insert_with(|| json!([]));
                    let tags = tags.as_array_mut().unwrap();
                    let at = at.min(tags.len());
                    match action {
                        0 => tags.insert(at, value),
                        1 if at < tags.len() => drop(tags.remove(at)),
                        _ if at < tags.len() => tags[at] = value,
                        _ => tags.push(value),
                    }
                }
                5 => {
                    let (name, value) = (self.name(), self.value(2));
                    m.insert(name, value);
                }
                6 => {
                    let extra = m
                        .keys()
                        .find(|k| !["country", "v", "dates"].contains(&k.as_str()))
                        .cloned();
                    if let Some(k) = extra {
                        m.remove(&k);
                    }
                }
                7 => {
                    let name = self.text(CHARS, 4);
                    m["country"]["name"] = json!(name);
                }
                _ => {
                    m.insert("dates".into(), json!({}));
                }
            }
        }
    }

    fn reorder(&mut self, recs: &mut Vec<Value>, how: Reorder) {
        let n = recs.len();
        match how {
            Reorder::Keep => {}
            Reorder::Shuffle => recs.shuffle(&mut self.rng),
            Reorder::Reverse => recs.reverse(),
            Reorder::Rotate => recs.rotate_left(n.min(1)),
            Reorder::FewMoves(k) => {
                for _ in 0..k {
                    if n > 1 {
                        let r = recs.remove(self.below(n));
                        let at = self.below(n);
                        recs.insert(at, r);
                    }
                }
            }
            Reorder::SwapNeighbours => {
                for i in 1..n {
                    if self.chance(0.3) {
                        recs.swap(i - 1, i);
                    }
                }
            }
            Reorder::SortByValue => recs.sort_by_key(|r| r["v"].as_u64()),
        }
    }

    /// `from` edited, then reordered, then new records put anywhere.
    fn change(&mut self, from: &[Value], edits: Edits, how: Reorder) -> Vec<Value> {
        let mut to = Vec::new();
        for r in from {
            if self.chance(edits.remove) {
                continue;
            }
            let mut r = r.clone();
            if self.chance(edits.rename) {
                // a new key for the same body: one record removed, one added
                let k = self.key();
                r["country"]["key"] = json!(k);
            }
            if self.chance(edits.change) {
                self.edit(&mut r);
            }
            to.push(r);
        }
        self.reorder(&mut to, how);
        for _ in 0..edits.insert {
            let r = {
                let k = self.key();
                self.record(&k)
            };
            let at = self.below(to.len() + 1);
            to.insert(at, r);
        }
        to
    }

    fn random_reorder(&mut self) -> Reorder {
        match self.below(7) {
            0 => Reorder::Shuffle,
            1 => Reorder::Reverse,
            2 => Reorder::Rotate,
            3 => Reorder::SwapNeighbours,
            4 => Reorder::SortByValue,
            _ => Reorder::FewMoves(1 + self.below(4)),
        }
    }

    fn random_edits(&mut self) -> Edits {
        Edits {
            remove: self.rng.random_range(0.0..0.3),
            change: self.rng.random_range(0.0..0.6),
            rename: if self.chance(0.3) {
                self.rng.random_range(0.0..0.2)
            } else {
                0.0
            },
            insert: self.below(6),
        }
    }

    fn random_case(&mut self, i: usize) -> Case {
        let n = match self.below(10) {
            0 => 0,
            1 => 1,
            2 => 2,
            _ => self.rng.random_range(3..=40),
        };
        let from = self.records(n);
        let (label, edits, how) = match i % 8 {
            0 => ("random, identical".to_string(), NO_EDITS, Reorder::Keep),
            1 | 2 => {
                let how = self.random_reorder();
                (format!("random, reorder only: {how:?}"), NO_EDITS, how)
            }
            3 => {
                let edits = self.random_edits();
                (
                    format!("random, edits only: {edits:?}"),
                    edits,
                    Reorder::Keep,
                )
            }
            _ => {
                let (edits, how) = (self.random_edits(), self.random_reorder());
                (
                    format!("random, reorder and edits: {how:?}, {edits:?}"),
                    edits,
                    how,
                )
            }
        };
        let to = self.change(&from, edits, how);
        Case { label, from, to }
    }

    fn special_cases(&mut self) -> Vec<Case> {
        let mut cases = Vec::new();
        let mut push = |label: &str, from: Vec<Value>, to: Vec<Value>| {
            cases.push(Case {
                label: label.into(),
                from,
                to,
            })
        };
        let few = self.records(20);
        push("empty to empty", vec![], vec![]);
        push("empty to 20 records", vec![], few.clone());
        push("20 records to empty", few.clone(), vec![]);
        let ten = self.records(10);
        let mut last = ten.clone();
        last.rotate_left(1);
        push("first of 10 goes last", ten.clone(), last);
        let mut swapped = ten.clone();
        swapped.swap(2, 7);
        push("two of 10 swapped", ten.clone(), swapped);
        let renamed = self.change(
            &ten,
            Edits {
                rename: 1.0,
                ..NO_EDITS
            },
            Reorder::Keep,
        );
        push("every key of 10 renamed", ten.clone(), renamed);
        push("10 records replaced by 10 others", ten, self.records(10));

        let big = self.records(300);
        let mut reversed = big.clone();
        reversed.reverse();
        push("300 records fully reversed", big.clone(), reversed);
        let mut sorted = big.clone();
        sorted.sort_by_key(|r| r["v"].as_u64());
        push("300 records sorted by value", big.clone(), sorted);
        let mut first_last = big.clone();
        first_last.rotate_left(1);
        push("first of 300 goes last", big.clone(), first_last);
        let edits = Edits {
            remove: 0.05,
            change: 0.3,
            rename: 0.02,
            insert: 10,
        };
        let shuffled = self.change(&big, edits, Reorder::Shuffle);
        push("300 records shuffled and edited", big.clone(), shuffled);
        let sorted_edited = self.change(&big, edits, Reorder::SortByValue);
        push("300 records edited and sorted by value", big, sorted_edited);
        cases
    }
}

// ---------------------------------------------------------------------------------------------
// The independent account

fn key_of(record: &Value) -> &str {
    record["country"]["key"]
        .as_str()
        .expect("generated records have string keys")
}

/// Length of a longest common subsequence, by the textbook O(n·m) table.
fn lcs_len(a: &[&str], b: &[&str]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

/// `"/12"` -> 12; `None` for deeper paths.
fn top_index(path: &str) -> Option<Result<usize, ()>> {
    let token = path.strip_prefix('/')?;
    if token.contains('/') {
        return None;
    }
    Some(token.parse().map_err(drop))
}

/// Everything wrong with one case's delta, by snapsync's own apply and the account above.
fn problems(p: &Prepared) -> Vec<String> {
    let mut errs = Vec::new();
    let d = &p.diff;
    match apply_document(&p.from, &d.patch) {
        Ok(out) if out == p.to.bytes() => {}
        Ok(out) => {
            let at = out
                .iter()
                .zip(p.to.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            errs.push(format!(
                "snapsync's apply_document gives other bytes (sha256 {}), from byte {at} on",
                snapsync::canonical::sha256_hex(&out)
            ))
        }
        Err(e) => errs.push(format!("snapsync's apply_document refuses the patch: {e}")),
    }

    let old: Vec<&str> = p.case.from.iter().map(key_of).collect();
    let new: Vec<&str> = p.case.to.iter().map(key_of).collect();
    let (old_set, new_set): (HashSet<&str>, HashSet<&str>) =
        (old.iter().copied().collect(), new.iter().copied().collect());
    let added: BTreeSet<&str> = new
        .iter()
        .copied()
        .filter(|k| !old_set.contains(k))
        .collect();
    let removed: BTreeSet<&str> = old
        .iter()
        .copied()
        .filter(|k| !new_set.contains(k))
        .collect();
    let old_common: Vec<&str> = old
        .iter()
        .copied()
        .filter(|k| new_set.contains(k))
        .collect();
    let new_common: Vec<&str> = new
        .iter()
        .copied()
        .filter(|k| old_set.contains(k))
        .collect();
    let lcs = lcs_len(&old_common, &new_common);
    let moved = old_common.len() - lcs;
    let bytes = |recs: &[Value]| -> HashMap<String, Vec<u8>> {
        recs.iter()
            .map(|r| (key_of(r).to_string(), to_canonical_vec(r)))
            .collect()
    };
    let (old_bytes, new_bytes) = (bytes(&p.case.from), bytes(&p.case.to));
    let changed: BTreeSet<&str> = old_common
        .iter()
        .copied()
        .filter(|k| old_bytes[*k] != new_bytes[*k])
        .collect();

    let expected = Summary {
        added: added.len() as u64,
        removed: removed.len() as u64,
        moved: moved as u64,
        changed: changed.len() as u64,
    };
    if d.summary != expected {
        errs.push(format!(
            "summary {:?}, expected {expected:?} ({} common keys, LCS {lcs})",
            d.summary,
            old_common.len()
        ));
    }
    let move_ops = d
        .patch
        .iter()
        .filter(|op| matches!(op, PatchOp::Move { .. }))
        .count();
    if move_ops != moved {
        errs.push(format!("{move_ops} move ops, expected {moved}"));
    }

    // `changes`: one entry per key that was added, removed, moved or changed, and it says which.
    let mut entries: BTreeMap<&str, (ChangeKind, bool)> = BTreeMap::new();
    for c in &d.changes {
        if entries.insert(c.key.as_str(), (c.op, c.moved)).is_some() {
            errs.push(format!("changes lists {:?} twice", c.key));
        }
    }
    for (k, &(op, m)) in &entries {
        let ok = if added.contains(k) {
            (op, m) == (ChangeKind::Added, false)
        } else if removed.contains(k) {
            (op, m) == (ChangeKind::Removed, false)
        } else if changed.contains(k) {
            op == ChangeKind::Changed
        } else if old_set.contains(k) {
            (op, m) == (ChangeKind::Moved, true)
        } else {
            false
        };
        if !ok {
            let was = if added.contains(k) {
                "added"
            } else if removed.contains(k) {
                "removed"
            } else if changed.contains(k) {
                "changed"
            } else if old_set.contains(k) {
                "unchanged in content"
            } else {
                "in neither document"
            };
            errs.push(format!(
                "changes says {k:?} is {op:?} (moved: {m}) but it was {was}"
            ));
        }
    }
    for k in added.iter().chain(&removed).chain(&changed) {
        if !entries.contains_key(k) {
            errs.push(format!("changes has no entry for {k:?}"));
        }
    }
    let flagged: BTreeSet<&str> = entries
        .iter()
        .filter(|(_, e)| e.1)
        .map(|(k, _)| *k)
        .collect();
    if flagged.len() != moved {
        errs.push(format!(
            "changes flags {} keys as moved, expected {moved}",
            flagged.len()
        ));
    }
    // The keys not flagged as moved keep their order: they are a common subsequence (of
    // length common - moved = LCS, so a longest one).
    let stay_old: Vec<&str> = old_common
        .iter()
        .copied()
        .filter(|k| !flagged.contains(k))
        .collect();
    let stay_new: Vec<&str> = new_common
        .iter()
        .copied()
        .filter(|k| !flagged.contains(k))
        .collect();
    if stay_old != stay_new {
        errs.push(format!(
            "the keys not flagged as moved change their order: {stay_old:?} -> {stay_new:?}"
        ));
    }

    // The top level of the patch, replayed on the key sequence: one add per new key (with its
    // record), one remove per gone key, one move per moved key, nothing else.
    let mut keys: Vec<&str> = old.clone();
    let (mut adds, mut removes, mut moves) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut replayed = true;
    for (n, op) in d.patch.iter().enumerate() {
        let at = match top_index(op.path()) {
            None if op.path().is_empty() => {
                errs.push(format!("op {n} replaces the whole document"));
                replayed = false;
                break;
            }
            None => continue,
            Some(Err(())) => {
                errs.push(format!("op {n} has path {:?}", op.path()));
                replayed = false;
                break;
            }
            Some(Ok(at)) => at,
        };
        let fits = match op {
            PatchOp::Add { .. } | PatchOp::Move { .. } => at <= keys.len(),
            _ => at < keys.len(),
        };
        if !fits {
            errs.push(format!(
                "op {n} {op:?}: index out of bounds ({} records)",
                keys.len()
            ));
            replayed = false;
            break;
        }
        match op {
            PatchOp::Add { value, .. } => {
                let k = value
                    .pointer("/country/key")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let k = *new.iter().find(|x| **x == k).unwrap_or(&"?");
                if !added.contains(k) || !adds.insert(k) {
                    errs.push(format!(
                        "op {n} adds record {k:?}, which is not a new key (or twice)"
                    ));
                }
                keys.insert(at, k);
            }
            PatchOp::Remove { .. } => {
                let k = keys.remove(at);
                if !removed.contains(k) || !removes.insert(k) {
                    errs.push(format!(
                        "op {n} removes record {k:?}, which is not a gone key"
                    ));
                }
            }
            PatchOp::Move { from, .. } => {
                let Some(Ok(f)) = top_index(from) else {
                    errs.push(format!("op {n} moves {from:?} to the top level"));
                    replayed = false;
                    break;
                };
                if f >= keys.len() || at >= keys.len() {
                    errs.push(format!(
                        "op {n} {op:?}: index out of bounds ({} records)",
                        keys.len()
                    ));
                    replayed = false;
                    break;
                }
                let k = keys.remove(f);
                keys.insert(at, k);
                if !old_set.contains(k) || !new_set.contains(k) || !moves.insert(k) {
                    errs.push(format!(
                        "op {n} moves record {k:?}, not a common key (or twice)"
                    ));
                }
            }
            _ => errs.push(format!(
                "op {n} {op:?} at the top level: only add, remove and move belong there"
            )),
        }
    }
    if replayed {
        if keys != new {
            errs.push(format!(
                "the top-level ops leave the keys as {keys:?}, not {new:?}"
            ));
        }
        if moves != flagged {
            errs.push(format!(
                "the move ops move {moves:?}, changes flags {flagged:?}"
            ));
        }
    }

    // A reorder alone is moves alone: no record body anywhere in the patch.
    if added.is_empty() && removed.is_empty() && changed.is_empty() {
        if !d.patch.iter().all(|op| matches!(op, PatchOp::Move { .. })) {
            errs.push("a reorder-only change has ops other than move".into());
        }
        if serde_json::to_string(&d.patch)
            .unwrap()
            .contains("\"country\"")
        {
            errs.push("a reorder-only change carries record bodies".into());
        }
        if old == new && (!d.patch.is_empty() || !d.changes.is_empty()) {
            errs.push("identical documents have a non-empty delta".into());
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Reporting

fn canonical_text(recs: &[Value]) -> String {
    String::from_utf8(to_canonical_vec(&Value::Array(recs.to_vec()))).unwrap()
}

/// Panics with every failing case: the first few in full, all of them in a file.
fn report(what: &str, all: &[Prepared], failures: &BTreeMap<usize, Vec<String>>) {
    if failures.is_empty() {
        return;
    }
    let by_index: HashMap<usize, &Prepared> = all.iter().map(|p| (p.index, p)).collect();
    let file =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("delta_interop-{what}-failures.jsonl"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("failure file"));
    let mut msg = String::new();
    for (n, (i, why)) in failures.iter().enumerate() {
        let (label, from, to, patch) = match by_index.get(i) {
            Some(p) => (
                p.case.label.clone(),
                canonical_text(&p.case.from),
                canonical_text(&p.case.to),
                serde_json::to_string(&p.diff.patch).unwrap(),
            ),
            None => (
                format!("control case {i}"),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        let line = json!({"index": i, "label": label, "problems": why, "from": from, "to": to, "patch": patch});
        writeln!(out, "{line}").unwrap();
        writeln!(msg, "\ncase {i} ({label}):").unwrap();
        for w in why.iter().take(PROBLEMS_PRINTED) {
            writeln!(msg, "  - {w}").unwrap();
        }
        if why.len() > PROBLEMS_PRINTED {
            writeln!(msg, "  - and {} more", why.len() - PROBLEMS_PRINTED).unwrap();
        }
        if n < PRINTED_IN_FULL {
            writeln!(msg, "  from:  {from}\n  to:    {to}\n  patch: {patch}").unwrap();
        }
    }
    out.flush().unwrap();
    let some: Vec<String> = failures.keys().take(20).map(|i| i.to_string()).collect();
    panic!(
        "{what}: {} of {} cases fail (seed {}; from, to and patch of the first {PRINTED_IN_FULL} \
         below, of all in {}); rerun some with SNAPSYNC_INTEROP_SEED={} SNAPSYNC_INTEROP_CASES={}\n{msg}",
        failures.len(),
        all.len(),
        seed(),
        file.display(),
        seed(),
        some.join(","),
    );
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_delta_applies_and_accounts_for_every_key() {
    let started = Instant::now();
    let all = cases();
    let mut failures = BTreeMap::new();
    for p in all {
        let errs = problems(p);
        if !errs.is_empty() {
            failures.insert(p.index, errs);
        }
    }
    let ops: usize = all.iter().map(|p| p.diff.patch.len()).sum();
    eprintln!(
        "delta interop: {} cases, {ops} ops, applied and accounted for in {:.1}s",
        all.len(),
        started.elapsed().as_secs_f64()
    );
    report("account", all, &failures);
}

#[test]
fn a_reorder_alone_is_moves_alone() {
    let key = key_pointer();
    let mut g = Gen {
        rng: StdRng::seed_from_u64(SEED),
        next_key: 0,
    };
    let from = g.records(300);
    for how in [
        Reorder::Reverse,
        Reorder::SortByValue,
        Reorder::Shuffle,
        Reorder::Rotate,
    ] {
        let mut to = from.clone();
        g.reorder(&mut to, how);
        let (a, b) = (
            Document::from_value(&Value::Array(from.clone()), &key),
            Document::from_value(&Value::Array(to.clone()), &key),
        );
        let d = diff(&a, &b);
        assert_eq!(apply_document(&a, &d.patch).unwrap(), b.bytes(), "{how:?}");
        let bodies: Vec<&PatchOp> = d
            .patch
            .iter()
            .filter(|op| !matches!(op, PatchOp::Move { .. }))
            .collect();
        assert!(
            bodies.is_empty(),
            "{how:?}: {} ops other than move, the first {:?}",
            bodies.len(),
            bodies.first()
        );
        let s = d.summary;
        assert_eq!((s.added, s.removed, s.changed), (0, 0, 0), "{how:?}: {s:?}");
        assert_eq!(
            s.moved as usize,
            d.patch.len(),
            "{how:?}: one op per moved record"
        );
        let moved_only = |c: &Change| c.op == ChangeKind::Moved && c.moved;
        assert!(d.changes.iter().all(moved_only), "{how:?}: {:?}", d.changes);
        match how {
            Reorder::Reverse => assert_eq!(s.moved, 299, "reversing 300 keeps one in place"),
            Reorder::Rotate => assert_eq!(s.moved, 1, "rotating by one moves one"),
            _ => {}
        }
    }
}

/// Hand-made cases every consumer must accept (`move` as RFC 6902 means it) or refuse.
fn controls(first: usize, sample: &Prepared) -> Vec<(usize, bool, String)> {
    let key = key_pointer();
    let abcd: Vec<Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| json!({"country": {"key": k}, "v": k}))
        .collect();
    let sha = |recs: &[&Value]| {
        Document::from_value(
            &Value::Array(recs.iter().map(|v| (*v).clone()).collect()),
            &key,
        )
        .sha256()
        .to_string()
    };
    let [a, b, c, d] = [&abcd[0], &abcd[1], &abcd[2], &abcd[3]];
    let from = canonical_text(&abcd);
    let line = |i: usize, from: &str, patch: Value, sha256: &str| {
        format!(r#"{{"i":{i},"from":{from},"patch":{patch},"sha256":"{sha256}"}}"#)
    };
    let mut wrong = sample.diff.patch.clone();
    wrong.push(PatchOp::Replace {
        path: "/0/v".into(),
        value: json!("not what diff said"),
    });
    let sample_from = String::from_utf8(sample.from.bytes().to_vec()).unwrap();
    vec![
        // a move forward lands after the ones it passed; backward, before
        (
            first,
            false,
            line(
                first,
                &from,
                json!([{"op": "move", "from": "/0", "path": "/2"}]),
                &sha(&[b, c, a, d]),
            ),
        ),
        (
            first + 1,
            false,
            line(
                first + 1,
                &from,
                json!([{"op": "move", "from": "/3", "path": "/0"}]),
                &sha(&[d, a, b, c]),
            ),
        ),
        // a move that does not give the expected order
        (
            first + 2,
            true,
            line(
                first + 2,
                &from,
                json!([{"op": "move", "from": "/0", "path": "/1"}]),
                &sha(&[a, b, c, d]),
            ),
        ),
        // a real delta with one more value changed
        (
            first + 3,
            true,
            line(
                first + 3,
                &sample_from,
                serde_json::to_value(&wrong).unwrap(),
                sample.to.sha256(),
            ),
        ),
        // an op that cannot apply
        (
            first + 4,
            true,
            line(
                first + 4,
                &from,
                json!([{"op": "remove", "path": "/4"}]),
                &sha(&[a, b, c, d]),
            ),
        ),
    ]
}

#[test]
fn python_and_node_consumers_reproduce_every_version() {
    let consumers = vec![Consumer::python(), Consumer::node()];
    let started = Instant::now();
    let all = cases();
    let sample = all
        .iter()
        .max_by_key(|p| p.diff.patch.len().min(50) * usize::from(!p.case.to.is_empty()))
        .expect("at least one case");
    let first_control = all.iter().map(|p| p.index).max().unwrap_or(0) + 1;
    let controls = controls(first_control, sample);

    let mut batch = tempfile::NamedTempFile::new().expect("temp file");
    {
        let mut w = std::io::BufWriter::new(batch.as_file_mut());
        for p in all {
            writeln!(
                w,
                r#"{{"i":{},"from":{},"patch":{},"sha256":"{}"}}"#,
                p.index,
                p.from.text(),
                serde_json::to_string(&p.diff.patch).unwrap(),
                p.to.sha256()
            )
            .unwrap();
        }
        for (_, _, line) in &controls {
            writeln!(w, "{line}").unwrap();
        }
        w.flush().unwrap();
    }
    let lines = all.len() + controls.len();
    let bytes = batch.as_file().metadata().unwrap().len();
    let written = started.elapsed().as_secs_f64();

    let expected_rejects: BTreeSet<usize> = controls.iter().filter(|c| c.1).map(|c| c.0).collect();
    let mut failures: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut figures = Vec::new();
    for (name, verdict) in run_consumers(consumers, batch.path(), lines) {
        figures.push(format!(
            "{name} ({}) done after {:.1}s",
            verdict.tools, verdict.secs
        ));
        for (i, error) in &verdict.rejected {
            if !expected_rejects.contains(i) {
                failures
                    .entry(*i)
                    .or_default()
                    .push(format!("{name}: {error}"));
            }
        }
        for i in &expected_rejects {
            if !verdict.rejected.contains_key(i) {
                failures.entry(*i).or_default().push(format!(
                    "{name} accepted a broken control patch: its check proves nothing"
                ));
            }
        }
    }
    eprintln!(
        "delta interop: {} cases + {} controls ({:.1} MB) made and written in {written:.1}s; {}",
        all.len(),
        controls.len(),
        bytes as f64 / 1e6,
        figures.join(", ")
    );
    report("consumers", all, &failures);
}

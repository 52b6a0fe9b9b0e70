//! What a version changed, value by value: the view for people (`diff --format changes`, the
//! history page, `log`) and for query engines (the change table).
//!
//! A delta's `summary` counts records, and on the covid data every record changes every day,
//! because a new date is appended to each. The news is which *past* values were revised. So the
//! changed records of two versions are compared value by value, and each difference is one
//! [`ValueChange`]:
//!
//! - `added` / `removed`: a whole record (its key appeared or disappeared);
//! - `appended` / `deleted`: a value at a path the other version's record does not have (a new
//!   date, an array grown or shrunk), one change per subtree;
//! - `revised`: a value the record had, replaced, at the deepest path that differs;
//! - `derived`: a revision at a path the dataset declares derived (`derived =
//!   ["/dates/*/cumulative"]`): running totals that shift only because an earlier value did.
//!
//! Pure functions of two documents; nothing here reads or writes the store.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{
    cmp_utf16, display_key, escape_token, parse_pointer, split_array, split_object,
    split_object_like, Document, KeyPointer, Record,
};
use crate::delta::{Change, ChangeKind, Summary};

/// A path pattern naming derived values: a JSON Pointer whose tokens may be `*` (any one
/// token); it matches every path it is a prefix of (`/dates/*/cumulative` matches
/// `/dates/2020-03-14/cumulative/cases`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    tokens: Vec<String>,
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern would match every value".into());
        }
        let tokens = parse_pointer(text)?;
        Ok(PathPattern {
            text: text.to_string(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches(&self, path: &[String]) -> bool {
        self.tokens.len() <= path.len()
            && self
                .tokens
                .iter()
                .zip(path)
                .all(|(p, t)| p == "*" || p == t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueOp {
    Added,
    Removed,
    Appended,
    Deleted,
    Revised,
    Derived,
}

impl ValueOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueOp::Added => "added",
            ValueOp::Removed => "removed",
            ValueOp::Appended => "appended",
            ValueOp::Deleted => "deleted",
            ValueOp::Revised => "revised",
            ValueOp::Derived => "derived",
        }
    }
}

/// One changed value of one record. `path` is a JSON Pointer inside the record (`""`: the whole
/// record); `old` is absent for `added`/`appended`, `new` for `removed`/`deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueChange {
    pub key: String,
    pub path: String,
    pub op: ValueOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// How many values a version appended, revised, derived and deleted inside records that kept
/// their key (records added and removed are the delta summary's). In the manifest as `values`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueCounts {
    pub appended: u64,
    pub revised: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub derived: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ValueCounts {
    pub fn of(changes: &[ValueChange]) -> Self {
        let mut c = ValueCounts::default();
        for v in changes {
            c.count(v.op);
        }
        c
    }

    fn count(&mut self, op: ValueOp) {
        match op {
            ValueOp::Appended => self.appended += 1,
            ValueOp::Revised => self.revised += 1,
            ValueOp::Derived => self.derived += 1,
            ValueOp::Deleted => self.deleted += 1,
            ValueOp::Added | ValueOp::Removed => {}
        }
    }
}

/// The value changes from `old` to `new`, for the records `changes` (a diff's or a delta's
/// change list) names. `None` when the documents are not arrays of keyed records: values are
/// only told apart inside records that keep their identity.
pub fn value_changes(
    old: &Document,
    new: &Document,
    key: &KeyPointer,
    changes: &[Change],
    derived: &[PathPattern],
) -> Option<Vec<ValueChange>> {
    let mut out = Vec::new();
    for_each_value_change(old, new, key, changes, derived, &mut |v| out.push(v))?;
    Some(out)
}

/// [`value_changes`] one at a time, into `each`, in the same order: what a run's views are
/// made from while it publishes, without holding the list (on a day that revises history
/// it is hundreds of thousands of values). `None`, with nothing told, as for `value_changes`.
pub fn for_each_value_change(
    old: &Document,
    new: &Document,
    key: &KeyPointer,
    changes: &[Change],
    derived: &[PathPattern],
    each: &mut dyn FnMut(ValueChange),
) -> Option<()> {
    walk_records(old, new, key, changes, derived, Sink::Each(each))
}

/// [`ValueCounts::of`] the [`value_changes`], without listing them: the same walk, but nothing
/// is kept (or parsed) per value. What a run needs before its commit point (the counts go into
/// the version's metadata); the values themselves are told to the views while it publishes.
pub fn value_counts(
    old: &Document,
    new: &Document,
    key: &KeyPointer,
    changes: &[Change],
    derived: &[PathPattern],
) -> Option<ValueCounts> {
    let mut counts = ValueCounts::default();
    walk_records(old, new, key, changes, derived, Sink::Count(&mut counts))?;
    Some(counts)
}

fn walk_records(
    old: &Document,
    new: &Document,
    key: &KeyPointer,
    changes: &[Change],
    derived: &[PathPattern],
    mut sink: Sink<'_>,
) -> Option<()> {
    if key.is_none() {
        return None;
    }
    let old_records = keyed_records(old, key)?;
    let new_records = keyed_records(new, key)?;
    for c in changes {
        let (before, after) = (old_records.get(&c.key), new_records.get(&c.key));
        match (c.op, &mut sink) {
            (ChangeKind::Moved, _) | (ChangeKind::Added | ChangeKind::Removed, Sink::Count(_)) => {}
            (ChangeKind::Added, Sink::Each(out)) => out(ValueChange {
                key: c.key.clone(),
                path: String::new(),
                op: ValueOp::Added,
                old: None,
                new: after.map(|r| parse(new.record_bytes(r))),
            }),
            (ChangeKind::Removed, Sink::Each(out)) => out(ValueChange {
                key: c.key.clone(),
                path: String::new(),
                op: ValueOp::Removed,
                old: before.map(|r| parse(old.record_bytes(r))),
                new: None,
            }),
            (ChangeKind::Changed, _) => {
                let (Some(b), Some(a)) = (before, after) else {
                    continue;
                };
                let mut walk = Walk::new(&c.key, derived, sink.reborrow());
                // Object records start from the member spans found when they were made.
                match (old.record_members(b), new.record_members(a)) {
                    (Some(om), Some(nm)) => walk.members(&om, &nm),
                    _ => walk.texts(old.record_text(b), new.record_text(a)),
                }
            }
        }
    }
    Some(())
}

/// Where a walk's value changes go: each to a function, or only their counts.
enum Sink<'a> {
    Each(&'a mut dyn FnMut(ValueChange)),
    Count(&'a mut ValueCounts),
}

impl Sink<'_> {
    fn reborrow(&mut self) -> Sink<'_> {
        match self {
            Sink::Each(out) => Sink::Each(&mut **out),
            Sink::Count(counts) => Sink::Count(counts),
        }
    }
}

/// The value changes inside one record, from `old` to `new` (both whole records).
pub fn record_changes(
    key: &str,
    old: &Value,
    new: &Value,
    derived: &[PathPattern],
    out: &mut Vec<ValueChange>,
) {
    let mut push = |v| out.push(v);
    let mut walk = Walk::new(key, derived, Sink::Each(&mut push));
    walk.values(old, new);
}

struct Walk<'a> {
    key: &'a str,
    derived: &'a [PathPattern],
    path: String,
    tokens: Vec<String>,
    out: Sink<'a>,
}

impl<'a> Walk<'a> {
    fn new(key: &'a str, derived: &'a [PathPattern], out: Sink<'a>) -> Self {
        Walk {
            key,
            derived,
            path: String::new(),
            tokens: Vec::new(),
            out,
        }
    }

    fn values(&mut self, old: &Value, new: &Value) {
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                for (name, bv) in b {
                    match a.get(name) {
                        Some(av) if av == bv => {}
                        Some(av) => self.descend(name, |w| w.values(av, bv)),
                        None => self.descend(name, |w| w.push(ValueOp::Appended, None, Some(bv))),
                    }
                }
                for (name, av) in a {
                    if !b.contains_key(name) {
                        self.descend(name, |w| w.push(ValueOp::Deleted, Some(av), None));
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                    if av != bv {
                        self.descend(&i.to_string(), |w| w.values(av, bv));
                    }
                }
                for (i, bv) in b.iter().enumerate().skip(a.len()) {
                    self.descend(&i.to_string(), |w| {
                        w.push(ValueOp::Appended, None, Some(bv))
                    });
                }
                for (i, av) in a.iter().enumerate().skip(b.len()) {
                    self.descend(&i.to_string(), |w| w.push(ValueOp::Deleted, Some(av), None));
                }
            }
            _ if old == new => {}
            _ => {
                let op = self.revision();
                self.push(op, Some(old), Some(new));
            }
        }
    }

    /// [`Walk::values`] on canonical texts: containers are split without parsing, equal
    /// members skipped by comparing bytes, and only the values reported are parsed. Telling
    /// the values of a 30 MB version apart then costs a scan of its changed records, not a
    /// parse of them (the same result as parsing both and walking the trees).
    fn texts(&mut self, old: &str, new: &str) {
        if old == new {
            return;
        }
        match (old.as_bytes().first(), new.as_bytes().first()) {
            (Some(b'{'), Some(b'{')) => {
                let Some(a) = split_object(old) else {
                    return self.values(&parse_text(old), &parse_text(new));
                };
                let Some(b) = split_object_like(new, &a) else {
                    return self.values(&parse_text(old), &parse_text(new));
                };
                self.members(&a, &b);
            }
            (Some(b'['), Some(b'[')) => {
                let (Some(a), Some(b)) = (split_array(old), split_array(new)) else {
                    return self.values(&parse_text(old), &parse_text(new));
                };
                for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                    if x != y {
                        self.descend(&i.to_string(), |w| w.texts(x, y));
                    }
                }
                for (i, y) in b.iter().enumerate().skip(a.len()) {
                    self.descend(&i.to_string(), |w| {
                        w.push_text(ValueOp::Appended, None, Some(y))
                    });
                }
                for (i, x) in a.iter().enumerate().skip(b.len()) {
                    self.descend(&i.to_string(), |w| {
                        w.push_text(ValueOp::Deleted, Some(x), None)
                    });
                }
            }
            // Two different canonical texts that are not both objects or both arrays: one
            // value replaced (what `values` finds for them too).
            _ => {
                let op = self.revision();
                self.push_text(op, Some(old), Some(new));
            }
        }
    }

    /// [`Walk::texts`] of two objects given as their members (canonical order): one merge pass,
    /// equal members skipped by comparing bytes.
    fn members(&mut self, a: &[(Cow<'_, str>, &str)], b: &[(Cow<'_, str>, &str)]) {
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => cmp_utf16(&x.0, &y.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    let v = a[i].1;
                    self.descend(&a[i].0, |w| w.push_text(ValueOp::Deleted, Some(v), None));
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let v = b[j].1;
                    self.descend(&b[j].0, |w| w.push_text(ValueOp::Appended, None, Some(v)));
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if a[i].1 != b[j].1 {
                        let (x, y) = (a[i].1, b[j].1);
                        self.descend(&b[j].0, |w| w.texts(x, y));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
    }

    /// Revised, or derived when the path matches a derived pattern.
    fn revision(&self) -> ValueOp {
        if self.derived.iter().any(|p| p.matches(&self.tokens)) {
            ValueOp::Derived
        } else {
            ValueOp::Revised
        }
    }

    /// [`Walk::push`] of canonical texts, parsed only when the change is listed.
    fn push_text(&mut self, op: ValueOp, old: Option<&str>, new: Option<&str>) {
        if let Sink::Count(counts) = &mut self.out {
            return counts.count(op);
        }
        let (old, new) = (old.map(parse_text), new.map(parse_text));
        self.push(op, old.as_ref(), new.as_ref());
    }

    fn descend(&mut self, token: &str, f: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        self.path.push('/');
        escape_token(token, &mut self.path);
        self.tokens.push(token.to_string());
        f(self);
        self.tokens.pop();
        self.path.truncate(len);
    }

    fn push(&mut self, op: ValueOp, old: Option<&Value>, new: Option<&Value>) {
        match &mut self.out {
            Sink::Each(out) => out(ValueChange {
                key: self.key.to_string(),
                path: self.path.clone(),
                op,
                old: old.cloned(),
                new: new.cloned(),
            }),
            Sink::Count(counts) => counts.count(op),
        }
    }
}

/// Each record by its displayed key (as in a delta's change list); `None` when the document is
/// not an array or a record has no key.
fn keyed_records<'d>(doc: &'d Document, key: &KeyPointer) -> Option<HashMap<String, &'d Record>> {
    let records = doc.records()?;
    let mut map = HashMap::with_capacity(records.len());
    for r in records {
        let k = doc.record_key(r, key)?;
        map.insert(display_key(k), r);
    }
    Some(map)
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("canonical bytes are valid JSON")
}

fn parse_text(text: &str) -> Value {
    parse(text.as_bytes())
}

/// At most this many revised (or deleted) values are named in a version's text.
const NAMED: usize = 5;

/// A version's changes in one line for people:
/// `appended /dates/2020-03-25 to 213 records; revised 3 values: spain /dates/2020-03-14/new/cases 120 → 131, …; 45 derived values shifted`.
pub fn describe(summary: &Summary, values: Option<&[ValueChange]>) -> String {
    let Some(values) = values else {
        return record_counts(summary);
    };
    let mut d = Description::default();
    values.iter().for_each(|v| d.add(v));
    d.text(summary)
}

/// [`describe`] made from the value changes one at a time ([`Description::add`]): it keeps
/// only what the line names (the first few keys and values, and a count per appended path)
/// and counts the rest, so a run tells a version's values without listing them.
#[derive(Debug, Clone, Default)]
pub struct Description {
    added: Named<String>,
    removed: Named<String>,
    /// Appended values per path: one new date in every record is one path.
    appended: BTreeMap<String, u64>,
    revised: Named<ValueChange>,
    deleted: Named<ValueChange>,
    derived: u64,
}

/// How many of something there were, and the first [`NAMED`] of them.
#[derive(Debug, Clone)]
struct Named<T> {
    count: u64,
    first: Vec<T>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named {
            count: 0,
            first: Vec::new(),
        }
    }
}

impl<T> Named<T> {
    fn add(&mut self, item: impl FnOnce() -> T) {
        self.count += 1;
        if self.first.len() < NAMED {
            self.first.push(item());
        }
    }

    /// `, …` when some were not named.
    fn more(&self) -> &'static str {
        if self.count > self.first.len() as u64 {
            ", …"
        } else {
            ""
        }
    }
}

impl Description {
    pub fn add(&mut self, v: &ValueChange) {
        match v.op {
            ValueOp::Added => self.added.add(|| v.key.clone()),
            ValueOp::Removed => self.removed.add(|| v.key.clone()),
            ValueOp::Appended => match self.appended.get_mut(v.path.as_str()) {
                Some(n) => *n += 1,
                None => {
                    self.appended.insert(v.path.clone(), 1);
                }
            },
            ValueOp::Revised => self.revised.add(|| v.clone()),
            ValueOp::Deleted => self.deleted.add(|| v.clone()),
            ValueOp::Derived => self.derived += 1,
        }
    }

    /// The line, for a version whose delta's summary is `summary`.
    pub fn text(&self, summary: &Summary) -> String {
        let mut parts = Vec::new();
        for (keys, verb) in [(&self.added, "added"), (&self.removed, "removed")] {
            if keys.count > 0 {
                parts.push(format!(
                    "{verb} {}: {}{}",
                    plural(keys.count, "record"),
                    keys.first.join(", "),
                    keys.more()
                ));
            }
        }
        let mut groups: Vec<(&str, u64)> = self
            .appended
            .iter()
            .map(|(p, n)| (p.as_str(), *n))
            .collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (path, n) in groups.iter().take(3) {
            parts.push(format!("appended {path} to {}", plural(*n, "record")));
        }
        if groups.len() > 3 {
            let rest: u64 = groups[3..].iter().map(|g| g.1).sum();
            parts.push(format!(
                "appended {} at {} other paths",
                plural(rest, "value"),
                groups.len() - 3
            ));
        }
        for (list, verb) in [(&self.revised, "revised"), (&self.deleted, "deleted")] {
            if list.count == 0 {
                continue;
            }
            let mut s = format!("{verb} {}: ", plural(list.count, "value"));
            for (i, v) in list.first.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{} {}", v.key, display_path(&v.path));
                match (&v.old, &v.new) {
                    (Some(o), Some(n)) => {
                        let _ = write!(s, " {} → {}", short_value(o), short_value(n));
                    }
                    (Some(o), None) => {
                        let _ = write!(s, " (was {})", short_value(o));
                    }
                    _ => {}
                }
            }
            s.push_str(list.more());
            parts.push(s);
        }
        if self.derived > 0 {
            parts.push(format!("{} shifted", plural(self.derived, "derived value")));
        }
        if parts.is_empty() && summary.moved > 0 {
            // The upstream re-sorts its records: a move is news only when nothing else changed.
            return format!(
                "only the order changed ({} moved)",
                plural(summary.moved, "record")
            );
        }
        if parts.is_empty() {
            return record_counts(summary);
        }
        parts.join("; ")
    }
}

fn record_counts(s: &Summary) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (s.added, "added"),
        (s.removed, "removed"),
        (s.moved, "moved"),
        (s.changed, "changed"),
    ] {
        if n > 0 {
            parts.push(format!("{} {what}", plural(n, "record")));
        }
    }
    if parts.is_empty() {
        "no record changed".into()
    } else {
        parts.join(", ")
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "(whole record)"
    } else {
        path
    }
}

/// A value in a line of text: scalars as JSON, containers shortened.
pub fn short_value(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 40 {
        s
    } else {
        let cut: String = s.chars().take(37).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        Document::from_value(&v, &KeyPointer::parse("/id").unwrap())
    }

    fn changed(keys: &[&str]) -> Vec<Change> {
        keys.iter()
            .map(|k| Change {
                key: k.to_string(),
                op: ChangeKind::Changed,
                moved: false,
            })
            .collect()
    }

    #[test]
    fn a_new_date_is_appended_a_past_figure_revised_and_a_running_total_derived() {
        let old = doc(json!([
            {"id": "spain", "dates": {"d1": {"new": 120, "cumulative": 120}}},
        ]));
        let new = doc(json!([
            {"id": "spain", "dates": {"d1": {"new": 131, "cumulative": 131},
                                      "d2": {"new": 5, "cumulative": 136}}},
        ]));
        let derived = [PathPattern::parse("/dates/*/cumulative").unwrap()];
        let key = KeyPointer::parse("/id").unwrap();
        let v = value_changes(&old, &new, &key, &changed(&["spain"]), &derived).unwrap();
        assert_eq!(
            value_counts(&old, &new, &key, &changed(&["spain"]), &derived),
            Some(ValueCounts::of(&v))
        );
        let ops: Vec<(&str, ValueOp)> = v.iter().map(|c| (c.path.as_str(), c.op)).collect();
        assert_eq!(
            ops,
            [
                ("/dates/d1/cumulative", ValueOp::Derived),
                ("/dates/d1/new", ValueOp::Revised),
                ("/dates/d2", ValueOp::Appended),
            ]
        );
        assert_eq!(v[1].old, Some(json!(120)));
        assert_eq!(v[1].new, Some(json!(131)));
        assert_eq!(
            ValueCounts::of(&v),
            ValueCounts {
                appended: 1,
                revised: 1,
                derived: 1,
                deleted: 0
            }
        );
        let summary = Summary {
            changed: 1,
            ..Summary::default()
        };
        assert_eq!(
            describe(&summary, Some(&v)),
            "appended /dates/d2 to 1 record; revised 1 value: spain /dates/d1/new 120 → 131; 1 derived value shifted"
        );
    }

    #[test]
    fn records_added_removed_and_array_members_deleted() {
        let old = doc(json!([{"id": "uk", "a": [1, 2, 3]}, {"id": "fr", "a": [1]}]));
        let new = doc(json!([{"id": "united-kingdom", "a": [1]}, {"id": "fr", "a": []}]));
        let key = KeyPointer::parse("/id").unwrap();
        let changes = vec![
            Change {
                key: "uk".into(),
                op: ChangeKind::Removed,
                moved: false,
            },
            Change {
                key: "united-kingdom".into(),
                op: ChangeKind::Added,
                moved: false,
            },
            changed(&["fr"]).remove(0),
        ];
        let v = value_changes(&old, &new, &key, &changes, &[]).unwrap();
        assert_eq!(
            value_counts(&old, &new, &key, &changes, &[]),
            Some(ValueCounts::of(&v))
        );
        assert_eq!(v[0].op, ValueOp::Removed);
        assert_eq!(v[0].old, Some(json!({"id": "uk", "a": [1, 2, 3]})));
        assert_eq!(v[1].op, ValueOp::Added);
        assert_eq!((v[2].path.as_str(), v[2].op), ("/a/0", ValueOp::Deleted));
        let text = describe(&Summary::default(), Some(&v));
        assert_eq!(
            text,
            "added 1 record: united-kingdom; removed 1 record: uk; deleted 1 value: fr /a/0 (was 1)"
        );
    }

    /// Past the first few, keys and values are counted, not named; appended values are
    /// grouped by path, the three largest groups named and the rest counted.
    #[test]
    fn a_long_description_names_the_first_five_and_counts_the_rest() {
        let change =
            |key: &str, path: &str, op, old: Option<Value>, new: Option<Value>| ValueChange {
                key: key.into(),
                path: path.into(),
                op,
                old,
                new,
            };
        let mut values = Vec::new();
        for i in 0..6 {
            values.push(change(
                &format!("r{i}"),
                "",
                ValueOp::Added,
                None,
                Some(json!({})),
            ));
        }
        for i in 0..7 {
            values.push(change(
                "spain",
                &format!("/d{i}"),
                ValueOp::Revised,
                Some(json!(i)),
                Some(json!(i + 1)),
            ));
        }
        for (path, n) in [("/a", 3), ("/b", 5), ("/c", 1), ("/d", 2), ("/e", 2)] {
            for k in 0..n {
                values.push(change(
                    &format!("k{k}"),
                    path,
                    ValueOp::Appended,
                    None,
                    Some(json!(1)),
                ));
            }
        }
        values.push(change(
            "fr",
            "/x",
            ValueOp::Deleted,
            Some(json!("long ".repeat(20))),
            None,
        ));
        let text = describe(&Summary::default(), Some(&values));
        assert_eq!(
            text,
            "added 6 records: r0, r1, r2, r3, r4, …; appended /b to 5 records; appended /a to 3 records; \
             appended /d to 2 records; appended 3 values at 2 other paths; \
             revised 7 values: spain /d0 0 → 1, spain /d1 1 → 2, spain /d2 2 → 3, spain /d3 3 → 4, spain /d4 4 → 5, …; \
             deleted 1 value: fr /x (was \"long long long long long long long l…)"
        );
    }

    #[test]
    fn unkeyed_documents_have_no_value_changes() {
        let old = Document::from_value(&json!([1, 2]), &KeyPointer::default());
        let new = Document::from_value(&json!([1, 3]), &KeyPointer::default());
        assert_eq!(
            value_changes(&old, &new, &KeyPointer::default(), &[], &[]),
            None
        );
        let s = Summary {
            changed: 2,
            moved: 1,
            ..Summary::default()
        };
        assert_eq!(describe(&s, None), "1 record moved, 2 records changed");
    }

    /// The text walk (what a run uses) and the tree walk (what `history` uses) agree, on
    /// objects, arrays grown, shrunk and changed, type changes and escaped names.
    #[test]
    fn the_text_walk_and_the_tree_walk_agree() {
        let pairs = [
            (
                json!({"a": 1, "b": {"c": [1, 2, {"d": 3}]}, "e~/f": "x"}),
                json!({"a": 2, "b": {"c": [1, 5, {"d": 4}, 7]}, "e~/f": "y", "g": null}),
            ),
            (
                json!({"a": [1, 2, 3], "b": {"x": 1}}),
                json!({"a": [1], "b": [1]}),
            ),
            (
                json!({"a": {"\u{e9}": 1, "q\"x\n": 2}}),
                json!({"a": {"\u{e9}": 2}, "b": true}),
            ),
        ];
        let derived = [PathPattern::parse("/b/c/*").unwrap()];
        for (old, new) in pairs {
            let mut by_tree = Vec::new();
            record_changes("k", &old, &new, &derived, &mut by_tree);
            let mut by_text = Vec::new();
            let mut push = |v| by_text.push(v);
            let mut walk = Walk::new("k", &derived, Sink::Each(&mut push));
            let (a, b) = (
                crate::canonical::to_canonical_vec(&old),
                crate::canonical::to_canonical_vec(&new),
            );
            walk.texts(
                std::str::from_utf8(&a).unwrap(),
                std::str::from_utf8(&b).unwrap(),
            );
            let mut counts = ValueCounts::default();
            let mut walk = Walk::new("k", &derived, Sink::Count(&mut counts));
            walk.texts(
                std::str::from_utf8(&a).unwrap(),
                std::str::from_utf8(&b).unwrap(),
            );
            assert_eq!(counts, ValueCounts::of(&by_tree), "{old} -> {new}");
            by_tree.sort_by(|x, y| x.path.cmp(&y.path));
            by_text.sort_by(|x, y| x.path.cmp(&y.path));
            assert_eq!(by_text, by_tree, "{old} -> {new}");
            assert!(!by_text.is_empty());
        }
    }

    #[test]
    fn patterns_match_prefixes_with_wildcards_and_escapes() {
        let p = PathPattern::parse("/dates/*/cumulative").unwrap();
        let path = |s: &str| parse_pointer(s).unwrap();
        assert!(p.matches(&path("/dates/2020-03-14/cumulative/cases")));
        assert!(p.matches(&path("/dates/x/cumulative")));
        assert!(!p.matches(&path("/dates/x/new/cases")));
        assert!(!p.matches(&path("/dates/x")));
        assert!(PathPattern::parse("").is_err());
        assert!(PathPattern::parse("dates").is_err());
        let esc = PathPattern::parse("/a~1b").unwrap();
        assert!(esc.matches(&path("/a~1b/c")));
    }
}

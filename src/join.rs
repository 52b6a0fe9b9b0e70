//! The `join` transform: a table (see [`crate::table`]) matched to the dataset's records by
//! key, its columns written into each matched record.
//!
//! Matching, in order, for a record whose key is `k`:
//! 1. `names`: a table row the configuration maps to `k` explicitly (a row may serve several
//!    keys: `"West Bank and Gaza" = ["palestine", "west-bank-and-gaza"]`). A row named there
//!    matches only the keys listed.
//! 2. the row whose key, [`normalize`]d, is `k` normalized (`"Spain"` ~ `spain`).
//! 3. the row of the same country: by the rows' ISO code column (`iso`) when there is one,
//!    else by the built-in alias table ([`crate::countries`]: `"Korea, Rep."` ~ `south-korea`);
//!    the record's country is its ISO code (`on_iso`) or its key's alias.
//!
//! The decision to know: matching is decided when the table is loaded, not per record, and a
//! table whose rows are ambiguous (two rows of one country, two `names` entries for one key)
//! is refused with a message saying which rows — a join that silently picks one would give a
//! country another's figures. What the join did (keys matched, keys unmatched, rows unused, and
//! the closest names for each) is in [`JoinReport`], which `doctor` prints so a user can finish
//! the `names` map in one pass.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::countries::{self, normalize};
use crate::table::{self, ReadOptions, Table, TableFormat};
use crate::transform::pointer;

/// A join before its table is fetched: where the table is and how to use it.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSpec {
    /// `https://…`, `http://` on loopback, or `file:///abs/path`.
    pub source: String,
    /// `None`: from the source's extension, else the Content-Type, else the file's signature.
    pub format: Option<TableFormat>,
    pub read: ReadOptions,
    /// The table file is refused above this size.
    pub max_bytes: u64,
    pub key_column: String,
    /// A column of ISO 3166-1 codes (alpha-2 or alpha-3) to match countries by.
    pub iso_column: Option<String>,
    /// Table key -> dataset keys, where the names differ.
    pub names: BTreeMap<String, Vec<String>>,
    /// Match countries through the built-in alias table.
    pub aliases: bool,
    pub on: Vec<String>,
    /// Pointer (in each record) to the record's ISO code, if it has one.
    pub on_iso: Option<Vec<String>>,
    pub into: Vec<String>,
    /// Output member -> table column; `None`: every column but the key.
    pub fields: Option<BTreeMap<String, String>>,
}

impl JoinSpec {
    /// The table's format: configured, or from the source's name, the server's Content-Type,
    /// or the file's signature (binary workbooks only), else an error asking for it.
    pub fn format_of(
        &self,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<TableFormat, String> {
        if let Some(f) = self.format.or_else(|| TableFormat::from_name(&self.source)) {
            return Ok(f);
        }
        if let Some(f) = content_type.and_then(TableFormat::from_content_type) {
            return Ok(f);
        }
        TableFormat::sniff(bytes).ok_or_else(|| {
            format!(
                "cannot tell the table's format (no known extension{}): set format = {}",
                content_type
                    .map(|t| format!(", Content-Type {}", crate::source::one_line(t)))
                    .unwrap_or_default(),
                TableFormat::NAMES
            )
        })
    }

    /// The join, from the table's bytes (and the Content-Type they came with).
    pub fn load(&self, bytes: &[u8], content_type: Option<&str>) -> Result<Join, String> {
        let sheet = match &self.read.sheet {
            Some(table::SheetRef::Name(n)) => format!("sheet {n:?}: "),
            Some(table::SheetRef::Index(i)) => format!("sheet {i}: "),
            None => String::new(),
        };
        if bytes.len() as u64 > self.max_bytes {
            return Err(format!(
                "{sheet}the file is {} bytes, over the {}-byte limit for a joined table (raise max_bytes if it is right)",
                bytes.len(),
                self.max_bytes
            ));
        }
        let format = self.format_of(content_type, bytes)?;
        let mut read = self.read.clone();
        read.literal.extend(self.iso_column.clone());
        let t = table::read(bytes, format, &read)?;
        Join::new(self, t)
    }
}

/// A join with its table loaded and its matching decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// The sheet read, for reports.
    pub sheet: Option<String>,
    /// Per table row: the fields it adds (an object).
    rows: Vec<Value>,
    /// Per table row: its key as written, and its row number in the file.
    row_names: Vec<(String, u32)>,
    explicit: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    by_country: HashMap<String, usize>,
    /// `names` entries whose row the table does not have.
    pub unknown_names: Vec<String>,
    aliases: bool,
    pub on: Vec<String>,
    pub on_iso: Option<Vec<String>>,
    pub into: Vec<String>,
    pub fields: BTreeMap<String, String>,
    /// sha256 of the join's content: the rows' fields and how each row is matched (not the
    /// table file's bytes), for the pipeline fingerprint.
    pub sha256: String,
}

/// What one join did to the records of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Record keys no row matched, in record order.
    pub unmatched: Vec<String>,
    /// Per table row: whether a record used it.
    pub used: Vec<bool>,
    pub records: u64,
}

impl Join {
    fn new(spec: &JoinSpec, t: Table) -> Result<Self, String> {
        let at = t
            .sheet
            .as_ref()
            .map(|s| format!("sheet {s:?}: "))
            .unwrap_or_default();
        let header_hint = || {
            format!(
                "its columns: {} (if those are values, not names, the sheet has no header row: set header_row)",
                t.column_list()
            )
        };
        let key_col = t
            .column(&spec.key_column)
            .ok_or_else(|| format!("{at}no key column {:?}; {}", spec.key_column, header_hint()))?;
        let iso_col = match &spec.iso_column {
            Some(c) => Some(
                t.column(c)
                    .ok_or_else(|| format!("{at}no iso column {c:?}; {}", header_hint()))?,
            ),
            None => None,
        };
        let fields: BTreeMap<String, String> = match &spec.fields {
            Some(f) => f.clone(),
            None => t
                .columns
                .iter()
                .filter(|c| **c != spec.key_column)
                .map(|c| (c.clone(), c.clone()))
                .collect(),
        };
        let mut field_cols = Vec::with_capacity(fields.len());
        for (out, column) in &fields {
            let i = t.column(column).ok_or_else(|| {
                format!("{at}field {out:?}: no column {column:?}; {}", header_hint())
            })?;
            field_cols.push((out.clone(), i));
        }
        // The names map, by the normalized row key it names.
        let mut wanted: HashMap<String, (&String, &Vec<String>)> = HashMap::new();
        for (row, keys) in &spec.names {
            if keys.is_empty() {
                return Err(format!("names: {row:?} maps to no key"));
            }
            wanted.insert(normalize(row), (row, keys));
        }
        let mut join = Join {
            sheet: t.sheet.clone(),
            rows: Vec::with_capacity(t.rows.len()),
            row_names: Vec::with_capacity(t.rows.len()),
            explicit: HashMap::new(),
            by_name: HashMap::new(),
            by_country: HashMap::new(),
            unknown_names: Vec::new(),
            aliases: spec.aliases,
            on: spec.on.clone(),
            on_iso: spec.on_iso.clone(),
            into: spec.into.clone(),
            fields,
            sha256: String::new(),
        };
        let mut seen_names: HashMap<String, usize> = HashMap::new();
        let mut named = std::collections::HashSet::new();
        let shared: Vec<bool> = field_cols
            .iter()
            .map(|(_, c)| field_cols.iter().filter(|(_, d)| d == c).count() > 1)
            .collect();
        let row_numbers = t.row_numbers;
        for (i, mut row) in t.rows.into_iter().enumerate() {
            let number = row_numbers[i];
            let key = match &row[key_col] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(format!(
                        "{at}row {number} has no {:?} (cell {} is empty)",
                        spec.key_column,
                        table::cell_name(number - 1, key_col as u32)
                    ))
                }
            };
            let norm = normalize(&key);
            if let Some(&j) = seen_names.get(&norm) {
                let (other, n) = &join.row_names[j];
                return Err(format!(
                    "{at}rows {n} ({other:?}) and {number} ({key:?}) have the same key; a joined table needs one row per key"
                ));
            }
            seen_names.insert(norm.clone(), i);
            let country = match iso_col {
                Some(c) => match &row[c] {
                    Value::String(code) => Some(country_of_code(code)),
                    _ => None,
                },
                None if spec.aliases => countries::by_normalized(&norm).map(|c| c.iso3.to_string()),
                None => None,
            };
            // Values move into the join's rows, unless another field uses the column too.
            join.rows.push(Value::Object(
                field_cols
                    .iter()
                    .enumerate()
                    .map(|(f, (out, c))| {
                        let v = if shared[f] {
                            row[*c].clone()
                        } else {
                            std::mem::take(&mut row[*c])
                        };
                        (out.clone(), v)
                    })
                    .collect(),
            ));
            join.row_names.push((key.clone(), number));
            if let Some((written, keys)) = wanted.get(&norm) {
                named.insert(norm.clone());
                for k in *keys {
                    if let Some(&j) = join.explicit.get(k) {
                        return Err(format!(
                            "names maps both {:?} and {written:?} to {k:?}; a key can have one row",
                            join.row_names[j].0
                        ));
                    }
                    join.explicit.insert(k.clone(), i);
                }
                continue;
            }
            join.by_name.insert(norm.clone(), i);
            if let Some(country) = country {
                if let Some(&j) = join.by_country.get(&country) {
                    let (other, n) = &join.row_names[j];
                    return Err(format!(
                        "{at}rows {n} ({other:?}) and {number} ({key:?}) are the same country ({country}); keep one, or map each in names"
                    ));
                }
                join.by_country.insert(country, i);
            }
        }
        join.unknown_names = spec
            .names
            .keys()
            .filter(|n| !named.contains(&normalize(n)))
            .cloned()
            .collect();
        join.sha256 = join.content_sha256();
        Ok(join)
    }

    /// Streamed into the hasher: the rows' canonical bytes, then each match map sorted.
    fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut buf = Vec::new();
        for row in &self.rows {
            buf.clear();
            crate::canonical::write_value(row, &mut buf);
            h.update(&buf);
            h.update(b"\n");
        }
        for (name, map) in [
            ("explicit", &self.explicit),
            ("by_name", &self.by_name),
            ("by_country", &self.by_country),
        ] {
            let mut entries: Vec<(&String, &usize)> = map.iter().collect();
            entries.sort();
            h.update(name.as_bytes());
            for (k, i) in entries {
                h.update(format!("\n{k}\t{i}").as_bytes());
            }
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// The table row for a record key (and the record's ISO code, if it has one).
    fn row_for(&self, key: &str, iso: Option<&str>) -> Option<usize> {
        if let Some(&i) = self.explicit.get(key) {
            return Some(i);
        }
        let norm = normalize(key);
        if let Some(&i) = self.by_name.get(&norm) {
            return Some(i);
        }
        let country = match iso {
            Some(code) => Some(country_of_code(code)),
            None if self.aliases => countries::by_normalized(&norm).map(|c| c.iso3.to_string()),
            None => None,
        }?;
        self.by_country.get(&country).copied()
    }

    pub fn new_stats(&self) -> JoinStats {
        JoinStats {
            unmatched: Vec::new(),
            used: vec![false; self.rows.len()],
            records: 0,
        }
    }

    pub(crate) fn apply(&self, v: &mut Value, stats: &mut JoinStats) {
        let key = match pointer(v, &self.on) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let iso = self
            .on_iso
            .as_ref()
            .and_then(|p| pointer(v, p))
            .and_then(Value::as_str)
            .map(str::to_string);
        stats.records += 1;
        let Some(i) = self.row_for(&key, iso.as_deref()) else {
            stats.unmatched.push(key);
            return;
        };
        stats.used[i] = true;
        let mut target = v;
        for t in &self.into {
            let Value::Object(m) = target else { return };
            target = m
                .entry(t.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        if let (Value::Object(m), Value::Object(fields)) = (target, &self.rows[i]) {
            for (out, value) in fields {
                m.insert(out.clone(), value.clone());
            }
        }
    }

    /// What the join did, with the closest names for what did not match.
    pub fn report(&self, stats: &JoinStats) -> JoinReport {
        let unused: Vec<usize> = (0..self.rows.len())
            .filter(|&i| !stats.used.get(i).copied().unwrap_or(false))
            .collect();
        // Candidates among the unused rows (all rows when none is unused).
        let pool: Vec<usize> = if unused.is_empty() {
            (0..self.rows.len()).collect()
        } else {
            unused.clone()
        };
        // Every unmatched key against every candidate row, scored once.
        let row_norm: Vec<String> = pool
            .iter()
            .map(|&r| normalize(&self.row_names[r].0))
            .collect();
        let scores: Vec<Vec<f64>> = stats
            .unmatched
            .iter()
            .map(|k| {
                let k = normalize(k);
                row_norm.iter().map(|r| similarity(&k, r)).collect()
            })
            .collect();
        let unmatched = stats
            .unmatched
            .iter()
            .zip(&scores)
            .map(|(key, row)| {
                let near = closest(row.iter().zip(&pool).map(|(s, &r)| (*s, r)));
                (
                    key.clone(),
                    near.into_iter()
                        .map(|r| self.row_names[r].clone())
                        .collect(),
                )
            })
            .collect();
        // With unused rows, the pool is exactly them.
        let unused_rows = unused
            .iter()
            .enumerate()
            .map(|(p, &r)| {
                let (name, number) = self.row_names[r].clone();
                let near = closest(scores.iter().map(|row| row[p]).zip(&stats.unmatched));
                (name, number, near.into_iter().cloned().collect())
            })
            .collect();
        // Likely pairs: best first, each key and row once, only when close.
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        if !unused.is_empty() {
            for (k, row) in scores.iter().enumerate() {
                for (p, &s) in row.iter().enumerate() {
                    if s >= LIKELY {
                        pairs.push((s, k, pool[p]));
                    }
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut keys_taken, mut rows_taken) = (Vec::new(), Vec::new());
        let mut suggested = BTreeMap::new();
        for (_, k, r) in pairs {
            if keys_taken.contains(&k) || rows_taken.contains(&r) {
                continue;
            }
            keys_taken.push(k);
            rows_taken.push(r);
            suggested.insert(self.row_names[r].0.clone(), stats.unmatched[k].clone());
        }
        JoinReport {
            sheet: self.sheet.clone(),
            records: stats.records,
            rows: self.rows.len(),
            matched: stats.records - stats.unmatched.len() as u64,
            unmatched,
            unused: unused_rows,
            suggested,
            unknown_names: self.unknown_names.clone(),
        }
    }
}

/// The (up to 3) best-scored items at least [`CLOSE`], best first.
fn closest<T>(scored: impl Iterator<Item = (f64, T)>) -> Vec<T> {
    let mut scored: Vec<(f64, T)> = scored.filter(|(s, _)| *s >= CLOSE).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, t)| t).collect()
}

/// Names this similar (0 to 1) are listed as candidates; this similar, suggested as `names`.
const CLOSE: f64 = 0.4;
const LIKELY: f64 = 0.8;

/// What a join did: for `doctor` and the run's debug log.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinReport {
    pub sheet: Option<String>,
    pub records: u64,
    pub rows: usize,
    pub matched: u64,
    /// Each unmatched record key, with the (up to 3) closest table rows (name, row number).
    pub unmatched: Vec<(String, Vec<(String, u32)>)>,
    /// Each table row no record used (name, row number), with the closest unmatched keys.
    pub unused: Vec<(String, u32, Vec<String>)>,
    /// Likely `names` entries (row -> key) among the unmatched keys and unused rows.
    pub suggested: BTreeMap<String, String>,
    /// `names` entries for rows the table does not have.
    pub unknown_names: Vec<String>,
}

impl JoinReport {
    /// One line: `212 of 217 records matched; 5 keys unmatched, 4 of 221 rows unused`.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} records matched; {} keys unmatched, {} of {} rows unused",
            self.matched,
            self.records,
            self.unmatched.len(),
            self.unused.len(),
            self.rows
        )
    }

    /// The lines after the summary: each unmatched key and unused row with its closest
    /// candidates, then the suggested `names` entries as TOML.
    pub fn details(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, rows) in &self.unmatched {
            let rows: Vec<String> = rows
                .iter()
                .map(|(n, r)| format!("{n:?} (row {r})"))
                .collect();
            out.push(format!(
                "unmatched key {key:?}; closest rows: {}",
                listed(&rows)
            ));
        }
        for (name, row, keys) in &self.unused {
            let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
            out.push(format!(
                "unused row {row} {name:?}; closest unmatched keys: {}",
                listed(&keys)
            ));
        }
        for n in &self.unknown_names {
            out.push(format!("names entry {n:?} matches no row of the table"));
        }
        if !self.suggested.is_empty() {
            let entries: Vec<String> = self
                .suggested
                .iter()
                .map(|(row, key)| format!("{row:?} = {key:?}"))
                .collect();
            out.push(format!("suggested names: {{ {} }}", entries.join(", ")));
        }
        out
    }
}

/// How alike two normalized names are, 0 to 1: the better of bigram overlap (Sørensen-Dice;
/// robust to word order, and unlike Jaro-Winkler not fooled by a shared prefix:
/// `north-ireland` is not `northern-mariana-islands`) and word containment (`egypt` in
/// `egypt-arab-rep`, `russia` ~ `russian-federation`: every word of the shorter name begins a
/// word of the other), which counts 0.9 at most so an exact name always ranks first.
fn similarity(a: &str, b: &str) -> f64 {
    let words = |s: &str| -> Vec<String> { s.split('-').map(str::to_string).collect() };
    let (wa, wb) = (words(a), words(b));
    let (short, long) = if wa.len() <= wb.len() {
        (&wa, &wb)
    } else {
        (&wb, &wa)
    };
    let begins = |x: &String, y: &String| {
        x == y
            || (x.len().min(y.len()) >= 3
                && (x.starts_with(y.as_str()) || y.starts_with(x.as_str())))
    };
    let found = short
        .iter()
        .filter(|w| long.iter().any(|l| begins(w, l)))
        .count();
    let words_score = 0.9 * found as f64 / short.len().max(1) as f64;
    strsim::sorensen_dice(a, b).max(words_score)
}

/// `a, b, c`, or "none close".
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none close".into()
    } else {
        items.join(", ")
    }
}

/// A country id from an ISO code: the table's alpha-3 when it knows the code, else the code.
fn country_of_code(code: &str) -> String {
    countries::by_code(code)
        .map(|c| c.iso3.to_string())
        .unwrap_or_else(|| code.trim().to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
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
}

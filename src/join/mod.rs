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
//!
//! The code is cut by when it runs: `load` builds a [`Join`] from a table once (the match maps,
//! refusing ambiguous rows, the content hash), this file applies it to each record, and
//! `report` says afterwards what matched and what nearly did.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::canonical::pointer;
use crate::countries::{self, normalize};
use crate::table::{self, ReadOptions, TableFormat};

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
}

/// A country id from an ISO code: the table's alpha-3 when it knows the code, else the code.
fn country_of_code(code: &str) -> String {
    countries::by_code(code)
        .map(|c| c.iso3.to_string())
        .unwrap_or_else(|| code.trim().to_ascii_uppercase())
}

mod load;
mod report;

pub use report::JoinReport;

#[cfg(test)]
mod tests;

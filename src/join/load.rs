//! [`Join`] built from a table: the rows' fields, the match maps (explicit `names`, normalized
//! names, countries), ambiguous rows refused, and the content hash.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{country_of_code, Join, JoinSpec};
use crate::countries::{self, normalize};
use crate::table::{self, Table};

impl Join {
    pub(super) fn new(spec: &JoinSpec, t: Table) -> Result<Self, String> {
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
}

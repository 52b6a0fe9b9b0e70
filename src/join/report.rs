//! [`JoinReport`]: what a join did (keys matched and unmatched, rows unused) and the closest
//! names for what did not match, scored by [`similarity`].

use std::collections::BTreeMap;

use super::{normalize, Join, JoinStats};

impl Join {
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
pub(super) const CLOSE: f64 = 0.4;
pub(super) const LIKELY: f64 = 0.8;

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
pub(super) fn similarity(a: &str, b: &str) -> f64 {
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

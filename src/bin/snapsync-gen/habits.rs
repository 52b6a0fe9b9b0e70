//! Upstream's habits: records sorted by totals with ties shuffled, keys renamed, records
//! dropped and added, and how much the order changed.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::generate::{country_identity, series, slug};
use super::{Country, Data, Habits, Rng, Sort, ADDED_SALT};

/// Puts the records in the order `habits.sort` says; with probability `shuffle_ties` (always
/// when `force`) shuffles each group of equal totals. Returns how many records the shuffled
/// groups hold (0 when nothing was shuffled).
pub(super) fn arrange(
    countries: &mut [Country],
    habits: &Habits,
    rng: &mut Rng,
    force: bool,
) -> usize {
    if habits.sort == Sort::Fixed {
        return 0;
    }
    // Stable: equal totals keep the input's (the day before's) order unless shuffled below.
    countries.sort_by_cached_key(|c| Reverse(c.total_cases()));
    if !force && !rng.chance(habits.shuffle_ties) {
        return 0;
    }
    let totals: Vec<u64> = countries.iter().map(Country::total_cases).collect();
    let groups = tie_groups(&totals);
    let before: Vec<String> = countries.iter().map(|c| c.key.clone()).collect();
    // A forced reshuffle must change the order; a small group can come out as it went in.
    for _ in 0..64 {
        for g in &groups {
            shuffle(&mut countries[g.clone()], rng);
        }
        if !force || countries.iter().zip(&before).any(|(c, k)| c.key != *k) {
            break;
        }
    }
    groups.iter().map(|g| g.len()).sum()
}

/// Maximal runs of equal values (two or more long) in a sorted slice.
fn tie_groups(sorted: &[u64]) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.len() {
        if i == sorted.len() || sorted[i] != sorted[start] {
            if i - start >= 2 {
                groups.push(start..i);
            }
            start = i;
        }
    }
    groups
}

/// Fisher-Yates.
fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// What the habits did to one day, for the stderr line.
#[derive(Default)]
pub(super) struct DayLog {
    pub(super) renamed: Vec<(String, String)>,
    pub(super) dropped: Vec<String>,
    pub(super) added: Vec<String>,
}

/// Drops each record with probability `p` (never the last one) and adds as many on average:
/// countries not in the file (by key or name, nor dropped today), with a full `days` history.
pub(super) fn churn(
    data: &mut Data,
    habits: &Habits,
    rng: &mut Rng,
    seed: u64,
    days: usize,
    log: &mut DayLog,
) {
    let p = habits.churn;
    if p <= 0.0 {
        return;
    }
    let n = data.countries.len();
    let mut drop: Vec<bool> = (0..n).map(|_| rng.chance(p)).collect();
    if drop.iter().all(|d| *d) {
        drop[0] = false;
    }
    let mut i = 0;
    data.countries.retain(|c| {
        i += 1;
        if drop[i - 1] {
            log.dropped.push(c.key.clone());
        }
        !drop[i - 1]
    });
    let adds = (0..n).filter(|_| rng.chance(p)).count();
    let mut taken: HashSet<String> = data
        .countries
        .iter()
        .flat_map(|c| [c.key.clone(), c.name.clone()])
        .chain(log.dropped.iter().cloned())
        .collect();
    let mut identity = 0usize;
    for _ in 0..adds {
        let (key, name) = loop {
            let (key, name) = country_identity(identity);
            identity += 1;
            if !taken.contains(&key) && !taken.contains(&name) {
                break (key, name);
            }
        };
        let salt = seed ^ ADDED_SALT ^ (days as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
        let new = series(identity - 1, days, salt, habits.shape);
        taken.insert(key.clone());
        taken.insert(name.clone());
        log.added.push(key.clone());
        data.countries.push(Country { key, name, new });
    }
}

/// Renames each record's key with probability `p`, keeping its content.
pub(super) fn rename(countries: &mut [Country], p: f64, rng: &mut Rng, log: &mut DayLog) {
    if p <= 0.0 {
        return;
    }
    // Old keys stay taken for the day: a rename never lands on a key that just left.
    let mut taken: HashSet<String> = countries.iter().map(|c| c.key.clone()).collect();
    for c in countries.iter_mut() {
        if !rng.chance(p) {
            continue;
        }
        let new = renamed_key(&c.key, &c.name, &taken);
        taken.insert(new.clone());
        log.renamed
            .push((std::mem::replace(&mut c.key, new.clone()), new));
    }
}

/// The slug of the name becomes a short form and back (`united-kingdom` ↔ `uk`), with a
/// number appended when that key is taken.
fn renamed_key(key: &str, name: &str, taken: &HashSet<String>) -> String {
    let full = slug(name);
    let base = if key == full || full.is_empty() {
        short_form(key)
    } else {
        full
    };
    std::iter::once(base.clone())
        .chain((2u32..).map(|k| format!("{base}{k}")))
        .find(|k| !k.is_empty() && k != key && !taken.contains(k))
        .expect("an unbounded sequence of candidates has a free one")
}

/// `united-kingdom` → `uk`, `france-2` → `f2`, `france` → `fra`.
fn short_form(slug: &str) -> String {
    let words: Vec<&str> = slug.split('-').filter(|w| !w.is_empty()).collect();
    if words.len() >= 2 {
        words.iter().filter_map(|w| w.chars().next()).collect()
    } else {
        slug.chars().take(3).collect()
    }
}

/// How the order of the records on both days changed: (records whose position among them
/// changed, the fewest that must move: those outside a longest increasing subsequence).
pub(super) fn order_change(before: &[String], after: &[Country]) -> (usize, usize) {
    let pos: HashMap<&str, usize> = before
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let seq: Vec<usize> = after
        .iter()
        .filter_map(|c| pos.get(c.key.as_str()).copied())
        .collect();
    let mut sorted = seq.clone();
    sorted.sort_unstable();
    let reordered = seq.iter().zip(&sorted).filter(|(a, b)| a != b).count();
    (reordered, seq.len() - lis_len(&seq))
}

/// Length of a longest strictly increasing subsequence (patience sorting).
fn lis_len(seq: &[usize]) -> usize {
    let mut tails: Vec<usize> = Vec::new();
    for &x in seq {
        match tails.binary_search(&x) {
            Ok(_) => {}
            Err(i) if i == tails.len() => tails.push(x),
            Err(i) => tails[i] = x,
        }
    }
    tails.len()
}

pub(super) fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

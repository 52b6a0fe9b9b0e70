//! `next`: the file read back, the day after appended to every country, past values revised,
//! and the habits of that day applied.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::dates::{format_date, parse_date};
use super::generate::noisy;
use super::habits::{arrange, churn, list, order_change, rename, DayLog};
use super::output::write_data;
use super::{Country, Data, NextArgs, Rng, FIRST_DAY, HABIT_SALT, REORDER_SALT};

fn read_data(path: &Path) -> Result<Data, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let mut first_day: Option<i64> = None;
    let mut countries = Vec::new();
    // Parse record by record (a whole-document `Value` of 30 MB costs ~20x its size in memory).
    let skip_ws = |mut pos: usize| {
        while text.get(pos).is_some_and(u8::is_ascii_whitespace) {
            pos += 1;
        }
        pos
    };
    let mut pos = skip_ws(0);
    if text.get(pos) != Some(&b'[') {
        return Err(bad("not a top-level array"));
    }
    pos = skip_ws(pos + 1);
    let mut i = 0usize;
    while text.get(pos) != Some(&b']') {
        if i > 0 {
            if text.get(pos) != Some(&b',') {
                return Err(bad(&format!("expected ',' or ']' at byte {pos}")));
            }
            pos = skip_ws(pos + 1);
        }
        let mut stream = serde_json::Deserializer::from_slice(&text[pos..]).into_iter::<Value>();
        let rec = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(bad(&format!("record {i}: {e}"))),
            None => return Err(bad("unexpected end of file")),
        };
        pos = skip_ws(pos + stream.byte_offset());
        let rec = &rec;
        let key = rec.pointer("/country/key").and_then(Value::as_str);
        let name = rec.pointer("/country/name").and_then(Value::as_str);
        let dates = rec.get("dates").and_then(Value::as_object);
        let (Some(key), Some(name), Some(dates)) = (key, name, dates) else {
            return Err(bad(&format!(
                "record {i} lacks country.key, country.name or dates"
            )));
        };
        // serde_json's map is sorted by key, which for ISO dates is chronological.
        let mut new = Vec::with_capacity(dates.len() + 1);
        for (j, (date, entry)) in dates.iter().enumerate() {
            let day = parse_date(date).ok_or_else(|| bad(&format!("{key}: bad date {date:?}")))?;
            let start = *first_day.get_or_insert(day);
            if day != start + j as i64 {
                return Err(bad(&format!(
                    "{key}: dates not consecutive from the first at {date}"
                )));
            }
            let mut v = [0u64; 3];
            for (slot, field) in v.iter_mut().zip(["cases", "deaths", "recoveries"]) {
                *slot = entry
                    .get("new")
                    .and_then(|n| n.get(field))
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad(&format!("{key} {date}: new.{field} missing")))?;
            }
            new.push(v);
        }
        countries.push(Country {
            key: key.to_string(),
            name: name.to_string(),
            new,
        });
        i += 1;
    }
    if text[skip_ws(pos + 1)..]
        .iter()
        .any(|b| !b.is_ascii_whitespace())
    {
        return Err(bad("trailing characters after the top-level array"));
    }
    Ok(Data {
        first_day: first_day.unwrap_or(FIRST_DAY),
        countries,
    })
}

pub(super) fn cmd_next(a: &NextArgs) -> Result<(), String> {
    let mut data = read_data(Path::new(&a.input))?;
    let days = data.days();
    if data.countries.iter().any(|c| c.new.len() != days) {
        return Err(format!(
            "{}: countries have different numbers of days",
            a.input
        ));
    }
    // Mix the day count into the seed so successive `next` runs differ with the default seed.
    let day_seed = a.seed ^ (days as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let mut rng = Rng::new(day_seed);
    let salt = if a.reorder_only {
        REORDER_SALT
    } else {
        HABIT_SALT
    };
    let mut habit_rng = Rng::new(day_seed ^ salt);
    let before: Vec<String> = data.countries.iter().map(|c| c.key.clone()).collect();
    let mut log = DayLog::default();
    if !a.reorder_only {
        revise(&mut data, &mut rng, a.revise, a.window, a.habits.any());
        // The new day: around the mean of the last week, per field.
        for country in &mut data.countries {
            let tail = &country.new[country.new.len().saturating_sub(7)..];
            let mut next = [0u64; 3];
            for (f, slot) in next.iter_mut().enumerate() {
                let mean = tail.iter().map(|v| v[f] as f64).sum::<f64>() / tail.len().max(1) as f64;
                *slot = noisy(&mut rng, mean, 0.35);
            }
            country.new.push(next);
        }
        churn(
            &mut data,
            &a.habits,
            &mut habit_rng,
            a.seed,
            days + 1,
            &mut log,
        );
        rename(
            &mut data.countries,
            a.habits.rename,
            &mut habit_rng,
            &mut log,
        );
    }
    let ties = arrange(
        &mut data.countries,
        &a.habits,
        &mut habit_rng,
        a.reorder_only,
    );
    if a.habits.any() {
        let (reordered, min_moves) = order_change(&before, &data.countries);
        eprintln!(
            "snapsync-gen: kind={} day={} records={} reordered={reordered} min_moves={min_moves} \
             ties_shuffled={ties} renamed={} dropped={} added={}",
            if a.reorder_only {
                "reorder-only"
            } else {
                "next"
            },
            format_date(data.first_day + data.days() as i64 - 1),
            data.countries.len(),
            list(log.renamed.iter().map(|(o, n)| format!("{o}>{n}"))),
            list(log.dropped.into_iter()),
            list(log.added.into_iter()),
        );
        if a.reorder_only && reordered == 0 {
            eprintln!(
                "snapsync-gen: warning: no two records have equal totals: the order is unchanged"
            );
        }
    }
    write_data(&data, Path::new(&a.out))
}

/// Revises a fraction of the past values: distinct (country, day, field) cells, each changed.
/// With a window, only the last `window` days are revised (late reports, as upstream sources
/// usually revise); 0 means anywhere in the history. The number of revisions is the fraction
/// of *all* past values either way. With habits, records that never reported a case are not
/// revised (upstream's silent territories stay silent, and stay a tie group).
fn revise(data: &mut Data, rng: &mut Rng, revise: f64, window: usize, habits: bool) {
    let days = data.days();
    let pool: Vec<usize> = (0..data.countries.len())
        .filter(|&c| !habits || !data.countries[c].reports_nothing())
        .collect();
    if pool.is_empty() || days == 0 {
        return;
    }
    let span = if window == 0 { days } else { window.min(days) };
    let cells = pool.len() * span * 3;
    let want = ((data.countries.len() * days * 3) as f64 * revise).round() as usize;
    let mut chosen: HashSet<(usize, usize, usize)> = HashSet::with_capacity(want);
    while chosen.len() < want.min(cells) {
        let c = pool[rng.below(pool.len() as u64) as usize];
        let d = days - span + rng.below(span as u64) as usize;
        let f = rng.below(3) as usize;
        if !chosen.insert((c, d, f)) {
            continue;
        }
        let v = &mut data.countries[c].new[d][f];
        let step = 1 + rng.below(1 + *v / 10);
        *v = if *v >= step && rng.below(2) == 0 {
            *v - step
        } else {
            *v + step
        };
    }
}

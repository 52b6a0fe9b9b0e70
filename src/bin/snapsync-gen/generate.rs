//! Generation: country identities, each country's daily series (classic or upstream-shaped),
//! and the first file.

use std::path::Path;

use super::dates::format_date;
use super::habits::arrange;
use super::output::write_data;
use super::{Country, Data, GenArgs, Habits, Rng, Shape, FIRST_DAY, HABIT_SALT, NAMES, ZEROS_SALT};

pub(super) fn slug(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    s.trim_matches('-').to_string()
}

pub(super) fn country_identity(i: usize) -> (String, String) {
    let base = NAMES[i % NAMES.len()];
    let round = i / NAMES.len();
    if round == 0 {
        (slug(base), base.to_string())
    } else {
        // Keys stay unique: the suffix is never produced by a real name's slug.
        let name = format!("{base} {}", round + 1);
        (slug(&name), name)
    }
}

/// A rounded, noisy value around `mean` (never negative).
pub(super) fn noisy(rng: &mut Rng, mean: f64, spread: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    let v = mean * (1.0 - spread + 2.0 * spread * rng.f64());
    // Round stochastically so small means still produce a plausible mix of 0s and 1s.
    let floor = v.floor();
    floor as u64 + u64::from(rng.f64() < v - floor)
}

/// The daily `new` values of country `i`: a few epidemic waves with weekly dips.
///
/// `Shape::Upstream` draws the countries' sizes log-normal (most are mid-sized, as in the real
/// file; the classic shape spreads them log-uniformly, so neighbours in a ranking are far
/// apart) and makes each wave bigger the later it comes (the real pandemic grew), so a
/// country's current wave weighs in its total. Together they make neighbours' totals close and
/// their growth differ: what makes a ranking by totals move by a few dozen places a day.
pub(super) fn series(i: usize, days: usize, seed: u64, shape: Shape) -> Vec<[u64; 3]> {
    let mut rng =
        Rng::new(seed.wrapping_mul(0x100_0000_01B3) ^ (i as u64).wrapping_mul(0x9E37_79B9));
    // Peak daily cases between ~1 and ~30000: log-uniform, or log-normal around ~250.
    let peak = match shape {
        Shape::Classic => (rng.f64() * 10.3).exp(),
        Shape::Upstream => {
            let (u1, u2) = (1.0 - rng.f64(), rng.f64());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (5.5 + 1.2 * z).clamp(0.0, 10.3).exp()
        }
    };
    let onset = rng.below(70) as usize;
    let cfr = 0.005 + 0.025 * rng.f64();
    let recovery_rate = 0.80 + 0.18 * rng.f64();
    let n_waves = match shape {
        Shape::Classic => 3,
        Shape::Upstream => 4,
    };
    let waves: Vec<(f64, f64, f64)> = (0..n_waves)
        .map(|_| {
            let centre = rng.f64() * (days.max(30) as f64) * 1.1;
            let width = 15.0 + rng.f64() * 60.0;
            let mut height = 0.2 + 0.8 * rng.f64();
            if shape == Shape::Upstream {
                // A wave 150 days before the end is e times smaller than one at the end.
                height *= ((centre - days as f64).min(0.0) / 150.0).exp();
            }
            (centre, width, height)
        })
        .collect();
    let mut new = Vec::with_capacity(days + 1);
    for d in 0..days {
        if d < onset {
            new.push([0, 0, 0]);
            continue;
        }
        let t = d as f64;
        let shape: f64 = waves
            .iter()
            .map(|&(c, w, h)| h * (-((t - c) / w).powi(2)).exp())
            .sum::<f64>()
            + 0.02;
        let weekday = if d % 7 >= 5 { 0.6 } else { 1.0 };
        let cases = noisy(&mut rng, peak * shape * weekday, 0.35);
        let lag_cases = if d >= 14 { new[d - 14][0] as f64 } else { 0.0 };
        let deaths = noisy(&mut rng, cases as f64 * cfr, 0.5);
        let recoveries = noisy(&mut rng, lag_cases * recovery_rate, 0.3);
        new.push([cases, deaths, recoveries]);
    }
    new
}

fn generate(n: usize, days: usize, seed: u64, habits: &Habits) -> (Data, usize) {
    let mut countries = Vec::with_capacity(n);
    for i in 0..n {
        let (key, name) = country_identity(i);
        let mut new = series(i, days, seed, habits.shape);
        let salt = seed.wrapping_mul(0x100_0000_01B3) ^ (i as u64).wrapping_mul(0x9E37_79B9);
        if Rng::new(salt ^ ZEROS_SALT).chance(habits.zeros) {
            new.iter_mut().for_each(|v| *v = [0, 0, 0]);
        }
        countries.push(Country { key, name, new });
    }
    let ties = arrange(
        &mut countries,
        habits,
        &mut Rng::new(seed ^ HABIT_SALT),
        false,
    );
    let data = Data {
        first_day: FIRST_DAY,
        countries,
    };
    (data, ties)
}

pub(super) fn cmd_gen(a: &GenArgs) -> Result<(), String> {
    let (data, ties) = generate(a.countries, a.days, a.seed, &a.habits);
    if a.habits.any() {
        eprintln!(
            "snapsync-gen: kind=gen day={} records={} no_cases={} ties_shuffled={ties}",
            format_date(data.first_day + data.days() as i64 - 1),
            data.countries.len(),
            data.countries
                .iter()
                .filter(|c| c.reports_nothing())
                .count(),
        );
    }
    write_data(&data, Path::new(&a.out))
}

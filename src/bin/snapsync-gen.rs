//! `snapsync-gen`: writes covid-shaped test data (the shape of the coviddata countries file).
//!
//! ```text
//! snapsync-gen --countries N --days D [--seed S] [HABITS] --out FILE
//! snapsync-gen next --in FILE --out FILE [--seed S] [--revise FRACTION] [--revise-window DAYS] [HABITS]
//! snapsync-gen next --in FILE --out FILE --reorder-only [--seed S] [HABITS]
//! ```
//!
//! The file is a top-level JSON array of
//! `{"country":{"key":"…","name":"…"},"dates":{"2020-01-22":{"new":{"cases":…,"deaths":…,"recoveries":…},"cumulative":{…}},…}}`
//! with consecutive days from 2020-01-22, random non-negative `new` values and `cumulative`
//! the running sum of `new`. Output is compact and keeps the source's (non-sorted) key order.
//! Everything is deterministic in the seed.
//!
//! `next` appends the day after the last one to every country and revises a fraction
//! (default 0.001) of the past `new` values, recomputing the affected cumulative series.
//!
//! # Upstream habits
//!
//! Without habit flags the records keep one fixed order forever. The real upstream does not:
//! it lists its records sorted by total cases, so the order changes every day; records with
//! equal totals (the many with no case at all) are reshuffled among themselves now and then
//! with no other change; and now and then a key is renamed (`uk` → `united-kingdom`) or a
//! record dropped or added. A diff that matches records by position sees all of that as
//! removed and added records; these flags reproduce it so the diff's `move`s can be measured:
//!
//! - `--sort cases`: records listed by their last cumulative `cases`, descending. The sort is
//!   *stable*: records with equal totals keep the order they had in the input (the day
//!   before). Sorting by totals (not by the day's new cases, which would reorder nearly
//!   everything) moves a realistic number of records: only a country in a wave overtakes its
//!   neighbours. With `--upstream`'s values a few dozen of ~210-250 records change position
//!   on a typical day, not all (`tests/generator.rs` pins a range); the classic values, whose
//!   countries' sizes are far apart, move only ~10.
//! - `--shuffle-ties P`: on a day, with probability P, every group of records with equal totals
//!   is shuffled among itself.
//! - `--zeros F` (generation): a fraction F of the records never report a case (all values 0,
//!   and `next` never revises them), like the real file's territories: the biggest tie group.
//! - `--rename P` (`next`): each record's key is renamed with probability P that day; the
//!   record's content stays, under a key that toggles between the slug of its name and a short
//!   form (`united-kingdom` ↔ `uk`, `france` ↔ `fra`).
//! - `--churn P` (`next`): each record is dropped with probability P, and on average as many
//!   are added (a country not in the file, with a full history).
//! - `--upstream`: all of these at the real file's rates, `--sort cases --shuffle-ties 0.3
//!   --zeros 0.1 --rename 0.0005 --churn 0.0005` (with ~210 records: ties reshuffled every
//!   third day, a rename, a drop and an add every ~10 days), and values shaped like the real
//!   file's (log-normal country sizes, each wave bigger than the one before: see `series`).
//!   Flags given too override the rates.
//!
//! `next --reorder-only` is upstream's "same data, new order" day: no new date, no revision,
//! rename or churn; the records are sorted again and every tie group is reshuffled (retried
//! until the order differs, when a group of two or more exists; otherwise a warning says the
//! order could not change).
//!
//! With habits, both commands print one line on stderr saying what they did, e.g.
//! `snapsync-gen: kind=next day=2022-10-18 records=250 reordered=37 min_moves=9
//! ties_shuffled=25 renamed=uk>united-kingdom dropped=- added=-`, where `reordered` counts
//! the records present on both days whose position among those records changed, and
//! `min_moves` the fewest of them that must move to turn one order into the other (the records
//! outside a longest increasing subsequence: what a minimal `move` diff emits).
//!
//! Habit decisions draw from a random stream of their own, so without habit flags the output
//! is byte for byte what it was before habits existed.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

const USAGE: &str = "\
usage:
  snapsync-gen --countries N --days D [--seed S] [HABITS] --out FILE
  snapsync-gen next --in FILE --out FILE [--seed S] [--revise FRACTION] [--revise-window DAYS] [HABITS]
  snapsync-gen next --in FILE --out FILE --reorder-only [--seed S] [HABITS]

Writes covid-shaped JSON (the coviddata countries file shape), deterministic in the seed.
`next` appends one day per country and revises FRACTION (default 0.001) of past `new` values
(of the last DAYS days only, with --revise-window; default: anywhere).

HABITS of the real upstream (all off by default: records keep a fixed order):
  --sort fixed|cases  list records by their last cumulative cases, descending (stable)
  --shuffle-ties P    with probability P a day, shuffle each group of records with equal totals
  --zeros F           (generation) a fraction F of the records never report a case
  --rename P          (next) each record's key is renamed with probability P (uk <-> united-kingdom)
  --churn P           (next) each record is dropped with probability P; as many added on average
  --upstream          --sort cases --shuffle-ties 0.3 --zeros 0.1 --rename 0.0005 --churn 0.0005,
                      with values shaped like the real file's so the ranking moves (a few dozen a day)
  --reorder-only      (next) no new day and no change of data: re-sorted, every tie group reshuffled
With habits, a line on stderr says what changed (reordered, min_moves, renamed, dropped, added).";

/// Days since 1970-01-01 of 2020-01-22, the first date of the real file.
const FIRST_DAY: i64 = 18283;

/// Salts of the random streams habits draw from (kept apart from the data's streams).
const HABIT_SALT: u64 = 0x4A81_7C3B_0D5E_96F2;
const REORDER_SALT: u64 = 0x1F6D_C2A9_8B34_E057;
const ZEROS_SALT: u64 = 0x77E3_05B1_9CD8_2A4F;
const ADDED_SALT: u64 = 0x3C95_E8F0_61A7_D24B;

#[rustfmt::skip]
const NAMES: &[&str] = &[
    "Afghanistan", "Albania", "Algeria", "Andorra", "Angola", "Argentina", "Armenia",
    "Australia", "Austria", "Azerbaijan", "Bahamas", "Bahrain", "Bangladesh", "Barbados",
    "Belarus", "Belgium", "Belize", "Benin", "Bhutan", "Bolivia", "Botswana", "Brazil",
    "Brunei", "Bulgaria", "Burkina Faso", "Burundi", "Cabo Verde", "Cambodia", "Cameroon",
    "Canada", "Chad", "Chile", "China", "Colombia", "Comoros", "Costa Rica", "Croatia", "Cuba",
    "Cyprus", "Czechia", "Denmark", "Djibouti", "Dominica", "Ecuador", "Egypt", "El Salvador",
    "Eritrea", "Estonia", "Eswatini", "Ethiopia", "Fiji", "Finland", "France", "Gabon",
    "Gambia", "Georgia", "Germany", "Ghana", "Greece", "Grenada", "Guatemala", "Guinea",
    "Guyana", "Haiti", "Honduras", "Hungary", "Iceland", "India", "Indonesia", "Iran", "Iraq",
    "Ireland", "Israel", "Italy", "Jamaica", "Japan", "Jordan", "Kazakhstan", "Kenya", "Kosovo",
    "Kuwait", "Laos", "Latvia", "Lebanon", "Lesotho", "Liberia", "Libya", "Liechtenstein",
    "Lithuania", "Luxembourg", "Madagascar", "Malawi", "Malaysia", "Maldives", "Mali", "Malta",
    "Mexico", "Moldova", "Monaco", "Mongolia", "Montenegro", "Morocco", "Mozambique", "Namibia",
    "Nepal", "Netherlands", "New Zealand", "Nicaragua", "Niger", "Nigeria", "Norway", "Oman",
    "Pakistan", "Panama", "Paraguay", "Peru", "Philippines", "Poland", "Portugal", "Qatar",
    "Romania", "Russia", "Rwanda", "Samoa", "San Marino", "Senegal", "Serbia", "Seychelles",
    "Singapore", "Slovakia", "Slovenia", "Somalia", "South Africa", "Spain", "Sri Lanka",
    "Sudan", "Suriname", "Sweden", "Switzerland", "Syria", "Taiwan", "Tajikistan", "Tanzania",
    "Thailand", "Togo", "Tonga", "Tunisia", "Turkey", "Uganda", "Ukraine", "Uruguay",
    "Uzbekistan", "Vanuatu", "Venezuela", "Vietnam", "Yemen", "Zambia", "Zimbabwe",
];

/// splitmix64: tiny, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EED_5A95_C0DE_D47A)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n); n > 0.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// True with probability `p` (draws nothing when `p` is 0, so a habit that is off does
    /// not shift the stream of the ones that are on).
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.f64() < p
    }
}

/// One country: its identity and the daily `new` values [cases, deaths, recoveries].
struct Country {
    key: String,
    name: String,
    new: Vec<[u64; 3]>,
}

impl Country {
    /// The sort value of `--sort cases`: the last cumulative `cases`.
    fn total_cases(&self) -> u64 {
        self.new.iter().map(|v| v[0]).sum()
    }
    fn reports_nothing(&self) -> bool {
        self.new.iter().all(|v| *v == [0, 0, 0])
    }
}

struct Data {
    first_day: i64,
    countries: Vec<Country>,
}

impl Data {
    fn days(&self) -> usize {
        self.countries
            .iter()
            .map(|c| c.new.len())
            .max()
            .unwrap_or(0)
    }
}

/// How the data's values are drawn (see [`series`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The generator's first model: fixed-order tests and benchmarks keep their bytes.
    Classic,
    /// Sized and grown like the real file, so a ranking by totals moves (`--upstream`).
    Upstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// The order of the input (or of generation): never changes.
    Fixed,
    /// Last cumulative cases, descending; stable.
    Cases,
}

/// The real upstream's habits (module doc), as rates.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Habits {
    shape: Shape,
    sort: Sort,
    shuffle_ties: f64,
    zeros: f64,
    rename: f64,
    churn: f64,
}

impl Habits {
    const NONE: Habits = Habits {
        shape: Shape::Classic,
        sort: Sort::Fixed,
        shuffle_ties: 0.0,
        zeros: 0.0,
        rename: 0.0,
        churn: 0.0,
    };
    const UPSTREAM: Habits = Habits {
        shape: Shape::Upstream,
        sort: Sort::Cases,
        shuffle_ties: 0.3,
        zeros: 0.1,
        rename: 0.0005,
        churn: 0.0005,
    };
    fn any(&self) -> bool {
        *self != Habits::NONE
    }
}

struct GenArgs {
    countries: usize,
    days: usize,
    seed: u64,
    habits: Habits,
    out: String,
}

struct NextArgs {
    input: String,
    out: String,
    seed: u64,
    revise: f64,
    window: usize,
    habits: Habits,
    reorder_only: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match args.first().map(String::as_str) {
        Some("next") => parse_next(&args[1..]).map(|a| cmd_next(&a)),
        _ => parse_gen(&args).map(|a| cmd_gen(&a)),
    };
    match result {
        Err(msg) => {
            eprintln!("snapsync-gen: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Ok(Err(msg)) => {
            eprintln!("snapsync-gen: {msg}");
            ExitCode::FAILURE
        }
        Ok(Ok(())) => ExitCode::SUCCESS,
    }
}

/// Splits `--flag value` pairs and value-less `switches`; every flag must be in `allowed` or
/// `switches` and appear at most once. A switch's value is "".
fn flags<'a>(
    args: &'a [String],
    allowed: &[&str],
    switches: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = if switches.contains(&flag.as_str()) {
            ""
        } else if allowed.contains(&flag.as_str()) {
            it.next().ok_or_else(|| format!("{flag} needs a value"))?
        } else {
            return Err(format!("unexpected argument {flag:?}"));
        };
        if out.iter().any(|(f, _)| f == flag) {
            return Err(format!("{flag} given twice"));
        }
        out.push((flag.as_str(), value));
    }
    Ok(out)
}

fn get<'a>(flags: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    flags.iter().find(|(f, _)| *f == name).map(|(_, v)| *v)
}

fn has(flags: &[(&str, &str)], name: &str) -> bool {
    flags.iter().any(|(f, _)| *f == name)
}

fn number<T: std::str::FromStr>(flags: &[(&str, &str)], name: &str) -> Result<Option<T>, String> {
    get(flags, name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("{name}: not a valid number: {v:?}"))
        })
        .transpose()
}

fn fraction(flags: &[(&str, &str)], name: &str) -> Result<Option<f64>, String> {
    match number::<f64>(flags, name)? {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            Err(format!("{name} must be a fraction between 0 and 1"))
        }
        v => Ok(v),
    }
}

/// Flags both commands take for habits (`--upstream` is a switch).
const HABIT_FLAGS: [&str; 5] = ["--sort", "--shuffle-ties", "--zeros", "--rename", "--churn"];

/// `--upstream`'s rates, overridden by the habit flags given.
fn parse_habits(f: &[(&str, &str)]) -> Result<Habits, String> {
    let mut h = if has(f, "--upstream") {
        Habits::UPSTREAM
    } else {
        Habits::NONE
    };
    if let Some(s) = get(f, "--sort") {
        h.sort = match s {
            "fixed" => Sort::Fixed,
            "cases" => Sort::Cases,
            _ => return Err(format!("--sort: {s:?} is not one of fixed, cases")),
        };
    }
    for (name, slot) in [
        ("--shuffle-ties", &mut h.shuffle_ties),
        ("--zeros", &mut h.zeros),
        ("--rename", &mut h.rename),
        ("--churn", &mut h.churn),
    ] {
        if let Some(v) = fraction(f, name)? {
            *slot = v;
        }
    }
    if h.shuffle_ties > 0.0 && h.sort == Sort::Fixed {
        return Err(
            "--shuffle-ties needs --sort cases (ties are records with equal totals)".into(),
        );
    }
    Ok(h)
}

fn parse_gen(args: &[String]) -> Result<GenArgs, String> {
    let mut allowed = vec!["--countries", "--days", "--seed", "--out"];
    allowed.extend(HABIT_FLAGS);
    let f = flags(args, &allowed, &["--upstream"])?;
    if let Some(flag) = ["--rename", "--churn"].into_iter().find(|n| has(&f, n)) {
        return Err(format!(
            "{flag} changes one day into the next: give it to `snapsync-gen next`"
        ));
    }
    let countries = number::<usize>(&f, "--countries")?.ok_or("--countries is required")?;
    let days = number::<usize>(&f, "--days")?.ok_or("--days is required")?;
    let seed = number::<u64>(&f, "--seed")?.unwrap_or(1);
    let out = get(&f, "--out").ok_or("--out is required")?.to_string();
    if days == 0 {
        return Err("--days must be at least 1".into());
    }
    let mut habits = parse_habits(&f)?;
    // A day-to-day rate means nothing for the first file.
    (habits.rename, habits.churn) = (0.0, 0.0);
    Ok(GenArgs {
        countries,
        days,
        seed,
        habits,
        out,
    })
}

fn parse_next(args: &[String]) -> Result<NextArgs, String> {
    let mut allowed = vec!["--in", "--out", "--seed", "--revise", "--revise-window"];
    allowed.extend(HABIT_FLAGS);
    let f = flags(args, &allowed, &["--upstream", "--reorder-only"])?;
    if has(&f, "--zeros") {
        return Err("--zeros is for the first file (`next` keeps every record's history)".into());
    }
    let input = get(&f, "--in").ok_or("--in is required")?.to_string();
    let out = get(&f, "--out").ok_or("--out is required")?.to_string();
    let seed = number::<u64>(&f, "--seed")?.unwrap_or(1);
    let revise = fraction(&f, "--revise")?.unwrap_or(0.001);
    let window = number::<usize>(&f, "--revise-window")?.unwrap_or(0);
    let mut habits = parse_habits(&f)?;
    let reorder_only = has(&f, "--reorder-only");
    if reorder_only {
        let changing = ["--revise", "--revise-window", "--rename", "--churn"];
        if let Some(flag) = changing.into_iter().find(|n| has(&f, n)) {
            return Err(format!(
                "--reorder-only changes no data: {flag} makes no sense"
            ));
        }
        if habits.sort == Sort::Fixed {
            return Err("--reorder-only needs --sort cases or --upstream".into());
        }
        (habits.rename, habits.churn) = (0.0, 0.0);
    }
    Ok(NextArgs {
        input,
        out,
        seed,
        revise,
        window,
        habits,
        reorder_only,
    })
}

// ---------------------------------------------------------------------------------------------
// generate

fn slug(name: &str) -> String {
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

fn country_identity(i: usize) -> (String, String) {
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
fn noisy(rng: &mut Rng, mean: f64, spread: f64) -> u64 {
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
fn series(i: usize, days: usize, seed: u64, shape: Shape) -> Vec<[u64; 3]> {
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

fn cmd_gen(a: &GenArgs) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// habits

/// Puts the records in the order `habits.sort` says; with probability `shuffle_ties` (always
/// when `force`) shuffles each group of equal totals. Returns how many records the shuffled
/// groups hold (0 when nothing was shuffled).
fn arrange(countries: &mut [Country], habits: &Habits, rng: &mut Rng, force: bool) -> usize {
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
struct DayLog {
    renamed: Vec<(String, String)>,
    dropped: Vec<String>,
    added: Vec<String>,
}

/// Drops each record with probability `p` (never the last one) and adds as many on average:
/// countries not in the file (by key or name, nor dropped today), with a full `days` history.
fn churn(
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
fn rename(countries: &mut [Country], p: f64, rng: &mut Rng, log: &mut DayLog) {
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
fn order_change(before: &[String], after: &[Country]) -> (usize, usize) {
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

fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

// ---------------------------------------------------------------------------------------------
// next day

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

fn cmd_next(a: &NextArgs) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// output

fn write_data(data: &Data, path: &Path) -> Result<(), String> {
    // Write next to the target and rename, so a server never sees a half-written file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        write_json(data, &mut w)?;
        w.flush()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_json(data: &Data, w: &mut impl Write) -> std::io::Result<()> {
    let dates: Vec<String> = {
        (0..data.days() as i64)
            .map(|d| format_date(data.first_day + d))
            .collect()
    };
    w.write_all(b"[")?;
    for (i, c) in data.countries.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let key = serde_json::to_string(&c.key).map_err(std::io::Error::other)?;
        let name = serde_json::to_string(&c.name).map_err(std::io::Error::other)?;
        write!(
            w,
            "{{\"country\":{{\"key\":{key},\"name\":{name}}},\"dates\":{{"
        )?;
        let mut cum = [0u64; 3];
        for (d, v) in c.new.iter().enumerate() {
            for f in 0..3 {
                cum[f] += v[f];
            }
            if d > 0 {
                w.write_all(b",")?;
            }
            write!(
                w,
                "\"{}\":{{\"new\":{{\"cases\":{},\"deaths\":{},\"recoveries\":{}}},\
                 \"cumulative\":{{\"cases\":{},\"deaths\":{},\"recoveries\":{}}}}}",
                dates[d], v[0], v[1], v[2], cum[0], cum[1], cum[2]
            )?;
        }
        w.write_all(b"}}")?;
    }
    w.write_all(b"]\n")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// dates (proleptic Gregorian, days since 1970-01-01; Howard Hinnant's algorithms)

fn format_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: i64 = s[5..7].parse().ok()?;
    let d: i64 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // Reject dates like 2021-02-30 that would silently roll over.
    (format_date(days) == s).then_some(days)
}

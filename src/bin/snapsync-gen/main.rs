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
//!   on a typical day, not all (`tests/integration/generator.rs` pins a range); the classic
//!   values, whose countries' sizes are far apart, move only ~10.
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
//!
//! The code is cut by command and step: `args` parses the flags, `generate` writes a new file,
//! `next` the day after, `habits` reorders, renames and churns records as upstream does,
//! `output` writes the JSON and `dates` converts dates. This file holds the types and `main`.

use std::process::ExitCode;

mod args;
mod dates;
mod generate;
mod habits;
mod next;
mod output;

use args::{parse_gen, parse_next};
use generate::cmd_gen;
use next::cmd_next;

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

//! `snapsync-gen`: writes covid-shaped test data (the shape of the coviddata countries file).
//!
//! ```text
//! snapsync-gen --countries N --days D [--seed S] --out FILE
//! snapsync-gen next --in FILE --out FILE [--seed S] [--revise FRACTION] [--revise-window DAYS]
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

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

const USAGE: &str = "\
usage:
  snapsync-gen --countries N --days D [--seed S] --out FILE
  snapsync-gen next --in FILE --out FILE [--seed S] [--revise FRACTION] [--revise-window DAYS]

Writes covid-shaped JSON (the coviddata countries file shape), deterministic in the seed.
`next` appends one day per country and revises FRACTION (default 0.001) of past `new` values\n(of the last DAYS days only, with --revise-window; default: anywhere).";

/// Days since 1970-01-01 of 2020-01-22, the first date of the real file.
const FIRST_DAY: i64 = 18283;

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
}

/// One country: its identity and the daily `new` values [cases, deaths, recoveries].
struct Country {
    key: String,
    name: String,
    new: Vec<[u64; 3]>,
}

struct Data {
    first_day: i64,
    countries: Vec<Country>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match args.first().map(String::as_str) {
        Some("next") => parse_next(&args[1..]).map(|(a, b, c, d, w)| cmd_next(&a, &b, c, d, w)),
        _ => parse_gen(&args).map(|(n, d, s, out)| cmd_gen(n, d, s, &out)),
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

/// Splits `--flag value` pairs; every flag must be in `allowed` and appear at most once.
fn flags<'a>(args: &'a [String], allowed: &[&str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !allowed.contains(&flag.as_str()) {
            return Err(format!("unexpected argument {flag:?}"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if out.iter().any(|(f, _)| f == flag) {
            return Err(format!("{flag} given twice"));
        }
        out.push((flag.as_str(), value.as_str()));
    }
    Ok(out)
}

fn get<'a>(flags: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    flags.iter().find(|(f, _)| *f == name).map(|(_, v)| *v)
}

fn number<T: std::str::FromStr>(flags: &[(&str, &str)], name: &str) -> Result<Option<T>, String> {
    get(flags, name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("{name}: not a valid number: {v:?}"))
        })
        .transpose()
}

fn parse_gen(args: &[String]) -> Result<(usize, usize, u64, String), String> {
    let f = flags(args, &["--countries", "--days", "--seed", "--out"])?;
    let n = number::<usize>(&f, "--countries")?.ok_or("--countries is required")?;
    let d = number::<usize>(&f, "--days")?.ok_or("--days is required")?;
    let seed = number::<u64>(&f, "--seed")?.unwrap_or(1);
    let out = get(&f, "--out").ok_or("--out is required")?.to_string();
    if d == 0 {
        return Err("--days must be at least 1".into());
    }
    Ok((n, d, seed, out))
}

fn parse_next(args: &[String]) -> Result<(String, String, u64, f64, usize), String> {
    let f = flags(
        args,
        &["--in", "--out", "--seed", "--revise", "--revise-window"],
    )?;
    let input = get(&f, "--in").ok_or("--in is required")?.to_string();
    let out = get(&f, "--out").ok_or("--out is required")?.to_string();
    let seed = number::<u64>(&f, "--seed")?.unwrap_or(1);
    let revise = number::<f64>(&f, "--revise")?.unwrap_or(0.001);
    if !(0.0..=1.0).contains(&revise) {
        return Err("--revise must be a fraction between 0 and 1".into());
    }
    let window = number::<usize>(&f, "--revise-window")?.unwrap_or(0);
    Ok((input, out, seed, revise, window))
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

fn generate(n: usize, days: usize, seed: u64) -> Data {
    let mut countries = Vec::with_capacity(n);
    for i in 0..n {
        let mut rng =
            Rng::new(seed.wrapping_mul(0x100_0000_01B3) ^ (i as u64).wrapping_mul(0x9E37_79B9));
        let (key, name) = country_identity(i);
        // Peak daily cases between ~1 and ~30000, log-uniform.
        let peak = (rng.f64() * 10.3).exp();
        let onset = rng.below(70) as usize;
        let cfr = 0.005 + 0.025 * rng.f64();
        let recovery_rate = 0.80 + 0.18 * rng.f64();
        let waves: Vec<(f64, f64, f64)> = (0..3)
            .map(|_| {
                let centre = rng.f64() * (days.max(30) as f64) * 1.1;
                let width = 15.0 + rng.f64() * 60.0;
                let height = 0.2 + 0.8 * rng.f64();
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
        countries.push(Country { key, name, new });
    }
    Data {
        first_day: FIRST_DAY,
        countries,
    }
}

fn cmd_gen(n: usize, days: usize, seed: u64, out: &str) -> Result<(), String> {
    let data = generate(n, days, seed);
    write_data(&data, Path::new(out))
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

fn cmd_next(input: &str, out: &str, seed: u64, revise: f64, window: usize) -> Result<(), String> {
    let mut data = read_data(Path::new(input))?;
    let days = data
        .countries
        .iter()
        .map(|c| c.new.len())
        .max()
        .unwrap_or(0);
    if data.countries.iter().any(|c| c.new.len() != days) {
        return Err(format!("{input}: countries have different numbers of days"));
    }
    // Mix the day count into the seed so successive `next` runs differ with the default seed.
    let mut rng = Rng::new(seed ^ (days as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));

    // Revise a fraction of the past values: distinct (country, day, field) cells, each changed.
    // With a window, only the last `window` days are revised (late reports, as upstream
    // sources usually revise); 0 means anywhere in the history.
    // The number of revisions is the fraction of *all* past values either way.
    let span = if window == 0 { days } else { window.min(days) };
    let cells = data.countries.len() * span * 3;
    let want = ((data.countries.len() * days * 3) as f64 * revise).round() as usize;
    let mut chosen: HashSet<(usize, usize, usize)> = HashSet::with_capacity(want);
    while chosen.len() < want.min(cells) {
        let c = rng.below(data.countries.len() as u64) as usize;
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
    write_data(&data, Path::new(out))
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
        let days = data
            .countries
            .iter()
            .map(|c| c.new.len())
            .max()
            .unwrap_or(0);
        (0..days as i64)
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

//! The command line: `--flag value` pairs and switches, the habit flags, and each command's
//! arguments checked.

use super::{GenArgs, Habits, NextArgs, Sort};

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

pub(super) fn parse_gen(args: &[String]) -> Result<GenArgs, String> {
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

pub(super) fn parse_next(args: &[String]) -> Result<NextArgs, String> {
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

//! The command line as a user meets it, through the real binary: help layout, exit statuses,
//! JSON output and errors, `run --dry-run` and `--exit-code`, `restore`'s refusal to
//! overwrite, read commands on a dataset with no history, a signal during `run`, completions
//! and the man page, and (in tmux) one progress bar on a terminal.

use std::process::Stdio;
use std::time::Duration;

use crate::common::cli::{to_result, wait_for, Sandbox};
use crate::common::http::{Fault, HttpServer};
use serde_json::{json, Value};

fn dataset(days: u64) -> Vec<u8> {
    let records: Vec<Value> = ["fr", "de", "es"]
        .iter()
        .map(|k| {
            let dates: serde_json::Map<String, Value> = (1..=days)
                .map(|d| {
                    (
                        format!("2020-02-{d:02}"),
                        json!({"new": {"cases": d}, "cumulative": {"cases": d * (d + 1) / 2}}),
                    )
                })
                .collect();
            json!({"country": {"key": k, "name": k.to_uppercase()}, "dates": dates})
        })
        .collect();
    serde_json::to_vec(&records).unwrap()
}

/// `records` countries of `days` days each (a few MB: a replay of a dozen takes seconds).
fn big(records: usize, days: u64) -> Vec<u8> {
    let all: Vec<Value> = (0..records)
        .map(|r| {
            let dates: serde_json::Map<String, Value> = (1..=days)
                .map(|d| {
                    let n = (r as u64 * 7 + d * 13) % 1000;
                    (
                        format!("2020-{:02}-{:02}", 1 + (d - 1) / 28, 1 + (d - 1) % 28),
                        json!({"new": {"cases": n, "deaths": n / 10}, "cumulative": {"cases": n * d, "deaths": n * d / 10}}),
                    )
                })
                .collect();
            json!({"country": {"key": format!("r{r:03}"), "name": format!("R{r}")}, "dates": dates})
        })
        .collect();
    serde_json::to_vec(&all).unwrap()
}

/// A server with day 1 at /stats.json and a sandbox that published it.
fn published() -> (HttpServer, Sandbox, String) {
    let server = HttpServer::start();
    server.set("/stats.json", dataset(1));
    let sb = Sandbox::new();
    let url = server.url("/stats.json");
    let r = sb.sync(&url, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    (server, sb, url)
}

/// The store's files and the database's bytes: what "writes nothing" is checked against.
fn state(sb: &Sandbox) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    (sb.store_files(), std::fs::read(sb.db()).unwrap())
}

/// The option names (`--x`) of one help section: from its heading to the next blank-line
/// heading.
fn section(help: &str, heading: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != heading)
        .skip(1)
        .take_while(|l| l.starts_with(' ') || l.is_empty())
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("--"))
                .map(|w| w.trim_end_matches(',').to_string())
        })
        .collect()
}

#[test]
fn each_help_lists_its_own_options_first_and_hides_ignored_globals() {
    let sb = Sandbox::new();
    let r = sb.run(&["restore", "--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    let own = section(&r.stdout, "Options:");
    assert_eq!(
        own,
        ["--at", "--version", "--out", "--force", "--help"],
        "{}",
        r.stdout
    );
    let globals = section(&r.stdout, "Global options:");
    for g in ["--store", "--dataset", "--config", "--json"] {
        assert!(
            globals.contains(&g.to_string()),
            "{g} missing: {}",
            r.stdout
        );
    }
    // Options a restore ignores are not in its help, but still accepted (they are global).
    for hidden in ["--timeout", "--schedule", "--retries", "--url", "--db"] {
        assert!(!r.stdout.contains(hidden), "{hidden} shown: {}", r.stdout);
    }
    assert!(
        r.stdout.find("Options:").unwrap() < r.stdout.find("Global options:").unwrap(),
        "{}",
        r.stdout
    );
    // run shows the source options, every one with its variable.
    let run = sb.run(&["run", "--help"]);
    let globals = section(&run.stdout, "Global options:");
    assert!(globals.contains(&"--timeout".to_string()), "{}", run.stdout);
    assert!(
        run.stdout.contains("[env: SNAPSYNC_TIMEOUT="),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("[env: SNAPSYNC_LOG_FORMAT="),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("--schedule"), "{}", run.stdout);
    assert!(section(&run.stdout, "Options:").contains(&"--dry-run".to_string()));
}

#[test]
fn usage_errors_exit_2_and_are_json_under_json() {
    let sb = Sandbox::new();
    for args in [
        &["frobnicate"][..],
        &["restore", "--out", "x.json"],
        &["replay", "/nowhere/at/all"],
        &["diff", "./nowhere.json", "latest"],
        &["run", "--timeout", "0"],
        &["worker", "--schedule", "dialy 06:00"],
    ] {
        let r = sb.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let r = sb.run(&json_args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        let line = r.stderr.lines().last().unwrap_or_default();
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {r:?}"));
        assert_eq!(v["exit_code"], 2, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    // The words say what was expected.
    let r = sb.run(&["run", "--timeout", "0"]);
    assert!(
        r.stderr.contains("expected more than 0 and at most 86400"),
        "{r:?}"
    );
    let r = sb.run(&["worker", "--schedule", "dialy 06:00"]);
    assert!(r.stderr.contains("\"daily HH:MM\""), "{r:?}");
    assert!(r.stderr.contains("cron expression"), "{r:?}");
    let r = sb.run(&["replay", "/nowhere/at/all"]);
    assert!(
        r.stderr.contains("/nowhere/at/all: does not exist"),
        "{r:?}"
    );
}

#[test]
fn dry_run_writes_nothing_and_exit_code_says_changed() {
    let (server, sb, url) = published();
    server.set("/stats.json", dataset(2));
    let before = state(&sb);
    let r = sb.sync(&url, &["--dry-run", "--exit-code"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.summary()
            .starts_with("covid-countries would publish version=2"),
        "{r:?}"
    );
    assert!(r.field("delta_bytes").is_some(), "{r:?}");
    assert!(
        before == state(&sb),
        "a dry run changed the store or the database"
    );
    // JSON says the same; without --exit-code a change is 0.
    let r = sb.sync(&url, &["--dry-run", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(r.summary()).unwrap();
    assert_eq!(
        (v["outcome"].as_str(), v["dry_run"].as_bool()),
        (Some("changed"), Some(true))
    );
    assert!(
        before == state(&sb),
        "a dry run changed the store or the database"
    );
    // A new disk: not even the database file is created.
    let fresh = sb.path().join("fresh.db");
    let fresh_arg = fresh.display().to_string();
    let r = sb.sync(&url, &["--dry-run", "--db", &fresh_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!fresh.exists(), "the dry run created {fresh_arg}");
    // The real run publishes; --exit-code says so, then 0 once nothing changed.
    assert_eq!(sb.sync(&url, &["--exit-code"]).code, 3);
    assert_eq!(sb.sync(&url, &["--exit-code"]).code, 0);
    assert_eq!(sb.sync(&url, &["--exit-code", "--dry-run"]).code, 0);
}

#[test]
fn restore_refuses_to_overwrite_and_checks_its_directory() {
    let (_server, sb, _url) = published();
    let out = sb.path().join("v1.json");
    std::fs::write(&out, b"precious").unwrap();
    let r = sb.run(&["restore", "--version", "1", "--out", "v1.json"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("exists; add --force"), "{r:?}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let r = sb.run(&["restore", "--version", "1", "--out", "no/such/dir/v1.json"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("the directory no/such/dir does not exist"),
        "{r:?}"
    );
    let r = sb.run(&[
        "restore",
        "--version",
        "1",
        "--out",
        "v1.json",
        "--force",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(r.summary()).unwrap();
    assert_eq!(v["version"], 1);
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");
}

#[test]
fn restore_at_a_date_means_the_end_of_that_day() {
    let (server, sb, url) = published();
    server.set("/stats.json", dataset(2));
    assert_eq!(sb.sync(&url, &[]).code, 0);
    // Both versions were published today: "--at today" is the newest, as of the day's end.
    let today = &sb.manifest("covid-countries")["versions"][1]["created_at"]
        .as_str()
        .unwrap()[..10]
        .to_string();
    let r = sb.run(&["restore", "--at", today, "--out", "-", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("restored version=2"), "{r:?}");
}

#[test]
fn read_commands_on_a_dataset_with_no_history_fail_and_name_the_ones_there() {
    let (_server, sb, _url) = published();
    for args in [
        &["--dataset", "covid-countriez", "log"][..],
        &["--dataset", "covid-countriez", "verify"],
        &[
            "--dataset",
            "covid-countriez",
            "restore",
            "--version",
            "1",
            "--out",
            "x.json",
        ],
        &["--dataset", "covid-countriez", "diff", "1", "latest"],
        &[
            "--dataset",
            "covid-countriez",
            "prune",
            "--keep-daily",
            "1",
            "--keep-monthly",
            "1",
        ],
    ] {
        let r = sb.run(args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("no history of covid-countriez")
                && r.stderr.contains("it has: covid-countries"),
            "{args:?}: {r:?}"
        );
    }
    let r = sb.run(&["--dataset", "covid-countriez", "log", "--json"]);
    let v: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(v["exit_code"], 1, "{v}");
}

#[test]
fn every_command_speaks_json() {
    let (_server, sb, url) = published();
    for args in [
        &["status"][..],
        &["log"],
        &["verify"],
        &["doctor", "--url", &url],
        &["restore", "--version", "1", "--out", "r.json"],
        &[
            "prune",
            "--keep-daily",
            "1",
            "--keep-monthly",
            "1",
            "--dry-run",
        ],
        &["diff", "1", "latest"],
        &["pull", "--out", "copy.json"],
    ] {
        let mut a = args.to_vec();
        a.push("--json");
        let r = sb.run(&a);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        for line in r.stdout.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{args:?}: {e}: {line}"));
        }
        assert!(!r.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn log_marks_pruned_snapshots() {
    let (server, sb, url) = published();
    for d in 2..=3 {
        server.set("/stats.json", dataset(d));
        assert_eq!(sb.sync(&url, &[]).code, 0);
    }
    // All three are today's: one daily keeps the newest; version 1 is always kept.
    let r = sb.run(&["prune", "--keep-daily", "1", "--keep-monthly", "0"]);
    assert_eq!(r.code, 0, "{r:?}");
    let log = sb.run(&["log"]);
    let v2 = log.stdout.lines().find(|l| l.starts_with("v2 ")).unwrap();
    assert!(v2.contains("snapshot=pruned"), "{}", log.stdout);
    let v3 = log.stdout.lines().find(|l| l.starts_with("v3 ")).unwrap();
    assert!(!v3.contains("pruned"), "{}", log.stdout);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (_server, sb, url) = published();
    let r = sb.sync(&url, &["--log-format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["message"] == "run finished" && v["span"]["dataset"] == "covid-countries"),
        "{r:?}"
    );
}

#[test]
fn a_signal_before_the_commit_point_publishes_nothing_and_says_so() {
    let (server, sb, url) = published();
    server.set("/stats.json", dataset(2));
    server.push_faults(
        "/stats.json",
        [Fault::DelayHeaders(Duration::from_secs(30))],
    );
    let before = sb.store_files();
    let child = sb
        .cmd(&["run", "--url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the fetch to start", Duration::from_secs(20), || {
        server.requests("/stats.json") >= 2
    });
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let r = to_result(child.wait_with_output().unwrap());
    assert_eq!(r.code, 130, "{r:?}");
    assert!(
        r.stderr
            .contains("before the commit point: nothing was published"),
        "{r:?}"
    );
    assert!(
        before == sb.store_files(),
        "the interrupted run wrote to the store"
    );
    assert_eq!(sb.run(&["status", "--json"]).code, 0);
}

#[test]
fn completions_and_man_page() {
    let sb = Sandbox::new();
    let r = sb.run(&["completions", "bash"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("complete -F") && r.stdout.contains("restore"),
        "{r:?}"
    );
    // bash itself accepts the script.
    let f = sb.path().join("snapsync.bash");
    std::fs::write(&f, &r.stdout).unwrap();
    let ok = std::process::Command::new("bash")
        .arg("-n")
        .arg(&f)
        .status()
        .unwrap();
    assert!(ok.success());
    for shell in ["zsh", "fish"] {
        assert_eq!(sb.run(&["completions", shell]).code, 0);
    }
    assert_eq!(sb.run(&["completions", "tcsh"]).code, 2);
    let man = sb.run(&["man"]);
    assert_eq!(man.code, 0, "{man:?}");
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH snapsync"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("restore"), "the commands are listed");
}

/// `replay` on a real terminal (tmux): while it runs the screen holds one bar; when it is done
/// none is left behind, and every file's line was written above the bar, not through it.
#[test]
fn replay_on_a_terminal_shows_one_bar() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        panic!("tmux is needed for this test (scripts/test installs it)");
    }
    let sb = Sandbox::new();
    let days = sb.path().join("days");
    std::fs::create_dir(&days).unwrap();
    let n = 12;
    for d in 1..=n {
        std::fs::write(days.join(format!("2021-01-{d:02}.json")), big(300, 60 + d)).unwrap();
    }
    let socket = sb.path().join("tmux.sock");
    let socket = socket.to_str().unwrap();
    let screen = sb.path().join("screen.txt");
    let script = format!(
        "cd {dir} && SNAPSYNC_LOG_FORMAT=text {bin} --store file://{dir}/store --db {dir}/s.db replay days; echo REPLAY-DONE; sleep 60",
        dir = sb.path().display(),
        bin = env!("CARGO_BIN_EXE_snapsync"),
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-S", socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    };
    let o = tmux(&["new-session", "-d", "-x", "220", "-y", "200", &script]);
    assert!(o.status.success(), "{o:?}");
    let capture =
        || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-J"]).stdout).into_owned();
    let mut during = Vec::new();
    wait_for("replay to finish", Duration::from_secs(120), || {
        let s = capture();
        during.push(s.clone());
        s.contains("REPLAY-DONE")
    });
    let end = capture();
    tmux(&["kill-server"]);
    std::fs::write(&screen, &end).unwrap();
    let bars = |s: &str| {
        s.lines()
            .filter(|l| l.contains("replaying covid-countries ["))
            .count()
    };
    // Never more than one bar on the screen, none left at the end.
    for s in &during {
        assert!(bars(s) <= 1, "more than one bar:\n{s}");
    }
    assert!(
        during.iter().any(|s| bars(s) == 1),
        "no bar seen in {} captures; the last:\n{end}",
        during.len()
    );
    assert_eq!(bars(&end), 0, "a bar was left behind:\n{end}");
    let lines = end
        .lines()
        .filter(|l| l.contains(" changed version="))
        .count();
    assert_eq!(lines, n as usize, "one line per file:\n{end}");
    assert!(
        end.contains(&format!("replayed files={n} changed={n}")),
        "{end}"
    );
}

/// Off a terminal: a `progress` log line every --progress-secs while a long command works
/// (none with --no-progress), and logfmt values keep their apostrophes unescaped.
#[test]
fn off_a_terminal_progress_is_a_log_line() {
    let sb = Sandbox::new();
    let days = sb.path().join("days");
    std::fs::create_dir(&days).unwrap();
    for d in 1..=6 {
        std::fs::write(days.join(format!("2021-01-{d:02}.json")), big(300, 60 + d)).unwrap();
    }
    let r = sb.run(&["replay", "days", "--progress-secs", "0.01"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("message=progress"))
        .collect();
    assert!(!lines.is_empty(), "{r:?}");
    assert!(
        lines[0].contains("task=\"replaying covid-countries\"")
            && lines[0].contains("total=6")
            && lines[0].contains("unit=files"),
        "{lines:?}"
    );
    // Again: every file is skipped, with a message that has an apostrophe.
    let r = sb.run(&["replay", "days", "--no-progress", "--progress-secs", "0.01"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("message=progress"), "{r:?}");
    assert!(r.stderr.contains("the store's newest version"), "{r:?}");
    assert!(!r.stderr.contains("\\'"), "{r:?}");
}

//! Notifications and the dead-man ping, end to end: the real binary (`run` on a file:// source
//! and the file store, and `worker`) against loopback receivers that refuse what the real
//! services refuse (tests/common/receivers.rs). Loopback hosts match no auto-detection rule,
//! so the format is forced; the detection itself is unit-tested in src/notify.rs.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::cli::{sigterm, spawn_worker, wait_for, RunResult, Sandbox};
use crate::common::http::{Fault, HttpServer};
use crate::common::receivers::{Kind, Receiver};
use rstest::rstest;
use serde_json::Value;

/// The webhook path: the part of a real webhook URL that is its secret.
const SECRET: &str = "XYZSECRETTOKEN";
const HOOK: &str = "/services/T000/B000/XYZSECRETTOKEN";
const DATASET: &str = "covid-countries";

fn data(n: u64) -> String {
    format!(r#"[{{"country":{{"key":"a"}},"n":{n}}},{{"country":{{"key":"b"}},"n":1}}]"#)
}

/// A sandbox with a file:// source it can rewrite.
struct Rig {
    sb: Sandbox,
}

impl Rig {
    fn new() -> Rig {
        Rig { sb: Sandbox::new() }
    }
    fn source(&self) -> String {
        format!("file://{}", self.sb.path().join("d.json").display())
    }
    fn set(&self, body: &str) {
        std::fs::write(self.sb.path().join("d.json"), body).unwrap();
    }
    fn run(&self, extra: &[&str]) -> RunResult {
        let r = self.sb.sync(&self.source(), extra);
        assert_no_secret(&r.stdout, &r.stderr);
        r
    }
}

fn assert_no_secret(stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the webhook URL's secret is shown:\n{stdout}\n{stderr}"
    );
}

/// The message's human text, wherever the format keeps it.
fn text_of(kind: Kind, v: &Value) -> String {
    let s = match kind {
        Kind::Slack => &v["text"],
        Kind::Discord => &v["content"],
        Kind::Teams => &v["attachments"][0]["content"]["body"][0]["text"],
        _ => &v["text"],
    };
    s.as_str().unwrap_or_default().to_string()
}

#[rstest]
#[case::slack(Kind::Slack, "slack")]
#[case::discord(Kind::Discord, "discord")]
#[case::teams(Kind::Teams, "teams")]
#[case::generic(Kind::Generic, "json")]
fn each_service_hears_of_changes_failures_and_recoveries(#[case] kind: Kind, #[case] format: &str) {
    let hook = Receiver::start(kind);
    let rig = Rig::new();
    let url = hook.url(HOOK);
    let flags = ["--notify-url", url.as_str(), "--notify-format", format];
    let texts = || -> Vec<String> { hook.accepted().iter().map(|v| text_of(kind, v)).collect() };

    // A new version: one message, saying so.
    rig.set(&data(1));
    let r = rig.run(&flags);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    assert_eq!(hook.refused(), vec![], "{r:?}");
    let t = texts();
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(
        t[0].starts_with(&format!("{DATASET}: new version 1 (2 added) sha256 ")),
        "{t:?}"
    );
    assert!(r.stderr.contains("webhook sent"), "{r:?}");

    // Nothing new: silence, unless asked.
    let r = rig.run(&flags);
    assert_eq!((r.code, r.outcome()), (0, "unchanged"), "{r:?}");
    assert_eq!(texts().len(), 1, "an unchanged run tells nobody");
    let mut asked = flags.to_vec();
    asked.push("--notify-unchanged");
    let r = rig.run(&asked);
    assert_eq!(r.code, 0, "{r:?}");
    let t = texts();
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[1], format!("{DATASET}: unchanged (version 1)"));

    // A broken source: a failure, with the error.
    rig.set("this is not json");
    let r = rig.run(&flags);
    assert_eq!((r.code, r.outcome()), (1, "failed"), "{r:?}");
    let t = texts();
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(
        t[2].starts_with(&format!("{DATASET}: run failed: ")),
        "{t:?}"
    );

    // The next good run is a recovery (and here a new version too).
    rig.set(&data(2));
    let r = rig.run(&flags);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let t = texts();
    assert_eq!(t.len(), 4, "{t:?}");
    assert!(
        t[3].starts_with(&format!(
            "{DATASET}: recovered after a failed run; new version 2 (1 changed)"
        )),
        "{t:?}"
    );
    // And the one after that is an ordinary change again.
    rig.set(&data(3));
    let r = rig.run(&flags);
    assert_eq!(r.code, 0, "{r:?}");
    let t = texts();
    assert!(
        t[4].starts_with(&format!("{DATASET}: new version 3")),
        "{t:?}"
    );
    assert_eq!(hook.refused(), vec![], "every message was accepted");
    assert!(hook.paths().iter().all(|p| p == HOOK));

    if kind == Kind::Generic {
        let v = &hook.accepted()[0];
        assert_eq!(v["event"], "changed");
        assert_eq!(v["dataset"], DATASET);
        assert_eq!(v["outcome"], "changed");
        assert_eq!(v["version"], 1);
        assert_eq!(v["added"], 2);
        assert_eq!(v["removed"], 0);
        assert_eq!(v["sha256"].as_str().map(str::len), Some(64));
        assert_eq!(v["error"], Value::Null);
        assert!(v["duration_ms"].is_u64() && v["bytes_in"].as_u64() > Some(0));
        assert!(v["bytes_out"].as_u64() > Some(0));
        let failed = &hook.accepted()[2];
        assert_eq!(failed["event"], "failed");
        assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(hook.accepted()[3]["event"], "recovered");
    }
}

#[test]
fn a_message_the_service_refuses_is_logged_with_its_answer_and_never_fails_the_run() {
    // Discord wants `content`, and the generic shape has none: Discord's refusal is logged
    // (its answer included), the run is fine.
    let discord = Receiver::start(Kind::Discord);
    let rig = Rig::new();
    rig.set(&data(1));
    let url = discord.url(HOOK);
    let r = rig.run(&["--notify-url", &url, "--notify-format", "json"]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    assert_eq!(discord.refused().len(), 1);
    assert!(r.stderr.contains("webhook refused"), "{r:?}");
    assert!(
        r.stderr.contains("50006"),
        "Discord's answer is logged: {r:?}"
    );
}

#[test]
fn several_urls_from_the_environment_are_all_told() {
    let (a, b) = (
        Receiver::start(Kind::Generic),
        Receiver::start(Kind::Generic),
    );
    let rig = Rig::new();
    rig.set(&data(1));
    let mut cmd = rig.sb.cmd(&["run", "--url", &rig.source()]);
    cmd.env(
        "SNAPSYNC_NOTIFY_URL",
        format!("{}, {}", a.url(HOOK), b.url("/other")),
    )
    .env("SNAPSYNC_NOTIFY_FORMAT", "json");
    let r = crate::common::cli::to_result(cmd.output().unwrap());
    assert_no_secret(&r.stdout, &r.stderr);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(a.accepted().len(), 1);
    assert_eq!(b.accepted().len(), 1);
}

#[test]
fn a_refused_url_is_a_usage_error_that_does_not_show_it() {
    let rig = Rig::new();
    rig.set(&data(1));
    for flag in ["--notify-url", "--heartbeat-url"] {
        let plain = format!("http://example.com{HOOK}");
        let r = rig.run(&[flag, &plain]);
        assert_eq!(r.code, 2, "{flag}: {r:?}");
        assert!(r.stderr.contains("example.com"), "{r:?}");
    }
    assert!(!rig.sb.dataset_dir(DATASET).join("latest.json").exists());
}

#[test]
fn hanging_and_failing_receivers_never_fail_or_stall_the_run_past_the_timeout() {
    let hung = [Receiver::start(Kind::Hang), Receiver::start(Kind::Hang)];
    let broken = Receiver::start(Kind::Status(500));
    let good = Receiver::start(Kind::Generic);
    let beat = Receiver::start(Kind::Status(500));
    let rig = Rig::new();
    rig.set(&data(1));
    let urls: Vec<String> = [&hung[0], &hung[1], &broken, &good]
        .iter()
        .map(|r| r.url(HOOK))
        .collect();
    let beat_url = beat.url(&format!("/ping/{SECRET}"));
    let mut args = vec!["--notify-format", "json", "--heartbeat-url", &beat_url];
    for u in &urls {
        args.extend(["--notify-url", u.as_str()]);
    }
    let t = Instant::now();
    let r = rig.run(&args);
    let took = t.elapsed();
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    // Two hung receivers at 10 s each: told at once, so one timeout, not two.
    assert!(
        took < Duration::from_secs(16),
        "took {took:?} (sent one after the other?): {r:?}"
    );
    assert_eq!(good.accepted().len(), 1);
    assert_eq!(broken.received().len(), 1);
    assert!(hung.iter().all(|h| h.received().len() == 1));
    assert!(r.stderr.contains("webhook refused"), "{r:?}");
    assert!(
        r.stderr.contains("webhook failed") && r.stderr.contains("timeout=true"),
        "{r:?}"
    );
    assert!(r.stderr.contains("heartbeat refused"), "{r:?}");
    assert_eq!(beat.paths(), vec![format!("/ping/{SECRET}")]);
}

#[test]
fn the_heartbeat_pings_start_success_and_fail() {
    let beat = Receiver::start(Kind::Heartbeat);
    let rig = Rig::new();
    let ping = beat.url("/ping/UUID");
    let with_start = ["--heartbeat-url", ping.as_str(), "--heartbeat-start"];

    rig.set(&data(1));
    let r = rig.run(&with_start);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(beat.paths(), ["/ping/UUID/start", "/ping/UUID"]);
    assert!(beat.received().iter().all(|r| r.method == "GET"));

    // Unchanged is a success too; without --heartbeat-start, no start ping.
    let r = rig.run(&["--heartbeat-url", &ping]);
    assert_eq!((r.code, r.outcome()), (0, "unchanged"), "{r:?}");
    assert_eq!(beat.paths()[2..], ["/ping/UUID"]);

    rig.set("this is not json");
    let r = rig.run(&with_start);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(beat.paths()[3..], ["/ping/UUID/start", "/ping/UUID/fail"]);

    // Another suffix from the environment; "" pings nothing on failure.
    let mut cmd = rig.sb.cmd(&["run", "--url", &rig.source()]);
    cmd.env("SNAPSYNC_HEARTBEAT_URL", &ping)
        .env("SNAPSYNC_HEARTBEAT_FAIL_SUFFIX", "/failed");
    assert_eq!(cmd.output().unwrap().status.code(), Some(1));
    assert_eq!(beat.paths()[5..], ["/ping/UUID/failed"]);
    let r = rig.run(&["--heartbeat-url", &ping, "--heartbeat-fail-suffix", ""]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(beat.paths().len(), 6, "{:?}", beat.paths());

    // A run that cannot even start (its store is not a directory) is a failure too.
    rig.set(&data(2));
    let r = rig.run(&[
        "--heartbeat-url",
        &ping,
        "--store",
        "file:///dev/null/store",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(beat.paths()[6..], ["/ping/UUID/fail"], "{r:?}");
}

fn stop(child: Child) -> (i32, String, String) {
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_worker_tells_of_a_changed_run_and_pings_after_it() {
    let hook = Receiver::start(Kind::Slack);
    let beat = Receiver::start(Kind::Heartbeat);
    let rig = Rig::new();
    rig.set(&data(1));
    let (url, ping) = (hook.url(HOOK), beat.url("/ping/W"));
    let child = spawn_worker(
        &rig.sb,
        &rig.source(),
        &[
            "--notify-url",
            &url,
            "--notify-format",
            "slack",
            "--heartbeat-url",
            &ping,
        ],
    );
    wait_for("the message", Duration::from_secs(20), || {
        !hook.received().is_empty() && !beat.received().is_empty()
    });
    let (code, stdout, stderr) = stop(child);
    assert_eq!(code, 0, "{stderr}");
    assert_no_secret(&stdout, &stderr);
    assert_eq!(hook.refused(), vec![]);
    let t: Vec<String> = hook
        .accepted()
        .iter()
        .map(|v| text_of(Kind::Slack, v))
        .collect();
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(
        t[0].starts_with(&format!("{DATASET}: new version 1 ")),
        "{t:?}"
    );
    assert_eq!(beat.paths(), ["/ping/W"]);
}

#[test]
fn a_worker_run_abandoned_by_sigterm_tells_nobody() {
    let server = HttpServer::start();
    server.set("/d.json", data(1));
    server.push_faults(
        "/d.json",
        [Fault::StallBody {
            after: 5,
            stall: Duration::from_secs(60),
        }],
    );
    let hook = Receiver::start(Kind::Generic);
    let beat = Receiver::start(Kind::Heartbeat);
    let sb = Sandbox::new();
    let (url, ping) = (hook.url(HOOK), beat.url("/ping/A"));
    let child = spawn_worker(
        &sb,
        &server.url("/d.json"),
        &[
            "--timeout",
            "120",
            "--notify-url",
            &url,
            "--notify-format",
            "json",
            "--heartbeat-url",
            &ping,
        ],
    );
    wait_for("the fetch to start", Duration::from_secs(20), || {
        server.requests("/d.json") >= 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, stderr) = stop(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("outcome=abandoned"), "{stderr}");
    assert_eq!(hook.received().len(), 0, "{stderr}");
    assert_eq!(beat.received().len(), 0, "{stderr}");
}

#[test]
fn a_run_that_cannot_start_tells_each_dataset_that_it_failed() {
    let hook = Receiver::start(Kind::Generic);
    let rig = Rig::new();
    rig.set(&data(1));
    let url = hook.url(HOOK);
    let r = rig.run(&[
        "--notify-url",
        &url,
        "--notify-format",
        "json",
        "--store",
        "file:///dev/null/store",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    let told = hook.accepted();
    assert_eq!(told.len(), 1, "{r:?}");
    assert_eq!(told[0]["event"], "failed");
    assert_eq!(told[0]["dataset"], DATASET);
    assert_eq!(told[0]["outcome"], "failed");
    let error = told[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("/dev/null/store"), "{error}");
    assert!(
        text_of(Kind::Generic, &told[0]).starts_with(&format!("{DATASET}: run failed: ")),
        "{told:?}"
    );
}

#[test]
fn a_failure_streak_is_counted_across_runs_and_a_worker_restart() {
    let hook = Receiver::start(Kind::Slack);
    let rig = Rig::new();
    let url = hook.url(HOOK);
    let flags = ["--notify-url", url.as_str(), "--notify-format", "slack"];
    let texts = || -> Vec<String> {
        hook.accepted()
            .iter()
            .map(|v| text_of(Kind::Slack, v))
            .collect()
    };
    rig.set(&data(1));
    assert_eq!(rig.run(&[]).outcome(), "changed");
    rig.set("this is not json");
    for _ in 0..2 {
        assert_eq!(rig.run(&flags).outcome(), "failed");
    }
    assert_eq!(texts().len(), 2, "{:?}", texts());

    // A worker started now (as after a dyno restart) knows of both from the database.
    rig.set(&data(2));
    let mut args = flags.to_vec();
    args.extend(["--schedule", "* * * * * *"]);
    let child = spawn_worker(&rig.sb, &rig.source(), &args);
    wait_for("the recovery", Duration::from_secs(20), || {
        hook.received().len() >= 3
    });
    let (code, stdout, stderr) = stop(child);
    assert_eq!(code, 0, "{stderr}");
    assert_no_secret(&stdout, &stderr);
    let t = texts();
    assert!(
        t[2].starts_with(&format!(
            "{DATASET}: recovered after 2 failed runs; new version 2 (1 changed)"
        )),
        "{t:?}"
    );

    // And a one-shot run counts its streak the same way.
    rig.set("this is not json");
    for _ in 0..3 {
        assert_eq!(rig.run(&flags).outcome(), "failed");
    }
    rig.set(&data(3));
    assert_eq!(rig.run(&flags).outcome(), "changed");
    let t = texts();
    assert!(
        t.last().unwrap().starts_with(&format!(
            "{DATASET}: recovered after 3 failed runs; new version 3"
        )),
        "{t:?}"
    );
}

//! Tests of what to say and to whom: detection, events, wording, payload limits, options.

use super::*;
use crate::cli::NotifyArgs;
use rstest::rstest;

fn report(outcome: Outcome) -> Report {
    Report {
        dataset: "covid".into(),
        outcome,
        version: Some(42),
        sha256: Some("ab12cd34ef56".repeat(5) + "abcd"),
        added: (outcome == Outcome::Changed).then_some(3),
        removed: (outcome == Outcome::Changed).then_some(0),
        moved: (outcome == Outcome::Changed).then_some(0),
        changed: (outcome == Outcome::Changed).then_some(210),
        bytes_in: 1000,
        bytes_out: 200,
        duration_ms: 1234,
        unmatched: None,
        error: (outcome == Outcome::Failed).then(|| "HTTP 500 from <source>".into()),
        dry_run: false,
        snapshot_bytes: None,
        delta_bytes: None,
        retryable: false,
        document: None,
    }
}

fn args(urls: &[&str]) -> NotifyArgs {
    NotifyArgs {
        notify_urls: urls.iter().map(|s| s.to_string()).collect(),
        notify_format: "auto".into(),
        notify_unchanged: false,
        heartbeat_url: None,
        heartbeat_fail_suffix: "/fail".into(),
        heartbeat_start: false,
    }
}

#[rstest]
#[case::slack("https://hooks.slack.com/services/T0/B0/XYZ", Format::Slack)]
#[case::discord("https://discord.com/api/webhooks/1/tok", Format::Discord)]
#[case::discordapp("https://discordapp.com/api/webhooks/1/tok", Format::Discord)]
#[case::discord_ptb("https://ptb.discord.com/api/webhooks/1/tok", Format::Discord)]
#[case::discord_not_a_webhook("https://discord.com/channels/1/2", Format::Json)]
#[case::teams_connector(
    "https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d",
    Format::Teams
)]
#[case::teams_logic_apps(
    "https://prod-01.westus.logic.azure.com:443/workflows/x/triggers/manual/paths/invoke?sig=s",
    Format::Teams
)]
#[case::teams_power_platform(
    "https://default1.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/x/triggers/manual/paths/invoke?sig=s",
    Format::Teams
)]
#[case::lookalike_host("https://hooks.slack.com.evil.example/services/x", Format::Json)]
#[case::suffix_without_dot("https://notwebhook.office.com.example/x", Format::Json)]
#[case::generic("https://example.com/hook", Format::Json)]
#[case::loopback("http://127.0.0.1:9/hooks.slack.com", Format::Json)]
fn the_payload_follows_the_url(#[case] url: &str, #[case] want: Format) {
    assert_eq!(detect(&url::Url::parse(url).unwrap()), want);
}

#[test]
fn a_forced_format_wins_and_urls_are_checked_without_showing_them() {
    let mut a = args(&["https://hooks.slack.com/services/T0/B0/SECRET", " "]);
    let o = NotifyOptions::from_args(&a, false).unwrap();
    assert_eq!(o.targets.len(), 1, "blank entries are skipped");
    assert_eq!(o.targets[0].format, Format::Slack);
    assert!(!format!("{o:?}").contains("SECRET"), "{o:?}");
    a.notify_format = "discord".into();
    let o = NotifyOptions::from_args(&a, false).unwrap();
    assert_eq!(o.targets[0].format, Format::Discord);
    a.notify_format = "xml".into();
    assert!(NotifyOptions::from_args(&a, false).is_err());
    let e = NotifyOptions::from_args(&args(&["http://example.com/SECRET"]), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("example.com") && !e.contains("SECRET"), "{e}");
    assert!(NotifyOptions::from_args(&args(&["http://example.com/x"]), true).is_ok());
    assert!(NotifyOptions::from_args(&args(&["http://127.0.0.1:1/x"]), false).is_ok());
}

#[test]
fn heartbeat_suffixes_go_on_the_path_and_keep_the_query() {
    let mut a = args(&[]);
    a.heartbeat_url = Some("https://hc-ping.com/uuid/".into());
    a.heartbeat_start = true;
    let h = NotifyOptions::from_args(&a, false)
        .unwrap()
        .heartbeat
        .unwrap();
    assert_eq!(h.success.as_str(), "https://hc-ping.com/uuid/");
    assert_eq!(h.fail.unwrap().as_str(), "https://hc-ping.com/uuid/fail");
    assert_eq!(h.start.unwrap().as_str(), "https://hc-ping.com/uuid/start");
    a.heartbeat_url = Some("https://kuma.example/api/push/tok?status=up".into());
    a.heartbeat_fail_suffix = String::new();
    a.heartbeat_start = false;
    let h = NotifyOptions::from_args(&a, false)
        .unwrap()
        .heartbeat
        .unwrap();
    assert_eq!(h.fail, None, "an empty suffix: no ping on failure");
    a.heartbeat_fail_suffix = "/fail".into();
    let h = NotifyOptions::from_args(&a, false)
        .unwrap()
        .heartbeat
        .unwrap();
    assert_eq!(
        h.fail.unwrap().as_str(),
        "https://kuma.example/api/push/tok/fail?status=up"
    );
}

#[rstest]
#[case::changed(Outcome::Changed, Before::Succeeded, false, Some(Event::Changed))]
#[case::unchanged_not_asked(Outcome::Unchanged, Before::Succeeded, false, None)]
#[case::unchanged_asked(Outcome::Unchanged, Before::Succeeded, true, Some(Event::Unchanged))]
#[case::not_modified_asked(Outcome::NotModified, Before::Succeeded, true, Some(Event::Unchanged))]
#[case::failed(Outcome::Failed, Before::Succeeded, false, Some(Event::Failed))]
#[case::failed_again(Outcome::Failed, Before::Failed { runs: 2 }, false, Some(Event::Failed))]
#[case::recovered_unchanged(Outcome::Unchanged, Before::Failed { runs: 1 }, false, Some(Event::Recovered))]
#[case::recovered_changed(Outcome::Changed, Before::Failed { runs: 1 }, false, Some(Event::Recovered))]
#[case::abandoned(Outcome::Abandoned, Before::Failed { runs: 1 }, true, None)]
fn what_is_worth_telling(
    #[case] outcome: Outcome,
    #[case] before: Before,
    #[case] unchanged: bool,
    #[case] want: Option<Event>,
) {
    assert_eq!(event(&report(outcome), before, unchanged), want);
}

#[test]
fn messages_read_like_sentences() {
    let changed = report(Outcome::Changed);
    fn m(event: Event, report: &Report, before: Before) -> String {
        text(&Message {
            event,
            report,
            before,
        })
    }
    assert_eq!(
        m(Event::Changed, &changed, Before::Succeeded),
        "covid: new version 42 (3 added, 210 changed) sha256 ab12cd34ef56…"
    );
    assert_eq!(
        m(Event::Failed, &report(Outcome::Failed), Before::Succeeded),
        "covid: run failed: HTTP 500 from <source>"
    );
    assert_eq!(
        m(
            Event::Recovered,
            &report(Outcome::Unchanged),
            Before::Failed { runs: 3 }
        ),
        "covid: recovered after 3 failed runs; unchanged (version 42)"
    );
    assert_eq!(
        m(Event::Recovered, &changed, Before::Failed { runs: 1 }),
        "covid: recovered after a failed run; new version 42 (3 added, 210 changed) sha256 ab12cd34ef56…"
    );
}

#[test]
fn payloads_keep_each_services_rules() {
    let mut failed = report(Outcome::Failed);
    failed.error = Some("x".repeat(10_000));
    let m = Message {
        event: Event::Failed,
        report: &failed,
        before: Before::Succeeded,
    };
    let slack = payload(Format::Slack, &m);
    assert!(!slack["text"].as_str().unwrap().is_empty());
    for block in slack["blocks"].as_array().unwrap() {
        assert!(block["type"].is_string());
    }
    let section = slack["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(section.chars().count() <= SLACK_SECTION_MAX);
    let discord = payload(Format::Discord, &m);
    assert!(discord["content"].as_str().unwrap().chars().count() <= DISCORD_MAX);
    let teams = payload(Format::Teams, &m);
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["version"], "1.4");
    assert!(!card["content"]["body"].as_array().unwrap().is_empty());
    let generic = payload(Format::Json, &m);
    for field in [
        "event",
        "text",
        "dataset",
        "outcome",
        "version",
        "sha256",
        "added",
        "removed",
        "moved",
        "changed",
        "error",
        "duration_ms",
        "bytes_in",
        "bytes_out",
    ] {
        assert!(generic.get(field).is_some(), "{field}: {generic}");
    }
    assert_eq!(generic["event"], "failed");
    let changed = report(Outcome::Changed);
    let m = Message {
        event: Event::Changed,
        report: &changed,
        before: Before::Succeeded,
    };
    assert!(payload(Format::Slack, &m)["text"]
        .as_str()
        .unwrap()
        .starts_with("covid: new version 42"),);
}

#[test]
fn slack_markup_in_an_error_is_escaped() {
    let r = report(Outcome::Failed);
    let m = Message {
        event: Event::Failed,
        report: &r,
        before: Before::Succeeded,
    };
    assert_eq!(
        payload(Format::Slack, &m)["text"],
        "covid: run failed: HTTP 500 from &lt;source&gt;"
    );
}

#[test]
fn a_refusal_quoting_the_url_is_scrubbed() {
    let url = url::Url::parse("https://example.com/hooks/SECRET?sig=KEY").unwrap();
    let s = scrub("Cannot POST /hooks/SECRET (sig=KEY)", &url);
    assert!(!s.contains("SECRET") && !s.contains("KEY"), "{s}");
}

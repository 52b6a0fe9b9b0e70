//! Telling people: webhook messages when a dataset changed, failed or recovered, and a
//! dead-man ping (healthchecks.io, Cronitor, Uptime Kuma) after each run.
//!
//! What to say is pure ([`event`], [`text`], [`payload`]); sending is the edge ([`Notifier`]).
//! The payload's shape follows the URL ([`detect`]): Slack answers `400 no_text` to anything
//! without `text`, Discord wants `content`, Teams Workflows an Adaptive Card attachment, and
//! anything else gets the documented generic JSON. `--notify-format` forces one.
//!
//! The rule a newcomer gets wrong: a webhook URL *is* its secret (Slack, Discord and Teams put
//! the token in the path, Power Automate in `sig=`). It appears in no log line, no error and no
//! `Debug` output — only its host does. And telling is best effort: a receiver that refuses,
//! hangs or is down is logged and never fails the run (short timeouts, no redirects).

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use tracing::{info, warn};

pub use crate::config::notify::{detect, Format, HeartbeatOptions, NotifyOptions, Target};
use crate::sync::{Outcome, Report};

/// How long one webhook may take (connect to answer).
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one heartbeat ping may take.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// Discord refuses `content` longer than this (in characters).
const DISCORD_MAX: usize = 2000;
/// Slack refuses a section block whose text is longer than this.
const SLACK_SECTION_MAX: usize = 3000;
/// An error quoted in a message is cut here: a message is a pointer to the logs, not the logs.
const ERROR_MAX: usize = 1500;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Changed,
    Unchanged,
    Failed,
    /// The first success after at least one failed run.
    Recovered,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Changed => "changed",
            Event::Unchanged => "unchanged",
            Event::Failed => "failed",
            Event::Recovered => "recovered",
        }
    }
}

/// How the runs of a dataset before this one went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// The last run succeeded, or there was none.
    Succeeded,
    /// The last `runs` runs (at least one) failed.
    Failed { runs: u32 },
}

impl Before {
    /// After `failed` runs in a row (0: after a success).
    pub fn after(failed: u32) -> Before {
        match failed {
            0 => Before::Succeeded,
            runs => Before::Failed { runs },
        }
    }
}

/// The event a finished run is worth, if any: failures and changes always, a recovery on the
/// first success after a failure, an unchanged run only when asked; an abandoned run (a
/// shutdown before the commit point) never.
pub fn event(report: &Report, before: Before, unchanged: bool) -> Option<Event> {
    match report.outcome {
        Outcome::Abandoned => None,
        Outcome::Failed => Some(Event::Failed),
        _ if matches!(before, Before::Failed { .. }) => Some(Event::Recovered),
        Outcome::Changed => Some(Event::Changed),
        Outcome::Unchanged | Outcome::NotModified => unchanged.then_some(Event::Unchanged),
    }
}

/// One message: the event, the run it is about, and what came before.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub event: Event,
    pub report: &'a Report,
    pub before: Before,
}

/// `covid: new version 42 (3 added, 210 changed) sha256 ab12cd34ef56…`, `covid: run failed:
/// <error>`, `covid: recovered after 3 failed runs; new version 43 (…)`.
pub fn text(m: &Message) -> String {
    let r = m.report;
    let version = |r: &Report| {
        let counts: Vec<String> = [
            (r.added, "added"),
            (r.removed, "removed"),
            (r.moved, "moved"),
            (r.changed, "changed"),
        ]
        .into_iter()
        .filter_map(|(n, what)| n.filter(|&n| n > 0).map(|n| format!("{n} {what}")))
        .collect();
        let mut s = format!("new version {}", r.version.unwrap_or_default());
        if !counts.is_empty() {
            s.push_str(&format!(" ({})", counts.join(", ")));
        }
        if let Some(sha) = &r.sha256 {
            s.push_str(&format!(" sha256 {}…", &sha[..sha.len().min(12)]));
        }
        s
    };
    let same = |r: &Report| match (r.outcome, r.version) {
        (Outcome::NotModified, Some(v)) => format!("not modified at the source (version {v})"),
        (_, Some(v)) => format!("unchanged (version {v})"),
        (Outcome::NotModified, None) => "not modified at the source".to_string(),
        (_, None) => "unchanged".to_string(),
    };
    let body = match m.event {
        Event::Changed => version(r),
        Event::Unchanged => same(r),
        Event::Failed => format!(
            "run failed: {}",
            cut(r.error.as_deref().unwrap_or("unknown error"), ERROR_MAX)
        ),
        Event::Recovered => {
            let after = match m.before {
                Before::Failed { runs: 1 } => "a failed run".to_string(),
                Before::Failed { runs } => format!("{runs} failed runs"),
                Before::Succeeded => "a failure".to_string(),
            };
            let now = if r.outcome == Outcome::Changed {
                version(r)
            } else {
                same(r)
            };
            format!("recovered after {after}; {now}")
        }
    };
    format!("{}: {body}", r.dataset)
}

/// The request body for `format`.
pub fn payload(format: Format, m: &Message) -> Value {
    let line = text(m);
    let r = m.report;
    match format {
        Format::Slack => {
            // Slack's mrkdwn treats `&`, `<` and `>` as markup (`<url|label>`, `<!channel>`).
            let escaped = slack_escape(&line);
            let mut context = vec![format!("{} ms", r.duration_ms)];
            if r.bytes_in > 0 {
                context.push(format!("{} bytes in", r.bytes_in));
            }
            if r.bytes_out > 0 {
                context.push(format!("{} bytes out", r.bytes_out));
            }
            json!({
                "text": escaped,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": cut(&escaped, SLACK_SECTION_MAX)}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("snapsync · {} · {}", m.event.as_str(), context.join(" · "))}]},
                ],
            })
        }
        Format::Discord => json!({
            "content": cut(&line, DISCORD_MAX),
            // An error text quoting `@everyone` pings nobody.
            "allowed_mentions": {"parse": []},
        }),
        Format::Teams => {
            let color = match m.event {
                Event::Failed => "Attention",
                Event::Recovered => "Good",
                Event::Changed | Event::Unchanged => "Default",
            };
            let mut facts = vec![json!({"title": "Event", "value": m.event.as_str()})];
            if let Some(v) = r.version {
                facts.push(json!({"title": "Version", "value": v.to_string()}));
            }
            if let Some(sha) = &r.sha256 {
                facts.push(json!({"title": "sha256", "value": sha}));
            }
            facts.push(json!({"title": "Duration", "value": format!("{} ms", r.duration_ms)}));
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": line, "wrap": true, "weight": "Bolder", "color": color},
                            {"type": "FactSet", "facts": facts},
                        ],
                    },
                }],
            })
        }
        Format::Json => json!({
            "event": m.event.as_str(),
            "text": line,
            "dataset": r.dataset,
            "outcome": r.outcome.as_str(),
            "version": r.version,
            "sha256": r.sha256,
            "added": r.added,
            "removed": r.removed,
            "moved": r.moved,
            "changed": r.changed,
            "error": r.error,
            "duration_ms": r.duration_ms,
            "bytes_in": r.bytes_in,
            "bytes_out": r.bytes_out,
        }),
    }
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, the last one `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Sends messages and pings; built once per process from [`NotifyOptions`].
pub struct Notifier {
    opts: NotifyOptions,
    webhooks: Option<reqwest::Client>,
    pings: Option<reqwest::Client>,
}

impl Notifier {
    pub fn new(opts: NotifyOptions) -> Self {
        crate::tls::init();
        let client = |timeout| {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| warn!(error = %e.without_url(), "cannot build the notification client; notifying nobody"))
                .ok()
        };
        Notifier {
            webhooks: (!opts.targets.is_empty())
                .then(|| client(NOTIFY_TIMEOUT))
                .flatten(),
            pings: opts
                .heartbeat
                .is_some()
                .then(|| client(HEARTBEAT_TIMEOUT))
                .flatten(),
            opts,
        }
    }

    /// What came before a run of `dataset` that is about to start, by the `runs` table (so a
    /// restart keeps a failure streak): read before the run records itself. Nothing is read
    /// when nobody listens; when the database cannot tell, a warning, and a recovery goes
    /// untold.
    pub async fn before_run(&self, db: &crate::db::Db, store: &str, dataset: &str) -> Before {
        if self.webhooks.is_none() {
            return Before::Succeeded;
        }
        match db.failures_in_a_row(store, dataset).await {
            Ok(failed) => Before::after(failed),
            Err(e) => {
                warn!(dataset, error = %e, "cannot read the last runs; a recovery will not be told");
                Before::Succeeded
            }
        }
    }

    /// Tells every target about each of `reports` (`before[i]` came before `reports[i]`; a
    /// success when missing) and pings once: success if none failed.
    pub async fn tell(&self, reports: &[Report], before: &[Before]) {
        let each = reports
            .iter()
            .enumerate()
            .map(|(i, r)| self.report(r, before.get(i).copied().unwrap_or(Before::Succeeded)));
        let ok = reports.iter().all(|r| r.outcome.succeeded());
        tokio::join!(join_all(each), self.finished(ok));
    }

    /// Tells every target about `report`, when [`event`] says it is worth it; all at once,
    /// each within [`NOTIFY_TIMEOUT`]. Returns the event sent.
    pub async fn report(&self, report: &Report, before: Before) -> Option<Event> {
        let client = self.webhooks.as_ref()?;
        let event = event(report, before, self.opts.unchanged)?;
        let m = Message {
            event,
            report,
            before,
        };
        let sends = self.opts.targets.iter().map(|t| {
            let body = payload(t.format, &m).to_string();
            post(client, t, event, body)
        });
        join_all(sends).await;
        Some(event)
    }

    /// The start ping (`--heartbeat-start`), before a run.
    pub async fn started(&self) {
        if let (Some(client), Some(url)) = (
            &self.pings,
            self.opts.heartbeat.as_ref().and_then(|h| h.start.as_ref()),
        ) {
            ping(client, url, "start").await;
        }
    }

    /// The success or failure ping, after a run (or after all of `run`'s datasets).
    pub async fn finished(&self, ok: bool) {
        let (Some(client), Some(h)) = (&self.pings, &self.opts.heartbeat) else {
            return;
        };
        match (ok, &h.fail) {
            (true, _) => ping(client, &h.success, "success").await,
            (false, Some(fail)) => ping(client, fail, "fail").await,
            (false, None) => {}
        }
    }
}

async fn post(client: &reqwest::Client, target: &Target, event: Event, body: String) {
    let host = target.host();
    let format = target.format.as_str();
    let request = client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    match request.send().await {
        Ok(r) if r.status().is_success() => {
            info!(
                host,
                format,
                event = event.as_str(),
                status = r.status().as_u16(),
                "webhook sent"
            )
        }
        Ok(r) => {
            let status = r.status().as_u16();
            // Slack and Discord say why (`no_text`, `invalid_blocks`); a generic server's
            // error page may quote the path, which is the secret.
            let answer = r.text().await.unwrap_or_default();
            let answer = cut(&scrub(&answer, &target.url), 200);
            warn!(host, format, status, answer, "webhook refused")
        }
        Err(e) => {
            warn!(host, format, timeout = e.is_timeout(), error = %e.without_url(), "webhook failed")
        }
    }
}

async fn ping(client: &reqwest::Client, url: &url::Url, what: &'static str) {
    let host = url.host_str().unwrap_or_default();
    match client.get(url.clone()).send().await {
        Ok(r) if r.status().is_success() => {
            info!(
                host,
                ping = what,
                status = r.status().as_u16(),
                "heartbeat sent"
            )
        }
        Ok(r) => warn!(
            host,
            ping = what,
            status = r.status().as_u16(),
            "heartbeat refused"
        ),
        Err(e) => {
            warn!(host, ping = what, timeout = e.is_timeout(), error = %e.without_url(), "heartbeat failed")
        }
    }
}

/// `text` with the URL's path and query (the secret parts) taken out.
fn scrub(text: &str, url: &url::Url) -> String {
    let mut out = text.replace(url.as_str(), "REDACTED");
    for secret in [url.path(), url.query().unwrap_or_default()] {
        if secret.len() > 1 {
            out = out.replace(secret, "REDACTED");
        }
    }
    out
}

#[cfg(test)]
mod tests;

//! The long-running worker (`snapsync worker`, a Heroku dyno): schedules, heartbeats, retries,
//! webhooks and a clean stop.
//!
//! The decision that matters is what happens at start. Heroku restarts a dyno at least daily and
//! wipes its disk, so "when did this dataset last run?" comes from SQLite when it survived, else
//! from the store (`latest.json`'s `created_at`). If a scheduled slot has passed since then, the
//! dataset runs at once; otherwise it waits for its next slot. So a restart never skips a period
//! and never runs one twice ([`first_due`]).
//!
//! Time and shutdown come in as arguments ([`run`] takes a [`Clock`] and a cancellation token):
//! the schedule is tested with a fake clock, and only `main` installs signal handlers.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use serde_json::json;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::keys::{self, DatasetKeys};
use crate::manifest::Entry;
use crate::sync::{self, DatasetConfig, Deps, Outcome, Report, RunOptions};

/// When a dataset runs: `daily` (06:00 UTC), `daily HH:MM` (UTC), or a cron expression
/// (5 fields, or 6 with seconds first), evaluated in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    cron: Cron,
    text: String,
}

pub const DEFAULT_SCHEDULE: &str = "daily 06:00";

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let expr = if t == "daily" {
            "0 6 * * *".to_string()
        } else if let Some(hm) = t.strip_prefix("daily ") {
            let (h, m) = hm
                .trim()
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
                .filter(|&(h, m)| h < 24 && m < 60)
                .ok_or_else(|| format!("schedule {text:?}: expected \"daily HH:MM\" (UTC)"))?;
            format!("{m} {h} * * *")
        } else {
            t.to_string()
        };
        let cron = Cron::from_str(&expr).map_err(|e| format!("schedule {text:?}: {e}"))?;
        // A pattern that never matches (e.g. 30 February) would park the worker forever.
        Schedule {
            cron: cron.clone(),
            text: t.to_string(),
        }
        .next_after(OffsetDateTime::UNIX_EPOCH)
        .ok_or_else(|| format!("schedule {text:?} never matches"))?;
        Ok(Schedule {
            cron,
            text: t.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let next = self.cron.find_next_occurrence(&to_chrono(t), false).ok()?;
        from_chrono(next)
    }

    /// The last slot at or before `t`.
    pub fn last_at_or_before(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let prev = self
            .cron
            .find_previous_occurrence(&to_chrono(t), true)
            .ok()?;
        from_chrono(prev)
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::parse(DEFAULT_SCHEDULE).expect("the default schedule parses")
    }
}

fn to_chrono(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> Option<OffsetDateTime> {
    let nanos = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// When a dataset first runs after the worker starts: at once if a slot has passed since its
/// last successful run (or it never ran), else at its next slot.
pub fn first_due(
    schedule: &Schedule,
    last_success: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> OffsetDateTime {
    let next = schedule.next_after(now).unwrap_or(now);
    match (schedule.last_at_or_before(now), last_success) {
        (Some(slot), Some(last)) if last >= slot => next,
        (None, Some(_)) => next,
        _ => now,
    }
}

/// After a failed run: retry after `base * 2^(failures-1)` (capped at an hour), as long as that
/// is before the next slot and within `max_retries`; else wait for the next slot.
pub fn after_failure(
    schedule: &Schedule,
    failures: u32,
    opts: &WorkerOptions,
    now: OffsetDateTime,
) -> OffsetDateTime {
    let next_slot = schedule.next_after(now).unwrap_or(now);
    if failures > opts.max_retries {
        return next_slot;
    }
    let backoff = opts
        .retry_base
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(Duration::from_secs(3600));
    (now + backoff).min(next_slot)
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub heartbeat: Duration,
    pub retry_base: Duration,
    pub max_retries: u32,
    /// JSON POST on change and on failure; never fails a run.
    pub notify_url: Option<String>,
    /// How long an in-flight run may take to finish after a shutdown signal (Heroku kills 30 s
    /// after SIGTERM).
    pub grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            heartbeat: Duration::from_secs(60),
            retry_base: Duration::from_secs(60),
            max_retries: 5,
            notify_url: None,
            grace: Duration::from_secs(20),
        }
    }
}

struct Slot {
    ds: DatasetConfig,
    schedule: Schedule,
    due: OffsetDateTime,
    failures: u32,
}

/// Runs until `shutdown` is cancelled. Never returns early because a run failed.
pub async fn run(
    deps: Deps,
    datasets: Vec<(DatasetConfig, Schedule)>,
    opts: WorkerOptions,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let now = clock.now();
    let mut slots = Vec::new();
    for (ds, schedule) in datasets {
        let last = last_success(&deps, &ds).await;
        let due = first_due(&schedule, last, now);
        info!(
            dataset = %ds.name,
            schedule = schedule.as_str(),
            last_success = last.map(keys::rfc3339).as_deref(),
            next_run = %keys::rfc3339(due),
            "scheduled"
        );
        slots.push(Slot {
            ds,
            schedule,
            due,
            failures: 0,
        });
    }
    if slots.is_empty() {
        warn!("no datasets to run");
        shutdown.cancelled().await;
        return;
    }
    let notifier = Notifier::new(opts.notify_url.clone());
    let mut heartbeat = tokio::time::interval(opts.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        let i = (0..slots.len())
            .min_by_key(|&i| slots[i].due)
            .expect("non-empty");
        let wait = (slots[i].due - clock.now()).max(time::Duration::ZERO);
        let wait = Duration::try_from(wait).unwrap_or_default();
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = heartbeat.tick() => {
                let next: Vec<String> = slots.iter().map(|s| format!("{}={}", s.ds.name, keys::rfc3339(s.due))).collect();
                info!(next_runs = %next.join(","), "worker alive");
                continue;
            }
            () = tokio::time::sleep(wait) => {}
        }
        let slot = &mut slots[i];
        let run_opts = RunOptions {
            cancel: Some(shutdown.clone()),
            ..RunOptions::default()
        };
        let run = sync::run_dataset(&deps, &slot.ds, run_opts);
        tokio::pin!(run);
        let report = tokio::select! {
            r = &mut run => Some(r),
            () = shutdown.cancelled() => {
                // The run sees the same token: it abandons before its commit point, or finishes
                // the publish it has committed to. Give it the grace period, not more.
                tokio::time::timeout(opts.grace, &mut run).await.ok()
            }
        };
        let Some(report) = report else {
            warn!(dataset = %slot.ds.name, "shutdown: the run did not finish within the grace period; stopping anyway (the next run repairs what it left)");
            break;
        };
        let now = clock.now();
        if report.outcome == Outcome::Failed {
            slot.failures += 1;
            slot.due = after_failure(&slot.schedule, slot.failures, &opts, now);
            if slot.failures > opts.max_retries
                || slot.due == slot.schedule.next_after(now).unwrap_or(now)
            {
                slot.failures = 0;
            }
        } else {
            slot.failures = 0;
            slot.due = slot.schedule.next_after(now).unwrap_or(now);
        }
        info!(dataset = %slot.ds.name, next_run = %keys::rfc3339(slot.due), "next run");
        if shutdown.is_cancelled() {
            break;
        }
        if matches!(report.outcome, Outcome::Changed | Outcome::Failed) {
            notifier.send(&report).await;
        }
    }
    info!("worker stopped");
}

/// The last successful run: from SQLite, else the store's newest version.
async fn last_success(deps: &Deps, ds: &DatasetConfig) -> Option<OffsetDateTime> {
    if let Ok(state) = deps.db.dataset(deps.store.url(), &ds.name).await {
        if let Ok((_, Some(ok))) = deps.db.last_runs(state.id).await {
            return keys::parse_rfc3339(&ok.started_at);
        }
    }
    let keys = DatasetKeys::new(deps.store.prefix(), &ds.name);
    match deps.store.head(&keys.latest()).await {
        Ok(Some(meta)) => {
            Entry::from_metadata(&meta.metadata).and_then(|e| keys::parse_rfc3339(&e.created_at))
        }
        Ok(None) => None,
        Err(e) => {
            warn!(dataset = %ds.name, error = %e, "cannot read the store's latest version; running at once");
            None
        }
    }
}

/// The webhook: a JSON POST with a timeout; failures are logged, never propagated.
struct Notifier {
    url: Option<String>,
    client: Option<reqwest::Client>,
}

impl Notifier {
    fn new(url: Option<String>) -> Self {
        let client = url.as_ref().and_then(|_| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()
        });
        Notifier { url, client }
    }

    async fn send(&self, report: &Report) {
        let (Some(url), Some(client)) = (&self.url, &self.client) else {
            return;
        };
        let body = json!({
            "dataset": report.dataset,
            "outcome": report.outcome.as_str(),
            "version": report.version,
            "sha256": report.sha256,
            "added": report.added,
            "removed": report.removed,
            "moved": report.moved,
            "changed": report.changed,
            "error": report.error,
        });
        // Webhook URLs carry their secret in the path (Slack, Discord): log the host only.
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                info!(host, status = r.status().as_u16(), "webhook sent")
            }
            Ok(r) => warn!(host, status = r.status().as_u16(), "webhook refused"),
            Err(e) => warn!(host, timeout = e.is_timeout(), "webhook failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use time::macros::datetime;

    fn t(s: &str) -> OffsetDateTime {
        keys::parse_rfc3339(s).unwrap()
    }

    #[rstest]
    #[case::before_todays_slot("daily 06:00", "2026-11-24T05:59:59Z", "2026-11-24T06:00:00Z")]
    #[case::at_the_slot("daily 06:00", "2026-11-24T06:00:00Z", "2026-11-25T06:00:00Z")]
    #[case::after_todays_slot("daily", "2026-11-24T09:00:00Z", "2026-11-25T06:00:00Z")]
    #[case::month_end("daily 06:00", "2026-11-30T23:00:00Z", "2026-12-01T06:00:00Z")]
    #[case::year_end("daily 23:30", "2026-12-31T23:45:00Z", "2027-01-01T23:30:00Z")]
    #[case::leap_day_cron("0 6 29 2 *", "2027-03-01T00:00:00Z", "2028-02-29T06:00:00Z")]
    #[case::last_day_of_short_month("0 6 31 * *", "2026-11-01T00:00:00Z", "2026-12-31T06:00:00Z")]
    #[case::every_few_seconds("*/5 * * * * *", "2026-11-24T06:00:03Z", "2026-11-24T06:00:05Z")]
    fn next_slot(#[case] schedule: &str, #[case] now: &str, #[case] expect: &str) {
        let s = Schedule::parse(schedule).unwrap();
        assert_eq!(s.next_after(t(now)), Some(t(expect)));
    }

    #[rstest]
    #[case::never_ran(None, "2026-11-24T09:00:00Z", "2026-11-24T09:00:00Z")]
    #[case::restart_after_a_missed_slot(
        Some("2026-11-23T06:00:02Z"),
        "2026-11-24T09:00:00Z",
        "2026-11-24T09:00:00Z"
    )]
    #[case::restart_just_after_a_run(
        Some("2026-11-24T06:00:02Z"),
        "2026-11-24T06:10:00Z",
        "2026-11-25T06:00:00Z"
    )]
    #[case::restart_before_todays_slot(
        Some("2026-11-23T06:00:02Z"),
        "2026-11-24T05:00:00Z",
        "2026-11-24T06:00:00Z"
    )]
    #[case::down_for_days(
        Some("2026-11-20T06:00:02Z"),
        "2026-11-24T05:00:00Z",
        "2026-11-24T05:00:00Z"
    )]
    fn first_run_after_start(#[case] last: Option<&str>, #[case] now: &str, #[case] expect: &str) {
        let s = Schedule::default();
        assert_eq!(first_due(&s, last.map(t), t(now)), t(expect));
    }

    #[test]
    fn failures_back_off_then_wait_for_the_next_slot() {
        let s = Schedule::default();
        let opts = WorkerOptions::default();
        let now = datetime!(2026-11-24 06:00:10 UTC);
        assert_eq!(
            after_failure(&s, 1, &opts, now),
            now + Duration::from_secs(60)
        );
        assert_eq!(
            after_failure(&s, 3, &opts, now),
            now + Duration::from_secs(240)
        );
        assert_eq!(
            after_failure(&s, 6, &opts, now),
            datetime!(2026-11-25 06:00 UTC)
        );
        let late = datetime!(2026-11-25 05:59:30 UTC);
        assert_eq!(
            after_failure(&s, 1, &opts, late),
            datetime!(2026-11-25 06:00 UTC),
            "never past the next slot"
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in ["daily 25:00", "daily 6", "every day", "0 6 30 2 *", "* * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

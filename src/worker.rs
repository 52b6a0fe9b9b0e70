//! The long-running worker (`snapsync worker`, a Heroku dyno): schedules, heartbeats, retries,
//! notifications ([`crate::notify`]) and a clean stop.
//!
//! The decision that matters is what happens at start. Heroku restarts a dyno at least daily and
//! wipes its disk, so "when did this dataset last run?" comes from SQLite when it survived, else
//! from the store (`latest.json`'s `created_at`). If a scheduled slot has passed since then, the
//! dataset runs at once; otherwise it waits for its next slot. So a restart never skips a period
//! and never runs one twice ([`first_due`]).
//!
//! Time and shutdown come in as arguments ([`run`] takes a [`Clock`] and a cancellation token):
//! the schedule is tested with a fake clock, and only `main` installs signal handlers.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::DatasetConfig;
use crate::keys::{self, DatasetKeys};
use crate::notify::Notifier;
use crate::schedule::{first_due, Schedule};
use crate::sync::{self, Deps, Outcome, RunOptions};

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

pub use crate::config::WorkerOptions;

struct Slot {
    ds: DatasetConfig,
    due: OffsetDateTime,
    /// Failures counted for the retry back-off (reset when it gives up until the next slot).
    failures: u32,
}

/// Runs until `shutdown` is cancelled. Never returns early because a run failed.
pub async fn run(
    deps: Deps,
    datasets: Vec<DatasetConfig>,
    opts: WorkerOptions,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let now = clock.now();
    let mut slots = Vec::new();
    for ds in datasets {
        let last = last_success(&deps, &ds).await;
        let due = first_due(&ds.schedule, last, now);
        info!(
            dataset = %ds.name,
            schedule = ds.schedule.as_str(),
            last_success = last.map(keys::rfc3339).as_deref(),
            next_run = %keys::rfc3339(due),
            "scheduled"
        );
        slots.push(Slot {
            ds,
            due,
            failures: 0,
        });
    }
    if slots.is_empty() {
        warn!("no datasets to run");
        shutdown.cancelled().await;
        return;
    }
    let notifier = Notifier::new(opts.notify.clone());
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
        notifier.started().await;
        let before = notifier
            .before_run(&deps.db, deps.store.url(), &slot.ds.name)
            .await;
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
            slot.due = after_failure(&slot.ds.schedule, slot.failures, &opts, now);
            if slot.failures > opts.max_retries
                || slot.due == slot.ds.schedule.next_after(now).unwrap_or(now)
            {
                slot.failures = 0;
            }
        } else {
            slot.failures = 0;
            slot.due = slot.ds.schedule.next_after(now).unwrap_or(now);
        }
        info!(dataset = %slot.ds.name, next_run = %keys::rfc3339(slot.due), "next run");
        // An abandoned run did nothing: nobody hears of it. One that finished while the
        // shutdown came in is told (within the notifier's timeouts) before the worker stops.
        if report.outcome != Outcome::Abandoned {
            notifier
                .tell(std::slice::from_ref(&report), &[before])
                .await;
        }
        if shutdown.is_cancelled() {
            break;
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
    match crate::remote::latest_created_at(&deps.store, &keys).await {
        Ok(at) => at,
        Err(e) => {
            warn!(dataset = %ds.name, error = %e, "cannot read the store's latest version; running at once");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

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
}

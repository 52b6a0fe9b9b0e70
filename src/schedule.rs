//! When a dataset runs: a schedule (`daily`, `daily HH:MM`, or cron, in UTC) and
//! [`first_due`], the rule for the first run after a (re)start.
//!
//! The decision to know: Heroku restarts a dyno at least daily and wipes its disk, so the first
//! run is decided from the last *successful* run, wherever it was recorded: if a slot passed
//! since then, the dataset runs at once; otherwise it waits for its next slot. A restart never
//! skips a period and never runs one twice. Pure: time comes in as an argument.

use std::str::FromStr;

use croner::Cron;
use time::OffsetDateTime;

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
        let cron = Cron::from_str(&expr).map_err(|e| {
            format!(
                "schedule {text:?}: expected \"daily\", \"daily HH:MM\" (UTC), or a cron expression of 5 fields (\"30 6 * * *\") or 6 with seconds first ({e})"
            )
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn t(s: &str) -> OffsetDateTime {
        crate::keys::parse_rfc3339(s).unwrap()
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
    fn bad_schedules_are_refused() {
        for bad in ["daily 25:00", "daily 6", "every day", "0 6 30 2 *", "* * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

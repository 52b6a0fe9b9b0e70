//! Time comes in from outside: the core never reads the wall clock itself, so tests (and
//! `replay`, which publishes with recorded dates) pass their own.

use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always says the same time (tests, replay).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// Below this, a store's measured clock skew is noise (its `Date` header has one-second
/// resolution, plus the round trip): this machine's millisecond clock is the better one.
pub const SKEW_TOLERANCE: time::Duration = time::Duration::seconds(5);

/// The system clock, but the store's when the two disagree by more than [`SKEW_TOLERANCE`]:
/// a dyno whose clock is off by hours still dates its versions by the store it publishes to
/// (S3's `Date`), so its history stays in order with other writers'.
pub struct StoreClock(pub crate::store::DynStore);

impl Clock for StoreClock {
    fn now(&self) -> OffsetDateTime {
        corrected(OffsetDateTime::now_utc(), self.0.clock_skew())
    }
}

/// `now`, moved by the store's `skew` when that is more than [`SKEW_TOLERANCE`].
pub fn corrected(now: OffsetDateTime, skew: Option<time::Duration>) -> OffsetDateTime {
    match skew {
        Some(skew) if skew.abs() > SKEW_TOLERANCE => now + skew,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    #[rstest::rstest]
    #[case::no_store_clock(None, datetime!(2026-12-01 12:00 UTC))]
    #[case::noise(Some(Duration::seconds(-4)), datetime!(2026-12-01 12:00 UTC))]
    #[case::our_clock_two_hours_ahead(Some(Duration::hours(-2)), datetime!(2026-12-01 10:00 UTC))]
    #[case::our_clock_behind(Some(Duration::minutes(10)), datetime!(2026-12-01 12:10 UTC))]
    fn the_store_clock_wins_when_it_disagrees_by_more_than_noise(
        #[case] skew: Option<Duration>,
        #[case] want: OffsetDateTime,
    ) {
        assert_eq!(corrected(datetime!(2026-12-01 12:00 UTC), skew), want);
    }
}

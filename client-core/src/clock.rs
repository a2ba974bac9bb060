//! Time. Records store UTC milliseconds; training days are local dates in China (UTC+8, no daylight
//! saving since 1991), whatever zone the phone is set to.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, NaiveDate, Offset, Utc};

/// China Standard Time.
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// The local date in China of an instant given in ms since the epoch.
pub fn local_date(ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&china())
        .date_naive()
}

/// Where the core reads the time from; tests and the CLI's scripted runs set it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, as ms since the Unix epoch (UTC).
    fn now_ms(&self) -> i64;

    /// Today's local date in China.
    fn today(&self) -> NaiveDate {
        local_date(self.now_ms())
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that stands still until moved.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock showing `ms`.
    pub fn at(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// Moves the clock by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_date_is_china() {
        // 2026-03-01T16:30Z is already 2026-03-02 in Beijing.
        let ms = 1_772_382_600_000;
        assert_eq!(
            local_date(ms),
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default()
        );
    }
}

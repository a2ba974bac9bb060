//! Time. Records store UTC milliseconds; training days are local dates in China (UTC+8, no daylight
//! saving since 1991), whatever zone the phone is set to.
//!
//! A phone's wall clock may be wrong by years and may be changed at any moment. What cannot be
//! changed by the person holding the phone is the time since boot (Android's `elapsedRealtime`, iOS's
//! `CLOCK_MONOTONIC_RAW`, Linux's `CLOCK_BOOTTIME`): QR freshness is measured on it, and record
//! times are corrected by the offset to the server's time seen at the last sync, carried forward
//! on it ([`Uptime`]).

use std::sync::Mutex;
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

/// A reading of the time since boot: comparable with another reading only when both have the same
/// boot id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uptime {
    /// Identifies the boot; a reboot changes it.
    pub boot: String,
    /// Milliseconds since that boot, counting time asleep.
    pub ms: i64,
}

impl Uptime {
    /// Milliseconds from `earlier` to `self`, when both are of the same boot and in order.
    pub fn since(&self, earlier: &Uptime) -> Option<i64> {
        (self.boot == earlier.boot && self.ms >= earlier.ms).then(|| self.ms - earlier.ms)
    }

    /// The form kept in the store's meta table.
    pub fn encode(&self) -> String {
        format!("{} {}", self.ms, self.boot)
    }

    /// Reads [`Uptime::encode`]'s form.
    pub fn decode(text: &str) -> Option<Self> {
        let (ms, boot) = text.split_once(' ')?;
        Some(Self {
            boot: boot.to_owned(),
            ms: ms.parse().ok()?,
        })
    }
}

/// Where the core reads the time from; tests and the CLI's scripted runs set it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, as ms since the Unix epoch (UTC).
    fn now_ms(&self) -> i64;

    /// The time since boot, when the platform can tell it.
    fn uptime(&self) -> Option<Uptime> {
        None
    }

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

    fn uptime(&self) -> Option<Uptime> {
        linux_uptime()
    }
}

/// `CLOCK_BOOTTIME` as Linux and Android publish it in /proc (10 ms resolution), with the kernel's
/// boot id.
pub fn linux_uptime() -> Option<Uptime> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let up = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs = up.split_whitespace().next()?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    Some(Uptime {
        boot: boot.trim().to_owned(),
        ms: whole.parse::<i64>().ok()? * 1000 + frac.parse::<i64>().ok()?,
    })
}

/// A clock that stands still until moved: a wall clock, and a time since boot that only
/// [`FixedClock::advance`] moves.
#[derive(Debug)]
pub struct FixedClock {
    wall: AtomicI64,
    uptime: AtomicI64,
    boot: Mutex<String>,
}

impl Default for FixedClock {
    fn default() -> Self {
        Self::at(0)
    }
}

impl FixedClock {
    /// A clock showing `ms`, just booted.
    pub fn at(ms: i64) -> Self {
        Self {
            wall: AtomicI64::new(ms),
            uptime: AtomicI64::new(0),
            boot: Mutex::new("boot-1".to_owned()),
        }
    }

    /// A clock showing `ms`, `uptime_ms` into boot `boot`.
    pub fn with_uptime(ms: i64, boot: &str, uptime_ms: i64) -> Self {
        let c = Self::at(ms);
        c.uptime.store(uptime_ms, Ordering::SeqCst);
        if let Ok(mut b) = c.boot.lock() {
            *b = boot.to_owned();
        }
        c
    }

    /// Lets `ms` pass: both clocks move.
    pub fn advance(&self, ms: i64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
        self.uptime.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the wall clock only, as a person changing the phone's time does.
    pub fn set_wall(&self, ms: i64) {
        self.wall.store(ms, Ordering::SeqCst);
    }

    /// A reboot: a new boot id, and the time since boot starts again.
    pub fn reboot(&self) {
        if let Ok(mut b) = self.boot.lock() {
            b.push('+');
        }
        self.uptime.store(0, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn uptime(&self) -> Option<Uptime> {
        Some(Uptime {
            boot: self.boot.lock().ok()?.clone(),
            ms: self.uptime.load(Ordering::SeqCst),
        })
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

    #[test]
    fn uptime_compares_only_within_a_boot() {
        let c = FixedClock::at(1_000);
        let a = c.uptime().expect("uptime");
        c.set_wall(-5_000_000);
        c.advance(2_500);
        let b = c.uptime().expect("uptime");
        assert_eq!(b.since(&a), Some(2_500));
        assert_eq!(a.since(&b), None);
        c.reboot();
        assert_eq!(c.uptime().expect("uptime").since(&a), None);
        assert_eq!(Uptime::decode(&b.encode()), Some(b));
        assert_eq!(Uptime::decode("x boot"), None);
        if let Some(u) = linux_uptime() {
            assert!(u.ms > 0 && !u.boot.is_empty());
        }
    }
}

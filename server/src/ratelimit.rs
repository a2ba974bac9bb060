//! Rate limits: per device and per IP address (token buckets, `governor`), and a stricter count of
//! writes outside a device's villages, so probing for other villages' documents stops early.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::Limits;
use crate::error::ApiError;

/// The server's limiters.
#[derive(Debug)]
pub struct RateLimits {
    devices: DefaultKeyedRateLimiter<String>,
    ips: DefaultKeyedRateLimiter<IpAddr>,
    probes: Mutex<HashMap<String, (Instant, u32)>>,
    probes_per_hour: u32,
}

fn per_minute(n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new((n.get() / 4).max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(burst)
}

fn refused(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::RateLimited(wait.as_secs() + 1)
}

impl RateLimits {
    /// Limiters with the configured quotas.
    pub fn new(limits: &Limits) -> Self {
        Self {
            devices: DefaultKeyedRateLimiter::keyed(per_minute(limits.device_requests_per_minute)),
            ips: DefaultKeyedRateLimiter::keyed(per_minute(limits.ip_requests_per_minute)),
            probes: Mutex::new(HashMap::new()),
            probes_per_hour: limits.out_of_scope_per_hour,
        }
    }

    /// Counts a request from `ip`.
    pub fn ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.ips.check_key(&ip).map_err(refused)
    }

    /// Counts a request from `device`; refused too while the device is over its out-of-scope
    /// count.
    pub fn device(&self, device: &str) -> Result<(), ApiError> {
        if let Ok(probes) = self.probes.lock()
            && let Some((since, n)) = probes.get(device)
            && *n >= self.probes_per_hour
        {
            let left = Duration::from_secs(3600).saturating_sub(since.elapsed());
            if !left.is_zero() {
                return Err(ApiError::RateLimited(left.as_secs() + 1));
            }
        }
        self.devices.check_key(&device.to_owned()).map_err(|e| {
            crate::metrics::refused("device");
            refused(e)
        })
    }

    /// Records a write outside the device's villages.
    pub fn out_of_scope(&self, device: &str) {
        if let Ok(mut probes) = self.probes.lock() {
            let e = probes
                .entry(device.to_owned())
                .or_insert((Instant::now(), 0));
            if e.0.elapsed() >= Duration::from_secs(3600) {
                *e = (Instant::now(), 0);
            }
            e.1 += 1;
        }
    }

    /// Forgets idle keys, so the maps stay small.
    pub fn prune(&self) {
        self.devices.retain_recent();
        self.ips.retain_recent();
        if let Ok(mut probes) = self.probes.lock() {
            probes.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(3600));
        }
    }
}

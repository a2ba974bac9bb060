//! Refusals counted per source and minute: failed logins, wrong enrollment codes and requests of
//! withdrawn devices are each audited as one entry per (source, kind, minute) with its count, so a
//! flood neither hides (every refusal is counted) nor bloats the log (a minute of it is one entry
//! per source). Counts are held in memory and written when their minute is over.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::audit::{self, Entry};
use crate::db::{DbError, Sql};

/// Distinct (source, kind) pairs kept for one minute; past it, refusals count under `other`.
const MAX_SOURCES: usize = 10_000;

/// What was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Refusal {
    /// A wrong username or password at the dashboard.
    BadCredentials,
    /// A wrong or used enrollment code.
    BadCode,
    /// A request of a withdrawn device.
    DeviceRevoked,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::BadCredentials => "bad_credentials",
            Refusal::BadCode => "bad_code",
            Refusal::DeviceRevoked => "device_revoked",
        }
    }
}

/// Counts of the minutes not yet written.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    counts: Mutex<BTreeMap<(i64, String, Refusal), u64>>,
}

impl Refusals {
    /// Counts one refusal of `kind` from `source` (`address:<ip>` or `device:<id>`) at `now_ms`.
    pub(crate) fn note(&self, source: &str, kind: Refusal, now_ms: i64) {
        let minute = now_ms - now_ms.rem_euclid(60_000);
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let key = (minute, source.to_owned(), kind);
        let key = if counts.contains_key(&key) || counts.len() < MAX_SOURCES {
            key
        } else {
            (minute, "other".to_owned(), kind)
        };
        *counts.entry(key).or_default() += 1;
    }

    /// Writes the counts of every minute before `now_ms`'s (all of them with `all`) as audit
    /// entries; what cannot be written is kept for the next time.
    pub(crate) fn flush(&self, db: &dyn Sql, now_ms: i64, all: bool) -> Result<usize, DbError> {
        let current = now_ms - now_ms.rem_euclid(60_000);
        let done: Vec<((i64, String, Refusal), u64)> = {
            let Ok(mut counts) = self.counts.lock() else {
                return Ok(0);
            };
            let keep = if all {
                BTreeMap::new()
            } else {
                counts.split_off(&(current, String::new(), Refusal::BadCredentials))
            };
            std::mem::replace(&mut *counts, keep).into_iter().collect()
        };
        let entries: Vec<Entry> = done
            .iter()
            .map(|((minute, source, kind), n)| {
                Entry::new(
                    source.clone(),
                    "refused",
                    kind.code(),
                    serde_json::json!({ "minute_ms": minute, "count": n }),
                )
            })
            .collect();
        if let Err(e) = audit::append(db, now_ms, &entries) {
            if let Ok(mut counts) = self.counts.lock() {
                for (k, n) in done {
                    *counts.entry(k).or_default() += n;
                }
            }
            return Err(e);
        }
        Ok(entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_per_source_and_minute_and_a_flood_stays_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::ServerStore::open(dir.path(), 1, &crate::DbKey::from_bytes([7; 32]))
            .expect("store");
        let r = Refusals::default();
        let t = 1_800_000_000_000_i64 - 1_800_000_000_000_i64.rem_euclid(60_000);
        for i in 0..500 {
            r.note("address:203.0.113.9", Refusal::BadCredentials, t + i);
        }
        r.note("address:198.51.100.7", Refusal::BadCode, t + 5);
        r.note("device:d1", Refusal::DeviceRevoked, t + 61_000);
        // The minute still running is kept back.
        assert_eq!(r.flush(store.conn(), t + 30_000, false).expect("flush"), 0);
        assert_eq!(r.flush(store.conn(), t + 61_500, false).expect("flush"), 2);
        assert_eq!(r.flush(store.conn(), t + 61_500, true).expect("flush"), 1);
        let rows: Vec<(String, String, String)> = store
            .conn()
            .query_map(
                "SELECT actor, subject, detail FROM audit WHERE action = 'refused' ORDER BY seq",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("audit");
        assert_eq!(rows.len(), 3, "{rows:?}");
        let detail =
            |i: usize| -> serde_json::Value { serde_json::from_str(&rows[i].2).expect("json") };
        assert!(
            rows.iter()
                .any(|r| r.0 == "address:203.0.113.9" && r.1 == "bad_credentials")
        );
        let flood = rows
            .iter()
            .position(|r| r.0 == "address:203.0.113.9")
            .expect("flood");
        assert_eq!(detail(flood)["count"], 500);
        assert_eq!(detail(flood)["minute_ms"], t);
        assert_eq!(rows[2].0, "device:d1");
        // Past the cap of sources, the rest count together.
        for i in 0..(MAX_SOURCES + 50) {
            r.note(
                &format!("address:10.0.{}.{}", i / 256, i % 256),
                Refusal::BadCode,
                t,
            );
        }
        assert_eq!(
            r.flush(store.conn(), t + 120_000, true).expect("flush"),
            MAX_SOURCES + 1
        );
    }
}

//! Password checks for the dashboard's logins, kept from hurting anyone else: Argon2 runs outside
//! every database lock, on threads for half the cores; failed logins are throttled per account and
//! per source before any hashing; an unknown username costs the same as a known one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{PasswordHash, PasswordVerifier};

/// Failures counted in one window.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures one account may have in a window; past them, one attempt a minute.
pub const ACCOUNT_FAILURES: u32 = 10;
/// Failures one source may have in a window; past them, none until the window ends.
pub const SOURCE_FAILURES: u32 = 20;
/// After an account's failures, the time between attempts.
const ACCOUNT_SPACING: Duration = Duration::from_secs(60);
/// Keys kept per table; the oldest windows go first past it.
const MAX_KEYS: usize = 100_000;

/// Failures per key in the current window.
#[derive(Debug, Default)]
struct Failures(HashMap<String, (Instant, u32, Option<Instant>)>);

impl Failures {
    /// How long `key` must wait before trying again, if it must.
    fn wait(
        &self,
        key: &str,
        max: u32,
        spacing: Option<Duration>,
        now: Instant,
    ) -> Option<Duration> {
        let (since, n, last) = self.0.get(key)?;
        let window_left = WINDOW
            .checked_sub(now.duration_since(*since))
            .filter(|d| !d.is_zero())?;
        if *n < max {
            return None;
        }
        match spacing {
            None => Some(window_left),
            Some(s) => {
                let next = last.map_or(now, |l| l + s);
                next.checked_duration_since(now).filter(|d| !d.is_zero())
            }
        }
    }

    fn fail(&mut self, key: &str, now: Instant) {
        if self.0.len() >= MAX_KEYS && !self.0.contains_key(key) {
            self.0
                .retain(|_, (since, _, _)| now.duration_since(*since) < WINDOW);
            // Still full of live windows: the oldest goes, so a new key is always counted.
            if self.0.len() >= MAX_KEYS
                && let Some(oldest) = self
                    .0
                    .iter()
                    .min_by_key(|(_, (since, _, _))| *since)
                    .map(|(k, _)| k.clone())
            {
                self.0.remove(&oldest);
            }
        }
        let e = self.0.entry(key.to_owned()).or_insert((now, 0, None));
        if now.duration_since(e.0) >= WINDOW {
            *e = (now, 0, None);
        }
        e.1 = e.1.saturating_add(1);
        e.2 = Some(now);
    }

    fn clear(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// Takes back one attempt counted in advance (it succeeded).
    fn refund(&mut self, key: &str) {
        if let Some(e) = self.0.get_mut(key) {
            e.1 = e.1.saturating_sub(1);
        }
    }
}

/// A password to check against a hash, and where to say whether it matched.
struct Job {
    hash: String,
    password: String,
    done: tokio::sync::oneshot::Sender<bool>,
}

/// Threads that check passwords, half the cores: a flood of logins leaves the other half to the
/// phones' syncs. (They keep the normal scheduling class: at an idle class, a machine kept busy by
/// anything else would never check a password.)
fn hashers(n: usize) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = std::sync::Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else {
                        return;
                    };
                    let ok = PasswordHash::new(&job.hash).is_ok_and(|parsed| {
                        argon2::Argon2::default()
                            .verify_password(job.password.as_bytes(), &parsed)
                            .is_ok()
                    });
                    let _ = job.done.send(ok);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a password-checking thread");
        }
    }
    tx
}

/// The gate every dashboard login passes.
pub struct Logins {
    /// The password-checking threads' queue.
    hashing: Mutex<std::sync::mpsc::Sender<Job>>,
    accounts: Mutex<Failures>,
    sources: Mutex<Failures>,
    /// (account, source) pairs that signed in since the server started: an account's throttle
    /// does not apply to a source it signed in from, so a stranger failing on purpose cannot keep
    /// the office out.
    known: Mutex<std::collections::HashSet<(String, String)>>,
    /// Checked when the username is unknown, so that costs what a known one does.
    dummy: String,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logins(…)")
    }
}

impl Default for Logins {
    fn default() -> Self {
        // Half the cores at most: a flood of logins leaves the rest to the phones' syncs.
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self {
            hashing: Mutex::new(hashers((cores / 2).max(1))),
            accounts: Mutex::default(),
            sources: Mutex::default(),
            known: Mutex::default(),
            dummy: super::hash_password(&super::random_secret(16)).unwrap_or_default(),
        }
    }
}

impl Logins {
    /// Refused for now (`Some(seconds to wait)`) when the source or the account has failed too
    /// often; no password is hashed for a refused attempt. An admitted attempt is counted as a
    /// failure at once, under the same lock, so attempts arriving together cannot all pass before
    /// any is counted; [`Self::check`] takes it back if it succeeds. A source the account signed
    /// in from is held by neither throttle: a stranger failing on purpose cannot keep it out.
    pub fn throttled(&self, username: &str, source: &str) -> Option<u64> {
        let now = Instant::now();
        let known = self
            .known
            .lock()
            .is_ok_and(|k| k.contains(&(username.to_owned(), source.to_owned())));
        if known {
            return None;
        }
        let (Ok(mut sources), Ok(mut accounts)) = (self.sources.lock(), self.accounts.lock())
        else {
            return Some(1);
        };
        let wait = sources
            .wait(source, SOURCE_FAILURES, None, now)
            .into_iter()
            .chain(accounts.wait(username, ACCOUNT_FAILURES, Some(ACCOUNT_SPACING), now))
            .max();
        match wait {
            Some(d) => Some(d.as_secs() + 1),
            None => {
                sources.fail(source, now);
                accounts.fail(username, now);
                None
            }
        }
    }

    /// Checks `password` against `hash` (the account's, or `None` for an unknown username, which
    /// is checked against a hash of nothing anyone knows, for the same cost), on the blocking pool
    /// and on the password-checking threads (see [`hashers`]). The attempt was counted as a failure when it was
    /// admitted; a success takes it back, clears the account's failures and remembers the source.
    pub async fn check(
        &self,
        username: &str,
        source: &str,
        hash: Option<String>,
        password: String,
    ) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let (done, answer) = tokio::sync::oneshot::channel();
        let queued = self.hashing.lock().is_ok_and(|q| {
            q.send(Job {
                hash,
                password,
                done,
            })
            .is_ok()
        });
        let ok = queued && answer.await.unwrap_or(false) && known;
        if ok {
            if let Ok(mut f) = self.accounts.lock() {
                f.clear(username);
            }
            if let Ok(mut f) = self.sources.lock() {
                f.refund(source);
            }
            if let Ok(mut k) = self.known.lock()
                && k.len() < MAX_KEYS
            {
                k.insert((username.to_owned(), source.to_owned()));
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_stopped_for_the_window_and_an_account_slowed_to_one_attempt_a_minute() {
        let t0 = Instant::now();
        let mut sources = Failures::default();
        for i in 0..SOURCE_FAILURES {
            assert_eq!(
                sources.wait("a", SOURCE_FAILURES, None, t0),
                None,
                "failure {i}"
            );
            sources.fail("a", t0);
        }
        let wait = sources
            .wait("a", SOURCE_FAILURES, None, t0)
            .expect("stopped");
        assert!(wait > Duration::from_secs(14 * 60), "{wait:?}");
        assert_eq!(
            sources.wait("b", SOURCE_FAILURES, None, t0),
            None,
            "another source"
        );
        assert_eq!(
            sources.wait("a", SOURCE_FAILURES, None, t0 + WINDOW),
            None,
            "a new window"
        );

        let mut accounts = Failures::default();
        for _ in 0..ACCOUNT_FAILURES {
            accounts.fail("admin", t0);
        }
        let spacing = Some(ACCOUNT_SPACING);
        assert!(
            accounts
                .wait("admin", ACCOUNT_FAILURES, spacing, t0)
                .is_some()
        );
        let later = t0 + ACCOUNT_SPACING;
        assert_eq!(
            accounts.wait("admin", ACCOUNT_FAILURES, spacing, later),
            None,
            "one attempt a minute"
        );
        accounts.fail("admin", later);
        assert!(
            accounts
                .wait("admin", ACCOUNT_FAILURES, spacing, later)
                .is_some()
        );
        accounts.clear("admin");
        assert_eq!(
            accounts.wait("admin", ACCOUNT_FAILURES, spacing, later),
            None
        );
    }

    /// One login as the handler runs it: throttled, or checked.
    async fn attempt(
        l: &Logins,
        user: &str,
        source: &str,
        hash: Option<String>,
        password: &str,
    ) -> Option<bool> {
        if l.throttled(user, source).is_some() {
            return None;
        }
        Some(l.check(user, source, hash, password.into()).await)
    }

    #[test]
    fn attempts_arriving_together_are_counted_as_they_are_admitted() {
        let logins = Logins::default();
        // No check has finished yet: only the account's allowance is let through.
        let admitted = (0..30)
            .filter(|i| logins.throttled("clerk", &format!("s{i}")).is_none())
            .count();
        assert_eq!(admitted, ACCOUNT_FAILURES as usize);
        let from_one = (0..30)
            .filter(|i| logins.throttled(&format!("u{i}"), "one").is_none())
            .count();
        assert_eq!(from_one, SOURCE_FAILURES as usize);
    }

    #[tokio::test]
    async fn an_unknown_username_is_checked_like_a_known_one_and_never_passes() {
        let logins = Logins::default();
        let hash = crate::accounts::hash_password("right horse").expect("hash");
        let right = Some(hash.clone());
        assert_eq!(
            attempt(&logins, "admin", "s", right, "right horse").await,
            Some(true)
        );
        assert_eq!(
            attempt(&logins, "admin", "s", Some(hash), "wrong").await,
            Some(false)
        );
        let started = Instant::now();
        assert_eq!(
            attempt(&logins, "nobody", "s", None, "right horse").await,
            Some(false)
        );
        assert_eq!(attempt(&logins, "nobody", "s", None, "").await, Some(false));
        // The account's throttle spares a source it signed in from.
        for _ in 0..ACCOUNT_FAILURES {
            let _ = attempt(&logins, "admin", "stranger", Some("x".into()), "").await;
        }
        assert!(logins.throttled("admin", "stranger").is_some());
        assert!(logins.throttled("admin", "elsewhere").is_some());
        assert_eq!(
            logins.throttled("admin", "s"),
            None,
            "where admin signed in before"
        );
        // The dummy hash is a real Argon2 hash: checking it takes real time.
        assert!(started.elapsed() > Duration::from_millis(1));
    }
}

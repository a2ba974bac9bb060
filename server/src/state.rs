//! What every request handler shares: the store, the configuration, the server's keys (read from
//! the data folder, made on first start) and the rate limits.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use songpei_core::blind_index::BlindIndexKey;

use crate::ratelimit;
use crate::store::StoreLocation;
use crate::{Config, ServerStore};

/// What every request handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store; one writer at a time, as SQLite allows.
    pub store: Arc<Mutex<ServerStore>>,
    /// Configuration.
    pub config: Arc<Config>,
    /// Key of the blind index over ID numbers.
    pub blind_key: BlindIndexKey,
    /// Key of the access tokens' MACs.
    pub token_key: [u8; 32],
    /// Rate limits.
    pub rate: Arc<ratelimit::RateLimits>,
    /// Refusals counted per source and minute, audited when their minute is over.
    pub(crate) refusals: Arc<crate::accounts::refusals::Refusals>,
    /// Readers of the server's SQLite beside the store's writer (none on PostgreSQL): the office's
    /// pages read through them, never waiting for a merge.
    pub(crate) readers: Option<Arc<crate::store::Readers>>,
    /// The dashboard's password checks: throttled, bounded, outside the store's lock.
    pub(crate) logins: Arc<crate::accounts::logins::Logins>,
    /// The actor of the server's own changes (review decisions): new each start, so two processes
    /// never write under one actor.
    pub actor: automerge::ActorId,
}

/// Connections reading the server's SQLite beside its writer.
const READERS: usize = 4;

/// The call-back sampling key's file in the data folder: an auditor given a copy recomputes the
/// sample (`songpei-server admin callbacks verify`).
pub(crate) const CALLBACK_KEY_FILE: &str = "callback.key";

/// Reads a 32-byte key from the data folder, creating it (readable by the owner only) on first
/// start.
pub(crate) fn key_file(dir: &Path, name: &str) -> std::io::Result<[u8; 32]> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => hex::decode(s.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| std::io::Error::other(format!("{name} is not 64 hex characters"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Written whole under a private name, then linked into place: two servers starting
            // on one data folder at once end up with the same key, never a half-written one.
            let key: [u8; 32] = rand::random();
            let tmp = dir.join(format!(
                ".{name}.{}.{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            writeln!(f, "{}", hex::encode(key))?;
            f.sync_all()?;
            drop(f);
            let linked = std::fs::hard_link(&tmp, &path);
            std::fs::remove_file(&tmp).ok();
            match linked {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_file(dir, name),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

impl AppState {
    /// The store, once no one else holds it; the wait is measured
    /// (`songpei_store_wait_seconds`).
    pub fn lock_store(&self) -> Result<std::sync::MutexGuard<'_, ServerStore>, crate::ApiError> {
        let started = std::time::Instant::now();
        let guard = self.store.lock().map_err(|_| crate::ApiError::Internal)?;
        metrics::histogram!("songpei_store_wait_seconds").record(started.elapsed().as_secs_f64());
        Ok(guard)
    }

    /// Opens the store and keys in the configured data folder.
    pub fn open(config: Config) -> Result<Self, String> {
        std::fs::create_dir_all(&config.data)
            .map_err(|e| format!("cannot create {}: {e}", config.data.display()))?;
        let mut store = StoreLocation::of(&config).open(config.cache_docs)?;
        store.set_signin(config.signin);
        store
            .apply_policy(config.policy.clone())
            .map_err(|e| format!("cannot apply the policy table: {e}"))?;
        let blind_key = key_file(&config.data, "blind-index.key")
            .map(BlindIndexKey::from_bytes)
            .map_err(|e| format!("blind index key: {e}"))?;
        let token_key =
            key_file(&config.data, "token.key").map_err(|e| format!("token key: {e}"))?;
        // A replica must draw under the key the calls were drawn under, never a new one of its own.
        if !config.data.join(CALLBACK_KEY_FILE).exists()
            && store
                .conn()
                .query_opt("SELECT 1 FROM callbacks LIMIT 1", &[], |_| Ok(()))
                .map_err(|e| format!("cannot read the call list: {e}"))?
                .is_some()
        {
            return Err(format!(
                "{} is missing from {} but the database already has calls drawn under it: copy it \
                 from the first server's data folder",
                CALLBACK_KEY_FILE,
                config.data.display()
            ));
        }
        let callback_key =
            key_file(&config.data, CALLBACK_KEY_FILE).map_err(|e| format!("call-back key: {e}"))?;
        store.set_sampler(crate::callbacks::Sampler::new(
            callback_key,
            config.callbacks.per_million,
        ));
        store
            .draw_callbacks(chrono::Utc::now().timestamp_millis())
            .map_err(|e| format!("cannot draw the call-backs: {e}"))?;
        let readers = store
            .readers(READERS)
            .map_err(|e| format!("cannot open the database's readers: {e}"))?
            .map(Arc::new);
        Ok(Self {
            store: Arc::new(Mutex::new(store)),
            readers,
            rate: Arc::new(ratelimit::RateLimits::new(&config.limits)),
            refusals: Arc::default(),
            logins: Arc::default(),
            config: Arc::new(config),
            blind_key,
            token_key,
            actor: automerge::ActorId::random(),
        })
    }
}

/// An HMAC-SHA256 of `payload` under `key`: access tokens and office sessions are MACed under the
/// server's token key.
pub(crate) fn mac(key: &[u8; 32], payload: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length.
    let mut m =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload.as_bytes());
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_without_the_call_back_key_of_its_calls_refuses_to_start() {
        let dir = tempfile::tempdir().expect("dir");
        let config = crate::Config {
            data: dir.path().join("data"),
            ..crate::Config::default()
        };
        let state = super::AppState::open(config.clone()).expect("first start");
        state
            .store
            .lock()
            .expect("store")
            .conn()
            .execute(
                "INSERT INTO callbacks (id, class_id, village, trainee_id, day, reason,
                 per_million, selected_ms) VALUES ('c1', 'k', 'v', 't', '2026-12-01', 'sample',
                 50000, 0)",
                &[],
            )
            .expect("a call");
        drop(state);
        let data = dir.path().join("data");
        let key = std::fs::read(data.join(super::CALLBACK_KEY_FILE)).expect("key");
        std::fs::remove_file(data.join(super::CALLBACK_KEY_FILE)).expect("remove");
        let err = super::AppState::open(config.clone()).expect_err("no key, calls on file");
        assert!(err.contains("callback.key is missing"), "{err}");
        assert!(
            !data.join(super::CALLBACK_KEY_FILE).exists(),
            "no key was made"
        );
        std::fs::write(data.join(super::CALLBACK_KEY_FILE), key).expect("restore");
        super::AppState::open(config).expect("the key back");
    }

    #[test]
    fn servers_starting_together_on_one_data_folder_get_the_same_whole_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().expect("dir");
            let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
                let runs: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| super::key_file(dir.path(), "token.key")))
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().expect("thread").expect("a key"))
                    .collect()
            });
            assert!(keys.iter().all(|k| *k == keys[0]));
            let files = std::fs::read_dir(dir.path()).expect("dir").count();
            assert_eq!(files, 1, "no temporary file is left behind");
        }
    }
}

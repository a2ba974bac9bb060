//! songpei-server: the district sync server. Phones merge with it over `POST /v1/sync` in one round
//! trip when little changed; it keeps every document durably on its embedded SQLite, feeds each
//! village's changes back to the phones of that village, and projects typed rows for the district's
//! reports.
//!
//! The binary is a thin `main`: tests drive [`app`] without a socket, or [`run`] on port 0.

pub mod config;
pub mod error;
mod projection;
pub mod store;
mod sync;

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::sync::protocol::CONTENT_TYPE;
use tokio::net::TcpListener;

pub use config::{Config, Limits};
pub use error::ApiError;
pub use store::ServerStore;

/// What every request handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store; one writer at a time, as SQLite allows.
    pub store: Arc<Mutex<ServerStore>>,
    /// Configuration.
    pub config: Arc<Config>,
    /// Key of the blind index over ID numbers.
    pub blind_key: BlindIndexKey,
}

/// Reads the blind-index key from the data folder, creating it on first start.
fn blind_key(dir: &Path) -> std::io::Result<BlindIndexKey> {
    let path = dir.join("blind-index.key");
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let bytes: [u8; 32] = hex::decode(s.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| std::io::Error::other("blind-index.key is not 64 hex characters"))?;
            Ok(BlindIndexKey::from_bytes(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&path)?;
            writeln!(f, "{}", hex::encode(key))?;
            f.sync_all()?;
            Ok(BlindIndexKey::from_bytes(key))
        }
        Err(e) => Err(e),
    }
}

impl AppState {
    /// Opens the store and keys in the configured data folder.
    pub fn open(config: Config) -> Result<Self, String> {
        std::fs::create_dir_all(&config.data)
            .map_err(|e| format!("cannot create {}: {e}", config.data.display()))?;
        let store = ServerStore::open(&config.data, config.cache_docs)
            .map_err(|e| format!("cannot open the database: {e}"))?;
        let blind_key = blind_key(&config.data).map_err(|e| format!("blind index key: {e}"))?;
        Ok(Self {
            store: Arc::new(Mutex::new(store)),
            config: Arc::new(config),
            blind_key,
        })
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn sync_handler(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(state.config.limits.max_body_bytes)
        } else {
            ApiError::BadRequest("the body could not be read".into())
        }
    })?;
    let s = state.clone();
    let response = tokio::task::spawn_blocking(move || sync::handle(&s, &body))
        .await
        .map_err(|_| ApiError::Internal)??;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], response))
}

/// The HTTP routes.
pub fn app(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    let timeout = state.config.request_timeout;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/sync", post(sync_handler))
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let compact_every = config.compact_every;
    let state = AppState::open(config)?;
    let compactor = {
        let store = state.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(compact_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let store = store.clone();
                let done = tokio::task::spawn_blocking(move || match store.lock() {
                    Ok(mut s) => {
                        let week = 7 * 24 * 3600 * 1000;
                        s.prune_requests(chrono::Utc::now().timestamp_millis(), week)?;
                        s.compact(16, 100)
                    }
                    Err(_) => Ok(0),
                })
                .await;
                if let Ok(Err(e)) = done {
                    tracing::warn!(error = %e, "background compaction failed");
                }
            }
        })
    };
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"));
    compactor.abort();
    result
}

//! songpei-server: the district sync server. Phones merge with it over `POST /v1/sync` in one round
//! trip when little changed; it keeps every document durably on its embedded SQLite, feeds each
//! village's changes back to the phones of that village, and projects typed rows for the district's
//! reports.
//!
//! The binary is a thin `main`: tests drive [`app`] without a socket, or [`run`] on port 0.

pub mod accounts;
pub mod admin;
pub mod audit;
mod auth;
pub mod config;
pub mod db;
pub mod erasure;
pub mod error;
pub mod loopback;
pub mod office;
mod projection;
pub mod ratelimit;
pub mod report;
pub mod review;
mod settlement;
pub mod signin;
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
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::sync::protocol::CONTENT_TYPE;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// Key of the access tokens' MACs.
    pub token_key: [u8; 32],
    /// Rate limits.
    pub rate: Arc<ratelimit::RateLimits>,
    /// The actor of the server's own changes (review decisions): new each start, so two processes
    /// never write under one actor.
    pub actor: automerge::ActorId,
}

/// Reads a 32-byte key from the data folder, creating it (readable by the owner only) on first
/// start.
fn key_file(dir: &Path, name: &str) -> std::io::Result<[u8; 32]> {
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
    /// Opens the store and keys in the configured data folder.
    pub fn open(config: Config) -> Result<Self, String> {
        std::fs::create_dir_all(&config.data)
            .map_err(|e| format!("cannot create {}: {e}", config.data.display()))?;
        let mut store = admin::Storage::of(&config).open(config.cache_docs)?;
        store
            .apply_policy(config.policy.clone())
            .map_err(|e| format!("cannot apply the policy table: {e}"))?;
        let blind_key = key_file(&config.data, "blind-index.key")
            .map(BlindIndexKey::from_bytes)
            .map_err(|e| format!("blind index key: {e}"))?;
        let token_key =
            key_file(&config.data, "token.key").map_err(|e| format!("token key: {e}"))?;
        Ok(Self {
            store: Arc::new(Mutex::new(store)),
            rate: Arc::new(ratelimit::RateLimits::new(&config.limits)),
            config: Arc::new(config),
            blind_key,
            token_key,
            actor: automerge::ActorId::random(),
        })
    }
}

/// Whether the server answers at all, for load balancers and service managers.
///
/// It touches no store, so a failing database does not take the server out of rotation.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses(
        (status = 200, description = "The server is up.", body = String, content_type = "text/plain",
            example = "ok"),
        office::openapi::Limits,
    ))]
async fn healthz() -> &'static str {
    "ok"
}

/// Merges a phone's changes and answers what is new in its villages, in one round trip.
///
/// The request body is exactly one zstd frame, with its content checksum, holding one postcard
/// `SyncRequest`; the answer is one frame holding a `SyncResponse`. The phone sends it as
/// `Content-Type: application/vnd.songpei.sync.v1+postcard` (the server reads the body whatever the
/// type says, and answers with that type). The messages, their packed changes and every error code
/// are specified in `docs/protocol.md`. A retry resends the same bytes: the request id makes it
/// idempotent.
#[utoipa::path(post, path = "/v1/sync", tag = "phones",
    security(("bearer" = [])),
    request_body(
        description = "One zstd frame (with content checksum) holding a postcard `SyncRequest`; \
                       see docs/protocol.md.",
        content(("application/vnd.songpei.sync.v1+postcard"), ("application/octet-stream"))
    ),
    responses(
        (status = 200, description = "One zstd frame (with content checksum) holding a postcard \
                                      `SyncResponse`; see docs/protocol.md.",
            content_type = "application/vnd.songpei.sync.v1+postcard"),
        (status = 400, body = crate::error::ErrorBody, description = "`empty_body`, \
            `malformed_body`, `unsupported_version`, `malformed_changes`, `compressed_changes`, \
            `unsupported_operation`, `bad_request`: the request is not a valid sync request."),
        (status = 403, body = crate::error::ErrorBody, description = "`out_of_scope`: a \
            document lies outside the phone's district or villages; `foreign_actor`: changes of \
            another device's actor; `not_allowed`: the role may not write this kind of document."),
        (status = 409, body = crate::error::ErrorBody, description = "`request_id_reused`: the \
            request id was used before for different content."),
        (status = 413, body = crate::error::ErrorBody, description = "`body_too_large`, \
            `decompressed_too_large`, `document_too_large`: over the server's caps."),
        (status = 415, body = crate::error::ErrorBody, description = "`not_compressed`: the \
            body is not a zstd frame."),
        (status = 422, body = crate::error::ErrorBody, description = "`schema_violation`: a \
            document would break the schema after the merge."),
        office::openapi::Token,
        office::openapi::Limits,
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited`: too many \
            requests from this device or address; `too_much_in_one_request`, `too_many_changes`, \
            `too_many_ops`: split the push.",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        office::openapi::Storage,
    ))]
async fn sync_handler(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let grant = {
        let s = state.clone();
        tokio::task::spawn_blocking(move || auth::authenticate(&s, &headers))
            .await
            .map_err(|_| ApiError::Internal)??
    };
    state.rate.device(&grant.device)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(state.config.limits.max_body_bytes)
        } else {
            ApiError::BadRequest("the body could not be read".into())
        }
    })?;
    let s = state.clone();
    let response = tokio::task::spawn_blocking(move || sync::handle(&s, &grant, &body))
        .await
        .map_err(|_| ApiError::Internal)??;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], response))
}

/// The trainee cards of a class, signed by the district, for the phone to print.
#[utoipa::path(post, path = "/v1/cards", tag = "phones",
    security(("bearer" = [])),
    request_body = songpei_core::sync::protocol::CardsRequest,
    responses(
        (status = 200, description = "One card per trainee on the roster, and the district's \
            card keys.", body = songpei_core::sync::protocol::CardsResponse),
        (status = 400, body = crate::error::ErrorBody, description = "`bad_request`: the body \
            is not a cards request."),
        (status = 403, body = crate::error::ErrorBody, description = "`out_of_scope`: the class \
            is outside this phone's villages."),
        (status = 404, body = crate::error::ErrorBody, description = "`not_found`: the class is \
            not on the server; sync first."),
        office::openapi::Token,
        office::openapi::Limits,
        office::openapi::Storage,
    ))]
async fn cards_handler(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<
        axum::Json<songpei_core::sync::protocol::CardsRequest>,
        axum::extract::rejection::JsonRejection,
    >,
) -> Result<axum::Json<songpei_core::sync::protocol::CardsResponse>, ApiError> {
    let axum::Json(req) =
        body.map_err(|_| ApiError::BadRequest("the body is not a cards request".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let grant = auth::authenticate(&s, &headers)?;
        s.rate.device(&grant.device)?;
        cards(&s, &grant, req.class).map(axum::Json)
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

fn cards(
    state: &AppState,
    grant: &accounts::DeviceGrant,
    class: uuid::Uuid,
) -> Result<songpei_core::sync::protocol::CardsResponse, ApiError> {
    let store = state.store.lock().map_err(|_| ApiError::Internal)?;
    let conn = store.conn();
    let class = class.to_string();
    let village = signin::class_village(conn, &class)?.ok_or_else(|| {
        ApiError::NotFound(format!("class {class} is not on the server; sync first"))
    })?;
    if !grant.villages.contains(&village) {
        return Err(ApiError::OutOfScope(format!(
            "class {class} is outside this phone's villages"
        )));
    }
    let district =
        songpei_core::ids::DistrictCode::parse(&grant.district).ok_or(ApiError::NotInitialised)?;
    let now = chrono::Utc::now().timestamp_millis();
    let roster = signin::roster(conn, &class)?;
    let ids: Vec<_> = roster.iter().map(|(t, _)| *t).collect();
    let cards = signin::sign_cards(conn, &district, &ids, now)?;
    audit::append(
        conn,
        now,
        &[audit::Entry::new(
            format!("device:{}", grant.device),
            "issue_cards",
            class.clone(),
            serde_json::json!({ "cards": cards.len() }),
        )],
    )?;
    Ok(songpei_core::sync::protocol::CardsResponse {
        cards: cards
            .iter()
            .map(|c| songpei_core::sync::protocol::IssuedCard {
                trainee: c.trainee.uuid(),
                text: c.to_text(),
            })
            .collect(),
        card_keys: signin::card_key_set(conn)?,
    })
}

/// Counts every request against its address's quota (requests without a peer address, as in
/// tests that drive the router directly, are not counted).
async fn limit_ip(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer
        && let Err(e) = state.rate.ip(ip)
    {
        return e.into_response();
    }
    next.run(req).await
}

/// Every route, each registered from its handler's `#[utoipa::path]`: the router and the OpenAPI
/// document come out of this one value, so no route is served without being described, and none
/// is described that is not served. [`app`] serves it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<office::openapi::Base as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .routes(routes!(sync_handler))
        .routes(routes!(auth::enroll_handler))
        .routes(routes!(auth::challenge_handler))
        .routes(routes!(auth::token_handler))
        .routes(routes!(cards_handler))
        .merge(office::routes())
        .merge(office::web::routes())
}

/// The HTTP routes of [`routes()`], with the layers every request passes: the body cap, the
/// per-address rate limit and the request timeout.
pub fn app(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    let timeout = state.config.request_timeout;
    // Built once a process: describing the routes costs far more than routing them, and the
    // in-memory transport of tests and fuzz targets builds an app for every request.
    static PARTS: std::sync::OnceLock<(Router<AppState>, office::openapi::Document)> =
        std::sync::OnceLock::new();
    let (router, doc) = PARTS
        .get_or_init(|| {
            let (router, doc) = routes().split_for_parts();
            (router, office::openapi::Document(Arc::new(doc)))
        })
        .clone();
    router
        .layer(axum::Extension(doc))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_ip,
        ))
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
    // Opening PostgreSQL blocks: off the async threads.
    let (state, district) = tokio::task::spawn_blocking(move || {
        let state = AppState::open(config)?;
        let district = state
            .store
            .lock()
            .ok()
            .and_then(|s| accounts::district(s.conn()).ok().flatten());
        Ok::<_, String>((state, district))
    })
    .await
    .map_err(|e| format!("cannot open the store: {e}"))??;
    match district {
        Some(d) => tracing::info!(district = %d.code, "serving the district"),
        _ => tracing::warn!(
            "no district yet: phones cannot enroll until `songpei-server admin init --district CODE --name NAME`"
        ),
    }
    let compactor = {
        let store = state.store.clone();
        let rate = state.rate.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(compact_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let store = store.clone();
                rate.prune();
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
    let store = state.store.clone();
    let drain = state.config.request_timeout + std::time::Duration::from_secs(5);
    serve(listener, app(state), shutdown, drain).await;
    compactor.abort();
    let _ = compactor.await;
    // The last handle on the store closes it, off the async threads: closing a PostgreSQL
    // connection blocks.
    let _ = tokio::task::spawn_blocking(move || drop(store)).await;
    Ok(())
}

/// How long a client may take to send a request's headers, including the wait for the next
/// request on a connection kept alive: an idle or trickling connection is closed after it. (The
/// body is bounded by the request timeout.)
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Accepts connections until `shutdown`, then lets those open finish their requests (for at most
/// `drain`). Each request carries its peer address for the per-address rate limits.
async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    drain: std::time::Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HEADER_TIMEOUT));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or the peer gave up before the accept: wait a
                    // little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte: a connection that never sends one
            // is closed here.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let service = hyper::service::service_fn(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), req)
                },
            );
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // A connection that ends in an error (reset, header timeout) is the client's affair.
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
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

//! The server as a whole: the state every handler shares ([`AppState`], its keys and store), the
//! router with its layers ([`app`]), and the accept loop with the background compactor ([`run`]).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, Config, accounts, office, phones};

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

/// Counts every request against its address's quota (requests without a peer address, as in
/// tests that drive the router directly, are not counted).
async fn limit_ip(
    State(state): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| client(c.0.ip(), req.headers(), &state.config.trusted_proxies));
    if let Some(ip) = peer
        && let Err(e) = state.rate.ip(ip)
    {
        crate::metrics::refused("ip");
        return e.into_response();
    }
    req.extensions_mut().insert(Peer(peer));
    next.run(req).await
}

/// The client behind a connection from `peer`: `peer` itself, unless it is a trusted proxy, in
/// which case the nearest address in `X-Forwarded-For` that is not a trusted proxy (proxies append
/// the address they received from, so addresses to the left of an untrusted one may be forged and
/// are never read).
pub(crate) fn client(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        // An address, or one with a port (`1.2.3.4:5678`, `[2001:db8::1]:80`).
        let hop = hop.trim();
        let parsed = hop
            .parse::<std::net::IpAddr>()
            .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()))
            .map(|ip| ip.to_canonical());
        match parsed {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A garbled entry: what is left of it cannot be believed.
            Err(_) => break,
        }
    }
    client
}

/// The address a request came from, as handlers see it (`None` for a request without one, as in
/// tests that drive the router in memory).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub Option<std::net::IpAddr>);

impl Peer {
    /// The source a login throttle counts against: the address, or for IPv6 its /64 (one
    /// household's or one host's whole range, which a stranger can spread requests over).
    pub(crate) fn throttle_key(self) -> String {
        match self.0.map(|ip| ip.to_canonical()) {
            Some(std::net::IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("net:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(ip) => format!("address:{ip}"),
            None => "address:unknown".to_owned(),
        }
    }

    /// The source of a refusal: `address:<ip>`.
    pub(crate) fn source(self) -> String {
        self.0.map_or_else(
            || "address:unknown".to_owned(),
            |ip| format!("address:{ip}"),
        )
    }
}

/// Refuses a state-changing request to the office's API from another site: its `Origin` must be
/// the configured public URL's (or, without one, name the request's own `Host`), and a browser's
/// `Sec-Fetch-Site: cross-site` is refused. Requests without either header come from programs, not
/// from a page in a browser, and carry no ambient cookie to abuse.
async fn same_site(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{Method, header};
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !changes || !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let h = req.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let cross = match text(header::ORIGIN.as_str()) {
        Some(origin) => {
            let origin = origin.trim().to_ascii_lowercase();
            match state.config.office.origin() {
                Some(want) => origin != want,
                None => {
                    let host = text(header::HOST.as_str())
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                    origin
                        .split_once("://")
                        .is_none_or(|(_, authority)| authority != host)
                }
            }
        }
        None => text("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")),
    };
    if cross {
        return crate::ApiError::CrossSite.into_response();
    }
    next.run(req).await
}

/// Every route, each registered from its handler's `#[utoipa::path]`: the router and the OpenAPI
/// document come out of this one value, so no route is served without being described, and none
/// is described that is not served. [`app`] serves it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<office::openapi::Base as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .routes(routes!(crate::metrics::metrics))
        .merge(phones::routes())
        .merge(office::routes())
        .merge(office::web::routes())
}

/// The HTTP routes of [`routes()`], with the layers every request passes: the body cap, the
/// per-address rate limit and the request timeout.
pub fn app(state: AppState) -> Router {
    // The metrics recorder from the first request on.
    crate::metrics::handle();
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
            same_site,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_ip,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
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
        let refusals = state.refusals.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(compact_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let store = store.clone();
                rate.prune();
                let refusals = refusals.clone();
                let done = tokio::task::spawn_blocking(move || match store.lock() {
                    Ok(mut s) => {
                        let now = chrono::Utc::now().timestamp_millis();
                        if let Err(e) = refusals.flush(s.conn(), now, false) {
                            tracing::error!(error = %e, "could not audit the refusals");
                        }
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
    let refusals = state.refusals.clone();
    let drain = state.config.request_timeout + std::time::Duration::from_secs(5);
    serve(listener, app(state), shutdown, drain).await;
    compactor.abort();
    let _ = compactor.await;
    // The refusals counted so far are audited; the last handle on the store closes it, off the
    // async threads: closing a PostgreSQL connection blocks.
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(s) = store.lock()
            && let Err(e) = refusals.flush(s.conn(), chrono::Utc::now().timestamp_millis(), true)
        {
            tracing::error!(error = %e, "could not audit the refusals");
        }
        drop(store)
    })
    .await;
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
    use super::client;

    #[test]
    fn the_client_is_read_from_x_forwarded_for_only_through_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = ["127.0.0.1", "10.0.0.0/8"]
            .iter()
            .map(|p| crate::config::parse_proxy(p).expect("proxy"))
            .collect();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        // (peer, X-Forwarded-For, client)
        for (peer, forwarded, want) in [
            // Straight from the client: its header is not believed.
            ("203.0.113.9", Some("198.51.100.1"), "203.0.113.9"),
            // Through the proxy.
            ("127.0.0.1", Some("198.51.100.1"), "198.51.100.1"),
            // A client forging an address to the left: the proxy appended the real one.
            ("127.0.0.1", Some("1.2.3.4, 198.51.100.1"), "198.51.100.1"),
            // Two trusted proxies in a row.
            ("127.0.0.1", Some("198.51.100.1, 10.1.2.3"), "198.51.100.1"),
            // No header, or nothing usable: the proxy itself.
            ("127.0.0.1", None, "127.0.0.1"),
            ("127.0.0.1", Some("garbage"), "127.0.0.1"),
            // Garbage left of a good entry is never read.
            ("127.0.0.1", Some("garbage, 198.51.100.1"), "198.51.100.1"),
            ("127.0.0.1", Some("2001:db8::1"), "2001:db8::1"),
            // Ports, brackets, an IPv4-mapped proxy.
            ("127.0.0.1", Some("198.51.100.1:5678"), "198.51.100.1"),
            ("127.0.0.1", Some("[2001:db8::1]:80"), "2001:db8::1"),
            ("::ffff:127.0.0.1", Some("198.51.100.1"), "198.51.100.1"),
            ("::ffff:203.0.113.9", Some("198.51.100.1"), "203.0.113.9"),
        ] {
            let mut h = axum::http::HeaderMap::new();
            if let Some(f) = forwarded {
                h.insert("x-forwarded-for", f.parse().expect("header"));
            }
            assert_eq!(
                client(ip(peer), &h, &trusted),
                ip(want),
                "{peer} {forwarded:?}"
            );
        }
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.1".parse().expect("header"));
        assert_eq!(
            client(ip("127.0.0.1"), &h, &[]),
            ip("127.0.0.1"),
            "no proxy trusted"
        );
    }
}

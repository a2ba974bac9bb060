//! What the server does, for its operators: `GET /metrics` in Prometheus' text format, through the
//! `metrics` facade and its Prometheus exporter. Labels are routes (as templates, never with ids),
//! methods, statuses and fixed names: no personal data, no document or device id.
//!
//! - `songpei_http_requests_total{route, method, status}` and
//!   `songpei_http_request_seconds{route}`: every request;
//! - `songpei_sync_seconds`: a phone's sync, from body to answer;
//! - `songpei_docs_merged_total`, `songpei_sync_bytes_in_total`, `songpei_sync_bytes_out_total`;
//! - `songpei_store_wait_seconds`: time spent waiting for the store;
//! - `songpei_refused_total{limit}`: requests refused by a rate limit (`ip`, `device`, `login`);
//! - `songpei_logins_total{outcome}`: dashboard logins (`ok`, `refused`, `throttled`).
//!
//! Only a request from the server's own machine, or one bearing `metrics_token`, reads them.

use std::sync::OnceLock;

use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Seconds, for the histograms: from a millisecond to two minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// The process's recorder, installed the first time it is asked for (a process may run several
/// servers, as the tests do: they share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder installed first (a test harness's) leaves this one unread.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Counts a request and times it, by its route's template.
pub(crate) async fn track(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // A made-up method is one label, not one series each.
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!("songpei_http_request_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("songpei_http_requests_total", "route" => route, "method" => method,
        "status" => status)
    .increment(1);
    resp
}

/// A refusal by one of the rate limits.
pub(crate) fn refused(limit: &'static str) {
    metrics::counter!("songpei_refused_total", "limit" => limit).increment(1);
}

/// The server's metrics, in Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format.", content_type = "text/plain"),
        (status = 403, body = crate::error::ErrorBody,
            description = "`not_allowed`: only the server's machine or `metrics_token` reads them."),
        crate::office::openapi::Limits,
    ))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    connection: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    // From this machine, and not through a proxy on it: the connection's own address, never one
    // a trusted proxy forwards for, and no forwarding header at all.
    let local = connection.is_some_and(|c| {
        let ip = c.0.0.ip().to_canonical();
        ip.is_loopback() && !state.config.trusted_proxies.iter().any(|n| n.contains(&ip))
    }) && !headers.contains_key("x-forwarded-for")
        && !headers.contains_key(header::FORWARDED);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_ok = match (&state.config.metrics_token, bearer) {
        (Some(want), Some(got)) => {
            use sha2::Digest;
            // Compared as digests: the time taken says nothing of the token.
            sha2::Sha256::digest(want.as_bytes()) == sha2::Sha256::digest(got.as_bytes())
        }
        _ => false,
    };
    if !local && !token_ok {
        return crate::ApiError::NotAllowed("metrics are for the server's operators".into())
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
        .into_response()
}

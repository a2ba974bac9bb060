//! The phones' side: sync (`POST /v1/sync`), enrollment and access tokens (`auth`), trainee cards
//! (`cards`) and the per-device and per-address rate limits (`ratelimit`).

pub(crate) mod auth;
mod cards;

pub(crate) mod sync;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use songpei_core::sync::protocol::CONTENT_TYPE;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::{AppState, office};

/// The phones' routes, each registered from its handler's `#[utoipa::path]`.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(sync_handler))
        .routes(routes!(auth::enroll_handler))
        .routes(routes!(auth::challenge_handler))
        .routes(routes!(auth::token_handler))
        .routes(routes!(cards::cards_handler))
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

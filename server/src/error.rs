//! The server's errors and how they reach a client: an HTTP status and a JSON body with a stable
//! machine-readable `code`. Messages never hold personal data.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use songpei_core::sync::changes::ChangesError;
use songpei_core::sync::protocol::WireError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body could not be decoded.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The body is larger than the cap.
    #[error("the body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// Change bytes were refused.
    #[error("document {doc}: {err}")]
    Changes {
        /// Document.
        doc: String,
        /// Why.
        err: ChangesError,
    },
    /// One document's push is larger than the cap.
    #[error("{0}")]
    DocumentTooLarge(String),
    /// The request asks for more than one request may hold.
    #[error("{0}")]
    TooMuch(String),
    /// A field of the request is not valid.
    #[error("{0}")]
    BadRequest(String),
    /// A document lies outside the phone's district or villages.
    #[error("{0}")]
    OutOfScope(String),
    /// A document would break the schema after the merge.
    #[error("a document does not follow the schema: {0}")]
    Schema(String),
    /// A request id was reused with other content.
    #[error("this request id was already used for a different request")]
    RequestIdReused,
    /// Storage failed; nothing was acknowledged.
    #[error("the server could not store the request; try again")]
    Unavailable,
    /// A bug.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Wire(w) => w.code(),
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::DocumentTooLarge(_) => "document_too_large",
            ApiError::Changes { err, .. } => err.code(),
            ApiError::TooMuch(_) => "too_much_in_one_request",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::OutOfScope(_) => "out_of_scope",
            ApiError::Schema(_) => "schema_violation",
            ApiError::RequestIdReused => "request_id_reused",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Wire(WireError::TooLarge { .. })
            | ApiError::BodyTooLarge(_)
            | ApiError::DocumentTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Wire(WireError::NotCompressed) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Wire(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Changes {
                err: ChangesError::TooManyChanges { .. } | ChangesError::TooManyOps { .. },
                ..
            }
            | ApiError::TooMuch(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Changes {
                err: ChangesError::TooLarge { .. },
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Changes { .. } => StatusCode::BAD_REQUEST,
            ApiError::OutOfScope(_) => StatusCode::FORBIDDEN,
            ApiError::Schema(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RequestIdReused => StatusCode::CONFLICT,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        tracing::error!(error = %e, "storage error");
        ApiError::Unavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({
            "code": self.code(),
            "message": self.to_string(),
        }));
        let mut resp = (status, body).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        resp
    }
}

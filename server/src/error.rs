//! The server's errors and how they reach a client: an HTTP status and a JSON body with a stable
//! machine-readable `code`. Messages never hold personal data.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use songpei_core::sync::changes::ChangesError;
use songpei_core::sync::protocol::WireError;
use utoipa::ToSchema;

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
    /// No valid credentials; the code says which (`missing_token`, `invalid_token`,
    /// `token_expired`, `device_revoked`, `bad_code`, `bad_signature`, `bad_challenge`,
    /// `unknown_device`).
    #[error("not authorised: {0}")]
    Unauthorized(&'static str),
    /// The request conflicts with what is registered (`device_taken`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Changes whose actor is not the sending device's.
    #[error("document {0}: changes of an actor that is not this device's")]
    ForeignActor(String),
    /// The role may not write this kind of document.
    #[error("{0}")]
    NotAllowed(String),
    /// Too many requests from this device or address; retry after the seconds given.
    #[error("too many requests; try again in {0} s")]
    RateLimited(u64),
    /// The server has no district yet.
    #[error("the server has no district yet")]
    NotInitialised,
    /// What the request names is not on the server.
    #[error("{0}")]
    NotFound(String),
    /// A field of a request from the district office is not valid; the body names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as named in the request.
        field: String,
        /// What is wrong, with what to do.
        message: String,
    },
    /// A CSV upload has rows that cannot be taken; nothing was imported.
    #[error("{message}")]
    BadCsv {
        /// Summary.
        message: String,
        /// Every row's problem.
        problems: Vec<CsvProblem>,
    },
    /// A state-changing office request from another site (its `Origin` is not the dashboard's).
    #[error("the request comes from another site than the dashboard's")]
    CrossSite,
    /// The body is not of the type the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
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
            ApiError::Unauthorized(code) | ApiError::Conflict(code) => code,
            ApiError::ForeignActor(_) => "foreign_actor",
            ApiError::NotAllowed(_) => "not_allowed",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::NotInitialised => "not_initialised",
            ApiError::NotFound(_) => "not_found",
            ApiError::Invalid { .. } => "bad_input",
            ApiError::BadCsv { .. } => "bad_csv",
            ApiError::CrossSite => "cross_site_request",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
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
            ApiError::Wire(_)
            | ApiError::BadRequest(_)
            | ApiError::Invalid { .. }
            | ApiError::BadCsv { .. } => StatusCode::BAD_REQUEST,
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
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::ForeignActor(_) | ApiError::NotAllowed(_) | ApiError::CrossSite => {
                StatusCode::FORBIDDEN
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotInitialised => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_transient() {
            // Two servers merging one document, or a database restarting: the phone retries.
            tracing::warn!(error = %e, "storage busy; the request is answered 503");
        } else {
            tracing::error!(error = %e, "storage error");
        }
        ApiError::Unavailable
    }
}

/// The JSON body of every error answer: programs branch on `code`, which never changes meaning; the
/// message is for a person. Described in the OpenAPI document from this type, so the two cannot
/// drift apart.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, such as `invalid_token` or `rate_limited`.
    pub code: String,
    /// With `bad_input`: the field at fault, as named in the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub field: Option<String>,
    /// What went wrong and what to do, for a person; never personal data.
    pub message: String,
    /// With `bad_csv`: every row's problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<CsvProblem>)]
    pub problems: Option<Vec<CsvProblem>>,
}

impl ErrorBody {
    /// The body of `e`.
    pub fn of(e: &ApiError) -> Self {
        let (field, message) = match e {
            ApiError::Invalid { field, message } => (Some(field.clone()), message.clone()),
            _ => (None, e.to_string()),
        };
        Self {
            code: e.code().to_owned(),
            field,
            message,
            problems: match e {
                ApiError::BadCsv { problems, .. } => Some(problems.clone()),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(ErrorBody::of(&self));
        let mut resp = (status, body).into_response();
        if let ApiError::RateLimited(secs) = &self {
            if let Ok(v) = HeaderValue::from_str(&secs.max(&1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        } else if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        resp
    }
}

impl From<songpei_core::validate::Invalid> for ApiError {
    fn from(e: songpei_core::validate::Invalid) -> Self {
        ApiError::Invalid {
            field: e.field.as_str().to_owned(),
            message: e.problem.to_string(),
        }
    }
}

/// A CSV row that could not be imported.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CsvProblem {
    /// 1-based line number.
    #[serde(rename = "row")]
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

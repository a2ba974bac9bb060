//! What a transport is to the sync: the seam that moves a request's bytes to the server and the
//! answer's bytes back (the built-in HTTP one, an app's own, an in-memory one in tests), how it
//! fails, and how a sync fails.

use super::protocol::WireError;
use crate::error::Error;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The core failed.
    #[error(transparent)]
    Core(#[from] Error),
    /// The response could not be decoded.
    #[error("the server's response could not be read: {0}")]
    Wire(#[from] WireError),
    /// The response does not answer the request that was sent.
    #[error("the server's response answers another request")]
    Mismatch,
    /// No request is waiting for a response.
    #[error("no sync request is waiting for a response")]
    NothingPending,
    /// The transport failed.
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The server kept asking for more rounds.
    #[error("sync did not finish within {0} round trips")]
    TooManyRounds(usize),
    /// The phone has no device key registered with a server.
    #[error(
        "this phone is not enrolled: ask the district office for an enrollment code and run `songpei enroll`"
    )]
    NotEnrolled,
    /// The district office revoked this device.
    #[error(
        "the district office revoked this device: nothing more is synced; records not yet synced stay on the phone and can be exported"
    )]
    Revoked,
}

/// A failure to move bytes.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection, a timeout, a dropped response: the same request may be sent again.
    #[error("the server could not be reached: {0}")]
    Unreachable(String),
    /// The server refused the request.
    #[error("the server refused the sync ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Message.
        message: String,
        /// The server's `Retry-After`, in seconds: how long to wait before the same request may
        /// succeed (a rate limit, a server busy or out of disk).
        retry_after_secs: Option<u64>,
    },
}

impl TransportError {
    /// True when sending the same bytes again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Unreachable(_) => true,
            TransportError::Refused { status, .. } => *status == 429 || *status >= 500,
        }
    }

    /// How long the server asked to wait before the same request is sent again, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            TransportError::Refused {
                status,
                retry_after_secs: Some(s),
                ..
            } if *status == 429 || *status >= 500 => Some(std::time::Duration::from_secs(*s)),
            _ => None,
        }
    }
}

/// Moves one request's bytes to the server and its response's bytes back.
pub trait Transport {
    /// Sends a sync request `body` with the access `token`; returns the response body.
    fn round_trip(&mut self, body: &[u8], token: &str) -> Result<Vec<u8>, TransportError>;
    /// Posts a JSON `body` to `path` (enrollment and tokens); returns the response body.
    fn call(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError>;
    /// Posts a JSON `body` to `path` with the access `token` (trainee cards).
    fn call_authorized(
        &mut self,
        path: &str,
        body: &[u8],
        token: &str,
    ) -> Result<Vec<u8>, TransportError> {
        let _ = (path, body, token);
        Err(TransportError::Unreachable(
            "this transport makes no authorised calls".into(),
        ))
    }
    /// Waits `wait` before a request the server asked to be sent again later (`Retry-After`).
    /// An app's transport may wait its own way; the default blocks the calling thread, which is
    /// the sync's own.
    fn pause(&mut self, wait: std::time::Duration) {
        std::thread::sleep(wait);
    }
}

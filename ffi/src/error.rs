//! The one error type an app sees, with the kinds it handles differently, and the parsers that
//! turn a bad argument into `BadInput` naming the field.

use chrono::NaiveDate;
use songpei_core::ErrorKind;
use songpei_core::sync::engine::{SyncError, TransportError};
use songpei_core::validate::{Field, Invalid, Problem};

/// Everything that can go wrong, in the few kinds an app handles differently.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SongpeiError {
    /// The input was refused; show the message (it names the field) and let the person correct it.
    #[error("{reason}")]
    BadInput {
        /// What to tell the person.
        reason: String,
        /// The field refused, when one was.
        field: Option<String>,
    },
    /// The key does not open this store.
    #[error("the store key does not open this store")]
    WrongKey,
    /// The phone's storage is full; nothing was written.
    #[error("the phone's storage is full; nothing was written")]
    StorageFull,
    /// The store is not set up: enroll (or set it up offline) first.
    #[error("this phone is not set up yet")]
    NotSetUp,
    /// The phone is not enrolled with a district server.
    #[error("this phone is not enrolled with a district server")]
    NotEnrolled,
    /// The district revoked this device; unsynced records stay on the phone.
    #[error("the district office revoked this device")]
    Revoked,
    /// The server could not be reached, or asked to come back later: try again.
    #[error("{reason}")]
    Network {
        /// What failed.
        reason: String,
    },
    /// The server refused the request.
    #[error("the server refused ({status} {code}): {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code.
        code: String,
        /// The server's message.
        reason: String,
    },
    /// Stored or received data could not be read.
    #[error("{reason}")]
    Corrupt {
        /// What.
        reason: String,
    },
    /// A bug or an environment failure.
    #[error("{reason}")]
    Internal {
        /// What.
        reason: String,
    },
}

impl From<songpei_core::Error> for SongpeiError {
    fn from(e: songpei_core::Error) -> Self {
        let message = e.to_string();
        match e.kind() {
            ErrorKind::BadInput => SongpeiError::BadInput {
                field: match &e {
                    songpei_core::Error::Invalid(i) => Some(i.field.as_str().to_owned()),
                    _ => None,
                },
                reason: message,
            },
            ErrorKind::WrongKey => SongpeiError::WrongKey,
            ErrorKind::StorageFull => SongpeiError::StorageFull,
            ErrorKind::NotInitialised => SongpeiError::NotSetUp,
            ErrorKind::Corrupt => SongpeiError::Corrupt { reason: message },
            ErrorKind::Internal => SongpeiError::Internal { reason: message },
        }
    }
}

impl From<Invalid> for SongpeiError {
    fn from(e: Invalid) -> Self {
        songpei_core::Error::from(e).into()
    }
}

impl From<SyncError> for SongpeiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Core(c) => c.into(),
            SyncError::NotEnrolled => SongpeiError::NotEnrolled,
            SyncError::Revoked => SongpeiError::Revoked,
            SyncError::Transport(TransportError::Refused {
                status,
                code,
                message,
                ..
            }) if !(status == 429 || status >= 500) => SongpeiError::Refused {
                status,
                code,
                reason: message,
            },
            other => SongpeiError::Network {
                reason: other.to_string(),
            },
        }
    }
}

pub(crate) type Result<T, E = SongpeiError> = std::result::Result<T, E>;

pub(crate) fn bad(field: Field, problem: Problem) -> SongpeiError {
    Invalid::new(field, problem).into()
}

pub(crate) fn parse<T: std::str::FromStr>(s: &str, field: Field, problem: Problem) -> Result<T> {
    s.trim().parse().map_err(|_| bad(field, problem))
}

pub(crate) fn parse_day(s: &str, field: Field) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad(field, Problem::BadFormat))
}

pub(crate) fn internal(what: &str) -> SongpeiError {
    SongpeiError::Internal {
        reason: format!("{what} failed"),
    }
}

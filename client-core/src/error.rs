//! The core's error type. Every variant is free of personal data: messages name fields and ids, never
//! the values people typed.

use crate::ids::DocId;
use crate::validate::Invalid;

/// What the caller should do about an error; the one classification the FFI and the CLI map from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input was refused; show the message and let the person correct it.
    BadInput,
    /// The store key does not open this store.
    WrongKey,
    /// The device has no room left; nothing was written.
    StorageFull,
    /// The phone has not been set up (`init`).
    NotInitialised,
    /// Stored or received data does not fit the schema or cannot be decoded.
    Corrupt,
    /// Anything else: a bug or an environment failure.
    Internal,
}

/// The core's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value was refused by validation.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A QR code or image was refused.
    #[error(transparent)]
    Qr(#[from] crate::qr::QrError),
    /// The key does not open the store; the file was left untouched.
    #[error("the store key does not open this store (wrong key, or not a songpei store)")]
    WrongKey,
    /// The disk is full; the transaction was rolled back.
    #[error("the phone's storage is full; free some space and try again (nothing was written)")]
    StorageFull,
    /// The store has no profile yet.
    #[error("this store has not been set up; run init first")]
    NotInitialised,
    /// The store was already set up.
    #[error("this store is already set up")]
    AlreadyInitialised,
    /// A document does not follow the schema.
    #[error("document {doc} does not follow the schema at '{path}'")]
    Schema {
        /// The document.
        doc: DocId,
        /// Where in the document.
        path: String,
    },
    /// Bytes that should hold an automerge document or change could not be used.
    #[error("document data could not be decoded: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// Automerge failed on bytes from elsewhere (see [`crate::contain`]).
    #[error("document data could not be decoded: {0}")]
    Unreadable(#[from] crate::contain::Panicked),
    /// SQLite failed.
    #[error("storage error: {0}")]
    Sqlite(rusqlite::Error),
    /// The store was written by a newer version of songpei.
    #[error("the store has schema version {found}, newer than this app understands ({supported})")]
    NewerSchema {
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
}

impl Error {
    /// How the caller should treat this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) | Error::Qr(_) | Error::AlreadyInitialised => ErrorKind::BadInput,
            Error::WrongKey => ErrorKind::WrongKey,
            Error::StorageFull => ErrorKind::StorageFull,
            Error::NotInitialised => ErrorKind::NotInitialised,
            Error::Schema { .. }
            | Error::Automerge(_)
            | Error::Unreadable(_)
            | Error::NewerSchema { .. } => ErrorKind::Corrupt,
            Error::Sqlite(_) => ErrorKind::Internal,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::StorageFull,
            Some(ErrorCode::NotADatabase) => Error::WrongKey,
            _ => Error::Sqlite(e),
        }
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

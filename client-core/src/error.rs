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
    Qr(#[from] QrError),
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

/// Why a QR text or image was refused. Messages name the code, never the person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// Not a songpei sign-in code at all.
    #[error("this QR code is not a songpei sign-in code")]
    NotSongpei,
    /// A songpei code, but damaged: the wrong length, or characters outside base45.
    #[error("this songpei code is damaged ({0}); scan it again")]
    Malformed(&'static str),
    /// A format version this build does not know.
    #[error("this code has format version {0}, which this app does not know; update the app")]
    UnknownVersion(u8),
    /// A signature algorithm this build does not know.
    #[error("this code uses signature algorithm {0}, which this app does not know")]
    UnknownAlgorithm(u8),
    /// A kind of code this build does not know.
    #[error("this code is of kind {0}, which this app does not know")]
    UnknownKind(u8),
    /// A code of another kind than the step expects.
    #[error("expected {expected}, but this is {found}")]
    WrongKind {
        /// What the step wanted.
        expected: &'static str,
        /// What was scanned.
        found: &'static str,
    },
    /// The signature does not verify: the code was changed, or not made by the key it names.
    #[error("the {0}'s signature does not verify: the code was altered or forged")]
    BadSignature(&'static str),
    /// A card signed by a district key the phone does not know.
    #[error("this card was signed by a key this phone does not know; sync, then scan again")]
    UnknownCardKey,
    /// A card signed by a district key the district has withdrawn.
    #[error("this card was signed by a withdrawn district key; the trainee needs a new card")]
    RevokedCardKey,
    /// A card of another district.
    #[error("this card belongs to another district")]
    OtherDistrict,
    /// The response answers no class code this phone showed for this sign-in.
    #[error(
        "this response answers a class code this phone did not show (another class, another phone, \
         or an old code); ask the trainee to scan the code on screen now"
    )]
    NotShownHere,
    /// The response was signed on the coordinator's own phone.
    #[error("this response was made on this phone; the trainee must answer on their own phone")]
    OwnResponse,
    /// The response came too long after its class code was shown.
    #[error(
        "this response came {age_s} s after its class code was shown; the limit is {limit_s} s. \
         Ask the trainee to scan the code on screen now"
    )]
    Expired {
        /// Seconds since the class code was first shown.
        age_s: i64,
        /// The limit in seconds.
        limit_s: i64,
    },
    /// The phone rebooted since it showed the class code, so the code's age cannot be measured.
    #[error("this phone restarted since it showed that class code; show the class code again")]
    Restarted,
    /// The platform gives no time since boot, which freshness is measured on.
    #[error("this phone cannot tell the time since it started, which sign-in codes need")]
    NoUptime,
    /// This phone's account is not an instructor the class names.
    #[error(
        "only an instructor of this class can witness a trainee's key, and this phone's account is \
         not one (if the coordinator just named it, sync first)"
    )]
    NotAnInstructorHere,
    /// A witnessed key claim the server would not take.
    #[error("this trainee key cannot be registered: {0}")]
    NotRegistrable(&'static str),
    /// A card was scanned with no sign-in under way.
    #[error("show a class code for the sign-in first (or name the class), then scan cards")]
    NoSession,
    /// No QR code could be found or read in an image.
    #[error("no readable QR code in the image")]
    NotFound,
    /// The image could not be decoded.
    #[error("the image could not be read: {0}")]
    BadImage(String),
}

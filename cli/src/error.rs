//! How a command fails: the error every command returns, its exit code and report, and the
//! parsers of command-line values that refuse bad input naming the field.

use chrono::NaiveDate;
use songpei_core::validate::{Field, Invalid, Problem};
use songpei_core::{Error, ErrorKind};

/// A failed command.
#[derive(Debug)]
pub(crate) enum CliError {
    /// From the core.
    Core(Error),
    /// The command line itself was wrong.
    Usage(String),
    /// Reading or writing files or streams failed.
    Io(std::io::Error),
    /// Sync failed.
    Sync(songpei_core::sync::engine::SyncError),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Core(e)
    }
}

impl From<Invalid> for CliError {
    fn from(e: Invalid) -> Self {
        CliError::Core(e.into())
    }
}

impl CliError {
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    /// 2 when the input was refused, 1 for everything else.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Core(e) if e.kind() == ErrorKind::BadInput => 2,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            CliError::Core(e) => match e.kind() {
                ErrorKind::BadInput => "invalid",
                ErrorKind::WrongKey => "wrong_key",
                ErrorKind::StorageFull => "storage_full",
                ErrorKind::NotInitialised => "not_initialised",
                ErrorKind::Corrupt => "corrupt",
                ErrorKind::Internal => "internal",
            },
            CliError::Usage(_) => "usage",
            CliError::Io(_) => "io",
            CliError::Sync(songpei_core::sync::engine::SyncError::Transport(
                songpei_core::sync::engine::TransportError::Refused { .. },
            )) => "refused",
            CliError::Sync(_) => "sync",
        }
    }

    /// Prints the error on stderr, as text or JSON.
    pub(crate) fn report(&self, json: bool) {
        let message = match self {
            CliError::Core(e) => e.to_string(),
            CliError::Usage(m) => m.clone(),
            CliError::Io(e) => format!("file error: {e}"),
            CliError::Sync(e) => format!("sync failed: {e}"),
        };
        if json {
            let mut body = serde_json::json!({ "code": self.code(), "message": message });
            if let CliError::Core(Error::Invalid(inv)) = self
                && let Ok(serde_json::Value::Object(m)) = serde_json::to_value(inv)
                && let Some(b) = body.as_object_mut()
            {
                b.extend(m);
            }
            eprintln!("{}", serde_json::json!({ "error": body }));
        } else {
            eprintln!("error: {message}");
        }
    }
}

pub(crate) fn bad(field: Field, problem: Problem) -> CliError {
    Invalid::new(field, problem).into()
}

pub(crate) fn parse_id<T: std::str::FromStr>(s: &str, field: Field) -> Result<T, CliError> {
    s.parse().map_err(|_| bad(field, Problem::BadFormat))
}

pub(crate) fn parse_catalog<T: std::str::FromStr>(s: &str, field: Field) -> Result<T, CliError> {
    s.parse().map_err(|_| bad(field, Problem::NotInCatalog))
}

pub(crate) fn parse_day(s: &str, field: Field) -> Result<NaiveDate, CliError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad(field, Problem::BadFormat))
}

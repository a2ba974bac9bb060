//! Validation of everything a person types, before anything is written. Each rejection is a
//! [`Invalid`] that names the field and the problem, and never repeats the value (it may be personal
//! data).

mod id_number;
mod name;
mod phone;

use std::fmt;

use serde::Serialize;

pub use id_number::{IdNumber, Sex, check_char};
pub(crate) use name::text_field;
pub use name::{NAME_MAX_CHARS, PersonName, clean_text};
pub use phone::PhoneNumber;

/// A field of a record, as named in errors, JSON and the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Field {
    IdNumber,
    Name,
    Phone,
    Village,
    District,
    Title,
    Occupation,
    Level,
    TrainingType,
    KeyGroup,
    PovertyStatus,
    Household,
    Class,
    Trainee,
    FirstDay,
    LastDay,
    Days,
    Day,
    DailyHours,
    PlannedSize,
    Institution,
    Instructor,
    Venue,
    Gps,
    Reason,
    Status,
    TrainingWish,
    Certificate,
    EnrollmentCode,
    Server,
    StartsAt,
}

impl Field {
    /// The field's name as it appears in JSON and messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            Field::IdNumber => "id_number",
            Field::Name => "name",
            Field::Phone => "phone",
            Field::Village => "village",
            Field::District => "district",
            Field::Title => "title",
            Field::Occupation => "occupation",
            Field::Level => "level",
            Field::TrainingType => "training_type",
            Field::KeyGroup => "key_group",
            Field::PovertyStatus => "poverty_status",
            Field::Household => "household",
            Field::Class => "class",
            Field::Trainee => "trainee",
            Field::FirstDay => "first_day",
            Field::LastDay => "last_day",
            Field::Days => "days",
            Field::Day => "day",
            Field::DailyHours => "daily_hours",
            Field::PlannedSize => "planned_size",
            Field::Institution => "institution",
            Field::Instructor => "instructor",
            Field::Venue => "venue",
            Field::Gps => "gps",
            Field::Reason => "reason",
            Field::Status => "status",
            Field::TrainingWish => "training_wish",
            Field::Certificate => "certificate",
            Field::EnrollmentCode => "enrollment_code",
            Field::Server => "server",
            Field::StartsAt => "starts_at",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value was refused. The messages speak of the value's shape, never of the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
#[allow(missing_docs)]
pub enum Problem {
    Missing,
    TooLong { max_chars: usize },
    WrongLength { expected: usize, found: usize },
    FirstGenerationIdNumber,
    NotDigits,
    BadCheckDigit,
    BadRegion,
    BadBirthDate,
    BirthDateInFuture,
    NotMobileNumber,
    DisallowedCharacters,
    NotInCatalog,
    OutOfRange,
    EndsBeforeStart,
    NotInScope,
    NotFound,
    NotEnrolled,
    NotATrainingDay,
    ClassIsFinal,
    AlreadyRegistered { existing: String },
    BadFormat,
    NotAnInstructor,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => write!(f, "is required"),
            Problem::TooLong { max_chars } => write!(f, "is longer than {max_chars} characters"),
            Problem::WrongLength { expected, found } => {
                write!(f, "must have {expected} characters, found {found}")
            }
            Problem::FirstGenerationIdNumber => write!(
                f,
                "is a 15-digit first-generation number; enter the 18-digit number on the current card"
            ),
            Problem::NotDigits => write!(f, "may hold only digits (and a final X)"),
            Problem::BadCheckDigit => {
                write!(f, "has a wrong check digit; look for a mistyped digit")
            }
            Problem::BadRegion => write!(f, "has an invalid region code"),
            Problem::BadBirthDate => write!(f, "holds a birth date that does not exist"),
            Problem::BirthDateInFuture => write!(f, "holds a birth date in the future"),
            Problem::NotMobileNumber => write!(f, "is not an 11-digit mainland mobile number"),
            Problem::DisallowedCharacters => write!(f, "holds characters that are not allowed"),
            Problem::NotInCatalog => write!(f, "is not a known value"),
            Problem::OutOfRange => write!(f, "is out of range"),
            Problem::EndsBeforeStart => write!(f, "is before the first day"),
            Problem::NotInScope => write!(f, "is not one of this phone's villages"),
            Problem::NotFound => write!(f, "does not exist on this phone"),
            Problem::NotEnrolled => write!(f, "is not enrolled in this class"),
            Problem::NotATrainingDay => write!(f, "is not a training day of this class"),
            Problem::ClassIsFinal => write!(f, "is closed or cancelled"),
            Problem::AlreadyRegistered { existing } => {
                write!(f, "is already registered as trainee {existing}")
            }
            Problem::BadFormat => write!(f, "is not in the expected format"),
            Problem::NotAnInstructor => write!(
                f,
                "is not an instructor account of the class's village (sync to learn new ones)"
            ),
        }
    }
}

/// A refused input: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field} {problem}")]
pub struct Invalid {
    /// The field that was refused.
    pub field: Field,
    /// Why.
    #[serde(flatten)]
    pub problem: Problem,
}

impl Invalid {
    /// A refusal of `field` for `problem`.
    pub fn new(field: Field, problem: Problem) -> Self {
        Self { field, problem }
    }
}

/// Turns full-width digits and letters (as typed with a Chinese input method) into ASCII.
pub(crate) fn halfwidth(c: char) -> char {
    match c {
        '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
            char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
        }
        '\u{3000}' => ' ',
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_field_not_value() {
        let e = Invalid::new(Field::IdNumber, Problem::BadCheckDigit);
        assert_eq!(
            e.to_string(),
            "id_number has a wrong check digit; look for a mistyped digit"
        );
        let json = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(json["field"], "id_number");
        assert_eq!(json["problem"], "bad_check_digit");
    }

    #[test]
    fn fullwidth_to_ascii() {
        let s: String = "４５０８０２ｘＸ".chars().map(halfwidth).collect();
        assert_eq!(s, "450802xX");
    }
}

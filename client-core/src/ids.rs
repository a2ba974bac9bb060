//! Identifiers. Every record is named by a UUID; inside Rust each kind of id is its own type so that a
//! trainee id can never be passed where a class id is expected. At the FFI and in documents they are
//! plain strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A training class (培训班); also the id of its document.
    ClassId
);
uuid_id!(
    /// A trainee (学员); also the id of the trainee's personal-data document.
    TraineeId
);
uuid_id!(
    /// A household (户); also the id of its document.
    HouseholdId
);
uuid_id!(
    /// One attendance fact (a sign-in or a sign-out).
    AttendanceId
);
uuid_id!(
    /// A phone (or other device) that writes records.
    DeviceId
);

/// The id of any stored document: every document is named by the id of the record it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DocId(Uuid);

impl DocId {
    /// The underlying UUID.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for DocId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(Self)
    }
}

impl From<ClassId> for DocId {
    fn from(id: ClassId) -> Self {
        Self(id.0)
    }
}
impl From<TraineeId> for DocId {
    fn from(id: TraineeId) -> Self {
        Self(id.0)
    }
}
impl From<HouseholdId> for DocId {
    fn from(id: HouseholdId) -> Self {
        Self(id.0)
    }
}

/// A six-digit district code (县/区/旗), e.g. `450802`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DistrictCode(String);

/// A twelve-digit village code (村), whose first six digits are its district's code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VillageCode(String);

impl DistrictCode {
    /// Parses a district code: exactly six ASCII digits, not `000000`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) && s != "000000")
            .then(|| Self(s.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl VillageCode {
    /// Parses a village code: exactly twelve ASCII digits with a non-zero district part.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) && &s[..6] != "000000")
            .then(|| Self(s.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The district this village lies in.
    pub fn district(&self) -> DistrictCode {
        DistrictCode(self.0[..6].to_owned())
    }
}

impl fmt::Display for DistrictCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for VillageCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_as_text() {
        let id = ClassId::random();
        assert_eq!(id.to_string().parse::<ClassId>().ok(), Some(id));
        assert_eq!(DocId::from(id).to_string(), id.to_string());
    }

    #[test]
    fn place_codes() {
        assert!(DistrictCode::parse("450802").is_some());
        assert!(DistrictCode::parse("000000").is_none());
        assert!(DistrictCode::parse("45080").is_none());
        let v = VillageCode::parse("450802101201").expect("valid");
        assert_eq!(v.district().as_str(), "450802");
        assert!(VillageCode::parse("000000101201").is_none());
        assert!(VillageCode::parse("4508021012a1").is_none());
    }
}

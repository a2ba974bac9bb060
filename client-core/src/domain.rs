//! The records of village training as Rust values: what a coordinator enters (`New*`) and what is
//! read back from the documents. See `doc` for how they are laid out in automerge.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::catalog::{
    Certificate, ClassStatus, CompletionResult, KeyGroup, Level, PovertyStatus, TrainingType,
};
use crate::ids::{
    AttendanceId, ClassId, DeviceId, DistrictCode, HouseholdId, TraineeId, VillageCode,
};
use crate::validate::{IdNumber, PersonName, PhoneNumber, Sex};

/// A GPS fix.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    /// Latitude in degrees (WGS-84).
    pub lat: f64,
    /// Longitude in degrees (WGS-84).
    pub lon: f64,
    /// Accuracy radius in metres, when the phone reports it.
    pub accuracy_m: Option<f64>,
}

/// Where a class is held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Venue {
    /// The venue's name, e.g. the village hall.
    pub name: String,
    /// Its location, when known.
    pub gps: Option<Gps>,
}

/// A class as the coordinator plans it. Free text is cleaned and checked by `Phone::create_class`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewClass {
    /// Short title, e.g. 「2026年大湾村中式烹调师培训班」.
    pub title: String,
    /// Village the class is held in; must be one of the phone's villages.
    pub village: String,
    /// Occupation (职业/工种), free text for now.
    pub occupation: String,
    /// Skill level.
    pub level: Level,
    /// Kind of training.
    pub training_type: TrainingType,
    /// Whether the class is subsidised (补贴性).
    pub subsidised: bool,
    /// Training institution running the class.
    pub institution: Option<String>,
    /// Instructors' names.
    pub instructors: Vec<String>,
    /// The instructors' accounts (id or login name, as the server sends them to the phone): who
    /// may witness trainee keys and co-sign card sign-ins in this class.
    #[serde(default)]
    pub instructor_accounts: Vec<String>,
    /// Venue.
    pub venue: Option<Venue>,
    /// First training day (local date).
    pub first_day: NaiveDate,
    /// Last training day (local date), not before the first.
    pub last_day: NaiveDate,
    /// Training hours per day.
    pub daily_hours: Option<f64>,
    /// When training starts each day (local time); sign-ins far outside the day's hours are
    /// flagged.
    pub starts_at: Option<chrono::NaiveTime>,
    /// Whether a day counts only with a sign-out as well as a sign-in.
    pub sign_out_required: bool,
    /// Planned number of trainees.
    pub planned_size: Option<u32>,
}

/// Which household a new trainee belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdChoice {
    /// No household recorded.
    None,
    /// An existing household on this phone.
    Existing(HouseholdId),
    /// A new household headed by this trainee, with this poverty status.
    New(PovertyStatus),
}

/// A trainee as the coordinator registers them; raw text is validated by `Phone::add_trainee`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTrainee {
    /// Real name as on the ID card.
    pub name: String,
    /// 18-digit resident ID number.
    pub id_number: String,
    /// Mobile number, if the trainee has one.
    pub phone: Option<String>,
    /// Village code; one of the phone's villages.
    pub village: String,
    /// Household.
    pub household: HouseholdChoice,
    /// Key groups (重点群体).
    pub key_groups: Vec<KeyGroup>,
    /// Training wish (培训意愿), free text.
    pub training_wish: Option<String>,
    /// When the trainee consented to their data being kept (ms since the Unix epoch, UTC).
    pub consent_at_ms: i64,
}

/// A household as registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewHousehold {
    /// Village code.
    pub village: String,
    /// Name of the head of the household.
    pub head_name: Option<String>,
    /// Poverty status.
    pub poverty_status: PovertyStatus,
}

/// Sign-in or sign-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceKind {
    /// 签到
    SignIn,
    /// 签退
    SignOut,
}

impl AttendanceKind {
    /// The code stored in documents.
    pub fn code(&self) -> &'static str {
        match self {
            AttendanceKind::SignIn => "in",
            AttendanceKind::SignOut => "out",
        }
    }
}

/// How an attendance fact was taken. QR methods carry their proofs, which the server verifies again;
/// a reader that meets a method it does not know keeps it as `Other` rather than failing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum AttendanceMethod {
    /// Entered by hand by the coordinator, with the reason.
    Hand {
        /// Why it was entered by hand.
        reason: String,
    },
    /// The trainee's phone answered the coordinator's class code (flow A): both signed codes.
    Qr {
        /// The class code the coordinator's phone showed (its bytes, with its signature).
        code: Vec<u8>,
        /// The trainee phone's response (its bytes, with its signature).
        response: Vec<u8>,
        /// How long after first showing the code the response was taken, on the coordinator
        /// phone's time since boot.
        code_age_ms: i64,
    },
    /// The coordinator scanned the trainee's printed card (flow B).
    Card {
        /// The card (its bytes, with the district's signature).
        card: Vec<u8>,
        /// The coordinator device's signature over the card, the sign-in, the time and the fix.
        signature: Vec<u8>,
    },
    /// A method from a newer version of the app.
    Other {
        /// Its code.
        code: String,
    },
}

/// An attendance fact to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAttendance {
    /// The class.
    pub class: ClassId,
    /// The trainee; must be enrolled.
    pub trainee: TraineeId,
    /// Training day (local date).
    pub day: NaiveDate,
    /// Sign-in or sign-out.
    pub kind: AttendanceKind,
    /// How it was taken.
    pub method: AttendanceMethod,
    /// Where, if the phone had a fix.
    pub gps: Option<Gps>,
}

/// A recorded attendance fact. Facts are only ever added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attendance {
    /// Its id.
    pub id: AttendanceId,
    /// The trainee.
    pub trainee: TraineeId,
    /// Training day.
    pub day: NaiveDate,
    /// Sign-in or sign-out.
    pub kind: AttendanceKind,
    /// The recording phone's clock, ms since the Unix epoch (may be wrong).
    pub at_ms: i64,
    /// Server time minus the phone's clock, carried forward on the time since boot from the last
    /// sync; `None` when unknown (the phone restarted since, or never synced): "time unverified".
    pub clock_offset_ms: Option<i64>,
    /// The recording device.
    pub device: DeviceId,
    /// How it was taken.
    pub method: AttendanceMethod,
    /// Where.
    pub gps: Option<Gps>,
}

impl Attendance {
    /// The phone's clock corrected by the offset to the server's, when known.
    pub fn corrected_ms(&self) -> Option<i64> {
        self.clock_offset_ms.map(|o| self.at_ms.saturating_add(o))
    }
}

/// A trainee's place in a class roster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The trainee.
    pub trainee: TraineeId,
    /// When enrolled (phone clock, ms).
    pub enrolled_at_ms: i64,
}

/// How a trainee finished a class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Assessment result.
    pub result: CompletionResult,
    /// Certificate issued, if any.
    pub certificate: Option<Certificate>,
    /// When recorded (phone clock, ms).
    pub at_ms: i64,
}

/// Everything a class document holds, read back with conflicts resolved deterministically (the
/// conflicts themselves are reported by the document reader).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Class {
    /// Id.
    pub id: ClassId,
    /// District.
    pub district: DistrictCode,
    /// Village.
    pub village: VillageCode,
    /// Title.
    pub title: String,
    /// Occupation.
    pub occupation: String,
    /// Level.
    pub level: Level,
    /// Training type.
    pub training_type: TrainingType,
    /// Subsidised.
    pub subsidised: bool,
    /// Institution.
    pub institution: Option<String>,
    /// Instructors.
    pub instructors: BTreeSet<String>,
    /// The instructors' account ids.
    pub instructor_accounts: BTreeSet<String>,
    /// Venue.
    pub venue: Option<Venue>,
    /// First training day.
    pub first_day: NaiveDate,
    /// Last training day.
    pub last_day: NaiveDate,
    /// Hours a day.
    pub daily_hours: Option<f64>,
    /// Daily start (local time).
    pub starts_at: Option<chrono::NaiveTime>,
    /// Sign-out required for a day to count.
    pub sign_out_required: bool,
    /// Planned size.
    pub planned_size: Option<u32>,
    /// Status: the furthest state any phone set.
    pub status: ClassStatus,
    /// Roster by trainee.
    pub roster: BTreeMap<TraineeId, Enrolment>,
    /// Attendance facts by id.
    pub attendance: BTreeMap<AttendanceId, Attendance>,
    /// Completions by trainee.
    pub completion: BTreeMap<TraineeId, Completion>,
    /// Trainee phone keys registered in this class, by registration id.
    pub registrations: BTreeMap<String, crate::qr::Registration>,
}

impl Class {
    /// Every training day, first to last.
    pub fn training_days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.first_day
            .iter_days()
            .take_while(|d| *d <= self.last_day)
    }

    /// True if `day` is a training day of this class.
    pub fn is_training_day(&self, day: NaiveDate) -> bool {
        self.first_day <= day && day <= self.last_day
    }
}

/// A trainee's personal record.
#[derive(Clone, Debug, PartialEq)]
pub struct Trainee {
    /// Id.
    pub id: TraineeId,
    /// District.
    pub district: DistrictCode,
    /// Village.
    pub village: VillageCode,
    /// Real name.
    pub name: PersonName,
    /// ID number.
    pub id_number: IdNumber,
    /// Mobile number.
    pub phone: Option<PhoneNumber>,
    /// Household.
    pub household: Option<HouseholdId>,
    /// Key groups.
    pub key_groups: BTreeSet<KeyGroup>,
    /// Training wish.
    pub training_wish: Option<String>,
    /// Consent given at (ms).
    pub consent_at_ms: i64,
}

impl Trainee {
    /// Sex, read from the ID number.
    pub fn sex(&self) -> Option<Sex> {
        self.id_number.sex()
    }

    /// Birth date, read from the ID number.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        self.id_number.birth_date()
    }
}

/// A household.
#[derive(Clone, Debug, PartialEq)]
pub struct Household {
    /// Id.
    pub id: HouseholdId,
    /// District.
    pub district: DistrictCode,
    /// Village.
    pub village: VillageCode,
    /// Head of the household.
    pub head_name: Option<PersonName>,
    /// Poverty status.
    pub poverty_status: PovertyStatus,
    /// Members registered as trainees.
    pub members: BTreeSet<TraineeId>,
}

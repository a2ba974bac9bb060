//! The records that cross to Kotlin and Swift: what an app passes in and gets back.

use songpei_core::domain::{AttendanceKind, Gps};

/// A GPS fix.
#[derive(Clone, Copy, Debug, uniffi::Record)]
pub struct GpsFix {
    /// Latitude, degrees (WGS-84).
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy radius in metres.
    pub accuracy_m: Option<f64>,
}

impl From<GpsFix> for Gps {
    fn from(g: GpsFix) -> Self {
        Gps {
            lat: g.lat,
            lon: g.lon,
            accuracy_m: g.accuracy_m,
        }
    }
}

/// Sign-in (签到) or sign-out (签退).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SignKind {
    /// 签到
    In,
    /// 签退
    Out,
}

impl From<SignKind> for AttendanceKind {
    fn from(k: SignKind) -> Self {
        match k {
            SignKind::In => AttendanceKind::SignIn,
            SignKind::Out => AttendanceKind::SignOut,
        }
    }
}

/// A class as the coordinator plans it.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ClassInput {
    /// Title.
    pub title: String,
    /// Village code (12 digits).
    pub village: String,
    /// Occupation (职业/工种).
    pub occupation: String,
    /// Level: a code (`junior` …) or its label (初级工 …).
    pub level: String,
    /// Training type: a code or its label (就业技能培训 …).
    pub training_type: String,
    /// Subsidised.
    pub subsidised: bool,
    /// First training day, `YYYY-MM-DD`.
    pub first_day: String,
    /// Last training day, `YYYY-MM-DD`.
    pub last_day: String,
    /// Hours a day.
    pub daily_hours: Option<f64>,
    /// Daily start, `HH:MM`.
    pub starts_at: Option<String>,
    /// A day counts only with a sign-out too.
    pub sign_out_required: bool,
    /// Venue name.
    pub venue: Option<String>,
    /// Venue location.
    pub venue_gps: Option<GpsFix>,
    /// Institution.
    pub institution: Option<String>,
    /// Instructors.
    pub instructors: Vec<String>,
    /// Planned size.
    pub planned_size: Option<u32>,
    /// The instructors' accounts by login name (see `instructors`): who may witness trainee keys
    /// and co-sign card sign-ins in this class.
    #[uniffi(default)]
    pub instructor_accounts: Vec<String>,
}

/// A trainee as registered.
#[derive(Clone, Debug, uniffi::Record)]
pub struct TraineeInput {
    /// Real name.
    pub name: String,
    /// 18-digit ID number.
    pub id_number: String,
    /// Mobile number.
    pub phone: Option<String>,
    /// Village code.
    pub village: String,
    /// An existing household's id.
    pub household_id: Option<String>,
    /// Or the poverty status of a new household headed by the trainee (脱贫户 …).
    pub new_household_poverty: Option<String>,
    /// Key groups (codes or labels).
    pub key_groups: Vec<String>,
    /// Training wish.
    pub training_wish: Option<String>,
    /// When the trainee consented to their data being kept, ms since the epoch.
    pub consent_at_ms: i64,
}

/// One line of the class list.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ClassSummary {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Village.
    pub village: String,
    /// Status code: planned, running, closed, cancelled.
    pub status: String,
    /// First day.
    pub first_day: String,
    /// Last day.
    pub last_day: String,
    /// Trainees enrolled.
    pub enrolled: u32,
}

/// Whether a place is subsidised, and the rule that decided it.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Subsidy {
    /// Subsidised.
    pub subsidised: bool,
    /// `subsidised`, `class_not_subsidised`, `year_cap_reached` or `same_occupation_and_level`.
    pub decision: String,
    /// The calendar year counted, when the rule is a yearly one.
    pub year: Option<i32>,
    /// Which of the year's subsidised classes this is, when subsidised.
    pub nth: Option<u32>,
}

/// A QR code to show: its text and a PNG of it.
#[derive(Clone, Debug, uniffi::Record)]
pub struct QrImage {
    /// The text in the code.
    pub text: String,
    /// The code as PNG.
    pub png: Vec<u8>,
}

/// What a scanned QR text is.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum ScannedCode {
    /// A coordinator's class code: answer it with `respond`.
    ClassCode {
        /// Class.
        class_id: String,
        /// Day.
        day: String,
        /// In or out.
        kind: SignKind,
    },
    /// A trainee's response: take it with `accept`.
    Response {
        /// Trainee.
        trainee_id: String,
    },
    /// A trainee card: take it with `accept`.
    Card {
        /// Trainee.
        trainee_id: String,
    },
    /// A trainee phone's key claim: witness it with `witness` on an instructor's phone.
    KeyClaim {
        /// Trainee.
        trainee_id: String,
    },
    /// A witnessed key claim: file it with `register_key` on the coordinator's phone.
    WitnessedKey {
        /// Trainee.
        trainee_id: String,
        /// Class.
        class_id: String,
    },
    /// An enrollment code: use it with `enroll`.
    Enrollment {
        /// Server named in the code.
        server: Option<String>,
        /// The code.
        code: String,
    },
}

/// What taking a response or card did.
#[derive(Clone, Debug, uniffi::Record)]
pub struct SignInResult {
    /// A new record was written (false: the trainee was already signed in).
    pub recorded: bool,
    /// The record, when new.
    pub attendance_id: Option<String>,
    /// Who.
    pub trainee_id: String,
    /// The class.
    pub class_id: String,
    /// False when the phone restarted since its last sync: "time unverified".
    pub time_verified: bool,
    /// For a response: whether this phone holds a registration of the answering phone's key to
    /// the trainee (false: the district reviews the sign-in before paying it; register the key).
    pub key_registered: Option<bool>,
}

/// What filing a witnessed key claim did.
#[derive(Clone, Debug, uniffi::Record)]
pub struct KeyRegistration {
    /// A new registration was filed (false: the class already held it).
    pub registered: bool,
    /// The trainee.
    pub trainee_id: String,
    /// The class.
    pub class_id: String,
}

/// An instructor account of this phone's villages.
#[derive(Clone, Debug, uniffi::Record)]
pub struct InstructorInfo {
    /// Account id.
    pub account_id: String,
    /// Login name.
    pub username: String,
    /// Villages.
    pub villages: Vec<String>,
}

/// A value edited on two phones at once.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ConflictInfo {
    /// Document.
    pub doc_id: String,
    /// Where in it.
    pub path: String,
    /// The value every phone shows.
    pub winner: String,
    /// All values.
    pub values: Vec<String>,
}

/// Totals of a sync.
#[derive(Clone, Debug, uniffi::Record)]
pub struct SyncSummary {
    /// Round trips.
    pub round_trips: u32,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Documents pushed.
    pub docs_pushed: u32,
    /// Documents pulled.
    pub docs_pulled: u32,
    /// Times the sync waited because the server asked it to (`Retry-After`).
    pub waits: u32,
    /// More to do: call again.
    pub more: bool,
}

/// A sync request for the app's own HTTP client: POST `body` to `url` with
/// `Authorization: Bearer <token>`, `Content-Type: application/vnd.songpei.sync.v1+postcard`.
#[derive(Clone, Debug, uniffi::Record)]
pub struct PreparedSync {
    /// `<server>/v1/sync`.
    pub url: String,
    /// The request body.
    pub body: Vec<u8>,
    /// The access token.
    pub token: String,
}

/// The result of enrolling.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Enrollment {
    /// This device's id.
    pub device_id: String,
    /// District code.
    pub district: String,
    /// The villages the phone records for.
    pub villages: Vec<String>,
}

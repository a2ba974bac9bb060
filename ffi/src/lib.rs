//! songpei-ffi: the songpei core for Android and iOS through UniFFI. A thin layer: [`SongpeiPhone`]
//! holds the core's phone over its encrypted store; every method converts its arguments, delegates
//! and converts the result. Catalog values are passed as their codes or Chinese labels, dates as
//! `YYYY-MM-DD`, ids as UUID strings. Calls that wait on the network are async and run on a thread
//! of their own, so an app's executor is never blocked.

#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use songpei_core::Phone;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, Gps, HouseholdChoice, NewAttendance, NewClass, NewHousehold,
    NewTrainee, Venue,
};
use songpei_core::ids::{ClassId, HouseholdId, TraineeId};
use songpei_core::qr::{self, Scanned, SignInOutcome};
use songpei_core::store::{ClassFilter, SqliteDocStore};
use songpei_core::sync::engine::SyncLimits;
use songpei_core::validate::{Field, Problem};

mod error;
mod logging;
mod records;

pub use error::SongpeiError;
use error::{Result, bad, internal, parse, parse_day};
pub use records::*;

pub use logging::{LogLevel, Logger, set_logger};

uniffi::setup_scaffolding!();

enum State {
    /// A store not set up yet (a trainee's phone, or before enrollment).
    Bare(SqliteDocStore),
    /// A coordinator's phone.
    Ready(Box<Phone<SqliteDocStore>>),
    /// Taken for a moment during a change of state.
    Moving,
}

/// One phone's encrypted store and everything done with it.
#[derive(uniffi::Object)]
pub struct SongpeiPhone {
    state: Mutex<State>,
    blind_key: BlindIndexKey,
}

impl SongpeiPhone {
    fn with<T>(&self, f: impl FnOnce(&mut Phone<SqliteDocStore>) -> Result<T>) -> Result<T> {
        let mut s = self.state.lock().map_err(|_| internal("the store lock"))?;
        match &mut *s {
            State::Ready(p) => f(p),
            _ => Err(SongpeiError::NotSetUp),
        }
    }

    fn promote(&self, s: &mut State) -> Result<()> {
        if let State::Bare(_) = s
            && let State::Bare(store) = std::mem::replace(s, State::Moving)
        {
            match Phone::open(store, self.blind_key.clone()) {
                Ok(p) => *s = State::Ready(Box::new(p)),
                Err(e) => {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}

#[uniffi::export]
impl SongpeiPhone {
    /// Opens (or creates) the encrypted store at `path` with the app's 32-byte `key`, which the app
    /// keeps in Android Keystore or the iOS Keychain.
    #[uniffi::constructor]
    pub fn open(path: String, key: Vec<u8>) -> Result<Arc<Self>> {
        let key: [u8; 32] = key.try_into().map_err(|_| SongpeiError::WrongKey)?;
        let store = SqliteDocStore::open(std::path::Path::new(&path), &key)?;
        let blind_key = BlindIndexKey::derive_from_store_key(&key);
        let state = match Phone::open(store, blind_key.clone()) {
            Ok(p) => State::Ready(Box::new(p)),
            Err(songpei_core::Error::NotInitialised) => {
                State::Bare(SqliteDocStore::open(std::path::Path::new(&path), &key)?)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Arc::new(Self {
            state: Mutex::new(state),
            blind_key,
        }))
    }

    /// True once the phone is set up (enrolled, or set up offline).
    pub fn is_set_up(&self) -> bool {
        matches!(self.state.lock().as_deref(), Ok(State::Ready(_)))
    }

    /// Sets the phone up without a server, for a district and its villages.
    pub fn set_up_offline(&self, district: String, villages: Vec<String>) -> Result<()> {
        let mut s = self.state.lock().map_err(|_| internal("the store lock"))?;
        match std::mem::replace(&mut *s, State::Moving) {
            State::Bare(store) => {
                match Phone::init(store, &district, &villages, self.blind_key.clone()) {
                    Ok(p) => {
                        *s = State::Ready(Box::new(p));
                        Ok(())
                    }
                    Err(e) => {
                        *s = State::Moving;
                        Err(e.into())
                    }
                }
            }
            other => {
                *s = other;
                Err(songpei_core::Error::AlreadyInitialised.into())
            }
        }
    }

    /// Enrolls this phone with the district server, with the one-time code (or the QR's text).
    pub async fn enroll(
        self: Arc<Self>,
        server: Option<String>,
        code: String,
    ) -> Result<Enrollment> {
        blocking::unblock(move || {
            let (qr_server, code) = songpei_core::sync::auth::parse_enrollment_text(&code);
            let server = server
                .or(qr_server)
                .ok_or_else(|| bad(Field::Server, Problem::Missing))?;
            let mut transport = songpei_core::sync::http::HttpTransport::new(
                &server,
                std::time::Duration::from_secs(60),
            );
            let mut s = self.state.lock().map_err(|_| internal("the store lock"))?;
            let resp = match &mut *s {
                State::Bare(store) => {
                    songpei_core::sync::auth::enroll_with(store, &mut transport, &server, &code)?
                }
                State::Ready(_) => {
                    let State::Ready(p) = std::mem::replace(&mut *s, State::Moving) else {
                        return Err(internal("enrollment"));
                    };
                    let mut store = p.into_store();
                    let r = songpei_core::sync::auth::enroll_with(
                        &mut store,
                        &mut transport,
                        &server,
                        &code,
                    );
                    *s = State::Bare(store);
                    r?
                }
                State::Moving => return Err(SongpeiError::NotSetUp),
            };
            self.promote(&mut s)?;
            Ok(Enrollment {
                device_id: resp.device.to_string(),
                district: resp.district,
                villages: resp.villages,
            })
        })
        .await
    }

    /// Plans a class; returns its id.
    pub fn create_class(&self, input: ClassInput) -> Result<String> {
        let level = parse(&input.level, Field::Level, Problem::NotInCatalog)?;
        let training_type = parse(
            &input.training_type,
            Field::TrainingType,
            Problem::NotInCatalog,
        )?;
        let first_day = parse_day(&input.first_day, Field::FirstDay)?;
        let last_day = parse_day(&input.last_day, Field::LastDay)?;
        let starts_at = input
            .starts_at
            .as_deref()
            .map(|t| {
                chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M")
                    .map_err(|_| bad(Field::StartsAt, Problem::BadFormat))
            })
            .transpose()?;
        let venue = input.venue.map(|name| Venue {
            name,
            gps: input.venue_gps.map(Gps::from),
        });
        self.with(|p| {
            Ok(p.create_class(NewClass {
                title: input.title,
                village: input.village,
                occupation: input.occupation,
                level,
                training_type,
                subsidised: input.subsidised,
                institution: input.institution,
                instructors: input.instructors,
                instructor_accounts: input.instructor_accounts,
                venue,
                first_day,
                last_day,
                daily_hours: input.daily_hours,
                starts_at,
                sign_out_required: input.sign_out_required,
                planned_size: input.planned_size,
            })?
            .to_string())
        })
    }

    /// Registers a household; returns its id.
    pub fn add_household(
        &self,
        village: String,
        head_name: Option<String>,
        poverty_status: String,
    ) -> Result<String> {
        let poverty_status = parse(&poverty_status, Field::PovertyStatus, Problem::NotInCatalog)?;
        self.with(|p| {
            Ok(p.add_household(NewHousehold {
                village,
                head_name,
                poverty_status,
            })?
            .to_string())
        })
    }

    /// Registers a trainee; returns the id.
    pub fn add_trainee(&self, input: TraineeInput) -> Result<String> {
        let household = match (&input.household_id, &input.new_household_poverty) {
            (Some(h), _) => HouseholdChoice::Existing(parse::<HouseholdId>(
                h,
                Field::Household,
                Problem::BadFormat,
            )?),
            (None, Some(p)) => {
                HouseholdChoice::New(parse(p, Field::PovertyStatus, Problem::NotInCatalog)?)
            }
            (None, None) => HouseholdChoice::None,
        };
        let key_groups = input
            .key_groups
            .iter()
            .map(|g| parse(g, Field::KeyGroup, Problem::NotInCatalog))
            .collect::<Result<Vec<_>>>()?;
        self.with(|p| {
            Ok(p.add_trainee(NewTrainee {
                name: input.name,
                id_number: input.id_number,
                phone: input.phone,
                village: input.village,
                household,
                key_groups,
                training_wish: input.training_wish,
                consent_at_ms: input.consent_at_ms,
            })?
            .to_string())
        })
    }

    /// Enrols a trainee in a class; says whether the place is subsidised, and why.
    pub fn enrol(&self, class_id: String, trainee_id: String) -> Result<Subsidy> {
        let class: ClassId = parse(&class_id, Field::Class, Problem::BadFormat)?;
        let trainee: TraineeId = parse(&trainee_id, Field::Trainee, Problem::BadFormat)?;
        self.with(|p| {
            let d = p.enrol(class, trainee)?;
            let v = serde_json::to_value(&d).unwrap_or_default();
            Ok(Subsidy {
                subsidised: d.is_subsidised(),
                decision: v["decision"].as_str().unwrap_or_default().to_owned(),
                year: v["year"].as_i64().and_then(|y| i32::try_from(y).ok()),
                nth: v["nth"].as_u64().and_then(|n| u32::try_from(n).ok()),
            })
        })
    }

    /// Records a sign-in or sign-out entered by hand, with the reason; returns the record's id.
    pub fn record_by_hand(
        &self,
        class_id: String,
        trainee_id: String,
        day: String,
        kind: SignKind,
        reason: String,
        gps: Option<GpsFix>,
    ) -> Result<String> {
        let class = parse(&class_id, Field::Class, Problem::BadFormat)?;
        let trainee = parse(&trainee_id, Field::Trainee, Problem::BadFormat)?;
        let day = parse_day(&day, Field::Day)?;
        self.with(|p| {
            Ok(p.record_attendance(NewAttendance {
                class,
                trainee,
                day,
                kind: kind.into(),
                method: AttendanceMethod::Hand { reason },
                gps: gps.map(Gps::from),
            })?
            .to_string())
        })
    }

    /// Records how a trainee finished: result `passed`/`failed`/`absent` (or 合格 …), and the
    /// certificate issued, if any.
    pub fn complete(
        &self,
        class_id: String,
        trainee_id: String,
        result: String,
        certificate: Option<String>,
    ) -> Result<()> {
        let class = parse(&class_id, Field::Class, Problem::BadFormat)?;
        let trainee = parse(&trainee_id, Field::Trainee, Problem::BadFormat)?;
        let result = parse(&result, Field::Status, Problem::NotInCatalog)?;
        let certificate = certificate
            .as_deref()
            .map(|c| parse(c, Field::Certificate, Problem::NotInCatalog))
            .transpose()?;
        self.with(|p| Ok(p.complete(class, trainee, result, certificate)?))
    }

    /// Moves a class to `running`, `closed` or `cancelled`.
    pub fn set_class_status(&self, class_id: String, status: String) -> Result<()> {
        let class = parse(&class_id, Field::Class, Problem::BadFormat)?;
        let status = parse(&status, Field::Status, Problem::NotInCatalog)?;
        self.with(|p| Ok(p.set_class_status(class, status)?))
    }

    /// Every class on the phone.
    pub fn classes(&self) -> Result<Vec<ClassSummary>> {
        self.with(|p| {
            Ok(p.classes(&ClassFilter::default())?
                .into_iter()
                .map(|c| ClassSummary {
                    id: c.id.to_string(),
                    title: c.title,
                    village: c.village.to_string(),
                    status: c.status.code().to_owned(),
                    first_day: c.first_day.to_string(),
                    last_day: c.last_day.to_string(),
                    enrolled: u32::try_from(c.enrolled).unwrap_or(u32::MAX),
                })
                .collect())
        })
    }

    /// A class's page as JSON: roster (names masked), attendance per day, payable days and
    /// allowance per trainee, conflicts.
    pub fn class_view_json(&self, class_id: String) -> Result<String> {
        let class = parse(&class_id, Field::Class, Problem::BadFormat)?;
        self.with(|p| {
            let v = p.class_view(class)?;
            serde_json::to_string(&v).map_err(|_| internal("writing the view"))
        })
    }

    /// A trainee as JSON, masked unless `reveal` (for checking against the ID card): household,
    /// poverty status, key groups, classes with their subsidy decisions, conflicts.
    pub fn trainee_view_json(&self, trainee_id: String, reveal: bool) -> Result<String> {
        let trainee = parse(&trainee_id, Field::Trainee, Problem::BadFormat)?;
        self.with(|p| {
            let v = p.trainee_view(trainee, reveal)?;
            serde_json::to_string(&v).map_err(|_| internal("writing the view"))
        })
    }

    /// Finds a trainee by ID number (through the blind index).
    pub fn find_trainee(&self, id_number: String) -> Result<Option<String>> {
        self.with(|p| Ok(p.find_trainee(&id_number)?.map(|t| t.to_string())))
    }

    /// Values edited on two phones at once.
    pub fn conflicts(&self) -> Result<Vec<ConflictInfo>> {
        self.with(|p| {
            Ok(p.conflicts()?
                .into_iter()
                .map(|c| ConflictInfo {
                    doc_id: c.doc.to_string(),
                    path: c.path,
                    winner: c.winner,
                    values: c.values,
                })
                .collect())
        })
    }

    /// The class code to show now (it changes every 10 seconds), as text and PNG.
    pub fn class_code(&self, class_id: String, day: String, kind: SignKind) -> Result<QrImage> {
        let class = parse(&class_id, Field::Class, Problem::BadFormat)?;
        let day = parse_day(&day, Field::Day)?;
        self.with(|p| {
            let text = p.class_code(class, day, kind.into())?.to_text();
            let png = qr::render_png(&text, 8).map_err(songpei_core::Error::from)?;
            Ok(QrImage { text, png })
        })
    }

    /// On a trainee's phone: the response to a class code, signed with this phone's key, as text and
    /// PNG. `trainee_id` is remembered; `None` uses the one given last time. `gps` is this phone's
    /// own fix, signed into the response with the time since boot: give it whenever the phone has
    /// one, or the server cannot tell a class code relayed from afar.
    #[uniffi::method(default(gps = None))]
    pub fn respond(
        &self,
        class_code: String,
        trainee_id: Option<String>,
        gps: Option<GpsFix>,
    ) -> Result<QrImage> {
        let trainee = trainee_id
            .as_deref()
            .map(|t| parse::<TraineeId>(t, Field::Trainee, Problem::BadFormat))
            .transpose()?;
        let at = qr::TraineePhoneState {
            fix: gps.map(Gps::from),
            uptime_ms: songpei_core::clock::Clock::uptime(&songpei_core::clock::SystemClock)
                .and_then(|u| u64::try_from(u.ms).ok()),
        };
        let mut s = self.state.lock().map_err(|_| internal("the store lock"))?;
        let resp = match &mut *s {
            State::Bare(store) => qr::respond_at(store, &class_code, trainee, at)?,
            State::Ready(p) => p.respond_at(&class_code, trainee, at.fix)?,
            State::Moving => return Err(SongpeiError::NotSetUp),
        };
        let text = resp.to_text();
        let png = qr::render_png(&text, 8).map_err(songpei_core::Error::from)?;
        Ok(QrImage { text, png })
    }

    /// On a trainee's phone: this phone's key claim, as text and PNG, for an instructor of the
    /// class to witness in person. `trainee_id` is remembered; `None` uses the one given last time.
    pub fn key_claim(&self, trainee_id: Option<String>) -> Result<QrImage> {
        let trainee = trainee_id
            .as_deref()
            .map(|t| parse::<TraineeId>(t, Field::Trainee, Problem::BadFormat))
            .transpose()?;
        let mut s = self.state.lock().map_err(|_| internal("the store lock"))?;
        let claim = match &mut *s {
            State::Bare(store) => qr::claim(store, trainee)?,
            State::Ready(p) => p.key_claim(trainee)?,
            State::Moving => return Err(SongpeiError::NotSetUp),
        };
        let text = claim.to_text();
        let png = qr::render_png(&text, 8).map_err(songpei_core::Error::from)?;
        Ok(QrImage { text, png })
    }

    /// On an instructor's phone: witnesses the key claim of the trainee in front of the instructor
    /// (check their ID card) for a class that names this phone's account; as text and PNG.
    pub fn witness(&self, claim: String, class_id: String, day: String) -> Result<QrImage> {
        let class = parse(&class_id, Field::Class, Problem::BadFormat)?;
        let day = parse_day(&day, Field::Day)?;
        self.with(|p| {
            let text = p.witness(&claim, class, day)?.to_text();
            let png = qr::render_png(&text, 8).map_err(songpei_core::Error::from)?;
            Ok(QrImage { text, png })
        })
    }

    /// On the coordinator's phone: files a witnessed key claim in its class, registering the
    /// trainee phone's key to the trainee.
    pub fn register_key(&self, witnessed: String) -> Result<KeyRegistration> {
        self.with(|p| {
            Ok(match p.register_key(&witnessed)? {
                qr::RegistrationOutcome::Registered { trainee, class, .. } => KeyRegistration {
                    registered: true,
                    trainee_id: trainee.to_string(),
                    class_id: class.to_string(),
                },
                qr::RegistrationOutcome::AlreadyRegistered { trainee, class } => KeyRegistration {
                    registered: false,
                    trainee_id: trainee.to_string(),
                    class_id: class.to_string(),
                },
            })
        })
    }

    /// The instructor accounts of this phone's villages, as of the last sync.
    pub fn instructors(&self) -> Result<Vec<InstructorInfo>> {
        self.with(|p| {
            Ok(p.instructors()?
                .instructors
                .into_iter()
                .map(|i| InstructorInfo {
                    account_id: i.account,
                    username: i.username,
                    villages: i.villages,
                })
                .collect())
        })
    }

    /// Names the instructor accounts of a class (by login name), replacing those it named.
    pub fn set_class_instructors(&self, class_id: String, accounts: Vec<String>) -> Result<()> {
        let class = parse(&class_id, Field::Class, Problem::BadFormat)?;
        self.with(|p| Ok(p.set_class_instructors(class, &accounts)?))
    }

    /// On the coordinator's phone: takes a trainee's response or card and records the sign-in. A
    /// card belongs to the last class code shown unless `class_id` and `day` name the sign-in.
    pub fn accept(
        &self,
        text: String,
        gps: Option<GpsFix>,
        class_id: Option<String>,
        day: Option<String>,
        kind: SignKind,
    ) -> Result<SignInResult> {
        let session = match (class_id, day) {
            (Some(c), Some(d)) => Some((
                parse::<ClassId>(&c, Field::Class, Problem::BadFormat)?,
                parse_day(&d, Field::Day)?,
                kind.into(),
            )),
            _ => None,
        };
        self.with(|p| {
            Ok(match p.accept(&text, gps.map(Gps::from), session)? {
                SignInOutcome::Recorded {
                    attendance,
                    trainee,
                    class,
                    time_verified,
                    key_registered,
                    ..
                } => SignInResult {
                    recorded: true,
                    attendance_id: Some(attendance.to_string()),
                    trainee_id: trainee.to_string(),
                    class_id: class.to_string(),
                    time_verified,
                    key_registered,
                },
                SignInOutcome::AlreadyRecorded { trainee, class } => SignInResult {
                    recorded: false,
                    attendance_id: None,
                    trainee_id: trainee.to_string(),
                    class_id: class.to_string(),
                    time_verified: true,
                    key_registered: None,
                },
            })
        })
    }

    /// Syncs with the server the phone enrolled with (or `server`): as many round trips as needed.
    pub async fn sync(self: Arc<Self>, server: Option<String>) -> Result<SyncSummary> {
        blocking::unblock(move || {
            self.with(|p| {
                let server = match server {
                    Some(s) => s,
                    None => p.server_url()?.ok_or(SongpeiError::NotEnrolled)?,
                };
                let mut t = songpei_core::sync::http::HttpTransport::new(
                    &server,
                    std::time::Duration::from_secs(60),
                );
                let r = songpei_core::sync::engine::sync_with(
                    p,
                    &mut t,
                    &SyncLimits::default(),
                    &mut |_| {},
                )?;
                Ok(SyncSummary {
                    round_trips: r.round_trips as u32,
                    bytes_sent: r.bytes_sent as u64,
                    bytes_received: r.bytes_received as u64,
                    docs_pushed: r.docs_pushed as u32,
                    docs_pulled: r.docs_pulled as u32,
                    waits: r.waits as u32,
                    more: false,
                })
            })
        })
        .await
    }

    /// One sync round for the app's own HTTP client (OkHttp, URLSession, background schedulers).
    /// `None` when the access token must be renewed first: POST `token_request_body()` to
    /// `<server>/v1/auth/token` and pass the answer to `accept_token_response`.
    pub fn prepare_sync(&self) -> Result<Option<PreparedSync>> {
        self.with(|p| {
            let Some(token) = p.access_token()? else {
                return Ok(None);
            };
            let server = p.server_url()?.ok_or(SongpeiError::NotEnrolled)?;
            let body = p.prepare_sync(&SyncLimits::default())?;
            Ok(Some(PreparedSync {
                url: format!("{}/v1/sync", server.trim_end_matches('/')),
                body,
                token,
            }))
        })
    }

    /// Applies the server's answer to the request from `prepare_sync`.
    pub fn apply_sync_response(&self, body: Vec<u8>) -> Result<SyncSummary> {
        self.with(|p| {
            let r = p.apply_sync_response(&body, &SyncLimits::default())?;
            Ok(SyncSummary {
                round_trips: 1,
                bytes_sent: 0,
                bytes_received: body.len() as u64,
                docs_pushed: r.docs_pushed as u32,
                docs_pulled: r.docs_pulled as u32,
                waits: 0,
                more: r.more,
            })
        })
    }

    /// The JSON body to POST to `<server>/v1/auth/token`, or `None` when the phone holds no
    /// challenge (then use `sync`, which asks for one).
    pub fn token_request_body(&self) -> Result<Option<Vec<u8>>> {
        self.with(|p| {
            Ok(p.token_request()?
                .map(|r| serde_json::to_vec(&r).unwrap_or_default()))
        })
    }

    /// Keeps the token the server answered.
    pub fn accept_token_response(&self, body: Vec<u8>) -> Result<()> {
        let resp: songpei_core::sync::auth::TokenResponse =
            serde_json::from_slice(&body).map_err(|_| SongpeiError::Corrupt {
                reason: "the token answer could not be read".into(),
            })?;
        self.with(|p| Ok(p.accept_token(&resp)?))
    }
}

/// Reads any songpei QR text.
#[uniffi::export]
pub fn scan(text: String) -> Result<ScannedCode> {
    Ok(match qr::scan(&text).map_err(songpei_core::Error::from)? {
        Scanned::ClassCode(c) => ScannedCode::ClassCode {
            class_id: c.class.to_string(),
            day: c.day.to_string(),
            kind: match c.kind {
                AttendanceKind::SignIn => SignKind::In,
                AttendanceKind::SignOut => SignKind::Out,
            },
        },
        Scanned::Response(r) => ScannedCode::Response {
            trainee_id: r.trainee.to_string(),
        },
        Scanned::Card(c) => ScannedCode::Card {
            trainee_id: c.trainee.to_string(),
        },
        Scanned::KeyClaim(c) => ScannedCode::KeyClaim {
            trainee_id: c.trainee.to_string(),
        },
        Scanned::Witnessed(w) => ScannedCode::WitnessedKey {
            trainee_id: w.claim.trainee.to_string(),
            class_id: w.class.to_string(),
        },
        Scanned::Enrollment { server, code } => ScannedCode::Enrollment { server, code },
    })
}

/// Every QR code in a picture (PNG or JPEG), for platforms without a native scanner.
#[uniffi::export]
pub fn decode_image(image: Vec<u8>) -> Result<Vec<String>> {
    Ok(qr::decode_image(&image).map_err(songpei_core::Error::from)?)
}

/// Every QR code in a greyscale camera frame (e.g. the Y plane of NV21), `width` × `height` bytes.
#[uniffi::export]
pub fn decode_frame(width: u32, height: u32, pixels: Vec<u8>) -> Result<Vec<String>> {
    Ok(qr::decode_luma(width, height, &pixels).map_err(songpei_core::Error::from)?)
}

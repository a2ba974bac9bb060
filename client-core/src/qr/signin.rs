//! The sign-in flows on the phones.
//!
//! Flow A: the coordinator's phone shows a class code that changes every [`CLASS_CODE_SLOT_MS`]
//! ([`Phone::class_code`]); the trainee's phone scans it and shows a response ([`respond`]); the
//! coordinator's phone scans the response ([`Phone::accept`]) and records the sign-in with both
//! signed codes, only if it showed that class code less than [`RESPONSE_WINDOW_MS`] ago on its time
//! since boot. A screenshot of a class code forwarded to someone at home yields a response the
//! coordinator's phone will not take twenty seconds later; the coordinator alone cannot make a
//! trainee phone's signature.
//!
//! Flow B: the coordinator scans the trainee's printed card, signed by the district
//! ([`Phone::accept`] again); the record keeps the card, the coordinator's signature over the card,
//! the sign-in, the time and the fix.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{Card, CardScan, ClassCode, Code, QrError, Response};
use crate::domain::{AttendanceKind, AttendanceMethod, Gps};
use crate::error::{Error, Result};
use crate::ids::{AttendanceId, ClassId, TraineeId};
use crate::phone::Phone;
use crate::qr::CardKeySet;
use crate::store::DocStore;
use crate::validate::{Field, Invalid, Problem};

/// A class code is remade every 10 seconds.
pub const CLASS_CODE_SLOT_MS: i64 = 10_000;
/// A response is taken at most 20 seconds after its class code was first shown.
pub const RESPONSE_WINDOW_MS: i64 = 20_000;
/// A card scanned without naming the class belongs to the last class code shown, if that was shown
/// at most this long ago.
const SESSION_MS: i64 = 4 * 3600 * 1000;

const META_SHOWN: &str = "qr.shown";
const META_CARD_KEYS: &str = "qr.card_keys";
const META_TRAINEE: &str = "qr.trainee";
/// Class codes remembered: more than a window's worth for a few sign-ins at once.
const SHOWN_KEEP: usize = 32;

/// A class code the phone showed, and when (time since boot).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Shown {
    code: String,
    boot: String,
    first_ms: i64,
}

/// One of the district's card keys as the phone keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CardKey {
    id: u32,
    /// Public key, base64url.
    public_key: String,
    revoked: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CardKeys {
    version: u32,
    keys: Vec<CardKey>,
}

/// A scanned text, understood.
#[derive(Clone, Debug, PartialEq)]
pub enum Scanned {
    /// A coordinator's class code, its signature checked.
    ClassCode(ClassCode),
    /// A trainee's response, its signature checked.
    Response(Response),
    /// A trainee card (its district signature is checked when it is accepted).
    Card(Card),
    /// A trainee phone's key claim, its signature checked.
    KeyClaim(super::KeyClaim),
    /// A witnessed key claim, the trainee phone's signature checked (the witness's is checked
    /// when it is filed).
    Witnessed(super::Witnessed),
    /// An enrollment code for a coordinator's phone.
    Enrollment {
        /// The server it names, if any.
        server: Option<String>,
        /// The code.
        code: String,
    },
}

/// Reads any songpei QR text and checks what can be checked without a store.
pub fn scan(text: &str) -> Result<Scanned, QrError> {
    let t = text.trim();
    if t.starts_with("songpei-enroll:") {
        let (server, code) = crate::device::parse_enrollment_text(t);
        return Ok(Scanned::Enrollment { server, code });
    }
    Ok(match Code::parse(t)? {
        Code::ClassCode(c) => {
            if !c.verifies() {
                return Err(QrError::BadSignature("class code"));
            }
            Scanned::ClassCode(c)
        }
        Code::Response(r) => {
            if !r.verifies() {
                return Err(QrError::BadSignature("response"));
            }
            Scanned::Response(r)
        }
        Code::Card(c) => Scanned::Card(c),
        Code::KeyClaim(c) => {
            if !c.verifies() {
                return Err(QrError::BadSignature("key claim"));
            }
            Scanned::KeyClaim(c)
        }
        Code::Witnessed(w) => {
            if !w.claim.verifies() {
                return Err(QrError::BadSignature("key claim"));
            }
            Scanned::Witnessed(w)
        }
    })
}

/// Where the trainee's phone is when it answers: its fix and its time since boot, when it has them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TraineePhoneState {
    /// The phone's own fix.
    pub fix: Option<Gps>,
    /// Its time since boot, ms.
    pub uptime_ms: Option<u64>,
}

/// The trainee's phone answers a class code: checks its signature and signs a response with the
/// phone's own key. `trainee` is remembered for the next time; `None` uses the one remembered. The
/// response carries no fix and no time since boot; [`respond_at`] gives them.
pub fn respond<S: DocStore>(
    store: &mut S,
    class_code: &str,
    trainee: Option<TraineeId>,
) -> Result<Response> {
    respond_at(store, class_code, trainee, TraineePhoneState::default())
}

/// [`respond`], with the trainee phone's fix and time since boot signed into the response, so the
/// server can tell a response made far from the coordinator (a relayed class code).
pub fn respond_at<S: DocStore>(
    store: &mut S,
    class_code: &str,
    trainee: Option<TraineeId>,
    at: TraineePhoneState,
) -> Result<Response> {
    let code = match scan(class_code)? {
        Scanned::ClassCode(c) => c,
        other => {
            return Err(QrError::WrongKind {
                expected: "a class code",
                found: what(&other),
            }
            .into());
        }
    };
    let fix = crate::phone::check_gps(at.fix)?;
    let trainee = remembered_trainee(store, trainee)?;
    let key = crate::device::device_key_or_new(store)?;
    Ok(Response::sign(&key, &code, trainee, fix, at.uptime_ms))
}

/// `trainee`, remembered for the next time, or the one remembered.
pub(super) fn remembered_trainee<S: DocStore>(
    store: &mut S,
    trainee: Option<TraineeId>,
) -> Result<TraineeId> {
    match trainee {
        Some(t) => {
            store.set_meta(&[(META_TRAINEE, &t.to_string())])?;
            Ok(t)
        }
        None => Ok(store
            .meta(META_TRAINEE)?
            .and_then(|t| t.parse().ok())
            .ok_or(Invalid::new(Field::Trainee, Problem::Missing))?),
    }
}

pub(super) fn what(s: &Scanned) -> &'static str {
    match s {
        Scanned::ClassCode(_) => "a class code",
        Scanned::Response(_) => "a trainee's response",
        Scanned::Card(_) => "a trainee card",
        Scanned::KeyClaim(_) => "a trainee phone's key claim",
        Scanned::Witnessed(_) => "a witnessed key claim",
        Scanned::Enrollment { .. } => "an enrollment code",
    }
}

/// What a scan on the coordinator's phone did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInOutcome {
    /// A new attendance record.
    Recorded {
        /// Its id.
        attendance: AttendanceId,
        /// Who signed in.
        trainee: TraineeId,
        /// The class.
        class: ClassId,
        /// The day.
        day: NaiveDate,
        /// In or out.
        kind: AttendanceKind,
        /// False when the phone does not know its clock's offset to the server's: the record is
        /// kept as "time unverified" and not paid until reviewed.
        time_verified: bool,
        /// For a response: whether this phone holds a registration of the answering phone's key
        /// to the trainee. Without one the server holds the record for review
        /// (`unregistered_key`): register the key with an instructor of the class.
        key_registered: Option<bool>,
    },
    /// The trainee was already signed in (or out) for that day: nothing new was written.
    AlreadyRecorded {
        /// Who.
        trainee: TraineeId,
        /// The class.
        class: ClassId,
    },
}

/// The slot a class code carries: the top 12 bits tag the boot (from its id), the low 20 bits
/// count 10-second slots since boot (121 days, then they wrap). A code shown after a restart thus
/// differs from the one shown in the same slot of an earlier boot, and no response made to the
/// earlier one can be taken for the new one.
pub fn slot_of(boot: &str, uptime_ms: i64) -> u32 {
    let tag = sha2::Sha256::digest(boot.as_bytes());
    let tag = (u32::from(tag[0]) << 4) | u32::from(tag[1] >> 4);
    let count = (uptime_ms.max(0) / CLASS_CODE_SLOT_MS) as u64 & 0xF_FFFF;
    (tag << 20) | count as u32
}

impl<S: DocStore> Phone<S> {
    /// The class code to show now for signing in (or out) of `class` on `day`. The same code is
    /// returned throughout a 10-second slot of the time since boot, then a new one.
    pub fn class_code(
        &mut self,
        class: ClassId,
        day: NaiveDate,
        kind: AttendanceKind,
    ) -> Result<ClassCode> {
        let row = self.class_row_or_err(class)?;
        if row.status.is_final() {
            return Err(Invalid::new(Field::Class, Problem::ClassIsFinal).into());
        }
        if day < row.first_day || day > row.last_day {
            return Err(Invalid::new(Field::Day, Problem::NotATrainingDay).into());
        }
        let up = self.clock().uptime().ok_or(QrError::NoUptime)?;
        let slot = slot_of(&up.boot, up.ms);
        let key = crate::device::device_key_or_new(&mut self.store)?;
        let code = ClassCode::sign(&key, self.profile().device, class, day, kind, slot);
        let text = code.to_text();
        let mut shown = self.shown()?;
        if !shown.iter().any(|s| s.code == text && s.boot == up.boot) {
            shown.push(Shown {
                code: text,
                boot: up.boot,
                first_ms: up.ms,
            });
            let extra = shown.len().saturating_sub(SHOWN_KEEP);
            shown.drain(..extra);
            let json = serde_json::to_string(&shown).map_err(|_| corrupt(META_SHOWN))?;
            self.store.set_meta(&[(META_SHOWN, &json)])?;
        }
        Ok(code)
    }

    fn shown(&self) -> Result<Vec<Shown>> {
        match self.store.meta(META_SHOWN)? {
            None => Ok(Vec::new()),
            Some(j) => serde_json::from_str(&j).map_err(|_| corrupt(META_SHOWN)),
        }
    }

    /// Takes a scanned response or card and records the sign-in it proves. A card needs the sign-in
    /// it belongs to: `session`, or else the last class code this phone showed (within four hours).
    pub fn accept(
        &mut self,
        text: &str,
        gps: Option<Gps>,
        session: Option<(ClassId, NaiveDate, AttendanceKind)>,
    ) -> Result<SignInOutcome> {
        match scan(text)? {
            Scanned::Response(r) => self.accept_response(&r, gps),
            Scanned::Card(c) => {
                let session = match session {
                    Some(s) => s,
                    None => self.last_session()?.ok_or(QrError::NoSession)?,
                };
                self.accept_card(&c, gps, session)
            }
            other => Err(QrError::WrongKind {
                expected: "a trainee's response or card",
                found: what(&other),
            }
            .into()),
        }
    }

    fn accept_response(&mut self, r: &Response, gps: Option<Gps>) -> Result<SignInOutcome> {
        let up = self.clock().uptime().ok_or(QrError::NoUptime)?;
        let shown = self.shown()?;
        let (code, entry) = shown
            .iter()
            .rev()
            .find_map(|s| match Code::parse(&s.code) {
                Ok(Code::ClassCode(c)) if c.hash() == r.code_hash => Some((c, s)),
                _ => None,
            })
            .ok_or(QrError::NotShownHere)?;
        if r.public_key == code.public_key {
            return Err(QrError::OwnResponse.into());
        }
        let age = up.ms - entry.first_ms;
        if entry.boot != up.boot || age < 0 {
            return Err(QrError::Restarted.into());
        }
        if age > RESPONSE_WINDOW_MS {
            return Err(QrError::Expired {
                age_s: age / 1000,
                limit_s: RESPONSE_WINDOW_MS / 1000,
            }
            .into());
        }
        let method = AttendanceMethod::Qr {
            code: code.to_bytes(),
            response: r.to_bytes(),
            code_age_ms: age,
        };
        let at_ms = self.now_ms();
        let gps = crate::phone::check_gps(gps)?;
        let mut outcome = self.record_signin_at(
            code.class, r.trainee, code.day, code.kind, method, gps, at_ms,
        )?;
        if let SignInOutcome::Recorded { key_registered, .. } = &mut outcome {
            *key_registered = Some(self.key_registered(r.trainee, &r.public_key)?);
        }
        Ok(outcome)
    }

    fn accept_card(
        &mut self,
        c: &Card,
        gps: Option<Gps>,
        (class, day, kind): (ClassId, NaiveDate, AttendanceKind),
    ) -> Result<SignInOutcome> {
        if c.district != self.profile().district {
            return Err(QrError::OtherDistrict.into());
        }
        let keys = self.card_keys()?;
        let key = keys
            .keys
            .iter()
            .find(|k| k.id == c.key_id)
            .ok_or(QrError::UnknownCardKey)?;
        if key.revoked {
            return Err(QrError::RevokedCardKey.into());
        }
        let pk = crate::device::unb64(&key.public_key).ok_or_else(|| corrupt(META_CARD_KEYS))?;
        if !c.verifies_with(&pk) {
            return Err(QrError::BadSignature("card").into());
        }
        let card = c.to_bytes();
        let at_ms = self.now_ms();
        let gps = crate::phone::check_gps(gps)?;
        let scan = CardScan {
            card: &card,
            class,
            day,
            kind,
            at_ms,
            gps,
        };
        let key = crate::device::device_key_or_new(&mut self.store)?;
        let signature = scan.sign(&key).to_vec();
        let method = AttendanceMethod::Card { card, signature };
        self.record_signin_at(class, c.trainee, day, kind, method, gps, at_ms)
    }

    #[allow(clippy::too_many_arguments)]
    fn record_signin_at(
        &mut self,
        class: ClassId,
        trainee: TraineeId,
        day: NaiveDate,
        kind: AttendanceKind,
        method: AttendanceMethod,
        gps: Option<Gps>,
        at_ms: i64,
    ) -> Result<SignInOutcome> {
        // A card scan is also the second phone's co-signature of another's scan of the same card,
        // so only this phone's own scans make it one too many.
        let own_only = matches!(method, AttendanceMethod::Card { .. });
        if self.signed(class, trainee, day, kind, own_only)? {
            return Ok(SignInOutcome::AlreadyRecorded { trainee, class });
        }
        let (attendance, time_verified) =
            self.write_attendance(class, trainee, day, kind, method, gps, at_ms)?;
        Ok(SignInOutcome::Recorded {
            attendance,
            trainee,
            class,
            day,
            kind,
            time_verified,
            key_registered: None,
        })
    }

    /// True when the class already holds a sign-in (or out) of the trainee that day (recorded on
    /// this phone, when `own_only`).
    fn signed(
        &mut self,
        class: ClassId,
        trainee: TraineeId,
        day: NaiveDate,
        kind: AttendanceKind,
        own_only: bool,
    ) -> Result<bool> {
        let me = self.profile().device;
        let Some(d) = self.doc(class.into())? else {
            return Ok(false);
        };
        let (c, _) = crate::doc::class::read(d, class)?;
        Ok(c.attendance.values().any(|a| {
            a.trainee == trainee && a.day == day && a.kind == kind && (!own_only || a.device == me)
        }))
    }

    /// The sign-in of the last class code shown, if recent and of this boot.
    fn last_session(&self) -> Result<Option<(ClassId, NaiveDate, AttendanceKind)>> {
        let Some(up) = self.clock().uptime() else {
            return Ok(None);
        };
        let shown = self.shown()?;
        Ok(shown.iter().rev().find_map(|s| {
            let fresh = s.boot == up.boot && (0..=SESSION_MS).contains(&(up.ms - s.first_ms));
            match Code::parse(&s.code) {
                Ok(Code::ClassCode(c)) if fresh => Some((c.class, c.day, c.kind)),
                _ => None,
            }
        }))
    }

    fn card_keys(&self) -> Result<CardKeys> {
        match self.store.meta(META_CARD_KEYS)? {
            None => Ok(CardKeys::default()),
            Some(j) => serde_json::from_str(&j).map_err(|_| corrupt(META_CARD_KEYS)),
        }
    }

    /// The version of the district's card keys this phone holds (0: none).
    pub fn card_keys_version(&self) -> Result<u32> {
        Ok(self.card_keys()?.version)
    }

    /// Keeps the district's card keys as the server sent them.
    pub(crate) fn set_card_keys(&mut self, set: &CardKeySet) -> Result<()> {
        let keys = CardKeys {
            version: set.version,
            keys: set
                .keys
                .iter()
                .map(|k| CardKey {
                    id: k.id,
                    public_key: crate::device::b64(&k.public_key),
                    revoked: k.revoked,
                })
                .collect(),
        };
        let json = serde_json::to_string(&keys).map_err(|_| corrupt(META_CARD_KEYS))?;
        self.store.set_meta(&[(META_CARD_KEYS, &json)])
    }

    /// Answers a class code with this phone's own key, as [`respond`] does on a bare store.
    pub fn respond(&mut self, class_code: &str, trainee: Option<TraineeId>) -> Result<Response> {
        respond(&mut self.store, class_code, trainee)
    }

    /// Answers a class code with this phone's own key, its fix and its time since boot.
    pub fn respond_at(
        &mut self,
        class_code: &str,
        trainee: Option<TraineeId>,
        fix: Option<Gps>,
    ) -> Result<Response> {
        let uptime_ms = self.clock().uptime().and_then(|u| u64::try_from(u.ms).ok());
        respond_at(
            &mut self.store,
            class_code,
            trainee,
            TraineePhoneState { fix, uptime_ms },
        )
    }

    /// The trainees enrolled in a class, for printing their cards.
    pub fn roster(&self, class: ClassId) -> Result<BTreeSet<TraineeId>> {
        Ok(self.class_row_or_err(class)?.enrolled.into_iter().collect())
    }
}

fn corrupt(key: &str) -> Error {
    Error::Schema {
        doc: crate::ids::DocId::from(ClassId::from(uuid::Uuid::nil())),
        path: format!("meta.{key}"),
    }
}

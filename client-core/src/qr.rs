//! QR sign-in: the codes phones show and scan, their signatures, and their PNG form.
//!
//! Three kinds of code, each a short binary message in base45 (RFC 9285) behind the prefix `SP:`, so
//! a QR encoder puts it in alphanumeric mode (5.5 bits a character):
//!
//! ```text
//! every code  version (1) · algorithm (1 = ECDSA P-256 / SHA-256) · kind (1)
//! class code  v1, kind 1 · class id (16) · training day (i32, days since 1970-01-01)
//!             · sign-in or out (1) · slot (u32) · coordinator device id (16) · its public key (33)
//!             · signature (64)
//! response    v2, kind 2 · SHA-256 of the class code's bytes (32) · trainee id (16)
//!             · the trainee phone's public key (33) · its fix: latitude and longitude (i32 each,
//!             millionths of a degree; i32::MIN when it had none), accuracy (u16, metres)
//!             · its time since boot (u64, ms; u64::MAX when unknown) · signature (64)
//!             (v1, still read: without the fix and the time since boot)
//! card        v1, kind 3 · district (u32) · district key id (u32) · trainee id (16)
//!             · issued (i32, days since 1970-01-01) · signature (64)
//! key claim   v2, kind 4 · trainee id (16) · the trainee phone's public key (33) · signature (64)
//! witnessed   v2, kind 5 · a key claim without its header (113) · class id (16)
//!             · day (i32) · the witness's device id (16) · signature (64)
//! ```
//!
//! Each signature covers every byte before it, under a purpose label of its own kind, so no
//! signature is valid as another kind's. A class code carries its signer's public key so a trainee's
//! phone, offline and never enrolled, can check it; the server checks that key against the device it
//! enrolled. Cards are signed by a district key that phones learn at enrollment and sync.
//!
//! A key claim is what a trainee's phone shows to have its key registered to the trainee; an
//! instructor's phone that saw the trainee in person scans it and shows it back witnessed; the
//! coordinator's phone files the witnessed claim in the class document with its own signature
//! (see `keys`). The server takes a response as the trainee's own only when its key is registered
//! so.
//!
//! Freshness is not in the codes: the coordinator's phone remembers when it showed each class code
//! on its time since boot, and takes a response only within [`RESPONSE_WINDOW_MS`] of that.

mod image;
mod keys;
mod signin;

pub use image::{
    CARDS_PER_SHEET, CardCaption, SYSTEM_FONTS, decode_image, decode_luma, render_card_sheet,
    render_png, sheet_path,
};
pub use keys::{
    KeyClaim, REGISTRATION_PURPOSE, Registration, RegistrationOutcome, Signer, Witnessed, claim,
    registration_problem, witness_problem,
};
pub use signin::{
    CLASS_CODE_SLOT_MS, RESPONSE_WINDOW_MS, Scanned, SignInOutcome, TraineePhoneState, respond,
    respond_at, scan, slot_of,
};

pub use crate::error::QrError;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::device::{self, DeviceKey};
use crate::domain::{AttendanceKind, Gps};
use crate::ids::{ClassId, DeviceId, DistrictCode, TraineeId};

/// The text every songpei sign-in code starts with.
pub const PREFIX: &str = "SP:";
/// The format version of class codes and cards.
pub const VERSION: u8 = 1;
/// The format version of responses with the trainee phone's fix and time since boot, key claims
/// and witnessed keys.
pub const VERSION_2: u8 = 2;
/// ECDSA over P-256 with SHA-256, the device keys' algorithm.
pub const ALG_ES256: u8 = 1;

const KIND_CLASS_CODE: u8 = 1;
const KIND_RESPONSE: u8 = 2;
const KIND_CARD: u8 = 3;
const KIND_KEY_CLAIM: u8 = 4;
const KIND_WITNESSED: u8 = 5;

const CLASS_CODE_PURPOSE: &[u8] = b"songpei/v1/qr-class-code\0";
const RESPONSE_PURPOSE: &[u8] = b"songpei/v1/qr-response\0";
const CARD_PURPOSE: &[u8] = b"songpei/v1/qr-card\0";
const CARD_SCAN_PURPOSE: &[u8] = b"songpei/v1/qr-card-scan\0";
const RESPONSE_V2_PURPOSE: &[u8] = b"songpei/v2/qr-response\0";
const KEY_CLAIM_PURPOSE: &[u8] = b"songpei/v2/qr-key-claim\0";
const WITNESSED_PURPOSE: &[u8] = b"songpei/v2/qr-witnessed-key\0";

const HEADER: usize = 3;
const SIG: usize = 64;
const PK: usize = 33;
const CLASS_CODE_LEN: usize = HEADER + 16 + 4 + 1 + 4 + 16 + PK + SIG;
const RESPONSE_LEN: usize = HEADER + 32 + 16 + PK + SIG;
const WHERE_LEN: usize = 4 + 4 + 2 + 8;
const RESPONSE_V2_LEN: usize = RESPONSE_LEN + WHERE_LEN;
const CARD_LEN: usize = HEADER + 4 + 4 + 16 + 4 + SIG;
const CLAIM_BODY: usize = 16 + PK + SIG;
const KEY_CLAIM_LEN: usize = HEADER + CLAIM_BODY;
const WITNESSED_LEN: usize = HEADER + CLAIM_BODY + 16 + 4 + 16 + SIG;
/// No fix: the latitude field holds this.
const NO_FIX: i32 = i32::MIN;
/// No time since boot.
const NO_UPTIME: u64 = u64::MAX;

/// A coordinator's class code: "this sign-in, now, on this phone".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassCode {
    /// The class.
    pub class: ClassId,
    /// The training day.
    pub day: NaiveDate,
    /// Sign-in or sign-out.
    pub kind: AttendanceKind,
    /// The 10-second slot it was made for.
    pub slot: u32,
    /// The coordinator's device.
    pub device: DeviceId,
    /// The device's public key.
    pub public_key: [u8; PK],
    /// Its signature.
    pub signature: [u8; SIG],
}

/// A trainee phone's answer to a class code.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// SHA-256 of the class code's bytes.
    pub code_hash: [u8; 32],
    /// The trainee signing in.
    pub trainee: TraineeId,
    /// The trainee phone's public key.
    pub public_key: [u8; PK],
    /// The trainee phone's own fix when it answered (version 2), to its 11 cm grid.
    pub fix: Option<Gps>,
    /// The trainee phone's time since boot when it answered, ms (version 2).
    pub uptime_ms: Option<u64>,
    /// The format version it was written in: 1 (no fix, no time since boot) or 2.
    pub version: u8,
    /// Its signature.
    pub signature: [u8; SIG],
}

/// A printed trainee card, signed by the district.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    /// The district that issued it.
    pub district: DistrictCode,
    /// Which of the district's keys signed it.
    pub key_id: u32,
    /// The trainee.
    pub trainee: TraineeId,
    /// When it was issued.
    pub issued: NaiveDate,
    /// Its signature.
    pub signature: [u8; SIG],
}

/// Any sign-in code.
#[derive(Clone, Debug, PartialEq)]
pub enum Code {
    /// A class code.
    ClassCode(ClassCode),
    /// A trainee's response.
    Response(Response),
    /// A trainee card.
    Card(Card),
    /// A trainee phone's key claim.
    KeyClaim(KeyClaim),
    /// A key claim witnessed by an instructor's phone.
    Witnessed(Witnessed),
}

impl Code {
    /// What it is, for messages.
    pub fn what(&self) -> &'static str {
        match self {
            Code::ClassCode(_) => "a class code",
            Code::Response(_) => "a trainee's response",
            Code::Card(_) => "a trainee card",
            Code::KeyClaim(_) => "a trainee phone's key claim",
            Code::Witnessed(_) => "a witnessed key claim",
        }
    }

    /// Parses a code from its bytes: every length, version, algorithm and kind checked, nothing
    /// trailing. Signatures are checked by the caller, who knows which keys to trust.
    pub fn from_bytes(b: &[u8]) -> Result<Self, QrError> {
        if b.len() < HEADER {
            return Err(QrError::Malformed("too short"));
        }
        let version = b[0];
        if version != VERSION && version != VERSION_2 {
            return Err(QrError::UnknownVersion(version));
        }
        if b[1] != ALG_ES256 {
            return Err(QrError::UnknownAlgorithm(b[1]));
        }
        let want = match (version, b[2]) {
            (VERSION, KIND_CLASS_CODE) => CLASS_CODE_LEN,
            (VERSION, KIND_RESPONSE) => RESPONSE_LEN,
            (VERSION, KIND_CARD) => CARD_LEN,
            (VERSION_2, KIND_RESPONSE) => RESPONSE_V2_LEN,
            (VERSION_2, KIND_KEY_CLAIM) => KEY_CLAIM_LEN,
            (VERSION_2, KIND_WITNESSED) => WITNESSED_LEN,
            (_, k) => return Err(QrError::UnknownKind(k)),
        };
        if b.len() != want {
            return Err(QrError::Malformed("wrong length"));
        }
        let mut r = Cursor(&b[HEADER..]);
        Ok(match b[2] {
            KIND_CLASS_CODE => Code::ClassCode(ClassCode {
                class: ClassId::from(r.uuid()),
                day: r.day()?,
                kind: match r.take::<1>()[0] {
                    0 => AttendanceKind::SignIn,
                    1 => AttendanceKind::SignOut,
                    _ => return Err(QrError::Malformed("unknown sign-in kind")),
                },
                slot: u32::from_be_bytes(r.take()),
                device: DeviceId::from(r.uuid()),
                public_key: r.take(),
                signature: r.take(),
            }),
            KIND_RESPONSE => {
                let code_hash = r.take();
                let trainee = TraineeId::from(r.uuid());
                let public_key = r.take();
                let (fix, uptime_ms) = if version == VERSION_2 {
                    (r.fix()?, r.uptime())
                } else {
                    (None, None)
                };
                Code::Response(Response {
                    code_hash,
                    trainee,
                    public_key,
                    fix,
                    uptime_ms,
                    version,
                    signature: r.take(),
                })
            }
            KIND_KEY_CLAIM => Code::KeyClaim(r.claim()),
            KIND_WITNESSED => Code::Witnessed(Witnessed {
                claim: r.claim(),
                class: ClassId::from(r.uuid()),
                day: r.day()?,
                witness: DeviceId::from(r.uuid()),
                signature: r.take(),
            }),
            _ => Code::Card(Card {
                district: {
                    let n = u32::from_be_bytes(r.take());
                    DistrictCode::parse(&format!("{n:06}")).ok_or(QrError::Malformed("district"))?
                },
                key_id: u32::from_be_bytes(r.take()),
                trainee: TraineeId::from(r.uuid()),
                issued: r.day()?,
                signature: r.take(),
            }),
        })
    }

    /// Parses a scanned text: `SP:` and base45.
    pub fn parse(text: &str) -> Result<Self, QrError> {
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(QrError::NotSongpei)?;
        let bytes = base45::decode(body).map_err(|_| QrError::Malformed("not base45"))?;
        Self::from_bytes(&bytes)
    }

    /// The code's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Code::ClassCode(c) => c.to_bytes(),
            Code::Response(r) => r.to_bytes(),
            Code::Card(c) => c.to_bytes(),
            Code::KeyClaim(c) => c.to_bytes(),
            Code::Witnessed(w) => w.to_bytes(),
        }
    }

    /// The text to put in a QR code.
    pub fn to_text(&self) -> String {
        text_of(&self.to_bytes())
    }
}

fn text_of(bytes: &[u8]) -> String {
    format!("{PREFIX}{}", base45::encode(bytes))
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        // Lengths were checked against the kind before reading.
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.take())
    }

    fn fix(&mut self) -> Result<Option<Gps>, QrError> {
        let lat = i32::from_be_bytes(self.take());
        let lon = i32::from_be_bytes(self.take());
        let acc = u16::from_be_bytes(self.take());
        if lat == NO_FIX {
            // One encoding of "no fix", so that no two texts carry one signed response.
            return if lon == 0 && acc == u16::MAX {
                Ok(None)
            } else {
                Err(QrError::Malformed("fix"))
            };
        }
        let (lat, lon) = (f64::from(lat) / 1e6, f64::from(lon) / 1e6);
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(QrError::Malformed("fix"));
        }
        Ok(Some(Gps {
            lat,
            lon,
            accuracy_m: (acc != u16::MAX).then_some(f64::from(acc)),
        }))
    }

    fn uptime(&mut self) -> Option<u64> {
        let u = u64::from_be_bytes(self.take());
        (u != NO_UPTIME).then_some(u)
    }

    fn claim(&mut self) -> KeyClaim {
        KeyClaim {
            trainee: TraineeId::from(self.uuid()),
            public_key: self.take(),
            signature: self.take(),
        }
    }

    fn day(&mut self) -> Result<NaiveDate, QrError> {
        let d = i32::from_be_bytes(self.take());
        d.checked_add(EPOCH_CE_DAYS)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or(QrError::Malformed("date"))
    }
}

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const EPOCH_CE_DAYS: i32 = 719_163;

fn day_bytes(d: NaiveDate) -> [u8; 4] {
    use chrono::Datelike;
    (d.num_days_from_ce() - EPOCH_CE_DAYS).to_be_bytes()
}

fn header(kind: u8) -> Vec<u8> {
    vec![VERSION, ALG_ES256, kind]
}

fn header_v2(kind: u8) -> Vec<u8> {
    vec![VERSION_2, ALG_ES256, kind]
}

/// A fix as a response carries it: millionths of a degree, whole metres.
fn fix_bytes(fix: Option<Gps>) -> [u8; 10] {
    let mut out = [0; 10];
    let (lat, lon, acc) = match fix {
        Some(g) => (
            (g.lat * 1e6).round() as i32,
            (g.lon * 1e6).round() as i32,
            g.accuracy_m.map_or(u16::MAX, |a| {
                a.round().clamp(0.0, f64::from(u16::MAX - 1)) as u16
            }),
        ),
        None => (NO_FIX, 0, u16::MAX),
    };
    out[..4].copy_from_slice(&lat.to_be_bytes());
    out[4..8].copy_from_slice(&lon.to_be_bytes());
    out[8..].copy_from_slice(&acc.to_be_bytes());
    out
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl ClassCode {
    fn unsigned(&self) -> Vec<u8> {
        let mut b = header(KIND_CLASS_CODE);
        b.extend_from_slice(self.class.uuid().as_bytes());
        b.extend_from_slice(&day_bytes(self.day));
        b.push(match self.kind {
            AttendanceKind::SignIn => 0,
            AttendanceKind::SignOut => 1,
        });
        b.extend_from_slice(&self.slot.to_be_bytes());
        b.extend_from_slice(self.device.uuid().as_bytes());
        b.extend_from_slice(&self.public_key);
        b
    }

    /// Makes and signs a class code.
    pub fn sign(
        key: &DeviceKey,
        device: DeviceId,
        class: ClassId,
        day: NaiveDate,
        kind: AttendanceKind,
        slot: u32,
    ) -> Self {
        let mut c = Self {
            class,
            day,
            kind,
            slot,
            device,
            public_key: pk_array(&key.public_key()),
            signature: [0; SIG],
        };
        c.signature = key.sign(CLASS_CODE_PURPOSE, &[&c.unsigned()]);
        c
    }

    /// True when the signature is the named key's over everything else.
    pub fn verifies(&self) -> bool {
        device::verify(
            &self.public_key,
            CLASS_CODE_PURPOSE,
            &[&self.unsigned()],
            &self.signature,
        )
    }

    /// The code's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.unsigned();
        b.extend_from_slice(&self.signature);
        b
    }

    /// SHA-256 of its bytes: what a response signs.
    pub fn hash(&self) -> [u8; 32] {
        hash(&self.to_bytes())
    }

    /// The text to show.
    pub fn to_text(&self) -> String {
        text_of(&self.to_bytes())
    }
}

impl Response {
    fn unsigned(&self) -> Vec<u8> {
        let mut b = if self.version == VERSION {
            header(KIND_RESPONSE)
        } else {
            header_v2(KIND_RESPONSE)
        };
        b.extend_from_slice(&self.code_hash);
        b.extend_from_slice(self.trainee.uuid().as_bytes());
        b.extend_from_slice(&self.public_key);
        if self.version != VERSION {
            b.extend_from_slice(&fix_bytes(self.fix));
            b.extend_from_slice(&self.uptime_ms.unwrap_or(NO_UPTIME).to_be_bytes());
        }
        b
    }

    fn purpose(&self) -> &'static [u8] {
        if self.version == VERSION {
            RESPONSE_PURPOSE
        } else {
            RESPONSE_V2_PURPOSE
        }
    }

    /// Makes and signs the response to `code` for `trainee`, with the trainee phone's fix and time
    /// since boot when it has them.
    pub fn sign(
        key: &DeviceKey,
        code: &ClassCode,
        trainee: TraineeId,
        fix: Option<Gps>,
        uptime_ms: Option<u64>,
    ) -> Self {
        let mut r = Self {
            code_hash: code.hash(),
            trainee,
            public_key: pk_array(&key.public_key()),
            fix: None,
            uptime_ms: uptime_ms.filter(|u| *u != NO_UPTIME),
            version: VERSION_2,
            signature: [0; SIG],
        };
        // What the bytes hold, so that what is signed and what is read back agree.
        let mut fb = Cursor(&fix_bytes(fix)[..]);
        r.fix = fb.fix().ok().flatten();
        r.signature = key.sign(r.purpose(), &[&r.unsigned()]);
        r
    }

    /// True when the signature is the named key's over everything else.
    pub fn verifies(&self) -> bool {
        device::verify(
            &self.public_key,
            self.purpose(),
            &[&self.unsigned()],
            &self.signature,
        )
    }

    /// Identifies the responding phone: the first 16 bytes of SHA-256 of its public key, hex.
    pub fn responder(&self) -> String {
        responder_of(&self.public_key)
    }

    /// SHA-256 of everything but the signature: the same for every valid signature of one
    /// response, so a re-signed or altered signature cannot make a replay look new.
    pub fn id(&self) -> [u8; 32] {
        hash(&self.unsigned())
    }

    /// The response's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.unsigned();
        b.extend_from_slice(&self.signature);
        b
    }

    /// The text to show.
    pub fn to_text(&self) -> String {
        text_of(&self.to_bytes())
    }
}

/// Identifies a trainee phone by its public key: the first 16 bytes of SHA-256 of it, hex.
pub fn responder_of(public_key: &[u8]) -> String {
    hex::encode(&hash(public_key)[..16])
}

impl Card {
    fn unsigned(&self) -> Vec<u8> {
        let mut b = header(KIND_CARD);
        let district: u32 = self.district.as_str().parse().unwrap_or(0);
        b.extend_from_slice(&district.to_be_bytes());
        b.extend_from_slice(&self.key_id.to_be_bytes());
        b.extend_from_slice(self.trainee.uuid().as_bytes());
        b.extend_from_slice(&day_bytes(self.issued));
        b
    }

    /// Makes and signs a card with a district key.
    pub fn sign(
        key: &DeviceKey,
        district: DistrictCode,
        key_id: u32,
        trainee: TraineeId,
        issued: NaiveDate,
    ) -> Self {
        let mut c = Self {
            district,
            key_id,
            trainee,
            issued,
            signature: [0; SIG],
        };
        c.signature = key.sign(CARD_PURPOSE, &[&c.unsigned()]);
        c
    }

    /// True when `public_key` signed it.
    pub fn verifies_with(&self, public_key: &[u8]) -> bool {
        device::verify(
            public_key,
            CARD_PURPOSE,
            &[&self.unsigned()],
            &self.signature,
        )
    }

    /// The card's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.unsigned();
        b.extend_from_slice(&self.signature);
        b
    }

    /// The text to print.
    pub fn to_text(&self) -> String {
        text_of(&self.to_bytes())
    }
}

fn pk_array(pk: &[u8]) -> [u8; PK] {
    let mut out = [0; PK];
    let n = pk.len().min(PK);
    out[..n].copy_from_slice(&pk[..n]);
    out
}

/// What a coordinator signs when accepting a card: the card, the sign-in, when and where.
#[derive(Clone, Copy, Debug)]
pub struct CardScan<'a> {
    /// The card's bytes.
    pub card: &'a [u8],
    /// The class.
    pub class: ClassId,
    /// The training day.
    pub day: NaiveDate,
    /// Sign-in or sign-out.
    pub kind: AttendanceKind,
    /// The coordinator phone's clock.
    pub at_ms: i64,
    /// The fix, when there was one.
    pub gps: Option<Gps>,
}

impl CardScan<'_> {
    fn parts(&self) -> Vec<Vec<u8>> {
        let gps = self
            .gps
            .map(|g| format!("{:.6},{:.6}", g.lat, g.lon))
            .unwrap_or_default();
        vec![
            hash(self.card).to_vec(),
            self.class.uuid().as_bytes().to_vec(),
            day_bytes(self.day).to_vec(),
            self.kind.code().as_bytes().to_vec(),
            self.at_ms.to_be_bytes().to_vec(),
            gps.into_bytes(),
        ]
    }

    /// The coordinator's signature.
    pub(crate) fn sign(&self, key: &DeviceKey) -> [u8; SIG] {
        let parts = self.parts();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        key.sign(CARD_SCAN_PURPOSE, &refs)
    }

    /// True when `public_key` made `signature` over this scan.
    pub fn verifies(&self, public_key: &[u8], signature: &[u8]) -> bool {
        let parts = self.parts();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        device::verify(public_key, CARD_SCAN_PURPOSE, &refs, signature)
    }
}

/// One of a district's card-signing keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CardKey {
    /// Key id, printed in each card it signs.
    pub id: u32,
    /// Public key, compressed SEC1 (33 bytes).
    pub public_key: Vec<u8>,
    /// Withdrawn: cards it signed are refused.
    pub revoked: bool,
}

/// A district's card keys, as of a version that grows with every change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CardKeySet {
    /// Version.
    pub version: u32,
    /// Every key the district ever used, withdrawn ones marked.
    pub keys: Vec<CardKey>,
}

#[cfg(test)]
mod tests;

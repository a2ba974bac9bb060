//! QR sign-in: the codes phones show and scan, their signatures, and their PNG form.
//!
//! Three kinds of code, each a short binary message in base45 (RFC 9285) behind the prefix `SP:`, so
//! a QR encoder puts it in alphanumeric mode (5.5 bits a character):
//!
//! ```text
//! every code  version (1) · algorithm (1 = ECDSA P-256 / SHA-256) · kind (1)
//! class code  kind 1 · class id (16) · training day (i32, days since 1970-01-01) · sign-in or out (1)
//!             · slot (u32) · coordinator device id (16) · its public key (33) · signature (64)
//! response    kind 2 · SHA-256 of the class code's bytes (32) · trainee id (16)
//!             · the trainee phone's public key (33) · signature (64)
//! card        kind 3 · district (u32) · district key id (u32) · trainee id (16)
//!             · issued (i32, days since 1970-01-01) · signature (64)
//! ```
//!
//! Each signature covers every byte before it, under a purpose label of its own kind, so no
//! signature is valid as another kind's. A class code carries its signer's public key so a trainee's
//! phone, offline and never enrolled, can check it; the server checks that key against the device it
//! enrolled. Cards are signed by a district key that phones learn at enrollment and sync.
//!
//! Freshness is not in the codes: the coordinator's phone remembers when it showed each class code
//! on its time since boot, and takes a response only within [`RESPONSE_WINDOW_MS`] of that.

mod image;
mod signin;

pub use image::{
    CARDS_PER_SHEET, CardCaption, SYSTEM_FONTS, decode_image, decode_luma, render_card_sheet,
    render_png, sheet_path,
};
pub use signin::{
    CLASS_CODE_SLOT_MS, RESPONSE_WINDOW_MS, Scanned, SignInOutcome, respond, scan, slot_of,
};

pub use crate::error::QrError;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::device::{self, DeviceKey};
use crate::domain::AttendanceKind;
use crate::ids::{ClassId, DeviceId, DistrictCode, TraineeId};

/// The text every songpei sign-in code starts with.
pub const PREFIX: &str = "SP:";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// ECDSA over P-256 with SHA-256, the device keys' algorithm.
pub const ALG_ES256: u8 = 1;

const KIND_CLASS_CODE: u8 = 1;
const KIND_RESPONSE: u8 = 2;
const KIND_CARD: u8 = 3;

const CLASS_CODE_PURPOSE: &[u8] = b"songpei/v1/qr-class-code\0";
const RESPONSE_PURPOSE: &[u8] = b"songpei/v1/qr-response\0";
const CARD_PURPOSE: &[u8] = b"songpei/v1/qr-card\0";
const CARD_SCAN_PURPOSE: &[u8] = b"songpei/v1/qr-card-scan\0";

const HEADER: usize = 3;
const SIG: usize = 64;
const PK: usize = 33;
const CLASS_CODE_LEN: usize = HEADER + 16 + 4 + 1 + 4 + 16 + PK + SIG;
const RESPONSE_LEN: usize = HEADER + 32 + 16 + PK + SIG;
const CARD_LEN: usize = HEADER + 4 + 4 + 16 + 4 + SIG;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// SHA-256 of the class code's bytes.
    pub code_hash: [u8; 32],
    /// The trainee signing in.
    pub trainee: TraineeId,
    /// The trainee phone's public key.
    pub public_key: [u8; PK],
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    /// A class code.
    ClassCode(ClassCode),
    /// A trainee's response.
    Response(Response),
    /// A trainee card.
    Card(Card),
}

impl Code {
    /// What it is, for messages.
    pub fn what(&self) -> &'static str {
        match self {
            Code::ClassCode(_) => "a class code",
            Code::Response(_) => "a trainee's response",
            Code::Card(_) => "a trainee card",
        }
    }

    /// Parses a code from its bytes: every length, version, algorithm and kind checked, nothing
    /// trailing. Signatures are checked by the caller, who knows which keys to trust.
    pub fn from_bytes(b: &[u8]) -> Result<Self, QrError> {
        if b.len() < HEADER {
            return Err(QrError::Malformed("too short"));
        }
        if b[0] != VERSION {
            return Err(QrError::UnknownVersion(b[0]));
        }
        if b[1] != ALG_ES256 {
            return Err(QrError::UnknownAlgorithm(b[1]));
        }
        let want = match b[2] {
            KIND_CLASS_CODE => CLASS_CODE_LEN,
            KIND_RESPONSE => RESPONSE_LEN,
            KIND_CARD => CARD_LEN,
            k => return Err(QrError::UnknownKind(k)),
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
            KIND_RESPONSE => Code::Response(Response {
                code_hash: r.take(),
                trainee: TraineeId::from(r.uuid()),
                public_key: r.take(),
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
        let mut b = header(KIND_RESPONSE);
        b.extend_from_slice(&self.code_hash);
        b.extend_from_slice(self.trainee.uuid().as_bytes());
        b.extend_from_slice(&self.public_key);
        b
    }

    /// Makes and signs the response to `code` for `trainee`.
    pub fn sign(key: &DeviceKey, code: &ClassCode, trainee: TraineeId) -> Self {
        let mut r = Self {
            code_hash: code.hash(),
            trainee,
            public_key: pk_array(&key.public_key()),
            signature: [0; SIG],
        };
        r.signature = key.sign(RESPONSE_PURPOSE, &[&r.unsigned()]);
        r
    }

    /// True when the signature is the named key's over everything else.
    pub fn verifies(&self) -> bool {
        device::verify(
            &self.public_key,
            RESPONSE_PURPOSE,
            &[&self.unsigned()],
            &self.signature,
        )
    }

    /// Identifies the responding phone: the first 16 bytes of SHA-256 of its public key, hex.
    pub fn responder(&self) -> String {
        hex::encode(&hash(&self.public_key)[..16])
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
    pub gps: Option<crate::domain::Gps>,
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

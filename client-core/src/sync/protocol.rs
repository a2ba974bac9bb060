//! Protocol v1 of `POST /v1/sync`: one request, one response, each a zstd-compressed postcard
//! message. The request pushes, for every document changed on the phone, the changes since the heads
//! the server last acknowledged; the response acknowledges them and carries what is new for the
//! phone's villages since its cursors.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use uuid::Uuid;

pub use crate::qr::{CardKey, CardKeySet};

/// Version of the protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Media type of request and response bodies (before `Content-Encoding: zstd`).
pub const CONTENT_TYPE: &str = "application/vnd.songpei.sync.v1+postcard";
/// zstd level: level 3 compresses a day's upload within a few percent of level 19, at a fraction
/// of the CPU on a cheap phone.
const ZSTD_LEVEL: i32 = 3;

/// A change hash (SHA-256 of an automerge change).
pub type Hash = [u8; 32];

/// A position in one village's change feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Village code.
    pub village: String,
    /// Last feed sequence number the phone has applied (0: nothing yet).
    pub seq: u64,
    /// Check of the feed entry at `seq`, as the server sent it: a server restored from an older
    /// backup may hand the same number to another entry, and then the phone starts the village
    /// again rather than miss what it never saw.
    pub tag: u32,
}

/// The changes of one document that the server has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// Document id.
    pub doc: Uuid,
    /// Heads the server last acknowledged (empty: everything is new to the server).
    pub base: Vec<Hash>,
    /// Raw automerge change chunks since `base`, concatenated. The phone's heads are not sent: they
    /// are the tips of `base` and these changes, which the server computes.
    pub changes: Vec<u8>,
}

/// A phone's sync request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Protocol version.
    pub version: u16,
    /// Idempotency key: a retried request carries the same id and bytes.
    pub request_id: [u8; 16],
    /// The sending device.
    pub device: Uuid,
    /// District the phone works in.
    pub district: String,
    /// Where the phone is in each of its villages' feeds.
    pub cursors: Vec<Cursor>,
    /// Local changes.
    pub pushes: Vec<Push>,
    /// Budget for the documents in the response, in uncompressed bytes; the server pages beyond it.
    pub max_response_bytes: u32,
    /// Version of the district's card keys the phone holds (0: none); the response carries the
    /// keys when the server's differ.
    pub card_keys: u32,
    /// Version of the district's policy table the phone holds (0: none); the response carries
    /// the table when the server's differs.
    pub policy: u32,
    /// Version of the instructors of the phone's villages it holds (0: none); the response
    /// carries them when the server's differ.
    pub instructors: u32,
}

/// An instructor's account, as phones of its villages know it: who may witness a trainee
/// phone's key and co-sign card sign-ins in a class that names the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instructor {
    /// Account id.
    pub account: String,
    /// Login name, which a coordinator names the instructor by.
    pub username: String,
    /// The account's villages.
    pub villages: Vec<String>,
    /// Its enrolled (not withdrawn) phones.
    pub devices: Vec<InstructorDevice>,
}

/// One of an instructor's phones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructorDevice {
    /// Device id.
    pub id: Uuid,
    /// Its public key, compressed SEC1 (33 bytes).
    pub public_key: Vec<u8>,
}

/// The instructors of a phone's villages, as of a version (a digest of the list; never 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructorSet {
    /// Version.
    pub version: u32,
    /// Instructors, by account id.
    pub instructors: Vec<Instructor>,
}

impl InstructorSet {
    /// The set with its version computed from its content.
    pub fn new(mut instructors: Vec<Instructor>) -> Self {
        instructors.sort_by(|a, b| a.account.cmp(&b.account));
        let bytes = postcard::to_stdvec(&instructors).unwrap_or_default();
        let digest = sha2::Sha256::digest(&bytes);
        let version = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]).max(1);
        Self {
            version,
            instructors,
        }
    }

    /// The instructor owning a device.
    pub fn by_device(&self, device: Uuid) -> Option<(&Instructor, &InstructorDevice)> {
        self.instructors
            .iter()
            .find_map(|i| i.devices.iter().find(|d| d.id == device).map(|d| (i, d)))
    }

    /// The instructor with this account id or login name.
    pub fn find(&self, account_or_username: &str) -> Option<&Instructor> {
        let t = account_or_username.trim();
        self.instructors
            .iter()
            .find(|i| i.account == t || i.username == t)
    }
}

/// One entry of the district's policy table (`[[policy]]` in the server's configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEntry {
    /// First day the values apply, `YYYY-MM-DD`.
    pub effective_from: String,
    /// Living allowance per payable day, in fen.
    pub allowance_fen_per_day: i64,
    /// Subsidised classes a person may have in a calendar year.
    pub max_subsidised_per_year: u32,
}

/// The district's policy table, as of a version ([`crate::rules::PolicyTable::version`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySet {
    /// Version.
    pub version: u32,
    /// Entries, oldest first.
    pub entries: Vec<PolicyEntry>,
}

impl PolicySet {
    /// The set of a table.
    pub fn of(table: &crate::rules::PolicyTable) -> Self {
        Self {
            version: table.version(),
            entries: table
                .entries()
                .iter()
                .map(|p| PolicyEntry {
                    effective_from: p.effective_from.to_string(),
                    allowance_fen_per_day: p.allowance_fen_per_day,
                    max_subsidised_per_year: p.max_subsidised_per_year,
                })
                .collect(),
        }
    }

    /// The table, if every entry reads.
    pub fn table(&self) -> Option<crate::rules::PolicyTable> {
        let entries = self
            .entries
            .iter()
            .map(|e| {
                Some(crate::rules::Policy {
                    effective_from: e.effective_from.parse().ok()?,
                    allowance_fen_per_day: e.allowance_fen_per_day,
                    max_subsidised_per_year: e.max_subsidised_per_year,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        (!entries.is_empty()).then(|| crate::rules::PolicyTable::new(entries))
    }
}

/// The district's subsidy decision for one place, on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireDecision {
    /// Not a subsidised class.
    ClassNotSubsidised,
    /// The `nth` subsidised class of the person in `year`.
    Subsidised {
        /// Year.
        year: i32,
        /// Rank.
        nth: u32,
    },
    /// The person already has the year's maximum.
    YearCapReached {
        /// Year.
        year: i32,
        /// The cap.
        cap: u32,
    },
    /// This occupation and level were subsidised for the person in `earlier`.
    SameOccupationAndLevel {
        /// The class subsidised.
        earlier: Uuid,
    },
    /// The class was cancelled.
    ClassCancelled,
}

impl From<&crate::rules::SubsidyDecision> for WireDecision {
    fn from(d: &crate::rules::SubsidyDecision) -> Self {
        use crate::rules::SubsidyDecision as D;
        match d {
            D::ClassNotSubsidised => Self::ClassNotSubsidised,
            D::Subsidised { year, nth } => Self::Subsidised {
                year: *year,
                nth: *nth,
            },
            D::YearCapReached { year, cap } => Self::YearCapReached {
                year: *year,
                cap: *cap,
            },
            D::SameOccupationAndLevel { earlier } => Self::SameOccupationAndLevel {
                earlier: earlier.uuid(),
            },
            D::ClassCancelled => Self::ClassCancelled,
        }
    }
}

impl From<&WireDecision> for crate::rules::SubsidyDecision {
    fn from(d: &WireDecision) -> Self {
        use crate::rules::SubsidyDecision as D;
        match d {
            WireDecision::ClassNotSubsidised => D::ClassNotSubsidised,
            WireDecision::Subsidised { year, nth } => D::Subsidised {
                year: *year,
                nth: *nth,
            },
            WireDecision::YearCapReached { year, cap } => D::YearCapReached {
                year: *year,
                cap: *cap,
            },
            WireDecision::SameOccupationAndLevel { earlier } => D::SameOccupationAndLevel {
                earlier: (*earlier).into(),
            },
            WireDecision::ClassCancelled => D::ClassCancelled,
        }
    }
}

/// What the district decided and pays for one place (a trainee in a class).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceSettlement {
    /// The trainee.
    pub trainee: Uuid,
    /// The subsidy decision; `None` while the district has not decided (the trainee's record has
    /// not reached it).
    pub decision: Option<WireDecision>,
    /// The household's poverty status the district paid by (its code), if known.
    pub poverty: Option<String>,
    /// Attendance records of this place the district holds: a phone holding more has records
    /// the district has not seen, and shows its own estimate for the place.
    pub records: u32,
    /// Training days the district pays, as a bitmap over the class's days (bit `i` of byte
    /// `i / 8`: the first day plus `i` days).
    pub payable: Vec<u8>,
    /// Training days with records the district holds for review (not paid until accepted).
    pub held: Vec<u8>,
    /// The living allowance the district pays for the place, in fen.
    pub allowance_fen: i64,
    /// The trainee's name and ID number, masked: sent to instructors, whose phones hold no
    /// trainee documents, so the roster they check faces against is never in the clear.
    pub name_masked: Option<String>,
    /// See `name_masked`.
    pub id_masked: Option<String>,
}

/// What the district decided and pays for every place of one class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSettlement {
    /// The class.
    pub class: Uuid,
    /// [`crate::rules::PayBasis::check`] of the class as the district decided on it.
    pub basis: u32,
    /// Every place on the district's roster.
    pub places: Vec<PlaceSettlement>,
}

/// Days as a bitmap over the days from `first`.
pub fn day_bitmap(
    first: chrono::NaiveDate,
    days: &std::collections::BTreeSet<chrono::NaiveDate>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for d in days {
        let Ok(i) = usize::try_from((*d - first).num_days()) else {
            continue;
        };
        if i >= 8 * 512 {
            continue;
        }
        if out.len() <= i / 8 {
            out.resize(i / 8 + 1, 0);
        }
        out[i / 8] |= 1 << (i % 8);
    }
    out
}

/// The days of a bitmap from [`day_bitmap`].
pub fn bitmap_days(
    first: chrono::NaiveDate,
    bits: &[u8],
) -> std::collections::BTreeSet<chrono::NaiveDate> {
    let mut out = std::collections::BTreeSet::new();
    for (byte, b) in bits.iter().enumerate().take(512) {
        for bit in 0..8 {
            if b & (1 << bit) != 0
                && let Some(d) = first.checked_add_days(chrono::Days::new((byte * 8 + bit) as u64))
            {
                out.insert(d);
            }
        }
    }
    out
}

/// `POST /v1/cards` (JSON): the cards of a class's trainees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CardsRequest {
    /// The class.
    pub class: Uuid,
}

/// One signed card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedCard {
    /// The trainee.
    pub trainee: Uuid,
    /// The card's QR text.
    pub text: String,
}

/// The cards of a class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CardsResponse {
    /// One per trainee on the roster.
    pub cards: Vec<IssuedCard>,
    /// The district's card keys, so the phone can check the cards it just printed.
    pub card_keys: CardKeySet,
}

/// What became of one pushed document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckOutcome {
    /// Merged: the server now has the pushed heads.
    Merged,
    /// The server lacks changes the push depends on (it was restored from an older backup, or it
    /// never had the base): nothing was applied; push again from the heads the phone shares with
    /// `server_heads`.
    MissingBase,
    /// Not merged: the document's village is no longer one of the device's. The phone keeps the
    /// document, unsynced, for recovery.
    OutOfScope,
    /// The document was erased on the server: nothing was applied, and the phone removes its copy
    /// (with what it changed since).
    Erased,
}

/// The server's answer for one pushed document. Acks come in the order of the pushes, so they do
/// not repeat the document ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Outcome.
    pub outcome: AckOutcome,
    /// The server's heads of the document after the request; empty for a `Merged` push whose heads
    /// are the server's.
    pub server_heads: Vec<Hash>,
}

/// Document content sent to the phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// A whole document (automerge save format), for documents new to the phone.
    Snapshot(Vec<u8>),
    /// Raw change chunks the phone lacks.
    Changes(Vec<u8>),
    /// The document was erased on the server (a person's erasure): the phone removes its copy.
    Erased,
}

/// A document new or changed in the phone's villages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocUpdate {
    /// Document id.
    pub doc: Uuid,
    /// Content.
    pub payload: Payload,
    /// The server's heads of the document: the phone has them once it applied the payload.
    pub heads: Vec<Hash>,
}

/// The server's response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Protocol version.
    pub version: u16,
    /// The request this answers.
    pub request_id: [u8; 16],
    /// Server time when the response was made, ms since the epoch.
    pub server_time_ms: i64,
    /// One per push, in order.
    pub acks: Vec<Ack>,
    /// Documents new since the cursors.
    pub docs: Vec<DocUpdate>,
    /// The cursors after applying `docs`.
    pub cursors: Vec<Cursor>,
    /// True when more documents wait beyond the response budget.
    pub more: bool,
    /// The villages the device may read and write, when they differ from the request's cursors:
    /// the phone follows these from now on, and documents of villages dropped leave it.
    pub scope: Option<Vec<String>>,
    /// The district's card keys, when the request's version is not the server's.
    pub card_keys: Option<CardKeySet>,
    /// The district's policy table, when the request's version is not the server's.
    pub policy: Option<PolicySet>,
    /// The instructors of the phone's villages, when the request's version is not the server's.
    pub instructors: Option<InstructorSet>,
    /// What the district decided and pays for each class in `docs`' feed range: every class with
    /// a feed entry after the phone's cursor, whether or not its document changed.
    pub settlements: Vec<ClassSettlement>,
}

/// A body that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No bytes.
    #[error("the body is empty")]
    Empty,
    /// Not a zstd frame.
    #[error("the body is not zstd-compressed")]
    NotCompressed,
    /// Decompressed, it would exceed the cap.
    #[error("the body decompresses to more than {cap} bytes")]
    TooLarge {
        /// The cap in bytes.
        cap: usize,
    },
    /// Not a message of this protocol.
    #[error("the body is not a songpei sync message")]
    Malformed,
    /// Another protocol version.
    #[error("protocol version {0} is not supported")]
    UnsupportedVersion(u16),
}

impl WireError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::Empty => "empty_body",
            WireError::NotCompressed => "not_compressed",
            WireError::TooLarge { .. } => "decompressed_too_large",
            WireError::Malformed => "malformed_body",
            WireError::UnsupportedVersion(_) => "unsupported_version",
        }
    }
}

/// Serialises and compresses a message into one zstd frame with a content checksum: changes travel
/// without their own checksums (see [`super::changes`]), so the frame's covers them.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising plain data into a Vec cannot fail.
    compress(&postcard::to_stdvec(msg).unwrap_or_default())
}

/// Compresses a serialised message into the body's frame: one zstd frame with a content checksum.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    use zstd::zstd_safe::CParameter;
    // Compressing an in-memory buffer cannot fail.
    zstd::bulk::Compressor::new(ZSTD_LEVEL)
        .and_then(|mut c| {
            c.set_parameter(CParameter::ChecksumFlag(true))?;
            c.compress(raw)
        })
        .unwrap_or_default()
}

/// Byte of the zstd frame header descriptor that says a content checksum follows the frame.
const ZSTD_CHECKSUM_FLAG: u8 = 0x04;

/// Decompresses at most `cap` bytes (checked while streaming, so a bomb never fills memory) and
/// deserialises.
pub fn decode<T: DeserializeOwned + Versioned>(bytes: &[u8], cap: usize) -> Result<T, WireError> {
    use std::io::Read;
    if bytes.is_empty() {
        return Err(WireError::Empty);
    }
    // zstd frame magic number, little-endian 0xFD2FB528.
    if bytes.len() < 4 || bytes[..4] != [0x28, 0xB5, 0x2F, 0xFD] {
        return Err(WireError::NotCompressed);
    }
    // Exactly one frame, and one that carries a checksum, which the decoder then verifies.
    if bytes.get(4).is_none_or(|d| d & ZSTD_CHECKSUM_FLAG == 0)
        || zstd::zstd_safe::find_frame_compressed_size(bytes) != Ok(bytes.len())
    {
        return Err(WireError::Malformed);
    }
    let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|_| WireError::NotCompressed)?;
    let mut raw = Vec::new();
    decoder
        .take((cap as u64).saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|_| WireError::Malformed)?;
    if raw.len() > cap {
        return Err(WireError::TooLarge { cap });
    }
    // The version comes first in every message: read it alone so another version is reported as
    // such rather than as garbage.
    let (version, _) = postcard::take_from_bytes::<u16>(&raw).map_err(|_| WireError::Malformed)?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let (msg, rest) = postcard::take_from_bytes::<T>(&raw).map_err(|_| WireError::Malformed)?;
    if !rest.is_empty() {
        return Err(WireError::Malformed);
    }
    Ok(msg)
}

/// Messages that carry the protocol version first.
pub trait Versioned {}
impl Versioned for SyncRequest {}
impl Versioned for SyncResponse {}

/// Converts automerge heads to wire hashes.
pub fn to_wire(heads: &[automerge::ChangeHash]) -> Vec<Hash> {
    heads.iter().map(|h| h.0).collect()
}

/// Converts wire hashes to automerge heads.
pub fn from_wire(hashes: &[Hash]) -> Vec<automerge::ChangeHash> {
    hashes.iter().map(|h| automerge::ChangeHash(*h)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SyncRequest {
        SyncRequest {
            version: PROTOCOL_VERSION,
            request_id: [7; 16],
            device: Uuid::from_bytes([1; 16]),
            district: "450802".into(),
            cursors: vec![Cursor {
                village: "450802101201".into(),
                seq: 42,
                tag: 7,
            }],
            pushes: vec![Push {
                doc: Uuid::from_bytes([2; 16]),
                base: vec![[3; 32]],
                changes: vec![5; 100],
            }],
            max_response_bytes: 1 << 20,
            card_keys: 0,
            policy: 0,
            instructors: 0,
        }
    }

    #[test]
    fn round_trip() {
        let r = request();
        let bytes = encode(&r);
        assert_eq!(decode::<SyncRequest>(&bytes, 1 << 20), Ok(r));
    }

    #[test]
    fn an_empty_request_is_small() {
        let r = SyncRequest {
            pushes: vec![],
            ..request()
        };
        // Header fields, one cursor: well under 100 bytes compressed.
        assert!(encode(&r).len() < 100, "{}", encode(&r).len());
    }

    #[test]
    fn refusals() {
        let raw = postcard::to_stdvec(&request()).unwrap_or_default();
        assert_eq!(decode::<SyncRequest>(&[], 100), Err(WireError::Empty));
        assert_eq!(
            decode::<SyncRequest>(&raw, 1 << 20),
            Err(WireError::NotCompressed)
        );
        let big = encode(&SyncRequest {
            pushes: vec![Push {
                changes: vec![0; 100_000],
                ..request().pushes[0].clone()
            }],
            ..request()
        });
        assert!(big.len() < 1_000, "zeros compress");
        assert_eq!(
            decode::<SyncRequest>(&big, 50_000),
            Err(WireError::TooLarge { cap: 50_000 })
        );
        let garbage = compress(&[1, 0, 0xff, 0xff, 0xff]);
        assert_eq!(
            decode::<SyncRequest>(&garbage, 100),
            Err(WireError::Malformed)
        );
        let v2 = compress(&postcard::to_stdvec(&2u16).unwrap_or_default());
        assert_eq!(
            decode::<SyncRequest>(&v2, 100),
            Err(WireError::UnsupportedVersion(2))
        );
        let mut trailing = raw.clone();
        trailing.push(0);
        let trailing = compress(&trailing);
        assert_eq!(
            decode::<SyncRequest>(&trailing, 1 << 20),
            Err(WireError::Malformed)
        );
        // A frame without a checksum; two frames.
        assert_eq!(
            decode::<SyncRequest>(&zstd::bulk::compress(&raw, 3).unwrap_or_default(), 1 << 20),
            Err(WireError::Malformed)
        );
        let mut two = encode(&request());
        two.extend(encode(&request()));
        assert_eq!(
            decode::<SyncRequest>(&two, 1 << 20),
            Err(WireError::Malformed)
        );
        // A response is not a request.
        let resp = encode(&SyncResponse {
            version: 1,
            request_id: [0; 16],
            server_time_ms: 0,
            acks: vec![],
            docs: vec![],
            cursors: vec![],
            more: false,
            scope: None,
            card_keys: None,
            policy: None,
            instructors: None,
            settlements: Vec::new(),
        });
        assert!(decode::<SyncRequest>(&resp, 1 << 20).is_err());
    }

    #[test]
    fn no_single_bit_flip_of_a_body_passes_as_another_message() {
        use automerge::transaction::Transactable;
        let mut d = automerge::Automerge::new();
        let mut tx = d.transaction();
        tx.put(automerge::ROOT, "name", "王秀英").ok();
        tx.commit();
        let mut r = request();
        r.pushes[0].base.clear();
        r.pushes[0].changes = crate::changes::pack(&d.save_after(&[]), &[]).unwrap_or_default();
        let bytes = encode(&r);
        assert_eq!(decode::<SyncRequest>(&bytes, 1 << 20), Ok(r.clone()));
        let mut refused = 0;
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            // Refused, or (a bit the frame format leaves unused) the very same message.
            match decode::<SyncRequest>(&b, 1 << 20) {
                Err(_) => refused += 1,
                Ok(m) => assert_eq!(m, r, "bit {i} flipped passed as another message"),
            }
        }
        assert!(refused + 8 >= bytes.len() * 8, "{refused} refused");
    }

    proptest::proptest! {
        /// Any set of days within a year of the first day comes back from its bitmap unchanged.
        #[test]
        fn a_day_bitmap_reads_back_the_days_it_was_made_of(
            offsets in proptest::collection::btree_set(0u64..366, 0..40)
        ) {
            let first = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("day");
            let days: std::collections::BTreeSet<chrono::NaiveDate> = offsets
                .iter()
                .filter_map(|o| first.checked_add_days(chrono::Days::new(*o)))
                .collect();
            let bits = day_bitmap(first, &days);
            proptest::prop_assert!(bits.len() <= 46);
            proptest::prop_assert_eq!(bitmap_days(first, &bits), days);
        }
    }

    #[test]
    fn days_before_the_first_are_left_out_of_a_bitmap() {
        let first = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("day");
        let before = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("day");
        let days = [before, first].into_iter().collect();
        assert_eq!(day_bitmap(first, &days), vec![1]);
    }
}

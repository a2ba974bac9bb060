//! Unit tests of the QR codec and of the sign-in flows that need the crate's own items: malformed
//! texts (A8), every single-bit flip of every kind of code (D1), purpose labels, codes that differ
//! from the one shown in one field only, and flow B (cards) with the district's keys.

use std::ops::Range;
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use uuid::Uuid;

use super::*;
use crate::blind_index::BlindIndexKey;
use crate::catalog::{Level, TrainingType};
use crate::clock::FixedClock;
use crate::domain::{Attendance, AttendanceMethod, Gps, HouseholdChoice, NewClass, NewTrainee};
use crate::error::Error;
use crate::ids::AttendanceId;
use crate::phone::Phone;
use crate::store::MemoryDocStore;
use crate::sync::protocol::{CardKey, CardKeySet};
use crate::validate::{Field, Problem, check_char};

const DISTRICT: &str = "450802";
const OTHER_DISTRICT: &str = "450803";
const VILLAGE: &str = "450802101201";
/// 2026-03-02 09:00 in Beijing.
const NOW_MS: i64 = 1_772_413_200_000;
/// An hour after boot: slot 360.
const UPTIME_MS: i64 = 3_600_000;
const SESSION_MS: i64 = 4 * 3600 * 1000;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
}

/// A fixed key, so that every code below is the same on every run (signatures are RFC 6979).
fn key(n: u8) -> DeviceKey {
    DeviceKey::from_secret(&[n; 32]).expect("a valid scalar")
}

fn district() -> DistrictCode {
    DistrictCode::parse(DISTRICT).expect("district")
}

fn sample_class_code() -> ClassCode {
    ClassCode::sign(
        &key(1),
        DeviceId::from(Uuid::from_u128(0xd1)),
        ClassId::from(Uuid::from_u128(0xc1)),
        day(),
        AttendanceKind::SignIn,
        360,
    )
}

fn sample_response() -> Response {
    Response::sign(
        &key(2),
        &sample_class_code(),
        TraineeId::from(Uuid::from_u128(0x71)),
        Some(Gps {
            lat: 22.8,
            lon: 109.6,
            accuracy_m: Some(15.0),
        }),
        Some(123_456),
    )
}

fn sample_card() -> Card {
    Card::sign(
        &key(3),
        district(),
        1,
        TraineeId::from(Uuid::from_u128(0x72)),
        day() - Days::new(30),
    )
}

fn samples() -> [Code; 3] {
    [
        Code::ClassCode(sample_class_code()),
        Code::Response(sample_response()),
        Code::Card(sample_card()),
    ]
}

fn qr_err(e: Error) -> QrError {
    match e {
        Error::Qr(q) => q,
        other => panic!("expected a QR refusal, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A8: malformed texts.

/// The bytes of `code` changed by `f`, as scanned text.
fn altered(code: &Code, f: impl Fn(&mut Vec<u8>)) -> String {
    let mut b = code.to_bytes();
    f(&mut b);
    text_of(&b)
}

#[test]
fn texts_that_are_not_songpei_codes_or_not_base45_are_refused() {
    let valid = sample_class_code().to_text();
    let rows: Vec<(&str, String, QrError)> = vec![
        ("empty", String::new(), QrError::NotSongpei),
        ("blank", "  \n".into(), QrError::NotSongpei),
        (
            "a web address",
            "https://example.com/SP:ABC".into(),
            QrError::NotSongpei,
        ),
        (
            "lower-case prefix",
            valid.replacen("SP:", "sp:", 1),
            QrError::NotSongpei,
        ),
        (
            "prefix without its colon",
            valid.replacen("SP:", "SP", 1),
            QrError::NotSongpei,
        ),
        (
            "prefix not at the start",
            format!("X{valid}"),
            QrError::NotSongpei,
        ),
        (
            "nothing after the prefix",
            "SP:".into(),
            QrError::Malformed("too short"),
        ),
        (
            "lower-case letters",
            "SP:abc".into(),
            QrError::Malformed("not base45"),
        ),
        (
            "a character outside the alphabet",
            format!("{valid}#"),
            QrError::Malformed("not base45"),
        ),
        (
            "a dangling character",
            "SP:A".into(),
            QrError::Malformed("not base45"),
        ),
        (
            "a triple above 65535",
            "SP::::".into(),
            QrError::Malformed("not base45"),
        ),
        ("one byte", text_of(&[1]), QrError::Malformed("too short")),
        (
            "two bytes",
            text_of(&[1, 1]),
            QrError::Malformed("too short"),
        ),
        (
            "a class code's header only",
            text_of(&[VERSION, ALG_ES256, KIND_CLASS_CODE]),
            QrError::Malformed("wrong length"),
        ),
    ];
    for (what, text, want) in rows {
        assert_eq!(Code::parse(&text), Err(want.clone()), "{what}");
        assert_eq!(scan(&text), Err(want), "{what}");
    }
}

#[test]
fn damaged_codes_of_every_kind_are_refused_with_their_reason() {
    for code in samples() {
        let what = code.what();
        let n = code.to_bytes().len();
        let mut rows: Vec<(String, String, QrError)> = vec![
            (
                "one byte too few".into(),
                altered(&code, |b| {
                    b.pop();
                }),
                QrError::Malformed("wrong length"),
            ),
            (
                "one trailing byte".into(),
                altered(&code, |b| b.push(0)),
                QrError::Malformed("wrong length"),
            ),
            (
                "half its bytes".into(),
                altered(&code, |b| b.truncate(n / 2)),
                QrError::Malformed("wrong length"),
            ),
            (
                "the header only".into(),
                altered(&code, |b| b.truncate(HEADER)),
                QrError::Malformed("wrong length"),
            ),
            (
                "the version first, before a bad algorithm".into(),
                altered(&code, |b| {
                    b[0] = 9;
                    b[1] = 9;
                }),
                QrError::UnknownVersion(9),
            ),
            (
                "the version first, before a bad length".into(),
                altered(&code, |b| {
                    b[0] = 3;
                    b.pop();
                }),
                QrError::UnknownVersion(3),
            ),
        ];
        for v in [0u8, 3, 255] {
            rows.push((
                format!("version {v}"),
                altered(&code, |b| b[0] = v),
                QrError::UnknownVersion(v),
            ));
        }
        for a in [0u8, 2, 255] {
            rows.push((
                format!("algorithm {a}"),
                altered(&code, |b| b[1] = a),
                QrError::UnknownAlgorithm(a),
            ));
        }
        let v2 = code.to_bytes()[0] == VERSION_2;
        let unknown: &[u8] = if v2 { &[0, 1, 3, 255] } else { &[0, 4, 255] };
        for &k in unknown {
            rows.push((
                format!("kind {k}"),
                altered(&code, |b| b[2] = k),
                QrError::UnknownKind(k),
            ));
        }
        // Another known kind of the version in the header: the length gives it away.
        let known: &[u8] = if v2 {
            &[KIND_RESPONSE, KIND_KEY_CLAIM, KIND_WITNESSED]
        } else {
            &[KIND_CLASS_CODE, KIND_RESPONSE, KIND_CARD]
        };
        for &k in known {
            if k != code.to_bytes()[2] {
                rows.push((
                    format!("labelled kind {k}"),
                    altered(&code, |b| b[2] = k),
                    QrError::Malformed("wrong length"),
                ));
            }
        }
        for (row, text, want) in rows {
            assert_eq!(Code::parse(&text), Err(want.clone()), "{what}: {row}");
            assert_eq!(scan(&text), Err(want), "{what}: {row}");
        }
    }
}

/// Byte offsets of the fields that [`Code::from_bytes`] checks beyond the header.
const CLASS_CODE_DAY: Range<usize> = 19..23;
const CLASS_CODE_SIGN_KIND: usize = 23;
const CARD_DISTRICT: Range<usize> = 3..7;
const CARD_ISSUED: Range<usize> = 27..31;
const RESPONSE_FIX: Range<usize> = 84..92;

#[test]
fn fields_out_of_range_are_refused_with_their_reason() {
    let code = Code::ClassCode(sample_class_code());
    let card = Code::Card(sample_card());
    let set = |r: Range<usize>, v: [u8; 4]| move |b: &mut Vec<u8>| b[r.clone()].copy_from_slice(&v);
    let rows: Vec<(&str, String, QrError)> = vec![
        (
            "sign-in kind 2",
            altered(&code, |b| b[CLASS_CODE_SIGN_KIND] = 2),
            QrError::Malformed("unknown sign-in kind"),
        ),
        (
            "sign-in kind 255",
            altered(&code, |b| b[CLASS_CODE_SIGN_KIND] = 255),
            QrError::Malformed("unknown sign-in kind"),
        ),
        (
            "a training day before any date",
            altered(&code, set(CLASS_CODE_DAY, i32::MIN.to_be_bytes())),
            QrError::Malformed("date"),
        ),
        (
            "a training day 2^30 days on",
            altered(&code, set(CLASS_CODE_DAY, (1i32 << 30).to_be_bytes())),
            QrError::Malformed("date"),
        ),
        (
            "a card of district 0",
            altered(&card, set(CARD_DISTRICT, 0u32.to_be_bytes())),
            QrError::Malformed("district"),
        ),
        (
            "a card of a seven-digit district",
            altered(&card, set(CARD_DISTRICT, 1_000_000u32.to_be_bytes())),
            QrError::Malformed("district"),
        ),
        (
            "a card issued before any date",
            altered(&card, set(CARD_ISSUED, i32::MIN.to_be_bytes())),
            QrError::Malformed("date"),
        ),
    ];
    for (what, text, want) in rows {
        assert_eq!(Code::parse(&text), Err(want.clone()), "{what}");
        assert_eq!(scan(&text), Err(want), "{what}");
    }
}

/// Days since 1970 so large that adding the 719 163 days from 0001-01-01 overflows an i32 are no
/// date either, and must not be read as one.
#[test]
fn a_day_count_that_overflows_is_malformed_not_another_date() {
    let code = Code::ClassCode(sample_class_code());
    let card = Code::Card(sample_card());
    let overflow = i32::MAX - EPOCH_CE_DAYS + 1;
    for d in [overflow, i32::MAX] {
        for (what, text) in [
            (
                "class code",
                altered(&code, |b| {
                    b[CLASS_CODE_DAY].copy_from_slice(&d.to_be_bytes())
                }),
            ),
            (
                "card",
                altered(&card, |b| b[CARD_ISSUED].copy_from_slice(&d.to_be_bytes())),
            ),
        ] {
            let parsed = Code::parse(&text);
            assert_eq!(
                parsed,
                Err(QrError::Malformed("date")),
                "{what} with a day count of {d} was read as a date; written again it gives \
                 other bytes: {}",
                parsed.as_ref().is_ok_and(|c| c.to_text() != text)
            );
        }
    }
    // Just below the overflow, the count is merely far beyond chrono's dates.
    let text = altered(&code, |b| {
        b[CLASS_CODE_DAY].copy_from_slice(&(overflow - 1).to_be_bytes())
    });
    assert_eq!(Code::parse(&text), Err(QrError::Malformed("date")));
}

#[test]
fn every_kind_round_trips_text_to_code_to_text() {
    let mut codes = samples().to_vec();
    // Edges: sign-out, the last slot, the epoch and the day before it, a district with a leading 0.
    codes.push(Code::ClassCode(ClassCode::sign(
        &key(1),
        DeviceId::from(Uuid::from_u128(u128::MAX)),
        ClassId::from(Uuid::nil()),
        NaiveDate::from_ymd_opt(1970, 1, 1).expect("date"),
        AttendanceKind::SignOut,
        u32::MAX,
    )));
    codes.push(Code::Card(Card::sign(
        &key(3),
        DistrictCode::parse("010101").expect("district"),
        u32::MAX,
        TraineeId::from(Uuid::nil()),
        NaiveDate::from_ymd_opt(1969, 12, 31).expect("date"),
    )));
    for code in codes {
        let text = code.to_text();
        assert!(text.starts_with(PREFIX), "{text}");
        assert!(
            text[PREFIX.len()..]
                .chars()
                .all(|ch| ch.is_ascii_uppercase()
                    || ch.is_ascii_digit()
                    || " $%*+-./:".contains(ch)),
            "only QR alphanumeric characters: {text}"
        );
        let parsed = Code::parse(&text).expect("parse");
        assert_eq!(parsed, code);
        assert_eq!(parsed.to_text(), text, "text → code → text");
        assert_eq!(Code::from_bytes(&code.to_bytes()), Ok(code.clone()));
        // Spaces and a line end around a scanned text are not part of it.
        assert_eq!(Code::parse(&format!("  {text}\r\n")), Ok(code.clone()));
        // The kind's own to_text agrees with Code's, and scan gives the same kind, signature checked.
        match (&code, scan(&text)) {
            (Code::ClassCode(c), Ok(Scanned::ClassCode(s))) => {
                assert_eq!(c.to_text(), text);
                assert!(c.verifies());
                assert_eq!(&s, c);
            }
            (Code::Response(r), Ok(Scanned::Response(s))) => {
                assert_eq!(r.to_text(), text);
                assert!(r.verifies());
                assert_eq!(&s, r);
            }
            (Code::Card(c), Ok(Scanned::Card(s))) => {
                assert_eq!(c.to_text(), text);
                assert!(c.verifies_with(&key(3).public_key()));
                assert_eq!(&s, c);
            }
            (c, other) => panic!("{}: scanned as {other:?}", c.what()),
        }
    }
    // The layout is the documented one.
    assert_eq!(sample_class_code().to_bytes().len(), 141);
    assert_eq!(sample_response().to_bytes().len(), 166);
    assert_eq!(sample_card().to_bytes().len(), 95);
}

// ---------------------------------------------------------------------------------------------
// D1: every single-bit flip, other keys, purpose labels.

/// What a code with byte `i` changed to `v` (`flipped` its bytes) must be refused with.
fn flip_refusals(kind: u8, i: usize, flipped: &[u8]) -> Vec<QrError> {
    let v = flipped[i];
    let v2 = flipped[0] == VERSION_2 || (i == 0 && kind == KIND_RESPONSE);
    let signature = match kind {
        KIND_CLASS_CODE => QrError::BadSignature("class code"),
        KIND_RESPONSE => QrError::BadSignature("response"),
        _ => QrError::BadSignature("card"),
    };
    match i {
        0 => vec![QrError::UnknownVersion(v)],
        1 => vec![QrError::UnknownAlgorithm(v)],
        2 if v2 && [KIND_RESPONSE, KIND_KEY_CLAIM, KIND_WITNESSED].contains(&v) => {
            vec![QrError::Malformed("wrong length")]
        }
        2 if !v2 && [KIND_CLASS_CODE, KIND_RESPONSE, KIND_CARD].contains(&v) => {
            vec![QrError::Malformed("wrong length")]
        }
        // The fix's latitude and longitude: out of range, or another place.
        i if kind == KIND_RESPONSE && RESPONSE_FIX.contains(&i) => {
            vec![signature, QrError::Malformed("fix")]
        }
        2 => vec![QrError::UnknownKind(v)],
        i if kind == KIND_CLASS_CODE && CLASS_CODE_DAY.contains(&i) => {
            vec![signature, QrError::Malformed("date")]
        }
        CLASS_CODE_SIGN_KIND if kind == KIND_CLASS_CODE => match v {
            0 | 1 => vec![signature],
            _ => vec![QrError::Malformed("unknown sign-in kind")],
        },
        i if kind == KIND_CARD && CARD_DISTRICT.contains(&i) => {
            vec![QrError::Malformed("district"), QrError::OtherDistrict]
        }
        // Key id: the phone holds key 1 only.
        7..11 if kind == KIND_CARD => vec![QrError::UnknownCardKey],
        i if kind == KIND_CARD && CARD_ISSUED.contains(&i) => {
            vec![signature, QrError::Malformed("date")]
        }
        _ => vec![signature],
    }
}

#[test]
fn no_single_bit_flip_of_a_class_code_or_response_scans() {
    for code in [
        Code::ClassCode(sample_class_code()),
        Code::Response(sample_response()),
    ] {
        let bytes = code.to_bytes();
        assert!(scan(&text_of(&bytes)).is_ok(), "the original scans");
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let got = scan(&text_of(&b));
            let allowed = flip_refusals(bytes[2], bit / 8, &b);
            match got {
                Err(e) => assert!(
                    allowed.contains(&e),
                    "{} with bit {bit} flipped: {e:?}, expected one of {allowed:?}",
                    code.what()
                ),
                Ok(s) => panic!("{} with bit {bit} flipped was accepted: {s:?}", code.what()),
            }
            // Parsed on its own, a flipped code never verifies either.
            match Code::from_bytes(&b) {
                Ok(Code::ClassCode(c)) => assert!(!c.verifies(), "bit {bit}"),
                Ok(Code::Response(r)) => assert!(!r.verifies(), "bit {bit}"),
                Ok(other) => panic!("a {} became {}", code.what(), other.what()),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn no_single_bit_flip_of_a_card_verifies_or_is_accepted() {
    let mut s = site();
    let district_key = key(3);
    s.phone
        .set_card_keys(&keys(&[(1, &district_key, false)]))
        .expect("keys");
    let card = sample_card();
    let card = Card::sign(&district_key, district(), 1, s.trainees[0], card.issued);
    let bytes = card.to_bytes();
    let pk = district_key.public_key();
    let session = Some((s.class, day(), AttendanceKind::SignIn));
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let text = text_of(&b);
        match Code::parse(&text) {
            Ok(Code::Card(c)) => assert!(!c.verifies_with(&pk), "bit {bit}"),
            Ok(other) => panic!("bit {bit}: a card became {}", other.what()),
            Err(_) => {}
        }
        let allowed = flip_refusals(KIND_CARD, bit / 8, &b);
        match s.phone.accept(&text, None, session) {
            Err(e) => {
                let e = qr_err(e);
                assert!(
                    allowed.contains(&e),
                    "bit {bit}: {e:?}, expected one of {allowed:?}"
                );
            }
            Ok(out) => panic!("a card with bit {bit} flipped was accepted: {out:?}"),
        }
    }
    assert_eq!(attendance(&mut s.phone, s.class).len(), 0);
    // The card itself is good.
    assert!(matches!(
        s.phone.accept(&card.to_text(), None, session),
        Ok(SignInOutcome::Recorded { .. })
    ));
}

#[test]
fn a_code_signed_by_another_key_than_the_one_it_carries_is_refused() {
    // Everything right but the signer: the content names key 1, key 9 signed it.
    let mut code = sample_class_code();
    code.signature = key(9).sign(CLASS_CODE_PURPOSE, &[&code.unsigned()]);
    assert!(!code.verifies());
    assert_eq!(
        scan(&code.to_text()),
        Err(QrError::BadSignature("class code"))
    );
    // Another key put in a signed code.
    let mut code = sample_class_code();
    code.public_key = pk_array(&key(9).public_key());
    assert_eq!(
        scan(&code.to_text()),
        Err(QrError::BadSignature("class code"))
    );
    // A public key that is no point on the curve.
    let mut code = sample_class_code();
    code.public_key = [9; PK];
    assert_eq!(
        scan(&code.to_text()),
        Err(QrError::BadSignature("class code"))
    );

    let mut resp = sample_response();
    resp.signature = key(9).sign(RESPONSE_PURPOSE, &[&resp.unsigned()]);
    assert_eq!(
        scan(&resp.to_text()),
        Err(QrError::BadSignature("response"))
    );
    let mut resp = sample_response();
    resp.public_key = pk_array(&key(9).public_key());
    assert_eq!(
        scan(&resp.to_text()),
        Err(QrError::BadSignature("response"))
    );

    // A card checked with another district's key.
    let card = sample_card();
    assert!(card.verifies_with(&key(3).public_key()));
    assert!(!card.verifies_with(&key(9).public_key()));
    assert!(!card.verifies_with(&[9; PK]));
    assert!(!card.verifies_with(&[]));
}

#[test]
fn a_signature_is_valid_only_under_its_own_purpose() {
    let k = key(5);
    let pk = k.public_key();
    let card_bytes = sample_card().to_bytes();
    let card_scan = CardScan {
        card: &card_bytes,
        class: ClassId::from(Uuid::from_u128(0xc1)),
        day: day(),
        kind: AttendanceKind::SignIn,
        at_ms: NOW_MS,
        gps: None,
    };
    let purposes = [
        CLASS_CODE_PURPOSE,
        RESPONSE_V2_PURPOSE,
        CARD_PURPOSE,
        CARD_SCAN_PURPOSE,
        KEY_CLAIM_PURPOSE,
        WITNESSED_PURPOSE,
        RESPONSE_PURPOSE,
    ];
    for (made, purpose) in purposes.iter().enumerate() {
        let mut code = sample_class_code();
        code.public_key = pk_array(&pk);
        code.signature = k.sign(purpose, &[&code.unsigned()]);
        let mut resp = sample_response();
        resp.public_key = pk_array(&pk);
        resp.signature = k.sign(purpose, &[&resp.unsigned()]);
        let mut card = sample_card();
        card.signature = k.sign(purpose, &[&card.unsigned()]);
        let parts = card_scan.parts();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let scan_sig = k.sign(purpose, &refs);
        let mut claim = KeyClaim::sign(&k, TraineeId::from(Uuid::from_u128(0x71)));
        let claim_unsigned = &claim.to_bytes()[..claim.to_bytes().len() - 64];
        claim.signature = k.sign(purpose, &[claim_unsigned]);
        let mut witnessed = Witnessed::sign(
            &k,
            KeyClaim::sign(&key(9), TraineeId::from(Uuid::from_u128(0x71))),
            ClassId::from(Uuid::from_u128(0xc1)),
            day(),
            DeviceId::from(Uuid::from_u128(0xd2)),
        );
        let w_bytes = witnessed.to_bytes();
        witnessed.signature = k.sign(purpose, &[&w_bytes[..w_bytes.len() - 64]]);
        let mut v1 = sample_response();
        v1.version = VERSION;
        v1.fix = None;
        v1.uptime_ms = None;
        v1.public_key = pk_array(&pk);
        v1.signature = k.sign(purpose, &[&v1.unsigned()]);
        let valid = [
            code.verifies(),
            resp.verifies(),
            card.verifies_with(&pk),
            card_scan.verifies(&pk, &scan_sig),
            claim.verifies(),
            witnessed.verifies_with(&pk),
            v1.verifies(),
        ];
        let want: Vec<bool> = (0..purposes.len()).map(|i| i == made).collect();
        assert_eq!(
            valid.to_vec(),
            want,
            "signed under {:?}",
            String::from_utf8_lossy(purpose)
        );
    }
    // A class code's signature bytes moved into a response, and the other way round.
    let code = sample_class_code();
    let mut resp = sample_response();
    resp.public_key = code.public_key;
    resp.signature = code.signature;
    assert_eq!(
        scan(&resp.to_text()),
        Err(QrError::BadSignature("response"))
    );
    // A card scan is signed under its own label.
    let parts = card_scan.parts();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    assert_eq!(card_scan.sign(&k), k.sign(CARD_SCAN_PURPOSE, &refs));
}

// ---------------------------------------------------------------------------------------------
// A coordinator's phone.

struct Site {
    clock: Arc<FixedClock>,
    phone: Phone<MemoryDocStore>,
    class: ClassId,
    other_class: ClassId,
    /// Enrolled in `class`.
    trainees: Vec<TraineeId>,
    /// Registered on the phone, enrolled in nothing.
    outsider: TraineeId,
}

fn new_class(p: &mut Phone<MemoryDocStore>, title: &str) -> ClassId {
    p.create_class(NewClass {
        title: title.into(),
        village: VILLAGE.into(),
        occupation: "电工".into(),
        level: Level::Junior,
        training_type: TrainingType::EmploymentSkills,
        subsidised: true,
        institution: None,
        instructors: vec![],
        instructor_accounts: vec![],
        venue: None,
        first_day: day(),
        last_day: day() + Days::new(2),
        daily_hours: Some(8.0),
        starts_at: None,
        sign_out_required: false,
        planned_size: None,
    })
    .expect("class")
}

fn new_trainee(p: &mut Phone<MemoryDocStore>, first17: &str) -> TraineeId {
    p.add_trainee(NewTrainee {
        name: "张秀英".into(),
        id_number: format!("{first17}{}", check_char(first17).expect("17 digits")),
        phone: None,
        village: VILLAGE.into(),
        household: HouseholdChoice::None,
        key_groups: vec![],
        training_wish: None,
        consent_at_ms: NOW_MS,
    })
    .expect("trainee")
}

fn site() -> Site {
    let clock = Arc::new(FixedClock::with_uptime(NOW_MS, "boot-1", UPTIME_MS));
    let mut phone = Phone::init(
        MemoryDocStore::new(),
        DISTRICT,
        &[VILLAGE.to_owned()],
        BlindIndexKey::from_bytes([7; 32]),
    )
    .expect("init")
    .with_clock(clock.clone());
    let class = new_class(&mut phone, "大湾村电工培训班");
    let other_class = new_class(&mut phone, "大湾村焊工培训班");
    let trainees: Vec<TraineeId> = [
        "45080219850312002",
        "45080219791123003",
        "45080219900307123",
    ]
    .iter()
    .map(|n| new_trainee(&mut phone, n))
    .collect();
    for t in &trainees {
        phone.enrol(class, *t).expect("enrol");
    }
    let outsider = new_trainee(&mut phone, "45080219951120301");
    Site {
        clock,
        phone,
        class,
        other_class,
        trainees,
        outsider,
    }
}

fn keys(list: &[(u32, &DeviceKey, bool)]) -> CardKeySet {
    CardKeySet {
        version: 3,
        keys: list
            .iter()
            .map(|(id, k, revoked)| CardKey {
                id: *id,
                public_key: k.public_key(),
                revoked: *revoked,
            })
            .collect(),
    }
}

fn attendance(p: &mut Phone<MemoryDocStore>, class: ClassId) -> Vec<Attendance> {
    let d = p.doc(class.into()).expect("load").expect("class document");
    let (c, _) = crate::doc::class::read(d, class).expect("read");
    c.attendance.into_values().collect()
}

fn record(p: &mut Phone<MemoryDocStore>, class: ClassId, id: AttendanceId) -> Attendance {
    attendance(p, class)
        .into_iter()
        .find(|a| a.id == id)
        .expect("the record is in the class document")
}

fn device_public_key(p: &mut Phone<MemoryDocStore>) -> Vec<u8> {
    crate::device::device_key_or_new(&mut p.store)
        .expect("device key")
        .public_key()
}

// ---------------------------------------------------------------------------------------------
// Flow A: responses to codes that differ from the one shown in one field.

#[test]
fn a_response_to_a_code_differing_from_the_shown_one_in_any_field_was_not_shown_here() {
    let mut s = site();
    let shown = s
        .phone
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    // The phone's own key and device: only the named field differs from what was shown.
    let own = crate::device::device_key_or_new(&mut s.phone.store).expect("key");
    assert_eq!(shown.public_key.to_vec(), own.public_key());
    assert_eq!(shown.device, s.phone.profile().device);
    let sign = |class, d, kind, slot, device| ClassCode::sign(&own, device, class, d, kind, slot);
    let device = shown.device;
    let rows: Vec<(&str, ClassCode)> = vec![
        (
            "another class",
            sign(
                s.other_class,
                day(),
                AttendanceKind::SignIn,
                shown.slot,
                device,
            ),
        ),
        (
            "another day",
            sign(
                s.class,
                day() + Days::new(1),
                AttendanceKind::SignIn,
                shown.slot,
                device,
            ),
        ),
        (
            "sign-out",
            sign(s.class, day(), AttendanceKind::SignOut, shown.slot, device),
        ),
        (
            "the next slot",
            sign(
                s.class,
                day(),
                AttendanceKind::SignIn,
                shown.slot + 1,
                device,
            ),
        ),
        (
            "the slot before",
            sign(
                s.class,
                day(),
                AttendanceKind::SignIn,
                shown.slot - 1,
                device,
            ),
        ),
        (
            "another device id",
            sign(
                s.class,
                day(),
                AttendanceKind::SignIn,
                shown.slot,
                DeviceId::random(),
            ),
        ),
        (
            "another key",
            ClassCode::sign(
                &key(9),
                device,
                s.class,
                day(),
                AttendanceKind::SignIn,
                shown.slot,
            ),
        ),
    ];
    let trainee_key = key(2);
    for (what, code) in rows {
        assert!(code.verifies(), "{what}");
        let r = Response::sign(&trainee_key, &code, s.trainees[0], None, None);
        assert_eq!(
            qr_err(s.phone.accept(&r.to_text(), None, None).expect_err(what)),
            QrError::NotShownHere,
            "{what}"
        );
    }
    assert!(attendance(&mut s.phone, s.class).is_empty());
    // The code shown, made again the same way, is the one shown.
    let same = sign(s.class, day(), AttendanceKind::SignIn, shown.slot, device);
    assert_eq!(same, shown);
    let r = Response::sign(&trainee_key, &same, s.trainees[0], None, None);
    assert!(matches!(
        s.phone.accept(&r.to_text(), None, None),
        Ok(SignInOutcome::Recorded { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Flow B: cards.

#[test]
fn a_card_with_a_session_is_recorded_with_the_coordinators_signature() {
    let mut s = site();
    let district_key = key(3);
    assert_eq!(s.phone.card_keys_version().expect("version"), 0);
    s.phone
        .set_card_keys(&keys(&[(7, &district_key, false)]))
        .expect("keys");
    assert_eq!(s.phone.card_keys_version().expect("version"), 3);
    let t = s.trainees[1];
    let card = Card::sign(&district_key, district(), 7, t, day() - Days::new(30));
    let gps = Some(Gps {
        lat: 23.093_712,
        lon: 109.598_204,
        accuracy_m: Some(8.0),
    });
    s.clock.advance(1_234);
    let out = s
        .phone
        .accept(
            &card.to_text(),
            gps,
            Some((s.class, day() + Days::new(1), AttendanceKind::SignOut)),
        )
        .expect("accept");
    let SignInOutcome::Recorded {
        attendance: id,
        trainee,
        class,
        day: d,
        kind,
        time_verified,
        ..
    } = out
    else {
        panic!("not recorded: {out:?}");
    };
    assert_eq!(
        (trainee, class, d, kind, time_verified),
        (
            t,
            s.class,
            day() + Days::new(1),
            AttendanceKind::SignOut,
            false
        )
    );
    let rec = record(&mut s.phone, s.class, id);
    assert_eq!(rec.trainee, t);
    assert_eq!(rec.day, day() + Days::new(1));
    assert_eq!(rec.kind, AttendanceKind::SignOut);
    assert_eq!(rec.at_ms, NOW_MS + 1_234);
    assert_eq!(rec.clock_offset_ms, None, "never synced");
    assert_eq!(rec.device, s.phone.profile().device);
    assert_eq!(rec.gps, gps);
    let AttendanceMethod::Card {
        card: kept,
        signature,
    } = rec.method.clone()
    else {
        panic!("not a card record: {:?}", rec.method);
    };
    assert_eq!(kept, card.to_bytes());
    assert_eq!(signature.len(), 64);
    // The coordinator's device signed the card, the sign-in, the time and the fix.
    let pk = device_public_key(&mut s.phone);
    let signed = CardScan {
        card: &kept,
        class: s.class,
        day: rec.day,
        kind: rec.kind,
        at_ms: rec.at_ms,
        gps: rec.gps,
    };
    assert!(signed.verifies(&pk, &signature));
    let other_card = sample_card().to_bytes();
    let changed: Vec<(&str, CardScan<'_>)> = vec![
        (
            "another card",
            CardScan {
                card: &other_card,
                ..signed
            },
        ),
        (
            "another class",
            CardScan {
                class: s.other_class,
                ..signed
            },
        ),
        (
            "another day",
            CardScan {
                day: day(),
                ..signed
            },
        ),
        (
            "sign-in",
            CardScan {
                kind: AttendanceKind::SignIn,
                ..signed
            },
        ),
        (
            "another time",
            CardScan {
                at_ms: rec.at_ms + 1,
                ..signed
            },
        ),
        (
            "no fix",
            CardScan {
                gps: None,
                ..signed
            },
        ),
        (
            "another fix",
            CardScan {
                gps: Some(Gps {
                    lat: 23.093_713,
                    lon: 109.598_204,
                    accuracy_m: Some(8.0),
                }),
                ..signed
            },
        ),
    ];
    for (what, scan) in changed {
        assert!(!scan.verifies(&pk, &signature), "{what}");
    }
    assert!(!signed.verifies(&district_key.public_key(), &signature));
    // The class codes the phone shows carry the same key.
    let code = s
        .phone
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    assert_eq!(code.public_key.to_vec(), pk);
    // The same card again writes nothing.
    assert_eq!(
        s.phone
            .accept(
                &card.to_text(),
                None,
                Some((s.class, day() + Days::new(1), AttendanceKind::SignOut)),
            )
            .expect("again"),
        SignInOutcome::AlreadyRecorded {
            trainee: t,
            class: s.class
        }
    );
    assert_eq!(attendance(&mut s.phone, s.class).len(), 1);
}

#[test]
fn a_card_without_a_session_belongs_to_the_last_class_code_shown_within_four_hours() {
    let mut s = site();
    let dk = key(3);
    s.phone
        .set_card_keys(&keys(&[(1, &dk, false)]))
        .expect("keys");
    let card = |t| Card::sign(&dk, district(), 1, t, day()).to_text();
    let [t1, t2, t3] = [s.trainees[0], s.trainees[1], s.trainees[2]];
    // Nothing shown, nothing named.
    assert_eq!(
        qr_err(
            s.phone
                .accept(&card(t1), None, None)
                .expect_err("no session")
        ),
        QrError::NoSession
    );
    // After a class code was shown, the last one shown names the sign-in.
    s.phone
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    s.clock.advance(60_000);
    s.phone
        .class_code(s.class, day() + Days::new(1), AttendanceKind::SignOut)
        .expect("code");
    let recorded = |out: SignInOutcome| match out {
        SignInOutcome::Recorded {
            trainee,
            class,
            day,
            kind,
            ..
        } => (trainee, class, day, kind),
        other => panic!("not recorded: {other:?}"),
    };
    let out = s.phone.accept(&card(t1), None, None).expect("card");
    assert_eq!(
        recorded(out),
        (t1, s.class, day() + Days::new(1), AttendanceKind::SignOut)
    );
    // Four hours after it was shown, still; a millisecond more, no longer.
    s.clock.advance(SESSION_MS);
    let out = s.phone.accept(&card(t2), None, None).expect("card");
    assert_eq!(
        recorded(out),
        (t2, s.class, day() + Days::new(1), AttendanceKind::SignOut)
    );
    s.clock.advance(1);
    assert_eq!(
        qr_err(s.phone.accept(&card(t3), None, None).expect_err("stale")),
        QrError::NoSession
    );
    // A restart forgets the session.
    s.phone
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    s.clock.reboot();
    assert_eq!(
        qr_err(s.phone.accept(&card(t3), None, None).expect_err("rebooted")),
        QrError::NoSession
    );
    s.phone
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let out = s.phone.accept(&card(t3), None, None).expect("card");
    assert_eq!(recorded(out), (t3, s.class, day(), AttendanceKind::SignIn));
    assert_eq!(attendance(&mut s.phone, s.class).len(), 3);
}

/// Makes a card for a trainee.
type MakeCard<'a> = Box<dyn Fn(TraineeId) -> Card + 'a>;

#[test]
fn cards_of_unknown_withdrawn_or_foreign_keys_are_refused() {
    let good = key(3);
    let withdrawn = key(4);
    let stranger = key(9);
    let other_district = DistrictCode::parse(OTHER_DISTRICT).expect("district");
    let rows: Vec<(&str, CardKeySet, MakeCard<'_>, QrError)> = vec![
        (
            "no keys synced yet",
            CardKeySet {
                version: 0,
                keys: vec![],
            },
            Box::new(|t| Card::sign(&good, district(), 1, t, day())),
            QrError::UnknownCardKey,
        ),
        (
            "a withdrawn key",
            keys(&[(1, &good, false), (2, &withdrawn, true)]),
            Box::new(|t| Card::sign(&withdrawn, district(), 2, t, day())),
            QrError::RevokedCardKey,
        ),
        (
            "an unknown key id",
            keys(&[(1, &good, false), (2, &withdrawn, true)]),
            Box::new(|t| Card::sign(&good, district(), 3, t, day())),
            QrError::UnknownCardKey,
        ),
        (
            "another district's card",
            keys(&[(1, &good, false)]),
            Box::new(|t| Card::sign(&good, other_district.clone(), 1, t, day())),
            QrError::OtherDistrict,
        ),
        (
            "signed by another key than the id names",
            keys(&[(1, &good, false), (2, &withdrawn, true)]),
            Box::new(|t| Card::sign(&stranger, district(), 1, t, day())),
            QrError::BadSignature("card"),
        ),
        (
            "signed by the withdrawn key under a good key's id",
            keys(&[(1, &good, false), (2, &withdrawn, true)]),
            Box::new(|t| Card::sign(&withdrawn, district(), 1, t, day())),
            QrError::BadSignature("card"),
        ),
    ];
    for (what, set, make, want) in rows {
        let mut s = site();
        s.phone.set_card_keys(&set).expect("keys");
        let text = make(s.trainees[0]).to_text();
        let session = Some((s.class, day(), AttendanceKind::SignIn));
        assert_eq!(
            qr_err(s.phone.accept(&text, None, session).expect_err(what)),
            want,
            "{what}"
        );
        assert!(attendance(&mut s.phone, s.class).is_empty(), "{what}");
    }
}

#[test]
fn a_card_of_a_trainee_not_enrolled_in_the_class_is_refused() {
    let mut s = site();
    let dk = key(3);
    s.phone
        .set_card_keys(&keys(&[(1, &dk, false)]))
        .expect("keys");
    let session = Some((s.class, day(), AttendanceKind::SignIn));
    for (what, t) in [
        ("registered, not enrolled", s.outsider),
        ("unknown", TraineeId::random()),
    ] {
        let text = Card::sign(&dk, district(), 1, t, day()).to_text();
        match s.phone.accept(&text, None, session) {
            Err(Error::Invalid(i)) => assert_eq!(
                (i.field, i.problem),
                (Field::Trainee, Problem::NotEnrolled),
                "{what}"
            ),
            other => panic!("{what}: {other:?}"),
        }
    }
    // Nor may the session name a day outside the class, or a class not on the phone.
    let text = Card::sign(&dk, district(), 1, s.trainees[0], day()).to_text();
    match s.phone.accept(
        &text,
        None,
        Some((s.class, day() + Days::new(3), AttendanceKind::SignIn)),
    ) {
        Err(Error::Invalid(i)) => {
            assert_eq!((i.field, i.problem), (Field::Day, Problem::NotATrainingDay))
        }
        other => panic!("{other:?}"),
    }
    match s.phone.accept(
        &text,
        None,
        Some((ClassId::random(), day(), AttendanceKind::SignIn)),
    ) {
        Err(Error::Invalid(i)) => {
            assert_eq!((i.field, i.problem), (Field::Class, Problem::NotFound))
        }
        other => panic!("{other:?}"),
    }
    assert!(attendance(&mut s.phone, s.class).is_empty());
}

/// The sizes and QR versions README and ADRs 0004 and 0007 state, at error correction M.
#[test]
fn every_kind_has_its_documented_size_and_qr_version() {
    let claim = KeyClaim::sign(&key(2), TraineeId::from(Uuid::from_u128(0x71)));
    let witnessed = Witnessed::sign(
        &key(4),
        claim.clone(),
        ClassId::from(Uuid::from_u128(0xc1)),
        day(),
        DeviceId::from(Uuid::from_u128(0xd2)),
    );
    let rows: [(&str, Vec<u8>, usize, i16); 5] = [
        ("class code", sample_class_code().to_bytes(), 141, 8),
        ("response", sample_response().to_bytes(), 166, 9),
        ("card", sample_card().to_bytes(), 95, 6),
        ("key claim", claim.to_bytes(), 116, 7),
        ("witnessed claim", witnessed.to_bytes(), 216, 11),
    ];
    for (what, bytes, len, version) in rows {
        assert_eq!(bytes.len(), len, "{what}: bytes");
        let text = text_of(&bytes);
        let qr = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
            .expect("fits a QR code");
        assert_eq!(
            qr.version(),
            qrcode::Version::Normal(version),
            "{what}: {} characters",
            text.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ADR 0007: a registration is taken only when every rule holds; one row per rule.

/// A class naming instructor account `inst`, with trainee 0x71 enrolled, in `VILLAGE`.
fn registration_class() -> crate::domain::Class {
    use crate::catalog::ClassStatus;
    let trainee = TraineeId::from(Uuid::from_u128(0x71));
    crate::domain::Class {
        id: ClassId::from(Uuid::from_u128(0xc1)),
        district: district(),
        village: crate::ids::VillageCode::parse(VILLAGE).expect("village"),
        title: "t".into(),
        occupation: "电工".into(),
        level: Level::Junior,
        training_type: TrainingType::EmploymentSkills,
        subsidised: true,
        institution: None,
        instructors: Default::default(),
        instructor_accounts: ["inst".to_owned()].into_iter().collect(),
        venue: None,
        first_day: day(),
        last_day: day(),
        daily_hours: None,
        starts_at: None,
        sign_out_required: false,
        planned_size: None,
        status: ClassStatus::Running,
        roster: [(
            trainee,
            crate::domain::Enrolment {
                trainee,
                enrolled_at_ms: 0,
            },
        )]
        .into_iter()
        .collect(),
        attendance: Default::default(),
        completion: Default::default(),
        registrations: Default::default(),
    }
}

fn signer(account: &str, k: &DeviceKey, instructor: bool, villages: &[&str]) -> Signer {
    Signer {
        account: account.into(),
        public_key: k.public_key(),
        instructor,
        villages: villages.iter().map(|v| (*v).to_owned()).collect(),
    }
}

#[test]
fn a_registration_is_taken_only_when_every_rule_holds() {
    let class = registration_class();
    let trainee = TraineeId::from(Uuid::from_u128(0x71));
    let (trainee_key, witness_key, filer_key) = (key(20), key(21), key(22));
    let (witness, filer) = (
        DeviceId::from(Uuid::from_u128(0xd21)),
        DeviceId::from(Uuid::from_u128(0xd22)),
    );
    let claim = KeyClaim::sign(&trainee_key, trainee);
    let good_w = || Witnessed::sign(&witness_key, claim.clone(), class.id, day(), witness);
    let file = |w: &Witnessed| Registration::sign(&filer_key, w.to_bytes(), filer, NOW_MS);
    let instructor = || signer("inst", &witness_key, true, &[VILLAGE]);
    let coordinator = || signer("coord", &filer_key, false, &[VILLAGE]);
    type Made = (Registration, Option<Signer>, Option<Signer>);
    #[allow(clippy::type_complexity)]
    let rows: Vec<(&str, Box<dyn Fn() -> Made + '_>, Result<(), &str>)> = vec![
        (
            "every rule holds",
            Box::new(|| (file(&good_w()), Some(instructor()), Some(coordinator()))),
            Ok(()),
        ),
        (
            "not a witnessed claim",
            Box::new(|| {
                let mut r = file(&good_w());
                r.witnessed = claim.to_bytes();
                (r, Some(instructor()), Some(coordinator()))
            }),
            Err("the witnessed claim cannot be read"),
        ),
        (
            "the claim re-signed by another key",
            Box::new(|| {
                let mut w = good_w();
                w.claim.signature = KeyClaim::sign(&key(23), trainee).signature;
                (file(&w), Some(instructor()), Some(coordinator()))
            }),
            Err("the trainee phone's claim does not verify"),
        ),
        (
            "witnessed for another class",
            Box::new(|| {
                let w = Witnessed::sign(
                    &witness_key,
                    claim.clone(),
                    ClassId::from(Uuid::from_u128(0xc2)),
                    day(),
                    witness,
                );
                (file(&w), Some(instructor()), Some(coordinator()))
            }),
            Err("the witness signed for another class"),
        ),
        (
            "a trainee not on the roster",
            Box::new(|| {
                let other = KeyClaim::sign(&trainee_key, TraineeId::from(Uuid::from_u128(0x72)));
                let w = Witnessed::sign(&witness_key, other, class.id, day(), witness);
                (file(&w), Some(instructor()), Some(coordinator()))
            }),
            Err("the trainee is not on the class's roster"),
        ),
        (
            "a witness phone not enrolled",
            Box::new(|| (file(&good_w()), None, Some(coordinator()))),
            Err("the witness's phone is not an enrolled phone"),
        ),
        (
            "signed by another key than the witness phone's",
            Box::new(|| {
                let w = Witnessed::sign(&key(24), claim.clone(), class.id, day(), witness);
                (file(&w), Some(instructor()), Some(coordinator()))
            }),
            Err("the witness's signature does not verify"),
        ),
        (
            "a witness who is not an instructor",
            Box::new(|| {
                let s = signer("inst", &witness_key, false, &[VILLAGE]);
                (file(&good_w()), Some(s), Some(coordinator()))
            }),
            Err("the witness is not an instructor"),
        ),
        (
            "an instructor the class does not name",
            Box::new(|| {
                let s = signer("other", &witness_key, true, &[VILLAGE]);
                (file(&good_w()), Some(s), Some(coordinator()))
            }),
            Err("the witness is not an instructor of this class"),
        ),
        (
            "an instructor of another village",
            Box::new(|| {
                let s = signer("inst", &witness_key, true, &["450802101202"]);
                (file(&good_w()), Some(s), Some(coordinator()))
            }),
            Err("the witness does not work in the class's village"),
        ),
        (
            "a filing phone not enrolled",
            Box::new(|| (file(&good_w()), Some(instructor()), None)),
            Err("the filing phone is not an enrolled phone"),
        ),
        (
            "a filing signature by another key",
            Box::new(|| {
                let r = Registration::sign(&key(25), good_w().to_bytes(), filer, NOW_MS);
                (r, Some(instructor()), Some(coordinator()))
            }),
            Err("the filing phone's signature does not verify"),
        ),
        (
            "witness and filing phone of one account",
            Box::new(|| {
                let s = signer("inst", &filer_key, true, &[VILLAGE]);
                (file(&good_w()), Some(instructor()), Some(s))
            }),
            Err("the witness and the filing phone belong to the same account"),
        ),
        (
            "a filing account of another village",
            Box::new(|| {
                let s = signer("coord", &filer_key, false, &["450802101202"]);
                (file(&good_w()), Some(instructor()), Some(s))
            }),
            Err("the filing phone's account does not work in the class's village"),
        ),
    ];
    for (what, make, want) in rows {
        let (reg, w, f) = make();
        let got = registration_problem(&reg, &class, |d| {
            if d == witness {
                w.clone()
            } else if d == filer {
                f.clone()
            } else {
                None
            }
        })
        .map(|_| ());
        assert_eq!(got, want, "{what}");
    }
}

//! QR sign-in on the phones, through the public API: malformed texts (A8), altered and forged codes
//! (D1), flow A between two stores with its 20-second window, the wrong class or phone, a replay in
//! a later slot (C4), a wall clock two years ahead (E1), and every kind of code through PNG and back.

use std::sync::Arc;

use chrono::NaiveDate;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{Level, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::device::DeviceKey;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewClass, NewTrainee,
};
use songpei_core::ids::{ClassId, DeviceId, DistrictCode, TraineeId};
use songpei_core::qr::{
    self, Card, CardCaption, ClassCode, Code, QrError, Response, Scanned, SignInOutcome,
};
use songpei_core::store::MemoryDocStore;
use songpei_core::validate::{Field, Problem, check_char};
use songpei_core::{Error, Phone};

const DISTRICT: &str = "450802";
const VILLAGE: &str = "450802101201";
/// 2026-03-02 09:00 in Beijing.
const NOW_MS: i64 = 1_772_413_200_000;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
}

fn coordinator(clock: Arc<FixedClock>) -> Phone<MemoryDocStore> {
    Phone::init(
        MemoryDocStore::new(),
        DISTRICT,
        &[VILLAGE.to_owned()],
        BlindIndexKey::from_bytes([7; 32]),
    )
    .expect("init")
    .with_clock(clock)
}

fn class(p: &mut Phone<MemoryDocStore>) -> ClassId {
    p.create_class(NewClass {
        title: "大湾村电工培训班".into(),
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
        last_day: day() + chrono::Days::new(2),
        daily_hours: Some(8.0),
        starts_at: None,
        sign_out_required: false,
        planned_size: None,
    })
    .expect("class")
}

fn trainee(p: &mut Phone<MemoryDocStore>, class: ClassId, first17: &str) -> TraineeId {
    let t = p
        .add_trainee(NewTrainee {
            name: "张秀英".into(),
            id_number: format!("{first17}{}", check_char(first17).expect("17 digits")),
            phone: None,
            village: VILLAGE.into(),
            household: HouseholdChoice::None,
            key_groups: vec![],
            training_wish: None,
            consent_at_ms: NOW_MS,
        })
        .expect("trainee");
    p.enrol(class, t).expect("enrol");
    t
}

struct Setup {
    clock: Arc<FixedClock>,
    coord: Phone<MemoryDocStore>,
    class: ClassId,
    t1: TraineeId,
    t2: TraineeId,
    trainee_phone: MemoryDocStore,
}

fn setup() -> Setup {
    let clock = Arc::new(FixedClock::with_uptime(NOW_MS, "boot-1", 3_600_000));
    let mut coord = coordinator(clock.clone());
    let class = class(&mut coord);
    let t1 = trainee(&mut coord, class, "45080219850312002");
    let t2 = trainee(&mut coord, class, "45080219791123003");
    Setup {
        clock,
        coord,
        class,
        t1,
        t2,
        trainee_phone: MemoryDocStore::new(),
    }
}

fn qr_err(e: Error) -> QrError {
    match e {
        Error::Qr(q) => q,
        other => panic!("expected a QR refusal, got {other:?}"),
    }
}

fn signed_class_code() -> ClassCode {
    ClassCode::sign(
        &DeviceKey::generate(),
        DeviceId::random(),
        ClassId::random(),
        day(),
        AttendanceKind::SignIn,
        7,
    )
}

fn district_key_and_card() -> (DeviceKey, Card) {
    let k = DeviceKey::generate();
    let c = Card::sign(
        &k,
        DistrictCode::parse(DISTRICT).expect("district"),
        1,
        TraineeId::random(),
        day(),
    );
    (k, c)
}

#[test]
fn malformed_texts_are_refused_with_their_reason() {
    let code = signed_class_code();
    let bytes = code.to_bytes();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        format!("SP:{}", encode45(&b))
    };
    let rows: Vec<(&str, String, QrError)> = vec![
        ("empty", String::new(), QrError::NotSongpei),
        (
            "a web address",
            "https://example.com/x".into(),
            QrError::NotSongpei,
        ),
        (
            "lower-case prefix",
            code.to_text().replacen("SP:", "sp:", 1),
            QrError::NotSongpei,
        ),
        (
            "not base45",
            "SP:abc".into(),
            QrError::Malformed("not base45"),
        ),
        ("header only", "SP:".into(), QrError::Malformed("too short")),
        (
            "one byte short",
            with(&|b| {
                b.pop();
            }),
            QrError::Malformed("wrong length"),
        ),
        (
            "a trailing byte",
            with(&|b| b.push(0)),
            QrError::Malformed("wrong length"),
        ),
        (
            "unknown version",
            with(&|b| b[0] = 3),
            QrError::UnknownVersion(3),
        ),
        (
            "unknown algorithm",
            with(&|b| b[1] = 9),
            QrError::UnknownAlgorithm(9),
        ),
        ("unknown kind", with(&|b| b[2] = 4), QrError::UnknownKind(4)),
        (
            "unknown sign-in kind",
            with(&|b| b[3 + 16 + 4] = 7),
            QrError::Malformed("unknown sign-in kind"),
        ),
    ];
    for (what, text, want) in rows {
        assert_eq!(Code::parse(&text), Err(want.clone()), "{what}");
        assert_eq!(qr::scan(&text), Err(want), "{what}");
    }
    // Every kind round-trips text → code → text.
    let (_, card) = district_key_and_card();
    let resp = Response::sign(
        &DeviceKey::generate(),
        &code,
        TraineeId::random(),
        None,
        None,
    );
    for c in [
        Code::ClassCode(code.clone()),
        Code::Response(resp),
        Code::Card(card),
    ] {
        let text = c.to_text();
        assert!(
            text.chars().all(|ch| ch.is_ascii_uppercase()
                || ch.is_ascii_digit()
                || " $%*+-./:".contains(ch)),
            "alphanumeric QR mode: {text}"
        );
        assert_eq!(Code::parse(&text).as_ref(), Ok(&c));
    }
}

/// RFC 9285, for building damaged codes.
fn encode45(b: &[u8]) -> String {
    const A: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    let mut out = String::new();
    for pair in b.chunks(2) {
        if let [x, y] = pair {
            let n = u32::from(*x) * 256 + u32::from(*y);
            out.push(A[(n % 45) as usize] as char);
            out.push(A[(n / 45 % 45) as usize] as char);
            out.push(A[(n / 2025) as usize] as char);
        } else {
            let n = u32::from(pair[0]);
            out.push(A[(n % 45) as usize] as char);
            out.push(A[(n / 45) as usize] as char);
        }
    }
    out
}

#[test]
fn no_single_bit_flip_of_any_code_is_accepted() {
    let code = signed_class_code();
    let resp = Response::sign(
        &DeviceKey::generate(),
        &code,
        TraineeId::random(),
        None,
        None,
    );
    let (district, card) = district_key_and_card();
    let pk = district.public_key();
    for original in [
        Code::ClassCode(code.clone()),
        Code::Response(resp),
        Code::Card(card),
    ] {
        let bytes = original.to_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let accepted = match Code::from_bytes(&b) {
                Err(_) => false,
                Ok(Code::ClassCode(c)) => c.verifies(),
                Ok(Code::Response(r)) => r.verifies(),
                Ok(Code::Card(c)) => c.verifies_with(&pk),
                Ok(Code::KeyClaim(c)) => c.verifies(),
                Ok(Code::Witnessed(w)) => w.claim.verifies(),
            };
            assert!(!accepted, "{} with bit {bit} flipped", original.what());
        }
    }
    // A code that names one key but was signed by another; a card checked with another key.
    let mut forged = code.clone();
    forged.public_key = DeviceKey::generate()
        .public_key()
        .try_into()
        .expect("33 bytes");
    assert!(!forged.verifies());
    assert_eq!(
        qr::scan(&forged.to_text()),
        Err(QrError::BadSignature("class code"))
    );
    let (_, card) = district_key_and_card();
    assert!(!card.verifies_with(&DeviceKey::generate().public_key()));
}

#[test]
fn flow_a_between_two_phones_within_twenty_seconds() {
    let mut s = setup();
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    // The same slot shows the same code.
    s.clock.advance(3_000);
    assert_eq!(
        s.coord
            .class_code(s.class, day(), AttendanceKind::SignIn)
            .expect("code"),
        code
    );
    let resp = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.t1)).expect("respond");
    assert!(resp.verifies());
    assert_eq!(resp.code_hash, code.hash());
    s.clock.advance(17_000); // exactly 20 s after the code was first shown
    let out = s.coord.accept(&resp.to_text(), None, None).expect("accept");
    let SignInOutcome::Recorded {
        attendance,
        trainee,
        time_verified,
        ..
    } = out
    else {
        panic!("not recorded: {out:?}");
    };
    assert_eq!(trainee, s.t1);
    assert!(
        !time_verified,
        "this phone never synced: its offset is unknown"
    );
    // Both signed codes are in the record.
    let doc = s
        .coord
        .document_bytes(s.class.into())
        .expect("doc")
        .expect("doc");
    let d = automerge::Automerge::load(&doc).expect("load");
    let (c, _) = songpei_core::doc::class::read(&d, s.class).expect("read");
    match &c.attendance[&attendance].method {
        AttendanceMethod::Qr {
            code: k,
            response,
            code_age_ms,
        } => {
            assert_eq!(k, &code.to_bytes());
            assert_eq!(response, &resp.to_bytes());
            assert_eq!(*code_age_ms, 20_000);
        }
        other => panic!("{other:?}"),
    }
    // Shown again, it writes nothing new.
    assert_eq!(
        s.coord.accept(&resp.to_text(), None, None).expect("again"),
        SignInOutcome::AlreadyRecorded {
            trainee: s.t1,
            class: s.class
        }
    );
}

#[test]
fn late_wrong_class_other_phone_and_replayed_responses_are_refused() {
    let mut s = setup();
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let late = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.t2)).expect("respond");
    s.clock.advance(20_001);
    assert_eq!(
        qr_err(
            s.coord
                .accept(&late.to_text(), None, None)
                .expect_err("late")
        ),
        QrError::Expired {
            age_s: 20,
            limit_s: 20
        }
    );
    // C4: the old response shown again in a later slot is still too late…
    s.clock.advance(30_000);
    let now_code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    assert_ne!(now_code, code, "a new slot, a new code");
    assert!(matches!(
        qr_err(
            s.coord
                .accept(&late.to_text(), None, None)
                .expect_err("replayed")
        ),
        QrError::Expired { .. }
    ));
    // …and for another class, or a sign-out, it answers no code this phone showed.
    let other = class(&mut s.coord);
    let wrong = ClassCode::sign(
        &DeviceKey::generate(),
        s.coord.profile().device,
        other,
        day(),
        AttendanceKind::SignIn,
        now_code.slot,
    );
    let r = qr::respond(&mut s.trainee_phone, &wrong.to_text(), Some(s.t2)).expect("respond");
    assert_eq!(
        qr_err(
            s.coord
                .accept(&r.to_text(), None, None)
                .expect_err("wrong class")
        ),
        QrError::NotShownHere
    );
    // A code shown by another coordinator's phone.
    let mut other_phone = coordinator(s.clock.clone());
    let oc = class(&mut other_phone);
    let theirs = other_phone
        .class_code(oc, day(), AttendanceKind::SignIn)
        .expect("code");
    let r = qr::respond(&mut s.trainee_phone, &theirs.to_text(), Some(s.t2)).expect("respond");
    assert_eq!(
        qr_err(
            s.coord
                .accept(&r.to_text(), None, None)
                .expect_err("other phone")
        ),
        QrError::NotShownHere
    );
    // A response whose signature was replaced.
    let fresh = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignOut)
        .expect("code");
    let mut forged = qr::respond(&mut s.trainee_phone, &fresh.to_text(), Some(s.t2)).expect("r");
    forged.signature = Response::sign(&DeviceKey::generate(), &fresh, s.t2, None, None).signature;
    assert_eq!(
        qr_err(
            s.coord
                .accept(&forged.to_text(), None, None)
                .expect_err("forged")
        ),
        QrError::BadSignature("response")
    );
    // A trainee not on the roster.
    let stranger = qr::respond(
        &mut s.trainee_phone,
        &fresh.to_text(),
        Some(TraineeId::random()),
    )
    .expect("respond");
    match s.coord.accept(&stranger.to_text(), None, None) {
        Err(Error::Invalid(i)) => {
            assert_eq!((i.field, i.problem), (Field::Trainee, Problem::NotEnrolled));
        }
        other => panic!("{other:?}"),
    }
    // After a restart the phone cannot tell a code's age.
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let r = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.t2)).expect("respond");
    s.clock.reboot();
    assert_eq!(
        qr_err(
            s.coord
                .accept(&r.to_text(), None, None)
                .expect_err("rebooted")
        ),
        QrError::Restarted
    );
    // Steps that want one kind refuse another, naming both.
    assert_eq!(
        qr_err(qr::respond(&mut s.trainee_phone, &r.to_text(), None).expect_err("kind")),
        QrError::WrongKind {
            expected: "a class code",
            found: "a trainee's response"
        }
    );
    assert_eq!(
        qr_err(
            s.coord
                .accept(&code.to_text(), None, None)
                .expect_err("kind")
        ),
        QrError::WrongKind {
            expected: "a trainee's response or card",
            found: "a class code"
        }
    );
}

#[test]
fn a_wall_clock_two_years_ahead_does_not_change_freshness() {
    let mut s = setup();
    s.clock.set_wall(NOW_MS + 730 * 86_400_000);
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let r = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.t1)).expect("respond");
    s.clock.set_wall(NOW_MS - 365 * 86_400_000); // changed again mid-class
    s.clock.advance(5_000);
    let out = s
        .coord
        .accept(&r.to_text(), None, None)
        .expect("accepted on the time since boot");
    assert!(matches!(out, SignInOutcome::Recorded { .. }));
    // And a response 21 s later is refused even if the wall clock went back.
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignOut)
        .expect("code");
    let r = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.t2)).expect("respond");
    s.clock.advance(21_000);
    s.clock.set_wall(NOW_MS);
    assert!(matches!(
        qr_err(s.coord.accept(&r.to_text(), None, None).expect_err("late")),
        QrError::Expired { age_s: 21, .. }
    ));
}

#[test]
fn every_kind_of_code_survives_png_and_back() {
    let code = signed_class_code();
    let resp = Response::sign(
        &DeviceKey::generate(),
        &code,
        TraineeId::random(),
        None,
        None,
    );
    let (_, card) = district_key_and_card();
    for c in [
        Code::ClassCode(code),
        Code::Response(resp),
        Code::Card(card),
    ] {
        let text = c.to_text();
        let png = qr::render_png(&text, 4).expect("png");
        assert_eq!(qr::decode_image(&png).expect("decode"), vec![text.clone()]);
        // The same picture as a grey camera frame.
        let img = image::load_from_memory(&png).expect("load").to_luma8();
        let (w, h) = img.dimensions();
        assert_eq!(
            qr::decode_luma(w, h, img.as_raw()).expect("frame"),
            vec![text]
        );
    }
    assert!(matches!(
        qr::decode_image(b"not a picture"),
        Err(QrError::BadImage(_))
    ));
    let blank = image::GrayImage::from_pixel(200, 200, image::Luma([255]));
    assert_eq!(
        qr::decode_luma(200, 200, blank.as_raw()),
        Err(QrError::NotFound)
    );
    assert!(matches!(
        qr::decode_luma(200, 200, &[0; 10]),
        Err(QrError::BadImage(_))
    ));
}

#[test]
fn every_card_on_a_sheet_decodes_back_to_its_trainee() {
    let k = DeviceKey::generate();
    let district = DistrictCode::parse(DISTRICT).expect("district");
    let cards: Vec<Card> = (0..14)
        .map(|_| Card::sign(&k, district.clone(), 3, TraineeId::random(), day()))
        .collect();
    let captioned: Vec<(String, CardCaption)> = cards
        .iter()
        .map(|c| {
            (
                c.to_text(),
                CardCaption {
                    name_masked: "张*英".into(),
                    detail: "450802********0028".into(),
                },
            )
        })
        .collect();
    let font = qr::SYSTEM_FONTS.iter().find_map(|p| std::fs::read(p).ok());
    let pages = qr::render_card_sheet(&captioned, font.as_deref()).expect("sheets");
    assert_eq!(pages.len(), 2, "12 cards a sheet");
    let mut found = Vec::new();
    for page in &pages {
        for text in qr::decode_image(page).expect("decode") {
            match qr::scan(&text).expect("scan") {
                Scanned::Card(c) => {
                    assert!(c.verifies_with(&k.public_key()));
                    found.push(c.trainee);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    found.sort();
    let mut want: Vec<TraineeId> = cards.iter().map(|c| c.trainee).collect();
    want.sort();
    assert_eq!(found, want);
}

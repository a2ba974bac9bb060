//! QR sign-in between phones through the public API: flow A between a coordinator's phone and a
//! trainee's phone store, the 20-second window on the time since boot, responses to codes this
//! phone did not show, replays (C4), wall clocks that are wrong or changed (E1) or a restart (E3),
//! forged responses, trainees not enrolled, and every code as a picture and on a sheet of cards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{ClassStatus, Level, TrainingType};
use songpei_core::clock::{Clock, FixedClock, Uptime};
use songpei_core::device::DeviceKey;
use songpei_core::domain::{
    Attendance, AttendanceKind, AttendanceMethod, Gps, HouseholdChoice, NewClass, NewTrainee,
};
use songpei_core::ids::{AttendanceId, ClassId, DeviceId, DistrictCode, TraineeId};
use songpei_core::qr::{
    self, CARDS_PER_SHEET, Card, CardCaption, ClassCode, Code, QrError, RESPONSE_WINDOW_MS,
    Response, Scanned, SignInOutcome,
};
use songpei_core::store::{DocStore, MemoryDocStore, SqliteDocStore};
use songpei_core::validate::{Field, Problem, check_char};
use songpei_core::{Error, Phone, Result};

const DISTRICT: &str = "450802";
const VILLAGE: &str = "450802101201";
/// 2026-03-02 09:00 in Beijing, the class's first day.
const NOW_MS: i64 = 1_772_413_200_000;
/// The low bits of a class code's slot: 10-second steps since boot (the top bits tag the boot).
const SLOT_COUNT: u32 = 0xF_FFFF;

/// The coordinator's phone has been up an hour: the time since boot starts slot 360.
const UPTIME_MS: i64 = 3_600_000;
const BOOT: &str = "boot-1";
const DAY_MS: i64 = 86_400_000;
const TWO_YEARS_MS: i64 = 730 * DAY_MS;
const STORE_KEY: [u8; 32] = [0x42; 32];
/// The meta the sync engine writes at the end of a sync: the server's time, and the time since
/// boot when it arrived.
const META_SERVER_TIME: &str = "sync.server_time_ms";
const META_SERVER_UPTIME: &str = "sync.server_uptime";

const ID_NUMBERS: [&str; 5] = [
    "45080219850312002",
    "45080219791123003",
    "45080219880614202",
    "45080219900307123",
    "45080219951120301",
];

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
}

fn blind_key() -> BlindIndexKey {
    BlindIndexKey::from_bytes([7; 32])
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::with_uptime(NOW_MS, BOOT, UPTIME_MS))
}

fn phone_on<S: DocStore>(store: S, clock: Arc<FixedClock>) -> Phone<S> {
    Phone::init(store, DISTRICT, &[VILLAGE.to_owned()], blind_key())
        .expect("init")
        .with_clock(clock)
}

fn coordinator(clock: Arc<FixedClock>) -> Phone<MemoryDocStore> {
    phone_on(MemoryDocStore::new(), clock)
}

fn new_class<S: DocStore>(p: &mut Phone<S>, title: &str) -> ClassId {
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
        sign_out_required: true,
        planned_size: None,
    })
    .expect("class")
}

fn new_trainee<S: DocStore>(p: &mut Phone<S>, first17: &str) -> TraineeId {
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

/// A class with `n` trainees enrolled.
fn class_with<S: DocStore>(p: &mut Phone<S>, n: usize) -> (ClassId, Vec<TraineeId>) {
    let class = new_class(p, "大湾村电工培训班");
    let trainees: Vec<TraineeId> = ID_NUMBERS[..n]
        .iter()
        .map(|id| new_trainee(p, id))
        .collect();
    for t in &trainees {
        p.enrol(class, *t).expect("enrol");
    }
    (class, trainees)
}

struct Setup {
    clock: Arc<FixedClock>,
    coord: Phone<MemoryDocStore>,
    class: ClassId,
    trainees: Vec<TraineeId>,
    /// The trainee's phone: only a store, never set up as a coordinator's.
    trainee_phone: MemoryDocStore,
}

fn setup() -> Setup {
    let clock = clock();
    let mut coord = coordinator(clock.clone());
    let (class, trainees) = class_with(&mut coord, 3);
    Setup {
        clock,
        coord,
        class,
        trainees,
        trainee_phone: MemoryDocStore::new(),
    }
}

fn qr_err<T: std::fmt::Debug>(r: Result<T>) -> QrError {
    match r {
        Err(Error::Qr(q)) => q,
        other => panic!("expected a QR refusal, got {other:?}"),
    }
}

fn invalid<T: std::fmt::Debug>(r: Result<T>) -> (Field, Problem) {
    match r {
        Err(Error::Invalid(i)) => (i.field, i.problem),
        other => panic!("expected a validation refusal, got {other:?}"),
    }
}

fn records<S: DocStore>(p: &mut Phone<S>, class: ClassId) -> BTreeMap<AttendanceId, Attendance> {
    let bytes = p
        .document_bytes(class.into())
        .expect("document")
        .expect("the class document");
    let d = automerge::Automerge::load(&bytes).expect("load");
    let (c, _) = songpei_core::doc::class::read(&d, class).expect("read");
    c.attendance
}

fn recorded(out: &SignInOutcome) -> (AttendanceId, bool) {
    match out {
        SignInOutcome::Recorded {
            attendance,
            time_verified,
            ..
        } => (*attendance, *time_verified),
        other => panic!("not recorded: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Flow A.

#[test]
fn flow_a_between_two_stores_records_both_codes_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let store = SqliteDocStore::open(&dir.path().join("coordinator.db"), &STORE_KEY).expect("db");
    let mut coord = phone_on(store, clock.clone());
    let (class, trainees) = class_with(&mut coord, 2);
    let mut trainee_phone =
        SqliteDocStore::open(&dir.path().join("trainee.db"), &STORE_KEY).expect("db");

    let code = coord
        .class_code(class, day(), AttendanceKind::SignIn)
        .expect("class code");
    assert_eq!(
        (
            code.class,
            code.day,
            code.kind,
            code.slot & SLOT_COUNT,
            code.device
        ),
        (
            class,
            day(),
            AttendanceKind::SignIn,
            360,
            coord.profile().device
        )
    );
    let text = code.to_text();
    assert_eq!(qr::scan(&text), Ok(Scanned::ClassCode(code.clone())));
    // The same code throughout its 10-second slot of the time since boot, then another.
    clock.advance(4_000);
    assert_eq!(
        coord
            .class_code(class, day(), AttendanceKind::SignIn)
            .expect("code"),
        code
    );

    // The trainee's phone answers.
    let resp = qr::respond(&mut trainee_phone, &text, Some(trainees[0])).expect("respond");
    assert_eq!(resp.trainee, trainees[0]);
    assert_eq!(resp.code_hash, code.hash());
    assert!(resp.verifies());
    assert_ne!(
        resp.public_key, code.public_key,
        "the trainee phone's own key"
    );
    // It remembers the trainee, and its key: the same answer again.
    assert_eq!(
        qr::respond(&mut trainee_phone, &text, None).expect("respond"),
        resp
    );
    let resp_text = resp.to_text();
    assert_eq!(qr::scan(&resp_text), Ok(Scanned::Response(resp.clone())));

    clock.advance(6_000);
    let gps = Some(Gps {
        lat: 23.093_7,
        lon: 109.598_2,
        accuracy_m: Some(12.0),
    });
    let out = coord.accept(&resp_text, gps, None).expect("accept");
    let (id, time_verified) = recorded(&out);
    assert_eq!(
        out,
        SignInOutcome::Recorded {
            attendance: id,
            trainee: trainees[0],
            class,
            day: day(),
            kind: AttendanceKind::SignIn,
            time_verified: false,
            key_registered: Some(false),
        }
    );
    assert!(
        !time_verified,
        "never synced: the clock's offset is unknown"
    );

    let all = records(&mut coord, class);
    assert_eq!(all.len(), 1);
    let rec = &all[&id];
    assert_eq!(rec.trainee, trainees[0]);
    assert_eq!((rec.day, rec.kind), (day(), AttendanceKind::SignIn));
    assert_eq!(rec.at_ms, NOW_MS + 10_000);
    assert_eq!(rec.clock_offset_ms, None);
    assert_eq!(rec.device, coord.profile().device);
    assert_eq!(rec.gps, gps);
    match &rec.method {
        AttendanceMethod::Qr {
            code: kept_code,
            response,
            code_age_ms,
        } => {
            assert_eq!(kept_code, &code.to_bytes());
            assert_eq!(response, &resp.to_bytes());
            assert_eq!(*code_age_ms, 10_000);
            // Both codes are kept whole: they parse and verify as they were.
            assert_eq!(
                Code::from_bytes(kept_code),
                Ok(Code::ClassCode(code.clone()))
            );
            assert_eq!(Code::from_bytes(response), Ok(Code::Response(resp.clone())));
        }
        other => panic!("not a QR record: {other:?}"),
    }
    assert_eq!(
        coord.class_view(class).expect("view").status,
        ClassStatus::Running,
        "the first sign-in starts the class"
    );

    // Scanned again: nothing new.
    assert_eq!(
        coord.accept(&resp_text, None, None).expect("again"),
        SignInOutcome::AlreadyRecorded {
            trainee: trainees[0],
            class
        }
    );
    assert_eq!(records(&mut coord, class).len(), 1);

    // The next trainee, on another phone, answers the same code within the window.
    let mut second_phone = MemoryDocStore::new();
    let r2 = qr::respond(&mut second_phone, &text, Some(trainees[1])).expect("respond");
    assert_ne!(r2.public_key, resp.public_key);
    let out = coord.accept(&r2.to_text(), None, None).expect("accept");
    let (id2, _) = recorded(&out);
    let all = records(&mut coord, class);
    assert_eq!(all.len(), 2);
    assert_eq!(all[&id2].trainee, trainees[1]);

    // The slot turns: a new code.
    clock.advance(9_999); // uptime 3_619_999, still slot 361
    let next = coord
        .class_code(class, day(), AttendanceKind::SignIn)
        .expect("code");
    assert_eq!(next.slot & SLOT_COUNT, 361);
    assert_ne!(next, code);
    clock.advance(1);
    assert_eq!(
        coord
            .class_code(class, day(), AttendanceKind::SignIn)
            .expect("code")
            .slot
            & SLOT_COUNT,
        362
    );
}

#[test]
fn a_response_is_taken_up_to_twenty_seconds_after_its_code_was_first_shown() {
    assert_eq!(RESPONSE_WINDOW_MS, 20_000);
    let rows: [(i64, Option<QrError>); 7] = [
        (0, None),
        (9_999, None),
        (19_999, None),
        (20_000, None),
        (
            20_001,
            Some(QrError::Expired {
                age_s: 20,
                limit_s: 20,
            }),
        ),
        (
            29_999,
            Some(QrError::Expired {
                age_s: 29,
                limit_s: 20,
            }),
        ),
        (
            3_600_000,
            Some(QrError::Expired {
                age_s: 3_600,
                limit_s: 20,
            }),
        ),
    ];
    for (age, want) in rows {
        let mut s = setup();
        let code = s
            .coord
            .class_code(s.class, day(), AttendanceKind::SignIn)
            .expect("code");
        let r = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0]))
            .expect("respond");
        s.clock.advance(age);
        let got = s.coord.accept(&r.to_text(), None, None);
        match want {
            None => {
                let (id, _) = recorded(&got.expect("within the window"));
                match &records(&mut s.coord, s.class)[&id].method {
                    AttendanceMethod::Qr { code_age_ms, .. } => {
                        assert_eq!(*code_age_ms, age, "age {age}")
                    }
                    other => panic!("{other:?}"),
                }
            }
            Some(e) => {
                assert_eq!(qr_err(got), e, "age {age}");
                assert!(records(&mut s.coord, s.class).is_empty(), "age {age}");
            }
        }
    }
}

#[test]
fn showing_a_code_again_in_its_slot_does_not_restart_its_window() {
    let mut s = setup();
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    s.clock.advance(9_000);
    assert_eq!(
        s.coord
            .class_code(s.class, day(), AttendanceKind::SignIn)
            .expect("code"),
        code,
        "still its slot"
    );
    let r =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0])).expect("respond");
    s.clock.advance(11_001);
    assert_eq!(
        qr_err(s.coord.accept(&r.to_text(), None, None)),
        QrError::Expired {
            age_s: 20,
            limit_s: 20
        }
    );
}

#[test]
fn a_response_to_a_code_this_phone_did_not_show_is_refused() {
    let mut s = setup();
    let class_x = new_class(&mut s.coord, "大湾村焊工培训班");
    for t in &s.trainees {
        s.coord.enrol(class_x, *t).expect("enrol");
    }
    // The phone shows class Y's code only.
    let shown = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    // Codes for class X, or for Y but not the one shown, made elsewhere in this phone's name.
    let elsewhere = DeviceKey::generate();
    let device = s.coord.profile().device;
    let rows: Vec<(&str, ClassCode)> = vec![
        (
            "class X",
            ClassCode::sign(
                &elsewhere,
                device,
                class_x,
                day(),
                AttendanceKind::SignIn,
                shown.slot,
            ),
        ),
        (
            "class Y's sign-out",
            ClassCode::sign(
                &elsewhere,
                device,
                s.class,
                day(),
                AttendanceKind::SignOut,
                shown.slot,
            ),
        ),
        (
            "class Y, another key",
            ClassCode::sign(
                &elsewhere,
                device,
                s.class,
                day(),
                AttendanceKind::SignIn,
                shown.slot,
            ),
        ),
    ];
    for (what, code) in rows {
        let r = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0]))
            .expect("a well-signed code is answered");
        assert_eq!(
            qr_err(s.coord.accept(&r.to_text(), None, None)),
            QrError::NotShownHere,
            "{what}"
        );
    }

    // A code shown by another coordinator's phone, answered by a trainee enrolled there.
    let mut other = coordinator(s.clock.clone());
    let (their_class, their_trainees) = class_with(&mut other, 1);
    let theirs = other
        .class_code(their_class, day(), AttendanceKind::SignIn)
        .expect("code");
    let r = qr::respond(
        &mut s.trainee_phone,
        &theirs.to_text(),
        Some(their_trainees[0]),
    )
    .expect("respond");
    assert_eq!(
        qr_err(s.coord.accept(&r.to_text(), None, None)),
        QrError::NotShownHere
    );
    // The same response is good where its code was shown.
    recorded(&other.accept(&r.to_text(), None, None).expect("accept"));

    // The coordinator answering its own code.
    let own = s
        .coord
        .respond(&shown.to_text(), Some(s.trainees[0]))
        .expect("respond");
    assert_eq!(own.public_key, shown.public_key);
    assert_eq!(
        qr_err(s.coord.accept(&own.to_text(), None, None)),
        QrError::OwnResponse
    );

    assert!(records(&mut s.coord, s.class).is_empty());
    assert!(records(&mut s.coord, class_x).is_empty());
}

#[test]
fn each_step_refuses_the_other_kinds_of_code() {
    let mut s = setup();
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let r =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0])).expect("respond");
    let card = Card::sign(
        &DeviceKey::generate(),
        DistrictCode::parse(DISTRICT).expect("district"),
        1,
        s.trainees[0],
        day(),
    );
    let enrollment = "songpei-enroll:https://songpei.example.cn#ABCD-EFGH";
    assert_eq!(
        qr::scan(enrollment),
        Ok(Scanned::Enrollment {
            server: Some("https://songpei.example.cn".into()),
            code: "ABCD-EFGH".into()
        })
    );
    for (text, found) in [
        (r.to_text(), "a trainee's response"),
        (card.to_text(), "a trainee card"),
        (enrollment.to_owned(), "an enrollment code"),
    ] {
        assert_eq!(
            qr_err(qr::respond(&mut s.trainee_phone, &text, None)),
            QrError::WrongKind {
                expected: "a class code",
                found
            }
        );
    }
    for (text, found) in [
        (code.to_text(), "a class code"),
        (enrollment.to_owned(), "an enrollment code"),
    ] {
        assert_eq!(
            qr_err(s.coord.accept(&text, None, None)),
            QrError::WrongKind {
                expected: "a trainee's response or card",
                found
            }
        );
    }
    assert!(records(&mut s.coord, s.class).is_empty());
}

// ---------------------------------------------------------------------------------------------
// C4: replays.

#[test]
fn c4_a_replayed_response_is_refused_after_its_window_and_for_another_class() {
    let mut s = setup();
    let [t1, t2] = [s.trainees[0], s.trainees[1]];
    // Slot 360: t1 answers and is recorded; t2's answer is kept back.
    let code1 = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let r1 = qr::respond(&mut s.trainee_phone, &code1.to_text(), Some(t1)).expect("respond");
    let mut t2_phone = MemoryDocStore::new();
    let r2 = qr::respond(&mut t2_phone, &code1.to_text(), Some(t2)).expect("respond");
    s.clock.advance(5_000);
    recorded(&s.coord.accept(&r1.to_text(), None, None).expect("accept"));

    // Slot 361, still within the first code's window: the replay writes nothing new.
    s.clock.advance(6_000);
    let code2 = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    assert_ne!(code2, code1);
    assert_eq!(
        s.coord.accept(&r1.to_text(), None, None).expect("replay"),
        SignInOutcome::AlreadyRecorded {
            trainee: t1,
            class: s.class
        }
    );
    // Past the window the replay is refused outright, and so is t2's answer held back.
    s.clock.advance(9_001); // 20.001 s after code 1 was shown
    assert_eq!(
        qr_err(s.coord.accept(&r1.to_text(), None, None)),
        QrError::Expired {
            age_s: 20,
            limit_s: 20
        }
    );
    assert_eq!(
        qr_err(s.coord.accept(&r2.to_text(), None, None)),
        QrError::Expired {
            age_s: 20,
            limit_s: 20
        }
    );
    // Fifty seconds later, with slot 367's code on screen.
    s.clock.advance(50_000);
    let now = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    assert_eq!(now.slot & SLOT_COUNT, 367);
    assert_eq!(
        qr_err(s.coord.accept(&r2.to_text(), None, None)),
        QrError::Expired {
            age_s: 70,
            limit_s: 20
        }
    );

    // Replayed for another class: with the code hash of another class's code the signature no
    // longer holds; a response re-signed for slot 360's code made out to class X answers no code
    // this phone showed.
    let class_x = new_class(&mut s.coord, "大湾村焊工培训班");
    s.coord.enrol(class_x, t2).expect("enrol");
    let code_x = s
        .coord
        .class_code(class_x, day(), AttendanceKind::SignIn)
        .expect("code");
    let mut moved = r2.clone();
    moved.code_hash = code_x.hash();
    assert_eq!(
        qr_err(s.coord.accept(&moved.to_text(), None, None)),
        QrError::BadSignature("response")
    );
    let mut code1_for_x = code1.clone();
    code1_for_x.class = class_x;
    let resigned = Response::sign(&DeviceKey::generate(), &code1_for_x, t2, None, None);
    assert_eq!(
        qr_err(s.coord.accept(&resigned.to_text(), None, None)),
        QrError::NotShownHere
    );
    // The old response shown while class X's sign-in runs still answers class Y's old code.
    assert!(matches!(
        qr_err(s.coord.accept(&r2.to_text(), None, None)),
        QrError::Expired { .. }
    ));

    // Once 32 newer codes were shown, the phone has forgotten the old one altogether.
    for _ in 0..32 {
        s.clock.advance(10_000);
        s.coord
            .class_code(s.class, day(), AttendanceKind::SignIn)
            .expect("code");
    }
    assert_eq!(
        qr_err(s.coord.accept(&r2.to_text(), None, None)),
        QrError::NotShownHere
    );

    let all = records(&mut s.coord, s.class);
    assert_eq!(all.len(), 1);
    assert!(all.values().all(|a| a.trainee == t1));
    assert!(records(&mut s.coord, class_x).is_empty());
}

/// A response made from a class code shown before the coordinator's phone restarted must not
/// become fresh again when, after the restart, the time since boot reaches the same slot and the
/// phone shows the same sign-in's code.
#[test]
fn c4_a_response_from_before_a_restart_is_not_fresh_again_after_it() {
    let mut s = setup();
    let t = s.trainees[1];
    let before = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    // A screenshot forwarded home; the answer comes back a minute later and is refused.
    let stale = qr::respond(&mut s.trainee_phone, &before.to_text(), Some(t)).expect("respond");
    s.clock.advance(60_000);
    assert!(matches!(
        qr_err(s.coord.accept(&stale.to_text(), None, None)),
        QrError::Expired { .. }
    ));
    // The phone restarts; an hour later the coordinator shows the sign-in again for latecomers.
    s.clock.reboot();
    s.clock.advance(UPTIME_MS);
    let after = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let got = s.coord.accept(&stale.to_text(), None, None);
    assert!(
        matches!(
            got,
            Err(Error::Qr(
                QrError::NotShownHere | QrError::Expired { .. } | QrError::Restarted
            ))
        ),
        "a response made {} ms of uptime before the restart was taken after it: {got:?} \
         (the code shown after the restart is the same as before: {})",
        60_000,
        after == before
    );
    assert!(records(&mut s.coord, s.class).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Clocks.

#[test]
fn a_wall_clock_two_years_ahead_changes_record_times_not_freshness() {
    let mut s = setup();
    let ahead = NOW_MS + TWO_YEARS_MS;
    s.clock.set_wall(ahead);
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("the code names the training day, not the phone's date");
    let r =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0])).expect("respond");
    s.clock.advance(15_000);
    let (id, verified) = recorded(&s.coord.accept(&r.to_text(), None, None).expect("accept"));
    assert!(!verified);
    let rec = &records(&mut s.coord, s.class)[&id];
    assert_eq!(rec.day, day(), "the code's day, not the phone's");
    assert_eq!(
        rec.at_ms,
        ahead + 15_000,
        "the phone's wrong clock, as it was"
    );
    assert_eq!(rec.clock_offset_ms, None);
    match &rec.method {
        AttendanceMethod::Qr { code_age_ms, .. } => assert_eq!(*code_age_ms, 15_000),
        other => panic!("{other:?}"),
    }

    // The wall clock set back a year mid-class does not stretch the window…
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignOut)
        .expect("code");
    let r =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0])).expect("respond");
    s.clock.advance(20_001);
    s.clock.set_wall(NOW_MS - 365 * DAY_MS);
    assert_eq!(
        qr_err(s.coord.accept(&r.to_text(), None, None)),
        QrError::Expired {
            age_s: 20,
            limit_s: 20
        }
    );
    // …and set a day ahead it does not shorten it.
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let r =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[1])).expect("respond");
    s.clock.advance(19_000);
    s.clock.set_wall(NOW_MS + DAY_MS);
    let (id, _) = recorded(&s.coord.accept(&r.to_text(), None, None).expect("accept"));
    assert_eq!(records(&mut s.coord, s.class)[&id].at_ms, NOW_MS + DAY_MS);
}

/// Writes what a sync writes about time: the server's clock, and the time since boot it arrived
/// at. The phone is reopened over its store, as an app does after a sync in another process.
fn simulate_sync(
    p: Phone<MemoryDocStore>,
    clock: &Arc<FixedClock>,
    server_ms: i64,
) -> Phone<MemoryDocStore> {
    let mut store = p.into_store();
    let up: Uptime = clock.uptime().expect("uptime");
    store
        .set_meta(&[
            (META_SERVER_TIME, &server_ms.to_string()),
            (META_SERVER_UPTIME, &up.encode()),
        ])
        .expect("meta");
    Phone::open(store, blind_key())
        .expect("open")
        .with_clock(clock.clone())
}

#[test]
fn e1_e3_the_clock_offset_follows_wall_clock_changes_and_is_lost_on_restart() {
    // The phone's clock is two years ahead; the server's is right.
    let clock = Arc::new(FixedClock::with_uptime(
        NOW_MS + TWO_YEARS_MS,
        BOOT,
        UPTIME_MS,
    ));
    let mut coord = coordinator(clock.clone());
    let (class, trainees) = class_with(&mut coord, 3);
    assert_eq!(
        coord.clock_offset_ms().expect("offset"),
        None,
        "never synced"
    );
    let server_at_sync = NOW_MS;
    let mut coord = simulate_sync(coord, &clock, server_at_sync);
    assert_eq!(
        coord.clock_offset_ms().expect("offset"),
        Some(-TWO_YEARS_MS)
    );
    clock.advance(5_000);
    assert_eq!(
        coord.clock_offset_ms().expect("offset"),
        Some(-TWO_YEARS_MS),
        "both clocks moved on"
    );
    let mut trainee_phone = MemoryDocStore::new();
    let mut sign_in = |coord: &mut Phone<MemoryDocStore>, t: TraineeId, kind| {
        let code = coord.class_code(class, day(), kind).expect("code");
        let r = qr::respond(&mut trainee_phone, &code.to_text(), Some(t)).expect("respond");
        clock.advance(3_000);
        coord.accept(&r.to_text(), None, None).expect("accept")
    };

    // A record knows how far off its time is: corrected, it is the server's time.
    let (id, verified) = recorded(&sign_in(&mut coord, trainees[0], AttendanceKind::SignIn));
    assert!(verified);
    let rec = records(&mut coord, class)[&id].clone();
    assert_eq!(rec.at_ms, NOW_MS + TWO_YEARS_MS + 8_000);
    assert_eq!(rec.clock_offset_ms, Some(-TWO_YEARS_MS));
    assert_eq!(rec.corrected_ms(), Some(server_at_sync + 8_000));

    // E1: someone sets the wall clock mid-class, three hours wrong the other way.
    let wall = NOW_MS - 3 * 3_600_000;
    clock.set_wall(wall);
    assert_eq!(
        coord.clock_offset_ms().expect("offset"),
        Some(server_at_sync + 8_000 - wall)
    );
    let (id, verified) = recorded(&sign_in(&mut coord, trainees[1], AttendanceKind::SignIn));
    assert!(verified);
    let rec = records(&mut coord, class)[&id].clone();
    assert_eq!(rec.at_ms, wall + 3_000, "the phone's clock as it was");
    assert_eq!(rec.clock_offset_ms, Some(server_at_sync + 8_000 - wall));
    assert_eq!(rec.corrected_ms(), Some(server_at_sync + 11_000));

    // E3: after a restart the offset cannot be carried forward.
    clock.reboot();
    assert_eq!(coord.clock_offset_ms().expect("offset"), None);
    clock.advance(1_000);
    assert_eq!(coord.clock_offset_ms().expect("offset"), None);
    let out = sign_in(&mut coord, trainees[2], AttendanceKind::SignIn);
    let (id, verified) = recorded(&out);
    assert!(!verified, "time unverified after a restart");
    assert!(matches!(
        out,
        SignInOutcome::Recorded {
            time_verified: false,
            ..
        }
    ));
    let rec = records(&mut coord, class)[&id].clone();
    assert_eq!(rec.clock_offset_ms, None);
    assert_eq!(rec.corrected_ms(), None);
    assert_eq!(rec.at_ms, wall + 3_000 + 1_000 + 3_000);

    // The next sync gives it back.
    let mut coord = simulate_sync(coord, &clock, NOW_MS + DAY_MS);
    assert_eq!(
        coord.clock_offset_ms().expect("offset"),
        Some(NOW_MS + DAY_MS - (wall + 7_000))
    );
    let (_, verified) = recorded(&sign_in(&mut coord, trainees[0], AttendanceKind::SignOut));
    assert!(verified);
}

/// A clock without a time since boot.
#[derive(Debug)]
struct NoUptimeClock;

impl Clock for NoUptimeClock {
    fn now_ms(&self) -> i64 {
        NOW_MS
    }
}

#[test]
fn class_codes_are_refused_where_a_sign_in_cannot_be_taken() {
    let mut s = setup();
    assert_eq!(
        invalid(
            s.coord
                .class_code(s.class, day() + Days::new(3), AttendanceKind::SignIn)
        ),
        (Field::Day, Problem::NotATrainingDay)
    );
    assert_eq!(
        invalid(
            s.coord
                .class_code(s.class, day() - Days::new(1), AttendanceKind::SignIn)
        ),
        (Field::Day, Problem::NotATrainingDay)
    );
    assert_eq!(
        invalid(
            s.coord
                .class_code(ClassId::random(), day(), AttendanceKind::SignIn)
        ),
        (Field::Class, Problem::NotFound)
    );
    // A code shown before the class was closed is answered in vain.
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let r =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0])).expect("respond");
    s.coord.close_class(s.class).expect("close");
    assert_eq!(
        invalid(s.coord.accept(&r.to_text(), None, None)),
        (Field::Class, Problem::ClassIsFinal)
    );
    assert_eq!(
        invalid(s.coord.class_code(s.class, day(), AttendanceKind::SignIn)),
        (Field::Class, Problem::ClassIsFinal)
    );
    // A phone that cannot tell its time since boot can neither show codes nor take answers.
    let mut p = Phone::open(s.coord.into_store(), blind_key())
        .expect("open")
        .with_clock(Arc::new(NoUptimeClock));
    let (class, _) = class_with(&mut p, 0);
    assert_eq!(
        qr_err(p.class_code(class, day(), AttendanceKind::SignIn)),
        QrError::NoUptime
    );
    assert_eq!(
        qr_err(p.accept(&r.to_text(), None, None)),
        QrError::NoUptime
    );
}

// ---------------------------------------------------------------------------------------------
// Forged and misdirected responses.

#[test]
fn a_response_whose_signature_was_replaced_is_refused() {
    let mut s = setup();
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    let honest =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0])).expect("respond");
    let other_code = ClassCode::sign(
        &DeviceKey::generate(),
        DeviceId::random(),
        s.class,
        day(),
        AttendanceKind::SignOut,
        1,
    );
    let someone = DeviceKey::generate();
    let with = |f: &dyn Fn(&mut Response)| {
        let mut r = honest.clone();
        f(&mut r);
        r
    };
    let rows: Vec<(&str, Response)> = vec![
        (
            "another key's signature of the same content",
            with(&|r| {
                r.signature = Response::sign(&someone, &code, s.trainees[0], None, None).signature
            }),
        ),
        (
            "the signature of the same phone's answer to another code",
            with(&|r| {
                r.signature = qr::respond(
                    &mut s.trainee_phone.clone(),
                    &other_code.to_text(),
                    Some(s.trainees[0]),
                )
                .expect("respond")
                .signature
            }),
        ),
        ("zeros", with(&|r| r.signature = [0; 64])),
        ("all ones", with(&|r| r.signature = [0xff; 64])),
        (
            "the class code's signature",
            with(&|r| r.signature = code.signature),
        ),
        (
            "another trainee put in after signing",
            with(&|r| r.trainee = s.trainees[1]),
        ),
        (
            "the coordinator's key put in after signing",
            with(&|r| r.public_key = code.public_key),
        ),
    ];
    for (what, forged) in rows {
        assert_eq!(
            qr::scan(&forged.to_text()),
            Err(QrError::BadSignature("response")),
            "{what}"
        );
        assert_eq!(
            qr_err(s.coord.accept(&forged.to_text(), None, None)),
            QrError::BadSignature("response"),
            "{what}"
        );
    }
    assert!(records(&mut s.coord, s.class).is_empty());
    // The honest answer is still good.
    recorded(
        &s.coord
            .accept(&honest.to_text(), None, None)
            .expect("accept"),
    );
}

#[test]
fn a_response_for_a_trainee_not_enrolled_is_refused() {
    let mut s = setup();
    let registered = new_trainee(&mut s.coord, ID_NUMBERS[4]);
    let elsewhere = new_class(&mut s.coord, "大湾村焊工培训班");
    let only_elsewhere = new_trainee(&mut s.coord, ID_NUMBERS[3]);
    s.coord.enrol(elsewhere, only_elsewhere).expect("enrol");
    let code = s
        .coord
        .class_code(s.class, day(), AttendanceKind::SignIn)
        .expect("code");
    for (what, t) in [
        ("registered, not enrolled", registered),
        ("enrolled in another class", only_elsewhere),
        ("unknown on this phone", TraineeId::random()),
    ] {
        let r = qr::respond(&mut s.trainee_phone, &code.to_text(), Some(t)).expect("respond");
        assert_eq!(
            invalid(s.coord.accept(&r.to_text(), None, None)),
            (Field::Trainee, Problem::NotEnrolled),
            "{what}"
        );
    }
    assert!(records(&mut s.coord, s.class).is_empty());
    // A trainee phone that was never told whose it is cannot answer.
    assert_eq!(
        invalid(qr::respond(
            &mut MemoryDocStore::new(),
            &code.to_text(),
            None
        )),
        (Field::Trainee, Problem::Missing)
    );
    // Nor does a bad fix get written.
    let r =
        qr::respond(&mut s.trainee_phone, &code.to_text(), Some(s.trainees[0])).expect("respond");
    let nowhere = Some(Gps {
        lat: 91.0,
        lon: 109.6,
        accuracy_m: None,
    });
    assert_eq!(
        invalid(s.coord.accept(&r.to_text(), nowhere, None)),
        (Field::Gps, Problem::OutOfRange)
    );
    assert!(records(&mut s.coord, s.class).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Pictures.

/// A fixed key, so that the pictures are the same on every run (signatures are RFC 6979).
fn fixed_key(n: u8) -> DeviceKey {
    DeviceKey::from_secret(&[n; 32]).expect("a valid scalar")
}

fn every_kind() -> Vec<Code> {
    let code = ClassCode::sign(
        &fixed_key(1),
        DeviceId::from(uuid::Uuid::from_u128(0xd1)),
        ClassId::from(uuid::Uuid::from_u128(0xc1)),
        day(),
        AttendanceKind::SignOut,
        u32::MAX,
    );
    let resp = Response::sign(
        &fixed_key(2),
        &code,
        TraineeId::from(uuid::Uuid::from_u128(0x71)),
        Some(songpei_core::domain::Gps {
            lat: -89.999_999,
            lon: -179.999_999,
            accuracy_m: Some(65_000.0),
        }),
        Some(u64::MAX - 1),
    );
    let card = Card::sign(
        &fixed_key(3),
        DistrictCode::parse(DISTRICT).expect("district"),
        9,
        TraineeId::from(uuid::Uuid::from_u128(0x72)),
        day(),
    );
    vec![
        Code::ClassCode(code),
        Code::Response(resp),
        Code::Card(card),
    ]
}

fn png_of(img: &image::GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

#[test]
fn every_kind_of_code_survives_png_and_back() {
    for code in every_kind() {
        let text = code.to_text();
        for px in [2, 4, 8] {
            let png = qr::render_png(&text, px).expect("png");
            assert!(png.starts_with(b"\x89PNG"), "{} at {px} px", code.what());
            assert_eq!(
                qr::decode_image(&png).expect("decode"),
                vec![text.clone()],
                "{} at {px} px",
                code.what()
            );
        }
        // Module sizes out of range are clamped.
        assert_eq!(
            qr::render_png(&text, 0).expect("png"),
            qr::render_png(&text, 1).expect("png")
        );
        assert_eq!(
            qr::render_png(&text, 1_000).expect("png"),
            qr::render_png(&text, 64).expect("png")
        );
        // Decoded back, the text is the code.
        let back = qr::decode_image(&qr::render_png(&text, 4).expect("png")).expect("decode");
        assert_eq!(Code::parse(&back[0]), Ok(code.clone()));
    }
}

#[test]
fn a_grey_camera_frame_decodes_to_the_code_in_it() {
    for code in every_kind() {
        let text = code.to_text();
        let png = qr::render_png(&text, 3).expect("png");
        let img = image::load_from_memory(&png).expect("load").to_luma8();
        // A 640×480 Y plane, the code somewhere on a grey table.
        let (w, h) = (640u32, 480u32);
        let mut frame = image::GrayImage::from_pixel(w, h, image::Luma([190]));
        image::imageops::replace(&mut frame, &img, 70, 40);
        let raw = frame.into_raw();
        assert_eq!(raw.len(), (w * h) as usize);
        assert_eq!(
            qr::decode_luma(w, h, &raw).expect("frame"),
            vec![text.clone()],
            "{}",
            code.what()
        );
        // A frame shorter than its size says.
        assert!(matches!(
            qr::decode_luma(w, h, &raw[..raw.len() - 1]),
            Err(QrError::BadImage(_))
        ));
    }
}

#[test]
fn two_codes_in_one_picture_both_decode() {
    let kinds = every_kind();
    let texts: Vec<String> = kinds[..2].iter().map(Code::to_text).collect();
    let imgs: Vec<image::GrayImage> = texts
        .iter()
        .map(|t| {
            image::load_from_memory(&qr::render_png(t, 4).expect("png"))
                .expect("load")
                .to_luma8()
        })
        .collect();
    let w = imgs.iter().map(|i| i.width()).sum::<u32>() + 60;
    let h = imgs.iter().map(|i| i.height()).max().unwrap_or(0) + 40;
    let mut canvas = image::GrayImage::from_pixel(w, h, image::Luma([255]));
    image::imageops::replace(&mut canvas, &imgs[0], 20, 20);
    image::imageops::replace(&mut canvas, &imgs[1], i64::from(imgs[0].width()) + 40, 20);
    let found: BTreeSet<String> = qr::decode_image(&png_of(&canvas))
        .expect("decode")
        .into_iter()
        .collect();
    assert_eq!(found, texts.into_iter().collect());
}

#[test]
fn pictures_without_a_code_are_refused() {
    for (what, bytes) in [
        ("garbage", b"not a picture at all".to_vec()),
        ("nothing", Vec::new()),
        (
            "a PNG cut short",
            qr::render_png("SP:ABC", 4).expect("png")[..40].to_vec(),
        ),
    ] {
        assert!(
            matches!(qr::decode_image(&bytes), Err(QrError::BadImage(_))),
            "{what}"
        );
    }
    let white = image::GrayImage::from_pixel(300, 200, image::Luma([255]));
    assert_eq!(qr::decode_image(&png_of(&white)), Err(QrError::NotFound));
    assert_eq!(
        qr::decode_luma(300, 200, white.as_raw()),
        Err(QrError::NotFound)
    );
    // A large blank frame goes through the windowed search and still finds nothing.
    let big = image::GrayImage::from_pixel(1_000, 900, image::Luma([255]));
    assert_eq!(
        qr::decode_luma(1_000, 900, big.as_raw()),
        Err(QrError::NotFound)
    );
    assert!(matches!(
        qr::decode_luma(300, 200, &[255; 10]),
        Err(QrError::BadImage(_))
    ));
}

#[test]
fn every_card_on_two_sheets_decodes_back_to_its_trainee() {
    let k = fixed_key(3);
    let district = DistrictCode::parse(DISTRICT).expect("district");
    let cards: Vec<Card> = (0..14u128)
        .map(|i| {
            let trainee = TraineeId::from(uuid::Uuid::from_u128(0x1000 + i));
            Card::sign(&k, district.clone(), 2, trainee, day())
        })
        .collect();
    let captioned: Vec<(String, CardCaption)> = cards
        .iter()
        .map(|c| {
            (
                c.to_text(),
                CardCaption {
                    name_masked: "张*英".into(),
                    detail: "大湾村电工培训班".into(),
                },
            )
        })
        .collect();
    let font = std::fs::read("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc").ok();
    let pages = qr::render_card_sheet(&captioned, font.as_deref()).expect("sheets");
    assert_eq!(CARDS_PER_SHEET, 12);
    assert_eq!(pages.len(), 2);
    for (n, (page, on_it)) in pages.iter().zip(cards.chunks(CARDS_PER_SHEET)).enumerate() {
        let img = image::load_from_memory(page).expect("a picture").to_luma8();
        assert_eq!(img.dimensions(), (1240, 1754), "A4 at 150 dpi");
        let texts: BTreeSet<String> = qr::decode_image(page)
            .expect("decode")
            .into_iter()
            .collect();
        let want: BTreeSet<String> = on_it.iter().map(Card::to_text).collect();
        assert_eq!(texts, want, "page {}", n + 1);
        // Each decodes back to its trainee, with the district's signature.
        let trainees: BTreeSet<TraineeId> = texts
            .iter()
            .map(|t| match qr::scan(t) {
                Ok(Scanned::Card(c)) => {
                    assert!(c.verifies_with(&k.public_key()));
                    assert_eq!((c.key_id, c.issued), (2, day()));
                    c.trainee
                }
                other => panic!("page {}: {other:?}", n + 1),
            })
            .collect();
        let want: BTreeSet<TraineeId> = on_it.iter().map(|c| c.trainee).collect();
        assert_eq!(trainees, want, "page {}", n + 1);
    }
    // No cards, no sheets; a font that is not one is refused.
    assert_eq!(qr::render_card_sheet(&[], None), Ok(vec![]));
    assert!(matches!(
        qr::render_card_sheet(&captioned[..1], Some(b"not a font")),
        Err(QrError::BadImage(_))
    ));
    // Sheets after the first are numbered.
    let out = std::path::Path::new("/tmp/print/cards.png");
    assert_eq!(qr::sheet_path(out, 0), out);
    assert_eq!(
        qr::sheet_path(out, 1),
        std::path::Path::new("/tmp/print/cards-2.png")
    );
}

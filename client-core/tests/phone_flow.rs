//! The coordinator's phone over the encrypted store: a day in a village, every operation-level
//! refusal (each leaving the store as it was), reopening, and compaction.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{ClassStatus, CompletionResult, Level, PovertyStatus, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, Gps, HouseholdChoice, NewAttendance, NewClass, NewTrainee,
};
use songpei_core::ids::{ClassId, HouseholdId, TraineeId};
use songpei_core::phone::{COMPACT_AFTER_CHUNKS, MAX_CLASS_DAYS};
use songpei_core::rules::SubsidyDecision;
use songpei_core::store::{ClassFilter, DocStore, SqliteDocStore};
use songpei_core::validate::{Field, Invalid, Problem, check_char};
use songpei_core::{Error, Phone, Result};

const DISTRICT: &str = "450802";
const VILLAGE: &str = "450802101201";
const OTHER_VILLAGE: &str = "450802101202";
const KEY: [u8; 32] = [0x42; 32];
/// 2026-03-02 08:00 in Beijing, the first day of the class.
const NOW_MS: i64 = 1_772_409_600_000;

type SqlitePhone = Phone<SqliteDocStore>;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("valid date")
}

fn id_number(first17: &str) -> String {
    format!("{first17}{}", check_char(first17).expect("17 digits"))
}

fn db(dir: &Path) -> PathBuf {
    dir.join("songpei.db")
}

fn init_phone(dir: &Path) -> SqlitePhone {
    let store = SqliteDocStore::open(&db(dir), &KEY).expect("open store");
    Phone::init(
        store,
        DISTRICT,
        &[VILLAGE.to_owned(), OTHER_VILLAGE.to_owned()],
        BlindIndexKey::derive_from_store_key(&KEY),
    )
    .expect("init")
    .with_clock(Arc::new(FixedClock::at(NOW_MS)))
}

fn reopen(dir: &Path) -> SqlitePhone {
    let store = SqliteDocStore::open(&db(dir), &KEY).expect("reopen store");
    Phone::open(store, BlindIndexKey::derive_from_store_key(&KEY))
        .expect("open phone")
        .with_clock(Arc::new(FixedClock::at(NOW_MS)))
}

fn new_class(first: &str, last: &str) -> NewClass {
    NewClass {
        title: "2026年大湾村中式烹调师培训班".into(),
        village: VILLAGE.into(),
        occupation: "中式烹调师".into(),
        level: Level::Junior,
        training_type: TrainingType::EmploymentSkills,
        subsidised: true,
        institution: Some("贵港市职业技能培训学校".into()),
        instructors: vec!["陈师傅".into()],
        instructor_accounts: vec![],
        venue: None,
        first_day: date(first),
        last_day: date(last),
        daily_hours: Some(6.0),
        starts_at: None,
        sign_out_required: true,
        planned_size: Some(30),
    }
}

fn new_trainee(name: &str, first17: &str, household: HouseholdChoice) -> NewTrainee {
    NewTrainee {
        name: name.into(),
        id_number: id_number(first17),
        phone: Some("13907751234".into()),
        village: VILLAGE.into(),
        household,
        key_groups: vec![],
        training_wish: None,
        consent_at_ms: NOW_MS,
    }
}

fn attendance(
    class: ClassId,
    trainee: TraineeId,
    day: NaiveDate,
    kind: AttendanceKind,
) -> NewAttendance {
    NewAttendance {
        class,
        trainee,
        day,
        kind,
        method: AttendanceMethod::Hand {
            reason: "手机没电，手工登记".into(),
        },
        gps: None,
    }
}

fn sign_in_and_out(p: &mut SqlitePhone, class: ClassId, trainee: TraineeId, day: NaiveDate) {
    for kind in [AttendanceKind::SignIn, AttendanceKind::SignOut] {
        p.record_attendance(attendance(class, trainee, day, kind))
            .expect("record attendance");
    }
}

struct Village {
    class: ClassId,
    /// 脱贫户: gets the living allowance.
    lifted: TraineeId,
    /// Household registered as 一般户.
    ordinary: TraineeId,
    /// No household recorded.
    alone: TraineeId,
}

/// A class of five days, three trainees, sign-in and sign-out on the first two days for everyone.
fn day_in_a_village(p: &mut SqlitePhone) -> Village {
    let class = p
        .create_class(new_class("2026-03-02", "2026-03-06"))
        .expect("create class");
    let lifted = p
        .add_trainee(new_trainee(
            "张秀英",
            "45080219880614202",
            HouseholdChoice::New(PovertyStatus::Lifted),
        ))
        .expect("trainee");
    let ordinary = p
        .add_trainee(new_trainee(
            "韦志强",
            "45080219900307123",
            HouseholdChoice::New(PovertyStatus::Ordinary),
        ))
        .expect("trainee");
    let alone = p
        .add_trainee(new_trainee(
            "买买提·艾力",
            "45080219951120301",
            HouseholdChoice::None,
        ))
        .expect("trainee");
    for t in [lifted, ordinary, alone] {
        assert_eq!(
            p.enrol(class, t).expect("enrol"),
            SubsidyDecision::Subsidised { year: 2026, nth: 1 }
        );
    }
    for day in ["2026-03-02", "2026-03-03"] {
        for t in [lifted, ordinary, alone] {
            sign_in_and_out(p, class, t, date(day));
        }
    }
    Village {
        class,
        lifted,
        ordinary,
        alone,
    }
}

fn check_day_in_a_village(p: &mut SqlitePhone, v: &Village) {
    let view = p.class_view(v.class).expect("class view");
    assert_eq!(
        view.status,
        ClassStatus::Running,
        "the first sign-in starts the class"
    );
    assert_eq!(view.days.len(), 5);
    assert_eq!(view.attendance.len(), 12);
    assert_eq!(view.roster.len(), 3);
    for entry in &view.roster {
        assert_eq!(entry.payable_days, 2, "trainee {}", entry.trainee_id);
        let payable: Vec<bool> = entry.days.iter().map(|d| d.attendance.payable).collect();
        assert_eq!(payable, [true, true, false, false, false]);
        let expected_fen = if entry.trainee_id == v.lifted {
            10_000
        } else {
            0
        };
        assert_eq!(
            entry.allowance_fen, expected_fen,
            "trainee {}",
            entry.trainee_id
        );
        assert!(entry.subsidy.is_subsidised());
    }
    let lifted = view
        .roster
        .iter()
        .find(|e| e.trainee_id == v.lifted)
        .expect("lifted trainee in roster");
    assert_eq!(lifted.poverty_status, Some(PovertyStatus::Lifted));
    assert_eq!(lifted.name_masked, "张**");
    let ordinary = view
        .roster
        .iter()
        .find(|e| e.trainee_id == v.ordinary)
        .expect("ordinary trainee");
    assert_eq!(ordinary.poverty_status, Some(PovertyStatus::Ordinary));
    let alone = view
        .roster
        .iter()
        .find(|e| e.trainee_id == v.alone)
        .expect("trainee without household");
    assert_eq!(alone.name_masked, "买**·艾*");
    assert_eq!(alone.poverty_status, None);
    assert_eq!(alone.household_id, None);
    assert_eq!(view.allowance_total_fen, 10_000);
    assert!(view.conflicts.is_empty());
}

#[test]
fn a_day_in_a_village() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut p = init_phone(dir.path());
    let v = day_in_a_village(&mut p);
    check_day_in_a_village(&mut p, &v);

    // One class, three trainees, two households.
    let kinds: Vec<_> = p
        .store()
        .documents()
        .expect("documents")
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert_eq!(kinds.len(), 6);
    let summaries = p.classes(&ClassFilter::default()).expect("classes");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].enrolled, 3);
    assert_eq!(summaries[0].status, ClassStatus::Running);
    // Everything is waiting to be sent.
    assert_eq!(p.store().dirty_documents().expect("dirty").len(), 6);

    // Completion is recorded and shown.
    p.complete(v.class, v.lifted, CompletionResult::Passed, None)
        .expect("complete");
    let view = p.class_view(v.class).expect("view");
    let lifted = view
        .roster
        .iter()
        .find(|e| e.trainee_id == v.lifted)
        .expect("entry");
    assert_eq!(lifted.completion, Some(CompletionResult::Passed));

    // Closing ends attendance but keeps the money.
    p.close_class(v.class).expect("close");
    let view = p.class_view(v.class).expect("view");
    assert_eq!(view.status, ClassStatus::Closed);
    assert_eq!(view.allowance_total_fen, 10_000);
}

#[test]
fn reopening_the_store_shows_the_same_class() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (v, before, trainee_before) = {
        let mut p = init_phone(dir.path());
        let v = day_in_a_village(&mut p);
        let before = p.class_view(v.class).expect("view");
        let trainee_before = p.trainee_view(v.lifted, true).expect("trainee view");
        (v, before, trainee_before)
    };
    let mut p = reopen(dir.path());
    assert_eq!(p.class_view(v.class).expect("view"), before);
    assert_eq!(
        p.trainee_view(v.lifted, true).expect("trainee view"),
        trainee_before
    );
    check_day_in_a_village(&mut p, &v);
    assert_eq!(
        p.find_trainee(&id_number("45080219880614202"))
            .expect("find"),
        Some(v.lifted)
    );
    // And the reopened phone keeps working.
    sign_in_and_out(&mut p, v.class, v.lifted, date("2026-03-04"));
    let view = p.class_view(v.class).expect("view");
    let lifted = view
        .roster
        .iter()
        .find(|e| e.trainee_id == v.lifted)
        .expect("entry");
    assert_eq!(lifted.payable_days, 3);
    assert_eq!(lifted.allowance_fen, 15_000);
}

#[test]
fn compact_all_then_reopen_reads_the_same() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (v, before, docs) = {
        let mut p = init_phone(dir.path());
        let v = day_in_a_village(&mut p);
        let before = p.class_view(v.class).expect("view");
        let docs = p.store().documents().expect("documents");
        let compacted = p.compact_all().expect("compact all");
        assert_eq!(compacted, docs.len(), "every document had chunks");
        for (id, _) in &docs {
            let stored = p.store().load(*id).expect("load").expect("stored");
            assert!(
                stored.chunks.is_empty(),
                "{id}: chunks left after compaction"
            );
            assert!(stored.snapshot.is_some(), "{id}: no snapshot");
        }
        assert_eq!(p.class_view(v.class).expect("view"), before);
        // Nothing left to compact.
        assert_eq!(p.compact_all().expect("compact all"), 0);
        (v, before, docs)
    };
    let mut p = reopen(dir.path());
    assert_eq!(p.class_view(v.class).expect("view"), before);
    assert_eq!(p.store().documents().expect("documents"), docs);
    check_day_in_a_village(&mut p, &v);

    // Writes after compaction append chunks after the snapshot and read back after reopening.
    sign_in_and_out(&mut p, v.class, v.ordinary, date("2026-03-05"));
    let stored = p
        .store()
        .load(v.class.into())
        .expect("load")
        .expect("stored");
    assert_eq!(stored.chunks.len(), 2);
    assert!(stored.snapshot.is_some());
    let after = p.class_view(v.class).expect("view");
    drop(p);
    let mut p = reopen(dir.path());
    assert_eq!(p.class_view(v.class).expect("view"), after);
    assert_eq!(after.attendance.len(), 14);
}

#[test]
fn a_busy_class_is_compacted_automatically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut p = init_phone(dir.path());
    let class = p
        .create_class(new_class("2026-03-02", "2026-04-10"))
        .expect("class of 40 days");
    let t = p
        .add_trainee(new_trainee(
            "张秀英",
            "45080219880614202",
            HouseholdChoice::New(PovertyStatus::Monitored),
        ))
        .expect("trainee");
    p.enrol(class, t).expect("enrol");
    let days = 36;
    let mut max_chunks = 0;
    for d in 0..days {
        let day = date("2026-03-02") + chrono::Days::new(d);
        sign_in_and_out(&mut p, class, t, day);
        let stored = p.store().load(class.into()).expect("load").expect("stored");
        max_chunks = max_chunks.max(stored.chunks.len());
    }
    // create + enrol + 72 attendance facts = 74 chunks written.
    assert!(2 + 2 * days as usize > COMPACT_AFTER_CHUNKS);
    assert!(
        max_chunks <= COMPACT_AFTER_CHUNKS,
        "chunks piled up to {max_chunks}"
    );
    let stored = p.store().load(class.into()).expect("load").expect("stored");
    assert!(
        stored.snapshot.is_some(),
        "the class document was compacted"
    );
    assert!(stored.chunks.len() < COMPACT_AFTER_CHUNKS);

    let check = |p: &mut SqlitePhone| {
        let view = p.class_view(class).expect("view");
        assert_eq!(view.attendance.len(), 2 * days as usize);
        assert_eq!(view.roster.len(), 1);
        assert_eq!(view.roster[0].payable_days, days as usize);
        assert_eq!(view.roster[0].allowance_fen, 5_000 * days as i64);
        view
    };
    let before = check(&mut p);
    drop(p);
    let mut p = reopen(dir.path());
    assert_eq!(check(&mut p), before);
}

/// What the store holds, in enough detail that any write would show: every document with its
/// chunk count, snapshot size and sync mark, the class list, the views and the conflicts.
fn fingerprint(
    p: &mut SqlitePhone,
    classes: &[ClassId],
    trainees: &[TraineeId],
) -> serde_json::Value {
    let docs = p.store().documents().expect("documents");
    let mut stored = Vec::new();
    for (id, kind) in &docs {
        let d = p.store().load(*id).expect("load").expect("stored");
        let mark = p.store().sync_mark(*id).expect("mark");
        stored.push(serde_json::json!({
            "id": id,
            "kind": kind,
            "chunks": d.chunks.len(),
            "chunk_bytes": d.chunks.iter().map(Vec::len).sum::<usize>(),
            "snapshot": d.snapshot.as_ref().map(Vec::len),
            "dirty": mark.dirty,
        }));
    }
    let views: Vec<_> = classes
        .iter()
        .map(|c| p.class_view(*c).expect("class view"))
        .collect();
    let people: Vec<_> = trainees
        .iter()
        .map(|t| p.trainee_view(*t, true).expect("trainee view"))
        .collect();
    serde_json::json!({
        "docs": stored,
        "classes": p.classes(&ClassFilter::default()).expect("classes"),
        "views": views,
        "trainees": people,
        "conflicts": p.conflicts().expect("conflicts"),
    })
}

type Op = Box<dyn Fn(&mut SqlitePhone) -> Result<()>>;

fn refused(what: &str, field: Field, problem: Problem, op: Op) -> (String, Invalid, Op) {
    (what.to_owned(), Invalid::new(field, problem), op)
}

/// Every operation-level refusal, one row each: the exact field and problem, and nothing written.
#[test]
fn refusals_name_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut p = init_phone(dir.path());
    let open = p
        .create_class(new_class("2026-03-02", "2026-03-06"))
        .expect("open class");
    let closed = p
        .create_class(new_class("2026-02-02", "2026-02-06"))
        .expect("class to close");
    let enrolled = p
        .add_trainee(new_trainee(
            "张秀英",
            "45080219880614202",
            HouseholdChoice::New(PovertyStatus::Lifted),
        ))
        .expect("trainee");
    let outsider = p
        .add_trainee(new_trainee(
            "韦志强",
            "45080219900307123",
            HouseholdChoice::None,
        ))
        .expect("trainee");
    p.enrol(open, enrolled).expect("enrol");
    p.enrol(closed, enrolled).expect("enrol");
    sign_in_and_out(&mut p, open, enrolled, date("2026-03-02"));
    p.close_class(closed).expect("close");

    let dup_fullwidth: String = id_number("45080219880614202")
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xFEE0).expect("full-width digit"))
        .collect();
    let at = move |class, trainee, day: &str| {
        attendance(class, trainee, date(day), AttendanceKind::SignIn)
    };
    let unknown_class = ClassId::random();

    let rows: Vec<(String, Invalid, Op)> = vec![
        refused(
            "attendance for a trainee not enrolled",
            Field::Trainee,
            Problem::NotEnrolled,
            Box::new(move |p| {
                p.record_attendance(at(open, outsider, "2026-03-03"))
                    .map(drop)
            }),
        ),
        refused(
            "attendance the day before the first day",
            Field::Day,
            Problem::NotATrainingDay,
            Box::new(move |p| {
                p.record_attendance(at(open, enrolled, "2026-03-01"))
                    .map(drop)
            }),
        ),
        refused(
            "attendance the day after the last day",
            Field::Day,
            Problem::NotATrainingDay,
            Box::new(move |p| {
                p.record_attendance(at(open, enrolled, "2026-03-07"))
                    .map(drop)
            }),
        ),
        refused(
            "attendance in a closed class",
            Field::Class,
            Problem::ClassIsFinal,
            Box::new(move |p| {
                p.record_attendance(at(closed, enrolled, "2026-02-03"))
                    .map(drop)
            }),
        ),
        refused(
            "attendance in an unknown class",
            Field::Class,
            Problem::NotFound,
            Box::new(move |p| {
                p.record_attendance(at(unknown_class, enrolled, "2026-03-03"))
                    .map(drop)
            }),
        ),
        refused(
            "attendance by a method this build does not know",
            Field::Reason,
            Problem::NotInCatalog,
            Box::new(move |p| {
                let mut a = at(open, enrolled, "2026-03-03");
                a.method = AttendanceMethod::Other { code: "qr".into() };
                p.record_attendance(a).map(drop)
            }),
        ),
        refused(
            "a QR sign-in through the hand-entry path (its proof was never checked)",
            Field::Reason,
            Problem::NotInCatalog,
            Box::new(move |p| {
                let mut a = at(open, enrolled, "2026-03-03");
                a.method = AttendanceMethod::Qr {
                    code: vec![1; 141],
                    response: vec![1; 148],
                    code_age_ms: 1_000,
                };
                p.record_attendance(a).map(drop)
            }),
        ),
        refused(
            "attendance by hand without a reason",
            Field::Reason,
            Problem::Missing,
            Box::new(move |p| {
                let mut a = at(open, enrolled, "2026-03-03");
                a.method = AttendanceMethod::Hand {
                    reason: " \u{200B} ".into(),
                };
                p.record_attendance(a).map(drop)
            }),
        ),
        refused(
            "attendance with an impossible GPS fix",
            Field::Gps,
            Problem::OutOfRange,
            Box::new(move |p| {
                let mut a = at(open, enrolled, "2026-03-03");
                a.gps = Some(Gps {
                    lat: 123.0,
                    lon: 109.6,
                    accuracy_m: None,
                });
                p.record_attendance(a).map(drop)
            }),
        ),
        refused(
            "same ID number again",
            Field::IdNumber,
            Problem::AlreadyRegistered {
                existing: enrolled.to_string(),
            },
            Box::new(|p| {
                p.add_trainee(new_trainee(
                    "张秀英",
                    "45080219880614202",
                    HouseholdChoice::New(PovertyStatus::Lifted),
                ))
                .map(drop)
            }),
        ),
        refused(
            "same ID number in full-width digits",
            Field::IdNumber,
            Problem::AlreadyRegistered {
                existing: enrolled.to_string(),
            },
            Box::new(move |p| {
                let mut t = new_trainee("张秀英", "45080219880614202", HouseholdChoice::None);
                t.id_number = dup_fullwidth.clone();
                p.add_trainee(t).map(drop)
            }),
        ),
        refused(
            "trainee in a village not in scope",
            Field::Village,
            Problem::NotInScope,
            Box::new(|p| {
                let mut t = new_trainee(
                    "李娟",
                    "45080219700101451",
                    HouseholdChoice::New(PovertyStatus::Lifted),
                );
                t.village = "450802101299".into();
                p.add_trainee(t).map(drop)
            }),
        ),
        refused(
            "trainee in another district's village",
            Field::Village,
            Problem::NotInScope,
            Box::new(|p| {
                let mut t = new_trainee("李娟", "45080219700101451", HouseholdChoice::None);
                t.village = "450803101201".into();
                p.add_trainee(t).map(drop)
            }),
        ),
        refused(
            "trainee in an unknown household",
            Field::Household,
            Problem::NotFound,
            Box::new(|p| {
                p.add_trainee(new_trainee(
                    "李娟",
                    "45080219700101451",
                    HouseholdChoice::Existing(HouseholdId::random()),
                ))
                .map(drop)
            }),
        ),
        refused(
            "trainee with a landline number",
            Field::Phone,
            Problem::NotMobileNumber,
            Box::new(|p| {
                let mut t = new_trainee("李娟", "45080219700101451", HouseholdChoice::None);
                t.phone = Some("0775-4212345".into());
                p.add_trainee(t).map(drop)
            }),
        ),
        refused(
            "class in a village not in scope",
            Field::Village,
            Problem::NotInScope,
            Box::new(|p| {
                let mut c = new_class("2026-03-09", "2026-03-13");
                c.village = "450802101299".into();
                p.create_class(c).map(drop)
            }),
        ),
        refused(
            "class whose last day is before its first",
            Field::LastDay,
            Problem::EndsBeforeStart,
            Box::new(|p| {
                p.create_class(new_class("2026-03-13", "2026-03-09"))
                    .map(drop)
            }),
        ),
        refused(
            "class longer than the longest allowed",
            Field::LastDay,
            Problem::OutOfRange,
            Box::new(|p| {
                let mut c = new_class("2026-03-02", "2026-03-02");
                c.last_day = c.first_day + chrono::Days::new(MAX_CLASS_DAYS as u64);
                p.create_class(c).map(drop)
            }),
        ),
        refused(
            "enrol into a closed class",
            Field::Class,
            Problem::ClassIsFinal,
            Box::new(move |p| p.enrol(closed, outsider).map(drop)),
        ),
        refused(
            "enrol into an unknown class",
            Field::Class,
            Problem::NotFound,
            Box::new(move |p| p.enrol(unknown_class, outsider).map(drop)),
        ),
        refused(
            "enrol an unknown trainee",
            Field::Trainee,
            Problem::NotFound,
            Box::new(move |p| p.enrol(open, TraineeId::random()).map(drop)),
        ),
        refused(
            "complete a trainee not enrolled",
            Field::Trainee,
            Problem::NotEnrolled,
            Box::new(move |p| p.complete(open, outsider, CompletionResult::Passed, None)),
        ),
        refused(
            "complete in an unknown class",
            Field::Class,
            Problem::NotFound,
            Box::new(move |p| p.complete(unknown_class, enrolled, CompletionResult::Passed, None)),
        ),
        refused(
            "reopen a closed class",
            Field::Status,
            Problem::ClassIsFinal,
            Box::new(move |p| p.set_class_status(closed, ClassStatus::Running)),
        ),
        refused(
            "move a running class back to planned",
            Field::Status,
            Problem::ClassIsFinal,
            Box::new(move |p| p.set_class_status(open, ClassStatus::Planned)),
        ),
        refused(
            "phone number of an unknown trainee",
            Field::Trainee,
            Problem::NotFound,
            Box::new(|p| p.set_trainee_phone(TraineeId::random(), Some("13907751234"))),
        ),
        refused(
            "view of an unknown class",
            Field::Class,
            Problem::NotFound,
            Box::new(move |p| p.class_view(unknown_class).map(drop)),
        ),
    ];

    let classes = [open, closed];
    let trainees = [enrolled, outsider];
    let before = fingerprint(&mut p, &classes, &trainees);
    for (what, expected, op) in &rows {
        match op(&mut p) {
            Err(Error::Invalid(got)) => assert_eq!(&got, expected, "row '{what}'"),
            Err(other) => panic!("row '{what}': expected {expected:?}, got error {other:?}"),
            Ok(()) => panic!("row '{what}': expected {expected:?}, but it was accepted"),
        }
        assert_eq!(
            fingerprint(&mut p, &classes, &trainees),
            before,
            "row '{what}' changed the store"
        );
    }
    // The same holds for a phone that reads everything back from disk.
    drop(p);
    let mut p = reopen(dir.path());
    assert_eq!(fingerprint(&mut p, &classes, &trainees), before);

    // The refusals are about the input, not the phone: the valid forms go through.
    p.record_attendance(at(open, enrolled, "2026-03-03"))
        .expect("valid attendance");
    let li = p
        .add_trainee(new_trainee(
            "李娟",
            "45080219700101451",
            HouseholdChoice::None,
        ))
        .expect("valid trainee");
    p.enrol(open, li).expect("valid enrolment");
    assert_ne!(fingerprint(&mut p, &classes, &trainees), before);
}

#[test]
fn init_and_open_check_the_profile() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteDocStore::open(&db(dir.path()), &KEY).expect("open store");
    let e =
        Phone::open(store, BlindIndexKey::derive_from_store_key(&KEY)).expect_err("empty store");
    assert!(matches!(e, Error::NotInitialised), "got {e:?}");

    let p = init_phone(dir.path());
    let profile = p.profile().clone();
    drop(p);
    let p = reopen(dir.path());
    assert_eq!(p.profile(), &profile, "the profile is stored");

    let store = p.into_store();
    let e = Phone::init(
        store,
        DISTRICT,
        &[VILLAGE.to_owned()],
        BlindIndexKey::derive_from_store_key(&KEY),
    )
    .expect_err("a second init");
    assert!(matches!(e, Error::AlreadyInitialised), "got {e:?}");
    assert_eq!(
        reopen(dir.path()).profile(),
        &profile,
        "the refused init changed nothing"
    );

    let other = tempfile::tempdir().expect("temp dir");
    for (district, villages, field, problem) in [
        ("450802", vec![], Field::Village, Problem::Missing),
        ("45080", vec![VILLAGE], Field::District, Problem::BadFormat),
        (
            "450802",
            vec!["4508021012"],
            Field::Village,
            Problem::BadFormat,
        ),
        (
            "450802",
            vec!["450803101201"],
            Field::Village,
            Problem::NotInScope,
        ),
    ] {
        let store = SqliteDocStore::open(&db(other.path()), &KEY).expect("open store");
        let villages: Vec<String> = villages.into_iter().map(String::from).collect();
        let e = Phone::init(
            store,
            district,
            &villages,
            BlindIndexKey::derive_from_store_key(&KEY),
        )
        .expect_err("bad profile");
        match e {
            Error::Invalid(inv) => assert_eq!(inv, Invalid::new(field, problem.clone())),
            other => panic!("expected {field:?} {problem:?}, got {other:?}"),
        }
    }
}

/// The allowance follows the household's poverty status, read from the household's record.
#[test]
fn a_household_status_change_changes_the_allowance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut p = init_phone(dir.path());
    let class = p
        .create_class(new_class("2026-03-02", "2026-03-06"))
        .expect("class");
    let household = p
        .add_household(songpei_core::domain::NewHousehold {
            village: VILLAGE.into(),
            head_name: Some("韦志强".into()),
            poverty_status: PovertyStatus::Ordinary,
        })
        .expect("household");
    let head = p
        .add_trainee(new_trainee(
            "韦志强",
            "45080219900307123",
            HouseholdChoice::Existing(household),
        ))
        .expect("trainee");
    let daughter = p
        .add_trainee(new_trainee(
            "韦小红",
            "45080220020909124",
            HouseholdChoice::Existing(household),
        ))
        .expect("trainee");
    for t in [head, daughter] {
        p.enrol(class, t).expect("enrol");
        sign_in_and_out(&mut p, class, t, date("2026-03-02"));
    }
    // A sign-in without a sign-out does not count where the class requires one.
    p.record_attendance(attendance(
        class,
        head,
        date("2026-03-03"),
        AttendanceKind::SignIn,
    ))
    .expect("sign-in");
    assert_eq!(p.class_view(class).expect("view").allowance_total_fen, 0);

    p.set_poverty_status(household, PovertyStatus::Monitored)
        .expect("status");
    let view = p.class_view(class).expect("view");
    for e in &view.roster {
        assert_eq!(e.household_id, Some(household));
        assert_eq!(e.poverty_status, Some(PovertyStatus::Monitored));
        assert_eq!(e.payable_days, 1);
        assert_eq!(e.allowance_fen, 5_000);
    }
    assert_eq!(view.allowance_total_fen, 10_000);
    drop(p);
    let mut p = reopen(dir.path());
    assert_eq!(p.class_view(class).expect("view"), view);
    assert_eq!(
        p.trainee_view(daughter, false)
            .expect("view")
            .poverty_status,
        Some(PovertyStatus::Monitored)
    );
}

//! B6: the phone's storage fills up in the middle of a day of sign-ins. The write that does not fit
//! fails with `StorageFull`, nothing of it is kept, everything acknowledged before stays, and once
//! there is room again recording goes on.

use std::sync::Arc;

use chrono::NaiveDate;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{Level, PovertyStatus, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewAttendance, NewClass, NewTrainee,
};
use songpei_core::store::{DocStore, SqliteDocStore};
use songpei_core::validate::check_char;
use songpei_core::{Error, ErrorKind, Phone};

const KEY: [u8; 32] = [9; 32];
const VILLAGE: &str = "450802101201";

fn open(path: &std::path::Path) -> Phone<SqliteDocStore> {
    let store = SqliteDocStore::open(path, &KEY).expect("open");
    Phone::open(store, BlindIndexKey::derive_from_store_key(&KEY))
        .expect("phone")
        .with_clock(Arc::new(FixedClock::at(1_772_409_600_000)))
}

#[test]
fn a_full_disk_refuses_the_write_and_keeps_everything_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("songpei.db");
    let store = SqliteDocStore::open(&path, &KEY).expect("open");
    Phone::init(
        store,
        "450802",
        &[VILLAGE.into()],
        BlindIndexKey::derive_from_store_key(&KEY),
    )
    .expect("init");
    let mut phone = open(&path);
    let first = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    let class = phone
        .create_class(NewClass {
            title: "电工培训班".into(),
            village: VILLAGE.into(),
            occupation: "电工".into(),
            level: Level::Junior,
            training_type: TrainingType::EmploymentSkills,
            subsidised: true,
            institution: None,
            instructors: vec![],
            instructor_accounts: vec![],
            venue: None,
            first_day: first,
            last_day: first + chrono::Days::new(4),
            daily_hours: None,
            starts_at: None,
            sign_out_required: false,
            planned_size: None,
        })
        .expect("class");
    let first17 = "45080219900307123";
    let trainee = phone
        .add_trainee(NewTrainee {
            name: "李四".into(),
            id_number: format!("{first17}{}", check_char(first17).expect("digits")),
            phone: None,
            village: VILLAGE.into(),
            household: HouseholdChoice::New(PovertyStatus::Lifted),
            key_groups: vec![],
            training_wish: None,
            consent_at_ms: 0,
        })
        .expect("trainee");
    phone.enrol(class, trainee).expect("enrol");

    let attend = |phone: &mut Phone<SqliteDocStore>, i: u64| {
        phone.record_attendance(NewAttendance {
            class,
            trainee,
            day: first + chrono::Days::new(i % 5),
            kind: AttendanceKind::SignIn,
            method: AttendanceMethod::Hand {
                reason: "纸质签到表补录，字数较多以便更快写满存储空间".repeat(4),
            },
            gps: None,
        })
    };

    // Only a few more pages may be added to the file from here on.
    phone.store().limit_growth(Some(8)).expect("limit");
    let mut acknowledged = Vec::new();
    let full = loop {
        match attend(&mut phone, acknowledged.len() as u64) {
            Ok(id) => acknowledged.push(id),
            Err(e) => break e,
        }
        assert!(acknowledged.len() < 10_000, "the store never filled up");
    };
    assert!(matches!(full, Error::StorageFull), "got {full:?}");
    assert_eq!(full.kind(), ErrorKind::StorageFull);
    assert!(!acknowledged.is_empty());

    // The phone still reads what it acknowledged, and nothing of the failed write.
    let view = phone.class_view(class).expect("view after a full disk");
    assert_eq!(view.attendance.len(), acknowledged.len());
    drop(phone);

    // Reopened (room freed): intact, the same records, and recording goes on.
    let mut phone = open(&path);
    assert!(phone.store().integrity_check().expect("check"));
    for id in &acknowledged {
        assert!(
            phone.has_attendance(class, *id).expect("read"),
            "acknowledged record lost"
        );
    }
    let view = phone.class_view(class).expect("view");
    assert_eq!(view.attendance.len(), acknowledged.len());
    attend(&mut phone, 0).expect("a write after room was freed");
    assert_eq!(
        phone.class_view(class).expect("view").attendance.len(),
        acknowledged.len() + 1
    );
    assert!(
        phone
            .store()
            .dirty_documents()
            .expect("marks")
            .contains(&class.into())
    );
}

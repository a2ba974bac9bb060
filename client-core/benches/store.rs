//! Benchmark of the phone's store: durable attendance writes, bytes on disk per record, and opening
//! a store that holds a year of one village. Prints one table; run with
//! `cargo bench -p songpei-core --bench store`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use songpei_core::Phone;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{Level, PovertyStatus, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewAttendance, NewClass, NewTrainee,
};
use songpei_core::ids::{ClassId, TraineeId};
use songpei_core::store::{ClassFilter, SqliteDocStore};
use songpei_core::validate::check_char;

const DISTRICT: &str = "450802";
const VILLAGE: &str = "450802101201";
const KEY: [u8; 32] = [7; 32];

fn open(dir: &Path) -> Phone<SqliteDocStore> {
    let store = SqliteDocStore::open(&dir.join("songpei.db"), &KEY).expect("open store");
    Phone::open(store, BlindIndexKey::derive_from_store_key(&KEY))
        .expect("open phone")
        .with_clock(Arc::new(FixedClock::at(1_772_409_600_000))) // 2026-03-02 08:00 +08:00
}

fn init(dir: &Path) -> Phone<SqliteDocStore> {
    let store = SqliteDocStore::open(&dir.join("songpei.db"), &KEY).expect("open store");
    Phone::init(
        store,
        DISTRICT,
        &[VILLAGE.to_owned()],
        BlindIndexKey::derive_from_store_key(&KEY),
    )
    .expect("init");
    open(dir)
}

fn id_number(n: usize) -> String {
    let first17 = format!(
        "450802{}{:02}{:02}{:03}",
        1960 + n % 40,
        1 + n % 12,
        1 + n % 28,
        n % 1000
    );
    format!("{first17}{}", check_char(&first17).expect("17 digits"))
}

fn first_day(class_no: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 5).expect("date") + chrono::Days::new(7 * class_no as u64 * 2)
}

fn class(phone: &mut Phone<SqliteDocStore>, n: usize) -> ClassId {
    let first = first_day(n);
    phone
        .create_class(NewClass {
            title: format!("第{n}期 中式烹调师培训班"),
            village: VILLAGE.into(),
            occupation: format!("工种{n}"),
            level: Level::Junior,
            training_type: TrainingType::EmploymentSkills,
            subsidised: true,
            institution: Some("贵港市职业技能培训学校".into()),
            instructors: vec!["陈师傅".into()],
            instructor_accounts: vec![],
            venue: None,
            first_day: first,
            last_day: first + chrono::Days::new(4),
            daily_hours: Some(6.0),
            starts_at: None,
            sign_out_required: true,
            planned_size: Some(50),
        })
        .expect("class")
}

fn trainee(phone: &mut Phone<SqliteDocStore>, n: usize) -> TraineeId {
    phone
        .add_trainee(NewTrainee {
            name: "王秀英".into(),
            id_number: id_number(n),
            phone: Some(format!("138{:08}", n)),
            village: VILLAGE.into(),
            household: HouseholdChoice::New(if n.is_multiple_of(3) {
                PovertyStatus::Lifted
            } else {
                PovertyStatus::Ordinary
            }),
            key_groups: vec![],
            training_wish: None,
            consent_at_ms: 0,
        })
        .expect("trainee")
}

/// Fills a class: 50 trainees enrolled, 5 days of sign-in and sign-out; returns each write's time.
fn fill_class(
    phone: &mut Phone<SqliteDocStore>,
    class_no: usize,
    trainee_base: usize,
) -> (ClassId, Vec<Duration>) {
    let c = class(phone, class_no);
    let trainees: Vec<TraineeId> = (0..50).map(|i| trainee(phone, trainee_base + i)).collect();
    for t in &trainees {
        phone.enrol(c, *t).expect("enrol");
    }
    let mut times = Vec::with_capacity(500);
    for d in 0..5 {
        let day = first_day(class_no) + chrono::Days::new(d);
        for kind in [AttendanceKind::SignIn, AttendanceKind::SignOut] {
            for t in &trainees {
                let start = Instant::now();
                phone
                    .record_attendance(NewAttendance {
                        class: c,
                        trainee: *t,
                        day,
                        kind,
                        method: AttendanceMethod::Hand {
                            reason: "签到表".into(),
                        },
                        gps: None,
                    })
                    .expect("attendance");
                times.push(start.elapsed());
            }
        }
    }
    (c, times)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn files_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. Durable attendance writes on one class of 50 (500 writes, each committed with fsync).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut phone = init(dir.path());
    let (c, mut times) = fill_class(&mut phone, 0, 0);
    times.sort();
    rows.push((
        "durable attendance write, p50".into(),
        ms(percentile(&times, 0.50)),
    ));
    rows.push((
        "durable attendance write, p99".into(),
        ms(percentile(&times, 0.99)),
    ));
    rows.push((
        "durable attendance write, max".into(),
        ms(*times.last().expect("times")),
    ));

    // 2. Bytes per attendance record after compaction: the class document alone, and the store.
    let records = 500u64;
    phone.compact_all().expect("compact");
    phone.store().vacuum().expect("vacuum");
    let doc_bytes = phone
        .document_bytes(c.into())
        .expect("doc")
        .expect("stored")
        .len() as u64;
    rows.push((
        "class document (50 trainees, 500 records), compacted".into(),
        format!(
            "{doc_bytes} B = {:.1} B/record",
            doc_bytes as f64 / records as f64
        ),
    ));
    drop(phone);

    // 3. A year of one village: 20 classes × 50 trainees × 5 days × 2 records.
    let year = tempfile::tempdir().expect("tempdir");
    let mut phone = init(year.path());
    let build = Instant::now();
    let mut year_times = Vec::new();
    let mut classes = Vec::new();
    for n in 0..20 {
        let (c, t) = fill_class(&mut phone, n, n * 50);
        year_times.extend(t);
        classes.push(c);
    }
    let build_time = build.elapsed();
    let before = files_size(year.path());
    phone.compact_all().expect("compact");
    phone.store().vacuum().expect("vacuum");
    drop(phone);
    let after = files_size(year.path());
    let year_records = 20 * 50 * 5 * 2;
    year_times.sort();
    rows.push((
        "year of a village: writes p50 / p99 (10,000 records)".into(),
        format!(
            "{} / {}",
            ms(percentile(&year_times, 0.5)),
            ms(percentile(&year_times, 0.99))
        ),
    ));
    rows.push((
        "year of a village: time to record it all".into(),
        format!("{:.1} s", build_time.as_secs_f64()),
    ));
    rows.push((
        "year of a village: store size before / after compaction".into(),
        format!(
            "{:.0} KiB / {:.0} KiB",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        ),
    ));
    rows.push((
        "year of a village: store bytes per attendance record (all data included)".into(),
        format!("{:.0} B", after as f64 / year_records as f64),
    ));

    // Opening: the store (key, schema check), then the first screens.
    let mut open_times = Vec::new();
    let mut list_times = Vec::new();
    let mut show_times = Vec::new();
    for class_id in classes.iter().take(5) {
        let t = Instant::now();
        let mut phone = open(year.path());
        open_times.push(t.elapsed());
        let t = Instant::now();
        let list = phone.classes(&ClassFilter::default()).expect("list");
        assert_eq!(list.len(), 20);
        list_times.push(t.elapsed());
        let t = Instant::now();
        let view = phone.class_view(*class_id).expect("view");
        assert_eq!(view.attendance.len(), 500);
        show_times.push(t.elapsed());
    }
    open_times.sort();
    list_times.sort();
    show_times.sort();
    rows.push((
        "year of a village: open store (median of 5)".into(),
        ms(open_times[2]),
    ));
    rows.push((
        "year of a village: list 20 classes (median of 5)".into(),
        ms(list_times[2]),
    ));
    rows.push((
        "year of a village: show one class, cold (median of 5)".into(),
        ms(show_times[2]),
    ));

    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(10);
    println!("| {:<width$} | {:>24} |", "phone store", "measured");
    println!("|-{:-<width$}-|-{:->24}-|", "", "");
    for (k, v) in rows {
        println!("| {k:<width$} | {v:>24} |");
    }
}

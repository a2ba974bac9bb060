//! The sync handler against the router in memory: compaction, restores from older backups, feed
//! numbers reused after a restore.

use std::sync::Arc;

use songpei_core::Phone;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{Level, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewAttendance, NewClass, NewTrainee,
};
use songpei_core::ids::{ClassId, TraineeId};
use songpei_core::store::MemoryDocStore;
use songpei_core::sync::engine::{SyncLimits, sync_with};

use crate::accounts::{self, Role};
use crate::loopback::Loopback;
use crate::{AppState, Config};

const VILLAGE: &str = "450802101201";

/// The server state in `dir`, with its district and village set up on first open.
fn state(dir: &std::path::Path) -> AppState {
    let s = AppState::open(Config {
        data: dir.join("data"),
        ..Config::default()
    })
    .expect("open");
    {
        let mut store = s.store.lock().expect("lock");
        if accounts::district(store.conn())
            .expect("district")
            .is_none()
        {
            accounts::init(store.conn_mut(), "450802", "港北区").expect("init");
            accounts::add_village(store.conn(), VILLAGE, "某村", None).expect("village");
        }
    }
    s
}

/// A phone enrolled with `s` as a new coordinator of the village.
fn phone(s: &AppState) -> Phone<MemoryDocStore> {
    let code = {
        let mut store = s.store.lock().expect("lock");
        let name = format!("c{}", rand::random::<u32>());
        accounts::add_account(
            store.conn_mut(),
            &name,
            Role::Coordinator,
            &[VILLAGE.to_owned()],
        )
        .expect("account");
        accounts::issue_enrollment_code(store.conn(), &name).expect("code")
    };
    let mut store = MemoryDocStore::new();
    songpei_core::sync::auth::enroll_with(&mut store, &mut Loopback(s), "loopback", &code.code)
        .expect("enroll");
    Phone::open(store, BlindIndexKey::from_bytes([3; 32]))
        .expect("open")
        .with_clock(Arc::new(FixedClock::at(1_772_409_600_000)))
}

fn sync(p: &mut Phone<MemoryDocStore>, s: &AppState) -> songpei_core::sync::engine::SyncReport {
    sync_with(p, &mut Loopback(s), &SyncLimits::default(), &mut |_| {}).expect("sync")
}

fn day(n: u64) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("date") + chrono::Days::new(n)
}

fn setup(p: &mut Phone<MemoryDocStore>) -> (ClassId, TraineeId) {
    let c = p
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
            first_day: day(0),
            last_day: day(4),
            daily_hours: None,
            starts_at: None,
            sign_out_required: false,
            planned_size: None,
        })
        .expect("class");
    let first17 = "45080219900307123";
    let t = p
        .add_trainee(NewTrainee {
            name: "李四".into(),
            id_number: format!(
                "{first17}{}",
                songpei_core::validate::check_char(first17).expect("digits")
            ),
            phone: None,
            village: VILLAGE.into(),
            household: HouseholdChoice::None,
            key_groups: vec![],
            training_wish: None,
            consent_at_ms: 0,
        })
        .expect("trainee");
    p.enrol(c, t).expect("enrol");
    (c, t)
}

fn attend(p: &mut Phone<MemoryDocStore>, c: ClassId, t: TraineeId, d: u64) {
    p.record_attendance(NewAttendance {
        class: c,
        trainee: t,
        day: day(d),
        kind: AttendanceKind::SignIn,
        method: AttendanceMethod::Hand {
            reason: "表".into(),
        },
        gps: None,
    })
    .expect("attend");
}

fn view(p: &mut Phone<MemoryDocStore>, c: ClassId) -> serde_json::Value {
    serde_json::to_value(p.class_view(c).expect("view")).expect("json")
}

#[test]
fn compacted_documents_reload_the_same_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = state(dir.path());
    let mut a = phone(&s);
    let (c, t) = setup(&mut a);
    for d in 0..4 {
        attend(&mut a, c, t, d);
        sync(&mut a, &s);
    }
    let compacted = s
        .store
        .lock()
        .expect("lock")
        .compact(2, 100)
        .expect("compact");
    assert!(compacted >= 1, "the class document had several chunks");
    drop(s);
    let s = state(dir.path());
    let mut b = phone(&s);
    let r = sync(&mut b, &s);
    assert_eq!(r.docs_pulled, 2);
    assert_eq!(view(&mut b, c), view(&mut a, c));
}

#[test]
fn a_server_restored_from_an_older_backup_gets_back_what_it_lost() {
    let live = tempfile::tempdir().expect("tempdir");
    let backup = tempfile::tempdir().expect("tempdir");
    let mut a = phone(&state(live.path()));
    let (c, t) = setup(&mut a);
    attend(&mut a, c, t, 0);
    {
        let s = state(live.path());
        sync(&mut a, &s);
    }
    // Back up (the store is closed, so its WAL is checkpointed into the file).
    self::backup(live.path(), backup.path());
    {
        let s = state(live.path());
        attend(&mut a, c, t, 1);
        sync(&mut a, &s);
    }
    // The live server is lost; the backup comes back without day 2's record.
    attend(&mut a, c, t, 2);
    let restored = state(backup.path());
    let r = sync(&mut a, &restored);
    assert!(r.round_trips >= 2, "the first push found its base missing");
    let mut b = phone(&restored);
    sync(&mut b, &restored);
    let v = view(&mut b, c);
    assert_eq!(
        v["attendance"].as_array().map(Vec::len),
        Some(3),
        "every record is back"
    );
    assert_eq!(view(&mut a, c), v);
    // And the phone has nothing left to push.
    assert_eq!(sync(&mut a, &restored).docs_pushed, 0);
}

/// Copies the data folder, and its database's key kept beside it.
fn backup(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to.join("data")).expect("folder");
    for f in std::fs::read_dir(from.join("data")).expect("dir").flatten() {
        std::fs::copy(f.path(), to.join("data").join(f.file_name())).expect("copy");
    }
    std::fs::copy(from.join("data.db.key"), to.join("data.db.key")).expect("the key");
}

#[test]
fn a_restored_server_that_reuses_feed_numbers_does_not_hide_new_changes() {
    let live = tempfile::tempdir().expect("tempdir");
    let saved = tempfile::tempdir().expect("tempdir");
    let (mut a, mut x) = {
        let s = state(live.path());
        (phone(&s), phone(&s))
    };
    let (c, t) = setup(&mut a);
    {
        let s = state(live.path());
        sync(&mut a, &s);
        sync(&mut x, &s);
    }
    backup(live.path(), saved.path());
    {
        // After the backup: A's record reaches the server and X; the feed moves on.
        let s = state(live.path());
        attend(&mut a, c, t, 1);
        sync(&mut a, &s);
        sync(&mut x, &s);
    }
    // Restored: the feed is back where the backup left it. Y records and syncs, and the
    // server hands Y's entry the very number X already holds.
    let restored = state(saved.path());
    let mut y = phone(&restored);
    sync(&mut y, &restored);
    attend(&mut y, c, t, 2);
    sync(&mut y, &restored);
    // X must still get Y's record.
    sync(&mut x, &restored);
    let days: Vec<String> = view(&mut x, c)["attendance"]
        .as_array()
        .expect("attendance")
        .iter()
        .map(|a| a["day"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        days.contains(&day(2).to_string()),
        "X missed Y's record: {days:?}"
    );
    // A gives the restored server back its lost record; all three agree.
    sync(&mut a, &restored);
    sync(&mut x, &restored);
    sync(&mut y, &restored);
    assert_eq!(
        view(&mut x, c)["attendance"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(view(&mut a, c), view(&mut x, c));
    assert_eq!(view(&mut y, c), view(&mut x, c));
}

/// An office read in progress (a reader inside a read transaction, as a long report holds one)
/// does not hold up a phone's merge: the sync completes while the read is still open, the read
/// keeps the state it started from, and a read after it sees the merged documents.
#[test]
fn a_sync_merges_while_an_office_read_is_in_progress() {
    let dir = tempfile::tempdir().expect("dir");
    let s = state(dir.path());
    let mut p = phone(&s);
    setup(&mut p);
    let readers = s.readers.clone().expect("readers on SQLite");
    let count = |conn: &dyn crate::db::Sql| -> i64 {
        conn.query_row("SELECT COUNT(*) FROM docs", &[], |r| r.get(0))
            .expect("count")
    };
    readers
        .with(|conn| {
            conn.batch("BEGIN").expect("begin");
            let before = count(conn);
            let s2 = s.clone();
            let report = std::thread::spawn(move || sync(&mut p, &s2))
                .join()
                .expect("the sync ends while the read is open");
            assert!(report.docs_pushed >= 2, "{report:?}");
            assert_eq!(count(conn), before, "the read keeps its state");
            conn.batch("COMMIT").expect("end");
        })
        .expect("a reader");
    let after = readers.with(count).expect("a reader");
    assert!(after >= 2, "the class and the trainee: {after}");
}

//! Checks that only the encrypted SQLite store can fail: keys, schema migrations, atomic rollback
//! and what lands on disk (reliability rows F5, F8 and J5).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use super::{ClassRow, DocStore, DocWrite, IndexRow, SCHEMA_VERSION, SqliteDocStore, StoredDoc};
use crate::blind_index::BlindIndexKey;
use crate::catalog::{ClassStatus, Level, TrainingType};
use crate::clock::FixedClock;
use crate::domain::{HouseholdChoice, NewTrainee};
use crate::error::Error;
use crate::ids::{ClassId, DocId, TraineeId, VillageCode};
use crate::phone::Phone;
use crate::validate::check_char;

const KEY: [u8; 32] = [0x5a; 32];
const OTHER_KEY: [u8; 32] = [0xa5; 32];
/// 2026-03-02 08:00 in Beijing.
const NOW_MS: i64 = 1_772_409_600_000;

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("songpei.db")
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A connection of our own to the file, keyed like the store's, for what the store's API cannot do.
fn raw(path: &Path, key: &[u8; 32]) -> Connection {
    let conn = Connection::open(path).expect("open raw connection");
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))
        .expect("key");
    conn
}

fn class_row(id: ClassId, enrolled: Vec<TraineeId>) -> ClassRow {
    let first_day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    ClassRow {
        id,
        village: VillageCode::parse("450802101201").expect("village"),
        title: "中式烹调师培训班".into(),
        status: ClassStatus::Planned,
        occupation: "中式烹调师".into(),
        level: Level::Junior,
        training_type: TrainingType::EmploymentSkills,
        subsidised: true,
        first_day,
        last_day: first_day + chrono::Days::new(4),
        enrolled,
    }
}

fn class_write(row: ClassRow, chunk: &[u8]) -> DocWrite {
    DocWrite {
        id: row.id.into(),
        chunk: Some(chunk.to_vec()),
        index: IndexRow::Class(row),
        conflicts: vec![],
        local: true,
    }
}

/// F5: a wrong key is a clear error and the file is never written.
#[test]
fn wrong_key_is_refused_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(&dir);
    {
        let mut s = SqliteDocStore::open(&path, &KEY).expect("open");
        s.set_meta(&[("district", "450802")]).expect("meta");
        let row = class_row(ClassId::random(), vec![]);
        s.write(&[class_write(row, b"chunk")]).expect("write");
    }
    // The last connection checkpointed and removed the write-ahead log on close.
    assert!(
        !sidecar(&path, "-wal").exists(),
        "no -wal after a clean close"
    );
    let before = std::fs::read(&path).expect("read db");

    for _ in 0..2 {
        let e =
            SqliteDocStore::open(&path, &OTHER_KEY).expect_err("the wrong key must not open it");
        assert!(matches!(e, Error::WrongKey), "got {e:?}");
        assert_eq!(e.kind(), crate::ErrorKind::WrongKey);
    }
    assert_eq!(
        std::fs::read(&path).expect("read db"),
        before,
        "file bytes unchanged"
    );
    assert!(
        !sidecar(&path, "-wal").exists(),
        "no -wal created by a refused open"
    );
    assert!(
        !sidecar(&path, "-journal").exists(),
        "no journal created by a refused open"
    );

    // The right key still opens it, with everything in place.
    let s = SqliteDocStore::open(&path, &KEY).expect("the right key opens it");
    assert_eq!(s.meta("district").expect("meta").as_deref(), Some("450802"));
    assert_eq!(s.documents().expect("documents").len(), 1);
    assert!(s.integrity_check().expect("integrity check"));
}

/// A file that is not a songpei store (a plain SQLite database, or garbage) is refused the same way.
#[test]
fn a_file_that_is_not_an_encrypted_store_is_wrong_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = dir.path().join("plain.db");
    {
        let c = Connection::open(&plain).expect("open plain");
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("plain table");
    }
    let before = std::fs::read(&plain).expect("read");
    let e = SqliteDocStore::open(&plain, &KEY).expect_err("plain SQLite is refused");
    assert!(matches!(e, Error::WrongKey), "got {e:?}");
    assert_eq!(std::fs::read(&plain).expect("read"), before);

    let garbage = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &bytes).expect("write garbage");
    let e = SqliteDocStore::open(&garbage, &KEY).expect_err("garbage is refused");
    assert!(matches!(e, Error::WrongKey), "got {e:?}");
    assert_eq!(std::fs::read(&garbage).expect("read"), bytes);
}

/// A store migrated from version 1 has exactly the schema of a fresh store, keeps its data, and
/// marks the documents it held as unsent.
#[test]
fn a_migrated_store_equals_a_fresh_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = dir.path().join("old.db");
    let fresh = dir.path().join("fresh.db");
    let class = ClassId::random();
    let trainee = TraineeId::random();
    {
        let mut s = SqliteDocStore::open_at_version(&old, &KEY, 1).expect("open at v1");
        assert_eq!(s.schema_version().expect("version"), 1);
        s.set_meta(&[("district", "450802"), ("villages", "450802101201")])
            .expect("meta at v1");
        // The version-1 API cannot write documents (`write` keeps sync marks, which came with
        // version 2), so the rows a version-1 build wrote are put in directly.
        assert!(
            s.write(&[class_write(class_row(class, vec![]), b"x")])
                .is_err()
        );
    }
    {
        let c = raw(&old, &KEY);
        let id = class.to_string();
        c.execute_batch(&format!(
            "INSERT INTO docs (id, kind, village, next_seq) VALUES ('{id}', 'class', '450802101201', 1);
             INSERT INTO chunks (doc_id, seq, data) VALUES ('{id}', 0, x'0102');
             INSERT INTO classes (id, village, title, status, occupation, level, training_type,
                                  subsidised, first_day, last_day)
                 VALUES ('{id}', '450802101201', '中式烹调师培训班', 'planned', '中式烹调师',
                         'junior', 'employment_skills', 1, '2026-03-02', '2026-03-06');
             INSERT INTO enrolments (class_id, trainee_id) VALUES ('{id}', '{trainee}');"
        ))
        .expect("version-1 rows");
    }

    let migrated = SqliteDocStore::open(&old, &KEY).expect("open migrates");
    let new = SqliteDocStore::open(&fresh, &KEY).expect("fresh store");
    assert_eq!(migrated.schema_version().expect("version"), SCHEMA_VERSION);
    assert_eq!(new.schema_version().expect("version"), SCHEMA_VERSION);
    let dump = migrated.schema_dump().expect("dump");
    assert!(
        dump.iter().any(|(_, name, _)| name == "sync_marks"),
        "migration 2 ran"
    );
    assert_eq!(dump, new.schema_dump().expect("dump"));

    assert_eq!(
        migrated.meta("district").expect("meta").as_deref(),
        Some("450802")
    );
    assert_eq!(
        migrated.meta("villages").expect("meta").as_deref(),
        Some("450802101201")
    );
    assert_eq!(
        migrated.load(class.into()).expect("load"),
        Some(StoredDoc {
            snapshot: None,
            chunks: vec![vec![1, 2]],
        })
    );
    assert_eq!(
        migrated.class_row(class).expect("row"),
        Some(class_row(class, vec![trainee]))
    );
    assert_eq!(
        migrated.dirty_documents().expect("dirty"),
        vec![DocId::from(class)],
        "documents from before sync marks existed are sent at the next sync"
    );
    assert!(migrated.integrity_check().expect("integrity"));
    drop(migrated);

    // Opening again changes nothing.
    let again = SqliteDocStore::open(&old, &KEY).expect("reopen");
    assert_eq!(
        again.schema_dump().expect("dump"),
        new.schema_dump().expect("dump")
    );
    assert_eq!(again.schema_version().expect("version"), SCHEMA_VERSION);
}

/// F8: a migration that fails half-way leaves the store at the previous version, readable, and
/// the next open completes it.
#[test]
fn an_interrupted_migration_leaves_the_old_version_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(&dir);
    {
        let mut s = SqliteDocStore::open_at_version(&path, &KEY, 1).expect("open at v1");
        s.set_meta(&[("district", "450802")]).expect("meta");
    }
    // A table with the name of migration 2's index makes its second statement fail, after its
    // first one created `sync_marks`.
    raw(&path, &KEY)
        .execute_batch("CREATE TABLE sync_marks_dirty (x INTEGER);")
        .expect("blocker");

    let e = SqliteDocStore::open(&path, &KEY).expect_err("migration 2 fails");
    assert!(matches!(e, Error::Sqlite(_)), "got {e:?}");

    let s = SqliteDocStore::open_at_version(&path, &KEY, 1).expect("still opens at v1");
    assert_eq!(s.schema_version().expect("version"), 1);
    assert_eq!(s.meta("district").expect("meta").as_deref(), Some("450802"));
    assert!(
        !s.schema_dump()
            .expect("dump")
            .iter()
            .any(|(_, name, _)| name == "sync_marks"),
        "the half-done migration was rolled back"
    );
    assert!(s.integrity_check().expect("integrity"));
    drop(s);

    raw(&path, &KEY)
        .execute_batch("DROP TABLE sync_marks_dirty;")
        .expect("remove blocker");
    let s = SqliteDocStore::open(&path, &KEY).expect("migration completes");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    let fresh = SqliteDocStore::open(&dir.path().join("fresh.db"), &KEY).expect("fresh");
    assert_eq!(
        s.schema_dump().expect("dump"),
        fresh.schema_dump().expect("dump")
    );
    assert_eq!(s.meta("district").expect("meta").as_deref(), Some("450802"));
}

/// A store from a newer build is refused, not downgraded.
#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(&dir);
    {
        let mut s = SqliteDocStore::open(&path, &KEY).expect("open");
        s.set_meta(&[("district", "450802")]).expect("meta");
    }
    raw(&path, &KEY)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump version");
    let e = SqliteDocStore::open(&path, &KEY).expect_err("newer schema refused");
    match e {
        Error::NewerSchema { found, supported } => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let version: i64 = raw(&path, &KEY)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION + 1, "the version was left alone");
}

/// A write of several documents is all or nothing: a failure in the last one leaves no trace of
/// the first.
#[test]
fn a_failed_write_rolls_back_every_document() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = SqliteDocStore::open(&db_path(&dir), &KEY).expect("open");
    let kept = class_row(ClassId::random(), vec![]);
    s.write(&[class_write(kept.clone(), b"kept")])
        .expect("write");

    let good = class_row(ClassId::random(), vec![TraineeId::random()]);
    let t = TraineeId::random();
    // One trainee enrolled twice breaks the enrolments' primary key: the store refuses.
    let bad = class_row(ClassId::random(), vec![t, t]);
    let mut touch_kept = class_write(kept.clone(), b"kept-2");
    if let IndexRow::Class(c) = &mut touch_kept.index {
        c.title = "不该写进去".into();
    }
    let e = s
        .write(&[
            class_write(good.clone(), b"good"),
            touch_kept,
            class_write(bad.clone(), b"bad"),
        ])
        .expect_err("the batch fails");
    assert!(matches!(e, Error::Sqlite(_)), "got {e:?}");

    assert_eq!(s.load(good.id.into()).expect("load"), None);
    assert_eq!(s.load(bad.id.into()).expect("load"), None);
    assert_eq!(s.class_row(good.id).expect("row"), None);
    assert_eq!(
        s.load(kept.id.into()).expect("load").map(|d| d.chunks),
        Some(vec![b"kept".to_vec()])
    );
    assert_eq!(s.class_row(kept.id).expect("row"), Some(kept.clone()));
    assert_eq!(s.documents().expect("documents").len(), 1);
    assert_eq!(
        s.dirty_documents().expect("dirty"),
        vec![DocId::from(kept.id)]
    );

    // The store is usable afterwards and chunk numbering did not skip.
    s.write(&[class_write(kept.clone(), b"kept-3")])
        .expect("write");
    assert_eq!(
        s.load(kept.id.into()).expect("load").map(|d| d.chunks),
        Some(vec![b"kept".to_vec(), b"kept-3".to_vec()])
    );
}

/// Everything written survives closing and reopening, and `vacuum` keeps it.
#[test]
fn writes_survive_reopen_and_vacuum() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(&dir);
    let row = class_row(ClassId::random(), vec![TraineeId::random()]);
    {
        let mut s = SqliteDocStore::open(&path, &KEY).expect("open");
        s.write(&[class_write(row.clone(), b"one")]).expect("write");
        s.compact(row.id.into(), b"snapshot", 1).expect("compact");
        s.write(&[class_write(row.clone(), b"two")]).expect("write");
        s.vacuum().expect("vacuum");
    }
    let s = SqliteDocStore::open(&path, &KEY).expect("reopen");
    assert!(s.integrity_check().expect("integrity"));
    assert_eq!(
        s.load(row.id.into()).expect("load"),
        Some(StoredDoc {
            snapshot: Some(b"snapshot".to_vec()),
            chunks: vec![b"two".to_vec()],
        })
    );
    let mut expected = row.clone();
    expected.enrolled.sort_by_key(|t| t.to_string());
    assert_eq!(s.class_row(row.id).expect("row"), Some(expected));
    assert!(s.sync_mark(row.id.into()).expect("mark").dirty);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file the store keeps next to its database, with its bytes.
fn store_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read file");
            out.push((path, bytes));
        }
    }
    out
}

/// J5: a store file copied off a phone holds no plaintext name, ID number or phone number — not in
/// the database, nor in its write-ahead log or shared memory while the store is open.
#[test]
fn no_plaintext_personal_data_on_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(&dir);
    let first17 = "45080219880614202";
    let id_number = format!("{first17}{}", check_char(first17).expect("17 digits"));
    let name = "张秀英";
    let phone_number = "13907751234";
    let blind = BlindIndexKey::derive_from_store_key(&KEY);
    let clock = || Arc::new(FixedClock::at(NOW_MS));

    let store = SqliteDocStore::open(&path, &KEY).expect("open");
    let mut phone = Phone::init(store, "450802", &["450802101201".to_owned()], blind.clone())
        .expect("init")
        .with_clock(clock());
    let trainee = phone
        .add_trainee(NewTrainee {
            name: name.into(),
            id_number: id_number.clone(),
            phone: Some(phone_number.into()),
            village: "450802101201".into(),
            household: HouseholdChoice::None,
            key_groups: vec![],
            training_wish: Some("想学烹饪".into()),
            consent_at_ms: NOW_MS,
        })
        .expect("add trainee");

    let secrets: [(&str, &[u8]); 4] = [
        ("name", name.as_bytes()),
        ("ID number", id_number.as_bytes()),
        ("phone number", phone_number.as_bytes()),
        ("birth date digits", b"19880614"),
    ];
    let check = |when: &str| {
        let files = store_files(dir.path());
        assert!(!files.is_empty());
        for (file, bytes) in &files {
            for (what, secret) in &secrets {
                assert!(
                    !contains(bytes, secret),
                    "{when}: {} holds the {what} in the clear",
                    file.display()
                );
            }
        }
    };
    // While open, the latest pages live in the -wal file: it must be encrypted too.
    assert!(
        sidecar(&path, "-wal").exists(),
        "the store runs in WAL mode"
    );
    check("while open");
    drop(phone);
    check("after close");

    // The test would pass on an empty file; make sure the data is really there.
    let store = SqliteDocStore::open(&path, &KEY).expect("reopen");
    let mut phone = Phone::open(store, blind)
        .expect("open phone")
        .with_clock(clock());
    assert_eq!(phone.find_trainee(&id_number).expect("find"), Some(trainee));
    let view = phone.trainee_view(trainee, true).expect("view");
    assert_eq!(view.name, name);
    assert_eq!(view.phone.as_deref(), Some(phone_number));
}

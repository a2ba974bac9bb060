//! The conformance suite of the [`DocStore`] seam: every backend runs the same checks, so the
//! in-memory store used by tests and tools cannot drift from the encrypted store on the phone.
//!
//! Each check is a generic function over a fresh, empty store; `backend_suite!` instantiates all of
//! them for one backend.

use std::collections::BTreeSet;

use automerge::ChangeHash;
use chrono::NaiveDate;

use super::{
    ClassFilter, ClassRow, DocStore, DocWrite, HouseholdRow, IndexRow, StoredDoc, SyncMark,
    TraineeRow,
};
use crate::catalog::{ClassStatus, Level, PovertyStatus, TrainingType};
use crate::doc::{Conflict, DocKind};
use crate::ids::{ClassId, DocId, HouseholdId, TraineeId, VillageCode};

const V1: &str = "450802101201";
const V2: &str = "450802101202";

fn village(code: &str) -> VillageCode {
    VillageCode::parse(code).expect("valid village code")
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("valid date")
}

fn hash(n: u8) -> ChangeHash {
    ChangeHash([n; 32])
}

fn class_row(
    id: ClassId,
    v: &str,
    status: ClassStatus,
    first: &str,
    enrolled: &[TraineeId],
) -> ClassRow {
    let first_day = day(first);
    ClassRow {
        id,
        village: village(v),
        title: format!("中式烹调师培训班 {first}"),
        status,
        occupation: "中式烹调师".into(),
        level: Level::Junior,
        training_type: TrainingType::EmploymentSkills,
        subsidised: true,
        first_day,
        last_day: first_day + chrono::Days::new(4),
        enrolled: enrolled.to_vec(),
    }
}

fn trainee_row(id: TraineeId, blind: u8, household: Option<HouseholdId>) -> TraineeRow {
    TraineeRow {
        id,
        village: village(V1),
        blind_index: vec![blind; 16],
        name_masked: "张*英".into(),
        household,
    }
}

fn household_row(id: HouseholdId, status: PovertyStatus) -> HouseholdRow {
    HouseholdRow {
        id,
        village: village(V1),
        poverty_status: status,
    }
}

fn conflict(doc: DocId, kind: DocKind, path: &str, winner: &str, other: &str) -> Conflict {
    let mut values = vec![winner.to_owned(), other.to_owned()];
    values.sort();
    Conflict {
        doc,
        kind,
        path: path.into(),
        winner: winner.into(),
        values,
    }
}

fn some(bytes: &[u8]) -> Option<&[u8]> {
    Some(bytes)
}

fn write(id: impl Into<DocId>, chunk: Option<&[u8]>, index: IndexRow, local: bool) -> DocWrite {
    DocWrite {
        id: id.into(),
        chunk: chunk.map(<[u8]>::to_vec),
        index,
        conflicts: Vec::new(),
        local,
    }
}

fn class_write(row: ClassRow, chunk: Option<&[u8]>) -> DocWrite {
    write(row.id, chunk, IndexRow::Class(row), false)
}

/// Enrolment order is not part of the contract; compare rows with it sorted.
fn norm(mut rows: Vec<ClassRow>) -> Vec<ClassRow> {
    for r in &mut rows {
        r.enrolled.sort();
    }
    rows
}

fn ids(rows: &[ClassRow]) -> Vec<ClassId> {
    rows.iter().map(|r| r.id).collect()
}

pub(super) fn meta_get_and_set<S: DocStore>(s: &mut S) {
    assert_eq!(s.meta("district").expect("meta"), None);
    s.set_meta(&[("district", "450802"), ("villages", V1)])
        .expect("set_meta");
    assert_eq!(s.meta("district").expect("meta").as_deref(), Some("450802"));
    assert_eq!(s.meta("villages").expect("meta").as_deref(), Some(V1));
    s.set_meta(&[("villages", "450802101201,450802101202")])
        .expect("set_meta");
    assert_eq!(
        s.meta("villages").expect("meta").as_deref(),
        Some("450802101201,450802101202"),
        "a second set replaces the value"
    );
    assert_eq!(
        s.meta("district").expect("meta").as_deref(),
        Some("450802"),
        "other keys kept"
    );
    assert_eq!(s.meta("device_id").expect("meta"), None);
    s.set_meta(&[]).expect("an empty set is fine");
}

pub(super) fn load_unknown_is_none<S: DocStore>(s: &mut S) {
    let id = DocId::from(ClassId::random());
    assert_eq!(s.load(id).expect("load"), None);
    assert_eq!(s.class_row(ClassId::random()).expect("class_row"), None);
    assert_eq!(
        s.household_row(HouseholdId::random())
            .expect("household_row"),
        None
    );
    assert!(
        s.trainee_rows(&[TraineeId::random()])
            .expect("rows")
            .is_empty()
    );
    assert_eq!(
        s.trainee_by_blind_index(&[9; 16]).expect("by blind index"),
        None
    );
    assert_eq!(s.sync_mark(id).expect("mark"), SyncMark::default());
    assert!(s.documents().expect("documents").is_empty());
    assert!(s.conflicts().expect("conflicts").is_empty());
    assert!(s.dirty_documents().expect("dirty").is_empty());
}

pub(super) fn chunks_append_in_order<S: DocStore>(s: &mut S) {
    let row = class_row(
        ClassId::random(),
        V1,
        ClassStatus::Planned,
        "2026-03-02",
        &[],
    );
    let id = DocId::from(row.id);
    s.write(&[class_write(row.clone(), some(b"one"))])
        .expect("write");
    s.write(&[class_write(row.clone(), some(b"two"))])
        .expect("write");
    s.write(&[class_write(row.clone(), None)])
        .expect("index-only write");
    s.write(&[class_write(row, some(b"three"))]).expect("write");
    assert_eq!(
        s.load(id).expect("load"),
        Some(StoredDoc {
            snapshot: None,
            chunks: vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()],
        })
    );
}

pub(super) fn index_only_write_stores_an_empty_document<S: DocStore>(s: &mut S) {
    let h = HouseholdId::random();
    s.write(&[write(
        h,
        None,
        IndexRow::Household(household_row(h, PovertyStatus::Lifted)),
        false,
    )])
    .expect("write");
    assert_eq!(s.load(h.into()).expect("load"), Some(StoredDoc::default()));
    assert_eq!(
        s.documents().expect("documents"),
        vec![(DocId::from(h), DocKind::Household)]
    );
}

pub(super) fn one_write_many_documents<S: DocStore>(s: &mut S) {
    let (c, t, h) = (
        ClassId::random(),
        TraineeId::random(),
        HouseholdId::random(),
    );
    let writes = [
        write(
            h,
            some(b"h0"),
            IndexRow::Household(household_row(h, PovertyStatus::Monitored)),
            true,
        ),
        write(
            t,
            some(b"t0"),
            IndexRow::Trainee(trainee_row(t, 1, Some(h))),
            true,
        ),
        class_write(
            class_row(c, V1, ClassStatus::Planned, "2026-03-02", &[t]),
            some(b"c0"),
        ),
    ];
    s.write(&writes).expect("write");
    for (id, chunk) in [(DocId::from(c), "c0"), (t.into(), "t0"), (h.into(), "h0")] {
        assert_eq!(
            s.load(id).expect("load").map(|d| d.chunks),
            Some(vec![chunk.as_bytes().to_vec()])
        );
    }
    let docs: BTreeSet<_> = s.documents().expect("documents").into_iter().collect();
    let expected: BTreeSet<_> = [
        (DocId::from(c), DocKind::Class),
        (t.into(), DocKind::Trainee),
        (h.into(), DocKind::Household),
    ]
    .into_iter()
    .collect();
    assert_eq!(docs, expected);
    assert_eq!(
        s.documents().expect("documents").len(),
        3,
        "no document listed twice"
    );
    assert_eq!(
        s.class_row(c).expect("row").map(|r| r.enrolled),
        Some(vec![t])
    );
    assert_eq!(
        s.trainee_rows(&[t]).expect("rows"),
        vec![trainee_row(t, 1, Some(h))]
    );
    assert_eq!(
        s.household_row(h).expect("row"),
        Some(household_row(h, PovertyStatus::Monitored))
    );
    assert_eq!(ids(&s.classes_of_trainee(t).expect("classes")), vec![c]);
}

pub(super) fn class_row_and_enrolments_are_replaced<S: DocStore>(s: &mut S) {
    let (t1, t2, t3) = (
        TraineeId::random(),
        TraineeId::random(),
        TraineeId::random(),
    );
    let c = ClassId::random();
    s.write(&[class_write(
        class_row(c, V1, ClassStatus::Planned, "2026-03-02", &[t1, t2]),
        some(b"a"),
    )])
    .expect("write");
    let mut newer = class_row(c, V1, ClassStatus::Running, "2026-03-09", &[t3, t2]);
    newer.title = "改过的班名".into();
    newer.level = Level::Intermediate;
    newer.training_type = TrainingType::Entrepreneurship;
    newer.subsidised = false;
    newer.occupation = "育婴员".into();
    s.write(&[class_write(newer.clone(), some(b"b"))])
        .expect("write");

    assert_eq!(
        norm(s.class_row(c).expect("row").into_iter().collect()),
        norm(vec![newer.clone()])
    );
    assert!(
        s.classes_of_trainee(t1).expect("classes").is_empty(),
        "old enrolment removed"
    );
    assert_eq!(ids(&s.classes_of_trainee(t2).expect("classes")), vec![c]);
    assert_eq!(ids(&s.classes_of_trainee(t3).expect("classes")), vec![c]);
    assert_eq!(
        norm(s.classes(&ClassFilter::default()).expect("classes")),
        norm(vec![newer])
    );

    // An empty roster empties the enrolments.
    s.write(&[class_write(
        class_row(c, V1, ClassStatus::Running, "2026-03-09", &[]),
        None,
    )])
    .expect("write");
    assert_eq!(
        s.class_row(c).expect("row").map(|r| r.enrolled),
        Some(vec![])
    );
    assert!(s.classes_of_trainee(t2).expect("classes").is_empty());
}

pub(super) fn trainee_and_household_rows_are_replaced<S: DocStore>(s: &mut S) {
    let (t, h1, h2) = (
        TraineeId::random(),
        HouseholdId::random(),
        HouseholdId::random(),
    );
    s.write(&[write(
        t,
        some(b"t"),
        IndexRow::Trainee(trainee_row(t, 1, None)),
        false,
    )])
    .expect("write");
    assert_eq!(s.trainee_by_blind_index(&[1; 16]).expect("lookup"), Some(t));
    let mut newer = trainee_row(t, 2, Some(h1));
    newer.name_masked = "李*".into();
    newer.village = village(V2);
    s.write(&[write(t, None, IndexRow::Trainee(newer.clone()), false)])
        .expect("write");
    assert_eq!(s.trainee_rows(&[t]).expect("rows"), vec![newer.clone()]);
    assert_eq!(
        s.trainee_by_blind_index(&[1; 16]).expect("lookup"),
        None,
        "old index gone"
    );
    assert_eq!(s.trainee_by_blind_index(&[2; 16]).expect("lookup"), Some(t));
    newer.household = Some(h2);
    s.write(&[write(t, None, IndexRow::Trainee(newer.clone()), false)])
        .expect("write");
    assert_eq!(s.trainee_rows(&[t]).expect("rows"), vec![newer.clone()]);
    newer.household = None;
    s.write(&[write(t, None, IndexRow::Trainee(newer.clone()), false)])
        .expect("write");
    assert_eq!(s.trainee_rows(&[t]).expect("rows"), vec![newer]);

    s.write(&[write(
        h1,
        some(b"h"),
        IndexRow::Household(household_row(h1, PovertyStatus::Ordinary)),
        false,
    )])
    .expect("write");
    s.write(&[write(
        h1,
        None,
        IndexRow::Household(household_row(h1, PovertyStatus::Dibao)),
        false,
    )])
    .expect("write");
    assert_eq!(
        s.household_row(h1).expect("row"),
        Some(household_row(h1, PovertyStatus::Dibao))
    );
    assert_eq!(
        s.load(h1.into()).expect("load").map(|d| d.chunks.len()),
        Some(1)
    );
}

pub(super) fn rows_of_one_kind_are_not_rows_of_another<S: DocStore>(s: &mut S) {
    let t = TraineeId::random();
    s.write(&[write(
        t,
        some(b"t"),
        IndexRow::Trainee(trainee_row(t, 3, None)),
        false,
    )])
    .expect("write");
    assert_eq!(s.class_row(ClassId::from(t.uuid())).expect("row"), None);
    assert_eq!(
        s.household_row(HouseholdId::from(t.uuid())).expect("row"),
        None
    );
    assert!(
        s.classes(&ClassFilter::default())
            .expect("classes")
            .is_empty()
    );
}

pub(super) fn classes_filter_and_order<S: DocStore>(s: &mut S) {
    let t = TraineeId::random();
    let rows = [
        class_row(
            ClassId::random(),
            V1,
            ClassStatus::Planned,
            "2026-03-02",
            &[t],
        ),
        class_row(
            ClassId::random(),
            V1,
            ClassStatus::Running,
            "2026-03-09",
            &[],
        ),
        class_row(
            ClassId::random(),
            V2,
            ClassStatus::Closed,
            "2026-03-09",
            &[t],
        ),
        class_row(
            ClassId::random(),
            V2,
            ClassStatus::Cancelled,
            "2026-01-05",
            &[],
        ),
        class_row(
            ClassId::random(),
            V1,
            ClassStatus::Closed,
            "2026-03-09",
            &[t],
        ),
        class_row(
            ClassId::random(),
            V1,
            ClassStatus::Running,
            "2025-12-30",
            &[],
        ),
    ];
    // Written in two transactions, in an order unrelated to the expected one.
    s.write(
        &rows[..3]
            .iter()
            .cloned()
            .map(|r| class_write(r, some(b"x")))
            .collect::<Vec<_>>(),
    )
    .expect("write");
    s.write(
        &rows[3..]
            .iter()
            .cloned()
            .map(|r| class_write(r, some(b"x")))
            .collect::<Vec<_>>(),
    )
    .expect("write");

    // Newest first day first; equal first days by id (as text).
    let expect = |pred: &dyn Fn(&ClassRow) -> bool| {
        let mut e: Vec<ClassRow> = rows.iter().filter(|r| pred(r)).cloned().collect();
        e.sort_by(|a, b| {
            b.first_day
                .cmp(&a.first_day)
                .then(a.id.to_string().cmp(&b.id.to_string()))
        });
        ids(&e)
    };
    let all = s.classes(&ClassFilter::default()).expect("classes");
    assert_eq!(ids(&all), expect(&|_| true));
    assert_eq!(norm(all.clone()).len(), 6);
    for r in &all {
        let written = rows.iter().find(|w| w.id == r.id).expect("a written row");
        assert_eq!(norm(vec![r.clone()]), norm(vec![written.clone()]));
    }

    let v1 = ClassFilter {
        village: Some(village(V1)),
        statuses: vec![],
    };
    assert_eq!(
        ids(&s.classes(&v1).expect("classes")),
        expect(&|r| r.village.as_str() == V1)
    );

    let open = ClassFilter {
        village: None,
        statuses: vec![ClassStatus::Planned, ClassStatus::Running],
    };
    assert_eq!(
        ids(&s.classes(&open).expect("classes")),
        expect(&|r| !r.status.is_final())
    );

    let closed_v2 = ClassFilter {
        village: Some(village(V2)),
        statuses: vec![ClassStatus::Closed],
    };
    assert_eq!(
        ids(&s.classes(&closed_v2).expect("classes")),
        expect(&|r| r.village.as_str() == V2 && r.status == ClassStatus::Closed)
    );
    let nowhere = ClassFilter {
        village: Some(village("450802101299")),
        statuses: vec![],
    };
    assert!(s.classes(&nowhere).expect("classes").is_empty());

    // A trainee's classes: oldest first day first, then id.
    let mut mine: Vec<ClassRow> = rows
        .iter()
        .filter(|r| r.enrolled.contains(&t))
        .cloned()
        .collect();
    mine.sort_by(|a, b| {
        a.first_day
            .cmp(&b.first_day)
            .then(a.id.to_string().cmp(&b.id.to_string()))
    });
    assert_eq!(ids(&s.classes_of_trainee(t).expect("classes")), ids(&mine));
    assert!(
        s.classes_of_trainee(TraineeId::random())
            .expect("classes")
            .is_empty()
    );
}

pub(super) fn trainee_rows_and_blind_index<S: DocStore>(s: &mut S) {
    let (a, b, c) = (
        TraineeId::random(),
        TraineeId::random(),
        TraineeId::random(),
    );
    let h = HouseholdId::random();
    s.write(&[
        write(
            a,
            some(b"a"),
            IndexRow::Trainee(trainee_row(a, 1, Some(h))),
            false,
        ),
        write(
            b,
            some(b"b"),
            IndexRow::Trainee(trainee_row(b, 2, None)),
            false,
        ),
    ])
    .expect("write");
    let missing = TraineeId::random();
    assert_eq!(
        s.trainee_rows(&[b, missing, a]).expect("rows"),
        vec![trainee_row(b, 2, None), trainee_row(a, 1, Some(h))],
        "rows in the order asked, missing ones left out"
    );
    assert_eq!(s.trainee_by_blind_index(&[1; 16]).expect("lookup"), Some(a));
    assert_eq!(s.trainee_by_blind_index(&[2; 16]).expect("lookup"), Some(b));
    assert_eq!(
        s.trainee_by_blind_index(&[1; 15]).expect("lookup"),
        None,
        "prefix is no match"
    );

    // Two documents with one blind index (the same person registered on two phones): the lookup
    // answers deterministically, with the smallest id.
    s.write(&[write(
        c,
        some(b"c"),
        IndexRow::Trainee(trainee_row(c, 1, None)),
        false,
    )])
    .expect("write");
    let smallest = [a, c].into_iter().min_by_key(|t| t.to_string());
    assert_eq!(
        s.trainee_by_blind_index(&[1; 16]).expect("lookup"),
        smallest
    );
}

pub(super) fn conflicts_are_replaced_per_document<S: DocStore>(s: &mut S) {
    let t = TraineeId::random();
    let c = ClassId::random();
    let tc = |path: &str, w: &str, o: &str| conflict(t.into(), DocKind::Trainee, path, w, o);
    let cc = |path: &str, w: &str, o: &str| conflict(c.into(), DocKind::Class, path, w, o);
    let sorted = |mut v: Vec<Conflict>| {
        v.sort_by_key(|c| (c.doc.to_string(), c.path.clone()));
        v
    };

    let mut tw = write(
        t,
        some(b"t"),
        IndexRow::Trainee(trainee_row(t, 1, None)),
        false,
    );
    tw.conflicts = vec![
        tc("phone", "138****5678", "139****5678"),
        tc("household", "x", "y"),
    ];
    let mut cw = class_write(
        class_row(c, V1, ClassStatus::Running, "2026-03-02", &[]),
        some(b"c"),
    );
    cw.conflicts = vec![cc("info.title", "甲班", "乙班")];
    s.write(&[tw.clone(), cw.clone()]).expect("write");
    assert_eq!(
        s.conflicts().expect("conflicts"),
        sorted(vec![
            tc("phone", "138****5678", "139****5678"),
            tc("household", "x", "y"),
            cc("info.title", "甲班", "乙班"),
        ])
    );

    // A new write of the trainee replaces its conflicts and leaves the class's alone.
    tw.chunk = None;
    tw.conflicts = vec![tc("phone", "137****0000", "138****5678")];
    s.write(&[tw.clone()]).expect("write");
    assert_eq!(
        s.conflicts().expect("conflicts"),
        sorted(vec![
            tc("phone", "137****0000", "138****5678"),
            cc("info.title", "甲班", "乙班"),
        ])
    );

    // Resolved: no conflicts left for the trainee.
    tw.conflicts = vec![];
    s.write(&[tw]).expect("write");
    assert_eq!(
        s.conflicts().expect("conflicts"),
        vec![cc("info.title", "甲班", "乙班")]
    );
    cw.conflicts = vec![];
    cw.chunk = None;
    s.write(&[cw]).expect("write");
    assert!(s.conflicts().expect("conflicts").is_empty());
}

pub(super) fn compact_replaces_snapshot_and_first_chunks<S: DocStore>(s: &mut S) {
    let row = class_row(
        ClassId::random(),
        V1,
        ClassStatus::Planned,
        "2026-03-02",
        &[],
    );
    let id = DocId::from(row.id);
    for chunk in [b"c1", b"c2", b"c3"] {
        s.write(&[class_write(row.clone(), some(chunk))])
            .expect("write");
    }
    s.compact(id, b"snap-1", 2).expect("compact");
    assert_eq!(
        s.load(id).expect("load"),
        Some(StoredDoc {
            snapshot: Some(b"snap-1".to_vec()),
            chunks: vec![b"c3".to_vec()],
        })
    );

    // Chunks appended after a compaction come after the remaining ones.
    s.write(&[class_write(row.clone(), some(b"c4"))])
        .expect("write");
    s.write(&[class_write(row.clone(), some(b"c5"))])
        .expect("write");
    assert_eq!(
        s.load(id).expect("load").map(|d| d.chunks),
        Some(vec![b"c3".to_vec(), b"c4".to_vec(), b"c5".to_vec()])
    );

    // A second compaction replaces the snapshot; zero chunks replaced keeps them all.
    s.compact(id, b"snap-2", 0).expect("compact");
    assert_eq!(
        s.load(id).expect("load"),
        Some(StoredDoc {
            snapshot: Some(b"snap-2".to_vec()),
            chunks: vec![b"c3".to_vec(), b"c4".to_vec(), b"c5".to_vec()],
        })
    );
    s.compact(id, b"snap-3", 2).expect("compact");
    s.write(&[class_write(row.clone(), some(b"c6"))])
        .expect("write");
    assert_eq!(
        s.load(id).expect("load"),
        Some(StoredDoc {
            snapshot: Some(b"snap-3".to_vec()),
            chunks: vec![b"c5".to_vec(), b"c6".to_vec()],
        })
    );

    // More chunks replaced than stored: all of them go.
    s.compact(id, b"snap-4", 10).expect("compact");
    assert_eq!(
        s.load(id).expect("load"),
        Some(StoredDoc {
            snapshot: Some(b"snap-4".to_vec()),
            chunks: vec![],
        })
    );
    // The index is untouched by compaction.
    assert_eq!(
        s.class_row(row.id).expect("row").map(|r| r.id),
        Some(row.id)
    );

    // Another document is not touched.
    let other = class_row(
        ClassId::random(),
        V1,
        ClassStatus::Planned,
        "2026-03-02",
        &[],
    );
    s.write(&[class_write(other.clone(), some(b"o1"))])
        .expect("write");
    s.compact(id, b"snap-5", 10).expect("compact");
    assert_eq!(
        s.load(other.id.into()).expect("load"),
        Some(StoredDoc {
            snapshot: None,
            chunks: vec![b"o1".to_vec()],
        })
    );
}

pub(super) fn compact_unknown_document_stores_nothing<S: DocStore>(s: &mut S) {
    let id = DocId::from(ClassId::random());
    s.compact(id, b"snap", 1)
        .expect("compact of an unknown document is a no-op");
    assert_eq!(s.load(id).expect("load"), None);
    assert!(s.documents().expect("documents").is_empty());
}

pub(super) fn sync_marks<S: DocStore>(s: &mut S) {
    let t = TraineeId::random();
    let h = HouseholdId::random();
    let id = DocId::from(t);
    let tw = |chunk: Option<&[u8]>, local| {
        write(t, chunk, IndexRow::Trainee(trainee_row(t, 1, None)), local)
    };

    // A document received from elsewhere is not dirty.
    s.write(&[tw(some(b"t0"), false)]).expect("write");
    assert_eq!(s.sync_mark(id).expect("mark"), SyncMark::default());
    assert!(s.dirty_documents().expect("dirty").is_empty());

    // A local change is.
    s.write(&[tw(some(b"t1"), true)]).expect("write");
    assert!(s.sync_mark(id).expect("mark").dirty);
    assert_eq!(s.dirty_documents().expect("dirty"), vec![id]);

    // A received change does not clear it.
    s.write(&[tw(some(b"t2"), false)]).expect("write");
    assert!(s.sync_mark(id).expect("mark").dirty);

    // The server acknowledged older heads than the current ones: still dirty, heads kept.
    s.set_acked_heads(id, &[hash(1)], &[hash(1), hash(2)])
        .expect("ack");
    assert_eq!(
        s.sync_mark(id).expect("mark"),
        SyncMark {
            acked_heads: vec![hash(1)],
            dirty: true,
        }
    );
    assert_eq!(s.dirty_documents().expect("dirty"), vec![id]);

    // The current heads, in another order: clean, heads kept sorted.
    s.set_acked_heads(id, &[hash(3), hash(2)], &[hash(2), hash(3)])
        .expect("ack");
    assert_eq!(
        s.sync_mark(id).expect("mark"),
        SyncMark {
            acked_heads: vec![hash(2), hash(3)],
            dirty: false,
        }
    );
    assert!(s.dirty_documents().expect("dirty").is_empty());

    // A received change leaves it clean; an index-only local write makes it dirty again, and the
    // acknowledged heads stay.
    s.write(&[tw(some(b"t3"), false)]).expect("write");
    assert!(!s.sync_mark(id).expect("mark").dirty);
    s.write(&[tw(None, true)]).expect("write");
    assert_eq!(
        s.sync_mark(id).expect("mark"),
        SyncMark {
            acked_heads: vec![hash(2), hash(3)],
            dirty: true,
        }
    );

    // Acked heads that are not the current ones make a clean document dirty.
    s.write(&[write(
        h,
        some(b"h"),
        IndexRow::Household(household_row(h, PovertyStatus::Lifted)),
        false,
    )])
    .expect("write");
    assert!(!s.sync_mark(h.into()).expect("mark").dirty);
    s.set_acked_heads(h.into(), &[hash(4)], &[hash(5)])
        .expect("ack");
    assert!(s.sync_mark(h.into()).expect("mark").dirty);

    let mut dirty = s.dirty_documents().expect("dirty");
    let mut expected = vec![id, DocId::from(h)];
    expected.sort_by_key(|d| d.to_string());
    assert_eq!(dirty, expected, "sorted by id");
    dirty.dedup();
    assert_eq!(dirty.len(), 2);

    // Compaction does not touch the marks.
    s.compact(id, b"snap", 4).expect("compact");
    assert!(s.sync_mark(id).expect("mark").dirty);
}

pub(super) fn acking_an_unknown_document_stores_nothing<S: DocStore>(s: &mut S) {
    let id = DocId::from(ClassId::random());
    // A backend may refuse the call or ignore it, but must not invent the document.
    let _ = s.set_acked_heads(id, &[hash(1)], &[hash(2)]);
    assert_eq!(s.load(id).expect("load"), None);
    assert!(s.documents().expect("documents").is_empty());
    assert!(s.dirty_documents().expect("dirty").is_empty());
    assert_eq!(s.sync_mark(id).expect("mark"), SyncMark::default());
}

pub(super) fn documents_lists_every_document_once<S: DocStore>(s: &mut S) {
    let mut expected = BTreeSet::new();
    for i in 0..5u8 {
        let c = ClassId::random();
        let t = TraineeId::random();
        let h = HouseholdId::random();
        s.write(&[
            class_write(
                class_row(c, V1, ClassStatus::Planned, "2026-03-02", &[t]),
                some(&[i]),
            ),
            write(
                t,
                some(&[i]),
                IndexRow::Trainee(trainee_row(t, i, Some(h))),
                true,
            ),
        ])
        .expect("write");
        s.write(&[write(
            h,
            None,
            IndexRow::Household(household_row(h, PovertyStatus::Ordinary)),
            false,
        )])
        .expect("write");
        // Written again: still one entry each.
        s.write(&[write(
            t,
            some(&[i, i]),
            IndexRow::Trainee(trainee_row(t, i, Some(h))),
            false,
        )])
        .expect("write");
        expected.extend([
            (DocId::from(c), DocKind::Class),
            (t.into(), DocKind::Trainee),
            (h.into(), DocKind::Household),
        ]);
    }
    let docs = s.documents().expect("documents");
    assert_eq!(docs.len(), expected.len());
    assert_eq!(docs.into_iter().collect::<BTreeSet<_>>(), expected);
}

pub(super) fn drop_villages_keeps_unacknowledged_documents<S: DocStore>(s: &mut S) {
    let t = TraineeId::random();
    let h = HouseholdId::random();
    let c1 = ClassId::random();
    let c2 = ClassId::random();
    let dirty = ClassId::random();
    s.write(&[
        class_write(
            class_row(c1, V1, ClassStatus::Planned, "2026-03-02", &[t]),
            some(&[1]),
        ),
        class_write(
            class_row(c2, V2, ClassStatus::Planned, "2026-03-02", &[]),
            some(&[2]),
        ),
        write(
            t,
            some(&[3]),
            IndexRow::Trainee(trainee_row(t, 7, Some(h))),
            false,
        ),
        write(
            h,
            some(&[4]),
            IndexRow::Household(household_row(h, PovertyStatus::Lifted)),
            false,
        ),
        write(
            dirty,
            some(&[5]),
            IndexRow::Class(class_row(
                dirty,
                V1,
                ClassStatus::Planned,
                "2026-03-03",
                &[],
            )),
            true,
        ),
    ])
    .expect("write");
    for id in [DocId::from(c1), c2.into(), t.into(), h.into()] {
        s.set_acked_heads(id, &[hash(1)], &[hash(1)]).expect("ack");
    }
    let removed = s
        .drop_villages(&[village(V1)], &[("villages".into(), V2.into())])
        .expect("drop");
    let removed: BTreeSet<DocId> = removed.into_iter().collect();
    assert_eq!(
        removed,
        [DocId::from(c1), t.into(), h.into()].into_iter().collect(),
        "acknowledged documents of the village go; the other village's and the dirty one stay"
    );
    for id in &removed {
        assert_eq!(s.load(*id).expect("load"), None);
        assert_eq!(s.sync_mark(*id).expect("mark"), SyncMark::default());
    }
    assert_eq!(s.class_row(c1).expect("row"), None);
    assert!(s.trainee_rows(&[t]).expect("rows").is_empty());
    assert_eq!(s.trainee_by_blind_index(&[7; 16]).expect("blind"), None);
    assert_eq!(s.household_row(h).expect("row"), None);
    assert!(s.classes_of_trainee(t).expect("classes").is_empty());
    assert!(s.class_row(c2).expect("row").is_some());
    assert!(s.class_row(dirty).expect("row").is_some());
    assert_eq!(
        s.dirty_documents().expect("dirty"),
        vec![DocId::from(dirty)]
    );
    assert_eq!(s.meta("villages").expect("meta").as_deref(), Some(V2));
    assert!(
        s.drop_villages(&[village(V1)], &[])
            .expect("again")
            .is_empty()
    );
}

pub(super) fn erase_documents_removes_them_even_with_local_changes<S: DocStore>(s: &mut S) {
    let t = TraineeId::random();
    let h = HouseholdId::random();
    let c = ClassId::random();
    s.write(&[
        class_write(
            class_row(c, V1, ClassStatus::Planned, "2026-03-02", &[t]),
            some(&[1]),
        ),
        write(
            t,
            some(&[3]),
            IndexRow::Trainee(trainee_row(t, 7, Some(h))),
            true,
        ),
        write(
            h,
            some(&[4]),
            IndexRow::Household(household_row(h, PovertyStatus::Lifted)),
            false,
        ),
    ])
    .expect("write");
    s.erase_documents(&[t.into(), h.into()]).expect("erase");
    for id in [DocId::from(t), h.into()] {
        assert_eq!(s.load(id).expect("load"), None);
        assert_eq!(s.sync_mark(id).expect("mark"), SyncMark::default());
    }
    assert!(s.trainee_rows(&[t]).expect("rows").is_empty());
    assert_eq!(s.trainee_by_blind_index(&[7; 16]).expect("blind"), None);
    assert_eq!(s.household_row(h).expect("row"), None);
    assert!(
        s.dirty_documents().expect("dirty").is_empty(),
        "the local change went too"
    );
    assert!(s.class_row(c).expect("row").is_some(), "the class stays");
    // Erasing what is not there is nothing.
    s.erase_documents(&[t.into()]).expect("again");
}

/// Instantiates every check for one backend. `$new` returns `(guard, store)`; the guard keeps
/// whatever the store needs (a temporary directory) alive for the test.
macro_rules! backend_suite {
    ($backend:ident, $new:expr) => {
        mod $backend {
            backend_suite!(@tests $new;
                meta_get_and_set,
                load_unknown_is_none,
                chunks_append_in_order,
                index_only_write_stores_an_empty_document,
                one_write_many_documents,
                class_row_and_enrolments_are_replaced,
                trainee_and_household_rows_are_replaced,
                rows_of_one_kind_are_not_rows_of_another,
                classes_filter_and_order,
                trainee_rows_and_blind_index,
                conflicts_are_replaced_per_document,
                compact_replaces_snapshot_and_first_chunks,
                compact_unknown_document_stores_nothing,
                sync_marks,
                acking_an_unknown_document_stores_nothing,
                documents_lists_every_document_once,
                drop_villages_keeps_unacknowledged_documents,
                erase_documents_removes_them_even_with_local_changes,
            );
        }
    };
    (@tests $new:expr; $($check:ident,)+) => {
        $(
            #[test]
            fn $check() {
                let (_guard, mut store) = $new;
                super::$check(&mut store);
            }
        )+
    };
}

backend_suite!(memory, ((), crate::store::MemoryDocStore::new()));

backend_suite!(sqlite, {
    let dir = tempfile::tempdir().expect("temp dir");
    let key: [u8; 32] = rand::random();
    let store =
        crate::store::SqliteDocStore::open(&dir.path().join("store.db"), &key).expect("open store");
    (dir, store)
});

//! Merging (reliability rows G2 and H1): three phones work offline on the same class in any order,
//! pass documents to each other in any order, and must end identical, keep every attendance fact
//! any of them recorded, and show concurrent phone-number edits as the same conflict everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use songpei_core::blind_index::BlindIndexKey;
use songpei_core::catalog::{CompletionResult, Level, PovertyStatus, TrainingType};
use songpei_core::clock::FixedClock;
use songpei_core::domain::{
    AttendanceKind, AttendanceMethod, HouseholdChoice, NewAttendance, NewClass, NewTrainee,
};
use songpei_core::ids::{AttendanceId, ClassId, DocId, TraineeId};
use songpei_core::store::{DocStore, MemoryDocStore};
use songpei_core::validate::{Field, Invalid, Problem, check_char};
use songpei_core::{Error, Phone};

const DISTRICT: &str = "450802";
const VILLAGES: [&str; 2] = ["450802101201", "450802101202"];
/// 2026-03-02 08:00 in Beijing.
const NOW_MS: i64 = 1_772_409_600_000;
const REPLICAS: usize = 3;
const TRAINEES: usize = 3;
const CLASS_DAYS: u64 = 5;
const FIRST_PHONE: &str = "13700000000";

type MemPhone = Phone<MemoryDocStore>;

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
}

fn phone(n: usize) -> MemPhone {
    let villages: Vec<String> = VILLAGES.iter().map(|v| (*v).to_owned()).collect();
    Phone::init(
        MemoryDocStore::new(),
        DISTRICT,
        &villages,
        BlindIndexKey::from_bytes([7; 32]),
    )
    .expect("init")
    .with_clock(clock(n))
}

/// Clocks a little apart, as on real phones.
fn clock(n: usize) -> Arc<FixedClock> {
    Arc::new(FixedClock::at(NOW_MS + n as i64 * 1_000))
}

fn id_number(n: usize) -> String {
    let first17 = format!("4508021990031{}12{}", n % 10, n % 10);
    format!("{first17}{}", check_char(&first17).expect("17 digits"))
}

/// Three phones that all hold one class and the trainees, created on phone 0, with trainee 0
/// enrolled.
struct World {
    phones: Vec<MemPhone>,
    class: ClassId,
    trainees: Vec<TraineeId>,
}

/// The three phones as set up once, to be copied for every case (setting up costs as much as a
/// whole case in a debug build).
struct Template {
    stores: Vec<MemoryDocStore>,
    class: ClassId,
    trainees: Vec<TraineeId>,
}

fn world() -> World {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    let t = TEMPLATE.get_or_init(|| {
        let w = build_world();
        Template {
            stores: w.phones.into_iter().map(Phone::into_store).collect(),
            class: w.class,
            trainees: w.trainees,
        }
    });
    let phones = t
        .stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            Phone::open(store.clone(), BlindIndexKey::from_bytes([7; 32]))
                .expect("open")
                .with_clock(clock(n))
        })
        .collect();
    World {
        phones,
        class: t.class,
        trainees: t.trainees.clone(),
    }
}

fn build_world() -> World {
    let mut phones: Vec<MemPhone> = (0..REPLICAS).map(phone).collect();
    let p0 = &mut phones[0];
    let class = p0
        .create_class(NewClass {
            title: "中式烹调师培训班".into(),
            village: VILLAGES[0].into(),
            occupation: "中式烹调师".into(),
            level: Level::Junior,
            training_type: TrainingType::EmploymentSkills,
            subsidised: true,
            institution: None,
            instructors: vec![],
            instructor_accounts: vec![],
            venue: None,
            first_day: first_day(),
            last_day: first_day() + chrono::Days::new(CLASS_DAYS - 1),
            daily_hours: None,
            starts_at: None,
            sign_out_required: true,
            planned_size: None,
        })
        .expect("class");
    let trainees: Vec<TraineeId> = (0..TRAINEES)
        .map(|n| {
            p0.add_trainee(NewTrainee {
                name: "张秀英".into(),
                id_number: id_number(n),
                phone: Some(FIRST_PHONE.into()),
                village: VILLAGES[n % 2].into(),
                household: if n == 0 {
                    HouseholdChoice::New(PovertyStatus::Lifted)
                } else {
                    HouseholdChoice::None
                },
                key_groups: vec![],
                training_wish: None,
                consent_at_ms: NOW_MS,
            })
            .expect("trainee")
        })
        .collect();
    // Trainee 0 is enrolled from the start; the others are enrolled by the operations.
    p0.enrol(class, trainees[0]).expect("enrol");
    let mut w = World {
        phones,
        class,
        trainees,
    };
    for to in 1..REPLICAS {
        sync(&mut w.phones, 0, to).expect("initial copy");
    }
    w
}

/// Copies every document of phone `from` into phone `to`; true if anything new arrived.
fn sync(phones: &mut [MemPhone], from: usize, to: usize) -> Result<bool, Error> {
    let ids: Vec<DocId> = phones[from]
        .store()
        .documents()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut changed = false;
    for id in ids {
        // As a real sync would, skip what the other side already has (and so spare a full save).
        let mut theirs = phones[to].heads(id)?;
        let mut ours = phones[from].heads(id)?;
        theirs.iter_mut().for_each(|h| h.sort());
        ours.iter_mut().for_each(|h| h.sort());
        if theirs == ours {
            continue;
        }
        let Some(bytes) = phones[from].document_bytes(id)? else {
            continue;
        };
        changed |= phones[to].merge_document(id, &bytes)?.changed;
    }
    Ok(changed)
}

/// Syncs every ordered pair, in the given order, until a whole round brings nothing new.
fn merge_until_quiet(
    phones: &mut [MemPhone],
    order: &[(usize, usize)],
) -> Result<(), TestCaseError> {
    for _ in 0..4 {
        let mut changed = false;
        for &(a, b) in order {
            changed |= sync(phones, a, b).map_err(|e| fail(format!("sync {a}→{b}: {e:?}")))?;
        }
        if !changed {
            return Ok(());
        }
    }
    Err(fail("replicas did not become quiet after four full rounds"))
}

fn all_pairs() -> Vec<(usize, usize)> {
    (0..REPLICAS)
        .flat_map(|a| (0..REPLICAS).filter(move |b| *b != a).map(move |b| (a, b)))
        .collect()
}

/// One automerge operation on a trainee's `phone` register: a put of a value, or the delete that
/// automerge writes instead when a phone writes the winning value of a conflicted register (it
/// removes the losing values and keeps the winning op).
#[derive(Clone, Debug)]
struct RegisterOp {
    /// Lamport counter; with the actor it orders concurrent values (the largest wins).
    counter: u64,
    actor: Vec<u8>,
    /// `None` for the resolving delete.
    value: Option<String>,
    /// The ops it overwrites: every value its phone saw in the register.
    pred: BTreeSet<usize>,
}

/// What the phone-number registers must hold: per trainee, the register's ops and which phone
/// knows which of them. Whole documents are copied, so knowledge is causally closed. Only
/// `set_trainee_phone` writes to trainee documents here, so the counters of the register's ops
/// are the document's counters (offset by the ops of its creation).
#[derive(Clone, Debug)]
struct PhoneModel {
    ops: Vec<Vec<RegisterOp>>,
    known: Vec<Vec<BTreeSet<usize>>>,
    actors: Vec<Vec<u8>>,
    /// Per phone, the trainees it knows to be enrolled (which decides what it accepts).
    enrolled: Vec<BTreeSet<usize>>,
}

impl PhoneModel {
    fn new(w: &World) -> Self {
        let actors: Vec<Vec<u8>> = w
            .phones
            .iter()
            .map(|p| p.profile().actor.to_bytes().to_vec())
            .collect();
        let first = RegisterOp {
            counter: 0,
            actor: actors[0].clone(),
            value: Some(FIRST_PHONE.into()),
            pred: BTreeSet::new(),
        };
        Self {
            ops: vec![vec![first]; TRAINEES],
            known: vec![vec![[0].into_iter().collect(); TRAINEES]; REPLICAS],
            actors,
            enrolled: vec![[0].into_iter().collect(); REPLICAS],
        }
    }

    /// The ops whose values the register holds, given the ops known.
    fn live(&self, t: usize, known: &BTreeSet<usize>) -> Vec<usize> {
        let overwritten: BTreeSet<usize> = known
            .iter()
            .flat_map(|o| self.ops[t][*o].pred.iter().copied())
            .collect();
        known
            .iter()
            .copied()
            .filter(|o| self.ops[t][*o].value.is_some() && !overwritten.contains(o))
            .collect()
    }

    fn winner(&self, t: usize, live: &[usize]) -> usize {
        let key = |o: &usize| (self.ops[t][*o].counter, self.ops[t][*o].actor.clone());
        live.iter()
            .copied()
            .max_by_key(key)
            .expect("the register holds a value")
    }

    fn value(&self, t: usize, o: usize) -> &str {
        self.ops[t][o].value.as_deref().expect("a put")
    }

    fn set(&mut self, replica: usize, t: usize, value: &str) {
        let known = &self.known[replica][t];
        let live = self.live(t, known);
        // Writing the value the register already holds, alone, writes nothing.
        if live.len() == 1 && self.value(t, live[0]) == value {
            return;
        }
        let counter = known
            .iter()
            .map(|o| self.ops[t][*o].counter)
            .max()
            .unwrap_or(0)
            + 1;
        let winner = self.winner(t, &live);
        let op = if self.value(t, winner) == value {
            RegisterOp {
                counter,
                actor: self.actors[replica].clone(),
                value: None,
                pred: live.into_iter().filter(|o| *o != winner).collect(),
            }
        } else {
            RegisterOp {
                counter,
                actor: self.actors[replica].clone(),
                value: Some(value.to_owned()),
                pred: live.into_iter().collect(),
            }
        };
        self.ops[t].push(op);
        let id = self.ops[t].len() - 1;
        self.known[replica][t].insert(id);
    }

    fn sync(&mut self, from: usize, to: usize) {
        for t in 0..TRAINEES {
            let k = self.known[from][t].clone();
            self.known[to][t].extend(k);
        }
        let e = self.enrolled[from].clone();
        self.enrolled[to].extend(e);
    }

    /// Once every phone knows every op: the distinct values the register holds, and the winner.
    fn final_values(&self, t: usize) -> (BTreeSet<String>, String) {
        let all: BTreeSet<usize> = (0..self.ops[t].len()).collect();
        let live = self.live(t, &all);
        let values = live.iter().map(|o| self.value(t, *o).to_owned()).collect();
        (values, self.value(t, self.winner(t, &live)).to_owned())
    }
}

fn mask(phone: &str) -> String {
    format!("{}****{}", &phone[..3], &phone[7..])
}

#[derive(Clone, Debug)]
enum Op {
    Enrol {
        r: usize,
        t: usize,
    },
    Attend {
        r: usize,
        t: usize,
        day: u64,
        sign_in: bool,
    },
    SetPhone {
        r: usize,
        t: usize,
        phone: String,
    },
    Complete {
        r: usize,
        t: usize,
        passed: bool,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

/// Mobile numbers from a small pool, so that phones often write the same number, and numbers that
/// differ only in the masked middle digits.
fn mobile() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["138", "139"]),
        prop::sample::select(vec!["1234", "4321"]),
        prop::sample::select(vec!["5678", "0001"]),
    )
        .prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPLICAS;
    let t = 0..TRAINEES;
    prop_oneof![
        2 => (r.clone(), t.clone()).prop_map(|(r, t)| Op::Enrol { r, t }),
        // Day CLASS_DAYS is one past the last: refused as not a training day.
        6 => (r.clone(), t.clone(), 0..=CLASS_DAYS, any::<bool>())
            .prop_map(|(r, t, day, sign_in)| Op::Attend { r, t, day, sign_in }),
        3 => (r.clone(), t.clone(), mobile()).prop_map(|(r, t, phone)| Op::SetPhone { r, t, phone }),
        1 => (r.clone(), t.clone(), any::<bool>()).prop_map(|(r, t, passed)| Op::Complete { r, t, passed }),
        2 => (r, 1..REPLICAS).prop_map(|(from, step)| Op::Sync { from, to: (from + step) % REPLICAS }),
    ]
}

/// Runs an operation. Refusals are part of the game, but only the ones the model predicts: a
/// phone refuses attendance and completion for a trainee it does not know to be enrolled, and
/// attendance outside the training days. Any other error fails the case.
fn run(
    w: &mut World,
    model: &mut PhoneModel,
    op: &Op,
    recorded: &mut Vec<AttendanceId>,
) -> Result<(), TestCaseError> {
    let class = w.class;
    let expected = match op {
        Op::Attend { r, t, .. } | Op::Complete { r, t, .. } if !model.enrolled[*r].contains(t) => {
            Some(Invalid::new(Field::Trainee, Problem::NotEnrolled))
        }
        Op::Attend { day, .. } if *day >= CLASS_DAYS => {
            Some(Invalid::new(Field::Day, Problem::NotATrainingDay))
        }
        _ => None,
    };
    let result = match op {
        Op::Enrol { r, t } => {
            let res = w.phones[*r].enrol(class, w.trainees[*t]).map(drop);
            if res.is_ok() {
                model.enrolled[*r].insert(*t);
            }
            res
        }
        Op::Attend { r, t, day, sign_in } => w.phones[*r]
            .record_attendance(NewAttendance {
                class,
                trainee: w.trainees[*t],
                day: first_day() + chrono::Days::new(*day),
                kind: if *sign_in {
                    AttendanceKind::SignIn
                } else {
                    AttendanceKind::SignOut
                },
                method: AttendanceMethod::Hand {
                    reason: "手工登记".into(),
                },
                gps: None,
            })
            .map(|id| recorded.push(id)),
        Op::SetPhone { r, t, phone } => {
            let res = w.phones[*r].set_trainee_phone(w.trainees[*t], Some(phone));
            if res.is_ok() {
                model.set(*r, *t, phone);
            }
            res
        }
        Op::Complete { r, t, passed } => {
            let result = if *passed {
                CompletionResult::Passed
            } else {
                CompletionResult::Failed
            };
            w.phones[*r].complete(class, w.trainees[*t], result, None)
        }
        Op::Sync { from, to } => {
            let res = sync(&mut w.phones, *from, *to).map(drop);
            if res.is_ok() {
                model.sync(*from, *to);
            }
            res
        }
    };
    match (result, expected) {
        (Ok(()), None) => Ok(()),
        (Err(Error::Invalid(got)), Some(expected)) if got == expected => Ok(()),
        (Ok(()), Some(expected)) => {
            Err(fail(format!("{op:?} was accepted, expected {expected:?}")))
        }
        (Err(e), _) => Err(fail(format!("{op:?} failed: {e:?}"))),
    }
}

fn json(v: impl serde::Serialize) -> Result<String, TestCaseError> {
    serde_json::to_string(&v).map_err(fail)
}

/// Everything that must be equal on every replica once they have all merged.
fn state_of(
    p: &mut MemPhone,
    class: ClassId,
) -> Result<BTreeMap<&'static str, String>, TestCaseError> {
    let e = |e: Error| fail(format!("{e:?}"));
    let mut heads = BTreeMap::new();
    for (id, _) in p.store().documents().map_err(e)? {
        let mut h = p.heads(id).map_err(e)?.unwrap_or_default();
        h.sort();
        heads.insert(id, h.iter().map(ToString::to_string).collect::<Vec<_>>());
    }
    let mut out = BTreeMap::new();
    out.insert("heads", json(&heads)?);
    out.insert("export", json(p.export().map_err(e)?)?);
    out.insert("class_view", json(p.class_view(class).map_err(e)?)?);
    out.insert("conflicts", json(p.conflicts().map_err(e)?)?);
    out.insert("classes", json(p.classes(&Default::default()).map_err(e)?)?);
    Ok(out)
}

/// Checks convergence, that no recorded attendance was lost, and the phone-number conflicts.
fn check_converged(
    w: &mut World,
    model: &PhoneModel,
    recorded: &[AttendanceId],
) -> Result<(), TestCaseError> {
    let class = w.class;
    let reference = state_of(&mut w.phones[0], class)?;
    for r in 1..REPLICAS {
        let state = state_of(&mut w.phones[r], class)?;
        for (what, value) in &reference {
            prop_assert_eq!(
                &state[what],
                value,
                "replica {} differs from replica 0 in {}",
                r,
                what
            );
        }
    }

    for p in &mut w.phones {
        for id in recorded {
            prop_assert!(
                p.has_attendance(class, *id)
                    .map_err(|e| fail(format!("{e:?}")))?,
                "attendance {} lost",
                id
            );
        }
        let view = p.class_view(class).map_err(|e| fail(format!("{e:?}")))?;
        prop_assert_eq!(view.attendance.len(), recorded.len());
    }

    for (t, trainee) in w.trainees.iter().enumerate() {
        let (expected, expected_winner) = model.final_values(t);
        let mut winners = BTreeSet::new();
        for p in &mut w.phones {
            let conflicts: Vec<_> = p
                .conflicts()
                .map_err(|e| fail(format!("{e:?}")))?
                .into_iter()
                .filter(|c| c.doc == DocId::from(*trainee) && c.path == "phone")
                .collect();
            let shown = p
                .trainee_view(*trainee, true)
                .map_err(|e| fail(format!("{e:?}")))?
                .phone
                .unwrap_or_default();
            prop_assert_eq!(&shown, &expected_winner, "trainee {}: winner", t);
            winners.insert(shown.clone());
            if expected.len() > 1 {
                prop_assert_eq!(
                    conflicts.len(),
                    1,
                    "trainee {}: concurrent numbers {:?} not shown as a conflict",
                    t,
                    expected
                );
                let mut values: Vec<String> = expected.iter().map(|v| mask(v)).collect();
                values.sort();
                prop_assert_eq!(&conflicts[0].values, &values);
                prop_assert_eq!(&conflicts[0].winner, &mask(&shown));
            } else {
                prop_assert!(
                    conflicts.is_empty(),
                    "trainee {}: conflict {:?} without concurrent numbers",
                    t,
                    conflicts
                );
            }
        }
        prop_assert_eq!(
            winners.len(),
            1,
            "trainee {}: replicas show different numbers",
            t
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_and_keep_every_record(
        ops in prop::collection::vec(op(), 0..40),
        order in Just(all_pairs()).prop_shuffle(),
    ) {
        let mut w = world();
        let mut model = PhoneModel::new(&w);
        let mut recorded = Vec::new();
        for op in &ops {
            run(&mut w, &mut model, op, &mut recorded)?;
        }
        merge_until_quiet(&mut w.phones, &order)?;
        check_converged(&mut w, &model, &recorded)?;
    }
}

fn conflicts_on_phone(p: &MemPhone, t: TraineeId) -> Vec<songpei_core::doc::Conflict> {
    p.conflicts()
        .expect("conflicts")
        .into_iter()
        .filter(|c| c.doc == DocId::from(t) && c.path == "phone")
        .collect()
}

/// H1, deterministically: two phones edit one number without syncing in between.
fn concurrent_edit(a: &str, b: &str) {
    let mut w = world();
    let t = w.trainees[1];
    w.phones[0]
        .set_trainee_phone(t, Some(a))
        .expect("edit on phone 0");
    w.phones[1]
        .set_trainee_phone(t, Some(b))
        .expect("edit on phone 1");
    for p in &w.phones {
        assert!(
            conflicts_on_phone(p, t).is_empty(),
            "no conflict before the phones meet"
        );
    }
    merge_until_quiet(&mut w.phones, &all_pairs()).expect("merge");

    let mut values = vec![mask(a), mask(b)];
    values.sort();
    let mut seen = BTreeSet::new();
    for (n, p) in w.phones.iter_mut().enumerate() {
        let conflicts = conflicts_on_phone(p, t);
        assert_eq!(conflicts.len(), 1, "phone {n} shows the conflict");
        assert_eq!(conflicts[0].values, values, "phone {n} keeps both values");
        let shown = p
            .trainee_view(t, true)
            .expect("view")
            .phone
            .expect("a number");
        assert!(shown == a || shown == b);
        assert_eq!(conflicts[0].winner, mask(&shown));
        let masked_view = p.trainee_view(t, false).expect("view");
        assert_eq!(
            masked_view.conflicts, conflicts,
            "the trainee screen shows it too"
        );
        seen.insert((shown, conflicts[0].winner.clone()));
    }
    assert_eq!(seen.len(), 1, "every phone shows the same winner");

    // Someone who has seen both numbers settles it; once everyone has that, the conflict is gone.
    w.phones[2].set_trainee_phone(t, Some(a)).expect("settle");
    merge_until_quiet(&mut w.phones, &all_pairs()).expect("merge");
    for p in &mut w.phones {
        assert!(conflicts_on_phone(p, t).is_empty());
        assert_eq!(
            p.trainee_view(t, true).expect("view").phone.as_deref(),
            Some(a)
        );
    }
}

#[test]
fn concurrent_phone_edits_conflict_with_one_winner() {
    concurrent_edit("13812345678", "13912345678");
}

/// Two numbers that differ only in the digits the mask hides are still two values.
#[test]
fn concurrent_edits_differing_in_masked_digits_conflict() {
    concurrent_edit("13812345678", "13843215678");
}

#[test]
fn concurrent_edits_to_the_same_number_do_not_conflict() {
    let mut w = world();
    let t = w.trainees[0];
    for p in &mut w.phones[..2] {
        p.set_trainee_phone(t, Some("13812345678")).expect("edit");
    }
    merge_until_quiet(&mut w.phones, &all_pairs()).expect("merge");
    for p in &mut w.phones {
        assert!(conflicts_on_phone(p, t).is_empty());
        assert_eq!(
            p.trainee_view(t, true).expect("view").phone.as_deref(),
            Some("13812345678")
        );
    }
}

/// An edit made after seeing the other phone's edit is no conflict.
#[test]
fn sequential_edits_do_not_conflict() {
    let mut w = world();
    let t = w.trainees[2];
    w.phones[0]
        .set_trainee_phone(t, Some("13812345678"))
        .expect("edit");
    sync(&mut w.phones, 0, 1).expect("sync");
    w.phones[1]
        .set_trainee_phone(t, Some("13912345678"))
        .expect("edit");
    merge_until_quiet(&mut w.phones, &all_pairs()).expect("merge");
    for p in &mut w.phones {
        assert!(conflicts_on_phone(p, t).is_empty());
        assert_eq!(
            p.trainee_view(t, true).expect("view").phone.as_deref(),
            Some("13912345678")
        );
    }
}

/// Attendance taken on two phones offline, one of them for a trainee only it has enrolled, all
/// arrives everywhere and pays the same everywhere.
#[test]
fn offline_attendance_from_two_phones_adds_up() {
    let mut w = world();
    let (class, t0, t1) = (w.class, w.trainees[0], w.trainees[1]);
    // Trainee 0 came enrolled from phone 0; phone 1 enrols trainee 1 on its own.
    w.phones[1].enrol(class, t1).expect("enrol");
    let mut ids = Vec::new();
    for (p, t) in [(0, t0), (1, t1)] {
        for d in 0..2 {
            for kind in [AttendanceKind::SignIn, AttendanceKind::SignOut] {
                ids.push(
                    w.phones[p]
                        .record_attendance(NewAttendance {
                            class,
                            trainee: t,
                            day: first_day() + chrono::Days::new(d),
                            kind,
                            method: AttendanceMethod::Hand {
                                reason: "手工登记".into(),
                            },
                            gps: None,
                        })
                        .expect("attendance"),
                );
            }
        }
    }
    merge_until_quiet(&mut w.phones, &[(1, 2), (0, 2), (2, 0), (2, 1)]).expect("merge");
    for p in &mut w.phones {
        for id in &ids {
            assert!(p.has_attendance(class, *id).expect("has"));
        }
        let view = p.class_view(class).expect("view");
        assert_eq!(view.roster.len(), 2);
        assert_eq!(view.attendance.len(), 8);
        // Trainee 0's household is 脱贫户: 2 days × 5,000 fen; trainee 1 has none.
        assert_eq!(view.allowance_total_fen, 10_000);
        for e in &view.roster {
            assert_eq!(e.payable_days, 2);
        }
    }
}

/// Receiving a document again (a replayed or duplicated message, G2) changes nothing: it is
/// reported as nothing new and writes no chunk.
#[test]
fn merging_a_known_document_again_changes_nothing() {
    let mut w = world();
    let class = DocId::from(w.class);
    let bytes = w.phones[0]
        .document_bytes(class)
        .expect("bytes")
        .expect("class document");
    let before = w.phones[1]
        .store()
        .load(class)
        .expect("load")
        .expect("stored");
    for _ in 0..3 {
        let merged = w.phones[1].merge_document(class, &bytes).expect("merge");
        assert!(!merged.changed, "nothing new arrived");
        assert_eq!(Some(merged.heads), w.phones[0].heads(class).expect("heads"));
    }
    assert_eq!(
        w.phones[1]
            .store()
            .load(class)
            .expect("load")
            .expect("stored"),
        before
    );

    // Nor does an older version of a document the receiver has moved past.
    let t = w.trainees[0];
    let old = w.phones[0]
        .document_bytes(t.into())
        .expect("bytes")
        .expect("trainee document");
    w.phones[1]
        .set_trainee_phone(t, Some("13812345678"))
        .expect("edit");
    let stored = w.phones[1]
        .store()
        .load(t.into())
        .expect("load")
        .expect("stored");
    let merged = w.phones[1].merge_document(t.into(), &old).expect("merge");
    assert!(!merged.changed);
    assert_eq!(
        w.phones[1]
            .store()
            .load(t.into())
            .expect("load")
            .expect("stored"),
        stored
    );
    assert_eq!(
        w.phones[1]
            .trainee_view(t, true)
            .expect("view")
            .phone
            .as_deref(),
        Some("13812345678")
    );
}

/// Documents that must not be taken in are refused with nothing written: another village's
/// records (D3), empty input (A3), garbage and truncated bytes (A1, A2), a document stored under
/// another document's id.
#[test]
fn merge_refuses_what_it_must_not_take_in() {
    let mut w = world();
    let class = DocId::from(w.class);
    // Trainee 1 lives in the second village.
    let elsewhere = DocId::from(w.trainees[1]);
    let elsewhere_bytes = w.phones[0]
        .document_bytes(elsewhere)
        .expect("bytes")
        .expect("doc");
    let class_bytes = w.phones[0]
        .document_bytes(class)
        .expect("bytes")
        .expect("doc");

    let mut narrow = Phone::init(
        MemoryDocStore::new(),
        DISTRICT,
        &[VILLAGES[0].to_owned()],
        BlindIndexKey::from_bytes([7; 32]),
    )
    .expect("init");
    let unknown = DocId::from(TraineeId::random());
    let garbage: Vec<u8> = (0..600u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let cases: Vec<(&str, DocId, Vec<u8>)> = vec![
        ("another village's trainee", elsewhere, elsewhere_bytes),
        ("empty input", unknown, vec![]),
        ("garbage", unknown, garbage),
        (
            "truncated document",
            class,
            class_bytes[..class_bytes.len() / 2].to_vec(),
        ),
        ("a class under a trainee's id", unknown, class_bytes.clone()),
    ];
    for (what, id, bytes) in &cases {
        let e = narrow.merge_document(*id, bytes).expect_err(what);
        match (*what, &e) {
            ("another village's trainee", Error::Invalid(inv)) => {
                assert_eq!(inv, &Invalid::new(Field::Village, Problem::NotInScope));
            }
            ("another village's trainee", other) => panic!("{what}: {other:?}"),
            (_, Error::Invalid(_)) => panic!("{what}: refused as invalid input: {e:?}"),
            _ => {}
        }
        assert!(
            narrow.store().documents().expect("documents").is_empty(),
            "{what}: something was stored"
        );
        assert!(narrow.conflicts().expect("conflicts").is_empty());
    }
    // The class itself is in scope and goes in.
    assert!(
        narrow
            .merge_document(class, &class_bytes)
            .expect("merge")
            .changed
    );
    assert_eq!(narrow.store().documents().expect("documents").len(), 1);
}

/// Automerge's rule for writing the winning value of a conflicted register: it deletes the losing
/// values and keeps the winning op, so the write overwrites nothing the winner's own phone may
/// change later. A phone confirming the winner while the winner's phone edits again therefore
/// ends with the new edit alone; confirming a loser is an ordinary write that stays in conflict.
#[test]
fn confirming_a_conflicted_number_follows_automerge() {
    let mut w = world();
    let t = w.trainees[1];
    w.phones[2]
        .set_trainee_phone(t, Some("13812345678"))
        .expect("edit");
    w.phones[1]
        .set_trainee_phone(t, Some("13912345678"))
        .expect("edit");
    sync(&mut w.phones, 1, 2).expect("sync");
    assert_eq!(conflicts_on_phone(&w.phones[2], t).len(), 1);
    let winner = w.phones[2]
        .trainee_view(t, true)
        .expect("view")
        .phone
        .expect("number");

    // Phone 2 confirms the winner; meanwhile phone 1 changes its number again.
    w.phones[2]
        .set_trainee_phone(t, Some(&winner))
        .expect("confirm");
    assert!(conflicts_on_phone(&w.phones[2], t).is_empty());
    w.phones[1]
        .set_trainee_phone(t, Some("15012345678"))
        .expect("edit again");
    merge_until_quiet(&mut w.phones, &all_pairs()).expect("merge");

    for p in &mut w.phones {
        let conflicts = conflicts_on_phone(p, t);
        let shown = p
            .trainee_view(t, true)
            .expect("view")
            .phone
            .expect("number");
        if winner == "13912345678" {
            // Phone 1's own value won and phone 1 replaced it: nothing concurrent is left.
            assert!(conflicts.is_empty(), "{conflicts:?}");
            assert_eq!(shown, "15012345678");
        } else {
            // Phone 2's value won and survives beside phone 1's new number.
            assert_eq!(conflicts.len(), 1);
            let mut values = vec![mask("13812345678"), mask("15012345678")];
            values.sort();
            assert_eq!(conflicts[0].values, values);
        }
    }
}

//! Every check the server makes on an arriving attendance record, one row each: the proofs of
//! flow A and flow B, replays, time, hours, venues, phones and queues.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveTime};
use songpei_core::catalog::{ClassStatus, Level, TrainingType};
use songpei_core::device::DeviceKey;
use songpei_core::domain::{
    Attendance, AttendanceKind, AttendanceMethod, Class, Enrolment, Gps, Venue,
};
use songpei_core::ids::{AttendanceId, ClassId, DeviceId, DistrictCode, TraineeId, VillageCode};
use songpei_core::qr::{Card, ClassCode, Response};

use crate::args;
use crate::attendance::{check_class, checked, flags, rotate_card_key, sign_cards};
use crate::db::{DbError, Transact};
use crate::store::ServerStore;

/// Every card scan counts without a co-signature: these rows are about other checks.
const ALL_CARDS: crate::config::SigninRules = crate::config::SigninRules {
    card_share_percent: 100,
};

/// 2026-03-02 10:00 in Beijing.
const TEN: i64 = 1_772_416_800_000;
const MIN: i64 = 60_000;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: ServerStore,
    device: DeviceId,
    key: DeviceKey,
    trainees: Vec<TraineeId>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            ServerStore::open(dir.path(), 8, &crate::DbKey::from_bytes([7; 32])).expect("store");
        let key = DeviceKey::generate();
        let device = DeviceId::random();
        let conn = store.conn();
        conn.execute(
            "INSERT INTO accounts (id, username, role, created_at) VALUES ('a1', 'wang', 'coordinator', 0)",
            &[],
        )
        .expect("account");
        conn.execute(
            "INSERT INTO devices (id, account_id, public_key, created_at) VALUES (?1, 'a1', ?2, 0)",
            args![device.to_string(), key.public_key()],
        )
        .expect("device");
        Self {
            _dir: dir,
            store,
            device,
            key,
            trainees: (0..4).map(|_| TraineeId::random()).collect(),
        }
    }

    fn class(&self, village: &str, venue: Option<(f64, f64)>) -> Class {
        Class {
            id: ClassId::random(),
            district: DistrictCode::parse("450802").expect("district"),
            village: VillageCode::parse(village).expect("village"),
            title: "电工".into(),
            occupation: "电工".into(),
            level: Level::Junior,
            training_type: TrainingType::EmploymentSkills,
            subsidised: true,
            institution: None,
            instructors: BTreeSet::new(),
            instructor_accounts: Default::default(),
            venue: venue.map(|(lat, lon)| Venue {
                name: "村委会".into(),
                gps: Some(Gps {
                    lat,
                    lon,
                    accuracy_m: None,
                }),
            }),
            first_day: day(),
            last_day: day() + chrono::Days::new(2),
            daily_hours: Some(8.0),
            starts_at: NaiveTime::from_hms_opt(8, 0, 0),
            sign_out_required: false,
            planned_size: None,
            status: ClassStatus::Running,
            roster: self
                .trainees
                .iter()
                .map(|t| {
                    (
                        *t,
                        Enrolment {
                            trainee: *t,
                            enrolled_at_ms: 0,
                        },
                    )
                })
                .collect(),
            attendance: BTreeMap::new(),
            completion: BTreeMap::new(),
            registrations: BTreeMap::new(),
        }
    }

    /// Runs the checks and returns each record's flags and whether it is payable.
    fn check(&mut self, class: &Class) -> BTreeMap<AttendanceId, (BTreeSet<String>, bool)> {
        super::register_every_key(self.store.conn(), class);
        let held = self
            .store
            .conn_mut()
            .transaction(|tx| -> Result<_, DbError> {
                check_class(tx, class, TEN + 60 * MIN, &ALL_CARDS)
            })
            .expect("check");
        let conn = self.store.conn();
        let all = flags(conn, Some(&class.id.to_string())).expect("flags");
        let rows = checked(conn, &class.id.to_string()).expect("checked");
        let unpaid: BTreeSet<String> = rows
            .iter()
            .filter(|r| !r.payable)
            .map(|r| r.attendance.clone())
            .collect();
        assert_eq!(held, unpaid, "check_class returns the records not paid");
        rows.iter()
            .map(|r| {
                let f = all
                    .iter()
                    .filter(|f| f.attendance == r.attendance)
                    .map(|f| f.flag.clone())
                    .collect();
                (r.attendance.parse().expect("id"), (f, r.payable))
            })
            .collect()
    }
}

/// What a flow A record is made of; rows change one thing.
struct Qr {
    class: ClassId,
    day: NaiveDate,
    kind: AttendanceKind,
    code_device: DeviceId,
    code_key: DeviceKey,
    trainee_key: DeviceKey,
    response_trainee: TraineeId,
    age_ms: i64,
    flip_code_sig: bool,
    flip_response_sig: bool,
    other_code_hash: bool,
}

impl Qr {
    fn new(f: &Fixture, class: &Class, trainee: TraineeId) -> Self {
        Self {
            class: class.id,
            day: day(),
            kind: AttendanceKind::SignIn,
            code_device: f.device,
            code_key: f.key.clone(),
            trainee_key: DeviceKey::generate(),
            response_trainee: trainee,
            age_ms: 5_000,
            flip_code_sig: false,
            flip_response_sig: false,
            other_code_hash: false,
        }
    }

    fn method(&self) -> AttendanceMethod {
        let mut code = ClassCode::sign(
            &self.code_key,
            self.code_device,
            self.class,
            self.day,
            self.kind,
            99,
        );
        let mut resp = if self.other_code_hash {
            let other = ClassCode::sign(
                &self.code_key,
                self.code_device,
                self.class,
                self.day,
                self.kind,
                100,
            );
            Response::sign(&self.trainee_key, &other, self.response_trainee, None, None)
        } else {
            Response::sign(&self.trainee_key, &code, self.response_trainee, None, None)
        };
        if self.flip_code_sig {
            code.signature[10] ^= 1;
        }
        if self.flip_response_sig {
            resp.signature[10] ^= 1;
        }
        AttendanceMethod::Qr {
            code: code.to_bytes(),
            response: resp.to_bytes(),
            code_age_ms: self.age_ms,
        }
    }
}

fn record(
    f: &Fixture,
    trainee: TraineeId,
    at_ms: i64,
    method: AttendanceMethod,
    gps: Option<Gps>,
) -> Attendance {
    Attendance {
        id: AttendanceId::random(),
        trainee,
        day: day(),
        kind: AttendanceKind::SignIn,
        at_ms,
        clock_offset_ms: Some(0),
        device: f.device,
        method,
        gps,
    }
}

fn add(class: &mut Class, a: Attendance) -> AttendanceId {
    let id = a.id;
    class.attendance.insert(id, a);
    id
}

fn set(flags: &[&str]) -> BTreeSet<String> {
    flags.iter().map(|s| (*s).to_owned()).collect()
}

type Row = (
    &'static str,
    Box<dyn Fn(&Fixture, &mut Class) -> AttendanceId>,
    &'static [&'static str],
    bool,
);

fn qr_row(
    what: &'static str,
    change: fn(&mut Qr, &Fixture),
    want: &'static [&'static str],
    payable: bool,
) -> Row {
    (
        what,
        Box::new(move |f: &Fixture, c: &mut Class| {
            let t = f.trainees[0];
            let mut q = Qr::new(f, c, t);
            change(&mut q, f);
            add(c, record(f, t, TEN, q.method(), None))
        }),
        want,
        payable,
    )
}

/// `n` trainees signed in by one trainee phone, a minute apart; the last record.
fn one_phone_answers(f: &Fixture, c: &mut Class, n: usize) -> AttendanceId {
    let phone = DeviceKey::generate();
    let mut last = None;
    for (i, t) in f.trainees[..n].iter().enumerate() {
        let mut q = Qr::new(f, c, *t);
        q.trainee_key = phone.clone();
        last = Some(add(
            c,
            record(f, *t, TEN + i as i64 * MIN, q.method(), None),
        ));
    }
    last.expect("records")
}

/// Five trainees signed in on the coordinator's phone `every_ms` apart; the last record.
fn five_sign_ins_every(f: &Fixture, c: &mut Class, every_ms: i64) -> AttendanceId {
    let mut last = None;
    for i in 0..5 {
        let t = if i < 4 {
            f.trainees[i]
        } else {
            TraineeId::random()
        };
        c.roster.insert(
            t,
            Enrolment {
                trainee: t,
                enrolled_at_ms: 0,
            },
        );
        let q = Qr::new(f, c, t);
        last = Some(add(
            c,
            record(f, t, TEN + i as i64 * every_ms, q.method(), None),
        ));
    }
    last.expect("five")
}

#[test]
fn every_check_on_an_arriving_record() {
    let venue = (23.1, 109.6);
    let rows: Vec<Row> = vec![
        qr_row("a valid flow A record", |_, _| {}, &[], true),
        qr_row(
            "the class code's signature altered",
            |q, _| q.flip_code_sig = true,
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a class code of another class",
            |q, _| q.class = ClassId::random(),
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a class code of another day",
            |q, _| q.day = day() + chrono::Days::new(1),
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a sign-out code on a sign-in record",
            |q, _| q.kind = AttendanceKind::SignOut,
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a class code shown by another phone",
            |q, _| q.code_device = DeviceId::random(),
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a class code signed by a key the device did not enroll",
            |q, _| q.code_key = DeviceKey::generate(),
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "the response's signature altered",
            |q, _| q.flip_response_sig = true,
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a response for another trainee",
            |q, _| q.response_trainee = TraineeId::random(),
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a response to another class code",
            |q, _| q.other_code_hash = true,
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a response signed by the coordinator's own key",
            |q, f| q.trainee_key = f.key.clone(),
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a response taken 20.001 s after its code",
            |q, _| q.age_ms = 20_001,
            &["invalid_proof"],
            false,
        ),
        qr_row(
            "a response taken exactly 20 s after its code",
            |q, _| q.age_ms = 20_000,
            &[],
            true,
        ),
        (
            "a hand entry with a known offset",
            Box::new(|f: &Fixture, c: &mut Class| {
                let m = AttendanceMethod::Hand {
                    reason: "手机没电".into(),
                };
                add(c, record(f, f.trainees[0], TEN, m, None))
            }),
            &[],
            true,
        ),
        (
            "a method this server does not know",
            Box::new(|f: &Fixture, c: &mut Class| {
                let m = AttendanceMethod::Other {
                    code: "iris".into(),
                };
                add(c, record(f, f.trainees[0], TEN, m, None))
            }),
            &["invalid_proof"],
            false,
        ),
        (
            "a class code's bytes cut short (A8)",
            Box::new(|f: &Fixture, c: &mut Class| {
                let mut m = Qr::new(f, c, f.trainees[0]).method();
                if let AttendanceMethod::Qr { code, .. } = &mut m {
                    code.pop();
                }
                add(c, record(f, f.trainees[0], TEN, m, None))
            }),
            &["invalid_proof"],
            false,
        ),
        (
            "the same response in two records: both held",
            Box::new(|f: &Fixture, c: &mut Class| {
                let m = Qr::new(f, c, f.trainees[0]).method();
                add(c, record(f, f.trainees[0], TEN, m.clone(), None));
                add(c, record(f, f.trainees[0], TEN + MIN, m, None))
            }),
            &["replayed"],
            false,
        ),
        (
            "an unknown offset (restarted since sync, E3)",
            Box::new(|f: &Fixture, c: &mut Class| {
                let mut a = record(
                    f,
                    f.trainees[0],
                    TEN,
                    Qr::new(f, c, f.trainees[0]).method(),
                    None,
                );
                a.clock_offset_ms = None;
                add(c, a)
            }),
            &["time_unverified"],
            false,
        ),
        (
            "a clock three hours slow, corrected to 07:00: noted, inside the margin",
            Box::new(|f: &Fixture, c: &mut Class| {
                let mut a = record(
                    f,
                    f.trainees[0],
                    TEN - 6 * 60 * MIN,
                    Qr::new(f, c, f.trainees[0]).method(),
                    None,
                );
                a.clock_offset_ms = Some(3 * 60 * MIN);
                add(c, a)
            }),
            &["clock_mismatch"],
            true,
        ),
        (
            "corrected to 06:30: outside the class's hours",
            Box::new(|f: &Fixture, c: &mut Class| {
                let a = record(
                    f,
                    f.trainees[0],
                    TEN - 210 * MIN,
                    Qr::new(f, c, f.trainees[0]).method(),
                    None,
                );
                add(c, a)
            }),
            &["outside_hours"],
            false,
        ),
        (
            "corrected to the day before",
            Box::new(|f: &Fixture, c: &mut Class| {
                let a = record(
                    f,
                    f.trainees[0],
                    TEN - 24 * 60 * MIN,
                    Qr::new(f, c, f.trainees[0]).method(),
                    None,
                );
                add(c, a)
            }),
            &["outside_hours"],
            false,
        ),
        (
            "a clock two years ahead, corrected (E1): noted, still paid",
            Box::new(|f: &Fixture, c: &mut Class| {
                let two_years = 730 * 24 * 60 * MIN;
                let mut a = record(
                    f,
                    f.trainees[0],
                    TEN + two_years,
                    Qr::new(f, c, f.trainees[0]).method(),
                    None,
                );
                a.clock_offset_ms = Some(-two_years);
                add(c, a)
            }),
            &["clock_mismatch"],
            true,
        ),
        (
            "a fix 5 km from the venue",
            Box::new(|f: &Fixture, c: &mut Class| {
                let gps = Gps {
                    lat: 23.145,
                    lon: 109.6,
                    accuracy_m: Some(20.0),
                };
                add(
                    c,
                    record(
                        f,
                        f.trainees[0],
                        TEN,
                        Qr::new(f, c, f.trainees[0]).method(),
                        Some(gps),
                    ),
                )
            }),
            &["far_from_venue"],
            false,
        ),
        (
            "a fix 500 m from the venue",
            Box::new(|f: &Fixture, c: &mut Class| {
                let gps = Gps {
                    lat: 23.1045,
                    lon: 109.6,
                    accuracy_m: None,
                };
                add(
                    c,
                    record(
                        f,
                        f.trainees[0],
                        TEN,
                        Qr::new(f, c, f.trainees[0]).method(),
                        Some(gps),
                    ),
                )
            }),
            &[],
            true,
        ),
        (
            "a fix 1.5 km away with 800 m accuracy",
            Box::new(|f: &Fixture, c: &mut Class| {
                let gps = Gps {
                    lat: 23.1135,
                    lon: 109.6,
                    accuracy_m: Some(800.0),
                };
                add(
                    c,
                    record(
                        f,
                        f.trainees[0],
                        TEN,
                        Qr::new(f, c, f.trainees[0]).method(),
                        Some(gps),
                    ),
                )
            }),
            &[],
            true,
        ),
        (
            "one trainee phone answering for a third trainee that day",
            Box::new(|f: &Fixture, c: &mut Class| one_phone_answers(f, c, 3)),
            &["phone_many_trainees"],
            false,
        ),
        (
            "one trainee phone answering for a couple",
            Box::new(|f: &Fixture, c: &mut Class| one_phone_answers(f, c, 2)),
            &[],
            true,
        ),
        (
            "five sign-ins on one phone within 8 s: the fifth is too fast",
            Box::new(|f: &Fixture, c: &mut Class| five_sign_ins_every(f, c, 1_900)),
            &["too_fast"],
            false,
        ),
        (
            "five sign-ins within 10 s: a queue",
            Box::new(|f: &Fixture, c: &mut Class| five_sign_ins_every(f, c, 2_500)),
            &[],
            true,
        ),
    ];
    for (what, build, want, payable) in rows {
        let mut f = Fixture::new();
        let mut class = f.class("450802101201", Some(venue));
        let id = build(&f, &mut class);
        let got = f.check(&class);
        let (flags, paid) = got
            .get(&id)
            .cloned()
            .unwrap_or_else(|| panic!("{what}: not checked"));
        assert_eq!(flags, set(want), "{what}");
        assert_eq!(paid, payable, "{what}");
        if what.starts_with("the same response") {
            assert!(
                got.values().all(|(f, p)| f.contains("replayed") && !p),
                "{what}: {got:?}"
            );
        }
    }
}

#[test]
fn the_same_person_at_two_venues_too_soon() {
    for (gap_min, other_venue, other_village, want) in [
        (
            10,
            Some((23.55, 109.6)),
            "450802101202",
            &["two_venues"][..],
        ),
        (120, Some((23.55, 109.6)), "450802101202", &[][..]),
        (10, None, "450802101202", &["two_venues"][..]),
        (30, None, "450802101202", &[][..]),
        (10, None, "450802101201", &[][..]),
    ] {
        let mut f = Fixture::new();
        let t = f.trainees[0];
        let mut first = f.class(other_village, other_venue);
        let m = Qr::new(&f, &first, t).method();
        add(&mut first, record(&f, t, TEN, m, None));
        f.check(&first);
        let mut second = f.class("450802101201", other_venue.map(|_| (23.1, 109.6)));
        let m = Qr::new(&f, &second, t).method();
        let id = add(&mut second, record(&f, t, TEN + gap_min * MIN, m, None));
        let got = f.check(&second);
        assert_eq!(
            got[&id].0,
            set(want),
            "{gap_min} min, {other_venue:?}, {other_village}"
        );
    }
}

#[test]
fn cards_are_checked_against_the_district_keys() {
    let mut f = Fixture::new();
    let district = DistrictCode::parse("450802").expect("district");
    let t = f.trainees[0];
    let mut class = f.class("450802101201", None);
    let now = TEN;
    let card = sign_cards(f.store.conn(), &district, &[t], now)
        .expect("sign")
        .remove(0);
    // Unknown key id, another trainee's card, another district's card, a bad signature.
    let unknown = Card::sign(&DeviceKey::generate(), district.clone(), 99, t, day());
    let other_district = Card::sign(
        &DeviceKey::generate(),
        DistrictCode::parse("450803").expect("district"),
        card.key_id,
        t,
        day(),
    );
    let mut bad_sig = card.clone();
    bad_sig.signature[3] ^= 1;
    let another_trainee = sign_cards(f.store.conn(), &district, &[f.trainees[1]], now)
        .expect("sign")
        .remove(0);
    let mut ids = Vec::new();
    for c in [&unknown, &other_district, &bad_sig, &another_trainee] {
        let m = AttendanceMethod::Card {
            card: c.to_bytes(),
            signature: vec![0; 64],
        };
        ids.push(add(
            &mut class,
            record(&f, t, TEN + ids.len() as i64 * MIN, m, None),
        ));
    }
    // A card whose coordinator signature is not the recording device's.
    let m = AttendanceMethod::Card {
        card: card.to_bytes(),
        signature: vec![0; 64],
    };
    ids.push(add(&mut class, record(&f, t, TEN + 10 * MIN, m, None)));
    let got = f.check(&class);
    for id in &ids {
        assert_eq!(got[id], (set(&["invalid_proof"]), false));
    }
    let details: Vec<String> = flags(f.store.conn(), Some(&class.id.to_string()))
        .expect("flags")
        .into_iter()
        .map(|f| f.detail)
        .collect();
    for want in [
        "the card was signed by an unknown district key",
        "the card belongs to another district",
        "the card's signature does not verify",
        "the card is another trainee's",
        "the coordinator's signature over the scan does not verify",
    ] {
        assert!(details.iter().any(|d| d == want), "{want}: {details:?}");
    }
    // After a rotation, cards of the withdrawn key are refused.
    rotate_card_key(f.store.conn_mut(), now).expect("rotate");
    let mut class2 = f.class("450802101201", None);
    let m = AttendanceMethod::Card {
        card: card.to_bytes(),
        signature: vec![0; 64],
    };
    let id = add(&mut class2, record(&f, t, TEN, m, None));
    f.check(&class2);
    let d = flags(f.store.conn(), Some(&class2.id.to_string())).expect("flags");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].attendance, id.to_string());
    assert_eq!(
        d[0].detail,
        "the card was signed by a withdrawn district key"
    );
}

#[test]
fn checks_run_once_per_record() {
    let mut f = Fixture::new();
    let mut class = f.class("450802101201", None);
    let m = Qr::new(&f, &class, f.trainees[0]).method();
    let mut a = record(&f, f.trainees[0], TEN, m, None);
    a.clock_offset_ms = None;
    add(&mut class, a);
    let first = f.check(&class);
    let second = f.check(&class);
    assert_eq!(first, second);
    let n: i64 = f
        .store
        .conn()
        .query_row("SELECT COUNT(*) FROM attendance_flags", &[], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
}

//! `check_class` row by row: each row builds the records of one situation on a fresh store, runs the
//! checks in a transaction and states the exact flags, the payability and, for refused proofs, which
//! check refused them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate, NaiveTime, TimeZone};
use sha2::{Digest, Sha256};
use songpei_core::catalog::{ClassStatus, Level, TrainingType};
use songpei_core::clock::china;
use songpei_core::device::DeviceKey;
use songpei_core::domain::{
    Attendance, AttendanceKind, AttendanceMethod, Class, Enrolment, Gps, Venue,
};
use songpei_core::ids::{AttendanceId, ClassId, DeviceId, DistrictCode, TraineeId, VillageCode};
use songpei_core::qr::{Card, CardScan, ClassCode, Response};

use crate::args;
use crate::attendance::{check_class, checked, flags, rotate_card_key, sign_cards};
use crate::db::{DbError, Transact};
use crate::store::ServerStore;

const DISTRICT: &str = "450802";
const VILLAGE: &str = "450802101201";
const OTHER_VILLAGE: &str = "450802101202";
const VENUE: (f64, f64) = (23.1, 109.6);
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
/// The core's label for a coordinator's signature over a card scan (`CardScan::sign` is private
/// to the core); `scan_signature` checks what it makes with the public `CardScan::verifies`.
const CARD_SCAN_PURPOSE: &[u8] = b"songpei/v1/qr-card-scan\0";

/// The training day D: Monday 2 March 2026.
fn d() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
}

/// An instant given in China time (UTC+8).
fn local(day: NaiveDate, h: u32, m: u32, s: u32) -> i64 {
    china()
        .from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(h, m, s).expect("time")))
        .single()
        .expect("instant")
        .timestamp_millis()
}

/// 10:00 China time on D.
fn ten() -> i64 {
    local(d(), 10, 0, 0)
}

/// A point `m` metres north of `from`, on the same meridian (so the haversine distance is `m`).
fn north(from: (f64, f64), m: f64) -> (f64, f64) {
    (from.0 + (m / 6_371_000.0).to_degrees(), from.1)
}

struct Fx {
    _dir: tempfile::TempDir,
    store: ServerStore,
    /// The coordinator's enrolled phone and its key.
    device: DeviceId,
    key: DeviceKey,
    /// Whether every response's key counts as registered (rows about other checks).
    register_keys: bool,
    /// How sign-ins are taken: by default every card scan counts alone (rows about other checks).
    rules: crate::config::SigninRules,
}

impl Fx {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            ServerStore::open(dir.path(), 4, &crate::DbKey::from_bytes([7; 32])).expect("store");
        let key = DeviceKey::generate();
        let device = DeviceId::random();
        let conn = store.conn();
        conn.execute(
            "INSERT INTO district (code, name, created_at) VALUES (?1, '港北区', 0)",
            args![DISTRICT],
        )
        .expect("district");
        conn.execute(
            "INSERT INTO accounts (id, username, role, created_at)
             VALUES ('acc-1', 'li.coordinator', 'coordinator', 0)",
            &[],
        )
        .expect("account");
        conn.execute(
            "INSERT INTO devices (id, account_id, public_key, created_at) VALUES (?1, 'acc-1', ?2, 0)",
            args![device.to_string(), key.public_key()],
        )
        .expect("device");
        Self {
            _dir: dir,
            store,
            device,
            key,
            register_keys: true,
            rules: crate::config::SigninRules {
                card_share_percent: 100,
            },
        }
    }

    fn district() -> DistrictCode {
        DistrictCode::parse(DISTRICT).expect("district")
    }

    /// A class in `village` at `venue`, D-1 to D+2, 08:00 for 8 hours, with `trainees`.
    fn class_at(village: &str, venue: (f64, f64), trainees: &[TraineeId]) -> Class {
        Class {
            id: ClassId::random(),
            district: Self::district(),
            village: VillageCode::parse(village).expect("village"),
            title: "2026年电工培训班".into(),
            occupation: "电工".into(),
            level: Level::Junior,
            training_type: TrainingType::EmploymentSkills,
            subsidised: true,
            institution: None,
            instructors: BTreeSet::new(),
            instructor_accounts: Default::default(),
            venue: Some(Venue {
                name: "村委会".into(),
                gps: Some(Gps {
                    lat: venue.0,
                    lon: venue.1,
                    accuracy_m: None,
                }),
            }),
            first_day: d() - Days::new(1),
            last_day: d() + Days::new(2),
            daily_hours: Some(8.0),
            starts_at: NaiveTime::from_hms_opt(8, 0, 0),
            sign_out_required: false,
            planned_size: None,
            status: ClassStatus::Running,
            roster: trainees
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

    fn class(trainees: &[TraineeId]) -> Class {
        Self::class_at(VILLAGE, VENUE, trainees)
    }

    /// Runs `check_class` in a transaction and commits; checks that what it returns is the set of
    /// the class's records that are not payable.
    fn check(&mut self, class: &Class) -> BTreeSet<String> {
        if self.register_keys {
            super::register_every_key(self.store.conn(), class);
        }
        let rules = self.rules;
        let held = self
            .store
            .conn_mut()
            .transaction(|tx| -> Result<_, DbError> {
                check_class(tx, class, ten() + HOUR, &rules)
            })
            .expect("check_class");
        let unpaid: BTreeSet<String> = checked(self.store.conn(), &class.id.to_string())
            .expect("checked")
            .into_iter()
            .filter(|c| !c.payable)
            .map(|c| c.attendance)
            .collect();
        assert_eq!(held, unpaid, "check_class returns the records not paid");
        held
    }

    /// The default class code: the coordinator's phone, for `class` on D, sign-in.
    fn code(&self, class: &Class) -> ClassCode {
        ClassCode::sign(
            &self.key,
            self.device,
            class.id,
            d(),
            AttendanceKind::SignIn,
            42,
        )
    }

    /// A record of `trainee` on D, sign-in, on the coordinator's phone, clock offset 0, no fix.
    fn record(&self, trainee: TraineeId, at_ms: i64, method: AttendanceMethod) -> Attendance {
        Attendance {
            id: AttendanceId::random(),
            trainee,
            day: d(),
            kind: AttendanceKind::SignIn,
            at_ms,
            clock_offset_ms: Some(0),
            device: self.device,
            method,
            gps: None,
        }
    }

    /// A valid flow A record: the class code answered by `phone` for `trainee`, 5 s after it was
    /// shown.
    fn qr(&self, class: &Class, trainee: TraineeId, phone: &DeviceKey, at_ms: i64) -> Attendance {
        let code = self.code(class);
        let response = Response::sign(phone, &code, trainee, None, None);
        self.record(trainee, at_ms, qr(&code, &response, 5_000))
    }

    fn hand(&self, trainee: TraineeId, at_ms: i64) -> Attendance {
        self.record(
            trainee,
            at_ms,
            AttendanceMethod::Hand {
                reason: "手机没电".into(),
            },
        )
    }

    /// A flow B record: `card` scanned on the coordinator's phone, the scan signed by `signer`.
    fn card(
        &self,
        class: &Class,
        trainee: TraineeId,
        card: &Card,
        signer: &DeviceKey,
        at_ms: i64,
    ) -> Attendance {
        let bytes = card.to_bytes();
        let mut a = self.record(
            trainee,
            at_ms,
            AttendanceMethod::Hand {
                reason: String::new(),
            },
        );
        a.method = AttendanceMethod::Card {
            signature: scan_signature(signer, &bytes, class, &a),
            card: bytes,
        };
        a
    }

    /// Cards signed by the district's current key (made on first use).
    fn cards(&self, trainees: &[TraineeId]) -> Vec<Card> {
        sign_cards(
            self.store.conn(),
            &Self::district(),
            trainees,
            ten() - 24 * HOUR,
        )
        .expect("sign_cards")
    }
}

fn qr(code: &ClassCode, response: &Response, code_age_ms: i64) -> AttendanceMethod {
    AttendanceMethod::Qr {
        code: code.to_bytes(),
        response: response.to_bytes(),
        code_age_ms,
    }
}

/// The coordinator's signature over a card scan, as the core's `CardScan::sign` makes it.
fn scan_signature(key: &DeviceKey, card: &[u8], class: &Class, a: &Attendance) -> Vec<u8> {
    let days = (a.day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
    let gps = a
        .gps
        .map(|g| format!("{:.6},{:.6}", g.lat, g.lon))
        .unwrap_or_default();
    let card_hash = Sha256::digest(card);
    let sig = key.sign(
        CARD_SCAN_PURPOSE,
        &[
            &card_hash[..],
            class.id.uuid().as_bytes(),
            &days.to_be_bytes(),
            a.kind.code().as_bytes(),
            &a.at_ms.to_be_bytes(),
            gps.as_bytes(),
        ],
    );
    let scan = CardScan {
        card,
        class: class.id,
        day: a.day,
        kind: a.kind,
        at_ms: a.at_ms,
        gps: a.gps,
    };
    assert!(
        scan.verifies(&key.public_key(), &sig),
        "the test's scan signature is the core's"
    );
    sig.to_vec()
}

fn add(a: Attendance, class: &mut Class) -> AttendanceId {
    let id = a.id;
    class.attendance.insert(id, a);
    id
}

fn flip_last(bytes: &mut [u8]) {
    if let Some(b) = bytes.last_mut() {
        *b ^= 0x01;
    }
}

/// What a row expects of one record.
struct Expect {
    record: AttendanceId,
    flags: &'static [&'static str],
    payable: bool,
    /// `Some(v)`: proof_valid is `Some(v)`; `None`: hand entry, no proof.
    proof_valid: Option<bool>,
    /// For a refused proof: the exact invalid_proof detail, naming the check that refused.
    why: Option<&'static str>,
}

fn ok(record: AttendanceId) -> Expect {
    Expect {
        record,
        flags: &[],
        payable: true,
        proof_valid: Some(true),
        why: None,
    }
}

fn flagged(record: AttendanceId, flags: &'static [&'static str], payable: bool) -> Expect {
    Expect {
        record,
        flags,
        payable,
        proof_valid: Some(true),
        why: None,
    }
}

fn refused(record: AttendanceId, why: &'static str) -> Expect {
    Expect {
        record,
        flags: &["invalid_proof"],
        payable: false,
        proof_valid: Some(false),
        why: Some(why),
    }
}

/// The classes of a row, checked in order (each in its own transaction), and what is expected.
struct Case {
    classes: Vec<Class>,
    expect: Vec<Expect>,
}

type Row = (&'static str, fn(&mut Fx) -> Case);

/// One class with one trainee whose only record is made by `make`.
fn one(fx: &Fx, make: impl FnOnce(&Fx, &Class, TraineeId) -> Attendance) -> (Class, AttendanceId) {
    let t = TraineeId::random();
    let mut c = Fx::class(&[t]);
    let a = make(fx, &c, t);
    let id = add(a, &mut c);
    (c, id)
}

/// One class whose flow A record was changed by `change` (which gets the code, the response, the
/// age and the record, and may rebuild any of them).
fn qr_case(
    fx: &Fx,
    change: impl FnOnce(
        &Fx,
        &Class,
        TraineeId,
        &mut ClassCode,
        &mut Response,
        &mut i64,
        &mut Attendance,
    ),
) -> (Class, AttendanceId) {
    one(fx, |fx, c, t| {
        let mut code = fx.code(c);
        let phone = DeviceKey::generate();
        let mut response = Response::sign(&phone, &code, t, None, None);
        let mut age = 5_000;
        let mut a = fx.record(t, ten(), AttendanceMethod::Other { code: "-".into() });
        change(fx, c, t, &mut code, &mut response, &mut age, &mut a);
        a.method = qr(&code, &response, age);
        a
    })
}

/// `n` trainees answered by one trainee phone, a minute apart.
fn one_phone_for(fx: &Fx, n: usize) -> (Class, Vec<AttendanceId>) {
    let ts: Vec<TraineeId> = (0..n).map(|_| TraineeId::random()).collect();
    let mut c = Fx::class(&ts);
    let phone = DeviceKey::generate();
    let ids = ts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let a = fx.qr(&c, *t, &phone, ten() + i as i64 * MIN);
            add(a, &mut c)
        })
        .collect();
    (c, ids)
}

/// Five trainees, each with their own phone, signed in on the coordinator's phone `every_ms` apart.
fn five_every(fx: &Fx, every_ms: i64) -> (Class, Vec<AttendanceId>) {
    let ts: Vec<TraineeId> = (0..5).map(|_| TraineeId::random()).collect();
    let mut c = Fx::class(&ts);
    let ids = ts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let a = fx.qr(&c, *t, &DeviceKey::generate(), ten() + i as i64 * every_ms);
            add(a, &mut c)
        })
        .collect();
    (c, ids)
}

/// The same trainee signed in at a class in another village 50 km away (50 minutes at 60 km/h),
/// `gap_ms` later; the later record gets `later`.
fn two_classes(fx: &Fx, gap_ms: i64, later: &'static [&'static str]) -> Case {
    let t = TraineeId::random();
    let mut here = Fx::class(&[t]);
    let mut there = Fx::class_at(OTHER_VILLAGE, north(VENUE, 50_000.0), &[t]);
    let first = add(fx.qr(&here, t, &DeviceKey::generate(), ten()), &mut here);
    let second = add(
        fx.qr(&there, t, &DeviceKey::generate(), ten() + gap_ms),
        &mut there,
    );
    Case {
        classes: vec![here, there],
        expect: vec![ok(first), flagged(second, later, later.is_empty())],
    }
}

/// A QR record at `at_ms` on the phone's clock with `offset`.
fn timed(fx: &Fx, at_ms: i64, offset: Option<i64>) -> (Class, AttendanceId) {
    one(fx, |fx, c, t| {
        let mut a = fx.qr(c, t, &DeviceKey::generate(), at_ms);
        a.clock_offset_ms = offset;
        a
    })
}

/// A QR record with a fix `m` metres from the venue of accuracy `accuracy_m`.
fn fixed(fx: &Fx, m: f64, accuracy_m: Option<f64>) -> (Class, AttendanceId) {
    one(fx, |fx, c, t| {
        let mut a = fx.qr(c, t, &DeviceKey::generate(), ten());
        let (lat, lon) = north(VENUE, m);
        a.gps = Some(Gps {
            lat,
            lon,
            accuracy_m,
        });
        a
    })
}

/// A response made `m` metres north of the venue (accuracy 20 m); the coordinator's fix at the
/// venue, or none.
fn answered_from(fx: &Fx, m: f64, coordinator_fix: bool) -> (Class, AttendanceId) {
    qr_case(fx, |_, _, t, code, response, _, a| {
        let (lat, lon) = north(VENUE, m);
        let fix = Gps {
            lat,
            lon,
            accuracy_m: Some(20.0),
        };
        *response = Response::sign(&DeviceKey::generate(), code, t, Some(fix), Some(60_000));
        a.gps = coordinator_fix.then_some(Gps {
            lat: VENUE.0,
            lon: VENUE.1,
            accuracy_m: Some(10.0),
        });
    })
}

/// An instructor account of the village with an enrolled phone: the phone's id and key.
fn instructor(fx: &Fx) -> (DeviceId, DeviceKey) {
    let conn = fx.store.conn();
    let key = DeviceKey::generate();
    let device = DeviceId::random();
    conn.execute(
        "INSERT INTO townships (code, name) VALUES ('450802101', '港城镇')",
        &[],
    )
    .expect("township");
    conn.execute(
        "INSERT INTO places (code, name, township) VALUES (?1, '大湾村', '450802101')",
        args![VILLAGE],
    )
    .expect("village");
    conn.execute(
        "INSERT INTO accounts (id, username, role, created_at)
         VALUES ('acc-i', 'chen.instructor', 'instructor', 0)",
        &[],
    )
    .expect("account");
    conn.execute(
        "INSERT INTO account_villages (account_id, village) VALUES ('acc-i', ?1)",
        args![VILLAGE],
    )
    .expect("its village");
    conn.execute(
        "INSERT INTO devices (id, account_id, public_key, created_at) VALUES (?1, 'acc-i', ?2, 0)",
        args![device.to_string(), key.public_key()],
    )
    .expect("instructor's phone");
    (device, key)
}

/// `qr` trainees signing in by phone a minute apart, then `cards` by card scanned on the
/// coordinator's phone alone, a minute apart after them. Returns the card records.
fn phones_then_cards(fx: &Fx, qr: usize, cards: usize) -> (Class, Vec<AttendanceId>) {
    let ts: Vec<TraineeId> = (0..qr + cards).map(|_| TraineeId::random()).collect();
    let mut c = Fx::class(&ts);
    for (i, t) in ts[..qr].iter().enumerate() {
        let a = fx.qr(&c, *t, &DeviceKey::generate(), ten() + i as i64 * MIN);
        add(a, &mut c);
    }
    let printed = fx.cards(&ts[qr..]);
    let ids = ts[qr..]
        .iter()
        .zip(&printed)
        .enumerate()
        .map(|(i, (t, card))| {
            let at = ten() + (qr + i) as i64 * MIN;
            add(fx.card(&c, *t, card, &fx.key, at), &mut c)
        })
        .collect();
    (c, ids)
}

fn single(c: Class, e: Expect) -> Case {
    Case {
        classes: vec![c],
        expect: vec![e],
    }
}

fn rows() -> Vec<Row> {
    const OTHER_CODE: &str = "the class code is for another class, day or sign-in";
    vec![
        // --- flow A: proofs
        ("valid QR", |fx| {
            let (c, id) = qr_case(fx, |_, _, _, _, _, _, _| {});
            single(c, ok(id))
        }),
        ("hand entry with an offset", |fx| {
            let (c, id) = one(fx, |fx, _, t| fx.hand(t, ten()));
            single(
                c,
                Expect {
                    record: id,
                    flags: &[],
                    payable: true,
                    proof_valid: None,
                    why: None,
                },
            )
        }),
        ("class code signature altered", |fx| {
            let (c, id) = qr_case(fx, |_, _, t, code, response, _, _| {
                flip_last(&mut code.signature);
                // The response answers the altered code, so only the code's signature is wrong.
                *response = Response::sign(&DeviceKey::generate(), code, t, None, None);
            });
            single(c, refused(id, "the class code's signature does not verify"))
        }),
        ("class code for another class", |fx| {
            let (c, id) = qr_case(fx, |fx, _, t, code, response, _, _| {
                *code = ClassCode::sign(
                    &fx.key,
                    fx.device,
                    ClassId::random(),
                    d(),
                    AttendanceKind::SignIn,
                    42,
                );
                *response = Response::sign(&DeviceKey::generate(), code, t, None, None);
            });
            single(c, refused(id, OTHER_CODE))
        }),
        ("class code for another day", |fx| {
            let (c, id) = qr_case(fx, |fx, c, t, code, response, _, _| {
                *code = ClassCode::sign(
                    &fx.key,
                    fx.device,
                    c.id,
                    d() + Days::new(1),
                    AttendanceKind::SignIn,
                    42,
                );
                *response = Response::sign(&DeviceKey::generate(), code, t, None, None);
            });
            single(c, refused(id, OTHER_CODE))
        }),
        ("sign-out code on a sign-in record", |fx| {
            let (c, id) = qr_case(fx, |fx, c, t, code, response, _, _| {
                *code = ClassCode::sign(&fx.key, fx.device, c.id, d(), AttendanceKind::SignOut, 42);
                *response = Response::sign(&DeviceKey::generate(), code, t, None, None);
            });
            single(c, refused(id, OTHER_CODE))
        }),
        ("code shown by another phone than the recording one", |fx| {
            let (c, id) = qr_case(fx, |_, _, _, _, _, _, a| {
                a.device = DeviceId::random();
            });
            single(
                c,
                refused(
                    id,
                    "the class code was shown by another phone than the recording one",
                ),
            )
        }),
        (
            "code signed by a key other than the device's enrolled one",
            |fx| {
                let (c, id) = qr_case(fx, |fx, c, t, code, response, _, _| {
                    *code = ClassCode::sign(
                        &DeviceKey::generate(),
                        fx.device,
                        c.id,
                        d(),
                        AttendanceKind::SignIn,
                        42,
                    );
                    *response = Response::sign(&DeviceKey::generate(), code, t, None, None);
                });
                single(
                    c,
                    refused(
                        id,
                        "the class code was not signed by the recording phone's enrolled key",
                    ),
                )
            },
        ),
        ("code and record from a device never enrolled", |fx| {
            let (c, id) = qr_case(fx, |_, c, t, code, response, _, a| {
                let stranger = DeviceId::random();
                *code = ClassCode::sign(
                    &DeviceKey::generate(),
                    stranger,
                    c.id,
                    d(),
                    AttendanceKind::SignIn,
                    42,
                );
                *response = Response::sign(&DeviceKey::generate(), code, t, None, None);
                a.device = stranger;
            });
            single(
                c,
                refused(
                    id,
                    "the class code was not signed by the recording phone's enrolled key",
                ),
            )
        }),
        ("response signature altered", |fx| {
            let (c, id) = qr_case(fx, |_, _, _, _, response, _, _| {
                flip_last(&mut response.signature);
            });
            single(c, refused(id, "the response's signature does not verify"))
        }),
        ("response for another trainee", |fx| {
            let (c, id) = qr_case(fx, |_, _, _, code, response, _, _| {
                *response = Response::sign(
                    &DeviceKey::generate(),
                    code,
                    TraineeId::random(),
                    None,
                    None,
                );
            });
            single(c, refused(id, "the response is for another trainee"))
        }),
        ("response answering another class code", |fx| {
            let (c, id) = qr_case(fx, |fx, c, t, _, response, _, _| {
                let other =
                    ClassCode::sign(&fx.key, fx.device, c.id, d(), AttendanceKind::SignIn, 43);
                *response = Response::sign(&DeviceKey::generate(), &other, t, None, None);
            });
            single(c, refused(id, "the response answers another class code"))
        }),
        ("response signed with the coordinator's own key", |fx| {
            let (c, id) = qr_case(fx, |fx, _, t, code, response, _, _| {
                *response = Response::sign(&fx.key, code, t, None, None);
            });
            single(
                c,
                refused(id, "the response was signed by the coordinator's own phone"),
            )
        }),
        ("code age 20 000 ms is inside the window", |fx| {
            let (c, id) = qr_case(fx, |_, _, _, _, _, age, _| *age = 20_000);
            single(c, ok(id))
        }),
        ("code age 20 001 ms", |fx| {
            let (c, id) = qr_case(fx, |_, _, _, _, _, age, _| *age = 20_001);
            single(
                c,
                refused(id, "the response was taken outside the 20-second window"),
            )
        }),
        ("code age -1 ms", |fx| {
            let (c, id) = qr_case(fx, |_, _, _, _, _, age, _| *age = -1);
            single(
                c,
                refused(id, "the response was taken outside the 20-second window"),
            )
        }),
        ("the same response in two records", |fx| {
            let t = TraineeId::random();
            let mut c = Fx::class(&[t]);
            let first = fx.qr(&c, t, &DeviceKey::generate(), ten());
            let mut copy = first.clone();
            copy.id = AttendanceId::random();
            copy.at_ms += MIN;
            let a = add(first, &mut c);
            let b = add(copy, &mut c);
            Case {
                classes: vec![c],
                expect: vec![
                    flagged(a, &["replayed"], false),
                    flagged(b, &["replayed"], false),
                ],
            }
        }),
        // --- time
        ("clock offset unknown", |fx| {
            let (c, id) = timed(fx, ten(), None);
            single(c, flagged(id, &["time_unverified"], false))
        }),
        ("offset -3 h, corrected 07:00", |fx| {
            let (c, id) = timed(fx, ten(), Some(-3 * HOUR));
            single(c, flagged(id, &["clock_mismatch"], true))
        }),
        ("offset -3 h, corrected 06:30", |fx| {
            let (c, id) = timed(fx, local(d(), 9, 30, 0), Some(-3 * HOUR));
            single(c, flagged(id, &["clock_mismatch", "outside_hours"], false))
        }),
        ("offset 0 at 07:00:00 (the margin's edge)", |fx| {
            let (c, id) = timed(fx, local(d(), 7, 0, 0), Some(0));
            single(c, ok(id))
        }),
        ("offset 0 at 06:59:59", |fx| {
            let (c, id) = timed(fx, local(d(), 6, 59, 59), Some(0));
            single(c, flagged(id, &["outside_hours"], false))
        }),
        ("offset 0 at 17:00:00 (end 16:00 plus the margin)", |fx| {
            let (c, id) = timed(fx, local(d(), 17, 0, 0), Some(0));
            single(c, ok(id))
        }),
        ("offset 0 at 17:00:01", |fx| {
            let (c, id) = timed(fx, local(d(), 17, 0, 1), Some(0));
            single(c, flagged(id, &["outside_hours"], false))
        }),
        ("offset 0, phone clock on the next day", |fx| {
            let (c, id) = timed(fx, local(d() + Days::new(1), 10, 0, 0), Some(0));
            single(c, flagged(id, &["outside_hours"], false))
        }),
        ("offset +15 h, corrected 01:00 the next day", |fx| {
            let (c, id) = timed(fx, ten(), Some(15 * HOUR));
            single(c, flagged(id, &["clock_mismatch", "outside_hours"], false))
        }),
        ("offset of 2 years, corrected 10:00", |fx| {
            let two_years = 730 * 24 * HOUR;
            let (c, id) = timed(fx, ten() - two_years, Some(two_years));
            single(c, flagged(id, &["clock_mismatch"], true))
        }),
        // --- place
        ("fix 5 km from the venue", |fx| {
            let (c, id) = fixed(fx, 5_000.0, None);
            single(c, flagged(id, &["far_from_venue"], false))
        }),
        // --- ADR 0007: whose key, relays, cards
        ("a key not registered to its trainee", |fx| {
            fx.register_keys = false;
            let (c, id) = qr_case(fx, |_, _, _, _, _, _, _| {});
            single(c, flagged(id, &["unregistered_key"], false))
        }),
        ("a response made 5 km from the coordinator's fix", |fx| {
            let (c, id) = answered_from(fx, 5_000.0, true);
            single(c, flagged(id, &["relayed"], false))
        }),
        (
            "a response made 5 km from the venue, the coordinator without a fix",
            |fx| {
                let (c, id) = answered_from(fx, 5_000.0, false);
                single(c, flagged(id, &["relayed"], false))
            },
        ),
        ("a response made 800 m from the coordinator's fix", |fx| {
            let (c, id) = answered_from(fx, 800.0, true);
            single(c, ok(id))
        }),
        ("cards within and past 20% of the sign-in", |fx| {
            fx.rules.card_share_percent = 20;
            // 4 phones and 2 cards: 6 trainees, so one card counts alone.
            let (c, ids) = phones_then_cards(fx, 4, 2);
            Case {
                classes: vec![c],
                expect: vec![ok(ids[0]), flagged(ids[1], &["card_unwitnessed"], false)],
            }
        }),
        ("held phone records do not widen the card share", |fx| {
            fx.rules.card_share_percent = 20;
            fx.register_keys = false;
            // Four answers from unregistered spare keys, held, and one card: the card is alone.
            let (c, ids) = phones_then_cards(fx, 4, 1);
            let spare: Vec<Expect> = c
                .attendance
                .keys()
                .filter(|a| **a != ids[0])
                .map(|a| flagged(*a, &["unregistered_key"], false))
                .collect();
            let mut expect = vec![flagged(ids[0], &["card_unwitnessed"], false)];
            expect.extend(spare);
            Case {
                classes: vec![c],
                expect,
            }
        }),
        ("a card the class's instructor scanned too", |fx| {
            fx.rules.card_share_percent = 0;
            let (device, key) = instructor(fx);
            let (mut c, ids) = phones_then_cards(fx, 1, 2);
            c.instructor_accounts.insert("acc-i".into());
            // The instructor's phone scans the first card; the second no one else scanned.
            let (trainee, card) = match &c.attendance[&ids[0]].method {
                AttendanceMethod::Card { card, .. } => {
                    (c.attendance[&ids[0]].trainee, card.clone())
                }
                _ => unreachable!("a card record"),
            };
            let card = match songpei_core::qr::Code::from_bytes(&card) {
                Ok(songpei_core::qr::Code::Card(card)) => card,
                _ => unreachable!("a card"),
            };
            let mut a = fx.card(&c, trainee, &card, &key, ten() + 5 * MIN);
            a.device = device;
            let co = add(a, &mut c);
            Case {
                classes: vec![c],
                expect: vec![
                    ok(ids[0]),
                    ok(co),
                    flagged(ids[1], &["card_unwitnessed"], false),
                ],
            }
        }),
        ("fix 500 m from the venue", |fx| {
            let (c, id) = fixed(fx, 500.0, None);
            single(c, ok(id))
        }),
        ("fix 1.5 km from the venue, accuracy 800 m", |fx| {
            let (c, id) = fixed(fx, 1_500.0, Some(800.0));
            single(c, ok(id))
        }),
        ("the same trainee 50 km away 10 minutes later", |fx| {
            two_classes(fx, 10 * MIN, &["two_venues"])
        }),
        ("the same trainee 50 km away 2 hours later", |fx| {
            two_classes(fx, 2 * HOUR, &[])
        }),
        // --- phones and queues
        ("one trainee phone answers for 3 trainees", |fx| {
            let (c, ids) = one_phone_for(fx, 3);
            Case {
                classes: vec![c],
                expect: vec![
                    ok(ids[0]),
                    ok(ids[1]),
                    flagged(ids[2], &["phone_many_trainees"], false),
                ],
            }
        }),
        ("one trainee phone answers for 2 trainees", |fx| {
            let (c, ids) = one_phone_for(fx, 2);
            Case {
                classes: vec![c],
                expect: vec![ok(ids[0]), ok(ids[1])],
            }
        }),
        ("five sign-ins on one phone within 8 s", |fx| {
            let (c, ids) = five_every(fx, 2 * SEC);
            let mut expect: Vec<Expect> = ids[..4].iter().map(|id| ok(*id)).collect();
            expect.push(flagged(ids[4], &["too_fast"], false));
            Case {
                classes: vec![c],
                expect,
            }
        }),
        ("five sign-ins on one phone within 10 s", |fx| {
            let (c, ids) = five_every(fx, 2_500);
            Case {
                classes: vec![c],
                expect: ids.iter().map(|id| ok(*id)).collect(),
            }
        }),
        // --- flow B: cards
        ("valid card", |fx| {
            let t = TraineeId::random();
            let card = fx.cards(&[t]).remove(0);
            let mut c = Fx::class(&[t]);
            let id = add(fx.card(&c, t, &card, &fx.key, ten()), &mut c);
            single(c, ok(id))
        }),
        ("card with an unknown key id", |fx| {
            let t = TraineeId::random();
            fx.cards(&[t]);
            let card = Card::sign(&DeviceKey::generate(), Fx::district(), 99, t, d());
            let mut c = Fx::class(&[t]);
            let id = add(fx.card(&c, t, &card, &fx.key, ten()), &mut c);
            single(
                c,
                refused(id, "the card was signed by an unknown district key"),
            )
        }),
        ("card signed by a withdrawn key", |fx| {
            let t = TraineeId::random();
            let card = fx.cards(&[t]).remove(0);
            rotate_card_key(fx.store.conn_mut(), ten() - HOUR).expect("rotate");
            let mut c = Fx::class(&[t]);
            let id = add(fx.card(&c, t, &card, &fx.key, ten()), &mut c);
            single(
                c,
                refused(id, "the card was signed by a withdrawn district key"),
            )
        }),
        ("card of another trainee", |fx| {
            let (t, other) = (TraineeId::random(), TraineeId::random());
            let card = fx.cards(&[other]).remove(0);
            let mut c = Fx::class(&[t, other]);
            let id = add(fx.card(&c, t, &card, &fx.key, ten()), &mut c);
            single(c, refused(id, "the card is another trainee's"))
        }),
        (
            "card signed by another key under the current key id",
            |fx| {
                let t = TraineeId::random();
                let key_id = fx.cards(&[t])[0].key_id;
                let card = Card::sign(&DeviceKey::generate(), Fx::district(), key_id, t, d());
                let mut c = Fx::class(&[t]);
                let id = add(fx.card(&c, t, &card, &fx.key, ten()), &mut c);
                single(c, refused(id, "the card's signature does not verify"))
            },
        ),
        (
            "card scan signed by a key other than the recording phone's",
            |fx| {
                let t = TraineeId::random();
                let card = fx.cards(&[t]).remove(0);
                let mut c = Fx::class(&[t]);
                let id = add(fx.card(&c, t, &card, &DeviceKey::generate(), ten()), &mut c);
                single(
                    c,
                    refused(
                        id,
                        "the coordinator's signature over the scan does not verify",
                    ),
                )
            },
        ),
    ]
}

#[test]
fn every_row_flags_exactly_what_it_should() {
    run(&rows());
}

/// Runs each row on a fresh store; reports every expectation that fails, then fails if any did.
fn run(rows: &[Row]) {
    let mut failures = Vec::new();
    for (name, build) in rows {
        let mut fx = Fx::new();
        let case = build(&mut fx);
        for c in &case.classes {
            fx.check(c);
        }
        let conn = fx.store.conn();
        let all_flags = flags(conn, None).expect("flags");
        let rows_checked: BTreeMap<String, crate::attendance::Checked> = case
            .classes
            .iter()
            .flat_map(|c| checked(conn, &c.id.to_string()).expect("checked"))
            .map(|c| (c.attendance.clone(), c))
            .collect();
        for (n, e) in case.expect.iter().enumerate() {
            let name = format!("{name} [record {}]", n + 1);
            let aid = e.record.to_string();
            let mine: Vec<&crate::attendance::Flag> =
                all_flags.iter().filter(|f| f.attendance == aid).collect();
            let got: BTreeSet<&str> = mine.iter().map(|f| f.flag.as_str()).collect();
            let want: BTreeSet<&str> = e.flags.iter().copied().collect();
            let Some(row) = rows_checked.get(&aid) else {
                failures.push(format!("{name}: record {aid} was not checked"));
                continue;
            };
            if got != want {
                failures.push(format!(
                    "{name}: flags {got:?}, expected {want:?} (details: {:?})",
                    mine.iter().map(|f| &f.detail).collect::<Vec<_>>()
                ));
            }
            if row.payable != e.payable {
                failures.push(format!(
                    "{name}: payable {}, expected {}",
                    row.payable, e.payable
                ));
            }
            if row.proof_valid != e.proof_valid {
                failures.push(format!(
                    "{name}: proof_valid {:?}, expected {:?}",
                    row.proof_valid, e.proof_valid
                ));
            }
            // Only clock_mismatch is informational; every other flag waits for review.
            for f in &mine {
                if f.blocks_pay != (f.flag != "clock_mismatch") {
                    failures.push(format!(
                        "{name}: flag {} has blocks_pay {}",
                        f.flag, f.blocks_pay
                    ));
                }
            }
            if let Some(why) = e.why {
                let detail = mine
                    .iter()
                    .find(|f| f.flag == "invalid_proof")
                    .map(|f| f.detail.as_str());
                if detail != Some(why) {
                    failures.push(format!(
                        "{name}: invalid_proof detail {detail:?}, expected {why:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} expectations failed over {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

fn count(fx: &Fx, table: &str) -> i64 {
    fx.store
        .conn()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))
        .expect("count")
}

#[test]
fn checks_are_incremental_and_return_the_unpaid_records() {
    let mut fx = Fx::new();
    let ts: Vec<TraineeId> = (0..6).map(|_| TraineeId::random()).collect();
    let mut c = Fx::class(&ts);
    let phone = DeviceKey::generate();
    let good = add(fx.qr(&c, ts[0], &phone, ten()), &mut c);
    let hand = add(fx.hand(ts[1], ten() + MIN), &mut c);
    let mut late = fx.qr(&c, ts[2], &DeviceKey::generate(), ten() + 2 * MIN);
    late.clock_offset_ms = None;
    let late = add(late, &mut c);
    let mut forged = fx.qr(&c, ts[3], &DeviceKey::generate(), ten() + 3 * MIN);
    if let AttendanceMethod::Qr { code_age_ms, .. } = &mut forged.method {
        *code_age_ms = 60_000;
    }
    let forged = add(forged, &mut c);
    let mut skewed = fx.qr(&c, ts[4], &DeviceKey::generate(), ten() - 3 * HOUR);
    skewed.clock_offset_ms = Some(3 * HOUR);
    let skewed = add(skewed, &mut c);

    let held = fx.check(&c);
    let want: BTreeSet<String> = [late, forged].iter().map(|a| a.to_string()).collect();
    assert_eq!(held, want);
    assert_eq!(count(&fx, "attendance_checks"), 5);
    assert_eq!(count(&fx, "attendance_flags"), 3);
    let flags_once = flags(fx.store.conn(), None).expect("flags");
    let checked_once = checked(fx.store.conn(), &c.id.to_string()).expect("checked");
    let skewed_flags: Vec<&str> = flags_once
        .iter()
        .filter(|f| f.attendance == skewed.to_string())
        .map(|f| f.flag.as_str())
        .collect();
    assert_eq!(skewed_flags, ["clock_mismatch"]);
    for id in [good, hand, skewed] {
        assert!(
            checked_once
                .iter()
                .any(|r| r.attendance == id.to_string() && r.payable),
            "{id} is payable"
        );
    }

    // The same class again: nothing new, nothing written.
    assert_eq!(fx.check(&c), want);
    assert_eq!(count(&fx, "attendance_checks"), 5);
    assert_eq!(count(&fx, "attendance_flags"), 3);
    assert_eq!(flags(fx.store.conn(), None).expect("flags"), flags_once);
    assert_eq!(
        checked(fx.store.conn(), &c.id.to_string()).expect("checked"),
        checked_once
    );

    // A later sync brings one new record, a copy of the first one's response: only it is checked,
    // and the first record, already checked, is flagged with it.
    let mut copy = c.attendance[&good].clone();
    copy.id = AttendanceId::random();
    copy.at_ms += 30 * MIN;
    let copy = add(copy, &mut c);
    let held = fx.check(&c);
    let want: BTreeSet<String> = [late, forged, good, copy]
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(held, want);
    assert_eq!(count(&fx, "attendance_checks"), 6);
    assert_eq!(count(&fx, "attendance_flags"), 5);
    for id in [good, copy] {
        let f: Vec<String> = flags(fx.store.conn(), None)
            .expect("flags")
            .into_iter()
            .filter(|f| f.attendance == id.to_string())
            .map(|f| f.flag)
            .collect();
        assert_eq!(f, ["replayed"], "{id}");
    }

    // And once more: still nothing new.
    assert_eq!(fx.check(&c), want);
    assert_eq!(count(&fx, "attendance_checks"), 6);
    assert_eq!(count(&fx, "attendance_flags"), 5);
}

/// The order of P-256, big-endian.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// The other valid encoding of an ECDSA signature `r ‖ s`: `r ‖ n − s`. It verifies for the same
/// key and message, but its bytes differ.
fn reencode(signature: &mut [u8; 64]) {
    let mut borrow = 0;
    for i in (0..32).rev() {
        let v = i16::from(P256_N[i]) - i16::from(signature[32 + i]) - borrow;
        borrow = i16::from(v < 0);
        signature[32 + i] = v.rem_euclid(256) as u8;
    }
}

/// P-256 verification accepts both `s` and `n − s`, so a response's signature can be re-encoded
/// and still verify. Replays are told apart by the response without its signature
/// ([`Response::id`]): a second record carrying the same response with its signature re-encoded
/// is still flagged `replayed`.
#[test]
fn a_replay_with_the_signature_reencoded_is_still_a_replay() {
    run(&[(
        "the same response, signature re-encoded (s -> n - s), in a second record",
        |fx| {
            let t = TraineeId::random();
            let mut c = Fx::class(&[t]);
            let first = fx.qr(&c, t, &DeviceKey::generate(), ten());
            let mut copy = first.clone();
            copy.id = AttendanceId::random();
            copy.at_ms += MIN;
            if let AttendanceMethod::Qr { response, .. } = &mut copy.method {
                let Ok(songpei_core::qr::Code::Response(mut r)) =
                    songpei_core::qr::Code::from_bytes(response)
                else {
                    panic!("a response");
                };
                reencode(&mut r.signature);
                assert!(r.verifies(), "the re-encoded signature verifies");
                *response = r.to_bytes();
            }
            let a = add(first, &mut c);
            let b = add(copy, &mut c);
            Case {
                classes: vec![c],
                expect: vec![
                    flagged(a, &["replayed"], false),
                    flagged(b, &["replayed"], false),
                ],
            }
        },
    )]);
}

/// A registration filed after the sign-ins it vouches for lifts their hold; the filing is kept
/// with its outcome, once.
#[test]
fn a_registration_arriving_later_lifts_the_hold_on_its_records() {
    use songpei_core::qr::{KeyClaim, Registration, Witnessed};
    let mut fx = Fx::new();
    fx.register_keys = false;
    let (witness, witness_key) = instructor(&fx);
    fx.store
        .conn()
        .execute(
            "INSERT INTO account_villages (account_id, village) VALUES ('acc-1', ?1)",
            args![VILLAGE],
        )
        .expect("the coordinator's village");
    let t = TraineeId::random();
    let mut c = Fx::class(&[t]);
    c.instructor_accounts.insert("acc-i".into());
    let phone = DeviceKey::generate();
    let id = add(fx.qr(&c, t, &phone, ten()), &mut c);
    let held = fx.check(&c);
    assert!(
        held.contains(&id.to_string()),
        "held before its key is registered"
    );

    let w = Witnessed::sign(&witness_key, KeyClaim::sign(&phone, t), c.id, d(), witness);
    let reg = Registration::sign(&fx.key, w.to_bytes(), fx.device, ten() + HOUR);
    c.registrations.insert(w.id(), reg);
    let held = fx.check(&c);
    assert!(held.is_empty(), "paid once its key is registered: {held:?}");
    let all = flags(fx.store.conn(), None).expect("flags");
    assert!(all.is_empty(), "{all:?}");
    assert_eq!(count(&fx, "trainee_keys"), 1);
    // Checked again, the registration is not filed twice.
    fx.check(&c);
    assert_eq!(count(&fx, "trainee_keys"), 1);
}

//! Queries: what the coordinator's screens show. Views carry masked personal data only; the full
//! values are read from the trainee document when a screen really needs them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::catalog::{
    Certificate, ClassStatus, CompletionResult, KeyGroup, Level, PovertyStatus, TrainingType,
};
use crate::doc::{self, Conflict, DocKind};
use crate::domain::{Attendance, Venue};
use crate::error::Result;
use crate::ids::{ClassId, DocId, HouseholdId, TraineeId, VillageCode};
use crate::phone::Phone;
use crate::rules::{self, DayAttendance, SubsidyDecision};
use crate::store::{ClassFilter, ClassRow, DocStore};
use crate::sync::protocol::bitmap_days;
use crate::validate::{Field, IdNumber, Invalid, Problem, Sex};

/// One line of a class list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassSummary {
    /// Id.
    pub id: ClassId,
    /// Title.
    pub title: String,
    /// Village.
    pub village: VillageCode,
    /// Status.
    pub status: ClassStatus,
    /// Occupation.
    pub occupation: String,
    /// Level.
    pub level: Level,
    /// Training type.
    pub training_type: TrainingType,
    /// Subsidised.
    pub subsidised: bool,
    /// First day.
    pub first_day: NaiveDate,
    /// Last day.
    pub last_day: NaiveDate,
    /// Trainees enrolled.
    pub enrolled: usize,
}

impl From<ClassRow> for ClassSummary {
    fn from(r: ClassRow) -> Self {
        Self {
            id: r.id,
            title: r.title,
            village: r.village,
            status: r.status,
            occupation: r.occupation,
            level: r.level,
            training_type: r.training_type,
            subsidised: r.subsidised,
            first_day: r.first_day,
            last_day: r.last_day,
            enrolled: r.enrolled.len(),
        }
    }
}

/// One trainee's day in a class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RosterDay {
    /// The training day.
    pub day: NaiveDate,
    /// Signed in and signed out as the phone's records say; payable as the place's figures are
    /// decided (see [`RosterEntry::decided_by`]).
    #[serde(flatten)]
    pub attendance: DayAttendance,
    /// The district holds a record of this day for review: not paid until it is accepted.
    pub held: bool,
}

/// Whose figures a place shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The district's, as the last sync brought them: what it pays.
    District,
    /// The phone's own estimate (预计): the phone holds records of this place the district has
    /// not seen yet, or the district has not decided on it.
    Phone,
}

/// One roster line of a class, with what it earns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RosterEntry {
    /// Trainee.
    pub trainee_id: TraineeId,
    /// Masked name.
    pub name_masked: String,
    /// Masked ID number, as the district sends it to an instructor's phone (which holds no
    /// trainee documents); `None` elsewhere.
    pub id_masked: Option<String>,
    /// Household.
    pub household_id: Option<HouseholdId>,
    /// The household's poverty status.
    pub poverty_status: Option<PovertyStatus>,
    /// Attendance on every training day.
    pub days: Vec<RosterDay>,
    /// Whose figures these are: the district's, or the phone's estimate.
    pub decided_by: DecidedBy,
    /// Number of payable days.
    pub payable_days: usize,
    /// Days with records the district holds for review.
    pub held_days: usize,
    /// Living allowance, in fen: what the district pays for the place, or the phone's estimate.
    pub allowance_fen: i64,
    /// Whether the place is subsidised for this person, and the rule that decided.
    pub subsidy: SubsidyDecision,
    /// Completion result, if recorded.
    pub completion: Option<CompletionResult>,
    /// Certificate, if any.
    pub certificate: Option<Certificate>,
}

/// A class with its roster, attendance per day, payable days and allowances.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassView {
    /// Id.
    pub id: ClassId,
    /// Title.
    pub title: String,
    /// Village.
    pub village: VillageCode,
    /// Status.
    pub status: ClassStatus,
    /// Occupation.
    pub occupation: String,
    /// Level.
    pub level: Level,
    /// Training type.
    pub training_type: TrainingType,
    /// Subsidised class.
    pub subsidised: bool,
    /// Institution.
    pub institution: Option<String>,
    /// Venue.
    pub venue: Option<Venue>,
    /// First day.
    pub first_day: NaiveDate,
    /// Last day.
    pub last_day: NaiveDate,
    /// Hours a day.
    pub daily_hours: Option<f64>,
    /// Whether days need a sign-out.
    pub sign_out_required: bool,
    /// Every training day.
    pub days: Vec<NaiveDate>,
    /// Roster.
    pub roster: Vec<RosterEntry>,
    /// Attendance facts, oldest first.
    pub attendance: Vec<Attendance>,
    /// Sum of allowances, in fen.
    pub allowance_total_fen: i64,
    /// Open conflicts in this class document.
    pub conflicts: Vec<Conflict>,
}

/// A trainee as shown on the phone: masked unless revealed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraineeView {
    /// Id.
    pub id: TraineeId,
    /// Village.
    pub village: VillageCode,
    /// Name (masked unless revealed).
    pub name: String,
    /// ID number (masked unless revealed).
    pub id_number: String,
    /// Sex from the ID number.
    pub sex: Option<Sex>,
    /// Birth date from the ID number.
    pub birth_date: Option<NaiveDate>,
    /// Phone (masked unless revealed).
    pub phone: Option<String>,
    /// Household.
    pub household_id: Option<HouseholdId>,
    /// Its poverty status.
    pub poverty_status: Option<PovertyStatus>,
    /// Key groups.
    pub key_groups: Vec<KeyGroup>,
    /// Training wish.
    pub training_wish: Option<String>,
    /// Consent given at (ms).
    pub consent_at_ms: i64,
    /// Classes with the subsidy decision for each.
    pub classes: Vec<(ClassSummary, SubsidyDecision)>,
    /// Open conflicts in the trainee document.
    pub conflicts: Vec<Conflict>,
}

impl<S: DocStore> Phone<S> {
    /// Classes, filtered by village and status.
    pub fn classes(&self, filter: &ClassFilter) -> Result<Vec<ClassSummary>> {
        Ok(self
            .store()
            .classes(filter)?
            .into_iter()
            .map(ClassSummary::from)
            .collect())
    }

    /// A class with everything the class screen shows.
    pub fn class_view(&mut self, id: ClassId) -> Result<ClassView> {
        let Some(d) = self.doc(id.into())? else {
            return Err(Invalid::new(Field::Class, Problem::NotFound).into());
        };
        let (class, conflicts) = doc::class::read(d, id)?;
        let by_day = rules::attendance_by_day(&class);
        let trainee_ids: Vec<TraineeId> = class.roster.keys().copied().collect();
        let rows: BTreeMap<TraineeId, _> = self
            .store()
            .trainee_rows(&trainee_ids)?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let days: Vec<NaiveDate> = class.training_days().collect();
        // The district's figures hold for the class as the district decided on it.
        let sent = self.district_settlement(id)?;
        // An instructor's phone holds no trainee documents: the district sends masked names.
        let masked = |t: TraineeId| {
            sent.as_ref()
                .and_then(|s| s.places.iter().find(|p| p.trainee == t.uuid()))
                .map(|p| (p.name_masked.clone(), p.id_masked.clone()))
                .unwrap_or_default()
        };
        let settlement = sent
            .clone()
            .filter(|s| s.basis == rules::PayBasis::of(&class).check());
        let mut roster = Vec::with_capacity(trainee_ids.len());
        for t in trainee_ids {
            let row = rows.get(&t);
            let household_id = row.and_then(|r| r.household);
            let poverty_status = match household_id {
                Some(h) => self.store().household_row(h)?.map(|h| h.poverty_status),
                None => None,
            };
            let records = class.attendance.values().filter(|a| a.trainee == t).count();
            // A place is the district's when the phone holds no record of it that the district
            // has not seen, and the household's status is the one the district paid by.
            let district = settlement.as_ref().and_then(|s| {
                let p = s.places.iter().find(|p| p.trainee == t.uuid())?;
                let same = p.records as usize == records
                    && p.poverty.as_deref() == poverty_status.map(|p| p.code());
                Some((p, SubsidyDecision::from(p.decision.as_ref()?))).filter(|_| same)
            });
            let attendance = by_day.get(&t);
            let (decided_by, payable, held, allowance_fen, subsidy) = match district {
                Some((p, decision)) => (
                    DecidedBy::District,
                    bitmap_days(class.first_day, &p.payable),
                    bitmap_days(class.first_day, &p.held),
                    p.allowance_fen,
                    decision,
                ),
                None => {
                    let payable = rules::payable_days(&class, t);
                    let decision = self
                        .subsidies_of(t)?
                        .remove(&id)
                        .unwrap_or(SubsidyDecision::ClassNotSubsidised);
                    let fen = rules::place_allowance_fen(
                        &decision,
                        &payable,
                        poverty_status,
                        self.policy(),
                    );
                    (DecidedBy::Phone, payable, Default::default(), fen, decision)
                }
            };
            let per_day: Vec<RosterDay> = days
                .iter()
                .map(|day| {
                    let mut attendance: DayAttendance = attendance
                        .and_then(|a| a.get(day).cloned())
                        .unwrap_or_default();
                    attendance.payable = payable.contains(day);
                    RosterDay {
                        day: *day,
                        attendance,
                        held: held.contains(day),
                    }
                })
                .collect();
            let completion = class.completion.get(&t);
            let (sent_name, sent_id) = masked(t);
            roster.push(RosterEntry {
                trainee_id: t,
                name_masked: row
                    .map(|r| r.name_masked.clone())
                    .or(sent_name)
                    .unwrap_or_default(),
                id_masked: sent_id,
                household_id,
                poverty_status,
                days: per_day,
                decided_by,
                payable_days: payable.len(),
                held_days: held.len(),
                allowance_fen,
                subsidy,
                completion: completion.map(|c| c.result),
                certificate: completion.and_then(|c| c.certificate),
            });
        }
        let mut attendance: Vec<Attendance> = class.attendance.values().cloned().collect();
        attendance.sort_by_key(|a| (a.day, a.at_ms, a.id));
        Ok(ClassView {
            id,
            allowance_total_fen: roster.iter().map(|r| r.allowance_fen).sum(),
            title: class.title,
            village: class.village,
            status: class.status,
            occupation: class.occupation,
            level: class.level,
            training_type: class.training_type,
            subsidised: class.subsidised,
            institution: class.institution,
            venue: class.venue,
            first_day: class.first_day,
            last_day: class.last_day,
            daily_hours: class.daily_hours,
            sign_out_required: class.sign_out_required,
            days,
            roster,
            attendance,
            conflicts,
        })
    }

    /// A trainee, masked unless `reveal` (for the coordinator's own check against the ID card).
    pub fn trainee_view(&mut self, id: TraineeId, reveal: bool) -> Result<TraineeView> {
        let Some(d) = self.doc(id.into())? else {
            return Err(Invalid::new(Field::Trainee, Problem::NotFound).into());
        };
        let (t, conflicts) = doc::trainee::read(d, id)?;
        let poverty_status = match t.household {
            Some(h) => self.store().household_row(h)?.map(|h| h.poverty_status),
            None => None,
        };
        let decisions = self.subsidies_of(id)?;
        let mut classes = Vec::new();
        for r in self.store().classes_of_trainee(id)? {
            // The district's decision where it decided on the class as the phone has it.
            let district = match self.district_settlement(r.id)? {
                Some(s) => {
                    let basis = match self.doc(r.id.into())? {
                        Some(d) => doc::class::read(d, r.id)
                            .ok()
                            .map(|(c, _)| rules::PayBasis::of(&c).check()),
                        None => None,
                    };
                    s.places
                        .into_iter()
                        .find(|p| p.trainee == id.uuid())
                        .filter(|_| basis == Some(s.basis))
                        .and_then(|p| p.decision.as_ref().map(SubsidyDecision::from))
                }
                None => None,
            };
            let d = district.unwrap_or_else(|| {
                decisions
                    .get(&r.id)
                    .cloned()
                    .unwrap_or(SubsidyDecision::ClassNotSubsidised)
            });
            classes.push((ClassSummary::from(r), d));
        }
        let show = |full: &str, masked: String| if reveal { full.to_owned() } else { masked };
        Ok(TraineeView {
            id,
            village: t.village.clone(),
            name: show(t.name.expose(), t.name.masked()),
            id_number: show(t.id_number.expose(), t.id_number.masked()),
            sex: t.sex(),
            birth_date: t.birth_date(),
            phone: t.phone.as_ref().map(|p| show(p.expose(), p.masked())),
            household_id: t.household,
            poverty_status,
            key_groups: t.key_groups.iter().copied().collect(),
            training_wish: t.training_wish.clone(),
            consent_at_ms: t.consent_at_ms,
            classes,
            conflicts,
        })
    }

    /// Finds a trainee by ID number through the blind index.
    pub fn find_trainee(&self, id_number: &str) -> Result<Option<TraineeId>> {
        let id = IdNumber::parse(id_number, self.today())?;
        self.store()
            .trainee_by_blind_index(&self.blind_index_of(&id))
    }

    /// Every open conflict on the phone.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.store().conflicts()
    }

    /// Every document as JSON (personal data in the clear: this is the coordinator's own backup).
    pub fn export(&mut self) -> Result<Vec<ExportedDoc>> {
        let docs = self.store().documents()?;
        let mut out = Vec::with_capacity(docs.len());
        for (id, kind) in docs {
            if let Some(d) = self.doc(id)? {
                out.push(ExportedDoc {
                    id,
                    kind,
                    heads: d.get_heads().iter().map(|h| h.to_string()).collect(),
                    content: doc::to_json(d),
                });
            }
        }
        Ok(out)
    }
}

/// One document in an export.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedDoc {
    /// Id.
    pub id: DocId,
    /// Kind.
    pub kind: DocKind,
    /// Heads (change hashes, hex).
    pub heads: Vec<String>,
    /// Content as JSON.
    pub content: serde_json::Value,
}

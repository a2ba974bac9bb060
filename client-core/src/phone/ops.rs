//! The coordinator's operations: plan and run classes, register trainees and households, enrol,
//! take attendance, record completion. Everything is validated before anything is written.

use automerge::ReadDoc;
use chrono::NaiveDate;

use super::Phone;
use crate::catalog::{Certificate, ClassStatus, CompletionResult, KeyGroup, PovertyStatus};
use crate::doc;
use crate::domain::{
    Attendance, AttendanceKind, AttendanceMethod, Class, Completion, Gps, Household,
    HouseholdChoice, NewAttendance, NewClass, NewHousehold, NewTrainee, Trainee, Venue,
};
use crate::error::Result;
use crate::ids::{AttendanceId, ClassId, DocId, HouseholdId, TraineeId};
use crate::rules::{SubsidyDecision, SubsidyFacts, decide_subsidies};
use crate::store::{ClassRow, DocStore};
use crate::validate::{Field, IdNumber, Invalid, PersonName, PhoneNumber, Problem, text_field};

/// Longest class, in days.
pub const MAX_CLASS_DAYS: i64 = 366;

fn invalid(field: Field, problem: Problem) -> crate::error::Error {
    Invalid::new(field, problem).into()
}

pub(crate) fn check_gps(gps: Option<Gps>) -> Result<Option<Gps>> {
    match gps {
        Some(g)
            if !(g.lat.is_finite()
                && g.lon.is_finite()
                && (-90.0..=90.0).contains(&g.lat)
                && (-180.0..=180.0).contains(&g.lon)
                && g.accuracy_m.is_none_or(|a| a.is_finite() && a >= 0.0)) =>
        {
            Err(invalid(Field::Gps, Problem::OutOfRange))
        }
        other => Ok(other),
    }
}

fn opt_text(field: Field, s: Option<&str>, max: usize) -> Result<Option<String>> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => Ok(Some(text_field(field, t, max)?)),
    }
}

impl<S: DocStore> Phone<S> {
    pub(crate) fn class_row_or_err(&self, id: ClassId) -> Result<ClassRow> {
        self.store
            .class_row(id)?
            .ok_or_else(|| invalid(Field::Class, Problem::NotFound))
    }

    /// Plans a new class; returns its id.
    pub fn create_class(&mut self, c: NewClass) -> Result<ClassId> {
        let title = text_field(Field::Title, &c.title, 100)?;
        let village = self.village_in_scope(&c.village)?;
        let occupation = text_field(Field::Occupation, &c.occupation, 50)?;
        let institution = opt_text(Field::Institution, c.institution.as_deref(), 100)?;
        let instructors = c
            .instructors
            .iter()
            .map(|n| {
                Ok(PersonName::parse(n)
                    .map_err(|_| invalid(Field::Instructor, Problem::DisallowedCharacters))?
                    .expose()
                    .to_owned())
            })
            .collect::<Result<_>>()?;
        let instructor_accounts = self.instructor_accounts(&village, &c.instructor_accounts)?;
        let venue = match c.venue {
            None => None,
            Some(v) => Some(Venue {
                name: text_field(Field::Venue, &v.name, 100)?,
                gps: check_gps(v.gps)?,
            }),
        };
        if c.last_day < c.first_day {
            return Err(invalid(Field::LastDay, Problem::EndsBeforeStart));
        }
        if (c.last_day - c.first_day).num_days() >= MAX_CLASS_DAYS {
            return Err(invalid(Field::LastDay, Problem::OutOfRange));
        }
        if c.daily_hours
            .is_some_and(|h| !(h.is_finite() && h > 0.0 && h <= 24.0))
        {
            return Err(invalid(Field::DailyHours, Problem::OutOfRange));
        }
        if c.planned_size.is_some_and(|n| n == 0 || n > 1000) {
            return Err(invalid(Field::PlannedSize, Problem::OutOfRange));
        }
        let class = Class {
            id: ClassId::random(),
            district: self.profile.district.clone(),
            village,
            title,
            occupation,
            level: c.level,
            training_type: c.training_type,
            subsidised: c.subsidised,
            institution,
            instructors,
            instructor_accounts,
            venue,
            first_day: c.first_day,
            last_day: c.last_day,
            daily_hours: c.daily_hours,
            starts_at: c.starts_at,
            sign_out_required: c.sign_out_required,
            planned_size: c.planned_size,
            status: ClassStatus::Planned,
            roster: Default::default(),
            attendance: Default::default(),
            completion: Default::default(),
            registrations: Default::default(),
        };
        let (device, now) = (self.profile.device, self.now_ms());
        let id = DocId::from(class.id);
        let chunk = self.create(id, |tx| doc::class::create(tx, &class, device, now))?;
        self.commit(vec![(id, Some(chunk))], true)?;
        Ok(class.id)
    }

    /// The account ids of instructors named by id or login name, each an instructor of `village`
    /// as the server last told this phone.
    fn instructor_accounts(
        &self,
        village: &crate::ids::VillageCode,
        named: &[String],
    ) -> Result<std::collections::BTreeSet<String>> {
        if named.is_empty() {
            return Ok(Default::default());
        }
        let set = self.instructors()?;
        named
            .iter()
            .map(|n| {
                set.find(n)
                    .filter(|i| i.villages.iter().any(|v| v == village.as_str()))
                    .map(|i| i.account.clone())
                    .ok_or_else(|| invalid(Field::Instructor, Problem::NotAnInstructor))
            })
            .collect()
    }

    /// Names the instructor accounts of a class (by id or login name), replacing those it named.
    pub fn set_class_instructors(&mut self, id: ClassId, accounts: &[String]) -> Result<()> {
        let row = self.class_row_or_err(id)?;
        if row.status.is_final() {
            return Err(invalid(Field::Class, Problem::ClassIsFinal));
        }
        let accounts = self.instructor_accounts(&row.village, accounts)?;
        let (_, chunk) = self.change(id.into(), |tx| {
            doc::class::set_instructor_accounts(tx, &accounts)
        })?;
        self.commit(vec![(id.into(), chunk)], true)
    }

    /// Moves a class forward: planned → running → closed, or to cancelled. Moving to the state it
    /// is in changes nothing; moving back is refused.
    pub fn set_class_status(&mut self, id: ClassId, to: ClassStatus) -> Result<()> {
        let row = self.class_row_or_err(id)?;
        if row.status == to {
            return Ok(());
        }
        if row.status.is_final() || to.rank() < row.status.rank() {
            return Err(invalid(Field::Status, Problem::ClassIsFinal));
        }
        let (_, chunk) = self.change(id.into(), |tx| doc::class::set_status(tx, to))?;
        self.commit(vec![(id.into(), chunk)], true)
    }

    /// Closes a class (结业).
    pub fn close_class(&mut self, id: ClassId) -> Result<()> {
        self.set_class_status(id, ClassStatus::Closed)
    }

    /// Registers a household; returns its id.
    pub fn add_household(&mut self, h: NewHousehold) -> Result<HouseholdId> {
        let village = self.village_in_scope(&h.village)?;
        let head_name = h.head_name.as_deref().map(PersonName::parse).transpose()?;
        let household = Household {
            id: HouseholdId::random(),
            district: self.profile.district.clone(),
            village,
            head_name,
            poverty_status: h.poverty_status,
            members: Default::default(),
        };
        let id = DocId::from(household.id);
        let chunk = self.create(id, |tx| doc::household::create(tx, &household))?;
        self.commit(vec![(id, Some(chunk))], true)?;
        Ok(household.id)
    }

    /// Changes a household's poverty status.
    pub fn set_poverty_status(&mut self, id: HouseholdId, status: PovertyStatus) -> Result<()> {
        if self.store.household_row(id)?.is_none() {
            return Err(invalid(Field::Household, Problem::NotFound));
        }
        let (_, chunk) = self.change(id.into(), |tx| {
            doc::household::set_poverty_status(tx, status)
        })?;
        self.commit(vec![(id.into(), chunk)], true)
    }

    /// Registers a trainee (and, if asked, a new household headed by them); returns the id. A
    /// person already registered on this phone (same ID number) is refused, naming the record.
    pub fn add_trainee(&mut self, t: NewTrainee) -> Result<TraineeId> {
        let name = PersonName::parse(&t.name)?;
        let id_number = IdNumber::parse(&t.id_number, self.today())?;
        let phone = match t.phone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(PhoneNumber::parse(p)?),
        };
        let village = self.village_in_scope(&t.village)?;
        let training_wish = opt_text(Field::TrainingWish, t.training_wish.as_deref(), 200)?;
        if let Some(existing) = self
            .store
            .trainee_by_blind_index(&self.blind_key.index(&id_number))?
        {
            return Err(invalid(
                Field::IdNumber,
                Problem::AlreadyRegistered {
                    existing: existing.to_string(),
                },
            ));
        }
        let id = TraineeId::random();
        let mut changes = Vec::new();
        let household = match t.household {
            HouseholdChoice::None => None,
            HouseholdChoice::Existing(h) => {
                if self.store.household_row(h)?.is_none() {
                    return Err(invalid(Field::Household, Problem::NotFound));
                }
                let (_, chunk) = self.change(h.into(), |tx| doc::household::add_member(tx, id))?;
                changes.push((DocId::from(h), chunk));
                Some(h)
            }
            HouseholdChoice::New(status) => {
                let household = Household {
                    id: HouseholdId::random(),
                    district: self.profile.district.clone(),
                    village: village.clone(),
                    head_name: Some(name.clone()),
                    poverty_status: status,
                    members: [id].into(),
                };
                let hid = DocId::from(household.id);
                let chunk = self.create(hid, |tx| doc::household::create(tx, &household))?;
                changes.push((hid, Some(chunk)));
                Some(household.id)
            }
        };
        let trainee = Trainee {
            id,
            district: self.profile.district.clone(),
            village,
            name,
            id_number,
            phone,
            household,
            key_groups: t.key_groups.into_iter().collect(),
            training_wish,
            consent_at_ms: t.consent_at_ms,
        };
        let (device, now) = (self.profile.device, self.now_ms());
        let chunk = self.create(id.into(), |tx| {
            doc::trainee::create(tx, &trainee, device, now)
        })?;
        changes.push((id.into(), Some(chunk)));
        let ids: Vec<DocId> = changes.iter().map(|(d, _)| *d).collect();
        if let Err(e) = self.commit(changes, true) {
            for d in ids {
                self.cache.remove(d);
            }
            return Err(e);
        }
        Ok(id)
    }

    fn require_trainee(&self, id: TraineeId) -> Result<()> {
        if self.store.trainee_rows(&[id])?.is_empty() {
            return Err(invalid(Field::Trainee, Problem::NotFound));
        }
        Ok(())
    }

    /// Changes (or clears) a trainee's phone number.
    pub fn set_trainee_phone(&mut self, id: TraineeId, phone: Option<&str>) -> Result<()> {
        self.require_trainee(id)?;
        let phone = match phone.map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(PhoneNumber::parse(p)?),
        };
        let (_, chunk) =
            self.change(id.into(), |tx| doc::trainee::set_phone(tx, phone.as_ref()))?;
        self.commit(vec![(id.into(), chunk)], true)
    }

    /// Adds key groups to a trainee.
    pub fn add_key_groups(&mut self, id: TraineeId, groups: &[KeyGroup]) -> Result<()> {
        self.require_trainee(id)?;
        let (_, chunk) = self.change(id.into(), |tx| doc::trainee::add_key_groups(tx, groups))?;
        self.commit(vec![(id.into(), chunk)], true)
    }

    /// Enrols a trainee in a class; returns whether the place is subsidised for them and why.
    pub fn enrol(&mut self, class: ClassId, trainee: TraineeId) -> Result<SubsidyDecision> {
        let row = self.class_row_or_err(class)?;
        if row.status.is_final() {
            return Err(invalid(Field::Class, Problem::ClassIsFinal));
        }
        self.require_trainee(trainee)?;
        let (device, now) = (self.profile.device, self.now_ms());
        let (_, chunk) = self.change(class.into(), |tx| {
            doc::class::enrol(tx, trainee, device, now)
        })?;
        self.commit(vec![(class.into(), chunk)], true)?;
        Ok(self
            .subsidies_of(trainee)?
            .remove(&class)
            .unwrap_or(SubsidyDecision::ClassNotSubsidised))
    }

    /// How the subsidy rules decide each class of a trainee on this phone.
    pub fn subsidies_of(
        &self,
        trainee: TraineeId,
    ) -> Result<std::collections::BTreeMap<ClassId, SubsidyDecision>> {
        let facts: Vec<SubsidyFacts> = self
            .store
            .classes_of_trainee(trainee)?
            .into_iter()
            .map(|r| SubsidyFacts {
                class: r.id,
                subsidised: r.subsidised,
                occupation: r.occupation,
                level: r.level,
                first_day: r.first_day,
                status: r.status,
            })
            .collect();
        Ok(decide_subsidies(&facts, &self.policy))
    }

    /// Records a sign-in or sign-out entered by hand, with its reason. Sign-ins by QR code go
    /// through [`Phone::accept`]. The first attendance of a planned class starts it.
    pub fn record_attendance(&mut self, a: NewAttendance) -> Result<AttendanceId> {
        let method = match a.method {
            AttendanceMethod::Hand { reason } => AttendanceMethod::Hand {
                reason: text_field(Field::Reason, &reason, 200)?,
            },
            _ => return Err(invalid(Field::Reason, Problem::NotInCatalog)),
        };
        let gps = check_gps(a.gps)?;
        let at_ms = self.now_ms();
        let (id, _) =
            self.write_attendance(a.class, a.trainee, a.day, a.kind, method, gps, at_ms)?;
        Ok(id)
    }

    /// Checks and writes one attendance fact, with the clock's offset to the server's when known;
    /// returns its id and whether the offset was known.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_attendance(
        &mut self,
        class: ClassId,
        trainee: TraineeId,
        day: NaiveDate,
        kind: AttendanceKind,
        method: AttendanceMethod,
        gps: Option<Gps>,
        at_ms: i64,
    ) -> Result<(AttendanceId, bool)> {
        let row = self.class_row_or_err(class)?;
        if row.status.is_final() {
            return Err(invalid(Field::Class, Problem::ClassIsFinal));
        }
        if !row.enrolled.contains(&trainee) {
            return Err(invalid(Field::Trainee, Problem::NotEnrolled));
        }
        if day < row.first_day || day > row.last_day {
            return Err(invalid(Field::Day, Problem::NotATrainingDay));
        }
        let record = Attendance {
            id: AttendanceId::random(),
            trainee,
            day,
            kind,
            at_ms,
            clock_offset_ms: self.clock_offset_ms()?,
            device: self.profile().device,
            method,
            gps,
        };
        let start = row.status == ClassStatus::Planned;
        let (_, chunk) = self.change(class.into(), |tx| {
            doc::class::add_attendance(tx, &record)?;
            if start {
                doc::class::set_status(tx, ClassStatus::Running)?;
            }
            Ok(())
        })?;
        self.commit(vec![(class.into(), chunk)], true)?;
        Ok((record.id, record.clock_offset_ms.is_some()))
    }

    /// Records how a trainee finished a class (also after the class is closed).
    pub fn complete(
        &mut self,
        class: ClassId,
        trainee: TraineeId,
        result: CompletionResult,
        certificate: Option<Certificate>,
    ) -> Result<()> {
        let row = self.class_row_or_err(class)?;
        if row.status == ClassStatus::Cancelled {
            return Err(invalid(Field::Class, Problem::ClassIsFinal));
        }
        if !row.enrolled.contains(&trainee) {
            return Err(invalid(Field::Trainee, Problem::NotEnrolled));
        }
        let c = Completion {
            result,
            certificate,
            at_ms: self.now_ms(),
        };
        let device = self.profile.device;
        let (_, chunk) = self.change(class.into(), |tx| {
            doc::class::complete(tx, trainee, &c, device)
        })?;
        self.commit(vec![(class.into(), chunk)], true)
    }

    /// True when the class document holds this attendance record.
    pub fn has_attendance(&mut self, class: ClassId, id: AttendanceId) -> Result<bool> {
        let Some(d) = self.doc(class.into())? else {
            return Ok(false);
        };
        let Some((_, att)) = d.get(automerge::ROOT, "attendance")? else {
            return Ok(false);
        };
        Ok(d.get(&att, id.to_string().as_str())?.is_some())
    }
}

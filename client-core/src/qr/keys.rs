//! A trainee phone's key registered to its trainee, in person (ADR 0007).
//!
//! The trainee's phone shows a key claim: "this phone's key is trainee T's", signed by that key
//! ([`claim`]). An instructor of the class, looking at the trainee and their ID card, scans it on
//! their own phone and shows it back witnessed ([`Phone::witness`]). The coordinator's phone scans
//! the witnessed claim and files it in the class document with its own signature
//! ([`Phone::register_key`]): a [`Registration`]. The server takes it only when every signature
//! verifies, the witness is an instructor's enrolled phone whose account the class names and whose
//! villages include the class's, and the filing phone belongs to another account of that village
//! ([`registration_problem`]); phones run the same checks on what they know. A response signed by
//! a key with no such registration for its trainee is kept but held (`unregistered_key`).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::signin::remembered_trainee;
use super::{
    Code, KEY_CLAIM_PURPOSE, KIND_KEY_CLAIM, KIND_WITNESSED, PK, QrError, SIG, WITNESSED_PURPOSE,
    day_bytes, hash, header_v2, pk_array, responder_of, text_of,
};
use crate::device::{self, DeviceKey};
use crate::domain::Class;
use crate::error::{Error, Result};
use crate::ids::{ClassId, DeviceId, TraineeId};
use crate::phone::Phone;
use crate::store::DocStore;
use crate::sync::protocol::InstructorSet;
use crate::validate::{Field, Invalid, Problem};

/// What the filing phone signs over a witnessed claim.
pub const REGISTRATION_PURPOSE: &[u8] = b"songpei/v2/key-registration\0";

const META_INSTRUCTORS: &str = "district.instructors";

/// A trainee phone's claim that its key is the trainee's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyClaim {
    /// The trainee.
    pub trainee: TraineeId,
    /// The trainee phone's public key.
    pub public_key: [u8; PK],
    /// Its signature.
    pub signature: [u8; SIG],
}

impl KeyClaim {
    fn unsigned(&self) -> Vec<u8> {
        let mut b = header_v2(KIND_KEY_CLAIM);
        b.extend_from_slice(self.trainee.uuid().as_bytes());
        b.extend_from_slice(&self.public_key);
        b
    }

    /// Makes and signs a claim with the trainee phone's key.
    pub fn sign(key: &DeviceKey, trainee: TraineeId) -> Self {
        let mut c = Self {
            trainee,
            public_key: pk_array(&key.public_key()),
            signature: [0; SIG],
        };
        c.signature = key.sign(KEY_CLAIM_PURPOSE, &[&c.unsigned()]);
        c
    }

    /// True when the named key signed it.
    pub fn verifies(&self) -> bool {
        device::verify(
            &self.public_key,
            KEY_CLAIM_PURPOSE,
            &[&self.unsigned()],
            &self.signature,
        )
    }

    /// The claim without its header, as a witnessed claim carries it.
    pub(super) fn body(&self) -> Vec<u8> {
        let mut b = self.trainee.uuid().as_bytes().to_vec();
        b.extend_from_slice(&self.public_key);
        b.extend_from_slice(&self.signature);
        b
    }

    /// Its bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.unsigned();
        b.extend_from_slice(&self.signature);
        b
    }

    /// The text to show.
    pub fn to_text(&self) -> String {
        text_of(&self.to_bytes())
    }

    /// The phone it identifies, as responses name it ([`super::Response::responder`]).
    pub fn responder(&self) -> String {
        responder_of(&self.public_key)
    }
}

/// A key claim an instructor's phone saw in person and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// The trainee phone's claim.
    pub claim: KeyClaim,
    /// The class the witness is an instructor of.
    pub class: ClassId,
    /// The day it was witnessed.
    pub day: NaiveDate,
    /// The witness's phone.
    pub witness: DeviceId,
    /// The witness phone's signature.
    pub signature: [u8; SIG],
}

impl Witnessed {
    fn unsigned(&self) -> Vec<u8> {
        let mut b = header_v2(KIND_WITNESSED);
        b.extend_from_slice(&self.claim.body());
        b.extend_from_slice(self.class.uuid().as_bytes());
        b.extend_from_slice(&day_bytes(self.day));
        b.extend_from_slice(self.witness.uuid().as_bytes());
        b
    }

    /// Signs `claim` with the witness phone's key.
    pub fn sign(
        key: &DeviceKey,
        claim: KeyClaim,
        class: ClassId,
        day: NaiveDate,
        witness: DeviceId,
    ) -> Self {
        let mut w = Self {
            claim,
            class,
            day,
            witness,
            signature: [0; SIG],
        };
        w.signature = key.sign(WITNESSED_PURPOSE, &[&w.unsigned()]);
        w
    }

    /// True when `public_key` made the witness's signature.
    pub fn verifies_with(&self, public_key: &[u8]) -> bool {
        device::verify(
            public_key,
            WITNESSED_PURPOSE,
            &[&self.unsigned()],
            &self.signature,
        )
    }

    /// Its bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.unsigned();
        b.extend_from_slice(&self.signature);
        b
    }

    /// The text to show.
    pub fn to_text(&self) -> String {
        text_of(&self.to_bytes())
    }

    /// Where it is filed in the class document: the first 16 bytes of SHA-256 of its bytes, hex.
    pub fn id(&self) -> String {
        hex::encode(&hash(&self.to_bytes())[..16])
    }
}

/// A witnessed claim as filed in a class document, signed by the phone that filed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The witnessed claim's bytes.
    pub witnessed: Vec<u8>,
    /// The filing phone.
    pub registrar: DeviceId,
    /// When it was filed (the filing phone's clock, ms).
    pub at_ms: i64,
    /// The filing phone's signature over the witnessed claim, itself and the time.
    pub signature: Vec<u8>,
}

impl Registration {
    fn parts(&self) -> [Vec<u8>; 3] {
        [
            hash(&self.witnessed).to_vec(),
            self.registrar.uuid().as_bytes().to_vec(),
            self.at_ms.to_be_bytes().to_vec(),
        ]
    }

    /// Files `witnessed` with the filing phone's key.
    pub fn sign(key: &DeviceKey, witnessed: Vec<u8>, registrar: DeviceId, at_ms: i64) -> Self {
        let mut r = Self {
            witnessed,
            registrar,
            at_ms,
            signature: Vec::new(),
        };
        let parts = r.parts();
        r.signature = key
            .sign(REGISTRATION_PURPOSE, &[&parts[0], &parts[1], &parts[2]])
            .to_vec();
        r
    }

    /// True when `public_key` made the filing signature.
    pub fn registrar_verifies(&self, public_key: &[u8]) -> bool {
        let parts = self.parts();
        device::verify(
            public_key,
            REGISTRATION_PURPOSE,
            &[&parts[0], &parts[1], &parts[2]],
            &self.signature,
        )
    }

    /// The witnessed claim, if its bytes are one.
    pub fn witnessed(&self) -> Option<Witnessed> {
        match Code::from_bytes(&self.witnessed) {
            Ok(Code::Witnessed(w)) => Some(w),
            _ => None,
        }
    }
}

/// An enrolled phone as whoever checks a registration knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// Its account.
    pub account: String,
    /// Its public key.
    pub public_key: Vec<u8>,
    /// Whether the account is an instructor's.
    pub instructor: bool,
    /// The account's villages.
    pub villages: BTreeSet<String>,
}

/// Why a witnessed claim cannot register its key in `class` (checked by phones and the server
/// alike), or `None`. `witness` is the witness phone as the checker knows it.
pub fn witness_problem(
    w: &Witnessed,
    class: &Class,
    witness: Option<&Signer>,
) -> Option<&'static str> {
    if !w.claim.verifies() {
        return Some("the trainee phone's claim does not verify");
    }
    if w.class != class.id {
        return Some("the witness signed for another class");
    }
    if !class.roster.contains_key(&w.claim.trainee) {
        return Some("the trainee is not on the class's roster");
    }
    let Some(witness) = witness else {
        return Some("the witness's phone is not an enrolled phone");
    };
    if !w.verifies_with(&witness.public_key) {
        return Some("the witness's signature does not verify");
    }
    if !witness.instructor {
        return Some("the witness is not an instructor");
    }
    if !class.instructor_accounts.contains(&witness.account) {
        return Some("the witness is not an instructor of this class");
    }
    if !witness.villages.contains(class.village.as_str()) {
        return Some("the witness does not work in the class's village");
    }
    None
}

/// Why a registration filed in `class` does not register its key, or the witnessed claim it
/// holds. `signer` looks up an enrolled phone.
pub fn registration_problem(
    reg: &Registration,
    class: &Class,
    mut signer: impl FnMut(DeviceId) -> Option<Signer>,
) -> std::result::Result<Witnessed, &'static str> {
    let Some(w) = reg.witnessed() else {
        return Err("the witnessed claim cannot be read");
    };
    let witness = signer(w.witness);
    if let Some(p) = witness_problem(&w, class, witness.as_ref()) {
        return Err(p);
    }
    let Some(registrar) = signer(reg.registrar) else {
        return Err("the filing phone is not an enrolled phone");
    };
    if !reg.registrar_verifies(&registrar.public_key) {
        return Err("the filing phone's signature does not verify");
    }
    if witness.is_some_and(|w| w.account == registrar.account) {
        return Err("the witness and the filing phone belong to the same account");
    }
    if !registrar.villages.contains(class.village.as_str()) {
        return Err("the filing phone's account does not work in the class's village");
    }
    Ok(w)
}

/// The trainee's phone shows its key claim. `trainee` is remembered for the next time; `None`
/// uses the one remembered.
pub fn claim<S: DocStore>(store: &mut S, trainee: Option<TraineeId>) -> Result<KeyClaim> {
    let trainee = remembered_trainee(store, trainee)?;
    let key = crate::device::device_key_or_new(store)?;
    Ok(KeyClaim::sign(&key, trainee))
}

/// What filing a witnessed claim did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationOutcome {
    /// Filed in the class document.
    Registered {
        /// The trainee.
        trainee: TraineeId,
        /// The class.
        class: ClassId,
        /// Where it is filed.
        registration: String,
    },
    /// The class already holds it.
    AlreadyRegistered {
        /// The trainee.
        trainee: TraineeId,
        /// The class.
        class: ClassId,
    },
}

fn corrupt() -> Error {
    Error::Schema {
        doc: crate::ids::DocId::from(ClassId::from(uuid::Uuid::nil())),
        path: format!("meta.{META_INSTRUCTORS}"),
    }
}

impl<S: DocStore> Phone<S> {
    /// The instructors of this phone's villages, as the server last sent them.
    pub fn instructors(&self) -> Result<InstructorSet> {
        match self.store.meta(META_INSTRUCTORS)? {
            None => Ok(InstructorSet::default()),
            Some(j) => serde_json::from_str(&j).map_err(|_| corrupt()),
        }
    }

    /// Keeps the instructors as the server sent them.
    pub(crate) fn set_instructors(&mut self, set: &InstructorSet) -> Result<()> {
        let json = serde_json::to_string(set).map_err(|_| corrupt())?;
        self.store.set_meta(&[(META_INSTRUCTORS, &json)])
    }

    /// An enrolled phone as this phone knows it: itself, or an instructor's phone of its villages.
    fn signer(&mut self, set: &InstructorSet, device: DeviceId) -> Result<Option<Signer>> {
        if let Some((i, d)) = set.by_device(device.uuid()) {
            return Ok(Some(Signer {
                account: i.account.clone(),
                public_key: d.public_key.clone(),
                instructor: true,
                villages: i.villages.iter().cloned().collect(),
            }));
        }
        if device == self.profile().device {
            let key = crate::device::device_key_or_new(&mut self.store)?;
            return Ok(Some(Signer {
                account: format!("device:{device}"),
                public_key: key.public_key(),
                instructor: false,
                villages: self
                    .profile()
                    .villages
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
            }));
        }
        Ok(None)
    }

    /// This phone's key claim, as [`claim`] makes it on a bare store.
    pub fn key_claim(&mut self, trainee: Option<TraineeId>) -> Result<KeyClaim> {
        claim(&mut self.store, trainee)
    }

    /// The instructor accounts a class names.
    pub fn class_instructor_accounts(&mut self, class: ClassId) -> Result<BTreeSet<String>> {
        self.class_row_or_err(class)?;
        Ok(self.class_plan(class)?.instructor_accounts)
    }

    fn class_plan(&mut self, class: ClassId) -> Result<Class> {
        let d = self
            .doc(class.into())?
            .ok_or_else(|| Error::from(Invalid::new(Field::Class, Problem::NotFound)))?;
        Ok(crate::doc::class::read_plan(d, class)?.0)
    }

    /// On an instructor's phone: witnesses the key claim of a trainee standing in front of the
    /// instructor, for a class whose instructors include this phone's account.
    pub fn witness(
        &mut self,
        claim_text: &str,
        class: ClassId,
        day: NaiveDate,
    ) -> Result<Witnessed> {
        let claim = match super::scan(claim_text)? {
            super::Scanned::KeyClaim(c) => c,
            other => {
                return Err(QrError::WrongKind {
                    expected: "a trainee phone's key claim",
                    found: super::signin::what(&other),
                }
                .into());
            }
        };
        let row = self.class_row_or_err(class)?;
        if row.status.is_final() {
            return Err(Invalid::new(Field::Class, Problem::ClassIsFinal).into());
        }
        let plan = self.class_plan(class)?;
        let set = self.instructors()?;
        let me = self.profile().device;
        let assigned = set
            .by_device(me.uuid())
            .is_some_and(|(i, _)| plan.instructor_accounts.contains(&i.account));
        if !assigned {
            return Err(QrError::NotAnInstructorHere.into());
        }
        if !plan.roster.contains_key(&claim.trainee) {
            return Err(Invalid::new(Field::Trainee, Problem::NotEnrolled).into());
        }
        let key = crate::device::device_key_or_new(&mut self.store)?;
        Ok(Witnessed::sign(&key, claim, class, day, me))
    }

    /// On the coordinator's phone: files a witnessed key claim in its class document. Refused,
    /// with the reason, when the server would not take it.
    pub fn register_key(&mut self, witnessed_text: &str) -> Result<RegistrationOutcome> {
        let w = match super::scan(witnessed_text)? {
            super::Scanned::Witnessed(w) => w,
            other => {
                return Err(QrError::WrongKind {
                    expected: "a witnessed key claim",
                    found: super::signin::what(&other),
                }
                .into());
            }
        };
        let row = self.class_row_or_err(w.class)?;
        if row.status.is_final() {
            return Err(Invalid::new(Field::Class, Problem::ClassIsFinal).into());
        }
        let plan = self.class_plan(w.class)?;
        let id = w.id();
        if plan.registrations.contains_key(&id) {
            return Ok(RegistrationOutcome::AlreadyRegistered {
                trainee: w.claim.trainee,
                class: w.class,
            });
        }
        let me = self.profile().device;
        let key = crate::device::device_key_or_new(&mut self.store)?;
        let reg = Registration::sign(&key, w.to_bytes(), me, self.now_ms());
        let set = self.instructors()?;
        let mut known = std::collections::HashMap::new();
        for d in [w.witness, me] {
            known.insert(d, self.signer(&set, d)?);
        }
        if let Err(why) = registration_problem(&reg, &plan, |d| known.get(&d).cloned().flatten()) {
            return Err(QrError::NotRegistrable(why).into());
        }
        let (_, chunk) = self.change(w.class.into(), |tx| {
            crate::doc::class::add_registration(tx, &id, &reg)
        })?;
        self.commit(vec![(w.class.into(), chunk)], true)?;
        Ok(RegistrationOutcome::Registered {
            trainee: w.claim.trainee,
            class: w.class,
            registration: id,
        })
    }

    /// Whether this phone holds a registration of `public_key` to `trainee` that the checks it
    /// can run take (in any of the trainee's classes on this phone). The server decides; this is
    /// what the phone can tell the coordinator at once.
    pub fn key_registered(&mut self, trainee: TraineeId, public_key: &[u8]) -> Result<bool> {
        let set = self.instructors()?;
        let classes: Vec<ClassId> = self
            .store
            .classes_of_trainee(trainee)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        for class in classes {
            let plan = self.class_plan(class)?;
            for reg in plan.registrations.values() {
                let Some(w) = reg.witnessed() else { continue };
                if w.claim.trainee != trainee || w.claim.public_key[..] != public_key[..] {
                    continue;
                }
                let witness = self.signer(&set, w.witness)?;
                if witness_problem(&w, &plan, witness.as_ref()).is_none() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

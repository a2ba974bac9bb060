//! Attendance on the server: the district's card keys and the cards it signs (`cards`), and the
//! checks every attendance record meets when it arrives (`checks`; ADR 0004).
//!
//! Phones check proofs before they record a sign-in; the server checks them all again, because a
//! phone may be modified. A record whose proof fails is kept (nothing a phone wrote is dropped) but
//! flagged and never paid. Records that look wrong are flagged for the district's review and wait
//! for it before they are paid:
//!
//! | flag | when |
//! |---|---|
//! | `invalid_proof` | a signature fails, a code names another class, day, phone or trainee, a card key is withdrawn |
//! | `replayed` | the same trainee response proves several records (all of them are flagged) |
//! | `time_unverified` | the phone restarted since its last sync, so its clock's offset is unknown |
//! | `outside_hours` | the corrected time is not on the training day, or far outside the class's hours |
//! | `two_venues` | the same person signed in at another class's venue too soon to have travelled |
//! | `phone_many_trainees` | one trainee phone answered for more than two trainees in a day |
//! | `far_from_venue` | the phone's GPS fix is more than 1 km (plus its accuracy) from the venue |
//! | `too_fast` | five sign-ins on one phone within 8 s: faster than people queue |
//! | `clock_mismatch` | the phone's clock was more than 10 minutes off (informational) |
//! | `unregistered_key` | a response signed by a key not registered to its trainee in person (ADR 0007) |
//! | `relayed` | the trainee phone's own fix was more than 1 km (plus both fixes' accuracy, 500 m each at most) from the recording phone's (or the venue's) |
//! | `card_unwitnessed` | a card scan no instructor of the class scanned too, past `[signin] card_share_percent` of the sign-in's trainees paid by phone or on cards |
//!
//! Trainee keys and card co-signatures are in `witness`: a registration or a co-signature that
//! arrives after the records it vouches for lifts their flag (within the class document it
//! arrives in).

mod cards;
mod checks;
#[cfg(test)]
mod tests;
mod witness;

pub(crate) use cards::card_key_set;
pub(crate) use cards::{class_village, roster, rotate_card_key, sign_cards};
pub(crate) use checks::check_class;
#[cfg(test)]
pub(crate) use checks::checked;
pub(crate) use checks::flags;
pub use checks::{Checked, Flag};

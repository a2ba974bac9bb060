//! The district office's review decisions, kept in the document they are about, under
//! `reviews.<subject>`, so they sync to every phone like any other change.
//!
//! A subject is an attendance record's id (a flagged sign-in) or `conflict:<path>` (a register that
//! holds several values). Each decision is a map of `decision`, `reason`, `reviewer` and `at_ms`.
//! Deciding again replaces the earlier decision; two offices deciding at once leave a conflict with a
//! deterministic winner, reported like any other.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use serde::Serialize;

use super::{Reader, Shown, as_ms, ensure_map};
use crate::error::Result;
use crate::ids::DocId;
use crate::validate::{Field, Invalid, Problem};

/// Longest reason kept, in characters.
pub const REASON_MAX_CHARS: usize = 500;
/// Shortest reason accepted, in characters: a word of explanation, not a keystroke.
pub const REASON_MIN_CHARS: usize = 2;
/// The prefix of a conflict's subject.
pub const CONFLICT_PREFIX: &str = "conflict:";

/// Accept or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// What was flagged is right: a held sign-in counts again.
    Accepted,
    /// What was flagged is wrong: the sign-in never counts.
    Rejected,
}

impl Decision {
    /// The stored code.
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
        }
    }

    /// Parses a stored code.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(Decision::Accepted),
            "rejected" => Some(Decision::Rejected),
            _ => None,
        }
    }
}

/// One review decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Review {
    /// Accept or reject.
    pub decision: Decision,
    /// Why, in the reviewer's words.
    pub reason: String,
    /// Who decided (the district account's username).
    pub reviewer: String,
    /// When (server clock, ms).
    pub at_ms: i64,
}

impl Review {
    /// A decision with its reason checked: trimmed, at least [`REASON_MIN_CHARS`] and at most
    /// [`REASON_MAX_CHARS`] characters.
    pub fn new(
        decision: Decision,
        reason: &str,
        reviewer: &str,
        at_ms: i64,
    ) -> std::result::Result<Self, Invalid> {
        let reason = crate::validate::clean_text(reason);
        let n = reason.chars().count();
        if n == 0 {
            return Err(Invalid::new(Field::Reason, Problem::Missing));
        }
        if n < REASON_MIN_CHARS {
            return Err(Invalid::new(Field::Reason, Problem::OutOfRange));
        }
        if n > REASON_MAX_CHARS {
            return Err(Invalid::new(
                Field::Reason,
                Problem::TooLong {
                    max_chars: REASON_MAX_CHARS,
                },
            ));
        }
        Ok(Self {
            decision,
            reason,
            reviewer: reviewer.to_owned(),
            at_ms,
        })
    }
}

/// Writes `review` for `subject` (replacing an earlier decision).
pub fn put(tx: &mut impl Transactable, subject: &str, review: &Review) -> Result<()> {
    let reviews = ensure_map(tx, &ROOT, "reviews")?;
    let entry = ensure_map(tx, &reviews, subject)?;
    tx.put(&entry, "decision", review.decision.code())?;
    tx.put(&entry, "reason", review.reason.as_str())?;
    tx.put(&entry, "reviewer", review.reviewer.as_str())?;
    tx.put(
        &entry,
        "at_ms",
        automerge::ScalarValue::Timestamp(review.at_ms),
    )?;
    Ok(())
}

/// Every decision in the document, by subject.
pub fn read(doc: &Automerge, id: DocId) -> Result<BTreeMap<String, Review>> {
    let header = super::read_header(doc, id)?;
    let mut r = Reader::new(doc, id, header.kind);
    let mut out = BTreeMap::new();
    let Some(reviews) = r.map(&ROOT, "reviews", "reviews")? else {
        return Ok(out);
    };
    for subject in r.keys(&reviews) {
        let path = format!("reviews.{subject}");
        let Some(entry) = r.map(&reviews, &subject, &path)? else {
            continue;
        };
        let decision = r.req_str(&entry, "decision", &format!("{path}.decision"))?;
        let decision = Decision::parse(&decision)
            .ok_or_else(|| r.schema_error(&format!("{path}.decision")))?;
        let reason = r.req_str(&entry, "reason", &format!("{path}.reason"))?;
        let reviewer = r.req_str(&entry, "reviewer", &format!("{path}.reviewer"))?;
        let at_ms = r
            .opt(
                &entry,
                "at_ms",
                &format!("{path}.at_ms"),
                as_ms,
                Shown::Plain,
            )?
            .ok_or_else(|| r.schema_error(&format!("{path}.at_ms")))?;
        out.insert(
            subject,
            Review {
                decision,
                reason,
                reviewer,
                at_ms,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;

    use super::*;
    use crate::doc::{DocKind, Header, write_header};
    use crate::ids::{DistrictCode, VillageCode};

    fn doc() -> (Automerge, DocId) {
        let id = DocId::from(crate::ids::ClassId::random());
        let mut d = Automerge::new();
        let mut tx = d.transaction();
        write_header(
            &mut tx,
            &Header {
                id,
                kind: DocKind::Class,
                district: DistrictCode::parse("450802").expect("district"),
                village: VillageCode::parse("450802101201").expect("village"),
            },
        )
        .expect("header");
        tx.commit();
        (d, id)
    }

    #[test]
    fn a_decision_reads_back_and_a_later_one_replaces_it() {
        let (mut d, id) = doc();
        assert!(read(&d, id).expect("read").is_empty());
        let first = Review::new(Decision::Accepted, "  核实无误 ", "admin", 5).expect("review");
        assert_eq!(first.reason, "核实无误");
        let mut tx = d.transaction();
        put(&mut tx, "a1", &first).expect("put");
        tx.commit();
        assert_eq!(read(&d, id).expect("read").get("a1"), Some(&first));
        let second = Review::new(Decision::Rejected, "冒签", "admin2", 9).expect("review");
        let mut tx = d.transaction();
        put(&mut tx, "a1", &second).expect("put");
        tx.commit();
        let all = read(&d, id).expect("read");
        assert_eq!(all.len(), 1);
        assert_eq!(all.get("a1"), Some(&second));
    }

    #[test]
    fn reasons_are_checked() {
        for (reason, problem) in [
            ("", Problem::Missing),
            ("   ", Problem::Missing),
            ("好", Problem::OutOfRange),
            (
                &"长".repeat(REASON_MAX_CHARS + 1)[..],
                Problem::TooLong {
                    max_chars: REASON_MAX_CHARS,
                },
            ),
        ] {
            let e = Review::new(Decision::Accepted, reason, "admin", 0).expect_err(reason);
            assert_eq!((e.field, e.problem), (Field::Reason, problem), "{reason:?}");
        }
        assert!(Review::new(Decision::Accepted, &"长".repeat(REASON_MAX_CHARS), "a", 0).is_ok());
    }

    #[test]
    fn a_decision_of_the_wrong_type_is_a_schema_error() {
        let (mut d, id) = doc();
        let mut tx = d.transaction();
        let reviews = ensure_map(&mut tx, &ROOT, "reviews").expect("map");
        let e = ensure_map(&mut tx, &reviews, "a1").expect("map");
        tx.put(&e, "decision", "maybe").expect("put");
        tx.commit();
        assert!(read(&d, id).is_err());
    }
}

//! A person's erasure (reliability row J3): the district office erases a trainee's personal data
//! on request. The trainee's document — and their household's, when no other trainee belongs to
//! it — is emptied on the server, and every phone that holds it removes its copy at its next sync;
//! a phone that edited it meanwhile loses the edit, and its push is refused, so the data never
//! comes back. What the subsidy accounting needs stays under the trainee's random id: attendance,
//! subsidy decisions, the household's poverty status (the allowance of days already recorded) and
//! the blind index (the yearly cap counts a person across villages); a lookup by ID number no
//! longer finds the person. The audit keeps who erased which document, when and why, and nothing
//! of the data.

use songpei_core::ids::{DocId, HouseholdId, TraineeId};

use crate::accounts::AccountError;
use crate::accounts::audit::Entry;
use crate::args;
use crate::db::DbError;
use crate::store::ServerStore;

/// Erases the trainee `trainee` (its id) for `by` (`account:NAME` or `admin-cli`), who gives
/// `reason`. Returns the documents erased.
pub fn erase_trainee(
    store: &mut ServerStore,
    trainee: &str,
    by: &str,
    reason: &str,
) -> Result<Vec<DocId>, AccountError> {
    let reason = songpei_core::validate::clean_text(reason);
    if reason.chars().count() < 4 {
        return Err(AccountError::Invalid {
            field: "reason",
            problem: "say why the data is erased (at least 4 characters)",
        });
    }
    let tid: TraineeId = trainee.trim().parse().map_err(|_| AccountError::Invalid {
        field: "trainee",
        problem: "is not a trainee id",
    })?;
    let id = DocId::from(tid);
    let household = {
        let Some(doc) = store.doc(id)? else {
            return Err(AccountError::NotFound("trainee (or erased already)"));
        };
        let (t, _) = songpei_core::doc::trainee::read(&doc.doc, tid)
            .map_err(|_| AccountError::NotFound("trainee (or erased already)"))?;
        t.household
    };
    let mut ids = vec![id];
    if let Some(h) = household
        && only_member(store, h, tid)?
    {
        ids.push(DocId::from(h));
    }
    let entry = Entry::new(
        by.to_owned(),
        "erase_personal",
        id.to_string(),
        serde_json::json!({
            "reason": reason,
            "docs": ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    );
    store.erase(&ids, &[entry], chrono::Utc::now().timestamp_millis())?;
    Ok(ids)
}

/// Whether `trainee` is the only trainee of the household the server knows of.
fn only_member(
    store: &ServerStore,
    household: HouseholdId,
    trainee: TraineeId,
) -> Result<bool, DbError> {
    let others: i64 = store.conn().query_row(
        "SELECT COUNT(*) FROM p_trainees WHERE household = ?1 AND id <> ?2",
        args![household.to_string(), trainee.to_string()],
        |r| r.get(0),
    )?;
    Ok(others == 0)
}

//! The district's card keys (made, rotated, published to phones) and the trainee cards signed
//! with them.

use crate::args;
use crate::db::{DbError, Sql, Transact};
use songpei_core::device::DeviceKey;
use songpei_core::ids::{DistrictCode, TraineeId};
use songpei_core::qr::Card;
use songpei_core::sync::protocol::{CardKey, CardKeySet};

/// The district's card keys as phones receive them.
pub(crate) fn card_key_set(db: &dyn Sql) -> Result<CardKeySet, DbError> {
    let keys = db.query_map(
        "SELECT id, public_key, revoked_at FROM card_keys ORDER BY id",
        &[],
        |r| {
            Ok(CardKey {
                id: r.get::<i64>(0)? as u32,
                public_key: r.get(1)?,
                revoked: r.get::<Option<i64>>(2)?.is_some(),
            })
        },
    )?;
    let version = keys.len() as u32 + keys.iter().filter(|k| k.revoked).count() as u32;
    Ok(CardKeySet { version, keys })
}

/// The key cards are signed with now, made if the district has none.
fn current_key(db: &dyn Sql, now_ms: i64) -> Result<(u32, DeviceKey), DbError> {
    let row: Option<(i64, Vec<u8>)> = db.query_opt(
        "SELECT id, secret FROM card_keys WHERE revoked_at IS NULL ORDER BY id DESC LIMIT 1",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((id, secret)) = row
        && let Some(k) = DeviceKey::from_secret(&secret)
    {
        return Ok((id as u32, k));
    }
    let k = DeviceKey::generate();
    let id: i64 = db.query_row(
        "INSERT INTO card_keys (public_key, secret, created_at) VALUES (?1, ?2, ?3) RETURNING id",
        args![k.public_key(), k.secret().to_vec(), now_ms],
        |r| r.get(0),
    )?;
    Ok((id as u32, k))
}

/// Withdraws the key in use and makes a new one: cards already printed stop working.
pub(crate) fn rotate_card_key(db: &mut impl Transact, now_ms: i64) -> Result<u32, DbError> {
    db.transaction(|tx| {
        tx.execute(
            "UPDATE card_keys SET revoked_at = ?1 WHERE revoked_at IS NULL",
            args![now_ms],
        )?;
        let (id, _) = current_key(tx, now_ms)?;
        crate::accounts::audit::append(
            tx,
            now_ms,
            &[crate::accounts::audit::Entry::new(
                "admin",
                "rotate_card_key",
                id.to_string(),
                serde_json::json!({}),
            )],
        )?;
        Ok(id)
    })
}

/// Signs a card for each trainee.
pub(crate) fn sign_cards(
    db: &dyn Sql,
    district: &DistrictCode,
    trainees: &[TraineeId],
    now_ms: i64,
) -> Result<Vec<Card>, DbError> {
    let (id, key) = current_key(db, now_ms)?;
    let today = songpei_core::clock::local_date(now_ms);
    Ok(trainees
        .iter()
        .map(|t| Card::sign(&key, district.clone(), id, *t, today))
        .collect())
}

/// The trainees on a class's roster, as the server has it, with their masked names.
pub(crate) fn roster(db: &dyn Sql, class: &str) -> Result<Vec<(TraineeId, String)>, DbError> {
    let rows = db.query_map(
        "SELECT e.trainee_id, COALESCE(t.name_masked, '') FROM p_enrolments e
         LEFT JOIN p_trainees t ON t.id = e.trainee_id WHERE e.class_id = ?1 ORDER BY e.trainee_id",
        args![class],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(t, n)| t.parse().ok().map(|t| (t, n)))
        .collect())
}

/// The village of a class, if the server has it.
pub(crate) fn class_village(db: &dyn Sql, class: &str) -> Result<Option<String>, DbError> {
    db.query_opt(
        "SELECT village FROM p_classes WHERE id = ?1",
        args![class],
        |r| r.get(0),
    )
}

//! The change feed: one monotonic sequence per village of the documents merged (and of the classes
//! whose pay changed, ADR 0006), the heads each entry left, and the checks phones' cursors carry.

use automerge::ChangeHash;
use songpei_core::ids::DocId;

use super::ServerStore;
use crate::args;
use crate::db::{DbError, Sql};

/// Appends a feed entry for document `id` of `village` with its `heads`. The village's row stays
/// locked to the commit: merges of one village take their feed numbers in commit order, so a
/// reader never sees a later one first.
pub(super) fn append_feed(
    tx: &dyn Sql,
    village: &str,
    id: &str,
    heads: &[u8],
) -> Result<(), DbError> {
    let feed_seq: i64 = tx.query_row(
        "INSERT INTO villages (code, last_seq) VALUES (?1, 1)
         ON CONFLICT (code) DO UPDATE SET last_seq = villages.last_seq + 1
         RETURNING last_seq",
        args![village],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO feed (village, seq, doc_id, heads) VALUES (?1, ?2, ?3, ?4)",
        args![village, feed_seq, id, heads],
    )?;
    Ok(())
}

/// Gives each class in `classes` a feed entry at its current heads: its document did not change,
/// but what the district pays for it did, and phones receive a class's pay with its feed entry.
pub(super) fn touch(
    tx: &dyn Sql,
    classes: &std::collections::BTreeSet<String>,
) -> Result<(), DbError> {
    for class in classes {
        let row: Option<(String, Vec<u8>)> = tx.query_opt(
            "SELECT village, heads FROM docs WHERE id = ?1 AND erased_at IS NULL",
            args![class],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some((village, heads)) = row {
            append_feed(tx, &village, class, &heads)?;
        }
    }
    Ok(())
}

/// A feed entry's check: the first four bytes of SHA-256 over its document id and heads.
pub(crate) fn entry_tag(doc: &str, heads: &[u8]) -> u32 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(doc.as_bytes());
    h.update(heads);
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

pub(crate) fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

pub(crate) fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| ChangeHash::try_from(c).ok())
        .collect()
}

impl ServerStore {
    /// Documents changed in `village` after `cursor`, with the sequence of their last change, in
    /// feed order.
    pub(crate) fn feed_since(
        &self,
        village: &str,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<(DocId, u64)>, DbError> {
        let rows = self.conn().query_map(
            "SELECT doc_id, max(seq) AS last FROM feed WHERE village = ?1 AND seq > ?2
             GROUP BY doc_id ORDER BY last LIMIT ?3",
            args![village, cursor, limit],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, seq)| Some((id.parse().ok()?, u64::try_from(seq).ok()?)))
            .collect())
    }

    /// The heads a document had at `cursor` in a village's feed: what a phone at that cursor has.
    pub(crate) fn heads_at(
        &self,
        village: &str,
        doc: DocId,
        cursor: u64,
    ) -> Result<Vec<ChangeHash>, DbError> {
        let heads: Option<Vec<u8>> = self.conn().query_opt(
            "SELECT heads FROM feed WHERE village = ?1 AND doc_id = ?2 AND seq <= ?3
             ORDER BY seq DESC LIMIT 1",
            args![village, doc.to_string(), cursor],
            |r| r.get(0),
        )?;
        Ok(heads.map(|h| decode_heads(&h)).unwrap_or_default())
    }

    /// The check of the feed entry at `seq` (see [`entry_tag`]), or `None` if there is none.
    pub(crate) fn feed_tag(&self, village: &str, seq: u64) -> Result<Option<u32>, DbError> {
        let row: Option<(String, Vec<u8>)> = self.conn().query_opt(
            "SELECT doc_id, heads FROM feed WHERE village = ?1 AND seq = ?2",
            args![village, seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(row.map(|(doc, heads)| entry_tag(&doc, &heads)))
    }
}

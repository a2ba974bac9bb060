//! Inspecting untrusted change bytes before automerge sees them.
//!
//! A push carries raw automerge change chunks (`magic, checksum, type, length, data`). Only plain
//! change chunks are accepted: document chunks and deflate-compressed change chunks can expand far
//! beyond their size on load (a 32 KB document can become gigabytes), and a phone never sends them.
//! Each chunk is parsed for its header — hash, dependencies, operation count — so that the caps on
//! changes and operations are checked before anything is applied.

use automerge::{Change, ChangeHash};

/// Magic bytes of an automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk type of a plain change.
const CHUNK_CHANGE: u8 = 1;

/// Why change bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangesError {
    /// Not a sequence of automerge change chunks.
    #[error("the changes are not valid automerge change chunks")]
    Malformed,
    /// A document or compressed chunk where only plain changes are allowed.
    #[error("only uncompressed change chunks are accepted")]
    NotPlainChanges,
    /// More changes than allowed.
    #[error("more than {cap} changes")]
    TooManyChanges {
        /// The cap.
        cap: usize,
    },
    /// More operations than allowed.
    #[error("more than {cap} operations")]
    TooManyOps {
        /// The cap.
        cap: u64,
    },
}

impl ChangesError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ChangesError::Malformed => "malformed_changes",
            ChangesError::NotPlainChanges => "compressed_changes",
            ChangesError::TooManyChanges { .. } => "too_many_changes",
            ChangesError::TooManyOps { .. } => "too_many_ops",
        }
    }
}

/// Limits on what one batch of change bytes may hold.
#[derive(Clone, Copy, Debug)]
pub struct ChangeCaps {
    /// Changes.
    pub max_changes: usize,
    /// Operations, summed over the changes.
    pub max_ops: u64,
}

/// Parsed change chunks with their totals.
#[derive(Debug, Default)]
pub struct ParsedChanges {
    /// The changes, in the order sent.
    pub changes: Vec<Change>,
    /// Total operations.
    pub ops: u64,
}

impl ParsedChanges {
    /// Hashes of the changes.
    pub fn hashes(&self) -> Vec<ChangeHash> {
        self.changes.iter().map(Change::hash).collect()
    }

    /// The heads of a document that had `base` and then these changes: every hash of either that
    /// no change depends on, sorted.
    pub fn tips(&self, base: &[ChangeHash]) -> Vec<ChangeHash> {
        let deps: std::collections::HashSet<ChangeHash> = self
            .changes
            .iter()
            .flat_map(|c| c.deps().iter().copied())
            .collect();
        let mut tips: Vec<ChangeHash> = base
            .iter()
            .copied()
            .chain(self.changes.iter().map(Change::hash))
            .filter(|h| !deps.contains(h))
            .collect();
        tips.sort();
        tips.dedup();
        tips
    }
}

fn read_uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits concatenated change chunks and parses each, enforcing `caps` as it goes.
pub fn parse_changes(bytes: &[u8], caps: ChangeCaps) -> Result<ParsedChanges, ChangesError> {
    let mut out = ParsedChanges::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 9 || rest[..4] != MAGIC {
            return Err(ChangesError::Malformed);
        }
        if rest[8] != CHUNK_CHANGE {
            return Err(ChangesError::NotPlainChanges);
        }
        let (len, leb) = read_uleb(&rest[9..]).ok_or(ChangesError::Malformed)?;
        let header = 9 + leb;
        let total = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(header))
            .filter(|t| *t <= rest.len())
            .ok_or(ChangesError::Malformed)?;
        if out.changes.len() >= caps.max_changes {
            return Err(ChangesError::TooManyChanges {
                cap: caps.max_changes,
            });
        }
        let change =
            Change::from_bytes(rest[..total].to_vec()).map_err(|_| ChangesError::Malformed)?;
        // The checksum is the first four bytes of the change's hash; automerge does not check it
        // when parsing, so a flipped bit would otherwise pass as another change.
        if change.hash().0[..4] != rest[4..8] {
            return Err(ChangesError::Malformed);
        }
        out.ops = out.ops.saturating_add(change.len() as u64);
        if out.ops > caps.max_ops {
            return Err(ChangesError::TooManyOps { cap: caps.max_ops });
        }
        out.changes.push(change);
        rest = &rest[total..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    use super::*;

    const CAPS: ChangeCaps = ChangeCaps {
        max_changes: 100,
        max_ops: 10_000,
    };

    fn doc_with_changes(n: usize) -> Automerge {
        let mut d = Automerge::new();
        for i in 0..n {
            let mut tx = d.transaction();
            tx.put(ROOT, format!("k{i}"), i as i64).ok();
            tx.commit();
        }
        d
    }

    #[test]
    fn splits_what_save_after_makes() {
        let d = doc_with_changes(5);
        let bytes = d.save_after(&[]);
        let parsed = parse_changes(&bytes, CAPS).expect("valid");
        assert_eq!(parsed.changes.len(), 5);
        assert_eq!(parsed.ops, 5);
        assert_eq!(parsed.tips(&[]), d.get_heads());
        let mut other = Automerge::new();
        other.apply_changes(parsed.changes).expect("apply");
        assert_eq!(other.get_heads(), d.get_heads());
        // Changes since the third: the tips are the document's heads again.
        let base = vec![
            parse_changes(&d.save_after(&[]), CAPS)
                .expect("valid")
                .changes[2]
                .hash(),
        ];
        let later = parse_changes(&d.save_after(&base), CAPS).expect("valid");
        assert_eq!(later.changes.len(), 2);
        assert_eq!(later.tips(&base), d.get_heads());
        assert_eq!(ParsedChanges::default().tips(&base), base);
        assert!(parse_changes(&[], CAPS).expect("empty").changes.is_empty());
    }

    #[test]
    fn refusals() {
        let d = doc_with_changes(3);
        let bytes = d.save_after(&[]);
        assert_eq!(
            parse_changes(
                &bytes,
                ChangeCaps {
                    max_changes: 2,
                    max_ops: 100
                }
            )
            .err(),
            Some(ChangesError::TooManyChanges { cap: 2 })
        );
        assert_eq!(
            parse_changes(
                &bytes,
                ChangeCaps {
                    max_changes: 10,
                    max_ops: 2
                }
            )
            .err(),
            Some(ChangesError::TooManyOps { cap: 2 })
        );
        // A whole document is not accepted as changes.
        assert_eq!(
            parse_changes(&d.save(), CAPS).err(),
            Some(ChangesError::NotPlainChanges)
        );
        // Truncation, a flipped bit, random bytes, a length past the end.
        assert_eq!(
            parse_changes(&bytes[..bytes.len() - 1], CAPS).err(),
            Some(ChangesError::Malformed)
        );
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x10;
        assert!(parse_changes(&flipped, CAPS).is_err());
        assert_eq!(
            parse_changes(b"hello world", CAPS).err(),
            Some(ChangesError::Malformed)
        );
        let mut long = bytes[..9].to_vec();
        long.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            parse_changes(&long, CAPS).err(),
            Some(ChangesError::Malformed)
        );
    }

    #[test]
    fn every_single_bit_flip_of_a_change_is_refused() {
        let d = doc_with_changes(1);
        let bytes = d.save_after(&[]);
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                parse_changes(&b, CAPS).is_err(),
                "bit {i} flipped was accepted"
            );
        }
    }
}

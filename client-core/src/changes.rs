//! Change bytes on the wire, and inspecting untrusted ones before automerge sees them.
//!
//! Automerge stores a change as a chunk: `magic, checksum, type, length, data`, where `data` starts
//! with the hashes of the changes it depends on. A phone records every sign-in as its own change,
//! so in a day's upload most bytes of those chunks would be 32-byte dependency hashes and 4-byte
//! checksums, which no compressor can shrink. On the wire changes therefore travel *packed*:
//!
//! ```text
//! packed  = change*
//! change  = uleb(deps) dep* uleb(len) rest      ; rest: the chunk's data after its dependencies
//! dep     = uleb(0) hash[32]                    ; a change named by its hash
//!         | uleb(k)                             ; k >= 1: the k-th latest of `known` + earlier changes
//! ```
//!
//! `known` is what both sides already share for the document (a push's `base`). The receiver rebuilds
//! each chunk byte for byte — the same hash, so automerge sees exactly the change the sender made —
//! and integrity in transit is the zstd frame checksum of the whole message.
//!
//! Only plain change chunks exist in this form: document chunks and deflate-compressed change
//! chunks can expand far beyond their size on load (a 32 KB document can become gigabytes). Each
//! change is parsed for its header — hash, dependencies, operation count — so that the caps on
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
    /// Rebuilt, the changes would take more bytes than allowed.
    #[error("the changes unpack to more than {cap} bytes")]
    TooLarge {
        /// The cap in bytes.
        cap: usize,
    },
    /// Operations songpei's documents never hold (rich-text marks).
    #[error("the changes hold rich-text marks, which songpei's documents never use")]
    UnsupportedOperation,
}

impl ChangesError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ChangesError::Malformed => "malformed_changes",
            ChangesError::NotPlainChanges => "compressed_changes",
            ChangesError::TooManyChanges { .. } => "too_many_changes",
            ChangesError::TooManyOps { .. } => "too_many_ops",
            ChangesError::TooLarge { .. } => "document_too_large",
            ChangesError::UnsupportedOperation => "unsupported_operation",
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
    /// Bytes of the rebuilt change chunks, summed (a one-byte reference stands for a 32-byte hash).
    pub max_bytes: usize,
}

impl ChangeCaps {
    /// No caps: for changes this side made or already holds.
    pub const NONE: ChangeCaps = ChangeCaps {
        max_changes: usize::MAX,
        max_ops: u64::MAX,
        max_bytes: usize::MAX,
    };
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

fn write_uleb(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a ULEB128 number and its length in bytes.
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

/// Refuses a change that holds rich-text marks. songpei's documents never use them, and automerge
/// 0.12 can abort the whole process (a panic while unwinding, which nothing can catch) applying
/// crafted mark operations (`fuzz/regressions/changes/automerge-nounwind`): they must never reach
/// it.
fn screen(change: &Change) -> Result<(), ChangesError> {
    use automerge::legacy::OpType;
    let expanded =
        crate::contain::contained(|| change.decode()).map_err(|_| ChangesError::Malformed)?;
    if expanded
        .operations
        .iter()
        .any(|op| matches!(op.action, OpType::MarkBegin(_) | OpType::MarkEnd(_)))
    {
        return Err(ChangesError::UnsupportedOperation);
    }
    Ok(())
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
        let change = crate::contain::contained(|| Change::from_bytes(rest[..total].to_vec()))
            .ok()
            .and_then(Result::ok)
            .ok_or(ChangesError::Malformed)?;
        // The checksum is the first four bytes of the change's hash; automerge does not check it
        // when parsing, so a flipped bit would otherwise pass as another change.
        if change.hash().0[..4] != rest[4..8] {
            return Err(ChangesError::Malformed);
        }
        out.ops = out.ops.saturating_add(change.len() as u64);
        if out.ops > caps.max_ops {
            return Err(ChangesError::TooManyOps { cap: caps.max_ops });
        }
        screen(&change)?;
        out.changes.push(change);
        rest = &rest[total..];
    }
    Ok(out)
}

/// Reads a length-like ULEB128 number that must fit in what is left of `bytes`.
fn take_len(bytes: &[u8]) -> Result<(usize, &[u8]), ChangesError> {
    let (n, used) = read_uleb(bytes).ok_or(ChangesError::Malformed)?;
    let n = usize::try_from(n).map_err(|_| ChangesError::Malformed)?;
    Ok((n, &bytes[used..]))
}

/// Packs concatenated change chunks, as `save_after` makes them, into the wire form, naming
/// dependencies on `known` or on earlier changes of the same batch by position.
pub fn pack(chunks: &[u8], known: &[ChangeHash]) -> Result<Vec<u8>, ChangesError> {
    pack_changes(&parse_changes(chunks, ChangeCaps::NONE)?.changes, known)
}

/// Packs parsed changes into the wire form (see [`pack`]).
pub fn pack_changes(changes: &[Change], known: &[ChangeHash]) -> Result<Vec<u8>, ChangesError> {
    let mut refs: Vec<ChangeHash> = known.to_vec();
    let mut out = Vec::with_capacity(changes.iter().map(|c| c.raw_bytes().len()).sum());
    for change in changes {
        let raw = change.raw_bytes();
        let (_, leb) = read_uleb(&raw[9..]).ok_or(ChangesError::Malformed)?;
        let data = &raw[9 + leb..];
        let (deps, mut rest) = take_len(data)?;
        write_uleb(deps as u64, &mut out);
        for _ in 0..deps {
            let hash: [u8; 32] = rest
                .get(..32)
                .and_then(|h| h.try_into().ok())
                .ok_or(ChangesError::Malformed)?;
            rest = &rest[32..];
            match refs.iter().rposition(|r| r.0 == hash) {
                Some(i) => write_uleb((refs.len() - i) as u64, &mut out),
                None => {
                    out.push(0);
                    out.extend_from_slice(&hash);
                }
            }
        }
        write_uleb(rest.len() as u64, &mut out);
        out.extend_from_slice(rest);
        refs.push(change.hash());
    }
    Ok(out)
}

/// Rebuilds change chunks from the wire form and parses each, enforcing `caps` as it goes.
pub fn unpack(
    bytes: &[u8],
    known: &[ChangeHash],
    caps: ChangeCaps,
) -> Result<ParsedChanges, ChangesError> {
    use sha2::Digest;
    let mut out = ParsedChanges::default();
    let mut refs: Vec<ChangeHash> = known.to_vec();
    let mut rest = bytes;
    let mut rebuilt = 0usize;
    while !rest.is_empty() {
        if out.changes.len() >= caps.max_changes {
            return Err(ChangesError::TooManyChanges {
                cap: caps.max_changes,
            });
        }
        let (deps, after) = take_len(rest)?;
        rest = after;
        // Every dependency takes at least one byte: a count beyond what is left is malformed, and
        // nothing is allocated from it.
        if deps > rest.len() {
            return Err(ChangesError::Malformed);
        }
        let mut data = Vec::new();
        write_uleb(deps as u64, &mut data);
        for _ in 0..deps {
            let (k, after) = take_len(rest)?;
            rest = after;
            if k == 0 {
                let hash = rest.get(..32).ok_or(ChangesError::Malformed)?;
                data.extend_from_slice(hash);
                rest = &rest[32..];
            } else {
                let i = refs.len().checked_sub(k).ok_or(ChangesError::Malformed)?;
                data.extend_from_slice(&refs[i].0);
            }
            if rebuilt.saturating_add(data.len()) > caps.max_bytes {
                return Err(ChangesError::TooLarge {
                    cap: caps.max_bytes,
                });
            }
        }
        let (len, after) = take_len(rest)?;
        let body = after.get(..len).ok_or(ChangesError::Malformed)?;
        rest = &after[len..];
        data.extend_from_slice(body);
        // The chunk adds magic, checksum, type and length to the data.
        rebuilt = rebuilt.saturating_add(data.len() + 18);
        if rebuilt > caps.max_bytes {
            return Err(ChangesError::TooLarge {
                cap: caps.max_bytes,
            });
        }

        let mut framed = vec![CHUNK_CHANGE];
        write_uleb(data.len() as u64, &mut framed);
        framed.extend_from_slice(&data);
        let hash: [u8; 32] = sha2::Sha256::digest(&framed).into();
        let mut chunk = Vec::with_capacity(8 + framed.len());
        chunk.extend_from_slice(&MAGIC);
        chunk.extend_from_slice(&hash[..4]);
        chunk.extend_from_slice(&framed);
        let change = crate::contain::contained(|| Change::from_bytes(chunk))
            .ok()
            .and_then(Result::ok)
            .ok_or(ChangesError::Malformed)?;
        if change.hash().0 != hash {
            return Err(ChangesError::Malformed);
        }
        out.ops = out.ops.saturating_add(change.len() as u64);
        if out.ops > caps.max_ops {
            return Err(ChangesError::TooManyOps { cap: caps.max_ops });
        }
        screen(&change)?;
        refs.push(change.hash());
        out.changes.push(change);
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
        max_bytes: 1 << 20,
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

    /// Two actors editing concurrently, then one merging: changes with two dependencies.
    fn merged_doc() -> Automerge {
        let mut a = doc_with_changes(3);
        let mut b = a.fork();
        for d in [&mut a, &mut b] {
            let mut tx = d.transaction();
            tx.put(ROOT, "same", "x").ok();
            tx.commit();
        }
        a.merge(&mut b).ok();
        let mut tx = a.transaction();
        tx.put(ROOT, "after", 1i64).ok();
        tx.commit();
        a
    }

    fn hashes_of(d: &Automerge) -> Vec<ChangeHash> {
        parse_changes(&d.save_after(&[]), CAPS)
            .expect("valid")
            .hashes()
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
        let base = vec![hashes_of(&d)[2]];
        let later = parse_changes(&d.save_after(&base), CAPS).expect("valid");
        assert_eq!(later.changes.len(), 2);
        assert_eq!(later.tips(&base), d.get_heads());
        assert_eq!(ParsedChanges::default().tips(&base), base);
        assert!(parse_changes(&[], CAPS).expect("empty").changes.is_empty());
    }

    #[test]
    fn pack_and_unpack_rebuild_the_exact_chunks() {
        for (d, linear) in [
            (doc_with_changes(1), true),
            (doc_with_changes(40), true),
            (merged_doc(), false),
        ] {
            let all = hashes_of(&d);
            for cut in [0, all.len() / 2, all.len() - 1] {
                let base: Vec<ChangeHash> = if cut == 0 { vec![] } else { vec![all[cut - 1]] };
                let chunks = d.save_after(&base);
                let packed = pack(&chunks, &base).expect("pack");
                let unpacked = unpack(&packed, &base, CAPS).expect("unpack");
                let rebuilt: Vec<u8> = unpacked
                    .changes
                    .iter()
                    .flat_map(|c| c.raw_bytes().to_vec())
                    .collect();
                assert_eq!(rebuilt, chunks, "byte for byte");
                assert_eq!(unpacked.tips(&base), d.get_heads());
                // No magic, checksum or type byte; in a linear history every dependency is on
                // `known` or inside the batch, and takes one byte instead of 32.
                let n = unpacked.changes.len();
                let deps: usize = unpacked.changes.iter().map(|c| c.deps().len()).sum();
                assert!(packed.len() + 6 * n <= chunks.len(), "smaller");
                if linear {
                    assert!(
                        packed.len() + 8 * n + 31 * deps <= chunks.len(),
                        "much smaller"
                    );
                }
                // Unpacked without `known`, a reference to the base does not resolve.
                if !base.is_empty() {
                    assert_eq!(
                        unpack(&packed, &[], CAPS).err(),
                        Some(ChangesError::Malformed)
                    );
                }
            }
        }
        assert!(pack(&[], &[]).expect("nothing").is_empty());
    }

    #[test]
    fn unpack_refusals() {
        let d = doc_with_changes(3);
        let packed = pack(&d.save_after(&[]), &[]).expect("pack");
        let caps = |max_changes, max_ops, max_bytes| ChangeCaps {
            max_changes,
            max_ops,
            max_bytes,
        };
        // A dependency count beyond the bytes left, a reference past the start, a hash cut short,
        // a length past the end, a body that is not a change, a number that never ends.
        let mut too_many_deps = vec![];
        write_uleb(1_000_000, &mut too_many_deps);
        let mut many_refs = vec![];
        write_uleb(100_000, &mut many_refs);
        many_refs.extend(std::iter::repeat_n(1u8, 100_000));
        let rows: Vec<(&str, Vec<u8>, ChangeCaps, ChangesError)> = vec![
            (
                "too many changes",
                packed.clone(),
                caps(2, 100, 1 << 20),
                ChangesError::TooManyChanges { cap: 2 },
            ),
            (
                "too many operations",
                packed.clone(),
                caps(10, 2, 1 << 20),
                ChangesError::TooManyOps { cap: 2 },
            ),
            (
                "rebuilt beyond the byte cap",
                packed.clone(),
                caps(10, 100, 200),
                ChangesError::TooLarge { cap: 200 },
            ),
            (
                "references that would rebuild into megabytes",
                [
                    pack(&doc_with_changes(1).save_after(&[]), &[]).expect("pack"),
                    many_refs,
                ]
                .concat(),
                caps(10, 100, 1 << 20),
                ChangesError::TooLarge { cap: 1 << 20 },
            ),
            (
                "truncated",
                packed[..packed.len() - 1].to_vec(),
                CAPS,
                ChangesError::Malformed,
            ),
            (
                "dependency count beyond the bytes",
                too_many_deps,
                CAPS,
                ChangesError::Malformed,
            ),
            (
                "reference before the first change",
                vec![1, 1, 0],
                CAPS,
                ChangesError::Malformed,
            ),
            (
                "hash cut short",
                [vec![1, 0], vec![9; 20]].concat(),
                CAPS,
                ChangesError::Malformed,
            ),
            (
                "length past the end",
                vec![0, 0x7f, 1, 2],
                CAPS,
                ChangesError::Malformed,
            ),
            (
                "not a change",
                vec![0, 5, 1, 2, 3, 4, 5],
                CAPS,
                ChangesError::Malformed,
            ),
            (
                "unterminated number",
                vec![0xff; 12],
                CAPS,
                ChangesError::Malformed,
            ),
            ("a whole document", d.save(), CAPS, ChangesError::Malformed),
        ];
        for (what, bytes, caps, err) in rows {
            assert_eq!(unpack(&bytes, &[], caps).err(), Some(err), "row '{what}'");
        }
    }

    #[test]
    fn parse_refusals() {
        let d = doc_with_changes(3);
        let bytes = d.save_after(&[]);
        // A whole document is not accepted as changes.
        assert_eq!(
            parse_changes(&d.save(), CAPS).err(),
            Some(ChangesError::NotPlainChanges)
        );
        assert_eq!(
            pack(&d.save(), &[]).err(),
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
}

#[cfg(test)]
mod screening {
    use automerge::marks::{ExpandMark, Mark};
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ROOT};

    use super::*;

    #[test]
    fn rich_text_marks_are_refused_before_automerge_sees_them() {
        let mut d = Automerge::new();
        let mut tx = d.transaction();
        let text = tx.put_object(ROOT, "note", ObjType::Text).expect("text");
        tx.splice_text(&text, 0, 0, "培训").expect("splice");
        tx.commit();
        let plain = d.save_after(&[]);
        let mut tx = d.transaction();
        tx.mark(
            &text,
            Mark::new("bold".into(), true, 0, 1),
            ExpandMark::None,
        )
        .expect("mark");
        tx.commit();
        let all = d.save_after(&[]);
        assert!(parse_changes(&plain, ChangeCaps::NONE).is_ok());
        assert_eq!(
            parse_changes(&all, ChangeCaps::NONE).err(),
            Some(ChangesError::UnsupportedOperation)
        );
        let packed = pack(&plain, &[]).expect("pack");
        assert!(unpack(&packed, &[], ChangeCaps::NONE).is_ok());
        let mark = &all[plain.len()..];
        let packed = pack_changes(
            &Change::from_bytes(mark.to_vec())
                .into_iter()
                .collect::<Vec<_>>(),
            &d.get_changes(&[])
                .iter()
                .take(1)
                .map(|c| c.hash())
                .collect::<Vec<_>>(),
        )
        .expect("pack");
        assert_eq!(
            unpack(&packed, &hashes(&plain), ChangeCaps::NONE).err(),
            Some(ChangesError::UnsupportedOperation)
        );
    }

    fn hashes(chunks: &[u8]) -> Vec<ChangeHash> {
        parse_changes(chunks, ChangeCaps::NONE)
            .expect("valid")
            .hashes()
    }
}

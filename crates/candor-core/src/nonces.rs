//! One `Read` for many buyers (DESIGN.md §6): a hardware TPM signs only tens of `Read`s per
//! second, so a node signs one `Read` over the Merkle root of the nonces queued at that
//! moment, and each buyer gets the path from its own nonce to that root.
//!
//! The tree: the queued nonces, in order, padded with zero nonces to a power of two; a node
//! is H("candor/v1/read-batch" ‖ left ‖ right). A leaf is the raw nonce, so a lone buyer's
//! `Read` signs its own nonce, exactly as without batching, and its path is empty.
//!
//! Why a buyer may take such a `Read` as fresh: the path hashes its nonce into the signed
//! root, so (SHA-256 being collision resistant) the root, and so the signature, was made
//! after the node knew the nonce. What other buyers' nonces are does not matter, nor who
//! chose them: a nonce chosen to equal some inner node's hash only commits, in turn, to
//! nonces already known.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::TaggedHasher;

/// The most levels a path has: at most 2^8 = 256 buyers share one `Read`.
pub const MAX_NONCE_LEVELS: usize = 8;

/// The most buyers one `Read` serves.
pub const MAX_READ_BATCH: usize = 1 << MAX_NONCE_LEVELS;

/// The tag of an inner node of a nonce tree.
const NODE_TAG: &str = "candor/v1/read-batch";

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    TaggedHasher::new(NODE_TAG)
        .fixed(left)
        .fixed(right)
        .finish()
        .0
}

/// The tree over a batch of nonces (the node's side).
#[derive(Debug, Clone)]
pub struct NonceTree {
    /// Level 0: the padded leaves; the last level: the root alone.
    levels: Vec<Vec<[u8; 32]>>,
}

/// Why a batch of nonces has no tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceTreeError {
    /// No nonce, or more than [`MAX_READ_BATCH`].
    #[error("a Read serves 1 to {MAX_READ_BATCH} nonces, not {0}")]
    Size(usize),
}

impl NonceTree {
    /// The tree over `nonces` (1 to [`MAX_READ_BATCH`] of them, in queue order).
    pub fn new(nonces: &[[u8; 32]]) -> Result<Self, NonceTreeError> {
        if nonces.is_empty() || nonces.len() > MAX_READ_BATCH {
            return Err(NonceTreeError::Size(nonces.len()));
        }
        let mut leaves = nonces.to_vec();
        leaves.resize(nonces.len().next_power_of_two(), [0; 32]);
        let mut levels = vec![leaves];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let up = last.chunks_exact(2).map(|p| node(&p[0], &p[1])).collect();
            levels.push(up);
        }
        Ok(Self { levels })
    }

    /// The root: the nonce the `Read` signs.
    pub fn root(&self) -> [u8; 32] {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// The path from nonce `index` (its place in the batch) to the root; None beyond the batch.
    pub fn path(&self, index: usize) -> Option<NoncePath> {
        if index >= self.levels.first().map_or(0, Vec::len) {
            return None;
        }
        let depth = self.levels.len() - 1;
        let siblings = (0..depth)
            .map(|level| self.levels[level][(index >> level) ^ 1])
            .collect();
        Some(NoncePath {
            index: index as u32,
            siblings,
        })
    }
}

/// A buyer's path from its nonce to the nonce a batched `Read` signed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoncePath {
    /// The nonce's place among the leaves: bit i says whether it is the right child at level i.
    pub index: u32,
    /// The sibling at each level, from the leaves up.
    pub siblings: Vec<[u8; 32]>,
}

impl NoncePath {
    /// The root `nonce` hashes to along this path: the nonce the `Read` must have signed.
    pub fn root(&self, nonce: &[u8; 32]) -> [u8; 32] {
        self.siblings
            .iter()
            .enumerate()
            .fold(*nonce, |h, (level, sib)| {
                if (self.index >> level) & 1 == 1 {
                    node(sib, &h)
                } else {
                    node(&h, sib)
                }
            })
    }

    /// Appends the encoding: the number of levels, then (if any) the index and the siblings.
    /// A lone buyer's path is one zero byte.
    pub fn encode_to(&self, w: &mut Writer) {
        w.u8(self.siblings.len() as u8);
        if !self.siblings.is_empty() {
            w.varint(u64::from(self.index));
            for s in &self.siblings {
                w.fixed(s);
            }
        }
    }

    /// Reads a path: at most [`MAX_NONCE_LEVELS`] levels, an index within them.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let levels = usize::from(r.u8("nonce path levels")?);
        if levels > MAX_NONCE_LEVELS {
            return Err(DecodeError::Invalid {
                field: "nonce path",
                reason: "more levels than a Read batch has",
            });
        }
        if levels == 0 {
            return Ok(Self::default());
        }
        let index = r.varint("nonce index")?;
        if index >= 1 << levels {
            return Err(DecodeError::Invalid {
                field: "nonce index",
                reason: "beyond the path's leaves",
            });
        }
        let mut siblings = Vec::with_capacity(levels);
        for _ in 0..levels {
            siblings.push(r.array("nonce sibling")?);
        }
        Ok(Self {
            index: index as u32,
            siblings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_lone_nonce_is_its_own_root_with_an_empty_path() {
        let t = NonceTree::new(&[[5; 32]]).unwrap();
        assert_eq!(t.root(), [5; 32]);
        let p = t.path(0).unwrap();
        assert_eq!(p, NoncePath::default());
        let mut w = Writer::new();
        p.encode_to(&mut w);
        assert_eq!(w.into_bytes(), vec![0]);
        assert!(t.path(1).is_none());
    }

    #[test]
    fn sizes_beyond_a_batch_are_refused() {
        assert_eq!(NonceTree::new(&[]).unwrap_err(), NonceTreeError::Size(0));
        let many = vec![[1; 32]; MAX_READ_BATCH + 1];
        assert!(NonceTree::new(&many).is_err());
        assert!(NonceTree::new(&many[1..]).is_ok());
    }

    proptest! {
        #[test]
        fn every_nonce_paths_to_the_root_and_no_other_does(
            n in 1usize..=40,
            seed in any::<u8>(),
            pick in any::<prop::sample::Index>(),
        ) {
            let nonces: Vec<[u8; 32]> = (0..n)
                .map(|i| {
                    let mut x = [seed; 32];
                    x[0] = i as u8;
                    x
                })
                .collect();
            let t = NonceTree::new(&nonces).unwrap();
            for (i, nonce) in nonces.iter().enumerate() {
                let p = t.path(i).unwrap();
                prop_assert_eq!(p.root(nonce), t.root());
                let mut w = Writer::new();
                p.encode_to(&mut w);
                let bytes = w.into_bytes();
                let mut r = Reader::new(&bytes);
                prop_assert_eq!(&NoncePath::decode_from(&mut r).unwrap(), &p);
            }
            // Another nonce, or the right one at another index, does not reach the root.
            let i = pick.index(n);
            let p = t.path(i).unwrap();
            prop_assert_ne!(p.root(&[0xEE; 32]), t.root());
            if n > 1 {
                let mut moved = p.clone();
                moved.index ^= 1;
                prop_assert_ne!(moved.root(&nonces[i]), t.root());
            }
        }
    }

    #[test]
    fn paths_beyond_the_bounds_do_not_decode() {
        for bytes in [vec![9u8], vec![1, 2], [vec![1, 1], vec![0; 31]].concat()] {
            let mut r = Reader::new(&bytes);
            assert!(NoncePath::decode_from(&mut r).is_err(), "{bytes:?}");
        }
    }
}

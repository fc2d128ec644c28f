//! A sparse Merkle tree over 256-bit keys: the authenticated map of scheme M (DESIGN.md §5).
//!
//! **What the root is.** Keys sit in a binary trie of depth 256, each at the position its bits
//! spell, and a subtree is hashed by what it holds:
//! - no key: [`EMPTY`] (32 zero bytes);
//! - exactly one key `k` with value hash `v`: `leaf(k, v) = H("candor/v2/smt-leaf" ‖ k ‖ v)`,
//!   whatever its depth (a single-leaf subtree *collapses* to its leaf);
//! - two keys or more: `node(l, r) = H("candor/v2/smt-node" ‖ l ‖ r)` over its two halves.
//!
//! The root is therefore a function of the set of (key, value hash) pairs alone, whatever the
//! order of updates, and a key's path ends where its leaf parts from its nearest neighbour:
//! about log2(n) levels for n random keys, so an update or a proof costs O(log n) hashes, not 256.
//!
//! **Storage.** A binary Patricia trie keeps only leaves and the nodes where two non-empty
//! subtrees meet, each with its hash as seen from its parent cached. Children are shared
//! copy-on-write, so cloning a tree is O(1) and a clone is a snapshot that later updates leave
//! intact: proofs under past roots are served from snapshots.
//!
//! **Proofs.** [`MultiProof`] walks the union of the paths of a set of keys, depth first. At each
//! position it says whether the position *splits* (its two halves follow; a half without any of
//! the keys is a sibling hash, or [`EMPTY`] marked by a clear bit) or *ends*. A position that
//! ends holds exactly the claimed-present keys below it plus at most one other leaf the proof
//! carries as (key, value hash); the verifier hashes that set itself by the definition above.
//! The same proof thus gives the root before and after a batch: before, with the touched keys'
//! old values; after, with their new ones (new keys land in the ended positions) — a
//! transition proof showing that exactly these keys changed and no other.
//!
//! **Why an answer is unique.** Non-membership of `d` is shown by an empty position on `d`'s path
//! or by *another key's leaf* sitting where `d` would be. Two proofs for `d` under one root walk
//! the same positions from the root: at each, both know the same hash (the parent's hash binds
//! its two children). Where one proof ends, the other would have to give that same hash as a
//! different kind of thing: a node against a leaf or [`EMPTY`] (the three are domain-separated:
//! distinct tags, and [`EMPTY`] is no hash's output), or a leaf of another key or value (a leaf
//! binds its full key, not only the bits of its position). Each is a SHA-256 collision. The
//! verifier also requires an ended position's carried leaf to share the position's prefix with
//! the keys it is asked about (never a leaf elsewhere), and checks the collapse rule wherever it
//! can: a split whose halves it knows to hold fewer than two keys in all is refused.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::{Digest, TaggedHasher};
use std::sync::Arc;

/// Tree depth in bits.
pub const DEPTH: usize = 256;

/// The hash of an empty subtree, at every height.
pub const EMPTY: Digest = Digest([0; 32]);

const TAG_LEAF: &str = "candor/v2/smt-leaf";
const TAG_NODE: &str = "candor/v2/smt-node";

fn node_hash(l: &Digest, r: &Digest) -> Digest {
    TaggedHasher::new(TAG_NODE)
        .fixed(l.as_bytes())
        .fixed(r.as_bytes())
        .finish()
}

/// A leaf's hash: the key and the hash of its value.
pub fn leaf_hash(key: &[u8; 32], value: &Digest) -> Digest {
    TaggedHasher::new(TAG_LEAF)
        .fixed(key)
        .fixed(value.as_bytes())
        .finish()
}

fn bit(key: &[u8; 32], i: usize) -> bool {
    key.get(i / 8).is_some_and(|b| (b >> (7 - i % 8)) & 1 == 1)
}

fn common_prefix(a: &[u8; 32], b: &[u8; 32]) -> usize {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = x ^ y;
        if d != 0 {
            return i * 8 + d.leading_zeros() as usize;
        }
    }
    DEPTH
}

/// Lifts the hash of a subtree of two keys or more at depth `from` to its ancestor at depth `to`
/// (`to <= from`) along `key`'s path: every level in between has an empty other half.
fn lift(mut h: Digest, key: &[u8; 32], from: usize, to: usize) -> Digest {
    for y in (to + 1..=from).rev() {
        h = if bit(key, y - 1) {
            node_hash(&EMPTY, &h)
        } else {
            node_hash(&h, &EMPTY)
        };
    }
    h
}

/// The hash, at depth `d`, of a subtree holding exactly `set` (sorted by key, distinct, every
/// key sharing the position's first `d` bits): the definition, computed directly.
fn subtree(set: &[([u8; 32], Digest)], d: usize) -> Digest {
    match set {
        [] => EMPTY,
        [(k, v)] => leaf_hash(k, v),
        [first, .., last] => {
            // Sorted: the first and last keys share exactly what all of them share.
            let c = common_prefix(&first.0, &last.0);
            let at = set.partition_point(|(k, _)| !bit(k, c));
            let (l, r) = set.split_at(at);
            lift(
                node_hash(&subtree(l, c + 1), &subtree(r, c + 1)),
                &first.0,
                c,
                d,
            )
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Leaf {
        key: [u8; 32],
        value: Digest,
    },
    Branch {
        /// Where its two halves part: every key below shares the first `depth` bits.
        depth: usize,
        /// One key below it (for the shared prefix).
        key: [u8; 32],
        children: Arc<[Node; 2]>,
    },
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// The subtree's hash seen from the depth just below its parent (depth 0 at the root).
    up: Digest,
}

impl Node {
    fn depth(&self) -> usize {
        match &self.kind {
            Kind::Leaf { .. } => DEPTH,
            Kind::Branch { depth, .. } => *depth,
        }
    }

    fn key(&self) -> &[u8; 32] {
        match &self.kind {
            Kind::Leaf { key, .. } | Kind::Branch { key, .. } => key,
        }
    }

    /// The hash at the node's own depth.
    fn own(&self) -> Digest {
        match &self.kind {
            Kind::Leaf { key, value } => leaf_hash(key, value),
            Kind::Branch { children, .. } => {
                let [l, r] = children.as_ref();
                node_hash(&l.up, &r.up)
            }
        }
    }

    /// The hash seen from depth `view` (at most the node's depth).
    fn view(&self, view: usize) -> Digest {
        match &self.kind {
            Kind::Leaf { key, value } => leaf_hash(key, value),
            Kind::Branch { depth, key, .. } => lift(self.own(), key, *depth, view),
        }
    }

    fn refresh(&mut self, view: usize) {
        self.up = self.view(view);
    }

    fn leaf(key: [u8; 32], value: Digest) -> Self {
        Self {
            up: leaf_hash(&key, &value),
            kind: Kind::Leaf { key, value },
        }
    }
}

/// The sparse Merkle tree (the prover's side).
#[derive(Debug, Clone, Default)]
pub struct Smt {
    root: Option<Node>,
    len: usize,
}

fn insert(node: Option<Node>, key: [u8; 32], value: Digest, view: usize) -> (Node, bool) {
    let Some(mut n) = node else {
        return (Node::leaf(key, value), true);
    };
    let common = common_prefix(&key, n.key()).min(n.depth());
    if common < n.depth() {
        // The key leaves this subtree's prefix at `common`: a new branch there.
        n.refresh(common + 1);
        let leaf = Node::leaf(key, value);
        let children = if bit(&key, common) {
            [n, leaf]
        } else {
            [leaf, n]
        };
        let mut b = Node {
            kind: Kind::Branch {
                depth: common,
                key,
                children: Arc::new(children),
            },
            up: Digest::default(),
        };
        b.refresh(view);
        return (b, true);
    }
    let added = match &mut n.kind {
        Kind::Leaf { value: v, .. } => {
            *v = value;
            false
        }
        Kind::Branch {
            depth, children, ..
        } => {
            let side = usize::from(bit(&key, *depth));
            // Copy-on-write: a snapshot of an older tree keeps the shared children.
            let children = Arc::make_mut(children);
            // A placeholder while the child is updated (no hash computed for it).
            let hole = Node {
                kind: Kind::Leaf {
                    key: [0; 32],
                    value: EMPTY,
                },
                up: EMPTY,
            };
            let child = std::mem::replace(&mut children[side], hole);
            let (c, added) = insert(Some(child), key, value, *depth + 1);
            children[side] = c;
            added
        }
    };
    n.refresh(view);
    (n, added)
}

impl Smt {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys hold a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key holds a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The root hash.
    pub fn root(&self) -> Digest {
        self.root.as_ref().map_or(EMPTY, |n| n.up)
    }

    /// Sets `key` to a value whose hash is `value`.
    pub fn insert(&mut self, key: [u8; 32], value: Digest) {
        let (n, added) = insert(self.root.take(), key, value, 0);
        self.root = Some(n);
        self.len += usize::from(added);
    }

    /// The value hash at `key`.
    pub fn get(&self, key: &[u8; 32]) -> Option<Digest> {
        let mut n = self.root.as_ref()?;
        loop {
            match &n.kind {
                Kind::Leaf { key: k, value } => return (k == key).then_some(*value),
                Kind::Branch {
                    depth, children, ..
                } => {
                    if common_prefix(key, n.key()) < *depth {
                        return None;
                    }
                    n = &children[usize::from(bit(key, *depth))];
                }
            }
        }
    }

    /// A proof for `keys` (sorted and de-duplicated here) under the current root.
    pub fn prove(&self, keys: &[[u8; 32]]) -> MultiProof {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mut p = MultiProof::default();
        if !keys.is_empty() {
            prove(self.root.as_ref(), 0, &keys, &mut p);
        }
        p
    }
}

/// Writes the proof for `keys` (all sharing the first `d` bits) at the position of depth `d`
/// whose subtree's top node is `n` (a branch at depth ≥ `d`, a leaf, or nothing).
fn prove(n: Option<&Node>, d: usize, keys: &[[u8; 32]], out: &mut MultiProof) {
    let Some(node) = n else {
        out.bit(false);
        out.bit(false);
        return;
    };
    let (depth, key, children) = match &node.kind {
        Kind::Leaf { key, value } => {
            out.bit(false);
            let other = keys.binary_search(key).is_err();
            out.bit(other);
            if other {
                out.others.push((*key, *value));
            }
            return;
        }
        Kind::Branch {
            depth,
            key,
            children,
        } => (*depth, key, children),
    };
    out.bit(true);
    // The two halves of this position and their hashes seen from depth d + 1.
    let halves: [(Option<&Node>, Digest); 2] = if depth == d {
        let [l, r] = children.as_ref();
        [(Some(l), l.up), (Some(r), r.up)]
    } else {
        let whole = (Some(node), node.view(d + 1));
        if bit(key, d) {
            [(None, EMPTY), whole]
        } else {
            [whole, (None, EMPTY)]
        }
    };
    let at = keys.partition_point(|k| !bit(k, d));
    let (kl, kr) = keys.split_at(at);
    for ((half, hash), ks) in halves.into_iter().zip([kl, kr]) {
        if ks.is_empty() {
            out.sibling(hash);
        } else {
            prove(half, d + 1, ks, out);
        }
    }
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof has too few or too many parts for the keys, or a part where none may be.
    #[error("the proof does not fit the keys")]
    Shape,
    /// The proof splits a subtree that holds fewer than two keys (it should end there).
    #[error("the proof splits a subtree of fewer than two keys")]
    Collapse,
    /// A leaf the proof carries is not on the path of the keys it is about, or is one of them.
    #[error("the proof carries a leaf that is not where the keys would be")]
    StrayLeaf,
    /// The root computed from the proof is not the expected one.
    #[error("the proof does not lead to the expected root")]
    WrongRoot,
}

/// The most sibling hashes a proof may carry (every level of 1,024 keys' paths).
pub const MAX_SIBLINGS: usize = 1024 * DEPTH;

/// The most shape bits a proof may carry (three per position of 1,024 keys' paths).
const MAX_BITS: usize = 3 * 1024 * (DEPTH + 1);

/// The most other leaves a proof may carry (one per key).
const MAX_OTHERS: usize = 1024;

/// A proof for a set of keys: the shape of the union of their paths (one bit per position, split
/// or end; one per half without keys, carried or empty; one per end, whether it carries another
/// key's leaf), the carried sibling hashes and the carried leaves, in depth-first order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiProof {
    bits: Vec<u8>,
    nbits: usize,
    hashes: Vec<Digest>,
    others: Vec<([u8; 32], Digest)>,
}

impl MultiProof {
    fn bit(&mut self, b: bool) {
        if self.nbits.is_multiple_of(8) {
            self.bits.push(0);
        }
        if b {
            if let Some(last) = self.bits.last_mut() {
                *last |= 1 << (self.nbits % 8);
            }
        }
        self.nbits += 1;
    }

    fn sibling(&mut self, h: Digest) {
        let carried = h != EMPTY;
        self.bit(carried);
        if carried {
            self.hashes.push(h);
        }
    }

    /// Carried sibling hashes.
    pub fn hashes(&self) -> usize {
        self.hashes.len()
    }

    /// The root of a tree in which `leaves` (sorted by key, distinct; `None` = absent) hold
    /// the given value hashes and everything else is as this proof says. The proof must be
    /// the one the tree's prover makes: every position it ends at holds at most one key (where
    /// two or more meet it splits), so a set of keys has exactly one proof under a root.
    pub fn root(&self, leaves: &[([u8; 32], Option<Digest>)]) -> Result<Digest, ProofError> {
        self.fold(leaves, Ends::AtMostOne)
    }

    /// The root after a batch: this proof (made for the tree before it) with `leaves` (sorted
    /// by key, distinct) holding their new value hashes. New keys land in the positions the
    /// proof ends at, beside the leaf one may hold, and the verifier hashes each such position
    /// by the definition. Keys are only added or updated, never taken out (a key taken out
    /// could leave a single leaf under a split, which only the prover could collapse).
    pub fn root_after(&self, leaves: &[([u8; 32], Digest)]) -> Result<Digest, ProofError> {
        let leaves: Vec<([u8; 32], Option<Digest>)> =
            leaves.iter().map(|(k, v)| (*k, Some(*v))).collect();
        self.fold(&leaves, Ends::Any)
    }

    fn fold(
        &self,
        leaves: &[([u8; 32], Option<Digest>)],
        ends: Ends,
    ) -> Result<Digest, ProofError> {
        if leaves.is_empty() || leaves.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(ProofError::Shape);
        }
        let mut cur = Cursor {
            p: self,
            bit: 0,
            hash: 0,
            other: 0,
            ends,
        };
        let (root, _) = compute(0, leaves, &mut cur)?;
        if cur.bit != self.nbits || cur.hash != self.hashes.len() || cur.other != self.others.len()
        {
            return Err(ProofError::Shape);
        }
        Ok(root)
    }

    /// Checks that under `root`, each key holds the given value hash (`None`: absent).
    pub fn verify(
        &self,
        root: &Digest,
        leaves: &[([u8; 32], Option<Digest>)],
    ) -> Result<(), ProofError> {
        if self.root(leaves)? == *root {
            Ok(())
        } else {
            Err(ProofError::WrongRoot)
        }
    }

    /// Appends the canonical encoding: varint counts, the bits packed low bit first.
    pub fn encode_to(&self, w: &mut Writer) {
        w.varint(self.nbits as u64).fixed(&self.bits);
        w.varint(self.hashes.len() as u64);
        for h in &self.hashes {
            w.fixed(h.as_bytes());
        }
        w.varint(self.others.len() as u64);
        for (k, v) in &self.others {
            w.fixed(k).fixed(v.as_bytes());
        }
    }

    /// Decodes, bounded.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let nbits = r.varint_max(MAX_BITS, "proof bits")?;
        let mut bits = Vec::with_capacity(nbits.div_ceil(8).min(r.remaining()));
        for _ in 0..nbits.div_ceil(8) {
            bits.push(r.u8("proof bits")?);
        }
        if !nbits.is_multiple_of(8) && bits.last().is_some_and(|b| b >> (nbits % 8) != 0) {
            return Err(DecodeError::Invalid {
                field: "proof bits",
                reason: "bits set past the count",
            });
        }
        let n = r.varint_max(MAX_SIBLINGS, "sibling hashes")?;
        if n > r.remaining() / 32 {
            return Err(DecodeError::Truncated {
                field: "sibling hashes",
            });
        }
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            hashes.push(Digest(r.array("sibling")?));
        }
        let m = r.varint_max(MAX_OTHERS, "proof leaves")?;
        if m > r.remaining() / 64 {
            return Err(DecodeError::Truncated {
                field: "proof leaves",
            });
        }
        let mut others = Vec::with_capacity(m);
        for _ in 0..m {
            others.push((r.array("leaf key")?, Digest(r.array("leaf value")?)));
        }
        Ok(Self {
            bits,
            nbits,
            hashes,
            others,
        })
    }
}

/// What a position the proof ends at may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// At most one key: the tree as the proof was made for it.
    AtMostOne,
    /// Any number: the tree after a batch landed in the proof's ends.
    Any,
}

struct Cursor<'a> {
    p: &'a MultiProof,
    bit: usize,
    hash: usize,
    other: usize,
    ends: Ends,
}

impl Cursor<'_> {
    fn bit(&mut self) -> Result<bool, ProofError> {
        if self.bit >= self.p.nbits {
            return Err(ProofError::Shape);
        }
        let b = self
            .p
            .bits
            .get(self.bit / 8)
            .is_some_and(|b| (b >> (self.bit % 8)) & 1 == 1);
        self.bit += 1;
        Ok(b)
    }

    fn sibling(&mut self) -> Result<(Digest, Held), ProofError> {
        if !self.bit()? {
            return Ok((EMPTY, Held::Nothing));
        }
        let h = *self.p.hashes.get(self.hash).ok_or(ProofError::Shape)?;
        self.hash += 1;
        // A carried hash equal to the empty one would be a second encoding.
        if h == EMPTY {
            return Err(ProofError::Shape);
        }
        Ok((h, Held::Some))
    }

    fn other(&mut self) -> Result<([u8; 32], Digest), ProofError> {
        let o = *self.p.others.get(self.other).ok_or(ProofError::Shape)?;
        self.other += 1;
        Ok(o)
    }
}

/// What the verifier knows of how many keys a subtree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Nothing,
    One,
    /// At least one (a carried sibling hash, leaf or node).
    Some,
    /// At least two.
    Many,
}

fn compute(
    d: usize,
    leaves: &[([u8; 32], Option<Digest>)],
    cur: &mut Cursor<'_>,
) -> Result<(Digest, Held), ProofError> {
    if !cur.bit()? {
        // The position ends: it holds exactly the present claimed keys and at most one other.
        let mut set: Vec<([u8; 32], Digest)> = leaves
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect();
        if cur.bit()? {
            let (k, v) = cur.other()?;
            let first = leaves.first().ok_or(ProofError::Shape)?;
            if common_prefix(&k, &first.0) < d || leaves.iter().any(|(x, _)| *x == k) {
                return Err(ProofError::StrayLeaf);
            }
            let at = set.partition_point(|(x, _)| *x < k);
            set.insert(at, (k, v));
        }
        let held = match set.len() {
            0 => Held::Nothing,
            1 => Held::One,
            // Where two keys meet, the prover splits: an end over them would be a second
            // encoding of the same answer.
            _ if cur.ends == Ends::AtMostOne => return Err(ProofError::Shape),
            _ => Held::Many,
        };
        return Ok((subtree(&set, d), held));
    }
    if d >= DEPTH {
        return Err(ProofError::Shape);
    }
    let at = leaves.partition_point(|(k, _)| !bit(k, d));
    let (l, r) = leaves.split_at(at);
    let (lh, lheld) = if l.is_empty() {
        cur.sibling()?
    } else {
        compute(d + 1, l, cur)?
    };
    let (rh, rheld) = if r.is_empty() {
        cur.sibling()?
    } else {
        compute(d + 1, r, cur)?
    };
    use Held::{Nothing, One};
    if matches!((lheld, rheld), (Nothing, Nothing | One) | (One, Nothing)) {
        return Err(ProofError::Collapse);
    }
    Ok((node_hash(&lh, &rh), Held::Many))
}

#[cfg(test)]
mod tests;

//! A sparse Merkle tree over 256-bit keys: the authenticated map of scheme M (DESIGN.md §5).
//!
//! Semantics are those of the full binary tree of depth 256: a leaf sits at the position its
//! key spells, every other position is empty, the empty subtree of height h has the fixed hash
//! `E[h]`, and a node hashes its two children. Non-membership is therefore always an
//! *empty-branch* proof (the leaf position of the key is empty), never a neighbour's leaf.
//!
//! Storage is compact: a binary Patricia trie keeps only leaves and the nodes where two
//! non-empty subtrees meet, each with its hash cached as seen from its parent, so memory is
//! O(n) and an update costs one hash per level of the key's path (≈ 256). Children are shared
//! copy-on-write, so cloning a tree is O(1) and a clone is a snapshot that later updates leave
//! intact: proofs under past roots are served from snapshots. Proofs carry only
//! the non-empty siblings (a bitmap marks which), O(log n) hashes per key.
//!
//! [`MultiProof`] proves any set of keys at once; with the keys' leaf hashes before and after
//! a batch, the same siblings give the old and the new root — a transition proof showing that
//! exactly these keys changed and no other.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::{Digest, TaggedHasher};
use std::sync::OnceLock;

/// Tree depth in bits.
pub const DEPTH: usize = 256;

const TAG_LEAF: &str = "candor/v1/smt-leaf";
const TAG_NODE: &str = "candor/v1/smt-node";
const TAG_EMPTY: &str = "candor/v1/smt-empty";

/// `E[h]`: the hash of an empty subtree of height `h` (0 = a leaf position).
pub fn empty(height: usize) -> Digest {
    static E: OnceLock<Vec<Digest>> = OnceLock::new();
    let e = E.get_or_init(|| {
        let mut v = Vec::with_capacity(DEPTH + 1);
        v.push(TaggedHasher::new(TAG_EMPTY).finish());
        for h in 0..DEPTH {
            let prev = v[h];
            v.push(node_hash_raw(&prev, &prev));
        }
        v
    });
    e.get(height).copied().unwrap_or_default()
}

fn node_hash_raw(l: &Digest, r: &Digest) -> Digest {
    TaggedHasher::new(TAG_NODE)
        .fixed(l.as_bytes())
        .fixed(r.as_bytes())
        .finish()
}

/// The hash of an inner node of height `h + 1` from its children of height `h`.
fn node_hash(h: usize, l: &Digest, r: &Digest) -> Digest {
    let e = empty(h);
    if *l == e && *r == e {
        return empty(h + 1);
    }
    node_hash_raw(l, r)
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

/// Folds the hash of a node at depth `from` up to its ancestor at depth `to` (`to <= from`)
/// along `key`'s path, with empty siblings.
fn fold(mut h: Digest, key: &[u8; 32], from: usize, to: usize) -> Digest {
    for y in (to + 1..=from).rev() {
        let height = DEPTH - y;
        h = if bit(key, y - 1) {
            node_hash(height, &empty(height), &h)
        } else {
            node_hash(height, &h, &empty(height))
        };
    }
    h
}

#[derive(Debug, Clone)]
enum Kind {
    Leaf {
        key: [u8; 32],
        value: Digest,
    },
    Branch {
        depth: usize,
        key: [u8; 32],
        children: std::sync::Arc<[Node; 2]>,
    },
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// The hash of the subtree seen from the depth just below the parent (from depth 0 at the root).
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

    fn own(&self) -> Digest {
        match &self.kind {
            Kind::Leaf { key, value } => leaf_hash(key, value),
            Kind::Branch {
                depth, children, ..
            } => {
                let [l, r] = children.as_ref();
                node_hash(DEPTH - depth - 1, &l.up, &r.up)
            }
        }
    }

    fn refresh(&mut self, view: usize) {
        self.up = fold(self.own(), &self.key().clone(), self.depth(), view);
    }

    fn leaf(key: [u8; 32], value: Digest, view: usize) -> Self {
        let mut n = Self {
            kind: Kind::Leaf { key, value },
            up: Digest::default(),
        };
        n.refresh(view);
        n
    }
}

/// The sparse Merkle tree.
#[derive(Debug, Clone, Default)]
pub struct Smt {
    root: Option<Node>,
    len: usize,
}

fn insert(node: Option<Node>, key: [u8; 32], value: Digest, view: usize) -> (Node, bool) {
    let Some(mut n) = node else {
        return (Node::leaf(key, value, view), true);
    };
    let common = common_prefix(&key, n.key()).min(n.depth());
    if common < n.depth() {
        // A new branch where the key leaves this subtree's prefix.
        n.refresh(common + 1);
        let leaf = Node::leaf(key, value, common + 1);
        let children = if bit(&key, common) {
            [n, leaf]
        } else {
            [leaf, n]
        };
        let mut b = Node {
            kind: Kind::Branch {
                depth: common,
                key,
                children: std::sync::Arc::new(children),
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
            let children = std::sync::Arc::make_mut(children);
            let child = std::mem::replace(
                &mut children[side],
                Node {
                    kind: Kind::Leaf {
                        key: [0; 32],
                        value: Digest::default(),
                    },
                    up: Digest::default(),
                },
            );
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
        self.root
            .as_ref()
            .map(|n| n.up)
            .unwrap_or_else(|| empty(DEPTH))
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

    /// A proof for `keys` (sorted and de-duplicated by the callee) under the current root.
    pub fn prove(&self, keys: &[[u8; 32]]) -> MultiProof {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mut p = MultiProof::default();
        if !keys.is_empty() {
            gen(self.root.as_ref(), 0, &keys, &mut p);
        }
        p
    }
}

/// The trie below depth `d` on each side, for a subtree whose top node (if any) is `n`.
fn split(n: Option<&Node>, d: usize) -> [Option<&Node>; 2] {
    match n {
        None => [None, None],
        Some(n) if n.depth() > d => {
            if bit(n.key(), d) {
                [None, Some(n)]
            } else {
                [Some(n), None]
            }
        }
        Some(n) => match &n.kind {
            Kind::Branch { children, .. } => [Some(&children[0]), Some(&children[1])],
            // A leaf has depth 256 > d always; unreachable, but harmless.
            Kind::Leaf { .. } => [None, None],
        },
    }
}

/// The hash of the subtree at depth `d` whose top node is `n`.
fn view(n: Option<&Node>, d: usize, parent_split: bool) -> Digest {
    match n {
        None => empty(DEPTH - d),
        // A child of a branch at depth d - 1 caches exactly this view.
        Some(n) if parent_split => n.up,
        Some(n) => fold(n.own(), n.key(), n.depth(), d),
    }
}

fn gen(n: Option<&Node>, d: usize, keys: &[[u8; 32]], out: &mut MultiProof) {
    if d == DEPTH {
        return;
    }
    let parent_split = matches!(n, Some(x) if x.depth() == d);
    let [l, r] = split(n, d);
    let at = keys.partition_point(|k| !bit(k, d));
    let (kl, kr) = keys.split_at(at);
    match (kl.is_empty(), kr.is_empty()) {
        (false, false) => {
            gen(l, d + 1, kl, out);
            gen(r, d + 1, kr, out);
        }
        (false, true) => {
            out.push(view(r, d + 1, parent_split), DEPTH - d - 1);
            gen(l, d + 1, kl, out);
        }
        (true, false) => {
            out.push(view(l, d + 1, parent_split), DEPTH - d - 1);
            gen(r, d + 1, kr, out);
        }
        (true, true) => {}
    }
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof has too few or too many siblings for the keys.
    #[error("the proof does not fit the keys")]
    Shape,
    /// The root computed from the proof is not the expected one.
    #[error("the proof does not lead to the expected root")]
    WrongRoot,
}

/// The most siblings a proof may carry (every level of 1,024 keys).
pub const MAX_SIBLINGS: usize = 1024 * DEPTH;

/// Siblings of the union of several keys' paths, in depth-first order; only non-empty ones
/// are carried, a bitmap marks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiProof {
    /// One bit per sibling: set when its hash is carried.
    bits: Vec<u8>,
    count: usize,
    hashes: Vec<Digest>,
}

impl MultiProof {
    fn push(&mut self, h: Digest, height: usize) {
        let carried = h != empty(height);
        if self.count.is_multiple_of(8) {
            self.bits.push(0);
        }
        if carried {
            if let Some(b) = self.bits.last_mut() {
                *b |= 1 << (self.count % 8);
            }
            self.hashes.push(h);
        }
        self.count += 1;
    }

    /// Carried hashes.
    pub fn hashes(&self) -> usize {
        self.hashes.len()
    }

    /// The root of a tree in which `leaves` (sorted by key, distinct; `None` = empty) sit at
    /// their keys and everything else is as this proof says.
    pub fn root(&self, leaves: &[([u8; 32], Option<Digest>)]) -> Result<Digest, ProofError> {
        if leaves.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(ProofError::Shape);
        }
        if leaves.is_empty() {
            return Err(ProofError::Shape);
        }
        let mut cur = Cursor {
            p: self,
            i: 0,
            h: 0,
        };
        let root = compute(0, leaves, &mut cur)?;
        if cur.i != self.count || cur.h != self.hashes.len() {
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

    /// Appends the canonical encoding.
    pub fn encode_to(&self, w: &mut Writer) {
        w.u32(self.count as u32)
            .bytes32(&self.bits)
            .u32(self.hashes.len() as u32);
        for h in &self.hashes {
            w.fixed(h.as_bytes());
        }
    }

    /// Decodes, bounded.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = r.u32("sibling count")? as usize;
        if count > MAX_SIBLINGS {
            return Err(DecodeError::TooLong {
                field: "siblings",
                len: count,
                max: MAX_SIBLINGS,
            });
        }
        let bits = r.bytes32(count.div_ceil(8), "sibling bitmap")?.to_vec();
        if bits.len() != count.div_ceil(8) {
            return Err(DecodeError::Invalid {
                field: "sibling bitmap",
                reason: "length does not match the count",
            });
        }
        let ones: usize = bits.iter().map(|b| b.count_ones() as usize).sum();
        let tail_ok = count.is_multiple_of(8) || bits.last().is_none_or(|b| b >> (count % 8) == 0);
        let n = r.u32("hash count")? as usize;
        if n != ones || !tail_ok {
            return Err(DecodeError::Invalid {
                field: "sibling hashes",
                reason: "count does not match the bitmap",
            });
        }
        if n > r.remaining() / 32 {
            return Err(DecodeError::Truncated {
                field: "sibling hashes",
            });
        }
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            hashes.push(Digest(r.array("sibling")?));
        }
        Ok(Self {
            bits,
            count,
            hashes,
        })
    }
}

struct Cursor<'a> {
    p: &'a MultiProof,
    i: usize,
    h: usize,
}

impl Cursor<'_> {
    fn next(&mut self, height: usize) -> Result<Digest, ProofError> {
        if self.i >= self.p.count {
            return Err(ProofError::Shape);
        }
        let carried = self
            .p
            .bits
            .get(self.i / 8)
            .is_some_and(|b| (b >> (self.i % 8)) & 1 == 1);
        self.i += 1;
        if carried {
            let h = *self.p.hashes.get(self.h).ok_or(ProofError::Shape)?;
            self.h += 1;
            // A carried hash equal to the empty one would be a second encoding.
            if h == empty(height) {
                return Err(ProofError::Shape);
            }
            Ok(h)
        } else {
            Ok(empty(height))
        }
    }
}

fn compute(
    d: usize,
    leaves: &[([u8; 32], Option<Digest>)],
    cur: &mut Cursor<'_>,
) -> Result<Digest, ProofError> {
    if d == DEPTH {
        return match leaves {
            [(key, value)] => Ok(value
                .map(|v| leaf_hash(key, &v))
                .unwrap_or_else(|| empty(0))),
            _ => Err(ProofError::Shape),
        };
    }
    let at = leaves.partition_point(|(k, _)| !bit(k, d));
    let (l, r) = leaves.split_at(at);
    let height = DEPTH - d - 1;
    let (lh, rh) = match (l.is_empty(), r.is_empty()) {
        (false, false) => (compute(d + 1, l, cur)?, compute(d + 1, r, cur)?),
        (false, true) => {
            let s = cur.next(height)?;
            (compute(d + 1, l, cur)?, s)
        }
        (true, false) => {
            let s = cur.next(height)?;
            (s, compute(d + 1, r, cur)?)
        }
        (true, true) => return Err(ProofError::Shape),
    };
    Ok(node_hash(height, &lh, &rh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;
    use proptest::prelude::*;

    fn k(i: u32) -> [u8; 32] {
        sha256(&i.to_be_bytes()).0
    }

    fn v(i: u32) -> Digest {
        sha256(&(i ^ 0xdead).to_be_bytes())
    }

    /// The root computed straight from the definition, for comparison.
    fn naive(leaves: &[([u8; 32], Digest)], d: usize) -> Digest {
        if leaves.is_empty() {
            return empty(DEPTH - d);
        }
        if d == DEPTH {
            return leaf_hash(&leaves[0].0, &leaves[0].1);
        }
        let at = leaves.partition_point(|(k, _)| !bit(k, d));
        node_hash(
            DEPTH - d - 1,
            &naive(&leaves[..at], d + 1),
            &naive(&leaves[at..], d + 1),
        )
    }

    #[test]
    fn empty_tree_and_single_leaf() {
        let mut t = Smt::new();
        assert_eq!(t.root(), empty(DEPTH));
        t.insert(k(1), v(1));
        assert_eq!(t.root(), naive(&[(k(1), v(1))], 0));
        assert_eq!(t.get(&k(1)), Some(v(1)));
        assert_eq!(t.get(&k(2)), None);
    }

    #[test]
    fn membership_and_empty_branch_non_membership() {
        let mut t = Smt::new();
        for i in 0..100 {
            t.insert(k(i), v(i));
        }
        let root = t.root();
        let p = t.prove(&[k(7)]);
        assert!(p.hashes() < 20, "{} hashes", p.hashes());
        p.verify(&root, &[(k(7), Some(v(7)))]).unwrap();
        assert_eq!(
            p.verify(&root, &[(k(7), Some(v(8)))]),
            Err(ProofError::WrongRoot)
        );
        assert!(p.verify(&root, &[(k(7), None)]).is_err());
        // Absent key: its leaf position is empty.
        let p = t.prove(&[k(1000)]);
        p.verify(&root, &[(k(1000), None)]).unwrap();
        assert!(p.verify(&root, &[(k(1000), Some(v(1)))]).is_err());
        // A proof for another key does not prove this one.
        let p7 = t.prove(&[k(7)]);
        assert!(p7.verify(&root, &[(k(8), Some(v(8)))]).is_err());
    }

    #[test]
    fn transition_proof_gives_old_and_new_root() {
        let mut t = Smt::new();
        for i in 0..50 {
            t.insert(k(i), v(i));
        }
        let old = t.root();
        let touched = [k(3), k(77), k(12)];
        let proof = t.prove(&touched);
        t.insert(k(3), v(300));
        t.insert(k(77), v(77));
        t.insert(k(12), v(1200));
        let mut before: Vec<_> = vec![(k(3), Some(v(3))), (k(77), None), (k(12), Some(v(12)))];
        let mut after: Vec<_> = vec![
            (k(3), Some(v(300))),
            (k(77), Some(v(77))),
            (k(12), Some(v(1200))),
        ];
        before.sort();
        after.sort();
        assert_eq!(proof.root(&before).unwrap(), old);
        assert_eq!(proof.root(&after).unwrap(), t.root());
        // Claiming another key changed too does not fit the proof.
        let mut more = after.clone();
        more.push((k(5), Some(v(9))));
        more.sort();
        assert!(proof.root(&more).is_err() || proof.root(&more).unwrap() != t.root());
    }

    #[test]
    fn a_clone_is_a_snapshot_that_later_updates_leave_intact() {
        let mut t = Smt::new();
        for i in 0..40 {
            t.insert(k(i), v(i));
        }
        let snap = t.clone();
        let old_root = snap.root();
        for i in 20..60 {
            t.insert(k(i), v(i + 1000));
        }
        assert_eq!(snap.root(), old_root);
        assert_ne!(t.root(), old_root);
        snap.prove(&[k(25)])
            .verify(&old_root, &[(k(25), Some(v(25)))])
            .unwrap();
        snap.prove(&[k(50)])
            .verify(&old_root, &[(k(50), None)])
            .unwrap();
        t.prove(&[k(25)])
            .verify(&t.root(), &[(k(25), Some(v(1025)))])
            .unwrap();
    }

    #[test]
    fn proof_encoding_round_trips_and_rejects_tampering() {
        let mut t = Smt::new();
        for i in 0..30 {
            t.insert(k(i), v(i));
        }
        let p = t.prove(&[k(1), k(2), k(500)]);
        let mut w = Writer::new();
        p.encode_to(&mut w);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(MultiProof::decode_from(&mut r).unwrap(), p);
        r.finish("proof").unwrap();
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            assert!(MultiProof::decode_from(&mut r)
                .and_then(|_| r.finish("p"))
                .is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn incremental_root_matches_the_definition(
            ops in proptest::collection::vec((0u32..60, 0u32..1000), 1..80),
            probe in proptest::collection::vec(0u32..80, 1..6),
        ) {
            let mut t = Smt::new();
            let mut map = std::collections::BTreeMap::new();
            for (key, val) in &ops {
                t.insert(k(*key), v(*val));
                map.insert(k(*key), v(*val));
            }
            let leaves: Vec<_> = map.iter().map(|(a, b)| (*a, *b)).collect();
            prop_assert_eq!(t.root(), naive(&leaves, 0));
            prop_assert_eq!(t.len(), map.len());
            let keys: Vec<[u8; 32]> = probe.iter().map(|i| k(*i)).collect();
            let proof = t.prove(&keys);
            let mut claim: Vec<_> = keys.iter().map(|x| (*x, map.get(x).copied())).collect();
            claim.sort();
            claim.dedup();
            prop_assert!(proof.verify(&t.root(), &claim).is_ok());
        }
    }
}

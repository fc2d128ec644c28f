//! The tree against its definition (full depth, no collapse) and a plain map, transitions,
//! encodings, and the proofs the verifier must refuse (a split of a single-leaf subtree, a leaf
//! elsewhere as absence, an early end over two keys).

use super::*;
use crate::hash::sha256;
use proptest::prelude::*;

fn k(i: u32) -> [u8; 32] {
    sha256(&i.to_be_bytes()).0
}

fn v(i: u32) -> Digest {
    sha256(&(i ^ 0xdead).to_be_bytes())
}

/// The definition taken level by level over the full depth: a subtree of no key is EMPTY,
/// of one key its leaf, of more the node over its two halves (one half may be EMPTY).
fn naive(set: &[([u8; 32], Digest)], d: usize) -> Digest {
    match set {
        [] => EMPTY,
        [(key, value)] => leaf_hash(key, value),
        _ => {
            let at = set.partition_point(|(x, _)| !bit(x, d));
            node_hash(&naive(&set[..at], d + 1), &naive(&set[at..], d + 1))
        }
    }
}

fn tree(n: u32) -> Smt {
    let mut t = Smt::new();
    for i in 0..n {
        t.insert(k(i), v(i));
    }
    t
}

/// A key that shares exactly `bits` leading bits with `of`.
fn neighbour(of: &[u8; 32], bits: usize) -> [u8; 32] {
    let mut x = *of;
    x[bits / 8] ^= 0x80 >> (bits % 8);
    x
}

#[test]
fn empty_tree_and_a_single_leaf_at_the_root() {
    let mut t = Smt::new();
    assert_eq!(t.root(), EMPTY);
    t.insert(k(1), v(1));
    // One key: the whole tree collapses to its leaf.
    assert_eq!(t.root(), leaf_hash(&k(1), &v(1)));
    assert_eq!(t.get(&k(1)), Some(v(1)));
    assert_eq!(t.get(&k(2)), None);
    let p = t.prove(&[k(1)]);
    assert_eq!(p.hashes(), 0);
    p.verify(&t.root(), &[(k(1), Some(v(1)))]).unwrap();
    // Absent: the one leaf sits where k(2) would be, and binds another key.
    let p = t.prove(&[k(2)]);
    p.verify(&t.root(), &[(k(2), None)]).unwrap();
    assert!(p.verify(&t.root(), &[(k(2), Some(v(1)))]).is_err());
}

#[test]
fn membership_and_both_kinds_of_non_membership() {
    let t = tree(1000);
    let root = t.root();
    let p = t.prove(&[k(7)]);
    // About log2(1000) ≈ 10 siblings and a few bytes of shape, not 256 levels.
    assert!(p.hashes() <= 16, "{} hashes", p.hashes());
    assert!(p.nbits <= 2 * 20, "{} bits", p.nbits);
    p.verify(&root, &[(k(7), Some(v(7)))]).unwrap();
    assert_eq!(
        p.verify(&root, &[(k(7), Some(v(8)))]),
        Err(ProofError::WrongRoot)
    );
    assert!(p.verify(&root, &[(k(7), None)]).is_err());
    // A key right beside k(7) (sharing 30 bits): k(7)'s leaf sits where it would be.
    let near = neighbour(&k(7), 30);
    let p = t.prove(&[near]);
    assert_eq!(p.others.len(), 1);
    p.verify(&root, &[(near, None)]).unwrap();
    assert!(p.verify(&root, &[(near, Some(v(7)))]).is_err());
    // Absent keys in general, whichever way they end.
    for i in 1000..1100 {
        let p = t.prove(&[k(i)]);
        p.verify(&root, &[(k(i), None)]).unwrap();
        assert!(p.verify(&root, &[(k(i), Some(v(i)))]).is_err());
    }
    // A proof for another key does not prove this one.
    let p7 = t.prove(&[k(7)]);
    assert!(p7.verify(&root, &[(k(8), Some(v(8)))]).is_err());
}

#[test]
fn keys_with_a_long_shared_prefix_lift_through_empty_levels() {
    let mut t = Smt::new();
    let a = k(1);
    let b = neighbour(&a, 200);
    t.insert(a, v(1));
    t.insert(b, v(2));
    let mut set = vec![(a, v(1)), (b, v(2))];
    set.sort();
    assert_eq!(t.root(), naive(&set, 0));
    t.prove(&[b]).verify(&t.root(), &[(b, Some(v(2)))]).unwrap();
    let c = neighbour(&a, 100);
    t.prove(&[c]).verify(&t.root(), &[(c, None)]).unwrap();
    t.insert(c, v(3));
    set.push((c, v(3)));
    set.sort();
    assert_eq!(t.root(), naive(&set, 0));
}

#[test]
fn a_split_of_a_single_leaf_subtree_is_refused() {
    let mut t = Smt::new();
    t.insert(k(1), v(1));
    // Honest: the root ends at k(1)'s leaf. Forged: split the root, k(1)'s half ends at its
    // leaf, the other half is empty — node(leaf, EMPTY), which the definition never makes.
    let mut p = MultiProof::default();
    p.bit(true);
    let left = !bit(&k(1), 0);
    if left {
        p.bit(false);
        p.bit(false);
        p.sibling(EMPTY);
    } else {
        p.sibling(EMPTY);
        p.bit(false);
        p.bit(false);
    }
    assert_eq!(p.root(&[(k(1), Some(v(1)))]), Err(ProofError::Collapse));
}

#[test]
fn a_leaf_elsewhere_does_not_prove_absence() {
    let t = tree(2);
    // Take a key whose path leaves both keys' prefixes at once, and claim one of the two
    // leaves sits at the root's end for it: the leaf does not share the position... at
    // depth 0 every key shares the prefix, so forge one level down instead.
    let a = k(0);
    let far = neighbour(&a, 0); // parts from `a` at the first bit
    let mut p = MultiProof::default();
    p.bit(true); // split the root
    let far_left = !bit(&far, 0);
    let ends_with_a = |p: &mut MultiProof| {
        p.bit(false);
        p.bit(true);
        p.others.push((a, v(0)));
    };
    if far_left {
        ends_with_a(&mut p);
        p.sibling(t.root());
    } else {
        p.sibling(t.root());
        ends_with_a(&mut p);
    }
    assert_eq!(p.root(&[(far, None)]), Err(ProofError::StrayLeaf));
    // A carried leaf that is one of the keys asked about is refused too.
    let mut p = MultiProof::default();
    p.bit(false);
    p.bit(true);
    p.others.push((a, v(0)));
    assert_eq!(p.root(&[(a, None)]), Err(ProofError::StrayLeaf));
}

#[test]
fn transition_proof_gives_old_and_new_root() {
    let mut t = tree(50);
    let old = t.root();
    let near = neighbour(&k(3), 40);
    let touched = [k(3), k(77), k(12), near];
    let proof = t.prove(&touched);
    t.insert(k(3), v(300));
    t.insert(k(77), v(77));
    t.insert(k(12), v(1200));
    t.insert(near, v(5));
    let mut before: Vec<_> = vec![
        (k(3), Some(v(3))),
        (k(77), None),
        (k(12), Some(v(12))),
        (near, None),
    ];
    let mut after: Vec<_> = vec![
        (k(3), Some(v(300))),
        (k(77), Some(v(77))),
        (k(12), Some(v(1200))),
        (near, Some(v(5))),
    ];
    before.sort();
    after.sort();
    let after: Vec<_> = after.into_iter().map(|(a, b)| (a, b.unwrap())).collect();
    assert_eq!(proof.root(&before).unwrap(), old);
    assert_eq!(proof.root_after(&after).unwrap(), t.root());
    // Claiming another key changed too does not fit the proof.
    let mut more = after.clone();
    more.push((k(5), v(9)));
    more.sort();
    assert!(proof.root_after(&more).is_err() || proof.root_after(&more).unwrap() != t.root());
}

#[test]
fn an_early_end_over_two_keys_is_a_second_encoding_and_refused() {
    // Two keys that part at the first bit: the honest proof for `a` splits the root.
    let a = [0u8; 32];
    let mut b = [0u8; 32];
    b[0] = 0x80;
    let mut t = Smt::new();
    t.insert(a, v(1));
    t.insert(b, v(2));
    let honest = t.prove(&[a]);
    honest.verify(&t.root(), &[(a, Some(v(1)))]).unwrap();
    // Forged: end at the root, carrying b's leaf beside a. Same root by the definition,
    // another encoding: refused.
    let mut forged = MultiProof::default();
    forged.bit(false);
    forged.bit(true);
    forged.others.push((b, v(2)));
    assert_eq!(forged.root(&[(a, Some(v(1)))]), Err(ProofError::Shape));
    // After a batch, an end may hold several keys: that is where new ones land.
    let empty = Smt::new().prove(&[a, b]);
    assert_eq!(empty.root(&[(a, None), (b, None)]).unwrap(), EMPTY);
    assert_eq!(empty.root_after(&[(a, v(1)), (b, v(2))]).unwrap(), t.root());
}

#[test]
fn a_clone_is_a_snapshot_that_later_updates_leave_intact() {
    let mut t = tree(40);
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
    let t = tree(30);
    let p = t.prove(&[k(1), k(2), k(500), neighbour(&k(3), 50)]);
    assert!(!p.others.is_empty());
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
    // A bit set past the count is a second encoding.
    let mut q = p.clone();
    if !q.nbits.is_multiple_of(8) {
        if let Some(b) = q.bits.last_mut() {
            *b |= 0x80;
        }
        let mut w = Writer::new();
        q.encode_to(&mut w);
        assert!(MultiProof::decode_from(&mut Reader::new(w.as_slice())).is_err());
    }
}

/// A key near `base`: it shares `bits` leading bits, then its own.
fn near(base: &[u8; 32], bits: usize, salt: u32) -> [u8; 32] {
    let mut x = neighbour(base, bits.min(255));
    let tail = k(salt);
    for i in bits + 1..DEPTH {
        let on = bit(&tail, i);
        let mask = 0x80 >> (i % 8);
        if on {
            x[i / 8] |= mask;
        } else {
            x[i / 8] &= !mask;
        }
    }
    x
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn transition_proofs_give_the_old_root_and_the_trees_root_after_the_batch(
        start in proptest::collection::vec((0usize..256, 0u32..50), 0..40),
        batch in proptest::collection::vec((0usize..256, 0u32..60, 0u32..1000), 1..12),
    ) {
        // Keys clustered around one base, sharing long prefixes (down to the last bit).
        let base = k(424242);
        let mut t = Smt::new();
        for (bits, salt) in &start {
            t.insert(near(&base, *bits, *salt), v(*salt));
        }
        let old = t.root();
        let mut after = std::collections::BTreeMap::new();
        for (bits, salt, val) in &batch {
            after.insert(near(&base, *bits, *salt), v(*val));
        }
        let keys: Vec<[u8; 32]> = after.keys().copied().collect();
        let proof = t.prove(&keys);
        let before: Vec<_> = keys.iter().map(|x| (*x, t.get(x))).collect();
        prop_assert_eq!(proof.root(&before), Ok(old));
        for (x, val) in &after {
            t.insert(*x, *val);
        }
        let new: Vec<_> = after.iter().map(|(a, b)| (*a, *b)).collect();
        prop_assert_eq!(proof.root_after(&new), Ok(t.root()));
        // The proof's encoding round-trips to the same proof (one encoding).
        let mut w = Writer::new();
        proof.encode_to(&mut w);
        let mut r = Reader::new(w.as_slice());
        prop_assert_eq!(MultiProof::decode_from(&mut r).ok(), Some(proof));
    }

    #[test]
    fn the_tree_answers_as_a_plain_map_and_its_root_is_the_definition(
        ops in proptest::collection::vec((0u32..60, 0u32..1000), 1..80),
        probe in proptest::collection::vec(0u32..80, 1..6),
        lie in 0usize..6,
    ) {
        let mut t = Smt::new();
        let mut map = std::collections::BTreeMap::new();
        for (key, val) in &ops {
            t.insert(k(*key), v(*val));
            map.insert(k(*key), v(*val));
        }
        let set: Vec<_> = map.iter().map(|(a, b)| (*a, *b)).collect();
        prop_assert_eq!(t.root(), naive(&set, 0));
        prop_assert_eq!(t.len(), map.len());
        let keys: Vec<[u8; 32]> = probe.iter().map(|i| k(*i)).collect();
        let proof = t.prove(&keys);
        let mut claim: Vec<_> = keys.iter().map(|x| (*x, map.get(x).copied())).collect();
        claim.sort();
        claim.dedup();
        prop_assert!(proof.verify(&t.root(), &claim).is_ok());
        // Any one claim changed (present ↔ absent, or another value) fails.
        let i = lie % claim.len();
        claim[i].1 = match claim[i].1 {
            Some(_) if lie % 2 == 0 => None,
            Some(x) => Some(sha256(x.as_bytes())),
            None => Some(v(1)),
        };
        prop_assert!(proof.verify(&t.root(), &claim).is_err());
    }
}

use super::*;
use crate::cert::{Authority, EnrolRequest, Registry, Scheme};
use crate::item::Item;
use crate::keys::Keypair;
use crate::keys::PublicKey;
use crate::kind::Kind;
use crate::misbehaviour::Misbehaviour;
use crate::offer::Currency;
use crate::offer::SignedOffer;
use crate::retrieve::steps::{check_monitor, ListPage, StepOutcome, StepRetrieval};

/// The clock of these tests (unix seconds): steps bind it, buyers read at it.
const NOW: u64 = 1_700_000_000;
use crate::statement::Ed25519StatementSigner;
use crate::verify::*;
use rand_core::OsRng;

struct Node {
    signer: Ed25519StatementSigner,
    cert: SignedCertificate,
    trusted: Vec<PublicKey>,
    state: StepState,
    lists: BTreeMap<ItemKey, Vec<Vec<u8>>>,
    steps: BTreeMap<u64, StepProof>,
}

impl Node {
    fn new() -> Self {
        let node = Keypair::generate(&mut OsRng);
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        Self::enrolled(&node, &auth)
    }

    /// `node` enrolled by `auth` with a fresh device (and a fresh registry: an authority that
    /// forgets the PeerId it certified issues it a second certificate).
    fn enrolled(node: &Keypair, auth: &Authority) -> Self {
        let peer = PeerId::from_ed25519(&node.public());
        let signer = Ed25519StatementSigner::new(Keypair::generate(&mut OsRng), peer);
        let req = EnrolRequest::new(
            node,
            signer.device_key(),
            Scheme::Merkle,
            vec![signer.sign_read(0, 5, [1; 32])],
            None,
        );
        let cert = auth
            .certify(&mut Registry::default(), &req, [1; 32], 0)
            .unwrap();
        let state = StepState::new(cert.cert.counters[0]);
        Self {
            signer,
            trusted: vec![auth.public()],
            cert,
            state,
            lists: BTreeMap::new(),
            steps: BTreeMap::new(),
        }
    }

    fn peer(&self) -> PeerId {
        self.signer.peer().clone()
    }

    /// A reader of `item` from this node with `nonce` and the default budget.
    fn reader(&self, item: &Item, nonce: [u8; 32]) -> StepRetrieval {
        StepRetrieval::new(
            self.trusted.clone(),
            self.peer(),
            item.clone(),
            nonce,
            crate::retrieve::Budget::default(),
            NOW,
        )
    }

    /// Answers `r`'s list requests, from `next` on, with item's list as this node serves it.
    fn serve_pages(
        &self,
        item: &Item,
        r: &mut StepRetrieval,
        next: Option<crate::ListRequest>,
    ) -> Result<(), Misbehaviour> {
        let list = self
            .lists
            .get(&item.key())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        serve_list(list, r, next)
    }

    fn publish(&mut self, offers: &[SignedOffer]) -> Vec<StepReceipt> {
        self.publish_at(offers, NOW)
    }

    /// Publishes `offers` as one step, the node's clock at `now`.
    fn publish_at(&mut self, offers: &[SignedOffer], now: u64) -> Vec<StepReceipt> {
        let batch = offers.iter().map(|o| (o.offer.key, o.to_bytes())).collect();
        let p = self.state.prepare(batch, now);
        let inc = self
            .signer
            .sign_inc(0, p.header.value, p.header.payload(&self.peer()));
        let sp = self.state.apply(p, inc);
        for (d, _) in &sp.old {
            let list = self.state.list(d).unwrap();
            self.lists
                .insert(*d, list.records.iter().map(|r| r.bytes.to_vec()).collect());
        }
        self.steps.insert(sp.step.header.value, sp.clone());
        (0..offers.len() as u32)
            .map(|position| StepReceipt {
                cert_id: self.cert.id(),
                step: std::sync::Arc::new(sp.clone()),
                position,
            })
            .collect()
    }

    fn head(&self, item: &Item, nonce: [u8; 32]) -> StepHead {
        self.state.head(
            self.cert.clone(),
            self.signer.sign_read(0, self.state.value(), nonce),
            &item.key(),
        )
    }

    fn retrieve(&self, item: &Item, audits: u64) -> Result<StepOutcome, Misbehaviour> {
        self.retrieve_with(item, audits, |h| h, |_, l| l.to_vec())
    }

    fn retrieve_with(
        &self,
        item: &Item,
        audits: u64,
        head_f: impl Fn(StepHead) -> StepHead,
        list_f: impl Fn(&ItemKey, &[Vec<u8>]) -> Vec<Vec<u8>>,
    ) -> Result<StepOutcome, Misbehaviour> {
        let mut r = self.reader(item, [9; 32]);
        let head = head_f(self.head(item, [9; 32]));
        let next = r.on_head_bytes(&head.to_bytes())?;
        let list = list_f(
            &item.key(),
            self.lists
                .get(&item.key())
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        );
        serve_list(&list, &mut r, next)?;
        r.check_list()?;
        for v in r.plan_audits(audits, &mut OsRng) {
            // As the node's store answers: the step at v, or the (gap) step above it.
            let (_, sp) = self.steps.range(v..).next().unwrap();
            r.on_audit_bytes(v, &sp.to_bytes())?;
        }
        r.finish()
    }

    /// The device counts `lost` values whose steps a crash loses; the node covers them
    /// with a gap step from the state it has (its tree is at the last stored step).
    fn crash_and_gap(&mut self, lost: u64) -> StepProof {
        let v = self.state.value();
        for i in 1..=lost {
            let _ = self.signer.sign_inc(0, v + i, Digest([7; 32]));
        }
        self.gap_step(v + lost + 1)
    }

    fn gap_step(&mut self, value: u64) -> StepProof {
        let p = self.state.prepare_gap(value);
        let inc = self
            .signer
            .sign_inc(0, value, p.header.payload(&self.peer()));
        let sp = self.state.apply(p, inc);
        self.steps.insert(value, sp.clone());
        sp
    }
}

/// Answers `r`'s list requests, from `next` on, with pages of `list`.
fn serve_list(
    list: &[Vec<u8>],
    r: &mut StepRetrieval,
    mut next: Option<crate::ListRequest>,
) -> Result<(), Misbehaviour> {
    while let Some(req) = next {
        let page = ListPage {
            offers: list
                .iter()
                .skip(req.from as usize)
                .take(req.count as usize)
                .cloned()
                .collect(),
        };
        next = r.on_page_bytes(&page.to_bytes())?;
    }
    Ok(())
}

fn offer(seller: &Keypair, item: &Item, price: u64) -> SignedOffer {
    SignedOffer::sign(seller, item, price, Currency::EUR, 1, NOW + 86_400, price)
}

fn items() -> Vec<Item> {
    (0..20)
        .map(|i| Item::new(&format!("m item {i}")).unwrap())
        .collect()
}

/// After a crash loses steps, a gap step covers them: an empty step binding the last
/// stored step's value. Buyers auditing every value, the lost ones included, accept it and
/// report the gap; the steps after it verify for their sellers as usual.
#[test]
fn a_gap_step_covers_lost_values_and_honest_nodes_pass_every_audit() {
    let mut node = Node::new();
    let items = items();
    let seller = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&seller, &items[0], 10)]);
    let gap = node.crash_and_gap(3);
    assert_eq!(gap.step.header.gap(), Some((7, 9)));
    assert_eq!(gap.step.header.prev_value, 6);
    assert!(verify_step(&node.cert, &node.peer(), &gap)
        .unwrap()
        .is_empty());
    // The gap step at the head, then with a step after it.
    let out = node.retrieve(&items[0], 100).unwrap();
    assert_eq!((out.offers.len(), out.gaps.len()), (1, 1));
    assert_eq!((out.gaps[0].first, out.gaps[0].last), (7, 9));
    let o = offer(&seller, &items[1], 20);
    let r = node.publish(std::slice::from_ref(&o));
    check_step_receipt(&node.trusted, &node.peer(), &node.cert, &o, &r[0]).unwrap();
    let out = node.retrieve(&items[0], 100).unwrap();
    assert_eq!(
        out.audited.len(),
        6,
        "every value from the base, lost ones included"
    );
    assert_eq!(out.gaps.len(), 1);
    // Decoders keep prev_value below value.
    let mut bytes = gap.step.header.to_bytes();
    bytes[13..21].copy_from_slice(&10u64.to_be_bytes());
    assert!(StepHeader::from_bytes(&bytes).is_err());
}

/// Cheats with gap steps: offers smuggled into one, an audit of a real step answered with a
/// gap step that does not cover it, a gap step that claims another predecessor, and a gap
/// step over receipted steps (caught by the receipt holder's monitor, with evidence).
#[test]
fn cheating_with_gap_steps_is_caught() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let oa = offer(&alice, &items[0], 10);
    let ra = node.publish(std::slice::from_ref(&oa));
    let pa = check_step_receipt(&node.trusted, &node.peer(), &node.cert, &oa, &ra[0]).unwrap();
    node.publish(&[offer(&alice, &items[1], 11)]);
    // A gap step that holds offers.
    let mut stuffed = node.state.clone().prepare_gap(10);
    stuffed.header.batch_len = 1;
    stuffed.batch = vec![offer(&alice, &items[2], 12).to_bytes()];
    let inc = node
        .signer
        .sign_inc(0, 10, stuffed.header.payload(&node.peer()));
    let sp = node.state.clone().apply(stuffed, inc);
    assert_eq!(
        verify_step(&node.cert, &node.peer(), &sp)
            .unwrap_err()
            .kind(),
        Kind::BadStep
    );
    // A gap step that names a predecessor it does not chain from.
    let mut forged = node.state.clone();
    let p = forged.prepare_gap(10);
    let inc = node.signer.sign_inc(0, 10, p.header.payload(&node.peer()));
    let mut sp = forged.apply(p, inc);
    sp.prev = Some(node.steps[&6].step.clone());
    assert_eq!(
        verify_step(&node.cert, &node.peer(), &sp)
            .unwrap_err()
            .kind(),
        Kind::BadStep
    );
    // An audit of step 7 (real) answered with a gap step over 8..9 only.
    let gap = {
        let mut n2 = node.state.clone();
        let p = n2.prepare_gap(10);
        let inc = node.signer.sign_inc(0, 10, p.header.payload(&node.peer()));
        n2.apply(p, inc)
    };
    let mut r = node.reader(&items[0], [9; 32]);
    r.on_head_bytes(&node.head(&items[0], [9; 32]).to_bytes())
        .unwrap();
    assert_eq!(
        r.on_audit_bytes(7, &gap.to_bytes()).unwrap_err().kind(),
        Kind::BadStep
    );
    // A gap step over the receipted steps: the node restarts from the base's empty tree,
    // covering steps 6 and 7 as "lost". Buyers see a consistent answer; Alice's monitor
    // finds her offer gone and holds transferable removal evidence.
    node.state = StepState::new(node.cert.cert.counters[0]);
    node.lists.clear();
    node.gap_step(8);
    let out = node.retrieve(&items[0], 0).unwrap();
    assert_eq!(out.gaps.len(), 1);
    let Misbehaviour::Evidence(e) = check_monitor(&ra[0], &oa, &pa, &out).unwrap_err() else {
        panic!("removal evidence expected")
    };
    assert_eq!(e.kind(), Kind::Removal);
    e.verify(&node.trusted).unwrap();
}

#[test]
fn honest_steps_verify_for_sellers_buyers_and_auditors() {
    let mut node = Node::new();
    let items = items();
    let seller = Keypair::generate(&mut OsRng);
    let mut all = Vec::new();
    for round in 0..5u64 {
        let batch: Vec<SignedOffer> = (0..8)
            .map(|i| {
                offer(
                    &seller,
                    &items[(i * 3 + round as usize) % 20],
                    100 + round * 10 + i as u64,
                )
            })
            .collect();
        let receipts = node.publish(&batch);
        for (o, r) in batch.iter().zip(&receipts) {
            let p = check_step_receipt(&node.trusted, &node.peer(), &node.cert, o, r).unwrap();
            all.push((o.clone(), p, r.clone()));
        }
    }
    // An empty step is legal.
    node.publish(&[]);
    for item in &items {
        let out = node.retrieve(item, 3).unwrap();
        let expected = node.lists.get(&item.key()).map(Vec::len).unwrap_or(0);
        assert_eq!(out.offers.len(), expected);
        assert_eq!(out.audited.len(), 3);
        assert!((out.detection - 3.0 / 6.0).abs() < 1e-9);
    }
    // Monitoring: every receipted offer is where its receipt says.
    for (o, p, r) in &all {
        let item = Item::new(&o.offer.description).unwrap();
        check_monitor(r, o, p, &node.retrieve(&item, 0).unwrap()).unwrap();
    }
    // Absent item: empty-branch proof.
    let out = node
        .retrieve(&Item::new("nobody sells this").unwrap(), 1)
        .unwrap();
    assert!(out.offers.is_empty());
}

#[test]
fn forged_or_stale_root_is_caught_by_the_buyer() {
    let mut node = Node::new();
    let items = items();
    let s = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&s, &items[0], 1), offer(&s, &items[1], 2)]);
    node.publish(&[offer(&s, &items[0], 3)]);
    // A forged root: the root does not travel, the buyer folds it from d's leaf and proof,
    // so another leaf (a shorter list) or another proof gives another root, the rebuilt Inc
    // binds it, and the device's signature does not hold over that.
    for forge in [
        |h: &mut StepHead| {
            if let Some(l) = h.leaf.as_mut() {
                l.n -= 1;
            }
        },
        |h: &mut StepHead| {
            if let Some(l) = h.leaf.as_mut() {
                l.root = Digest([7; 32]);
            }
        },
    ] {
        let err = node
            .retrieve_with(
                &items[0],
                0,
                |mut h| {
                    forge(&mut h);
                    h
                },
                |_, l| l.to_vec(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), Kind::BadStatementSignature, "{err}");
    }
    // A stale step (an older, genuine one): not the step at t.
    let old = HeadStep::of(&node.steps.get(&6).unwrap().step);
    let err = node
        .retrieve_with(
            &items[0],
            0,
            move |mut h| {
                h.step = Some(old.clone());
                h
            },
            |_, l| l.to_vec(),
        )
        .unwrap_err();
    // Its Inc is rebuilt over the root the current proof folds to, which it never signed.
    assert_eq!(err.kind(), Kind::BadStatementSignature, "{err}");
    // Dropping an offer from d's list: the list no longer hashes to the leaf.
    let err = node
        .retrieve_with(&items[0], 0, |h| h, |_, l| l[1..].to_vec())
        .unwrap_err();
    assert!(
        matches!(err.kind(), Kind::BadProof | Kind::Truncated),
        "{err}"
    );
    let err = node
        .retrieve_with(
            &items[0],
            0,
            |mut h| {
                if let Some(l) = h.leaf.as_mut() {
                    l.n -= 1;
                }
                h
            },
            |_, l| l[1..].to_vec(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BadStatementSignature, "{err}");
    // A proof for another key.
    let (_, other_proof) = node.state.prove(&items[1].key());
    let err = node
        .retrieve_with(
            &items[0],
            0,
            move |mut h| {
                h.proof = other_proof.clone();
                h
            },
            |_, l| l.to_vec(),
        )
        .unwrap_err();
    // It folds to no root for d, or to another one than the device signed.
    assert!(
        matches!(err.kind(), Kind::Malformed | Kind::BadStatementSignature),
        "{err}"
    );
}

#[test]
fn a_later_step_that_drops_an_offer_is_caught() {
    // The node rebuilds d's list without a receipted offer and commits a step to it.
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let bob = Keypair::generate(&mut OsRng);
    let ra = node.publish(&[offer(&alice, &items[0], 50)]);
    let pa = check_step_receipt(
        &node.trusted,
        &node.peer(),
        &node.cert,
        &offer(&alice, &items[0], 50),
        &ra[0],
    )
    .unwrap();
    // Cheat: reset d's leaf (forget Alice's offer) and commit Bob's offer in a step.
    node.state.lists.remove(&items[0].key());
    node.lists.remove(&items[0].key());
    let rb = node.publish(&[offer(&bob, &items[0], 40)]);
    // Bob, verifying his step, sees the old leaf claimed absent under a root where it is
    // present: caught at publish.
    let err = check_step_receipt(
        &node.trusted,
        &node.peer(),
        &node.cert,
        &offer(&bob, &items[0], 40),
        &rb[0],
    )
    .unwrap_err();
    assert_eq!(err.kind(), Kind::BadStep);
    // And Alice's monitoring finds her offer gone.
    let out = node.retrieve(&items[0], 0);
    // The node keeps its tree consistent with the shortened list, so the buyer sees a
    // valid answer; only Alice, holding her receipt, can tell.
    match out {
        Err(e) => panic!("{e}"),
        Ok(o) => {
            let err = check_monitor(&ra[0], &offer(&alice, &items[0], 50), &pa, &o).unwrap_err();
            let Misbehaviour::Evidence(e) = err else {
                panic!("{err}")
            };
            assert_eq!(e.kind(), Kind::Removal);
            // Transferable: a third party verifies it with the authority key alone.
            let e = crate::misbehaviour::Evidence::from_bytes(&e.to_bytes()).unwrap();
            let what = e.verify(&node.trusted).unwrap();
            assert!(what.contains("without it"), "{what}");
        }
    }
}

#[test]
fn a_step_that_leaves_out_a_batch_offer_or_changes_another_key_is_caught_by_sellers() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let sybil = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[2], 9)]);
    let a = offer(&alice, &items[0], 10);
    let s = offer(&sybil, &items[1], 11);
    let receipts = node.publish(&[a.clone(), s.clone()]);
    check_step_receipt(&node.trusted, &node.peer(), &node.cert, &a, &receipts[0]).unwrap();
    // The receipt's step with the sybil's offer taken out of the batch (the proof then
    // leaves out another seller's offer): batch_root and the transition no longer fit.
    let mut r = receipts[0].clone();
    std::sync::Arc::make_mut(&mut r.step).batch.remove(1);
    assert_eq!(
        check_step_receipt(&node.trusted, &node.peer(), &node.cert, &a, &r)
            .unwrap_err()
            .kind(),
        Kind::BadStep
    );
    // A bad step made with a sybil seller: the node also rewrites item 2's leaf.
    let mut state = node.state.clone();
    let p = state.prepare(
        vec![(items[3].key(), offer(&sybil, &items[3], 12).to_bytes())],
        NOW,
    );
    let mut forged = p.clone();
    state
        .tree
        .insert(items[2].key().0 .0, LiveList::default().leaf().value_hash());
    forged.header.new_root = state.tree.root();
    let inc = node
        .signer
        .sign_inc(0, forged.header.value, forged.header.payload(&node.peer()));
    let sp = node.state.clone().apply(forged, inc);
    let err = verify_step(&node.cert, &node.peer(), &sp).unwrap_err();
    assert_eq!(err.kind(), Kind::BadStep);
}

#[test]
fn roots_that_do_not_chain_are_transferable_evidence() {
    let mut node = Node::new();
    let items = items();
    let s = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&s, &items[0], 1)]);
    // The node starts the next step from a root of its own choosing.
    let mut p = node.state.prepare(
        vec![(items[1].key(), offer(&s, &items[1], 2).to_bytes())],
        NOW,
    );
    p.header.prev_root = Digest([3; 32]);
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    let sp = node.state.apply(p, inc);
    let err = verify_step(&node.cert, &node.peer(), &sp).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind(), Kind::RootsDoNotChain);
    let e = crate::misbehaviour::Evidence::from_bytes(&e.to_bytes()).unwrap();
    assert!(e
        .verify(&node.trusted)
        .unwrap()
        .contains("did not end with"));
}

#[test]
fn a_bad_step_is_caught_by_audits_at_the_predicted_rate() {
    // One bad step among many; the buyer audits s of them. Over many seeded runs, the
    // rate of detection matches π = s / (t − base) within a binomial bound.
    use rand::{rngs::StdRng, SeedableRng};
    let mut node = Node::new();
    let items = items();
    let s = Keypair::generate(&mut OsRng);
    let steps = 20u64;
    for i in 0..steps {
        node.publish(&[offer(&s, &items[(i % 20) as usize], 1000 + i)]);
    }
    // Corrupt one step's stored proof (as a cheating node would have to serve it).
    let bad = node.state.counter.initial + 7;
    let sp = node.steps.get_mut(&bad).unwrap();
    sp.step.header.batch_len += 1;
    let audits = 4u64;
    let pi = audits as f64 / steps as f64;
    let runs = 400;
    let mut caught = 0;
    for seed in 0..runs {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut r = node.reader(&items[0], [9; 32]);
        let head = node.head(&items[0], [9; 32]);
        let next = r.on_head_bytes(&head.to_bytes()).unwrap();
        node.serve_pages(&items[0], &mut r, next).unwrap();
        r.check_list().unwrap();
        let mut failed = false;
        for v in r.plan_audits(audits, &mut rng) {
            if r.on_audit_bytes(v, &node.steps[&v].to_bytes()).is_err() {
                failed = true;
            }
        }
        caught += usize::from(failed);
    }
    let rate = caught as f64 / runs as f64;
    let sd = (pi * (1.0 - pi) / runs as f64).sqrt();
    assert!(
        (rate - pi).abs() < 4.0 * sd,
        "detected {rate}, predicted {pi} ± {}",
        4.0 * sd
    );
}

/// A node that removed a receipted offer cannot dodge the monitor's evidence by refusing the
/// audits that follow: the placement is checked right after the list, before any audit is
/// asked for, and the removal evidence is in hand already.
#[test]
fn a_removal_is_caught_before_any_audit_is_asked() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let oa = offer(&alice, &items[0], 10);
    let ra = node.publish(std::slice::from_ref(&oa));
    let pa = check_step_receipt(&node.trusted, &node.peer(), &node.cert, &oa, &ra[0]).unwrap();
    node.publish(&[offer(&alice, &items[1], 11)]);
    // The node restarts from the empty tree and covers the receipted steps with a gap step:
    // buyers see a consistent answer without Alice's offer.
    node.state = StepState::new(node.cert.cert.counters[0]);
    node.lists.clear();
    node.gap_step(8);
    let mut r = node.reader(&items[0], [9; 32]);
    let head = node.head(&items[0], [9; 32]);
    assert!(
        r.on_head_bytes(&head.to_bytes()).unwrap().is_none(),
        "no list to page"
    );
    r.check_list().unwrap();
    let mine = [(oa.clone(), ra[0].clone(), pa)];
    let err = r.check_placements(&mine).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("removal evidence expected, got {err}")
    };
    assert_eq!(e.kind(), Kind::Removal);
    e.verify(&node.trusted).unwrap();
    // An intact placement passes the same check.
    let mut honest = Node::new();
    let rb = honest.publish(std::slice::from_ref(&oa));
    let pb =
        check_step_receipt(&honest.trusted, &honest.peer(), &honest.cert, &oa, &rb[0]).unwrap();
    let mut r = honest.reader(&items[0], [9; 32]);
    let next = r
        .on_head_bytes(&honest.head(&items[0], [9; 32]).to_bytes())
        .unwrap();
    honest.serve_pages(&items[0], &mut r, next).unwrap();
    r.check_list().unwrap();
    r.check_placements(&[(oa, rb[0].clone(), pb)]).unwrap();
}

#[test]
fn the_payload_binds_every_field_of_the_top_and_of_the_rest() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let r = node.publish(&[offer(&alice, &items[0], 10)]);
    let h = r[0].step.step.header;
    let peer = node.peer();
    // An ordinary step's payload is its top's: a buyer needs only the top.
    assert_eq!(h.payload(&peer), h.top().payload(&peer));
    let changes: Vec<fn(&mut StepHeader)> = vec![
        |h| h.value += 1,
        |h| h.new_root = Digest([7; 32]),
        |h| h.at += 1,
        |h| h.gap_link += 1,
        |h| h.prev_root = Digest([7; 32]),
        |h| h.batch_root = Digest([7; 32]),
        |h| h.batch_len += 1,
        |h| h.total_offers += 1,
        |h| h.removal_root = Digest([7; 32]),
        |h| h.removal_count += 1,
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut g = h;
        change(&mut g);
        assert_ne!(g.payload(&peer), h.payload(&peer), "field {i}");
    }
    // prev_value inside the rest too (moving it below value − 1 makes a gap step, which binds
    // another tag; within the rest alone its hash changes).
    let mut g = h;
    g.prev_value = g.prev_value.wrapping_sub(1);
    assert_ne!(g.rest_hash(), h.rest_hash());
    // Only the rest's hash reaches the top.
    let mut g = h;
    g.total_offers += 1;
    assert_eq!(g.top().new_root, h.top().new_root);
    assert_ne!(g.top().rest, h.top().rest);
}

#[test]
fn a_step_that_claims_removals_it_does_not_carry_is_refused_and_the_old_format_is_refused() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let mut state = node.state.clone();
    let a = offer(&alice, &items[0], 10);
    let p = state.prepare(vec![(items[0].key(), a.to_bytes())], NOW);
    for (root, count) in [(Digest([3; 32]), 0), (Digest::default(), 2)] {
        let mut forged = p.clone();
        forged.header.removal_root = root;
        forged.header.removal_count = count;
        let inc = node
            .signer
            .sign_inc(0, forged.header.value, forged.header.payload(&node.peer()));
        let sp = node.state.clone().apply(forged, inc);
        let err = verify_step(&node.cert, &node.peer(), &sp).unwrap_err();
        assert_eq!(err.kind(), Kind::BadStep, "{err}");
    }
    // A step header of an earlier format (3) is refused by its version, not misread.
    let r = node.publish(&[a]);
    let mut bytes = r[0].step.step.header.to_bytes();
    assert_eq!(bytes[0], VERSION);
    bytes[0] = 3;
    assert!(matches!(
        StepHeader::from_bytes(&bytes),
        Err(DecodeError::UnknownVersion { .. })
    ));
}

#[test]
fn an_empty_step_that_carries_proof_bytes_is_refused() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[0], 10)]);
    let mut state = node.state.clone();
    let honest = state.prepare(Vec::new(), NOW);
    let mut forged = honest.clone();
    forged.proof = state.tree.prove(&[items[0].key().0 .0]);
    for (p, ok) in [(honest, true), (forged, false)] {
        let inc = node
            .signer
            .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
        let sp = node.state.clone().apply(p, inc);
        let verdict = verify_step(&node.cert, &node.peer(), &sp);
        assert_eq!(verdict.is_ok(), ok, "{verdict:?}");
        if let Err(e) = verdict {
            assert_eq!(e.kind(), Kind::BadStep);
        }
    }
}

mod head;
mod horizon;
mod live;

//! The soundness holes an outside review found (issue 9), each tried by a cheating node that
//! is caught, or an honest node that is not accused: audits answered by gap steps off the
//! chain, replies of another scheme than the certificate's, budgets a node could steer, and
//! numbers from a peer that overflowed.
#![allow(clippy::unwrap_used, clippy::panic)]

use candor_core::*;
use rand_core::OsRng;
use std::collections::BTreeMap;

/// The clock of these tests (unix seconds): steps bind it, buyers read at it.
const NOW: u64 = 1_700_000_000;

/// A scheme-M node in one process: an honest state, plus the means to sign any step.
struct StepNode {
    signer: Ed25519StatementSigner,
    cert: SignedCertificate,
    trusted: Vec<PublicKey>,
    state: StepState,
    /// Every item's list as the node serves it.
    lists: BTreeMap<ItemKey, Vec<Vec<u8>>>,
    /// The step proof the node answers an audit of each value with.
    steps: BTreeMap<u64, StepProof>,
}

impl StepNode {
    fn new(scheme: Scheme) -> Self {
        let node = Keypair::generate(&mut OsRng);
        let peer = PeerId::from_ed25519(&node.public());
        let signer = Ed25519StatementSigner::new(Keypair::generate(&mut OsRng), peer);
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        let req = EnrolRequest::new(
            &node,
            signer.device_key(),
            scheme,
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

    /// A view of `other` (same device key and certificate) for serving a doctored answer.
    fn from_parts(other: &StepNode) -> Self {
        Self {
            signer: other.signer.clone(),
            cert: other.cert.clone(),
            trusted: other.trusted.clone(),
            state: other.state.clone(),
            lists: other.lists.clone(),
            steps: other.steps.clone(),
        }
    }

    fn sign(&self, header: &StepHeader) -> SignedInc {
        self.signer
            .sign_inc(0, header.value, header.payload(&self.peer()))
    }

    /// An honest step over `offers`.
    fn publish(&mut self, offers: &[SignedOffer]) -> Vec<StepReceipt> {
        let batch = offers.iter().map(|o| (o.offer.key, o.to_bytes())).collect();
        let p = self.state.prepare(batch, NOW);
        let inc = self.sign(&p.header);
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

    /// An honest gap step at `value` over the values after the last step (which a crash
    /// lost: the device counted them, nothing of them left the node).
    fn gap_step(&mut self, value: u64) -> StepProof {
        let p = self.state.prepare_gap(value);
        let inc = self.sign(&p.header);
        let sp = self.state.apply(p, inc);
        self.steps.insert(value, sp.clone());
        sp
    }

    fn head(&self, item: &Item, nonce: [u8; 32]) -> StepHead {
        self.state.head(
            self.cert.clone(),
            self.signer.sign_read(0, self.state.value(), nonce),
            &item.key(),
        )
    }

    /// A retrieve that audits every value, each answered by `answer` (the node's own steps
    /// by default).
    fn retrieve_all(
        &self,
        item: &Item,
        budget: Budget,
        head: StepHead,
        answer: &dyn Fn(u64) -> StepProof,
    ) -> Result<StepOutcome, Misbehaviour> {
        let mut r = self.reader(item, budget);
        let next = r.on_head_bytes(&head.to_bytes())?;
        self.serve_list(item, &mut r, next)?;
        r.check_list()?;
        for v in r.plan_audits(u64::MAX, &mut OsRng) {
            r.on_audit_bytes(v, &answer(v).to_bytes())?;
        }
        r.finish()
    }

    /// A reader of `item` from this node, with nonce [9; 32] (the one `head` is asked for).
    fn reader(&self, item: &Item, budget: Budget) -> StepRetrieval {
        StepRetrieval::new(
            self.trusted.clone(),
            self.peer(),
            item.clone(),
            [9; 32],
            budget,
            NOW,
        )
    }

    /// Answers `r`'s list requests, from `next` on, with the pages this node serves.
    fn serve_list(
        &self,
        item: &Item,
        r: &mut StepRetrieval,
        mut next: Option<ListRequest>,
    ) -> Result<(), Misbehaviour> {
        let list = self.lists.get(&item.key()).cloned().unwrap_or_default();
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

    /// What an honest store answers an audit of `v` with: the step at v, or the first one
    /// above it (the gap step over a lost value).
    fn own(&self, v: u64) -> StepProof {
        self.steps.range(v..).next().unwrap().1.clone()
    }

    fn retrieve(&self, item: &Item) -> Result<StepOutcome, Misbehaviour> {
        self.retrieve_all(item, Budget::default(), self.head(item, [9; 32]), &|v| {
            self.own(v)
        })
    }
}

/// What `verify_step` says of a step whose new root is not its transition's.
const NEW_ROOT_WRONG: &str =
    "new_root is not the old tree with exactly the step's additions and removals";

/// An offer at `price` by a seller of its own (one derived from `seller` and the price): a
/// live list holds one record per seller (DESIGN.md §9), so each price stands for a seller.
fn offer(seller: &Keypair, item: &Item, price: u64) -> SignedOffer {
    let mut seed = seller.secret_bytes().to_vec();
    seed.extend_from_slice(&price.to_be_bytes());
    let own = Keypair::from_secret(sha256(&seed).0);
    SignedOffer::sign(&own, item, price, Currency::EUR, 1, NOW + 86_400, price)
}

fn item(i: u32) -> Item {
    Item::new(&format!("soundness item {i}")).unwrap()
}

/// Turns `node` into a cheater that signs a bad step: it claims to append `extra` to the
/// honest tree, but its new root is that of a tree in which d's list lost its first offer,
/// and the node serves that tree from now on. Returns the bad step and the honest state
/// before it.
fn cheat_dropping(node: &mut StepNode, d: &Item, extra: &SignedOffer) -> (StepProof, StepState) {
    let before = node.state.clone();
    let counter = node.cert.cert.counters[0];
    // The lists without d's first offer, with the extra offer appended.
    let mut lists = node.lists.clone();
    lists.get_mut(&d.key()).unwrap().remove(0);
    lists
        .entry(extra.offer.key)
        .or_default()
        .push(extra.to_bytes());
    let mut forged = StepState::new(counter);
    forged.prepare(
        lists
            .iter()
            .flat_map(|(k, l)| l.iter().map(move |b| (*k, b.clone())))
            .collect(),
        NOW,
    );
    // The honest transition, with the forged root put in.
    let mut honest = before.clone();
    let mut p = honest.prepare(vec![(extra.offer.key, extra.to_bytes())], NOW);
    p.header.new_root = forged.root();
    let inc = node.sign(&p.header);
    let bad = honest.apply(p, inc);
    node.state = StepState::new(counter).with_tree_of(forged, bad.step.clone());
    node.lists = lists;
    node.steps.insert(bad.step.header.value, bad.clone());
    (bad, before)
}

/// Issue 9, item 2: every check takes the scheme from the certificate. A counted (B/C)
/// receipt or head from a node certified for M is refused, and a step, a step receipt or an
/// M head from a node certified for B.
#[test]
fn replies_of_another_scheme_than_the_certificates_are_refused() {
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let o = offer(&seller, &d, 100);
    // An M node hands out a B receipt: an Inc binding the entry payload.
    let m = StepNode::new(Scheme::Merkle);
    let inc = m
        .signer
        .sign_inc(0, 6, entry_payload(&m.peer(), 0, NOW, &o.to_bytes()));
    let receipt = Receipt {
        cert_id: m.cert.id(),
        at: NOW,
        inc,
    };
    let err = check_receipt(&m.trusted, &m.peer(), &m.cert, &o, &receipt).unwrap_err();
    assert!(matches!(err, Misbehaviour::WrongScheme { .. }), "{err}");
    // ...and a B/C head.
    let mut r = Retrieval::new(
        m.trusted.clone(),
        m.peer(),
        d.clone(),
        [3; 32],
        Budget::default(),
        NOW,
    );
    let head = RetrieveHead {
        cert: m.cert.clone(),
        read: m.signer.sign_read(0, 6, [3; 32]),
        boundary: None,
    };
    let err = r.on_head_bytes(&head.to_bytes()).unwrap_err();
    assert!(matches!(err, Misbehaviour::WrongScheme { .. }), "{err}");
    // A B node hands out steps, step receipts and M heads.
    let mut b = StepNode::new(Scheme::Basic);
    let rm = b.publish(std::slice::from_ref(&o)).remove(0);
    let err = check_step_receipt(&b.trusted, &b.peer(), &b.cert, &o, &rm).unwrap_err();
    assert!(matches!(err, Misbehaviour::WrongScheme { .. }), "{err}");
    let err = verify_step(&b.cert, &b.peer(), &rm.step).unwrap_err();
    assert!(matches!(err, Misbehaviour::WrongScheme { .. }), "{err}");
    let err = b.retrieve(&d).unwrap_err();
    assert!(matches!(err, Misbehaviour::WrongScheme { .. }), "{err}");
}

/// Issue 9, item 7: numbers from a peer are checked before use; the monitor holds the node to
/// its receipt's certificate; a proof under a past root must be for the step asked for.
#[test]
fn attacker_numbers_and_certificates_are_checked() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let o = offer(&seller, &d, 100);
    node.publish(std::slice::from_ref(&o));
    // A step whose old leaf claims u64::MAX offers: a typed refusal, not a wrap or a panic.
    let mut sp = node.publish(&[offer(&seller, &d, 90)]).remove(0).step;
    let s = std::sync::Arc::make_mut(&mut sp);
    s.old[0].1.as_mut().unwrap().last_changed = u64::MAX;
    let err = verify_step(&node.cert, &node.peer(), s).unwrap_err();
    assert!(matches!(err, Misbehaviour::BadStep(_)), "{err}");
    // total_offers near the end of u64.
    let mut s2 = node.own(node.state.value());
    s2.step.header.total_offers = u64::MAX;
    s2.step.inc = node.sign(&s2.step.header);
    assert!(verify_step(&node.cert, &node.peer(), &s2).is_err());
    // The monitor: the node answers under another certificate than the receipt's.
    let receipt = node
        .publish(std::slice::from_ref(&offer(&seller, &d, 80)))
        .remove(0);
    let placement = check_step_receipt(
        &node.trusted,
        &node.peer(),
        &node.cert,
        &offer(&seller, &d, 80),
        &receipt,
    )
    .unwrap();
    let out = node.retrieve(&d).unwrap();
    check_monitor(&receipt, &offer(&seller, &d, 80), &placement, &out).unwrap();
    let mut other = receipt.clone();
    other.cert_id = Digest([0xEE; 32]);
    assert_eq!(
        check_monitor(&other, &offer(&seller, &d, 80), &placement, &out).unwrap_err(),
        Misbehaviour::OtherCertificate
    );
    // A proof under a past root, for another step than the one asked for.
    let past = PastProof {
        cert: node.cert.clone(),
        step: Some(node.own(node.state.value()).step),
        value: node.state.value(),
        leaf: node.state.prove(&d.key()).0,
        proof: node.state.prove(&d.key()).1,
    };
    let list = node.lists[&d.key()].clone();
    verify_past(
        &node.trusted,
        &node.peer(),
        &d,
        node.state.value(),
        &past,
        &list,
    )
    .unwrap();
    let err = verify_past(
        &node.trusted,
        &node.peer(),
        &d,
        node.state.value() - 1,
        &past,
        &list,
    )
    .unwrap_err();
    assert!(matches!(err, Misbehaviour::BadStep(_)), "{err}");
}

mod mixed {
    use super::*;
    use proptest::prelude::*;

    /// How a cheating node departs from the truth (0: it does not).
    #[derive(Debug, Clone, Copy)]
    enum Cheat {
        Honest,
        DropAGapStep,
        ListAnExtraStep,
        AnswerAnAuditWithAnotherStep,
        ClaimALongerList,
        DropAnOfferFromThePage,
        ServeAnOlderStep,
    }

    fn cheat() -> impl Strategy<Value = Cheat> {
        prop_oneof![
            Just(Cheat::Honest),
            Just(Cheat::DropAGapStep),
            Just(Cheat::ListAnExtraStep),
            Just(Cheat::AnswerAnAuditWithAnotherStep),
            Just(Cheat::ClaimALongerList),
            Just(Cheat::DropAnOfferFromThePage),
            Just(Cheat::ServeAnOlderStep),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Random histories of publishes and crashes (each crash loses the step being written
        /// and leaves a gap step), then one cheat at random against a buyer who audits every
        /// value: the buyer either catches it or got exactly the truth; an honest node is never
        /// accused, and the gaps it reports are the node's.
        #[test]
        fn a_cheat_is_caught_or_the_answer_is_the_truth(
            ops in proptest::collection::vec((0u8..3, any::<bool>()), 1..10),
            cheat in cheat(),
            pick in any::<u64>(),
        ) {
            let mut node = StepNode::new(Scheme::Merkle);
            let seller = Keypair::generate(&mut OsRng);
            let mut crashes = 0usize;
            for (i, (it, crash)) in ops.iter().enumerate() {
                node.publish(&[offer(&seller, &item(u32::from(*it)), 10 + i as u64)]);
                if *crash {
                    // The device counts a step a crash then loses; a gap step covers it.
                    let v = node.state.value();
                    let _ = node.signer.sign_inc(0, v + 1, Digest([9; 32]));
                    node.gap_step(v + 2);
                    crashes += 1;
                }
            }
            let d = item(0);
            let truth: Vec<Vec<u8>> = node.lists.get(&d.key()).cloned().unwrap_or_default();
            let mut head = node.head(&d, [9; 32]);
            let values: Vec<u64> = node.steps.keys().copied().collect();
            let other = values[(pick % values.len() as u64) as usize];
            let mut audit_override: Option<(u64, StepProof)> = None;
            let mut lists = node.lists.clone();
            match cheat {
                Cheat::Honest => {}
                Cheat::DropAGapStep if !head.gaps.is_empty() => {
                    let i = (pick % head.gaps.len() as u64) as usize;
                    head.gaps.remove(i);
                }
                Cheat::ListAnExtraStep => head.gaps.push(node.steps[&other].step.clone()),
                Cheat::AnswerAnAuditWithAnotherStep => {
                    let base = node.cert.cert.counters[0].initial;
                    let v = base + 1 + pick % (node.state.value() - base);
                    audit_override = Some((v, node.steps[&other].clone()));
                }
                Cheat::ClaimALongerList => {
                    if let Some(l) = head.leaf.as_mut() {
                        l.n += 1;
                    }
                }
                Cheat::DropAnOfferFromThePage => {
                    if let Some(l) = lists.get_mut(&d.key()) {
                        if !l.is_empty() {
                            l.remove((pick % l.len() as u64) as usize);
                        }
                    }
                }
                Cheat::ServeAnOlderStep => {
                    head.step = Some(HeadStep::of(&node.steps[&other].step))
                }
                Cheat::DropAGapStep => {}
            }
            let served = StepNode { lists, ..StepNode::from_parts(&node) };
            let result = served.retrieve_all(&d, Budget::default(), head, &|v| {
                match &audit_override {
                    Some((w, sp)) if *w == v => sp.clone(),
                    _ => node.own(v),
                }
            });
            match (cheat, result) {
                (Cheat::Honest, Err(e)) => prop_assert!(false, "an honest node was accused: {e}"),
                (Cheat::Honest, Ok(out)) => {
                    prop_assert_eq!(out.gaps.len(), crashes);
                    prop_assert_eq!(out.detection, 1.0);
                }
                (_, Err(_)) => {}
                (_, Ok(out)) => {
                    let got: Vec<Vec<u8>> = out.offers.iter().map(|o| o.to_bytes()).collect();
                    prop_assert_eq!(got, truth, "a cheat ({:?}) passed with a false answer", cheat);
                    prop_assert_eq!(out.gaps.len(), crashes);
                }
            }
        }
    }
}

/// A seller's monitoring run over `head`: the list (pages served by `node`), the seller's
/// placements held to it, then every value audited with `node`'s own steps.
fn monitor_all(
    node: &StepNode,
    item: &Item,
    budget: Budget,
    head: StepHead,
    mine: &[(SignedOffer, StepReceipt, Placement)],
) -> Result<StepOutcome, Misbehaviour> {
    let mut r = node.reader(item, budget).monitoring();
    let next = r.on_head_bytes(&head.to_bytes())?;
    node.serve_list(item, &mut r, next)?;
    r.check_placements(mine)?;
    for v in r.plan_audits(u64::MAX, &mut OsRng) {
        r.on_audit_bytes(v, &node.own(v).to_bytes())?;
    }
    r.finish()
}

/// The seller's receipts for `offers` (published in one step by `node`), with placements.
fn receipted(
    node: &mut StepNode,
    offers: &[SignedOffer],
) -> Vec<(SignedOffer, StepReceipt, Placement)> {
    node.publish(offers)
        .into_iter()
        .zip(offers)
        .map(|(r, o)| {
            let p = check_step_receipt(&node.trusted, &node.peer(), &node.cert, o, &r).unwrap();
            (o.clone(), r, p)
        })
        .collect()
}

/// The sellers' signatures of a step's batch and of an item's list are verified in one batch:
/// one forged signature among many is caught, by the audit of its step and by the list check,
/// with the verdict one-by-one verification gives.
#[test]
fn one_forged_signature_among_many_is_caught_in_a_batch() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let mut offers: Vec<SignedOffer> = (0..40).map(|p| offer(&seller, &d, 100 + p)).collect();
    offers[17].signature = offers[3].signature; // a valid signature, of another offer
    node.publish(&offers);
    let v = node.state.value();
    // The audit of the step: the batch check names the step.
    let err = verify_step(&node.cert, &node.peer(), &node.own(v)).unwrap_err();
    assert_eq!(err, Misbehaviour::BadStep("a batch offer is invalid"));
    // A buyer that audits nothing still checks the list's signatures.
    let head = node.head(&d, [9; 32]);
    let mut r = node.reader(&d, Budget::default());
    let next = r.on_head_bytes(&head.to_bytes()).unwrap();
    node.serve_list(&d, &mut r, next).unwrap();
    r.check_list().unwrap();
    assert_eq!(
        r.finish().unwrap_err(),
        Misbehaviour::BadStep("the list holds an invalid offer or one for another item")
    );
    // Every signature valid: both pass.
    let mut honest = StepNode::new(Scheme::Merkle);
    honest.publish(
        &(0..40)
            .map(|p| offer(&seller, &d, 100 + p))
            .collect::<Vec<_>>(),
    );
    let v = honest.state.value();
    verify_step(&honest.cert, &honest.peer(), &honest.own(v)).unwrap();
    assert_eq!(honest.retrieve(&d).unwrap().offers.len(), 40);
}

/// The head's three signatures (certificate, `Read`, step `Inc`) are verified in one batch;
/// a bad one, or an untrusted authority or another node's certificate, gets the verdict the
/// one-by-one checks give.
#[test]
fn a_bad_head_signature_gets_its_own_verdict_after_the_batch() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    let read_at = |r: StepRetrieval, head: &StepHead| {
        let mut r = r;
        r.on_head_bytes(&head.to_bytes()).map(|_| ())
    };
    // A node at its base (no step yet): the batch is the certificate and the Read.
    let fresh = StepNode::new(Scheme::Merkle);
    let base = fresh.head(&d, [9; 32]);
    assert!(base.step.is_none());
    read_at(fresh.reader(&d, Budget::default()), &base).unwrap();
    let honest = node.head(&d, [9; 32]);
    read_at(node.reader(&d, Budget::default()), &honest).unwrap();
    let other = Keypair::generate(&mut OsRng);
    let forged = other.sign(tags::CERT, b"something else");
    let mut bad_cert = honest.clone();
    bad_cert.cert.sig = forged;
    let mut bad_read = honest.clone();
    bad_read.read.sig = node.signer.sign_read(0, 1, [8; 32]).sig;
    let mut bad_step = honest.clone();
    if let Some(step) = bad_step.step.as_mut() {
        step.inc_mut().sig = node.signer.sign_inc(0, 99, Digest([7; 32])).sig;
    }
    let t = honest.read.read.value;
    for (head, want) in [
        (bad_cert, Misbehaviour::Certificate(CertError::BadSignature)),
        (
            bad_read,
            Misbehaviour::BadStatementSignature {
                what: "Read",
                value: t,
            },
        ),
        (
            bad_step,
            Misbehaviour::BadStatementSignature {
                what: "Inc",
                value: t,
            },
        ),
    ] {
        let err = read_at(node.reader(&d, Budget::default()), &head).unwrap_err();
        assert_eq!(err, want);
    }
    // Valid signatures, but an authority the reader does not trust, or read as another peer.
    let stranger = StepRetrieval::new(
        vec![other.public()],
        node.peer(),
        d.clone(),
        [9; 32],
        Budget::default(),
        NOW,
    );
    assert!(matches!(
        read_at(stranger, &honest).unwrap_err(),
        Misbehaviour::Certificate(CertError::UntrustedAuthority(_))
    ));
    let elsewhere = StepRetrieval::new(
        node.trusted.clone(),
        PeerId::from_ed25519(&other.public()),
        d.clone(),
        [9; 32],
        Budget::default(),
        NOW,
    );
    assert!(matches!(
        read_at(elsewhere, &honest).unwrap_err(),
        Misbehaviour::Certificate(CertError::WrongPeer { .. })
    ));
}

mod budgets;
mod counters;
mod gaps;
mod window;

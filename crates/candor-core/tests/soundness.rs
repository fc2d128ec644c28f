//! The soundness holes an outside review found (issue 9), each tried by a cheating node that
//! is caught, or an honest node that is not accused: audits answered by gap steps off the
//! chain, replies of another scheme than the certificate's, budgets a node could steer, and
//! numbers from a peer that overflowed.
#![allow(clippy::unwrap_used, clippy::panic)]

use candor_core::*;
use rand_core::OsRng;
use std::collections::BTreeMap;

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
        let p = self.state.prepare(batch);
        let inc = self.sign(&p.header);
        let sp = self.state.apply(p, inc);
        for b in &sp.batch {
            let o = SignedOffer::from_bytes(b).unwrap();
            self.lists.entry(o.offer.key).or_default().push(b.clone());
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
const NEW_ROOT_WRONG: &str = "new_root is not the old tree with exactly the batch appended";

fn offer(seller: &Keypair, item: &Item, price: u64) -> SignedOffer {
    SignedOffer::sign(seller, item, price, Currency::EUR, 1, u64::MAX, price)
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
    );
    // The honest transition, with the forged root put in.
    let mut honest = before.clone();
    let mut p = honest.prepare(vec![(extra.offer.key, extra.to_bytes())]);
    p.header.new_root = forged.root();
    let inc = node.sign(&p.header);
    let bad = honest.apply(p, inc);
    node.state = StepState::new(counter).with_tree_of(forged, bad.step.clone());
    node.lists = lists;
    node.steps.insert(bad.step.header.value, bad.clone());
    (bad, before)
}

/// Issue 9, item 1 (critical): a bad step at t, then a gap step at t + 1 that claims step t
/// was lost. A buyer whose head is at t audits t: only the step at t answers it, and the
/// bad step is caught. The gap step answers nothing (it is after the `Read`).
#[test]
fn an_audit_is_not_answered_by_a_gap_step_made_after_the_read() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    node.publish(&[offer(&seller, &item(1), 5)]);
    let (bad, before) = cheat_dropping(&mut node, &d, &offer(&seller, &item(2), 7));
    let t = bad.step.header.value;
    // The gap step at t + 1 over t, following t − 1.
    let mut after = before;
    let gap_p = after.prepare_gap(t + 1);
    let gap = after.apply(gap_p.clone(), node.sign(&gap_p.header));
    assert_eq!(gap.step.header.gap(), Some((t, t)));
    // Without audits the buyer takes the forged list: the audit is what catches it.
    let head = node.head(&d, [9; 32]);
    let err = node
        .retrieve_all(&d, Budget::default(), head.clone(), &|v| {
            if v == t {
                gap.clone()
            } else {
                node.own(v)
            }
        })
        .unwrap_err();
    assert_eq!(
        err,
        Misbehaviour::BadStep("the audit answered another step")
    );
    // Answered with the bad step itself, the audit catches it.
    let err = node
        .retrieve_all(&d, Budget::default(), head, &|v| node.own(v))
        .unwrap_err();
    assert_eq!(err, Misbehaviour::BadStep(NEW_ROOT_WRONG));
}

/// Issue 12 review: with the compact head, a top naming a gap step signed after the Read
/// (gap_link above t) must not let that gap step answer the audit of t.
#[test]
fn a_top_naming_a_gap_step_after_the_read_is_refused() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    node.publish(&[offer(&seller, &item(1), 5)]);
    let (bad, before) = cheat_dropping(&mut node, &d, &offer(&seller, &item(2), 7));
    let t = bad.step.header.value;
    let mut after = before;
    let gap_p = after.prepare_gap(t + 1);
    let gap = after.apply(gap_p.clone(), node.sign(&gap_p.header));
    let mut header = bad.step.header;
    header.gap_link = t + 1;
    let top = HeadStep::Top {
        top: header.top(),
        inc: node.sign(&header),
    };
    let mut head = node.head(&d, [9; 32]);
    head.step = Some(top);
    head.gaps = vec![gap.step.clone()];
    let verdict = node.retrieve_all(&d, Budget::default(), head.clone(), &|v| {
        if v == t {
            gap.clone()
        } else {
            node.own(v)
        }
    });
    assert!(verdict.is_err(), "{verdict:?}");
}

/// Issue 9, item 1 (variant): a decoy gap step at v + 1 over a bad step v, then a gap step at
/// v + 2 that follows v (skipping the decoy). The chain to t runs through v, so the audit of
/// v must be answered by step v; the decoy answers nothing. A gap step that names the decoy
/// as the last gap before it does not even decode (it would lie after the step it follows).
#[test]
fn a_decoy_gap_step_off_the_chain_answers_no_audit() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    let base = node.cert.cert.counters[0].initial;
    let (bad, before) = cheat_dropping(&mut node, &d, &offer(&seller, &item(2), 7));
    let v = bad.step.header.value;
    // The decoy: a gap step at v + 1 following v − 1.
    let decoy = {
        let mut s = before;
        let p = s.prepare_gap(v + 1);
        s.apply(p.clone(), node.sign(&p.header))
    };
    // The cheater's chain: v (bad), then a gap step at v + 2 following v.
    let p = node.state.prepare_gap(v + 2);
    assert_eq!(p.header.prev_value, v);
    assert_eq!(p.header.gap_link, base, "the decoy is not on the chain");
    let inc = node.sign(&p.header);
    let over_decoy = node.state.apply(p, inc);
    node.steps.insert(v + 2, over_decoy.clone());
    // Naming the decoy as the last gap before it: not even a valid header.
    let mut lying = over_decoy.step.header;
    lying.gap_link = v + 1;
    assert!(StepHeader::from_bytes(&lying.to_bytes()).is_err());
    let mut head = node.head(&d, [9; 32]);
    // The audit of v answered by the decoy, or by the bad step: refused.
    for (answer_v, why) in [
        (decoy.clone(), "the audit answered another step"),
        (bad.clone(), NEW_ROOT_WRONG),
    ] {
        let err = node
            .retrieve_all(&d, Budget::default(), head.clone(), &|x| {
                if x == v {
                    answer_v.clone()
                } else {
                    node.own(x)
                }
            })
            .unwrap_err();
        assert_eq!(err, Misbehaviour::BadStep(why));
    }
    // The head listing the decoy as a gap on the chain: refused before any audit.
    head.gaps.push(decoy.step.clone());
    let err = node
        .retrieve_all(&d, Budget::default(), head, &|x| node.own(x))
        .unwrap_err();
    assert_eq!(
        err,
        Misbehaviour::BadStep("the head lists a gap step beyond the chain's last")
    );
}

/// A gap step at exactly the audited value, but off the chain to t (a later gap step skips
/// it): it answers nothing; the gap step on the chain does.
#[test]
fn a_gap_step_at_the_value_but_off_the_chain_answers_no_audit() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    let r = node.state.value();
    // Off the chain: a gap step at r + 2 over r + 1 (then "lost").
    let off = {
        let mut s = node.state.clone();
        let p = s.prepare_gap(r + 2);
        s.apply(p.clone(), node.sign(&p.header))
    };
    // On the chain: a gap step at r + 3 over r + 1 ..= r + 2.
    node.gap_step(r + 3);
    node.publish(&[offer(&seller, &item(1), 5)]);
    let out = node.retrieve(&d).unwrap();
    assert_eq!(out.gaps.len(), 1);
    assert_eq!((out.gaps[0].first, out.gaps[0].last), (r + 1, r + 2));
    let err = node
        .retrieve_all(&d, Budget::default(), node.head(&d, [9; 32]), &|v| {
            if v == r + 2 {
                off.clone()
            } else {
                node.own(v)
            }
        })
        .unwrap_err();
    assert_eq!(
        err,
        Misbehaviour::BadStep(
            "the audit of a skipped value was not answered by the gap step that skips it"
        )
    );
}

/// Honest nodes that lost steps in several crashes: every audit passes, every gap reported;
/// a head that leaves a gap step out, or lists one too many, is refused; more gap steps than
/// the buyer accepts is a named failure, not "over budget".
#[test]
fn gap_steps_chain_and_are_capped() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    for round in 0..3u64 {
        node.publish(&[offer(&seller, &d, 100 + round)]);
        let v = node.state.value();
        node.gap_step(v + 2 + round);
    }
    node.publish(&[offer(&seller, &item(1), 5)]);
    let out = node.retrieve(&d).unwrap();
    assert_eq!(out.gaps.len(), 3);
    assert_eq!(out.offers.len(), 3);
    assert_eq!(out.detection, 1.0);
    // Leaving the oldest gap step out, or the newest.
    for drop in [0usize, 2] {
        let mut head = node.head(&d, [9; 32]);
        head.gaps.remove(drop);
        let err = node
            .retrieve_all(&d, Budget::default(), head, &|v| node.own(v))
            .unwrap_err();
        assert!(matches!(err, Misbehaviour::BadStep(_)), "{err}");
    }
    // One too many (an honest step listed as a gap).
    let mut head = node.head(&d, [9; 32]);
    head.gaps
        .push(node.own(node.cert.cert.counters[0].initial + 1).step);
    let err = node
        .retrieve_all(&d, Budget::default(), head, &|v| node.own(v))
        .unwrap_err();
    assert!(matches!(err, Misbehaviour::BadStep(_)), "{err}");
    // A buyer that accepts two gaps.
    let budget = Budget {
        max_gaps: 2,
        ..Budget::default()
    };
    let err = node
        .retrieve_all(&d, budget, node.head(&d, [9; 32]), &|v| node.own(v))
        .unwrap_err();
    assert_eq!(err, Misbehaviour::TooManyGaps { max: 2 });
}

/// A gap step over a receipted step (the node reverts to a root before the seller's offer):
/// the seller's monitor holds transferable evidence, which a third party verifies alone.
#[test]
fn a_gap_step_over_a_receipt_is_transferable_evidence() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    let before = node.state.clone();
    let receipt = node.publish(&[offer(&seller, &d, 90)]).remove(0);
    // The cheater goes back to the tree before the receipted step and covers it with a gap.
    let v = node.state.value();
    node.state = before;
    node.lists.get_mut(&d.key()).unwrap().pop();
    node.steps.remove(&v);
    node.gap_step(v + 1);
    let head = node.head(&d, [9; 32]);
    let mut r = node
        .reader(&d, Budget::default())
        .knowing([receipt.step.step.inc.clone()]);
    let Err(Misbehaviour::Evidence(e)) = r.on_head_bytes(&head.to_bytes()) else {
        panic!("evidence expected")
    };
    assert_eq!(e.kind(), Kind::GapStepOverInc);
    let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
    assert!(e.verify(&node.trusted).unwrap().contains("gap step"));
    // The same statements from an honest crash (the lost step never left the node): no
    // knowledge, so no evidence; a buyer sees the gap reported.
    let out = node.retrieve(&d).unwrap();
    assert_eq!(out.gaps.len(), 1);
}

/// Issue 9, item 6: d's list length is bound under the signed root before anything is
/// fetched, so a node cannot claim a long list to leave as "over budget": the claim folds to
/// another root than the device signed (a bad signature over the rebuilt `Inc`). A list the node really committed to above the buyer's cap is over budget; so is a
/// list whose bytes exceed the buyer's byte budget, in every flow.
#[test]
fn over_budget_is_reachable_only_by_real_volume() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    for p in 0..5 {
        node.publish(&[offer(&seller, &d, 100 + p)]);
    }
    let mut head = node.head(&d, [9; 32]);
    head.leaf.as_mut().unwrap().n = u64::MAX;
    let err = node
        .retrieve_all(&d, Budget::default(), head, &|v| node.own(v))
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BadStatementSignature, "{err}");
    let small = Budget {
        max_entries: 4,
        ..Budget::default()
    };
    let err = node
        .retrieve_all(&d, small, node.head(&d, [9; 32]), &|v| node.own(v))
        .unwrap_err();
    assert_eq!(err, Misbehaviour::OverBudget(BudgetKind::Entries));
    let tight = Budget {
        max_bytes: 1_500,
        ..Budget::default()
    };
    let err = node
        .retrieve_all(&d, tight, node.head(&d, [9; 32]), &|v| node.own(v))
        .unwrap_err();
    assert_eq!(err, Misbehaviour::OverBudget(BudgetKind::Bytes));
    assert_eq!(node.retrieve(&d).unwrap().offers.len(), 5);
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
        .sign_inc(0, 6, entry_payload(&m.peer(), 0, &o.to_bytes()));
    let receipt = Receipt {
        cert_id: m.cert.id(),
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
    );
    let head = RetrieveHead {
        cert: m.cert.clone(),
        read: m.signer.sign_read(0, 6, [3; 32]),
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
    s.old[0].1.as_mut().unwrap().n = u64::MAX;
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

/// A B/C node in one process: a device signer and its certificate.
struct CNode {
    signer: Ed25519StatementSigner,
    cert: SignedCertificate,
    trusted: Vec<PublicKey>,
}

impl CNode {
    fn new(scheme: Scheme, counters: u32) -> Self {
        let node = Keypair::generate(&mut OsRng);
        let peer = PeerId::from_ed25519(&node.public());
        let signer = Ed25519StatementSigner::new(Keypair::generate(&mut OsRng), peer);
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        let reads = (0..counters)
            .map(|c| signer.sign_read(c, 5, [1; 32]))
            .collect();
        let req = EnrolRequest::new(&node, signer.device_key(), scheme, reads, None);
        let cert = auth
            .certify(&mut Registry::default(), &req, [1; 32], 0)
            .unwrap();
        Self {
            signer,
            trusted: vec![auth.public()],
            cert,
        }
    }

    fn peer(&self) -> PeerId {
        self.signer.peer().clone()
    }

    fn entry(&self, counter: CounterId, value: u64, o: &SignedOffer) -> PageItem {
        let bytes = o.to_bytes();
        PageItem::Entry {
            inc: self
                .signer
                .sign_inc(counter, value, entry_payload(&self.peer(), counter, &bytes)),
            bytes,
        }
    }

    fn gap(&self, counter: CounterId, value: u64, first: u64, last: u64) -> PageItem {
        PageItem::Gap {
            inc: self.signer.sign_inc(
                counter,
                value,
                gap_payload(&self.peer(), counter, first, last),
            ),
            first,
            last,
        }
    }

    /// A retrieve of `item` served `items` under a `Read` at `t` on `counter`.
    fn retrieve(
        &self,
        r: Retrieval,
        counter: CounterId,
        t: u64,
        items: Vec<PageItem>,
    ) -> Result<Outcome, Misbehaviour> {
        let mut r = r;
        let nonce = r.request().nonce;
        let head = RetrieveHead {
            cert: self.cert.clone(),
            read: self.signer.sign_read(counter, t, nonce),
        };
        if r.on_head_bytes(&head.to_bytes())?.is_some() {
            r.on_page_bytes(&Page { items }.to_bytes())?;
        }
        r.finish()
    }

    fn session(&self, d: &Item) -> Retrieval {
        Retrieval::new(
            self.trusted.clone(),
            self.peer(),
            d.clone(),
            [4; 32],
            Budget::default(),
        )
    }
}

/// Issue 9, item 3 (schemes B and C): a node shows buyers "value 6 lost, covered by the gap
/// notice at 7", and later shows the seller "entry 6 present, 7 lost, covered by the gap
/// notice at 8". Each view alone is what an honest node shows after crashes. But the gap
/// notice at 7 left the node: a buyer that keeps the gap notices it saw holds the device's
/// own statement at 7, and the later view's gap over 7 is transferable evidence. A seller
/// monitoring while the first view is served catches the gap over its receipt.
#[test]
fn a_node_cannot_show_buyer_and_seller_contradicting_gap_histories() {
    let node = CNode::new(Scheme::Basic, 1);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let x = offer(&seller, &d, 100);
    let entry6 = node.entry(0, 6, &x);
    let receipt = Receipt {
        cert_id: node.cert.id(),
        inc: entry6.inc().clone(),
    };
    let g1 = node.gap(0, 7, 6, 6);
    // The buyers' view at t = 7: the offer hidden behind a gap.
    let seen = node
        .retrieve(node.session(&d), 0, 7, vec![g1.clone()])
        .unwrap();
    assert!(seen.offers.is_empty());
    assert_eq!(seen.gaps.len(), 1);
    // A seller monitoring now catches it.
    let err = node
        .retrieve(
            node.session(&d).watching([receipt.clone()]),
            0,
            7,
            vec![g1.clone()],
        )
        .unwrap_err();
    assert_eq!(err.kind(), Kind::GapOverReceipt);
    // The seller's view at t = 8: its entry, and the gap notice at 7 "lost".
    let g2 = node.gap(0, 8, 7, 7);
    let view = vec![entry6, g2];
    let out = node
        .retrieve(node.session(&d).watching([receipt]), 0, 8, view.clone())
        .unwrap();
    assert_eq!(out.offers.len(), 1);
    // The buyer that kept the gap notice it saw holds evidence against the later view.
    let remembered: Vec<SignedInc> = seen.gaps.iter().map(|g| g.inc.clone()).collect();
    let Err(Misbehaviour::Evidence(e)) =
        node.retrieve(node.session(&d).knowing(remembered), 0, 8, view)
    else {
        panic!("evidence expected")
    };
    assert_eq!(e.kind(), Kind::GapOverReceipt);
    let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
    e.verify(&node.trusted).unwrap();
}

/// A checker that holds two different statements of the device at one value (one from a
/// buyer's earlier read, one from a receipt) has the node's equivocation in hand, before any
/// page: transferable evidence. One statement held twice, or a forged second one, is not.
#[test]
fn two_held_statements_at_one_value_are_equivocation() {
    let node = CNode::new(Scheme::Basic, 1);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let e6 = node.entry(0, 6, &offer(&seller, &d, 100));
    let g6 = node.gap(0, 6, 6, 6);
    let Err(Misbehaviour::Evidence(e)) = node.retrieve(
        node.session(&d)
            .knowing([e6.inc().clone(), g6.inc().clone()]),
        0,
        6,
        vec![e6.clone()],
    ) else {
        panic!("evidence expected")
    };
    assert_eq!(e.kind(), Kind::Equivocation);
    Evidence::from_bytes(&e.to_bytes())
        .unwrap()
        .verify(&node.trusted)
        .unwrap();
    // The same statement twice: nothing to hold against the node.
    node.retrieve(
        node.session(&d)
            .knowing([e6.inc().clone(), e6.inc().clone()]),
        0,
        6,
        vec![e6.clone()],
    )
    .unwrap();
    // A second statement whose signature does not verify accuses nobody.
    let mut forged = g6.inc().clone();
    forged.inc.payload = Digest([9; 32]);
    for known in [
        [e6.inc().clone(), forged.clone()],
        [forged.clone(), e6.inc().clone()],
    ] {
        let r = node.retrieve(node.session(&d).knowing(known), 0, 6, vec![e6.clone()]);
        assert!(r.is_ok(), "{r:?}");
    }
}

/// Issue 9, item 7: a seller monitoring one item of a C node holds receipts of another
/// counter with higher values. Those say nothing about this counter: the honest node is not
/// accused ("read below receipt" or a local "equivocation" before the fix).
#[test]
fn a_monitor_holds_the_node_only_to_receipts_of_the_items_counter() {
    let node = CNode::new(Scheme::Counters, 2);
    let seller = Keypair::generate(&mut OsRng);
    let on = |c: u32| {
        (0..)
            .map(item)
            .find(|i| node.cert.cert.counter_for(&i.key()).id == c)
            .unwrap()
    };
    let (d0, d1) = (on(0), on(1));
    // Receipts on counter 0 at values 6..=9.
    let receipts: Vec<Receipt> = (6..=9)
        .map(|v| Receipt {
            cert_id: node.cert.id(),
            inc: node.entry(0, v, &offer(&seller, &d0, v)).inc().clone(),
        })
        .collect();
    // Item d1 on counter 1, with one entry at 6.
    let x = offer(&seller, &d1, 50);
    let out = node
        .retrieve(
            node.session(&d1).watching(receipts.clone()),
            1,
            6,
            vec![node.entry(1, 6, &x)],
        )
        .unwrap();
    assert_eq!(out.offers.len(), 1);
    // A receipt under another certificate: the node must answer under the receipt's.
    let mut other = receipts[0].clone();
    other.cert_id = Digest([0xAB; 32]);
    let err = node
        .retrieve(
            node.session(&d1).watching([other]),
            1,
            6,
            vec![node.entry(1, 6, &x)],
        )
        .unwrap_err();
    assert_eq!(err, Misbehaviour::OtherCertificate);
}

/// A cheater signs a bad step whose tree gives d a list longer than the buyer's budget, to
/// leave as "over budget" instead of failing a check: the budget verdict waits for the audits,
/// which catch the bad step. (And a list longer than every offer ever counted is refused at
/// once.)
#[test]
fn over_budget_waits_for_the_audits() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    for p in 0..3 {
        node.publish(&[offer(&seller, &d, 100 + p)]);
    }
    let counter = node.cert.cert.counters[0];
    let forge = |node: &mut StepNode, n: u64| {
        let mut honest = node.state.clone();
        let extra = offer(&seller, &item(1), 5);
        let mut p = honest.prepare(vec![(extra.offer.key, extra.to_bytes())]);
        let forged = StepState::from_leaves(
            counter,
            [(
                d.key(),
                Leaf {
                    n,
                    chain: Digest([7; 32]),
                },
            )],
            0,
            0,
            None,
        );
        p.header.new_root = forged.root();
        let inc = node.sign(&p.header);
        let bad = honest.apply(p, inc);
        node.steps.insert(bad.step.header.value, bad.clone());
        StepState::new(counter).with_tree_of(forged, bad.step)
    };
    let small = Budget {
        max_entries: 3,
        ..Budget::default()
    };
    let mut cheat = StepNode::new(Scheme::Merkle);
    std::mem::swap(&mut cheat, &mut node);
    let state = forge(&mut cheat, 4);
    let read = cheat.signer.sign_read(0, state.value(), [9; 32]);
    let head = state.head(cheat.cert.clone(), read, &d.key());
    let err = cheat
        .retrieve_all(&d, small, head.clone(), &|v| cheat.own(v))
        .unwrap_err();
    assert_eq!(err, Misbehaviour::BadStep(NEW_ROOT_WRONG));
    // Without audits the budget is the verdict (the node committed to that list).
    let mut r = cheat.reader(&d, small);
    assert_eq!(r.on_head_bytes(&head.to_bytes()).unwrap(), None);
    assert_eq!(
        r.finish().unwrap_err(),
        Misbehaviour::OverBudget(BudgetKind::Entries)
    );
    // A list longer than all offers ever counted: refused before anything else.
    let state = forge(&mut cheat, 1_000);
    let read = cheat.signer.sign_read(0, state.value(), [9; 32]);
    let head = state.head(cheat.cert.clone(), read, &d.key());
    let err = cheat
        .retrieve_all(&d, small, head, &|v| cheat.own(v))
        .unwrap_err();
    assert!(matches!(err, Misbehaviour::BadStep(_)), "{err}");
}

/// A gap step that reverts to an old root (skipping many steps, receipted ones among them)
/// to show buyers a history without a recent offer: an honest node loses one step per crash,
/// so such a gap step is refused as too wide.
#[test]
fn a_gap_step_reverting_to_an_old_root_is_too_wide() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    let old = node.state.clone();
    for p in 0..20 {
        node.publish(&[offer(&seller, &item(1 + p % 3), 5 + u64::from(p))]);
    }
    let v = node.state.value();
    let reverted = old.value();
    node.state = old;
    // The node now answers audits of the skipped steps with the gap step (it serves the
    // old tree): the audits pass, and the width is the verdict, given after them.
    node.steps.retain(|&x, _| x <= reverted);
    let g = node.gap_step(v + 2);
    assert_eq!(g.step.header.gap().map(|(a, b)| b - a + 1), Some(21));
    let err = node.retrieve(&d).unwrap_err();
    assert_eq!(
        err,
        Misbehaviour::GapTooWide {
            value: v + 2,
            width: 21,
            max: 16
        }
    );
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
    let mut r = node
        .reader(item, budget)
        .holding(mine.iter().map(|(_, _, p)| *p));
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

/// A verdict held back until the audits ("over budget", "too many gaps") is never turned
/// into a removal: an honest node over the seller's budget, or with more gap steps than the
/// seller accepts, is not accused. And too many gaps does not stop the list from being held
/// to the seller's placements: a node that removed an offer and added gap steps is still
/// caught with evidence.
#[test]
fn a_held_back_verdict_is_never_a_removal() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let offers: Vec<SignedOffer> = (0..5).map(|p| offer(&seller, &d, 100 + p)).collect();
    let mine = receipted(&mut node, &offers);
    let v = node.state.value();
    node.gap_step(v + 2); // an honest crash lost value v + 1
    node.publish(&[offer(&seller, &item(1), 5)]);
    let head = || node.head(&d, [9; 32]);
    let few_entries = Budget {
        max_entries: 4,
        ..Budget::default()
    };
    let err = monitor_all(&node, &d, few_entries, head(), &mine).unwrap_err();
    assert_eq!(err, Misbehaviour::OverBudget(BudgetKind::Entries));
    let few_bytes = Budget {
        max_bytes: head().to_bytes().len() as u64 + ListPage::most_bytes(5) - 1,
        ..Budget::default()
    };
    let err = monitor_all(&node, &d, few_bytes, head(), &mine).unwrap_err();
    assert_eq!(err, Misbehaviour::OverBudget(BudgetKind::Bytes));
    let no_gaps = Budget {
        max_gaps: 0,
        ..Budget::default()
    };
    let err = monitor_all(&node, &d, no_gaps, head(), &mine).unwrap_err();
    assert_eq!(err, Misbehaviour::TooManyGaps { max: 0 });
    assert_eq!(
        monitor_all(&node, &d, Budget::default(), head(), &mine)
            .unwrap()
            .offers
            .len(),
        5
    );
    // The cheater: drops the seller's first offer in a bad step, then adds a gap step so a
    // seller that accepts no gaps would hold back "too many gaps".
    let mut cheat = StepNode::new(Scheme::Merkle);
    let mine = receipted(&mut cheat, &offers);
    cheat_dropping(&mut cheat, &d, &offer(&seller, &item(2), 7));
    let v = cheat.state.value();
    cheat.gap_step(v + 2);
    cheat.publish(&[offer(&seller, &item(3), 9)]);
    let err = monitor_all(&cheat, &d, no_gaps, cheat.head(&d, [9; 32]), &mine).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("removal evidence expected, got {err}")
    };
    assert_eq!(e.kind(), Kind::Removal);
    assert!(e.verify(&cheat.trusted).is_ok());
}

/// A node cannot pad its way to "over budget": a list is judged by the most bytes its signed
/// length allows before any page is taken, so within that room padded pages reach the list
/// check and fail it.
#[test]
fn a_padded_list_is_a_bad_proof_not_over_budget() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    for p in 0..5 {
        node.publish(&[offer(&seller, &d, 100 + p)]);
    }
    let honest: u64 = node.lists[&d.key()]
        .iter()
        .map(|o| o.len() as u64 + 5)
        .sum();
    let head = node.head(&d, [9; 32]);
    // Room for the longest list of 5 offers, far more than the honest one takes.
    let budget = Budget {
        max_bytes: head.to_bytes().len() as u64 + ListPage::most_bytes(5),
        ..Budget::default()
    };
    assert!(budget.max_bytes > honest * 2);
    let mut padded = StepNode::from_parts(&node);
    for o in padded.lists.get_mut(&d.key()).unwrap() {
        o.resize(MAX_OFFER_BYTES, 0xEE);
    }
    let err = padded
        .retrieve_all(&d, budget, head.clone(), &|v| node.own(v))
        .unwrap_err();
    assert!(matches!(err, Misbehaviour::BadProof(_)), "{err}");
    assert_eq!(
        node.retrieve_all(&d, budget, head, &|v| node.own(v))
            .unwrap()
            .offers
            .len(),
        5
    );
}

/// An audit answered with a large blob is malformed, never "over budget", however small the
/// buyer's byte budget: audits are bounded by their number and their encoding.
#[test]
fn a_large_audit_answer_is_malformed_not_over_budget() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(&[offer(&seller, &d, 100)]);
    node.publish(&[offer(&seller, &item(1), 5)]);
    let head = node.head(&d, [9; 32]);
    let budget = Budget {
        max_bytes: head.to_bytes().len() as u64 + ListPage::most_bytes(1),
        ..Budget::default()
    };
    let mut r = node.reader(&d, budget);
    let next = r.on_head_bytes(&head.to_bytes()).unwrap();
    node.serve_list(&d, &mut r, next).unwrap();
    r.check_list().unwrap();
    let v = r.plan_audits(1, &mut OsRng)[0];
    let err = r.on_audit_bytes(v, &vec![0xAB; 2 << 20]).unwrap_err();
    assert_eq!(err.kind(), Kind::Malformed, "{err}");
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

/// A list made long enough to be over the seller's budget (here by a small budget; a node
/// can do it with one bad step) does not hide a removal: the seller fetches the list after
/// its earliest offer and folds it from its receipt's chain to the signed leaf. An honest
/// node over the budget is not accused.
#[test]
fn over_budget_does_not_hide_a_removal_from_the_seller() {
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let offers: Vec<SignedOffer> = (0..6).map(|p| offer(&seller, &d, 100 + p)).collect();
    let small = Budget {
        max_entries: 5,
        ..Budget::default()
    };
    // Honest: 6 offers, over the budget of 5; the seller holds the 3rd and 5th.
    let mut node = StepNode::new(Scheme::Merkle);
    node.publish(&offers[..2]);
    let mut mine = receipted(&mut node, &offers[2..3]);
    node.publish(&offers[3..4]);
    mine.extend(receipted(&mut node, &offers[4..5]));
    node.publish(&offers[5..]);
    let err = monitor_all(&node, &d, small, node.head(&d, [9; 32]), &mine).unwrap_err();
    assert_eq!(err, Misbehaviour::OverBudget(BudgetKind::Entries));
    // The cheater drops the first offer of the list (before the seller's): every later
    // offer moves, and the tail no longer folds from the receipt's chain to the leaf.
    let mut cheat = StepNode::new(Scheme::Merkle);
    cheat.publish(&offers[..2]);
    let mut held = receipted(&mut cheat, &offers[2..3]);
    cheat.publish(&offers[3..4]);
    held.extend(receipted(&mut cheat, &offers[4..5]));
    cheat.publish(&offers[5..]);
    cheat_dropping(&mut cheat, &d, &offer(&seller, &item(2), 7));
    let tight = Budget {
        max_entries: 4,
        ..Budget::default()
    };
    let err = monitor_all(&cheat, &d, tight, cheat.head(&d, [9; 32]), &held).unwrap_err();
    assert_eq!(err.kind(), Kind::BadProof, "{err}");
    // A node that serves a tail without the seller's later offer (the list still folds from
    // the first receipt only if the tail is the real one): removed.
    let mut head_only = StepNode::from_parts(&node);
    head_only.lists.get_mut(&d.key()).unwrap()[4] = offer(&seller, &d, 999).to_bytes();
    let err = monitor_all(&head_only, &d, small, node.head(&d, [9; 32]), &mine).unwrap_err();
    assert_eq!(err.kind(), Kind::BadProof, "{err}");
}

/// A gap step wider than the reader takes, or a gap chain longer than a head carries, is a
/// verdict held back until the list and the audits: a node that removed a receipted offer
/// cannot reach for it to skip the seller's placement check.
#[test]
fn a_wide_gap_step_does_not_hide_a_removal() {
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let mut cheat = StepNode::new(Scheme::Merkle);
    let mine = receipted(
        &mut cheat,
        &[offer(&seller, &d, 100), offer(&seller, &d, 90)],
    );
    cheat_dropping(&mut cheat, &d, &offer(&seller, &item(2), 7));
    let v = cheat.state.value();
    let wide = cheat.gap_step(v + 18);
    assert_eq!(wide.step.header.gap().map(|(a, b)| b - a + 1), Some(17));
    cheat.publish(&[offer(&seller, &item(3), 9)]);
    let err = monitor_all(
        &cheat,
        &d,
        Budget::default(),
        cheat.head(&d, [9; 32]),
        &mine,
    )
    .unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("removal evidence expected, got {err}")
    };
    assert_eq!(e.kind(), Kind::Removal);
    // The same wide gap step from a node that removed nothing: the width is the verdict,
    // after the list and the audits.
    let mut node = StepNode::new(Scheme::Merkle);
    let mine = receipted(&mut node, &[offer(&seller, &d, 100)]);
    let v = node.state.value();
    node.gap_step(v + 18);
    let err = monitor_all(&node, &d, Budget::default(), node.head(&d, [9; 32]), &mine).unwrap_err();
    assert_eq!(err.kind(), Kind::GapTooWide, "{err}");
}

/// A list page with more offers than asked for is a truncation, checked before its bytes are
/// charged: it cannot overrun the room the signed length reserved.
#[test]
fn an_oversized_list_page_is_truncated_not_over_budget() {
    let mut node = StepNode::new(Scheme::Merkle);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    node.publish(
        &(0..5)
            .map(|p| offer(&seller, &d, 100 + p))
            .collect::<Vec<_>>(),
    );
    let head = node.head(&d, [9; 32]);
    let budget = Budget {
        max_bytes: head.to_bytes().len() as u64 + ListPage::most_bytes(5),
        ..Budget::default()
    };
    let mut r = node.reader(&d, budget);
    let req = r.on_head_bytes(&head.to_bytes()).unwrap().unwrap();
    assert_eq!(req.count, 5);
    let bulk = ListPage {
        offers: vec![vec![0xCD; MAX_OFFER_BYTES]; 256],
    };
    let err = r.on_page_bytes(&bulk.to_bytes()).unwrap_err();
    assert_eq!(err.kind(), Kind::Truncated, "{err}");
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
    );
    assert!(matches!(
        read_at(elsewhere, &honest).unwrap_err(),
        Misbehaviour::Certificate(CertError::WrongPeer { .. })
    ));
}

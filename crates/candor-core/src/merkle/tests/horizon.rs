//! The audit horizon a head names (DESIGN.md §9): audits are drawn above it, and a horizon a
//! node dates too recently, above t, on a skipped value, against the chain's own statements,
//! or after the step at t is caught.

use super::*;

const DAY: u64 = 86_400;

/// A node with three empty steps forty days ago (values 6..=8) and one of today holding an
/// offer for `items[0]` (value 9).
fn aged() -> (Node, Vec<Item>) {
    let mut node = Node::new();
    let items = items();
    for _ in 0..3 {
        node.publish_at(&[], NOW - 40 * DAY);
    }
    let seller = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&seller, &items[0], 10)]);
    (node, items)
}

fn with_horizon(h: SignedStep) -> impl Fn(StepHead) -> StepHead {
    move |mut head| {
        head.horizon = Some(h.clone());
        head
    }
}

#[test]
fn audits_are_drawn_above_an_old_horizon() {
    let (node, items) = aged();
    let h = node.steps[&8].step.clone();
    let out = node
        .retrieve_with(&items[0], u64::MAX, with_horizon(h), |_, l| l.to_vec())
        .unwrap();
    assert_eq!(out.horizon, 8);
    assert_eq!(out.audited, vec![9]);
    assert_eq!(out.detection, 1.0);
    assert_eq!(out.offers.len(), 1);
    // Without a horizon every step since the base is drawn.
    let out = node.retrieve(&items[0], u64::MAX).unwrap();
    assert_eq!(out.horizon, 5);
    assert_eq!(out.audited, vec![6, 7, 8, 9]);
}

#[test]
fn the_checker_refuses_an_audit_at_or_below_the_horizon() {
    let (node, items) = aged();
    let mut r = node.reader(&items[0], [9; 32]);
    let head = with_horizon(node.steps[&8].step.clone())(node.head(&items[0], [9; 32]));
    r.on_head_bytes(&head.to_bytes()).unwrap();
    assert_eq!(
        r.on_audit_bytes(7, &node.steps[&7].to_bytes()).unwrap_err(),
        Misbehaviour::BadStep("an audit of a value outside horizon+1..=t")
    );
}

#[test]
fn a_recent_horizon_is_caught_after_the_audits_above_it() {
    let mut node = Node::new();
    let items = items();
    let seller = Keypair::generate(&mut OsRng);
    for item in &items[..3] {
        node.publish(&[offer(&seller, item, 10)]);
    }
    // The node names step 7 (dated now) as its horizon, to keep steps 6 and 7 from audits.
    let h = node.steps[&7].step.clone();
    let err = node
        .retrieve_with(&items[0], u64::MAX, with_horizon(h), |_, l| l.to_vec())
        .unwrap_err();
    let edge = node.cert.cert.time.window_edge(NOW);
    assert_eq!(err, Misbehaviour::RecentBoundary { at: NOW, edge });
    // A bad step above the horizon still wins: evidence in hand beats the time verdict.
    let mut bad = node.steps[&8].clone();
    bad.batch.clear();
    let mut r = node.reader(&items[0], [9; 32]);
    let head = with_horizon(node.steps[&7].step.clone())(node.head(&items[0], [9; 32]));
    r.on_head_bytes(&head.to_bytes()).unwrap();
    assert!(r.on_audit_bytes(8, &bad.to_bytes()).is_err());
}

#[test]
fn a_horizon_within_two_skews_of_the_edge_is_a_clock_disagreement() {
    let mut node = Node::new();
    let items = items();
    let rules = node.cert.cert.time;
    let edge = rules.window_edge(NOW);
    node.publish_at(&[], edge + u64::from(rules.skew));
    let seller = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&seller, &items[0], 10)]);
    let h = node.steps[&6].step.clone();
    let err = node
        .retrieve_with(&items[0], u64::MAX, with_horizon(h), |_, l| l.to_vec())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement);
    // One second before the edge is old enough.
    let mut node = Node::new();
    node.publish_at(&[], edge - 1);
    node.publish(&[offer(&seller, &items[0], 10)]);
    let h = node.steps[&6].step.clone();
    let out = node
        .retrieve_with(&items[0], u64::MAX, with_horizon(h), |_, l| l.to_vec())
        .unwrap();
    assert_eq!(out.audited, vec![7]);
}

#[test]
fn a_horizon_above_t_or_on_a_skipped_value_is_a_bad_step() {
    let (mut node, items) = aged();
    // A step the device signed after the Read.
    let mut ahead = node.state.clone();
    let p = ahead.prepare(Vec::new(), NOW);
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    let later = ahead.apply(p, inc).step;
    assert_eq!(
        node.retrieve_with(&items[0], 1, with_horizon(later), |_, l| l.to_vec())
            .unwrap_err(),
        Misbehaviour::BadStep("the audit horizon is not a step in base+1..t")
    );
    // Nor the step at t itself, which would leave nothing to audit (an honest node's horizon
    // is dated before its last step).
    let at_t = node.steps[&9].step.clone();
    assert_eq!(
        node.retrieve_with(&items[0], 1, with_horizon(at_t), |_, l| l.to_vec())
            .unwrap_err(),
        Misbehaviour::BadStep("the audit horizon is not a step in base+1..t")
    );
    // A step a crash lost (value 10), which the gap step at 11 skips.
    let ghost = {
        let mut g = node.state.clone();
        let p = g.prepare(Vec::new(), NOW);
        let inc = node
            .signer
            .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
        g.apply(p, inc).step
    };
    node.crash_and_gap(1);
    assert_eq!(
        node.retrieve_with(&items[0], 1, with_horizon(ghost), |_, l| l.to_vec())
            .unwrap_err(),
        Misbehaviour::BadStep("the audit horizon is a value the chain skips")
    );
}

#[test]
fn a_horizon_against_the_chains_own_statements_is_evidence() {
    let (node, items) = aged();
    // Another statement at t's value: equivocation.
    let counter = node.cert.cert.counters[0];
    let mut before =
        StepState::new(counter).with_tree_of(node.state.clone(), node.steps[&8].step.clone());
    let p = before.prepare(Vec::new(), NOW + 1);
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    let twin = before.apply(p, inc).step;
    assert_eq!(twin.header.value, 9);
    let err = node
        .retrieve_with(&items[0], 1, with_horizon(twin), |_, l| l.to_vec())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Equivocation);
    // A step at 7 dated after the step at t: node time went backwards.
    let mut at6 =
        StepState::new(counter).with_tree_of(StepState::new(counter), node.steps[&6].step.clone());
    let p = at6.prepare(Vec::new(), NOW + DAY);
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    let late = at6.apply(p, inc).step;
    assert_eq!(late.header.value, 7);
    let err = node
        .retrieve_with(&items[0], 1, with_horizon(late), |_, l| l.to_vec())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::AtBackwards);
}

/// The state after step `v` of `node` (its tree then is not needed: the steps forged from it
/// are judged by their headers).
fn after(node: &Node, v: u64) -> StepState {
    let counter = node.cert.cert.counters[0];
    StepState::new(counter).with_tree_of(node.state.clone(), node.steps[&v].step.clone())
}

fn signed_step(node: &Node, state: &mut StepState, p: PreparedStep) -> SignedStep {
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    state.apply(p, inc).step
}

/// Review finding: a step backdated below the horizon changes the item's list, so that no
/// audit reaches it. The list then last changed at or below the horizon yet holds an offer
/// listed later than that step allows: the buyer sees it without an audit.
#[test]
fn a_list_changed_below_the_horizon_cannot_hold_a_later_offer() {
    let mut node = Node::new();
    let d = &items()[0];
    let alice = Keypair::generate(&mut OsRng);
    let bob = Keypair::generate(&mut OsRng);
    // Step 6, a week ago: Alice's offer (live) and Bob's.
    let oa = SignedOffer::sign(&alice, d, 10, Currency::EUR, 1, NOW + 20 * DAY, 1);
    let ob = SignedOffer::sign(&bob, d, 11, Currency::EUR, 1, NOW + 20 * DAY, 1);
    node.publish_at(&[oa, ob.clone()], NOW - 7 * DAY);
    // Step 7, dated forty days ago (backwards): it drops Bob's offer.
    let key = node.state.list(&d.key()).unwrap().records[1].key;
    let mut forged = node.state.clone();
    let mut last = node.steps[&6].step.clone();
    last.header.at = NOW - 40 * DAY;
    forged.last = Some(last);
    forged.expiries.insert((0, d.key(), key));
    let p = forged.prepare(Vec::new(), NOW - 40 * DAY);
    assert_eq!(p.removed, vec![ob.to_bytes()]);
    let s7 = {
        let inc = node
            .signer
            .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
        let sp = forged.apply(p, inc);
        node.steps.insert(7, sp.clone());
        sp.step
    };
    // (The cheat's mark, which the sweep leaves behind, is no record of the honest state.)
    forged.expiries.remove(&(0, d.key(), key));
    node.state = forged;
    node.lists.insert(
        d.key(),
        vec![node.state.list(&d.key()).unwrap().records[0].bytes.to_vec()],
    );
    // Step 8, today, another item; the horizon is step 7.
    node.publish(&[offer(&alice, &items()[1], 5)]);
    let err = node
        .retrieve_with(d, u64::MAX, with_horizon(s7), |_, l| l.to_vec())
        .unwrap_err();
    assert_eq!(
        err,
        Misbehaviour::BadStep(
            "the item's list last changed at or below the horizon but holds an offer that outlives it"
        )
    );
}

/// An audited step above the horizon dated before it: node time went backwards.
#[test]
fn an_audited_step_dated_before_the_horizon_is_at_backwards() {
    let (node, items) = aged();
    let mut s = after(&node, 6);
    let p = s.prepare(Vec::new(), NOW - 35 * DAY);
    let h = signed_step(&node, &mut s, p);
    assert_eq!(h.header.value, 7);
    let mut r = node.reader(&items[0], [9; 32]);
    r.on_head_bytes(&with_horizon(h)(node.head(&items[0], [9; 32])).to_bytes())
        .unwrap();
    assert_eq!(
        r.on_audit_bytes(8, &node.steps[&8].to_bytes())
            .unwrap_err()
            .kind(),
        Kind::AtBackwards
    );
}

/// Review finding: a buyer whose clock lags the node's by more than the skew sees an honest,
/// busy node's horizon as recent; the chain is then dated ahead of it too, and the verdict is
/// the clock disagreement, not an accusation.
#[test]
fn a_chain_dated_ahead_makes_a_recent_horizon_a_clock_disagreement() {
    let mut node = Node::new();
    let items = items();
    let skew = u64::from(node.cert.cert.time.skew);
    let seller = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&seller, &items[1], 10)]);
    node.publish_at(&[offer(&seller, &items[0], 10)], NOW + 4 * skew);
    let h = node.steps[&6].step.clone();
    let err = node
        .retrieve_with(&items[0], u64::MAX, with_horizon(h), |_, l| l.to_vec())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement);
}

/// Review finding: a node over the reader's budget cannot name a horizon near the window's
/// edge to turn "over budget" into the softer clock disagreement.
#[test]
fn a_horizon_near_the_edge_does_not_soften_over_budget() {
    let mut node = Node::new();
    let items = items();
    let rules = node.cert.cert.time;
    node.publish_at(&[], rules.window_edge(NOW) + 1);
    let seller = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&seller, &items[0], 10)]);
    let mut r = StepRetrieval::new(
        node.trusted.clone(),
        node.peer(),
        items[0].clone(),
        [9; 32],
        crate::retrieve::Budget {
            max_entries: 0,
            ..Default::default()
        },
        NOW,
    );
    let head = with_horizon(node.steps[&6].step.clone())(node.head(&items[0], [9; 32]));
    assert_eq!(r.on_head_bytes(&head.to_bytes()).unwrap(), None);
    r.check_list().unwrap();
    for v in r.plan_audits(u64::MAX, &mut OsRng) {
        r.on_audit_bytes(v, &node.steps[&v].to_bytes()).unwrap();
    }
    assert_eq!(r.finish().unwrap_err().kind(), Kind::OverBudget);
}

/// Review finding: a bad horizon does not pre-empt the evidence a reader's receipts give: a
/// gap step over a receipted value is still `gap-step-over-inc`.
#[test]
fn a_bad_horizon_does_not_hide_a_gap_step_over_a_receipt() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let ra = node.publish(&[offer(&alice, &items[0], 10)]);
    // The node drops step 6 and covers it with a gap step.
    node.state = StepState::new(node.cert.cert.counters[0]);
    node.lists.clear();
    node.gap_step(7);
    // A horizon the device signed after the Read.
    let mut ahead = node.state.clone();
    let p = ahead.prepare(Vec::new(), NOW);
    let later = signed_step(&node, &mut ahead, p);
    let mut r = node
        .reader(&items[0], [9; 32])
        .knowing([ra[0].step.step.inc.clone()]);
    let head = with_horizon(later)(node.head(&items[0], [9; 32]));
    let err = r.on_head_bytes(&head.to_bytes()).unwrap_err();
    assert_eq!(err.kind(), Kind::GapStepOverInc);
}

/// Gap steps at or below the horizon need not travel: a node that lost steps long ago is not
/// held to them for ever (no audit goes below the horizon).
#[test]
fn gap_steps_below_the_horizon_are_left_out() {
    let mut node = Node::new();
    let items = items();
    node.publish_at(&[], NOW - 40 * DAY);
    node.crash_and_gap(1);
    node.publish_at(&[], NOW - 40 * DAY);
    let seller = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&seller, &items[0], 10)]);
    let h = node.steps[&9].step.clone();
    let without_gaps = move |mut head: StepHead| {
        head.gaps.clear();
        head.horizon = Some(h.clone());
        head
    };
    let out = node
        .retrieve_with(&items[0], u64::MAX, without_gaps, |_, l| l.to_vec())
        .unwrap();
    assert_eq!((out.horizon, out.audited.clone()), (9, vec![10]));
    // Without a horizon, leaving the gap step out is a lie.
    let err = node
        .retrieve_with(
            &items[0],
            u64::MAX,
            |mut head: StepHead| {
                head.gaps.clear();
                head
            },
            |_, l| l.to_vec(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        Misbehaviour::BadStep("the head leaves out a gap step the chain names")
    );
}

/// Second review: a backdated step below the horizon that a later step covers (the item
/// touched again above the horizon) passes a buyer — π says nothing of steps below the
/// horizon — but the seller whose offer it dropped catches it with certainty: its receipt's
/// step is dated after the horizon it lies below (`at-backwards`, transferable).
#[test]
fn a_backdated_step_below_the_horizon_is_caught_by_the_sellers_monitor() {
    let mut node = Node::new();
    let d = &items()[0];
    let alice = Keypair::generate(&mut OsRng);
    let bob = Keypair::generate(&mut OsRng);
    let carol = Keypair::generate(&mut OsRng);
    let oa = SignedOffer::sign(&alice, d, 10, Currency::EUR, 1, NOW + 20 * DAY, 1);
    let ob = SignedOffer::sign(&bob, d, 11, Currency::EUR, 1, NOW + 20 * DAY, 1);
    let receipts = node.publish_at(&[oa, ob.clone()], NOW - 7 * DAY);
    let key = node.state.list(&d.key()).unwrap().records[1].key;
    let mut forged = node.state.clone();
    let mut last = node.steps[&6].step.clone();
    last.header.at = NOW - 40 * DAY;
    forged.last = Some(last);
    forged.expiries.insert((0, d.key(), key));
    let p = forged.prepare(Vec::new(), NOW - 40 * DAY);
    assert_eq!(p.removed, vec![ob.to_bytes()]);
    let s7 = signed_step(&node, &mut forged, p);
    forged.expiries.remove(&(0, d.key(), key));
    node.state = forged;
    // Step 8, today: Carol lists the item, so its list last changed above the horizon.
    node.publish(&[SignedOffer::sign(
        &carol,
        d,
        12,
        Currency::EUR,
        1,
        NOW + 20 * DAY,
        1,
    )]);
    let out = node
        .retrieve_with(d, u64::MAX, with_horizon(s7.clone()), |_, l| l.to_vec())
        .unwrap();
    assert!(out.offers.iter().all(|o| o.offer.seller != bob.public()));
    // Bob's monitor, holding the receipt of step 6.
    let pb =
        check_step_receipt(&node.trusted, &node.peer(), &node.cert, &ob, &receipts[1]).unwrap();
    let mut r = node.reader(d, [9; 32]).monitoring();
    let head = with_horizon(s7)(node.head(d, [9; 32]));
    let next = r.on_head_bytes(&head.to_bytes()).unwrap();
    node.serve_pages(d, &mut r, next).unwrap();
    let err = r
        .check_placements(&[(ob, receipts[1].clone(), pb)])
        .unwrap_err();
    assert!(
        matches!(err.kind(), Kind::AtBackwards | Kind::Removal),
        "{err:?}"
    );
}

/// Second review: a horizon too recent cannot stop the gap chain — a gap step over a seller's
/// receipt left out of the head is still a lie the seller sees.
#[test]
fn a_recent_horizon_does_not_let_gap_steps_be_left_out() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let ra = node.publish(&[offer(&alice, &items[0], 10)]);
    node.state = StepState::new(node.cert.cert.counters[0]);
    node.lists.clear();
    node.gap_step(7);
    node.publish(&[offer(&alice, &items[1], 11)]);
    node.publish(&[offer(&alice, &items[2], 12)]);
    let h = node.steps[&8].step.clone();
    let mut r = node
        .reader(&items[0], [9; 32])
        .knowing([ra[0].step.step.inc.clone()]);
    let mut head = node.head(&items[0], [9; 32]);
    head.gaps.clear();
    head.horizon = Some(h);
    assert_eq!(
        r.on_head_bytes(&head.to_bytes()).unwrap_err(),
        Misbehaviour::BadStep("the head leaves out a gap step the chain names")
    );
}

/// Second review: the step before an audited one, at the horizon's value, must be the horizon
/// itself — a twin statement there is equivocation.
#[test]
fn a_twin_of_the_horizon_is_equivocation() {
    let (node, items) = aged();
    let mut s = after(&node, 7);
    let p = s.prepare(Vec::new(), NOW - 39 * DAY);
    let twin = signed_step(&node, &mut s, p);
    assert_eq!(twin.header.value, 8);
    assert_ne!(twin.inc.inc.payload, node.steps[&8].step.inc.inc.payload);
    let mut r = node.reader(&items[0], [9; 32]);
    r.on_head_bytes(&with_horizon(twin)(node.head(&items[0], [9; 32])).to_bytes())
        .unwrap();
    assert_eq!(
        r.on_audit_bytes(9, &node.steps[&9].to_bytes())
            .unwrap_err()
            .kind(),
        Kind::Equivocation
    );
}

/// A buyer whose clock lags a busy honest node's by more than the skew sees its horizon as
/// recent, and the node leaves out the gap steps below it as honest nodes do: the verdict is
/// the clock disagreement (the step at t is dated ahead of that buyer), not a "gap step left
/// out" — an honest node is not accused by a lagging clock.
#[test]
fn a_lagging_buyer_does_not_hold_gap_steps_below_a_recent_looking_horizon() {
    let mut node = Node::new();
    let items = items();
    let rules = node.cert.cert.time;
    let skew = u64::from(rules.skew);
    // A crash before the first step: a gap step at node time 0.
    node.crash_and_gap(1);
    // The horizon an honest node names: just before its edge, now − L_max − 2·skew.
    node.publish_at(&[], NOW - u64::from(rules.lifetime) - 2 * skew - 1);
    let seller = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&seller, &items[0], 10)]);
    let h = node.steps[&8].step.clone();
    let mut r = StepRetrieval::new(
        node.trusted.clone(),
        node.peer(),
        items[0].clone(),
        [9; 32],
        crate::retrieve::Budget::default(),
        NOW - 4 * skew,
    );
    let mut head = node.head(&items[0], [9; 32]);
    head.gaps.clear();
    head.horizon = Some(h);
    let next = r.on_head_bytes(&head.to_bytes()).unwrap();
    node.serve_pages(&items[0], &mut r, next).unwrap();
    r.check_list().unwrap();
    for v in r.plan_audits(u64::MAX, &mut OsRng) {
        r.on_audit_bytes(v, &node.steps[&v].to_bytes()).unwrap();
    }
    assert_eq!(r.finish().unwrap_err().kind(), Kind::ClockDisagreement);
}

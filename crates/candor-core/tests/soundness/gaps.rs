//! Gap steps: on the chain or not, above the Read or not, over receipts, too wide.

use super::*;

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
    node.lists
        .insert(d.key(), vec![offer(&seller, &d, 100).to_bytes()]);
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

//! "Over budget" only for real volume, and never before the checks it could hide.

use super::*;

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
        let mut p = honest.prepare(vec![(extra.offer.key, extra.to_bytes())], NOW);
        let value = p.header.value;
        let records = (0..n)
            .map(|i| Record {
                key: SortKey {
                    currency: *b"EUR",
                    price: i,
                    seller: [7; 32],
                    serial: i,
                },
                hash: Digest([7; 32]),
                expiry: NOW + 86_400,
                added: value,
                bytes: std::sync::Arc::from(Vec::new()),
            })
            .collect();
        let forged = StepState::from_lists(
            counter,
            [(
                d.key(),
                LiveList {
                    last_changed: value,
                    records,
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
    // Padded offers are no offers: the list does not fold to the leaf.
    assert!(
        matches!(err, Misbehaviour::BadProof(_) | Misbehaviour::BadStep(_)),
        "{err}"
    );
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

/// A list made long enough to be over the seller's budget (here by a small budget; a node
/// can do it with one bad step) does not hide a removal from a seller who audits: the verdict
/// is the bad step, not "over budget". An honest node over the budget is not accused.
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
    // The cheater drops the first offer of the list in a step whose root is not its
    // transition: the audits catch the step, whatever the budget.
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
    assert_eq!(err, Misbehaviour::BadStep(NEW_ROOT_WRONG), "{err}");
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

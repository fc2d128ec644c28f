//! The head on the wire: the named certificate, one encoding, rebuilt statements, batched
//! `Read`s, dates and gap steps at the head.

use super::*;

#[test]
fn a_named_certificate_is_left_out_of_the_head_and_used_in_its_place() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[0], 10), offer(&alice, &items[1], 11)]);
    let head = node.head(&items[0], [9; 32]);
    let id = node.cert.id();
    let full = head.encode_for(None);
    let compact = head.encode_for(Some(&id));
    assert_eq!(full.len() - compact.len(), node.cert.to_bytes().len());
    // Another certificate's id named: the head carries its own.
    assert_eq!(head.encode_for(Some(&Digest([1; 32]))), full);
    let reader_of = |trusted: Vec<PublicKey>, named: Option<&SignedCertificate>| {
        let r = StepRetrieval::new(
            trusted,
            node.peer(),
            items[0].clone(),
            [9; 32],
            crate::retrieve::Budget::default(),
            NOW,
        );
        match named {
            Some(c) => r.with_certificate(c.clone()),
            None => r,
        }
    };
    let reader = |named: Option<&SignedCertificate>| reader_of(node.trusted.clone(), named);
    // The buyer that holds the certificate names it and takes the compact head.
    let mut r = reader(Some(&node.cert));
    assert_eq!(r.request().cert, Some(id));
    r.on_head_bytes(&compact).unwrap();
    // A head without a certificate for a buyer that named none; the named one sent again.
    let err = reader(None).on_head_bytes(&compact).unwrap_err();
    assert_eq!(err.kind(), Kind::Malformed, "{err}");
    let err = reader(Some(&node.cert)).on_head_bytes(&full).unwrap_err();
    assert_eq!(err.kind(), Kind::Malformed, "{err}");
    // The named certificate is still held to a trusted authority and this PeerId.
    let other = vec![Keypair::generate(&mut OsRng).public()];
    let err = reader_of(other, Some(&node.cert))
        .on_head_bytes(&compact)
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BadCertificate, "{err}");
    // The buyer without it takes the full head, as before.
    reader(None).on_head_bytes(&full).unwrap();
}

#[test]
fn a_head_under_another_certificate_than_the_named_one_is_caught() {
    // An authority that certified one PeerId twice (evidence against it, DESIGN.md §4): the
    // node shows the network one certificate and answers a reader under the other.
    let key = Keypair::generate(&mut OsRng);
    let auth = Authority::new(Keypair::generate(&mut OsRng));
    let shown = Node::enrolled(&key, &auth);
    let mut other = Node::enrolled(&key, &auth);
    assert_eq!(shown.peer(), other.peer());
    assert_ne!(shown.cert.id(), other.cert.id());
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    other.publish(&[offer(&alice, &items[0], 10)]);
    let head = other.head(&items[0], [9; 32]);
    let reader = |named: Option<&SignedCertificate>| {
        let r = other.reader(&items[0], [9; 32]);
        match named {
            Some(c) => r.with_certificate(c.clone()),
            None => r,
        }
    };
    // Its own head, valid in itself, for a reader that named the certificate it showed.
    let bytes = head.encode_for(Some(&shown.cert.id()));
    let err = reader(Some(&shown.cert)).on_head_bytes(&bytes).unwrap_err();
    assert_eq!(err, Misbehaviour::OtherCertificate);
    // The same head for a reader that named none, or the certificate it carries: verified.
    reader(None).on_head_bytes(&bytes).unwrap();
    reader(Some(&other.cert))
        .on_head_bytes(&head.encode_for(Some(&other.cert.id())))
        .unwrap();
}

#[test]
fn a_step_at_t_has_one_encoding_in_a_head() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[0], 10)]);
    let head = node.head(&items[0], [9; 32]);
    let Some(HeadStep::Top { .. }) = &head.step else {
        panic!("an ordinary step travels as its top");
    };
    // The ordinary step sent whole (kind 2 of a self-contained head step) is refused.
    let whole = HeadStep::Whole(node.steps[&node.state.value()].step.clone());
    assert!(matches!(
        HeadStep::from_bytes(&whole.to_bytes()),
        Err(DecodeError::Invalid { .. })
    ));
    // In a head, a whole step at t is a reference to the first gap step, which must be there.
    let mut forged = head.clone();
    forged.step = Some(whole);
    assert!(matches!(
        StepHead::decode(
            &forged.encode_for(None),
            &crate::entry::RetrieveRequest {
                item: items[0].key(),
                nonce: [9; 32],
                cert: None,
            },
            None
        ),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn node_time_that_goes_backwards_is_transferable_evidence() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[0], 10)]);
    let receipts = node.publish(&[offer(&alice, &items[1], 11)]);
    assert!(verify_step(&node.cert, &node.peer(), &receipts[0].step).is_ok());
    assert_eq!(receipts[0].step.step.header.at, NOW);
    // The second step dated before the first, re-signed by the node's own device.
    let mut sp = (*receipts[0].step).clone();
    sp.step.header.at = NOW - 1;
    sp.step.inc = node.signer.sign_inc(
        0,
        sp.step.header.value,
        sp.step.header.payload(&node.peer()),
    );
    let err = verify_step(&node.cert, &node.peer(), &sp).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind(), Kind::AtBackwards);
    let e = crate::misbehaviour::Evidence::from_bytes(&e.to_bytes()).unwrap();
    e.verify(&node.trusted).unwrap();
    // The same two steps in the other order, or one time equal, prove nothing.
    let crate::misbehaviour::Evidence::AtBackwards { cert, a, b } = e else {
        panic!("another kind")
    };
    let swapped = crate::misbehaviour::Evidence::AtBackwards {
        cert: cert.clone(),
        a: b.clone(),
        b: a.clone(),
    };
    assert!(swapped.verify(&node.trusted).is_err());
    let mut same_time = (*receipts[0].step).clone();
    same_time.step.header.at = NOW;
    let honest = crate::misbehaviour::Evidence::AtBackwards {
        cert,
        a,
        b: Box::new(HeadStep::of(&same_time.step)),
    };
    assert!(honest.verify(&node.trusted).is_err());
}

#[test]
fn a_future_dated_step_is_a_clock_disagreement_not_an_accusation() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[0], 10)]);
    let skew = u64::from(node.cert.cert.time.skew);
    // The node's clock runs ahead: within the skew, its answer is used.
    node.publish_at(&[offer(&alice, &items[1], 11)], NOW + skew);
    node.retrieve(&items[0], 0).unwrap();
    // Beyond it, the buyer does not use the answer, and accuses nobody.
    node.publish_at(&[offer(&alice, &items[2], 12)], NOW + skew + 1);
    let err = node.retrieve(&items[0], 0).unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement, "{err}");
    assert!(!err.kind().is_transferable());
}

#[test]
fn a_batched_read_serves_each_buyer_by_its_path_and_no_other() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[0], 10)]);
    let nonces = [[9; 32], [8; 32], [7; 32]];
    let tree = crate::nonces::NonceTree::new(&nonces).unwrap();
    let read = node.signer.sign_read(0, node.state.value(), tree.root());
    let head_for = |i: usize| {
        let mut h = node
            .state
            .head(node.cert.clone(), read.clone(), &items[0].key());
        h.nonces = tree.path(i).unwrap();
        h
    };
    let reader = |nonce: [u8; 32]| node.reader(&items[0], nonce);
    // Each buyer checks the Read through its own path.
    for (i, nonce) in nonces.iter().enumerate() {
        reader(*nonce)
            .on_head_bytes(&head_for(i).to_bytes())
            .unwrap();
    }
    // Another buyer's path, or a batch without this buyer's nonce: the Read rebuilt over the
    // root its own nonce folds to is not the one the device signed.
    let err = reader(nonces[0])
        .on_head_bytes(&head_for(1).to_bytes())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BadStatementSignature, "{err}");
    let err = reader([6; 32])
        .on_head_bytes(&head_for(0).to_bytes())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BadStatementSignature, "{err}");
    // A path onto a Read of this buyer's own nonce (no batch): the same.
    let mut h = node.head(&items[0], [9; 32]);
    h.nonces = tree.path(0).unwrap();
    let err = reader([9; 32]).on_head_bytes(&h.to_bytes()).unwrap_err();
    assert_eq!(err.kind(), Kind::BadStatementSignature, "{err}");
    // A path longer than a batch can be does not decode.
    let mut h = head_for(0);
    h.nonces.siblings = vec![[0; 32]; crate::nonces::MAX_NONCE_LEVELS + 1];
    let err = reader(nonces[0]).on_head_bytes(&h.to_bytes()).unwrap_err();
    assert_eq!(err.kind(), Kind::Malformed, "{err}");
}

#[test]
fn a_future_dated_step_that_drops_a_receipted_offer_is_still_a_removal() {
    // The date is judged after the evidence checks: a node cannot turn transferable removal
    // evidence into a clock disagreement by dating the step that dropped the offer.
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let bob = Keypair::generate(&mut OsRng);
    let oa = offer(&alice, &items[0], 50);
    let ra = node.publish(std::slice::from_ref(&oa));
    let pa = check_step_receipt(&node.trusted, &node.peer(), &node.cert, &oa, &ra[0]).unwrap();
    // Cheat: forget Alice's offer, and commit Bob's in a step dated an hour ahead.
    node.state.lists.remove(&items[0].key());
    node.lists.remove(&items[0].key());
    let ob = offer(&bob, &items[0], 40);
    let p = node
        .state
        .prepare(vec![(items[0].key(), ob.to_bytes())], NOW + 3_600);
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    let sp = node.state.apply(p, inc);
    node.lists.insert(items[0].key(), vec![ob.to_bytes()]);
    node.steps.insert(sp.step.header.value, sp);
    // Alice monitors: the head, d's list, her placement.
    let mut r = node.reader(&items[0], [9; 32]);
    let next = r
        .on_head_bytes(&node.head(&items[0], [9; 32]).to_bytes())
        .unwrap();
    node.serve_pages(&items[0], &mut r, next).unwrap();
    let err = r
        .check_placements(&[(oa.clone(), ra[0].clone(), pa)])
        .unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind(), Kind::Removal);
    let e = crate::misbehaviour::Evidence::from_bytes(&e.to_bytes()).unwrap();
    e.verify(&node.trusted).unwrap();
    // A buyer without a receipt does not use the answer: a clock disagreement.
    let err = node.retrieve(&items[0], 0).unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement, "{err}");
}

#[test]
fn a_gap_step_at_t_that_rewrote_the_tree_is_caught_at_the_head() {
    // A gap step is empty: its header alone shows a changed root, so the buyer catches it
    // with certainty, not only when an audit draws it.
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    node.publish(&[offer(&alice, &items[0], 10)]);
    let v = node.state.value();
    let mut p = node.state.clone().prepare_gap(v + 2);
    p.header.new_root = empty_root();
    let inc = node
        .signer
        .sign_inc(0, v + 2, p.header.payload(&node.peer()));
    let gap = node.state.clone().apply(p, inc).step;
    let read = node.signer.sign_read(0, v + 2, [9; 32]);
    let head = StepHead {
        cert: node.cert.clone(),
        read,
        nonces: crate::nonces::NoncePath::default(),
        step: Some(HeadStep::Whole(gap.clone())),
        leaf: None,
        proof: crate::smt::Smt::new().prove(&[items[0].key().0 .0]),
        gaps: vec![gap],
        horizon: None,
    };
    let err = node
        .reader(&items[0], [9; 32])
        .on_head_bytes(&head.to_bytes())
        .unwrap_err();
    assert_eq!(
        err,
        Misbehaviour::BadStep("a gap step holds offers or changed the root")
    );
}

#[test]
fn an_offer_listed_longer_than_l_max_is_caught_by_its_seller_and_by_every_buyer() {
    // A node that lists an offer past now + L_max − 2·skew (its own sybil's, which no honest
    // seller checks): the step fails the whole-step check, and a buyer who audits nothing
    // still refuses the list while no later step's time covers the offer; after that, audits
    // catch the step.
    let mut node = Node::new();
    let items = items();
    let mallory = Keypair::generate(&mut OsRng);
    let latest = node.cert.cert.time.latest_expiry(NOW);
    let long = SignedOffer::sign(&mallory, &items[0], 5, Currency::EUR, 1, latest + 1, 1);
    let alice = Keypair::generate(&mut OsRng);
    let receipts = node.publish(&[offer(&alice, &items[2], 7), long.clone()]);
    let err = verify_step(&node.cert, &node.peer(), &receipts[0].step).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind(), Kind::OverlongExpiry);
    let e = crate::misbehaviour::Evidence::from_bytes(&e.to_bytes()).unwrap();
    e.verify(&node.trusted).unwrap();
    // The same step's other offer, or a batch that is not the step's, proves nothing.
    let crate::misbehaviour::Evidence::OverlongExpiry {
        cert, step, batch, ..
    } = e
    else {
        panic!("another kind")
    };
    let other = crate::misbehaviour::Evidence::OverlongExpiry {
        cert: cert.clone(),
        step: step.clone(),
        batch: batch.clone(),
        position: 0,
    };
    assert!(other.verify(&node.trusted).is_err());
    let forged = crate::misbehaviour::Evidence::OverlongExpiry {
        cert,
        step,
        batch: vec![batch[1].clone()],
        position: 0,
    };
    assert!(forged.verify(&node.trusted).is_err());
    let err = node.retrieve(&items[0], 0).unwrap_err();
    assert!(err.to_string().contains("L_max"), "{err}");
    // A later step a day on: the offer is within the bound at t's time, and only an audit of
    // its own step catches it, with the same evidence.
    node.publish_at(&[offer(&alice, &items[1], 10)], NOW + 86_400);
    let err = node.retrieve(&items[0], 2).unwrap_err();
    assert_eq!(err.kind(), Kind::OverlongExpiry, "{err}");
    // At the bound, it is listed.
    let mut honest = Node::new();
    let ok = SignedOffer::sign(&mallory, &items[0], 5, Currency::EUR, 1, latest, 1);
    let receipts = honest.publish(std::slice::from_ref(&ok));
    verify_step(&honest.cert, &honest.peer(), &receipts[0].step).unwrap();
    honest.retrieve(&items[0], 0).unwrap();
}

#[test]
fn a_head_dated_before_a_sellers_receipt_is_at_backwards_evidence() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let oa = offer(&alice, &items[0], 50);
    let ra = node.publish_at(std::slice::from_ref(&oa), NOW + 100);
    let pa = check_step_receipt(&node.trusted, &node.peer(), &node.cert, &oa, &ra[0]).unwrap();
    // The next step dated before Alice's, re-signed by the node's own device.
    let bob = Keypair::generate(&mut OsRng);
    let mut p = node.state.prepare(
        vec![(items[1].key(), offer(&bob, &items[1], 9).to_bytes())],
        NOW,
    );
    assert_eq!(p.header.at, NOW + 100, "an honest node never binds less");
    p.header.at = NOW;
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    node.state.apply(p, inc);
    // A buyer sees nothing wrong (one step, its time within the clock); Alice's monitor,
    // holding her receipt, gets evidence anyone can check.
    node.retrieve(&items[0], 0).unwrap();
    let mut r = node.reader(&items[0], [9; 32]);
    let next = r
        .on_head_bytes(&node.head(&items[0], [9; 32]).to_bytes())
        .unwrap();
    node.serve_pages(&items[0], &mut r, next).unwrap();
    let err = r.check_placements(&[(oa, ra[0].clone(), pa)]).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind(), Kind::AtBackwards);
    e.verify(&node.trusted).unwrap();
}

#[test]
fn a_bad_offer_beside_an_overlong_one_does_not_hide_the_evidence() {
    let mut node = Node::new();
    let items = items();
    let mallory = Keypair::generate(&mut OsRng);
    let latest = node.cert.cert.time.latest_expiry(NOW);
    let long = SignedOffer::sign(&mallory, &items[0], 5, Currency::EUR, 1, latest + 1, 1);
    let mut forged = offer(&mallory, &items[1], 6);
    forged.signature.0[0] ^= 1;
    let receipts = node.publish(&[long, forged]);
    let err = verify_step(&node.cert, &node.peer(), &receipts[0].step).unwrap_err();
    assert_eq!(err.kind(), Kind::OverlongExpiry, "{err}");
    // Evidence is held to this certificate's counter and values: the same batch under a step
    // at another counter, or at or below the initial value, proves nothing against it.
    let Misbehaviour::Evidence(e) = err else {
        panic!("evidence")
    };
    e.verify(&node.trusted).unwrap();
    let crate::misbehaviour::Evidence::OverlongExpiry {
        cert,
        step,
        batch,
        position,
    } = *e
    else {
        panic!("another kind")
    };
    for (counter, value) in [(9, step.header.value), (0, node.state.counter.initial)] {
        let mut s = (*step).clone();
        s.header.counter = counter;
        s.header.value = value;
        s.inc = node
            .signer
            .sign_inc(counter, value, s.header.payload(&node.peer()));
        let e = crate::misbehaviour::Evidence::OverlongExpiry {
            cert: cert.clone(),
            step: Box::new(s),
            batch: batch.clone(),
            position,
        };
        assert!(
            e.verify(&node.trusted).is_err(),
            "counter {counter} value {value}"
        );
    }
}

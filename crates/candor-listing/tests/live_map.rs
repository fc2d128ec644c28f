//! Scheme M's live map on a real node with files (DESIGN.md §9): a sale replaces the record,
//! a stale republish is refused with a typed error, an exact republish gets its receipt back,
//! expired records leave in a step of their own (the node's sweep), a restart replays every
//! addition and removal to the same map, and the sellers' monitors accuse nobody throughout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{monitor, publish_to, retrieve_from, PublishError, Reading};
use common::*;

fn signed(seller: &Keypair, serial: u64, quantity: u32, expiry: u64) -> SignedOffer {
    SignedOffer::sign(
        seller,
        &target(),
        100,
        Currency::EUR,
        quantity,
        expiry,
        serial,
    )
}

#[test]
fn a_node_keeps_only_live_records_across_sales_sweeps_and_restarts() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let bob = Keypair::generate(&mut rand_core::OsRng);
    let listed = signed(&alice, 1, 3, NOW + 3_600);
    let short = signed(&bob, 1, 1, NOW + 600);
    let ra = publish_to(&node, &m.trusted, &listed, NOW).unwrap();
    let rb = publish_to(&node, &m.trusted, &short, NOW).unwrap();
    // An exact republish (a reply lost on the way) gets the same step's receipt back.
    let again = publish_to(&node, &m.trusted, &listed, NOW).unwrap();
    assert_eq!(step(again).0, step(ra.clone()).0);
    assert_eq!(node.live_records(), Some(2));
    // A sale lowers the quantity; a stale republish of the old serial is refused, typed.
    let sold = signed(&alice, 2, 2, NOW + 3_600);
    let rs = publish_to(&node, &m.trusted, &sold, NOW + 1).unwrap();
    let stale = node
        .publish_all(&[signed(&alice, 1, 9, NOW + 3_600)], NOW + 2)
        .pop()
        .unwrap();
    assert!(
        matches!(
            stale,
            Err(PublishError::NotAdmitted(NotAdmitted::Stale { held: 2 }))
        ),
        "{stale:?}"
    );
    // Bob's offer expires; the node's sweep removes it in a step of its own.
    node.set_clock(Some(NOW + 600));
    assert_eq!(node.compact().unwrap(), 1);
    assert_eq!(node.compact().unwrap(), 0, "nothing more is due");
    assert_eq!(node.live_records(), Some(1));
    let mine = [
        (listed.clone(), ra.clone()),
        (short.clone(), rb.clone()),
        (sold.clone(), rs.clone()),
    ];
    let reading = Reading::default().at(NOW + 601).audits(10);
    let out = steps(monitor(&node, &m.trusted, &target(), &mine, reading.clone()).unwrap());
    assert_eq!(out.offers, vec![sold.clone()]);
    // A restart replays every step, removals included, to the same map.
    let root = out.root;
    drop(node);
    let node = reopen(dir.path(), &cert).unwrap();
    assert_eq!(node.live_records(), Some(1));
    let out = steps(monitor(&node, &m.trusted, &target(), &mine, reading).unwrap());
    assert_eq!(out.root, root);
    assert_eq!(out.current(NOW + 601).len(), 1);
    // A buyer reading later, auditing every step, accepts every one.
    let out = steps(
        retrieve_from(
            &node,
            &m.trusted,
            &target(),
            Reading::default().at(NOW + 601).audits(100),
        )
        .unwrap(),
    );
    assert_eq!(out.audited.len() as u64, out.t - out.base);
}

/// A node removes a receipted offer in a step of its own, with no justification (DESIGN.md
/// §9: the removal hidden in an empty step no seller checks at publish). The offer's seller
/// catches it with certainty (its monitor: transferable removal evidence); a buyer whose
/// audits draw that step catches it too (transferable unjustified-removal evidence: here
/// every step is audited).
#[test]
fn a_removal_in_an_empty_step_is_caught_by_the_seller_and_by_audits() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let bob = Keypair::generate(&mut rand_core::OsRng);
    let oa = SignedOffer::sign(&alice, &target(), 50, Currency::EUR, 1, NOW + 3_600, 1);
    let ob = SignedOffer::sign(&bob, &target(), 90, Currency::EUR, 1, NOW + 3_600, 1);
    let ra = publish_to(&node, &m.trusted, &oa, NOW).unwrap();
    publish_to(&node, &m.trusted, &ob, NOW).unwrap();
    node.set_clock(Some(NOW + 10));
    let sp = node.remove_unjustly(&target().key()).unwrap().unwrap();
    assert_eq!(sp.removed, vec![oa.to_bytes()], "the cheapest record goes");
    let reading = Reading::default().at(NOW + 11);
    // Alice's monitor.
    let err = monitor(&node, &m.trusted, &target(), &[(oa, ra)], reading.clone()).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("removal evidence expected, got {err}")
    };
    assert_eq!(e.kind(), Kind::Removal);
    Evidence::from_bytes(&e.to_bytes())
        .unwrap()
        .verify(&m.trusted)
        .unwrap();
    // A buyer auditing every step.
    let err = retrieve_from(&node, &m.trusted, &target(), reading.audits(100)).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("evidence expected, got {err}")
    };
    assert_eq!(e.kind(), Kind::UnjustifiedRemoval);
    Evidence::from_bytes(&e.to_bytes())
        .unwrap()
        .verify(&m.trusted)
        .unwrap();
}

/// "Over budget" hides nothing from a seller: a node that stuffs the item with sybil records
/// past the seller's budget and removes the seller's offer is still caught by its monitor
/// (a list holds at most MAX_LIVE records, so a monitor fetches it whatever the budget).
#[test]
fn over_budget_does_not_hide_a_removal_from_the_sellers_monitor() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let oa = SignedOffer::sign(&alice, &target(), 1, Currency::EUR, 1, NOW + 3_600, 1);
    let ra = publish_to(&node, &m.trusted, &oa, NOW).unwrap();
    let sybils: Vec<SignedOffer> = (0..20)
        .map(|i| {
            let s = Keypair::generate(&mut rand_core::OsRng);
            SignedOffer::sign(&s, &target(), 100 + i, Currency::EUR, 1, NOW + 3_600, 1)
        })
        .collect();
    for r in node.publish_all(&sybils, NOW) {
        r.unwrap();
    }
    let small = Budget {
        max_entries: 10,
        ..Budget::default()
    };
    // Honest so far: over the budget, not accused.
    let reading = Reading::new(small).at(NOW + 1);
    let err = monitor(
        &node,
        &m.trusted,
        &target(),
        &[(oa.clone(), ra.clone())],
        reading.clone(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), Kind::OverBudget, "{err}");
    node.set_clock(Some(NOW + 2));
    node.remove_unjustly(&target().key()).unwrap().unwrap();
    let err = monitor(&node, &m.trusted, &target(), &[(oa, ra)], reading).unwrap_err();
    assert_eq!(err.kind(), Kind::Removal, "{err}");
}

/// A node answers no seller "publish again" for its own room: two offers of one seller and
/// item in one publish go into two steps, and the same bytes twice get one receipt.
#[test]
fn a_publish_carries_what_a_step_had_no_room_for_into_the_next() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let a1 = signed(&alice, 1, 3, NOW + 3_600);
    let a2 = signed(&alice, 2, 2, NOW + 3_600);
    let out = node.publish_all(&[a1.clone(), a2.clone(), a1], NOW);
    let steps: Vec<u64> = out
        .into_iter()
        .map(|r| r.unwrap().as_step().unwrap().step.step.header.value)
        .collect();
    assert_eq!(steps[0], steps[2], "the same bytes, one receipt");
    assert_eq!(steps[1], steps[0] + 1, "the replacement in the next step");
    assert_eq!(node.live_records(), Some(1));
}

/// A crash at any point of a step that only sweeps expired records: the restart finishes it
/// from its pending record (or the next sweep makes it again), the live map read back holds
/// exactly the live record, and neither the swept offer's seller nor a buyer auditing every
/// step accuses the node — after a second restart too.
#[test]
fn a_crash_inside_a_sweep_step_is_recovered_and_never_accused() {
    use candor_listing::CrashAt;
    for crash in [
        CrashAt::AfterPending,
        CrashAt::AfterInc,
        CrashAt::AfterCommit,
    ] {
        let mut m = Market::new();
        let dir = tempfile::tempdir().unwrap();
        let (node, cert) = files_node(&mut m, dir.path(), Scheme::Merkle);
        let alice = Keypair::generate(&mut rand_core::OsRng);
        let bob = Keypair::generate(&mut rand_core::OsRng);
        let short = signed(&alice, 1, 1, NOW + 600);
        let long = signed(&bob, 1, 1, NOW + 3_600);
        let rs = publish_to(&node, &m.trusted, &short, NOW).unwrap();
        let rl = publish_to(&node, &m.trusted, &long, NOW).unwrap();
        node.set_clock(Some(NOW + 601));
        node.sweep_crashing(crash);
        drop(node);
        let mine = [(short.clone(), rs), (long.clone(), rl)];
        for restart in 0..2 {
            let node = reopen(dir.path(), &cert).unwrap();
            node.set_clock(Some(NOW + 601));
            node.compact().unwrap();
            assert_eq!(node.live_records(), Some(1), "{crash:?}, restart {restart}");
            let reading = Reading::default().at(NOW + 602).audits(u64::MAX);
            let out = steps(monitor(&node, &m.trusted, &target(), &mine, reading.clone()).unwrap());
            assert_eq!(out.offers, vec![long.clone()], "{crash:?}");
            let out = steps(retrieve_from(&node, &m.trusted, &target(), reading).unwrap());
            assert_eq!(out.audited.len() as u64, out.t - out.base, "{crash:?}");
        }
    }
}

//! The adversary suite: for each cheat of DESIGN.md §2, a cheating listing node tries it and
//! the buyer or the seller catches it with the right misbehaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_lab::{CheatingNode, EquivocatingDevice, Strategy};
use candor_listing::{
    monitor, publish_to, retrieve_from, Listing, ListingNode, PublishAnswer, Query, Refusal,
};
use candor_store::ListingStore;
use common::*;

/// Builds a scheme-B node (device with 2 counters, 1 certified), publishes the standard
/// workload through the cheater, lets it prepare, and retrieves the target.
fn run(
    strategy_of: impl FnOnce(&Workload) -> Strategy,
    budget: Budget,
) -> (
    Market,
    Workload,
    CheatingNode<SoftwareDevice>,
    Result<Outcome, Misbehaviour>,
) {
    let mut m = Market::new();
    let honest = m.node(Scheme::Basic, 1, 2);
    let w = standard_workload(&honest, &m.trusted);
    let strategy = strategy_of(&w);
    let cheater = CheatingNode::new(honest, strategy, target());
    cheater.prepare(NOW);
    let result = retrieve_from(&cheater, &m.trusted, &target(), budget).map(entries);
    (m, w, cheater, result)
}

fn caught(strategy_of: impl FnOnce(&Workload) -> Strategy, kind: Kind) {
    let (_, _, cheater, result) = run(strategy_of, Budget::default());
    match result {
        Err(m) => assert_eq!(m.kind(), kind, "{}: {m}", cheater.strategy().name()),
        Ok(o) => panic!(
            "{} went unnoticed: {:?}",
            cheater.strategy().name(),
            o.offers
        ),
    }
}

#[test]
fn honest_node_gives_exactly_w_d() {
    let (_, w, _, result) = run(|_| Strategy::Honest, Budget::default());
    let outcome = result.unwrap();
    assert_eq!(
        sorted(outcome.offers.iter().map(|(_, o)| o.clone()).collect()),
        sorted(w.w_d(&target()))
    );
    assert!(outcome.faults.is_empty() && outcome.gaps.is_empty());
    let current = outcome.current(NOW);
    assert_eq!(
        current.iter().map(|o| o.price).collect::<Vec<_>>(),
        vec![300, 450, 700]
    );
    assert_eq!(cheapest(&current, Currency::EUR).unwrap().price, 300);
}

#[test]
fn omit_entry_is_caught_by_the_buyer() {
    caught(|_| Strategy::OmitEntry, Kind::MissingEntry);
}

#[test]
fn omit_cheaper_than_favourite_is_caught() {
    caught(
        |w| Strategy::OmitCheaperThan(w.sellers[2].public()),
        Kind::MissingEntry,
    );
}

#[test]
fn changed_price_is_caught() {
    caught(|_| Strategy::ChangePrice, Kind::EntryMismatch);
}

#[test]
fn invented_offer_is_transferable_evidence_and_skipped() {
    let (m, w, _, result) = run(
        |w| Strategy::InventOffer {
            victim: w.sellers[1].public(),
        },
        Budget::default(),
    );
    let outcome = result.unwrap();
    assert_eq!(outcome.faults.len(), 1);
    let evidence = Evidence::from_bytes(&outcome.faults[0].to_bytes()).unwrap();
    assert_eq!(evidence.kind(), Kind::BadEntry);
    // A third party verifies it with the authority key alone.
    evidence.verify(&m.trusted).unwrap();
    assert!(evidence
        .verify(&[Keypair::generate(&mut rand_core::OsRng).public()])
        .is_err());
    // The invented offer is not among the offers; the real ones all are.
    assert_eq!(
        sorted(outcome.offers.iter().map(|(_, o)| o.clone()).collect()),
        sorted(w.w_d(&target()))
    );
}

#[test]
fn reorder_is_caught() {
    caught(|_| Strategy::Reorder, Kind::OutOfOrder);
}

#[test]
fn stale_read_is_caught() {
    caught(|_| Strategy::StaleRead, Kind::StaleNonce);
}

#[test]
fn replayed_answer_of_another_buyer_is_caught() {
    let (m, _, cheater, first) = run(|_| Strategy::ReplayAnswer, Budget::default());
    first.unwrap();
    let second = retrieve_from(&cheater, &m.trusted, &target(), Budget::default());
    assert_eq!(second.unwrap_err().kind(), Kind::StaleNonce);
}

#[test]
fn stopping_early_is_caught() {
    caught(|_| Strategy::StopEarly, Kind::Truncated);
}

#[test]
fn smaller_t_is_caught() {
    caught(|_| Strategy::SmallerT, Kind::BadStatementSignature);
}

#[test]
fn another_counter_is_caught() {
    caught(|_| Strategy::OtherCounter, Kind::WrongCounter);
}

#[test]
fn another_items_offer_under_d_is_caught() {
    caught(|_| Strategy::OtherItemUnderD, Kind::EntryMismatch);
}

#[test]
fn superseded_offer_replayed_is_caught() {
    caught(|_| Strategy::ReplaySuperseded, Kind::EntryMismatch);
}

#[test]
fn duplicate_is_caught() {
    caught(|_| Strategy::Duplicate, Kind::OutOfOrder);
}

#[test]
fn refusal_is_reported() {
    caught(|_| Strategy::Refuse, Kind::Refused);
}

#[test]
fn sybil_stuffing_past_the_budget_is_over_budget() {
    let budget = Budget {
        max_entries: 40,
        ..Budget::default()
    };
    let (_, _, _, result) = run(|_| Strategy::SybilStuffing { offers: 100 }, budget);
    assert_eq!(result.unwrap_err().kind(), Kind::OverBudget);
}

#[test]
fn gap_over_a_receipt_is_caught_by_the_sellers_monitor() {
    let (m, w, cheater, result) = run(|_| Strategy::GapOverReceipt, Budget::default());
    // The buyer alone sees a gap notice: reported, not an accusation.
    let outcome = result.unwrap();
    assert_eq!(outcome.gaps.len(), 1);
    assert_eq!(outcome.offers.len(), w.w_d(&target()).len() - 1);
    // The seller whose receipted offer was covered monitors and gets transferable evidence.
    let victim = &w.sellers[0];
    let err = monitor(
        &cheater,
        &m.trusted,
        &target(),
        &w.receipts_of(victim),
        Budget::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), Kind::GapOverReceipt);
    let Misbehaviour::Evidence(e) = err else {
        panic!()
    };
    let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
    assert!(e.verify(&m.trusted).unwrap().contains("gap notice"));
    // An honest seller whose offers were untouched monitors without accusing anyone.
    monitor(
        &cheater,
        &m.trusted,
        &target(),
        &w.receipts_of(&w.sellers[1]),
        Budget::default(),
    )
    .unwrap();
}

#[test]
fn every_strategy_is_caught_and_the_honest_one_is_not() {
    let stranger = Keypair::generate(&mut rand_core::OsRng).public();
    let count = Strategy::all(stranger, stranger, 0).len();
    for i in 0..count {
        let budget = Budget {
            max_entries: 12,
            ..Budget::default()
        };
        let (m, w, cheater, mut result) = run(
            |w| Strategy::all(w.sellers[2].public(), w.sellers[1].public(), 10).swap_remove(i),
            budget,
        );
        let name = cheater.strategy().name();
        if name == "replay-answer" {
            // The first buyer's answer is genuine; the cheat is on the next buyer.
            result = retrieve_from(&cheater, &m.trusted, &target(), budget).map(entries);
        }
        let detected = match &result {
            Err(_) => true,
            Ok(o) => {
                !o.faults.is_empty()
                    || (!o.gaps.is_empty()
                        && w.sellers.iter().any(|s| {
                            monitor(
                                &cheater,
                                &m.trusted,
                                &target(),
                                &w.receipts_of(s),
                                Budget::default(),
                            )
                            .is_err()
                        }))
            }
        };
        if name == "honest" {
            assert!(
                result.is_ok() && !detected,
                "honest node accused: {result:?}"
            );
        } else {
            assert!(detected, "{name} went unnoticed");
        }
    }
}

/// A node whose device signs two payloads for one value: a seller holding a receipt for it
/// gets equivocation evidence that a third party verifies with the authority key alone.
#[test]
fn equivocating_device_yields_transferable_evidence() {
    let mut m = Market::new();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let mut device = EquivocatingDevice::new(PeerId::from_ed25519(&node_key.public()), 1);
    let cert = m.enrol_device(&node_key, &mut device, Scheme::Basic, 1);
    let (node, _) =
        ListingNode::open(device, ListingStore::in_memory().unwrap(), cert.clone()).unwrap();
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let bob = Keypair::generate(&mut rand_core::OsRng);
    let a = offer(&alice, &target(), 100, 1);
    let ra = publish_to(&node, &m.trusted, &a, NOW).unwrap();
    // The broken device now re-uses Alice's value for Bob's offer.
    let (mut device, store) = node.into_parts();
    device.rewind(0);
    let (node, _) = ListingNode::open(device, store, cert).unwrap();
    let b = offer(&bob, &target(), 90, 1);
    let rb = publish_to(&node, &m.trusted, &b, NOW).unwrap();
    assert_eq!(ra.value(), rb.value());
    // Alice monitors: the value of her receipt now binds another payload.
    let err = monitor(&node, &m.trusted, &target(), &[(a, ra)], Budget::default()).unwrap_err();
    let Misbehaviour::Evidence(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind(), Kind::Equivocation);
    let proof = Evidence::from_bytes(&e.to_bytes())
        .unwrap()
        .verify(&m.trusted)
        .unwrap();
    assert!(proof.contains("two payloads"), "{proof}");
    // Tampered evidence does not verify.
    let Evidence::Equivocation { cert, a, mut b } = *e else {
        panic!()
    };
    b.inc.payload = a.inc.payload;
    assert!(Evidence::Equivocation { cert, a, b }
        .verify(&m.trusted)
        .is_err());
}

/// A node that returns a doctored receipt at publish: the seller catches it.
struct ReceiptForger<'a> {
    inner: &'a ListingNode<SoftwareDevice>,
    how: u8,
}

impl Listing for ReceiptForger<'_> {
    fn peer(&self) -> PeerId {
        Listing::peer(self.inner)
    }
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        let receipt_of = |answer: &[u8]| {
            let answer = PublishAnswer::from_bytes(answer).unwrap();
            (Receipt::from_bytes(&answer.receipt).unwrap(), answer)
        };
        let (mut receipt, mut answer) = receipt_of(&Listing::publish(self.inner, offer, now)?);
        match self.how {
            // A receipt for another offer (the node counted something else).
            0 => {
                let decoy =
                    common::offer(&Keypair::generate(&mut rand_core::OsRng), &target(), 1, 1);
                receipt = receipt_of(&Listing::publish(self.inner, &decoy, now)?).0;
            }
            // A receipt with its value altered.
            1 => receipt.inc.inc.value += 1,
            // A receipt naming another certificate.
            _ => receipt.cert_id = Digest([0; 32]),
        }
        answer.receipt = receipt.to_bytes();
        Ok(answer.to_bytes())
    }
    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        self.inner.ask(query)
    }
}

#[test]
fn doctored_receipts_are_caught_by_the_seller() {
    let mut m = Market::new();
    let node = m.node(Scheme::Basic, 1, 1);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let o = offer(&seller, &target(), 10, 1);
    let kinds: Vec<Kind> = (0..3)
        .map(|how| {
            let forger = ReceiptForger { inner: &node, how };
            publish_to(&forger, &m.trusted, &o, NOW).unwrap_err().kind()
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            Kind::BadReceipt,
            Kind::BadStatementSignature,
            Kind::BadReceipt
        ]
    );
}

#[test]
fn wrong_counter_receipt_is_caught_by_the_seller() {
    // Scheme C with 8 counters: a receipt from a counter other than cid(d) is refused.
    let mut m = Market::new();
    let node = m.node(Scheme::Counters, 8, 8);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let item = target();
    let o = offer(&seller, &item, 10, 1);
    let receipt = entry(publish_to(&node, &m.trusted, &o, NOW).unwrap());
    let cert = node.certificate().clone();
    assert_eq!(
        receipt.inc.inc.counter,
        cert.cert.counter_for(&item.key()).id
    );
    // Another item that maps to another counter: its receipt cannot stand for this offer.
    let other_item = (0..100)
        .map(|i| Item::new(&format!("other {i}")).unwrap())
        .find(|it| cert.cert.counter_for(&it.key()).id != receipt.inc.inc.counter)
        .unwrap();
    let r2 =
        entry(publish_to(&node, &m.trusted, &offer(&seller, &other_item, 10, 1), NOW).unwrap());
    let err = check_receipt(&m.trusted, node.peer(), &cert, &o, &r2).unwrap_err();
    assert_eq!(err.kind(), Kind::WrongCounter);
}

#[test]
fn scheme_c_wrong_counter_for_the_item_is_caught_by_the_buyer() {
    let mut m = Market::new();
    let honest = m.node(Scheme::Counters, 4, 4);
    let _w = standard_workload(&honest, &m.trusted);
    // Honest first: the item's counter only, fewer values than the node holds in all.
    let o = entries(retrieve_from(&honest, &m.trusted, &target(), Budget::default()).unwrap());
    assert_eq!(
        o.counter,
        honest.certificate().cert.counter_for(&target().key())
    );
    assert!(
        o.t - o.counter.initial < 7,
        "scheme C reads only the item's counter"
    );
    let cheater = CheatingNode::new(honest, Strategy::OtherCounter, target());
    let err = retrieve_from(&cheater, &m.trusted, &target(), Budget::default()).unwrap_err();
    assert_eq!(err.kind(), Kind::WrongCounter);
}

/// Holes are never a gap count: a node that leaves values out is missing entries, however
/// few gaps the reader takes (a hole cap would give it "too many gaps", not a cheat).
#[test]
fn an_omission_is_a_missing_entry_even_for_a_reader_that_takes_no_gaps() {
    let no_gaps = Budget {
        max_gaps: 0,
        ..Budget::default()
    };
    let strategies: [fn(&Workload) -> Strategy; 2] = [
        |_| Strategy::OmitEntry,
        |w| Strategy::OmitCheaperThan(w.sellers[2].public()),
    ];
    for strategy in strategies {
        let (_, _, cheater, result) = run(strategy, no_gaps);
        let err = result.unwrap_err();
        assert_eq!(
            err.kind(),
            Kind::MissingEntry,
            "{}: {err}",
            cheater.strategy().name()
        );
    }
    // The honest node under the same reader: verified.
    let (_, _, _, result) = run(|_| Strategy::Honest, no_gaps);
    result.unwrap();
}

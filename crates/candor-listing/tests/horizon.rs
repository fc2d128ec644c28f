//! Scheme M's audit horizon on a real node with files (DESIGN.md §9): steps older than the
//! window keep only their headers, buyers audit above the horizon their heads name, pruning
//! never passes a horizon a head served within the hold, and a restart opens the live map
//! from its tables, not by replaying steps (whose proofs are gone).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{monitor, publish_to, retrieve_from, Listing, PublishReceipt, Query, Reading};
use common::*;
use std::time::Duration;

const DAY: u64 = 86_400;

fn signed(seller: &Keypair, serial: u64, expiry: u64) -> SignedOffer {
    SignedOffer::sign(seller, &target(), 100, Currency::EUR, 1, expiry, serial)
}

fn value_of(r: PublishReceipt) -> u64 {
    step(r).0.step.step.header.value
}

#[test]
fn old_steps_keep_their_headers_and_buyers_audit_above_the_horizon() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Merkle);
    node.hold_served_boundaries(Duration::ZERO);
    let sellers: Vec<Keypair> = (0..3)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let old: Vec<u64> = sellers
        .iter()
        .map(|s| value_of(publish_to(&node, &m.trusted, &signed(s, 1, NOW + 3_600), NOW).unwrap()))
        .collect();
    let last_old = *old.last().unwrap();
    // Forty days on, a seller lists again; the old records have expired and leave in that
    // step, and the compaction drops the old steps' proofs.
    let later = NOW + 40 * DAY;
    node.set_clock(Some(later));
    let fresh = signed(&sellers[0], 2, later + 3_600);
    let rf = publish_to(&node, &m.trusted, &fresh, later).unwrap();
    let fresh_value = value_of(rf.clone());
    assert_eq!(node.live_records(), Some(1));
    node.compact().unwrap();
    for v in &old {
        assert!(
            node.ask(&Query::Step(*v)).is_err(),
            "step {v}'s proof is pruned"
        );
    }
    assert!(node.ask(&Query::Step(fresh_value)).is_ok());
    // A buyer auditing as much as it may: only the steps above the horizon are drawn.
    let reading = Reading::default().at(later).audits(u64::MAX);
    let out = steps(retrieve_from(&node, &m.trusted, &target(), reading.clone()).unwrap());
    assert_eq!(out.horizon, last_old);
    assert_eq!(out.audited, vec![fresh_value]);
    assert_eq!(out.offers, vec![fresh.clone()]);
    // The store opens without a replay (the pruned proofs could not replay): the same root,
    // the same horizon, the seller's monitor content, and publishing goes on.
    let root = out.root;
    drop(node);
    let node = reopen(dir.path(), &cert).unwrap();
    node.set_clock(Some(later));
    assert_eq!(node.live_records(), Some(1));
    let mine = [(fresh.clone(), rf)];
    let out = steps(monitor(&node, &m.trusted, &target(), &mine, reading.clone()).unwrap());
    assert_eq!((out.root, out.horizon), (root, last_old));
    let again = signed(&sellers[1], 2, later + 7_200);
    publish_to(&node, &m.trusted, &again, later + 1).unwrap();
    let out = steps(retrieve_from(&node, &m.trusted, &target(), reading.at(later + 2)).unwrap());
    assert_eq!(out.offers.len(), 2);
    assert_eq!(out.horizon, last_old);
}

/// A retrieve that drew its audits above the horizon a head served finds them: pruning waits
/// for every horizon served within the hold, even when the clock has since run far ahead.
#[test]
fn pruning_never_passes_a_horizon_served_within_the_hold() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let a = value_of(publish_to(&node, &m.trusted, &signed(&alice, 1, NOW + 3_600), NOW).unwrap());
    let nine = NOW + 9 * DAY;
    node.set_clock(Some(nine));
    let b =
        value_of(publish_to(&node, &m.trusted, &signed(&alice, 2, nine + 3_600), nine).unwrap());
    // At day 39 the node sweeps b's expired record in a step of its own; node time is day
    // 39, and the horizon is step a (b is inside the window). (A quiet node's window waits
    // for its next step: node time is the lesser of its clock and its last step's.)
    node.set_clock(Some(NOW + 39 * DAY));
    assert_eq!(node.compact().unwrap(), 1);
    let out = steps(
        retrieve_from(
            &node,
            &m.trusted,
            &target(),
            Reading::default().at(NOW + 39 * DAY),
        )
        .unwrap(),
    );
    assert_eq!(out.horizon, a);
    // Day 60, and a step: b is old enough to prune, but a head served a within the hold,
    // so b's proof stays for the retrieve that may still audit it.
    let sixty = NOW + 60 * DAY;
    node.set_clock(Some(sixty));
    publish_to(&node, &m.trusted, &signed(&alice, 3, sixty + 3_600), sixty).unwrap();
    node.compact().unwrap();
    assert!(node.ask(&Query::Step(a)).is_err());
    assert!(node.ask(&Query::Step(b)).is_ok());
    // Once the hold is over, b goes too.
    node.hold_served_boundaries(Duration::ZERO);
    node.compact().unwrap();
    assert!(node.ask(&Query::Step(b)).is_err());
}

/// Review finding: a head that names no horizon lets the buyer audit any step, so it holds
/// pruning back too: a quiet node's head, then a step that moves node time a month on, then
/// the compaction.
#[test]
fn a_head_without_a_horizon_holds_pruning_back_too() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let a = value_of(publish_to(&node, &m.trusted, &signed(&alice, 1, NOW + 3_600), NOW).unwrap());
    // Day 31: the node is quiet (node time is still day 0), so its head names no horizon.
    let day31 = NOW + 31 * DAY;
    node.set_clock(Some(day31));
    let out =
        steps(retrieve_from(&node, &m.trusted, &target(), Reading::default().at(day31)).unwrap());
    assert_eq!(out.horizon, out.base);
    // Day 33: a step; step a is now old enough to prune, but that head may still audit it.
    let day33 = NOW + 33 * DAY;
    node.set_clock(Some(day33));
    publish_to(&node, &m.trusted, &signed(&alice, 2, day33 + 3_600), day33).unwrap();
    node.compact().unwrap();
    assert!(node.ask(&Query::Step(a)).is_ok());
    // Second review: that compaction pruned nothing, so it recorded no horizon; with the
    // node's clock set far back (node time is then the clock's, and no step is older than
    // its edge), heads are still served, naming none.
    node.set_clock(Some(NOW + 20 * DAY));
    let out =
        steps(retrieve_from(&node, &m.trusted, &target(), Reading::default().at(day33)).unwrap());
    assert_eq!(out.horizon, out.base);
    node.set_clock(Some(day33));
    node.hold_served_boundaries(Duration::ZERO);
    node.compact().unwrap();
    assert!(node.ask(&Query::Step(a)).is_err());
}

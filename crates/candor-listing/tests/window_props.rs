//! Honest B/C nodes under node time (DESIGN.md §9), as a property: random runs of publishes,
//! withdrawals, days passing, a clock stepped back within half the skew (NTP), crashes at
//! every point of a publish, restarts and compactions, checked by buyers and a monitoring
//! seller whose clocks are within the skew of the node's. The node is never accused (no
//! misbehaviour, no clock disagreement), and every receipted offer still live at the buyer's
//! clock is in its window. Plus the cheats that use the window: a node that deletes live
//! entries, and a stale republish of a withdrawn offer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{monitor, publish_to, retrieve_from, CrashAt, PublishReceipt, Reading};
use common::*;
use proptest::prelude::*;
use std::time::Duration;

const HOUR: u64 = 3_600;

#[derive(Debug, Clone)]
enum Op {
    /// Node time moves on this many hours.
    Advance(u64),
    /// The clock is stepped back this many seconds (never more than skew/2 behind the
    /// latest time it read: NTP corrects a clock that was at most that far ahead).
    StepBack(u64),
    /// This many offers published for the target item.
    Publish(u8),
    /// The seller withdraws its newest offer.
    Withdraw,
    /// A publish stops at this point, as a crash would; the node is opened again.
    Crash(u8),
    /// The node is stopped and opened again.
    Restart,
    /// The node deletes what lies before its window.
    Compact,
    /// A buyer and the monitoring seller check, their clocks this far from the node's.
    Check(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..=240).prop_map(Op::Advance),
        1 => (1u64..=150).prop_map(Op::StepBack),
        4 => (1u8..=3).prop_map(Op::Publish),
        1 => Just(Op::Withdraw),
        1 => (0u8..3).prop_map(Op::Crash),
        1 => Just(Op::Restart),
        2 => Just(Op::Compact),
        3 => (-140i64..=140).prop_map(Op::Check),
    ]
}

fn offer_at(seller: &Keypair, quantity: u32, serial: u64, now: u64) -> SignedOffer {
    let life = TimeRules::DEFAULT.default_lifetime();
    SignedOffer::sign(
        seller,
        &target(),
        100 + serial % 50,
        Currency::EUR,
        quantity,
        now + life,
        serial,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn honest_b_and_c_nodes_are_never_accused_and_hide_nothing_live(
        counters in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..16),
    ) {
        let scheme = if counters { Scheme::Counters } else { Scheme::Basic };
        let mut m = Market::new();
        let dir = tempfile::tempdir().unwrap();
        let (mut node, cert) = files_node(&mut m, dir.path(), scheme);
        let seller = Keypair::generate(&mut rand_core::OsRng);
        let mut clock = NOW;
        let mut high = NOW;
        let mut serial = 0u64;
        let mut mine: Vec<(SignedOffer, PublishReceipt)> = Vec::new();
        let setup = |n: &candor_listing::ListingNode<candor_device::SoftwareDevice>, clock: u64| {
            n.hold_served_boundaries(Duration::ZERO);
            n.set_clock(Some(clock));
        };
        setup(&node, clock);
        for op in ops {
            match op {
                Op::Advance(h) => {
                    clock += h * HOUR;
                    high = high.max(clock);
                }
                Op::StepBack(s) => clock = (clock - s).max(high - 150),
                Op::Publish(n) => {
                    for _ in 0..n {
                        serial += 1;
                        let o = offer_at(&seller, 2, serial, clock);
                        let r = publish_to(&node, &m.trusted, &o, clock).unwrap();
                        mine.push((o, r));
                    }
                }
                Op::Withdraw => {
                    serial += 1;
                    let o = offer_at(&seller, 0, serial, clock);
                    let r = publish_to(&node, &m.trusted, &o, clock).unwrap();
                    mine.push((o, r));
                }
                Op::Crash(at) => {
                    serial += 1;
                    let crash = [CrashAt::AfterPending, CrashAt::AfterInc, CrashAt::AfterCommit]
                        [at as usize];
                    node.publish_all_crashing(&[offer_at(&seller, 2, serial, clock)], clock, crash);
                    drop(node);
                    node = reopen(dir.path(), &cert).unwrap();
                }
                Op::Restart => {
                    drop(node);
                    node = reopen(dir.path(), &cert).unwrap();
                }
                Op::Compact => {
                    node.compact().unwrap();
                }
                Op::Check(skew) => {
                    let now = clock.saturating_add_signed(skew);
                    let reading = Reading::new(Budget::default()).at(now);
                    let out = retrieve_from(&node, &m.trusted, &target(), reading.clone());
                    let out = match out {
                        Ok(o) => o,
                        Err(e) => panic!("an honest node accused: {e}"),
                    };
                    let shown: Vec<&SignedOffer> = out.offers();
                    for (o, _) in &mine {
                        if o.offer.expiry > now {
                            prop_assert!(shown.contains(&o), "a live receipted offer is hidden");
                        }
                    }
                    if let Err(e) = monitor(&node, &m.trusted, &target(), &mine, reading) {
                        panic!("an honest node accused by its seller: {e}");
                    }
                }
            }
            setup(&node, clock);
        }
    }
}

/// A node that deletes live entries (compacting above its honest boundary) must serve a
/// boundary no earlier than what is left: too recent for buyers, who fail the check
/// (`recent-boundary`), or — if it serves its old boundary — a window with holes
/// (`missing-entry`). Either way the offers it dropped are not silently gone.
#[test]
fn a_node_that_deletes_live_entries_is_caught() {
    let mut m = Market::new();
    let node = m.node(Scheme::Basic, 1, 1);
    node.hold_served_boundaries(Duration::ZERO);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let mut mine = Vec::new();
    for day in 0..10u64 {
        let now = NOW + day * 24 * HOUR;
        let o = offer_at(&seller, 1, day + 1, now);
        mine.push((o.clone(), publish_to(&node, &m.trusted, &o, now).unwrap()));
    }
    let now = NOW + 10 * 24 * HOUR;
    let reading = Reading::new(Budget::default()).at(now);
    retrieve_from(&node, &m.trusted, &target(), reading.clone()).unwrap();
    // The cheat: delete everything before the newest entry (all of it live).
    let head = node.store().head(0).unwrap().unwrap();
    assert!(node.store().compact(0, head).unwrap() > 0);
    let err = retrieve_from(&node, &m.trusted, &target(), reading.clone()).unwrap_err();
    assert_eq!(err.kind(), Kind::RecentBoundary, "{err}");
    let err = monitor(&node, &m.trusted, &target(), &mine, reading).unwrap_err();
    assert_eq!(err.kind(), Kind::RecentBoundary, "{err}");
}

/// A withdrawn offer brought back by a stale republish (by anyone holding its bytes, the node
/// included) stays withdrawn: the withdrawal, counted after the offer, is in the window for
/// as long as the offer could be live, and its higher serial wins.
#[test]
fn a_stale_republish_does_not_bring_a_withdrawn_offer_back() {
    let mut m = Market::new();
    let node = m.node(Scheme::Counters, 2, 2);
    node.hold_served_boundaries(Duration::ZERO);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let a = offer_at(&seller, 1, 1, NOW);
    publish_to(&node, &m.trusted, &a, NOW).unwrap();
    publish_to(
        &node,
        &m.trusted,
        &offer_at(&seller, 0, 2, NOW + HOUR),
        NOW + HOUR,
    )
    .unwrap();
    // Weeks later, the old offer's bytes are published again, and days pass.
    for day in [10u64, 20, 29] {
        let now = NOW + day * 24 * HOUR;
        publish_to(&node, &m.trusted, &a, now).unwrap();
        node.compact().unwrap();
        let out = retrieve_from(
            &node,
            &m.trusted,
            &target(),
            Reading::new(Budget::default()).at(now + 60),
        )
        .unwrap();
        assert!(
            out.current(now + 60).is_empty(),
            "day {day}: the withdrawal holds"
        );
    }
}

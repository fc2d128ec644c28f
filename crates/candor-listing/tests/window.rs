//! Schemes B and C's sliding window (DESIGN.md §9) on a real node with files, across 90 days
//! of simulated time: every entry binds node time, heads carry the boundary, compaction
//! deletes what lies before it, and buyers and monitoring sellers — holding every receipt,
//! also those long expired — accept every answer, across restarts and a clock stepped back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{monitor, publish_to, retrieve_from, PublishReceipt, Reading, COMPACT_LAG};
use common::*;

const DAY: u64 = 86_400;

fn reading_at(now: u64) -> Reading {
    Reading::new(Budget::default()).at(now)
}

/// An offer for `item` published at `now`, living the default lifetime.
fn offer_at(seller: &Keypair, item: &Item, price: u64, serial: u64, now: u64) -> SignedOffer {
    let life = TimeRules::DEFAULT.default_lifetime();
    SignedOffer::sign(seller, item, price, Currency::EUR, 1, now + life, serial)
}

fn run(scheme: Scheme) {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (mut node, cert) = files_node(&mut m, dir.path(), scheme);
    let rules = cert.cert.time;
    let counter = cert.cert.counter_for(&target().key()).id;
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let mut mine: Vec<(SignedOffer, PublishReceipt)> = Vec::new();
    let mut stamps: Vec<(u64, u64)> = Vec::new(); // (value, at) of the target's counter
    for day in 0..90u64 {
        let now = NOW + day * DAY;
        // Two publishes a day: one for the target, one for another item.
        for (item, price) in [(target(), 100 + day), (other(), 200 + day)] {
            let o = offer_at(&seller, &item, price, day * 2 + price, now);
            let r = publish_to(&node, &m.trusted, &o, now).unwrap();
            let PublishReceipt::Entry(e) = &r else {
                panic!("a B/C receipt")
            };
            assert_eq!(e.at, now, "entries bind the node time");
            if e.inc.inc.counter == counter {
                stamps.push((e.inc.inc.value, e.at));
            }
            if item == target() {
                mine.push((o, r));
            }
        }
        if day % 7 == 6 {
            node.compact().unwrap();
        }
        if day == 45 {
            // A restart: node time comes back from the store.
            drop(node);
            node = reopen(dir.path(), &cert).unwrap();
        }
        // A buyer whose clock is behind the node's by less than the skew, and a seller that
        // monitors every receipt it ever got.
        let out = entries(
            retrieve_from(&node, &m.trusted, &target(), reading_at(now + 60 - 200)).unwrap(),
        );
        let in_window = stamps.iter().filter(|(v, _)| *v > out.base).count();
        assert!(
            out.offers.len() <= in_window,
            "day {day}: only the window's offers"
        );
        // Everything still live is there.
        let live = mine.iter().filter(|(o, _)| o.offer.expiry > now).count();
        assert!(out.current(now).len() >= live.min(1), "day {day}");
        assert_eq!(
            out.offers
                .iter()
                .filter(|(_, o)| o.offer.expiry > now)
                .count(),
            live,
            "day {day}: every live offer is in the window"
        );
        if day == 89 {
            // 90 offers for the target were published; about L_max's worth are shown.
            assert!(out.offers.len() <= 33, "{} offers", out.offers.len());
            assert!(out.base > 0);
        }
        if day % 10 == 9 {
            monitor(&node, &m.trusted, &target(), &mine, reading_at(now + 120)).unwrap();
        }
        if day > 40 {
            // The boundary is dated before the buyer's edge, and the window holds at most
            // what was counted in the last L_max + 2·skew (plus the boundary).
            let b_at = stamps
                .iter()
                .find(|(v, _)| *v == out.base)
                .map(|(_, at)| *at);
            if let Some(at) = b_at {
                assert!(at < rules.window_edge(now));
            }
            let recent = stamps
                .iter()
                .filter(|(_, at)| *at >= rules.node_edge(now))
                .count();
            assert!(out.t - out.base <= recent as u64 * 2 + 2, "day {day}");
        }
    }
    // Storage: what the last compaction kept is bounded by what was counted after its edge
    // (less the lag), on every counter, plus one boundary each.
    let last = NOW + 89 * DAY;
    node.compact().unwrap();
    let edge = rules.node_edge(last).saturating_sub(COMPACT_LAG);
    // Two publishes a day, over all counters.
    let published_after = (0..90u64).filter(|d| NOW + d * DAY >= edge).count() as u64 * 2;
    let stored: u64 = cert
        .cert
        .counters
        .iter()
        .map(|c| node.store().stored(c.id).unwrap())
        .sum();
    assert!(
        stored <= published_after + cert.cert.counters.len() as u64,
        "{stored} stored, {published_after} published after the edge"
    );
    assert!(stored < 90 * 2 / 2, "compaction deleted the old entries");
    // A clock stepped back a minute: the next entry still binds the latest node time.
    let o = offer_at(&seller, &target(), 1, 9_999, last - 60);
    let PublishReceipt::Entry(e) = publish_to(&node, &m.trusted, &o, last - 60).unwrap() else {
        panic!("a B/C receipt")
    };
    assert_eq!(e.at, last);
}

#[test]
fn a_basic_node_keeps_a_sliding_window_over_ninety_days() {
    run(Scheme::Basic);
}

#[test]
fn a_counters_node_keeps_a_sliding_window_over_ninety_days() {
    run(Scheme::Counters);
}

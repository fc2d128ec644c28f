//! Schemes B and C's sliding window (DESIGN.md §9) on a real node with files, across 90 days
//! of simulated time: every entry binds node time, heads carry the boundary, compaction
//! deletes what lies before it, and buyers and monitoring sellers — holding every receipt,
//! also those long expired — accept every answer, across restarts and a clock stepped back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{
    monitor, publish_to, retrieve_from, PublishReceipt, Query, Reading, COMPACT_LAG,
};
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
    // Days pass in seconds here: a served boundary holds nothing back.
    node.hold_served_boundaries(std::time::Duration::ZERO);
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
            node.hold_served_boundaries(std::time::Duration::ZERO);
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

/// The first "clock item N" the certificate assigns to counter `c` (scheme C).
fn item_on(cert: &SignedCertificate, c: u32) -> Item {
    (0..)
        .map(|i| Item::new(&format!("clock item {i}")).unwrap())
        .find(|i| cert.cert.counter_for(&i.key()).id == c)
        .unwrap()
}

/// A retrieve that began before a publish moved node time on and a compaction ran still finds
/// its whole window: the boundary a head served holds deletion back (DESIGN.md §9; found by a
/// review: node time moves in jumps on a quiet node).
#[test]
fn a_retrieve_in_progress_survives_a_compaction_after_node_time_jumps() {
    let mut m = Market::new();
    let node = m.node(Scheme::Basic, 1, 1);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    for d in 0..40 {
        let now = NOW + d * DAY;
        let o = offer_at(&seller, &target(), 100 + d, d + 1, now);
        node.publish_all(&[o], now).pop().unwrap().unwrap();
    }
    let now = NOW + 41 * DAY;
    let budget = Budget {
        page_items: 1,
        ..Budget::default()
    };
    let mut r = Retrieval::new(
        m.trusted.clone(),
        node.peer().clone(),
        target(),
        [7; 32],
        budget,
        now,
    );
    let head = node.answer(&Query::Head(r.request())).unwrap();
    let mut next = r.on_head_bytes(&head).unwrap();
    let page = node.answer(&Query::Page(next.unwrap())).unwrap();
    next = r.on_page_bytes(&page).unwrap();
    // Node time jumps two days on; the compaction would pass the served boundary.
    let o = offer_at(&seller, &other(), 1, 999, now + 2 * DAY);
    node.publish_all(&[o], now + 2 * DAY)
        .pop()
        .unwrap()
        .unwrap();
    node.compact().unwrap();
    while let Some(q) = next {
        next = r
            .on_page_bytes(&node.answer(&Query::Page(q)).unwrap())
            .unwrap();
    }
    let out = r.finish().unwrap();
    assert!(out.offers.len() >= 30);
    // Without the hold (a simulated run), the same compaction deletes up to the new edge.
    node.hold_served_boundaries(std::time::Duration::ZERO);
    assert!(node.compact().unwrap() > 0);
}

/// A clock that ran ahead for one publish, since corrected, pins no edge in the future: the
/// window follows the corrected clock, so a quiet counter's boundary is not too recent for
/// buyers and no live offer is deleted (DESIGN.md §9: honest nodes are never accused after a
/// clock correction).
#[test]
fn a_clock_that_ran_ahead_and_was_corrected_hides_and_deletes_nothing_live() {
    let mut m = Market::new();
    let node = m.node(Scheme::Counters, 2, 2);
    let cert = node.certificate().clone();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let (d, e) = (item_on(&cert, 0), item_on(&cert, 1));
    for day in 0..40 {
        let now = NOW + day * DAY;
        let o = offer_at(&seller, &d, 100 + day, day + 1, now);
        node.publish_all(&[o], now).pop().unwrap().unwrap();
    }
    // One publish on the other counter while the clock ran three days ahead.
    let ahead = NOW + 43 * DAY;
    node.publish_all(&[offer_at(&seller, &e, 5, 500, ahead)], ahead)
        .pop()
        .unwrap()
        .unwrap();
    // The clock is corrected.
    let now = NOW + 40 * DAY + 60;
    node.set_clock(Some(now));
    node.compact().unwrap();
    let out = entries(retrieve_from(&node, &m.trusted, &d, reading_at(now)).unwrap());
    let live = out
        .offers
        .iter()
        .filter(|(_, o)| o.offer.expiry > now)
        .count();
    // Every offer published in the last L_max − 4·skew is live and shown.
    assert!(live >= 29, "{live} live offers shown");
}

/// A compaction while the clock ran two hours ahead (an RTC in local time before NTP syncs)
/// deletes nothing still live, and once the clock is corrected buyers accept the window and
/// see that offer (a review found the hour's lag too short: the floor then forced a boundary
/// too recent for buyers).
#[test]
fn a_compaction_while_the_clock_ran_ahead_deletes_nothing_live() {
    let mut m = Market::new();
    let node = m.node(Scheme::Counters, 2, 2);
    node.hold_served_boundaries(std::time::Duration::ZERO);
    let cert = node.certificate().clone();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let (d, e) = (item_on(&cert, 0), item_on(&cert, 1));
    let l = u64::from(TimeRules::DEFAULT.lifetime);
    let now = NOW + 40 * DAY;
    for day in 0..9 {
        let t = NOW + day * DAY;
        let o = offer_at(&seller, &d, 100 + day, day + 1, t);
        node.publish_all(&[o], t).pop().unwrap().unwrap();
    }
    // Lives until now + 600 s.
    let p_at = now - l + 1_800;
    let p = offer_at(&seller, &d, 777, 100, p_at);
    node.publish_all(&[p], p_at).pop().unwrap().unwrap();
    // Another seller's (the same seller's newer offer would supersede the first).
    let other_seller = Keypair::generate(&mut rand_core::OsRng);
    let q = offer_at(&other_seller, &d, 778, 101, now - DAY);
    node.publish_all(&[q], now - DAY).pop().unwrap().unwrap();
    let ahead = now + 7_200;
    node.set_clock(Some(ahead));
    let o = offer_at(&seller, &e, 5, 500, ahead);
    node.publish_all(&[o], ahead).pop().unwrap().unwrap();
    node.compact().unwrap();
    node.set_clock(Some(now));
    let out = entries(retrieve_from(&node, &m.trusted, &d, reading_at(now)).unwrap());
    assert!(out.current(now).iter().any(|o| o.price == 777));
}

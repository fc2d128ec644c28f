//! Schemes B and C under node time (DESIGN.md §9): the sliding window's boundary, `at` never
//! backwards, over-long expiry, and clocks that disagree. Each cheat is caught by whom §9
//! says, with evidence where it says; honest answers (a crash's gap notice reaching behind the
//! boundary, a receipt behind it) are accepted.

use super::counters::CNode;
use super::*;

const DAY: u64 = 86_400;
/// The certificate's time rules (the defaults: L_max 30 days, skew 300 s).
const L: u64 = 30 * DAY;
const SKEW: u64 = 300;

/// An offer for `item` that expires `life` after `at`.
fn offer_at(seller: &Keypair, item: &Item, price: u64, at: u64, life: u64) -> SignedOffer {
    SignedOffer::sign(seller, item, price, Currency::EUR, 1, at + life, price)
}

/// A node, a seller, an item on counter 0, and a buyer's clock 40 days after NOW.
struct World {
    node: CNode,
    seller: Keypair,
    d: Item,
    now: u64,
}

impl World {
    fn new() -> Self {
        Self {
            node: CNode::new(Scheme::Basic, 1),
            seller: Keypair::generate(&mut OsRng),
            d: item(0),
            now: NOW + 40 * DAY,
        }
    }

    /// An entry for d at `value`, counted at `at`, with an offer that lives a day.
    fn entry(&self, value: u64, at: u64) -> PageItem {
        self.node.entry_at(
            0,
            value,
            at,
            &offer_at(&self.seller, &self.d, value, at, DAY),
        )
    }

    fn read(
        &self,
        r: Retrieval,
        t: u64,
        boundary: Option<PageItem>,
        items: Vec<PageItem>,
    ) -> Result<Outcome, Misbehaviour> {
        self.node.retrieve_from(r, 0, t, boundary, items)
    }

    fn buyer(&self) -> Retrieval {
        self.node.session_at(&self.d, self.now)
    }
}

fn evidence(m: Misbehaviour, trusted: &[PublicKey]) -> Evidence {
    let Misbehaviour::Evidence(e) = m else {
        panic!("evidence expected, got {m}")
    };
    let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
    e.verify(trusted).unwrap();
    e
}

/// An honest window: the boundary is older than now − L_max − skew, the answer covers only
/// (w, t], and a gap notice written after a crash that covers values at or before w (lost
/// before the value that became the boundary) is accepted.
#[test]
fn an_honest_window_covers_only_what_can_be_live() {
    let w = World::new();
    let old = w.now - L - 2 * SKEW - 10;
    let boundary = w.entry(9, old);
    // 6..=8 lost before 9, their gap notice counted after it, at the last durable time.
    let gap = w.node.gap_at(0, 10, old, 6, 8);
    let live = w.entry(11, w.now - DAY / 2);
    let out = w
        .read(w.buyer(), 11, Some(boundary), vec![gap, live])
        .unwrap();
    assert_eq!(out.base, 9);
    assert_eq!(out.offers.len(), 1);
    assert_eq!(out.offers[0].0, 11);
    // A quiet counter: w = t, an empty window.
    let out = w.read(w.buyer(), 9, Some(w.entry(9, old)), vec![]).unwrap();
    assert_eq!((out.base, out.t, out.offers.len()), (9, 9, 0));
    // A monitoring seller whose receipt lies behind the boundary (its offer expired long
    // ago, and it was counted before the boundary) accepts the answer.
    let early = w.entry(3, old - 5 * DAY);
    let out = w
        .read(
            w.buyer().watching([w.node.receipt(&early)]),
            9,
            Some(w.entry(9, old)),
            vec![],
        )
        .unwrap();
    assert_eq!(out.base, 9);
}

/// A node hides a live receipted offer behind a backdated boundary: the seller's monitor
/// holds a receipt dated after the boundary's time at a lower value — node time went
/// backwards, transferable. A buyer alone sees a valid-looking window (the paper's bound:
/// the seller's check is the one that is certain).
#[test]
fn a_backdated_boundary_over_a_receipt_is_evidence() {
    let w = World::new();
    let receipted = w.entry(6, w.now - DAY);
    let backdated = w.entry(7, w.now - L - 2 * SKEW - 10);
    // The buyer cannot tell.
    w.read(w.buyer(), 7, Some(backdated.clone()), vec![])
        .unwrap();
    let err = w
        .read(
            w.buyer().watching([w.node.receipt(&receipted)]),
            7,
            Some(backdated),
            vec![],
        )
        .unwrap_err();
    let e = evidence(err, &w.node.trusted);
    assert!(matches!(e, Evidence::EntryAtBackwards { .. }), "{e:?}");
    assert_eq!(e.kind(), Kind::AtBackwards);
}

/// A receipt at the boundary's own value with another payload is the device signing two
/// payloads at one value.
#[test]
fn a_boundary_at_a_receipted_value_with_another_payload_is_equivocation() {
    let w = World::new();
    let old = w.now - L - 2 * SKEW - 10;
    let receipted = w.entry(7, old);
    let other = w.node.gap_at(0, 7, old, 6, 6);
    let err = w
        .read(
            w.buyer().watching([w.node.receipt(&receipted)]),
            7,
            Some(other),
            vec![],
        )
        .unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::Equivocation);
}

/// A boundary too recent hides offers that may be live: more than 2·skew past the buyer's
/// edge it is a failed check (`recent-boundary`); within 2·skew of it, whatever it hides has
/// expired by the buyer's clock, and it is a clock disagreement (never an accusation).
#[test]
fn a_recent_boundary_is_caught_and_a_near_one_is_a_disagreement() {
    let w = World::new();
    let edge = w.now - L - SKEW;
    for (at, kind) in [
        (edge + 2 * SKEW, Kind::RecentBoundary),
        (w.now - DAY, Kind::RecentBoundary),
        (edge, Kind::ClockDisagreement),
        (edge + 2 * SKEW - 1, Kind::ClockDisagreement),
    ] {
        let err = w
            .read(w.buyer(), 7, Some(w.entry(7, at)), vec![])
            .unwrap_err();
        assert_eq!(
            err.kind(),
            kind,
            "boundary at edge + {}",
            at as i64 - edge as i64
        );
        assert!(!err.is_transferable());
    }
    w.read(w.buyer(), 7, Some(w.entry(7, edge - 1)), vec![])
        .unwrap();
}

/// The boundary is held to what any statement is held to: beyond the `Read`, not binding its
/// item, on another counter, at or below the initial value.
#[test]
fn a_bad_boundary_is_refused() {
    let w = World::new();
    let old = w.now - L - 2 * SKEW - 10;
    let err = w
        .read(w.buyer(), 7, Some(w.entry(8, old)), vec![])
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BeyondRead);
    let PageItem::Entry { inc, bytes, .. } = w.entry(7, old) else {
        unreachable!()
    };
    let lying = PageItem::Entry {
        inc,
        at: old - 1,
        bytes,
    };
    let err = w.read(w.buyer(), 7, Some(lying), vec![]).unwrap_err();
    assert_eq!(err.kind(), Kind::EntryMismatch);
    let c = CNode::new(Scheme::Counters, 2);
    let d = (0..)
        .map(item)
        .find(|i| c.cert.cert.counter_for(&i.key()).id == 0)
        .unwrap();
    let other = c.entry_at(1, 7, old, &offer_at(&w.seller, &d, 1, old, DAY));
    let err = c
        .retrieve_from(c.session_at(&d, w.now), 0, 7, Some(other), vec![])
        .unwrap_err();
    assert_eq!(err.kind(), Kind::WrongCounter);
    let err = w
        .read(w.buyer(), 7, Some(w.entry(5, old)), vec![])
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BelowBase);
}

/// Node time going backwards inside the window (or from the boundary to the first value
/// after it) is transferable evidence, whichever item comes later.
#[test]
fn node_time_going_backwards_in_a_window_is_evidence() {
    let w = World::new();
    let old = w.now - L - 2 * SKEW - 10;
    let a = w.entry(7, w.now - DAY);
    let b = w.node.gap_at(0, 8, w.now - 2 * DAY, 6, 6);
    let err = w.read(w.buyer(), 8, None, vec![a, b]).unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::AtBackwards);
    // From the boundary.
    let err = w
        .read(
            w.buyer(),
            8,
            Some(w.entry(7, old)),
            vec![w.entry(8, old - 1)],
        )
        .unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::AtBackwards);
    // Equal times are fine (one batch shares its time).
    w.read(
        w.buyer(),
        8,
        Some(w.entry(6, old)),
        vec![w.entry(7, old), w.entry(8, old)],
    )
    .unwrap();
}

/// Evidence of `at` backwards proves nothing when the time goes forward, the values are out
/// of order, or a value is at or below the counter's initial value.
#[test]
fn at_backwards_evidence_that_shows_nothing_is_refused() {
    let w = World::new();
    let e = |a: PageItem, b: PageItem| {
        Evidence::EntryAtBackwards {
            cert: w.node.cert.clone(),
            a,
            b,
        }
        .verify(&w.node.trusted)
    };
    assert!(e(w.entry(7, NOW + 1), w.entry(8, NOW)).is_ok());
    assert!(e(w.entry(7, NOW), w.entry(8, NOW + 1)).is_err());
    assert!(e(w.entry(7, NOW), w.entry(8, NOW)).is_err());
    assert!(e(w.entry(8, NOW + 1), w.entry(7, NOW)).is_err());
    assert!(e(w.entry(5, NOW + 1), w.entry(8, NOW)).is_err());
}

/// A value dated beyond the buyer's clock + skew makes the answer a clock disagreement, not
/// used and never an accusation; but evidence in hand (an over-long entry) wins over it, so
/// a node cannot hide a fault by dating a value ahead.
#[test]
fn a_future_dated_window_is_a_disagreement_unless_evidence_is_in_hand() {
    let w = World::new();
    let err = w
        .read(w.buyer(), 6, None, vec![w.entry(6, w.now + SKEW + 1)])
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement);
    assert!(!err.is_transferable());
    w.read(w.buyer(), 6, None, vec![w.entry(6, w.now + SKEW)])
        .unwrap();
    let ahead = w.entry(7, w.now + SKEW + 1);
    let at = w.now - DAY;
    let overlong = w.node.entry_at(
        0,
        6,
        at,
        &offer_at(&w.seller, &w.d, 6, at, L - 2 * SKEW + 1),
    );
    let err = w
        .read(w.buyer(), 7, None, vec![overlong, ahead])
        .unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::OverlongExpiry);
}

/// An offer listed longer than L_max − 2·skew past its entry's time is a node fault: the
/// buyer drops it and keeps the evidence; a seller handed such a receipt has it too. One
/// within the bound is no evidence.
#[test]
fn an_overlong_entry_is_evidence_and_not_used() {
    let w = World::new();
    let at = w.now - DAY;
    let long = offer_at(&w.seller, &w.d, 6, at, L - 2 * SKEW + 1);
    let overlong = w.node.entry_at(0, 6, at, &long);
    let out = w
        .read(w.buyer(), 7, None, vec![overlong.clone(), w.entry(7, at)])
        .unwrap();
    assert_eq!(out.offers.len(), 1);
    assert_eq!(out.faults.len(), 1);
    let e = Evidence::from_bytes(&out.faults[0].to_bytes()).unwrap();
    e.verify(&w.node.trusted).unwrap();
    assert_eq!(e.kind(), Kind::OverlongExpiry);
    // The seller's check of the receipt.
    let (receipt, _) = w.node.receipt(&overlong);
    let err = check_receipt(
        &w.node.trusted,
        &w.node.peer(),
        &w.node.cert,
        &long,
        &receipt,
    )
    .unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::OverlongExpiry);
    // Within the bound: a receipt, and evidence that proves nothing.
    let fine = offer_at(&w.seller, &w.d, 8, at, L - 2 * SKEW);
    let entry = w.node.entry_at(0, 8, at, &fine);
    let (receipt, bytes) = w.node.receipt(&entry);
    check_receipt(
        &w.node.trusted,
        &w.node.peer(),
        &w.node.cert,
        &fine,
        &receipt,
    )
    .unwrap();
    assert!(Evidence::OverlongEntry {
        cert: w.node.cert.clone(),
        inc: receipt.inc,
        at,
        bytes,
    }
    .verify(&w.node.trusted)
    .is_err());
}

/// Statements the checker holds are held against the boundary too: a gap-notice boundary
/// over a receipted value, a gap notice in the window over the boundary's own value, another
/// payload at w than a statement seen before — each transferable evidence, though none could
/// hide a live offer.
#[test]
fn held_statements_are_held_against_the_boundary() {
    let w = World::new();
    let old = w.now - L - 2 * SKEW - 10;
    let receipted = w.entry(6, old - DAY);
    let err = w
        .read(
            w.buyer().watching([w.node.receipt(&receipted)]),
            7,
            Some(w.node.gap_at(0, 7, old, 6, 6)),
            vec![],
        )
        .unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::GapOverReceipt);
    let err = w
        .read(
            w.buyer(),
            9,
            Some(w.entry(7, old)),
            vec![w.node.gap_at(0, 9, old, 7, 8)],
        )
        .unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::GapOverReceipt);
    let seen = w.node.gap_at(0, 7, old, 6, 6);
    let err = w
        .read(
            w.buyer().knowing([seen.inc().clone()]),
            7,
            Some(w.entry(7, old)),
            vec![],
        )
        .unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::Equivocation);
    // A gap-notice boundary that covers its own value or later is malformed.
    let err = w
        .read(w.buyer(), 7, Some(w.node.gap_at(0, 7, old, 6, 7)), vec![])
        .unwrap_err();
    assert_eq!(err.kind(), Kind::BadGap);
    // A gap notice covering values below the boundary only (lost before it) is fine.
    w.read(
        w.buyer(),
        9,
        Some(w.entry(8, old)),
        vec![w.node.gap_at(0, 9, old, 6, 7)],
    )
    .unwrap();
}

/// A recent boundary beside a value dated ahead of the buyer's clock is a clock disagreement:
/// the answer is not used (so the cheater hides nothing), and an honest node seen from a
/// clock that lags by more than the skew is never accused of a recent boundary (found by a
/// review: judging the boundary first did exactly that).
#[test]
fn a_value_dated_ahead_makes_a_disagreement_never_an_accusation() {
    let w = World::new();
    let err = w
        .read(
            w.buyer(),
            8,
            Some(w.entry(7, w.now - DAY)),
            vec![w.node.gap_at(0, 8, w.now + SKEW + 1, 6, 6)],
        )
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement);
    // An honest busy window seen from a clock 3·skew + 1 min behind.
    let b = w.entry(9, w.now - L - 2 * SKEW - 1);
    let live = w.entry(10, w.now);
    let lagging = w.node.session_at(&w.d, w.now - 3 * SKEW - 60);
    let err = w.read(lagging, 10, Some(b), vec![live]).unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement);
    assert!(!err.is_transferable());
}

/// A boundary entry that is no offer is evidence, and it wins over the budget the node's own
/// volume decides.
#[test]
fn a_bad_boundary_entry_is_evidence_even_over_budget() {
    let w = World::new();
    let old = w.now - L - 2 * SKEW - 10;
    let bytes = vec![7u8; 40];
    let bad = PageItem::Entry {
        inc: w
            .node
            .signer_inc(0, 7, entry_payload(&w.node.peer(), 0, old, &bytes)),
        at: old,
        bytes,
    };
    let small = Budget {
        max_entries: 10,
        ..Budget::default()
    };
    let r = Retrieval::new(
        w.node.trusted.clone(),
        w.node.peer(),
        w.d.clone(),
        [4; 32],
        small,
        w.now,
    );
    let err = w.read(r, 100, Some(bad), vec![]).unwrap_err();
    assert_eq!(evidence(err, &w.node.trusted).kind(), Kind::BadEntry);
}

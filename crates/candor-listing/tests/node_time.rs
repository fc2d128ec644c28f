//! Node time (DESIGN.md §9) on a real scheme-M node with files: every step binds `at =
//! max(clock, last at)`, so a clock stepped back never dates a step backwards; a step a crash
//! interrupted is recovered with the `at` its pending record kept; an offer listed longer
//! than the certificate's L_max − 2·skew is refused; a node whose clock runs ahead of the
//! reader's by more than the skew is a clock disagreement, never an accusation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{
    monitor, publish_checked, publish_to, retrieve_from, CrashAt, PublishError, PublishReceipt,
    Reading,
};
use candor_store::ListingStore;
use common::*;

fn step_at(r: &PublishReceipt) -> (u64, u64) {
    let (s, _) = step(r.clone());
    (s.step.step.header.value, s.step.step.header.at)
}

fn reading_at(now: u64) -> Reading {
    Reading::new(Budget::default()).at(now)
}

#[test]
fn steps_bind_node_time_and_a_clock_stepped_back_never_dates_one_backwards() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let a = publish_to(&node, &m.trusted, &offer(&seller, &target(), 100, 1), NOW).unwrap();
    assert_eq!(step_at(&a), (1, NOW));
    let b = publish_to(
        &node,
        &m.trusted,
        &offer(&seller, &other(), 100, 2),
        NOW + 60,
    )
    .unwrap();
    assert_eq!(step_at(&b), (2, NOW + 60));
    // NTP steps the node's clock back a minute: the next step still binds NOW + 60. The
    // seller's clock was stepped back alike; the receipt is within its skew.
    // Another seller (a live list holds one record per seller).
    let o = offer(&Keypair::generate(&mut rand_core::OsRng), &target(), 90, 3);
    let c = publish_to(&node, &m.trusted, &o, NOW).unwrap();
    assert_eq!(step_at(&c), (3, NOW + 60));
    // A buyer reading now, auditing every step, accepts the answer.
    let out =
        steps(retrieve_from(&node, &m.trusted, &target(), reading_at(NOW + 61).audits(3)).unwrap());
    assert_eq!(out.offers.len(), 2);
}

#[test]
fn a_step_recovered_after_a_crash_binds_the_time_its_pending_record_kept() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    publish_to(&node, &m.trusted, &offer(&seller, &target(), 100, 1), NOW).unwrap();
    // The device counts a step at NOW + 100; the store never learns of it.
    let lost = offer(&seller, &other(), 200, 2);
    node.publish_all_crashing(std::slice::from_ref(&lost), NOW + 100, CrashAt::AfterInc);
    drop(node);
    // Reopened an hour later: the step is finished from its pending record, with its `at`
    // (a step rebuilt at the reopening time would not be the one the device counted).
    let node = reopen(dir.path(), &cert).unwrap();
    let out = steps(
        retrieve_from(
            &node,
            &m.trusted,
            &other(),
            reading_at(NOW + 3_700).audits(2),
        )
        .unwrap(),
    );
    assert_eq!(out.offers.len(), 1);
    assert!(
        out.gaps.is_empty(),
        "the step was recovered, not covered by a gap"
    );
    // The next step binds a later time, and the whole chain checks for a buyer auditing it.
    let c = publish_to(
        &node,
        &m.trusted,
        &offer(&seller, &target(), 90, 3),
        NOW + 3_600,
    )
    .unwrap();
    assert_eq!(step_at(&c), (3, NOW + 3_600));
    steps(
        retrieve_from(
            &node,
            &m.trusted,
            &target(),
            reading_at(NOW + 3_600).audits(3),
        )
        .unwrap(),
    );
}

#[test]
fn a_step_lost_in_a_crash_is_covered_by_a_gap_step_at_the_last_durable_time() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    publish_to(
        &node,
        &m.trusted,
        &offer(&seller, &target(), 100, 1),
        NOW + 10,
    )
    .unwrap();
    // Two steps counted by the device at later times, the second never reissuable (its
    // pending record gone with the crash after the first was counted).
    node.publish_all_crashing(
        &[offer(&seller, &other(), 1, 2)],
        NOW + 20,
        CrashAt::AfterInc,
    );
    drop(node);
    // The store lost its pending record too (a disk that lost the last writes).
    {
        let store = ListingStore::open(&dir.path().join("store.redb")).unwrap();
        let left: Vec<_> = store
            .pending(0)
            .unwrap()
            .into_iter()
            .map(|p| (p.counter, p.payload))
            .collect();
        store.commit(&[], &left).unwrap();
    }
    let node = reopen(dir.path(), &cert).unwrap();
    let out =
        steps(retrieve_from(&node, &m.trusted, &target(), reading_at(NOW + 30).audits(3)).unwrap());
    assert_eq!(out.gaps.len(), 1, "the lost step is reported as a gap");
    // The gap step binds the last durable time: an honest node's `at` never goes backwards,
    // and never forward to a time the device did not count.
    let next = publish_to(
        &node,
        &m.trusted,
        &offer(&seller, &target(), 90, 3),
        NOW + 40,
    )
    .unwrap();
    let (s, _) = step(next);
    let prev = s.step.prev.as_ref().expect("the step before");
    assert!(prev.header.gap().is_some());
    assert_eq!(prev.header.at, NOW + 10);
    assert_eq!(s.step.step.header.at, NOW + 40);
}

#[test]
fn an_offer_listed_longer_than_the_certificate_allows_is_refused() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let time = cert.cert.time;
    assert_eq!(time, TimeRules::DEFAULT);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let latest = time.latest_expiry(NOW);
    assert_eq!(latest, NOW + 30 * 86_400 - 600);
    let long = SignedOffer::sign(&seller, &target(), 5, Currency::EUR, 1, latest + 1, 1);
    let r = node
        .publish_all(std::slice::from_ref(&long), NOW)
        .pop()
        .unwrap();
    assert!(
        matches!(r, Err(PublishError::ExpiryTooLong { expiry, latest: l }) if expiry == latest + 1 && l == latest),
        "{r:?}"
    );
    // At the bound, and at the default lifetime clients give, it is listed.
    for (serial, expiry) in [(2, latest), (3, NOW + time.default_lifetime())] {
        let o = SignedOffer::sign(
            &Keypair::generate(&mut rand_core::OsRng),
            &target(),
            5,
            Currency::EUR,
            1,
            expiry,
            serial,
        );
        publish_to(&node, &m.trusted, &o, NOW).unwrap();
    }
    assert_eq!(time.default_lifetime(), 30 * 86_400 - 1_200);
}

#[test]
fn a_node_whose_clock_runs_ahead_is_a_clock_disagreement_never_an_accusation() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Merkle);
    let skew = u64::from(cert.cert.time.skew);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    // The node's clock is 10 minutes ahead of the seller's and buyer's (skew 5 minutes).
    publish_to(&node, &m.trusted, &offer(&seller, &target(), 100, 1), NOW).unwrap();
    let ahead = node
        .publish_all(&[offer(&seller, &other(), 100, 2)], NOW + 2 * skew)
        .pop()
        .unwrap();
    assert!(ahead.is_ok());
    let err = retrieve_from(&node, &m.trusted, &target(), reading_at(NOW)).unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement, "{err}");
    assert!(!err.is_transferable());
    // A seller whose clock lags as much refuses the fresh receipt, accusing nobody, but keeps
    // it: the device counted the offer, and the seller's monitor holds the node to it.
    // Another seller (a live list holds one record per seller).
    let o = offer(&Keypair::generate(&mut rand_core::OsRng), &target(), 90, 3);
    let checked = publish_checked(&node, &m.trusted, &o, NOW);
    let err = checked.verdict.unwrap_err();
    assert_eq!(err.kind(), Kind::ClockDisagreement, "{err}");
    let kept = checked.kept.expect("the verified receipt is kept");
    let out = monitor(
        &node,
        &m.trusted,
        &target(),
        &[(o, kept)],
        reading_at(NOW + 2 * skew).audits(3),
    )
    .unwrap();
    assert_eq!(steps(out).offers.len(), 2);
    // Within the skew the answer is used.
    steps(retrieve_from(&node, &m.trusted, &target(), reading_at(NOW + skew)).unwrap());
}

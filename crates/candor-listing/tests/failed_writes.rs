//! An error in the middle of a publish (issue 9, item 4): the device fails after counting,
//! with its statement kept or lost, or before; the store's commit fails; the device goes away.
//! Each time the node stops serving what it cannot back, reconciles (DESIGN.md §7) before it
//! counts or reads again, and is never accused by a buyer or a monitoring seller — before and
//! after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_lab::{FailingDevice, Fault, Faults};
use candor_listing::{
    monitor, publish_to, retrieve_from, ListingNode, PublishError, PublishReceipt, Query, Reading,
    ServeError,
};
use candor_store::ListingStore;
use common::*;
use std::path::Path;

type Node = ListingNode<FailingDevice<SoftwareDevice>>;

fn node(m: &mut Market, dir: &Path, scheme: Scheme) -> (Node, Faults, SignedCertificate) {
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let mut device = SoftwareDevice::create(
        &dir.join("device.state"),
        PeerId::from_ed25519(&node_key.public()),
        1,
    )
    .unwrap();
    let cert = m.enrol_device(&node_key, &mut device, scheme, 1);
    let (device, faults) = FailingDevice::new(device);
    let store = ListingStore::open(&dir.join("store.redb")).unwrap();
    let (node, _) = ListingNode::open(device, store, cert.clone()).unwrap();
    (node, faults, cert)
}

fn reopen(node: Node, dir: &Path, cert: &SignedCertificate) -> Node {
    reopen_with(node, dir, cert).0
}

fn reopen_with(node: Node, dir: &Path, cert: &SignedCertificate) -> (Node, Faults) {
    drop(node);
    let device = SoftwareDevice::open(&dir.join("device.state")).unwrap();
    let (device, faults) = FailingDevice::new(device);
    let store = ListingStore::open(&dir.join("store.redb")).unwrap();
    (
        ListingNode::open(device, store, cert.clone()).unwrap().0,
        faults,
    )
}

/// Everything a buyer and the seller check passes: every value accounted for (scheme M:
/// every step audited), every receipt still served. Returns (offers, gaps).
fn check(node: &Node, m: &Market, receipts: &Receipts) -> (usize, usize) {
    // A node still pausing between reconcile attempts answers "reconciling": wait it out,
    // as a buyer that retries would (it is a refusal, never a false answer).
    let start = std::time::Instant::now();
    let head = Query::Head(RetrieveRequest {
        item: target().key(),
        nonce: [0; 32],
        cert: None,
    });
    while matches!(node.answer(&head), Err(ServeError::Reconciling(_))) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "never settled"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let every_step = Reading::default().audits(u64::MAX);
    let out = retrieve_from(node, &m.trusted, &target(), every_step.clone()).unwrap();
    assert_eq!(out.detection(), 1.0);
    monitor(node, &m.trusted, &target(), receipts, every_step).unwrap();
    (out.offers().len(), out.gaps())
}

type Receipts = Vec<(SignedOffer, PublishReceipt)>;

/// Publishes one offer as an honest seller would; keeps the receipt if there is one.
fn publish(node: &Node, m: &Market, price: u64, r: &mut Receipts) -> bool {
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let o = offer(&seller, &target(), price, 1);
    match publish_to(node, &m.trusted, &o, NOW) {
        Ok(receipt) => {
            r.push((o, receipt));
            true
        }
        // Refused, or "busy" while it reconciles: no receipt, and no accusation.
        Err(Misbehaviour::Refused(_) | Misbehaviour::Timeout) => false,
        Err(e) => panic!("the seller accused the node: {e}"),
    }
}

/// One fault in the middle of a publish, then more publishes, checks, a restart, checks.
fn survives(scheme: Scheme, fault: Fault, expect_gap: bool) {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, faults, cert) = node(&mut m, dir.path(), scheme);
    let mut r = Receipts::new();
    assert!(publish(&node, &m, 100, &mut r));
    faults.arm(fault);
    assert!(
        !publish(&node, &m, 200, &mut r),
        "the failed publish gave a receipt"
    );
    // The node goes on: the next publishes build on what the device really counted.
    assert!(publish(&node, &m, 300, &mut r));
    assert!(publish(&node, &m, 400, &mut r));
    let (offers, gaps) = check(&node, &m, &r);
    assert_eq!(gaps, usize::from(expect_gap), "{scheme:?} {fault:?}");
    // The failed offer is there when the device's statement was kept, else a gap covers it.
    let failed_kept = matches!(fault, Fault::AfterCount);
    assert_eq!(offers, 3 + usize::from(failed_kept), "{scheme:?} {fault:?}");
    let node = reopen(node, dir.path(), &cert);
    assert_eq!(check(&node, &m, &r), (offers, gaps));
    assert!(publish(&node, &m, 500, &mut r));
    assert_eq!(check(&node, &m, &r).0, offers + 1);
}

#[test]
fn a_device_error_after_counting_is_reconciled_and_never_accused() {
    for scheme in [Scheme::Basic, Scheme::Merkle] {
        survives(scheme, Fault::AfterCount, false);
        survives(scheme, Fault::AfterCountLost, true);
        survives(scheme, Fault::BeforeCount, false);
    }
}

/// The store's commit fails after the device counted: the node reconciles from the pending
/// record and the device's kept statement, and serves nothing it has not stored.
#[test]
fn a_failed_store_commit_is_reconciled_and_never_accused() {
    for scheme in [Scheme::Basic, Scheme::Merkle] {
        let mut m = Market::new();
        let dir = tempfile::tempdir().unwrap();
        let (node, _faults, cert) = node(&mut m, dir.path(), scheme);
        let mut r = Receipts::new();
        assert!(publish(&node, &m, 100, &mut r));
        node.store().fail_commits(1);
        assert!(!publish(&node, &m, 200, &mut r));
        assert!(publish(&node, &m, 300, &mut r));
        assert_eq!(check(&node, &m, &r), (3, 0), "{scheme:?}");
        let node = reopen(node, dir.path(), &cert);
        assert_eq!(check(&node, &m, &r), (3, 0), "{scheme:?}");
    }
}

/// A device that goes away in the middle of a publish: the node refuses `Read`s and publishes
/// with a typed "reconciling" answer (never a state it cannot back) until the device is back,
/// then reconciles and serves as before.
#[test]
fn a_node_whose_device_is_down_answers_reconciling_until_it_is_back() {
    for scheme in [Scheme::Basic, Scheme::Merkle] {
        let mut m = Market::new();
        let dir = tempfile::tempdir().unwrap();
        let (node, faults, _) = node(&mut m, dir.path(), scheme);
        let mut r = Receipts::new();
        assert!(publish(&node, &m, 100, &mut r));
        faults.arm(Fault::Down);
        assert!(!publish(&node, &m, 200, &mut r));
        // A buyer meanwhile hears "busy" until its time runs out: not called a cheat.
        let err = retrieve_from(&node, &m.trusted, &target(), Reading::default()).unwrap_err();
        assert_eq!(err.kind(), Kind::Timeout, "{scheme:?}: {err}");
        let req = RetrieveRequest {
            item: target().key(),
            nonce: [1; 32],
            cert: None,
        };
        let head = node.answer(&Query::Head(req));
        assert!(matches!(head, Err(ServeError::Reconciling(_))), "{head:?}");
        let o = offer(&Keypair::generate(&mut rand_core::OsRng), &target(), 1, 1);
        let again = node.publish_answer(&o, NOW);
        assert!(
            matches!(again, Err(PublishError::Reconciling(_))),
            "{again:?}"
        );
        faults.clear();
        // The node retries its reconcile after a pause (doubling from 200 ms), not once per
        // request: a publish succeeds once the pause is over.
        let start = std::time::Instant::now();
        while !publish(&node, &m, 300, &mut r) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "never settled"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(check(&node, &m, &r), (2, 0), "{scheme:?}");
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    fn fault() -> impl Strategy<Value = Option<Fault>> {
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(Fault::AfterCount)),
            1 => Just(Some(Fault::AfterCountLost)),
            1 => Just(Some(Fault::BeforeCount)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random publishes with random device errors and store failures in the middle of
        /// them, with restarts: a buyer auditing every value and every monitoring seller
        /// always verify the node; every receipt given is served.
        #[test]
        fn honest_nodes_with_random_failures_are_never_accused(
            merkle in any::<bool>(),
            ops in proptest::collection::vec((fault(), any::<bool>(), 0u8..8), 1..10),
        ) {
            let scheme = if merkle { Scheme::Merkle } else { Scheme::Basic };
            let mut m = Market::new();
            let dir = tempfile::tempdir().unwrap();
            let (mut node, mut faults, cert) = node(&mut m, dir.path(), scheme);
            let mut r = Receipts::new();
            for (i, (f, store_fails, restart)) in ops.into_iter().enumerate() {
                match f {
                    Some(f) => faults.arm(f),
                    None => faults.clear(),
                }
                if store_fails {
                    node.store().fail_commits(1);
                }
                publish(&node, &m, 100 + i as u64, &mut r);
                faults.clear();
                node.store().fail_commits(0);
                check(&node, &m, &r);
                if restart == 0 {
                    (node, faults) = reopen_with(node, dir.path(), &cert);
                    check(&node, &m, &r);
                }
            }
        }
    }
}

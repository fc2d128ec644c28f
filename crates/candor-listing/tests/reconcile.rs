//! Reconciliation on open with real files: rolled-back device or store refused, lost values
//! covered by gap notices that buyers report without accusing the node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_device::{SoftwareDevice, TrustedDevice};
use candor_listing::{retrieve_from, CrashAt, ListingNode, OpenError};
use candor_store::ListingStore;
use common::*;

fn publish_n(node: &ListingNode<SoftwareDevice>, n: u64, first_price: u64) {
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let offers: Vec<SignedOffer> = (0..n)
        .map(|i| offer(&seller, &target(), first_price + i, 1))
        .collect();
    for r in node.publish_all(&offers, NOW) {
        r.unwrap();
    }
}

#[test]
fn rolled_back_device_is_refused() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Basic);
    publish_n(&node, 3, 100);
    let old_device = std::fs::read(dir.path().join("device.state")).unwrap();
    publish_n(&node, 3, 200);
    drop(node);
    std::fs::write(dir.path().join("device.state"), old_device).unwrap();
    let err = reopen(dir.path(), &cert).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::DeviceRolledBack {
                device: 3,
                store: 6,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("rolled back"));
}

#[test]
fn rolled_back_store_is_refused() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Basic);
    publish_n(&node, 2, 100);
    drop(node);
    let old_store = std::fs::read(dir.path().join("store.redb")).unwrap();
    let node = reopen(dir.path(), &cert).unwrap();
    publish_n(&node, 2, 200);
    publish_n(&node, 2, 300); // persists the acknowledgement of the batch before
    drop(node);
    std::fs::write(dir.path().join("store.redb"), old_store).unwrap();
    let err = reopen(dir.path(), &cert).unwrap_err();
    assert!(matches!(err, OpenError::StoreRolledBack { .. }), "{err}");
}

#[test]
fn crash_between_device_and_store_is_recovered_from_files() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let (node, cert) = files_node(&mut m, dir.path(), Scheme::Basic);
    publish_n(&node, 2, 100);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let offers: Vec<SignedOffer> = (0..3)
        .map(|i| offer(&seller, &target(), 500 + i, 1))
        .collect();
    node.publish_all_crashing(&offers, NOW, CrashAt::AfterInc);
    drop(node);
    let node = reopen(dir.path(), &cert).unwrap();
    let o = entries(retrieve_from(&node, &m.trusted, &target(), Budget::default()).unwrap());
    assert_eq!(o.offers.len(), 5);
    assert!(o.gaps.is_empty());
}

#[test]
fn lost_values_get_gap_notices_and_buyers_report_them() {
    // A device counted a batch whose pending records and entries never reached this store
    // (as with a TPM whose audit session was lost): reconcile writes a gap notice.
    let mut m = Market::new();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let mut device = SoftwareDevice::in_memory(PeerId::from_ed25519(&node_key.public()), 1);
    let cert = m.enrol_device(&node_key, &mut device, Scheme::Basic, 1);
    let (node, _) =
        ListingNode::open(device, ListingStore::in_memory().unwrap(), cert.clone()).unwrap();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let offers: Vec<SignedOffer> = (0..3)
        .map(|i| offer(&seller, &target(), 500 + i, 1))
        .collect();
    node.publish_all_crashing(&offers, NOW, CrashAt::AfterInc);
    let (device, _lost_store) = node.into_parts();
    assert_eq!(device.value(0).unwrap(), 3);
    let (node, report) =
        ListingNode::open(device, ListingStore::in_memory().unwrap(), cert).unwrap();
    assert_eq!(report.gaps, vec![(0, 1, 3)]);
    // The notice binds the last durable node time: none here (the whole store was lost),
    // so it is dated 0, and the window's boundary passes it as soon as the node counts at
    // today's time: buyers check only (4, t].
    let gap = node.store().get(0, 4).unwrap().unwrap();
    assert!(matches!(
        gap,
        PageItem::Gap {
            at: 0,
            first: 1,
            last: 3,
            ..
        }
    ));
    publish_n(&node, 2, 100);
    let o = entries(retrieve_from(&node, &m.trusted, &target(), Budget::default()).unwrap());
    assert!(o.gaps.is_empty());
    assert_eq!((o.base, o.offers.len(), o.t), (4, 2, 6));
}

#[test]
fn certificate_of_another_device_is_refused() {
    let mut m = Market::new();
    let a = m.node(Scheme::Basic, 1, 1);
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let device = SoftwareDevice::in_memory(PeerId::from_ed25519(&node_key.public()), 1);
    let err = ListingNode::open(
        device,
        ListingStore::in_memory().unwrap(),
        a.certificate().clone(),
    )
    .unwrap_err();
    assert!(matches!(err, OpenError::CertMismatch(_)));
}

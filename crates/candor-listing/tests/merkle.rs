//! Scheme M in the listing node: batched steps with whole-step receipts, retrieve with a
//! proof and audits, monitoring, and a restart on real files that replays the tree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_listing::{
    monitor, publish_to, retrieve_from, Listing, ListingNode, PublishReceipt, Reading,
};

// The one flow of every scheme, seen from tests that run only scheme M.
fn publish_to_steps(
    node: &dyn Listing,
    trusted: &[PublicKey],
    offer: &SignedOffer,
    now: u64,
) -> Result<(StepReceipt, Placement), Misbehaviour> {
    publish_to(node, trusted, offer, now).map(step)
}

fn retrieve_from_steps(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    budget: Budget,
    audits: u64,
) -> Result<StepOutcome, Misbehaviour> {
    retrieve_from(node, trusted, item, Reading::new(budget).audits(audits)).map(steps)
}

fn monitor_steps(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    mine: &[(SignedOffer, StepReceipt, Placement)],
    budget: Budget,
) -> Result<StepOutcome, Misbehaviour> {
    let mine: Vec<_> = mine
        .iter()
        .map(|(o, r, p)| (o.clone(), PublishReceipt::Step(Box::new(r.clone()), *p)))
        .collect();
    monitor(node, trusted, item, &mine, Reading::new(budget).audits(0)).map(steps)
}
use candor_store::ListingStore;
use common::*;

fn items() -> Vec<Item> {
    (0..10)
        .map(|i| Item::new(&format!("merkle item {i}")).unwrap())
        .collect()
}

#[test]
fn batched_steps_receipts_retrieve_audits_monitor_and_restart() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let mut device = SoftwareDevice::create(
        &dir.path().join("device.state"),
        PeerId::from_ed25519(&node_key.public()),
        1,
    )
    .unwrap();
    let cert = m.enrol_device(&node_key, &mut device, Scheme::Merkle, 1);
    let (node, _) = ListingNode::open(
        device,
        ListingStore::open(&dir.path().join("store.redb")).unwrap(),
        cert.clone(),
    )
    .unwrap();
    let items = items();
    let sellers: Vec<Keypair> = (0..4)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let mut mine: Vec<(SignedOffer, StepReceipt, Placement)> = Vec::new();
    let mut serial = 0;
    for round in 0..6 {
        let offers: Vec<SignedOffer> = (0..20)
            .map(|i| {
                serial += 1;
                // A seller per offer: a live list holds one record per seller.
                SignedOffer::sign(
                    &Keypair::generate(&mut rand_core::OsRng),
                    &items[(i + round) % 10],
                    100 + serial,
                    Currency::EUR,
                    1,
                    NOW + 3600,
                    serial,
                )
            })
            .collect();
        // One step for the whole batch; every seller verifies the whole step.
        for (o, r) in offers.iter().zip(node.publish_all(&offers, NOW)) {
            let r = r.unwrap().as_step().unwrap().clone();
            let p = check_step_receipt(&m.trusted, node.peer(), node.certificate(), o, &r).unwrap();
            mine.push((o.clone(), r, p));
        }
    }
    // A single publish through the flow, as a remote seller would.
    let extra = SignedOffer::sign(&sellers[0], &items[0], 1, Currency::EUR, 1, NOW + 3600, 999);
    let (r, p) = publish_to_steps(&node, &m.trusted, &extra, NOW).unwrap();
    mine.push((extra, r, p));
    for item in &items {
        let out = retrieve_from_steps(&node, &m.trusted, item, Budget::default(), 3).unwrap();
        let expected: Vec<&SignedOffer> = mine
            .iter()
            .filter(|(o, _, _)| o.offer.key == item.key())
            .map(|(o, _, _)| o)
            .collect();
        assert_eq!(out.offers.len(), expected.len());
        assert_eq!(out.audited.len(), 3);
        assert_eq!(out.t, 7);
        let own: Vec<_> = mine
            .iter()
            .filter(|(o, _, _)| o.offer.key == item.key())
            .cloned()
            .collect();
        monitor_steps(&node, &m.trusted, item, &own, Budget::default()).unwrap();
    }
    // Restart on the same files: the tree is replayed and everything still verifies.
    drop(node);
    let device = SoftwareDevice::open(&dir.path().join("device.state")).unwrap();
    let (node, report) = ListingNode::open(
        device,
        ListingStore::open(&dir.path().join("store.redb")).unwrap(),
        cert,
    )
    .unwrap();
    assert_eq!(report.recovered, 0);
    for item in &items {
        let own: Vec<_> = mine
            .iter()
            .filter(|(o, _, _)| o.offer.key == item.key())
            .cloned()
            .collect();
        monitor_steps(&node, &m.trusted, item, &own, Budget::default()).unwrap();
        let out = retrieve_from_steps(&node, &m.trusted, item, Budget::default(), 7).unwrap();
        assert!((out.detection - 1.0).abs() < 1e-9);
    }
    // A scheme-B query to an M node is refused, typed.
    let page = candor_listing::Query::Page(PageRequest {
        counter: 0,
        after: 0,
        upto: 1,
        max_items: 1,
    });
    assert!(matches!(
        node.answer(&page),
        Err(candor_listing::ServeError::WrongScheme)
    ));
}

#[test]
fn an_m_node_rejects_nothing_valid_and_refuses_invalid_offers() {
    let mut m = Market::new();
    let node = m.node(Scheme::Merkle, 1, 1);
    let s = Keypair::generate(&mut rand_core::OsRng);
    let mut bad = SignedOffer::sign(&s, &items()[0], 5, Currency::EUR, 1, NOW + 10, 1);
    bad.offer.price = 4;
    let expired = SignedOffer::sign(&s, &items()[0], 5, Currency::EUR, 1, NOW - 1, 2);
    let good = SignedOffer::sign(&s, &items()[0], 5, Currency::EUR, 1, NOW + 10, 3);
    let r = node.publish_all(&[bad, expired, good.clone()], NOW);
    assert!(r[0].is_err() && r[1].is_err());
    let receipt = r[2].as_ref().unwrap().as_step().unwrap();
    assert_eq!(receipt.step.batch.len(), 1);
    check_step_receipt(&m.trusted, node.peer(), node.certificate(), &good, receipt).unwrap();
}

#[test]
fn an_m_node_crashing_at_any_point_of_a_step_recovers_and_is_never_accused() {
    use candor_listing::CrashAt;
    for crash in [
        CrashAt::AfterPending,
        CrashAt::AfterInc,
        CrashAt::AfterCommit,
    ] {
        let mut m = Market::new();
        let dir = tempfile::tempdir().unwrap();
        let node_key = Keypair::generate(&mut rand_core::OsRng);
        let dev_path = dir.path().join("device.state");
        let store_path = dir.path().join("store.redb");
        let mut device =
            SoftwareDevice::create(&dev_path, PeerId::from_ed25519(&node_key.public()), 1).unwrap();
        let cert = m.enrol_device(&node_key, &mut device, Scheme::Merkle, 1);
        let (node, _) = ListingNode::open(
            device,
            ListingStore::open(&store_path).unwrap(),
            cert.clone(),
        )
        .unwrap();
        let s = Keypair::generate(&mut rand_core::OsRng);
        let first: Vec<SignedOffer> = (0..5)
            .map(|i| {
                SignedOffer::sign(
                    &Keypair::generate(&mut rand_core::OsRng),
                    &items()[i % 2],
                    10 + i as u64,
                    Currency::EUR,
                    1,
                    NOW + 99,
                    i as u64 + 1,
                )
            })
            .collect();
        for r in node.publish_all(&first, NOW) {
            r.unwrap();
        }
        let second: Vec<SignedOffer> = (0..4)
            .map(|i| {
                SignedOffer::sign(
                    &Keypair::generate(&mut rand_core::OsRng),
                    &items()[i % 3],
                    50 + i as u64,
                    Currency::EUR,
                    1,
                    NOW + 99,
                    100 + i as u64,
                )
            })
            .collect();
        node.publish_all_crashing(&second, NOW, crash);
        drop(node); // the process dies here
        let device = SoftwareDevice::open(&dev_path).unwrap();
        let (node, report) =
            ListingNode::open(device, ListingStore::open(&store_path).unwrap(), cert).unwrap();
        match crash {
            CrashAt::AfterPending => assert_eq!(report.dropped, 1),
            CrashAt::AfterInc => assert_eq!(report.recovered, 1),
            CrashAt::AfterCommit => assert_eq!((report.recovered, report.dropped), (0, 0)),
        }
        let recovered = !matches!(crash, CrashAt::AfterPending);
        let mut total = 0;
        for item in items().iter().take(3) {
            let out = retrieve_from_steps(&node, &m.trusted, item, Budget::default(), 5).unwrap();
            total += out.offers.len();
        }
        assert_eq!(total, if recovered { 9 } else { 5 });
        // Publishing goes on after the restart.
        let third = SignedOffer::sign(&s, &items()[0], 77, Currency::EUR, 1, NOW + 99, 999);
        publish_to_steps(&node, &m.trusted, &third, NOW).unwrap();
    }
}

#[test]
fn proofs_under_past_roots_from_snapshots_kept_since_the_last_open() {
    let mut m = Market::new();
    let dir = tempfile::tempdir().unwrap();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let mut device = SoftwareDevice::create(
        &dir.path().join("device.state"),
        PeerId::from_ed25519(&node_key.public()),
        1,
    )
    .unwrap();
    let cert = m.enrol_device(&node_key, &mut device, Scheme::Merkle, 1);
    let (node, _) = ListingNode::open(
        device,
        ListingStore::open(&dir.path().join("store.redb")).unwrap(),
        cert.clone(),
    )
    .unwrap();
    let items = items();
    // history[v] = what item 0's list held after step v.
    let mut history: Vec<Vec<SignedOffer>> = vec![Vec::new()];
    let mut list = Vec::new();
    for step in 0..6u64 {
        let offers: Vec<SignedOffer> = (0..3)
            .map(|i| {
                SignedOffer::sign(
                    &Keypair::generate(&mut rand_core::OsRng),
                    &items[((step + i) % 2) as usize],
                    100 * step + i,
                    Currency::EUR,
                    1,
                    NOW + 99,
                    10 * step + i + 1,
                )
            })
            .collect();
        for r in node.publish_all(&offers, NOW) {
            r.unwrap();
        }
        list.extend(offers.into_iter().filter(|o| o.offer.key == items[0].key()));
        history.push(list.clone());
    }
    for (v, expected) in history.iter().enumerate() {
        let got = candor_listing::check::retrieve_at(
            &node,
            &m.trusted,
            &items[0],
            v as u64,
            Budget::default(),
        )
        .unwrap();
        assert_eq!(&got, expected, "after step {v}");
    }
    // A restart loads the live map without a replay: the lists at the last step are served,
    // those under earlier roots are gone (a typed refusal, not a wrong answer), and the
    // snapshots build up again from the steps after it. A step that does not exist yet is
    // refused.
    drop(node);
    let device = SoftwareDevice::open(&dir.path().join("device.state")).unwrap();
    let (node, _) = ListingNode::open(
        device,
        ListingStore::open(&dir.path().join("store.redb")).unwrap(),
        cert,
    )
    .unwrap();
    let at = |v: u64| {
        candor_listing::check::retrieve_at(&node, &m.trusted, &items[0], v, Budget::default())
    };
    assert_eq!(at(6).unwrap(), history[6]);
    assert!(
        at(2).is_err(),
        "a root before the restart is no longer kept"
    );
    let more = SignedOffer::sign(
        &Keypair::generate(&mut rand_core::OsRng),
        &items[0],
        5,
        Currency::EUR,
        1,
        NOW + 99,
        1,
    );
    publish_to_steps(&node, &m.trusted, &more, NOW).unwrap();
    assert_eq!(at(6).unwrap(), history[6], "kept since the restart");
    assert!(at(7).unwrap().contains(&more));
    assert!(candor_listing::check::retrieve_at(
        &node,
        &m.trusted,
        &items[0],
        99,
        Budget::default()
    )
    .is_err());
}

/// A software device that, like a TPM whose audit session a crash flushed, cannot reissue a
/// statement it signed but the node never stored: a step counted at a crash is lost.
struct Forgetful(SoftwareDevice);

impl candor_device::TrustedDevice for Forgetful {
    fn device_key(&self) -> DeviceKey {
        self.0.device_key()
    }
    fn peer(&self) -> &PeerId {
        self.0.peer()
    }
    fn counters(&self) -> Vec<CounterId> {
        self.0.counters()
    }
    fn value(&self, c: CounterId) -> Result<u64, candor_device::DeviceError> {
        self.0.value(c)
    }
    fn read_sign(
        &mut self,
        c: CounterId,
        nonce: [u8; 32],
    ) -> Result<SignedRead, candor_device::DeviceError> {
        self.0.read_sign(c, nonce)
    }
    fn inc_sign_batch(
        &mut self,
        c: CounterId,
        p: &[Digest],
    ) -> Result<Vec<SignedInc>, candor_device::DeviceError> {
        self.0.inc_sign_batch(c, p)
    }
    fn reissue(
        &mut self,
        _: CounterId,
        _: u64,
    ) -> Result<Option<SignedInc>, candor_device::DeviceError> {
        Ok(None)
    }
    fn acknowledge(&mut self, c: CounterId, v: u64) -> Result<(), candor_device::DeviceError> {
        self.0.acknowledge(c, v)
    }
    fn acknowledged(&self, c: CounterId) -> Result<u64, candor_device::DeviceError> {
        self.0.acknowledged(c)
    }
    fn protection(&self) -> &'static str {
        self.0.protection()
    }
    fn endorsement(&mut self) -> Result<Option<Endorsement>, candor_device::DeviceError> {
        self.0.endorsement()
    }
    fn activate_credential(
        &mut self,
        c: &endorsement::Credential,
    ) -> Result<Vec<u8>, candor_device::DeviceError> {
        self.0.activate_credential(c)
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Random batches, some cut short by a crash before the store took the counted step
    /// (lost: a gap step covers it at the next open) or before the device call (dropped):
    /// after every restart the node serves exactly the steps it stored, buyers auditing every
    /// value verify each item's list and see one gap per lost step, and publishing goes on.
    #[test]
    fn lost_m_steps_become_gap_steps_and_honest_nodes_are_never_accused(
        batches in proptest::collection::vec(
            (1usize..5, proptest::option::of(proptest::bool::ANY)),
            1..7,
        )
    ) {
        use candor_listing::CrashAt;
        let mut m = Market::new();
        let dir = tempfile::tempdir().unwrap();
        let node_key = Keypair::generate(&mut rand_core::OsRng);
        let dev_path = dir.path().join("device.state");
        let store_path = dir.path().join("store.redb");
        let mut device =
            SoftwareDevice::create(&dev_path, PeerId::from_ed25519(&node_key.public()), 1).unwrap();
        let cert = m.enrol_device(&node_key, &mut device, Scheme::Merkle, 1);
        let open = |device: SoftwareDevice| {
            ListingNode::open(
                Forgetful(device),
                ListingStore::open(&store_path).unwrap(),
                cert.clone(),
            )
            .unwrap()
        };
        let (mut node, _) = open(device);
        let s = Keypair::generate(&mut rand_core::OsRng);
        let items = items();
        let mut stored: std::collections::BTreeMap<ItemKey, usize> = Default::default();
        let (mut lost, mut serial) = (0usize, 0u64);
        // The value of each gap step written (one above the last value it covers).
        let mut gap_values = Vec::new();
        for (size, crash) in batches {
            let batch: Vec<SignedOffer> = (0..size)
                .map(|i| {
                    serial += 1;
                    // A seller per offer: a live list holds one record per seller.
                    SignedOffer::sign(&Keypair::generate(&mut rand_core::OsRng), &items[i % 3], 10 + serial, Currency::EUR, 1, NOW + 99, serial)
                })
                .collect();
            match crash {
                None => {
                    for r in node.publish_all(&batch, NOW) {
                        r.unwrap();
                    }
                    for o in &batch {
                        *stored.entry(o.offer.key).or_default() += 1;
                    }
                }
                Some(counted) => {
                    let at = if counted { CrashAt::AfterInc } else { CrashAt::AfterPending };
                    node.publish_all_crashing(&batch, NOW, at);
                    drop(node); // the process dies
                    let (again, report) = open(SoftwareDevice::open(&dev_path).unwrap());
                    proptest::prop_assert_eq!(report.recovered, 0);
                    proptest::prop_assert_eq!(report.gaps.len(), usize::from(counted));
                    gap_values.extend(report.gaps.iter().map(|(_, _, last)| last + 1));
                    lost += usize::from(counted);
                    node = again;
                }
            }
        }
        proptest::prop_assert_eq!(gap_values.len(), lost);
        let (mut gaps, mut horizon) = (0, 0);
        for item in items.iter().take(3) {
            let out = retrieve_from_steps(&node, &m.trusted, item, Budget::default(), 1000).unwrap();
            proptest::prop_assert_eq!(out.offers.len(), stored.get(&item.key()).copied().unwrap_or(0));
            gaps = gaps.max(out.gaps.len());
            horizon = horizon.max(out.horizon);
        }
        // A gap step written before the node's first durable step binds node time 0, so it
        // lies at or below the audit horizon once a step is dated: no audit goes below it,
        // and one below it no longer travels. Every one from the horizon up is seen.
        let above = gap_values.iter().filter(|v| **v >= horizon).count();
        proptest::prop_assert_eq!(gaps, above, "every gap step above the horizon is seen when every value is audited");
        let last = SignedOffer::sign(&s, &items[0], 1, Currency::EUR, 1, NOW + 99, serial + 1);
        publish_to_steps(&node, &m.trusted, &last, NOW).unwrap();
    }
}

#[test]
fn concurrent_buyers_share_one_read_and_each_checks_its_path() {
    // A device that takes 30 ms per Read, like a hardware TPM: buyers that arrive while it
    // signs are served by the next Read, one for all of them.
    let mut m = Market::new();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let device = candor_lab::SlowDevice::new(
        SoftwareDevice::in_memory(PeerId::from_ed25519(&node_key.public()), 1),
        std::time::Duration::ZERO,
    )
    .reading(std::time::Duration::from_millis(30));
    let reads = device.read_count();
    let node = open_m(&mut m, &node_key, device);
    for i in 0..3 {
        publish_to_steps(
            node.as_ref(),
            &m.trusted,
            &offer(
                &Keypair::generate(&mut rand_core::OsRng),
                &target(),
                10 + i,
                i + 1,
            ),
            NOW,
        )
        .unwrap();
    }
    let before = reads.load(std::sync::atomic::Ordering::Relaxed);
    const BUYERS: u64 = 16;
    let threads: Vec<_> = (0..BUYERS)
        .map(|_| {
            let node = node.clone();
            let trusted = m.trusted.clone();
            std::thread::spawn(move || {
                retrieve_from_steps(node.as_ref(), &trusted, &target(), Budget::default(), 2)
            })
        })
        .collect();
    for t in threads {
        let out = t.join().unwrap().unwrap();
        assert_eq!(out.offers.len(), 3);
    }
    let used = reads.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        (1..BUYERS / 2).contains(&used),
        "{used} Reads for {BUYERS} buyers"
    );
    // A lone buyer's Read still signs its own nonce: its head carries an empty path.
    let req = RetrieveRequest {
        item: target().key(),
        nonce: [3; 32],
        cert: None,
    };
    let bytes = node.ask(&candor_listing::Query::Head(req.clone())).unwrap();
    let (head, _) = StepHead::decode(&bytes, &req, None).unwrap();
    assert_eq!(head.nonces, NoncePath::default());
    assert_eq!(head.read.read.nonce, [3; 32]);
}

#[test]
fn a_failed_batched_read_reaches_every_waiter_and_the_queue_recovers() {
    // A device that is down fails the one Read a batch of buyers waits for: every one of them
    // gets the refusal (none hangs), and once the device is back the next heads are served.
    let mut m = Market::new();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let (device, faults) = candor_lab::FailingDevice::new(
        candor_lab::SlowDevice::new(
            SoftwareDevice::in_memory(PeerId::from_ed25519(&node_key.public()), 1),
            std::time::Duration::ZERO,
        )
        .reading(std::time::Duration::from_millis(20)),
    );
    let node = open_m(&mut m, &node_key, device);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    publish_to_steps(
        node.as_ref(),
        &m.trusted,
        &offer(&seller, &target(), 10, 1),
        NOW,
    )
    .unwrap();
    let heads = |n: u8| -> Vec<Result<Vec<u8>, candor_listing::Refusal>> {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let node = node.clone();
                std::thread::spawn(move || {
                    node.ask(&candor_listing::Query::Head(RetrieveRequest {
                        item: target().key(),
                        nonce: [i; 32],
                        cert: None,
                    }))
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    };
    faults.arm(candor_lab::Fault::Down);
    let failed = heads(8);
    assert!(failed.iter().all(Result::is_err), "{failed:?}");
    faults.clear();
    let served = heads(8);
    assert!(served.iter().all(Result::is_ok), "{served:?}");
    retrieve_from_steps(node.as_ref(), &m.trusted, &target(), Budget::default(), 1).unwrap();
    publish_to_steps(
        node.as_ref(),
        &m.trusted,
        &offer(&seller, &target(), 11, 2),
        NOW,
    )
    .unwrap();
}

/// A scheme-M node on `device`, enrolled for `node_key`, its store in memory.
fn open_m<D: candor_device::TrustedDevice>(
    m: &mut Market,
    node_key: &Keypair,
    mut device: D,
) -> std::sync::Arc<ListingNode<D>> {
    let cert = m.enrol_device(node_key, &mut device, Scheme::Merkle, 1);
    std::sync::Arc::new(
        ListingNode::open(device, ListingStore::in_memory().unwrap(), cert)
            .unwrap()
            .0,
    )
}

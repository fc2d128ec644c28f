//! Property tests: random honest workloads with a random cheat give exactly W_d or a
//! detected misbehaviour, never a false accusation; honest nodes under crash and restart, or
//! racing publishes, are never accused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_lab::{CheatingNode, Strategy as Cheat};
use candor_listing::{
    monitor, publish_to, retrieve_from, Committer, CrashAt, Listing, ListingNode, PublishReceipt,
    RetrieveOutcome,
};
use common::*;
use proptest::prelude::*;
use proptest::strategy::Strategy;
use std::collections::BTreeSet;
use std::sync::Arc;

fn items() -> Vec<Item> {
    (0..3)
        .map(|i| Item::new(&format!("lot {i} of vintage postcards")).unwrap())
        .collect()
}

/// The valid offers for `item` the node actually stores: W_d^{p_d}.
fn stored_w_d(node: &ListingNode<SoftwareDevice>, item: &Item) -> BTreeSet<Vec<u8>> {
    let counter = node.certificate().cert.counter_for(&item.key()).id;
    let head = node.store().head(counter).unwrap().unwrap();
    node.store()
        .page(counter, 0, head, usize::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|i| match i {
            PageItem::Entry { bytes, .. } => Some(bytes),
            PageItem::Gap { .. } => None,
        })
        .filter(|b| {
            SignedOffer::from_bytes(b)
                .is_ok_and(|o| o.verify().is_ok() && o.offer.key == item.key())
        })
        .collect()
}

fn offers_of(o: &RetrieveOutcome) -> BTreeSet<Vec<u8>> {
    o.offers().iter().map(|o| o.to_bytes()).collect()
}

/// One publish of the workload: (seller, item, price, quantity).
fn op() -> impl Strategy<Value = (usize, usize, u64, u32)> {
    (
        0usize..4,
        0usize..3,
        1u64..10_000,
        prop_oneof![Just(0u32), 1u32..5],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_workload_and_cheat_give_w_d_or_detection(
        ops in proptest::collection::vec(op(), 0..24),
        strategy_index in 0usize..17,
        scheme_c in any::<bool>(),
    ) {
        let mut m = Market::new();
        let honest = if scheme_c { m.node(Scheme::Counters, 4, 4) } else { m.node(Scheme::Basic, 1, 2) };
        let sellers: Vec<Keypair> = (0..4).map(|_| Keypair::generate(&mut rand_core::OsRng)).collect();
        let items = items();
        let mut serials = [[0u64; 3]; 4];
        let mut receipts: Vec<Vec<(SignedOffer, PublishReceipt)>> = vec![Vec::new(); 4];
        for (s, i, price, qty) in ops {
            serials[s][i] += 1;
            let o = SignedOffer::sign(&sellers[s], &items[i], price, Currency::EUR, qty, NOW + 1000, serials[s][i]);
            let r = publish_to(&honest, &m.trusted, &o, NOW).unwrap();
            if i == 0 {
                receipts[s].push((o, r));
            }
        }
        let target = items[0].clone();
        let strategy = Cheat::all(sellers[0].public(), sellers[1].public(), 7).swap_remove(strategy_index);
        let honest_run = strategy == Cheat::Honest;
        let cheater = CheatingNode::new(honest, strategy, target.clone());
        cheater.prepare(NOW);
        let budget = Budget { max_entries: 30, ..Budget::default() };
        let mut result = retrieve_from(&cheater, &m.trusted, &target, budget);
        if matches!(cheater.strategy(), Cheat::ReplayAnswer) {
            result = retrieve_from(&cheater, &m.trusted, &target, budget);
        }
        let w_d = stored_w_d(cheater.honest(), &target);
        match result {
            Ok(o) if o.faults().is_empty() && o.gaps() == 0 => {
                // Not detected: then the buyer got exactly what the node stores.
                prop_assert_eq!(offers_of(&o), w_d);
            }
            Ok(o) if !o.faults().is_empty() => {
                prop_assert!(!honest_run, "honest node produced evidence");
                for e in o.faults() {
                    prop_assert!(e.verify(&m.trusted).is_ok());
                }
            }
            Ok(_) => {
                // A gap notice: only a cheat over a receipt makes one here, and the seller
                // whose receipt it covers catches it with transferable evidence.
                prop_assert!(!honest_run, "honest node wrote a gap");
                let caught = (0..4).any(|s| {
                    matches!(
                        monitor(&cheater, &m.trusted, &target, &receipts[s], Budget::default()),
                        Err(Misbehaviour::Evidence(_))
                    )
                });
                prop_assert!(caught);
            }
            Err(e) => {
                prop_assert!(!honest_run, "honest node accused: {}", e);
            }
        }
    }

    #[test]
    fn honest_node_crashing_and_restarting_is_never_accused(
        batches in proptest::collection::vec(
            (proptest::collection::vec(op(), 1..6), prop_oneof![
                Just(None),
                Just(Some(CrashAt::AfterPending)),
                Just(Some(CrashAt::AfterInc)),
                Just(Some(CrashAt::AfterCommit)),
            ]),
            1..10,
        ),
        scheme_c in any::<bool>(),
    ) {
        let mut m = Market::new();
        let mut node = if scheme_c { m.node(Scheme::Counters, 3, 3) } else { m.node(Scheme::Basic, 1, 1) };
        let cert = node.certificate().clone();
        let sellers: Vec<Keypair> = (0..4).map(|_| Keypair::generate(&mut rand_core::OsRng)).collect();
        let items = items();
        let mut serial = 0;
        let mut attempted: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut receipted: Vec<(SignedOffer, PublishReceipt)> = Vec::new();
        for (ops, crash) in batches {
            let offers: Vec<SignedOffer> = ops
                .into_iter()
                .map(|(s, i, price, qty)| {
                    serial += 1;
                    SignedOffer::sign(&sellers[s], &items[i], price, Currency::EUR, qty, NOW + 1000, serial)
                })
                .collect();
            attempted.extend(offers.iter().map(|o| o.to_bytes()));
            match crash {
                None => {
                    for (o, r) in offers.iter().zip(node.publish_all(&offers, NOW)) {
                        let r = r.unwrap().as_entry().unwrap().clone();
                        check_receipt(&m.trusted, node.peer(), &cert, o, &r).unwrap();
                        receipted.push((o.clone(), PublishReceipt::Entry(r)));
                    }
                }
                Some(at) => {
                    node.publish_all_crashing(&offers, NOW, at);
                    // The process dies here; it restarts on the same device and store.
                    let (device, store) = node.into_parts();
                    let (n, report) = ListingNode::open(device, store, cert.clone()).unwrap();
                    prop_assert!(report.gaps.is_empty(), "software device lost nothing");
                    match at {
                        CrashAt::AfterPending => prop_assert!(report.dropped >= 1 && report.recovered == 0),
                        CrashAt::AfterInc => prop_assert_eq!(report.recovered, offers.len() as u64),
                        CrashAt::AfterCommit => prop_assert!(report.recovered == 0 && report.dropped == 0),
                    }
                    node = n;
                }
            }
        }
        for item in &items {
            let o = retrieve_from(&node, &m.trusted, item, Budget::default()).unwrap();
            prop_assert!(o.gaps() == 0 && o.faults().is_empty());
            let got = offers_of(&o);
            for (offer, _) in receipted.iter().filter(|(x, _)| x.offer.key == item.key()) {
                prop_assert!(got.contains(&offer.to_bytes()), "a receipted offer was lost");
            }
            prop_assert!(got.is_subset(&attempted));
            for s in &sellers {
                let mine: Vec<_> = receipted
                    .iter()
                    .filter(|(x, _)| x.offer.seller == s.public() && x.offer.key == item.key())
                    .cloned()
                    .collect();
                monitor(&node, &m.trusted, item, &mine, Budget::default()).unwrap();
            }
        }
    }
}

/// Buyers retrieving while sellers publish through the group committer never accuse the node.
#[test]
fn retrieves_racing_publishes_never_accuse() {
    let mut m = Market::new();
    let node = Arc::new(m.node(Scheme::Basic, 1, 1));
    let committer = Arc::new(Committer::spawn(node.clone(), 64, 256));
    let items = Arc::new(items());
    let trusted = m.trusted.clone();
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let committer = committer.clone();
            let items = items.clone();
            std::thread::spawn(move || {
                let seller = Keypair::generate(&mut rand_core::OsRng);
                (0..150u64)
                    .map(|i| {
                        let o = SignedOffer::sign(
                            &seller,
                            &items[(i % 3) as usize],
                            100 + i,
                            Currency::EUR,
                            1,
                            NOW + 1000,
                            i + 1,
                        );
                        (o.clone(), committer.publish(o, NOW).unwrap())
                    })
                    .collect::<Vec<_>>()
                    .len()
            })
        })
        .collect();
    let mut retrieves = 0;
    while publishers.iter().any(|p| !p.is_finished()) || retrieves < 3 {
        for item in items.iter() {
            let o = retrieve_from(
                node.as_ref() as &dyn Listing,
                &trusted,
                item,
                Budget::default(),
            );
            assert!(
                o.is_ok(),
                "honest node accused while publishing: {:?}",
                o.err()
            );
        }
        retrieves += 1;
    }
    let published: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
    assert_eq!(published, 600);
    let total: usize = items
        .iter()
        .map(|i| {
            retrieve_from(node.as_ref(), &trusted, i, Budget::default())
                .unwrap()
                .offers()
                .len()
        })
        .sum();
    assert_eq!(total, 600);
    assert!(retrieves >= 3);
}

//! An in-process overlay of 30 nodes on libp2p's memory transport: Δ(d) matches the true k
//! closest peers computed from every PeerId; offers published to Δ(d) are retrieved and
//! verified from another node; a node outside Δ(d) refuses; garbage gets a typed refusal;
//! a cheating listing node is caught over the network.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_lab::{CheatingNode, Strategy};
use candor_listing::{enrol, publish_to, retrieve_from, Listing, ListingNode, Query};
use candor_net::*;
use candor_store::ListingStore;
use libp2p::kad::KBucketKey;
use std::sync::Arc;
use std::time::Duration;

const N: usize = 30;
const K: usize = 3;

struct Net {
    handles: Vec<NetHandle>,
    nodes: Vec<Option<Arc<ListingNode<SoftwareDevice>>>>,
    trusted: Vec<PublicKey>,
}

fn now() -> u64 {
    system_clock()
}

/// Starts N nodes; `cheat` (index, strategy, item) makes one of them a cheating listing node.
async fn overlay(cheat: Option<(usize, Strategy, Item)>) -> Net {
    let keys = (0..N)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    overlay_with(keys, cheat, Scheme::Basic).await
}

fn libp2p_id(key: &Keypair) -> libp2p::PeerId {
    identity(key).unwrap().public().to_peer_id()
}

async fn overlay_with(
    keys: Vec<Keypair>,
    cheat: Option<(usize, Strategy, Item)>,
    scheme: Scheme,
) -> Net {
    let authority = Authority::new(Keypair::generate(&mut rand_core::OsRng));
    let mut registry = Registry::default();
    let base: u64 = 1 + rand_core::RngCore::next_u32(&mut rand_core::OsRng) as u64 * 1000;
    let mut handles = Vec::new();
    let mut nodes = Vec::new();
    let mut first: Option<Multiaddr> = None;
    for (i, key) in keys.into_iter().enumerate() {
        let mut device =
            SoftwareDevice::in_memory(candor_core::PeerId::from_ed25519(&key.public()), 2);
        let cert = enrol(
            &authority,
            &mut registry,
            &key,
            &mut device,
            scheme,
            1,
            now(),
        )
        .unwrap();
        let (node, _) =
            ListingNode::open(device, ListingStore::in_memory().unwrap(), cert).unwrap();
        let (service, node): (Arc<dyn Service>, _) = match &cheat {
            Some((c, s, item)) if *c == i => (
                Arc::new(ServeListing(CheatingNode::new(
                    node,
                    s.clone(),
                    item.clone(),
                ))),
                None,
            ),
            _ => {
                let node = Arc::new(node);
                (
                    Arc::new(ListingService::new(node.clone(), system_clock)),
                    Some(node),
                )
            }
        };
        let config = NetConfig {
            listen: vec![format!("/memory/{}", base + i as u64).parse().unwrap()],
            bootstrap: first.iter().cloned().collect(),
            k: K,
            memory: true,
            request_timeout: Duration::from_secs(20),
            ..NetConfig::default()
        };
        let (h, addrs) = start(identity(&key).unwrap(), config, Some(service))
            .await
            .unwrap();
        if first.is_none() {
            first = Some(with_peer(&addrs[0], h.peer()));
        }
        handles.push(h);
        nodes.push(node);
    }
    // Join in batches of 10 (hundreds of bootstraps at once are slow).
    for chunk in handles.chunks(10) {
        futures::future::join_all(chunk.iter().map(|h| h.bootstrap())).await;
    }
    // A second round so early joiners learn of later ones.
    for h in &handles {
        let _ = h.bootstrap().await;
    }
    Net {
        handles,
        nodes,
        trusted: vec![authority.public()],
    }
}

fn true_closest(net: &Net, key: &ItemKey) -> Vec<libp2p::PeerId> {
    let target = KBucketKey::new(dht_key(key));
    let mut all: Vec<_> = net.handles.iter().map(|h| h.peer()).collect();
    all.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
    all.truncate(K);
    all
}

/// A Listing for `peer` as seen from node `from` (local if it is the node itself).
fn listing_for(net: &Net, from: usize, peer: libp2p::PeerId) -> Box<dyn Listing + Send> {
    let idx = net.handles.iter().position(|h| h.peer() == peer).unwrap();
    if idx == from {
        if let Some(n) = &net.nodes[idx] {
            return Box::new(n.clone());
        }
    }
    Box::new(RemoteListing::new(
        net.handles[from].clone(),
        peer,
        tokio::runtime::Handle::current(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_publish_and_retrieve_through_delta_d() {
    let net = Arc::new(overlay(None).await);
    let items: Vec<Item> = (0..12)
        .map(|i| Item::new(&format!("overlay item {i}")).unwrap())
        .collect();
    for (n, item) in items.iter().enumerate() {
        let seller = n % N;
        let buyer = (n * 7 + 3) % N;
        let delta = net.handles[seller]
            .listing_nodes(&dht_key(&item.key()))
            .await
            .unwrap();
        assert_eq!(
            delta,
            true_closest(&net, &item.key()),
            "Δ(d) differs from the true k closest"
        );
        let from_buyer = net.handles[buyer]
            .listing_nodes(&dht_key(&item.key()))
            .await
            .unwrap();
        assert_eq!(delta, from_buyer);
        let net2 = net.clone();
        let item2 = item.clone();
        tokio::task::spawn_blocking(move || {
            let key = Keypair::generate(&mut rand_core::OsRng);
            let offer = SignedOffer::sign(
                &key,
                &item2,
                1000 + n as u64,
                Currency::EUR,
                1,
                now() + 3600,
                1,
            );
            for p in &delta {
                publish_to(
                    listing_for(&net2, seller, *p).as_ref(),
                    &net2.trusted,
                    &offer,
                    now(),
                )
                .unwrap();
            }
            for p in &delta {
                let o = retrieve_from(
                    listing_for(&net2, buyer, *p).as_ref(),
                    &net2.trusted,
                    &item2,
                    Budget::default(),
                )
                .unwrap();
                assert_eq!(o.offers(), vec![&offer]);
            }
        })
        .await
        .unwrap();
    }
    // A node outside Δ(d) refuses the publish, typed.
    let item = &items[0];
    let delta = true_closest(&net, &item.key());
    let outsider = net
        .handles
        .iter()
        .map(|h| h.peer())
        .find(|p| !delta.contains(p))
        .unwrap();
    let from = net
        .handles
        .iter()
        .position(|h| delta.contains(&h.peer()))
        .unwrap();
    let net2 = net.clone();
    let item2 = item.clone();
    let err = tokio::task::spawn_blocking(move || {
        let key = Keypair::generate(&mut rand_core::OsRng);
        let offer = SignedOffer::sign(&key, &item2, 1, Currency::EUR, 1, now() + 3600, 1);
        publish_to(
            listing_for(&net2, from, outsider).as_ref(),
            &net2.trusted,
            &offer,
            now(),
        )
        .unwrap_err()
    })
    .await
    .unwrap();
    assert!(err.to_string().contains("not-responsible"), "{err}");
}

/// The join is a self-lookup, not Kademlia's full bootstrap: every node must know peers
/// besides its bootstrap peer, and once that peer is gone, lookups of keys nobody asked for yet
/// must still find the true k closest. (Links into the far half of the keyspace are not
/// promised by the join: the periodic refresh looks there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_links_across_the_keyspace_and_survives_losing_the_bootstrap_peer() {
    // Large enough that a self-lookup's 20 peers are a small part of the overlay.
    const BIG: usize = 80;
    let keys = (0..BIG)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let net = overlay_with(keys, None, Scheme::Basic).await;
    let seed = net.handles[0].peer();
    for h in &net.handles[1..] {
        let others = h
            .peers()
            .await
            .unwrap()
            .iter()
            .filter(|p| p.peer != seed)
            .count();
        assert!(
            others >= 1,
            "{} knows nobody but its bootstrap peer",
            h.peer()
        );
    }
    net.handles[0].shutdown();
    let alive: Vec<libp2p::PeerId> = net.handles[1..].iter().map(|h| h.peer()).collect();
    for i in 0..12 {
        let item = Item::new(&format!("cold item {i}")).unwrap();
        let key = dht_key(&item.key());
        let target = KBucketKey::new(key.clone());
        let mut truth = alive.clone();
        truth.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
        truth.truncate(K);
        let from = &net.handles[1 + (i * 7) % (BIG - 1)];
        let found = from.listing_nodes(&key).await.unwrap();
        assert_eq!(
            found, truth,
            "a cold lookup without the bootstrap peer missed Δ(d)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_messages_get_typed_refusals() {
    let net = overlay(None).await;
    let (a, b) = (&net.handles[1], net.handles[2].peer());
    for garbage in [
        vec![],
        vec![0xff; 10],
        vec![1, 1, 0, 0, 0],
        PublishRequest(SignedOffer::sign(
            &Keypair::generate(&mut rand_core::OsRng),
            &Item::new("x").unwrap(),
            1,
            Currency::EUR,
            1,
            1,
            1,
        ))
        .to_bytes()[..20]
            .to_vec(),
    ] {
        let answer = a.request(Proto::Publish, b, garbage.clone()).await.unwrap();
        match PublishResponse::from_bytes(&answer).unwrap() {
            PublishResponse::Refused(r) => assert_eq!(r.code, RefusalCode::Invalid),
            other => panic!("{other:?}"),
        }
        let answer = a.request(Proto::Retrieve, b, garbage).await.unwrap();
        match RetrieveAnswer::from_bytes(&answer).unwrap() {
            RetrieveAnswer::Refused(r) => assert_eq!(r.code, RefusalCode::Invalid),
            other => panic!("{other:?}"),
        }
    }
    // An oversized request never leaves: the codec refuses to send it.
    assert!(a
        .request(Proto::Retrieve, b, vec![0; MAX_RETRIEVE_REQUEST + 1])
        .await
        .is_err());
    // The node still serves correct requests afterwards.
    let item = Item::new("still working").unwrap();
    let head = a
        .request(
            Proto::Retrieve,
            b,
            Query::Head(RetrieveRequest {
                item: item.key(),
                nonce: [1; 32],
                cert: None,
            })
            .to_bytes(),
        )
        .await
        .unwrap();
    let RetrieveAnswer::Answer(head) = RetrieveAnswer::from_bytes(&head).unwrap() else {
        panic!("refused")
    };
    RetrieveHead::from_bytes(&head).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheating_listing_node_is_caught_over_the_network() {
    // Choose the keys first, then an item whose Δ(d) holds the cheater (node 5).
    let keys: Vec<Keypair> = (0..N)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let ids: Vec<libp2p::PeerId> = keys.iter().map(libp2p_id).collect();
    let cheater = ids[5];
    let item = (0..1000)
        .map(|i| Item::new(&format!("contested item {i}")).unwrap())
        .find(|it| {
            let target = KBucketKey::new(dht_key(&it.key()));
            let mut all = ids.clone();
            all.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
            all[..K].contains(&cheater)
        })
        .unwrap();
    let net = Arc::new(
        overlay_with(
            keys,
            Some((5, Strategy::OmitEntry, item.clone())),
            Scheme::Basic,
        )
        .await,
    );
    let delta = net.handles[0]
        .listing_nodes(&dht_key(&item.key()))
        .await
        .unwrap();
    assert!(delta.contains(&cheater));
    let net2 = net.clone();
    tokio::task::spawn_blocking(move || {
        let key = Keypair::generate(&mut rand_core::OsRng);
        let cheap = SignedOffer::sign(&key, &item, 500, Currency::EUR, 1, now() + 3600, 1);
        let dear = SignedOffer::sign(
            &Keypair::generate(&mut rand_core::OsRng),
            &item,
            900,
            Currency::EUR,
            1,
            now() + 3600,
            1,
        );
        for offer in [&cheap, &dear] {
            for p in &delta {
                publish_to(
                    listing_for(&net2, 0, *p).as_ref(),
                    &net2.trusted,
                    offer,
                    now(),
                )
                .unwrap();
            }
        }
        // A buyer checks each listing node independently: the cheater is caught, the honest
        // ones verify.
        for p in &delta {
            let r = retrieve_from(
                listing_for(&net2, 1, *p).as_ref(),
                &net2.trusted,
                &item,
                Budget::default(),
            );
            if *p == cheater {
                assert_eq!(r.unwrap_err().kind(), Kind::MissingEntry);
            } else {
                assert_eq!(r.unwrap().offers().len(), 2);
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_are_reissued_and_reads_are_rate_limited() {
    let net = Arc::new(overlay(None).await);
    let item = Item::new("reissued item").unwrap();
    let delta = net.handles[0]
        .listing_nodes(&dht_key(&item.key()))
        .await
        .unwrap();
    let remote = *delta.iter().find(|p| **p != net.handles[0].peer()).unwrap();
    let net2 = net.clone();
    let item2 = item.clone();
    tokio::task::spawn_blocking(move || {
        let key = Keypair::generate(&mut rand_core::OsRng);
        let offer = SignedOffer::sign(&key, &item2, 700, Currency::EUR, 1, now() + 3600, 1);
        let l = RemoteListing::new(
            net2.handles[0].clone(),
            remote,
            tokio::runtime::Handle::current(),
        );
        let receipt = publish_to(&l, &net2.trusted, &offer, now()).unwrap();
        // The seller lost its receipt: the node re-issues the very same one.
        let again = candor_listing::PublishAnswer::from_bytes(&l.reissue(&offer).unwrap()).unwrap();
        let again_receipt = Receipt::from_bytes(&again.receipt).unwrap();
        let candor_listing::PublishReceipt::Entry(receipt) = receipt else {
            panic!("a scheme-B node answered a step")
        };
        assert_eq!(again_receipt, receipt);
        check_receipt(
            &net2.trusted,
            &Listing::peer(&l),
            &again.cert,
            &offer,
            &again_receipt,
        )
        .unwrap();
        // An offer the node never counted: a typed refusal.
        let other = SignedOffer::sign(&key, &item2, 701, Currency::EUR, 1, now() + 3600, 2);
        assert!(l.reissue(&other).unwrap_err().reason.contains("not-found"));
    })
    .await
    .unwrap();
    // Reads (retrieve heads) are rate-limited per peer: a burst beyond 2 × 20 is refused.
    let (a, b) = (&net.handles[3], net.handles[4].peer());
    let mut limited = 0;
    for i in 0..80u8 {
        let req = Query::Head(RetrieveRequest {
            item: item.key(),
            nonce: [i; 32],
            cert: None,
        })
        .to_bytes();
        if let RetrieveAnswer::Refused(r) =
            RetrieveAnswer::from_bytes(&a.request(Proto::Retrieve, b, req).await.unwrap()).unwrap()
        {
            assert_eq!(r.code, RefusalCode::RateLimited);
            limited += 1;
        }
    }
    assert!(limited >= 30, "only {limited} of 80 Reads were limited");
    // Every other request that costs the node work is metered too (pages, steps, proofs
    // under past roots): a burst beyond 2 × 200 is refused.
    // Sent 60 at a time (a connection's stream limit), as fast as they are answered.
    let mut limited = 0;
    for chunk in (0..1200u64).collect::<Vec<_>>().chunks(60) {
        let flood = chunk.iter().map(|&i| {
            let req = match i % 3 {
                0 => Query::Step(i),
                1 => Query::ProveAt(item.key(), i),
                _ => Query::Page(candor_core::PageRequest {
                    counter: 0,
                    after: 0,
                    upto: 1,
                    max_items: 1,
                }),
            }
            .to_bytes();
            a.request(Proto::Retrieve, b, req)
        });
        for answer in futures::future::join_all(flood).await.into_iter().flatten() {
            if let Ok(RetrieveAnswer::Refused(r)) = RetrieveAnswer::from_bytes(&answer) {
                if r.code == RefusalCode::RateLimited {
                    limited += 1;
                }
            }
        }
    }
    assert!(
        limited >= 100,
        "only {limited} of 1200 requests were limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_m_over_the_network_with_audits_and_a_cheater_caught() {
    let keys: Vec<Keypair> = (0..N)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let ids: Vec<libp2p::PeerId> = keys.iter().map(libp2p_id).collect();
    let cheater = ids[5];
    let item = (0..1000)
        .map(|i| Item::new(&format!("m item {i}")).unwrap())
        .find(|it| {
            let target = KBucketKey::new(dht_key(&it.key()));
            let mut all = ids.clone();
            all.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
            all[..K].contains(&cheater)
        })
        .unwrap();
    let net = Arc::new(
        overlay_with(
            keys,
            Some((5, Strategy::ChangePrice, item.clone())),
            Scheme::Merkle,
        )
        .await,
    );
    let delta = net.handles[0]
        .listing_nodes(&dht_key(&item.key()))
        .await
        .unwrap();
    let net2 = net.clone();
    tokio::task::spawn_blocking(move || {
        let sellers: Vec<Keypair> = (0..3)
            .map(|_| Keypair::generate(&mut rand_core::OsRng))
            .collect();
        for (i, s) in sellers.iter().enumerate() {
            let offer =
                SignedOffer::sign(s, &item, 500 + i as u64, Currency::EUR, 1, now() + 3600, 1);
            for p in &delta {
                // Every listing node answers with a whole step, which the seller verifies.
                match candor_listing::publish_to(
                    listing_for(&net2, 0, *p).as_ref(),
                    &net2.trusted,
                    &offer,
                    now(),
                )
                .unwrap()
                {
                    candor_listing::PublishReceipt::Step(r, placement) => {
                        assert_eq!(r.step.batch.len(), 1);
                        assert_eq!(placement.hash, candor_core::offer_hash(&offer.to_bytes()));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        for p in &delta {
            let r = candor_listing::retrieve_from(
                listing_for(&net2, 1, *p).as_ref(),
                &net2.trusted,
                &item,
                candor_listing::Reading::default().audits(3),
            );
            if *p == cheater {
                assert_eq!(r.unwrap_err().kind(), Kind::BadProof);
            } else {
                let o = r.unwrap();
                assert_eq!(o.offers().len(), 3);
                assert!((o.detection() - 1.0).abs() < 1e-9, "3 audits of 3 steps");
                // Proofs under past roots, over the network: the list after each step.
                for v in 1..=3u64 {
                    let past = candor_listing::check::retrieve_at(
                        listing_for(&net2, 1, *p).as_ref(),
                        &net2.trusted,
                        &item,
                        v,
                        candor_core::Budget::default(),
                    )
                    .unwrap();
                    assert_eq!(past.len() as u64, v);
                }
            }
        }
    })
    .await
    .unwrap();
}

//! Readers a listing node cannot single out (issue 9, item 3): every retrieve and every
//! monitoring run of a `Market` reads under a fresh libp2p identity, so a node that shows the
//! seller's own PeerId another view than buyers' (here: refuses it, while buyers get a gap
//! notice over the seller's offer) serves the seller's monitor the buyers' view and is caught
//! with transferable evidence. And what a reader saw signed is kept, so a node is held to it
//! on later reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_lab::{CheatingNode, Strategy};
use candor_listing::{enrol, ListingNode, PublishReceipt, Query};
use candor_net::*;
use candor_store::ListingStore;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const N: usize = 6;
const K: usize = 3;

type Cheater = ServeListing<CheatingNode<SoftwareDevice>>;

/// The cheating listing node's service: buyers get the cheat; the seller's own PeerId is
/// refused (the node would rather be called unhelpful than leave evidence). Records who read.
struct Targeted {
    inner: Arc<Cheater>,
    seller: Mutex<Option<libp2p::PeerId>>,
    readers: Mutex<Vec<libp2p::PeerId>>,
    /// For each head asked for: whether the request named a certificate.
    named: Mutex<Vec<bool>>,
}

impl Service for Targeted {
    fn publish(&self, from: libp2p::PeerId, r: PublishRequest) -> PublishResponse {
        self.inner.publish(from, r)
    }
    fn retrieve(&self, from: libp2p::PeerId, r: Query) -> RetrieveAnswer {
        if let Query::Head(req) = &r {
            self.readers.lock().unwrap().push(from);
            self.named.lock().unwrap().push(req.cert.is_some());
        }
        if *self.seller.lock().unwrap() == Some(from) {
            return RetrieveAnswer::Refused(Refused::new(RefusalCode::NotFound, "no such item"));
        }
        self.inner.retrieve(from, r)
    }
    fn reissue(&self, from: libp2p::PeerId, r: PublishRequest) -> PublishResponse {
        self.inner.reissue(from, r)
    }
    fn certificate(&self) -> Option<SignedCertificate> {
        self.inner.certificate()
    }
}

struct Overlay {
    handles: Vec<NetHandle>,
    trusted: Vec<PublicKey>,
    cheater: usize,
    targeted: Arc<Targeted>,
}

fn libp2p_id(key: &Keypair) -> libp2p::PeerId {
    identity(key).unwrap().public().to_peer_id()
}

/// N nodes of `scheme`; the one closest to `item` plays `strategy` and singles out a seller.
async fn overlay(item: &Item, scheme: Scheme, strategy: Strategy) -> Overlay {
    let keys: Vec<Keypair> = (0..N)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let target = KBucketKey::new(dht_key(&item.key()));
    let cheater = (0..N)
        .min_by_key(|i| target.distance(&KBucketKey::from(libp2p_id(&keys[*i]))))
        .unwrap();
    let authority = Authority::new(Keypair::generate(&mut rand_core::OsRng));
    let mut registry = Registry::default();
    let base: u64 = 1 + rand_core::RngCore::next_u32(&mut rand_core::OsRng) as u64 * 1000;
    let mut handles: Vec<NetHandle> = Vec::new();
    let mut targeted = None;
    let mut first: Option<Multiaddr> = None;
    for (i, key) in keys.iter().enumerate() {
        let mut device =
            SoftwareDevice::in_memory(candor_core::PeerId::from_ed25519(&key.public()), 1);
        let cert = enrol(
            &authority,
            &mut registry,
            key,
            &mut device,
            scheme,
            1,
            system_clock(),
        )
        .unwrap();
        let (node, _) =
            ListingNode::open(device, ListingStore::in_memory().unwrap(), cert).unwrap();
        let service: Arc<dyn Service> = if i == cheater {
            let t = Arc::new(Targeted {
                inner: Arc::new(ServeListing(CheatingNode::new(
                    node,
                    strategy.clone(),
                    item.clone(),
                ))),
                seller: Mutex::new(None),
                readers: Mutex::new(Vec::new()),
                named: Mutex::new(Vec::new()),
            });
            targeted = Some(t.clone());
            t
        } else {
            Arc::new(ListingService::new(Arc::new(node), system_clock))
        };
        let config = NetConfig {
            listen: vec![format!("/memory/{}", base + i as u64).parse().unwrap()],
            bootstrap: first.iter().cloned().collect(),
            k: K,
            memory: true,
            request_timeout: Duration::from_secs(20),
            trusted: vec![authority.public()],
            ..NetConfig::default()
        };
        let (h, addrs) = start(identity(key).unwrap(), config, Some(service))
            .await
            .unwrap();
        if first.is_none() {
            first = Some(with_peer(&addrs[0], h.peer()));
        }
        handles.push(h);
    }
    for _ in 0..2 {
        for h in &handles {
            let _ = h.bootstrap().await;
        }
    }
    Overlay {
        handles,
        trusted: vec![authority.public()],
        cheater,
        targeted: targeted.unwrap(),
    }
}

fn market(o: &Overlay, i: usize) -> Market<SoftwareDevice> {
    Market::new(
        o.handles[i].clone(),
        None,
        o.trusted.clone(),
        tokio::runtime::Handle::current(),
    )
}

/// An offer for `item` at `price` by a fresh seller, valid for an hour.
fn an_offer(item: &Item, price: u64) -> SignedOffer {
    let seller = Keypair::generate(&mut rand_core::OsRng);
    SignedOffer::sign(
        &seller,
        item,
        price,
        Currency::EUR,
        1,
        system_clock() + 3600,
        1,
    )
}

/// Publishes `offer` through `m` to Δ(d), which must hold `node`; `node`'s receipt.
fn publish_at(
    m: &Market<SoftwareDevice>,
    offer: &SignedOffer,
    node: libp2p::PeerId,
) -> PublishReceipt {
    let published = m.publish(offer, system_clock()).unwrap();
    assert!(published.listing_nodes.contains(&node));
    published
        .results
        .iter()
        .find(|(p, _)| *p == node)
        .map(|(_, r)| r.clone().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_single_out_the_sellers_monitor_and_readers_remember() {
    let item = Item::new("readers: a lamp with a green shade").unwrap();
    let o = Arc::new(overlay(&item, Scheme::Basic, Strategy::GapOverReceipt).await);
    let cheater_id = o.handles[o.cheater].peer();
    let ids: Vec<libp2p::PeerId> = o.handles.iter().map(|h| h.peer()).collect();
    // Seller and buyer: two nodes other than the cheater.
    let others: Vec<usize> = (0..N).filter(|i| *i != o.cheater).collect();
    let (seller_at, buyer_at) = (others[0], others[1]);
    *o.targeted.seller.lock().unwrap() = Some(ids[seller_at]);
    let offer = an_offer(&item, 120);
    let o2 = o.clone();
    tokio::task::spawn_blocking(move || {
        let o = o2;
        let sm = market(&o, seller_at);
        let receipt = publish_at(&sm, &offer, cheater_id);
        // The cheater now covers the seller's receipted value with a gap notice for buyers.
        o.targeted.inner.0.prepare(system_clock());
        let mine = vec![(offer.clone(), receipt.clone())];

        // A buyer sees a gap, not an accusation: alone it cannot tell a crash from a cheat.
        let bm = market(&o, buyer_at);
        let seen = bm.retrieve(&item, system_clock()).unwrap();
        // The reader looked Δ(d) up itself, and found what the buyer's node finds.
        assert_eq!(seen.listing_nodes, bm.listing_nodes(&item).unwrap());
        let (_, r) = seen.reports.iter().find(|(p, _)| *p == cheater_id).unwrap();
        let NodeReport::Verified(out) = r else {
            panic!("{r:?}")
        };
        assert_eq!(out.gaps(), 1);
        assert!(out.offers().is_empty());
        // What it saw signed is kept: the gap notice.
        let kept = bm.memory.recall(&to_candor_peer(&cheater_id));
        assert_eq!(kept, out.statements());
        assert_eq!(kept.len(), 1);

        // Reading under the seller's own PeerId, the monitor is singled out: refused, which
        // leaves no transferable trace.
        let mut linkable = market(&o, seller_at);
        linkable.fresh_reads = false;
        let r = linkable.monitor(cheater_id, &item, &mine);
        assert!(
            matches!(&r, NodeReport::Misbehaviour(Misbehaviour::Refused(_))),
            "{r:?}"
        );

        // Under a fresh identity (the default) the node cannot tell the monitor from a buyer:
        // it shows the buyers' view, and the seller holds transferable evidence.
        for _ in 0..2 {
            let r = sm.monitor(cheater_id, &item, &mine);
            let NodeReport::Misbehaviour(Misbehaviour::Evidence(e)) = r else {
                panic!("{r:?}")
            };
            assert_eq!(e.kind(), Kind::GapOverReceipt);
            let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
            e.verify(&o.trusted).unwrap();
        }

        // A reader that saw the seller's entry before (as a remembered statement) is not
        // shown the gap over it without evidence either.
        let PublishReceipt::Entry(rc) = &receipt else {
            panic!()
        };
        bm.memory
            .remember(&to_candor_peer(&cheater_id), vec![rc.inc.clone()]);
        let again = bm.retrieve(&item, system_clock()).unwrap();
        let (_, r) = again
            .reports
            .iter()
            .find(|(p, _)| *p == cheater_id)
            .unwrap();
        let NodeReport::Misbehaviour(m) = r else {
            panic!("{r:?}")
        };
        assert_eq!(m.kind(), Kind::GapOverReceipt);
    })
    .await
    .unwrap();

    // Who read: one Read per run; the linkable run came from the seller's PeerId, and every
    // other run from an identity of its own, none of them a node's.
    let readers = o.targeted.readers.lock().unwrap().clone();
    assert_eq!(readers.len(), 5, "{readers:?}");
    assert_eq!(
        readers.iter().filter(|p| **p == ids[seller_at]).count(),
        1,
        "only the linkable monitor reads as the seller"
    );
    let fresh: Vec<_> = readers.iter().filter(|p| !ids.contains(p)).collect();
    assert_eq!(fresh.len(), 4);
    let distinct: std::collections::HashSet<_> = fresh.iter().collect();
    assert_eq!(distinct.len(), 4, "every run reads under its own identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_names_the_certificate_as_buyers_do() {
    // Scheme M: a head leaves out the certificate a request names. A monitor that sent no
    // name where buyers do would be told apart by its request alone, so it names it too, for
    // a node of Δ(d) and for one outside it alike.
    let item = Item::new("readers: a clock that chimes at noon").unwrap();
    let o = Arc::new(overlay(&item, Scheme::Merkle, Strategy::Honest).await);
    let node_id = o.handles[o.cheater].peer();
    let others: Vec<usize> = (0..N).filter(|i| *i != o.cheater).collect();
    let (seller_at, buyer_at) = (others[0], others[1]);
    let offer = an_offer(&item, 40);
    let o2 = o.clone();
    tokio::task::spawn_blocking(move || {
        let o = o2;
        let sm = market(&o, seller_at);
        let receipt = publish_at(&sm, &offer, node_id);
        let mine = vec![(offer.clone(), receipt)];
        let bm = market(&o, buyer_at);
        let seen = bm.retrieve(&item, system_clock()).unwrap();
        let (_, r) = seen.reports.iter().find(|(p, _)| *p == node_id).unwrap();
        assert!(matches!(r, NodeReport::Verified(_)), "{r:?}");
        let r = sm.monitor(node_id, &item, &mine);
        assert!(matches!(r, NodeReport::Verified(_)), "{r:?}");
        // A monitor of the node for an item whose Δ(d) it is not in, from a node that never
        // published there.
        let far = (0..)
            .map(|i| Item::new(&format!("readers: an item others list, #{i}")).unwrap())
            .find(|it| {
                // The node is the farthest of all from it: not a member of its Δ(d).
                let target = KBucketKey::new(dht_key(&it.key()));
                o.handles
                    .iter()
                    .map(|h| h.peer())
                    .max_by_key(|p| target.distance(&KBucketKey::from(*p)))
                    == Some(node_id)
            })
            .unwrap();
        let r = market(&o, others[2]).monitor(node_id, &far, &[]);
        assert!(matches!(r, NodeReport::Verified(_)), "{r:?}");
    })
    .await
    .unwrap();
    let named = o.targeted.named.lock().unwrap().clone();
    assert_eq!(
        named,
        vec![true; 3],
        "every head request names the certificate"
    );
}

//! A foreign libp2p peer (stock Kademlia and ping, no Candor) against a Candor node (issue 9,
//! item 9): its PUT_VALUE and ADD_PROVIDER are not stored (Candor keeps no Kademlia records),
//! and the Candor node answers libp2p ping, so stock clients keep it in their tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candor_core::Keypair;
use candor_net::{dht_key, identity, start, KBucketKey, NetConfig, KAD_PROTOCOL};
use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::kad::{self, store::MemoryStore, Mode, Quorum, Record, RecordKey};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, yamux, StreamProtocol, Swarm, SwarmBuilder, Transport};
use std::time::Duration;

#[derive(NetworkBehaviour)]
struct Foreign {
    kad: kad::Behaviour<MemoryStore>,
    ping: ping::Behaviour,
    identify: identify::Behaviour,
}

/// A stock Kademlia server with ping and identify, on the memory transport.
fn foreign(key: libp2p::identity::Keypair) -> Swarm<Foreign> {
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|k| {
            Ok(MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(k)?)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .unwrap()
        .with_behaviour(|k| {
            let peer = k.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                peer,
                MemoryStore::new(peer),
                kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
            );
            kad.set_mode(Some(Mode::Server));
            Foreign {
                kad,
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(Duration::from_millis(200)),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/js-like/1.0.0".into(),
                    k.public(),
                )),
            }
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

fn memory_port() -> u64 {
    7_000_000 + u64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 100_000)
}

/// An uncertified peer with a PeerId ground to sit closer to an item than the Candor node is
/// in its routing table, yet never a member of Δ(d): the certified node still lists the item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertified_peer_next_to_an_item_is_no_member_of_its_listing_nodes() {
    let key = Keypair::generate(&mut rand_core::OsRng);
    let config = NetConfig {
        listen: vec![format!("/memory/{}", memory_port()).parse().unwrap()],
        memory: true,
        k: 1,
        ..NetConfig::default()
    };
    let (candor, addrs) = start(identity(&key).unwrap(), config, None).await.unwrap();
    let item = dht_key(
        &candor_core::Item::new("an item worth capturing")
            .unwrap()
            .key(),
    );
    let target = KBucketKey::new(item.clone());
    let me = KBucketKey::from(candor.peer());
    // Grind an identity closer to the item than the Candor node.
    let id = loop {
        let k = libp2p::identity::Keypair::generate_ed25519();
        let d = target.distance(&KBucketKey::from(k.public().to_peer_id()));
        if d < target.distance(&me) {
            break k;
        }
    };
    let grinder = id.public().to_peer_id();
    let mut swarm = foreign(id);
    swarm
        .listen_on(format!("/memory/{}", memory_port()).parse().unwrap())
        .unwrap();
    swarm.dial(addrs[0].clone()).unwrap();
    // Connected, identified, asked for a certificate it does not have: it never enters
    // the Candor node's routing table (so no honest node hands it to anyone's lookup).
    let mut connected = false;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        if let Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) =
            tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await
        {
            connected |= peer_id == candor.peer();
        }
    }
    assert!(connected);
    assert_eq!(candor.status().await.unwrap().routing_table, 0);
    let lookup = candor.listing_nodes(&item);
    tokio::pin!(lookup);
    let members = loop {
        tokio::select! {
            r = &mut lookup => break r.unwrap(),
            _ = swarm.select_next_some() => {}
        }
    };
    assert!(!members.contains(&grinder), "{members:?}");
    assert_eq!(members, vec![candor.peer()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_records_are_not_stored_and_ping_is_answered() {
    let key = Keypair::generate(&mut rand_core::OsRng);
    let port = memory_port();
    let config = NetConfig {
        listen: vec![format!("/memory/{port}").parse().unwrap()],
        memory: true,
        ..NetConfig::default()
    };
    let (candor, addrs) = start(identity(&key).unwrap(), config, None).await.unwrap();
    let candor_peer = candor.peer();

    let mut swarm = foreign(libp2p::identity::Keypair::generate_ed25519());
    swarm
        .behaviour_mut()
        .kad
        .add_address(&candor_peer, addrs[0].clone());
    swarm.dial(addrs[0].clone()).unwrap();

    let key_bytes = RecordKey::new(&b"junk the foreign peer wants stored".to_vec());
    let record = Record::new(key_bytes.clone(), vec![0xAB; 1024]);
    let mut put = None;
    let mut get = None;
    let mut pinged = false;
    let mut not_found = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(pinged && not_found) {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .expect("timed out: no pong from the Candor node, or no answer to get_record");
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. }
                if peer_id == candor_peer && put.is_none() =>
            {
                put = Some(swarm.behaviour_mut().kad.put_record_to(
                    record.clone(),
                    std::iter::once(candor_peer),
                    Quorum::One,
                ));
            }
            SwarmEvent::Behaviour(ForeignEvent::Ping(ping::Event {
                peer,
                result: Ok(_),
                ..
            })) if peer == candor_peer => pinged = true,
            SwarmEvent::Behaviour(ForeignEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                ..
            })) => {
                if Some(id) == put && step.last {
                    // Whatever the put came to, ask for the record back: a node that stored
                    // it would return it.
                    let _ = result;
                    swarm.behaviour_mut().kad.remove_record(&key_bytes);
                    get = Some(swarm.behaviour_mut().kad.get_record(key_bytes.clone()));
                } else if Some(id) == get {
                    match result {
                        kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(r))) => {
                            panic!(
                                "the Candor node served a foreign record: {:?}",
                                r.record.key
                            )
                        }
                        kad::QueryResult::GetRecord(_) if step.last => not_found = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(candor.status().await.unwrap().records, 0);
}

//! Reads under a fresh identity. Every retrieve and every monitoring run of a [`Market`]
//! goes out from a libp2p identity made for it alone and dropped after it — the lookup of
//! Δ(d) included, so a node of Δ(d) cannot link the read to a lookup by the user's own node —
//! and a listing node cannot tell a seller's monitor from any buyer by its PeerId, nor link
//! two reads to one user (ARCHITECTURE.md, "Readers a node cannot single out"). A reader only
//! asks: Kademlia in client mode (seeded with the peers its node knows closest to the key),
//! the retrieve protocol outbound, no listening, so it never enters anyone's routing table.
//! Like its node, it counts as a member of Δ(d) only a peer whose certificate verifies.
//!
//! The identity is all it hides: the IP address and the timing of a read still show; a user
//! who needs more runs its node behind an anonymising transport.
//!
//! [`Market`]: crate::Market

use crate::codec::BytesCodec;
use crate::members::{Members, MembersReply, Waiting};
use crate::swarm::{Command, NetError, NetHandle, NetStatus, Proto};
use crate::wire::{KAD_PROTOCOL, MAX_RETRIEVE_REQUEST, MAX_RETRIEVE_RESPONSE, RETRIEVE_PROTOCOL};
use candor_core::Encode;
use futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore, KBucketKey, Mode};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How a reader reaches peers: the transport, time limits and trusted authorities of the
/// node it reads for.
#[derive(Debug, Clone)]
pub(crate) struct ReaderConfig {
    pub(crate) memory: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) trusted: Vec<candor_core::PublicKey>,
}

/// Most peers one reader keeps addresses of, and addresses per peer.
const MAX_PEERS: usize = 256;
const MAX_ADDRS: usize = 8;
/// How long a lookup waits for the candidates' certificates.
const CERT_WAIT: Duration = Duration::from_secs(5);

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    retrieve: request_response::Behaviour<BytesCodec>,
}

/// Starts a reader with a fresh identity that knows `addresses` (its node's peers closest to
/// what it will read, and the peers it will read from); `me` is its node (a member of Δ(d)
/// without a certificate check). The reader stops when every handle on it is dropped.
/// How many times k peers a reader's lookup waits for.
const LOOKUP_MARGIN: usize = 2;

pub(crate) async fn start_reader(
    config: ReaderConfig,
    k: usize,
    me: PeerId,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    certs: HashMap<PeerId, candor_core::SignedCertificate>,
) -> Result<NetHandle, NetError> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let timeout = config.request_timeout;
    let behaviour = move |key: &libp2p::identity::Keypair| {
        let peer = key.public().to_peer_id();
        let mut kcfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kcfg.set_query_timeout(Duration::from_secs(20));
        kcfg.set_periodic_bootstrap_interval(None);
        kcfg.set_caching(kad::Caching::Disabled);
        let mut kad = kad::Behaviour::with_config(peer, MemoryStore::new(peer), kcfg);
        kad.set_mode(Some(Mode::Client));
        Behaviour {
            kad,
            retrieve: request_response::Behaviour::with_codec(
                BytesCodec {
                    max_request: MAX_RETRIEVE_REQUEST,
                    max_response: MAX_RETRIEVE_RESPONSE,
                },
                [(
                    StreamProtocol::new(RETRIEVE_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default()
                    .with_request_timeout(timeout)
                    .with_max_concurrent_streams(64),
            ),
        }
    };
    let mut swarm: Swarm<Behaviour> =
        crate::swarm::build_swarm(key, config.memory, Duration::from_secs(5), behaviour)?;
    let addresses: HashMap<PeerId, Vec<Multiaddr>> = addresses
        .into_iter()
        .take(MAX_PEERS)
        .map(|(p, a)| (p, a.into_iter().take(MAX_ADDRS).collect()))
        .collect();
    for (p, addrs) in &addresses {
        for a in addrs {
            swarm.behaviour_mut().kad.add_address(p, a.clone());
        }
    }
    let peer = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(256);
    let stop = Arc::new(tokio::sync::Notify::new());
    let handle = NetHandle::new(peer, k, tx, stop.clone(), config.clone());
    let task = ReaderTask {
        swarm,
        k,
        me,
        addresses,
        members: {
            let mut m = Members::new(config.trusted);
            for (p, c) in certs {
                m.checked(p, c);
            }
            m
        },
        pending: HashMap::new(),
        certs: HashMap::new(),
        lookups: HashMap::new(),
        waiting: Vec::new(),
    };
    tokio::spawn(task.run(rx, stop));
    Ok(handle)
}

struct ReaderTask {
    swarm: Swarm<Behaviour>,
    k: usize,
    me: PeerId,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    members: Members,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, NetError>>>,
    /// Certificate requests in flight.
    certs: HashMap<OutboundRequestId, PeerId>,
    lookups: HashMap<kad::QueryId, (Vec<u8>, MembersReply)>,
    waiting: Vec<Waiting>,
}

impl ReaderTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, stop: Arc<tokio::sync::Notify>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => self.serve_waiting(),
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = rx.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                _ = stop.notified() => break,
            }
        }
    }

    fn addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addresses.get(peer).cloned().unwrap_or_default()
    }

    fn learn(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty()
            || (self.addresses.len() >= MAX_PEERS && !self.addresses.contains_key(&peer))
        {
            return;
        }
        let e = self.addresses.entry(peer).or_default();
        for a in addrs {
            if e.len() < MAX_ADDRS && !e.contains(&a) {
                e.push(a);
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let not_here = |what: &str| NetError::Lookup(format!("a reader does not {what}"));
        match cmd {
            Command::Request {
                proto: Proto::Retrieve,
                peer,
                bytes,
                reply,
            } => {
                let addrs = self.addrs(&peer);
                let id = self
                    .swarm
                    .behaviour_mut()
                    .retrieve
                    .send_request_with_addresses(&peer, bytes, addrs);
                self.pending.insert(id, reply);
            }
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(not_here("publish")));
            }
            Command::Closest { key, reply } => {
                // The reader needs Δ(d), the k closest certified peers, not Kademlia's 20: the
                // lookup ends once the LOOKUP_MARGIN·k closest it knows have answered (each a
                // fresh connection for a reader), leaving room for peers that show no
                // certificate. Honest nodes list only certified peers.
                let want = std::num::NonZeroUsize::new(
                    (self.k.saturating_mul(LOOKUP_MARGIN)).clamp(1, libp2p::kad::K_VALUE.get()),
                )
                .unwrap_or(libp2p::kad::K_VALUE);
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_n_closest_peers(key.clone(), want);
                self.lookups.insert(id, (key, reply));
            }
            Command::Bootstrap { reply } => {
                let _ = reply.send(Err(not_here("join the overlay")));
            }
            Command::Dial { reply, .. } => {
                let _ = reply.send(Err(not_here("dial")));
            }
            Command::Peers { reply } => {
                let _ = reply.send(Vec::new());
            }
            Command::Seeds { reply, .. } => {
                let _ = reply.send(Vec::new());
            }
            Command::Addresses { reply, peer } => {
                let _ = reply.send(self.addrs(&peer));
            }
            Command::Certificates { peers, reply } => {
                let _ = reply.send(peers.iter().map(|p| self.members.certificate(p)).collect());
            }
            Command::Status { reply } => {
                let _ = reply.send(NetStatus {
                    peer: *self.swarm.local_peer_id(),
                    listen: Vec::new(),
                    connected: self.swarm.connected_peers().count(),
                    routing_table: 0,
                    records: 0,
                    opened: 0,
                });
            }
        }
    }

    fn ask_cert(&mut self, peer: PeerId) {
        if self.members.should_ask(peer, Instant::now()) {
            let addrs = self.addrs(&peer);
            let id = self
                .swarm
                .behaviour_mut()
                .retrieve
                .send_request_with_addresses(
                    &peer,
                    candor_listing::Query::Certificate.to_bytes(),
                    addrs,
                );
            self.certs.insert(id, peer);
        }
    }

    /// Answers the lookups whose members are known (or whose time to wait is over).
    fn serve_waiting(&mut self) {
        let ask = self
            .members
            .serve(&mut self.waiting, self.k, self.me, Instant::now());
        for p in ask {
            self.ask_cert(p);
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        use request_response::{Event, Message, OutboundFailure};
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(r),
                step,
                ..
            })) => {
                if !step.last {
                    return;
                }
                let Some((key, reply)) = self.lookups.remove(&id) else {
                    return;
                };
                let found = match r {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let mut peers: Vec<PeerId> = Vec::new();
                for p in found {
                    self.learn(p.peer_id, p.addrs);
                    peers.push(p.peer_id);
                }
                // The node itself is a candidate too, as in its own lookups.
                peers.push(self.me);
                let target = KBucketKey::new(key);
                peers.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
                peers.dedup();
                self.waiting
                    .push((peers, reply, Instant::now() + CERT_WAIT));
                self.serve_waiting();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Retrieve(Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            })) => {
                if let Some(peer) = self.certs.remove(&request_id) {
                    self.members
                        .on_answer(peer, Some(&response), Instant::now());
                    self.serve_waiting();
                } else if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Retrieve(Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            })) => {
                if let Some(peer) = self.certs.remove(&request_id) {
                    self.members.on_answer(peer, None, Instant::now());
                    self.serve_waiting();
                } else if let Some(reply) = self.pending.remove(&request_id) {
                    let err = match error {
                        OutboundFailure::Timeout => NetError::Timeout(peer),
                        other => NetError::Unreachable {
                            peer,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(err));
                }
            }
            _ => {}
        }
    }
}

impl NetHandle {
    /// A reader with a fresh identity, to read `key`'s listing nodes and `peers`: seeded with
    /// the peers this node knows closest to `key` and the addresses it knows for `peers`.
    /// Reads (and its lookup of Δ(d)) cannot be told, by PeerId, from any other reader's. It
    /// stops when its last handle is dropped.
    pub async fn reader(&self, key: &[u8], peers: &[PeerId]) -> Result<NetHandle, NetError> {
        let mut addresses: HashMap<PeerId, Vec<Multiaddr>> =
            self.seeds(key.to_vec()).await?.into_iter().collect();
        for p in peers.iter().take(MAX_PEERS) {
            let a = self.addresses(*p).await?;
            addresses.entry(*p).or_default().extend(a);
        }
        // The certificates this node already checked for them: the reader need not ask
        // again (a round trip and a check per peer), and what it shows no peer changes.
        let ids: Vec<PeerId> = addresses.keys().copied().collect();
        let certs: HashMap<PeerId, candor_core::SignedCertificate> = ids
            .iter()
            .zip(self.certificates(&ids).await?)
            .filter_map(|(p, c)| Some((*p, c?)))
            .collect();
        start_reader(
            self.reader_config(),
            self.k(),
            self.peer(),
            addresses,
            certs,
        )
        .await
    }
}

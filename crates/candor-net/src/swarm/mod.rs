//! The libp2p node: Kademlia (server mode), identify feeding listen addresses to Kademlia,
//! and Candor's three request-response protocols. One task owns the swarm; everything else
//! talks to it through a bounded command channel.

use crate::codec::BytesCodec;
use crate::wire::{
    PublishRequest, PublishResponse, RefusalCode, Refused, RetrieveAnswer, KAD_PROTOCOL,
    MAX_PUBLISH_REQUEST, MAX_PUBLISH_RESPONSE, MAX_RETRIEVE_REQUEST, MAX_RETRIEVE_RESPONSE,
    PUBLISH_PROTOCOL, REISSUE_PROTOCOL, RETRIEVE_PROTOCOL,
};
use candor_core::{Decode, Encode};
use candor_listing::Query;
use futures::StreamExt;
use libp2p::core::transport::{MemoryTransport, Transport};
use libp2p::core::upgrade::Version;
use libp2p::kad::{self, store::MemoryStore, KBucketKey, Mode};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

mod task;
use task::Task;

/// How often a joined node looks itself up again, keeping the peers next to it (the Δ of
/// the keys near it) current; each node adds up to a minute, from its PeerId, so that nodes
/// started together do not refresh together.
const REFRESH_EVERY: Duration = Duration::from_secs(300);

/// Buckets, counted from the farthest, that a refresh also looks into with a random key (the
/// farthest holds half the keyspace): a self-lookup alone meets mostly peers near this node.
const FAR_BUCKETS: u32 = 2;

/// How a node joins and behaves in the overlay.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Addresses to listen on (`/ip4/127.0.0.1/tcp/0`, or `/memory/N` with `memory`).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through, each ending in `/p2p/<PeerId>`.
    pub bootstrap: Vec<Multiaddr>,
    /// |Δ(d)|: how many closest peers list an item.
    pub k: usize,
    /// Time limit of one request.
    pub request_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Use libp2p's in-memory transport (tests, simulations) instead of TCP.
    pub memory: bool,
    /// `Read`s (retrieve heads) a peer may ask for per second (burst: twice that).
    pub reads_per_second: f64,
    /// Other requests that cost the node work (pages, steps, proofs, publishes, re-issues)
    /// a peer may make per second (burst: twice that).
    pub work_per_second: f64,
    /// Requests being answered at once, from all peers; more are refused as busy.
    pub max_inflight: usize,
    /// Authorities whose certificates make a peer a member of Δ(d) (empty: any authority whose
    /// signature on the certificate verifies; the certificate must name the peer either way).
    pub trusted: Vec<candor_core::PublicKey>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            k: 3,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            memory: false,
            reads_per_second: 20.0,
            work_per_second: 200.0,
            max_inflight: 64,
            trusted: Vec::new(),
        }
    }
}

/// A network operation failed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum NetError {
    /// The node could not be reached or the stream failed.
    #[error("peer {peer} unreachable: {reason}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The request timed out.
    #[error("peer {0} did not answer in time")]
    Timeout(PeerId),
    /// The local node has stopped.
    #[error("the network task has stopped")]
    Stopped,
    /// A lookup found no peer.
    #[error("lookup failed: {0}")]
    Lookup(String),
    /// Setting up the transport or listening failed.
    #[error("network setup: {0}")]
    Setup(String),
}

/// Which of Candor's protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// Publish an offer.
    Publish,
    /// Paged retrieve.
    Retrieve,
    /// Receipt re-issue.
    Reissue,
}

/// What a node serves to other peers (its listing node), called off the network task.
pub trait Service: Send + Sync + 'static {
    /// Answers a publish (an encoded `PublishRequest`; the offer's key is already checked to
    /// be one this node is responsible for). Returns an encoded `PublishResponse`.
    fn publish(&self, from: PeerId, request: PublishRequest) -> PublishResponse;
    /// Answers a retrieve request. Returns the answer.
    fn retrieve(&self, from: PeerId, request: Query) -> RetrieveAnswer;
    /// Answers a receipt re-issue (an encoded offer). Returns an encoded `PublishResponse`.
    fn reissue(&self, from: PeerId, request: PublishRequest) -> PublishResponse;
    /// The node's certificate, shown to every peer that asks (answered on the network task,
    /// outside the rate limits: a busy node is still counted as a member of Δ(d)).
    fn certificate(&self) -> Option<candor_core::SignedCertificate>;
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
    /// libp2p ping: stock Kademlia clients drop peers that do not answer it.
    ping: libp2p::ping::Behaviour,
    publish: request_response::Behaviour<BytesCodec>,
    retrieve: request_response::Behaviour<BytesCodec>,
    reissue: request_response::Behaviour<BytesCodec>,
}

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

pub(crate) enum Command {
    Request {
        proto: Proto,
        peer: PeerId,
        bytes: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    Closest {
        key: Vec<u8>,
        reply: Reply<Vec<PeerId>>,
    },
    /// The certificates the given peers showed (None: none valid, or not asked).
    Certificates {
        peers: Vec<PeerId>,
        reply: oneshot::Sender<Vec<Option<candor_core::SignedCertificate>>>,
    },
    Status {
        reply: oneshot::Sender<NetStatus>,
    },
    Bootstrap {
        reply: Reply<()>,
    },
    /// Dials an address (`…/p2p/<PeerId>`); the peer joins the routing table once its
    /// certificate verifies.
    Dial {
        addr: Multiaddr,
        reply: Reply<()>,
    },
    /// The peers in the routing table (each certified), with addresses.
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    /// The certified peers this node knows closest to a key, with addresses (a reader's
    /// starting points).
    Seeds {
        key: Vec<u8>,
        reply: oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>,
    },
    /// The addresses this node knows for a peer (its routing table's).
    Addresses {
        peer: PeerId,
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
}

/// A peer in the routing table.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its PeerId.
    pub peer: PeerId,
    /// Its addresses, as the routing table keeps them.
    pub addrs: Vec<Multiaddr>,
    /// Whether a connection to it is open now.
    pub connected: bool,
}

/// What the node knows of the overlay.
#[derive(Debug, Clone)]
pub struct NetStatus {
    /// This node.
    pub peer: PeerId,
    /// Where it listens.
    pub listen: Vec<Multiaddr>,
    /// Peers connected now.
    pub connected: usize,
    /// Peers in the routing table.
    pub routing_table: usize,
    /// Kademlia records and provider records held (Candor stores none: always 0).
    pub records: usize,
    /// Connections established since the node started (inbound and outbound).
    pub opened: u64,
}

/// A handle on a running node. Cheap to clone; the node stops when every handle is dropped
/// or [`NetHandle::shutdown`] is called.
#[derive(Clone)]
pub struct NetHandle {
    peer: PeerId,
    k: usize,
    tx: mpsc::Sender<Command>,
    stop: Arc<tokio::sync::Notify>,
    reader: crate::reader::ReaderConfig,
}

impl std::fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetHandle")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl NetHandle {
    pub(crate) fn new(
        peer: PeerId,
        k: usize,
        tx: mpsc::Sender<Command>,
        stop: Arc<tokio::sync::Notify>,
        reader: crate::reader::ReaderConfig,
    ) -> Self {
        Self {
            peer,
            k,
            tx,
            stop,
            reader,
        }
    }

    pub(crate) fn reader_config(&self) -> crate::reader::ReaderConfig {
        self.reader.clone()
    }

    /// The addresses this node knows for `peer` (none if it is not in the routing table).
    pub async fn addresses(&self, peer: PeerId) -> Result<Vec<Multiaddr>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Addresses { peer, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Dials `addr` (ending in `/p2p/<PeerId>`); the peer counts once its certificate
    /// verifies.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Dial { addr, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// The certified peers this node knows closest to `key` (at most 20), with addresses.
    pub(crate) async fn seeds(
        &self,
        key: Vec<u8>,
    ) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Seeds { key, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// The certified peers in the routing table, with their addresses.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Peers { reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// This node's PeerId.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// |Δ(d)|.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Sends a request on `proto` and waits for the answer's bytes.
    pub async fn request(
        &self,
        proto: Proto,
        peer: PeerId,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Request {
                proto,
                peer,
                bytes,
                reply,
            })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// The k peers closest to `key` in the whole overlay (this node included if it is one of
    /// them), closest first: Δ(d).
    pub async fn listing_nodes(&self, key: &[u8]) -> Result<Vec<PeerId>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Closest {
                key: key.to_vec(),
                reply,
            })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// The certificates `peers` showed this handle's node (in order; None where a peer showed
    /// none that verifies): the members of a Δ(d) it selected all have one.
    pub async fn certificates(
        &self,
        peers: &[PeerId],
    ) -> Result<Vec<Option<candor_core::SignedCertificate>>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Certificates {
                peers: peers.to_vec(),
                reply,
            })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// What the node knows of the overlay.
    pub async fn status(&self) -> Result<NetStatus, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Status { reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Joins the overlay: looks this node up through the peers it knows and waits for the end.
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Bootstrap { reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Stops the node.
    pub fn shutdown(&self) {
        self.stop.notify_one();
    }
}

fn rr(
    proto: &'static str,
    max_request: usize,
    max_response: usize,
    timeout: Duration,
) -> request_response::Behaviour<BytesCodec> {
    request_response::Behaviour::with_codec(
        BytesCodec {
            max_request,
            max_response,
        },
        [(StreamProtocol::new(proto), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(64),
    )
}

/// A swarm with identity `key` over TCP (or libp2p's memory transport), noise and yamux,
/// running `behaviour`, closing connections idle for `idle`.
pub(crate) fn build_swarm<B: NetworkBehaviour>(
    key: libp2p::identity::Keypair,
    memory: bool,
    idle: Duration,
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> Result<Swarm<B>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let swarm = if memory {
        SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(
                |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(MemoryTransport::default()
                        .upgrade(Version::V1)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default())
                        .boxed())
                },
            )
            .map_err(|e| setup(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()
    } else {
        SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| setup(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()
    };
    Ok(swarm)
}

/// Starts a node with identity `key` (the node key whose PeerId the device certificate
/// binds), serving `service` if it is a listing node. Returns once it listens.
pub async fn start(
    key: libp2p::identity::Keypair,
    config: NetConfig,
    service: Option<Arc<dyn Service>>,
) -> Result<(NetHandle, Vec<Multiaddr>), NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let timeout = config.request_timeout;
    let behaviour = |key: &libp2p::identity::Keypair| {
        let peer = key.public().to_peer_id();
        let mut kcfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kcfg.set_query_timeout(Duration::from_secs(30));
        // No periodic full bootstrap (a lookup per bucket, ~log2 N × 20 connections): the
        // task refreshes with a self-lookup and a few far lookups instead ([`REFRESH_EVERY`]).
        kcfg.set_periodic_bootstrap_interval(None);
        // Candor keeps no Kademlia records or providers: what foreign peers PUT or ADD is
        // handed to the task (which drops it), never stored; idle inbound streams time out.
        kcfg.set_record_filtering(kad::StoreInserts::FilterBoth);
        kcfg.set_caching(kad::Caching::Disabled);
        kcfg.set_substreams_timeout(Duration::from_secs(10));
        // A peer enters the routing table only once its certificate verified (the task adds
        // it): honest nodes then never hand uncertified peers to anyone's lookups.
        kcfg.set_kbucket_inserts(kad::BucketInserts::Manual);
        let store_cfg = kad::store::MemoryStoreConfig {
            max_records: 0,
            max_provided_keys: 0,
            max_providers_per_key: 0,
            ..Default::default()
        };
        let mut kad =
            kad::Behaviour::with_config(peer, MemoryStore::with_config(peer, store_cfg), kcfg);
        // Loopback and memory addresses are never confirmed external: stay a server.
        kad.set_mode(Some(Mode::Server));
        Behaviour {
            kad,
            identify: identify::Behaviour::new(identify::Config::new(
                "/candor/id/1.0.0".into(),
                key.public(),
            )),
            ping: libp2p::ping::Behaviour::default(),
            publish: rr(
                PUBLISH_PROTOCOL,
                MAX_PUBLISH_REQUEST,
                MAX_PUBLISH_RESPONSE,
                timeout,
            ),
            retrieve: rr(
                RETRIEVE_PROTOCOL,
                MAX_RETRIEVE_REQUEST,
                MAX_RETRIEVE_RESPONSE,
                timeout,
            ),
            reissue: rr(
                REISSUE_PROTOCOL,
                MAX_PUBLISH_REQUEST,
                MAX_PUBLISH_RESPONSE,
                timeout,
            ),
        }
    };
    let mut swarm: Swarm<Behaviour> =
        build_swarm(key, config.memory, config.idle_timeout, behaviour)?;
    for addr in &config.listen {
        if !config.memory {
            crate::limits::refuse_taken_port(addr)?;
        }
        swarm.listen_on(addr.clone()).map_err(|e| setup(&e))?;
    }
    // Wait for the listeners to be up, so callers can hand out addresses.
    let mut listening = Vec::new();
    while listening.len() < config.listen.len() {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => listening.push(address),
            SwarmEvent::ListenerError { error, .. } => return Err(setup(&error)),
            SwarmEvent::ListenerClosed { reason: Err(e), .. } => return Err(setup(&e)),
            _ => {}
        }
    }
    for addr in &config.bootstrap {
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, %e, "cannot dial bootstrap peer");
        }
    }
    let peer = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(1024);
    let stop = Arc::new(tokio::sync::Notify::new());
    let handle = NetHandle::new(
        peer,
        config.k.max(1),
        tx,
        stop.clone(),
        crate::reader::ReaderConfig {
            memory: config.memory,
            request_timeout: config.request_timeout,
            trusted: config.trusted.clone(),
        },
    );
    let own_cert = service
        .as_ref()
        .and_then(|s| s.certificate())
        .map(|c| RetrieveAnswer::Answer(c.to_bytes()).to_bytes());
    let task = Task {
        swarm,
        k: config.k.max(1),
        service,
        limits: crate::limits::Limits::new(config.reads_per_second, config.work_per_second),
        inflight: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        max_inflight: config.max_inflight.max(1),
        pending: HashMap::new(),
        queries: HashMap::new(),
        members: crate::members::Members::new(config.trusted.clone()),
        own_cert,
        addrs: HashMap::new(),
        cert_requests: HashMap::new(),
        waiting: Vec::new(),
        bootstraps: HashMap::new(),
        opened: 0,
    };
    tokio::spawn(task.run(rx, stop));
    Ok((handle, listening))
}

/// The `/p2p/<peer>` form of an address.
pub fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.clone()
    } else {
        addr.clone().with(Protocol::P2p(peer))
    }
}

/// Converts a Candor node key into a libp2p identity (same ed25519 key, same PeerId).
pub fn identity(key: &candor_core::Keypair) -> Result<libp2p::identity::Keypair, NetError> {
    libp2p::identity::Keypair::ed25519_from_bytes(key.secret_bytes())
        .map_err(|e| NetError::Setup(e.to_string()))
}

/// Converts a libp2p PeerId into Candor's (the same bytes). A PeerId longer than 64 bytes
/// (not an ed25519 identity) maps to an id no certificate can name.
pub fn to_candor_peer(p: &PeerId) -> candor_core::PeerId {
    let bytes = p.to_bytes();
    candor_core::PeerId::from_bytes(&bytes)
        .unwrap_or_else(|_| candor_core::PeerId::from_ed25519(&candor_core::PublicKey([0; 32])))
}

/// Converts Candor's PeerId into libp2p's.
pub fn to_libp2p_peer(p: &candor_core::PeerId) -> Option<PeerId> {
    PeerId::from_bytes(p.as_bytes()).ok()
}

/// Δ(d)'s key: the item key's bytes.
pub fn dht_key(item: &candor_core::ItemKey) -> Vec<u8> {
    item.0.as_bytes().to_vec()
}

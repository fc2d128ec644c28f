//! Reads under a fresh identity. Every retrieve and every monitoring run of a [`Market`]
//! goes out from a libp2p identity made for it alone and dropped after it, so a listing node
//! cannot tell a seller's monitor from any buyer by its PeerId, nor link two reads to one
//! user (ARCHITECTURE.md, "Readers a node cannot single out"). A reader only asks: it speaks
//! the retrieve protocol outbound, listens nowhere and runs no Kademlia, so it never enters
//! anyone's routing table.
//!
//! The identity is all it hides: the IP address and the timing of a read still show, which is
//! why the daemon jitters its monitoring; a user who needs more runs its node behind an
//! anonymising transport.
//!
//! [`Market`]: crate::Market

use crate::codec::BytesCodec;
use crate::swarm::{Command, NetError, NetHandle, NetStatus, Proto};
use crate::wire::{MAX_RETRIEVE_REQUEST, MAX_RETRIEVE_RESPONSE, RETRIEVE_PROTOCOL};
use futures::StreamExt;
use libp2p::core::transport::{MemoryTransport, Transport};
use libp2p::core::upgrade::Version;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How a reader reaches peers: the transport and time limits of the node it reads for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReaderConfig {
    pub(crate) memory: bool,
    pub(crate) request_timeout: Duration,
}

/// Most peers one reader is told addresses of, and addresses per peer.
const MAX_PEERS: usize = 64;
const MAX_ADDRS: usize = 8;

type Behaviour = request_response::Behaviour<BytesCodec>;

/// Starts a reader with a fresh identity that knows `addresses` (the peers it may ask).
/// The reader stops when every handle on it is dropped.
pub(crate) async fn start_reader(
    config: ReaderConfig,
    k: usize,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
) -> Result<NetHandle, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let key = libp2p::identity::Keypair::generate_ed25519();
    let timeout = config.request_timeout;
    let behaviour = move |_: &libp2p::identity::Keypair| {
        request_response::Behaviour::with_codec(
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
        )
    };
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(5));
    let swarm: Swarm<Behaviour> = if config.memory {
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
            .with_swarm_config(idle)
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
            .with_swarm_config(idle)
            .build()
    };
    let peer = *swarm.local_peer_id();
    let addresses = addresses
        .into_iter()
        .take(MAX_PEERS)
        .map(|(p, a)| (p, a.into_iter().take(MAX_ADDRS).collect()))
        .collect();
    let (tx, rx) = mpsc::channel(256);
    let stop = Arc::new(tokio::sync::Notify::new());
    let handle = NetHandle::new(peer, k, tx, stop.clone(), config);
    let task = ReaderTask {
        swarm,
        addresses,
        pending: HashMap::new(),
    };
    tokio::spawn(task.run(rx, stop));
    Ok(handle)
}

struct ReaderTask {
    swarm: Swarm<Behaviour>,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, NetError>>>,
}

impl ReaderTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, stop: Arc<tokio::sync::Notify>) {
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = rx.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                _ = stop.notified() => break,
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
                let addrs = self.addresses.get(&peer).cloned().unwrap_or_default();
                let id = self
                    .swarm
                    .behaviour_mut()
                    .send_request_with_addresses(&peer, bytes, addrs);
                self.pending.insert(id, reply);
            }
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(not_here("publish")));
            }
            Command::Closest { reply, .. } => {
                let _ = reply.send(Err(not_here("look up peers")));
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
            Command::Addresses { reply, peer } => {
                let _ = reply.send(self.addresses.get(&peer).cloned().unwrap_or_default());
            }
            Command::Status { reply } => {
                let _ = reply.send(NetStatus {
                    peer: *self.swarm.local_peer_id(),
                    listen: Vec::new(),
                    connected: self.swarm.connected_peers().count(),
                    routing_table: 0,
                    records: 0,
                });
            }
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<request_response::Event<Vec<u8>, Vec<u8>>>) {
        use request_response::{Event, Message, OutboundFailure};
        match ev {
            SwarmEvent::Behaviour(Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            SwarmEvent::Behaviour(Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                if let Some(reply) = self.pending.remove(&request_id) {
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
    /// A reader with a fresh identity for `peers` (their addresses as this node knows them):
    /// reads sent through it cannot be told, by PeerId, from any other reader's. It stops when
    /// its last handle is dropped.
    pub async fn reader(&self, peers: &[PeerId]) -> Result<NetHandle, NetError> {
        let mut addresses = HashMap::new();
        for p in peers.iter().take(MAX_PEERS) {
            addresses.insert(*p, self.addresses(*p).await?);
        }
        start_reader(self.reader_config(), self.k(), addresses).await
    }
}

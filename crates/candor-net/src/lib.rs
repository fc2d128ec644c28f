//! # candor-net
//!
//! Candor on a real overlay: rust-libp2p with TCP (or the in-memory transport for tests),
//! noise, yamux; Kademlia in server mode, with identify feeding listen addresses into the
//! routing table; and three request-response protocols, each with a versioned id and a
//! length-prefixed codec with hard size limits:
//!
//! | protocol | request | answer |
//! |---|---|---|
//! | `/candor/publish/1.0.0` | a signed offer | certificate + receipt, or a typed refusal |
//! | `/candor/retrieve/1.0.0` | head (item, nonce) or page request | head, page, or refusal |
//! | `/candor/reissue/1.0.0` | a signed offer the node counted | its receipt again |
//!
//! Δ(d), the listing nodes of item d, are the k peers closest to d's key
//! ([`NetHandle::listing_nodes`]); a node accepts a publish only for keys it is among the k
//! closest to, as far as its routing table knows, and refuses others with
//! `not-responsible`. Reads (retrieve heads) are rate-limited per peer.
//!
//! [`RemoteListing`] makes a remote node a `candor_listing::Listing`, so the seller's and the
//! buyer's checks run over the network exactly as in process.

mod client;
mod codec;
mod limits;
mod market;
mod members;
mod memory;
mod reader;
mod service;
mod swarm;
mod wire;

pub use client::RemoteListing;
pub use libp2p::kad::KBucketKey;
pub use libp2p::multiaddr::{Error as MultiaddrError, Protocol};
pub use libp2p::{Multiaddr, PeerId};
pub use market::{short, Market, NodeReport, PublishReport, RetrieveReport};
pub use memory::{
    merge_statements, Memory, Recent, MAX_NODES, MAX_STATEMENTS_PER_COUNTER,
    MAX_STATEMENTS_PER_NODE,
};
pub use service::{system_clock, ListingService, ServeListing};
pub use swarm::{
    dht_key, identity, start, to_candor_peer, to_libp2p_peer, with_peer, NetConfig, NetError,
    NetHandle, NetStatus, PeerInfo, Proto, Service,
};
pub use wire::{
    PublishRequest, PublishResponse, RefusalCode, Refused, RetrieveAnswer, KAD_PROTOCOL,
    MAX_PUBLISH_REQUEST, MAX_PUBLISH_RESPONSE, MAX_RETRIEVE_REQUEST, MAX_RETRIEVE_RESPONSE,
    PUBLISH_PROTOCOL, REISSUE_PROTOCOL, RETRIEVE_PROTOCOL,
};

//! What a node refuses before it does any work: requests over a peer's rate, and a listen
//! port another node already holds.

use crate::swarm::NetError;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most peers whose buckets are kept (idle ones are forgotten first).
const MAX_BUCKETS: usize = 10_000;

/// Token buckets per peer: one for `Read`s (device signatures), one for other work.
#[derive(Debug)]
pub(crate) struct Limits {
    reads: f64,
    work: f64,
    buckets: HashMap<(PeerId, bool), (f64, Instant)>,
}

impl Limits {
    /// `reads` `Read`s and `work` other requests per second per peer (bursts of twice that).
    pub(crate) fn new(reads: f64, work: f64) -> Self {
        Self {
            reads,
            work,
            buckets: HashMap::new(),
        }
    }

    /// Whether `peer` may make one more request of its kind (a `Read`, or other work) now.
    pub(crate) fn allow(&mut self, peer: PeerId, read: bool) -> bool {
        let now = Instant::now();
        if self.buckets.len() > MAX_BUCKETS {
            self.buckets
                .retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(10));
        }
        let rate = if read { self.reads } else { self.work };
        let burst = rate * 2.0;
        let (tokens, last) = self.buckets.entry((peer, read)).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// libp2p's TCP listeners set SO_REUSEPORT, so a second node could listen on a port another
/// node already uses and take half its connections. A plain bind of a fixed port first (no
/// SO_REUSEPORT: it fails while any socket listens there) refuses that with a clear error.
pub(crate) fn refuse_taken_port(addr: &Multiaddr) -> Result<(), NetError> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NetError::Setup(format!(
            "{addr}: port {port} is already in use (another candor node, or another program); pick another port or stop the other node"
        ))),
        Err(e) => Err(NetError::Setup(format!("{addr}: {e}"))),
    }
}

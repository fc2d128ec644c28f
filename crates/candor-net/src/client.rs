//! Talking to a remote listing node through the overlay, with the same checks as in process:
//! [`RemoteListing`] implements `candor_listing::Listing`, so `publish_to`, `retrieve_from`
//! and `monitor` run unchanged over the network: it carries each answer's bytes as the node
//! sent them, for the checker to decode as the node's certificate says.

use crate::swarm::{to_candor_peer, NetError, NetHandle, Proto};
use crate::wire::{PublishRequest, PublishResponse, RefusalCode, RetrieveAnswer};
use candor_core::{Decode, Encode, PeerId as CandorPeer, SignedOffer};
use candor_listing::{Listing, Query, Refusal, RefusalKind};
use libp2p::PeerId;
use std::time::Instant;

/// Whether an answer asks the caller to slow down (rate-limited, or busy).
fn slow_down(proto: Proto, answer: &[u8]) -> bool {
    let refused = match proto {
        Proto::Retrieve => match RetrieveAnswer::from_bytes(answer) {
            Ok(RetrieveAnswer::Refused(r)) => Some(r.code),
            _ => None,
        },
        _ => match PublishResponse::from_bytes(answer) {
            Ok(PublishResponse::Refused(r)) => Some(r.code),
            _ => None,
        },
    };
    matches!(
        refused,
        Some(RefusalCode::RateLimited) | Some(RefusalCode::Unavailable)
    )
}

/// A remote listing node, reached through a local [`NetHandle`], within a time budget.
///
/// Its methods block: call them from a blocking thread (not from an async task).
#[derive(Debug, Clone)]
pub struct RemoteListing {
    net: NetHandle,
    peer: PeerId,
    deadline: Option<Instant>,
    runtime: tokio::runtime::Handle,
}

impl RemoteListing {
    /// The node `peer`, through `net`, on the tokio runtime `runtime`.
    pub fn new(net: NetHandle, peer: PeerId, runtime: tokio::runtime::Handle) -> Self {
        Self {
            net,
            peer,
            deadline: None,
            runtime,
        }
    }

    /// Gives up (as over the time budget) after `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The remote PeerId.
    pub fn libp2p_peer(&self) -> PeerId {
        self.peer
    }

    /// Sends a request; a node that answers "rate-limited" or "busy" is asked again after a
    /// growing pause, within the deadline (a checker that gave up at once would report an
    /// honest, loaded node as refusing).
    fn call(&self, proto: Proto, bytes: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let answer = self.call_once(proto, bytes.clone())?;
            if !slow_down(proto, &answer) {
                return Ok(answer);
            }
            let late = self.deadline.is_some_and(|d| Instant::now() + pause >= d);
            if late || pause > std::time::Duration::from_secs(5) {
                return Ok(answer);
            }
            std::thread::sleep(pause);
            pause *= 2;
        }
    }

    fn call_once(&self, proto: Proto, bytes: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        let fut = self.net.request(proto, self.peer, bytes);
        let result = match self.deadline {
            None => self.runtime.block_on(fut),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                match self
                    .runtime
                    .block_on(async { tokio::time::timeout(left, fut).await })
                {
                    Ok(r) => r,
                    Err(_) => Err(NetError::Timeout(self.peer)),
                }
            }
        };
        result.map_err(|e| match e {
            NetError::Timeout(_) => Refusal {
                kind: RefusalKind::Timeout,
                reason: e.to_string(),
            },
            _ => Refusal {
                kind: RefusalKind::Unreachable,
                reason: e.to_string(),
            },
        })
    }

    /// Asks the node for the receipt of an offer it counted before: an encoded
    /// [`candor_listing::PublishAnswer`], as a publish answers.
    pub fn reissue(&self, offer: &SignedOffer) -> Result<Vec<u8>, Refusal> {
        let bytes = self.call(Proto::Reissue, PublishRequest(offer.clone()).to_bytes())?;
        publish_answer(&bytes)
    }
}

fn publish_answer(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    match PublishResponse::from_bytes(bytes) {
        Ok(PublishResponse::Accepted(answer)) => Ok(answer),
        Ok(PublishResponse::Refused(r)) => Err(refused(r.code, &r.reason)),
        Err(e) => Err(Refusal::refused(format!("malformed answer: {e}"))),
    }
}

fn refused(code: RefusalCode, reason: &str) -> Refusal {
    let reason = format!("{}: {reason}", code.name());
    match code {
        // Still busy when the caller's time ran out: not a refusal to answer.
        RefusalCode::RateLimited | RefusalCode::Unavailable => Refusal {
            kind: RefusalKind::Busy,
            reason,
        },
        _ => Refusal::refused(reason),
    }
}

impl Listing for RemoteListing {
    fn peer(&self) -> CandorPeer {
        to_candor_peer(&self.peer)
    }

    fn publish(&self, offer: &SignedOffer, _now: u64) -> Result<Vec<u8>, Refusal> {
        let bytes = self.call(Proto::Publish, PublishRequest(offer.clone()).to_bytes())?;
        publish_answer(&bytes)
    }

    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        let bytes = self.call(Proto::Retrieve, query.to_bytes())?;
        match RetrieveAnswer::from_bytes(&bytes) {
            Ok(RetrieveAnswer::Answer(answer)) => Ok(answer),
            Ok(RetrieveAnswer::Refused(r)) => Err(refused(r.code, &r.reason)),
            Err(e) => Err(Refusal::refused(format!("malformed answer: {e}"))),
        }
    }
}

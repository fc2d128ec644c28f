//! Talking to a remote listing node through the overlay, with the same checks as in process:
//! [`RemoteListing`] implements `candor_listing::Listing`, so `publish_to`, `retrieve_from`
//! and `monitor` run unchanged over the network.

use crate::swarm::{to_candor_peer, NetError, NetHandle, Proto};
use crate::wire::{PublishRequest, PublishResponse, RefusalCode, RetrieveAnswer, RetrieveMsg};
use candor_core::{
    Decode, Encode, Page, PageRequest, PeerId as CandorPeer, RetrieveHead, RetrieveRequest,
    SignedOffer,
};
use candor_listing::{Listing, PublishReply, Refusal, RefusalKind};
use libp2p::PeerId;
use std::time::Instant;

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

    fn call(&self, proto: Proto, bytes: Vec<u8>) -> Result<Vec<u8>, Refusal> {
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

    /// Asks the node for the receipt of an offer it counted before.
    pub fn reissue(&self, offer: &SignedOffer) -> Result<PublishReply, Refusal> {
        let bytes = self.call(Proto::Reissue, PublishRequest(offer.clone()).to_bytes())?;
        publish_reply(&bytes)
    }
}

fn publish_reply(bytes: &[u8]) -> Result<PublishReply, Refusal> {
    match PublishResponse::from_bytes(bytes) {
        Ok(PublishResponse::Accepted { cert, receipt }) => Ok(PublishReply { cert, receipt }),
        Ok(PublishResponse::Refused(r)) => {
            Err(Refusal::refused(format!("{}: {}", r.code.name(), r.reason)))
        }
        Err(e) => Err(Refusal::refused(format!("malformed answer: {e}"))),
    }
}

fn refused(code: RefusalCode, reason: &str) -> Refusal {
    Refusal::refused(format!("{}: {reason}", code.name()))
}

impl Listing for RemoteListing {
    fn peer(&self) -> CandorPeer {
        to_candor_peer(&self.peer)
    }

    fn publish(&self, offer: &SignedOffer, _now: u64) -> Result<PublishReply, Refusal> {
        let bytes = self.call(Proto::Publish, PublishRequest(offer.clone()).to_bytes())?;
        publish_reply(&bytes)
    }

    fn head(&self, req: &RetrieveRequest) -> Result<RetrieveHead, Refusal> {
        let bytes = self.call(Proto::Retrieve, RetrieveMsg::Head(req.clone()).to_bytes())?;
        match RetrieveAnswer::from_bytes(&bytes) {
            Ok(RetrieveAnswer::Head(h)) => Ok(h),
            Ok(RetrieveAnswer::Refused(r)) => Err(refused(r.code, &r.reason)),
            Ok(RetrieveAnswer::Page(_)) => {
                Err(Refusal::refused("answered a head request with a page"))
            }
            Err(e) => Err(Refusal::refused(format!("malformed answer: {e}"))),
        }
    }

    fn page(&self, req: &PageRequest) -> Result<Page, Refusal> {
        let bytes = self.call(Proto::Retrieve, RetrieveMsg::Page(*req).to_bytes())?;
        match RetrieveAnswer::from_bytes(&bytes) {
            Ok(RetrieveAnswer::Page(p)) => Ok(p),
            Ok(RetrieveAnswer::Refused(r)) => Err(refused(r.code, &r.reason)),
            Ok(RetrieveAnswer::Head(_)) => {
                Err(Refusal::refused("answered a page request with a head"))
            }
            Err(e) => Err(Refusal::refused(format!("malformed answer: {e}"))),
        }
    }
}

//! Talking to a remote listing node through the overlay, with the same checks as in process:
//! [`RemoteListing`] implements `candor_listing::Listing`, so `publish_to`, `retrieve_from`
//! and `monitor` run unchanged over the network.

use crate::swarm::{to_candor_peer, NetError, NetHandle, Proto};
use crate::wire::{PublishRequest, PublishResponse, RefusalCode, RetrieveAnswer, RetrieveMsg};
use candor_core::{
    Decode, Encode, MHead, MPage, MPageRequest, MReceipt, Page, PageRequest, PeerId as CandorPeer,
    RetrieveHead, RetrieveRequest, SignedCertificate, SignedOffer, StepProof,
};
use candor_listing::{AnyHead, AnyReply, Listing, PublishReply, Refusal, RefusalKind};
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

    /// Asks the node for the receipt of an offer it counted before.
    pub fn reissue(&self, offer: &SignedOffer) -> Result<PublishReply, Refusal> {
        let bytes = self.call(Proto::Reissue, PublishRequest(offer.clone()).to_bytes())?;
        publish_reply(&bytes)
    }
}

fn publish_answer(bytes: &[u8]) -> Result<AnyReply, Refusal> {
    match PublishResponse::from_bytes(bytes) {
        Ok(PublishResponse::Accepted { cert, receipt }) => {
            Ok(AnyReply::Counted(PublishReply { cert, receipt }))
        }
        Ok(PublishResponse::Stepped { cert, receipt }) => Ok(AnyReply::Stepped(cert, receipt)),
        Ok(PublishResponse::Refused(r)) => {
            Err(Refusal::refused(format!("{}: {}", r.code.name(), r.reason)))
        }
        Err(e) => Err(Refusal::refused(format!("malformed answer: {e}"))),
    }
}

fn publish_reply(bytes: &[u8]) -> Result<PublishReply, Refusal> {
    match publish_answer(bytes)? {
        AnyReply::Counted(r) => Ok(r),
        AnyReply::Stepped(..) => Err(Refusal::refused("the node runs scheme M")),
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

impl RemoteListing {
    fn retrieve_call(&self, msg: RetrieveMsg) -> Result<RetrieveAnswer, Refusal> {
        let bytes = self.call(Proto::Retrieve, msg.to_bytes())?;
        match RetrieveAnswer::from_bytes(&bytes) {
            Ok(RetrieveAnswer::Refused(r)) => Err(refused(r.code, &r.reason)),
            Ok(a) => Ok(a),
            Err(e) => Err(Refusal::refused(format!("malformed answer: {e}"))),
        }
    }
}

fn unexpected(what: &str) -> Refusal {
    Refusal::refused(format!("answered with something other than {what}"))
}

impl Listing for RemoteListing {
    fn peer(&self) -> CandorPeer {
        to_candor_peer(&self.peer)
    }

    fn publish(&self, offer: &SignedOffer, _now: u64) -> Result<PublishReply, Refusal> {
        let bytes = self.call(Proto::Publish, PublishRequest(offer.clone()).to_bytes())?;
        publish_reply(&bytes)
    }

    fn publish_any(&self, offer: &SignedOffer, _now: u64) -> Result<AnyReply, Refusal> {
        let bytes = self.call(Proto::Publish, PublishRequest(offer.clone()).to_bytes())?;
        publish_answer(&bytes)
    }

    fn publish_m(
        &self,
        offer: &SignedOffer,
        now: u64,
    ) -> Result<(SignedCertificate, MReceipt), Refusal> {
        match self.publish_any(offer, now)? {
            AnyReply::Stepped(c, r) => Ok((c, *r)),
            AnyReply::Counted(_) => Err(Refusal::refused("the node does not run scheme M")),
        }
    }

    fn head(&self, req: &RetrieveRequest) -> Result<RetrieveHead, Refusal> {
        match self.retrieve_call(RetrieveMsg::Head(req.clone()))? {
            RetrieveAnswer::Head(h) => Ok(h),
            RetrieveAnswer::MHead(_) => Err(Refusal::refused("the node runs scheme M")),
            _ => Err(unexpected("a head")),
        }
    }

    fn head_any(&self, req: &RetrieveRequest) -> Result<AnyHead, Refusal> {
        match self.retrieve_call(RetrieveMsg::Head(req.clone()))? {
            RetrieveAnswer::Head(h) => Ok(AnyHead::Counted(h)),
            RetrieveAnswer::MHead(h) => Ok(AnyHead::Stepped(h)),
            _ => Err(unexpected("a head")),
        }
    }

    fn m_head(&self, req: &RetrieveRequest) -> Result<MHead, Refusal> {
        match self.head_any(req)? {
            AnyHead::Stepped(h) => Ok(*h),
            AnyHead::Counted(_) => Err(Refusal::refused("the node does not run scheme M")),
        }
    }

    fn page(&self, req: &PageRequest) -> Result<Page, Refusal> {
        match self.retrieve_call(RetrieveMsg::Page(*req))? {
            RetrieveAnswer::Page(p) => Ok(p),
            _ => Err(unexpected("a page")),
        }
    }

    fn m_page(&self, req: &MPageRequest) -> Result<MPage, Refusal> {
        match self.retrieve_call(RetrieveMsg::MPage(*req))? {
            RetrieveAnswer::MPage(p) => Ok(p),
            _ => Err(unexpected("a list page")),
        }
    }

    fn m_prove_at(
        &self,
        item: &candor_core::ItemKey,
        value: u64,
    ) -> Result<candor_core::MPast, Refusal> {
        match self.retrieve_call(RetrieveMsg::MProveAt(*item, value))? {
            RetrieveAnswer::MPast(p) => Ok(*p),
            _ => Err(unexpected("a past proof")),
        }
    }

    fn m_step(&self, value: u64) -> Result<StepProof, Refusal> {
        match self.retrieve_call(RetrieveMsg::MStep(value))? {
            RetrieveAnswer::MStep(sp) => Ok(*sp),
            _ => Err(unexpected("a step")),
        }
    }
}

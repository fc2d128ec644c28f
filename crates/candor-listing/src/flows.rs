//! What a seller or a buyer can ask of a listing node, whatever carries the messages, and the
//! checking flows that run over it.

use crate::node::ListingNode;
use candor_core::{
    check_receipt, Authority, Budget, CertError, Decode, Encode, EnrolRequest, Item, Keypair,
    Misbehaviour, Outcome, Page, PageRequest, PeerId, PublicKey, Receipt, Registry, Retrieval,
    RetrieveHead, RetrieveRequest, Scheme, SignedCertificate, SignedOffer,
};
use candor_device::{DeviceError, TrustedDevice};
use thiserror::Error;

/// How a request to a node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The node answered with a refusal.
    Refused,
    /// The node could not be reached.
    Unreachable,
    /// The node took longer than the caller's time budget.
    Timeout,
}

/// A request that got no useful answer: the node refused, was unreachable, or was too slow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct Refusal {
    /// What happened.
    pub kind: RefusalKind,
    /// Why, in words.
    pub reason: String,
}

impl Refusal {
    /// The node refused.
    pub fn refused(reason: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::Refused,
            reason: reason.into(),
        }
    }

    /// What a checker makes of it.
    pub fn into_misbehaviour(self) -> Misbehaviour {
        match self.kind {
            RefusalKind::Refused => Misbehaviour::Refused(self.reason),
            RefusalKind::Unreachable => Misbehaviour::Unreachable(self.reason),
            RefusalKind::Timeout => Misbehaviour::OverBudget(candor_core::BudgetKind::Time),
        }
    }
}

/// A node's answer to a publish: its certificate and the receipt.
#[derive(Debug, Clone)]
pub struct PublishReply {
    /// The node's certificate.
    pub cert: SignedCertificate,
    /// The receipt.
    pub receipt: Receipt,
}

/// What a seller or a buyer can ask of a listing node.
pub trait Listing {
    /// The node's PeerId (as the transport authenticated it).
    fn peer(&self) -> PeerId;
    /// Publish a signed offer.
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<PublishReply, Refusal>;
    /// Open a retrieve.
    fn head(&self, req: &RetrieveRequest) -> Result<RetrieveHead, Refusal>;
    /// Fetch a page.
    fn page(&self, req: &PageRequest) -> Result<Page, Refusal>;
}

impl<D: TrustedDevice> Listing for ListingNode<D> {
    fn peer(&self) -> PeerId {
        ListingNode::peer(self).clone()
    }
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<PublishReply, Refusal> {
        let receipt =
            ListingNode::publish(self, offer, now).map_err(|e| Refusal::refused(e.to_string()))?;
        Ok(PublishReply {
            cert: self.certificate().clone(),
            receipt,
        })
    }
    fn head(&self, req: &RetrieveRequest) -> Result<RetrieveHead, Refusal> {
        ListingNode::head(self, req).map_err(|e| Refusal::refused(e.to_string()))
    }
    fn page(&self, req: &PageRequest) -> Result<Page, Refusal> {
        ListingNode::page(self, req).map_err(|e| Refusal::refused(e.to_string()))
    }
}

/// Why enrolment failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnrolError {
    /// The device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The authority refused.
    #[error(transparent)]
    Refused(#[from] CertError),
}

/// Enrols `device` (bound to `node_key`'s PeerId) with a local authority: the device answers
/// the authority's fresh nonce with a `Read` on each of its first `counters` counters, the
/// node signs the request, and the authority certifies it.
pub fn enrol<D: TrustedDevice>(
    authority: &Authority,
    registry: &mut Registry,
    node_key: &Keypair,
    device: &mut D,
    scheme: Scheme,
    counters: u32,
    now: u64,
) -> Result<SignedCertificate, EnrolError> {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let ids: Vec<_> = device
        .counters()
        .into_iter()
        .take(counters as usize)
        .collect();
    let reads = ids
        .iter()
        .map(|&c| device.read_sign(c, nonce))
        .collect::<Result<Vec<_>, _>>()?;
    let req = EnrolRequest::new(node_key, device.device_key(), scheme, reads);
    // The request crosses to the authority as bytes.
    let req = EnrolRequest::from_bytes(&req.to_bytes()).map_err(|_| CertError::BadNodeSignature)?;
    Ok(authority.certify(registry, &req, nonce, now)?)
}

/// The seller's side of publish: send, then check the receipt (DESIGN.md §4).
pub fn publish_to(
    node: &dyn Listing,
    trusted: &[PublicKey],
    offer: &SignedOffer,
    now: u64,
) -> Result<Receipt, Misbehaviour> {
    let reply = node
        .publish(offer, now)
        .map_err(Refusal::into_misbehaviour)?;
    // Both cross the wire as bytes.
    let cert = SignedCertificate::from_bytes(&reply.cert.to_bytes())?;
    let receipt = Receipt::from_bytes(&reply.receipt.to_bytes())?;
    check_receipt(trusted, &node.peer(), &cert, offer, &receipt)?;
    Ok(receipt)
}

fn drive(node: &dyn Listing, mut session: Retrieval) -> Result<Outcome, Misbehaviour> {
    let head = node
        .head(&session.request())
        .map_err(Refusal::into_misbehaviour)?;
    let mut next = session.on_head_bytes(&head.to_bytes())?;
    while let Some(req) = next {
        let page = node.page(&req).map_err(Refusal::into_misbehaviour)?;
        next = session.on_page_bytes(&page.to_bytes())?;
    }
    session.finish()
}

/// The buyer's side of retrieve from one node: fresh nonce, paged download of `base+1..t`,
/// every check. Messages cross as bytes, through the strict decoders.
pub fn retrieve_from(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    budget: Budget,
) -> Result<Outcome, Misbehaviour> {
    let session = Retrieval::new(
        trusted.to_vec(),
        node.peer(),
        item.clone(),
        fresh_nonce(),
        budget,
    );
    drive(node, session)
}

/// A seller's monitoring retrieve: an ordinary retrieve that also checks each of its
/// receipts is still served with the same payload and is covered by no gap notice.
pub fn monitor(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    receipts: Vec<Receipt>,
    budget: Budget,
) -> Result<Outcome, Misbehaviour> {
    let session = Retrieval::new(
        trusted.to_vec(),
        node.peer(),
        item.clone(),
        fresh_nonce(),
        budget,
    )
    .watching(receipts);
    drive(node, session)
}

fn fresh_nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    nonce
}

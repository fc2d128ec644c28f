//! What a seller or a buyer can ask of a listing node, whatever carries the messages, and the
//! checking flows that run over it.

use crate::node::ListingNode;
use candor_core::{
    check_m_receipt, check_monitor, check_receipt, Authority, Budget, CertError, Decode, Encode,
    EnrolRequest, Item, Keypair, MHead, MOutcome, MPage, MPageRequest, MReceipt, MRetrieval,
    Misbehaviour, Outcome, Page, PageRequest, PeerId, Placement, PublicKey, Receipt, Registry,
    Retrieval, RetrieveHead, RetrieveRequest, Scheme, SignedCertificate, SignedOffer, StepProof,
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
    /// Publish to a scheme-M node: the answer is the node's certificate and the whole step.
    fn publish_m(
        &self,
        _offer: &SignedOffer,
        _now: u64,
    ) -> Result<(SignedCertificate, MReceipt), Refusal> {
        Err(Refusal::refused("this node does not run scheme M"))
    }
    /// Open a scheme-M retrieve.
    fn m_head(&self, _req: &RetrieveRequest) -> Result<MHead, Refusal> {
        Err(Refusal::refused("this node does not run scheme M"))
    }
    /// A page of an item's list (scheme M).
    fn m_page(&self, _req: &MPageRequest) -> Result<MPage, Refusal> {
        Err(Refusal::refused("this node does not run scheme M"))
    }
    /// A whole step, for an audit (scheme M).
    fn m_step(&self, _value: u64) -> Result<StepProof, Refusal> {
        Err(Refusal::refused("this node does not run scheme M"))
    }
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
    fn publish_m(
        &self,
        offer: &SignedOffer,
        now: u64,
    ) -> Result<(SignedCertificate, MReceipt), Refusal> {
        let r = ListingNode::publish_m(self, std::slice::from_ref(offer), now)
            .pop()
            .unwrap_or(Err(crate::node::PublishError::Unavailable("no result")));
        r.map(|r| (self.certificate().clone(), r))
            .map_err(|e| Refusal::refused(e.to_string()))
    }
    fn m_head(&self, req: &RetrieveRequest) -> Result<MHead, Refusal> {
        ListingNode::m_head(self, req).map_err(|e| Refusal::refused(e.to_string()))
    }
    fn m_page(&self, req: &MPageRequest) -> Result<MPage, Refusal> {
        ListingNode::m_page(self, req).map_err(|e| Refusal::refused(e.to_string()))
    }
    fn m_step(&self, value: u64) -> Result<StepProof, Refusal> {
        ListingNode::m_step(self, value)
            .map_err(|e| Refusal::refused(e.to_string()))?
            .ok_or_else(|| Refusal::refused(format!("no step {value}")))
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

/// The seller's side of a scheme-M publish: send, then verify the whole step and find its
/// offer's place in the item's list.
pub fn publish_to_m(
    node: &dyn Listing,
    trusted: &[PublicKey],
    offer: &SignedOffer,
    now: u64,
) -> Result<(MReceipt, Placement), Misbehaviour> {
    let (cert, receipt) = node
        .publish_m(offer, now)
        .map_err(Refusal::into_misbehaviour)?;
    let cert = SignedCertificate::from_bytes(&cert.to_bytes())?;
    let receipt = MReceipt::from_bytes(&receipt.to_bytes())?;
    let placement = check_m_receipt(trusted, &node.peer(), &cert, offer, &receipt)?;
    Ok((receipt, placement))
}

/// The buyer's side of a scheme-M retrieve: fresh nonce, `Read(t)` and the step at t, d's
/// list checked against the proof, then `audits` steps drawn at random and checked whole.
pub fn retrieve_from_m(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    max_offers: u64,
    audits: u64,
) -> Result<MOutcome, Misbehaviour> {
    let mut r = MRetrieval::new(
        trusted.to_vec(),
        node.peer(),
        item.clone(),
        fresh_nonce(),
        max_offers,
    );
    let head = node
        .m_head(&r.request())
        .map_err(Refusal::into_misbehaviour)?;
    let mut next = r.on_head_bytes(&head.to_bytes())?;
    while let Some(req) = next {
        let page = node.m_page(&req).map_err(Refusal::into_misbehaviour)?;
        next = r.on_page_bytes(&page.to_bytes())?;
    }
    r.check_list()?;
    for v in r.plan_audits(audits, &mut rand_core::OsRng) {
        // An unanswered audit fails the retrieve.
        let step = node.m_step(v).map_err(Refusal::into_misbehaviour)?;
        r.on_audit_bytes(v, &step.to_bytes())?;
    }
    r.finish()
}

/// A seller's monitoring of its scheme-M offers of `item`: an ordinary retrieve, then each
/// receipted offer still at its index with the same chain prefix.
pub fn monitor_m(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    mine: &[(SignedOffer, Placement)],
) -> Result<MOutcome, Misbehaviour> {
    let out = retrieve_from_m(node, trusted, item, u64::MAX, 0)?;
    for (offer, p) in mine {
        check_monitor(offer, p, &out)?;
    }
    Ok(out)
}

//! What a seller or a buyer can ask of a listing node, whatever carries the messages, and the
//! checking flows that run over it.

use crate::node::ListingNode;
use candor_core::{
    check_m_receipt, check_monitor, check_receipt, Authority, Budget, CertError, Decode, Encode,
    EnrolRequest, Item, Keypair, MHead, MOutcome, MPage, MPageRequest, MReceipt, MRetrieval,
    Misbehaviour, Outcome, Page, PageRequest, PeerId, Placement, PublicKey, Receipt, Registry,
    Retrieval, RetrieveHead, RetrieveRequest, Scheme, SignedCertificate, SignedInc, SignedOffer,
    StepProof,
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
    /// The node kept answering "busy" or "rate-limited" until the caller's time was up.
    Busy,
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

    /// What a checker makes of it, before the node committed to an answer.
    pub fn into_misbehaviour(self) -> Misbehaviour {
        match self.kind {
            RefusalKind::Refused | RefusalKind::Busy => Misbehaviour::Refused(self.reason),
            RefusalKind::Unreachable => Misbehaviour::Unreachable(self.reason),
            RefusalKind::Timeout => Misbehaviour::Timeout,
        }
    }

    /// What a checker makes of it once the node's signed `Read` committed it to an answer
    /// (a page, an audit): a refusal or a malformed answer is a failed check; a node that
    /// became unreachable, stayed busy or ran out of time is not verified, but not called a
    /// cheat either (an honest node can crash mid-answer).
    pub fn after_read(self) -> Misbehaviour {
        match self.kind {
            RefusalKind::Refused => Misbehaviour::RefusedAfterRead(self.reason),
            RefusalKind::Unreachable => Misbehaviour::Unreachable(self.reason),
            RefusalKind::Timeout | RefusalKind::Busy => Misbehaviour::Timeout,
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

/// A node's first answer to a retrieve, whichever scheme it runs.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per retrieve
pub enum AnyHead {
    /// Schemes B and C.
    Counted(RetrieveHead),
    /// Scheme M.
    Stepped(Box<MHead>),
}

/// A node's answer to a publish, whichever scheme it runs.
#[derive(Debug, Clone)]
pub enum AnyReply {
    /// Schemes B and C.
    Counted(PublishReply),
    /// Scheme M: the certificate and the whole step.
    Stepped(SignedCertificate, Box<MReceipt>),
}

/// A checked receipt, whichever scheme the node runs.
#[derive(Debug, Clone)]
pub enum AnyReceipt {
    /// Schemes B and C: the `Inc`.
    Counted(Receipt),
    /// Scheme M: the whole step and where the offer landed.
    Stepped(Box<MReceipt>, Placement),
}

impl AnyReceipt {
    /// (counter, value) of the `Inc` that counted the offer (the step's, in scheme M).
    pub fn value(&self) -> (u32, u64) {
        match self {
            Self::Counted(r) => (r.inc.inc.counter, r.inc.inc.value),
            Self::Stepped(r, _) => (r.step.step.header.counter, r.step.step.header.value),
        }
    }
}

/// A verified retrieve, whichever scheme the node runs.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per retrieve
pub enum AnyOutcome {
    /// Schemes B and C.
    Counted(Outcome),
    /// Scheme M.
    Stepped(MOutcome),
}

impl AnyOutcome {
    /// The `Read`'s value.
    pub fn t(&self) -> u64 {
        match self {
            Self::Counted(o) => o.t,
            Self::Stepped(o) => o.t,
        }
    }

    /// The offers for the item, as counted.
    pub fn offers(&self) -> Vec<&SignedOffer> {
        match self {
            Self::Counted(o) => o.offers.iter().map(|(_, o)| o).collect(),
            Self::Stepped(o) => o.offers.iter().collect(),
        }
    }

    /// Gap notices reported (scheme M: the gap steps seen at t or in audits).
    pub fn gaps(&self) -> usize {
        match self {
            Self::Counted(o) => o.gaps.len(),
            Self::Stepped(o) => o.gaps.len(),
        }
    }

    /// The device statements of this answer a checker keeps, to hold the node to them later
    /// (`known` of [`retrieve_any`]): its gap notices or gap steps and, in scheme M, the step
    /// at t. An honest node serves only statements it has stored, so it never covers one of
    /// them with a gap afterwards.
    pub fn statements(&self) -> Vec<SignedInc> {
        match self {
            Self::Counted(o) => o.gaps.iter().map(|g| g.inc.clone()).collect(),
            Self::Stepped(o) => o
                .gaps
                .iter()
                .map(|g| g.inc.clone())
                .chain(o.step.iter().map(|s| s.inc.clone()))
                .collect(),
        }
    }

    /// Bytes received (audits excluded).
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Counted(o) => o.bytes,
            Self::Stepped(o) => o.bytes,
        }
    }

    /// The node's certificate, as verified.
    pub fn cert(&self) -> &candor_core::SignedCertificate {
        match self {
            Self::Counted(o) => &o.cert,
            Self::Stepped(o) => &o.cert,
        }
    }

    /// Scheme M's worst-case detection probability of its audits (1 for B and C).
    pub fn detection(&self) -> f64 {
        match self {
            Self::Counted(_) => 1.0,
            Self::Stepped(o) => o.detection,
        }
    }
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
    /// Open a retrieve, whichever scheme the node runs. (No default: a wrapper that forgot
    /// it would silently serve scheme M nodes as scheme B.)
    fn head_any(&self, req: &RetrieveRequest) -> Result<AnyHead, Refusal>;
    /// Publish, whichever scheme the node runs.
    fn publish_any(&self, offer: &SignedOffer, now: u64) -> Result<AnyReply, Refusal>;
    // The scheme-M calls have no defaults either: a wrapper that forgot one would refuse it
    // for a node that runs scheme M (a node that does not answers with a refusal itself).
    /// Publish to a scheme-M node: the answer is the node's certificate and the whole step.
    fn publish_m(
        &self,
        offer: &SignedOffer,
        now: u64,
    ) -> Result<(SignedCertificate, MReceipt), Refusal>;
    /// Open a scheme-M retrieve.
    fn m_head(&self, req: &RetrieveRequest) -> Result<MHead, Refusal>;
    /// A page of an item's list (scheme M).
    fn m_page(&self, req: &MPageRequest) -> Result<MPage, Refusal>;
    /// A whole step, for an audit (scheme M).
    fn m_step(&self, value: u64) -> Result<StepProof, Refusal>;
    /// A proof for an item under the root after any past step (scheme M).
    fn m_prove_at(
        &self,
        item: &candor_core::ItemKey,
        value: u64,
    ) -> Result<candor_core::MPast, Refusal>;
    /// The node's own certificate, when this is the node itself (not a remote view of it):
    /// what it shows peers so that they count it as a member of Δ(d). A wrapper that lacks
    /// it is simply not counted.
    fn certificate(&self) -> Option<SignedCertificate> {
        None
    }
}

impl<D: TrustedDevice> Listing for ListingNode<D> {
    fn peer(&self) -> PeerId {
        ListingNode::peer(self).clone()
    }
    fn certificate(&self) -> Option<SignedCertificate> {
        Some(ListingNode::certificate(self).clone())
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
    fn head_any(&self, req: &RetrieveRequest) -> Result<AnyHead, Refusal> {
        if self.certificate().cert.scheme == candor_core::Scheme::Merkle {
            Listing::m_head(self, req).map(|h| AnyHead::Stepped(Box::new(h)))
        } else {
            Listing::head(self, req).map(AnyHead::Counted)
        }
    }
    fn publish_any(&self, offer: &SignedOffer, now: u64) -> Result<AnyReply, Refusal> {
        if self.certificate().cert.scheme == candor_core::Scheme::Merkle {
            Listing::publish_m(self, offer, now).map(|(c, r)| AnyReply::Stepped(c, Box::new(r)))
        } else {
            Listing::publish(self, offer, now).map(AnyReply::Counted)
        }
    }
    fn m_page(&self, req: &MPageRequest) -> Result<MPage, Refusal> {
        ListingNode::m_page(self, req).map_err(|e| Refusal::refused(e.to_string()))
    }
    fn m_prove_at(
        &self,
        item: &candor_core::ItemKey,
        value: u64,
    ) -> Result<candor_core::MPast, Refusal> {
        ListingNode::m_prove_at(self, item, value).map_err(|e| Refusal::refused(e.to_string()))
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
/// node signs the request (with the TPM's EK certificate), a TPM opens the authority's
/// credential for its key, and the authority certifies it.
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
    let endorsement = device.endorsement()?;
    let req = EnrolRequest::new(node_key, device.device_key(), scheme, reads, endorsement);
    // The request crosses to the authority as bytes.
    let req = EnrolRequest::from_bytes(&req.to_bytes()).map_err(|_| CertError::BadNodeSignature)?;
    let pending = authority.begin(registry, req, nonce, now, &mut rand_core::OsRng)?;
    // A TPM proves its key lives beside the certified EK by opening the credential.
    let answer = match pending.credential().map(|c| device.activate_credential(c)) {
        Some(Ok(secret)) => Some(secret),
        Some(Err(e)) => {
            // The authority's verdict is what counts: no answer, not resident.
            tracing::warn!(%e, "the device could not open the authority's credential");
            None
        }
        None => None,
    };
    Ok(authority.finish(registry, pending, answer.as_deref(), now)?)
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
        let page = node.page(&req).map_err(Refusal::after_read)?;
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

/// Runs a scheme-M retrieve from the head on: d's list in pages, checked against the leaf
/// under the root, then `audits` steps drawn at random and checked whole (an unanswered audit
/// fails the retrieve).
fn drive_m(
    node: &dyn Listing,
    mut r: MRetrieval,
    head: &MHead,
    audits: u64,
) -> Result<MOutcome, Misbehaviour> {
    let mut next = r.on_head_bytes(&head.to_bytes())?;
    while let Some(req) = next {
        let page = node.m_page(&req).map_err(Refusal::after_read)?;
        next = r.on_page_bytes(&page.to_bytes())?;
    }
    r.check_list()?;
    for v in r.plan_audits(audits, &mut rand_core::OsRng) {
        let step = node.m_step(v).map_err(Refusal::after_read)?;
        r.on_audit_bytes(v, &step.to_bytes())?;
    }
    r.finish()
}

fn open_m(node: &dyn Listing, r: MRetrieval, audits: u64) -> Result<MOutcome, Misbehaviour> {
    let head = node
        .m_head(&r.request())
        .map_err(Refusal::into_misbehaviour)?;
    drive_m(node, r, &head, audits)
}

/// The buyer's side of a scheme-M retrieve: fresh nonce, `Read(t)` and the step at t, d's
/// leaf under its root and the chain's gap steps, d's list within `budget`, then `audits`
/// steps drawn at random and checked whole.
pub fn retrieve_from_m(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    budget: Budget,
    audits: u64,
) -> Result<MOutcome, Misbehaviour> {
    let r = MRetrieval::new(
        trusted.to_vec(),
        node.peer(),
        item.clone(),
        fresh_nonce(),
        budget,
    );
    open_m(node, r, audits)
}

/// A seller's monitoring of its scheme-M offers of `item`: an ordinary retrieve within
/// `budget` that also holds the node to the steps of its receipts (a gap step over one, or
/// another payload at its value, is transferable evidence), then each receipted offer still at
/// its index with the same chain prefix.
pub fn monitor_m(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    mine: &[(SignedOffer, MReceipt, Placement)],
    budget: Budget,
) -> Result<MOutcome, Misbehaviour> {
    monitor_m_knowing(node, trusted, item, mine, budget, 0, &[])
}

fn monitor_m_knowing(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    mine: &[(SignedOffer, MReceipt, Placement)],
    budget: Budget,
    audits: u64,
    known: &[SignedInc],
) -> Result<MOutcome, Misbehaviour> {
    let r = MRetrieval::new(
        trusted.to_vec(),
        node.peer(),
        item.clone(),
        fresh_nonce(),
        budget,
    )
    .knowing(mine.iter().map(|(_, r, _)| r.step.step.inc.clone()))
    .knowing(known.iter().cloned());
    // The same audits as a buyer's: a node must not tell a monitor from a buyer by them.
    let out = open_m(node, r, audits)?;
    for (offer, receipt, p) in mine {
        check_monitor(receipt, offer, p, &out)?;
    }
    Ok(out)
}

/// The seller's side of publish, whichever scheme the node runs.
pub fn publish_to_any(
    node: &dyn Listing,
    trusted: &[PublicKey],
    offer: &SignedOffer,
    now: u64,
) -> Result<AnyReceipt, Misbehaviour> {
    match node
        .publish_any(offer, now)
        .map_err(Refusal::into_misbehaviour)?
    {
        AnyReply::Counted(reply) => {
            let cert = SignedCertificate::from_bytes(&reply.cert.to_bytes())?;
            let receipt = Receipt::from_bytes(&reply.receipt.to_bytes())?;
            check_receipt(trusted, &node.peer(), &cert, offer, &receipt)?;
            Ok(AnyReceipt::Counted(receipt))
        }
        AnyReply::Stepped(cert, receipt) => {
            let cert = SignedCertificate::from_bytes(&cert.to_bytes())?;
            let receipt = MReceipt::from_bytes(&receipt.to_bytes())?;
            let placement = check_m_receipt(trusted, &node.peer(), &cert, offer, &receipt)?;
            Ok(AnyReceipt::Stepped(Box::new(receipt), placement))
        }
    }
}

/// The buyer's side of retrieve, whichever scheme the node's certificate names: B and C
/// pages every value; M checks d's list against the step at t and audits `audits` steps.
///
/// `known` are statements of this node's device the checker saw before (gap notices, gap
/// steps, steps at t of earlier answers): the node is held to them, so a view that hides one
/// behind a gap is transferable evidence.
pub fn retrieve_any(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    budget: Budget,
    audits: u64,
    known: &[SignedInc],
) -> Result<AnyOutcome, Misbehaviour> {
    let nonce = fresh_nonce();
    let req = candor_core::RetrieveRequest {
        item: item.key(),
        nonce,
    };
    match node.head_any(&req).map_err(Refusal::into_misbehaviour)? {
        AnyHead::Counted(head) => {
            let mut s = Retrieval::new(trusted.to_vec(), node.peer(), item.clone(), nonce, budget)
                .knowing(known.iter().cloned());
            let mut next = s.on_head_bytes(&head.to_bytes())?;
            while let Some(req) = next {
                let page = node.page(&req).map_err(Refusal::after_read)?;
                next = s.on_page_bytes(&page.to_bytes())?;
            }
            Ok(AnyOutcome::Counted(s.finish()?))
        }
        AnyHead::Stepped(head) => {
            let r = MRetrieval::new(trusted.to_vec(), node.peer(), item.clone(), nonce, budget)
                .knowing(known.iter().cloned());
            Ok(AnyOutcome::Stepped(drive_m(node, r, &head, audits)?))
        }
    }
}

/// A seller's monitoring, whichever scheme: B and C watch the receipts' values; M checks each
/// receipted offer is still at its index with its chain prefix.
/// `known` as for [`retrieve_any`]; scheme M audits `audits` steps, as a buyer does.
pub fn monitor_any(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    mine: &[(SignedOffer, AnyReceipt)],
    budget: Budget,
    audits: u64,
    known: &[SignedInc],
) -> Result<AnyOutcome, Misbehaviour> {
    let counted: Vec<Receipt> = mine
        .iter()
        .filter_map(|(_, r)| match r {
            AnyReceipt::Counted(r) => Some(r.clone()),
            AnyReceipt::Stepped(..) => None,
        })
        .collect();
    let stepped: Vec<(SignedOffer, MReceipt, Placement)> = mine
        .iter()
        .filter_map(|(o, r)| match r {
            AnyReceipt::Stepped(m, p) => Some((o.clone(), (**m).clone(), *p)),
            AnyReceipt::Counted(_) => None,
        })
        .collect();
    if !stepped.is_empty() {
        return monitor_m_knowing(node, trusted, item, &stepped, budget, audits, known)
            .map(AnyOutcome::Stepped);
    }
    let session = Retrieval::new(
        trusted.to_vec(),
        node.peer(),
        item.clone(),
        fresh_nonce(),
        budget,
    )
    .watching(counted)
    .knowing(known.iter().cloned());
    drive(node, session).map(AnyOutcome::Counted)
}

/// What item d's list was after a past step `value` of a scheme-M node, proved under that
/// step's signed root (DESIGN.md §5), within `budget`: the leaf is checked under the root
/// before the list is fetched, so the list's length is the node's signed word.
pub fn retrieve_at_m(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    value: u64,
    budget: Budget,
) -> Result<Vec<SignedOffer>, Misbehaviour> {
    let past = node
        .m_prove_at(&item.key(), value)
        .map_err(Refusal::into_misbehaviour)?;
    let bytes = past.to_bytes();
    let mut taken = bytes.len() as u64;
    let past = candor_core::MPast::from_bytes(&bytes)?;
    let n = candor_core::past_len(trusted, &node.peer(), item, value, &past)?;
    if n > budget.max_entries {
        return Err(Misbehaviour::OverBudget(candor_core::BudgetKind::Entries));
    }
    let mut list: Vec<Vec<u8>> = Vec::new();
    while (list.len() as u64) < n {
        let want = (n - list.len() as u64).min(candor_core::MAX_LIST_PAGE as u64) as u32;
        let page = node
            .m_page(&MPageRequest {
                item: item.key(),
                from: list.len() as u64,
                count: want,
            })
            .map_err(Refusal::after_read)?;
        let bytes = page.to_bytes();
        taken = taken.saturating_add(bytes.len() as u64);
        if taken > budget.max_bytes {
            return Err(Misbehaviour::OverBudget(candor_core::BudgetKind::Bytes));
        }
        let page = MPage::from_bytes(&bytes)?;
        if page.offers.is_empty() {
            return Err(Misbehaviour::Truncated {
                next: list.len() as u64,
                t: n,
            });
        }
        list.extend(page.offers.into_iter().take(want as usize));
    }
    candor_core::verify_past(trusted, &node.peer(), item, value, &past, &list)
}

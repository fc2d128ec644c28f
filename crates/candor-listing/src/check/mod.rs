//! The seller's and the buyer's side of each operation, one flow per operation for every
//! scheme: publish ([`publish_to`]), retrieve ([`retrieve_from`]), a seller's monitoring
//! ([`monitor`]) and, for scheme M, a list under a past root ([`retrieve_at`]).
//!
//! Each flow reads the node's certificate from the first answer (a publish answer, a
//! retrieve head), picks the checks of the [`Protocol`] its scheme names, and decodes every
//! later answer only as that protocol's message. The rules of each protocol live in the
//! core's verifiers; `entries.rs` and `steps.rs` only drive them.

mod entries;
mod steps;

pub use steps::retrieve_at;

use crate::listing::{Listing, PublishAnswer, Query, Refusal};
use candor_core::{
    head_certificate, Budget, Decode, Encode, Item, Misbehaviour, Outcome, Placement, Protocol,
    PublicKey, Receipt, RetrieveRequest, SignedCertificate, SignedInc, SignedOffer, StepOutcome,
    StepReceipt,
};

/// Steps a buyer audits per scheme-M retrieve unless told otherwise.
pub const DEFAULT_AUDITS: u64 = 4;

/// How a retrieve (or a monitoring run) reads: its budget, how many steps it audits (scheme
/// M), and the statements of this node's device the reader saw before.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The most entries and bytes the reader takes; over it, the answer is not used.
    pub budget: Budget,
    /// Steps drawn at random and checked whole (scheme M; B and C check every value).
    pub audits: u64,
    /// Statements of this node's device seen before (gap notices, gap steps, steps at t of
    /// earlier answers): the node is held to them, so an answer that hides one behind a gap
    /// is transferable evidence. An honest node serves only statements it has stored, so it
    /// never covers one of them with a gap afterwards.
    pub known: Vec<SignedInc>,
    /// The node's certificate as the reader already holds it, checked (the network layer
    /// holds one for every member of Δ(d)): the request names it, a scheme-M node then leaves
    /// it out of its head, and its signature is not checked again. Every reader that found
    /// the node through Δ(d) names it alike, so naming it tells a node nothing about who reads.
    pub cert: Option<SignedCertificate>,
    /// The reader's clock (unix seconds): a node time beyond it + the certificate's skew is
    /// a clock disagreement, and the answer is not used (DESIGN.md §9).
    pub now: u64,
}

/// This machine's clock, unix seconds (0 if it is set before 1970).
pub fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reading {
    /// A reading within `budget`, with [`DEFAULT_AUDITS`] and nothing known, at this
    /// machine's clock.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            audits: DEFAULT_AUDITS,
            known: Vec::new(),
            cert: None,
            now: system_now(),
        }
    }

    /// Reading at clock `now` (unix seconds) instead of this machine's (a simulated clock).
    pub fn at(mut self, now: u64) -> Self {
        self.now = now;
        self
    }

    /// Naming `cert`, the node's certificate the reader holds (checked).
    pub fn naming(mut self, cert: Option<SignedCertificate>) -> Self {
        self.cert = cert;
        self
    }

    /// With `audits` audited steps.
    pub fn audits(mut self, audits: u64) -> Self {
        self.audits = audits;
        self
    }

    /// Holding the node to `known`.
    pub fn knowing(mut self, known: Vec<SignedInc>) -> Self {
        self.known = known;
        self
    }
}

impl Default for Reading {
    fn default() -> Self {
        Self::new(Budget::default())
    }
}

impl From<Budget> for Reading {
    fn from(budget: Budget) -> Self {
        Self::new(budget)
    }
}

/// A checked receipt: what a seller keeps to hold the node to its offer.
#[derive(Debug, Clone)]
pub enum PublishReceipt {
    /// Schemes B and C: the entry's `Inc`.
    Entry(Receipt),
    /// Scheme M: the whole step, and where the offer landed in its item's list.
    Step(Box<StepReceipt>, Placement),
}

impl PublishReceipt {
    /// (counter, value) of the `Inc` that counted the offer (the step's, in scheme M).
    pub fn value(&self) -> (u32, u64) {
        match self {
            Self::Entry(r) => (r.inc.inc.counter, r.inc.inc.value),
            Self::Step(r, _) => (r.step.step.header.counter, r.step.step.header.value),
        }
    }

    /// The device statement that counted the offer.
    pub fn statement(&self) -> &SignedInc {
        match self {
            Self::Entry(r) => &r.inc,
            Self::Step(r, _) => &r.step.step.inc,
        }
    }
}

/// A verified retrieve (or monitoring run).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per retrieve
pub enum RetrieveOutcome {
    /// Schemes B and C: every value of the item's counter, checked.
    Entries(Outcome),
    /// Scheme M: the item's list under the step at t, and the audits.
    Steps(StepOutcome),
}

impl RetrieveOutcome {
    /// The `Read`'s value.
    pub fn t(&self) -> u64 {
        match self {
            Self::Entries(o) => o.t,
            Self::Steps(o) => o.t,
        }
    }

    /// The answer covers `base+1 ..= t`: scheme B/C's window boundary (the counter's initial
    /// value without one), scheme M's base.
    pub fn base(&self) -> u64 {
        match self {
            Self::Entries(o) => o.base,
            Self::Steps(o) => o.base,
        }
    }

    /// Bad entries under valid `Inc`s, skipped, each transferable evidence (B, C; in scheme M
    /// a bad list entry fails the check of the leaf instead).
    pub fn faults(&self) -> &[candor_core::Evidence] {
        match self {
            Self::Entries(o) => &o.faults,
            Self::Steps(_) => &[],
        }
    }

    /// The offers for the item, as counted.
    pub fn offers(&self) -> Vec<&SignedOffer> {
        match self {
            Self::Entries(o) => o.offers.iter().map(|(_, o)| o).collect(),
            Self::Steps(o) => o.offers.iter().collect(),
        }
    }

    /// The offers a buyer can act on at `now` (DESIGN.md §3): each seller's newest, unexpired.
    pub fn current(&self, now: u64) -> Vec<candor_core::Offer> {
        match self {
            Self::Entries(o) => o.current(now),
            Self::Steps(o) => o.current(now),
        }
    }

    /// Gap notices reported (scheme M: the gap steps seen at t or in audits).
    pub fn gaps(&self) -> usize {
        match self {
            Self::Entries(o) => o.gaps.len(),
            Self::Steps(o) => o.gaps.len(),
        }
    }

    /// The device statements of this answer a checker keeps, to hold the node to them later
    /// ([`Reading::known`]): its gap notices or gap steps and, in scheme M, the step at t.
    pub fn statements(&self) -> Vec<SignedInc> {
        match self {
            Self::Entries(o) => o.gaps.iter().map(|g| g.inc.clone()).collect(),
            Self::Steps(o) => o
                .gaps
                .iter()
                .map(|g| g.inc.clone())
                .chain(o.step.iter().map(|s| s.inc().clone()))
                .collect(),
        }
    }

    /// Bytes received (audits excluded).
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Entries(o) => o.bytes,
            Self::Steps(o) => o.bytes,
        }
    }

    /// The node's certificate, as verified.
    pub fn cert(&self) -> &SignedCertificate {
        match self {
            Self::Entries(o) => &o.cert,
            Self::Steps(o) => &o.cert,
        }
    }

    /// Scheme M's worst-case detection probability of its audits (1 for B and C).
    pub fn detection(&self) -> f64 {
        match self {
            Self::Entries(_) => 1.0,
            Self::Steps(o) => o.detection,
        }
    }
}

/// The seller's side of publish (DESIGN.md §4, §5): send the offer, then check the receipt by
/// the rules of the scheme the node's certificate names — an entry's `Inc` (B, C) or the whole
/// step and the offer's place in it (M).
pub fn publish_to(
    node: &dyn Listing,
    trusted: &[PublicKey],
    offer: &SignedOffer,
    now: u64,
) -> Result<PublishReceipt, Misbehaviour> {
    publish_checked(node, trusted, offer, now).verdict
}

/// What a seller keeps of a publish: the verdict, and the receipt whenever it verified — also
/// when the verdict refuses it for a clock disagreement (DESIGN.md §9), so that the seller still
/// monitors an offer the node's device counted (a node cannot shed a seller's monitoring by
/// dating the step just outside the seller's skew).
#[derive(Debug, Clone)]
pub struct Checked {
    /// The receipt, or why it is not accepted.
    pub verdict: Result<PublishReceipt, Misbehaviour>,
    /// A verified receipt, kept for monitoring whatever the verdict.
    pub kept: Option<PublishReceipt>,
}

/// [`publish_to`], keeping a verified receipt the verdict refuses (see [`Checked`]).
pub fn publish_checked(
    node: &dyn Listing,
    trusted: &[PublicKey],
    offer: &SignedOffer,
    now: u64,
) -> Checked {
    let refused = |m: Misbehaviour| Checked {
        verdict: Err(m),
        kept: None,
    };
    let bytes = match node.publish(offer, now) {
        Ok(b) => b,
        Err(r) => return refused(r.into_misbehaviour()),
    };
    let answer = match PublishAnswer::from_bytes(&bytes) {
        Ok(a) => a,
        Err(e) => return refused(e.into()),
    };
    let peer = node.peer();
    match answer.cert.cert.scheme.protocol() {
        Protocol::Entries => {
            match entries::check_publish(trusted, &peer, &answer.cert, offer, &answer.receipt) {
                Ok(r) => Checked {
                    verdict: entries::fresh(&answer.cert, &r, now)
                        .map(|()| PublishReceipt::Entry(r.clone())),
                    kept: Some(PublishReceipt::Entry(r)),
                },
                Err(m) => refused(m),
            }
        }
        Protocol::Steps => {
            match steps::check_publish(trusted, &peer, &answer.cert, offer, &answer.receipt) {
                Ok((r, p)) => {
                    let receipt = PublishReceipt::Step(Box::new(r), p);
                    Checked {
                        verdict: steps::fresh(&answer.cert, &receipt, now)
                            .map(|()| receipt.clone()),
                        kept: Some(receipt),
                    }
                }
                Err(m) => refused(m),
            }
        }
    }
}

/// The buyer's side of retrieve from one node: a fresh nonce, the head, and the checks of the
/// scheme its certificate names — every value of the item's counter in pages (B, C), or the
/// item's list under the step at t and `reading.audits` steps audited (M).
pub fn retrieve_from(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    reading: impl Into<Reading>,
) -> Result<RetrieveOutcome, Misbehaviour> {
    read(node, trusted, item, &reading.into(), &[])
}

/// A seller's monitoring run: a retrieve a node cannot tell from a buyer's (the same
/// requests, the same audits) that also holds the node to each of `mine` that it issued for
/// this item (the others are left out) — still served with
/// the same payload and covered by no gap (B, C); still at its index with the same chain
/// prefix, its step unequivocated (M).
pub fn monitor(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    mine: &[(SignedOffer, PublishReceipt)],
    reading: impl Into<Reading>,
) -> Result<RetrieveOutcome, Misbehaviour> {
    read(node, trusted, item, &reading.into(), mine)
}

fn read(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    reading: &Reading,
    mine: &[(SignedOffer, PublishReceipt)],
) -> Result<RetrieveOutcome, Misbehaviour> {
    // A certificate the reader holds is named only if it is this node's.
    let named = reading.cert.as_ref().filter(|c| c.cert.peer == node.peer());
    let req = RetrieveRequest {
        item: item.key(),
        nonce: fresh_nonce(),
        cert: named.map(SignedCertificate::id),
    };
    let head = node
        .ask(&Query::Head(req.clone()))
        .map_err(Refusal::into_misbehaviour)?;
    let cert = head_certificate(&head, named)?;
    let opened = Opened {
        node,
        trusted,
        item,
        nonce: req.nonce,
        head: &head,
        reading,
        named,
    };
    // Only the seller's receipts from this node (its PeerId in their statements) for this
    // item are held against this answer: another node's receipts, or another item's, say
    // nothing about it.
    let peer = node.peer();
    let mine: Vec<&(SignedOffer, PublishReceipt)> = mine
        .iter()
        .filter(|(o, r)| o.offer.key == item.key() && r.statement().inc.peer == peer)
        .collect();
    match cert.cert.scheme.protocol() {
        Protocol::Entries => {
            let receipts = mine
                .iter()
                .map(|(o, r)| match r {
                    PublishReceipt::Entry(r) => Ok((r.clone(), o.to_bytes())),
                    PublishReceipt::Step(m, _) => Err(other_protocol(&opened, &cert, &m.cert_id)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            entries::read(opened, receipts).map(RetrieveOutcome::Entries)
        }
        Protocol::Steps => {
            let receipts = mine
                .iter()
                .map(|(o, r)| match r {
                    PublishReceipt::Step(m, p) => Ok((o.clone(), (**m).clone(), *p)),
                    PublishReceipt::Entry(r) => Err(other_protocol(&opened, &cert, &r.cert_id)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            steps::read(opened, &receipts).map(RetrieveOutcome::Steps)
        }
    }
}

/// What a seller's receipt of the other protocol than the head's certificate names comes to.
/// The certificate is checked first (a head that merely claims a scheme proves nothing); then
/// a node answering under another certificate than the receipt's is caught as such (an
/// authority never certifies one PeerId twice). A receipt of the other protocol under this
/// very certificate cannot have passed the seller's check at publish.
fn other_protocol(
    opened: &Opened<'_>,
    cert: &SignedCertificate,
    receipt_cert: &candor_core::Digest,
) -> Misbehaviour {
    if let Err(e) = cert.verify_for(opened.trusted, &opened.node.peer()) {
        return e.into();
    }
    if *receipt_cert != cert.id() {
        return Misbehaviour::OtherCertificate;
    }
    Misbehaviour::WrongScheme {
        certified: cert.cert.scheme,
        answered: match cert.cert.scheme.protocol() {
            Protocol::Entries => "M",
            Protocol::Steps => "B/C",
        },
    }
}

/// A retrieve after its head arrived: what both protocols' drivers need.
struct Opened<'a> {
    node: &'a dyn Listing,
    trusted: &'a [PublicKey],
    item: &'a Item,
    nonce: [u8; 32],
    head: &'a [u8],
    reading: &'a Reading,
    /// The certificate the request named (the reader's, for this node).
    named: Option<&'a SignedCertificate>,
}

fn fresh_nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    nonce
}

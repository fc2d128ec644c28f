//! The buyer's side of a scheme-M retrieve (and a seller's monitoring one), as a state
//! machine independent of any transport: the head, the item's list in pages, audits.
//!
//! ```text
//! buyer                                   listing node
//!   RetrieveRequest { item, nonce }  ──▶
//!                                    ◀──  StepHead { cert, Read(t, nonce), step at t,
//!                                                 d's leaf and its proof, gap steps }
//!   ListRequest { from, count }     ──▶
//!                                    ◀──  ListPage { d's offers from .. }   … until n
//!   audit of value v (s drawn)       ──▶
//!                                    ◀──  StepProof of the step at v, or of the gap step
//!                                          on the chain to t that skips v
//! ```
//!
//! What makes gaps safe to accept: every step names the last gap step before it on its chain
//! (`gap_link`), and the head carries those gap steps. So the step at t fixes exactly which
//! values the chain to t skips. An audit of a skipped value is answered only by the gap step
//! on the chain that skips it; an audit of any other value only by the step at exactly that
//! value. A gap step made after the `Read`, or one off the chain, answers nothing. A false
//! gap list needs a step with a false `gap_link` on the chain, at a value no listed gap
//! covers, which the audits catch like any bad step. Every number a node sends is checked
//! before it is used: the item's list length comes with the leaf under the signed root, so
//! "over budget" is reachable only through a list the node has committed to.

use super::{Budget, GapReport};
use crate::cert::{CertifiedCounter, SignedCertificate};
use crate::encoding::{Decode, Encode};
use crate::hash::tags;
use crate::hash::Digest;
use crate::item::Item;
use crate::keys::BatchVerifier;
use crate::keys::{PeerId, PublicKey};
use crate::merkle::{
    leaf_of, offer_hash, HeadStep, Leaf, Placement, SignedStep, SortKey, StepHead, StepProof,
    StepReceipt, MAX_LIST_PAGE, MAX_LIVE,
};
use crate::misbehaviour::{BudgetKind, Misbehaviour};
use crate::offer::{current_offers, Offer, SignedOffer};
use crate::smt::MultiProof;
use crate::statement::SignedInc;
use crate::statement::{DeviceKey, DeviceSig};
use crate::verify::head_root_with;
use crate::verify::statements::Sig;
use chain::{check_known, gap_chain, GapChain};
pub use list::{ListPage, ListRequest};

mod chain;
mod horizon;
mod list;

/// What a scheme-M retrieve yields.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The node's certificate.
    pub cert: SignedCertificate,
    /// The step at t as the head carried it (None at the base value).
    pub step: Option<HeadStep>,
    /// The proof for d under the root at t.
    pub proof: MultiProof,
    /// The `Read`'s value.
    pub t: u64,
    /// The counter's base.
    pub base: u64,
    /// The root at t.
    pub root: Digest,
    /// d's leaf at t (None: absent).
    pub leaf: Option<Leaf>,
    /// d's whole live list at t, in list order.
    pub offers: Vec<SignedOffer>,
    /// Steps audited (a drawn value a crash lost counts as audited by the gap step over it).
    pub audited: Vec<u64>,
    /// The gap steps on the chain to t: values an honest node lost in a crash, reported, not
    /// held against it.
    pub gaps: Vec<GapReport>,
    /// The audit horizon the node named (the base if none): audits were drawn above it.
    pub horizon: u64,
    /// Worst-case probability that one bad step among those above the horizon (t − horizon)
    /// was caught: s / (t − horizon).
    pub detection: f64,
    /// Bytes received for the head and the list (audits excluded).
    pub bytes: u64,
    /// Bytes received for audits.
    pub audit_bytes: u64,
}

impl StepOutcome {
    /// The offers a buyer can act on at `now`.
    pub fn current(&self, now: u64) -> Vec<Offer> {
        current_offers(self.offers.iter().map(|o| &o.offer), now)
    }
}

/// What the head established, once checked.
#[derive(Debug)]
struct Head {
    cert: SignedCertificate,
    counter: CertifiedCounter,
    t: u64,
    root: Digest,
    leaf: Option<Leaf>,
    proof: MultiProof,
    /// The gap steps on the chain to t, newest first.
    gaps: Vec<SignedStep>,
    /// The audit horizon the head named, checked.
    horizon: Option<SignedStep>,
    /// The lowest value audits are drawn from: above the horizon, and base + 1 unless the
    /// chain is longer than a head carries.
    floor: u64,
}

impl Head {
    /// The gap step on the chain to t that skips `value`, if any.
    fn gap_over(&self, value: u64) -> Option<&SignedStep> {
        self.gaps.iter().find(|g| {
            g.header
                .gap()
                .is_some_and(|(first, last)| first <= value && value <= last)
        })
    }

    fn n(&self) -> u64 {
        self.leaf.map_or(0, |l| l.n)
    }
}

/// A scheme-M retrieve from one node, as a state machine: head, list pages, audits.
#[derive(Debug)]
pub struct StepRetrieval {
    trusted: Vec<PublicKey>,
    peer: PeerId,
    item: Item,
    nonce: [u8; 32],
    budget: Budget,
    /// The reader's clock (unix seconds): node time beyond it + skew is not used.
    now: u64,
    known: Vec<SignedInc>,
    /// The node's certificate the reader already holds, checked (`with_certificate`).
    named: Option<SignedCertificate>,
    head: Option<Head>,
    offers: Vec<Vec<u8>>,
    bytes: u64,
    audit_bytes: u64,
    audits: Vec<u64>,
    audited: Vec<u64>,
    step: Option<HeadStep>,
    list_checked: bool,
    /// The list is not fetched: the head's signed length is beyond the budget (its entries,
    /// or the most bytes a list that long can take), and `deferred` holds that verdict.
    skip_list: bool,
    /// A seller holding receipts for this item: its list is fetched whatever the budget.
    monitor: bool,
    /// A verdict the head earned that only volume or gaps justify ("over budget", "too many
    /// gaps"): given only once every planned audit passed, so a node cannot trigger it to
    /// escape a check it would fail.
    deferred: Option<Misbehaviour>,
    /// The verdict the audit horizon's time earned (`RecentBoundary`, or a clock disagreement
    /// near the window's edge), given after the audits: a recent horizon outranks volume and
    /// gaps, but not a chain dated ahead of this clock (then the clocks disagree, and an
    /// honest node seen from a lagging clock must not be accused); a disagreement near the
    /// edge comes last, so a node cannot name one to soften another verdict.
    horizon_verdict: Option<Misbehaviour>,
    /// The chain's freshest `at` is beyond this clock + skew.
    ahead: bool,
}

/// Whether the head's certificate (by a trusted authority; unless it is the one the reader
/// named, checked before), `Read` and step `Inc` all carry valid ed25519 signatures, verified
/// in one batch: the keys and messages are exactly those the one-by-one checks use. False when
/// any is not ed25519 or the batch fails.
fn head_signatures_hold(trusted: &[PublicKey], head: &StepHead, named: bool) -> bool {
    let cert = &head.cert;
    let DeviceKey::Software(device) = &cert.cert.device else {
        return false;
    };
    if !trusted.contains(&cert.cert.authority) {
        return false;
    }
    let mut batch = BatchVerifier::new();
    if !named {
        cert.queue_signature(&mut batch);
    }
    let DeviceSig::Ed25519(read) = &head.read.sig else {
        return false;
    };
    batch.push(*device, tags::READ, &head.read.read.to_bytes(), *read);
    if let Some(step) = &head.step {
        let DeviceSig::Ed25519(inc) = &step.inc().sig else {
            return false;
        };
        batch.push(*device, tags::INC, &step.inc().inc.to_bytes(), *inc);
    }
    batch.verify_all()
}

/// Whether two signed steps are the same statement (header and `Inc` fields; not the
/// signature bytes, which a TPM randomises).
fn same(a: &SignedStep, b: &SignedStep) -> bool {
    a.header == b.header && a.inc.inc == b.inc.inc
}

impl StepRetrieval {
    /// Starts a retrieve of `item` from `peer`, with a fresh `nonce`, within `budget` (its
    /// entries bound the item's offers, its bytes the head and the list, its gaps the gap
    /// steps accepted), at the reader's clock `now` (unix seconds).
    pub fn new(
        trusted: Vec<PublicKey>,
        peer: PeerId,
        item: Item,
        nonce: [u8; 32],
        budget: Budget,
        now: u64,
    ) -> Self {
        Self {
            trusted,
            peer,
            item,
            nonce,
            budget,
            now,
            known: Vec::new(),
            named: None,
            head: None,
            offers: Vec::new(),
            bytes: 0,
            audit_bytes: 0,
            audits: Vec::new(),
            audited: Vec::new(),
            step: None,
            list_checked: false,
            skip_list: false,
            monitor: false,
            deferred: None,
            horizon_verdict: None,
            ahead: false,
        }
    }

    /// Device statements of this node the checker already holds (a seller's receipts, the
    /// steps and gap steps it saw before): a gap step on the chain over one of their values,
    /// or another payload at one of their values, is transferable evidence; a `Read` below
    /// one of them is a rolled-back answer.
    pub fn knowing(mut self, incs: impl IntoIterator<Item = SignedInc>) -> Self {
        self.known.extend(incs);
        self
    }

    /// The node's certificate the reader holds, checked in full when it first came (by
    /// [`crate::SignedCertificate::verify_for`] or an earlier retrieve): the request names it,
    /// the node leaves it out of the head, and its signature is not checked again (that its
    /// authority is trusted and it names this node still are).
    pub fn with_certificate(mut self, cert: SignedCertificate) -> Self {
        self.named = Some(cert);
        self
    }

    /// A seller's monitoring retrieve (it holds receipts for this item): the item's list is
    /// fetched whatever the budget — a list holds at most [`MAX_LIVE`] records, so at most
    /// [`ListPage::most_bytes`] of that — so that "over budget", which a node can reach by
    /// stuffing the item with sybil records, never hides a removal from the offer's seller.
    /// The budget's verdict still comes once every other check passed.
    pub fn monitoring(mut self) -> Self {
        self.monitor = true;
        self
    }

    /// The opening request.
    pub fn request(&self) -> crate::entry::RetrieveRequest {
        crate::entry::RetrieveRequest {
            item: self.item.key(),
            nonce: self.nonce,
            cert: self.named.as_ref().map(SignedCertificate::id),
        }
    }

    fn take_bytes(&mut self, n: usize) -> Result<(), Misbehaviour> {
        self.bytes = self.bytes.saturating_add(n as u64);
        if self.bytes > self.budget.max_bytes {
            return Err(Misbehaviour::OverBudget(BudgetKind::Bytes));
        }
        Ok(())
    }

    /// Takes the head (encoded). Returns the first list page to ask for, if any.
    pub fn on_head_bytes(&mut self, bytes: &[u8]) -> Result<Option<ListRequest>, Misbehaviour> {
        if self.head.is_some() {
            return Err(Misbehaviour::NoAnswer("a second head"));
        }
        // Decoded before it is charged: a blob is malformed, never "over budget".
        let (head, named) = StepHead::decode(bytes, &self.request(), self.named.as_ref())?;
        self.take_bytes(bytes.len())?;
        // The certificate's, the Read's and the step's signatures in one batch; if it does not
        // hold (or a signature is not ed25519), each is checked on its own below, so a bad
        // one gets the verdict it always had. A certificate the reader named was checked
        // whole when it first came: its authority and PeerId are checked again, not its
        // signature.
        let sig = if head_signatures_hold(&self.trusted, &head, named) {
            head.cert.verify_for_batched(&self.trusted, &self.peer)?;
            Sig::Batched
        } else {
            if named {
                head.cert.verify_for_batched(&self.trusted, &self.peer)?;
            } else {
                head.cert.verify_for(&self.trusted, &self.peer)?;
            }
            Sig::Check
        };
        // The reader named the certificate this node showed (to it or to the network): an
        // authority never certifies one PeerId twice, so a head under another one, however
        // valid, is not this node's answer.
        if !named && self.named.is_some() {
            return Err(Misbehaviour::OtherCertificate);
        }
        let counter = crate::verify::statements::require_stepped(&head.cert)?;
        let read = &head.read.read;
        // The Read signed this buyer's nonce, or the root of a batch it is in.
        crate::verify::statements::check_read_with(
            &head.cert,
            &self.peer,
            &counter,
            &head.read,
            &head.nonces.root(&self.nonce),
            sig,
        )?;
        let t = read.value;
        let root = head_root_with(&head.cert, &self.peer, &counter, head.step.as_ref(), t, sig)?;
        // d's leaf, and so its list length, is bound under the root before anything is
        // fetched: a node cannot claim a long list to leave as "over budget".
        let d = self.item.key();
        head.proof
            .verify(&root, &[(d.0 .0, head.leaf.map(|l| l.value_hash()))])
            .map_err(|_| Misbehaviour::BadProof("the item's leaf is not the one under the root"))?;
        // Gap steps at or below the horizon the head names do not matter (no audit goes
        // there); the horizon itself is checked once the statements the reader holds are.
        let ahead_at_t = head
            .step
            .as_ref()
            .is_some_and(|s| head.cert.cert.time.ahead(s.at(), self.now));
        let stop = horizon::stop(
            &head.cert,
            &self.peer,
            &counter,
            head.horizon.as_ref(),
            t,
            self.now,
            ahead_at_t,
        );
        let GapChain {
            steps: gaps,
            deferred,
            floor,
        } = gap_chain(&head, &self.peer, &counter, self.budget.max_gap_width, stop)?;
        self.deferred = deferred;
        // No list holds more than MAX_LIVE records, and none changed after t: a leaf that says
        // otherwise is a lie any checker sees without an audit (and no way to "over budget").
        if let Some(leaf) = &head.leaf {
            if leaf.n > MAX_LIVE as u64 {
                return Err(Misbehaviour::BadStep(
                    "the item's list is longer than a list may be",
                ));
            }
            if leaf.last_changed > t || leaf.last_changed <= counter.initial {
                return Err(Misbehaviour::BadStep(
                    "the item's list last changed at a step outside base+1..=t",
                ));
            }
        }
        if gaps.len() > self.budget.max_gaps as usize && self.deferred.is_none() {
            self.deferred = Some(Misbehaviour::TooManyGaps {
                max: self.budget.max_gaps,
            });
        }
        let mut checked = Head {
            cert: head.cert,
            counter,
            t,
            root,
            leaf: head.leaf,
            proof: head.proof,
            gaps,
            horizon: None,
            floor,
        };
        check_known(&checked, head.step.as_ref().map(HeadStep::inc), &self.known)?;
        // The audit horizon: audits are drawn above it. Checked after the statements the
        // reader holds, so that a bad horizon cannot pre-empt the evidence they give.
        if let Some(h) = head.horizon {
            self.horizon_verdict = horizon::check_horizon(
                &horizon::Chain {
                    cert: &checked.cert,
                    peer: &self.peer,
                    counter: &counter,
                    t,
                    gaps: &checked.gaps,
                    step: head.step.as_ref().map(HeadStep::inc),
                    known: &self.known,
                },
                &h,
                self.now,
            )?;
            checked.floor = checked.floor.max(h.header.value.saturating_add(1));
            checked.horizon = Some(h);
        }
        // Node time along the chain (DESIGN.md §9): the gap steps and the step at t, in value
        // order, never go backwards (transferable evidence). A freshest `at` beyond this
        // clock + skew is a clock disagreement: no accusation, and the answer is not used —
        // but that verdict waits for the evidence checks, so a future-dated step that drops a
        // receipted offer still unexpired at its `at` is still a removal. (A step dated past
        // the offer's expiry may drop it as expired: the node then answers nobody for as long
        // as its clock runs that far ahead, DESIGN.md §9.)
        let mut chain: Vec<HeadStep> = checked.gaps.iter().map(HeadStep::of).collect();
        chain.extend(head.step.iter().cloned());
        chain.extend(checked.horizon.iter().map(HeadStep::of));
        chain.sort_by_key(HeadStep::value);
        chain.dedup_by_key(|s| s.value());
        for pair in chain.windows(2) {
            if let [a, b] = pair {
                crate::verify::at_forwards(&checked.cert, a, b)?;
            }
        }
        let at = chain.iter().map(HeadStep::at).max().unwrap_or(0);
        let time = checked.cert.cert.time;
        if time.ahead(at, self.now) {
            self.ahead = true;
            self.deferred = self
                .deferred
                .take()
                .or(Some(Misbehaviour::ClockDisagreement {
                    at,
                    now: self.now,
                    skew: time.skew,
                }));
        }
        // The list's volume is judged from its signed length, before a page is taken: the
        // most bytes a list of n offers can take is fixed by the page encoding, so a node
        // cannot pad its pages past the budget to leave the list check as "over budget".
        // A list beyond the budget is not fetched, and the verdict waits for the audits.
        let n = checked.n();
        let over = if n > self.budget.max_entries {
            Some(BudgetKind::Entries)
        } else if self.bytes.saturating_add(ListPage::most_bytes(n)) > self.budget.max_bytes {
            Some(BudgetKind::Bytes)
        } else {
            None
        };
        if let Some(kind) = over {
            self.deferred = self
                .deferred
                .take()
                .or(Some(Misbehaviour::OverBudget(kind)));
            if self.monitor {
                self.budget.max_entries = self.budget.max_entries.max(n);
                self.budget.max_bytes = self
                    .budget
                    .max_bytes
                    .max(self.bytes.saturating_add(ListPage::most_bytes(n)));
            } else {
                self.skip_list = true;
            }
        }
        self.step = head.step;
        self.head = Some(checked);
        Ok(self.next_page())
    }

    fn next_page(&self) -> Option<ListRequest> {
        if self.skip_list {
            // The list is not fetched; the audits still run. Too many gaps alone does not
            // stop it: the list is still held to the leaf and a seller's receipts to it.
            return None;
        }
        let head = self.head.as_ref()?;
        let n = head.n();
        let have = self.offers.len() as u64;
        (have < n).then(|| ListRequest {
            item: self.item.key(),
            value: head.t,
            from: have,
            count: (n - have)
                .min(u64::from(self.budget.page_items.max(1)))
                .min(MAX_LIST_PAGE as u64) as u32,
        })
    }

    /// Takes a list page (encoded).
    ///
    /// The page is decoded before its bytes are charged: a blob is malformed. A page that
    /// decodes fits in the room the head's signed length reserved.
    pub fn on_page_bytes(&mut self, bytes: &[u8]) -> Result<Option<ListRequest>, Misbehaviour> {
        let page = ListPage::from_bytes(bytes)?;
        let Some(want) = self.next_page() else {
            return Err(Misbehaviour::NoAnswer("a page after the list"));
        };
        if page.offers.is_empty() || page.offers.len() > want.count as usize {
            return Err(Misbehaviour::Truncated {
                next: want.from,
                t: want.from.saturating_add(u64::from(want.count)),
            });
        }
        self.take_bytes(bytes.len())?;
        self.offers.extend(page.offers);
        Ok(self.next_page())
    }

    /// Checks the list against the leaf under the root. Call once every page is in.
    pub fn check_list(&mut self) -> Result<(), Misbehaviour> {
        let Some(head) = &self.head else {
            return Err(Misbehaviour::NoAnswer("a head"));
        };
        if self.skip_list {
            return Ok(());
        }
        if self.offers.len() as u64 != head.n() {
            return Err(Misbehaviour::Truncated {
                next: self.offers.len() as u64,
                t: head.n(),
            });
        }
        let got = match head.leaf {
            None => None,
            Some(l) => Some(
                leaf_of(self.offers.iter().map(Vec::as_slice), l.last_changed)
                    .ok_or(Misbehaviour::BadStep("the list holds a non-offer"))?,
            ),
        };
        if got != head.leaf {
            return Err(Misbehaviour::BadProof(
                "the list for the item is not the one under the root",
            ));
        }
        self.list_checked = true;
        Ok(())
    }

    /// Draws `s` steps to audit, without replacement, from base+1..=t, with `rng`.
    pub fn plan_audits<R: rand_core::RngCore>(&mut self, s: u64, rng: &mut R) -> Vec<u64> {
        let Some(head) = &self.head else {
            return Vec::new();
        };
        // Values floor..=t (floor is base + 1 unless the chain is longer than a head carries).
        let below = head.floor.saturating_sub(1).max(head.counter.initial);
        let span = head.t.saturating_sub(below);
        let s = s.min(span);
        let mut chosen = std::collections::BTreeSet::new();
        // Floyd's algorithm: s distinct values from 1..=span.
        for j in span - s + 1..=span {
            let r = 1 + rng.next_u64() % j;
            if !chosen.insert(r) {
                chosen.insert(j);
            }
        }
        self.audits = chosen.into_iter().map(|x| below + x).collect();
        self.audits.clone()
    }

    /// Takes the answer to the audit of step `value` (encoded): the step at exactly `value`,
    /// or, when the chain to t skips `value`, the gap step on that chain that skips it.
    ///
    /// An audit's bytes are not held to the budget: the buyer chose how many audits to ask,
    /// each answer is bounded by its encoding (one step of at most `MAX_BATCH` offers), and a
    /// byte limit here would let a node answer the audit of a bad step with a large blob and
    /// be "over budget" instead of caught. They are counted for the report.
    pub fn on_audit_bytes(&mut self, value: u64, bytes: &[u8]) -> Result<(), Misbehaviour> {
        self.audit_bytes = self.audit_bytes.saturating_add(bytes.len() as u64);
        let Some(head) = &self.head else {
            return Err(Misbehaviour::NoAnswer("a head"));
        };
        if value < head.floor.max(head.counter.initial + 1) || value > head.t {
            return Err(Misbehaviour::BadStep(
                "an audit of a value outside horizon+1..=t",
            ));
        }
        let sp = StepProof::from_bytes(bytes)?;
        let h = &sp.step.header;
        match head.gap_over(value) {
            Some(gap) if !same(&sp.step, gap) => {
                return Err(Misbehaviour::BadStep(
                    "the audit of a skipped value was not answered by the gap step that skips it",
                ))
            }
            Some(_) => {}
            None if h.value != value => {
                return Err(Misbehaviour::BadStep("the audit answered another step"))
            }
            // A gap step at exactly `value` is on the chain only if the head listed it.
            None if h.gap().is_some() && !head.gaps.iter().any(|g| same(g, &sp.step)) => {
                return Err(Misbehaviour::BadStep(
                    "the audit was answered by a gap step that is not on the chain to t",
                ))
            }
            None => {}
        }
        crate::verify::verify_step(&head.cert, &self.peer, &sp)?;
        // The audited step is at or before t: its time is not after the step at t's; and it
        // lies above the horizon: its time is not before the horizon's.
        let audited = HeadStep::of(&sp.step);
        if let Some(at_t) = &self.step {
            crate::verify::at_forwards(&head.cert, &audited, at_t)?;
        }
        if let Some(h) = &head.horizon {
            crate::verify::at_forwards(&head.cert, &HeadStep::of(h), &audited)?;
            // The step before the audited one, at the horizon's value, is the horizon itself:
            // two statements at one value are equivocation.
            if let Some(prev) = sp
                .prev
                .as_ref()
                .filter(|p| p.header.value == h.header.value)
            {
                if prev.inc.inc.payload != h.inc.inc.payload {
                    return Err(Misbehaviour::Evidence(Box::new(
                        crate::misbehaviour::Evidence::Equivocation {
                            cert: head.cert.clone(),
                            a: h.inc.clone(),
                            b: prev.inc.clone(),
                        },
                    )));
                }
            }
        }
        if !self.audited.contains(&value) {
            self.audited.push(value);
        }
        Ok(())
    }

    /// Holds a seller's receipted offers (`mine`) to the list just checked against the leaf
    /// signed at t, before any audit is asked for: a node that removed one is caught with
    /// transferable evidence already in hand, however it then answers the audits.
    pub fn check_placements(
        &mut self,
        mine: &[(SignedOffer, StepReceipt, Placement)],
    ) -> Result<(), Misbehaviour> {
        if !self.list_checked {
            self.check_list()?;
        }
        // Every receipt is of the certificate this node answers under, whatever part of the
        // list is checked: another certificate on the same PeerId is its own verdict.
        if let Some(head) = &self.head {
            let id = head.cert.id();
            if mine.iter().any(|(_, r, _)| r.cert_id != id) {
                return Err(Misbehaviour::OtherCertificate);
            }
        }
        // Each receipt's step is dated no later than the step at t (DESIGN.md §9); judged after
        // the placements, so a removal is reported as one.
        let in_time = self.receipts_in_time(mine);
        if self.skip_list {
            // No list to hold them to: the node committed to more than the budget, and that
            // verdict (never a removal) comes once the audits pass.
            return in_time;
        }
        let Some(head) = &self.head else {
            return Err(Misbehaviour::NoAnswer("a head"));
        };
        for (offer, receipt, placement) in mine {
            placement_intact(
                receipt,
                offer,
                placement,
                &Answer {
                    cert: &head.cert,
                    step: self.step.as_ref(),
                    proof: &head.proof,
                    leaf: head.leaf,
                    list: &self.offers,
                },
            )?;
        }
        in_time
    }

    /// Whether every receipted step (of this certificate, checked whole when it was received)
    /// binds a node time no later than the step at t's: `at-backwards` evidence if not.
    fn receipts_in_time(
        &self,
        mine: &[(SignedOffer, StepReceipt, Placement)],
    ) -> Result<(), Misbehaviour> {
        let (Some(head), Some(at_t)) = (&self.head, &self.step) else {
            return Ok(());
        };
        for (_, receipt, _) in mine {
            let r = HeadStep::of(&receipt.step.step);
            crate::verify::at_forwards(&head.cert, &r, at_t)?;
            // And against the horizon, on whichever side of it the receipt lies.
            if let Some(h) = &head.horizon {
                let h = HeadStep::of(h);
                crate::verify::at_forwards(&head.cert, &r, &h)?;
                crate::verify::at_forwards(&head.cert, &h, &r)?;
            }
        }
        Ok(())
    }

    /// The outcome, once the list is checked and the planned audits are answered.
    pub fn finish(mut self) -> Result<StepOutcome, Misbehaviour> {
        if !self.list_checked {
            self.check_list()?;
        }
        let Some(head) = self.head else {
            return Err(Misbehaviour::NoAnswer("a head"));
        };
        if let Some(missing) = self.audits.iter().find(|v| !self.audited.contains(v)) {
            return Err(Misbehaviour::Refused(format!(
                "the audit of step {missing} was not answered"
            )));
        }
        let mut offers: Vec<SignedOffer> = Vec::with_capacity(self.offers.len());
        let mut signatures = crate::keys::BatchVerifier::new();
        let invalid =
            || Misbehaviour::BadStep("the list holds an invalid offer or one for another item");
        for b in &self.offers {
            let o = SignedOffer::from_bytes(b)
                .map_err(|_| Misbehaviour::BadStep("the list holds a non-offer"))?;
            if o.offer.key != self.item.key() || o.check_key().is_err() {
                return Err(invalid());
            }
            o.queue_signature(&mut signatures);
            offers.push(o);
        }
        // The list is sorted by (currency, price, seller, serial), one record per seller
        // (DESIGN.md §9): the order §11's "cheapest n" stands on.
        let keys: Vec<SortKey> = offers.iter().map(|o| SortKey::of(&o.offer)).collect();
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Misbehaviour::BadStep("the item's list is not in order"));
        }
        let sellers: std::collections::BTreeSet<[u8; 32]> = keys.iter().map(|k| k.seller).collect();
        if sellers.len() != keys.len() {
            return Err(Misbehaviour::BadStep(
                "the item's list holds two records of one seller",
            ));
        }
        // The sellers' signatures in one batch (ZIP-215: the verdict of one by one).
        if !signatures.verify_all() {
            return Err(invalid());
        }
        // No offer is listed longer than L_max − 2·skew past the step that added it (DESIGN.md
        // §9); `at` never goes backwards, so one expiring after that bound at t's `at` broke it
        // at its own step, whatever step that was (one within it may still have: audits check
        // each step against its own `at`).
        let at_t = self.step.as_ref().map_or(0, HeadStep::at);
        let latest = head.cert.cert.time.latest_expiry(at_t);
        if offers.iter().any(|o| o.offer.expiry > latest) {
            return Err(Misbehaviour::BadStep(
                "the list holds an offer listed longer than the certificate's L_max allows",
            ));
        }
        // A list that last changed at or below the horizon was made by steps dated no later
        // than the horizon: none of its offers may outlive that step's bound (a node that
        // backdates a step to hide it below the horizon keeps offers that do).
        if let (Some(h), Some(leaf)) = (&head.horizon, head.leaf) {
            let bound = head.cert.cert.time.latest_expiry(h.header.at);
            if leaf.last_changed <= h.header.value && offers.iter().any(|o| o.offer.expiry > bound)
            {
                return Err(Misbehaviour::BadStep(
                    "the item's list last changed at or below the horizon but holds an offer that outlives it",
                ));
            }
        }
        // Every planned audit and every check of the list passed: only now may volume, gaps
        // or time be the verdict (a recent horizon first, unless the chain is dated ahead of
        // this clock; a disagreement near the window's edge last).
        match (self.horizon_verdict, self.deferred) {
            (Some(m @ Misbehaviour::RecentBoundary { .. }), _) if !self.ahead => return Err(m),
            (_, Some(m)) => return Err(m),
            (Some(m), None) => return Err(m),
            (None, None) => {}
        }
        let horizon = head.floor.saturating_sub(1).max(head.counter.initial);
        let span = head.t.saturating_sub(horizon);
        let detection = if span == 0 {
            1.0
        } else {
            self.audited.len() as f64 / span as f64
        };
        let gaps = head
            .gaps
            .iter()
            .filter_map(|g| {
                let (first, last) = g.header.gap()?;
                Some(GapReport {
                    inc: g.inc.clone(),
                    first,
                    last,
                })
            })
            .collect();
        Ok(StepOutcome {
            cert: head.cert,
            step: self.step,
            proof: head.proof,
            t: head.t,
            base: head.counter.initial,
            horizon,
            root: head.root,
            leaf: head.leaf,
            offers,
            audited: self.audited,
            gaps,
            detection,
            bytes: self.bytes,
            audit_bytes: self.audit_bytes,
        })
    }
}

/// A seller's check of one receipted offer against a verified retrieve of its item: the offer
/// is in the live list, or left it justly (DESIGN.md §9: expired by the step at t's time, or
/// replaced by a record of its seller with an equal or higher serial). Otherwise the list
/// signed at t is transferable removal evidence (with the receipt's step); at the base value
/// (no step) the removal is local.
pub fn check_monitor(
    receipt: &StepReceipt,
    offer: &SignedOffer,
    placement: &Placement,
    outcome: &StepOutcome,
) -> Result<(), Misbehaviour> {
    let list: Vec<Vec<u8>> = outcome.offers.iter().map(|o| o.to_bytes()).collect();
    placement_intact(
        receipt,
        offer,
        placement,
        &Answer {
            cert: &outcome.cert,
            step: outcome.step.as_ref(),
            proof: &outcome.proof,
            leaf: outcome.leaf,
            list: &list,
        },
    )
}

/// How a receipted offer (`hash`) is accounted for in an item's list signed at node time
/// `at`: still there, expired by then, or justly replaced (DESIGN.md §9). None: it is gone
/// without a reason — a removal. The monitor and the removal evidence judge by this alone.
pub(crate) fn still_accounted(
    list: &[Vec<u8>],
    hash: &crate::hash::Digest,
    offer: &Offer,
    at: u64,
) -> Option<&'static str> {
    if list.iter().any(|b| offer_hash(b) == *hash) {
        Some("the receipted offer is still there")
    } else if offer.expiry <= at {
        Some("the offer had expired by the later step")
    } else if list.iter().any(|b| replaces(b, offer)) {
        Some("a record of the seller with an equal or higher serial replaced it")
    } else {
        None
    }
}

/// Whether the list record `bytes` justly replaces `offer` (DESIGN.md §9): a valid offer of
/// its seller for its item with an equal or higher serial that lives at least as long (a junk
/// or forged record, one for another item, or one that would expire first replaces nothing).
pub(crate) fn replaces(bytes: &[u8], offer: &Offer) -> bool {
    SignedOffer::from_bytes(bytes).is_ok_and(|o| {
        o.offer.seller == offer.seller
            && o.offer.key == offer.key
            && o.offer.serial >= offer.serial
            && o.offer.expiry >= offer.expiry
            && o.verify().is_ok()
    })
}

/// An answer's parts a receipt is held to: the certificate, the step at t, the proof of the
/// item's leaf, the leaf, and the item's list as checked against it.
struct Answer<'a> {
    cert: &'a SignedCertificate,
    step: Option<&'a HeadStep>,
    proof: &'a MultiProof,
    leaf: Option<Leaf>,
    list: &'a [Vec<u8>],
}

/// `check_monitor` on the parts of an answer.
fn placement_intact(
    receipt: &StepReceipt,
    offer: &SignedOffer,
    placement: &Placement,
    a: &Answer<'_>,
) -> Result<(), Misbehaviour> {
    if receipt.cert_id != a.cert.id() {
        return Err(Misbehaviour::OtherCertificate);
    }
    let at = a.step.map_or(0, HeadStep::at);
    if still_accounted(a.list, &placement.hash, &offer.offer, at).is_some() {
        return Ok(());
    }
    match a.step {
        Some(later) => Err(Misbehaviour::Evidence(Box::new(
            crate::misbehaviour::Evidence::Removal {
                cert: a.cert.clone(),
                receipt: Box::new((*receipt.step).clone()),
                position: receipt.position,
                later: Box::new(later.clone()),
                proof: a.proof.clone(),
                list: a.list.to_vec(),
                last_changed: a.leaf.map_or(0, |l| l.last_changed),
            },
        ))),
        None => Err(Misbehaviour::Removed {
            index: 0,
            now: a.list.len() as u64,
        }),
    }
}

//! The buyer's side of scheme B/C retrieve (and a seller's monitoring retrieve), as a state
//! machine independent of any transport.
//!
//! ```text
//! buyer                                   listing node
//!   RetrieveRequest { item, nonce }  ──▶
//!                                    ◀──  RetrieveHead { cert, Read(t, nonce), Inc(w) }
//!   PageRequest { after, upto: t }   ──▶
//!                                    ◀──  Page { items in (after, t] }     … until t
//! ```
//!
//! The window (w, t] starts at the boundary `Inc(w)` the head carries (DESIGN.md §9): w = the
//! counter's initial value, or a value whose node time is older than the reader's now − L_max
//! − skew, so every offer counted at or before it has expired. Every value of the window must
//! be accounted for exactly once: by an entry whose bytes (and node time) the value's `Inc`
//! binds, by a gap notice's own `Inc`, or by a later gap notice covering it; node time never
//! goes backwards along them. Either the outcome holds exactly the offers for d the node
//! counted in the window (the paper's Eq. 1, for what can still be live), or the session ends
//! with a [`Misbehaviour`].

use super::{Budget, GapReport};
use crate::cert::{CertifiedCounter, SignedCertificate};
use crate::encoding::{Decode, Encode};
use crate::entry::{Page, PageItem, PageRequest, Receipt, RetrieveHead, RetrieveRequest};
use crate::hash::tags;
use crate::item::Item;
use crate::keys::{BatchVerifier, PeerId, PublicKey};
use crate::misbehaviour::{entry_fault, BudgetKind, Evidence, Misbehaviour};
use crate::offer::{current_offers, Offer, SignedOffer};
use crate::statement::SignedInc;
use std::collections::BTreeMap;

/// What a successful retrieve yields.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The node's PeerId.
    pub peer: PeerId,
    /// Its certificate.
    pub cert: SignedCertificate,
    /// The counter checked.
    pub counter: CertifiedCounter,
    /// The `Read`'s value.
    pub t: u64,
    /// The window's boundary w (the counter's initial value if the node sent none): the
    /// answer covers `w+1 ..= t`.
    pub base: u64,
    /// Every offer for d the node counted in `w+1 ..= t`, with its value: the paper's ρ_t.
    pub offers: Vec<(u64, SignedOffer)>,
    /// Gaps the node reported (not misbehaviour; a seller's receipt inside one is).
    pub gaps: Vec<GapReport>,
    /// Bad entries under valid `Inc`s: transferable evidence; the entries were skipped.
    pub faults: Vec<Evidence>,
    /// Bytes received: the head and every page.
    pub bytes: u64,
}

impl Outcome {
    /// The offers a buyer can act on at `now` (DESIGN.md §3 semantics).
    pub fn current(&self, now: u64) -> Vec<Offer> {
        current_offers(self.offers.iter().map(|(_, o)| &o.offer), now)
    }
}

#[derive(Debug)]
enum State {
    AwaitHead,
    Paging,
    Done,
}

/// A retrieve session with one listing node.
#[derive(Debug)]
pub struct Retrieval {
    trusted: Vec<PublicKey>,
    peer: PeerId,
    item: Item,
    nonce: [u8; 32],
    budget: Budget,
    state: State,
    cert: Option<SignedCertificate>,
    counter: CertifiedCounter,
    t: u64,
    next: u64,
    /// Values not yet accounted for, first → last (disjoint): each waits for a later gap
    /// notice to cover it. Ordered, so covering one is a lookup, not a scan.
    holes: BTreeMap<u64, u64>,
    offers: Vec<(u64, SignedOffer)>,
    /// The gap notices, the first `max_gaps + 1` kept (more is the verdict; the rest are
    /// counted in `gap_count`, so a node cannot make the reader hold them all).
    gaps: Vec<GapReport>,
    gap_count: u64,
    faults: Vec<Evidence>,
    bytes: u64,
    /// The receipts a monitoring seller holds, until the head names the certificate and the
    /// counter they are checked against.
    receipts: Vec<(Receipt, Vec<u8>)>,
    /// Other statements of this node the checker holds (gap notices it saw before).
    known: Vec<SignedInc>,
    watch: BTreeMap<u64, SignedInc>,
    /// The reader's clock (unix seconds).
    now: u64,
    /// The window's boundary w (the counter's initial value without one).
    base: u64,
    /// The boundary's node time, judged once the window is checked.
    boundary_at: Option<u64>,
    /// The boundary's `Inc`: a gap notice in the window may not cover its value.
    boundary: Option<SignedInc>,
    /// The item with the latest node time so far (the boundary, then the window's items in
    /// value order): a later value dated before it is transferable evidence.
    latest: Option<PageItem>,
}

impl Retrieval {
    /// Starts a retrieve of `item` from node `peer`, trusting `trusted` authorities, with a
    /// fresh `nonce` from the caller's secure randomness.
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
            state: State::AwaitHead,
            cert: None,
            counter: CertifiedCounter { id: 0, initial: 0 },
            t: 0,
            next: 0,
            holes: BTreeMap::new(),
            offers: Vec::new(),
            gaps: Vec::new(),
            gap_count: 0,
            faults: Vec::new(),
            bytes: 0,
            receipts: Vec::new(),
            known: Vec::new(),
            watch: BTreeMap::new(),
            now,
            base: 0,
            boundary_at: None,
            boundary: None,
            latest: None,
        }
    }

    /// Makes this a seller's monitoring retrieve: each receipt's value must hold the same
    /// payload, no gap notice may cover it, and a window boundary above it may not be dated
    /// before it (each gives transferable evidence). Each receipt comes with its offer's
    /// bytes. Only the receipts on the item's counter count; every receipt must name the
    /// certificate the node answers under.
    pub fn watching(mut self, receipts: impl IntoIterator<Item = (Receipt, Vec<u8>)>) -> Self {
        self.receipts.extend(receipts);
        self
    }

    /// Device statements of this node the checker already holds besides receipts (the gap
    /// notices it saw in earlier retrieves): a gap notice over one of their values, or another
    /// payload at one, is transferable evidence. An honest node covers only values whose
    /// statements never left it, so a node cannot show one checker a gap notice and another a
    /// history in which that gap notice was "lost".
    pub fn knowing(mut self, incs: impl IntoIterator<Item = SignedInc>) -> Self {
        self.known.extend(incs);
        self
    }

    /// The first message to send.
    pub fn request(&self) -> RetrieveRequest {
        RetrieveRequest {
            item: self.item.key(),
            nonce: self.nonce,
            cert: None,
        }
    }

    fn page_request(&self) -> PageRequest {
        PageRequest {
            counter: self.counter.id,
            after: self.next.saturating_sub(1),
            upto: self.t,
            max_items: self.budget.page_items,
        }
    }

    /// Takes the node's head (encoded). Returns the first page request, or `None` when the
    /// counter has no value to check.
    pub fn on_head_bytes(&mut self, bytes: &[u8]) -> Result<Option<PageRequest>, Misbehaviour> {
        // Decoded before it is charged: a blob is malformed, never "over budget".
        let head = RetrieveHead::from_bytes(bytes)?;
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        if self.bytes > self.budget.max_bytes {
            return Err(Misbehaviour::OverBudget(BudgetKind::Bytes));
        }
        self.on_head(head)
    }

    /// Takes the node's head.
    pub fn on_head(&mut self, head: RetrieveHead) -> Result<Option<PageRequest>, Misbehaviour> {
        if !matches!(self.state, State::AwaitHead) {
            return Err(Misbehaviour::NoAnswer("a second head"));
        }
        head.cert.verify_for(&self.trusted, &self.peer)?;
        crate::verify::statements::require_counted(&head.cert)?;
        let cert = &head.cert.cert;
        let counter = cert.counter_for(&self.item.key());
        let read = &head.read.read;
        crate::verify::statements::check_read(
            &head.cert,
            &self.peer,
            &counter,
            &head.read,
            &self.nonce,
        )?;
        if read.value == u64::MAX {
            // A counter at its very end cannot be paged (values are checked up to t + 1).
            return Err(Misbehaviour::OverBudget(BudgetKind::Entries));
        }
        let cert_id = head.cert.id();
        let device = cert.device.id();
        let mut receipted: Vec<PageItem> = Vec::new();
        for (r, bytes) in std::mem::take(&mut self.receipts) {
            if r.cert_id != cert_id {
                return Err(Misbehaviour::OtherCertificate);
            }
            // A receipt of another counter (another item's) says nothing about this one.
            if r.inc.inc.counter == counter.id && r.inc.inc.device == device {
                receipted.push(r.entry(bytes));
                self.watch.insert(r.inc.inc.value, r.inc);
            }
        }
        for k in std::mem::take(&mut self.known) {
            let i = &k.inc;
            // Only the device's own statements about this counter hold the node to anything
            // (a statement whose signature fails is dropped, never turned against the node).
            if i.counter == counter.id
                && i.device == device
                && i.peer == self.peer
                && cert.device.verify_inc(&k).is_ok()
            {
                match self.watch.get(&i.value) {
                    // Two statements the checker holds at one value: the device signed both,
                    // so the node equivocated.
                    Some(w) if w.inc.payload != i.payload => {
                        return Err(Misbehaviour::Evidence(Box::new(Evidence::Equivocation {
                            cert: head.cert.clone(),
                            a: w.clone(),
                            b: k,
                        })));
                    }
                    Some(_) => {}
                    None => {
                        self.watch.insert(i.value, k);
                    }
                }
            }
        }
        if let Some((&v, _)) = self.watch.range(read.value + 1..).next() {
            return Err(Misbehaviour::ReadBelowReceipt {
                t: read.value,
                receipted: v,
            });
        }
        let base = match head.boundary {
            None => counter.initial,
            Some(b) => {
                let w = self.check_boundary(&head.cert, &counter, read.value, b, &receipted)?;
                self.boundary_at = self.latest.as_ref().map(PageItem::at);
                w
            }
        };
        if read.value - base > self.budget.max_entries {
            // Evidence the boundary already gave (a bad or over-long entry) wins over the
            // budget, which the node's own volume decides.
            if let Some(fault) = self.faults.first() {
                return Err(Misbehaviour::Evidence(Box::new(fault.clone())));
            }
            return Err(Misbehaviour::OverBudget(BudgetKind::Entries));
        }
        self.counter = counter;
        self.t = read.value;
        self.base = base;
        self.next = base + 1;
        self.cert = Some(head.cert);
        self.state = State::Paging;
        Ok(self.continue_or_finish()?.then(|| self.page_request()))
    }

    /// Checks the window's boundary `Inc(w)` (DESIGN.md §9): the certified device's, on the
    /// item's counter, above its initial value and at most t, binding its item; a monitoring
    /// seller's receipt at or below it dated no later than it (else the node bound its time
    /// backwards: evidence). How recent it is, is judged at the end ([`Self::finish`]).
    /// Returns w.
    fn check_boundary(
        &mut self,
        cert: &SignedCertificate,
        counter: &CertifiedCounter,
        t: u64,
        b: PageItem,
        receipted: &[PageItem],
    ) -> Result<u64, Misbehaviour> {
        crate::verify::statements::check_inc(cert, &self.peer, counter, b.inc())?;
        let w = b.value();
        if w > t {
            return Err(Misbehaviour::BeyondRead { value: w, t });
        }
        if !b.binds(&self.peer) {
            return Err(Misbehaviour::EntryMismatch { value: w });
        }
        // Held to every statement the checker holds (receipts and known ones): another
        // payload at w, or a gap notice over one of them, is evidence.
        if let Some(held) = self.watch.get(&w) {
            if held.inc.payload != b.inc().inc.payload {
                return Err(Misbehaviour::Evidence(Box::new(Evidence::Equivocation {
                    cert: cert.clone(),
                    a: held.clone(),
                    b: b.inc().clone(),
                })));
            }
        }
        match &b {
            PageItem::Gap {
                inc,
                at,
                first,
                last,
            } => {
                if first > last || *last >= w {
                    return Err(Misbehaviour::BadGap { value: w });
                }
                if let Some((_, held)) = self.watch.range(*first..=*last).next() {
                    return Err(Misbehaviour::Evidence(Box::new(Evidence::GapOverReceipt {
                        cert: cert.clone(),
                        receipt: held.clone(),
                        gap: inc.clone(),
                        at: *at,
                        first: *first,
                        last: *last,
                    })));
                }
            }
            PageItem::Entry { inc, at, bytes } => {
                // Its offer has expired; an entry that is no offer, or one of d's listed too
                // long, is a node fault all the same.
                match SignedOffer::from_bytes(bytes) {
                    Err(_) => self.faults.push(Evidence::BadEntry {
                        cert: cert.clone(),
                        inc: inc.clone(),
                        at: *at,
                        bytes: bytes.clone(),
                    }),
                    Ok(o)
                        if o.offer.key == self.item.key()
                            && o.offer.expiry > cert.cert.time.latest_expiry(*at) =>
                    {
                        self.faults.push(Evidence::OverlongEntry {
                            cert: cert.clone(),
                            inc: inc.clone(),
                            at: *at,
                            bytes: bytes.clone(),
                        })
                    }
                    Ok(_) => {}
                }
            }
        }
        for r in receipted.iter().filter(|r| r.value() <= w) {
            if r.value() < w && r.at() > b.at() {
                return Err(Misbehaviour::Evidence(Box::new(
                    Evidence::EntryAtBackwards {
                        cert: cert.clone(),
                        a: r.clone(),
                        b,
                    },
                )));
            }
        }
        self.boundary = Some(b.inc().clone());
        self.latest = Some(b);
        Ok(w)
    }

    /// Whether paging goes on; checks completeness when it does not.
    fn continue_or_finish(&mut self) -> Result<bool, Misbehaviour> {
        if self.next <= self.t {
            return Ok(true);
        }
        if let Some((&first, _)) = self.holes.first_key_value() {
            return Err(Misbehaviour::MissingEntry { value: first });
        }
        if self.gap_count > u64::from(self.budget.max_gaps) {
            // Evidence already in hand (an invented offer) wins over the count.
            if let Some(fault) = self.faults.first() {
                return Err(Misbehaviour::Evidence(Box::new(fault.clone())));
            }
            return Err(Misbehaviour::TooManyGaps {
                max: self.budget.max_gaps,
            });
        }
        self.state = State::Done;
        Ok(false)
    }

    /// Takes a page (encoded). The page is decoded and checked before its bytes are charged
    /// to the budget, so a node cannot swap the page that would convict it for a large blob
    /// and be "over budget" instead: a blob is malformed, and only entries that pass their
    /// checks (volume the node counted) can exhaust the budget.
    pub fn on_page_bytes(&mut self, bytes: &[u8]) -> Result<Option<PageRequest>, Misbehaviour> {
        let next = self.on_page(Page::from_bytes(bytes)?)?;
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        if self.bytes > self.budget.max_bytes {
            return Err(Misbehaviour::OverBudget(BudgetKind::Bytes));
        }
        Ok(next)
    }

    /// Takes a page. Returns the next page request, or `None` when every value is checked.
    pub fn on_page(&mut self, page: Page) -> Result<Option<PageRequest>, Misbehaviour> {
        if !matches!(self.state, State::Paging) {
            return Err(Misbehaviour::NoAnswer("a page outside a retrieve"));
        }
        if page.items.is_empty() {
            return Err(Misbehaviour::Truncated {
                next: self.next,
                t: self.t,
            });
        }
        let Some(cert) = self.cert.clone() else {
            return Err(Misbehaviour::NoAnswer("a head"));
        };
        let device = cert.cert.device.clone();
        let device_id = device.id();
        // Every Inc of the page in one batch; the bad one is named if the batch fails.
        let mut batch = BatchVerifier::new();
        for item in &page.items {
            // A TPM's statements are checked here and now; ed25519 ones are batched.
            if device.queue_inc(&mut batch, item.inc()).is_err() {
                return Err(Misbehaviour::BadStatementSignature {
                    what: "Inc",
                    value: item.value(),
                });
            }
        }
        if let Err(i) = batch.verify_each() {
            return Err(Misbehaviour::BadStatementSignature {
                what: "Inc",
                value: page.items.get(i).map(PageItem::value).unwrap_or(0),
            });
        }
        let mut ours: Vec<(SignedInc, u64, SignedOffer, Vec<u8>)> = Vec::new();
        let mut offer_batch = BatchVerifier::new();
        for item in page.items {
            let inc = &item.inc().inc;
            if inc.device != device_id {
                return Err(Misbehaviour::WrongDevice);
            }
            if inc.peer != self.peer {
                return Err(Misbehaviour::WrongPeer);
            }
            if inc.counter != self.counter.id {
                return Err(Misbehaviour::WrongCounter {
                    expected: self.counter.id,
                    got: inc.counter,
                });
            }
            let value = inc.value;
            if value > self.t {
                return Err(Misbehaviour::BeyondRead { value, t: self.t });
            }
            if value < self.next {
                return Err(Misbehaviour::OutOfOrder {
                    expected: self.next,
                    got: value,
                });
            }
            if value > self.next {
                // A hole waits for a later gap notice to cover it; one left open at the end is
                // a missing entry. Their number is bounded by the values (max_entries), and is
                // never a verdict by itself: a node that leaves many holes must not get "too
                // many gaps" for an omission.
                self.holes.insert(self.next, value - 1);
            }
            self.next = value + 1;
            if let Some(receipted) = self.watch.get(&value) {
                if receipted.inc.payload != inc.payload {
                    return Err(Misbehaviour::Evidence(Box::new(Evidence::Equivocation {
                        cert: cert.clone(),
                        a: receipted.clone(),
                        b: item.inc().clone(),
                    })));
                }
            }
            if !item.binds(&self.peer) {
                return Err(Misbehaviour::EntryMismatch { value });
            }
            self.check_time(&cert, &item)?;
            match item {
                PageItem::Entry { inc, at, bytes } => {
                    self.take_entry(&cert, inc, at, bytes, &mut ours, &mut offer_batch);
                }
                PageItem::Gap {
                    inc,
                    at,
                    first,
                    last,
                } => {
                    // A held statement (a receipt, a known one, or the boundary the node
                    // served: its value was counted and kept) may not be called lost.
                    let held = self
                        .watch
                        .range(first..=last)
                        .next()
                        .map(|(_, s)| s.clone())
                        .or_else(|| {
                            self.boundary
                                .clone()
                                .filter(|b| (first..=last).contains(&b.inc.value))
                        });
                    if let Some(receipted) = held {
                        return Err(Misbehaviour::Evidence(Box::new(Evidence::GapOverReceipt {
                            cert: cert.clone(),
                            receipt: receipted,
                            gap: inc,
                            at,
                            first,
                            last,
                        })));
                    }
                    self.cover(value, first, last)?;
                    // More gap notices than the reader takes is the verdict only once every
                    // value is accounted for (an open hole is a missing entry first).
                    self.gap_count = self.gap_count.saturating_add(1);
                    if self.gaps.len() <= self.budget.max_gaps as usize {
                        self.gaps.push(GapReport { inc, first, last });
                    }
                }
            }
        }
        // Seller signatures of the offers for d, in one batch; a bad one is evidence.
        if offer_batch.verify_each().is_ok() {
            self.offers
                .extend(ours.into_iter().map(|(inc, _, o, _)| (inc.inc.value, o)));
        } else {
            for (inc, at, offer, bytes) in ours {
                match offer.check_signature() {
                    Ok(()) => self.offers.push((inc.inc.value, offer)),
                    Err(_) => self.faults.push(Evidence::BadEntry {
                        cert: cert.clone(),
                        inc,
                        at,
                        bytes,
                    }),
                }
            }
        }
        Ok(self.continue_or_finish()?.then(|| self.page_request()))
    }

    /// Node time along the window: never backwards from the latest item so far (the
    /// boundary's, at first). An item dated before it is transferable evidence.
    fn check_time(
        &mut self,
        cert: &SignedCertificate,
        item: &PageItem,
    ) -> Result<(), Misbehaviour> {
        match &self.latest {
            Some(l) if item.at() < l.at() => Err(Misbehaviour::Evidence(Box::new(
                Evidence::EntryAtBackwards {
                    cert: cert.clone(),
                    a: l.clone(),
                    b: item.clone(),
                },
            ))),
            // Kept only when the time moves: items of one batch share it.
            Some(l) if item.at() == l.at() => Ok(()),
            _ => {
                self.latest = Some(item.clone());
                Ok(())
            }
        }
    }

    /// Checks an entry whose bytes the `Inc` binds; keeps it if it is an offer for d.
    fn take_entry(
        &mut self,
        cert: &SignedCertificate,
        inc: SignedInc,
        at: u64,
        bytes: Vec<u8>,
        ours: &mut Vec<(SignedInc, u64, SignedOffer, Vec<u8>)>,
        batch: &mut BatchVerifier,
    ) {
        let offer = match SignedOffer::from_bytes(&bytes) {
            Ok(o) => o,
            Err(_) => {
                self.faults.push(Evidence::BadEntry {
                    cert: cert.clone(),
                    inc,
                    at,
                    bytes,
                });
                return;
            }
        };
        let about_d = offer.offer.key == self.item.key()
            || offer.offer.description == self.item.description();
        if !about_d {
            return;
        }
        if entry_fault_key(&offer) {
            self.faults.push(Evidence::BadEntry {
                cert: cert.clone(),
                inc,
                at,
                bytes,
            });
            return;
        }
        // Listed longer than the certificate allows at the entry's time: a node fault, and
        // the offer is not used (DESIGN.md §9).
        if offer.offer.expiry > cert.cert.time.latest_expiry(at) {
            self.faults.push(Evidence::OverlongEntry {
                cert: cert.clone(),
                inc,
                at,
                bytes,
            });
            return;
        }
        batch.push(
            offer.offer.seller,
            tags::OFFER,
            &offer.offer.to_bytes(),
            offer.signature,
        );
        ours.push((inc, at, offer, bytes));
    }

    /// Marks `first..=last` as covered by the gap notice at `value`: each of them must be a
    /// value not served so far. Values at or before the window's boundary are outside what
    /// this retrieve checks (an honest node's notice may cover values lost before the value
    /// that became the boundary), so only the part inside the window is covered.
    fn cover(&mut self, value: u64, first: u64, last: u64) -> Result<(), Misbehaviour> {
        if first > last || last >= value {
            return Err(Misbehaviour::BadGap { value });
        }
        let first = if self.boundary.is_some() {
            if last <= self.base {
                return Ok(());
            }
            first.max(self.base + 1)
        } else {
            first
        };
        // The one hole that could hold [first, last]: the last one starting at or before it.
        let Some((&a, &b)) = self.holes.range(..=first).next_back() else {
            return Err(Misbehaviour::BadGap { value });
        };
        if last > b {
            return Err(Misbehaviour::BadGap { value });
        }
        self.holes.remove(&a);
        if a < first {
            self.holes.insert(a, first - 1);
        }
        if last < b {
            self.holes.insert(last + 1, b);
        }
        Ok(())
    }

    /// The verdicts on node time, given once every value of the window passed its checks (so
    /// dating a value ahead cannot turn a failed check into a disagreement): the latest node
    /// time beyond the reader's clock + skew, or a boundary too recent by up to 2·skew, is a
    /// clock disagreement; a boundary more recent than that hides offers that may be live.
    fn judge_time(&self, cert: &SignedCertificate) -> Result<(), Misbehaviour> {
        let rules = cert.cert.time;
        let skew = rules.skew;
        // A node time beyond this clock + skew first: one of the two clocks is wrong, and an
        // honest node seen from a lagging clock must not be accused of a recent boundary. (A
        // cheater that dates a value ahead to get this label instead gains nothing: the
        // answer is not used.)
        if let Some(at) = self.latest.as_ref().map(PageItem::at) {
            if rules.ahead(at, self.now) {
                return Err(Misbehaviour::ClockDisagreement {
                    at,
                    now: self.now,
                    skew,
                });
            }
        }
        if let Some(at) = self.boundary_at {
            let edge = rules.window_edge(self.now);
            if at >= edge.saturating_add(2 * u64::from(skew)) {
                return Err(Misbehaviour::RecentBoundary { at, edge });
            }
            if at >= edge {
                return Err(Misbehaviour::ClockDisagreement {
                    at,
                    now: self.now,
                    skew,
                });
            }
        }
        Ok(())
    }

    /// Ends the session: the outcome, once every value up to t was checked.
    pub fn finish(self) -> Result<Outcome, Misbehaviour> {
        if let (State::Done, Some(cert)) = (&self.state, &self.cert) {
            if let Err(m) = self.judge_time(cert) {
                // Evidence in hand (a bad or over-long entry) wins over a verdict on time: a
                // node cannot turn it into a disagreement by dating a value ahead.
                return Err(match self.faults.first() {
                    Some(f) => Misbehaviour::Evidence(Box::new(f.clone())),
                    None => m,
                });
            }
        }
        match (self.state, self.cert) {
            (State::Done, Some(cert)) => Ok(Outcome {
                peer: self.peer,
                cert,
                counter: self.counter,
                t: self.t,
                base: self.base,
                offers: self.offers,
                gaps: self.gaps,
                faults: self.faults,
                bytes: self.bytes,
            }),
            (State::Paging, _) => Err(Misbehaviour::Truncated {
                next: self.next,
                t: self.t,
            }),
            _ => Err(Misbehaviour::NoAnswer("a head")),
        }
    }
}

fn entry_fault_key(offer: &SignedOffer) -> bool {
    offer.check_key().is_err()
}

/// Whether an entry's bytes are a valid offer (used by tests and tools).
pub fn is_valid_entry(bytes: &[u8]) -> bool {
    entry_fault(bytes).is_none()
}

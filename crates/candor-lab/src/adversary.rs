//! The adversary suite: a listing node built from the honest one that cheats in one way.
//!
//! Each [`Strategy`] is something a rational listing node might try (DESIGN.md §2). The node
//! keeps a real device and a real store; it cheats only in what it counts and what it sends.

use candor_core::{
    CounterId, Currency, Decode, Encode, Item, ItemKey, Keypair, Page, PageItem, PageRequest,
    PeerId, Protocol, PublicKey, RetrieveHead, RetrieveRequest, SignedOffer, MAX_PAGE_ITEMS,
};
use candor_device::TrustedDevice;
use candor_listing::{Listing, ListingNode, Query, Refusal, MAX_PAGE_BYTES};
use candor_store::PendingItem;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// How a cheating listing node cheats.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// No cheating (the control).
    Honest,
    /// Leaves out one offer for the item.
    OmitEntry,
    /// Leaves out the item's offers that are cheaper than its favourite seller's.
    OmitCheaperThan(PublicKey),
    /// Changes the price of an offer it serves.
    ChangePrice,
    /// Counts an offer in the name of a seller who never made it.
    InventOffer {
        /// The seller it impersonates.
        victim: PublicKey,
    },
    /// Serves values out of order.
    Reorder,
    /// Answers with a `Read` made earlier, for another nonce.
    StaleRead,
    /// Answers every buyer with the first buyer's `Read`.
    ReplayAnswer,
    /// Stops paging half way.
    StopEarly,
    /// Claims a smaller t than its device signed.
    SmallerT,
    /// Answers with a `Read` of another counter than the item's.
    OtherCounter,
    /// Serves another item's offer in place of one for the item.
    OtherItemUnderD,
    /// Serves a seller's superseded offer in place of its newer one.
    ReplaySuperseded,
    /// Sends one value twice.
    Duplicate,
    /// Covers a receipted value with a gap notice and leaves its offer out.
    GapOverReceipt,
    /// Stuffs the item with this many offers from sybil sellers.
    SybilStuffing {
        /// How many.
        offers: u32,
    },
    /// Refuses to answer.
    Refuse,
}

impl Strategy {
    /// Every strategy, with placeholders for those that take a key.
    pub fn all(favourite: PublicKey, victim: PublicKey, sybils: u32) -> Vec<Strategy> {
        vec![
            Self::Honest,
            Self::OmitEntry,
            Self::OmitCheaperThan(favourite),
            Self::ChangePrice,
            Self::InventOffer { victim },
            Self::Reorder,
            Self::StaleRead,
            Self::ReplayAnswer,
            Self::StopEarly,
            Self::SmallerT,
            Self::OtherCounter,
            Self::OtherItemUnderD,
            Self::ReplaySuperseded,
            Self::Duplicate,
            Self::GapOverReceipt,
            Self::SybilStuffing { offers: sybils },
            Self::Refuse,
        ]
    }

    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Honest => "honest",
            Self::OmitEntry => "omit-entry",
            Self::OmitCheaperThan(_) => "omit-cheaper-than-favourite",
            Self::ChangePrice => "change-price",
            Self::InventOffer { .. } => "invent-offer",
            Self::Reorder => "reorder",
            Self::StaleRead => "stale-read",
            Self::ReplayAnswer => "replay-answer",
            Self::StopEarly => "stop-early",
            Self::SmallerT => "smaller-t",
            Self::OtherCounter => "other-counter",
            Self::OtherItemUnderD => "other-item-under-d",
            Self::ReplaySuperseded => "replay-superseded",
            Self::Duplicate => "duplicate",
            Self::GapOverReceipt => "gap-over-receipt",
            Self::SybilStuffing { .. } => "sybil-stuffing",
            Self::Refuse => "refuse",
        }
    }
}

#[derive(Debug, Default)]
struct CheatState {
    /// In any-item mode, the item of the retrieve in progress.
    current: Option<ItemKey>,
    stale_head: Option<RetrieveHead>,
    first_head: Option<RetrieveHead>,
    omit: BTreeSet<u64>,
    substitute: BTreeMap<u64, Vec<u8>>,
    pages: u32,
}

/// A listing node that cheats with one [`Strategy`] about one target item.
pub struct CheatingNode<D> {
    honest: ListingNode<D>,
    strategy: Strategy,
    target: Item,
    any_item: bool,
    state: Mutex<CheatState>,
}

impl<D> std::fmt::Debug for CheatingNode<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheatingNode")
            .field("strategy", &self.strategy)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<D: TrustedDevice> CheatingNode<D> {
    /// A cheating node built from `honest`, cheating with `strategy` about `target`.
    pub fn new(honest: ListingNode<D>, strategy: Strategy, target: Item) -> Self {
        Self {
            honest,
            strategy,
            target,
            any_item: false,
            state: Mutex::new(CheatState::default()),
        }
    }

    /// A cheating node that cheats about whichever item a buyer asks for (for strategies
    /// that act at retrieve time; those that count extra items act on `placeholder`).
    pub fn any_item(honest: ListingNode<D>, strategy: Strategy, placeholder: Item) -> Self {
        let mut node = Self::new(honest, strategy, placeholder);
        node.any_item = true;
        node
    }

    /// The honest node inside.
    pub fn honest(&self) -> &ListingNode<D> {
        &self.honest
    }

    /// The strategy.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CheatState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The item cheated about now.
    fn key(&self) -> ItemKey {
        if self.any_item {
            if let Some(k) = self.state().current {
                return k;
            }
        }
        self.target.key()
    }

    fn counter(&self) -> CounterId {
        self.honest.certificate().cert.counter_for(&self.key()).id
    }

    /// The stored items of the target's counter, with their offers where they decode.
    fn scan(&self) -> Vec<(PageItem, Option<SignedOffer>)> {
        let counter = self.counter();
        let Ok(Some(head)) = self.honest.store().head(counter) else {
            return Vec::new();
        };
        let mut after = 0;
        let mut out = Vec::new();
        while let Ok(items) =
            self.honest
                .store()
                .page(counter, after, head, MAX_PAGE_ITEMS, MAX_PAGE_BYTES)
        {
            let Some(last) = items.last().map(PageItem::value) else {
                break;
            };
            for item in items {
                let offer = match &item {
                    PageItem::Entry { bytes, .. } => SignedOffer::from_bytes(bytes).ok(),
                    PageItem::Gap { .. } => None,
                };
                out.push((item, offer));
            }
            after = last;
        }
        out
    }

    fn for_target(&self, o: &Option<SignedOffer>) -> bool {
        let key = self.key();
        o.as_ref().is_some_and(|o| o.offer.key == key)
    }

    /// Does what the strategy needs done before buyers come: count invented, sybil or gap
    /// items with the real device. Call after the honest publishes.
    pub fn prepare(&self, now: u64) {
        let counter = self.counter();
        let mut rng = rand_core::OsRng;
        let items: Vec<PendingItem> = match &self.strategy {
            Self_::InventOffer { victim } => {
                let forger = Keypair::generate(&mut rng);
                let mut o =
                    SignedOffer::sign(&forger, &self.target, 1, Currency::EUR, 1, now + 3600, 1);
                o.offer.seller = *victim;
                vec![PendingItem::Entry {
                    at: now,
                    bytes: o.to_bytes(),
                }]
            }
            Self_::SybilStuffing { offers } => (0..*offers)
                .map(|i| {
                    let sybil = Keypair::generate(&mut rng);
                    let o = SignedOffer::sign(
                        &sybil,
                        &self.target,
                        10_000 + u64::from(i),
                        Currency::EUR,
                        1,
                        now + 3600,
                        1,
                    );
                    PendingItem::Entry {
                        at: now,
                        bytes: o.to_bytes(),
                    }
                })
                .collect(),
            Self_::GapOverReceipt => {
                let Some(x) = self
                    .scan()
                    .into_iter()
                    .find(|(_, o)| self.for_target(o))
                    .map(|(i, _)| i.value())
                else {
                    return;
                };
                self.state().omit.insert(x);
                vec![PendingItem::Gap {
                    at: now,
                    first: x,
                    last: x,
                }]
            }
            Self_::StaleRead => {
                if let Ok(h) = self.honest_answer(&Query::Head(RetrieveRequest {
                    item: self.target.key(),
                    nonce: [0xAA; 32],
                    cert: None,
                })) {
                    self.state().stale_head = Some(h);
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        let tagged = items
            .into_iter()
            .enumerate()
            .map(|(i, it)| (counter, it, i))
            .collect();
        if let Err(e) = self.honest.count_raw(tagged) {
            tracing::warn!(?e, "cheating node could not prepare");
        }
    }

    /// Works out, from what is stored, which values to leave out or alter.
    fn plan(&self) {
        let scan = self.scan();
        let key = self.key();
        let for_target = |o: &Option<SignedOffer>| o.as_ref().is_some_and(|o| o.offer.key == key);
        let mine: Vec<(u64, SignedOffer)> = scan
            .iter()
            .filter(|(_, o)| for_target(o))
            .filter_map(|(i, o)| o.clone().map(|o| (i.value(), o)))
            .collect();
        let mut st = self.state();
        match &self.strategy {
            Self_::OmitEntry => {
                if let Some((v, _)) = mine.first() {
                    st.omit.insert(*v);
                }
            }
            Self_::OmitCheaperThan(fav) => {
                let fav_price = mine
                    .iter()
                    .filter(|(_, o)| o.offer.seller == *fav)
                    .map(|(_, o)| o.offer.price)
                    .min()
                    .unwrap_or(0);
                for (v, o) in &mine {
                    if o.offer.seller != *fav && o.offer.price < fav_price {
                        st.omit.insert(*v);
                    }
                }
            }
            Self_::ChangePrice => {
                if let Some((v, o)) = mine.first() {
                    let mut o = o.clone();
                    o.offer.price = o.offer.price / 2 + 1;
                    st.substitute.insert(*v, o.to_bytes());
                }
            }
            Self_::OtherItemUnderD => {
                let other = scan.iter().find_map(|(i, o)| match (i, o) {
                    (PageItem::Entry { bytes, .. }, Some(_)) if !for_target(o) => {
                        Some(bytes.clone())
                    }
                    _ => None,
                });
                if let (Some((v, _)), Some(bytes)) = (mine.first(), other) {
                    st.substitute.insert(*v, bytes);
                }
            }
            Self_::ReplaySuperseded => {
                'found: for (i, (v_old, old)) in mine.iter().enumerate() {
                    for (v_new, new) in mine.iter().skip(i + 1) {
                        if new.offer.seller == old.offer.seller
                            && new.offer.serial > old.offer.serial
                        {
                            st.substitute.insert(*v_new, old.to_bytes());
                            break 'found;
                        }
                    }
                    let _ = v_old;
                }
            }
            _ => {}
        }
    }
}

type Self_ = Strategy;

impl<D: TrustedDevice> Listing for CheatingNode<D> {
    fn peer(&self) -> PeerId {
        self.honest.peer().clone()
    }

    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        Listing::publish(&self.honest, offer, now)
    }

    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        match (query, self.honest.protocol()) {
            (Query::Head(req), Protocol::Entries) => self.head(req).map(|h| h.to_bytes()),
            (Query::Head(req), Protocol::Steps) => {
                self.step_head(req).map(|h| h.encode_for(req.cert.as_ref()))
            }
            (Query::Page(req), Protocol::Entries) => self.page(req).map(|p| p.to_bytes()),
            (Query::List(req), Protocol::Steps) => self.list_page(req).map(|p| p.to_bytes()),
            _ => Listing::ask(&self.honest, query),
        }
    }
}

fn refused(e: impl std::fmt::Display) -> Refusal {
    Refusal::refused(e.to_string())
}

impl<D: TrustedDevice> CheatingNode<D> {
    /// The honest node's answer to `query`, decoded as the message of its protocol (the
    /// strategies then alter it).
    fn honest_answer<T: Decode>(&self, query: &Query) -> Result<T, Refusal> {
        let bytes = self.honest.answer(query).map_err(refused)?;
        T::from_bytes(&bytes).map_err(refused)
    }

    fn step_head(&self, req: &RetrieveRequest) -> Result<candor_core::StepHead, Refusal> {
        let req = match &self.strategy {
            Self_::Refuse => return Err(Refusal::refused("busy, try another node")),
            // A Read made for another nonce than the buyer's.
            Self_::StaleRead | Self_::ReplayAnswer => RetrieveRequest {
                item: req.item,
                nonce: [0xAA; 32],
                cert: req.cert,
            },
            _ => req.clone(),
        };
        // The honest node left its certificate out if the request named it.
        let named = req.cert.map(|_| self.honest.certificate());
        let bytes = self
            .honest
            .answer(&Query::Head(req.clone()))
            .map_err(refused)?;
        let (mut head, _) = candor_core::StepHead::decode(&bytes, &req, named).map_err(refused)?;
        if matches!(self.strategy, Self_::SmallerT) && head.read.read.value > 0 {
            head.read.read.value -= 1;
        }
        Ok(head)
    }

    fn list_page(&self, req: &candor_core::ListRequest) -> Result<candor_core::ListPage, Refusal> {
        let mut page: candor_core::ListPage = self.honest_answer(&Query::List(*req))?;
        match &self.strategy {
            Self_::OmitEntry if req.from == 0 && !page.offers.is_empty() => {
                page.offers.remove(0);
            }
            Self_::ChangePrice if req.from == 0 => {
                if let Some(first) = page.offers.first_mut() {
                    if let Ok(mut o) = SignedOffer::from_bytes(first) {
                        o.offer.price = o.offer.price / 2 + 1;
                        *first = o.to_bytes();
                    }
                }
            }
            Self_::Reorder if page.offers.len() >= 2 => page.offers.swap(0, 1),
            Self_::Duplicate => {
                if let Some(first) = page.offers.first().cloned() {
                    page.offers.insert(1, first);
                }
            }
            _ => {}
        }
        Ok(page)
    }

    fn head(&self, req: &RetrieveRequest) -> Result<RetrieveHead, Refusal> {
        match &self.strategy {
            Self_::Refuse => return Err(Refusal::refused("busy, try another node")),
            Self_::StaleRead => {
                if let Some(h) = self.state().stale_head.clone() {
                    return Ok(h);
                }
                // No Read made earlier: make one now for an old nonce and keep serving it.
                let h: RetrieveHead = self.honest_answer(&Query::Head(RetrieveRequest {
                    item: req.item,
                    nonce: [0xAA; 32],
                    cert: None,
                }))?;
                self.state().stale_head = Some(h.clone());
                return Ok(h);
            }
            Self_::ReplayAnswer => {
                if let Some(h) = self.state().first_head.clone() {
                    return Ok(h);
                }
            }
            Self_::OtherCounter => {
                let mine = self.honest.certificate().cert.counter_for(&req.item).id;
                let ids = self.honest.certificate().cert.counters.len() as u32;
                let other = if ids > 1 { (mine + 1) % ids } else { mine + 1 };
                let read = self
                    .honest
                    .read_raw(other, req.nonce)
                    .map_err(|e| Refusal::refused(e.to_string()))?;
                return Ok(RetrieveHead {
                    cert: self.honest.certificate().clone(),
                    read,
                    boundary: None,
                });
            }
            _ => {}
        }
        {
            let mut st = self.state();
            st.current = Some(req.item);
            if self.any_item {
                // A fresh plan for this item.
                st.omit.clear();
                st.substitute.clear();
            }
            st.pages = 0;
        }
        self.plan();
        let mut head: RetrieveHead = self.honest_answer(&Query::Head(req.clone()))?;
        if matches!(self.strategy, Self_::SmallerT) && head.read.read.value > 0 {
            head.read.read.value -= 1;
        }
        if matches!(self.strategy, Self_::ReplayAnswer) {
            self.state().first_head = Some(head.clone());
        }
        Ok(head)
    }

    fn page(&self, req: &PageRequest) -> Result<Page, Refusal> {
        let mut page: Page = self.honest_answer(&Query::Page(*req))?;
        let mut st = self.state();
        st.pages += 1;
        page.items.retain(|i| !st.omit.contains(&i.value()));
        for item in page.items.iter_mut() {
            if let PageItem::Entry { inc, bytes, .. } = item {
                if let Some(b) = st.substitute.get(&inc.inc.value) {
                    *bytes = b.clone();
                }
            }
        }
        match self.strategy {
            Self_::Reorder if page.items.len() >= 2 => page.items.swap(0, 1),
            Self_::Duplicate => {
                if let Some(first) = page.items.first().cloned() {
                    page.items.insert(1, first);
                }
            }
            Self_::StopEarly => {
                if st.pages == 1 {
                    let keep = page.items.len() / 2;
                    page.items.truncate(keep);
                } else {
                    page.items.clear();
                }
            }
            _ => {}
        }
        Ok(page)
    }
}

//! The node's side: the tree, its snapshots and the steps it prepares (the prover).

#[allow(unused_imports)]
use super::*;
use crate::offer::SignedOffer;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Why a step does not take an offer (DESIGN.md §9); the node refuses it at publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotAdmitted {
    /// The bytes are not an offer for the item they were filed under.
    #[error("not an offer for this item")]
    Invalid,
    /// The offer has expired by the step's time.
    #[error("the offer has expired (at {expiry}, the listing's time is {at})")]
    Expired {
        /// Its expiry.
        expiry: u64,
        /// The step's time.
        at: u64,
    },
    /// The listing holds a record of this seller for the item with an equal or higher serial.
    #[error(
        "the listing holds serial {held} of this seller for the item: publish a higher serial"
    )]
    Stale {
        /// The serial held.
        held: u64,
    },
    /// An offer that replaces another must not expire before it (its tombstone must outlive
    /// what it supersedes).
    #[error("an offer that replaces another must not expire before it (expiry {expiry})")]
    ShorterThanReplaced {
        /// The replaced offer's expiry.
        expiry: u64,
    },
    /// Another offer of this seller for this item is in the same step.
    #[error("another offer of this seller for the item is in this step: publish again")]
    SameStep,
    /// The step touches as many items, or carries as many records, as a step may.
    #[error("the step is full: publish again")]
    StepFull,
    /// The item's list is full.
    #[error("the item's list holds the most records a list may ({max})")]
    Full {
        /// [`MAX_LIVE`].
        max: usize,
    },
}

/// A step made by [`StepState::prepare`], waiting for its `Inc`.
#[derive(Debug, Clone)]
pub struct PreparedStep {
    /// The header the `Inc` must bind.
    pub header: StepHeader,
    /// The offers the step adds.
    pub batch: Vec<Vec<u8>>,
    /// The offers it removes, sorted by item then list place.
    pub removed: Vec<Vec<u8>>,
    /// The touched items' old lists.
    pub old: Vec<(ItemKey, Option<OldList>)>,
    /// The transition proof.
    pub proof: MultiProof,
    /// Where each added offer lands, in batch order.
    pub placements: Vec<Placement>,
    /// The batch offers the step does not take (their index in the batch given to
    /// `prepare`, and why).
    pub refused: Vec<(usize, NotAdmitted)>,
}

/// A listing node's scheme-M state: the tree, every item's live list, the last step. Pure:
/// the node persists steps and replays them into a fresh state on open.
#[derive(Debug, Clone)]
pub struct StepState {
    // Fields are visible to the module's tests (which forge states), nowhere else.
    pub(super) tree: Smt,
    /// Snapshots of the tree after recent steps (copy-on-write, so cheap), for proofs under
    /// past roots.
    pub(super) history: BTreeMap<u64, Smt>,
    pub(super) lists: BTreeMap<ItemKey, Arc<LiveList>>,
    /// Lists replaced by a recent step, by (item, the step that replaced them): the list an
    /// item had at a past value, for pages of a head that a later step overtook.
    pub(super) versions: BTreeMap<(ItemKey, u64), Option<Arc<LiveList>>>,
    /// The same replacements in step order, for pruning.
    pub(super) replaced: std::collections::VecDeque<(u64, ItemKey)>,
    /// The lowest value whose lists the versions still tell.
    pub(super) kept_from: u64,
    /// Live records by expiry, for the sweep of expired ones.
    pub(super) expiries: BTreeSet<(u64, ItemKey, SortKey)>,
    pub(super) counter: CertifiedCounter,
    pub(super) value: u64,
    pub(super) total: u64,
    pub(super) last: Option<SignedStep>,
    /// The gap steps on the chain, oldest first (a buyer gets them with every head).
    pub(super) gaps: Vec<SignedStep>,
    /// Every step's value and node time, in value order (for the audit horizon).
    pub(super) times: Vec<(u64, u64)>,
}

impl StepState {
    /// The state at the counter's base value: the empty map.
    pub fn new(counter: CertifiedCounter) -> Self {
        Self {
            tree: Smt::new(),
            history: BTreeMap::new(),
            lists: BTreeMap::new(),
            versions: BTreeMap::new(),
            replaced: Default::default(),
            kept_from: counter.initial,
            expiries: BTreeSet::new(),
            counter,
            value: counter.initial,
            total: 0,
            last: None,
            gaps: Vec::new(),
            times: Vec::new(),
        }
    }

    /// A state holding `lists` after step `value` (`last` its signed header), for tools and
    /// benchmarks that build a large tree without replaying every step.
    pub fn from_lists(
        counter: CertifiedCounter,
        lists: impl IntoIterator<Item = (ItemKey, LiveList)>,
        value: u64,
        total: u64,
        last: Option<SignedStep>,
    ) -> Self {
        let mut s = Self::new(counter);
        for (d, l) in lists {
            s.tree.insert(d.0 .0, l.leaf().value_hash());
            for r in &l.records {
                s.expiries.insert((r.expiry, d, r.key));
            }
            s.lists.insert(d, Arc::new(l));
        }
        s.value = value;
        s.total = total;
        s.last = last;
        // No versions of earlier lists: only the lists at `value` are known.
        s.kept_from = value;
        s
    }

    /// The state a node's store holds after its last step: the live `lists` and every step's
    /// signed header (`headers`, in value order). None when the lists do not fold to the root
    /// the last header binds (the store is corrupt).
    pub fn restore(
        counter: CertifiedCounter,
        lists: impl IntoIterator<Item = (ItemKey, LiveList)>,
        headers: Vec<SignedStep>,
    ) -> Option<Self> {
        let last = headers.last().cloned();
        let value = last.as_ref().map_or(counter.initial, |s| s.header.value);
        let total = last.as_ref().map_or(0, |s| s.header.total_offers);
        let mut s = Self::from_lists(counter, lists, value, total, last);
        let root = s
            .last
            .as_ref()
            .map_or(Smt::new().root(), |l| l.header.new_root);
        if s.tree.root() != root {
            return None;
        }
        // Proofs under past roots are kept from here on.
        s.history.insert(s.value, s.tree.clone());
        s.times = headers
            .iter()
            .map(|h| (h.header.value, h.header.at))
            .collect();
        s.gaps = headers
            .into_iter()
            .filter(|h| h.header.gap().is_some())
            .collect();
        Some(s)
    }

    /// Rebuilds the lists the last `steps` replaced (their whole proofs, in value order), so
    /// that a restart still serves the pages of a head made just before it (`list_at`): each
    /// step's old lists, as (place, hash), take their bytes from the list after the step or
    /// from the offers it removed. Only the unbroken chain of steps that ends at this state's
    /// value is used (a step missing or undecodable below it ends the rewind there). False,
    /// and nothing kept, when a step does not fit the lists after it (a corrupt store).
    pub fn rewind(&mut self, steps: &[StepProof]) -> bool {
        let mut after: BTreeMap<ItemKey, Option<Arc<LiveList>>> = BTreeMap::new();
        let mut versions = Vec::new();
        let mut expected = self.value;
        let mut from = None;
        for sp in steps.iter().rev() {
            let value = sp.step.header.value;
            if value != expected || value <= self.counter.initial {
                break;
            }
            let removed: BTreeMap<Digest, &Vec<u8>> =
                sp.removed.iter().map(|b| (offer_hash(b), b)).collect();
            for (d, old) in &sp.old {
                let now = after
                    .entry(*d)
                    .or_insert_with(|| self.lists.get(d).cloned())
                    .clone();
                let kept: BTreeMap<Digest, &Record> = now
                    .iter()
                    .flat_map(|l| l.records.iter().map(|r| (r.hash, r)))
                    .collect();
                let before = match old {
                    None => None,
                    Some(o) => {
                        let mut records = Vec::with_capacity(o.records.len());
                        for r in &o.records {
                            let record = match (kept.get(&r.hash), removed.get(&r.hash)) {
                                (Some(x), _) => (*x).clone(),
                                (None, Some(bytes)) => match SignedOffer::from_bytes(bytes) {
                                    Ok(offer) => Record::of(&offer, bytes, 0),
                                    Err(_) => return false,
                                },
                                (None, None) => return false,
                            };
                            records.push(record);
                        }
                        Some(Arc::new(LiveList {
                            last_changed: o.last_changed,
                            records,
                        }))
                    }
                };
                after.insert(*d, before.clone());
                versions.push((value, *d, before));
            }
            expected = sp.step.header.prev_value;
            from = Some(expected);
        }
        let Some(from) = from else {
            return true;
        };
        for (value, d, before) in versions {
            self.versions.insert((d, value), before);
            self.replaced.push_front((value, d));
        }
        self.kept_from = from.max(self.counter.initial);
        true
    }

    /// Forgets the node time and the gap steps of the steps below `value` (the audit horizon):
    /// no head, audit or horizon needs them again, so memory follows the window, not all
    /// history.
    pub fn forget_before(&mut self, value: u64) {
        self.times.retain(|(v, _)| *v >= value);
        self.gaps.retain(|g| g.header.value >= value);
    }

    /// The newest step dated before `edge` (node time), if any: the audit horizon a node
    /// whose window edge is `edge` may prune up to (DESIGN.md §9). Node time never goes
    /// backwards along the chain, so the steps before `edge` are a prefix.
    pub fn horizon_below(&self, edge: u64) -> Option<u64> {
        let i = self.times.partition_point(|(_, at)| *at < edge);
        i.checked_sub(1).map(|i| self.times[i].0)
    }

    /// This state's tree and lists, with `last` as the step at its value.
    pub fn with_tree_of(mut self, other: StepState, last: SignedStep) -> Self {
        self.tree = other.tree;
        self.lists = other.lists;
        self.expiries = other.expiries;
        self.counter = other.counter;
        self.value = last.header.value;
        self.total = last.header.total_offers;
        self.last = Some(last);
        self.versions.clear();
        self.replaced.clear();
        self.kept_from = self.value;
        self
    }

    /// The proof for `d` under the root after step `value`, if that step is the last, recent
    /// enough to have a snapshot, or the base (whose tree is empty).
    pub fn prove_at(&self, d: &ItemKey, value: u64) -> Option<MultiProof> {
        if value == self.counter.initial {
            return Some(Smt::new().prove(&[d.0 .0]));
        }
        if value == self.value {
            return Some(self.tree.prove(&[d.0 .0]));
        }
        self.history.get(&value).map(|t| t.prove(&[d.0 .0]))
    }

    /// Offers committed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The current root.
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// The counter's certified initial value (the base).
    pub fn base(&self) -> u64 {
        self.counter.initial
    }

    /// The counter this state runs on.
    pub fn prev_counter(&self) -> CounterId {
        self.counter.id
    }

    /// The counter value of the last step (the base if none).
    pub fn value(&self) -> u64 {
        self.value
    }

    /// The last step.
    pub fn last(&self) -> Option<&SignedStep> {
        self.last.as_ref()
    }

    /// The value of the last gap step on the chain (the base when there is none).
    fn last_gap(&self) -> u64 {
        self.last
            .as_ref()
            .map_or(self.counter.initial, |s| s.header.last_gap())
    }

    /// The node time the last step bound (0 before the first): a gap step binds it again,
    /// and no later step binds less (DESIGN.md §9).
    pub fn at(&self) -> u64 {
        self.last.as_ref().map_or(0, |s| s.header.at)
    }

    /// The gap steps on the chain to the last step, newest first, as a head carries them
    /// (at most [`MAX_GAP_STEPS`]: a node with more has lost too much to be checked).
    pub fn gap_steps(&self) -> Vec<SignedStep> {
        self.gaps
            .iter()
            .rev()
            .take(MAX_GAP_STEPS)
            .cloned()
            .collect()
    }

    /// Item `d`'s leaf (None: absent) and the proof for it under the current root.
    pub fn prove(&self, d: &ItemKey) -> (Option<Leaf>, MultiProof) {
        (
            self.lists.get(d).map(|l| l.leaf()),
            self.tree.prove(&[d.0 .0]),
        )
    }

    /// Item `d`'s live list now (None: absent).
    pub fn list(&self, d: &ItemKey) -> Option<&Arc<LiveList>> {
        self.lists.get(d)
    }

    /// Item `d`'s list as it was after step `value`: `Ok(None)` when d was absent then,
    /// `Err(())` when that is older than the versions kept.
    #[allow(clippy::result_unit_err)]
    pub fn list_at(&self, d: &ItemKey, value: u64) -> Result<Option<Arc<LiveList>>, ()> {
        if value > self.value || value < self.kept_from {
            return Err(());
        }
        // The first replacement after `value` holds the list that was there at `value`.
        match self
            .versions
            .range((*d, value.saturating_add(1))..=(*d, u64::MAX))
            .next()
        {
            Some((_, l)) => Ok(l.clone()),
            None => Ok(self.lists.get(d).cloned()),
        }
    }

    /// A cheating node's move (the `adversary` feature, for adversary tests and the demo): the
    /// next step, at `now`, with item `d`'s first record swept as if it had expired, whatever
    /// its expiry — a removal without a justification. None when d has no record.
    #[cfg(feature = "adversary")]
    pub fn prepare_unjust_removal(&mut self, d: &ItemKey, now: u64) -> Option<PreparedStep> {
        let key = self.lists.get(d)?.records.first()?.key;
        self.expiries.insert((0, *d, key));
        let p = self.prepare(Vec::new(), now);
        self.expiries.remove(&(0, *d, key));
        Some(p)
    }

    /// Whether a record has expired by `at` (a step at `at` would remove it).
    pub fn due(&self, at: u64) -> bool {
        self.expiries.first().is_some_and(|(e, _, _)| *e <= at)
    }

    /// Live records, over all items.
    pub fn live(&self) -> usize {
        self.expiries.len()
    }

    /// Whether a step at `at` would take `offer` (its key's list as it is now).
    pub fn admits(&self, offer: &SignedOffer, at: u64) -> Result<(), NotAdmitted> {
        let o = &offer.offer;
        if o.expiry <= at {
            return Err(NotAdmitted::Expired {
                expiry: o.expiry,
                at,
            });
        }
        let list = self.lists.get(&o.key);
        match list.and_then(|l| l.of_seller(&o.seller.0)) {
            Some(held) if held.key.serial >= o.serial => Err(NotAdmitted::Stale {
                held: held.key.serial,
            }),
            Some(held) if o.expiry < held.expiry => Err(NotAdmitted::ShorterThanReplaced {
                expiry: held.expiry,
            }),
            Some(_) => Ok(()),
            None if list.is_some_and(|l| l.records.len() >= MAX_LIVE) => {
                Err(NotAdmitted::Full { max: MAX_LIVE })
            }
            None => Ok(()),
        }
    }

    /// The head a node answers a retrieve of `d` with: its certificate, the `Read` its
    /// device just signed, the last step, d's leaf and proof, and the chain's gap steps.
    pub fn head(&self, cert: SignedCertificate, read: SignedRead, d: &ItemKey) -> StepHead {
        let (leaf, proof) = self.prove(d);
        StepHead {
            cert,
            read,
            nonces: crate::nonces::NoncePath::default(),
            step: self.last.as_ref().map(HeadStep::of),
            leaf,
            proof,
            gaps: self.gap_steps(),
            horizon: None,
        }
    }

    /// Prepares the next step over `batch` (signed offers, encoded, with their keys): it
    /// adds each offer the list admits (a seller's higher serial replaces its record) and
    /// removes records expired by the step's time, at most [`MAX_REMOVALS`] in all, oldest
    /// expiry first. The tree and lists take the step now; [`StepState::apply`] then records
    /// it with its `Inc`. If the device or the store fails in between, the caller must
    /// rebuild the state from its stored steps. The step binds node time `max(now, the last
    /// step's at)`: never backwards (DESIGN.md §9). Deterministic: a replay of the stored
    /// batch at the stored `at` makes the same step.
    pub fn prepare(&mut self, batch: Vec<(ItemKey, Vec<u8>)>, now: u64) -> PreparedStep {
        let at = now.max(self.at());
        let value = self.value + 1;
        // Each touched item: its list before the step, and its records as the step goes.
        let mut work: BTreeMap<ItemKey, (Option<Arc<LiveList>>, Vec<Record>)> = BTreeMap::new();
        let mut removed: Vec<(ItemKey, Record)> = Vec::new();
        let mut added: BTreeSet<(ItemKey, [u8; 32])> = BTreeSet::new();
        let mut taken = Vec::with_capacity(batch.len());
        let mut placements = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        // Records the touched items' old lists hold (the step proof carries them).
        let mut carried = 0usize;
        for (i, (d, bytes)) in batch.into_iter().enumerate() {
            let offer = match SignedOffer::from_bytes(&bytes) {
                Ok(o) if o.offer.key == d => o,
                _ => {
                    refused.push((i, NotAdmitted::Invalid));
                    continue;
                }
            };
            if added.contains(&(d, offer.offer.seller.0)) {
                refused.push((i, NotAdmitted::SameStep));
                continue;
            }
            // Judged against the list before the step (`admits`: no other offer of this seller
            // and item is in the step), then against the step's own room and the list as
            // the step leaves it so far.
            if let Err(why) = self.admits(&offer, at) {
                refused.push((i, why));
                continue;
            }
            let seller = offer.offer.seller.0;
            let (len, held) = match work.get(&d) {
                Some((_, cur)) => (cur.len(), cur.iter().any(|r| r.key.seller == seller)),
                None => {
                    let l = self.lists.get(&d);
                    (
                        l.map_or(0, |l| l.records.len()),
                        l.and_then(|l| l.of_seller(&seller)).is_some(),
                    )
                }
            };
            if !work.contains_key(&d)
                && (work.len() >= MAX_TOUCHED || carried + len > MAX_STEP_RECORDS)
            {
                refused.push((i, NotAdmitted::StepFull));
                continue;
            }
            if !held && len >= MAX_LIVE {
                refused.push((i, NotAdmitted::Full { max: MAX_LIVE }));
                continue;
            }
            // A replacement is a removal too: no step removes more than MAX_REMOVALS.
            if held && removed.len() >= MAX_REMOVALS {
                refused.push((i, NotAdmitted::StepFull));
                continue;
            }
            let (_, cur) = work.entry(d).or_insert_with(|| {
                carried += len;
                self.working(&d)
            });
            let rec = Record::of(&offer, &bytes, value);
            if let Some(pos) = cur.iter().position(|r| r.key.seller == rec.key.seller) {
                removed.push((d, cur.remove(pos)));
            }
            let pos = cur.partition_point(|r| r.key < rec.key);
            placements.push(Placement {
                item: d,
                hash: rec.hash,
            });
            cur.insert(pos, rec);
            added.insert((d, seller));
            taken.push(bytes);
        }
        // The sweep: records expired by `at`, oldest expiry first, as far as the step has
        // room (the rest wait for the next step).
        let due: Vec<(u64, ItemKey, SortKey)> = self
            .expiries
            .iter()
            .take_while(|(e, _, _)| *e <= at)
            .copied()
            .collect();
        for (_, d, key) in due {
            if removed.len() >= MAX_REMOVALS {
                break;
            }
            if !work.contains_key(&d) {
                let len = self.lists.get(&d).map_or(0, |l| l.records.len());
                if work.len() >= MAX_TOUCHED || carried + len > MAX_STEP_RECORDS {
                    continue;
                }
                carried += len;
            }
            let (_, cur) = work.entry(d).or_insert_with(|| self.working(&d));
            if let Some(pos) = cur.iter().position(|r| r.key == key) {
                removed.push((d, cur.remove(pos)));
            }
        }
        removed.sort_by(|(a, x), (b, y)| (a, x.key).cmp(&(b, y.key)));
        let keys: Vec<[u8; 32]> = work.keys().map(|d| d.0 .0).collect();
        let proof = if keys.is_empty() {
            MultiProof::default()
        } else {
            self.tree.prove(&keys)
        };
        let prev_root = self.tree.root();
        let mut old = Vec::with_capacity(work.len());
        for (d, (before, records)) in work {
            old.push((
                d,
                before.as_ref().map(|l| OldList {
                    last_changed: l.last_changed,
                    records: l.records.iter().map(Record::as_ref).collect(),
                }),
            ));
            for (_, r) in removed.iter().filter(|(e, _)| *e == d) {
                self.expiries.remove(&(r.expiry, d, r.key));
            }
            for r in &records {
                self.expiries.insert((r.expiry, d, r.key));
            }
            let list = Arc::new(LiveList {
                last_changed: value,
                records,
            });
            self.tree.insert(d.0 .0, list.leaf().value_hash());
            let before = self.lists.insert(d, list);
            self.versions.insert((d, value), before);
            self.replaced.push_back((value, d));
        }
        let pairs: Vec<(ItemKey, Digest)> = taken
            .iter()
            .zip(&placements)
            .map(|(_, p)| (p.item, p.hash))
            .collect();
        let removals: Vec<(ItemKey, Digest)> = removed.iter().map(|(d, r)| (*d, r.hash)).collect();
        let header = StepHeader {
            counter: self.counter.id,
            value,
            prev_value: self.value,
            prev_root,
            new_root: self.tree.root(),
            batch_root: batch_root(&pairs),
            batch_len: taken.len() as u32,
            total_offers: self.total + taken.len() as u64,
            gap_link: self.last_gap(),
            at,
            removal_root: if removals.is_empty() {
                Digest::default()
            } else {
                removal_root(&removals)
            },
            removal_count: removals.len() as u32,
        };
        PreparedStep {
            header,
            batch: taken,
            removed: removed.into_iter().map(|(_, r)| r.bytes.to_vec()).collect(),
            old,
            proof,
            placements,
            refused,
        }
    }

    /// Item `d`'s list before a step, and a copy of its records for the step to change.
    fn working(&self, d: &ItemKey) -> (Option<Arc<LiveList>>, Vec<Record>) {
        let old = self.lists.get(d).cloned();
        let recs = old.as_ref().map(|l| l.records.clone()).unwrap_or_default();
        (old, recs)
    }

    /// Prepares a gap step at `value` (DESIGN.md §7): an empty step after the last stored one
    /// that covers the values a crash lost in between, so that buyers accept them as a gap.
    pub fn prepare_gap(&mut self, value: u64) -> PreparedStep {
        let root = self.tree.root();
        PreparedStep {
            header: StepHeader {
                counter: self.counter.id,
                value,
                prev_value: self.value,
                prev_root: root,
                new_root: root,
                batch_root: batch_root(&[]),
                batch_len: 0,
                total_offers: self.total,
                gap_link: self.last_gap(),
                at: self.at(),
                removal_root: Digest::default(),
                removal_count: 0,
            },
            batch: Vec::new(),
            removed: Vec::new(),
            old: Vec::new(),
            proof: MultiProof::default(),
            placements: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Applies a prepared step once the device counted it; returns the whole step proof.
    pub fn apply(&mut self, p: PreparedStep, inc: SignedInc) -> StepProof {
        self.history.insert(p.header.value, self.tree.clone());
        while self.history.len() > MAX_HISTORY {
            if let Some((gone, _)) = self.history.pop_first() {
                self.forget_versions(gone);
            }
        }
        self.value = p.header.value;
        self.total = p.header.total_offers;
        let step = SignedStep {
            header: p.header,
            inc,
        };
        if step.header.gap().is_some() {
            self.gaps.push(step.clone());
        }
        self.times.push((step.header.value, step.header.at));
        let prev = self.last.replace(step.clone());
        StepProof {
            step,
            prev,
            batch: p.batch,
            removed: p.removed,
            old: p.old,
            proof: p.proof,
        }
    }

    /// Forgets the lists replaced at or before `value` (their pages are no longer served).
    fn forget_versions(&mut self, value: u64) {
        while let Some(&(v, d)) = self.replaced.front() {
            if v > value {
                break;
            }
            self.replaced.pop_front();
            self.versions.remove(&(d, v));
        }
        self.kept_from = self.kept_from.max(value);
    }
}

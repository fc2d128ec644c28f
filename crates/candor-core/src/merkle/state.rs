//! The node's side: the tree, its snapshots and the steps it prepares (the prover).

#[allow(unused_imports)]
use super::*;

/// A step made by [`StepState::prepare`], waiting for its `Inc`.
#[derive(Debug, Clone)]
pub struct PreparedStep {
    /// The header the `Inc` must bind.
    pub header: StepHeader,
    /// The batch.
    pub batch: Vec<Vec<u8>>,
    /// The touched keys' old leaves.
    pub old: Vec<(ItemKey, Option<Leaf>)>,
    /// The transition proof.
    pub proof: MultiProof,
    /// Where each batch offer lands.
    pub placements: Vec<Placement>,
}

/// A listing node's scheme-M state: the tree, every item's leaf, the last step. Pure: the
/// node persists steps and lists and replays them into a fresh state on open.
#[derive(Debug, Clone)]
pub struct StepState {
    // Fields are visible to the module's tests (which forge states), nowhere else.
    pub(super) tree: Smt,
    /// Snapshots of the tree after recent steps (copy-on-write, so cheap), for proofs under
    /// past roots.
    pub(super) history: BTreeMap<u64, Smt>,
    pub(super) leaves: BTreeMap<ItemKey, Leaf>,
    pub(super) counter: CertifiedCounter,
    pub(super) value: u64,
    pub(super) total: u64,
    pub(super) last: Option<SignedStep>,
    /// The gap steps on the chain, oldest first (a buyer gets them with every head).
    pub(super) gaps: Vec<SignedStep>,
}

impl StepState {
    /// The state at the counter's base value: the empty map.
    pub fn new(counter: CertifiedCounter) -> Self {
        Self {
            tree: Smt::new(),
            history: BTreeMap::new(),
            leaves: BTreeMap::new(),
            counter,
            value: counter.initial,
            total: 0,
            last: None,
            gaps: Vec::new(),
        }
    }

    /// A state holding `leaves` after step `value` (`last` its signed header), for tools and
    /// benchmarks that build a large tree without replaying every step.
    pub fn from_leaves(
        counter: CertifiedCounter,
        leaves: impl IntoIterator<Item = (ItemKey, Leaf)>,
        value: u64,
        total: u64,
        last: Option<SignedStep>,
    ) -> Self {
        let mut s = Self::new(counter);
        for (d, l) in leaves {
            s.tree.insert(d.0 .0, l.value_hash());
            s.leaves.insert(d, l);
        }
        s.value = value;
        s.total = total;
        s.last = last;
        s
    }

    /// This state's tree and leaves, with `last` as the step at its value.
    pub fn with_tree_of(mut self, other: StepState, last: SignedStep) -> Self {
        self.tree = other.tree;
        self.leaves = other.leaves;
        self.counter = other.counter;
        self.value = last.header.value;
        self.total = last.header.total_offers;
        self.last = Some(last);
        self
    }

    /// The proof for `d` under the root after step `value`, if that step is recent enough to
    /// have a snapshot (or is the base, whose tree is empty).
    pub fn prove_at(&self, d: &ItemKey, value: u64) -> Option<MultiProof> {
        if value == self.counter.initial {
            return Some(Smt::new().prove(&[d.0 .0]));
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
        (self.leaves.get(d).copied(), self.tree.prove(&[d.0 .0]))
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
        }
    }

    /// Prepares the next step over `batch` (valid signed offers, encoded, with their keys):
    /// the tree and leaves take the batch now (one pass of hashing); [`StepState::apply`] then
    /// records the step with its `Inc`. If the device or the store fails in between, the
    /// caller must rebuild the state from its stored steps. The step binds node time
    /// `max(now, the last step's at)`: never backwards (DESIGN.md §9).
    pub fn prepare(&mut self, batch: Vec<(ItemKey, Vec<u8>)>, now: u64) -> PreparedStep {
        let at = now.max(self.at());
        let mut cur: BTreeMap<ItemKey, Leaf> = BTreeMap::new();
        let mut old = Vec::new();
        for (d, _) in &batch {
            if !cur.contains_key(d) {
                let l = self.leaves.get(d).copied();
                old.push((*d, l));
                cur.insert(*d, l.unwrap_or_else(|| Leaf::start(d)));
            }
        }
        old.sort_by_key(|(d, _)| *d);
        let keys: Vec<[u8; 32]> = old.iter().map(|(d, _)| d.0 .0).collect();
        let proof = if keys.is_empty() {
            MultiProof::default()
        } else {
            self.tree.prove(&keys)
        };
        let mut pairs = Vec::with_capacity(batch.len());
        let mut placements = Vec::with_capacity(batch.len());
        for (d, bytes) in &batch {
            let oh = offer_hash(bytes);
            pairs.push((*d, oh));
            if let Some(l) = cur.get_mut(d) {
                let index = l.n;
                *l = l.push(&oh);
                placements.push(Placement {
                    item: *d,
                    index,
                    chain: l.chain,
                });
            }
        }
        let prev_root = self.tree.root();
        for (d, l) in &cur {
            self.tree.insert(d.0 .0, l.value_hash());
            self.leaves.insert(*d, *l);
        }
        let header = StepHeader {
            counter: self.counter.id,
            value: self.value + 1,
            prev_value: self.value,
            prev_root,
            new_root: self.tree.root(),
            batch_root: batch_root(&pairs),
            batch_len: batch.len() as u32,
            total_offers: self.total + batch.len() as u64,
            gap_link: self.last_gap(),
            at,
            removal_root: Digest::default(),
            removal_count: 0,
        };
        PreparedStep {
            header,
            batch: batch.into_iter().map(|(_, b)| b).collect(),
            old,
            proof,
            placements,
        }
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
            old: Vec::new(),
            proof: MultiProof::default(),
            placements: Vec::new(),
        }
    }

    /// Applies a prepared step once the device counted it; returns the whole step proof.
    pub fn apply(&mut self, p: PreparedStep, inc: SignedInc) -> StepProof {
        self.history.insert(p.header.value, self.tree.clone());
        while self.history.len() > MAX_HISTORY {
            self.history.pop_first();
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
        let prev = self.last.replace(step.clone());
        StepProof {
            step,
            prev,
            batch: p.batch,
            old: p.old,
            proof: p.proof,
        }
    }
}

//! Scheme M (DESIGN.md §5): each value of the node's counter is one *step* of an authenticated
//! map from item key d to d's append-only offer list, leaf_d = (n_d, chain_d) with
//! chain = H(previous chain ‖ H(offer)). A step's `Inc` binds
//! `H("candor/v1/m-step" ‖ PeerId ‖ counter ‖ prev_value ‖ prev_root ‖ new_root ‖ batch_root ‖
//! batch_len ‖ total_offers)`.
//!
//! What each party checks:
//! - the seller at publish: the whole step ([`verify_step`]): its `Inc`, that prev_root is the
//!   new_root of the step before, the transition of every touched key from its old list to the
//!   old list plus its batch offers (no other key changes), and batch_root over exactly the
//!   batch; then its own offer's index k in d's list and the chain prefix up to k;
//! - the buyer at retrieve ([`MRetrieval`]): `Read(t, nonce)`, `Inc(t)` and its step header,
//!   and a proof for d under that root — membership with d's full list, or an empty branch;
//!   then audits of s sampled steps, with π = s / (t − base) for the worst case reported;
//! - the seller monitoring: an ordinary retrieve, and its offer still at index k with the same
//!   chain prefix.

use crate::cert::{CertifiedCounter, SignedCertificate};
use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::{tags, Digest, TaggedHasher};
use crate::item::{Item, ItemKey};
use crate::keys::{PeerId, PublicKey};
use crate::m_retrieve::{MHead, MOutcome};
use crate::misbehaviour::Misbehaviour;
use crate::offer::{SignedOffer, MAX_OFFER_BYTES};
use crate::smt::{empty, MultiProof, Smt, DEPTH};
use crate::statement::{CounterId, SignedInc, SignedRead};
use std::collections::BTreeMap;

/// The version of every scheme-M structure (3: step headers chain their gap steps).
pub(crate) const VERSION: u8 = 3;

/// How many past trees a node keeps for proofs under past roots (older ones are rebuilt by
/// replaying the stored steps).
pub const MAX_HISTORY: usize = 4096;

/// The most offers one step may commit.
pub const MAX_BATCH: usize = 1024;

/// The most gap steps a head carries (buyers accept fewer: [`crate::Budget::max_gaps`]).
pub const MAX_GAP_STEPS: usize = 256;

/// The most offers of one item a retrieve page carries.
pub const MAX_LIST_PAGE: usize = 256;

/// The root of the empty map (the root at the counter's base value).
pub fn empty_root() -> Digest {
    empty(DEPTH)
}

/// H(offer bytes), the element of an item's chain.
pub fn offer_hash(offer_bytes: &[u8]) -> Digest {
    TaggedHasher::new("candor/v1/m-offer")
        .var(offer_bytes)
        .finish()
}

/// The chain of an empty list for item `d`.
pub fn chain_start(d: &ItemKey) -> Digest {
    TaggedHasher::new("candor/v1/m-chain0")
        .fixed(d.0.as_bytes())
        .finish()
}

/// The chain after appending an offer.
pub fn chain_next(chain: &Digest, offer_hash: &Digest) -> Digest {
    TaggedHasher::new("candor/v1/m-chain")
        .fixed(chain.as_bytes())
        .fixed(offer_hash.as_bytes())
        .finish()
}

/// An item's leaf: how many offers its list holds and the chain over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// n_d.
    pub n: u64,
    /// chain_d.
    pub chain: Digest,
}

impl Leaf {
    /// The leaf of an empty list.
    pub fn start(d: &ItemKey) -> Self {
        Self {
            n: 0,
            chain: chain_start(d),
        }
    }

    /// The leaf after appending `offer_hash` (a count at its very end stays there: checkers
    /// use [`Leaf::checked_push`] on leaves a node sent).
    pub fn push(&self, offer_hash: &Digest) -> Self {
        Self {
            n: self.n.saturating_add(1),
            chain: chain_next(&self.chain, offer_hash),
        }
    }

    /// The leaf after appending `offer_hash`, or `None` when the count would overflow.
    pub fn checked_push(&self, offer_hash: &Digest) -> Option<Self> {
        Some(Self {
            n: self.n.checked_add(1)?,
            chain: chain_next(&self.chain, offer_hash),
        })
    }

    /// The value hash the tree stores for this leaf.
    pub fn value_hash(&self) -> Digest {
        TaggedHasher::new("candor/v1/m-leaf")
            .u64(self.n)
            .fixed(self.chain.as_bytes())
            .finish()
    }

    pub(crate) fn encode_to(&self, w: &mut Writer) {
        w.u64(self.n).fixed(self.chain.as_bytes());
    }

    /// An optional leaf: a presence byte, then the leaf.
    pub(crate) fn encode_opt(w: &mut Writer, leaf: &Option<Self>) {
        match leaf {
            None => {
                w.u8(0);
            }
            Some(l) => {
                w.u8(1);
                l.encode_to(w);
            }
        }
    }

    /// Decodes what [`Leaf::encode_opt`] wrote.
    pub(crate) fn decode_opt(r: &mut Reader<'_>) -> Result<Option<Self>, DecodeError> {
        match r.u8("leaf present")? {
            0 => Ok(None),
            1 => Ok(Some(Self::decode_from(r)?)),
            kind => Err(DecodeError::UnknownKind { what: "leaf", kind }),
        }
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            n: r.u64("leaf n")?,
            chain: Digest(r.array("leaf chain")?),
        })
    }
}

/// The leaf of item `d` over `offers` (its whole list), as a buyer recomputes it.
pub fn leaf_of<'a>(d: &ItemKey, offers: impl IntoIterator<Item = &'a [u8]>) -> Leaf {
    offers
        .into_iter()
        .fold(Leaf::start(d), |l, o| l.push(&offer_hash(o)))
}

/// What one step's `Inc` binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepHeader {
    /// The counter.
    pub counter: CounterId,
    /// The step's value (its `Inc`'s value).
    pub value: u64,
    /// The value of the step it follows: `value − 1`, except in a gap step (DESIGN.md §7),
    /// which follows the last step before values a crash lost (`prev_value + 1 ..= value − 1`)
    /// and is empty.
    pub prev_value: u64,
    /// The root before the step.
    pub prev_root: Digest,
    /// The root after it.
    pub new_root: Digest,
    /// H over the batch's (item key, offer hash) pairs, in order.
    pub batch_root: Digest,
    /// How many offers the batch holds.
    pub batch_len: u32,
    /// How many offers all steps up to this one hold.
    pub total_offers: u64,
    /// The value of the last gap step on the chain before this step (the counter's base
    /// when there is none): gap steps chain, so a buyer learns from the step at t exactly
    /// which values the chain to t skips ([`StepHeader::last_gap`]).
    pub gap_link: u64,
}

impl StepHeader {
    /// The value of the last gap step on the chain up to and including this step: its own
    /// value for a gap step, else its `gap_link`. The next step's `gap_link` must be this.
    pub fn last_gap(&self) -> u64 {
        if self.gap().is_some() {
            self.value
        } else {
            self.gap_link
        }
    }

    /// The payload the step's `Inc` must carry: an ordinary step binds
    /// `H("candor/v1/m-step" ‖ PeerId ‖ counter ‖ prev_value ‖ prev_root ‖ new_root ‖
    /// batch_root ‖ batch_len ‖ total_offers)`; a gap step binds the gap notice
    /// `H("candor/v1/gap" ‖ PeerId ‖ counter ‖ first ‖ last)` followed by the same fields.
    pub fn payload(&self, peer: &PeerId) -> Digest {
        let h = match self.gap() {
            None => TaggedHasher::new("candor/v1/m-step")
                .var(peer.as_bytes())
                .u32(self.counter),
            Some((first, last)) => TaggedHasher::new(tags::GAP)
                .var(peer.as_bytes())
                .u32(self.counter)
                .u64(first)
                .u64(last),
        };
        h.u64(self.prev_value)
            .fixed(self.prev_root.as_bytes())
            .fixed(self.new_root.as_bytes())
            .fixed(self.batch_root.as_bytes())
            .u32(self.batch_len)
            .u64(self.total_offers)
            .u64(self.gap_link)
            .finish()
    }

    /// The values a gap step covers (`first`, `last`): none for an ordinary step.
    pub fn gap(&self) -> Option<(u64, u64)> {
        let first = self.prev_value.saturating_add(1);
        (first < self.value).then(|| (first, self.value - 1))
    }
}

impl Encode for StepHeader {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION)
            .u32(self.counter)
            .u64(self.value)
            .u64(self.prev_value)
            .fixed(self.prev_root.as_bytes())
            .fixed(self.new_root.as_bytes())
            .fixed(self.batch_root.as_bytes())
            .u32(self.batch_len)
            .u64(self.total_offers)
            .u64(self.gap_link);
    }
}

impl Decode for StepHeader {
    const WHAT: &'static str = "step header";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        let counter = r.u32("counter")?;
        let value = r.u64("value")?;
        let prev_value = r.u64("prev value")?;
        if prev_value >= value {
            return Err(DecodeError::Invalid {
                field: "prev value",
                reason: "not below the step's value",
            });
        }
        let header = Self {
            counter,
            value,
            prev_value,
            prev_root: Digest(r.array("prev root")?),
            new_root: Digest(r.array("new root")?),
            batch_root: Digest(r.array("batch root")?),
            batch_len: r.u32("batch len")?,
            total_offers: r.u64("total offers")?,
            gap_link: r.u64("gap link")?,
        };
        // The last gap before a step lies at or before the step it follows.
        if header.gap_link > header.prev_value {
            return Err(DecodeError::Invalid {
                field: "gap link",
                reason: "after the step it follows",
            });
        }
        Ok(header)
    }
}

/// A step header with its `Inc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedStep {
    /// The header.
    pub header: StepHeader,
    /// The `Inc` binding it.
    pub inc: SignedInc,
}

impl Encode for SignedStep {
    fn encode_to(&self, w: &mut Writer) {
        self.header.encode_to(w);
        self.inc.encode_to(w);
    }
}

impl Decode for SignedStep {
    const WHAT: &'static str = "signed step";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: StepHeader::decode_from(r)?,
            inc: SignedInc::decode_from(r)?,
        })
    }
}

/// H over a batch's (item key, offer hash) pairs, in batch order.
pub fn batch_root(batch: &[(ItemKey, Digest)]) -> Digest {
    let mut h = TaggedHasher::new("candor/v1/m-batch").u32(batch.len() as u32);
    for (d, o) in batch {
        h = h.fixed(d.0.as_bytes()).fixed(o.as_bytes());
    }
    h.finish()
}

pub(crate) fn encode_opt_step(w: &mut Writer, s: &Option<SignedStep>) {
    match s {
        None => {
            w.u8(0);
        }
        Some(s) => {
            w.u8(1);
            s.encode_to(w);
        }
    }
}

pub(crate) fn decode_opt_step(r: &mut Reader<'_>) -> Result<Option<SignedStep>, DecodeError> {
    match r.u8("step present")? {
        0 => Ok(None),
        1 => Ok(Some(SignedStep::decode_from(r)?)),
        kind => Err(DecodeError::UnknownKind {
            what: "optional step",
            kind,
        }),
    }
}

/// A whole step as the node serves it to sellers and auditors: the signed header, the step
/// before it (absent at the base), the batch's offers, the touched keys' old leaves, and the
/// transition proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProof {
    /// This step.
    pub step: SignedStep,
    /// The step before (None when this step follows the base value).
    pub prev: Option<SignedStep>,
    /// The batch's offers (encoded signed offers), in order.
    pub batch: Vec<Vec<u8>>,
    /// Every touched key's leaf before the step (None: absent), sorted by key.
    pub old: Vec<(ItemKey, Option<Leaf>)>,
    /// The touched keys' siblings under both roots.
    pub proof: MultiProof,
}

impl Encode for StepProof {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION);
        self.step.encode_to(w);
        encode_opt_step(w, &self.prev);
        w.u32(self.batch.len() as u32);
        for b in &self.batch {
            w.bytes16(b);
        }
        w.u32(self.old.len() as u32);
        for (d, l) in &self.old {
            w.fixed(d.0.as_bytes());
            match l {
                None => {
                    w.u8(0);
                }
                Some(l) => {
                    w.u8(1);
                    l.encode_to(w);
                }
            }
        }
        self.proof.encode_to(w);
    }
}

impl Decode for StepProof {
    const WHAT: &'static str = "step proof";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        let step = SignedStep::decode_from(r)?;
        let prev = decode_opt_step(r)?;
        let n = r.u32("batch size")? as usize;
        if n > MAX_BATCH {
            return Err(DecodeError::TooLong {
                field: "batch",
                len: n,
                max: MAX_BATCH,
            });
        }
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            batch.push(r.bytes16(MAX_OFFER_BYTES, "batch offer")?.to_vec());
        }
        let m = r.u32("touched keys")? as usize;
        if m > MAX_BATCH {
            return Err(DecodeError::TooLong {
                field: "touched keys",
                len: m,
                max: MAX_BATCH,
            });
        }
        let mut old = Vec::with_capacity(m);
        for _ in 0..m {
            let d = ItemKey(Digest(r.array("key")?));
            let l = match r.u8("leaf present")? {
                0 => None,
                1 => Some(Leaf::decode_from(r)?),
                kind => {
                    return Err(DecodeError::UnknownKind {
                        what: "old leaf",
                        kind,
                    })
                }
            };
            old.push((d, l));
        }
        Ok(Self {
            step,
            prev,
            batch,
            old,
            proof: MultiProof::decode_from(r)?,
        })
    }
}

/// Where one batch offer landed: its item, its index in the item's list, the chain after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The item.
    pub item: ItemKey,
    /// Index k in the item's list.
    pub index: u64,
    /// The chain prefix up to and including it.
    pub chain: Digest,
}

pub(crate) fn check_signed_step(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedStep,
) -> Result<(), Misbehaviour> {
    let inc = &s.inc.inc;
    crate::checks::check_inc(cert, peer, counter, &s.inc)?;
    if s.header.counter != counter.id {
        return Err(Misbehaviour::WrongCounter {
            expected: counter.id,
            got: s.header.counter,
        });
    }
    if inc.value != s.header.value || inc.payload != s.header.payload(peer) {
        return Err(Misbehaviour::BadStep(
            "the Inc does not bind this step header",
        ));
    }
    Ok(())
}

/// The root after step `value`: the empty root at the base (and no step), else the signed
/// step at exactly that value.
pub(crate) fn root_at(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    step: Option<&SignedStep>,
    value: u64,
) -> Result<Digest, Misbehaviour> {
    match (step, value == counter.initial) {
        (None, true) => Ok(empty_root()),
        (Some(s), false) => {
            check_signed_step(cert, peer, counter, s)?;
            if s.header.value != value {
                return Err(Misbehaviour::BadStep(
                    "the step is not the one at that value",
                ));
            }
            Ok(s.header.new_root)
        }
        _ => Err(Misbehaviour::BadStep(
            "the step at that value is missing or extra",
        )),
    }
}

/// Checks a whole step (DESIGN.md §5, the seller's and the auditor's check). Returns where
/// each batch offer landed, in batch order.
pub fn verify_step(
    cert: &SignedCertificate,
    peer: &PeerId,
    sp: &StepProof,
) -> Result<Vec<Placement>, Misbehaviour> {
    let counter = crate::checks::require_stepped(cert)?;
    check_signed_step(cert, peer, &counter, &sp.step)?;
    let h = &sp.step.header;
    if h.prev_value < counter.initial || h.prev_value >= h.value {
        return Err(Misbehaviour::BadStep(
            "the step follows a value outside the counter's range",
        ));
    }
    if h.gap().is_some() && (h.batch_len != 0 || !sp.batch.is_empty()) {
        return Err(Misbehaviour::BadStep("a gap step holds offers"));
    }
    // Chaining with the step before (for a gap step, the last step before the lost values).
    let (prev_root, prev_total, prev_last_gap) = if h.prev_value == counter.initial {
        if sp.prev.is_some() {
            return Err(Misbehaviour::BadStep("a step before the first step"));
        }
        (empty_root(), 0, counter.initial)
    } else {
        let prev = sp
            .prev
            .as_ref()
            .ok_or(Misbehaviour::BadStep("the step before is missing"))?;
        check_signed_step(cert, peer, &counter, prev)?;
        if prev.header.value != h.prev_value {
            return Err(Misbehaviour::BadStep(
                "the step before is not the one before",
            ));
        }
        (
            prev.header.new_root,
            prev.header.total_offers,
            prev.header.last_gap(),
        )
    };
    if h.gap_link != prev_last_gap {
        return Err(Misbehaviour::BadStep(
            "the step's gap link is not the last gap step before it",
        ));
    }
    if h.prev_root != prev_root {
        return Err(match &sp.prev {
            Some(prev) => {
                Misbehaviour::Evidence(Box::new(crate::misbehaviour::Evidence::RootsDoNotChain {
                    cert: cert.clone(),
                    a: Box::new(prev.clone()),
                    b: Box::new(sp.step.clone()),
                }))
            }
            None => Misbehaviour::BadStep("the first step does not start from the empty root"),
        });
    }
    if h.batch_len as usize != sp.batch.len()
        || prev_total.checked_add(u64::from(h.batch_len)) != Some(h.total_offers)
    {
        return Err(Misbehaviour::BadStep(
            "the batch length or the offer total is wrong",
        ));
    }
    // The batch: each a valid offer; batch_root over exactly these.
    let mut pairs = Vec::with_capacity(sp.batch.len());
    for bytes in &sp.batch {
        let o = SignedOffer::from_bytes(bytes)
            .map_err(|_| Misbehaviour::BadStep("a batch entry is not an offer"))?;
        o.verify()
            .map_err(|_| Misbehaviour::BadStep("a batch offer is invalid"))?;
        pairs.push((o.offer.key, offer_hash(bytes)));
    }
    if batch_root(&pairs) != h.batch_root {
        return Err(Misbehaviour::BadStep(
            "batch_root does not cover exactly the batch",
        ));
    }
    // Touched keys: exactly the batch's items, sorted, each with its old leaf.
    let mut touched: BTreeMap<ItemKey, Option<Leaf>> = BTreeMap::new();
    for (d, _) in &pairs {
        touched.insert(*d, None);
    }
    if sp.old.len() != touched.len() || sp.old.iter().zip(touched.keys()).any(|((a, _), b)| a != b)
    {
        return Err(Misbehaviour::BadStep(
            "the touched keys are not the batch's items",
        ));
    }
    for (d, l) in &sp.old {
        touched.insert(*d, *l);
    }
    let mut cur: BTreeMap<ItemKey, Leaf> = touched
        .iter()
        .map(|(d, l)| (*d, l.unwrap_or_else(|| Leaf::start(d))))
        .collect();
    let mut placements = Vec::with_capacity(pairs.len());
    for (d, oh) in &pairs {
        let Some(l) = cur.get_mut(d) else {
            return Err(Misbehaviour::BadStep("a batch item is not touched"));
        };
        let index = l.n;
        *l = l
            .checked_push(oh)
            .ok_or(Misbehaviour::BadStep("an item's list length overflows"))?;
        placements.push(Placement {
            item: *d,
            index,
            chain: l.chain,
        });
    }
    if pairs.is_empty() {
        if h.new_root != h.prev_root || !sp.old.is_empty() {
            return Err(Misbehaviour::BadStep("an empty step changed the root"));
        }
        return Ok(placements);
    }
    let old_leaves: Vec<([u8; 32], Option<Digest>)> = sp
        .old
        .iter()
        .map(|(d, l)| (d.0 .0, l.map(|l| l.value_hash())))
        .collect();
    let new_leaves: Vec<([u8; 32], Option<Digest>)> = cur
        .iter()
        .map(|(d, l)| (d.0 .0, Some(l.value_hash())))
        .collect();
    let bad = |_| Misbehaviour::BadStep("the transition proof does not fit");
    if sp.proof.root(&old_leaves).map_err(bad)? != h.prev_root {
        return Err(Misbehaviour::BadStep(
            "the touched keys' old leaves are not under prev_root",
        ));
    }
    if sp.proof.root(&new_leaves).map_err(bad)? != h.new_root {
        return Err(Misbehaviour::BadStep(
            "new_root is not the old tree with exactly the batch appended",
        ));
    }
    Ok(placements)
}

/// A seller's receipt in scheme M: the whole step (kept as evidence) and where its offer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MReceipt {
    /// The certificate's id.
    pub cert_id: Digest,
    /// The step, as verified.
    pub step: std::sync::Arc<StepProof>,
    /// The offer's index in the batch.
    pub position: u32,
}

impl Encode for MReceipt {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION)
            .fixed(self.cert_id.as_bytes())
            .u32(self.position);
        w.bytes32(&self.step.to_bytes());
    }
}

impl Decode for MReceipt {
    const WHAT: &'static str = "M receipt";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        let cert_id = Digest(r.array("cert id")?);
        let position = r.u32("position")?;
        let step = StepProof::from_bytes(r.bytes32(8 << 20, "step")?)?;
        Ok(Self {
            cert_id,
            step: std::sync::Arc::new(step),
            position,
        })
    }
}

/// The seller's check of an M receipt: the whole step verifies and holds its offer.
pub fn check_m_receipt(
    trusted: &[PublicKey],
    peer: &PeerId,
    cert: &SignedCertificate,
    offer: &SignedOffer,
    receipt: &MReceipt,
) -> Result<Placement, Misbehaviour> {
    cert.verify_for(trusted, peer)?;
    if receipt.cert_id != cert.id() {
        return Err(Misbehaviour::BadReceipt("it names another certificate"));
    }
    let placements = verify_step(cert, peer, &receipt.step)?;
    let i = receipt.position as usize;
    match (receipt.step.batch.get(i), placements.get(i)) {
        (Some(b), Some(p)) if *b == offer.to_bytes() => Ok(*p),
        _ => Err(Misbehaviour::BadReceipt(
            "the step does not hold the offer at that position",
        )),
    }
}

/// A seller's monitoring check: under a fresh retrieve's outcome, its receipted offer is
/// still at index k with the same chain prefix. Otherwise transferable removal evidence: the
/// receipted step and the later signed step with d's list under its root.
pub fn check_monitor(
    receipt: &MReceipt,
    offer: &SignedOffer,
    placement: &Placement,
    outcome: &MOutcome,
) -> Result<(), Misbehaviour> {
    if receipt.cert_id != outcome.cert.id() {
        return Err(Misbehaviour::OtherCertificate);
    }
    let k = placement.index as usize;
    let lists: Vec<Vec<u8>> = outcome.offers.iter().map(|o| o.to_bytes()).collect();
    let intact = lists.get(k).is_some_and(|b| *b == offer.to_bytes())
        && leaf_of(&placement.item, lists.iter().take(k + 1).map(Vec::as_slice)).chain
            == placement.chain;
    if intact {
        return Ok(());
    }
    match &outcome.step {
        Some(later) => Err(Misbehaviour::Evidence(Box::new(
            crate::misbehaviour::Evidence::Removal {
                cert: outcome.cert.clone(),
                receipt: Box::new((*receipt.step).clone()),
                position: receipt.position,
                later: Box::new(later.clone()),
                proof: outcome.proof.clone(),
                list: lists,
            },
        ))),
        None => Err(Misbehaviour::Removed {
            index: placement.index,
            now: outcome.offers.len() as u64,
        }),
    }
}

/// Checks removal evidence (see [`crate::Evidence::Removal`]).
pub(crate) fn verify_removal(
    cert: &SignedCertificate,
    receipt: &StepProof,
    position: u32,
    later: &SignedStep,
    proof: &MultiProof,
    list: &[Vec<u8>],
) -> Result<String, &'static str> {
    let peer = &cert.cert.peer;
    let placements =
        verify_step(cert, peer, receipt).map_err(|_| "the receipted step does not verify")?;
    let p = placements
        .get(position as usize)
        .ok_or("no offer at that position")?;
    let counter = crate::checks::require_stepped(cert).map_err(|_| "not a scheme-M certificate")?;
    check_signed_step(cert, peer, &counter, later)
        .map_err(|_| "the later step is not signed by the device")?;
    if later.header.value < receipt.step.header.value {
        return Err("the later step is not later");
    }
    let n = list.len() as u64;
    let value = (n > 0).then(|| leaf_of(&p.item, list.iter().map(Vec::as_slice)).value_hash());
    proof
        .verify(&later.header.new_root, &[(p.item.0 .0, value)])
        .map_err(|_| "the list is not the one under the later root")?;
    let k = p.index as usize;
    if list.len() <= k {
        return Ok(format!(
            "node {} receipted an offer at index {k} of an item's list in step {}, and step {} signs a list of {n}",
            peer.short(),
            receipt.step.header.value,
            later.header.value
        ));
    }
    if leaf_of(&p.item, list.iter().take(k + 1).map(Vec::as_slice)).chain != p.chain {
        return Ok(format!(
            "node {} signed in step {} a list whose prefix up to index {k} differs from the one it receipted in step {}",
            peer.short(),
            later.header.value,
            receipt.step.header.value
        ));
    }
    Err("the receipted offer is still there")
}

/// A step made by [`MState::prepare`], waiting for its `Inc`.
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
pub struct MState {
    tree: Smt,
    /// Snapshots of the tree after recent steps (copy-on-write, so cheap), for proofs under
    /// past roots.
    history: BTreeMap<u64, Smt>,
    leaves: BTreeMap<ItemKey, Leaf>,
    counter: CertifiedCounter,
    value: u64,
    total: u64,
    last: Option<SignedStep>,
    /// The gap steps on the chain, oldest first (a buyer gets them with every head).
    gaps: Vec<SignedStep>,
}

impl MState {
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
    pub fn with_tree_of(mut self, other: MState, last: SignedStep) -> Self {
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
    pub fn head(&self, cert: SignedCertificate, read: SignedRead, d: &ItemKey) -> MHead {
        let (leaf, proof) = self.prove(d);
        MHead {
            cert,
            read,
            step: self.last.clone(),
            leaf,
            proof,
            gaps: self.gap_steps(),
        }
    }

    /// Prepares the next step over `batch` (valid signed offers, encoded, with their keys):
    /// the tree and leaves take the batch now (one pass of hashing); [`MState::apply`] then
    /// records the step with its `Inc`. If the device or the store fails in between, the
    /// caller must rebuild the state from its stored steps.
    pub fn prepare(&mut self, batch: Vec<(ItemKey, Vec<u8>)>) -> PreparedStep {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{Authority, EnrolRequest, Registry, Scheme};
    use crate::keys::Keypair;
    use crate::m_retrieve::{MPage, MRetrieval};
    use crate::offer::Currency;
    use crate::statement::Ed25519StatementSigner;
    use rand_core::OsRng;

    struct Node {
        signer: Ed25519StatementSigner,
        cert: SignedCertificate,
        trusted: Vec<PublicKey>,
        state: MState,
        lists: BTreeMap<ItemKey, Vec<Vec<u8>>>,
        steps: BTreeMap<u64, StepProof>,
    }

    impl Node {
        fn new() -> Self {
            let node = Keypair::generate(&mut OsRng);
            let peer = PeerId::from_ed25519(&node.public());
            let signer = Ed25519StatementSigner::new(Keypair::generate(&mut OsRng), peer);
            let auth = Authority::new(Keypair::generate(&mut OsRng));
            let req = EnrolRequest::new(
                &node,
                signer.device_key(),
                Scheme::Merkle,
                vec![signer.sign_read(0, 5, [1; 32])],
                None,
            );
            let cert = auth
                .certify(&mut Registry::default(), &req, [1; 32], 0)
                .unwrap();
            let state = MState::new(cert.cert.counters[0]);
            Self {
                signer,
                trusted: vec![auth.public()],
                cert,
                state,
                lists: BTreeMap::new(),
                steps: BTreeMap::new(),
            }
        }

        fn peer(&self) -> PeerId {
            self.signer.peer().clone()
        }

        fn publish(&mut self, offers: &[SignedOffer]) -> Vec<MReceipt> {
            let batch = offers.iter().map(|o| (o.offer.key, o.to_bytes())).collect();
            let p = self.state.prepare(batch);
            let inc = self
                .signer
                .sign_inc(0, p.header.value, p.header.payload(&self.peer()));
            let sp = self.state.apply(p, inc);
            for b in &sp.batch {
                let o = SignedOffer::from_bytes(b).unwrap();
                self.lists.entry(o.offer.key).or_default().push(b.clone());
            }
            self.steps.insert(sp.step.header.value, sp.clone());
            (0..offers.len() as u32)
                .map(|position| MReceipt {
                    cert_id: self.cert.id(),
                    step: std::sync::Arc::new(sp.clone()),
                    position,
                })
                .collect()
        }

        fn head(&self, item: &Item, nonce: [u8; 32]) -> MHead {
            self.state.head(
                self.cert.clone(),
                self.signer.sign_read(0, self.state.value(), nonce),
                &item.key(),
            )
        }

        fn retrieve(&self, item: &Item, audits: u64) -> Result<MOutcome, Misbehaviour> {
            self.retrieve_with(item, audits, |h| h, |_, l| l.to_vec())
        }

        fn retrieve_with(
            &self,
            item: &Item,
            audits: u64,
            head_f: impl Fn(MHead) -> MHead,
            list_f: impl Fn(&ItemKey, &[Vec<u8>]) -> Vec<Vec<u8>>,
        ) -> Result<MOutcome, Misbehaviour> {
            let mut r = MRetrieval::new(
                self.trusted.clone(),
                self.peer(),
                item.clone(),
                [9; 32],
                crate::buyer::Budget::default(),
            );
            let head = head_f(self.head(item, [9; 32]));
            let mut next = r.on_head_bytes(&head.to_bytes())?;
            let list = list_f(
                &item.key(),
                self.lists
                    .get(&item.key())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            );
            while let Some(req) = next {
                let page = MPage {
                    offers: list
                        .iter()
                        .skip(req.from as usize)
                        .take(req.count as usize)
                        .cloned()
                        .collect(),
                };
                next = r.on_page_bytes(&page.to_bytes())?;
            }
            r.check_list()?;
            for v in r.plan_audits(audits, &mut OsRng) {
                // As the node's store answers: the step at v, or the (gap) step above it.
                let (_, sp) = self.steps.range(v..).next().unwrap();
                r.on_audit_bytes(v, &sp.to_bytes())?;
            }
            r.finish()
        }

        /// The device counts `lost` values whose steps a crash loses; the node covers them
        /// with a gap step from the state it has (its tree is at the last stored step).
        fn crash_and_gap(&mut self, lost: u64) -> StepProof {
            let v = self.state.value();
            for i in 1..=lost {
                let _ = self.signer.sign_inc(0, v + i, Digest([7; 32]));
            }
            self.gap_step(v + lost + 1)
        }

        fn gap_step(&mut self, value: u64) -> StepProof {
            let p = self.state.prepare_gap(value);
            let inc = self
                .signer
                .sign_inc(0, value, p.header.payload(&self.peer()));
            let sp = self.state.apply(p, inc);
            self.steps.insert(value, sp.clone());
            sp
        }
    }

    fn offer(seller: &Keypair, item: &Item, price: u64) -> SignedOffer {
        SignedOffer::sign(seller, item, price, Currency::EUR, 1, u64::MAX, price)
    }

    fn items() -> Vec<Item> {
        (0..20)
            .map(|i| Item::new(&format!("m item {i}")).unwrap())
            .collect()
    }

    /// After a crash loses steps, a gap step covers them: an empty step binding the last
    /// stored step's value. Buyers auditing every value, the lost ones included, accept it and
    /// report the gap; the steps after it verify for their sellers as usual.
    #[test]
    fn a_gap_step_covers_lost_values_and_honest_nodes_pass_every_audit() {
        let mut node = Node::new();
        let items = items();
        let seller = Keypair::generate(&mut OsRng);
        node.publish(&[offer(&seller, &items[0], 10)]);
        let gap = node.crash_and_gap(3);
        assert_eq!(gap.step.header.gap(), Some((7, 9)));
        assert_eq!(gap.step.header.prev_value, 6);
        assert!(verify_step(&node.cert, &node.peer(), &gap)
            .unwrap()
            .is_empty());
        // The gap step at the head, then with a step after it.
        let out = node.retrieve(&items[0], 100).unwrap();
        assert_eq!((out.offers.len(), out.gaps.len()), (1, 1));
        assert_eq!((out.gaps[0].first, out.gaps[0].last), (7, 9));
        let o = offer(&seller, &items[1], 20);
        let r = node.publish(std::slice::from_ref(&o));
        check_m_receipt(&node.trusted, &node.peer(), &node.cert, &o, &r[0]).unwrap();
        let out = node.retrieve(&items[0], 100).unwrap();
        assert_eq!(
            out.audited.len(),
            6,
            "every value from the base, lost ones included"
        );
        assert_eq!(out.gaps.len(), 1);
        // Decoders keep prev_value below value.
        let mut bytes = gap.step.header.to_bytes();
        bytes[13..21].copy_from_slice(&10u64.to_be_bytes());
        assert!(StepHeader::from_bytes(&bytes).is_err());
    }

    /// Cheats with gap steps: offers smuggled into one, an audit of a real step answered with a
    /// gap step that does not cover it, a gap step that claims another predecessor, and a gap
    /// step over receipted steps (caught by the receipt holder's monitor, with evidence).
    #[test]
    fn cheating_with_gap_steps_is_caught() {
        let mut node = Node::new();
        let items = items();
        let alice = Keypair::generate(&mut OsRng);
        let oa = offer(&alice, &items[0], 10);
        let ra = node.publish(std::slice::from_ref(&oa));
        let pa = check_m_receipt(&node.trusted, &node.peer(), &node.cert, &oa, &ra[0]).unwrap();
        node.publish(&[offer(&alice, &items[1], 11)]);
        // A gap step that holds offers.
        let mut stuffed = node.state.clone().prepare_gap(10);
        stuffed.header.batch_len = 1;
        stuffed.batch = vec![offer(&alice, &items[2], 12).to_bytes()];
        let inc = node
            .signer
            .sign_inc(0, 10, stuffed.header.payload(&node.peer()));
        let sp = node.state.clone().apply(stuffed, inc);
        assert_eq!(
            verify_step(&node.cert, &node.peer(), &sp)
                .unwrap_err()
                .kind(),
            "bad-step"
        );
        // A gap step that names a predecessor it does not chain from.
        let mut forged = node.state.clone();
        let p = forged.prepare_gap(10);
        let inc = node.signer.sign_inc(0, 10, p.header.payload(&node.peer()));
        let mut sp = forged.apply(p, inc);
        sp.prev = Some(node.steps[&6].step.clone());
        assert_eq!(
            verify_step(&node.cert, &node.peer(), &sp)
                .unwrap_err()
                .kind(),
            "bad-step"
        );
        // An audit of step 7 (real) answered with a gap step over 8..9 only.
        let gap = {
            let mut n2 = node.state.clone();
            let p = n2.prepare_gap(10);
            let inc = node.signer.sign_inc(0, 10, p.header.payload(&node.peer()));
            n2.apply(p, inc)
        };
        let mut r = MRetrieval::new(
            node.trusted.clone(),
            node.peer(),
            items[0].clone(),
            [9; 32],
            crate::buyer::Budget::default(),
        );
        r.on_head_bytes(&node.head(&items[0], [9; 32]).to_bytes())
            .unwrap();
        assert_eq!(
            r.on_audit_bytes(7, &gap.to_bytes()).unwrap_err().kind(),
            "bad-step"
        );
        // A gap step over the receipted steps: the node restarts from the base's empty tree,
        // covering steps 6 and 7 as "lost". Buyers see a consistent answer; Alice's monitor
        // finds her offer gone and holds transferable removal evidence.
        node.state = MState::new(node.cert.cert.counters[0]);
        node.lists.clear();
        node.gap_step(8);
        let out = node.retrieve(&items[0], 0).unwrap();
        assert_eq!(out.gaps.len(), 1);
        let Misbehaviour::Evidence(e) = check_monitor(&ra[0], &oa, &pa, &out).unwrap_err() else {
            panic!("removal evidence expected")
        };
        assert_eq!(e.kind(), "removal");
        e.verify(&node.trusted).unwrap();
    }

    #[test]
    fn honest_steps_verify_for_sellers_buyers_and_auditors() {
        let mut node = Node::new();
        let items = items();
        let seller = Keypair::generate(&mut OsRng);
        let mut all = Vec::new();
        for round in 0..5u64 {
            let batch: Vec<SignedOffer> = (0..8)
                .map(|i| {
                    offer(
                        &seller,
                        &items[(i * 3 + round as usize) % 20],
                        100 + round * 10 + i as u64,
                    )
                })
                .collect();
            let receipts = node.publish(&batch);
            for (o, r) in batch.iter().zip(&receipts) {
                let p = check_m_receipt(&node.trusted, &node.peer(), &node.cert, o, r).unwrap();
                all.push((o.clone(), p, r.clone()));
            }
        }
        // An empty step is legal.
        node.publish(&[]);
        for item in &items {
            let out = node.retrieve(item, 3).unwrap();
            let expected = node.lists.get(&item.key()).map(Vec::len).unwrap_or(0);
            assert_eq!(out.offers.len(), expected);
            assert_eq!(out.audited.len(), 3);
            assert!((out.detection - 3.0 / 6.0).abs() < 1e-9);
        }
        // Monitoring: every receipted offer is where its receipt says.
        for (o, p, r) in &all {
            let item = Item::new(&o.offer.description).unwrap();
            check_monitor(r, o, p, &node.retrieve(&item, 0).unwrap()).unwrap();
        }
        // Absent item: empty-branch proof.
        let out = node
            .retrieve(&Item::new("nobody sells this").unwrap(), 1)
            .unwrap();
        assert!(out.offers.is_empty());
    }

    #[test]
    fn forged_or_stale_root_is_caught_by_the_buyer() {
        let mut node = Node::new();
        let items = items();
        let s = Keypair::generate(&mut OsRng);
        node.publish(&[offer(&s, &items[0], 1), offer(&s, &items[1], 2)]);
        node.publish(&[offer(&s, &items[0], 3)]);
        // Forged root in the header: the Inc no longer binds it.
        let err = node
            .retrieve_with(
                &items[0],
                0,
                |mut h| {
                    if let Some(st) = h.step.as_mut() {
                        st.header.new_root = Digest([7; 32]);
                    }
                    h
                },
                |_, l| l.to_vec(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad-step");
        // A stale step (an older, genuine one): not the step at t.
        let old = node.steps.get(&6).unwrap().step.clone();
        let err = node
            .retrieve_with(
                &items[0],
                0,
                move |mut h| {
                    h.step = Some(old.clone());
                    h
                },
                |_, l| l.to_vec(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad-step");
        // Dropping an offer from d's list: the list no longer hashes to the leaf.
        let err = node
            .retrieve_with(&items[0], 0, |h| h, |_, l| l[1..].to_vec())
            .unwrap_err();
        assert!(matches!(err.kind(), "bad-proof" | "truncated"), "{err}");
        let err = node
            .retrieve_with(
                &items[0],
                0,
                |mut h| {
                    if let Some(l) = h.leaf.as_mut() {
                        l.n -= 1;
                    }
                    h
                },
                |_, l| l[1..].to_vec(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad-proof");
        // A proof for another key.
        let (_, other_proof) = node.state.prove(&items[1].key());
        let err = node
            .retrieve_with(
                &items[0],
                0,
                move |mut h| {
                    h.proof = other_proof.clone();
                    h
                },
                |_, l| l.to_vec(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad-proof");
    }

    #[test]
    fn a_later_step_that_drops_an_offer_is_caught() {
        // The node rebuilds d's list without a receipted offer and commits a step to it.
        let mut node = Node::new();
        let items = items();
        let alice = Keypair::generate(&mut OsRng);
        let bob = Keypair::generate(&mut OsRng);
        let ra = node.publish(&[offer(&alice, &items[0], 50)]);
        let pa = check_m_receipt(
            &node.trusted,
            &node.peer(),
            &node.cert,
            &offer(&alice, &items[0], 50),
            &ra[0],
        )
        .unwrap();
        // Cheat: reset d's leaf (forget Alice's offer) and commit Bob's offer in a step.
        node.state.leaves.remove(&items[0].key());
        node.lists.remove(&items[0].key());
        let rb = node.publish(&[offer(&bob, &items[0], 40)]);
        // Bob, verifying his step, sees the old leaf claimed absent under a root where it is
        // present: caught at publish.
        let err = check_m_receipt(
            &node.trusted,
            &node.peer(),
            &node.cert,
            &offer(&bob, &items[0], 40),
            &rb[0],
        )
        .unwrap_err();
        assert_eq!(err.kind(), "bad-step");
        // And Alice's monitoring finds her offer gone.
        let out = node.retrieve(&items[0], 0);
        // The node keeps its tree consistent with the shortened list, so the buyer sees a
        // valid answer; only Alice, holding her receipt, can tell.
        match out {
            Err(e) => panic!("{e}"),
            Ok(o) => {
                let err =
                    check_monitor(&ra[0], &offer(&alice, &items[0], 50), &pa, &o).unwrap_err();
                let Misbehaviour::Evidence(e) = err else {
                    panic!("{err}")
                };
                assert_eq!(e.kind(), "removal");
                // Transferable: a third party verifies it with the authority key alone.
                let e = crate::misbehaviour::Evidence::from_bytes(&e.to_bytes()).unwrap();
                let what = e.verify(&node.trusted).unwrap();
                assert!(what.contains("index 0"), "{what}");
            }
        }
    }

    #[test]
    fn a_step_that_leaves_out_a_batch_offer_or_changes_another_key_is_caught_by_sellers() {
        let mut node = Node::new();
        let items = items();
        let alice = Keypair::generate(&mut OsRng);
        let sybil = Keypair::generate(&mut OsRng);
        node.publish(&[offer(&alice, &items[2], 9)]);
        let a = offer(&alice, &items[0], 10);
        let s = offer(&sybil, &items[1], 11);
        let receipts = node.publish(&[a.clone(), s.clone()]);
        check_m_receipt(&node.trusted, &node.peer(), &node.cert, &a, &receipts[0]).unwrap();
        // The receipt's step with the sybil's offer taken out of the batch (the proof then
        // leaves out another seller's offer): batch_root and the transition no longer fit.
        let mut r = receipts[0].clone();
        std::sync::Arc::make_mut(&mut r.step).batch.remove(1);
        assert_eq!(
            check_m_receipt(&node.trusted, &node.peer(), &node.cert, &a, &r)
                .unwrap_err()
                .kind(),
            "bad-step"
        );
        // A bad step made with a sybil seller: the node also rewrites item 2's leaf.
        let mut state = node.state.clone();
        let p = state.prepare(vec![(
            items[3].key(),
            offer(&sybil, &items[3], 12).to_bytes(),
        )]);
        let mut forged = p.clone();
        state.tree.insert(
            items[2].key().0 .0,
            Leaf::start(&items[2].key()).value_hash(),
        );
        forged.header.new_root = state.tree.root();
        let inc = node
            .signer
            .sign_inc(0, forged.header.value, forged.header.payload(&node.peer()));
        let sp = node.state.clone().apply(forged, inc);
        let err = verify_step(&node.cert, &node.peer(), &sp).unwrap_err();
        assert_eq!(err.kind(), "bad-step");
    }

    #[test]
    fn roots_that_do_not_chain_are_transferable_evidence() {
        let mut node = Node::new();
        let items = items();
        let s = Keypair::generate(&mut OsRng);
        node.publish(&[offer(&s, &items[0], 1)]);
        // The node starts the next step from a root of its own choosing.
        let mut p = node
            .state
            .prepare(vec![(items[1].key(), offer(&s, &items[1], 2).to_bytes())]);
        p.header.prev_root = Digest([3; 32]);
        let inc = node
            .signer
            .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
        let sp = node.state.apply(p, inc);
        let err = verify_step(&node.cert, &node.peer(), &sp).unwrap_err();
        let Misbehaviour::Evidence(e) = err else {
            panic!("{err}")
        };
        assert_eq!(e.kind(), "roots-do-not-chain");
        let e = crate::misbehaviour::Evidence::from_bytes(&e.to_bytes()).unwrap();
        assert!(e
            .verify(&node.trusted)
            .unwrap()
            .contains("did not end with"));
    }

    #[test]
    fn a_bad_step_is_caught_by_audits_at_the_predicted_rate() {
        // One bad step among many; the buyer audits s of them. Over many seeded runs, the
        // rate of detection matches π = s / (t − base) within a binomial bound.
        use rand::{rngs::StdRng, SeedableRng};
        let mut node = Node::new();
        let items = items();
        let s = Keypair::generate(&mut OsRng);
        let steps = 20u64;
        for i in 0..steps {
            node.publish(&[offer(&s, &items[(i % 20) as usize], 1000 + i)]);
        }
        // Corrupt one step's stored proof (as a cheating node would have to serve it).
        let bad = node.state.counter.initial + 7;
        let sp = node.steps.get_mut(&bad).unwrap();
        sp.step.header.batch_len += 1;
        let audits = 4u64;
        let pi = audits as f64 / steps as f64;
        let runs = 400;
        let mut caught = 0;
        for seed in 0..runs {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut r = MRetrieval::new(
                node.trusted.clone(),
                node.peer(),
                items[0].clone(),
                [9; 32],
                crate::buyer::Budget::default(),
            );
            let head = node.head(&items[0], [9; 32]);
            let mut next = r.on_head_bytes(&head.to_bytes()).unwrap();
            let list = node.lists.get(&items[0].key()).cloned().unwrap_or_default();
            while let Some(req) = next {
                let page = MPage {
                    offers: list
                        .iter()
                        .skip(req.from as usize)
                        .take(req.count as usize)
                        .cloned()
                        .collect(),
                };
                next = r.on_page_bytes(&page.to_bytes()).unwrap();
            }
            r.check_list().unwrap();
            let mut failed = false;
            for v in r.plan_audits(audits, &mut rng) {
                if r.on_audit_bytes(v, &node.steps[&v].to_bytes()).is_err() {
                    failed = true;
                }
            }
            caught += usize::from(failed);
        }
        let rate = caught as f64 / runs as f64;
        let sd = (pi * (1.0 - pi) / runs as f64).sqrt();
        assert!(
            (rate - pi).abs() < 4.0 * sd,
            "detected {rate}, predicted {pi} ± {}",
            4.0 * sd
        );
    }
}

/// A proof for an item under the root after a past step: the step's signed header, the item's
/// leaf then (how many offers its list held, and their chain), and the proof of that leaf.
/// The list itself comes in pages, after the leaf is checked ([`past_len`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MPast {
    /// The node's certificate.
    pub cert: SignedCertificate,
    /// The step (None at the base value, whose root is the empty root).
    pub step: Option<SignedStep>,
    /// The step's value.
    pub value: u64,
    /// d's leaf after that step (None: absent).
    pub leaf: Option<Leaf>,
    /// The proof for d's leaf under that step's root.
    pub proof: MultiProof,
}

impl Encode for MPast {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION).bytes32(&self.cert.to_bytes()).u64(self.value);
        encode_opt_step(w, &self.step);
        Leaf::encode_opt(w, &self.leaf);
        self.proof.encode_to(w);
    }
}

impl Decode for MPast {
    const WHAT: &'static str = "past proof";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        let cert = SignedCertificate::from_bytes(r.bytes32(64 * 1024, "certificate")?)?;
        let value = r.u64("value")?;
        let step = decode_opt_step(r)?;
        Ok(Self {
            cert,
            step,
            value,
            leaf: Leaf::decode_opt(r)?,
            proof: MultiProof::decode_from(r)?,
        })
    }
}

/// Checks the leaf of `item` under the root of the past step `value` the checker asked for;
/// returns how many offers the list held then (bound under the signed root, so a budget can
/// be applied before anything is fetched).
pub fn past_len(
    trusted: &[PublicKey],
    peer: &PeerId,
    item: &Item,
    value: u64,
    past: &MPast,
) -> Result<u64, Misbehaviour> {
    past.cert.verify_for(trusted, peer)?;
    let counter = crate::checks::require_stepped(&past.cert)?;
    if past.value != value {
        return Err(Misbehaviour::BadStep(
            "the proof is under another step than the one asked for",
        ));
    }
    let root = root_at(&past.cert, peer, &counter, past.step.as_ref(), past.value)?;
    let d = item.key();
    past.proof
        .verify(&root, &[(d.0 .0, past.leaf.map(|l| l.value_hash()))])
        .map_err(|_| Misbehaviour::BadProof("the leaf is not the one under that step's root"))?;
    Ok(past.leaf.map_or(0, |l| l.n))
}

/// Checks a proof for `item` under a past step's root with the item's list as it was then
/// (`list`, the first n offers), for the step `value` the checker asked for. Returns the offers.
pub fn verify_past(
    trusted: &[PublicKey],
    peer: &PeerId,
    item: &Item,
    value: u64,
    past: &MPast,
    list: &[Vec<u8>],
) -> Result<Vec<SignedOffer>, Misbehaviour> {
    let n = past_len(trusted, peer, item, value, past)?;
    if list.len() as u64 != n {
        return Err(Misbehaviour::Truncated {
            next: list.len() as u64,
            t: n,
        });
    }
    let d = item.key();
    let got = (!list.is_empty()).then(|| leaf_of(&d, list.iter().map(Vec::as_slice)));
    if got != past.leaf {
        return Err(Misbehaviour::BadProof(
            "the list is not the one under that step's root",
        ));
    }
    list.iter()
        .map(|b| {
            let o = SignedOffer::from_bytes(b)
                .map_err(|_| Misbehaviour::BadStep("the list holds a non-offer"))?;
            if o.offer.key != d || o.verify().is_err() {
                return Err(Misbehaviour::BadStep("the list holds an invalid offer"));
            }
            Ok(o)
        })
        .collect()
}

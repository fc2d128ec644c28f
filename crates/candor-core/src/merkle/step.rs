//! Steps and their encodings: the header an `Inc` binds, signed steps, step proofs, receipts.

#[allow(unused_imports)]
use super::*;

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
    /// The node's time when it made the step, unix seconds (DESIGN.md §9; 0 until the
    /// lifecycle binds node time).
    pub at: u64,
    /// The root over the records the step removes (DESIGN.md §9; zero until removals land).
    pub removal_root: Digest,
    /// How many records the step removes (0 until removals land).
    pub removal_count: u32,
}

/// What a buyer needs of a step to check its `Inc` (DESIGN.md §5's nested payload): the
/// step's value, root, time and gap link, and only the hash of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTop {
    /// The counter.
    pub counter: CounterId,
    /// The step's value.
    pub value: u64,
    /// The root after the step.
    pub new_root: Digest,
    /// The node's time at the step.
    pub at: u64,
    /// The value of the last gap step before this one ([`StepHeader::gap_link`]).
    pub gap_link: u64,
    /// [`StepHeader::rest_hash`].
    pub rest: Digest,
}

impl StepTop {
    /// The payload of an ordinary (not gap) step: `H("candor/v2/m-step" ‖ PeerId ‖ counter ‖
    /// value ‖ new_root ‖ at ‖ gap_link ‖ H(rest))`.
    pub fn payload(&self, peer: &PeerId) -> Digest {
        self.bind(
            TaggedHasher::new(tags::M_STEP)
                .var(peer.as_bytes())
                .u32(self.counter),
        )
    }

    fn bind(&self, h: TaggedHasher) -> Digest {
        h.u64(self.value)
            .fixed(self.new_root.as_bytes())
            .u64(self.at)
            .u64(self.gap_link)
            .fixed(self.rest.as_bytes())
            .finish()
    }
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

    /// `H(rest)`: `H("candor/v2/m-rest" ‖ prev_value ‖ prev_root ‖ batch_root ‖ batch_len ‖
    /// total_offers ‖ removal_root ‖ removal_count)`, what sellers and auditors open.
    pub fn rest_hash(&self) -> Digest {
        TaggedHasher::new(tags::M_REST)
            .u64(self.prev_value)
            .fixed(self.prev_root.as_bytes())
            .fixed(self.batch_root.as_bytes())
            .u32(self.batch_len)
            .u64(self.total_offers)
            .fixed(self.removal_root.as_bytes())
            .u32(self.removal_count)
            .finish()
    }

    /// The part a buyer needs ([`StepTop`]).
    pub fn top(&self) -> StepTop {
        StepTop {
            counter: self.counter,
            value: self.value,
            new_root: self.new_root,
            at: self.at,
            gap_link: self.gap_link,
            rest: self.rest_hash(),
        }
    }

    /// The payload the step's `Inc` must carry (DESIGN.md §5): an ordinary step binds
    /// [`StepTop::payload`]; a gap step binds the gap notice `H("candor/v1/gap" ‖ PeerId ‖
    /// counter ‖ first ‖ last` followed by the same fields `‖ value ‖ new_root ‖ at ‖ gap_link ‖
    /// H(rest))`.
    pub fn payload(&self, peer: &PeerId) -> Digest {
        let top = self.top();
        match self.gap() {
            None => top.payload(peer),
            Some((first, last)) => top.bind(
                TaggedHasher::new(tags::GAP)
                    .var(peer.as_bytes())
                    .u32(self.counter)
                    .u64(first)
                    .u64(last),
            ),
        }
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
            .u64(self.gap_link)
            .u64(self.at)
            .fixed(self.removal_root.as_bytes())
            .u32(self.removal_count);
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
            at: r.u64("at")?,
            removal_root: Digest(r.array("removal root")?),
            removal_count: r.u32("removal count")?,
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

/// H over a step's removals, (item key, offer hash) pairs sorted by item then list place.
pub fn removal_root(removals: &[(ItemKey, Digest)]) -> Digest {
    let mut h = TaggedHasher::new("candor/v1/m-removals").u32(removals.len() as u32);
    for (d, o) in removals {
        h = h.fixed(d.0.as_bytes()).fixed(o.as_bytes());
    }
    h.finish()
}

/// A whole step as the node serves it to sellers and auditors: the signed header, the step
/// before it (absent at the base), the offers it adds, the offers it removes, the touched
/// items' old lists, and the transition proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProof {
    /// This step.
    pub step: SignedStep,
    /// The step before (None when this step follows the base value).
    pub prev: Option<SignedStep>,
    /// The offers it adds (encoded signed offers), in order.
    pub batch: Vec<Vec<u8>>,
    /// The offers it removes (encoded), sorted by item then list place; each is justified by
    /// its expiry at the step's time or by a higher serial of its seller in the batch.
    pub removed: Vec<Vec<u8>>,
    /// Every touched item's list before the step (None: absent), sorted by key.
    pub old: Vec<(ItemKey, Option<OldList>)>,
    /// The touched keys' siblings under both roots.
    pub proof: MultiProof,
}

fn encode_offers(w: &mut Writer, offers: &[Vec<u8>]) {
    w.u32(offers.len() as u32);
    for b in offers {
        w.bytes16(b);
    }
}

fn decode_offers(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<Vec<Vec<u8>>, DecodeError> {
    let n = r.u32(field)? as usize;
    if n > max {
        return Err(DecodeError::TooLong { field, len: n, max });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.bytes16(MAX_OFFER_BYTES, field)?.to_vec());
    }
    Ok(out)
}

impl Encode for StepProof {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION);
        self.step.encode_to(w);
        encode_opt_step(w, &self.prev);
        encode_offers(w, &self.batch);
        encode_offers(w, &self.removed);
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
        let batch = decode_offers(r, "batch", MAX_BATCH)?;
        let removed = decode_offers(r, "removed", MAX_REMOVALS)?;
        let m = r.u32("touched keys")? as usize;
        if m > MAX_TOUCHED {
            return Err(DecodeError::TooLong {
                field: "touched keys",
                len: m,
                max: MAX_TOUCHED,
            });
        }
        let mut old = Vec::with_capacity(m);
        let mut carried = 0usize;
        for _ in 0..m {
            let d = ItemKey(Digest(r.array("key")?));
            let l = match r.u8("list present")? {
                0 => None,
                1 => {
                    let l = OldList::decode_from(r)?;
                    carried += l.records.len();
                    if carried > MAX_STEP_RECORDS {
                        return Err(DecodeError::TooLong {
                            field: "old lists' records",
                            len: carried,
                            max: MAX_STEP_RECORDS,
                        });
                    }
                    Some(l)
                }
                kind => {
                    return Err(DecodeError::UnknownKind {
                        what: "old list",
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
            removed,
            old,
            proof: MultiProof::decode_from(r)?,
        })
    }
}

/// Where one batch offer landed: its item and its offer hash (its place in the list is the
/// list's business: a seller finds it by hash in any later list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The item.
    pub item: ItemKey,
    /// H(offer bytes).
    pub hash: Digest,
}

/// A seller's receipt in scheme M: the whole step (kept as evidence) and where its offer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReceipt {
    /// The certificate's id.
    pub cert_id: Digest,
    /// The step, as verified.
    pub step: std::sync::Arc<StepProof>,
    /// The offer's index in the batch.
    pub position: u32,
}

impl Encode for StepReceipt {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION)
            .fixed(self.cert_id.as_bytes())
            .u32(self.position);
        w.bytes32(&self.step.to_bytes());
    }
}

impl Decode for StepReceipt {
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

/// A proof for an item under the root after a past step: the step's signed header, the item's
/// leaf then (how many offers its list held, and their chain), and the proof of that leaf.
/// The list itself comes in pages, after the leaf is checked ([`crate::past_len`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastProof {
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

impl Encode for PastProof {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION).bytes32(&self.cert.to_bytes()).u64(self.value);
        encode_opt_step(w, &self.step);
        Leaf::encode_opt(w, &self.leaf);
        self.proof.encode_to(w);
    }
}

impl Decode for PastProof {
    const WHAT: &'static str = "past proof";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        let cert =
            SignedCertificate::from_bytes(r.bytes32(crate::cert::MAX_CERT_BYTES, "certificate")?)?;
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

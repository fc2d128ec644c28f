//! The head of a scheme-M retrieve — what a node answers first — and its compact encoding.
//!
//! A head carries only what the buyer cannot rebuild: the certificate (or nothing, when the
//! request named the one the buyer holds), the `Read`'s counter, value and signature (device
//! and PeerId come from the certificate, the nonce from the buyer's own request and the path
//! from it to the root of the batch of nonces the `Read` served, if it served several), the step at
//! t as its top (DESIGN.md §5's nested payload: the rest only as a hash) without its new root
//! and its `Inc`'s signature (the root is the one d's leaf and proof fold to; the `Inc` is
//! rebuilt: device and PeerId from the certificate, the payload from the top), d's leaf and
//! proof, and the gap steps on the chain. A statement the node altered cannot survive the
//! rebuilding: its signature then fails over the statement the buyer rebuilt (a `Read` of
//! another nonce, a proof of another leaf or root, all alike).

#[allow(unused_imports)]
use super::*;
use crate::entry::RetrieveRequest;
use crate::nonces::NoncePath;
use crate::statement::{DeviceSig, Inc, Read};

/// The version of the compact head's encoding (5: the nonce and the step's new root are left
/// for the buyer to rebuild; 6: the path of a batched `Read`; 7: the live map's leaf, with
/// its list root and last change; 8: the audit horizon). A head of another version is refused
/// as malformed.
pub const HEAD_VERSION: u8 = 8;

/// The step at t as a buyer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadStep {
    /// An ordinary step: its top and its `Inc`; the rest is known only by its hash.
    Top {
        /// The top.
        top: StepTop,
        /// The step's `Inc`.
        inc: SignedInc,
    },
    /// A step sent whole: a gap step (whose payload binds the values it covers). In a head it
    /// is the first of the head's gap steps, and travels as a reference to it: an ordinary
    /// step has one encoding, its top.
    Whole(SignedStep),
}

impl HeadStep {
    /// What a head carries of `step`: its top if it is an ordinary step, else all of it.
    pub fn of(step: &SignedStep) -> Self {
        if step.header.gap().is_some() {
            Self::Whole(step.clone())
        } else {
            Self::Top {
                top: step.header.top(),
                inc: step.inc.clone(),
            }
        }
    }

    /// The step's value.
    pub fn value(&self) -> u64 {
        match self {
            Self::Top { top, .. } => top.value,
            Self::Whole(s) => s.header.value,
        }
    }

    /// The step's counter.
    pub fn counter(&self) -> CounterId {
        match self {
            Self::Top { top, .. } => top.counter,
            Self::Whole(s) => s.header.counter,
        }
    }

    /// The root after the step.
    pub fn new_root(&self) -> Digest {
        match self {
            Self::Top { top, .. } => top.new_root,
            Self::Whole(s) => s.header.new_root,
        }
    }

    /// The value of the last gap step on the chain up to and including this step.
    pub fn last_gap(&self) -> u64 {
        match self {
            // A top is an ordinary step: the last gap is the one it names.
            Self::Top { top, .. } => top.gap_link,
            Self::Whole(s) => s.header.last_gap(),
        }
    }

    /// The node time the step binds (DESIGN.md §9).
    pub fn at(&self) -> u64 {
        match self {
            Self::Top { top, .. } => top.at,
            Self::Whole(s) => s.header.at,
        }
    }

    /// The step's `Inc`.
    pub fn inc(&self) -> &SignedInc {
        match self {
            Self::Top { inc, .. } => inc,
            Self::Whole(s) => &s.inc,
        }
    }

    /// The step's `Inc`, to alter (tools and tests that forge heads).
    pub fn inc_mut(&mut self) -> &mut SignedInc {
        match self {
            Self::Top { inc, .. } => inc,
            Self::Whole(s) => &mut s.inc,
        }
    }

    /// The payload the step's `Inc` must bind.
    pub fn payload(&self, peer: &PeerId) -> Digest {
        match self {
            Self::Top { top, .. } => top.payload(peer),
            Self::Whole(s) => s.header.payload(peer),
        }
    }
}

fn encode_top(w: &mut Writer, top: &StepTop) {
    w.u32(top.counter)
        .u64(top.value)
        .fixed(top.new_root.as_bytes())
        .u64(top.at)
        .u64(top.gap_link)
        .fixed(top.rest.as_bytes());
}

fn decode_top(r: &mut Reader<'_>) -> Result<StepTop, DecodeError> {
    let top = StepTop {
        counter: r.u32("counter")?,
        value: r.u64("value")?,
        new_root: Digest(r.array("new root")?),
        at: r.u64("at")?,
        gap_link: r.u64("gap link")?,
        rest: Digest(r.array("rest hash")?),
    };
    if top.gap_link >= top.value {
        return Err(DecodeError::Invalid {
            field: "gap link",
            reason: "not below the step's value",
        });
    }
    Ok(top)
}

/// Whole, self-contained (as evidence carries it): a top with its whole `Inc`, or a step.
impl Encode for HeadStep {
    fn encode_to(&self, w: &mut Writer) {
        match self {
            Self::Top { top, inc } => {
                w.u8(VERSION).u8(1);
                encode_top(w, top);
                inc.encode_to(w);
            }
            Self::Whole(s) => {
                w.u8(VERSION).u8(2);
                s.encode_to(w);
            }
        }
    }
}

impl Decode for HeadStep {
    const WHAT: &'static str = "head step";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        match r.u8("step kind")? {
            1 => Ok(Self::Top {
                top: decode_top(r)?,
                inc: SignedInc::decode_from(r)?,
            }),
            2 => {
                let step = SignedStep::decode_from(r)?;
                if step.header.gap().is_none() {
                    // One encoding per step: an ordinary step travels as its top.
                    return Err(DecodeError::Invalid {
                        field: "head step",
                        reason: "an ordinary step sent whole",
                    });
                }
                Ok(Self::Whole(step))
            }
            kind => Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            }),
        }
    }
}

/// The node's first answer to a scheme-M retrieve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepHead {
    /// The certificate.
    pub cert: SignedCertificate,
    /// `Read(t, nonce)`: the nonce is the buyer's, or the root of the batch of nonces the
    /// `Read` served ([`crate::NonceTree`]).
    pub read: SignedRead,
    /// The path from the buyer's nonce to the one the `Read` signed (empty: its own).
    pub nonces: NoncePath,
    /// The step at t (None when t is the base value).
    pub step: Option<HeadStep>,
    /// d's leaf under that step's root (None: d is absent).
    pub leaf: Option<Leaf>,
    /// The proof for d's leaf under that root.
    pub proof: MultiProof,
    /// The gap steps on the chain to t, newest first, each the one the previous names.
    pub gaps: Vec<SignedStep>,
    /// The audit horizon (DESIGN.md §9): the newest step whose batch and proof the node may
    /// have dropped, dated before now − L_max − 2·skew by the node's clock. Audits are drawn
    /// above it; a horizon dated within the checker's window is a misbehaviour. None: the
    /// node keeps every step.
    pub horizon: Option<SignedStep>,
}

/// How the step at t travels in a head.
const STEP_NONE: u8 = 0;
const STEP_TOP: u8 = 1;
/// The step at t is the first gap step the head carries (a gap step at t).
const STEP_FIRST_GAP: u8 = 2;

impl StepHead {
    /// The head's encoding for a request that named certificate `named` (by id): when that is
    /// this head's certificate, the certificate is left out.
    pub fn encode_for(&self, named: Option<&Digest>) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(HEAD_VERSION);
        if named == Some(&self.cert.id()) {
            w.bytes32(&[]);
        } else {
            w.bytes32(&self.cert.to_bytes());
        }
        let read = &self.read.read;
        w.varint(u64::from(read.counter)).varint(read.value);
        self.read.sig.encode_to(&mut w);
        self.nonces.encode_to(&mut w);
        match &self.step {
            None => {
                w.u8(STEP_NONE);
            }
            Some(HeadStep::Top { top, inc }) => {
                w.u8(STEP_TOP)
                    .varint(u64::from(top.counter))
                    .varint(top.value)
                    .varint(top.at)
                    .varint(top.gap_link)
                    .fixed(top.rest.as_bytes());
                inc.sig.encode_to(&mut w);
            }
            // A whole step at t is the head's first gap step (`HeadStep::of` and the node's
            // gap list make it so); a head built otherwise decodes as the one whose step at t
            // is its first gap step, which the checks then judge.
            Some(HeadStep::Whole(_)) => {
                w.u8(STEP_FIRST_GAP);
            }
        }
        match &self.leaf {
            None => {
                w.u8(0);
            }
            Some(l) => {
                w.u8(1)
                    .varint(l.n)
                    .fixed(l.root.as_bytes())
                    .varint(l.last_changed);
            }
        }
        self.proof.encode_to(&mut w);
        w.varint(self.gaps.len() as u64);
        for g in &self.gaps {
            g.encode_to(&mut w);
        }
        match &self.horizon {
            None => {
                w.u8(0);
            }
            Some(h) => {
                w.u8(1);
                h.encode_to(&mut w);
            }
        }
        w.into_bytes()
    }

    /// Decodes a head answered to `req`. `named` is the certificate the request named (the
    /// buyer holds it, checked): a head that leaves its certificate out answers under that one.
    /// The `Read` is rebuilt with the request's nonce, and an ordinary step's new root is the
    /// one d's leaf and proof fold to. Returns the head and whether its certificate was the
    /// named one, left out.
    pub fn decode(
        bytes: &[u8],
        req: &RetrieveRequest,
        named: Option<&SignedCertificate>,
    ) -> Result<(Self, bool), DecodeError> {
        const WHAT: &str = "M head";
        let mut r = Reader::new(bytes);
        r.version(HEAD_VERSION, WHAT)?;
        let cert_bytes = r.bytes32(crate::cert::MAX_CERT_BYTES, "certificate")?;
        let (cert, was_named) = match (cert_bytes.is_empty(), named) {
            (false, Some(c)) if cert_bytes == c.to_bytes() => {
                // The named certificate is left out, never sent again: one encoding.
                return Err(DecodeError::Invalid {
                    field: "certificate",
                    reason: "the named certificate sent again",
                });
            }
            (false, _) => (SignedCertificate::from_bytes(cert_bytes)?, false),
            (true, Some(c)) => (c.clone(), true),
            (true, None) => {
                return Err(DecodeError::Invalid {
                    field: "certificate",
                    reason: "left out, but the request named none",
                })
            }
        };
        let device = cert.cert.device.id();
        let peer = cert.cert.peer.clone();
        let counter = counter_id(&mut r)?;
        let value = r.varint("read value")?;
        let sig = DeviceSig::decode_from(&mut r, "signed Read")?;
        let nonces = NoncePath::decode_from(&mut r)?;
        let read = SignedRead {
            read: Read {
                device,
                peer: peer.clone(),
                counter,
                value,
                nonce: nonces.root(&req.nonce),
            },
            sig,
        };
        let kind = r.u8("step kind")?;
        let top = match kind {
            STEP_NONE | STEP_FIRST_GAP => None,
            STEP_TOP => {
                let top = StepTop {
                    counter: counter_id(&mut r)?,
                    value: r.varint("step value")?,
                    // Filled in below, from the proof.
                    new_root: Digest::default(),
                    at: r.varint("at")?,
                    gap_link: r.varint("gap link")?,
                    rest: Digest(r.array("rest hash")?),
                };
                // As for a whole header: the last gap before a step lies below it, so no gap
                // step signed after the Read can be named by the step at t.
                if top.gap_link >= top.value {
                    return Err(DecodeError::Invalid {
                        field: "gap link",
                        reason: "not below the step's value",
                    });
                }
                Some((top, DeviceSig::decode_from(&mut r, "signed Inc")?))
            }
            kind => {
                return Err(DecodeError::UnknownKind {
                    what: "head step",
                    kind,
                })
            }
        };
        let leaf = match r.u8("leaf present")? {
            0 => None,
            1 => Some(Leaf {
                n: r.varint("leaf n")?,
                root: Digest(r.array("leaf root")?),
                last_changed: r.varint("last changed")?,
            }),
            kind => return Err(DecodeError::UnknownKind { what: "leaf", kind }),
        };
        let proof = MultiProof::decode_from(&mut r)?;
        let n = r.varint_max(MAX_GAP_STEPS, "gap steps")?;
        let mut gaps = Vec::with_capacity(n);
        for _ in 0..n {
            gaps.push(SignedStep::decode_from(&mut r)?);
        }
        let horizon = match r.u8("horizon present")? {
            0 => None,
            1 => Some(SignedStep::decode_from(&mut r)?),
            kind => {
                return Err(DecodeError::UnknownKind {
                    what: "horizon",
                    kind,
                })
            }
        };
        r.finish(WHAT)?;
        let step = match (kind, top, gaps.first()) {
            (_, Some((mut top, sig)), _) => {
                top.new_root = proof
                    .root(&[(req.item.0 .0, leaf.map(|l| l.value_hash()))])
                    .map_err(|_| DecodeError::Invalid {
                        field: "proof",
                        reason: "does not fold to a root for the item's leaf",
                    })?;
                let inc = SignedInc {
                    inc: Inc {
                        device,
                        peer: peer.clone(),
                        counter: top.counter,
                        value: top.value,
                        payload: top.payload(&peer),
                    },
                    sig,
                };
                Some(HeadStep::Top { top, inc })
            }
            (STEP_FIRST_GAP, None, Some(g)) => Some(HeadStep::Whole(g.clone())),
            (STEP_FIRST_GAP, None, None) => {
                return Err(DecodeError::Invalid {
                    field: "head step",
                    reason: "the first gap step, but the head carries none",
                })
            }
            _ => None,
        };
        Ok((
            Self {
                cert,
                read,
                nonces,
                step,
                leaf,
                proof,
                gaps,
                horizon,
            },
            was_named,
        ))
    }
}

fn counter_id(r: &mut Reader<'_>) -> Result<CounterId, DecodeError> {
    let c = r.varint("counter")?;
    CounterId::try_from(c).map_err(|_| DecodeError::Invalid {
        field: "counter",
        reason: "beyond 32 bits",
    })
}

/// The full encoding (the certificate included; the nonce and an ordinary step's new root
/// are still the request's and the proof's to give), for tests, tools and fuzzing.
impl Encode for StepHead {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.encode_for(None));
    }
}

//! Misbehaviour and evidence (DESIGN.md §6).
//!
//! Every failed check is a [`Misbehaviour`]. Some carry [`Evidence`]: device-signed material
//! that any third party verifies alone, with nothing but the evidence and the authority keys
//! it trusts ([`Evidence::verify`]).

use crate::cert::{CertError, SignedCertificate};
use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::entry::MAX_ENTRY_BYTES;
use crate::kind::Kind;
use crate::offer::{OfferFault, SignedOffer};
use crate::statement::{CounterId, SignedInc};
use thiserror::Error;

/// 2: scheme-M evidence carries steps of step format 4 and a removal's later step as a head
/// carries it; 3: certificates with time rules, `at` going backwards, over-long expiry; 4:
/// scheme B/C entries and gap notices bind node time, and their own `at` backwards and
/// over-long kinds.
pub const EVIDENCE_VERSION: u8 = 5;

/// Which budget a listing node exhausted. Only volume the node has committed to (a signed
/// `Read`, a leaf under a signed root) or really sent counts: nothing a node merely claims, and
/// not time (a node that stalls gets [`Misbehaviour::Timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// More values (scheme M: offers of the item) than the buyer will check.
    Entries,
    /// More bytes than the buyer will take.
    Bytes,
}

/// A failed check, named.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// The node's certificate is not acceptable.
    #[error("bad certificate: {0}")]
    Certificate(#[from] CertError),
    /// The node answered with a reply of another scheme than its certificate names (the
    /// certificate decides which checks run; a reply of another scheme is never checked).
    #[error(
        "the node is certified for scheme {certified} but answered with a scheme-{answered} reply"
    )]
    WrongScheme {
        /// The scheme the certificate names.
        certified: crate::cert::Scheme,
        /// The kind of reply the node sent (`B/C` or `M`).
        answered: &'static str,
    },
    /// A device statement's signature does not verify.
    #[error("the {what} at value {value} is not signed by the certified device")]
    BadStatementSignature {
        /// `Inc` or `Read`.
        what: &'static str,
        /// The value it claims.
        value: u64,
    },
    /// The `Read` does not answer this request's nonce (stale or replayed).
    #[error("the Read does not answer this request's nonce (stale or replayed answer)")]
    StaleNonce,
    /// A statement names another device than the certified one.
    #[error("a statement names another device than the certified one")]
    WrongDevice,
    /// A statement names another node.
    #[error("a statement names another node than the one spoken to")]
    WrongPeer,
    /// A statement is on a counter the certificate does not assign to the item.
    #[error("a statement is on counter {got}, but the item's counter is {expected}")]
    WrongCounter {
        /// The item's counter.
        expected: CounterId,
        /// The counter used.
        got: CounterId,
    },
    /// A value at or below the certified initial value.
    #[error("value {value} is not above the certified initial value {base}")]
    BelowBase {
        /// The value.
        value: u64,
        /// The initial value.
        base: u64,
    },
    /// The entry's bytes are not what the `Inc` binds (altered or substituted).
    #[error("the entry at value {value} is not what the device counted (altered or substituted)")]
    EntryMismatch {
        /// The value.
        value: u64,
    },
    /// A value out of order (reordered or duplicated).
    #[error("expected value {expected} or later, got {got} (reordered or duplicated)")]
    OutOfOrder {
        /// The lowest acceptable value.
        expected: u64,
        /// The value sent.
        got: u64,
    },
    /// A value beyond the `Read`'s t.
    #[error("value {value} is beyond the Read's t = {t}")]
    BeyondRead {
        /// The value.
        value: u64,
        /// The `Read`'s value.
        t: u64,
    },
    /// A value the node neither served nor covered with a gap notice.
    #[error("value {value} was neither served nor covered by a gap notice (omitted entry)")]
    MissingEntry {
        /// The first missing value.
        value: u64,
    },
    /// The node stopped sending before t.
    #[error("the node stopped at value {next} before t = {t}")]
    Truncated {
        /// The next value expected.
        next: u64,
        /// The `Read`'s value.
        t: u64,
    },
    /// A gap notice that covers values it may not cover.
    #[error("the gap notice at value {value} covers values that were served or are out of range")]
    BadGap {
        /// The notice's value.
        value: u64,
    },
    /// A message did not decode.
    #[error("malformed message: {0}")]
    Malformed(#[from] DecodeError),
    /// A receipt does not bind the seller's offer as it should.
    #[error("the receipt does not bind the offer: {0}")]
    BadReceipt(&'static str),
    /// A scheme-M step does not verify.
    #[error("bad step: {0}")]
    BadStep(&'static str),
    /// A scheme-M proof does not verify.
    #[error("bad proof: {0}")]
    BadProof(&'static str),
    /// A receipted offer is no longer at its index with its chain prefix (scheme M).
    #[error(
        "the receipted offer at index {index} was removed or altered (the list now holds {now})"
    )]
    Removed {
        /// The receipted index.
        index: u64,
        /// The list's length now.
        now: u64,
    },
    /// The node shows more gap notices or gap steps than the checker accepts: it lost (or
    /// claims to have lost) too much to be checked. Local: an honest node that crashes this
    /// often is not fit to list either.
    #[error("the node shows more than {max} gap notices or gap steps")]
    TooManyGaps {
        /// The checker's cap.
        max: u32,
    },
    /// A scheme-M gap step skips more values than an honest node loses in crashes: it goes
    /// back to an old root (local: the step is device-signed, but an honest node could in
    /// principle crash that often in a row).
    #[error("the gap step at value {value} skips {width} values (at most {max} accepted)")]
    GapTooWide {
        /// The gap step's value.
        value: u64,
        /// How many values it skips.
        width: u64,
        /// The checker's cap.
        max: u64,
    },
    /// The node's `Read` is below a value the checker holds a receipt for.
    #[error("the Read's t = {t} is below receipted value {receipted}")]
    ReadBelowReceipt {
        /// The `Read`'s value.
        t: u64,
        /// The receipted value.
        receipted: u64,
    },
    /// The node answers under another certificate than the one its receipt names, or the one
    /// the reader named from what the node showed (an authority never certifies one PeerId
    /// twice).
    #[error(
        "the node answers under another certificate than the one its receipt or the reader names"
    )]
    OtherCertificate,
    /// The node refused the request.
    #[error("the node refused: {0}")]
    Refused(String),
    /// After its signed `Read` committed it to an answer, the node refused a page or an
    /// audit, or answered with something that is not one (local: a node with a bad step
    /// cannot dodge the audit by refusing it).
    #[error("the node stopped answering after its Read: {0}")]
    RefusedAfterRead(String),
    /// The node did not answer within the checker's time budget (local: a node that stalls
    /// to escape a check it would fail gets no "verified", and no "over budget" either).
    #[error("the node did not answer within the time budget")]
    Timeout,
    /// The node could not be reached (not necessarily its fault).
    #[error("the node could not be reached: {0}")]
    Unreachable(String),
    /// The node did not answer a message it had to answer.
    #[error("the node sent no answer where one was due: {0}")]
    NoAnswer(&'static str),
    /// The node exceeded the checker's budget.
    #[error("over budget ({0:?})")]
    OverBudget(BudgetKind),
    /// The node's signed time (`at`) is beyond the checker's clock by more than the
    /// certificate's skew, or (a fresh receipt) outside it either way (DESIGN.md §9). Never
    /// an accusation: one of the two clocks is wrong. The answer is not used, as if the node
    /// were unreachable; a node that dates a step into the future makes itself useless for
    /// as long.
    #[error("clock disagreement: the node's time {at} is not within {skew} s of this clock ({now}); its answer is not used")]
    ClockDisagreement {
        /// The node time the answer binds.
        at: u64,
        /// The checker's clock.
        now: u64,
        /// The certificate's skew.
        skew: u32,
    },
    /// A scheme B/C window boundary too recent to hide only expired offers: `at(w)` is at
    /// or past the checker's now − L_max + skew, so an offer counted at or before w may still
    /// be live (DESIGN.md §9). Local: it rests on the checker's clock. (A boundary within
    /// 2·skew of the edge is a [`Misbehaviour::ClockDisagreement`] instead: whatever it
    /// hides has expired by the checker's clock.)
    #[error(
        "the window boundary's time {at} is not before {edge}: offers it hides may still be live"
    )]
    RecentBoundary {
        /// The boundary's node time.
        at: u64,
        /// The checker's edge (now − L_max − skew).
        edge: u64,
    },
    /// Device-signed evidence any third party can verify.
    #[error("transferable evidence of {}", .0.kind())]
    Evidence(Box<Evidence>),
}

impl Misbehaviour {
    /// Whether this misbehaviour carries transferable evidence.
    pub fn is_transferable(&self) -> bool {
        matches!(self, Self::Evidence(_))
    }

    /// A short stable name for reports and tests.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Certificate(_) => Kind::BadCertificate,
            Self::WrongScheme { .. } => Kind::WrongScheme,
            Self::BadStatementSignature { .. } => Kind::BadStatementSignature,
            Self::StaleNonce => Kind::StaleNonce,
            Self::WrongDevice => Kind::WrongDevice,
            Self::WrongPeer => Kind::WrongPeer,
            Self::WrongCounter { .. } => Kind::WrongCounter,
            Self::BelowBase { .. } => Kind::BelowBase,
            Self::EntryMismatch { .. } => Kind::EntryMismatch,
            Self::OutOfOrder { .. } => Kind::OutOfOrder,
            Self::BeyondRead { .. } => Kind::BeyondRead,
            Self::MissingEntry { .. } => Kind::MissingEntry,
            Self::Truncated { .. } => Kind::Truncated,
            Self::BadGap { .. } => Kind::BadGap,
            Self::Malformed(_) => Kind::Malformed,
            Self::BadReceipt(_) => Kind::BadReceipt,
            Self::ReadBelowReceipt { .. } => Kind::ReadBelowReceipt,
            Self::TooManyGaps { .. } => Kind::TooManyGaps,
            Self::GapTooWide { .. } => Kind::GapTooWide,
            Self::BadStep(_) => Kind::BadStep,
            Self::BadProof(_) => Kind::BadProof,
            Self::Removed { .. } => Kind::Removed,
            Self::OtherCertificate => Kind::OtherCertificate,
            Self::Refused(_) => Kind::Refused,
            Self::RefusedAfterRead(_) => Kind::RefusedAfterRead,
            Self::NoAnswer(_) => Kind::NoAnswer,
            Self::Unreachable(_) => Kind::Unreachable,
            Self::Timeout => Kind::Timeout,
            Self::OverBudget(_) => Kind::OverBudget,
            Self::ClockDisagreement { .. } => Kind::ClockDisagreement,
            Self::RecentBoundary { .. } => Kind::RecentBoundary,
            Self::Evidence(e) => e.kind(),
        }
    }
}

/// Transferable evidence of a listing node's (or its device's) misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Evidence {
    /// Two `Inc`s for one device, counter and value with different payloads.
    Equivocation {
        /// The device's certificate.
        cert: SignedCertificate,
        /// One statement.
        a: SignedInc,
        /// The other.
        b: SignedInc,
    },
    /// A gap notice covering a value for which an `Inc` (a seller's receipt) exists.
    GapOverReceipt {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The receipted `Inc`.
        receipt: SignedInc,
        /// The gap notice's `Inc`.
        gap: SignedInc,
        /// The gap notice's node time.
        at: u64,
        /// First value the notice covers.
        first: u64,
        /// Last value it covers.
        last: u64,
    },
    /// A scheme-M gap step that skips a value for which the device signed an `Inc` that left
    /// the node (a receipt, a step a buyer saw): an honest node covers only values it lost
    /// before any statement about them left it.
    GapStepOverInc {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The `Inc` at the skipped value.
        inc: SignedInc,
        /// The gap step.
        gap: Box<crate::merkle::SignedStep>,
    },
    /// Two consecutive scheme-M steps whose roots do not chain.
    RootsDoNotChain {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The step at v − 1.
        a: Box<crate::merkle::SignedStep>,
        /// The step at v.
        b: Box<crate::merkle::SignedStep>,
    },
    /// A receipted scheme-M offer missing from a later signed list while it was unexpired at
    /// that step's time and no record of its seller with an equal or higher serial replaced it
    /// (DESIGN.md §9).
    Removal {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The whole step that counted the offer (the seller's receipt).
        receipt: Box<crate::merkle::StepProof>,
        /// The offer's position in that step's batch.
        position: u32,
        /// A later step, as a head carries it.
        later: Box<crate::merkle::HeadStep>,
        /// The proof for the item under the later step's root.
        proof: crate::smt::MultiProof,
        /// The item's whole list under that root.
        list: Vec<Vec<u8>>,
        /// The step at which that list last changed (its leaf binds it).
        last_changed: u64,
    },
    /// A scheme-M step that removes a record with no justification: not expired at the step's
    /// time, and no higher serial of its seller for its item, living at least as long, in the
    /// step's batch (DESIGN.md §9).
    UnjustifiedRemoval {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The step, with its `Inc` (its header binds the batch and removal roots).
        step: Box<crate::merkle::SignedStep>,
        /// The step's whole batch.
        batch: Vec<Vec<u8>>,
        /// The step's whole list of removed offers.
        removed: Vec<Vec<u8>>,
        /// The unjustified removal's index in `removed`.
        index: u32,
    },
    /// Two scheme-M steps of one counter whose node time goes backwards: `a` at a lower
    /// value than `b` binds a later `at` (DESIGN.md §9: an honest node binds max(clock, last
    /// at), so its `at` never goes backwards, not even after a clock correction).
    AtBackwards {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The earlier step (lower value), as a head carries it.
        a: Box<crate::merkle::HeadStep>,
        /// The later step.
        b: Box<crate::merkle::HeadStep>,
    },
    /// A scheme-M step whose batch holds an offer listed longer than L_max − 2·skew past the
    /// step's time (DESIGN.md §9; the certificate fixes L_max and skew).
    OverlongExpiry {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The step, with its `Inc`.
        step: Box<crate::merkle::SignedStep>,
        /// The step's whole batch (its batch root covers exactly these).
        batch: Vec<Vec<u8>>,
        /// The over-long offer's position in the batch.
        position: u32,
    },
    /// Two scheme B/C items (entries or gap notices) of one counter whose node time goes
    /// backwards: `a` at a lower value than `b` binds a later `at` (a seller's receipt and a
    /// window boundary above it, or two items of one answer).
    EntryAtBackwards {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The earlier item (lower value).
        a: crate::entry::PageItem,
        /// The later item.
        b: crate::entry::PageItem,
    },
    /// A scheme B/C entry counting an offer listed longer than L_max − 2·skew past the entry's
    /// time (DESIGN.md §9).
    OverlongEntry {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The `Inc` binding the entry.
        inc: SignedInc,
        /// The entry's node time.
        at: u64,
        /// The entry's bytes (the offer).
        bytes: Vec<u8>,
    },
    /// An entry under a valid `Inc` that is not a valid offer.
    BadEntry {
        /// The device's certificate.
        cert: SignedCertificate,
        /// The `Inc` binding the entry.
        inc: SignedInc,
        /// The entry's node time.
        at: u64,
        /// The entry's bytes.
        bytes: Vec<u8>,
    },
}

/// Why evidence does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The certificate is not acceptable.
    #[error("certificate: {0}")]
    Certificate(#[from] CertError),
    /// A statement is not signed by the certified device.
    #[error("a statement is not signed by the certified device")]
    BadSignature,
    /// The statements do not name the certified device and node.
    #[error("a statement does not name the certified device and node")]
    WrongSubject,
    /// The material is consistent with an honest node.
    #[error("the material does not show misbehaviour: {0}")]
    NotMisbehaviour(&'static str),
}

/// What is wrong with a bad entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryFault {
    /// The bytes do not decode as a signed offer.
    #[error("the entry does not decode: {0}")]
    Undecodable(DecodeError),
    /// The offer fails a check.
    #[error("the offer is invalid: {0}")]
    Invalid(OfferFault),
}

/// Why an entry's bytes are not a valid offer, if they are not.
pub fn entry_fault(bytes: &[u8]) -> Option<EntryFault> {
    match SignedOffer::from_bytes(bytes) {
        Err(e) => Some(EntryFault::Undecodable(e)),
        Ok(o) => o.verify().err().map(EntryFault::Invalid),
    }
}

impl Evidence {
    /// A short stable name.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Equivocation { .. } => Kind::Equivocation,
            Self::GapOverReceipt { .. } => Kind::GapOverReceipt,
            Self::GapStepOverInc { .. } => Kind::GapStepOverInc,
            Self::BadEntry { .. } => Kind::BadEntry,
            Self::RootsDoNotChain { .. } => Kind::RootsDoNotChain,
            Self::Removal { .. } => Kind::Removal,
            Self::AtBackwards { .. } => Kind::AtBackwards,
            Self::OverlongExpiry { .. } => Kind::OverlongExpiry,
            Self::EntryAtBackwards { .. } => Kind::AtBackwards,
            Self::OverlongEntry { .. } => Kind::OverlongExpiry,
            Self::UnjustifiedRemoval { .. } => Kind::UnjustifiedRemoval,
        }
    }

    /// The node the evidence is against (its certificate's PeerId).
    pub fn subject(&self) -> &crate::PeerId {
        &self.cert().cert.peer
    }

    /// The authority its certificate names (whether to trust it is the checker's choice).
    pub fn authority(&self) -> crate::PublicKey {
        self.cert().cert.authority
    }

    pub(crate) fn cert(&self) -> &SignedCertificate {
        match self {
            Self::Equivocation { cert, .. }
            | Self::GapOverReceipt { cert, .. }
            | Self::GapStepOverInc { cert, .. }
            | Self::RootsDoNotChain { cert, .. }
            | Self::Removal { cert, .. }
            | Self::AtBackwards { cert, .. }
            | Self::OverlongExpiry { cert, .. }
            | Self::EntryAtBackwards { cert, .. }
            | Self::OverlongEntry { cert, .. }
            | Self::UnjustifiedRemoval { cert, .. }
            | Self::BadEntry { cert, .. } => cert,
        }
    }
}

impl Encode for Evidence {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(EVIDENCE_VERSION);
        let cert = self.cert();
        match self {
            Self::Equivocation { a, b, .. } => {
                w.u8(1).bytes32(&cert.to_bytes());
                a.encode_to(w);
                b.encode_to(w);
            }
            Self::GapOverReceipt {
                receipt,
                gap,
                at,
                first,
                last,
                ..
            } => {
                w.u8(2).bytes32(&cert.to_bytes());
                receipt.encode_to(w);
                gap.encode_to(w);
                w.u64(*at).u64(*first).u64(*last);
            }
            Self::GapStepOverInc { inc, gap, .. } => {
                w.u8(6).bytes32(&cert.to_bytes());
                inc.encode_to(w);
                gap.encode_to(w);
            }
            Self::RootsDoNotChain { a, b, .. } => {
                w.u8(4).bytes32(&cert.to_bytes());
                a.encode_to(w);
                b.encode_to(w);
            }
            Self::Removal {
                receipt,
                position,
                later,
                proof,
                list,
                last_changed,
                ..
            } => {
                w.u8(5).bytes32(&cert.to_bytes());
                w.bytes32(&receipt.to_bytes()).u32(*position);
                later.encode_to(w);
                proof.encode_to(w);
                w.u32(list.len() as u32);
                for o in list {
                    w.bytes16(o);
                }
                w.u64(*last_changed);
            }
            Self::UnjustifiedRemoval {
                step,
                batch,
                removed,
                index,
                ..
            } => {
                w.u8(11).bytes32(&cert.to_bytes());
                step.encode_to(w);
                w.u32(*index);
                for offers in [batch, removed] {
                    w.u32(offers.len() as u32);
                    for o in offers {
                        w.bytes16(o);
                    }
                }
            }
            Self::AtBackwards { a, b, .. } => {
                w.u8(7).bytes32(&cert.to_bytes());
                a.encode_to(w);
                b.encode_to(w);
            }
            Self::OverlongExpiry {
                step,
                batch,
                position,
                ..
            } => {
                w.u8(8).bytes32(&cert.to_bytes());
                step.encode_to(w);
                w.u32(*position).u32(batch.len() as u32);
                for o in batch {
                    w.bytes16(o);
                }
            }
            Self::EntryAtBackwards { a, b, .. } => {
                w.u8(9).bytes32(&cert.to_bytes());
                a.encode_to(w);
                b.encode_to(w);
            }
            Self::OverlongEntry { inc, at, bytes, .. } => {
                w.u8(10).bytes32(&cert.to_bytes());
                inc.encode_to(w);
                w.u64(*at).bytes16(bytes);
            }
            Self::BadEntry { inc, at, bytes, .. } => {
                w.u8(3).bytes32(&cert.to_bytes());
                inc.encode_to(w);
                w.u64(*at).bytes16(bytes);
            }
        }
    }
}

impl Decode for Evidence {
    const WHAT: &'static str = "evidence";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(EVIDENCE_VERSION, Self::WHAT)?;
        let kind = r.u8("evidence kind")?;
        if !(1..=11).contains(&kind) {
            return Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            });
        }
        let cert =
            SignedCertificate::from_bytes(r.bytes32(crate::cert::MAX_CERT_BYTES, "certificate")?)?;
        Ok(match kind {
            1 => Self::Equivocation {
                cert,
                a: SignedInc::decode_from(r)?,
                b: SignedInc::decode_from(r)?,
            },
            2 => Self::GapOverReceipt {
                cert,
                receipt: SignedInc::decode_from(r)?,
                gap: SignedInc::decode_from(r)?,
                at: r.u64("at")?,
                first: r.u64("first")?,
                last: r.u64("last")?,
            },
            6 => Self::GapStepOverInc {
                cert,
                inc: SignedInc::decode_from(r)?,
                gap: Box::new(crate::merkle::SignedStep::decode_from(r)?),
            },
            4 => Self::RootsDoNotChain {
                cert,
                a: Box::new(crate::merkle::SignedStep::decode_from(r)?),
                b: Box::new(crate::merkle::SignedStep::decode_from(r)?),
            },
            5 => {
                let receipt = Box::new(crate::merkle::StepProof::from_bytes(
                    r.bytes32(8 << 20, "receipt step")?,
                )?);
                let position = r.u32("position")?;
                let later = Box::new(crate::merkle::HeadStep::decode_from(r)?);
                let proof = crate::smt::MultiProof::decode_from(r)?;
                let n = r.u32("list length")? as usize;
                if n > r.remaining() / 2 {
                    return Err(DecodeError::Truncated { field: "list" });
                }
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(r.bytes16(crate::offer::MAX_OFFER_BYTES, "offer")?.to_vec());
                }
                Self::Removal {
                    cert,
                    receipt,
                    position,
                    later,
                    proof,
                    list,
                    last_changed: r.u64("last changed")?,
                }
            }
            11 => {
                let step = Box::new(crate::merkle::SignedStep::decode_from(r)?);
                let index = r.u32("index")?;
                let mut two = Vec::with_capacity(2);
                for (field, max) in [
                    ("batch", crate::merkle::MAX_BATCH),
                    ("removed", crate::merkle::MAX_REMOVALS),
                ] {
                    let n = r.u32(field)? as usize;
                    if n > max {
                        return Err(DecodeError::TooLong { field, len: n, max });
                    }
                    let mut offers = Vec::with_capacity(n);
                    for _ in 0..n {
                        offers.push(r.bytes16(crate::offer::MAX_OFFER_BYTES, field)?.to_vec());
                    }
                    two.push(offers);
                }
                let removed = two.pop().unwrap_or_default();
                let batch = two.pop().unwrap_or_default();
                Self::UnjustifiedRemoval {
                    cert,
                    step,
                    batch,
                    removed,
                    index,
                }
            }
            7 => Self::AtBackwards {
                cert,
                a: Box::new(crate::merkle::HeadStep::decode_from(r)?),
                b: Box::new(crate::merkle::HeadStep::decode_from(r)?),
            },
            8 => {
                let step = Box::new(crate::merkle::SignedStep::decode_from(r)?);
                let position = r.u32("position")?;
                let n = r.u32("batch length")? as usize;
                if n > crate::merkle::MAX_BATCH {
                    return Err(DecodeError::TooLong {
                        field: "batch",
                        len: n,
                        max: crate::merkle::MAX_BATCH,
                    });
                }
                let mut batch = Vec::with_capacity(n);
                for _ in 0..n {
                    batch.push(r.bytes16(crate::offer::MAX_OFFER_BYTES, "offer")?.to_vec());
                }
                Self::OverlongExpiry {
                    cert,
                    step,
                    batch,
                    position,
                }
            }
            9 => Self::EntryAtBackwards {
                cert,
                a: crate::entry::PageItem::decode_from(r)?,
                b: crate::entry::PageItem::decode_from(r)?,
            },
            10 => Self::OverlongEntry {
                cert,
                inc: SignedInc::decode_from(r)?,
                at: r.u64("at")?,
                bytes: r.bytes16(MAX_ENTRY_BYTES, "entry")?.to_vec(),
            },
            _ => Self::BadEntry {
                cert,
                inc: SignedInc::decode_from(r)?,
                at: r.u64("at")?,
                bytes: r.bytes16(MAX_ENTRY_BYTES, "entry")?.to_vec(),
            },
        })
    }
}

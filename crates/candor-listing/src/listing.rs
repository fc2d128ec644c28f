//! What a seller or a buyer can ask of a listing node, whatever carries the messages.
//!
//! A [`Listing`] is a transport: it carries a [`Query`] (or a publish) to a node and hands
//! back the answer's bytes, undecoded. The checkers in [`crate::check`] decode those bytes only
//! as the message their certificate's scheme expects, so a reply of another scheme than the
//! certificate's never reaches a check written for it: it fails to decode.

use candor_core::{
    Decode, DecodeError, Encode, ItemKey, ListRequest, Misbehaviour, PageRequest, PeerId, Reader,
    RetrieveRequest, SignedCertificate, SignedOffer, Writer, MAX_CERT_BYTES,
};
use std::sync::Arc;
use thiserror::Error;

/// The version byte of a [`Query`] and of a [`PublishAnswer`].
const VERSION: u8 = 2;

/// The most bytes of one answer: a page, a head with its certificate, a whole scheme-M step
/// for an audit, or a publish answer with the whole step.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// How a request to a node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The node answered with a refusal.
    Refused,
    /// The node could not be reached.
    Unreachable,
    /// The node took longer than the caller's time budget.
    Timeout,
    /// The node kept answering "busy" or "rate-limited" until the caller's time was up.
    Busy,
}

/// A request that got no useful answer: the node refused, was unreachable, or was too slow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct Refusal {
    /// What happened.
    pub kind: RefusalKind,
    /// Why, in words.
    pub reason: String,
}

impl Refusal {
    /// The node refused.
    pub fn refused(reason: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::Refused,
            reason: reason.into(),
        }
    }

    /// The node is busy (reconciling, rate-limiting, overloaded): ask again later.
    pub fn busy(reason: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::Busy,
            reason: reason.into(),
        }
    }

    /// What a checker makes of it, before the node committed to an answer. A node that stayed
    /// busy until the caller's time ran out is treated as one that did not answer in time:
    /// an honest node reconciling after a failed write says "busy", and is not called a
    /// cheat for it.
    pub fn into_misbehaviour(self) -> Misbehaviour {
        match self.kind {
            RefusalKind::Refused => Misbehaviour::Refused(self.reason),
            RefusalKind::Busy => Misbehaviour::Timeout,
            RefusalKind::Unreachable => Misbehaviour::Unreachable(self.reason),
            RefusalKind::Timeout => Misbehaviour::Timeout,
        }
    }

    /// What a checker makes of it once the node's signed `Read` committed it to an answer
    /// (a page, an audit): a refusal or a malformed answer is a failed check; a node that
    /// became unreachable, stayed busy or ran out of time is not verified, but not called a
    /// cheat either (an honest node can crash mid-answer).
    pub fn after_read(self) -> Misbehaviour {
        match self.kind {
            RefusalKind::Refused => Misbehaviour::RefusedAfterRead(self.reason),
            RefusalKind::Unreachable => Misbehaviour::Unreachable(self.reason),
            RefusalKind::Timeout | RefusalKind::Busy => Misbehaviour::Timeout,
        }
    }
}

/// A question to a listing node. Its answer's type depends on the scheme the node's
/// certificate names (see each variant); the asker decodes it as that type and no other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Open a retrieve of an item, for a fresh nonce. The answer opens with the node's
    /// certificate ([`candor_core::head_certificate`]): a `RetrieveHead` (B, C) or an `StepHead`
    /// (M).
    Head(RetrieveRequest),
    /// Entries of a counter (B, C): a `Page`.
    Page(PageRequest),
    /// A stretch of an item's list (M): an `ListPage`.
    List(ListRequest),
    /// The whole step at a value, or the gap step over it, for an audit (M): a `StepProof`.
    Step(u64),
    /// An item's leaf under the root after a past step (M): an `PastProof`.
    ProveAt(ItemKey, u64),
    /// The node's certificate: a `SignedCertificate`.
    Certificate,
}

impl Encode for Query {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION);
        match self {
            Self::Head(h) => {
                w.u8(1);
                h.encode_to(w);
            }
            Self::Page(p) => {
                w.u8(2);
                p.encode_to(w);
            }
            Self::List(p) => {
                w.u8(3);
                p.encode_to(w);
            }
            Self::Step(v) => {
                w.u8(4).u64(*v);
            }
            Self::ProveAt(d, v) => {
                w.u8(5).fixed(d.0.as_bytes()).u64(*v);
            }
            Self::Certificate => {
                w.u8(6);
            }
        }
    }
}

impl Decode for Query {
    const WHAT: &'static str = "query";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        match r.u8("kind")? {
            1 => Ok(Self::Head(RetrieveRequest::decode_from(r)?)),
            2 => Ok(Self::Page(PageRequest::decode_from(r)?)),
            3 => Ok(Self::List(ListRequest::decode_from(r)?)),
            4 => Ok(Self::Step(r.u64("step")?)),
            5 => Ok(Self::ProveAt(
                ItemKey(candor_core::Digest(r.array("item")?)),
                r.u64("step")?,
            )),
            6 => Ok(Self::Certificate),
            kind => Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            }),
        }
    }
}

/// A node's answer to a publish: its certificate, and the receipt as bytes — a `Receipt`
/// (B, C) or an `StepReceipt`, the whole step (M), as the certificate's scheme says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAnswer {
    /// The node's certificate.
    pub cert: SignedCertificate,
    /// The receipt, encoded.
    pub receipt: Vec<u8>,
}

impl Encode for PublishAnswer {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION)
            .bytes32(&self.cert.to_bytes())
            .bytes32(&self.receipt);
    }
}

impl Decode for PublishAnswer {
    const WHAT: &'static str = "publish answer";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        Ok(Self {
            cert: SignedCertificate::from_bytes(r.bytes32(MAX_CERT_BYTES, "certificate")?)?,
            receipt: r.bytes32(MAX_ANSWER_BYTES, "receipt")?.to_vec(),
        })
    }
}

/// What a seller or a buyer can ask of a listing node: a transport to it. Answers come back
/// as bytes; [`crate::check`] decodes and checks them. Implemented by the node itself, by a
/// remote node over the overlay, by cheating nodes, and by any reference to one of these.
pub trait Listing {
    /// The node's PeerId (as the transport authenticated it).
    fn peer(&self) -> PeerId;
    /// Sends a signed offer; the answer is an encoded [`PublishAnswer`].
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal>;
    /// Asks a [`Query`]; the answer is encoded as the query says.
    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal>;
}

/// A reference, an `Arc` or a `Box` of a listing is that listing: no forwarding wrappers.
macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<L: Listing + ?Sized> Listing for $ty {
            fn peer(&self) -> PeerId {
                (**self).peer()
            }
            fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
                (**self).publish(offer, now)
            }
            fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
                (**self).ask(query)
            }
        }
    )*};
}

forward!(&L, Arc<L>, Box<L>);

/// A node's certificate, as it answers [`Query::Certificate`] (what it shows peers so that
/// they count it as a member of Δ(d)); `None` when it does not answer one.
pub fn certificate_of(node: &dyn Listing) -> Option<SignedCertificate> {
    let bytes = node.ask(&Query::Certificate).ok()?;
    SignedCertificate::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::Digest;

    #[test]
    fn every_query_round_trips_and_garbage_is_typed() {
        let item = ItemKey(Digest([3; 32]));
        for q in [
            Query::Head(RetrieveRequest {
                item,
                nonce: [1; 32],
                cert: None,
            }),
            Query::Page(PageRequest {
                counter: 1,
                after: 2,
                upto: 3,
                max_items: 4,
            }),
            Query::List(ListRequest {
                item,
                value: 9,
                from: 5,
                count: 6,
            }),
            Query::Step(7),
            Query::ProveAt(item, 8),
            Query::Certificate,
        ] {
            let bytes = q.to_bytes();
            assert_eq!(Query::from_bytes(&bytes).unwrap(), q);
        }
        for g in [&[][..], &[2], &[2, 9], &[1, 1], &[2, 1, 0, 0]] {
            assert!(Query::from_bytes(g).is_err());
            assert!(PublishAnswer::from_bytes(g).is_err());
        }
    }
}

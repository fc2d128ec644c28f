//! The messages of Candor's request-response protocols, in the core's canonical encoding,
//! and the hard size limits each protocol enforces.

use candor_core::{
    Decode, DecodeError, Digest, Encode, ItemKey, MHead, MPage, MPageRequest, MPast, MReceipt,
    Page, PageRequest, Reader, Receipt, RetrieveHead, RetrieveRequest, SignedCertificate,
    SignedOffer, StepProof, Writer, MAX_OFFER_BYTES,
};

const VERSION: u8 = 1;

/// Protocol id of publish.
pub const PUBLISH_PROTOCOL: &str = "/candor/publish/1.0.0";
/// Protocol id of the paged retrieve.
pub const RETRIEVE_PROTOCOL: &str = "/candor/retrieve/1.0.0";
/// Protocol id of receipt re-issue.
pub const REISSUE_PROTOCOL: &str = "/candor/reissue/1.0.0";
/// Protocol id of Candor's Kademlia DHT.
pub const KAD_PROTOCOL: &str = "/candor/kad/1.0.0";

/// Largest publish request (a signed offer and framing).
pub const MAX_PUBLISH_REQUEST: usize = MAX_OFFER_BYTES + 64;
/// Largest publish response (certificate and receipt; in scheme M the whole step).
pub const MAX_PUBLISH_RESPONSE: usize = 2 * 1024 * 1024;
/// Largest retrieve request.
pub const MAX_RETRIEVE_REQUEST: usize = 256;
/// Largest retrieve response (a page of at most 512 items, a head with its certificate, or a
/// whole scheme-M step for an audit).
pub const MAX_RETRIEVE_RESPONSE: usize = 2 * 1024 * 1024;

/// Why a node refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalCode {
    /// The node is not among the k closest to the item, as far as it knows.
    NotResponsible,
    /// The offer or request is invalid.
    Invalid,
    /// Too many requests from this peer.
    RateLimited,
    /// The node is overloaded or shutting down.
    Unavailable,
    /// The node could not serve it (internal error).
    Failed,
    /// Nothing is known of what was asked.
    NotFound,
}

impl RefusalCode {
    fn code(self) -> u8 {
        match self {
            Self::NotResponsible => 1,
            Self::Invalid => 2,
            Self::RateLimited => 3,
            Self::Unavailable => 4,
            Self::Failed => 5,
            Self::NotFound => 6,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        Ok(match c {
            1 => Self::NotResponsible,
            2 => Self::Invalid,
            3 => Self::RateLimited,
            4 => Self::Unavailable,
            5 => Self::Failed,
            6 => Self::NotFound,
            kind => {
                return Err(DecodeError::UnknownKind {
                    what: "refusal",
                    kind,
                })
            }
        })
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotResponsible => "not-responsible",
            Self::Invalid => "invalid",
            Self::RateLimited => "rate-limited",
            Self::Unavailable => "unavailable",
            Self::Failed => "failed",
            Self::NotFound => "not-found",
        }
    }
}

/// A refusal: its code and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The code.
    pub code: RefusalCode,
    /// Why, in words (at most 512 bytes).
    pub reason: String,
}

impl Refused {
    /// A refusal.
    pub fn new(code: RefusalCode, reason: impl Into<String>) -> Self {
        let mut reason: String = reason.into();
        if reason.len() > 512 {
            let mut cut = 512;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        Self { code, reason }
    }

    fn encode_to(&self, w: &mut Writer) {
        w.u8(self.code.code()).bytes16(self.reason.as_bytes());
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = RefusalCode::from_code(r.u8("refusal code")?)?;
        let reason = String::from_utf8_lossy(r.bytes16(512, "reason")?).into_owned();
        Ok(Self { code, reason })
    }
}

/// The answer to a publish.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, one per request
pub enum PublishResponse {
    /// Counted: the node's certificate and the receipt.
    Accepted {
        /// The certificate.
        cert: SignedCertificate,
        /// The receipt.
        receipt: Receipt,
    },
    /// Counted in a scheme-M step: the certificate and the whole step.
    Stepped {
        /// The certificate.
        cert: SignedCertificate,
        /// The receipt.
        receipt: Box<MReceipt>,
    },
    /// Refused.
    Refused(Refused),
}

impl Encode for PublishResponse {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION);
        match self {
            Self::Accepted { cert, receipt } => {
                w.u8(1).bytes32(&cert.to_bytes());
                receipt.encode_to(w);
            }
            Self::Refused(r) => {
                w.u8(2);
                r.encode_to(w);
            }
            Self::Stepped { cert, receipt } => {
                w.u8(3)
                    .bytes32(&cert.to_bytes())
                    .bytes32(&receipt.to_bytes());
            }
        }
    }
}

impl Decode for PublishResponse {
    const WHAT: &'static str = "publish response";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        match r.u8("kind")? {
            1 => Ok(Self::Accepted {
                cert: SignedCertificate::from_bytes(r.bytes32(64 * 1024, "certificate")?)?,
                receipt: Receipt::decode_from(r)?,
            }),
            2 => Ok(Self::Refused(Refused::decode_from(r)?)),
            3 => Ok(Self::Stepped {
                cert: SignedCertificate::from_bytes(r.bytes32(64 * 1024, "certificate")?)?,
                receipt: Box::new(MReceipt::from_bytes(
                    r.bytes32(MAX_PUBLISH_RESPONSE, "receipt")?,
                )?),
            }),
            kind => Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            }),
        }
    }
}

/// A publish request: the signed offer.
#[derive(Debug, Clone)]
pub struct PublishRequest(pub SignedOffer);

impl Encode for PublishRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION).bytes16(&self.0.to_bytes());
    }
}

impl Decode for PublishRequest {
    const WHAT: &'static str = "publish request";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        Ok(Self(SignedOffer::from_bytes(
            r.bytes16(MAX_OFFER_BYTES, "offer")?,
        )?))
    }
}

/// A retrieve request: the opening or a page.
#[derive(Debug, Clone)]
pub enum RetrieveMsg {
    /// Open a retrieve.
    Head(RetrieveRequest),
    /// Fetch a page.
    Page(PageRequest),
    /// Fetch a page of an item's list (scheme M).
    MPage(MPageRequest),
    /// Fetch a whole step, for an audit (scheme M).
    MStep(u64),
    /// A proof for an item under the root after a past step (scheme M).
    MProveAt(ItemKey, u64),
    /// The node's certificate (only certified peers count as members of Δ(d)).
    Cert,
}

impl Encode for RetrieveMsg {
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
            Self::MPage(p) => {
                w.u8(3);
                p.encode_to(w);
            }
            Self::MStep(v) => {
                w.u8(4).u64(*v);
            }
            Self::MProveAt(d, v) => {
                w.u8(5).fixed(d.0.as_bytes()).u64(*v);
            }
            Self::Cert => {
                w.u8(6);
            }
        }
    }
}

impl Decode for RetrieveMsg {
    const WHAT: &'static str = "retrieve request";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        match r.u8("kind")? {
            1 => Ok(Self::Head(RetrieveRequest::decode_from(r)?)),
            2 => Ok(Self::Page(PageRequest::decode_from(r)?)),
            3 => Ok(Self::MPage(MPageRequest::decode_from(r)?)),
            4 => Ok(Self::MStep(r.u64("step")?)),
            6 => Ok(Self::Cert),
            5 => Ok(Self::MProveAt(
                ItemKey(Digest(r.array("item")?)),
                r.u64("step")?,
            )),
            kind => Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            }),
        }
    }
}

/// The answer to a retrieve request.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, one per request
pub enum RetrieveAnswer {
    /// The head.
    Head(RetrieveHead),
    /// A page.
    Page(Page),
    /// Refused.
    Refused(Refused),
    /// A scheme-M head.
    MHead(Box<MHead>),
    /// A page of an item's list.
    MPage(MPage),
    /// A whole step.
    MStep(Box<StepProof>),
    /// A proof under a past root.
    MPast(Box<MPast>),
    /// The node's certificate.
    Cert(Box<SignedCertificate>),
}

impl Encode for RetrieveAnswer {
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
            Self::Refused(x) => {
                w.u8(3);
                x.encode_to(w);
            }
            Self::MHead(h) => {
                w.u8(4);
                h.encode_to(w);
            }
            Self::MPage(p) => {
                w.u8(5);
                p.encode_to(w);
            }
            Self::MStep(sp) => {
                w.u8(6);
                sp.encode_to(w);
            }
            Self::MPast(p) => {
                w.u8(7);
                p.encode_to(w);
            }
            Self::Cert(c) => {
                w.u8(8);
                c.encode_to(w);
            }
        }
    }
}

impl Decode for RetrieveAnswer {
    const WHAT: &'static str = "retrieve answer";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        match r.u8("kind")? {
            1 => Ok(Self::Head(RetrieveHead::decode_from(r)?)),
            2 => Ok(Self::Page(Page::decode_from(r)?)),
            3 => Ok(Self::Refused(Refused::decode_from(r)?)),
            4 => Ok(Self::MHead(Box::new(MHead::decode_from(r)?))),
            5 => Ok(Self::MPage(MPage::decode_from(r)?)),
            6 => Ok(Self::MStep(Box::new(StepProof::decode_from(r)?))),
            7 => Ok(Self::MPast(Box::new(MPast::decode_from(r)?))),
            8 => Ok(Self::Cert(Box::new(SignedCertificate::decode_from(r)?))),
            kind => Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_round_trip_and_bound() {
        let r =
            PublishResponse::Refused(Refused::new(RefusalCode::NotResponsible, "x".repeat(2000)));
        let bytes = r.to_bytes();
        assert!(bytes.len() < 600);
        match PublishResponse::from_bytes(&bytes).unwrap() {
            PublishResponse::Refused(x) => assert_eq!(x.code, RefusalCode::NotResponsible),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_variant_round_trips() {
        use candor_core::{Digest, ItemKey};
        let item = ItemKey(Digest([3; 32]));
        for m in [
            RetrieveMsg::Head(RetrieveRequest {
                item,
                nonce: [1; 32],
            }),
            RetrieveMsg::Page(PageRequest {
                counter: 1,
                after: 2,
                upto: 3,
                max_items: 4,
            }),
            RetrieveMsg::MPage(MPageRequest {
                item,
                from: 5,
                count: 6,
            }),
            RetrieveMsg::MStep(7),
            RetrieveMsg::MProveAt(item, 8),
        ] {
            let bytes = m.to_bytes();
            assert_eq!(RetrieveMsg::from_bytes(&bytes).unwrap().to_bytes(), bytes);
        }
        for a in [
            RetrieveAnswer::Page(Page::default()),
            RetrieveAnswer::MPage(MPage {
                offers: vec![vec![1, 2, 3]],
            }),
            RetrieveAnswer::Refused(Refused::new(RefusalCode::NotFound, "x")),
        ] {
            let bytes = a.to_bytes();
            assert_eq!(
                RetrieveAnswer::from_bytes(&bytes).unwrap().to_bytes(),
                bytes
            );
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for g in [&[][..], &[1], &[1, 9], &[2, 1], &[1, 1, 0, 0]] {
            assert!(RetrieveMsg::from_bytes(g).is_err());
            assert!(RetrieveAnswer::from_bytes(g).is_err());
            assert!(PublishResponse::from_bytes(g).is_err());
            assert!(PublishRequest::from_bytes(g).is_err());
        }
    }
}

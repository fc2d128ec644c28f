//! The messages of Candor's request-response protocols, in the core's canonical encoding,
//! and the hard size limits each protocol enforces.

use candor_core::{Decode, DecodeError, Encode, Reader, SignedOffer, Writer, MAX_OFFER_BYTES};
#[cfg(test)]
use candor_listing::Query;
use candor_listing::MAX_ANSWER_BYTES;

/// The version byte of every message of these protocols (2: answers carry the node's bytes
/// undecoded, for the asker to decode as its certificate's scheme expects).
const VERSION: u8 = 2;

/// Protocol id of publish.
pub const PUBLISH_PROTOCOL: &str = "/candor/publish/2.0.0";
/// Protocol id of the paged retrieve (its requests are [`candor_listing::Query`]s).
pub const RETRIEVE_PROTOCOL: &str = "/candor/retrieve/2.0.0";
/// Protocol id of receipt re-issue.
pub const REISSUE_PROTOCOL: &str = "/candor/reissue/2.0.0";
/// Protocol id of Candor's Kademlia DHT.
pub const KAD_PROTOCOL: &str = "/candor/kad/1.0.0";

/// Largest publish request (a signed offer and framing).
pub const MAX_PUBLISH_REQUEST: usize = MAX_OFFER_BYTES + 64;
/// Largest publish response (certificate and receipt; in scheme M the whole step).
pub const MAX_PUBLISH_RESPONSE: usize = MAX_ANSWER_BYTES + 64;
/// Largest retrieve request.
pub const MAX_RETRIEVE_REQUEST: usize = 256;
/// Largest retrieve response (a page of at most 512 items, a head with its certificate, or a
/// whole scheme-M step for an audit).
pub const MAX_RETRIEVE_RESPONSE: usize = MAX_ANSWER_BYTES + 64;

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

/// The answer to a publish (and to a re-issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishResponse {
    /// Counted: an encoded [`candor_listing::PublishAnswer`] (the node's certificate and the
    /// receipt its scheme makes), checked by the seller as the certificate says.
    Accepted(Vec<u8>),
    /// Refused.
    Refused(Refused),
}

impl Encode for PublishResponse {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION);
        match self {
            Self::Accepted(answer) => {
                w.u8(1).bytes32(answer);
            }
            Self::Refused(r) => {
                w.u8(2);
                r.encode_to(w);
            }
        }
    }
}

impl Decode for PublishResponse {
    const WHAT: &'static str = "publish response";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        match r.u8("kind")? {
            1 => Ok(Self::Accepted(
                r.bytes32(MAX_ANSWER_BYTES, "publish answer")?.to_vec(),
            )),
            2 => Ok(Self::Refused(Refused::decode_from(r)?)),
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

/// The answer to a [`candor_listing::Query`]: its bytes, encoded as the query says (the asker
/// decodes them as its certificate's scheme expects), or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrieveAnswer {
    /// The answer.
    Answer(Vec<u8>),
    /// Refused.
    Refused(Refused),
}

impl Encode for RetrieveAnswer {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION);
        match self {
            Self::Answer(bytes) => {
                w.u8(1).bytes32(bytes);
            }
            Self::Refused(x) => {
                w.u8(2);
                x.encode_to(w);
            }
        }
    }
}

impl Decode for RetrieveAnswer {
    const WHAT: &'static str = "retrieve answer";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        match r.u8("kind")? {
            1 => Ok(Self::Answer(
                r.bytes32(MAX_ANSWER_BYTES, "answer")?.to_vec(),
            )),
            2 => Ok(Self::Refused(Refused::decode_from(r)?)),
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
        for a in [
            RetrieveAnswer::Answer(vec![1, 2, 3]),
            RetrieveAnswer::Refused(Refused::new(RefusalCode::NotFound, "x")),
        ] {
            assert_eq!(RetrieveAnswer::from_bytes(&a.to_bytes()).unwrap(), a);
        }
        for a in [
            PublishResponse::Accepted(vec![4; 300]),
            PublishResponse::Refused(Refused::new(RefusalCode::Invalid, "y")),
        ] {
            assert_eq!(PublishResponse::from_bytes(&a.to_bytes()).unwrap(), a);
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for g in [&[][..], &[1], &[1, 9], &[2, 1], &[1, 1, 0, 0]] {
            assert!(Query::from_bytes(g).is_err());
            assert!(RetrieveAnswer::from_bytes(g).is_err());
            assert!(PublishResponse::from_bytes(g).is_err());
            assert!(PublishRequest::from_bytes(g).is_err());
        }
    }
}

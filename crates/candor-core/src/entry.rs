//! What listing nodes store and send: entry and gap payloads, receipts, and the messages of
//! the publish and paged-retrieve flows (transport-independent).

use crate::cert::SignedCertificate;
use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::{tags, Digest, TaggedHasher};
use crate::item::ItemKey;
use crate::keys::PeerId;
use crate::offer::MAX_OFFER_BYTES;
use crate::statement::{CounterId, SignedInc, SignedRead};

/// 2: entries, gap notices and receipts bind node time (`at`); a head may carry the sliding
/// window's boundary (DESIGN.md §9).
pub(crate) const MSG_VERSION: u8 = 2;

/// The most items a page may hold.
pub const MAX_PAGE_ITEMS: usize = 512;

/// The largest stored entry (an offer's bytes; a bad entry may be any bytes up to this).
pub const MAX_ENTRY_BYTES: usize = MAX_OFFER_BYTES + 256;

/// `H("candor/v1/entry" ‖ PeerId ‖ counter ‖ at ‖ offer bytes)`: what an `Inc` binds in B
/// and C, with `at` the node time it was counted at (DESIGN.md §9).
pub fn entry_payload(peer: &PeerId, counter: CounterId, at: u64, offer_bytes: &[u8]) -> Digest {
    TaggedHasher::new(tags::ENTRY)
        .var(peer.as_bytes())
        .u32(counter)
        .u64(at)
        .var(offer_bytes)
        .finish()
}

/// `H("candor/v1/gap" ‖ PeerId ‖ counter ‖ at ‖ first ‖ last)`: a gap notice's payload, with
/// `at` the node's last durable time when it wrote the notice.
pub fn gap_payload(peer: &PeerId, counter: CounterId, at: u64, first: u64, last: u64) -> Digest {
    TaggedHasher::new(tags::GAP)
        .var(peer.as_bytes())
        .u32(counter)
        .u64(at)
        .u64(first)
        .u64(last)
        .finish()
}

/// What a seller gets back for a published offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The id of the certificate of the device that signed `inc`.
    pub cert_id: Digest,
    /// The node time the entry was counted at.
    pub at: u64,
    /// The device's `Inc` binding the offer.
    pub inc: SignedInc,
}

impl Receipt {
    /// The entry this receipt stands for, given the offer's bytes (what evidence carries).
    pub fn entry(&self, offer_bytes: Vec<u8>) -> PageItem {
        PageItem::Entry {
            inc: self.inc.clone(),
            at: self.at,
            bytes: offer_bytes,
        }
    }
}

impl Encode for Receipt {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(MSG_VERSION)
            .fixed(self.cert_id.as_bytes())
            .u64(self.at);
        self.inc.encode_to(w);
    }
}

impl Decode for Receipt {
    const WHAT: &'static str = "receipt";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(MSG_VERSION, Self::WHAT)?;
        Ok(Self {
            cert_id: Digest(r.array("cert id")?),
            at: r.u64("at")?,
            inc: SignedInc::decode_from(r)?,
        })
    }
}

/// One value of a counter as served on retrieve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageItem {
    /// A stored entry: the bytes the `Inc` binds.
    Entry {
        /// The `Inc`.
        inc: SignedInc,
        /// The node time it was counted at.
        at: u64,
        /// The entry's bytes (a signed offer, in an honest node).
        bytes: Vec<u8>,
    },
    /// A gap notice: its own `Inc`, covering `first..=last` (values the node lost).
    Gap {
        /// The gap notice's `Inc`.
        inc: SignedInc,
        /// The node's last durable time when it wrote the notice.
        at: u64,
        /// First value covered.
        first: u64,
        /// Last value covered.
        last: u64,
    },
}

impl PageItem {
    /// The `Inc` of this item.
    pub fn inc(&self) -> &SignedInc {
        match self {
            Self::Entry { inc, .. } | Self::Gap { inc, .. } => inc,
        }
    }

    /// The counter value of this item's own `Inc`.
    pub fn value(&self) -> u64 {
        self.inc().inc.value
    }

    /// The node time this item binds.
    pub fn at(&self) -> u64 {
        match self {
            Self::Entry { at, .. } | Self::Gap { at, .. } => *at,
        }
    }

    /// The payload this item's `Inc` must bind, for node `peer` on the `Inc`'s counter.
    pub fn payload(&self, peer: &PeerId) -> Digest {
        let counter = self.inc().inc.counter;
        match self {
            Self::Entry { at, bytes, .. } => entry_payload(peer, counter, *at, bytes),
            Self::Gap {
                at, first, last, ..
            } => gap_payload(peer, counter, *at, *first, *last),
        }
    }

    /// Whether its `Inc` binds exactly this item.
    pub fn binds(&self, peer: &PeerId) -> bool {
        self.inc().inc.payload == self.payload(peer)
    }
}

impl Encode for PageItem {
    fn encode_to(&self, w: &mut Writer) {
        match self {
            Self::Entry { inc, at, bytes } => {
                w.u8(1);
                inc.encode_to(w);
                w.u64(*at).bytes16(bytes);
            }
            Self::Gap {
                inc,
                at,
                first,
                last,
            } => {
                w.u8(2);
                inc.encode_to(w);
                w.u64(*at).u64(*first).u64(*last);
            }
        }
    }
}

impl Decode for PageItem {
    const WHAT: &'static str = "page item";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("item kind")? {
            1 => Ok(Self::Entry {
                inc: SignedInc::decode_from(r)?,
                at: r.u64("at")?,
                bytes: r.bytes16(MAX_ENTRY_BYTES, "entry")?.to_vec(),
            }),
            2 => Ok(Self::Gap {
                inc: SignedInc::decode_from(r)?,
                at: r.u64("at")?,
                first: r.u64("first")?,
                last: r.u64("last")?,
            }),
            kind => Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            }),
        }
    }
}

/// The buyer's opening request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrieveRequest {
    /// The item.
    pub item: ItemKey,
    /// A fresh nonce from the buyer's secure randomness.
    pub nonce: [u8; 32],
    /// The id of the node's certificate the buyer already holds, checked: a scheme-M node
    /// whose certificate it is leaves it out of the head.
    pub cert: Option<Digest>,
}

/// The request's own version (2: it may name a certificate the buyer holds).
const REQUEST_VERSION: u8 = 2;

impl Encode for RetrieveRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(REQUEST_VERSION)
            .fixed(self.item.0.as_bytes())
            .fixed(&self.nonce);
        match &self.cert {
            None => {
                w.u8(0);
            }
            Some(id) => {
                w.u8(1).fixed(id.as_bytes());
            }
        }
    }
}

impl Decode for RetrieveRequest {
    const WHAT: &'static str = "retrieve request";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(REQUEST_VERSION, Self::WHAT)?;
        let item = ItemKey(Digest(r.array("item")?));
        let nonce = r.array("nonce")?;
        let cert = match r.u8("certificate named")? {
            0 => None,
            1 => Some(Digest(r.array("certificate id")?)),
            kind => {
                return Err(DecodeError::UnknownKind {
                    what: "named certificate",
                    kind,
                })
            }
        };
        Ok(Self { item, nonce, cert })
    }
}

/// The node's first answer: its certificate, a fresh `Read` on the item's counter and the
/// sliding window's boundary (DESIGN.md §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrieveHead {
    /// The node's certificate.
    pub cert: SignedCertificate,
    /// `Read(t, nonce)`.
    pub read: SignedRead,
    /// The boundary `Inc(w)` with its item: everything at or before w expired, so the
    /// retrieve covers (w, t]. `None`: the window starts at the counter's initial value.
    pub boundary: Option<PageItem>,
}

impl Encode for RetrieveHead {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(MSG_VERSION);
        w.bytes32(&self.cert.to_bytes());
        self.read.encode_to(w);
        match &self.boundary {
            None => {
                w.u8(0);
            }
            Some(item) => {
                w.u8(1);
                item.encode_to(w);
            }
        }
    }
}

impl Decode for RetrieveHead {
    const WHAT: &'static str = "retrieve head";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(MSG_VERSION, Self::WHAT)?;
        Ok(Self {
            cert: SignedCertificate::from_bytes(
                r.bytes32(crate::cert::MAX_CERT_BYTES, "certificate")?,
            )?,
            read: SignedRead::decode_from(r)?,
            boundary: match r.u8("boundary")? {
                0 => None,
                1 => Some(PageItem::decode_from(r)?),
                kind => {
                    return Err(DecodeError::UnknownKind {
                        what: "boundary",
                        kind,
                    })
                }
            },
        })
    }
}

/// A request for the values `after+1 ..= upto` of `counter`, at most `max_items` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The counter.
    pub counter: CounterId,
    /// Values after this one.
    pub after: u64,
    /// Up to and including this one (the `t` of the `Read`).
    pub upto: u64,
    /// At most this many items.
    pub max_items: u32,
}

impl Encode for PageRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(MSG_VERSION)
            .u32(self.counter)
            .u64(self.after)
            .u64(self.upto)
            .u32(self.max_items);
    }
}

impl Decode for PageRequest {
    const WHAT: &'static str = "page request";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(MSG_VERSION, Self::WHAT)?;
        Ok(Self {
            counter: r.u32("counter")?,
            after: r.u64("after")?,
            upto: r.u64("upto")?,
            max_items: r.u32("max items")?,
        })
    }
}

/// A page of a retrieve: items in increasing value order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The items.
    pub items: Vec<PageItem>,
}

impl Encode for Page {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(MSG_VERSION).u16(self.items.len() as u16);
        for i in &self.items {
            i.encode_to(w);
        }
    }
}

impl Decode for Page {
    const WHAT: &'static str = "page";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(MSG_VERSION, Self::WHAT)?;
        let n = r.u16("item count")? as usize;
        if n > MAX_PAGE_ITEMS {
            return Err(DecodeError::TooLong {
                field: "page items",
                len: n,
                max: MAX_PAGE_ITEMS,
            });
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(PageItem::decode_from(r)?);
        }
        Ok(Self { items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::statement::Ed25519StatementSigner;
    use rand_core::OsRng;

    #[test]
    fn payloads_are_domain_separated_and_bound() {
        let p = PeerId::from_ed25519(&Keypair::generate(&mut OsRng).public());
        assert_ne!(entry_payload(&p, 0, 5, b"x"), entry_payload(&p, 1, 5, b"x"));
        assert_ne!(entry_payload(&p, 0, 5, b"x"), entry_payload(&p, 0, 6, b"x"));
        assert_ne!(gap_payload(&p, 0, 5, 1, 2), gap_payload(&p, 0, 5, 1, 3));
        assert_ne!(gap_payload(&p, 0, 5, 1, 2), gap_payload(&p, 0, 6, 1, 2));
    }

    #[test]
    fn page_round_trip_and_limits() {
        let p = PeerId::from_ed25519(&Keypair::generate(&mut OsRng).public());
        let s = Ed25519StatementSigner::new(Keypair::generate(&mut OsRng), p);
        let page = Page {
            items: vec![
                PageItem::Entry {
                    inc: s.sign_inc(0, 1, Digest([1; 32])),
                    at: 7,
                    bytes: vec![1, 2, 3],
                },
                PageItem::Gap {
                    inc: s.sign_inc(0, 3, Digest([2; 32])),
                    at: 8,
                    first: 2,
                    last: 2,
                },
            ],
        };
        let bytes = page.to_bytes();
        assert_eq!(Page::from_bytes(&bytes).unwrap(), page);
        for cut in 0..bytes.len() {
            assert!(Page::from_bytes(&bytes[..cut]).is_err());
        }
        let mut w = Writer::new();
        w.u8(MSG_VERSION).u16((MAX_PAGE_ITEMS + 1) as u16);
        assert!(matches!(
            Page::from_bytes(w.as_slice()),
            Err(DecodeError::TooLong { .. })
        ));
    }
}

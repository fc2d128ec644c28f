//! Leaves: an item's live list (DESIGN.md §9) as the tree stores it.
//!
//! leaf_d commits to d's live records, sorted by (currency, price, seller, serial), as a
//! Merkle list of their places and offer hashes, and to `last_changed`, the step at which the list last
//! changed. A seller has at most one record per item: its highest serial (a withdrawal is a
//! record of quantity 0, a tombstone). A record that supersedes another expires no earlier
//! than it, so keeping the highest record until its own expiry keeps it until the latest
//! expiry among those it superseded: a stale republish finds it there.

#[allow(unused_imports)]
use super::*;
use crate::offer::{Offer, SignedOffer};
use std::sync::Arc;

/// The root of the empty map (the root at the counter's base value).
pub fn empty_root() -> Digest {
    EMPTY
}

/// H(offer bytes), a record's element in its item's list.
pub fn offer_hash(offer_bytes: &[u8]) -> Digest {
    TaggedHasher::new("candor/v1/m-offer")
        .var(offer_bytes)
        .finish()
}

/// Where a record sits in its item's list: lists are sorted by currency, then price, then
/// seller, then serial (so the cheapest offers in a currency form a prefix of its range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    /// The currency code.
    pub currency: [u8; 3],
    /// The price in minor units.
    pub price: u64,
    /// The seller's public key.
    pub seller: [u8; 32],
    /// The offer's serial.
    pub serial: u64,
}

impl SortKey {
    /// The key of `offer`.
    pub fn of(offer: &Offer) -> Self {
        Self {
            currency: offer.currency.code(),
            price: offer.price,
            seller: offer.seller.0,
            serial: offer.serial,
        }
    }

    pub(crate) fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.currency)
            .u64(self.price)
            .fixed(&self.seller)
            .u64(self.serial);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            currency: r.array("currency")?,
            price: r.u64("price")?,
            seller: r.array("seller")?,
            serial: r.u64("serial")?,
        })
    }
}

/// A record as a step proof names it: its place and its offer hash (not the offer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// Its place in the list.
    pub key: SortKey,
    /// H(offer bytes).
    pub hash: Digest,
}

/// A live record as the node keeps it: its place, hash, expiry and the offer itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its place in the list.
    pub key: SortKey,
    /// H(offer bytes).
    pub hash: Digest,
    /// The offer's expiry (unix seconds).
    pub expiry: u64,
    /// The step that added it (its receipt is that step's proof).
    pub added: u64,
    /// The encoded signed offer.
    pub bytes: Arc<[u8]>,
}

impl Record {
    /// The record of a signed offer (`bytes` its encoding) added by step `added`.
    pub fn of(offer: &SignedOffer, bytes: &[u8], added: u64) -> Self {
        Self {
            key: SortKey::of(&offer.offer),
            hash: offer_hash(bytes),
            expiry: offer.offer.expiry,
            added,
            bytes: bytes.into(),
        }
    }

    /// What a step proof says of it.
    pub fn as_ref(&self) -> RecordRef {
        RecordRef {
            key: self.key,
            hash: self.hash,
        }
    }
}

/// An item's live list as the node keeps it: records sorted by [`SortKey`], and the step at
/// which it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveList {
    /// The step at which the list last changed.
    pub last_changed: u64,
    /// The records, sorted by key (one per seller).
    pub records: Vec<Record>,
}

impl LiveList {
    /// Its leaf.
    pub fn leaf(&self) -> Leaf {
        Leaf::over(self.records.iter().map(Record::as_ref), self.last_changed)
    }

    /// The record of `seller`, if any.
    pub fn of_seller(&self, seller: &[u8; 32]) -> Option<&Record> {
        self.records.iter().find(|r| r.key.seller == *seller)
    }
}

/// A list element: the record's place and its offer hash (so the order a checker relies on
/// is signed, not the prover's word).
fn list_leaf(r: &RecordRef) -> Digest {
    let mut w = Writer::new();
    r.key.encode_to(&mut w);
    TaggedHasher::new("candor/v3/m-list-leaf")
        .fixed(&w.into_bytes())
        .fixed(r.hash.as_bytes())
        .finish()
}

fn list_node(l: &Digest, r: &Digest) -> Digest {
    TaggedHasher::new("candor/v3/m-list-node")
        .fixed(l.as_bytes())
        .fixed(r.as_bytes())
        .finish()
}

/// The Merkle root over a list's records (place and offer hash), in order: leaves and nodes
/// domain-separated, an odd node at the end of a level carried up as it is; the empty list
/// has its own root.
pub fn list_root(records: impl IntoIterator<Item = RecordRef>) -> Digest {
    let mut level: Vec<Digest> = records.into_iter().map(|r| list_leaf(&r)).collect();
    if level.is_empty() {
        return TaggedHasher::new("candor/v3/m-list-empty").finish();
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => list_node(l, r),
                [one] => *one,
                _ => Digest::default(),
            })
            .collect();
    }
    level[0]
}

/// An item's leaf: how many records its live list holds, the list's root, and the step at
/// which it last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// n_d: records in the list.
    pub n: u64,
    /// [`list_root`] over the records.
    pub root: Digest,
    /// The step at which the list last changed.
    pub last_changed: u64,
}

impl Leaf {
    /// The leaf over `records` (in list order), last changed at `last_changed`.
    pub fn over(records: impl IntoIterator<Item = RecordRef>, last_changed: u64) -> Self {
        let records: Vec<RecordRef> = records.into_iter().collect();
        Self {
            n: records.len() as u64,
            root: list_root(records),
            last_changed,
        }
    }

    /// The value hash the tree stores for this leaf.
    pub fn value_hash(&self) -> Digest {
        TaggedHasher::new("candor/v3/m-leaf")
            .u64(self.n)
            .fixed(self.root.as_bytes())
            .u64(self.last_changed)
            .finish()
    }

    pub(crate) fn encode_to(&self, w: &mut Writer) {
        w.u64(self.n)
            .fixed(self.root.as_bytes())
            .u64(self.last_changed);
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
            root: Digest(r.array("leaf root")?),
            last_changed: r.u64("last changed")?,
        })
    }
}

/// The records of a list of `offers` (encoded signed offers, in list order); None when one
/// is not an offer.
pub fn records_of<'a>(offers: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<RecordRef>> {
    offers
        .into_iter()
        .map(|b| {
            SignedOffer::from_bytes(b).ok().map(|o| RecordRef {
                key: SortKey::of(&o.offer),
                hash: offer_hash(b),
            })
        })
        .collect()
}

/// The leaf of a list of `offers` (encoded, in list order) last changed at `last_changed`,
/// as a buyer recomputes it; None when one is not an offer.
pub fn leaf_of<'a>(offers: impl IntoIterator<Item = &'a [u8]>, last_changed: u64) -> Option<Leaf> {
    Some(Leaf::over(records_of(offers)?, last_changed))
}

/// A list as a step proof carries a touched item's old one: the records' places and hashes,
/// and the step at which it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OldList {
    /// The step at which it last changed.
    pub last_changed: u64,
    /// Its records, in list order.
    pub records: Vec<RecordRef>,
}

impl OldList {
    /// Its leaf.
    pub fn leaf(&self) -> Leaf {
        Leaf::over(self.records.iter().copied(), self.last_changed)
    }

    pub(crate) fn encode_to(&self, w: &mut Writer) {
        w.u64(self.last_changed).u32(self.records.len() as u32);
        for r in &self.records {
            r.key.encode_to(w);
            w.fixed(r.hash.as_bytes());
        }
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let last_changed = r.u64("last changed")?;
        let n = r.u32("records")? as usize;
        if n > MAX_LIVE {
            return Err(DecodeError::TooLong {
                field: "records",
                len: n,
                max: MAX_LIVE,
            });
        }
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            records.push(RecordRef {
                key: SortKey::decode_from(r)?,
                hash: Digest(r.array("record hash")?),
            });
        }
        Ok(Self {
            last_changed,
            records,
        })
    }
}

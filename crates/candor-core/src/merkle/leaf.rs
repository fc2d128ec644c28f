//! Leaves and chains: an item's append-only list as the tree stores it.

#[allow(unused_imports)]
use super::*;

/// The root of the empty map (the root at the counter's base value).
pub fn empty_root() -> Digest {
    EMPTY
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

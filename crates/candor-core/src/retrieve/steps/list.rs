//! The messages of a scheme-M list: a request for a stretch of an item's list, and a page of
//! it, with the most bytes a list of n offers can take.

use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::Digest;
use crate::item::ItemKey;
use crate::merkle::{MAX_LIST_PAGE, VERSION};
use crate::offer::MAX_OFFER_BYTES;

/// A page of an item's list: offers `from ..` in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// Encoded signed offers.
    pub offers: Vec<Vec<u8>>,
}

impl Encode for ListPage {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION).u16(self.offers.len() as u16);
        for o in &self.offers {
            w.bytes16(o);
        }
    }
}

impl ListPage {
    /// The most bytes the pages of a list of `n` offers can take, whatever the node sends:
    /// every page holds at least one offer (an empty one is a truncation), and each offer at
    /// most `MAX_OFFER_BYTES` with its length.
    pub fn most_bytes(n: u64) -> u64 {
        // Per page: version and count (3 bytes); per offer: a u16 length and the offer.
        n.saturating_mul(3 + 2 + MAX_OFFER_BYTES as u64)
    }
}

impl Decode for ListPage {
    const WHAT: &'static str = "M page";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        let n = r.u16("offers")? as usize;
        if n > MAX_LIST_PAGE {
            return Err(DecodeError::TooLong {
                field: "list page",
                len: n,
                max: MAX_LIST_PAGE,
            });
        }
        let mut offers = Vec::with_capacity(n);
        for _ in 0..n {
            offers.push(r.bytes16(MAX_OFFER_BYTES, "offer")?.to_vec());
        }
        Ok(Self { offers })
    }
}

/// A request for offers `from .. from + count` of item `item`'s list as it was after step
/// `value` (the head's t: a later step may have changed it since).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRequest {
    /// The item.
    pub item: ItemKey,
    /// The step whose list is asked for.
    pub value: u64,
    /// First index.
    pub from: u64,
    /// How many.
    pub count: u32,
}

impl Encode for ListRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(VERSION)
            .fixed(self.item.0.as_bytes())
            .u64(self.value)
            .u64(self.from)
            .u32(self.count);
    }
}

impl Decode for ListRequest {
    const WHAT: &'static str = "M page request";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION, Self::WHAT)?;
        Ok(Self {
            item: ItemKey(Digest(r.array("item")?)),
            value: r.u64("value")?,
            from: r.u64("from")?,
            count: r.u32("count")?,
        })
    }
}

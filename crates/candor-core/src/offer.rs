//! Offers: what a seller signs, and the rules that turn a list of offers into what a buyer
//! can buy (DESIGN.md §3).

use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::{tags, Digest, TaggedHasher};
use crate::item::{DescriptionError, Item, ItemKey, MAX_DESCRIPTION};
use crate::keys::{BadSignature, BatchVerifier, Keypair, PublicKey, Signature};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

const OFFER_VERSION: u8 = 1;

/// The longest encoded signed offer.
pub const MAX_OFFER_BYTES: usize = 1 + 32 + 2 + MAX_DESCRIPTION + 32 + 8 + 3 + 4 + 8 + 8 + 64;

/// An ISO 4217 alphabetic currency code (three upper-case ASCII letters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Euro.
    pub const EUR: Self = Self(*b"EUR");
    /// US dollar.
    pub const USD: Self = Self(*b"USD");
    /// Pound sterling.
    pub const GBP: Self = Self(*b"GBP");

    /// Parses a code such as `EUR` (case-insensitive on input, stored upper-case).
    pub fn new(code: &str) -> Result<Self, OfferError> {
        let b = code.trim().as_bytes();
        match b {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_alphabetic()) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(OfferError::Currency(code.chars().take(8).collect())),
        }
    }

    fn from_wire(b: [u8; 3]) -> Result<Self, DecodeError> {
        if b.iter().all(u8::is_ascii_uppercase) {
            Ok(Self(b))
        } else {
            Err(DecodeError::Invalid {
                field: "currency",
                reason: "not three upper-case ASCII letters",
            })
        }
    }

    /// The code's three bytes.
    pub fn code(&self) -> [u8; 3] {
        self.0
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an offer could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The description has no canonical form.
    #[error(transparent)]
    Description(#[from] DescriptionError),
    /// The currency is not an ISO 4217 alphabetic code.
    #[error("currency {0:?} is not a three-letter ISO 4217 code")]
    Currency(String),
}

/// A sale offer. The seller signs its canonical encoding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Offer {
    /// The item key, as the seller stated it (verifiers recompute it from the description).
    pub key: ItemKey,
    /// The item's description, as sent (canonical in a valid offer).
    pub description: String,
    /// The seller's public key.
    pub seller: PublicKey,
    /// Price in integer minor units of `currency` (cents for EUR).
    pub price: u64,
    /// The currency of `price`.
    pub currency: Currency,
    /// How many units are for sale; 0 withdraws the seller's offer for the item.
    pub quantity: u32,
    /// Expiry, Unix seconds; judged by the buyer's clock.
    pub expiry: u64,
    /// Per (seller, item), the highest serial supersedes lower ones.
    pub serial: u64,
}

impl fmt::Debug for Offer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Offer({:?} by {} at {} {} x{} #{})",
            self.description,
            &self.seller.to_hex()[..8],
            self.price,
            self.currency,
            self.quantity,
            self.serial
        )
    }
}

impl Encode for Offer {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(OFFER_VERSION)
            .fixed(self.key.0.as_bytes())
            .bytes16(self.description.as_bytes())
            .fixed(&self.seller.0)
            .u64(self.price)
            .fixed(&self.currency.0)
            .u32(self.quantity)
            .u64(self.expiry)
            .u64(self.serial);
    }
}

impl Decode for Offer {
    const WHAT: &'static str = "offer";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(OFFER_VERSION, Self::WHAT)?;
        let key = ItemKey(Digest(r.array("item key")?));
        let description = std::str::from_utf8(r.bytes16(MAX_DESCRIPTION, "description")?)
            .map_err(|_| DecodeError::Invalid {
                field: "description",
                reason: "not UTF-8",
            })?
            .to_string();
        Ok(Self {
            key,
            description,
            seller: PublicKey(r.array("seller")?),
            price: r.u64("price")?,
            currency: Currency::from_wire(r.array("currency")?)?,
            quantity: r.u32("quantity")?,
            expiry: r.u64("expiry")?,
            serial: r.u64("serial")?,
        })
    }
}

impl Offer {
    /// The offer's identity for de-duplication: a hash of its content (not of its signature).
    pub fn id(&self) -> Digest {
        TaggedHasher::new(tags::OFFER_ID)
            .var(&self.to_bytes())
            .finish()
    }
}

/// What is wrong with an offer that decodes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OfferFault {
    /// The seller's signature does not verify.
    #[error("the seller's signature does not verify")]
    BadSignature,
    /// The description is not canonical.
    #[error("the description is not canonical")]
    NotCanonical,
    /// The item key is not the hash of the description.
    #[error("the item key is not SHA-256 of the description")]
    KeyMismatch,
}

/// An offer with the seller's signature. Its canonical bytes are what listing nodes count.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedOffer {
    /// The offer.
    pub offer: Offer,
    /// The seller's signature on `candor/v1/offer ‖ offer bytes`.
    pub signature: Signature,
}

impl fmt::Debug for SignedOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.offer, f)
    }
}

impl Encode for SignedOffer {
    fn encode_to(&self, w: &mut Writer) {
        self.offer.encode_to(w);
        self.signature.encode_to(w);
    }
}

impl Decode for SignedOffer {
    const WHAT: &'static str = "signed offer";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            offer: Offer::decode_from(r)?,
            signature: Signature::decode_from(r)?,
        })
    }
}

impl SignedOffer {
    /// Makes and signs an offer for `item`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        seller: &Keypair,
        item: &Item,
        price: u64,
        currency: Currency,
        quantity: u32,
        expiry: u64,
        serial: u64,
    ) -> Self {
        let offer = Offer {
            key: item.key(),
            description: item.description().to_string(),
            seller: seller.public(),
            price,
            currency,
            quantity,
            expiry,
            serial,
        };
        let signature = seller.sign(tags::OFFER, &offer.to_bytes());
        Self { offer, signature }
    }

    /// Checks everything but the signature: canonical description, key = its hash.
    pub fn check_key(&self) -> Result<(), OfferFault> {
        let item = Item::new(&self.offer.description).map_err(|_| OfferFault::NotCanonical)?;
        if item.description() != self.offer.description {
            return Err(OfferFault::NotCanonical);
        }
        if item.key() != self.offer.key {
            return Err(OfferFault::KeyMismatch);
        }
        Ok(())
    }

    /// Checks the seller's signature.
    pub fn check_signature(&self) -> Result<(), BadSignature> {
        self.offer
            .seller
            .verify(tags::OFFER, &self.offer.to_bytes(), &self.signature)
    }

    /// Queues the seller's signature in `batch` (verified with the others at once: ZIP-215
    /// gives a batch the same verdict as one by one).
    pub fn queue_signature(&self, batch: &mut BatchVerifier) {
        batch.push(
            self.offer.seller,
            tags::OFFER,
            &self.offer.to_bytes(),
            self.signature,
        );
    }

    /// All checks an offer must pass.
    pub fn verify(&self) -> Result<(), OfferFault> {
        self.check_key()?;
        self.check_signature().map_err(|_| OfferFault::BadSignature)
    }
}

/// The offers a buyer can act on: per (seller, item) the highest serial wins, identical offers
/// count once, quantity 0 withdraws, and offers expired by `now` (Unix seconds) are dropped.
/// Two different offers of one seller for one item under the highest serial are the seller
/// equivocating (DESIGN.md §9): both are dropped, and so is the item's offer of that seller
/// (an honest seller's serials never repeat; [`seller_equivocation`] proves it to anyone).
/// Sorted by currency, then price, then seller.
pub fn current_offers<'a>(offers: impl IntoIterator<Item = &'a Offer>, now: u64) -> Vec<Offer> {
    // Per (seller, item): the highest-serial offer, and whether another differs from it at
    // that serial.
    let mut best: BTreeMap<(PublicKey, ItemKey), (&Offer, bool)> = BTreeMap::new();
    for o in offers {
        let slot = best.entry((o.seller, o.key)).or_insert((o, false));
        if o.serial > slot.0.serial {
            *slot = (o, false);
        } else if o.serial == slot.0.serial && o != slot.0 {
            slot.1 = true;
        }
    }
    let mut out: Vec<Offer> = best
        .into_values()
        .filter(|(o, equivocated)| !equivocated && o.quantity > 0 && o.expiry > now)
        .map(|(o, _)| o.clone())
        .collect();
    out.sort_by(|a, b| {
        (a.currency, a.price, a.seller, a.key).cmp(&(b.currency, b.price, b.seller, b.key))
    });
    out
}

/// Whether `a` and `b` prove their seller equivocated: two different offers, both signed by
/// one seller, for one item, under one serial. Anyone can check it with nothing but the two
/// offers; an honest seller never signs such a pair (its serial is max(wallet's highest + 1,
/// unix milliseconds)).
pub fn seller_equivocation(a: &SignedOffer, b: &SignedOffer) -> Result<(), &'static str> {
    if a.offer.seller != b.offer.seller {
        return Err("two sellers");
    }
    if a.offer.key != b.offer.key {
        return Err("two items");
    }
    if a.offer.serial != b.offer.serial {
        return Err("two serials");
    }
    if a.offer == b.offer {
        return Err("one offer");
    }
    a.verify()
        .map_err(|_| "the first offer is not validly signed")?;
    b.verify()
        .map_err(|_| "the second offer is not validly signed")?;
    Ok(())
}

/// The cheapest current offer in `currency` (prices are never compared across currencies).
pub fn cheapest(current: &[Offer], currency: Currency) -> Option<&Offer> {
    current
        .iter()
        .filter(|o| o.currency == currency)
        .min_by_key(|o| (o.price, o.seller))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn offer(seller: &Keypair, price: u64, qty: u32, expiry: u64, serial: u64) -> SignedOffer {
        let item = Item::new("Widget").unwrap();
        SignedOffer::sign(
            seller,
            &item,
            price,
            Currency::new("eur").unwrap(),
            qty,
            expiry,
            serial,
        )
    }

    #[test]
    fn round_trip_and_verify() {
        let k = Keypair::generate(&mut OsRng);
        let o = offer(&k, 1999, 3, 100, 1);
        let bytes = o.to_bytes();
        assert!(bytes.len() <= MAX_OFFER_BYTES);
        let back = SignedOffer::from_bytes(&bytes).unwrap();
        assert_eq!(back, o);
        back.verify().unwrap();
    }

    #[test]
    fn tampering_is_detected() {
        let k = Keypair::generate(&mut OsRng);
        let mut o = offer(&k, 1999, 3, 100, 1);
        o.offer.price = 1;
        assert_eq!(o.verify(), Err(OfferFault::BadSignature));
        let mut o = offer(&k, 1999, 3, 100, 1);
        o.offer.key = Item::new("other").unwrap().key();
        assert_eq!(o.verify(), Err(OfferFault::KeyMismatch));
        let mut o = offer(&k, 1999, 3, 100, 1);
        o.offer.description = "Widget".into();
        assert_eq!(o.verify(), Err(OfferFault::NotCanonical));
    }

    #[test]
    fn decoder_rejects_bad_input() {
        let k = Keypair::generate(&mut OsRng);
        let bytes = offer(&k, 1, 1, 1, 1).to_bytes();
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(
            SignedOffer::from_bytes(&extra),
            Err(DecodeError::TrailingBytes { .. })
        ));
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(matches!(
            SignedOffer::from_bytes(&v2),
            Err(DecodeError::UnknownVersion { .. })
        ));
        for cut in 0..bytes.len() {
            assert!(SignedOffer::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn currency_codes() {
        assert_eq!(Currency::new("usd").unwrap().as_str(), "USD");
        assert!(Currency::new("US").is_err());
        assert!(Currency::new("U5D").is_err());
    }

    #[test]
    fn semantics_supersede_withdraw_dedupe_expire() {
        let a = Keypair::generate(&mut OsRng);
        let b = Keypair::generate(&mut OsRng);
        let c = Keypair::generate(&mut OsRng);
        let offers = [
            offer(&a, 500, 1, 1000, 1),
            offer(&a, 450, 1, 1000, 2), // supersedes
            offer(&a, 450, 1, 1000, 2), // duplicate
            offer(&b, 300, 1, 1000, 1),
            offer(&b, 300, 0, 1000, 2), // withdrawn
            offer(&c, 100, 1, 50, 1),   // expired at now = 60
        ];
        let cur = current_offers(offers.iter().map(|o| &o.offer), 60);
        assert_eq!(cur.len(), 1);
        assert_eq!(cur[0].price, 450);
        assert_eq!(
            cheapest(&cur, Currency::new("EUR").unwrap()).map(|o| o.price),
            Some(450)
        );
        assert!(cheapest(&cur, Currency::new("USD").unwrap()).is_none());
    }

    #[test]
    fn a_seller_equivocating_under_its_highest_serial_is_dropped() {
        let a = Keypair::generate(&mut OsRng);
        let b = Keypair::generate(&mut OsRng);
        let x = offer(&a, 500, 1, 1000, 7);
        let y = offer(&a, 400, 1, 1000, 7); // another offer, one serial
        let offers = [
            offer(&a, 600, 1, 1000, 6),
            x.clone(),
            y.clone(),
            offer(&b, 300, 1, 1000, 1),
        ];
        for order in [[0, 1, 2, 3], [2, 3, 1, 0], [3, 2, 0, 1]] {
            let cur = current_offers(order.iter().map(|&i| &offers[i].offer), 60);
            assert_eq!(cur.len(), 1, "only b's offer is left");
            assert_eq!(cur[0].seller, b.public());
        }
        seller_equivocation(&x, &y).unwrap();
        assert!(seller_equivocation(&x, &x).is_err());
        assert!(seller_equivocation(&x, &offers[0]).is_err());
        assert!(seller_equivocation(&x, &offers[3]).is_err());
        let mut forged = y.clone();
        forged.offer.price = 1;
        assert!(seller_equivocation(&x, &forged).is_err());
        // A higher serial supersedes the pair: the seller's newest offer stands.
        let z = offer(&a, 450, 1, 1000, 8);
        let cur = current_offers([&x.offer, &y.offer, &z.offer], 60);
        assert_eq!(cur.len(), 1);
        assert_eq!(cur[0].price, 450);
    }
}

//! SHA-256 digests with domain separation.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// A 32-byte SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Plain SHA-256 of `data` (used where the design fixes an untagged hash, as for item keys).
pub fn sha256(data: &[u8]) -> Digest {
    Digest(Sha256::digest(data).into())
}

/// A hash under a domain-separation tag: SHA-256(len(tag) ‖ tag ‖ fields…).
///
/// Fields are appended with [`TaggedHasher::fixed`] (fixed width, known to both sides) or
/// [`TaggedHasher::var`] (length-prefixed), so no two field lists collide.
#[derive(Clone)]
pub struct TaggedHasher(Sha256);

impl TaggedHasher {
    /// Starts a hash under `tag`.
    pub fn new(tag: &str) -> Self {
        let mut h = Sha256::new();
        h.update([tag.len() as u8]);
        h.update(tag.as_bytes());
        Self(h)
    }

    /// Appends a fixed-width field.
    pub fn fixed(mut self, bytes: &[u8]) -> Self {
        self.0.update(bytes);
        self
    }

    /// Appends a variable-width field with a 4-byte length prefix.
    pub fn var(mut self, bytes: &[u8]) -> Self {
        self.0.update((bytes.len() as u32).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// Appends a u32, big-endian.
    pub fn u32(self, v: u32) -> Self {
        self.fixed(&v.to_be_bytes())
    }

    /// Appends a u64, big-endian.
    pub fn u64(self, v: u64) -> Self {
        self.fixed(&v.to_be_bytes())
    }

    /// The digest.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

/// Domain-separation tags. Every signed or hashed structure names one.
pub mod tags {
    /// A seller's signature on an offer.
    pub const OFFER: &str = "candor/v1/offer";
    /// A device's `Inc` statement.
    pub const INC: &str = "candor/v1/inc";
    /// A device's `Read` statement.
    pub const READ: &str = "candor/v1/read";
    /// The authority's signature on a certificate.
    pub const CERT: &str = "candor/v1/cert";
    /// A certificate's id.
    pub const CERT_ID: &str = "candor/v1/cert-id";
    /// A device's id, derived from its public key.
    pub const DEVICE_ID: &str = "candor/v1/device-id";
    /// The counter an item maps to.
    pub const CID: &str = "candor/v1/cid";
    /// The payload of a scheme B/C entry.
    pub const ENTRY: &str = "candor/v1/entry";
    /// The payload of a gap notice.
    pub const GAP: &str = "candor/v1/gap";
    /// The payload of an ordinary scheme-M step (the nested form, DESIGN.md §5).
    pub const M_STEP: &str = "candor/v2/m-step";
    /// The rest of a scheme-M step, which the payload binds by its hash.
    pub const M_REST: &str = "candor/v2/m-rest";
    /// A node's signature on an enrolment request.
    pub const ENROL: &str = "candor/v1/enrol";
    /// The hash of an offer used to de-duplicate.
    pub const OFFER_ID: &str = "candor/v1/offer-id";
    /// A TPM counter in the authority's registry: H(EK modulus ‖ NV index).
    pub const TPM_COUNTER: &str = "candor/v1/tpm-counter";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_separates_domains() {
        let a = TaggedHasher::new("candor/v1/a").fixed(b"x").finish();
        let b = TaggedHasher::new("candor/v1/b").fixed(b"x").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn var_fields_do_not_collide_on_concatenation() {
        let a = TaggedHasher::new("t").var(b"ab").var(b"c").finish();
        let b = TaggedHasher::new("t").var(b"a").var(b"bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip() {
        let d = sha256(b"x");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
    }
}

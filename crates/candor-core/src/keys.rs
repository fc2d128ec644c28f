//! Ed25519 keys and signatures, verified under ZIP-215 rules (ed25519-consensus), and node
//! identities (libp2p-compatible PeerIds).
//!
//! ZIP-215 fixes exactly which signatures are valid, so single and batch verification, and
//! every party, reach the same verdict on the same bytes.

use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::{tags, Digest, TaggedHasher};
use ed25519_consensus::{
    batch, Signature as EdSig, SigningKey, VerificationKey, VerificationKeyBytes,
};
use rand_core::{CryptoRng, RngCore};
use std::fmt;
use thiserror::Error;

/// A signature check failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// An ed25519 public key (32 bytes, as sent; checked when used).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        Digest::from_hex(s).map(|d| Self(d.0))
    }

    /// Verifies `sig` on `tag ‖ msg` under ZIP-215 rules.
    pub fn verify(&self, tag: &str, msg: &[u8], sig: &Signature) -> Result<(), BadSignature> {
        let vk = VerificationKey::try_from(self.0).map_err(|_| BadSignature)?;
        vk.verify(&EdSig::from(sig.0), &signed_message(tag, msg))
            .map_err(|_| BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A 64-byte ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

impl Signature {
    pub(crate) fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.0);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.array("signature")?))
    }
}

/// The message actually signed: the tag, length-prefixed, then the canonical bytes.
pub(crate) fn signed_message(tag: &str, msg: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + tag.len() + msg.len());
    v.push(tag.len() as u8);
    v.extend_from_slice(tag.as_bytes());
    v.extend_from_slice(msg);
    v
}

/// An ed25519 signing key. Its secret bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct Keypair {
    sk: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.public())
    }
}

impl Keypair {
    /// A fresh key from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self {
            sk: SigningKey::new(rng),
        }
    }

    /// A key from its 32 secret bytes.
    pub fn from_secret(bytes: [u8; 32]) -> Self {
        Self {
            sk: SigningKey::from(bytes),
        }
    }

    /// The 32 secret bytes, for storing the key.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.sk.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.sk.verification_key().to_bytes())
    }

    /// Signs `tag ‖ msg`.
    pub fn sign(&self, tag: &str, msg: &[u8]) -> Signature {
        Signature(self.sk.sign(&signed_message(tag, msg)).to_bytes())
    }
}

/// Verifies many ed25519 signatures at once (ZIP-215 batch rules: the same verdict as one
/// by one). When the batch fails, [`BatchVerifier::verify_each`] tells which item failed.
#[derive(Default)]
pub struct BatchVerifier {
    items: Vec<(PublicKey, Vec<u8>, Signature)>,
}

impl BatchVerifier {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a signature on `tag ‖ msg`.
    pub fn push(&mut self, key: PublicKey, tag: &str, msg: &[u8], sig: Signature) {
        self.items.push((key, signed_message(tag, msg), sig));
    }

    /// How many signatures are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True if every queued signature verifies.
    pub fn verify_all(&self) -> bool {
        let mut v = batch::Verifier::new();
        for (key, msg, sig) in &self.items {
            v.queue((VerificationKeyBytes::from(key.0), EdSig::from(sig.0), msg));
        }
        v.verify(rand_core::OsRng).is_ok()
    }

    /// The index of the first signature that does not verify, if any (one by one).
    pub fn first_failure(&self) -> Option<usize> {
        self.items.iter().position(|(key, msg, sig)| {
            VerificationKey::try_from(key.0)
                .and_then(|vk| vk.verify(&EdSig::from(sig.0), msg))
                .is_err()
        })
    }

    /// Verifies the batch; on failure returns the index of the first bad signature.
    pub fn verify_each(&self) -> Result<(), usize> {
        if self.verify_all() {
            return Ok(());
        }
        // The batch equation failed, so at least one signature is bad under ZIP-215.
        Err(self.first_failure().unwrap_or(0))
    }
}

/// A node's identity: the bytes of its libp2p PeerId (an identity multihash of its ed25519
/// public key in libp2p's protobuf form), so that the same id names the node on the network.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(Vec<u8>);

/// The longest PeerId accepted.
pub const MAX_PEER_ID: usize = 64;

impl PeerId {
    /// The PeerId of an ed25519 node key.
    pub fn from_ed25519(key: &PublicKey) -> Self {
        // protobuf PublicKey { Type = Ed25519 (1), Data = 32 bytes }
        let mut proto = vec![0x08, 0x01, 0x12, 0x20];
        proto.extend_from_slice(&key.0);
        // identity multihash: code 0x00, length, digest
        let mut bytes = vec![0x00, proto.len() as u8];
        bytes.extend_from_slice(&proto);
        Self(bytes)
    }

    /// The ed25519 key embedded in this PeerId, if it is an ed25519 identity PeerId.
    pub fn ed25519_key(&self) -> Option<PublicKey> {
        let rest = self.0.strip_prefix(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20])?;
        let key: [u8; 32] = rest.try_into().ok()?;
        Some(PublicKey(key))
    }

    /// A PeerId from raw bytes (bounded).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.is_empty() || bytes.len() > MAX_PEER_ID {
            return Err(DecodeError::Invalid {
                field: "peer",
                reason: "a PeerId is 1 to 64 bytes",
            });
        }
        Ok(Self(bytes.to_vec()))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn encode_to(&self, w: &mut Writer) {
        w.bytes8(&self.0);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::from_bytes(r.bytes8(MAX_PEER_ID, "peer")?)
    }

    /// A short printable form (hex of the key part).
    pub fn short(&self) -> String {
        let h = hex::encode(&self.0);
        h.get(h.len().saturating_sub(12)..)
            .unwrap_or("")
            .to_string()
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(…{})", self.short())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// A device's id: SHA-256 under [`tags::DEVICE_ID`] of its encoded public key.
pub(crate) fn device_id_of(encoded_key: &[u8]) -> Digest {
    TaggedHasher::new(tags::DEVICE_ID).var(encoded_key).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn sign_verify_and_domain_separation() {
        let k = Keypair::generate(&mut OsRng);
        let s = k.sign("candor/v1/a", b"msg");
        k.public().verify("candor/v1/a", b"msg", &s).unwrap();
        assert!(k.public().verify("candor/v1/b", b"msg", &s).is_err());
        assert!(k.public().verify("candor/v1/a", b"msh", &s).is_err());
    }

    #[test]
    fn batch_finds_the_bad_one() {
        let k = Keypair::generate(&mut OsRng);
        let mut b = BatchVerifier::new();
        for i in 0..10u8 {
            let mut s = k.sign("t", &[i]);
            if i == 6 {
                s.0[3] ^= 1;
            }
            b.push(k.public(), "t", &[i], s);
        }
        assert_eq!(b.verify_each(), Err(6));
    }

    #[test]
    fn peer_id_embeds_key() {
        let k = Keypair::generate(&mut OsRng);
        let p = PeerId::from_ed25519(&k.public());
        assert_eq!(p.as_bytes().len(), 38);
        assert_eq!(p.ed25519_key(), Some(k.public()));
    }
}

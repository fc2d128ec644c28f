//! What a trusted device signs: `Inc` and `Read` statements (DESIGN.md §4).

use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::{tags, Digest};
use crate::keys::{
    device_id_of, BadSignature, BatchVerifier, Keypair, PeerId, PublicKey, Signature,
};
use std::fmt;

const STATEMENT_VERSION: u8 = 1;

/// A device counter's id.
pub type CounterId = u32;

/// A TPM 2.0 device's public identity: its signing key's public area (TPMT_PUBLIC, as the TPM
/// returned it) and hierarchy, and each counter's NV public area (TPMS_NV_PUBLIC). Names,
/// the qualified name and the point are derived from them, so the authority can vet the
/// areas themselves (`TpmKey::vet`) and the device id commits to exactly what was vetted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TpmKey {
    /// The hierarchy the key is a primary of.
    pub hierarchy: u32,
    /// The key's TPMT_PUBLIC.
    pub key_public: Vec<u8>,
    /// (counter id, TPMS_NV_PUBLIC) for each counter.
    pub nv_public: Vec<(CounterId, Vec<u8>)>,
}

impl TpmKey {
    fn nv_name(&self, counter: CounterId) -> Result<Vec<u8>, BadSignature> {
        self.nv_public
            .iter()
            .find(|(c, _)| *c == counter)
            .map(|(_, p)| crate::tpm::name_of(p))
            .ok_or(BadSignature)
    }

    /// The key's qualified name (what the TPM writes as the signer).
    pub fn qualified_name(&self) -> Vec<u8> {
        crate::tpm::qualified_name(self.hierarchy, &crate::tpm::name_of(&self.key_public))
    }

    fn key(&self) -> Result<p256::ecdsa::VerifyingKey, BadSignature> {
        let (x, y) = crate::tpm::signing_key_point(&self.key_public).map_err(|_| BadSignature)?;
        crate::tpm::verifying_key(&x, &y).map_err(|_| BadSignature)
    }

    /// The authority's vetting of the public areas: the key is a restricted, fixed,
    /// TPM-generated ECC P-256 ECDSA/SHA-256 signing key that cannot decrypt, a primary of
    /// the endorsement hierarchy; each counter is a written, non-orderly NV counter of 8
    /// bytes. (That the key really lives in a TPM is shown by the EK chain, not yet checked.)
    pub fn vet(&self) -> Result<(), &'static str> {
        crate::tpm::vet_signing_key(&self.key_public)?;
        if self.hierarchy != crate::tpm::TPM_RH_ENDORSEMENT {
            return Err("the key is not a primary of the endorsement hierarchy");
        }
        if self.nv_public.is_empty() {
            return Err("no counter");
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut indices = std::collections::BTreeSet::new();
        for (id, p) in &self.nv_public {
            crate::tpm::vet_counter(p)?;
            if !ids.insert(*id) {
                return Err("a counter id is named twice");
            }
            // Two counter ids on one NV area would count one increment twice.
            let index = p
                .get(..4)
                .ok_or("the counter's NV public area is truncated")?;
            if !indices.insert(index.to_vec()) {
                return Err("two counters name one NV index");
            }
        }
        Ok(())
    }
}

/// A trusted device's public key, tagged with its backend so verifiers apply the right format.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKey {
    /// The software device: an ed25519 key. It protects nothing against its machine's owner.
    Software(PublicKey),
    /// A TPM 2.0.
    Tpm(Box<TpmKey>),
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Software(k) => write!(f, "Software({})", &k.to_hex()[..16]),
            Self::Tpm(k) => write!(f, "Tpm({} counters)", k.nv_public.len()),
        }
    }
}

/// For people: the backend and the key's id (the hash every statement names).
impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Software(_) => write!(f, "software ed25519 key, id {}", self.id().to_hex()),
            Self::Tpm(k) => write!(
                f,
                "TPM 2.0 P-256 key with {} NV counter(s), id {}",
                k.nv_public.len(),
                self.id().to_hex()
            ),
        }
    }
}

/// The most counters a TPM key names.
const MAX_TPM_COUNTERS: usize = 64;

impl Encode for DeviceKey {
    fn encode_to(&self, w: &mut Writer) {
        match self {
            Self::Software(k) => {
                w.u8(1).fixed(&k.0);
            }
            Self::Tpm(k) => {
                w.u8(2).u32(k.hierarchy).bytes16(&k.key_public);
                w.u16(k.nv_public.len() as u16);
                for (c, p) in &k.nv_public {
                    w.u32(*c).bytes16(p);
                }
            }
        }
    }
}

impl Decode for DeviceKey {
    const WHAT: &'static str = "device key";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("device key kind")? {
            1 => Ok(Self::Software(PublicKey(r.array("device key")?))),
            2 => {
                let hierarchy = r.u32("hierarchy")?;
                let key_public = r.bytes16(512, "key public area")?.to_vec();
                let n = r.u16("nv public areas")? as usize;
                if n > MAX_TPM_COUNTERS {
                    return Err(DecodeError::TooLong {
                        field: "nv public areas",
                        len: n,
                        max: MAX_TPM_COUNTERS,
                    });
                }
                let mut nv_public = Vec::with_capacity(n);
                for _ in 0..n {
                    nv_public.push((
                        r.u32("counter")?,
                        r.bytes16(128, "nv public area")?.to_vec(),
                    ));
                }
                Ok(Self::Tpm(Box::new(TpmKey {
                    hierarchy,
                    key_public,
                    nv_public,
                })))
            }
            kind => Err(DecodeError::UnknownKind {
                what: Self::WHAT,
                kind,
            }),
        }
    }
}

impl DeviceKey {
    /// The device id every statement names.
    pub fn id(&self) -> Digest {
        device_id_of(&self.to_bytes())
    }

    /// The backend's name, for people.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Software(_) => "software (protects nothing)",
            Self::Tpm(_) => "TPM 2.0",
        }
    }

    /// Verifies a signed `Inc` under this key (the statement's proof; callers check the
    /// fields). A TPM `Inc` is the audit of exactly one increment from value − 1 to value
    /// binding the payload.
    pub fn verify_inc(&self, s: &SignedInc) -> Result<(), BadSignature> {
        match (self, &s.sig) {
            (Self::Software(k), DeviceSig::Ed25519(sig)) => {
                k.verify(tags::INC, &s.inc.to_bytes(), sig)
            }
            (Self::Tpm(k), DeviceSig::Tpm(p)) => {
                let i = &s.inc;
                let pre = i.value.checked_sub(1).ok_or(BadSignature)?;
                crate::tpm::verify_nv_inc(
                    &k.key()?,
                    &k.qualified_name(),
                    &k.nv_name(i.counter)?,
                    i.payload.as_bytes(),
                    pre,
                    i.value,
                    &p.attest,
                    &p.r,
                    &p.s,
                )
                .map(|_| ())
                .map_err(|_| BadSignature)
            }
            _ => Err(BadSignature),
        }
    }

    /// Queues a signed `Inc` for batch verification (ed25519), or verifies it at once (TPM).
    pub fn queue_inc(&self, batch: &mut BatchVerifier, s: &SignedInc) -> Result<(), BadSignature> {
        match (self, &s.sig) {
            (Self::Software(k), DeviceSig::Ed25519(sig)) => {
                batch.push(*k, tags::INC, &s.inc.to_bytes(), *sig);
                Ok(())
            }
            _ => self.verify_inc(s),
        }
    }

    /// Verifies a signed `Read` under this key (the statement's proof).
    pub fn verify_read(&self, s: &SignedRead) -> Result<(), BadSignature> {
        match (self, &s.sig) {
            (Self::Software(k), DeviceSig::Ed25519(sig)) => {
                k.verify(tags::READ, &s.read.to_bytes(), sig)
            }
            (Self::Tpm(k), DeviceSig::Tpm(p)) => {
                let r = &s.read;
                let value = crate::tpm::verify_nv_read(
                    &k.key()?,
                    &k.qualified_name(),
                    &k.nv_name(r.counter)?,
                    &r.nonce,
                    &p.attest,
                    &p.r,
                    &p.s,
                )
                .map_err(|_| BadSignature)?;
                if value == r.value {
                    Ok(())
                } else {
                    Err(BadSignature)
                }
            }
            _ => Err(BadSignature),
        }
    }
}

/// A TPM's proof of a statement: the signed TPMS_ATTEST bytes as sent and the ECDSA scalars.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TpmProof {
    /// TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// ECDSA r.
    pub r: Vec<u8>,
    /// ECDSA s.
    pub s: Vec<u8>,
}

/// How a device proves a statement.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum DeviceSig {
    /// An ed25519 signature on the tagged statement (software device).
    Ed25519(Signature),
    /// A TPM attestation.
    Tpm(TpmProof),
}

impl DeviceSig {
    pub(crate) fn encode_to(&self, w: &mut Writer) {
        match self {
            Self::Ed25519(s) => {
                w.u8(SIG_ED25519);
                s.encode_to(w);
            }
            Self::Tpm(p) => {
                w.u8(SIG_TPM).bytes16(&p.attest).bytes8(&p.r).bytes8(&p.s);
            }
        }
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>, what: &'static str) -> Result<Self, DecodeError> {
        match r.u8("signature kind")? {
            SIG_ED25519 => Ok(Self::Ed25519(Signature::decode_from(r)?)),
            SIG_TPM => Ok(Self::Tpm(TpmProof {
                attest: r.bytes16(1024, "attest")?.to_vec(),
                r: r.bytes8(32, "ecdsa r")?.to_vec(),
                s: r.bytes8(32, "ecdsa s")?.to_vec(),
            })),
            kind => Err(DecodeError::UnknownKind { what, kind }),
        }
    }
}

/// `Inc`: the counter went from `value − 1` to `value` in this very step, binding `payload`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Inc {
    /// The device's id.
    pub device: Digest,
    /// The node the device serves.
    pub peer: PeerId,
    /// The counter.
    pub counter: CounterId,
    /// The counter's value after the step.
    pub value: u64,
    /// What the step binds.
    pub payload: Digest,
}

impl fmt::Debug for Inc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Inc(c{} v{} {:?})",
            self.counter, self.value, self.payload
        )
    }
}

impl Encode for Inc {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(STATEMENT_VERSION).fixed(self.device.as_bytes());
        self.peer.encode_to(w);
        w.u32(self.counter)
            .u64(self.value)
            .fixed(self.payload.as_bytes());
    }
}

impl Decode for Inc {
    const WHAT: &'static str = "Inc";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(STATEMENT_VERSION, Self::WHAT)?;
        Ok(Self {
            device: Digest(r.array("device")?),
            peer: PeerId::decode_from(r)?,
            counter: r.u32("counter")?,
            value: r.u64("value")?,
            payload: Digest(r.array("payload")?),
        })
    }
}

/// `Read`: the counter's value when the device answered `nonce`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Read {
    /// The device's id.
    pub device: Digest,
    /// The node the device serves.
    pub peer: PeerId,
    /// The counter.
    pub counter: CounterId,
    /// Its value.
    pub value: u64,
    /// The requester's fresh nonce.
    pub nonce: [u8; 32],
}

impl fmt::Debug for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Read(c{} v{})", self.counter, self.value)
    }
}

impl Encode for Read {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(STATEMENT_VERSION).fixed(self.device.as_bytes());
        self.peer.encode_to(w);
        w.u32(self.counter).u64(self.value).fixed(&self.nonce);
    }
}

impl Decode for Read {
    const WHAT: &'static str = "Read";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(STATEMENT_VERSION, Self::WHAT)?;
        Ok(Self {
            device: Digest(r.array("device")?),
            peer: PeerId::decode_from(r)?,
            counter: r.u32("counter")?,
            value: r.u64("value")?,
            nonce: r.array("nonce")?,
        })
    }
}

/// An `Inc` with the device's signature.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedInc {
    /// The statement.
    pub inc: Inc,
    /// The device's proof: an ed25519 signature on `candor/v1/inc ‖ inc bytes`, or a TPM
    /// session audit.
    pub sig: DeviceSig,
}

/// A `Read` with the device's signature.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedRead {
    /// The statement.
    pub read: Read,
    /// The device's proof: an ed25519 signature on `candor/v1/read ‖ read bytes`, or a TPM
    /// NV certification.
    pub sig: DeviceSig,
}

/// The largest encoded signed statement (a TPM attestation included).
pub const MAX_STATEMENT_BYTES: usize = 1 + 32 + 1 + 64 + 4 + 8 + 32 + 1 + 2 + 1024 + 2 + 64;

const SIG_ED25519: u8 = 1;
const SIG_TPM: u8 = 2;

impl Encode for SignedInc {
    fn encode_to(&self, w: &mut Writer) {
        self.inc.encode_to(w);
        self.sig.encode_to(w);
    }
}

impl Decode for SignedInc {
    const WHAT: &'static str = "signed Inc";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let inc = Inc::decode_from(r)?;
        Ok(Self {
            inc,
            sig: DeviceSig::decode_from(r, Self::WHAT)?,
        })
    }
}

impl Encode for SignedRead {
    fn encode_to(&self, w: &mut Writer) {
        self.read.encode_to(w);
        self.sig.encode_to(w);
    }
}

impl Decode for SignedRead {
    const WHAT: &'static str = "signed Read";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let read = Read::decode_from(r)?;
        Ok(Self {
            read,
            sig: DeviceSig::decode_from(r, Self::WHAT)?,
        })
    }
}

/// Signs statements with an ed25519 key: the software device's signer (and, in tests, a
/// deliberately broken device's).
#[derive(Debug, Clone)]
pub struct Ed25519StatementSigner {
    key: Keypair,
    peer: PeerId,
}

impl Ed25519StatementSigner {
    /// A signer for the device key `key`, serving node `peer`.
    pub fn new(key: Keypair, peer: PeerId) -> Self {
        Self { key, peer }
    }

    /// The device key.
    pub fn device_key(&self) -> DeviceKey {
        DeviceKey::Software(self.key.public())
    }

    /// The node served.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// Signs an `Inc`.
    pub fn sign_inc(&self, counter: CounterId, value: u64, payload: Digest) -> SignedInc {
        let inc = Inc {
            device: self.device_key().id(),
            peer: self.peer.clone(),
            counter,
            value,
            payload,
        };
        let sig = DeviceSig::Ed25519(self.key.sign(tags::INC, &inc.to_bytes()));
        SignedInc { inc, sig }
    }

    /// Signs a `Read`.
    pub fn sign_read(&self, counter: CounterId, value: u64, nonce: [u8; 32]) -> SignedRead {
        let read = Read {
            device: self.device_key().id(),
            peer: self.peer.clone(),
            counter,
            value,
            nonce,
        };
        let sig = DeviceSig::Ed25519(self.key.sign(tags::READ, &read.to_bytes()));
        SignedRead { read, sig }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn signer() -> Ed25519StatementSigner {
        let node = Keypair::generate(&mut OsRng);
        Ed25519StatementSigner::new(
            Keypair::generate(&mut OsRng),
            PeerId::from_ed25519(&node.public()),
        )
    }

    #[test]
    fn statements_round_trip_and_verify() {
        let s = signer();
        let inc = s.sign_inc(3, 17, Digest([9; 32]));
        let bytes = inc.to_bytes();
        assert!(bytes.len() <= MAX_STATEMENT_BYTES);
        let back = SignedInc::from_bytes(&bytes).unwrap();
        assert_eq!(back, inc);
        s.device_key().verify_inc(&back).unwrap();
        let read = s.sign_read(3, 17, [1; 32]);
        let back = SignedRead::from_bytes(&read.to_bytes()).unwrap();
        s.device_key().verify_read(&back).unwrap();
    }

    #[test]
    fn inc_signature_does_not_verify_as_read() {
        // Domain separation: an Inc's signature is no Read's, even with equal field bytes.
        let s = signer();
        let inc = s.sign_inc(0, 5, Digest([7; 32]));
        let fake = SignedRead {
            read: Read {
                device: inc.inc.device,
                peer: inc.inc.peer.clone(),
                counter: 0,
                value: 5,
                nonce: [7; 32],
            },
            sig: inc.sig,
        };
        assert!(s.device_key().verify_read(&fake).is_err());
    }

    #[test]
    fn altered_fields_fail() {
        let s = signer();
        let mut inc = s.sign_inc(0, 5, Digest([7; 32]));
        inc.inc.value = 4;
        assert!(s.device_key().verify_inc(&inc).is_err());
    }

    #[test]
    fn unknown_signature_kind_is_typed() {
        let s = signer();
        let mut bytes = s.sign_inc(0, 5, Digest([7; 32])).to_bytes();
        let pos = bytes.len() - 65;
        bytes[pos] = 9;
        assert!(matches!(
            SignedInc::from_bytes(&bytes),
            Err(DecodeError::UnknownKind { kind: 9, .. })
        ));
    }
}

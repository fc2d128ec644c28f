//! Device certificates, enrolment and the marketplace authority (DESIGN.md §4).
//!
//! The authority certifies a device key, the PeerId it is bound to, the scheme the node runs
//! with its counters, and each counter's initial value read against the authority's nonce. It
//! keeps a registry and never certifies a second device for one PeerId or a PeerId for a second
//! device.

use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::{tags, Digest, TaggedHasher};
use crate::item::ItemKey;
use crate::keys::{Keypair, PeerId, PublicKey, Signature};
use crate::statement::{CounterId, DeviceKey, SignedRead};
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;

const CERT_VERSION: u8 = 1;
const ENROL_VERSION: u8 = 1;
const REGISTRY_VERSION: u8 = 1;

/// The most counters a certificate may name.
pub const MAX_COUNTERS: usize = 4096;

/// The scheme a listing node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// The paper's §3: one counter, every entry sent on retrieve.
    Basic,
    /// The paper's §4.2: C counters, item d on counter cid(d).
    Counters,
    /// The paper's §4.1 as DESIGN.md §5 fixes it: one counter, each value a step of a sparse
    /// Merkle tree (depth 256, SHA-256) over per-item append-only offer lists.
    Merkle,
}

impl Scheme {
    fn code(self) -> u8 {
        match self {
            Self::Basic => 1,
            Self::Counters => 2,
            Self::Merkle => 3,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        match c {
            1 => Ok(Self::Basic),
            2 => Ok(Self::Counters),
            3 => Ok(Self::Merkle),
            kind => Err(DecodeError::UnknownKind {
                what: "scheme",
                kind,
            }),
        }
    }

    /// Its short name (`b`, `c`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "b",
            Self::Counters => "c",
            Self::Merkle => "m",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Basic => "B (basic)",
            Self::Counters => "C (counters)",
            Self::Merkle => "M (Merkle)",
        })
    }
}

/// One certified counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertifiedCounter {
    /// The device's counter id.
    pub id: CounterId,
    /// Its value when enrolled: retrieves cover values above it.
    pub initial: u64,
}

/// What the authority certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The authority's key.
    pub authority: PublicKey,
    /// The certificate's serial in the authority's registry.
    pub serial: u64,
    /// The device key.
    pub device: DeviceKey,
    /// The node the device is bound to.
    pub peer: PeerId,
    /// The scheme the node runs.
    pub scheme: Scheme,
    /// The counters, in cid order: item d uses `counters[cid(d)]`.
    pub counters: Vec<CertifiedCounter>,
    /// Issue time, Unix seconds.
    pub issued_at: u64,
}

impl Encode for Certificate {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(CERT_VERSION).fixed(&self.authority.0).u64(self.serial);
        self.device.encode_to(w);
        self.peer.encode_to(w);
        w.u8(self.scheme.code()).u16(self.counters.len() as u16);
        for c in &self.counters {
            w.u32(c.id).u64(c.initial);
        }
        w.u64(self.issued_at);
    }
}

impl Decode for Certificate {
    const WHAT: &'static str = "certificate";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(CERT_VERSION, Self::WHAT)?;
        let authority = PublicKey(r.array("authority")?);
        let serial = r.u64("serial")?;
        let device = DeviceKey::decode_from(r)?;
        let peer = PeerId::decode_from(r)?;
        let scheme = Scheme::from_code(r.u8("scheme")?)?;
        let n = r.u16("counter count")? as usize;
        if n > MAX_COUNTERS {
            return Err(DecodeError::TooLong {
                field: "counters",
                len: n,
                max: MAX_COUNTERS,
            });
        }
        let mut counters = Vec::with_capacity(n);
        for _ in 0..n {
            counters.push(CertifiedCounter {
                id: r.u32("counter id")?,
                initial: r.u64("counter initial")?,
            });
        }
        let cert = Self {
            authority,
            serial,
            device,
            peer,
            scheme,
            counters,
            issued_at: r.u64("issued at")?,
        };
        check_counters(cert.scheme, cert.counters.iter().map(|c| c.id)).map_err(|_| {
            DecodeError::Invalid {
                field: "counters",
                reason: "not valid for the scheme",
            }
        })?;
        Ok(cert)
    }
}

fn check_counters(scheme: Scheme, ids: impl Iterator<Item = CounterId>) -> Result<(), CertError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(CertError::BadCounters("a counter is named twice"));
        }
    }
    match (scheme, seen.len()) {
        (_, 0) => Err(CertError::BadCounters("no counter")),
        (Scheme::Basic, n) if n != 1 => Err(CertError::BadCounters("scheme B has one counter")),
        (Scheme::Merkle, n) if n != 1 => Err(CertError::BadCounters("scheme M has one counter")),
        (_, n) if n > MAX_COUNTERS => Err(CertError::BadCounters("too many counters")),
        _ => Ok(()),
    }
}

impl Certificate {
    /// The certified counter item `key` maps to (`cid(d)`, DESIGN.md §4).
    pub fn counter_for(&self, key: &ItemKey) -> CertifiedCounter {
        let idx = key.counter_index(self.counters.len() as u32) as usize;
        self.counters
            .get(idx)
            .copied()
            .unwrap_or(CertifiedCounter { id: 0, initial: 0 })
    }

    /// The certified counter with id `id`, if any.
    pub fn counter(&self, id: CounterId) -> Option<CertifiedCounter> {
        self.counters.iter().copied().find(|c| c.id == id)
    }
}

/// A certificate with the authority's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCertificate {
    /// The certificate.
    pub cert: Certificate,
    /// The authority's signature on `candor/v1/cert ‖ cert bytes`.
    pub sig: Signature,
}

impl Encode for SignedCertificate {
    fn encode_to(&self, w: &mut Writer) {
        self.cert.encode_to(w);
        self.sig.encode_to(w);
    }
}

impl Decode for SignedCertificate {
    const WHAT: &'static str = "signed certificate";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            cert: Certificate::decode_from(r)?,
            sig: Signature::decode_from(r)?,
        })
    }
}

/// Why a certificate or an enrolment is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertError {
    /// Signed by an authority the verifier does not trust.
    #[error("the certificate's authority {0} is not trusted")]
    UntrustedAuthority(PublicKey),
    /// The authority's signature does not verify.
    #[error("the authority's signature on the certificate does not verify")]
    BadSignature,
    /// Issued for another node than the one spoken to.
    #[error("the certificate is for node {certified}, not for {expected}")]
    WrongPeer {
        /// The PeerId in the certificate.
        certified: String,
        /// The PeerId expected.
        expected: String,
    },
    /// The counters are not valid for the scheme.
    #[error("bad counters: {0}")]
    BadCounters(&'static str),
    /// The enrolment request's node signature does not verify.
    #[error("the node's signature on the enrolment request does not verify")]
    BadNodeSignature,
    /// A `Read` in the request is not what the authority asked for.
    #[error("the device's Read for counter {counter} is invalid: {reason}")]
    BadRead {
        /// The counter.
        counter: CounterId,
        /// Why.
        reason: &'static str,
    },
    /// The device's public areas fail the authority's vetting.
    #[error("the trusted device is not acceptable: {0}")]
    BadDevice(&'static str),
    /// The registry already holds a certificate for the PeerId or the device.
    #[error("already enrolled: {0}")]
    AlreadyEnrolled(&'static str),
}

impl SignedCertificate {
    /// The certificate's id (in every receipt).
    pub fn id(&self) -> Digest {
        TaggedHasher::new(tags::CERT_ID)
            .var(&self.cert.to_bytes())
            .finish()
    }

    /// Checks the authority is trusted and its signature verifies.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<(), CertError> {
        if !trusted.contains(&self.cert.authority) {
            return Err(CertError::UntrustedAuthority(self.cert.authority));
        }
        self.cert
            .authority
            .verify(tags::CERT, &self.cert.to_bytes(), &self.sig)
            .map_err(|_| CertError::BadSignature)
    }

    /// [`Self::verify`], and that the certificate is for `peer`.
    pub fn verify_for(&self, trusted: &[PublicKey], peer: &PeerId) -> Result<(), CertError> {
        self.verify(trusted)?;
        if &self.cert.peer != peer {
            return Err(CertError::WrongPeer {
                certified: self.cert.peer.to_string(),
                expected: peer.to_string(),
            });
        }
        Ok(())
    }
}

/// A node's request to have its device certified: one `Read` per counter against the
/// authority's nonce, signed with the node key its PeerId embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolRequest {
    /// The device key.
    pub device: DeviceKey,
    /// The node.
    pub peer: PeerId,
    /// The scheme it will run.
    pub scheme: Scheme,
    /// One `Read` per counter, in cid order, against the authority's nonce.
    pub reads: Vec<SignedRead>,
    /// The node key's signature on `candor/v1/enrol ‖ the fields above`.
    pub node_sig: Signature,
}

impl EnrolRequest {
    fn body(device: &DeviceKey, peer: &PeerId, scheme: Scheme, reads: &[SignedRead]) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(ENROL_VERSION);
        device.encode_to(&mut w);
        peer.encode_to(&mut w);
        w.u8(scheme.code()).u16(reads.len() as u16);
        for r in reads {
            w.bytes16(&r.to_bytes());
        }
        w.into_bytes()
    }

    /// Builds and signs a request with the node key.
    pub fn new(node: &Keypair, device: DeviceKey, scheme: Scheme, reads: Vec<SignedRead>) -> Self {
        let peer = PeerId::from_ed25519(&node.public());
        let node_sig = node.sign(tags::ENROL, &Self::body(&device, &peer, scheme, &reads));
        Self {
            device,
            peer,
            scheme,
            reads,
            node_sig,
        }
    }
}

impl Encode for EnrolRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&Self::body(
            &self.device,
            &self.peer,
            self.scheme,
            &self.reads,
        ));
        self.node_sig.encode_to(w);
    }
}

impl Decode for EnrolRequest {
    const WHAT: &'static str = "enrolment request";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(ENROL_VERSION, Self::WHAT)?;
        let device = DeviceKey::decode_from(r)?;
        let peer = PeerId::decode_from(r)?;
        let scheme = Scheme::from_code(r.u8("scheme")?)?;
        let n = r.u16("read count")? as usize;
        if n > MAX_COUNTERS {
            return Err(DecodeError::TooLong {
                field: "reads",
                len: n,
                max: MAX_COUNTERS,
            });
        }
        let mut reads = Vec::with_capacity(n);
        for _ in 0..n {
            reads.push(SignedRead::from_bytes(r.bytes16(512, "read")?)?);
        }
        Ok(Self {
            device,
            peer,
            scheme,
            reads,
            node_sig: Signature::decode_from(r)?,
        })
    }
}

/// The authority's registry: every PeerId and device key it has certified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    peers: BTreeSet<PeerId>,
    devices: BTreeSet<Digest>,
    next_serial: u64,
}

impl Registry {
    /// How many certificates were issued.
    pub fn issued(&self) -> u64 {
        self.next_serial
    }
}

impl Encode for Registry {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(REGISTRY_VERSION)
            .u64(self.next_serial)
            .u32(self.peers.len() as u32);
        for p in &self.peers {
            p.encode_to(w);
        }
        w.u32(self.devices.len() as u32);
        for d in &self.devices {
            w.fixed(d.as_bytes());
        }
    }
}

impl Decode for Registry {
    const WHAT: &'static str = "authority registry";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(REGISTRY_VERSION, Self::WHAT)?;
        let next_serial = r.u64("next serial")?;
        let mut reg = Self {
            next_serial,
            ..Self::default()
        };
        // Each entry is at least 2 bytes (peer) or 32 bytes (device): bound counts by input.
        let n = r.u32("peer count")? as usize;
        if n > r.remaining() / 2 {
            return Err(DecodeError::Truncated { field: "peers" });
        }
        let unordered = |field| DecodeError::Invalid {
            field,
            reason: "not in strictly ascending order",
        };
        for _ in 0..n {
            let p = PeerId::decode_from(r)?;
            if reg.peers.last().is_some_and(|last| *last >= p) {
                return Err(unordered("peers"));
            }
            reg.peers.insert(p);
        }
        let n = r.u32("device count")? as usize;
        if n > r.remaining() / 32 {
            return Err(DecodeError::Truncated { field: "devices" });
        }
        for _ in 0..n {
            let d = Digest(r.array("device")?);
            if reg.devices.last().is_some_and(|last| *last >= d) {
                return Err(unordered("devices"));
            }
            reg.devices.insert(d);
        }
        Ok(reg)
    }
}

/// A marketplace authority (the paper's Privacy CA).
#[derive(Debug)]
pub struct Authority {
    key: Keypair,
}

impl Authority {
    /// An authority with signing key `key`.
    pub fn new(key: Keypair) -> Self {
        Self { key }
    }

    /// The authority's public key, which buyers and sellers configure as trusted.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// Vets `req` against the `nonce` this authority issued and, if it passes and neither the
    /// PeerId nor the device was certified before, issues a certificate and records it.
    pub fn certify(
        &self,
        registry: &mut Registry,
        req: &EnrolRequest,
        nonce: [u8; 32],
        now: u64,
    ) -> Result<SignedCertificate, CertError> {
        let node_key = req.peer.ed25519_key().ok_or(CertError::BadNodeSignature)?;
        node_key
            .verify(
                tags::ENROL,
                &EnrolRequest::body(&req.device, &req.peer, req.scheme, &req.reads),
                &req.node_sig,
            )
            .map_err(|_| CertError::BadNodeSignature)?;
        check_counters(req.scheme, req.reads.iter().map(|r| r.read.counter))?;
        if let DeviceKey::Tpm(k) = &req.device {
            k.vet().map_err(CertError::BadDevice)?;
        }
        let device_id = req.device.id();
        for r in &req.reads {
            let bad = |reason| CertError::BadRead {
                counter: r.read.counter,
                reason,
            };
            req.device
                .verify_read(r)
                .map_err(|_| bad("signature does not verify"))?;
            if r.read.nonce != nonce {
                return Err(bad("not against the authority's nonce"));
            }
            if r.read.device != device_id {
                return Err(bad("names another device"));
            }
            if r.read.peer != req.peer {
                return Err(bad("names another node"));
            }
        }
        if registry.peers.contains(&req.peer) {
            return Err(CertError::AlreadyEnrolled("this PeerId has a certificate"));
        }
        if registry.devices.contains(&device_id) {
            return Err(CertError::AlreadyEnrolled("this device has a certificate"));
        }
        let cert = Certificate {
            authority: self.public(),
            serial: registry.next_serial,
            device: req.device.clone(),
            peer: req.peer.clone(),
            scheme: req.scheme,
            counters: req
                .reads
                .iter()
                .map(|r| CertifiedCounter {
                    id: r.read.counter,
                    initial: r.read.value,
                })
                .collect(),
            issued_at: now,
        };
        let sig = self.key.sign(tags::CERT, &cert.to_bytes());
        registry.peers.insert(req.peer.clone());
        registry.devices.insert(device_id);
        registry.next_serial += 1;
        Ok(SignedCertificate { cert, sig })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::Ed25519StatementSigner;
    use rand_core::OsRng;

    fn request(nonce: [u8; 32], scheme: Scheme, counters: &[u32]) -> (Keypair, EnrolRequest) {
        let node = Keypair::generate(&mut OsRng);
        let signer = Ed25519StatementSigner::new(
            Keypair::generate(&mut OsRng),
            PeerId::from_ed25519(&node.public()),
        );
        let reads = counters
            .iter()
            .map(|&c| signer.sign_read(c, 1, nonce))
            .collect();
        let req = EnrolRequest::new(&node, signer.device_key(), scheme, reads);
        (node, req)
    }

    #[test]
    fn enrol_certify_verify() {
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        let mut reg = Registry::default();
        let (_, req) = request([5; 32], Scheme::Counters, &[0, 1, 2]);
        let req = EnrolRequest::from_bytes(&req.to_bytes()).unwrap();
        let cert = auth.certify(&mut reg, &req, [5; 32], 10).unwrap();
        let cert = SignedCertificate::from_bytes(&cert.to_bytes()).unwrap();
        cert.verify_for(&[auth.public()], &req.peer).unwrap();
        assert_eq!(cert.cert.counters.len(), 3);
        assert!(cert.cert.counters.iter().all(|c| c.initial == 1));
        // Registry persists and refuses a second certificate for the same PeerId or device.
        let reg2 = Registry::from_bytes(&reg.to_bytes()).unwrap();
        assert_eq!(reg2, reg);
        assert!(matches!(
            auth.certify(&mut reg, &req, [5; 32], 11),
            Err(CertError::AlreadyEnrolled(_))
        ));
    }

    #[test]
    fn wrong_nonce_authority_or_peer_is_refused() {
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        let (_, req) = request([5; 32], Scheme::Basic, &[0]);
        assert!(matches!(
            auth.certify(&mut Registry::default(), &req, [6; 32], 10),
            Err(CertError::BadRead { .. })
        ));
        let cert = auth
            .certify(&mut Registry::default(), &req, [5; 32], 10)
            .unwrap();
        let other = Keypair::generate(&mut OsRng).public();
        assert!(matches!(
            cert.verify(&[other]),
            Err(CertError::UntrustedAuthority(_))
        ));
        let stranger = PeerId::from_ed25519(&other);
        assert!(matches!(
            cert.verify_for(&[auth.public()], &stranger),
            Err(CertError::WrongPeer { .. })
        ));
        let mut forged = cert.clone();
        forged.cert.counters[0].initial = 0;
        assert_eq!(
            forged.verify(&[auth.public()]),
            Err(CertError::BadSignature)
        );
    }

    #[test]
    fn registry_decoding_is_canonical() {
        // Found by `cargo fuzz run decoders`: unordered or repeated entries re-encoded
        // differently. They are refused now.
        let a = PeerId::from_bytes(&[1]).unwrap();
        let b = PeerId::from_bytes(&[2]).unwrap();
        let encode = |peers: &[&PeerId]| {
            let mut w = Writer::new();
            w.u8(REGISTRY_VERSION).u64(2).u32(peers.len() as u32);
            for p in peers {
                p.encode_to(&mut w);
            }
            w.u32(0);
            w.into_bytes()
        };
        assert!(Registry::from_bytes(&encode(&[&a, &b])).is_ok());
        assert!(Registry::from_bytes(&encode(&[&b, &a])).is_err());
        assert!(Registry::from_bytes(&encode(&[&a, &a])).is_err());
    }

    #[test]
    fn scheme_b_needs_exactly_one_counter() {
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        let (_, req) = request([5; 32], Scheme::Basic, &[0, 1]);
        assert!(matches!(
            auth.certify(&mut Registry::default(), &req, [5; 32], 10),
            Err(CertError::BadCounters(_))
        ));
    }

    #[test]
    fn tampered_request_is_refused() {
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        let (_, mut req) = request([5; 32], Scheme::Counters, &[0, 1]);
        req.scheme = Scheme::Basic;
        assert!(auth
            .certify(&mut Registry::default(), &req, [5; 32], 10)
            .is_err());
    }
}

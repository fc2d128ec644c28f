//! Device certificates, enrolment and the marketplace authority (DESIGN.md §4).
//!
//! The authority certifies a device key, the PeerId it is bound to, the scheme the node runs
//! with its counters, and each counter's initial value read against the authority's nonce. It
//! keeps a registry and never certifies a second device for one PeerId or a PeerId for a second
//! device.

use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::endorsement::{
    Credential, EndorsementError, EndorsementRoots, MAX_CERT, MAX_CHAIN, SECRET_LEN,
};
use crate::hash::{tags, Digest, TaggedHasher};
use crate::item::ItemKey;
use crate::keys::{Keypair, PeerId, PublicKey, Signature};
use crate::statement::{CounterId, DeviceKey, SignedRead};
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;

const CERT_VERSION: u8 = 2;
const ENROL_VERSION: u8 = 2;
const REGISTRY_VERSION: u8 = 2;

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

/// Where the authority found the device key to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Residence {
    /// A software device: nothing protects its key or its counters (development and
    /// simulation only).
    Software,
    /// A TPM: its EK certificate chains to the TPM manufacturer root `root` (SHA-256 of the
    /// root certificate), and the TPM holding that EK opened a credential for the device key.
    Tpm {
        /// The root's fingerprint.
        root: Digest,
        /// The root certifies no real hardware (swtpm's local CA): development only.
        development: bool,
    },
}

impl Residence {
    /// Whether the certificate vouches for nothing a machine's owner could not fake.
    pub fn is_development_only(&self) -> bool {
        match self {
            Self::Software => true,
            Self::Tpm { development, .. } => *development,
        }
    }
}

impl fmt::Display for Residence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Software => f.write_str("software device (protects nothing; development only)"),
            Self::Tpm {
                root,
                development: true,
            } => write!(
                f,
                "TPM, EK chained to development root {} (no real hardware: development only)",
                &root.to_string()[..12]
            ),
            Self::Tpm { root, .. } => {
                write!(
                    f,
                    "TPM, EK chained to manufacturer root {}",
                    &root.to_string()[..12]
                )
            }
        }
    }
}

impl Encode for Residence {
    fn encode_to(&self, w: &mut Writer) {
        match self {
            Self::Software => {
                w.u8(0);
            }
            Self::Tpm { root, development } => {
                w.u8(1).fixed(root.as_bytes()).u8(u8::from(*development));
            }
        }
    }
}

impl Decode for Residence {
    const WHAT: &'static str = "residence";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("residence")? {
            0 => Ok(Self::Software),
            1 => {
                let root = Digest(r.array("root")?);
                let development = match r.u8("development")? {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(DecodeError::Invalid {
                            field: "development",
                            reason: "not 0 or 1",
                        })
                    }
                };
                Ok(Self::Tpm { root, development })
            }
            _ => Err(DecodeError::Invalid {
                field: "residence",
                reason: "unknown kind",
            }),
        }
    }
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
    /// Where the device key lives, as the authority checked it.
    pub residence: Residence,
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
        self.residence.encode_to(w);
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
        let residence = Residence::decode_from(r)?;
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
            residence,
            peer,
            scheme,
            counters,
            issued_at: r.u64("issued at")?,
        };
        if matches!(cert.device, DeviceKey::Tpm(_))
            != matches!(cert.residence, Residence::Tpm { .. })
        {
            return Err(DecodeError::Invalid {
                field: "residence",
                reason: "not the device key's kind",
            });
        }
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
    /// The device's endorsement (the EK certificate chain) is missing or not accepted.
    #[error("the TPM's endorsement is not accepted: {0}")]
    Endorsement(#[from] EndorsementError),
    /// The device did not open the authority's credential: its key does not live in the TPM
    /// whose EK was certified.
    #[error("the device did not prove its key lives in the certified TPM (ActivateCredential answer wrong or missing)")]
    NotResident,
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

/// What ties a TPM to its manufacturer: the EK certificate (DER, read from NV index
/// [`crate::endorsement::EK_CERT_NV_INDEX`]) and any intermediate CA certificates the node has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endorsement {
    /// The EK certificate.
    pub ek_cert: Vec<u8>,
    /// Intermediate CA certificates, at most [`MAX_CHAIN`].
    pub chain: Vec<Vec<u8>>,
}

impl Encode for Endorsement {
    fn encode_to(&self, w: &mut Writer) {
        w.bytes16(&self.ek_cert).u8(self.chain.len() as u8);
        for c in &self.chain {
            w.bytes16(c);
        }
    }
}

impl Decode for Endorsement {
    const WHAT: &'static str = "endorsement";
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ek_cert = r.bytes16(MAX_CERT, "EK certificate")?.to_vec();
        let n = r.u8("chain length")? as usize;
        if n > MAX_CHAIN {
            return Err(DecodeError::TooLong {
                field: "chain",
                len: n,
                max: MAX_CHAIN,
            });
        }
        let chain = (0..n)
            .map(|_| r.bytes16(MAX_CERT, "CA certificate").map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        Ok(Self { ek_cert, chain })
    }
}

/// A node's request to have its device certified: one `Read` per counter against the
/// authority's nonce, and for a TPM its endorsement, signed with the node key its PeerId
/// embeds.
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
    /// The TPM's endorsement (none for a software device).
    pub endorsement: Option<Endorsement>,
    /// The node key's signature on `candor/v1/enrol ‖ the fields above`.
    pub node_sig: Signature,
}

impl EnrolRequest {
    fn body(
        device: &DeviceKey,
        peer: &PeerId,
        scheme: Scheme,
        reads: &[SignedRead],
        endorsement: Option<&Endorsement>,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(ENROL_VERSION);
        device.encode_to(&mut w);
        peer.encode_to(&mut w);
        w.u8(scheme.code()).u16(reads.len() as u16);
        for r in reads {
            w.bytes16(&r.to_bytes());
        }
        match endorsement {
            None => {
                w.u8(0);
            }
            Some(e) => {
                w.u8(1);
                e.encode_to(&mut w);
            }
        }
        w.into_bytes()
    }

    /// Builds and signs a request with the node key.
    pub fn new(
        node: &Keypair,
        device: DeviceKey,
        scheme: Scheme,
        reads: Vec<SignedRead>,
        endorsement: Option<Endorsement>,
    ) -> Self {
        let peer = PeerId::from_ed25519(&node.public());
        let node_sig = node.sign(
            tags::ENROL,
            &Self::body(&device, &peer, scheme, &reads, endorsement.as_ref()),
        );
        Self {
            device,
            peer,
            scheme,
            reads,
            endorsement,
            node_sig,
        }
    }

    fn signed_body(&self) -> Vec<u8> {
        Self::body(
            &self.device,
            &self.peer,
            self.scheme,
            &self.reads,
            self.endorsement.as_ref(),
        )
    }
}

impl Encode for EnrolRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.signed_body());
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
        let endorsement = match r.u8("endorsement?")? {
            0 => None,
            1 => Some(Endorsement::decode_from(r)?),
            _ => {
                return Err(DecodeError::Invalid {
                    field: "endorsement?",
                    reason: "not 0 or 1",
                })
            }
        };
        Ok(Self {
            device,
            peer,
            scheme,
            reads,
            endorsement,
            node_sig: Signature::decode_from(r)?,
        })
    }
}

/// The authority's registry: every PeerId and device key it has certified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    peers: BTreeSet<PeerId>,
    devices: BTreeSet<Digest>,
    /// H(EK public key ‖ NV index) of every certified TPM counter: one TPM counter is never
    /// certified twice, whatever signing key the TPM presents.
    tpm_counters: BTreeSet<Digest>,
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
        for set in [&self.devices, &self.tpm_counters] {
            w.u32(set.len() as u32);
            for d in set {
                w.fixed(d.as_bytes());
            }
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
        for (field, set) in [
            ("devices", &mut reg.devices),
            ("tpm counters", &mut reg.tpm_counters),
        ] {
            let n = r.u32(field)? as usize;
            if n > r.remaining() / 32 {
                return Err(DecodeError::Truncated { field });
            }
            for _ in 0..n {
                let d = Digest(r.array(field)?);
                if set.last().is_some_and(|last| *last >= d) {
                    return Err(unordered(field));
                }
                set.insert(d);
            }
        }
        Ok(reg)
    }
}

/// A marketplace authority (the paper's Privacy CA).
#[derive(Debug)]
pub struct Authority {
    key: Keypair,
    roots: EndorsementRoots,
}

/// An enrolment the authority has vetted, waiting for the device's answer to its credential
/// (TPM devices) before a certificate is issued.
#[derive(Debug)]
pub struct PendingEnrolment {
    req: EnrolRequest,
    residence: Residence,
    tpm_counters: Vec<Digest>,
    challenge: Option<(Credential, [u8; SECRET_LEN])>,
}

impl PendingEnrolment {
    /// The credential the device must open (TPM2_ActivateCredential); none for a software
    /// device.
    pub fn credential(&self) -> Option<&Credential> {
        self.challenge.as_ref().map(|(c, _)| c)
    }

    /// Where the device key lives, if the device answers.
    pub fn residence(&self) -> Residence {
        self.residence
    }
}

impl Authority {
    /// An authority with signing key `key`, trusting no TPM manufacturer root yet (it
    /// certifies software devices only).
    pub fn new(key: Keypair) -> Self {
        Self {
            key,
            roots: EndorsementRoots::new(),
        }
    }

    /// Trusts `roots` for TPM EK certificate chains.
    pub fn with_endorsement_roots(mut self, roots: EndorsementRoots) -> Self {
        self.roots = roots;
        self
    }

    /// The TPM manufacturer roots it trusts.
    pub fn endorsement_roots(&self) -> &EndorsementRoots {
        &self.roots
    }

    /// The authority's public key, which buyers and sellers configure as trusted.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// Vets `req` against the `nonce` this authority issued and, for a software device, issues
    /// the certificate at once ([`Self::begin`] then [`Self::finish`]). A TPM device must
    /// answer a credential: use those two.
    pub fn certify(
        &self,
        registry: &mut Registry,
        req: &EnrolRequest,
        nonce: [u8; 32],
        now: u64,
    ) -> Result<SignedCertificate, CertError> {
        let pending = self.begin(registry, req.clone(), nonce, now, &mut rand_core::OsRng)?;
        self.finish(registry, pending, None, now)
    }

    /// The first half of an enrolment: the node's signature, the counters for the scheme, the
    /// device's public areas (TPM), every `Read` against `nonce`, that neither the PeerId nor
    /// the device (nor, for a TPM, any of its counters) was certified before; for a TPM, that
    /// its EK certificate chains to a trusted root at `now`, and a credential for the key.
    pub fn begin(
        &self,
        registry: &Registry,
        req: EnrolRequest,
        nonce: [u8; 32],
        now: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<PendingEnrolment, CertError> {
        let node_key = req.peer.ed25519_key().ok_or(CertError::BadNodeSignature)?;
        node_key
            .verify(tags::ENROL, &req.signed_body(), &req.node_sig)
            .map_err(|_| CertError::BadNodeSignature)?;
        check_counters(req.scheme, req.reads.iter().map(|r| r.read.counter))?;
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
        let (residence, tpm_counters, challenge) = match &req.device {
            DeviceKey::Software(_) => (Residence::Software, Vec::new(), None),
            DeviceKey::Tpm(k) => {
                k.vet().map_err(CertError::BadDevice)?;
                let e = req
                    .endorsement
                    .as_ref()
                    .ok_or(EndorsementError::Untrusted("no EK certificate was sent"))?;
                let ek = self.roots.verify_ek(&e.ek_cert, &e.chain, now)?;
                let modulus = ek.modulus();
                let tpm_counters: Vec<Digest> = k
                    .nv_public
                    .iter()
                    .map(|(_, public)| {
                        let index = public.get(..4).unwrap_or_default();
                        TaggedHasher::new(tags::TPM_COUNTER)
                            .var(&modulus)
                            .var(index)
                            .finish()
                    })
                    .collect();
                if tpm_counters
                    .iter()
                    .any(|c| registry.tpm_counters.contains(c))
                {
                    return Err(CertError::AlreadyEnrolled(
                        "a counter of this TPM has a certificate",
                    ));
                }
                let mut secret = [0u8; SECRET_LEN];
                rng.fill_bytes(&mut secret);
                let name = crate::tpm::name_of(&k.key_public);
                let credential = ek.make_credential(rng, &name, &secret)?;
                (
                    Residence::Tpm {
                        root: ek.root,
                        development: ek.development,
                    },
                    tpm_counters,
                    Some((credential, secret)),
                )
            }
        };
        Ok(PendingEnrolment {
            req,
            residence,
            tpm_counters,
            challenge,
        })
    }

    /// The second half: checks the device's answer to the credential (the secret it
    /// recovered; none for a software device), then issues the certificate and records it.
    pub fn finish(
        &self,
        registry: &mut Registry,
        pending: PendingEnrolment,
        answer: Option<&[u8]>,
        now: u64,
    ) -> Result<SignedCertificate, CertError> {
        if let Some((_, secret)) = &pending.challenge {
            let ok = answer.is_some_and(|a| {
                a.len() == SECRET_LEN
                    && a.iter().zip(secret).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            });
            if !ok {
                return Err(CertError::NotResident);
            }
        }
        let req = pending.req;
        let device_id = req.device.id();
        // The registry may have changed since `begin`.
        if registry.peers.contains(&req.peer) {
            return Err(CertError::AlreadyEnrolled("this PeerId has a certificate"));
        }
        if registry.devices.contains(&device_id)
            || pending
                .tpm_counters
                .iter()
                .any(|c| registry.tpm_counters.contains(c))
        {
            return Err(CertError::AlreadyEnrolled("this device has a certificate"));
        }
        let cert = Certificate {
            authority: self.public(),
            serial: registry.next_serial,
            device: req.device.clone(),
            residence: pending.residence,
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
        registry.tpm_counters.extend(pending.tpm_counters);
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
        let req = EnrolRequest::new(&node, signer.device_key(), scheme, reads, None);
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
            w.u32(0).u32(0);
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

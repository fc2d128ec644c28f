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

/// 3: the time rules (DESIGN.md §9).
const CERT_VERSION: u8 = 3;
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

    /// The protocol this scheme runs. This is the one place where a scheme is mapped to the
    /// messages and checks it uses: provers and verifiers both match on the [`Protocol`] of
    /// the node's certificate, so a new scheme cannot be half-wired.
    pub fn protocol(self) -> Protocol {
        match self {
            Self::Basic | Self::Counters => Protocol::Entries,
            Self::Merkle => Protocol::Steps,
        }
    }
}

/// The two protocols the schemes run (the scheme itself is in the certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Schemes B and C: every entry is its own `Inc`; a retrieve pages every value of the
    /// item's counter; a receipt is the entry's `Inc`.
    Entries,
    /// Scheme M: each `Inc` is a step of a Merkle map over per-item lists; a retrieve is the
    /// item's list under the step at t, plus audits; a receipt is the whole step.
    Steps,
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

/// The time rules a certificate fixes (DESIGN.md §9): how long an offer may be listed and how
/// far apart honest clocks may be. Every check of node time reads them from the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRules {
    /// L_max: the longest an offer may be listed, in seconds.
    pub lifetime: u32,
    /// The most two honest clocks may differ by, in seconds.
    pub skew: u32,
}

impl TimeRules {
    /// 30 days and 300 s.
    pub const DEFAULT: Self = Self {
        lifetime: 30 * 86_400,
        skew: 300,
    };
    /// The longest L_max a certificate may fix (a year and a month).
    pub const MAX_LIFETIME: u32 = 400 * 86_400;
    /// The widest skew a certificate may fix (an hour).
    pub const MAX_SKEW: u32 = 3_600;

    /// Whether the rules leave room for an offer: skew in 1..=[`Self::MAX_SKEW`], L_max
    /// above 4·skew and at most [`Self::MAX_LIFETIME`].
    pub fn check(&self) -> Result<(), CertError> {
        if self.skew == 0 || self.skew > Self::MAX_SKEW {
            return Err(CertError::BadTimeRules("skew outside 1 s ..= 1 h"));
        }
        if u64::from(self.lifetime) <= 4 * u64::from(self.skew)
            || self.lifetime > Self::MAX_LIFETIME
        {
            return Err(CertError::BadTimeRules(
                "the lifetime must exceed 4 × skew and be at most 400 days",
            ));
        }
        Ok(())
    }

    /// The latest expiry an offer published at node time `at` may carry: `at` + L_max −
    /// 2·skew. A node refuses later ones; an `Inc` over one is a node fault.
    pub fn latest_expiry(&self, at: u64) -> u64 {
        at.saturating_add(u64::from(self.lifetime))
            .saturating_sub(2 * u64::from(self.skew))
    }

    /// The lifetime clients give an offer unless told otherwise: L_max − 4·skew, a margin for
    /// nodes whose clocks lag the seller's.
    pub fn default_lifetime(&self) -> u64 {
        u64::from(self.lifetime).saturating_sub(4 * u64::from(self.skew))
    }

    /// The longest lifetime a client may ask for: L_max − 2·skew.
    pub fn max_lifetime(&self) -> u64 {
        self.latest_expiry(0)
    }

    /// The sliding window's edge for a checker at clock `now` (DESIGN.md §9, schemes B and
    /// C): a boundary `Inc(w)` must bind `at(w)` below now − L_max − skew.
    pub fn window_edge(&self, now: u64) -> u64 {
        now.saturating_sub(u64::from(self.lifetime))
            .saturating_sub(u64::from(self.skew))
    }

    /// The edge an honest node uses at node time `at`, for the boundary it serves and the
    /// entries it deletes: `at` − L_max − 2·skew, one skew inside every checker's edge whose
    /// clock is within skew of the node's.
    pub fn node_edge(&self, at: u64) -> u64 {
        self.window_edge(at).saturating_sub(u64::from(self.skew))
    }

    /// Whether node time `at` is beyond `now` + skew: a clock disagreement, never used.
    pub fn ahead(&self, at: u64, now: u64) -> bool {
        at > now.saturating_add(u64::from(self.skew))
    }
}

impl Default for TimeRules {
    fn default() -> Self {
        Self::DEFAULT
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
    /// The time rules every check of this node's `at` and its offers' expiry uses.
    pub time: TimeRules,
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
        w.u32(self.time.lifetime)
            .u32(self.time.skew)
            .u64(self.issued_at);
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
            time: TimeRules {
                lifetime: r.u32("lifetime")?,
                skew: r.u32("skew")?,
            },
            issued_at: r.u64("issued at")?,
        };
        cert.time.check().map_err(|_| DecodeError::Invalid {
            field: "time rules",
            reason: "outside the bounds a certificate may fix",
        })?;
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

/// The most bytes a signed certificate takes inside a message (it is far smaller: ~200 bytes
/// with one counter, a few KiB with [`MAX_COUNTERS`] of them).
pub const MAX_CERT_BYTES: usize = 64 * 1024;

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
    /// The time rules leave no room for an offer or are out of bounds.
    #[error("bad time rules: {0}")]
    BadTimeRules(&'static str),
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
        self.names(peer)
    }

    /// [`Self::verify_for`] for a certificate whose signature was already verified in a batch
    /// (by [`Self::queue_signature`]): the authority is trusted and the certificate is for
    /// `peer`.
    pub(crate) fn verify_for_batched(
        &self,
        trusted: &[PublicKey],
        peer: &PeerId,
    ) -> Result<(), CertError> {
        if !trusted.contains(&self.cert.authority) {
            return Err(CertError::UntrustedAuthority(self.cert.authority));
        }
        self.names(peer)
    }

    /// Queues the authority's signature in `batch`.
    pub(crate) fn queue_signature(&self, batch: &mut crate::keys::BatchVerifier) {
        batch.push(
            self.cert.authority,
            tags::CERT,
            &self.cert.to_bytes(),
            self.sig,
        );
    }

    fn names(&self, peer: &PeerId) -> Result<(), CertError> {
        if &self.cert.peer != peer {
            return Err(CertError::WrongPeer {
                certified: self.cert.peer.to_string(),
                expected: peer.to_string(),
            });
        }
        Ok(())
    }
}

mod enrol;
#[cfg(test)]
mod tests;

pub use enrol::{Authority, Endorsement, EnrolRequest, PendingEnrolment, Registry};

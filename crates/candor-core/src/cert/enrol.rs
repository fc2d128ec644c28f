//! Enrolment: a node's request, the authority's registry, and how the authority certifies
//! a device (DESIGN.md §4).

use super::*;

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
    time: TimeRules,
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
            time: TimeRules::DEFAULT,
        }
    }

    /// Certifies `time` (L_max and skew) in the certificates it issues from now on.
    pub fn with_time_rules(mut self, time: TimeRules) -> Result<Self, CertError> {
        time.check()?;
        self.time = time;
        Ok(self)
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
            time: self.time,
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

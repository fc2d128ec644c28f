//! The authority's residence check of a TPM signing key (`../shared/notes/tpm2.md`,
//! "Enrolment"): the TPM's endorsement key (EK) certificate chains to a TPM manufacturer's root
//! the authority trusts, and a credential made for that EK and the signing key's Name
//! (TPM2_MakeCredential, done here in software) can be opened only by a TPM that holds both
//! (TPM2_ActivateCredential). Only then is the signing key known to live in a genuine TPM.
//!
//! The EK is the TCG's standard RSA-2048 EK (EK Credential Profile, template L-1: SHA-256 Names,
//! AES-128-CFB inner wrapping), whose certificate every TPM 2.0 carries at NV index 0x01c00002.
//! Certificates are X.509 (DER), signed with RSA PKCS#1 v1.5 (SHA-256/384/512), ECDSA P-256
//! (SHA-256) or ECDSA P-384 (SHA-384), as TPM manufacturers' CAs sign them. A root the authority trusts is marked development-only when it certifies no real
//! hardware (swtpm's local CA): the certificates it leads to say so.

use crate::hash::Digest;
use crate::tpm::hmac_sha256;
use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use der::{Decode, DecodePem, Encode};
use rand_core::CryptoRngCore;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use thiserror::Error;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

/// The NV index of the RSA-2048 EK certificate (TCG EK Credential Profile).
pub const EK_CERT_NV_INDEX: u32 = 0x01c0_0002;
/// The largest certificate accepted (DER bytes).
pub const MAX_CERT: usize = 4096;
/// The most certificates in a chain a node may send beside its EK certificate.
pub const MAX_CHAIN: usize = 4;
/// The longest chain followed from an EK certificate to a root.
const MAX_DEPTH: usize = 6;
/// The size of a credential secret.
pub const SECRET_LEN: usize = 32;

const OID_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_SHA256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_EC_PUBLIC_KEY: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ECDSA_SHA256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_P384: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_BASIC_CONSTRAINTS: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19");

/// Why an endorsement is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EndorsementError {
    /// A certificate does not parse as DER X.509, or is too large.
    #[error("certificate {which} is not a DER X.509 certificate: {reason}")]
    BadCertificate {
        /// Which one (0 = the EK certificate).
        which: usize,
        /// Why.
        reason: String,
    },
    /// No chain leads from the EK certificate to a trusted root.
    #[error(
        "the EK certificate does not chain to a TPM manufacturer root the authority trusts ({0})"
    )]
    Untrusted(&'static str),
    /// A signature in the chain does not verify.
    #[error("a signature in the EK certificate chain does not verify")]
    BadSignature,
    /// An algorithm the verifier does not support.
    #[error("unsupported algorithm in the EK certificate chain: {0}")]
    Unsupported(String),
    /// A certificate is outside its validity period.
    #[error("a certificate in the EK chain is not valid at this time")]
    Expired,
    /// The EK certificate's key is not an RSA-2048 key.
    #[error("the EK certificate's key is not an RSA key of at least 2048 bits")]
    BadEkKey,
    /// Making the credential failed.
    #[error("cannot make the credential: {0}")]
    Credential(&'static str),
}

/// The TPM manufacturer roots an authority trusts for EK certificate chains.
#[derive(Debug, Clone, Default)]
pub struct EndorsementRoots {
    roots: Vec<Root>,
    /// CA certificates between the roots and EK certificates, which the authority holds
    /// (TPM manufacturers publish theirs) so that nodes need not send them.
    intermediates: Vec<Certificate>,
}

#[derive(Debug, Clone)]
struct Root {
    cert: Certificate,
    fingerprint: Digest,
    development: bool,
}

/// An EK whose certificate chains to a trusted root.
#[derive(Debug, Clone)]
pub struct VerifiedEk {
    key: rsa::RsaPublicKey,
    /// SHA-256 of the root certificate the chain ends at.
    pub root: Digest,
    /// Whether that root is marked development-only (no real hardware behind it).
    pub development: bool,
}

/// A credential for an EK and a key Name: what TPM2_MakeCredential returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// TPM2B_ID_OBJECT's contents: the integrity HMAC (a TPM2B) and the encrypted secret.
    pub blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET's contents: the seed, RSA-OAEP encrypted to the EK.
    pub encrypted_seed: Vec<u8>,
}

fn parse(which: usize, der_bytes: &[u8]) -> Result<Certificate, EndorsementError> {
    if der_bytes.len() > MAX_CERT {
        return Err(EndorsementError::BadCertificate {
            which,
            reason: format!("{} bytes, over {MAX_CERT}", der_bytes.len()),
        });
    }
    let bad = |reason: String| EndorsementError::BadCertificate { which, reason };
    let cert = Certificate::from_der(der_bytes).map_err(|e| bad(e.to_string()))?;
    // The signed part exactly as sent: the first element of the outer SEQUENCE.
    let signed = {
        use der::Reader as _;
        let mut r = der::SliceReader::new(der_bytes).map_err(|e| bad(e.to_string()))?;
        der::Header::decode(&mut r).map_err(|e| bad(e.to_string()))?;
        r.tlv_bytes().map_err(|e| bad(e.to_string()))?
    };
    if cert.tbs_certificate.to_der().ok().as_deref() != Some(signed) {
        return Err(bad("not in canonical DER".into()));
    }
    Ok(cert)
}

/// The certificates in PEM text (`-----BEGIN CERTIFICATE-----` blocks), as DER. Text
/// outside the blocks is ignored. (The blocks are found here: `x509-cert` 0.2.5's
/// `load_pem_chain` panics on empty input, found by this module's property tests.)
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, EndorsementError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = find(rest, BEGIN) {
        let which = out.len();
        let bad = |reason: String| EndorsementError::BadCertificate { which, reason };
        let block = &rest[start..];
        let end = find(block, END).ok_or_else(|| bad("no END line".into()))? + END.len();
        let cert = Certificate::from_pem(&block[..end]).map_err(|e| bad(e.to_string()))?;
        let der_bytes = cert.to_der().map_err(|e| bad(e.to_string()))?;
        if der_bytes.len() > MAX_CERT {
            return Err(bad(format!("{} bytes, over {MAX_CERT}", der_bytes.len())));
        }
        out.push(der_bytes);
        rest = &block[end..];
    }
    Ok(out)
}

fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == OID_BASIC_CONSTRAINTS)
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|b| b.ca)
}

fn valid_at(cert: &Certificate, now: u64) -> bool {
    let v = &cert.tbs_certificate.validity;
    let from = v.not_before.to_unix_duration().as_secs();
    let to = v.not_after.to_unix_duration().as_secs();
    from <= now && now <= to
}

/// Verifies that `issuer` signed `cert`.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), EndorsementError> {
    // The outer algorithm is not signed: it must be the one inside the signed part
    // (RFC 5280 §4.1.1.2).
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(EndorsementError::BadSignature);
    }
    // Strict DER: the parsed signed part re-encodes to exactly the bytes that were signed
    // (checked in `parse`), so the signature covers what is read from it.
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|_| EndorsementError::BadSignature)?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or(EndorsementError::BadSignature)?;
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or(EndorsementError::BadSignature)?;
    let alg = cert.signature_algorithm.oid;
    if spki.algorithm.oid == OID_RSA {
        let key = rsa::RsaPublicKey::from_pkcs1_der(key_bytes)
            .map_err(|_| EndorsementError::BadSignature)?;
        let (scheme, hashed) = if alg == OID_RSA_SHA256 {
            (
                rsa::Pkcs1v15Sign::new::<Sha256>(),
                Sha256::digest(&tbs).to_vec(),
            )
        } else if alg == OID_RSA_SHA384 {
            (
                rsa::Pkcs1v15Sign::new::<Sha384>(),
                Sha384::digest(&tbs).to_vec(),
            )
        } else if alg == OID_RSA_SHA512 {
            (
                rsa::Pkcs1v15Sign::new::<Sha512>(),
                Sha512::digest(&tbs).to_vec(),
            )
        } else {
            return Err(EndorsementError::Unsupported(format!(
                "signature {alg} with an RSA key"
            )));
        };
        key.verify(scheme, &hashed, sig)
            .map_err(|_| EndorsementError::BadSignature)
    } else if spki.algorithm.oid == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
        use p256::ecdsa::signature::Verifier as _;
        let bad = |_| EndorsementError::BadSignature;
        if curve == Some(OID_P256) && alg == OID_ECDSA_SHA256 {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes).map_err(bad)?;
            let sig = p256::ecdsa::Signature::from_der(sig).map_err(bad)?;
            key.verify(&tbs, &sig).map_err(bad)
        } else if curve == Some(OID_P384) && alg == OID_ECDSA_SHA384 {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes).map_err(bad)?;
            let sig = p384::ecdsa::Signature::from_der(sig).map_err(bad)?;
            key.verify(&tbs, &sig).map_err(bad)
        } else {
            Err(EndorsementError::Unsupported(format!(
                "signature {alg} with an EC key other than P-256/SHA-256 or P-384/SHA-384"
            )))
        }
    } else {
        Err(EndorsementError::Unsupported(format!(
            "issuer key {}",
            spki.algorithm.oid
        )))
    }
}

impl EndorsementRoots {
    /// No roots: every TPM enrolment is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the self-signed root certificate `der_bytes`; `development` marks a root that
    /// certifies no real hardware (swtpm's local CA).
    pub fn add(&mut self, der_bytes: &[u8], development: bool) -> Result<(), EndorsementError> {
        let cert = parse(0, der_bytes)?;
        if cert.tbs_certificate.subject != cert.tbs_certificate.issuer {
            return Err(EndorsementError::Untrusted("a root must be self-signed"));
        }
        signed_by(&cert, &cert)?;
        let fingerprint = Digest(Sha256::digest(der_bytes).into());
        if !self.roots.iter().any(|r| r.fingerprint == fingerprint) {
            self.roots.push(Root {
                cert,
                fingerprint,
                development,
            });
        }
        Ok(())
    }

    /// Holds the CA certificate `der_bytes` for building chains (it is trusted only if it
    /// chains to a root).
    pub fn add_intermediate(&mut self, der_bytes: &[u8]) -> Result<(), EndorsementError> {
        let cert = parse(0, der_bytes)?;
        if !is_ca(&cert) {
            return Err(EndorsementError::Untrusted("the certificate is not a CA's"));
        }
        if !self.intermediates.contains(&cert) {
            self.intermediates.push(cert);
        }
        Ok(())
    }

    /// Adds every certificate in PEM text: self-signed ones as roots (marked `development` or
    /// not), the others as intermediates. Returns how many were added.
    pub fn add_pem(&mut self, pem: &[u8], development: bool) -> Result<usize, EndorsementError> {
        let certs = pem_certificates(pem)?;
        for der_bytes in &certs {
            let cert = parse(0, der_bytes)?;
            if cert.tbs_certificate.subject == cert.tbs_certificate.issuer {
                self.add(der_bytes, development)?;
            } else {
                self.add_intermediate(der_bytes)?;
            }
        }
        Ok(certs.len())
    }

    /// How many roots are trusted.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether no root is trusted.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Each root's fingerprint (SHA-256 of its DER) and whether it is development-only.
    pub fn fingerprints(&self) -> impl Iterator<Item = (Digest, bool)> + '_ {
        self.roots.iter().map(|r| (r.fingerprint, r.development))
    }

    /// Verifies the EK certificate `ek_cert` (DER) at Unix time `now`: it chains, through
    /// the intermediate certificates in `chain` (DER, any order), to a trusted root; every
    /// certificate is in its validity period and every issuer is a CA; the EK is RSA-2048+.
    pub fn verify_ek(
        &self,
        ek_cert: &[u8],
        chain: &[Vec<u8>],
        now: u64,
    ) -> Result<VerifiedEk, EndorsementError> {
        if chain.len() > MAX_CHAIN {
            return Err(EndorsementError::Untrusted(
                "too many intermediate certificates",
            ));
        }
        let ek = parse(0, ek_cert)?;
        let intermediates = chain
            .iter()
            .enumerate()
            .map(|(i, c)| parse(i + 1, c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut current = ek.clone();
        for _ in 0..MAX_DEPTH {
            if !valid_at(&current, now) {
                return Err(EndorsementError::Expired);
            }
            let issuer = &current.tbs_certificate.issuer;
            // Every certificate named as the issuer is tried (a manufacturer may have several
            // generations under one name); the first whose signature verifies is taken.
            let mut roots = self
                .roots
                .iter()
                .filter(|r| &r.cert.tbs_certificate.subject == issuer)
                .peekable();
            if roots.peek().is_some() {
                let mut last = EndorsementError::BadSignature;
                for root in roots {
                    match (valid_at(&root.cert, now), signed_by(&current, &root.cert)) {
                        (true, Ok(())) => {
                            return Ok(VerifiedEk {
                                key: ek_key(&ek)?,
                                root: root.fingerprint,
                                development: root.development,
                            })
                        }
                        (false, Ok(())) => last = EndorsementError::Expired,
                        (_, Err(e)) => last = e,
                    }
                }
                return Err(last);
            }
            let mut found = None;
            let mut last =
                EndorsementError::Untrusted("no trusted root or CA certificate issued it");
            for c in intermediates
                .iter()
                .chain(&self.intermediates)
                .filter(|c| &c.tbs_certificate.subject == issuer && is_ca(c))
            {
                match signed_by(&current, c) {
                    Ok(()) => {
                        found = Some(c.clone());
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            current = found.ok_or(last)?;
        }
        Err(EndorsementError::Untrusted("the chain is too long"))
    }
}

fn ek_key(ek: &Certificate) -> Result<rsa::RsaPublicKey, EndorsementError> {
    let spki = &ek.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != OID_RSA {
        return Err(EndorsementError::BadEkKey);
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .and_then(|b| rsa::RsaPublicKey::from_pkcs1_der(b).ok())
        .ok_or(EndorsementError::BadEkKey)?;
    if key.size() < 256 {
        return Err(EndorsementError::BadEkKey);
    }
    Ok(key)
}

/// KDFa with SHA-256 (TPM 2.0 Part 1, §11.4.10.2; NIST SP 800-108 counter mode with HMAC):
/// `bits` bits from `key`, `label` (NUL-terminated here), `context_u` and `context_v`.
pub fn kdfa_sha256(
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter: u32 = 1;
    while out.len() < bytes {
        out.extend_from_slice(&hmac_sha256(
            key,
            &[
                &counter.to_be_bytes(),
                label.as_bytes(),
                &[0],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        ));
        counter += 1;
    }
    out.truncate(bytes);
    out
}

impl VerifiedEk {
    /// The EK's RSA modulus (big-endian), to match against the TPM's EK public area.
    pub fn modulus(&self) -> Vec<u8> {
        self.key.n().to_bytes_be()
    }

    /// TPM2_MakeCredential in software: a credential that only the TPM holding this EK can
    /// open, and only for a loaded object whose Name is `name`; it yields `secret`.
    pub fn make_credential(
        &self,
        rng: &mut impl CryptoRngCore,
        name: &[u8],
        secret: &[u8; SECRET_LEN],
    ) -> Result<Credential, EndorsementError> {
        // The seed, shared with the EK by RSA-OAEP (SHA-256, label "IDENTITY\0").
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let encrypted_seed = self
            .key
            .encrypt(
                rng,
                rsa::Oaep::new_with_label::<Sha256, _>("IDENTITY\0"),
                &seed,
            )
            .map_err(|_| EndorsementError::Credential("RSA-OAEP encryption failed"))?;
        // The secret, as a TPM2B_DIGEST, encrypted with AES-128-CFB (zero IV) under a key
        // bound to the object's Name, then an HMAC over it and the Name.
        let sym = kdfa_sha256(&seed, "STORAGE", name, &[], 128);
        let mut enc = Vec::with_capacity(2 + SECRET_LEN);
        enc.extend_from_slice(&(SECRET_LEN as u16).to_be_bytes());
        enc.extend_from_slice(secret);
        cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym, &[0u8; 16])
            .map_err(|_| EndorsementError::Credential("bad AES key"))?
            .encrypt(&mut enc);
        let hmac_key = kdfa_sha256(&seed, "INTEGRITY", &[], &[], 256);
        let integrity = hmac_sha256(&hmac_key, &[&enc, name]);
        let mut blob = Vec::with_capacity(2 + 32 + enc.len());
        blob.extend_from_slice(&32u16.to_be_bytes());
        blob.extend_from_slice(&integrity);
        blob.extend_from_slice(&enc);
        Ok(Credential {
            blob,
            encrypted_seed,
        })
    }
}

//! The pure-Rust verifier of a TPM's `Read` (TPM2_NV_Certify): it parses the TPMS_ATTEST
//! bytes exactly as sent and pins what `../shared/notes/tpm2.md` lists — magic, type,
//! qualified signer, extra data (the nonce), the counter's NV name, offset 0 and size 8 — and
//! checks the ECDSA P-256 / SHA-256 signature over those bytes, accepting high s.

use crate::wire::In;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use thiserror::Error;

const TPM_GENERATED: u32 = 0xff54_4347;
const ST_ATTEST_NV: u16 = 0x8014;

/// Why a TPM statement does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The bytes do not parse as the expected structure.
    #[error("malformed attestation: {0}")]
    Malformed(&'static str),
    /// A pinned field differs.
    #[error("the attestation's {0} is not the expected one")]
    Mismatch(&'static str),
    /// The signature does not verify under the certified key.
    #[error("the TPM signature does not verify")]
    BadSignature,
}

/// What a verified `Read` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertifiedRead {
    /// The counter's value.
    pub value: u64,
    /// The TPM's clock, reset and restart counts (informational).
    pub clock: u64,
}

/// The public key of a TPM signing key.
pub fn verifying_key(x: &[u8], y: &[u8]) -> Result<VerifyingKey, AttestError> {
    let mut sec1 = vec![4u8];
    if x.len() != 32 || y.len() != 32 {
        return Err(AttestError::Malformed("the key's point is not 32+32 bytes"));
    }
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| AttestError::Malformed("the key's point is not on P-256"))
}

/// Verifies an NV_Certify `Read` of a counter.
pub fn verify_nv_read(
    key: &VerifyingKey,
    qualified_signer: &[u8],
    nv_name: &[u8],
    nonce: &[u8],
    attest: &[u8],
    r: &[u8],
    s: &[u8],
) -> Result<CertifiedRead, AttestError> {
    let pad = |v: &[u8]| -> Result<[u8; 32], AttestError> {
        if v.len() > 32 {
            return Err(AttestError::Malformed("signature scalar too long"));
        }
        let mut out = [0u8; 32];
        out[32 - v.len()..].copy_from_slice(v);
        Ok(out)
    };
    let sig = Signature::from_scalars(pad(r)?, pad(s)?).map_err(|_| AttestError::BadSignature)?;
    key.verify(attest, &sig)
        .map_err(|_| AttestError::BadSignature)?;
    let m = |_| AttestError::Malformed("truncated");
    let mut a = In::new(attest);
    if a.u32().map_err(m)? != TPM_GENERATED {
        return Err(AttestError::Mismatch("magic"));
    }
    if a.u16().map_err(m)? != ST_ATTEST_NV {
        return Err(AttestError::Mismatch("type (not an NV certification)"));
    }
    if a.b().map_err(m)? != qualified_signer {
        return Err(AttestError::Mismatch("qualified signer"));
    }
    if a.b().map_err(m)? != nonce {
        return Err(AttestError::Mismatch("extra data (nonce)"));
    }
    let clock = a.u64().map_err(m)?;
    let (_reset, _restart, _safe) = (a.u32().map_err(m)?, a.u32().map_err(m)?, a.u8().map_err(m)?);
    let _firmware = a.u64().map_err(m)?;
    if a.b().map_err(m)? != nv_name {
        return Err(AttestError::Mismatch("NV name"));
    }
    if a.u16().map_err(m)? != 0 {
        return Err(AttestError::Mismatch("offset"));
    }
    let contents = a.b().map_err(m)?;
    if !a.rest().is_empty() {
        return Err(AttestError::Malformed("trailing bytes"));
    }
    let value: [u8; 8] = contents
        .try_into()
        .map_err(|_| AttestError::Mismatch("size (not 8 bytes)"))?;
    Ok(CertifiedRead {
        value: u64::from_be_bytes(value),
        clock,
    })
}

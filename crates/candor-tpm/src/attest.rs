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

const ST_ATTEST_SESSION_AUDIT: u16 = 0x8016;

/// Verifies a TPM `Inc`: the session-audit attestation's digest, recomputed from zero over
/// exactly NV_Read (pre), StirRandom(payload), NV_Increment, NV_Read (post) on the certified
/// counter, with post = pre + 1; signed by the certified key. The exclusive flag is ignored.
#[allow(clippy::too_many_arguments)]
pub fn verify_nv_inc(
    key: &VerifyingKey,
    qualified_signer: &[u8],
    nv_name: &[u8],
    payload: &[u8; 32],
    pre: u64,
    post: u64,
    attest: &[u8],
    r: &[u8],
    s: &[u8],
) -> Result<u64, AttestError> {
    use crate::session::*;
    if pre.checked_add(1) != Some(post) {
        return Err(AttestError::Mismatch("counter step (post is not pre + 1)"));
    }
    check_signature(key, attest, r, s)?;
    let m = |_| AttestError::Malformed("truncated");
    let mut a = In::new(attest);
    if a.u32().map_err(m)? != TPM_GENERATED {
        return Err(AttestError::Mismatch("magic"));
    }
    if a.u16().map_err(m)? != ST_ATTEST_SESSION_AUDIT {
        return Err(AttestError::Mismatch("type (not a session audit)"));
    }
    if a.b().map_err(m)? != qualified_signer {
        return Err(AttestError::Mismatch("qualified signer"));
    }
    if !a.b().map_err(m)?.is_empty() {
        return Err(AttestError::Mismatch("extra data"));
    }
    let (_clock, _reset, _restart, _safe) = (
        a.u64().map_err(m)?,
        a.u32().map_err(m)?,
        a.u32().map_err(m)?,
        a.u8().map_err(m)?,
    );
    let _firmware = a.u64().map_err(m)?;
    let _exclusive = a.u8().map_err(m)?;
    let digest = a.b().map_err(m)?;
    if !a.rest().is_empty() {
        return Err(AttestError::Malformed("trailing bytes"));
    }
    let names: [&[u8]; 2] = [nv_name, nv_name];
    let read_cp = cp_hash(CC_NV_READ, &names, &nv_read_params());
    let expected = audit_digest(&[
        (read_cp, rp_hash(CC_NV_READ, &nv_read_response(pre))),
        (
            cp_hash(CC_STIR_RANDOM, &[], &stir_params(payload)),
            rp_hash(CC_STIR_RANDOM, &[]),
        ),
        (
            cp_hash(CC_NV_INCREMENT, &names, &[]),
            rp_hash(CC_NV_INCREMENT, &[]),
        ),
        (read_cp, rp_hash(CC_NV_READ, &nv_read_response(post))),
    ]);
    if digest != expected {
        return Err(AttestError::Mismatch(
            "session audit digest (not exactly read, stir, increment, read)",
        ));
    }
    Ok(post)
}

fn check_signature(
    key: &VerifyingKey,
    attest: &[u8],
    r: &[u8],
    s: &[u8],
) -> Result<(), AttestError> {
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
        .map_err(|_| AttestError::BadSignature)
}

//! Verifying a TPM 2.0 device's statements in pure Rust (`../shared/notes/tpm2.md`, "What the
//! verifier pins"). The TPMS_ATTEST bytes are parsed exactly as the TPM sent them.
//!
//! - `Read` = TPM2_NV_Certify of the counter with the nonce as qualifying data: magic, type
//!   (NV), qualified signer, extra data = nonce, the counter's NV name, offset 0, 8 bytes.
//! - `Inc` = GetSessionAuditDigest of an audited HMAC session over exactly NV_Read (pre),
//!   StirRandom(payload), NV_Increment, NV_Read (post): the digest is recomputed from zero and
//!   post = pre + 1 is required. The exclusive flag is ignored.
//!
//! Signatures are ECDSA P-256 / SHA-256 over the attest bytes; high s is accepted (TPMs emit
//! it).

use crate::encoding::Reader;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

const TPM_GENERATED: u32 = 0xff54_4347;
const ST_ATTEST_NV: u16 = 0x8014;
const ST_ATTEST_SESSION_AUDIT: u16 = 0x8016;
/// The endorsement hierarchy.
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;
const ALG_SHA256: u16 = 0x000B;
const ALG_ECC: u16 = 0x0023;
const ALG_ECDSA: u16 = 0x0018;
const ALG_NULL: u16 = 0x0010;
const ECC_NIST_P256: u16 = 0x0003;
/// fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign — and not
/// decrypt (TPMA_OBJECT).
pub const SIGNING_KEY_ATTRIBUTES: u32 = 0x2 | 0x10 | 0x20 | 0x40 | 0x1_0000 | 0x4_0000;
/// AUTHWRITE, TPM_NT_COUNTER, AUTHREAD, NO_DA (TPMA_NV), as defined; WRITTEN is added by the
/// first increment.
pub const COUNTER_ATTRIBUTES: u32 = (1 << 2) | (1 << 4) | (1 << 18) | (1 << 25);
const NV_WRITTEN: u32 = 1 << 29;
const NV_ORDERLY: u32 = 1 << 26;

/// A Name: nameAlg (SHA-256) ‖ SHA-256(public area).
pub fn name_of(public_area: &[u8]) -> Vec<u8> {
    let mut out = ALG_SHA256.to_be_bytes().to_vec();
    out.extend_from_slice(&Sha256::digest(public_area));
    out
}

/// The qualified name of a primary object of `hierarchy` with Name `name`.
pub fn qualified_name(hierarchy: u32, name: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(hierarchy.to_be_bytes());
    h.update(name);
    let mut out = ALG_SHA256.to_be_bytes().to_vec();
    out.extend_from_slice(&h.finalize());
    out
}

struct KeyArea {
    ty: u16,
    name_alg: u16,
    attributes: u32,
    policy_empty: bool,
    symmetric: u16,
    scheme: u16,
    hash: u16,
    curve: u16,
    kdf: u16,
    x: Vec<u8>,
    y: Vec<u8>,
}

fn parse_key(public: &[u8]) -> Result<KeyArea, &'static str> {
    let m = |_| "the key's public area is truncated";
    let mut r = Reader::new(public);
    let ty = r.u16("type").map_err(m)?;
    let name_alg = r.u16("name alg").map_err(m)?;
    let attributes = r.u32("attributes").map_err(m)?;
    let policy_empty = r.bytes16(64, "policy").map_err(m)?.is_empty();
    let symmetric = r.u16("symmetric").map_err(m)?;
    if symmetric != ALG_NULL {
        return Err("the key has a symmetric algorithm (a storage key, not a signing key)");
    }
    let scheme = r.u16("scheme").map_err(m)?;
    let hash = r.u16("scheme hash").map_err(m)?;
    let curve = r.u16("curve").map_err(m)?;
    let kdf = r.u16("kdf").map_err(m)?;
    let x = r.bytes16(66, "x").map_err(m)?.to_vec();
    let y = r.bytes16(66, "y").map_err(m)?.to_vec();
    r.finish("key")
        .map_err(|_| "trailing bytes after the key's public area")?;
    Ok(KeyArea {
        ty,
        name_alg,
        attributes,
        policy_empty,
        symmetric,
        scheme,
        hash,
        curve,
        kdf,
        x,
        y,
    })
}

/// The point of a signing key's public area.
pub fn signing_key_point(public: &[u8]) -> Result<([u8; 32], [u8; 32]), &'static str> {
    let k = parse_key(public)?;
    let x: [u8; 32] = k.x.as_slice().try_into().map_err(|_| "x is not 32 bytes")?;
    let y: [u8; 32] = k.y.as_slice().try_into().map_err(|_| "y is not 32 bytes")?;
    Ok((x, y))
}

/// The authority's check of a signing key's public area (notes/tpm2.md, "Enrolment").
pub fn vet_signing_key(public: &[u8]) -> Result<(), &'static str> {
    let k = parse_key(public)?;
    if k.ty != ALG_ECC || k.curve != ECC_NIST_P256 {
        return Err("the key is not ECC P-256");
    }
    if k.name_alg != ALG_SHA256 {
        return Err("the key's name algorithm is not SHA-256");
    }
    if k.attributes != SIGNING_KEY_ATTRIBUTES {
        return Err("the key is not exactly a restricted, fixed, TPM-generated signing key (an unrestricted or imported key could sign any attestation)");
    }
    if !k.policy_empty {
        return Err("the key has an authorization policy");
    }
    if k.symmetric != ALG_NULL || k.scheme != ALG_ECDSA || k.hash != ALG_SHA256 || k.kdf != ALG_NULL
    {
        return Err("the key's scheme is not ECDSA with SHA-256");
    }
    signing_key_point(public).map(|_| ())
}

/// The authority's check of a counter's NV public area: a written, non-orderly, 8-byte NV
/// counter with SHA-256 names.
pub fn vet_counter(public: &[u8]) -> Result<(), &'static str> {
    let m = |_| "the counter's NV public area is truncated";
    let mut r = Reader::new(public);
    let index = r.u32("index").map_err(m)?;
    let name_alg = r.u16("name alg").map_err(m)?;
    let attributes = r.u32("attributes").map_err(m)?;
    let _policy = r.bytes16(64, "policy").map_err(m)?;
    let size = r.u16("size").map_err(m)?;
    r.finish("nv public")
        .map_err(|_| "trailing bytes after the NV public area")?;
    if index >> 24 != 0x01 {
        return Err("not an NV index");
    }
    if name_alg != ALG_SHA256 {
        return Err("the counter's name algorithm is not SHA-256");
    }
    if (attributes >> 4) & 0xf != 1 {
        return Err("the NV index is not a counter");
    }
    if attributes & NV_WRITTEN == 0 {
        return Err("the counter was never incremented (its name changes at the first write)");
    }
    if attributes & NV_ORDERLY != 0 {
        return Err("the counter is orderly (it can jump after an unclean restart)");
    }
    if size != 8 {
        return Err("the counter is not 8 bytes");
    }
    Ok(())
}

/// HMAC-SHA-256 (RFC 2104) over the concatenation of `parts`: TPM session HMACs and KDFa.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// TPM2_NV_Read.
pub const CC_NV_READ: u32 = 0x14E;
/// TPM2_StirRandom.
pub const CC_STIR_RANDOM: u32 = 0x146;
/// TPM2_NV_Increment.
pub const CC_NV_INCREMENT: u32 = 0x134;

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

/// The public key of a TPM signing key from its point.
pub fn verifying_key(x: &[u8], y: &[u8]) -> Result<VerifyingKey, AttestError> {
    if x.len() != 32 || y.len() != 32 {
        return Err(AttestError::Malformed("the key's point is not 32+32 bytes"));
    }
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| AttestError::Malformed("the key's point is not on P-256"))
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

/// The common head of a TPMS_ATTEST up to the attested union.
fn head<'a>(
    attest: &'a [u8],
    kind: u16,
    qualified_signer: &[u8],
    extra: &[u8],
) -> Result<Reader<'a>, AttestError> {
    let m = |_| AttestError::Malformed("truncated");
    let mut a = Reader::new(attest);
    if a.u32("magic").map_err(m)? != TPM_GENERATED {
        return Err(AttestError::Mismatch("magic"));
    }
    if a.u16("type").map_err(m)? != kind {
        return Err(AttestError::Mismatch("type"));
    }
    if a.bytes16(2048, "qualified signer").map_err(m)? != qualified_signer {
        return Err(AttestError::Mismatch("qualified signer"));
    }
    if a.bytes16(2048, "extra data").map_err(m)? != extra {
        return Err(AttestError::Mismatch("extra data (nonce)"));
    }
    // clockInfo (clock, resetCount, restartCount, safe) and firmwareVersion.
    a.u64("clock").map_err(m)?;
    a.u32("reset count").map_err(m)?;
    a.u32("restart count").map_err(m)?;
    a.u8("safe").map_err(m)?;
    a.u64("firmware").map_err(m)?;
    Ok(a)
}

/// Verifies a TPM `Read`; returns the counter's value.
pub fn verify_nv_read(
    key: &VerifyingKey,
    qualified_signer: &[u8],
    nv_name: &[u8],
    nonce: &[u8],
    attest: &[u8],
    r: &[u8],
    s: &[u8],
) -> Result<u64, AttestError> {
    check_signature(key, attest, r, s)?;
    let m = |_| AttestError::Malformed("truncated");
    let mut a = head(attest, ST_ATTEST_NV, qualified_signer, nonce)?;
    if a.bytes16(2048, "NV name").map_err(m)? != nv_name {
        return Err(AttestError::Mismatch("NV name"));
    }
    if a.u16("offset").map_err(m)? != 0 {
        return Err(AttestError::Mismatch("offset"));
    }
    let contents = a.bytes16(2048, "contents").map_err(m)?;
    a.finish("attest")
        .map_err(|_| AttestError::Malformed("trailing bytes"))?;
    let v: [u8; 8] = contents
        .try_into()
        .map_err(|_| AttestError::Mismatch("size (not 8 bytes)"))?;
    Ok(u64::from_be_bytes(v))
}

/// cpHash = H(commandCode ‖ names of the handles ‖ parameters).
pub fn cp_hash(cc: u32, names: &[&[u8]], params: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cc.to_be_bytes());
    for n in names {
        h.update(n);
    }
    h.update(params);
    h.finalize().into()
}

/// rpHash = H(responseCode (0) ‖ commandCode ‖ response parameters).
pub fn rp_hash(cc: u32, params: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(0u32.to_be_bytes());
    h.update(cc.to_be_bytes());
    h.update(params);
    h.finalize().into()
}

/// The digest an audit session reaches over `(cpHash, rpHash)` pairs, from zero.
pub fn audit_digest(pairs: &[([u8; 32], [u8; 32])]) -> [u8; 32] {
    pairs.iter().fold([0u8; 32], |d, (cp, rp)| {
        let mut h = Sha256::new();
        h.update(d);
        h.update(cp);
        h.update(rp);
        h.finalize().into()
    })
}

/// NV_Read's parameters for a counter: size 8, offset 0.
pub fn nv_read_params() -> Vec<u8> {
    [0u8, 8, 0, 0].to_vec()
}

/// NV_Read's response parameters for a counter value.
pub fn nv_read_response(value: u64) -> Vec<u8> {
    let mut v = vec![0u8, 8];
    v.extend_from_slice(&value.to_be_bytes());
    v
}

/// StirRandom's parameters: the payload as a TPM2B.
pub fn stir_params(payload: &[u8; 32]) -> Vec<u8> {
    let mut v = vec![0u8, 32];
    v.extend_from_slice(payload);
    v
}

/// Verifies a TPM `Inc` of the counter named `nv_name` from `post − 1` to `post`, binding
/// `payload`; returns `post`.
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
    if pre.checked_add(1) != Some(post) {
        return Err(AttestError::Mismatch("counter step (post is not pre + 1)"));
    }
    check_signature(key, attest, r, s)?;
    let m = |_| AttestError::Malformed("truncated");
    let mut a = head(attest, ST_ATTEST_SESSION_AUDIT, qualified_signer, &[])?;
    let _exclusive = a.u8("exclusive").map_err(m)?;
    let digest = a.bytes16(64, "session digest").map_err(m)?;
    a.finish("attest")
        .map_err(|_| AttestError::Malformed("trailing bytes"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_digest_folds_from_zero_in_order() {
        let one = audit_digest(&[([1; 32], [2; 32])]);
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update([1u8; 32]);
        h.update([2u8; 32]);
        assert_eq!(one, <[u8; 32]>::from(h.finalize()));
        assert_ne!(
            audit_digest(&[([1; 32], [2; 32]), ([3; 32], [4; 32])]),
            audit_digest(&[([3; 32], [4; 32]), ([1; 32], [2; 32])])
        );
    }

    #[test]
    fn post_must_be_pre_plus_one_and_garbage_is_typed() {
        let vk = verifying_key(&[0; 32], &[0; 32]);
        assert!(vk.is_err());
    }
}

//! The authority's EK chain check on certificates swtpm's local CA issued (a root, the CA that
//! issues EK certificates, and one RSA-2048 EK certificate, kept in `tests/data`): the honest
//! chain verifies, and every flipped byte, cut or foreign certificate is refused with a typed
//! error, never a panic. (The whole residence check against live swtpms is in
//! `crates/candor-tpm/tests/endorsement.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candor_core::endorsement::{
    kdfa_sha256, pem_certificates, EndorsementError, EndorsementRoots, SECRET_LEN,
};
use proptest::prelude::*;

const CA_PEM: &[u8] = include_bytes!("data/swtpm-ca.pem");
const EK_DER: &[u8] = include_bytes!("data/swtpm-ek.der");
/// Within every certificate's validity (they run to 9999).
const NOW: u64 = 1_900_000_000;

fn roots() -> EndorsementRoots {
    let mut r = EndorsementRoots::new();
    assert_eq!(r.add_pem(CA_PEM, true).unwrap(), 2);
    assert_eq!(r.len(), 1, "one self-signed root, one intermediate");
    r
}

#[test]
fn the_swtpm_chain_verifies_and_names_its_development_root() {
    let ek = roots().verify_ek(EK_DER, &[], NOW).unwrap();
    assert!(ek.development);
    assert_eq!(ek.modulus().len(), 256);
    // The intermediate may come from the node instead of the authority.
    let certs = pem_certificates(CA_PEM).unwrap();
    let mut only_root = EndorsementRoots::new();
    only_root.add(&certs[0], false).unwrap();
    assert!(matches!(
        only_root.verify_ek(EK_DER, &[], NOW),
        Err(EndorsementError::Untrusted(_))
    ));
    let ek = only_root
        .verify_ek(EK_DER, &[certs[1].clone()], NOW)
        .unwrap();
    assert!(!ek.development);
    // An intermediate is not a root; an EK certificate is not a CA.
    assert!(EndorsementRoots::new().add(&certs[1], false).is_err());
    assert!(EndorsementRoots::new().add_intermediate(EK_DER).is_err());
    // Too early (before issue); a chain too long to follow.
    assert_eq!(
        roots().verify_ek(EK_DER, &[], 1_000).unwrap_err(),
        EndorsementError::Expired
    );
    assert!(roots()
        .verify_ek(EK_DER, &vec![certs[1].clone(); 5], NOW)
        .is_err());
}

/// A chain signed with ECDSA P-384 / SHA-384 (as some TPM manufacturers' CAs sign): a test
/// root and an RSA-2048 EK-like certificate made with openssl, valid to 2126.
#[test]
fn an_ecdsa_p384_chain_verifies_and_a_flipped_bit_is_refused() {
    const ROOT: &[u8] = include_bytes!("data/p384-root.pem");
    const EK: &[u8] = include_bytes!("data/p384-ek.der");
    let mut roots = EndorsementRoots::new();
    assert_eq!(roots.add_pem(ROOT, false).unwrap(), 1);
    let ek = roots.verify_ek(EK, &[], NOW).unwrap();
    assert!(!ek.development);
    for i in 0..EK.len() {
        let mut bad = EK.to_vec();
        bad[i] ^= 1 << (i % 8);
        assert!(roots.verify_ek(&bad, &[], NOW).is_err(), "byte {i}");
    }
    // The swtpm EK does not chain to this root, nor this EK to swtpm's.
    assert!(roots.verify_ek(EK_DER, &[], NOW).is_err());
    assert!(self::roots().verify_ek(EK, &[], NOW).is_err());
}

/// Two trusted roots under one name (a decoy with the swtpm root's subject, trusted first):
/// the chain is still found through the one that signed it, and alone the decoy is refused.
#[test]
fn roots_that_share_a_name_are_each_tried() {
    const DECOY: &[u8] = include_bytes!("data/decoy-root.pem");
    let mut decoy_only = EndorsementRoots::new();
    decoy_only.add_pem(DECOY, false).unwrap();
    let certs = pem_certificates(CA_PEM).unwrap();
    decoy_only.add_intermediate(&certs[1]).unwrap();
    assert_eq!(
        decoy_only.verify_ek(EK_DER, &[], NOW).unwrap_err(),
        EndorsementError::BadSignature
    );
    let mut both = decoy_only.clone();
    both.add(&certs[0], true).unwrap();
    let ek = both.verify_ek(EK_DER, &[], NOW).unwrap();
    assert!(
        ek.development,
        "found through the swtpm root, not the decoy"
    );
}

#[test]
fn a_credential_has_the_tpm_layout() {
    let ek = roots().verify_ek(EK_DER, &[], NOW).unwrap();
    let name = [0x00, 0x0b]
        .iter()
        .chain(&[7u8; 32])
        .copied()
        .collect::<Vec<_>>();
    let c = ek
        .make_credential(&mut rand_core::OsRng, &name, &[1; SECRET_LEN])
        .unwrap();
    // TPM2B_DIGEST integrity HMAC, then the encrypted TPM2B_DIGEST secret.
    assert_eq!(c.blob.len(), 2 + 32 + 2 + SECRET_LEN);
    assert_eq!(&c.blob[..2], &[0, 32]);
    assert_eq!(c.encrypted_seed.len(), 256, "RSA-2048 OAEP");
    // Fresh seeds: two credentials for one secret differ.
    let d = ek
        .make_credential(&mut rand_core::OsRng, &name, &[1; SECRET_LEN])
        .unwrap();
    assert_ne!(c, d);
}

#[test]
fn kdfa_is_counter_mode_hmac_with_the_tpm_fixed_input() {
    // One block: HMAC(key, 1 ‖ label ‖ 0 ‖ u ‖ v ‖ bits); longer outputs chain the counter.
    let one = kdfa_sha256(b"k", "STORAGE", b"u", b"v", 128);
    let mut fixed = 1u32.to_be_bytes().to_vec();
    fixed.extend_from_slice(b"STORAGE\0uv");
    fixed.extend_from_slice(&128u32.to_be_bytes());
    assert_eq!(one, candor_core::tpm::hmac_sha256(b"k", &[&fixed])[..16]);
    let long = kdfa_sha256(b"k", "INTEGRITY", &[], &[], 512);
    assert_eq!(long.len(), 64);
    assert_ne!(long[..32], long[32..]);
}

/// Every byte of the EK certificate, one bit flipped each: none is accepted.
#[test]
fn no_single_flipped_bit_of_the_ek_certificate_is_accepted() {
    let roots = roots();
    for i in 0..EK_DER.len() {
        let mut bad = EK_DER.to_vec();
        bad[i] ^= 1 << (i % 8);
        assert!(roots.verify_ek(&bad, &[], NOW).is_err(), "byte {i}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A flipped byte anywhere in the EK certificate: refused (bad DER, bad signature, or
    /// another issuer), never accepted, never a panic.
    #[test]
    fn a_flipped_byte_in_the_ek_certificate_is_refused(i in 0usize..EK_DER.len(), bit in 0u8..8) {
        let mut bad = EK_DER.to_vec();
        bad[i] ^= 1 << bit;
        prop_assert!(roots().verify_ek(&bad, &[], NOW).is_err());
    }

    /// Garbage as the EK certificate or as a chain certificate: a typed error.
    #[test]
    fn garbage_certificates_are_typed_errors(a in proptest::collection::vec(any::<u8>(), 0..2048),
                                             cut in 0usize..EK_DER.len()) {
        prop_assert!(roots().verify_ek(&a, &[], NOW).is_err());
        prop_assert!(roots().verify_ek(&EK_DER[..cut], &[], NOW).is_err());
        let _ = roots().verify_ek(EK_DER, std::slice::from_ref(&a), NOW);
        let _ = EndorsementRoots::new().add_pem(&a, false);
        let _ = pem_certificates(&a);
    }
}

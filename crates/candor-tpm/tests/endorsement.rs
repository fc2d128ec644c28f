//! The authority's residence check against real swtpms made by `swtpm_setup` (an RSA-2048 EK
//! and its certificate from swtpm's local CA): the EK certificate chains to the CA root the
//! authority trusts, the TPM opens a credential made for its EK and its key's Name, and every
//! way a node could pass off a key that is not beside a certified EK is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candor_core::endorsement::{EndorsementError, EndorsementRoots, SECRET_LEN};
use candor_core::*;
use candor_device::TrustedDevice;
use candor_listing::{enrol, EnrolError};
use candor_tpm::{Swtpm, SwtpmCa, TcpTransport, TpmDevice, DEFAULT_NV_BASE};

const NOW: u64 = 1_800_000_000;

fn device(sw: &Swtpm, node: &Keypair, counters: u32) -> TpmDevice<TcpTransport> {
    TpmDevice::open(
        TcpTransport::connect(sw.server()).unwrap(),
        PeerId::from_ed25519(&node.public()),
        counters,
        DEFAULT_NV_BASE,
    )
    .unwrap()
}

fn roots(ca: &SwtpmCa) -> EndorsementRoots {
    let mut roots = EndorsementRoots::new();
    assert_eq!(
        roots
            .add_pem(&ca.certificates_pem().unwrap(), true)
            .unwrap(),
        2
    );
    roots
}

fn key() -> Keypair {
    Keypair::generate(&mut rand_core::OsRng)
}

#[test]
fn a_tpm_with_a_certified_ek_is_enrolled_as_resident() {
    let ca = SwtpmCa::shared().unwrap();
    let sw = Swtpm::start_endorsed(ca).unwrap();
    let authority = Authority::new(key()).with_endorsement_roots(roots(ca));
    let node = key();
    let mut dev = device(&sw, &node, 2);
    let mut registry = Registry::default();
    let cert = enrol(
        &authority,
        &mut registry,
        &node,
        &mut dev,
        Scheme::Counters,
        2,
        NOW,
    )
    .unwrap();
    let cert = SignedCertificate::from_bytes(&cert.to_bytes()).unwrap();
    cert.verify(&[authority.public()]).unwrap();
    let root = authority
        .endorsement_roots()
        .fingerprints()
        .next()
        .unwrap()
        .0;
    assert_eq!(
        cert.cert.residence,
        Residence::Tpm {
            root,
            development: true
        }
    );
    assert!(cert.cert.residence.is_development_only());
    assert!(cert.cert.residence.to_string().contains("development only"));
    // The registry now refuses the same TPM's counters under another node and another key
    // (a signing key from another template would make a new device id).
    let registry = Registry::from_bytes(&registry.to_bytes()).unwrap();
    let mut registry2 = registry.clone();
    let other = key();
    drop(dev); // swtpm serves one connection at a time
    let mut dev2 = device(&sw, &other, 2);
    let again = enrol(
        &authority,
        &mut registry2,
        &other,
        &mut dev2,
        Scheme::Counters,
        2,
        NOW,
    );
    assert!(
        matches!(
            again,
            Err(EnrolError::Refused(CertError::AlreadyEnrolled(_)))
        ),
        "{again:?}"
    );
}

#[test]
fn an_authority_without_the_root_or_past_the_validity_refuses() {
    let ca = SwtpmCa::shared().unwrap();
    let sw = Swtpm::start_endorsed(ca).unwrap();
    let node = key();
    // No roots at all; another CA's roots.
    let bare = Authority::new(key());
    let mut dev = device(&sw, &node, 1);
    let r = enrol(
        &bare,
        &mut Registry::default(),
        &node,
        &mut dev,
        Scheme::Basic,
        1,
        NOW,
    );
    assert!(
        matches!(
            r,
            Err(EnrolError::Refused(CertError::Endorsement(
                EndorsementError::Untrusted(_)
            )))
        ),
        "{r:?}"
    );
    let stranger_ca = SwtpmCa::create().unwrap();
    let _stranger = Swtpm::start_endorsed(&stranger_ca).unwrap(); // makes its keys
    let wrong = Authority::new(key()).with_endorsement_roots(roots(&stranger_ca));
    let r = enrol(
        &wrong,
        &mut Registry::default(),
        &node,
        &mut dev,
        Scheme::Basic,
        1,
        NOW,
    );
    assert!(
        matches!(r, Err(EnrolError::Refused(CertError::Endorsement(_)))),
        "{r:?}"
    );
    // Before the certificates were issued.
    let right = Authority::new(key()).with_endorsement_roots(roots(ca));
    let r = enrol(
        &right,
        &mut Registry::default(),
        &node,
        &mut dev,
        Scheme::Basic,
        1,
        1_000,
    );
    assert!(
        matches!(
            r,
            Err(EnrolError::Refused(CertError::Endorsement(
                EndorsementError::Expired
            )))
        ),
        "{r:?}"
    );
}

#[test]
fn a_software_device_never_passes_as_a_tpm_and_a_tpm_needs_its_ek() {
    let ca = SwtpmCa::shared().unwrap();
    let authority = Authority::new(key()).with_endorsement_roots(roots(ca));
    // A swtpm without an EK certificate: the device says what is missing.
    let bare = Swtpm::start().unwrap();
    let node = key();
    let mut dev = device(&bare, &node, 1);
    let err = dev.endorsement().unwrap_err().to_string();
    assert!(err.contains("swtpm_setup"), "{err}");
    // A TPM request without an endorsement is refused by the authority.
    let nonce = [3; 32];
    let reads = vec![dev.read_sign(0, nonce).unwrap()];
    let req = EnrolRequest::new(&node, dev.device_key(), Scheme::Basic, reads, None);
    let r = authority.begin(&Registry::default(), req, nonce, NOW, &mut rand_core::OsRng);
    assert!(
        matches!(
            r,
            Err(CertError::Endorsement(EndorsementError::Untrusted(_)))
        ),
        "{r:?}"
    );
    // `certify` (the one-step path) never certifies a TPM without its answer.
    let sw = Swtpm::start_endorsed(ca).unwrap();
    let mut dev = device(&sw, &node, 1);
    let reads = vec![dev.read_sign(0, nonce).unwrap()];
    let req = EnrolRequest::new(
        &node,
        dev.device_key(),
        Scheme::Basic,
        reads,
        dev.endorsement().unwrap(),
    );
    assert_eq!(
        authority.certify(&mut Registry::default(), &req, nonce, NOW),
        Err(CertError::NotResident)
    );
}

/// A node whose signing key is in TPM A sends TPM B's EK certificate (or answers at random):
/// A cannot open a credential made for B's EK, so the authority refuses; and B's TPM cannot
/// open a credential made for a key Name that is not loaded in it.
#[test]
fn a_key_beside_another_tpms_ek_is_not_resident() {
    let ca = SwtpmCa::shared().unwrap();
    let a = Swtpm::start_endorsed(ca).unwrap();
    let b = Swtpm::start_endorsed(ca).unwrap();
    let authority = Authority::new(key()).with_endorsement_roots(roots(ca));
    let node = key();
    let mut dev_a = device(&a, &node, 1);
    let mut dev_b = device(&b, &key(), 1);
    let nonce = [4; 32];
    let reads = vec![dev_a.read_sign(0, nonce).unwrap()];
    let b_ek = dev_b.endorsement().unwrap();
    let req = EnrolRequest::new(&node, dev_a.device_key(), Scheme::Basic, reads, b_ek);
    let pending = authority
        .begin(
            &Registry::default(),
            req.clone(),
            nonce,
            NOW,
            &mut rand_core::OsRng,
        )
        .unwrap();
    let credential = pending.credential().unwrap().clone();
    // TPM A has the key but not B's EK; TPM B has the EK but not the key.
    assert!(dev_a.activate_credential(&credential).is_err());
    assert!(dev_b.activate_credential(&credential).is_err());
    // Guessing the secret fails.
    let guess = [0u8; SECRET_LEN];
    assert_eq!(
        authority.finish(&mut Registry::default(), pending, Some(&guess), NOW),
        Err(CertError::NotResident)
    );
    // A credential tampered with in transit is refused by the TPM itself.
    let pending = authority
        .begin(&Registry::default(), req, nonce, NOW, &mut rand_core::OsRng)
        .unwrap();
    let mut bad = pending.credential().unwrap().clone();
    let last = bad.blob.len() - 1;
    bad.blob[last] ^= 1;
    assert!(dev_b.activate_credential(&bad).is_err());
    // The honest enrolment of each still works.
    let mut registry = Registry::default();
    enrol(
        &authority,
        &mut registry,
        &node,
        &mut dev_a,
        Scheme::Basic,
        1,
        NOW,
    )
    .unwrap();
    let node_b = key();
    drop(dev_b); // swtpm serves one connection at a time
    let mut dev_b = device(&b, &node_b, 1);
    enrol(
        &authority,
        &mut registry,
        &node_b,
        &mut dev_b,
        Scheme::Basic,
        1,
        NOW,
    )
    .unwrap();
    assert_eq!(registry.issued(), 2);
}

/// The TPM opens an honest credential for the key it holds, and gives back the very secret.
#[test]
fn make_credential_in_software_is_opened_by_the_tpm() {
    let ca = SwtpmCa::shared().unwrap();
    let sw = Swtpm::start_endorsed(ca).unwrap();
    let mut dev = device(&sw, &key(), 1);
    let e = dev.endorsement().unwrap().unwrap();
    let ek = roots(ca).verify_ek(&e.ek_cert, &e.chain, NOW).unwrap();
    let DeviceKey::Tpm(k) = dev.device_key() else {
        panic!("a TPM key")
    };
    let name = candor_core::tpm::name_of(&k.key_public);
    for secret in [[0x11u8; SECRET_LEN], [0xfe; SECRET_LEN]] {
        let c = ek
            .make_credential(&mut rand_core::OsRng, &name, &secret)
            .unwrap();
        assert_eq!(dev.activate_credential(&c).unwrap(), secret);
    }
    // Made for another Name (a key the TPM does not hold loaded): refused.
    let mut other = name.clone();
    other[5] ^= 1;
    let c = ek
        .make_credential(&mut rand_core::OsRng, &other, &[1; SECRET_LEN])
        .unwrap();
    assert!(dev.activate_credential(&c).is_err());
}

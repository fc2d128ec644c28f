//! Certificate and enrolment tests.

use super::*;
use crate::keys::Keypair;
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

//! Every decoder on arbitrary bytes: no panic, and an accepted value re-encodes identically.
#![no_main]

use candor_core::*;
use libfuzzer_sys::fuzz_target;

fn canonical<T: Decode + Encode>(data: &[u8]) {
    if let Ok(v) = T::from_bytes(data) {
        assert_eq!(v.to_bytes(), data, "{} has a second encoding", T::WHAT);
    }
}

fuzz_target!(|data: &[u8]| {
    canonical::<SignedOffer>(data);
    canonical::<SignedInc>(data);
    canonical::<SignedRead>(data);
    canonical::<SignedCertificate>(data);
    canonical::<EnrolRequest>(data);
    canonical::<Registry>(data);
    canonical::<Receipt>(data);
    canonical::<RetrieveRequest>(data);
    canonical::<RetrieveHead>(data);
    canonical::<PageRequest>(data);
    canonical::<Page>(data);
    canonical::<Evidence>(data);
    canonical::<StepProof>(data);
    canonical::<SignedStep>(data);
    canonical::<StepReceipt>(data);
    canonical::<HeadStep>(data);
    // A head as it decodes for a request that named no certificate.
    let req = RetrieveRequest {
        item: ItemKey(Digest([7; 32])),
        nonce: [4; 32],
        cert: None,
    };
    if let Ok((head, _)) = StepHead::decode(data, &req, None) {
        assert_eq!(head.encode_for(None), data, "the M head has a second encoding");
    }
    canonical::<ListPage>(data);
    canonical::<ListRequest>(data);
    canonical::<PastProof>(data);
    canonical::<Endorsement>(data);
    canonical::<Residence>(data);
    canonical::<StepHeader>(data);
    // The authority's X.509 parsing of what a node sends.
    let _ = endorsement::EndorsementRoots::new().verify_ek(data, &[], 0);
    let _ = endorsement::pem_certificates(data);
});

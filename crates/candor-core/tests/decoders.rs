//! Decoders on arbitrary bytes: they never panic, and whatever they accept re-encodes to the
//! very same bytes (one canonical encoding per value).
#![allow(clippy::unwrap_used)]

use candor_core::*;
use proptest::prelude::*;

/// The node time the steps here bind.
const NOW: u64 = 1_700_000_000;

fn canonical<T: Decode + Encode>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = T::from_bytes(bytes) {
        prop_assert_eq!(
            v.to_bytes(),
            bytes.to_vec(),
            "{} has a second encoding",
            T::WHAT
        );
    }
    Ok(())
}

/// The request the seed heads answer: the seed item, the nonce their `Read` signed.
fn head_request() -> RetrieveRequest {
    RetrieveRequest {
        item: Item::new("seed item").unwrap().key(),
        nonce: [4; 32],
        cert: None,
    }
}

/// A head decodes in the context of its request and the certificate it named (here: none, or
/// the fixture's scheme-M certificate) and re-encodes to the same bytes for that request.
fn canonical_head(bytes: &[u8], named: &SignedCertificate) -> Result<(), TestCaseError> {
    for named in [None, Some(named)] {
        if let Ok((head, was_named)) = StepHead::decode(bytes, &head_request(), named) {
            let id = named.filter(|_| was_named).map(SignedCertificate::id);
            prop_assert_eq!(
                head.encode_for(id.as_ref()),
                bytes.to_vec(),
                "the M head has a second encoding"
            );
        }
    }
    Ok(())
}

fn all(bytes: &[u8], named: &SignedCertificate) -> Result<(), TestCaseError> {
    canonical_head(bytes, named)?;
    canonical::<SignedOffer>(bytes)?;
    canonical::<Offer>(bytes)?;
    canonical::<SignedInc>(bytes)?;
    canonical::<SignedRead>(bytes)?;
    canonical::<SignedCertificate>(bytes)?;
    canonical::<EnrolRequest>(bytes)?;
    canonical::<Registry>(bytes)?;
    canonical::<Endorsement>(bytes)?;
    canonical::<Residence>(bytes)?;
    canonical::<Receipt>(bytes)?;
    canonical::<RetrieveRequest>(bytes)?;
    canonical::<RetrieveHead>(bytes)?;
    canonical::<PageRequest>(bytes)?;
    canonical::<Page>(bytes)?;
    canonical::<PageItem>(bytes)?;
    canonical::<Evidence>(bytes)?;
    canonical::<DeviceKey>(bytes)?;
    canonical::<StepHeader>(bytes)?;
    canonical::<SignedStep>(bytes)?;
    canonical::<StepProof>(bytes)?;
    canonical::<StepReceipt>(bytes)?;
    canonical::<HeadStep>(bytes)?;
    canonical::<ListPage>(bytes)?;
    canonical::<ListRequest>(bytes)?;
    canonical::<PastProof>(bytes)?;
    Ok(())
}

/// Valid encodings of every message, to mutate, and the scheme-M certificate the heads
/// among them carry (or leave out, when a request named it).
fn seeds() -> (Vec<Vec<u8>>, SignedCertificate) {
    let mut rng = rand_core::OsRng;
    let node = Keypair::generate(&mut rng);
    let peer = PeerId::from_ed25519(&node.public());
    let signer = Ed25519StatementSigner::new(Keypair::generate(&mut rng), peer.clone());
    let authority = Authority::new(Keypair::generate(&mut rng));
    let req = EnrolRequest::new(
        &node,
        signer.device_key(),
        Scheme::Counters,
        vec![
            signer.sign_read(0, 3, [1; 32]),
            signer.sign_read(1, 4, [1; 32]),
        ],
        None,
    );
    let mut reg = Registry::default();
    let cert = authority.certify(&mut reg, &req, [1; 32], 9).unwrap();
    let item = Item::new("seed item").unwrap();
    let offer = SignedOffer::sign(&node, &item, 5, Currency::EUR, 1, 99, 1);
    let inc = signer.sign_inc(0, 4, entry_payload(&peer, 0, 7, &offer.to_bytes()));
    let entry = PageItem::Entry {
        inc: inc.clone(),
        at: 7,
        bytes: offer.to_bytes(),
    };
    let gap = PageItem::Gap {
        inc: signer.sign_inc(0, 6, gap_payload(&peer, 0, 8, 5, 5)),
        at: 8,
        first: 5,
        last: 5,
    };
    let page = Page {
        items: vec![entry.clone(), gap.clone()],
    };
    let out = vec![
        offer.to_bytes(),
        inc.to_bytes(),
        signer.sign_read(0, 4, [2; 32]).to_bytes(),
        cert.to_bytes(),
        req.to_bytes(),
        reg.to_bytes(),
        Receipt {
            cert_id: cert.id(),
            at: 7,
            inc: inc.clone(),
        }
        .to_bytes(),
        RetrieveRequest {
            item: item.key(),
            nonce: [3; 32],
            cert: None,
        }
        .to_bytes(),
        RetrieveHead {
            cert: cert.clone(),
            read: signer.sign_read(0, 4, [2; 32]),
            boundary: None,
        }
        .to_bytes(),
        RetrieveHead {
            cert: cert.clone(),
            read: signer.sign_read(0, 6, [2; 32]),
            boundary: Some(gap.clone()),
        }
        .to_bytes(),
        PageRequest {
            counter: 0,
            after: 3,
            upto: 9,
            max_items: 10,
        }
        .to_bytes(),
        page.to_bytes(),
        Evidence::BadEntry {
            cert: cert.clone(),
            inc: inc.clone(),
            at: 7,
            bytes: vec![1, 2, 3],
        }
        .to_bytes(),
        Evidence::OverlongEntry {
            cert: cert.clone(),
            inc,
            at: 7,
            bytes: offer.to_bytes(),
        }
        .to_bytes(),
        Evidence::EntryAtBackwards {
            cert,
            a: gap,
            b: entry,
        }
        .to_bytes(),
    ];
    // Scheme M messages.
    let mreq = EnrolRequest::new(
        &node,
        signer.device_key(),
        Scheme::Merkle,
        vec![signer.sign_read(0, 0, [1; 32])],
        None,
    );
    let mcert = authority
        .certify(&mut Registry::default(), &mreq, [1; 32], 9)
        .unwrap();
    let mut state = StepState::new(mcert.cert.counters[0]);
    let p = state.prepare(vec![(item.key(), offer.to_bytes())], NOW);
    let inc = signer.sign_inc(0, p.header.value, p.header.payload(&peer));
    let sp = state.apply(p, inc);
    let (leaf, proof) = state.prove(&item.key());
    let head = StepHead {
        cert: mcert.clone(),
        read: signer.sign_read(0, 1, [4; 32]),
        nonces: NoncePath::default(),
        step: Some(HeadStep::of(&sp.step)),
        leaf,
        proof: proof.clone(),
        gaps: vec![sp.step.clone()],
        horizon: Some(sp.step.clone()),
    };
    let mut out = out;
    out.extend([
        sp.to_bytes(),
        sp.step.to_bytes(),
        StepReceipt {
            cert_id: mcert.id(),
            step: std::sync::Arc::new(sp.clone()),
            position: 0,
        }
        .to_bytes(),
        head.to_bytes(),
        head.encode_for(Some(&mcert.id())),
        StepHead {
            nonces: NonceTree::new(&[[4; 32], [5; 32], [6; 32]])
                .unwrap()
                .path(0)
                .unwrap(),
            ..head.clone()
        }
        .to_bytes(),
        ListPage {
            offers: vec![offer.to_bytes()],
        }
        .to_bytes(),
        PastProof {
            cert: mcert.clone(),
            step: Some(sp.step.clone()),
            value: 1,
            leaf,
            proof,
        }
        .to_bytes(),
    ]);
    (out, mcert)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        all(&bytes, &seeds().1)?;
    }

    #[test]
    fn mutated_valid_messages_never_panic_and_stay_canonical(
        which in 0usize..20,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (mut seeds, named) = seeds();
        let mut bytes = seeds.swap_remove(which);
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        all(&bytes, &named)?;
    }
}

#[test]
fn every_seed_decodes() {
    let (seeds, named) = seeds();
    for s in seeds {
        let mut decoded = 0;
        for f in [
            SignedOffer::from_bytes(&s).is_ok(),
            SignedInc::from_bytes(&s).is_ok(),
            SignedRead::from_bytes(&s).is_ok(),
            SignedCertificate::from_bytes(&s).is_ok(),
            EnrolRequest::from_bytes(&s).is_ok(),
            Registry::from_bytes(&s).is_ok(),
            Receipt::from_bytes(&s).is_ok(),
            RetrieveRequest::from_bytes(&s).is_ok(),
            RetrieveHead::from_bytes(&s).is_ok(),
            PageRequest::from_bytes(&s).is_ok(),
            Page::from_bytes(&s).is_ok(),
            Evidence::from_bytes(&s).is_ok(),
            StepProof::from_bytes(&s).is_ok(),
            SignedStep::from_bytes(&s).is_ok(),
            StepReceipt::from_bytes(&s).is_ok(),
            StepHead::decode(&s, &head_request(), None).is_ok(),
            StepHead::decode(&s, &head_request(), Some(&named)).is_ok(),
            ListPage::from_bytes(&s).is_ok(),
            PastProof::from_bytes(&s).is_ok(),
        ] {
            decoded += usize::from(f);
        }
        assert!(decoded >= 1);
    }
}

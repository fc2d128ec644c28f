//! One flow for every scheme (issue 11): the checker picks its checks from the certificate,
//! never from the shape of a reply. A node that answers in another scheme's format than its
//! certificate names — to have its answer checked by rules it can pass — is not checked by
//! those rules at all: its answer does not decode as what the certificate demands.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_listing::{
    monitor, publish_to, retrieve_from, Listing, ListingNode, PublishAnswer, PublishReceipt, Query,
    Reading, Refusal, ServeError,
};
use common::*;

type Node = ListingNode<SoftwareDevice>;

/// Each scheme, with the counters its node is certified for.
const EVERY_SCHEME: [(Scheme, u32); 3] = [
    (Scheme::Basic, 1),
    (Scheme::Counters, 4),
    (Scheme::Merkle, 1),
];

/// Presents `presents`'s certificate, but answers with what `answers` (a node of the other
/// scheme) says: a reply of another scheme than the certificate's.
struct Swap<'a> {
    presents: &'a Node,
    answers: &'a Node,
}

/// `head` (a retrieve head's bytes) presenting `cert` instead of its own certificate, with
/// the version byte of the head `cert`'s scheme sends: the head passes `head_certificate`
/// and meets the decoder of `cert`'s protocol.
fn with_cert(head: &[u8], cert: &SignedCertificate) -> Vec<u8> {
    // Every head is a version byte, the certificate (u32 length + bytes), then the rest.
    let old = head_certificate(head, None).unwrap().to_bytes();
    let rest = &head[1 + 4 + old.len()..];
    let own = cert.to_bytes();
    let version = match cert.cert.scheme.protocol() {
        Protocol::Entries => 2,
        Protocol::Steps => candor_core::HEAD_VERSION,
    };
    let mut out = vec![version];
    out.extend_from_slice(&(own.len() as u32).to_be_bytes());
    out.extend_from_slice(&own);
    out.extend_from_slice(rest);
    out
}

impl Listing for Swap<'_> {
    fn peer(&self) -> PeerId {
        self.presents.peer().clone()
    }
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        let mut answer =
            PublishAnswer::from_bytes(&Listing::publish(self.answers, offer, now)?).unwrap();
        answer.cert = self.presents.certificate().clone();
        Ok(answer.to_bytes())
    }
    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        match query {
            Query::Head(_) => Ok(with_cert(
                &Listing::ask(self.answers, query)?,
                self.presents.certificate(),
            )),
            _ => Listing::ask(self.answers, query),
        }
    }
}

#[test]
fn a_reply_of_another_scheme_than_the_certificates_is_never_checked_by_its_rules() {
    let mut m = Market::new();
    let b = m.node(Scheme::Basic, 1, 1);
    let c = m.node(Scheme::Counters, 4, 4);
    let mm = m.node(Scheme::Merkle, 1, 1);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    for (i, node) in [&b, &c, &mm].into_iter().enumerate() {
        publish_to(
            node,
            &m.trusted,
            &offer(&seller, &target(), 10, i as u64 + 1),
            NOW,
        )
        .unwrap();
    }
    for (k, (presents, answers)) in [(&mm, &b), (&b, &mm), (&mm, &c), (&c, &mm)]
        .into_iter()
        .enumerate()
    {
        let swap = Swap { presents, answers };
        // A higher serial each time: an M list keeps the seller's highest one.
        let o = offer(&seller, &target(), 20, 9 + k as u64);
        let err = publish_to(&swap, &m.trusted, &o, NOW).unwrap_err();
        assert_eq!(err.kind(), Kind::Malformed, "publish: {err}");
        let err = retrieve_from(&swap, &m.trusted, &target(), Reading::default()).unwrap_err();
        assert_eq!(err.kind(), Kind::Malformed, "retrieve: {err}");
    }
    // The swap itself is faithful: presenting a node's own certificate over its own answers
    // passes every check.
    for node in [&b, &c, &mm] {
        let same = Swap {
            presents: node,
            answers: node,
        };
        retrieve_from(&same, &m.trusted, &target(), Reading::default()).unwrap();
    }
}

#[test]
fn one_flow_publishes_retrieves_and_monitors_every_scheme() {
    let mut m = Market::new();
    for (scheme, counters) in EVERY_SCHEME {
        let node = m.node(scheme, counters, counters);
        let mut mine = Vec::new();
        for i in 0..3u64 {
            // Three sellers (an M list holds one record per seller).
            let seller = Keypair::generate(&mut rand_core::OsRng);
            let o = offer(&seller, &target(), 100 + i, i + 1);
            let r = publish_to(&node, &m.trusted, &o, NOW).unwrap();
            match (scheme.protocol(), &r) {
                (Protocol::Entries, PublishReceipt::Entry(_))
                | (Protocol::Steps, PublishReceipt::Step(..)) => {}
                _ => panic!("{scheme:?} answered {r:?}"),
            }
            mine.push((o, r));
        }
        let reading = Reading::default().audits(3);
        let out = retrieve_from(&node, &m.trusted, &target(), reading.clone()).unwrap();
        assert_eq!(out.offers().len(), 3, "{scheme:?}");
        assert_eq!(out.cert(), node.certificate());
        let watched = monitor(&node, &m.trusted, &target(), &mine, reading.clone()).unwrap();
        assert_eq!(watched.t(), out.t());
        // A reader that holds the node's certificate names it: a scheme-M node leaves it out
        // of its head (B and C send it anyway); the answer checks the same.
        let cert = node.certificate().clone();
        let named = retrieve_from(
            &node,
            &m.trusted,
            &target(),
            reading.clone().naming(Some(cert.clone())),
        )
        .unwrap();
        assert_eq!(named.offers().len(), 3, "{scheme:?}");
        assert_eq!(named.cert(), node.certificate());
        let saved = out.bytes() - named.bytes();
        match scheme.protocol() {
            Protocol::Steps => assert_eq!(saved, cert.to_bytes().len() as u64, "{scheme:?}"),
            Protocol::Entries => assert_eq!(saved, 0, "{scheme:?}"),
        }
        // Another node's certificate is not named (the reader names only this node's).
        let other = m.node(scheme, counters, counters).certificate().clone();
        let unnamed =
            retrieve_from(&node, &m.trusted, &target(), reading.naming(Some(other))).unwrap();
        assert_eq!(unnamed.bytes(), out.bytes(), "{scheme:?}");
    }
}

#[test]
fn a_node_refuses_the_other_protocols_queries() {
    let mut m = Market::new();
    let b = m.node(Scheme::Basic, 1, 1);
    let mm = m.node(Scheme::Merkle, 1, 1);
    let key = target().key();
    for q in [
        Query::List(ListRequest {
            item: key,
            value: 1,
            from: 0,
            count: 1,
        }),
        Query::Step(1),
        Query::ProveAt(key, 1),
    ] {
        assert!(
            matches!(b.answer(&q), Err(ServeError::WrongScheme)),
            "{q:?}"
        );
    }
    let page = Query::Page(PageRequest {
        counter: 0,
        after: 0,
        upto: 1,
        max_items: 1,
    });
    assert!(matches!(mm.answer(&page), Err(ServeError::WrongScheme)));
    // Both answer their certificate.
    for node in [&b, &mm] {
        let cert = SignedCertificate::from_bytes(&node.answer(&Query::Certificate).unwrap());
        assert_eq!(&cert.unwrap(), node.certificate());
    }
}

/// A seller's receipts for other items are not held against an item's answer: monitoring
/// item X while also holding a receipt for Y passes at an honest node of every scheme.
#[test]
fn a_receipt_for_another_item_is_not_held_against_an_answer() {
    let mut m = Market::new();
    for (scheme, counters) in [
        (Scheme::Basic, 1),
        (Scheme::Counters, 8),
        (Scheme::Merkle, 1),
    ] {
        let node = m.node(scheme, counters, counters);
        // In scheme C, an item on another counter than the target's: a watched receipt there
        // could not be served on the target's counter at all.
        let cert = node.certificate().cert.clone();
        let other = (0..64)
            .map(|i| Item::new(&format!("another item {i}")).unwrap())
            .find(|i| {
                counters == 1
                    || cert.counter_for(&i.key()).id != cert.counter_for(&target().key()).id
            })
            .unwrap();
        let seller = Keypair::generate(&mut rand_core::OsRng);
        let x = offer(&seller, &target(), 10, 1);
        let y = offer(&seller, &other, 20, 1);
        let rx = publish_to(&node, &m.trusted, &x, NOW).unwrap();
        let ry = publish_to(&node, &m.trusted, &y, NOW).unwrap();
        let mine = [(x, rx), (y, ry)];
        monitor(&node, &m.trusted, &target(), &mine, Reading::default()).unwrap();
        monitor(&node, &m.trusted, &other, &mine, Reading::default()).unwrap();
    }
}

/// Presents another certificate than its own in front of its well-formed heads.
struct ClaimsScheme<'a> {
    node: &'a Node,
    cert: SignedCertificate,
}

impl Listing for ClaimsScheme<'_> {
    fn peer(&self) -> PeerId {
        self.node.peer().clone()
    }
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        Listing::publish(self.node, offer, now)
    }
    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        let bytes = Listing::ask(self.node, query)?;
        if !matches!(query, Query::Head(_)) {
            return Ok(bytes);
        }
        Ok(with_cert(&bytes, &self.cert))
    }
}

/// A seller holding a receipt of one protocol meets a head of the other: the head's
/// certificate is checked before anything is concluded from the scheme it names. A forged
/// certificate is a bad certificate; a real node that now answers under another certificate
/// than the receipt's is caught as such.
#[test]
fn a_receipt_of_the_other_protocol_is_judged_on_a_checked_certificate() {
    let mut m = Market::new();
    let b = m.node(Scheme::Basic, 1, 1);
    let mm = m.node(Scheme::Merkle, 1, 1);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let o = offer(&seller, &target(), 10, 1);
    let from_m = publish_to(&mm, &m.trusted, &o, NOW).unwrap();
    let from_b = publish_to(&b, &m.trusted, &o, NOW).unwrap();
    // A rogue authority certifies "scheme B" for the M node's PeerId.
    let rogue = Market::new();
    let mut forged = b.certificate().clone();
    forged.cert.peer = mm.peer().clone();
    forged.cert.authority = rogue.trusted[0];
    let forger = ClaimsScheme {
        node: &mm,
        cert: forged,
    };
    let err = monitor(
        &forger,
        &m.trusted,
        &target(),
        &[(o.clone(), from_m.clone())],
        Reading::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), Kind::BadCertificate, "{err}");
    // A real certificate of the other scheme, by the trusted authority, but another node's.
    let borrowed = ClaimsScheme {
        node: &mm,
        cert: b.certificate().clone(),
    };
    let err = monitor(
        &borrowed,
        &m.trusted,
        &target(),
        &[(o.clone(), from_m)],
        Reading::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), Kind::BadCertificate, "{err}");
    // Another node's receipts say nothing about this one: they are left out, not held
    // against it (a seller's mix-up never accuses a node).
    monitor(
        &mm,
        &m.trusted,
        &target(),
        &[(o, from_b)],
        Reading::default(),
    )
    .unwrap();
}

/// Two trusted certificates for one PeerId (an authority that certified a second device for
/// it): a monitor holding a receipt under the first meets the node answering under the
/// second, and reports exactly that.
#[test]
fn a_node_answering_under_another_certificate_than_the_receipts_is_caught() {
    let mut m = Market::new();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let peer = PeerId::from_ed25519(&node_key.public());
    let mut first_device = SoftwareDevice::in_memory(peer.clone(), 1);
    let first_cert = m.enrol_device(&node_key, &mut first_device, Scheme::Basic, 1);
    let (first, _) = ListingNode::open(
        first_device,
        candor_store::ListingStore::in_memory().unwrap(),
        first_cert,
    )
    .unwrap();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let o = offer(&seller, &target(), 10, 1);
    let receipt = publish_to(&first, &m.trusted, &o, NOW).unwrap();
    // The same authority, with a registry that forgot the first: a second device, one PeerId.
    let mut second_device = SoftwareDevice::in_memory(peer, 1);
    let second_cert = candor_listing::enrol(
        &m.authority,
        &mut Registry::default(),
        &node_key,
        &mut second_device,
        Scheme::Basic,
        1,
        NOW,
    )
    .unwrap();
    let (second, _) = ListingNode::open(
        second_device,
        candor_store::ListingStore::in_memory().unwrap(),
        second_cert,
    )
    .unwrap();
    let err = monitor(
        &second,
        &m.trusted,
        &target(),
        &[(o, receipt)],
        Reading::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), Kind::OtherCertificate, "{err}");
}

/// Answers heads honestly, and every page or list query with what a node of the other
/// protocol answers to its own kind of page: pages of another scheme than the certificate's.
struct OtherPages<'a> {
    node: &'a Node,
    other: &'a Node,
}

impl Listing for OtherPages<'_> {
    fn peer(&self) -> PeerId {
        self.node.peer().clone()
    }
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        Listing::publish(self.node, offer, now)
    }
    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        let key = target().key();
        match query {
            Query::Page(_) => Listing::ask(
                self.other,
                &Query::List(ListRequest {
                    item: key,
                    value: 1,
                    from: 0,
                    count: 4,
                }),
            ),
            Query::List(_) => Listing::ask(
                self.other,
                &Query::Page(PageRequest {
                    counter: 0,
                    after: 0,
                    upto: 2,
                    max_items: 4,
                }),
            ),
            _ => Listing::ask(self.node, query),
        }
    }
}

#[test]
fn a_page_of_the_other_protocol_after_an_honest_head_is_malformed() {
    let mut m = Market::new();
    let b = m.node(Scheme::Basic, 1, 1);
    let mm = m.node(Scheme::Merkle, 1, 1);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    for (i, node) in [&b, &mm].into_iter().enumerate() {
        for k in 0..2u64 {
            let o = offer(&seller, &target(), 10 + k, 2 * i as u64 + k + 1);
            publish_to(node, &m.trusted, &o, NOW).unwrap();
        }
    }
    for (node, other) in [(&b, &mm), (&mm, &b)] {
        let mixed = OtherPages { node, other };
        let err = retrieve_from(&mixed, &m.trusted, &target(), Reading::default()).unwrap_err();
        assert_eq!(err.kind(), Kind::Malformed, "{err}");
    }
}

/// The certificate that picks the checks is the one the head's own decoder reads: a head
/// whose version byte is not the one its certificate's scheme sends is refused as malformed.
#[test]
fn a_head_with_another_schemes_version_byte_does_not_decode() {
    let mut m = Market::new();
    for (scheme, other_version) in [
        (Scheme::Basic, candor_core::HEAD_VERSION),
        (Scheme::Merkle, 2u8),
    ] {
        let node = m.node(scheme, 1, 1);
        let head = Query::Head(RetrieveRequest {
            item: target().key(),
            nonce: [7; 32],
            cert: None,
        });
        let mut bytes = node.answer(&head).unwrap();
        assert_eq!(head_certificate(&bytes, None).unwrap(), *node.certificate());
        bytes[0] = other_version;
        assert!(head_certificate(&bytes, None).is_err(), "{scheme:?}");
    }
}

#[test]
fn a_lost_receipt_is_reissued_by_an_entries_node_and_refused_by_a_steps_node() {
    let mut m = Market::new();
    let b = m.node(Scheme::Basic, 1, 1);
    let mm = m.node(Scheme::Merkle, 1, 1);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let o = offer(&seller, &target(), 10, 1);
    let PublishReceipt::Entry(receipt) = publish_to(&b, &m.trusted, &o, NOW).unwrap() else {
        panic!("a scheme-B node answered a step")
    };
    let again = b.reissue(&o).unwrap().unwrap();
    assert_eq!(again.as_entry(), Some(&receipt));
    let never = offer(&seller, &target(), 11, 2);
    assert!(b.reissue(&never).unwrap().is_none());
    // Scheme M: a receipt is a whole step, kept by the seller; the node refuses, typed.
    publish_to(&mm, &m.trusted, &o, NOW).unwrap();
    assert!(matches!(mm.reissue(&o), Err(ServeError::WrongScheme)));
}

#[test]
fn the_byte_budget_counts_the_head_and_the_list_in_every_scheme() {
    let mut m = Market::new();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    for (scheme, counters) in EVERY_SCHEME {
        let node = m.node(scheme, counters, counters);
        publish_to(&node, &m.trusted, &offer(&seller, &target(), 5, 1), NOW).unwrap();
        let head = node
            .answer(&Query::Head(RetrieveRequest {
                item: target().key(),
                nonce: [1; 32],
                cert: None,
            }))
            .unwrap();
        // Room for the head but not for the list that follows it: the same verdict in every
        // scheme, where before scheme B/C did not count the head.
        let tight = Budget {
            max_bytes: head.len() as u64,
            ..Budget::default()
        };
        let err = retrieve_from(&node, &m.trusted, &target(), tight).unwrap_err();
        assert_eq!(err.kind(), Kind::OverBudget, "{scheme:?}: {err}");
        // Less than the head: refused before anything in it is used.
        let tiny = Budget {
            max_bytes: head.len() as u64 - 1,
            ..Budget::default()
        };
        let err = retrieve_from(&node, &m.trusted, &target(), tiny).unwrap_err();
        assert_eq!(err.kind(), Kind::OverBudget, "{scheme:?}: {err}");
        retrieve_from(&node, &m.trusted, &target(), Budget::default()).unwrap();
    }
}

/// Answers every page (B, C) or list (M) request with a 1 MiB blob: a node that would swap
/// the page convicting it for bulk, to be "over budget" instead of caught.
struct Blob<'a>(&'a Node);

impl Listing for Blob<'_> {
    fn peer(&self) -> PeerId {
        self.0.peer().clone()
    }
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        Listing::publish(self.0, offer, now)
    }
    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        match query {
            Query::Page(_) | Query::List(_) => Ok(vec![0xAB; 1 << 20]),
            _ => Listing::ask(self.0, query),
        }
    }
}

#[test]
fn a_blob_near_the_budget_is_malformed_not_over_budget() {
    let mut m = Market::new();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    for (scheme, counters) in EVERY_SCHEME {
        let node = m.node(scheme, counters, counters);
        for i in 0..3u64 {
            publish_to(
                &node,
                &m.trusted,
                &offer(&seller, &target(), 5 + i, i + 1),
                NOW,
            )
            .unwrap();
        }
        // Room for the honest answer (and, in M, the longest list of its signed length),
        // far less than the blob.
        let honest = retrieve_from(&node, &m.trusted, &target(), Budget::default()).unwrap();
        let room = Budget {
            max_bytes: honest.bytes() + ListPage::most_bytes(3),
            ..Budget::default()
        };
        retrieve_from(&node, &m.trusted, &target(), room).unwrap();
        let err = retrieve_from(&Blob(&node), &m.trusted, &target(), room).unwrap_err();
        assert_eq!(err.kind(), Kind::Malformed, "{scheme:?}: {err}");
    }
}

//! Scheme C: one counter's history, the same for buyer and seller; equivocation; a monitor
//! held only to its own counter's receipts.

use super::*;

/// A B/C node in one process: a device signer and its certificate.
pub(crate) struct CNode {
    signer: Ed25519StatementSigner,
    pub(crate) cert: SignedCertificate,
    pub(crate) trusted: Vec<PublicKey>,
}

impl CNode {
    pub(crate) fn new(scheme: Scheme, counters: u32) -> Self {
        let node = Keypair::generate(&mut OsRng);
        let peer = PeerId::from_ed25519(&node.public());
        let signer = Ed25519StatementSigner::new(Keypair::generate(&mut OsRng), peer);
        let auth = Authority::new(Keypair::generate(&mut OsRng));
        let reads = (0..counters)
            .map(|c| signer.sign_read(c, 5, [1; 32]))
            .collect();
        let req = EnrolRequest::new(&node, signer.device_key(), scheme, reads, None);
        let cert = auth
            .certify(&mut Registry::default(), &req, [1; 32], 0)
            .unwrap();
        Self {
            signer,
            trusted: vec![auth.public()],
            cert,
        }
    }

    /// The device's `Inc` over any payload.
    pub(crate) fn signer_inc(&self, counter: CounterId, value: u64, payload: Digest) -> SignedInc {
        self.signer.sign_inc(counter, value, payload)
    }

    pub(crate) fn peer(&self) -> PeerId {
        self.signer.peer().clone()
    }

    pub(crate) fn entry(&self, counter: CounterId, value: u64, o: &SignedOffer) -> PageItem {
        self.entry_at(counter, value, NOW, o)
    }

    /// An entry counted at node time `at`.
    pub(crate) fn entry_at(
        &self,
        counter: CounterId,
        value: u64,
        at: u64,
        o: &SignedOffer,
    ) -> PageItem {
        let bytes = o.to_bytes();
        PageItem::Entry {
            inc: self.signer.sign_inc(
                counter,
                value,
                entry_payload(&self.peer(), counter, at, &bytes),
            ),
            at,
            bytes,
        }
    }

    pub(crate) fn gap(&self, counter: CounterId, value: u64, first: u64, last: u64) -> PageItem {
        self.gap_at(counter, value, NOW, first, last)
    }

    /// A gap notice written at node time `at`.
    pub(crate) fn gap_at(
        &self,
        counter: CounterId,
        value: u64,
        at: u64,
        first: u64,
        last: u64,
    ) -> PageItem {
        PageItem::Gap {
            inc: self.signer.sign_inc(
                counter,
                value,
                gap_payload(&self.peer(), counter, at, first, last),
            ),
            at,
            first,
            last,
        }
    }

    /// The seller's receipt for entry `e` (with the offer's bytes, as a monitor holds it).
    pub(crate) fn receipt(&self, e: &PageItem) -> (Receipt, Vec<u8>) {
        let PageItem::Entry { inc, at, bytes } = e else {
            panic!("a receipt is for an entry")
        };
        (
            Receipt {
                cert_id: self.cert.id(),
                at: *at,
                inc: inc.clone(),
            },
            bytes.clone(),
        )
    }

    /// A retrieve of `item` served `items` under a `Read` at `t` on `counter`.
    pub(crate) fn retrieve(
        &self,
        r: Retrieval,
        counter: CounterId,
        t: u64,
        items: Vec<PageItem>,
    ) -> Result<Outcome, Misbehaviour> {
        self.retrieve_from(r, counter, t, None, items)
    }

    /// A retrieve whose head carries the window boundary `boundary`.
    pub(crate) fn retrieve_from(
        &self,
        r: Retrieval,
        counter: CounterId,
        t: u64,
        boundary: Option<PageItem>,
        items: Vec<PageItem>,
    ) -> Result<Outcome, Misbehaviour> {
        let mut r = r;
        let nonce = r.request().nonce;
        let head = RetrieveHead {
            cert: self.cert.clone(),
            read: self.signer.sign_read(counter, t, nonce),
            boundary,
        };
        if r.on_head_bytes(&head.to_bytes())?.is_some() {
            r.on_page_bytes(&Page { items }.to_bytes())?;
        }
        r.finish()
    }

    pub(crate) fn session(&self, d: &Item) -> Retrieval {
        self.session_at(d, NOW)
    }

    /// A session whose reader's clock reads `now`.
    pub(crate) fn session_at(&self, d: &Item, now: u64) -> Retrieval {
        Retrieval::new(
            self.trusted.clone(),
            self.peer(),
            d.clone(),
            [4; 32],
            Budget::default(),
            now,
        )
    }
}

/// Issue 9, item 3 (schemes B and C): a node shows buyers "value 6 lost, covered by the gap
/// notice at 7", and later shows the seller "entry 6 present, 7 lost, covered by the gap
/// notice at 8". Each view alone is what an honest node shows after crashes. But the gap
/// notice at 7 left the node: a buyer that keeps the gap notices it saw holds the device's
/// own statement at 7, and the later view's gap over 7 is transferable evidence. A seller
/// monitoring while the first view is served catches the gap over its receipt.
#[test]
fn a_node_cannot_show_buyer_and_seller_contradicting_gap_histories() {
    let node = CNode::new(Scheme::Basic, 1);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let x = offer(&seller, &d, 100);
    let entry6 = node.entry(0, 6, &x);
    let receipt = node.receipt(&entry6);
    let g1 = node.gap(0, 7, 6, 6);
    // The buyers' view at t = 7: the offer hidden behind a gap.
    let seen = node
        .retrieve(node.session(&d), 0, 7, vec![g1.clone()])
        .unwrap();
    assert!(seen.offers.is_empty());
    assert_eq!(seen.gaps.len(), 1);
    // A seller monitoring now catches it.
    let err = node
        .retrieve(
            node.session(&d).watching([receipt.clone()]),
            0,
            7,
            vec![g1.clone()],
        )
        .unwrap_err();
    assert_eq!(err.kind(), Kind::GapOverReceipt);
    // The seller's view at t = 8: its entry, and the gap notice at 7 "lost".
    let g2 = node.gap(0, 8, 7, 7);
    let view = vec![entry6, g2];
    let out = node
        .retrieve(node.session(&d).watching([receipt]), 0, 8, view.clone())
        .unwrap();
    assert_eq!(out.offers.len(), 1);
    // The buyer that kept the gap notice it saw holds evidence against the later view.
    let remembered: Vec<SignedInc> = seen.gaps.iter().map(|g| g.inc.clone()).collect();
    let Err(Misbehaviour::Evidence(e)) =
        node.retrieve(node.session(&d).knowing(remembered), 0, 8, view)
    else {
        panic!("evidence expected")
    };
    assert_eq!(e.kind(), Kind::GapOverReceipt);
    let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
    e.verify(&node.trusted).unwrap();
}

/// A checker that holds two different statements of the device at one value (one from a
/// buyer's earlier read, one from a receipt) has the node's equivocation in hand, before any
/// page: transferable evidence. One statement held twice, or a forged second one, is not.
#[test]
fn two_held_statements_at_one_value_are_equivocation() {
    let node = CNode::new(Scheme::Basic, 1);
    let seller = Keypair::generate(&mut OsRng);
    let d = item(0);
    let e6 = node.entry(0, 6, &offer(&seller, &d, 100));
    let g6 = node.gap(0, 6, 6, 6);
    let Err(Misbehaviour::Evidence(e)) = node.retrieve(
        node.session(&d)
            .knowing([e6.inc().clone(), g6.inc().clone()]),
        0,
        6,
        vec![e6.clone()],
    ) else {
        panic!("evidence expected")
    };
    assert_eq!(e.kind(), Kind::Equivocation);
    Evidence::from_bytes(&e.to_bytes())
        .unwrap()
        .verify(&node.trusted)
        .unwrap();
    // The same statement twice: nothing to hold against the node.
    node.retrieve(
        node.session(&d)
            .knowing([e6.inc().clone(), e6.inc().clone()]),
        0,
        6,
        vec![e6.clone()],
    )
    .unwrap();
    // A second statement whose signature does not verify accuses nobody.
    let mut forged = g6.inc().clone();
    forged.inc.payload = Digest([9; 32]);
    for known in [
        [e6.inc().clone(), forged.clone()],
        [forged.clone(), e6.inc().clone()],
    ] {
        let r = node.retrieve(node.session(&d).knowing(known), 0, 6, vec![e6.clone()]);
        assert!(r.is_ok(), "{r:?}");
    }
}

/// Issue 9, item 7: a seller monitoring one item of a C node holds receipts of another
/// counter with higher values. Those say nothing about this counter: the honest node is not
/// accused ("read below receipt" or a local "equivocation" before the fix).
#[test]
fn a_monitor_holds_the_node_only_to_receipts_of_the_items_counter() {
    let node = CNode::new(Scheme::Counters, 2);
    let seller = Keypair::generate(&mut OsRng);
    let on = |c: u32| {
        (0..)
            .map(item)
            .find(|i| node.cert.cert.counter_for(&i.key()).id == c)
            .unwrap()
    };
    let (d0, d1) = (on(0), on(1));
    // Receipts on counter 0 at values 6..=9.
    let receipts: Vec<(Receipt, Vec<u8>)> = (6..=9)
        .map(|v| node.receipt(&node.entry(0, v, &offer(&seller, &d0, v))))
        .collect();
    // Item d1 on counter 1, with one entry at 6.
    let x = offer(&seller, &d1, 50);
    let out = node
        .retrieve(
            node.session(&d1).watching(receipts.clone()),
            1,
            6,
            vec![node.entry(1, 6, &x)],
        )
        .unwrap();
    assert_eq!(out.offers.len(), 1);
    // A receipt under another certificate: the node must answer under the receipt's.
    let mut other = receipts[0].clone();
    other.0.cert_id = Digest([0xAB; 32]);
    let err = node
        .retrieve(
            node.session(&d1).watching([other]),
            1,
            6,
            vec![node.entry(1, 6, &x)],
        )
        .unwrap_err();
    assert_eq!(err, Misbehaviour::OtherCertificate);
}

//! Shared set-up for the listing tests: an authority, sellers, an enrolled node.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::new_without_default,
    unreachable_pub
)]

use candor_core::*;
use candor_device::{SoftwareDevice, TrustedDevice};
use candor_listing::{enrol, publish_to, Listing, ListingNode, PublishReceipt, RetrieveOutcome};
use candor_store::ListingStore;

pub const NOW: u64 = 1_700_000_000;

pub struct Market {
    pub authority: Authority,
    pub registry: Registry,
    pub trusted: Vec<PublicKey>,
}

impl Market {
    pub fn new() -> Self {
        let authority = Authority::new(Keypair::generate(&mut rand_core::OsRng));
        let trusted = vec![authority.public()];
        Self {
            authority,
            registry: Registry::default(),
            trusted,
        }
    }

    /// Enrols `device` for a fresh node key.
    pub fn enrol_device<D: TrustedDevice>(
        &mut self,
        node_key: &Keypair,
        device: &mut D,
        scheme: Scheme,
        counters: u32,
    ) -> SignedCertificate {
        enrol(
            &self.authority,
            &mut self.registry,
            node_key,
            device,
            scheme,
            counters,
            NOW,
        )
        .unwrap()
    }

    /// An honest node in memory; the device has `device_counters` counters, `cert_counters`
    /// of them certified.
    pub fn node(
        &mut self,
        scheme: Scheme,
        cert_counters: u32,
        device_counters: u32,
    ) -> ListingNode<SoftwareDevice> {
        let node_key = Keypair::generate(&mut rand_core::OsRng);
        let mut device =
            SoftwareDevice::in_memory(PeerId::from_ed25519(&node_key.public()), device_counters);
        let cert = self.enrol_device(&node_key, &mut device, scheme, cert_counters);
        ListingNode::open(device, ListingStore::in_memory().unwrap(), cert)
            .unwrap()
            .0
    }
}

pub fn target() -> Item {
    Item::new("Fairphone 5, 256 GB, refurbished").unwrap()
}

pub fn other() -> Item {
    Item::new("Brompton C Line folding bike").unwrap()
}

pub fn offer(seller: &Keypair, item: &Item, price: u64, serial: u64) -> SignedOffer {
    SignedOffer::sign(seller, item, price, Currency::EUR, 1, NOW + 86_400, serial)
}

/// What the standard workload published.
pub struct Workload {
    pub sellers: Vec<Keypair>,
    /// (offer, receipt) for every publish, in order.
    pub published: Vec<(SignedOffer, PublishReceipt)>,
}

impl Workload {
    /// The offers for `item` the node counted (W_d).
    pub fn w_d(&self, item: &Item) -> Vec<SignedOffer> {
        self.published
            .iter()
            .filter(|(o, _)| o.offer.key == item.key())
            .map(|(o, _)| o.clone())
            .collect()
    }

    pub fn receipts_of(&self, seller: &Keypair) -> Vec<(SignedOffer, PublishReceipt)> {
        self.published
            .iter()
            .filter(|(o, _)| o.offer.seller == seller.public())
            .cloned()
            .collect()
    }
}

/// Three sellers: A at 500 then 450 (serial 2), B at 300, C at 700 (C is the node's
/// favourite); and offers for another item in between.
pub fn standard_workload(node: &dyn Listing, trusted: &[PublicKey]) -> Workload {
    let sellers: Vec<Keypair> = (0..3)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let plan = [
        (0, target(), 500, 1),
        (1, other(), 90, 1),
        (1, target(), 300, 1),
        (2, target(), 700, 1),
        (2, other(), 95, 1),
        (0, target(), 450, 2),
        (0, other(), 99, 1),
    ];
    let mut published = Vec::new();
    for (s, item, price, serial) in plan {
        let o = offer(&sellers[s], &item, price, serial);
        let r = publish_to(node, trusted, &o, NOW).unwrap();
        published.push((o, r));
    }
    Workload { sellers, published }
}

pub fn sorted(mut v: Vec<SignedOffer>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = v.drain(..).map(|o| o.to_bytes()).collect();
    out.sort();
    out
}

/// The entry receipt of a scheme-B/C publish (a test that runs only B or C).
pub fn entry(r: PublishReceipt) -> Receipt {
    match r {
        PublishReceipt::Entry(r) => r,
        PublishReceipt::Step(..) => panic!("a scheme-M receipt where B/C was expected"),
    }
}

/// The step receipt of a scheme-M publish.
pub fn step(r: PublishReceipt) -> (StepReceipt, Placement) {
    match r {
        PublishReceipt::Step(r, p) => (*r, p),
        PublishReceipt::Entry(_) => panic!("a scheme-B/C receipt where M was expected"),
    }
}

/// The outcome of a scheme-B/C retrieve.
pub fn entries(o: RetrieveOutcome) -> Outcome {
    match o {
        RetrieveOutcome::Entries(o) => o,
        RetrieveOutcome::Steps(_) => panic!("a scheme-M answer where B/C was expected"),
    }
}

/// The outcome of a scheme-M retrieve.
pub fn steps(o: RetrieveOutcome) -> StepOutcome {
    match o {
        RetrieveOutcome::Steps(o) => o,
        RetrieveOutcome::Entries(_) => panic!("a scheme-B/C answer where M was expected"),
    }
}

/// A node on real files in `dir` (a software device's state file and a redb store), enrolled
/// for `scheme` with one counter; and its certificate, to open it again.
pub fn files_node(
    m: &mut Market,
    dir: &std::path::Path,
    scheme: Scheme,
) -> (
    ListingNode<candor_device::SoftwareDevice>,
    SignedCertificate,
) {
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let mut device = candor_device::SoftwareDevice::create(
        &dir.join("device.state"),
        PeerId::from_ed25519(&node_key.public()),
        1,
    )
    .unwrap();
    let cert = m.enrol_device(&node_key, &mut device, scheme, 1);
    let store = ListingStore::open(&dir.join("store.redb")).unwrap();
    (
        ListingNode::open(device, store, cert.clone()).unwrap().0,
        cert,
    )
}

/// Opens the node [`files_node`] made in `dir` again.
pub fn reopen(
    dir: &std::path::Path,
    cert: &SignedCertificate,
) -> Result<ListingNode<candor_device::SoftwareDevice>, candor_listing::OpenError> {
    let device = candor_device::SoftwareDevice::open(&dir.join("device.state")).unwrap();
    let store = ListingStore::open(&dir.join("store.redb")).unwrap();
    ListingNode::open(device, store, cert.clone()).map(|(n, _)| n)
}

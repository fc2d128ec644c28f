//! Fixtures for benchmarks and load commands: a certified node's answer to a retrieve,
//! made directly with the device's signer (no store), so that a buyer's check can be timed
//! alone.

use candor_core::{
    entry_payload, Authority, Budget, Currency, Ed25519StatementSigner, Encode, EnrolRequest, Item,
    Keypair, Page, PageItem, PeerId, PublicKey, Registry, Retrieval, RetrieveHead, Scheme,
    SignedOffer, MAX_PAGE_ITEMS,
};

/// The node time of the fixture's entries, and the buyer's clock when it checks them.
const AT: u64 = 1_700_000_000;

/// A retrieve as the buyer receives it: the encoded head and pages.
#[derive(Debug, Clone)]
pub struct SyntheticRetrieve {
    /// The trusted authority keys.
    pub trusted: Vec<PublicKey>,
    /// The node.
    pub peer: PeerId,
    /// The item retrieved.
    pub item: Item,
    /// The buyer's nonce the head answers.
    pub nonce: [u8; 32],
    /// The encoded head.
    pub head: Vec<u8>,
    /// The encoded pages.
    pub pages: Vec<Vec<u8>>,
}

impl SyntheticRetrieve {
    /// A scheme-B node holding `w` entries, `for_d` of them offers for the item, spread
    /// evenly; the rest are offers for other items from a handful of sellers.
    pub fn new(w: u64, for_d: u64) -> Result<Self, FixtureError> {
        let mut rng = rand_core::OsRng;
        let authority = Authority::new(Keypair::generate(&mut rng));
        let node = Keypair::generate(&mut rng);
        let peer = PeerId::from_ed25519(&node.public());
        let signer = Ed25519StatementSigner::new(Keypair::generate(&mut rng), peer.clone());
        let nonce = [7u8; 32];
        let enrol_nonce = [1u8; 32];
        let req = EnrolRequest::new(
            &node,
            signer.device_key(),
            Scheme::Basic,
            vec![signer.sign_read(0, 0, enrol_nonce)],
            None,
        );
        let cert = authority.certify(&mut Registry::default(), &req, enrol_nonce, 0)?;
        let item = Item::new("benchmark item d")?;
        let others: Vec<Item> = (0..64)
            .filter_map(|i| Item::new(&format!("other item {i}")).ok())
            .collect();
        let sellers: Vec<Keypair> = (0..16).map(|_| Keypair::generate(&mut rng)).collect();
        let stride = w.checked_div(for_d).unwrap_or(u64::MAX).max(1);
        let mut items = Vec::with_capacity(w as usize);
        for v in 1..=w {
            let seller = &sellers[(v % 16) as usize];
            let it = if (v - 1) % stride == 0 && (v - 1) / stride < for_d {
                &item
            } else {
                &others[(v % 64) as usize]
            };
            let o = SignedOffer::sign(seller, it, 1000 + v, Currency::EUR, 1, AT + 86_400, v);
            let bytes = o.to_bytes();
            let inc = signer.sign_inc(0, v, entry_payload(&peer, 0, AT, &bytes));
            items.push(PageItem::Entry { inc, at: AT, bytes });
        }
        let pages = items
            .chunks(MAX_PAGE_ITEMS)
            .map(|c| Page { items: c.to_vec() }.to_bytes())
            .collect();
        let head = RetrieveHead {
            cert,
            read: signer.sign_read(0, w, nonce),
            boundary: None,
        }
        .to_bytes();
        Ok(Self {
            trusted: vec![authority.public()],
            peer,
            item,
            nonce,
            head,
            pages,
        })
    }

    /// Bytes the buyer receives.
    pub fn bytes(&self) -> usize {
        self.head.len() + self.pages.iter().map(Vec::len).sum::<usize>()
    }

    /// Runs the buyer's whole check; returns how many offers for d it kept.
    pub fn check(&self) -> Result<usize, candor_core::Misbehaviour> {
        let mut r = Retrieval::new(
            self.trusted.clone(),
            self.peer.clone(),
            self.item.clone(),
            self.nonce,
            Budget::default(),
            AT,
        );
        let mut next = r.on_head_bytes(&self.head)?;
        let mut pages = self.pages.iter();
        while next.is_some() {
            let Some(p) = pages.next() else {
                break;
            };
            next = r.on_page_bytes(p)?;
        }
        Ok(r.finish()?.offers.len())
    }
}

/// A fixture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The authority refused the fixture's enrolment.
    #[error(transparent)]
    Cert(#[from] candor_core::CertError),
    /// The fixture's item description is invalid.
    #[error(transparent)]
    Item(#[from] candor_core::DescriptionError),
}

//! # candor-listing
//!
//! A Candor listing node, and the flows that talk to one, independent of any transport.
//!
//! - [`ListingNode`] is the honest node: a trusted device plus a durable store. A publish
//!   writes a pending record durably, has the device count it, stores the counted entry, and
//!   only then returns the receipt; batches share one device call and one fsync per step
//!   ([`Committer`] groups concurrent publishes). On open it reconciles the store with the
//!   device (DESIGN.md §7) and refuses a rolled-back device or store.
//! - [`Listing`] is what a seller or buyer can ask of a node: a transport, whose answers come
//!   back as bytes. [`publish_to`], [`retrieve_from`] and [`monitor`] ([`check`]) run the
//!   seller's and the buyer's checks over it: one flow per operation for every scheme, the
//!   checks picked from the node's certificate and never from the shape of a reply.
//! - The adversary suite (cheating nodes built from this honest one) lives in `candor-lab`;
//!   the `fault-injection` feature gives it, and the crash tests, their hooks here.
//!
//! ```
//! use candor_core::*;
//! use candor_device::SoftwareDevice;
//! use candor_listing::{enrol, publish_to, retrieve_from, ListingNode};
//! use candor_store::ListingStore;
//! let authority = Authority::new(Keypair::generate(&mut rand_core::OsRng));
//! let mut registry = Registry::default();
//! let node_key = Keypair::generate(&mut rand_core::OsRng);
//! let mut device = SoftwareDevice::in_memory(PeerId::from_ed25519(&node_key.public()), 1);
//! let cert = enrol(&authority, &mut registry, &node_key, &mut device, Scheme::Basic, 1, 0).unwrap();
//! let (node, _) = ListingNode::open(device, ListingStore::in_memory().unwrap(), cert).unwrap();
//! let seller = Keypair::generate(&mut rand_core::OsRng);
//! let item = Item::new("Blue bicycle").unwrap();
//! let now = 1_700_000_000; // unix seconds
//! let offer = SignedOffer::sign(&seller, &item, 12_000, Currency::new("EUR").unwrap(), 1, now + 86_400, 1);
//! let trusted = [authority.public()];
//! publish_to(&node, &trusted, &offer, now).unwrap();
//! let outcome = retrieve_from(&node, &trusted, &item, Budget::default()).unwrap();
//! assert_eq!(outcome.offers()[0].offer.price, 12_000);
//! ```

pub mod check;
mod committer;
mod enrol;
mod entries_node;
mod horizon;
mod listing;
mod node;
mod reads;
mod serve;
mod steps_node;
mod window;

pub use check::{
    monitor, publish_checked, publish_to, retrieve_from, Checked, PublishReceipt, Reading,
    RetrieveOutcome,
};
pub use committer::{Committer, CommitterError};
pub use enrol::{enrol, EnrolError};
pub use listing::{
    certificate_of, Listing, PublishAnswer, Query, Refusal, RefusalKind, MAX_ANSWER_BYTES,
};
#[cfg(feature = "fault-injection")]
pub use node::CrashAt;
pub use node::{
    ListingNode, OpenError, PublishError, ReconcileReport, ServeError, COMPACT_LAG, MAX_PAGE_BYTES,
};
pub use serve::Published;

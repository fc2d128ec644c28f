//! # candor-listing
//!
//! A Candor listing node, and the flows that talk to one, independent of any transport.
//!
//! - [`ListingNode`] is the honest node: a trusted device plus a durable store. A publish
//!   writes a pending record durably, has the device count it, stores the counted entry, and
//!   only then returns the receipt; batches share one device call and one fsync per step
//!   ([`Committer`] groups concurrent publishes). On open it reconciles the store with the
//!   device (DESIGN.md §7) and refuses a rolled-back device or store.
//! - [`Listing`] is what a seller or buyer can ask of a node; [`publish_to`] and
//!   [`retrieve_from`] run the seller's and the buyer's checks over it.
//! - [`CheatingNode`] is built from the honest node and runs one [`Strategy`] from the
//!   adversary suite; the tests show each one caught.
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
//! let offer = SignedOffer::sign(&seller, &item, 12_000, Currency::new("EUR").unwrap(), 1, u64::MAX, 1);
//! let trusted = [authority.public()];
//! publish_to(&node, &trusted, &offer, 0).unwrap();
//! let outcome = retrieve_from(&node, &trusted, &item, Budget::default()).unwrap();
//! assert_eq!(outcome.current(0)[0].price, 12_000);
//! ```

mod adversary;
mod committer;
mod fixtures;
mod flows;
mod merkle_node;
mod node;

pub use adversary::{CheatingNode, Strategy};
pub use committer::{Committer, CommitterError, Published};
pub use fixtures::{FixtureError, SyntheticRetrieve};
pub use flows::{
    enrol, monitor, monitor_any, monitor_m, publish_to, publish_to_any, publish_to_m, retrieve_any,
    retrieve_at_m, retrieve_from, retrieve_from_m, AnyHead, AnyOutcome, AnyReceipt, AnyReply,
    EnrolError, Listing, PublishReply, Refusal, RefusalKind,
};
#[cfg(feature = "fault-injection")]
pub use node::CrashAt;
pub use node::{ListingNode, OpenError, PublishError, ReconcileReport, ServeError};

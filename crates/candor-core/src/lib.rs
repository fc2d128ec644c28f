//! # candor-core
//!
//! The pure protocol core of Candor, a peer-to-peer marketplace in which the node that stores
//! the sale offers for an item cannot hide, alter or invent an offer without being caught.
//! It holds the types, the canonical encodings, the statements a trusted device signs, the
//! certificates, and every check a seller, a buyer or a third party runs. It does no I/O:
//! no files, no sockets, no clocks (callers pass the time), so it can be audited alone.
//!
//! ```
//! use candor_core::{Currency, Item, Keypair, SignedOffer};
//! let seller = Keypair::generate(&mut rand_core::OsRng);
//! let item = Item::new("  Raspberry Pi 5,  8 GB ").unwrap();
//! assert_eq!(item.description(), "raspberry pi 5, 8 gb");
//! let offer = SignedOffer::sign(&seller, &item, 8_900, Currency::new("EUR").unwrap(), 1, u64::MAX, 1);
//! offer.verify().unwrap();
//! ```
//!
//! The flows of the paper's scheme B (and of scheme C, which runs B on one of C counters):
//! - publish: the seller makes a [`SignedOffer`]; the listing node binds it to a counter value
//!   with its device's `Inc` and returns a [`Receipt`]; the seller runs [`check_receipt`].
//! - retrieve: the buyer drives a [`Retrieval`] over pages of the node's answer; it yields an
//!   [`Outcome`] holding exactly the offers for the item the node counted, or a
//!   [`Misbehaviour`]. Some misbehaviours carry [`Evidence`] that anyone can verify.

mod cert;
mod encoding;
pub mod endorsement;
mod entry;
mod hash;
mod item;
mod keys;
mod kind;
mod merkle;
mod misbehaviour;
mod nonces;
mod offer;
mod retrieve;
mod smt;
mod statement;
pub mod tpm;
mod verify;

pub use cert::{
    Authority, CertError, Certificate, CertifiedCounter, Endorsement, EnrolRequest,
    PendingEnrolment, Protocol, Registry, Residence, Scheme, SignedCertificate, TimeRules,
    MAX_CERT_BYTES, MAX_COUNTERS,
};
pub use encoding::{Decode, DecodeError, Encode, Reader, Writer};
pub use entry::{
    entry_payload, gap_payload, Page, PageItem, PageRequest, Receipt, RetrieveHead,
    RetrieveRequest, MAX_ENTRY_BYTES, MAX_PAGE_ITEMS,
};
pub use hash::{sha256, tags, Digest, TaggedHasher};
pub use item::{canonicalize, DescriptionError, Item, ItemKey, MAX_DESCRIPTION};
pub use keys::{BadSignature, BatchVerifier, Keypair, PeerId, PublicKey, Signature, MAX_PEER_ID};
pub use kind::Kind;
pub use merkle::{
    batch_root, empty_root, leaf_of, list_root, offer_hash, records_of, removal_root, HeadStep,
    Leaf, LiveList, NotAdmitted, OldList, PastProof, Placement, PreparedStep, Record, RecordRef,
    SignedStep, SortKey, StepHead, StepHeader, StepProof, StepReceipt, StepState, StepTop,
    HEAD_VERSION, MAX_BATCH, MAX_GAP_STEPS, MAX_HISTORY, MAX_LIST_PAGE, MAX_LIVE, MAX_REMOVALS,
    MAX_STEP_RECORDS, MAX_TOUCHED,
};
pub use misbehaviour::{
    entry_fault, BudgetKind, EntryFault, Evidence, EvidenceError, Misbehaviour, EVIDENCE_VERSION,
};
pub use nonces::{NoncePath, NonceTree, NonceTreeError, MAX_NONCE_LEVELS, MAX_READ_BATCH};
pub use offer::{
    cheapest, current_offers, seller_equivocation, Currency, Offer, OfferError, OfferFault,
    SignedOffer, MAX_OFFER_BYTES,
};
pub use retrieve::entries::{is_valid_entry, Outcome, Retrieval};
pub use retrieve::steps::{check_monitor, ListPage, ListRequest, StepOutcome, StepRetrieval};
pub use retrieve::{Budget, GapReport};
pub use smt::{
    leaf_hash as smt_leaf_hash, MultiProof, ProofError, Smt, DEPTH as SMT_DEPTH,
    EMPTY as SMT_EMPTY, MAX_SIBLINGS,
};
pub use statement::{
    CounterId, DeviceKey, DeviceSig, Ed25519StatementSigner, Inc, Read, SignedInc, SignedRead,
    TpmKey, TpmProof, MAX_STATEMENT_BYTES,
};
pub use verify::{
    check_receipt, check_step_receipt, head_certificate, past_len, verify_past, verify_step,
};

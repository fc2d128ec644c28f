//! Scheme M (DESIGN.md §5): each value of the node's counter is one *step* of an authenticated
//! map from item key d to d's append-only offer list, leaf_d = (n_d, chain_d) with
//! chain = H(previous chain ‖ H(offer)). A step's `Inc` binds the nested payload
//! `H("candor/v2/m-step" ‖ PeerId ‖ counter ‖ value ‖ new_root ‖ at ‖ gap_link ‖ H(rest))`, with
//! rest = prev_value ‖ prev_root ‖ batch_root ‖ batch_len ‖ total_offers ‖ removal_root ‖
//! removal_count: a buyer needs only the top ([`StepTop`]), sellers and auditors open the rest.
//!
//! What each party checks:
//! - the seller at publish: the whole step ([`crate::verify_step`]): its `Inc`, that prev_root is the
//!   new_root of the step before, the transition of every touched key from its old list to the
//!   old list plus its batch offers (no other key changes), and batch_root over exactly the
//!   batch; then its own offer's index k in d's list and the chain prefix up to k;
//! - the buyer at retrieve ([`crate::StepRetrieval`]): `Read(t, nonce)`, `Inc(t)` and its step header,
//!   and a proof for d under that root — membership with d's full list, or an empty branch;
//!   then audits of s sampled steps, with π = s / (t − base) for the worst case reported;
//! - the seller monitoring: an ordinary retrieve, and its offer still at index k with the same
//!   chain prefix.

//!
//! The module holds what a step is and how the node builds it: `leaf` (lists and chains),
//! `step` (what a step says and its encodings), `state` (the node's tree: the prover). Every
//! check a seller, buyer, auditor or monitor runs is in `crate::verify`, which depends on this
//! module and never the other way round.

use crate::cert::{CertifiedCounter, SignedCertificate};
use crate::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::{tags, Digest, TaggedHasher};
use crate::item::ItemKey;
use crate::keys::PeerId;
use crate::offer::MAX_OFFER_BYTES;
use crate::smt::{MultiProof, Smt, EMPTY};
use crate::statement::{CounterId, SignedInc, SignedRead};
use std::collections::BTreeMap;

/// The version of every scheme-M structure (3: step headers chain their gap steps; 4: the
/// nested step payload with `at` and the removal fields, over the collapsed tree; 5: the live
/// map, DESIGN.md §9).
pub(crate) const VERSION: u8 = 5;

/// How many past trees a node keeps for proofs under past roots (older ones are rebuilt by
/// replaying the stored steps).
pub const MAX_HISTORY: usize = 4096;

/// The most offers one step may commit.
pub const MAX_BATCH: usize = 1024;

/// The most records one item's live list holds (a node refuses offers beyond it).
pub const MAX_LIVE: usize = 4096;

/// The most records one step removes (the rest wait for the next step).
pub const MAX_REMOVALS: usize = 512;

/// The most items one step touches (adds to or removes from).
pub const MAX_TOUCHED: usize = MAX_BATCH;

/// The most records the old lists of one step's touched items hold in all (a step proof
/// carries them): with the batch, the removals and the tree proof, a whole step stays within
/// what one answer may carry. Offers beyond it wait for the next step.
pub const MAX_STEP_RECORDS: usize = MAX_LIVE;

/// The most gap steps a head carries (buyers accept fewer: [`crate::Budget::max_gaps`]).
pub const MAX_GAP_STEPS: usize = 256;

/// The most offers of one item a retrieve page carries.
pub const MAX_LIST_PAGE: usize = 256;

mod head;
mod leaf;
mod state;
mod step;
#[cfg(test)]
mod tests;

pub use head::*;
pub use leaf::*;
pub use state::*;
pub use step::*;

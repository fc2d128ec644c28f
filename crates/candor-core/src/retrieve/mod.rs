//! The buyer's side of a retrieve, one state machine per protocol, each independent of any
//! transport: [`entries`] checks the counted entries of schemes B and C, [`steps`] the
//! audited steps of scheme M. Both take the same [`Budget`] and report gaps the same way.

pub(crate) mod entries;
pub(crate) mod steps;

use crate::entry::MAX_PAGE_ITEMS;
use crate::statement::SignedInc;

/// How much a buyer will take from one listing node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most counter values (t − base) it will check (scheme M: most offers of the item).
    pub max_entries: u64,
    /// Most bytes it will take, counted the same way in every scheme: the head and every
    /// page of the list. A page is charged only once it has passed its checks (B, C), and a
    /// scheme-M list is judged by the most bytes its signed length allows before any page is
    /// taken, so padding cannot turn a check the node would fail into "over budget". Scheme
    /// M's audits are bounded by their number and encoding, not by this.
    pub max_bytes: u64,
    /// Most gap notices (scheme M: gap steps) it accepts; a node with more fails with
    /// [`crate::Misbehaviour::TooManyGaps`], never "over budget".
    pub max_gaps: u32,
    /// Items per page it asks for.
    pub page_items: u32,
    /// Most values one scheme-M gap step may skip. An honest node loses at most the step it
    /// was writing per crash (plus gap steps lost in crashes right after), so a wide gap step
    /// is a node reverting to an old root, which fails with [`crate::Misbehaviour::GapTooWide`].
    pub max_gap_width: u64,
}

/// The default budget per listing node: 64 MiB and 200,000 values (a scheme-B counter holds
/// ~180,000 offers in 64 MiB; an M or C retrieve of one item needs far less), 64 gaps. With
/// the default 30 s per node and at most 256 MiB per retrieve across Δ(d), a retrieve fits a
/// buyer's ordinary machine whatever the listing nodes send.
impl Default for Budget {
    fn default() -> Self {
        Self {
            max_entries: 200_000,
            max_bytes: 64 << 20,
            max_gaps: 64,
            page_items: MAX_PAGE_ITEMS as u32,
            max_gap_width: 16,
        }
    }
}

/// A gap the node reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapReport {
    /// The gap notice's `Inc`.
    pub inc: SignedInc,
    /// First value covered.
    pub first: u64,
    /// Last value covered.
    pub last: u64,
}

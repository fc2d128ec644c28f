//! What a user remembers of listing nodes' devices: the signed statements (gap notices, gap
//! steps, steps at t) of answers it verified, kept so a node is held to them on every later
//! read. An honest node serves only statements it has stored, so it never covers one of them
//! with a gap afterwards; a node that showed one reader a gap notice and later shows it a
//! history in which that notice was "lost" leaves transferable evidence with that reader
//! (ARCHITECTURE.md, "Readers a node cannot single out").

use candor_core::{PeerId, SignedInc};
use std::collections::HashMap;
use std::sync::Mutex;

/// Statements kept per listing node: the newest (highest values) win.
pub const MAX_STATEMENTS_PER_NODE: usize = 256;
/// Listing nodes an in-process memory keeps statements of.
pub const MAX_NODES: usize = 4096;

/// Where a user keeps the statements it saw. The daemon keeps them in its data folder; the
/// default, [`Recent`], keeps them for the life of the process.
pub trait Memory: Send + Sync {
    /// The statements kept for the listing node `node`.
    fn recall(&self, node: &PeerId) -> Vec<SignedInc>;
    /// Keeps `seen`, from an answer of `node` that verified.
    fn remember(&self, node: &PeerId, seen: Vec<SignedInc>);
}

/// `kept` and `seen` together: no statement twice, at most [`MAX_STATEMENTS_PER_NODE`], the
/// highest values kept. Two different statements at one value are both kept: together they
/// are the node's equivocation, and the next check says so.
pub fn merge_statements(kept: Vec<SignedInc>, seen: Vec<SignedInc>) -> Vec<SignedInc> {
    let mut all = kept;
    for s in seen {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all.sort_by_key(|s| std::cmp::Reverse((s.inc.value, s.inc.counter)));
    all.truncate(MAX_STATEMENTS_PER_NODE);
    all
}

/// A memory for the life of the process, bounded by [`MAX_NODES`] nodes.
#[derive(Debug, Default)]
pub struct Recent(Mutex<HashMap<PeerId, Vec<SignedInc>>>);

impl Memory for Recent {
    fn recall(&self, node: &PeerId) -> Vec<SignedInc> {
        self.0
            .lock()
            .map(|m| m.get(node).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn remember(&self, node: &PeerId, seen: Vec<SignedInc>) {
        let Ok(mut m) = self.0.lock() else { return };
        if !m.contains_key(node) && m.len() >= MAX_NODES {
            // Forget some node: a bound, not a policy (the daemon's memory is on disk).
            if let Some(k) = m.keys().next().cloned() {
                m.remove(&k);
            }
        }
        let kept = m.remove(node).unwrap_or_default();
        m.insert(node.clone(), merge_statements(kept, seen));
    }
}

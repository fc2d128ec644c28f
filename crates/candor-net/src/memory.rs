//! What a user remembers of listing nodes' devices: the signed statements (gap notices, gap
//! steps, steps at t) of answers it verified, kept so a node is held to them on every later
//! read. An honest node serves only statements it has stored, so it never covers one of them
//! with a gap afterwards; a node that showed one reader a gap notice and later shows it a
//! history in which that notice was "lost" leaves transferable evidence with that reader
//! (ARCHITECTURE.md, "Readers a node cannot single out").

use candor_core::{PeerId, SignedInc};
use std::collections::HashMap;
use std::sync::Mutex;

/// Statements kept per counter of a listing node: the newest (highest values) win. Per
/// counter, so a busy counter never pushes a quiet one's statements out.
pub const MAX_STATEMENTS_PER_COUNTER: u32 = 32;
/// Statements kept per listing node, all counters together.
pub const MAX_STATEMENTS_PER_NODE: usize = 512;
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

/// `kept` and `seen` together: no statement twice (compared as statements, not signature
/// bytes: a TPM signs one statement anew with a fresh nonce), at most
/// [`MAX_STATEMENTS_PER_COUNTER`] per counter and [`MAX_STATEMENTS_PER_NODE`] in all, the
/// highest values of each counter kept. Two different statements at one value are both kept:
/// together they are the node's equivocation.
pub fn merge_statements(kept: Vec<SignedInc>, seen: Vec<SignedInc>) -> Vec<SignedInc> {
    let mut all = kept;
    for s in seen {
        if !all.iter().any(|k| k.inc == s.inc) {
            all.push(s);
        }
    }
    all.sort_by_key(|s| (s.inc.counter, std::cmp::Reverse(s.inc.value)));
    let mut per: (Option<u32>, u32) = (None, 0);
    all.retain(|s| {
        if per.0 != Some(s.inc.counter) {
            per = (Some(s.inc.counter), 0);
        }
        per.1 += 1;
        per.1 <= MAX_STATEMENTS_PER_COUNTER
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Digest, Ed25519StatementSigner, Keypair, PeerId};

    #[test]
    fn a_busy_counter_never_pushes_a_quiet_ones_statements_out() {
        let node = Keypair::generate(&mut rand_core::OsRng);
        let s = Ed25519StatementSigner::new(
            Keypair::generate(&mut rand_core::OsRng),
            PeerId::from_ed25519(&node.public()),
        );
        let quiet = s.sign_inc(0, 5, Digest([1; 32]));
        let busy: Vec<SignedInc> = (0..1000)
            .map(|v| s.sign_inc(1, 1_000_000 + v, Digest([2; 32])))
            .collect();
        let kept = merge_statements(vec![quiet.clone()], busy);
        assert!(kept.contains(&quiet));
        assert_eq!(kept.len(), 1 + MAX_STATEMENTS_PER_COUNTER as usize);
        assert!(kept
            .iter()
            .filter(|k| k.inc.counter == 1)
            .all(|k| k.inc.value >= 1_000_000 + 1000 - u64::from(MAX_STATEMENTS_PER_COUNTER)));
        // One statement seen twice is kept once.
        let again = merge_statements(kept.clone(), vec![quiet]);
        assert_eq!(again.len(), kept.len());
    }
}

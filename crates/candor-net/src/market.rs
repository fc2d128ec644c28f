//! A user's marketplace operations over the overlay: publish an offer to Δ(d), retrieve an
//! item from every node of Δ(d), each answer checked independently within a budget, and a
//! report per listing node.

use crate::client::RemoteListing;
use crate::memory::{Memory, Recent};
use crate::swarm::{dht_key, to_candor_peer, NetError, NetHandle};
use candor_core::{
    current_offers, Budget, BudgetKind, Item, Misbehaviour, Offer, PublicKey, SignedOffer,
};
use candor_device::TrustedDevice;
use candor_listing::{
    monitor, publish_checked, retrieve_from, Listing, ListingNode, PublishReceipt, Reading,
    RetrieveOutcome,
};
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one listing node's answer to a retrieve came to.
#[derive(Debug, Clone)]
pub enum NodeReport {
    /// Every check passed: exactly the offers the node counted.
    Verified(Box<RetrieveOutcome>),
    /// A check failed: the node misbehaved (its kind names how).
    Misbehaviour(Misbehaviour),
    /// The node's committed answer exceeded the budget (entries or bytes).
    OverBudget(BudgetKind),
    /// The node could not be reached.
    Unreachable(String),
}

impl NodeReport {
    fn from(r: Result<RetrieveOutcome, Misbehaviour>) -> Self {
        match r {
            Ok(o) => Self::Verified(Box::new(o)),
            Err(Misbehaviour::OverBudget(k)) => Self::OverBudget(k),
            Err(Misbehaviour::Unreachable(why)) => Self::Unreachable(why),
            Err(m) => Self::Misbehaviour(m),
        }
    }

    /// A short status: verified, misbehaviour, over-budget, unreachable.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Verified(_) => "verified",
            Self::Misbehaviour(_) => "misbehaviour",
            Self::OverBudget(_) => "over-budget",
            Self::Unreachable(_) => "unreachable",
        }
    }
}

/// A retrieve across Δ(d).
#[derive(Debug, Clone)]
pub struct RetrieveReport {
    /// The item.
    pub item: Item,
    /// Δ(d), closest first.
    pub listing_nodes: Vec<PeerId>,
    /// One report per listing node, in Δ(d)'s order.
    pub reports: Vec<(PeerId, NodeReport)>,
    /// The current offers from the verified nodes, merged (cheapest first per currency).
    pub offers: Vec<Offer>,
}

/// A publish across Δ(d).
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// Δ(d), closest first.
    pub listing_nodes: Vec<PeerId>,
    /// Per node contacted: the checked receipt, or what went wrong.
    pub results: Vec<(PeerId, Result<PublishReceipt, Misbehaviour>)>,
    /// Every receipt that verified, also those a verdict refused (a clock disagreement): what
    /// the seller monitors.
    pub kept: Vec<(PeerId, PublishReceipt)>,
}

/// A user's view of the market: its overlay node, its own listing node (if any), the
/// authorities it trusts, and its budgets.
pub struct Market<D> {
    net: NetHandle,
    local: Option<Arc<ListingNode<D>>>,
    trusted: Vec<PublicKey>,
    runtime: tokio::runtime::Handle,
    /// Publish to every node of Δ(d) (default) or only the closest (the paper's choice).
    pub publish_to_all: bool,
    /// The budget per listing node for a retrieve (and a monitor).
    pub budget: Budget,
    /// The most bytes one retrieve takes from all of Δ(d) together: each node's byte budget
    /// is at most this divided by |Δ(d)|.
    pub retrieve_bytes: u64,
    /// Time allowed to each listing node for a whole retrieve.
    pub time_budget: Duration,
    /// Steps a buyer audits per scheme-M listing node.
    pub audits: u64,
    /// Read through a fresh identity per retrieve and per monitoring run (default), so a
    /// listing node cannot tell a monitor from a buyer by its PeerId.
    pub fresh_reads: bool,
    /// The statements seen from each listing node's device, to hold it to them later.
    pub memory: Arc<dyn Memory>,
}

impl<D> std::fmt::Debug for Market<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market")
            .field("net", &self.net)
            .finish_non_exhaustive()
    }
}

impl<D: TrustedDevice + 'static> Market<D> {
    /// A market view.
    pub fn new(
        net: NetHandle,
        local: Option<Arc<ListingNode<D>>>,
        trusted: Vec<PublicKey>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            net,
            local,
            trusted,
            runtime,
            publish_to_all: true,
            budget: Budget::default(),
            retrieve_bytes: 256 << 20,
            time_budget: Duration::from_secs(30),
            audits: 4,
            fresh_reads: true,
            memory: Arc::new(Recent::default()),
        }
    }

    /// The overlay handle.
    pub fn net(&self) -> &NetHandle {
        &self.net
    }

    fn listing(
        &self,
        via: &NetHandle,
        peer: PeerId,
        deadline: Instant,
    ) -> Box<dyn Listing + Send + '_> {
        match &self.local {
            Some(node) if peer == self.net.peer() => Box::new(node.as_ref()),
            _ => Box::new(
                RemoteListing::new(via.clone(), peer, self.runtime.clone()).with_deadline(deadline),
            ),
        }
    }

    /// What a read of `item` (Δ(d)'s lookup, and reads from Δ(d) and `peers`) goes through:
    /// a fresh reader, or this node; and Δ(d) as it found it.
    fn via(&self, item: &Item, peers: &[PeerId]) -> Result<(NetHandle, Vec<PeerId>), NetError> {
        let key = dht_key(&item.key());
        if !self.fresh_reads {
            let nodes = self.runtime.block_on(self.net.listing_nodes(&key))?;
            return Ok((self.net.clone(), nodes));
        }
        let reader = self.runtime.block_on(self.net.reader(&key, peers))?;
        let nodes = self.runtime.block_on(reader.listing_nodes(&key))?;
        Ok((reader, nodes))
    }

    /// The certificate each of `nodes` showed `via` when it was selected for Δ(d): a read
    /// names it, so a scheme-M node leaves it out of its head. Every reader holds it alike
    /// (selection requires it), so naming it tells the node nothing about who reads.
    fn certificates(
        &self,
        via: &NetHandle,
        nodes: &[PeerId],
    ) -> HashMap<PeerId, candor_core::SignedCertificate> {
        let certs = self
            .runtime
            .block_on(via.certificates(nodes))
            .unwrap_or_default();
        nodes
            .iter()
            .zip(certs)
            .filter_map(|(p, c)| Some((*p, c?)))
            .collect()
    }

    /// `peer`'s certificate for a monitor: the one its reader selected it with, else the one
    /// this node holds (it published there), else asked of the peer and checked. A monitor so
    /// names it exactly as a buyer does, and cannot be told apart by a head that carries it.
    /// None only if the peer shows no valid certificate (its head then carries one, judged).
    fn certificate_of(
        &self,
        via: &NetHandle,
        peer: PeerId,
    ) -> Option<candor_core::SignedCertificate> {
        if let Some(c) = self.certificates(via, &[peer]).remove(&peer) {
            return Some(c);
        }
        if let Some(c) = self.certificates(&self.net, &[peer]).remove(&peer) {
            return Some(c);
        }
        let deadline = Instant::now() + self.time_budget;
        let cert = candor_listing::certificate_of(self.listing(via, peer, deadline).as_ref())?;
        cert.verify_for(&self.trusted, &to_candor_peer(&peer))
            .is_ok()
            .then_some(cert)
    }

    /// Keeps what a verified answer's device signed.
    fn remember(&self, peer: &PeerId, r: &NodeReport) {
        if let NodeReport::Verified(o) = r {
            let seen = o.statements();
            if !seen.is_empty() {
                self.memory.remember(&to_candor_peer(peer), seen);
            }
        }
    }

    /// Δ(d). Blocks: call from a blocking thread.
    pub fn listing_nodes(&self, item: &Item) -> Result<Vec<PeerId>, NetError> {
        self.runtime
            .block_on(self.net.listing_nodes(&dht_key(&item.key())))
    }

    /// Publishes `offer` to Δ(d) (all of it, or the closest), checking each receipt.
    /// Blocks: call from a blocking thread.
    pub fn publish(&self, offer: &SignedOffer, now: u64) -> Result<PublishReport, NetError> {
        let item = Item::from_canonical(&offer.offer.description)
            .map_err(|e| NetError::Lookup(format!("the offer's description: {e}")))?;
        let listing_nodes = self.listing_nodes(&item)?;
        let targets: Vec<PeerId> = if self.publish_to_all {
            listing_nodes.clone()
        } else {
            listing_nodes.iter().take(1).copied().collect()
        };
        let deadline = Instant::now() + self.time_budget;
        let results = std::thread::scope(|s| {
            let jobs: Vec<_> = targets
                .iter()
                .map(|p| {
                    let p = *p;
                    s.spawn(move || {
                        (
                            p,
                            publish_checked(
                                self.listing(&self.net, p, deadline).as_ref(),
                                &self.trusted,
                                offer,
                                now,
                            ),
                        )
                    })
                })
                .collect();
            jobs.into_iter()
                .filter_map(|j| j.join().ok())
                .collect::<Vec<_>>()
        });
        let kept = results
            .iter()
            .filter_map(|(p, c)| c.kept.clone().map(|r| (*p, r)))
            .collect();
        Ok(PublishReport {
            listing_nodes,
            results: results.into_iter().map(|(p, c)| (p, c.verdict)).collect(),
            kept,
        })
    }

    /// Retrieves `item` from every node of Δ(d), each checked independently.
    /// Blocks: call from a blocking thread.
    pub fn retrieve(&self, item: &Item, now: u64) -> Result<RetrieveReport, NetError> {
        let (via, listing_nodes) = self.via(item, &[])?;
        let certs = self.certificates(&via, &listing_nodes);
        let deadline = Instant::now() + self.time_budget;
        let budget = per_node(self.budget, self.retrieve_bytes, listing_nodes.len());
        let reports = std::thread::scope(|s| {
            let jobs: Vec<_> = listing_nodes
                .iter()
                .map(|p| {
                    let p = *p;
                    let via = &via;
                    let cert = certs.get(&p).cloned();
                    s.spawn(move || {
                        let known = self.memory.recall(&to_candor_peer(&p));
                        let r = retrieve_from(
                            self.listing(via, p, deadline).as_ref(),
                            &self.trusted,
                            item,
                            Reading::new(budget)
                                .at(now)
                                .audits(self.audits)
                                .knowing(known)
                                .naming(cert),
                        );
                        let report = NodeReport::from(r);
                        self.remember(&p, &report);
                        (p, report)
                    })
                })
                .collect();
            jobs.into_iter()
                .filter_map(|j| j.join().ok())
                .collect::<Vec<_>>()
        });
        let offers = current_offers(
            reports
                .iter()
                .filter_map(|(_, r)| match r {
                    NodeReport::Verified(o) => Some(o.offers().into_iter().map(|o| &o.offer)),
                    _ => None,
                })
                .flatten(),
            now,
        );
        Ok(RetrieveReport {
            item: item.clone(),
            listing_nodes,
            reports,
            offers,
        })
    }

    /// A seller's monitoring retrieve of its receipted offers at `peer`.
    pub fn monitor(
        &self,
        peer: PeerId,
        item: &Item,
        mine: &[(SignedOffer, PublishReceipt)],
    ) -> NodeReport {
        // A monitor looks Δ(d) up like a buyer, through its own reader, so the two cannot be
        // told apart by what comes before the read.
        let via = match self.via(item, &[peer]) {
            Ok((v, _)) => v,
            Err(e) => return NodeReport::Unreachable(e.to_string()),
        };
        let cert = self.certificate_of(&via, peer);
        let deadline = Instant::now() + self.time_budget;
        let known = self.memory.recall(&to_candor_peer(&peer));
        let report = NodeReport::from(monitor(
            self.listing(&via, peer, deadline).as_ref(),
            &self.trusted,
            item,
            mine,
            Reading::new(self.budget)
                .audits(self.audits)
                .knowing(known)
                .naming(cert),
        ));
        self.remember(&peer, &report);
        report
    }
}

/// Each node's budget when `nodes` share `total` bytes.
fn per_node(budget: Budget, total: u64, nodes: usize) -> Budget {
    let share = total / (nodes.max(1) as u64);
    Budget {
        max_bytes: budget.max_bytes.min(share),
        ..budget
    }
}

/// The candor PeerId of a libp2p one (for reports).
pub fn short(peer: &PeerId) -> String {
    to_candor_peer(peer).short()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retrieve_shares_its_bytes_among_the_listing_nodes() {
        let b = Budget::default();
        assert_eq!(per_node(b, 256 << 20, 3).max_bytes, b.max_bytes);
        assert_eq!(per_node(b, 256 << 20, 8).max_bytes, 32 << 20);
        assert_eq!(per_node(b, 256 << 20, 0).max_bytes, b.max_bytes);
        assert_eq!(per_node(b, 256 << 20, 8).max_entries, b.max_entries);
    }
}

//! The listing node as a network service: inbound publishes go through the group committer,
//! retrieves and re-issues are answered from the node.

use crate::swarm::Service;
use crate::wire::{PublishRequest, PublishResponse, RefusalCode, Refused, RetrieveAnswer};
use candor_device::TrustedDevice;
use candor_listing::{
    certificate_of, Committer, CommitterError, Listing, ListingNode, PublishError, Query,
    RefusalKind, ServeError,
};
use libp2p::PeerId;
use std::sync::Arc;

/// A listing node serving the network.
pub struct ListingService<D> {
    node: Arc<ListingNode<D>>,
    committer: Committer,
    clock: fn() -> u64,
}

impl<D> std::fmt::Debug for ListingService<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingService").finish_non_exhaustive()
    }
}

/// Unix seconds from the system clock.
pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<D: TrustedDevice + 'static> ListingService<D> {
    /// Serves `node`; publishes are group-committed in batches of up to 256.
    pub fn new(node: Arc<ListingNode<D>>, clock: fn() -> u64) -> Self {
        let committer = Committer::spawn(node.clone(), 256, 4096);
        Self {
            node,
            committer,
            clock,
        }
    }

    /// The node.
    pub fn node(&self) -> &Arc<ListingNode<D>> {
        &self.node
    }

    /// Stops accepting publishes once the queued ones are committed.
    pub fn shutdown(self) {
        self.committer.shutdown();
    }
}

fn refusal(e: &CommitterError) -> Refused {
    let code = match e {
        CommitterError::Publish(PublishError::Malformed(_))
        | CommitterError::Publish(PublishError::Invalid(_))
        | CommitterError::Publish(PublishError::Expired { .. })
        | CommitterError::Publish(PublishError::ExpiryTooLong { .. }) => RefusalCode::Invalid,
        CommitterError::Busy
        | CommitterError::Stopped
        | CommitterError::Publish(PublishError::Reconciling(_))
        | CommitterError::Publish(PublishError::Unavailable(_)) => RefusalCode::Unavailable,
        _ => RefusalCode::Failed,
    };
    Refused::new(code, e.to_string())
}

impl<D: TrustedDevice + 'static> Service for ListingService<D> {
    fn publish(&self, from: PeerId, request: PublishRequest) -> PublishResponse {
        match self.committer.publish(request.0, (self.clock)()) {
            Ok(published) => PublishResponse::Accepted(self.node.answer_publish(&published)),
            Err(e) => {
                tracing::debug!(%from, %e, "publish refused");
                PublishResponse::Refused(refusal(&e))
            }
        }
    }

    fn retrieve(&self, _from: PeerId, query: Query) -> RetrieveAnswer {
        match self.node.answer(&query) {
            Ok(bytes) => RetrieveAnswer::Answer(bytes),
            Err(e) => {
                let code = match e {
                    ServeError::NoSuchStep(_) | ServeError::HistoryGone { .. } => {
                        RefusalCode::NotFound
                    }
                    ServeError::WrongScheme | ServeError::UnknownCounter(_) => RefusalCode::Invalid,
                    ServeError::Reconciling(_) | ServeError::Busy(_) => RefusalCode::Unavailable,
                    _ => RefusalCode::Failed,
                };
                RetrieveAnswer::Refused(Refused::new(code, e.to_string()))
            }
        }
    }

    fn certificate(&self) -> Option<candor_core::SignedCertificate> {
        Some(self.node.certificate().clone())
    }

    fn reissue(&self, _from: PeerId, request: PublishRequest) -> PublishResponse {
        match self.node.reissue(&request.0) {
            Ok(Some(published)) => PublishResponse::Accepted(self.node.answer_publish(&published)),
            Ok(None) => PublishResponse::Refused(Refused::new(
                RefusalCode::NotFound,
                "this node has not counted that offer",
            )),
            Err(e @ ServeError::WrongScheme) => {
                PublishResponse::Refused(Refused::new(RefusalCode::Invalid, e.to_string()))
            }
            Err(e) => PublishResponse::Refused(Refused::new(RefusalCode::Failed, e.to_string())),
        }
    }
}

/// The refusal code a served listing's refusal goes out with: "busy" stays retryable.
fn code_of(e: &candor_listing::Refusal) -> RefusalCode {
    match e.kind {
        RefusalKind::Busy => RefusalCode::Unavailable,
        _ => RefusalCode::Failed,
    }
}

/// Serves any [`candor_listing::Listing`] (for instance a cheating node from the adversary
/// suite) to the network, one request at a time.
#[derive(Debug)]
pub struct ServeListing<L>(pub L);

impl<L: Listing + Send + Sync + 'static> Service for ServeListing<L> {
    fn publish(&self, _from: PeerId, request: PublishRequest) -> PublishResponse {
        match self.0.publish(&request.0, system_clock()) {
            Ok(answer) => PublishResponse::Accepted(answer),
            Err(e) => PublishResponse::Refused(Refused::new(code_of(&e), e.reason)),
        }
    }

    fn retrieve(&self, _from: PeerId, query: Query) -> RetrieveAnswer {
        match self.0.ask(&query) {
            Ok(bytes) => RetrieveAnswer::Answer(bytes),
            Err(e) => RetrieveAnswer::Refused(Refused::new(code_of(&e), e.reason)),
        }
    }

    fn certificate(&self) -> Option<candor_core::SignedCertificate> {
        certificate_of(&self.0)
    }

    fn reissue(&self, _from: PeerId, _request: PublishRequest) -> PublishResponse {
        PublishResponse::Refused(Refused::new(
            RefusalCode::NotFound,
            "re-issue is not served here",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that is reconciling after a failed write, or not taking publishes, answers
    /// "unavailable" (the client retries, then reports busy, not a refusal); an invalid offer
    /// is refused as invalid.
    #[test]
    fn a_reconciling_node_answers_unavailable_not_failed() {
        for e in [
            CommitterError::Publish(PublishError::Reconciling("a failed write".into())),
            CommitterError::Publish(PublishError::Unavailable("shutting down")),
            CommitterError::Busy,
            CommitterError::Stopped,
        ] {
            assert_eq!(refusal(&e).code, RefusalCode::Unavailable, "{e}");
        }
        let expired = CommitterError::Publish(PublishError::Expired { expiry: 1, now: 2 });
        assert_eq!(refusal(&expired).code, RefusalCode::Invalid);
    }
}

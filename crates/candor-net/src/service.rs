//! The listing node as a network service: inbound publishes go through the group committer,
//! retrieves and re-issues are answered from the node.

use crate::swarm::Service;
use crate::wire::{
    PublishRequest, PublishResponse, RefusalCode, Refused, RetrieveAnswer, RetrieveMsg,
};
use candor_device::TrustedDevice;
use candor_listing::{Committer, CommitterError, ListingNode, PublishError, Published};
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
        | CommitterError::Publish(PublishError::Expired { .. }) => RefusalCode::Invalid,
        CommitterError::Busy | CommitterError::Stopped => RefusalCode::Unavailable,
        _ => RefusalCode::Failed,
    };
    Refused::new(code, e.to_string())
}

impl<D: TrustedDevice + 'static> Service for ListingService<D> {
    fn publish(&self, from: PeerId, request: PublishRequest) -> PublishResponse {
        match self.committer.publish_any(request.0, (self.clock)()) {
            Ok(Published::Counted(receipt)) => PublishResponse::Accepted {
                cert: self.node.certificate().clone(),
                receipt,
            },
            Ok(Published::Stepped(receipt)) => PublishResponse::Stepped {
                cert: self.node.certificate().clone(),
                receipt,
            },
            Err(e) => {
                tracing::debug!(%from, %e, "publish refused");
                PublishResponse::Refused(refusal(&e))
            }
        }
    }

    fn retrieve(&self, _from: PeerId, request: RetrieveMsg) -> RetrieveAnswer {
        let merkle = self.node.certificate().cert.scheme == candor_core::Scheme::Merkle;
        let answer = match request {
            RetrieveMsg::Head(h) if merkle => self
                .node
                .m_head(&h)
                .map(|h| RetrieveAnswer::MHead(Box::new(h))),
            RetrieveMsg::Head(h) => self.node.head(&h).map(RetrieveAnswer::Head),
            RetrieveMsg::Page(p) => self.node.page(&p).map(RetrieveAnswer::Page),
            RetrieveMsg::MPage(p) => self.node.m_page(&p).map(RetrieveAnswer::MPage),
            RetrieveMsg::MProveAt(d, v) => self
                .node
                .m_prove_at(&d, v)
                .map(|p| RetrieveAnswer::MPast(Box::new(p))),
            RetrieveMsg::Cert => Ok(RetrieveAnswer::Cert(Box::new(
                self.node.certificate().clone(),
            ))),
            RetrieveMsg::MStep(v) => match self.node.m_step(v) {
                Ok(Some(sp)) => Ok(RetrieveAnswer::MStep(Box::new(sp))),
                Ok(None) => Ok(RetrieveAnswer::Refused(Refused::new(
                    RefusalCode::NotFound,
                    format!("no step {v}"),
                ))),
                Err(e) => Err(e),
            },
        };
        answer.unwrap_or_else(|e| {
            RetrieveAnswer::Refused(Refused::new(RefusalCode::Failed, e.to_string()))
        })
    }

    fn certificate(&self) -> Option<candor_core::SignedCertificate> {
        Some(self.node.certificate().clone())
    }

    fn reissue(&self, _from: PeerId, request: PublishRequest) -> PublishResponse {
        match self.node.reissue(&request.0) {
            Ok(Some(receipt)) => PublishResponse::Accepted {
                cert: self.node.certificate().clone(),
                receipt,
            },
            Ok(None) => PublishResponse::Refused(Refused::new(
                RefusalCode::NotFound,
                "this node has not counted that offer",
            )),
            Err(e) => PublishResponse::Refused(Refused::new(RefusalCode::Failed, e.to_string())),
        }
    }
}

/// Serves any [`candor_listing::Listing`] (for instance a cheating node from the adversary
/// suite) to the network, one request at a time.
#[derive(Debug)]
pub struct ServeListing<L>(pub L);

impl<L: candor_listing::Listing + Send + Sync + 'static> Service for ServeListing<L> {
    fn publish(&self, _from: PeerId, request: PublishRequest) -> PublishResponse {
        match self.0.publish_any(&request.0, system_clock()) {
            Ok(candor_listing::AnyReply::Counted(r)) => PublishResponse::Accepted {
                cert: r.cert,
                receipt: r.receipt,
            },
            Ok(candor_listing::AnyReply::Stepped(cert, receipt)) => {
                PublishResponse::Stepped { cert, receipt }
            }
            Err(e) => PublishResponse::Refused(Refused::new(RefusalCode::Failed, e.reason)),
        }
    }

    fn retrieve(&self, _from: PeerId, request: RetrieveMsg) -> RetrieveAnswer {
        let r = match request {
            RetrieveMsg::Head(h) => self.0.head_any(&h).map(|h| match h {
                candor_listing::AnyHead::Counted(h) => RetrieveAnswer::Head(h),
                candor_listing::AnyHead::Stepped(h) => RetrieveAnswer::MHead(h),
            }),
            RetrieveMsg::Page(p) => self.0.page(&p).map(RetrieveAnswer::Page),
            RetrieveMsg::MPage(p) => self.0.m_page(&p).map(RetrieveAnswer::MPage),
            RetrieveMsg::MProveAt(d, v) => self
                .0
                .m_prove_at(&d, v)
                .map(|p| RetrieveAnswer::MPast(Box::new(p))),
            RetrieveMsg::Cert => self
                .0
                .certificate()
                .map(|c| RetrieveAnswer::Cert(Box::new(c)))
                .ok_or_else(|| candor_listing::Refusal::refused("no certificate")),
            RetrieveMsg::MStep(v) => self.0.m_step(v).map(|s| RetrieveAnswer::MStep(Box::new(s))),
        };
        r.unwrap_or_else(|e| RetrieveAnswer::Refused(Refused::new(RefusalCode::Failed, e.reason)))
    }

    fn certificate(&self) -> Option<candor_core::SignedCertificate> {
        self.0.certificate()
    }

    fn reissue(&self, _from: PeerId, _request: PublishRequest) -> PublishResponse {
        PublishResponse::Refused(Refused::new(
            RefusalCode::NotFound,
            "re-issue is not served here",
        ))
    }
}

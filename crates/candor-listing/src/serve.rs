//! The honest node's answers, whatever carries them: a publish (or a batch of them) and each
//! [`Query`], dispatched once on the protocol of the node's certificate.

use crate::listing::{Listing, PublishAnswer, Query, Refusal};
use crate::node::{ListingNode, PublishError, ServeError};
use candor_core::{Encode, PeerId, Protocol, Receipt, SignedOffer, StepReceipt};
use candor_device::TrustedDevice;

/// A durable receipt from the node, as its scheme makes it.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per publish; boxing the common case buys nothing
pub enum Published {
    /// Schemes B and C: the entry's `Inc`.
    Entry(Receipt),
    /// Scheme M: the whole step.
    Step(Box<StepReceipt>),
}

impl Published {
    /// The entry's receipt, if this is one (schemes B and C).
    pub fn as_entry(&self) -> Option<&Receipt> {
        match self {
            Self::Entry(r) => Some(r),
            Self::Step(_) => None,
        }
    }

    /// The step's receipt, if this is one (scheme M).
    pub fn as_step(&self) -> Option<&StepReceipt> {
        match self {
            Self::Step(r) => Some(r),
            Self::Entry(_) => None,
        }
    }

    /// The receipt, encoded (what a [`PublishAnswer`] carries).
    pub fn receipt_bytes(&self) -> Vec<u8> {
        match self {
            Self::Entry(r) => r.to_bytes(),
            Self::Step(r) => r.to_bytes(),
        }
    }
}

impl<D: TrustedDevice> ListingNode<D> {
    /// Publishes a batch of offers, as the node's scheme counts them: one pending write, one
    /// device call (per counter, in scheme C), one store commit; every receipt is durable
    /// before it is returned.
    pub fn publish_all(
        &self,
        offers: &[SignedOffer],
        now: u64,
    ) -> Vec<Result<Published, PublishError>> {
        match self.protocol() {
            Protocol::Entries => self
                .publish_entries(offers, now)
                .into_iter()
                .map(|r| r.map(Published::Entry))
                .collect(),
            Protocol::Steps => self
                .publish_steps(offers, now)
                .into_iter()
                .map(|r| r.map(|r| Published::Step(Box::new(r))))
                .collect(),
        }
    }

    /// Publishes a batch and stops at `crash`, as a crash there would (crash tests only).
    #[cfg(feature = "fault-injection")]
    pub fn publish_all_crashing(&self, offers: &[SignedOffer], now: u64, crash: crate::CrashAt) {
        match self.protocol() {
            Protocol::Entries => self.publish_entries_crashing(offers, now, crash),
            Protocol::Steps => self.publish_steps_crashing(offers, now, crash),
        }
    }

    /// The receipt again for an offer this node counted (a seller that lost its receipt asks
    /// again), or `None` if it counted no such offer. Scheme M keeps no receipt per offer (a
    /// receipt is a whole step, and the seller checks inclusion with a retrieve), so an M node
    /// refuses ([`ServeError::WrongScheme`]).
    pub fn reissue(&self, offer: &SignedOffer) -> Result<Option<Published>, ServeError> {
        match self.protocol() {
            Protocol::Entries => Ok(self.reissue_entry(offer)?.map(Published::Entry)),
            Protocol::Steps => Err(ServeError::WrongScheme),
        }
    }

    /// Publishes one offer and answers as a transport carries it.
    pub fn publish_answer(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, PublishError> {
        let published = self
            .publish_all(std::slice::from_ref(offer), now)
            .pop()
            .unwrap_or(Err(PublishError::Unavailable("no result")))?;
        Ok(self.answer_publish(&published))
    }

    /// The [`PublishAnswer`] for a receipt.
    pub fn answer_publish(&self, published: &Published) -> Vec<u8> {
        PublishAnswer {
            cert: self.certificate().clone(),
            receipt: published.receipt_bytes(),
        }
        .to_bytes()
    }

    /// Answers a [`Query`] as the node's scheme does; a query of the other protocol is
    /// refused ([`ServeError::WrongScheme`]).
    pub fn answer(&self, query: &Query) -> Result<Vec<u8>, ServeError> {
        Ok(match (query, self.protocol()) {
            (Query::Certificate, _) => self.certificate().to_bytes(),
            (Query::Head(req), Protocol::Entries) => self.entries_head(req)?.to_bytes(),
            (Query::Head(req), Protocol::Steps) => {
                self.step_head(req)?.encode_for(req.cert.as_ref())
            }
            (Query::Page(req), Protocol::Entries) => self.entries_page(req)?.to_bytes(),
            (Query::List(req), Protocol::Steps) => self.list_page(req)?.to_bytes(),
            (Query::Step(v), Protocol::Steps) => self
                .step_proof_at(*v)?
                .ok_or(ServeError::NoSuchStep(*v))?
                .to_bytes(),
            (Query::ProveAt(d, v), Protocol::Steps) => self.past_proof(d, *v)?.to_bytes(),
            (Query::Page(_), Protocol::Steps)
            | (Query::List(_) | Query::Step(_) | Query::ProveAt(..), Protocol::Entries) => {
                return Err(ServeError::WrongScheme)
            }
        })
    }
}

impl<D: TrustedDevice> Listing for ListingNode<D> {
    fn peer(&self) -> PeerId {
        ListingNode::peer(self).clone()
    }
    fn publish(&self, offer: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        self.publish_answer(offer, now).map_err(|e| match e {
            PublishError::Reconciling(_) | PublishError::Unavailable(_) => {
                Refusal::busy(e.to_string())
            }
            _ => Refusal::refused(e.to_string()),
        })
    }
    fn ask(&self, query: &Query) -> Result<Vec<u8>, Refusal> {
        self.answer(query).map_err(|e| match e {
            ServeError::Reconciling(_) | ServeError::Busy(_) => Refusal::busy(e.to_string()),
            _ => Refusal::refused(e.to_string()),
        })
    }
}

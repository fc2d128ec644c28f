//! A node whose signed `Read` committed it to an answer cannot leave by refusing what comes
//! next (issue 10's review): a refused or malformed page or audit after the `Read` is a failed
//! check (`refused-after-read`); a node that became unreachable or stayed busy is not verified
//! but not called a cheat (an honest node can crash mid-answer); a refusal before the `Read`
//! is only a refusal.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{
    retrieve_any, AnyHead, AnyReply, Listing, PublishReply, Refusal, RefusalKind,
};
use common::*;

/// Answers heads honestly and then fails every page and audit in the way `how` says; or
/// (`before`) fails the head itself.
struct Quits<'a> {
    inner: &'a dyn Listing,
    how: RefusalKind,
    before: bool,
}

impl Quits<'_> {
    fn fail<T>(&self) -> Result<T, Refusal> {
        Err(Refusal {
            kind: self.how,
            reason: "stopped".into(),
        })
    }
}

impl Listing for Quits<'_> {
    fn peer(&self) -> PeerId {
        self.inner.peer()
    }
    fn publish(&self, o: &SignedOffer, now: u64) -> Result<PublishReply, Refusal> {
        self.inner.publish(o, now)
    }
    fn head(&self, r: &RetrieveRequest) -> Result<RetrieveHead, Refusal> {
        if self.before {
            return self.fail();
        }
        self.inner.head(r)
    }
    fn page(&self, _: &PageRequest) -> Result<Page, Refusal> {
        self.fail()
    }
    fn head_any(&self, r: &RetrieveRequest) -> Result<AnyHead, Refusal> {
        if self.before {
            return self.fail();
        }
        self.inner.head_any(r)
    }
    fn publish_any(&self, o: &SignedOffer, now: u64) -> Result<AnyReply, Refusal> {
        self.inner.publish_any(o, now)
    }
    fn publish_m(
        &self,
        o: &SignedOffer,
        now: u64,
    ) -> Result<(SignedCertificate, MReceipt), Refusal> {
        self.inner.publish_m(o, now)
    }
    fn m_head(&self, r: &RetrieveRequest) -> Result<MHead, Refusal> {
        self.inner.m_head(r)
    }
    fn m_page(&self, r: &MPageRequest) -> Result<MPage, Refusal> {
        // Scheme M: the list is served; the audits are what the node dodges.
        self.inner.m_page(r)
    }
    fn m_step(&self, _: u64) -> Result<StepProof, Refusal> {
        self.fail()
    }
    fn m_prove_at(&self, d: &ItemKey, v: u64) -> Result<MPast, Refusal> {
        self.inner.m_prove_at(d, v)
    }
}

#[test]
fn a_node_cannot_leave_after_its_read_by_refusing() {
    for scheme in [Scheme::Basic, Scheme::Merkle] {
        let mut m = Market::new();
        let node = m.node(scheme, 1, 1);
        let seller = Keypair::generate(&mut rand_core::OsRng);
        for i in 0..3 {
            candor_listing::publish_to_any(
                &node,
                &m.trusted,
                &offer(&seller, &target(), 10 + i, i + 1),
                NOW,
            )
            .unwrap();
        }
        let kind = |how, before| {
            let q = Quits {
                inner: &node,
                how,
                before,
            };
            retrieve_any(&q, &m.trusted, &target(), Budget::default(), 3, &[])
                .unwrap_err()
                .kind()
        };
        assert_eq!(
            kind(RefusalKind::Refused, false),
            "refused-after-read",
            "{scheme}"
        );
        assert_eq!(
            kind(RefusalKind::Unreachable, false),
            "unreachable",
            "{scheme}"
        );
        assert_eq!(kind(RefusalKind::Busy, false), "timeout", "{scheme}");
        assert_eq!(kind(RefusalKind::Timeout, false), "timeout", "{scheme}");
        // Before the Read the node committed to nothing: a refusal is only that.
        assert_eq!(kind(RefusalKind::Refused, true), "refused", "{scheme}");
        assert!(!Misbehaviour::RefusedAfterRead(String::new()).is_transferable());
    }
}

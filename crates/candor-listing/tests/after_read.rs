//! A node whose signed `Read` committed it to an answer cannot leave by refusing what comes
//! next (issue 10's review): a refused or malformed page or audit after the `Read` is a failed
//! check (`refused-after-read`); a node that became unreachable or stayed busy is not verified
//! but not called a cheat (an honest node can crash mid-answer); a refusal before the `Read`
//! is only a refusal.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use candor_core::*;
use candor_listing::{retrieve_from, Listing, Query, Reading, Refusal, RefusalKind};
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
    fn publish(&self, o: &SignedOffer, now: u64) -> Result<Vec<u8>, Refusal> {
        self.inner.publish(o, now)
    }
    fn ask(&self, q: &Query) -> Result<Vec<u8>, Refusal> {
        match q {
            Query::Head(_) if self.before => self.fail(),
            // Scheme M: the list is served; the audits are what the node dodges.
            Query::Head(_) | Query::List(_) | Query::ProveAt(..) | Query::Certificate => {
                self.inner.ask(q)
            }
            Query::Page(_) | Query::Step(_) => self.fail(),
        }
    }
}

#[test]
fn a_node_cannot_leave_after_its_read_by_refusing() {
    for scheme in [Scheme::Basic, Scheme::Merkle] {
        let mut m = Market::new();
        let node = m.node(scheme, 1, 1);
        let seller = Keypair::generate(&mut rand_core::OsRng);
        for i in 0..3 {
            candor_listing::publish_to(
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
            retrieve_from(&q, &m.trusted, &target(), Reading::default().audits(3))
                .unwrap_err()
                .kind()
        };
        assert_eq!(
            kind(RefusalKind::Refused, false),
            Kind::RefusedAfterRead,
            "{scheme}"
        );
        assert_eq!(
            kind(RefusalKind::Unreachable, false),
            Kind::Unreachable,
            "{scheme}"
        );
        assert_eq!(kind(RefusalKind::Busy, false), Kind::Timeout, "{scheme}");
        assert_eq!(kind(RefusalKind::Timeout, false), Kind::Timeout, "{scheme}");
        // Before the Read the node committed to nothing: a refusal is only that.
        assert_eq!(kind(RefusalKind::Refused, true), Kind::Refused, "{scheme}");
        assert!(!Misbehaviour::RefusedAfterRead(String::new()).is_transferable());
    }
}

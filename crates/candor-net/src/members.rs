//! Who may count as a member of Δ(d): only peers that showed a certificate that verifies (by
//! a trusted authority, for their PeerId). Kademlia takes any peer that speaks its protocol
//! into its tables, so a foreign or uncertified peer with a PeerId ground next to an item
//! would otherwise push a listing node out of Δ(d) (DESIGN.md §10 will replace this with the
//! authority's roster).

use crate::swarm::to_candor_peer;
use crate::wire::RetrieveAnswer;
use candor_core::{Decode, PublicKey};
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most peers whose certificate state is kept (older entries are forgotten first).
const MAX_KNOWN: usize = 10_000;

/// How long a peer that showed no valid certificate is not asked again.
const RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
enum State {
    /// Asked at this time; no answer yet.
    Asked(Instant),
    /// Showed this valid certificate.
    Certified(Box<candor_core::SignedCertificate>),
    /// Showed none, or an invalid one, at this time.
    Not(Instant),
}

/// Where a lookup's members are sent once known.
pub(crate) type MembersReply =
    tokio::sync::oneshot::Sender<Result<Vec<PeerId>, crate::swarm::NetError>>;

/// A lookup waiting for certificates: its candidates (closest first), the reply, the deadline.
pub(crate) type Waiting = (Vec<PeerId>, MembersReply, Instant);

/// What the selection of Δ(d) came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// The members, closest first.
    Done(Vec<PeerId>),
    /// Wait for the certificates of these peers (ask the ones not asked yet).
    Wait(Vec<PeerId>),
}

/// The certificate state of the peers this node met.
#[derive(Debug, Default)]
pub(crate) struct Members {
    trusted: Vec<PublicKey>,
    states: HashMap<PeerId, State>,
}

impl Members {
    /// Members certified by one of `trusted` (none: any authority whose signature verifies;
    /// the certificate must still name the peer).
    pub(crate) fn new(trusted: Vec<PublicKey>) -> Self {
        Self {
            trusted,
            states: HashMap::new(),
        }
    }

    /// Whether `peer`'s certificate should be asked for now (and notes that it is).
    pub(crate) fn should_ask(&mut self, peer: PeerId, now: Instant) -> bool {
        let ask = match self.states.get(&peer) {
            None => true,
            Some(State::Not(t)) => now.duration_since(*t) > RETRY_AFTER,
            Some(State::Asked(t)) => now.duration_since(*t) > RETRY_AFTER,
            Some(State::Certified(_)) => false,
        };
        if ask {
            if self.states.len() >= MAX_KNOWN {
                self.states.retain(|_, s| matches!(s, State::Certified(_)));
            }
            self.states.insert(peer, State::Asked(now));
        }
        ask
    }

    /// Takes `peer`'s answer to a certificate request (None: the request failed); returns
    /// whether the peer is now certified.
    pub(crate) fn on_answer(&mut self, peer: PeerId, answer: Option<&[u8]>, now: Instant) -> bool {
        // A busy or rate-limited peer is not a peer without a certificate: ask again soon.
        if let Some(Ok(RetrieveAnswer::Refused(r))) = answer.map(RetrieveAnswer::from_bytes) {
            if matches!(
                r.code,
                crate::wire::RefusalCode::RateLimited | crate::wire::RefusalCode::Unavailable
            ) {
                self.states.remove(&peer);
                return false;
            }
        }
        let cert = answer.and_then(|bytes| self.verifies(peer, bytes));
        if cert.is_none() {
            tracing::debug!(%peer, "peer showed no valid certificate: not a member of any Δ(d)");
        }
        let ok = cert.is_some();
        self.states.insert(
            peer,
            match cert {
                Some(c) => State::Certified(Box::new(c)),
                None => State::Not(now),
            },
        );
        ok
    }

    /// The certificate in `bytes` if it verifies for `peer`.
    fn verifies(&self, peer: PeerId, bytes: &[u8]) -> Option<candor_core::SignedCertificate> {
        let Ok(RetrieveAnswer::Answer(cert)) = RetrieveAnswer::from_bytes(bytes) else {
            return None;
        };
        let Ok(cert) = candor_core::SignedCertificate::from_bytes(&cert) else {
            return None;
        };
        let own = [cert.cert.authority];
        let trusted = if self.trusted.is_empty() {
            &own[..]
        } else {
            &self.trusted[..]
        };
        cert.verify_for(trusted, &to_candor_peer(&peer))
            .is_ok()
            .then_some(cert)
    }

    /// Takes `peer`'s certificate as checked (by this process's node, against the same
    /// authorities, when it selected the peer): a reader seeded with it need not ask again.
    pub(crate) fn checked(&mut self, peer: PeerId, cert: candor_core::SignedCertificate) {
        if self.states.len() < MAX_KNOWN {
            self.states.insert(peer, State::Certified(Box::new(cert)));
        }
    }

    /// Whether `peer` showed a valid certificate.
    pub(crate) fn certified(&self, peer: &PeerId) -> bool {
        matches!(self.states.get(peer), Some(State::Certified(_)))
    }

    /// The valid certificate `peer` showed, checked (every reader that selects a peer for
    /// Δ(d) holds it, so naming it in a retrieve tells the peer nothing about the reader).
    pub(crate) fn certificate(&self, peer: &PeerId) -> Option<candor_core::SignedCertificate> {
        match self.states.get(peer) {
            Some(State::Certified(c)) => Some((**c).clone()),
            _ => None,
        }
    }

    /// Answers the lookups in `waiting` whose members are known (or whose time to wait is
    /// over) and keeps the others; returns the peers whose certificates to ask for.
    pub(crate) fn serve(
        &self,
        waiting: &mut Vec<Waiting>,
        k: usize,
        me: PeerId,
        now: Instant,
    ) -> Vec<PeerId> {
        let mut ask = Vec::new();
        let mut still = Vec::new();
        for (sorted, reply, deadline) in std::mem::take(waiting) {
            match self.select(&sorted, k, me, now, deadline) {
                Selection::Done(members) => {
                    let _ = reply.send(Ok(members));
                }
                Selection::Wait(peers) => {
                    ask.extend(peers);
                    still.push((sorted, reply, deadline));
                }
            }
        }
        *waiting = still;
        ask
    }

    /// The first `k` members among `sorted` (closest first; `me` counts without a
    /// certificate check). Before `deadline`, a peer still unanswered ahead of the k-th
    /// member makes the caller wait for it; after, it is passed over.
    pub(crate) fn select(
        &self,
        sorted: &[PeerId],
        k: usize,
        me: PeerId,
        now: Instant,
        deadline: Instant,
    ) -> Selection {
        let mut out = Vec::with_capacity(k);
        let mut wait = Vec::new();
        for p in sorted {
            if out.len() >= k {
                break;
            }
            match (*p == me, self.states.get(p)) {
                (true, _) | (false, Some(State::Certified(_))) => out.push(*p),
                (false, Some(State::Not(_))) => {}
                (false, _) if now < deadline => wait.push(*p),
                (false, _) => {}
            }
        }
        if wait.is_empty() {
            Selection::Done(out)
        } else {
            Selection::Wait(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    #[allow(clippy::unwrap_used)]
    fn cert() -> candor_core::SignedCertificate {
        use candor_core::{Authority, Ed25519StatementSigner, EnrolRequest, Keypair, Registry};
        let mut rng = rand_core::OsRng;
        let node = Keypair::generate(&mut rng);
        let peer = candor_core::PeerId::from_ed25519(&node.public());
        let signer = Ed25519StatementSigner::new(Keypair::generate(&mut rng), peer);
        let req = EnrolRequest::new(
            &node,
            signer.device_key(),
            candor_core::Scheme::Merkle,
            vec![signer.sign_read(0, 0, [1; 32])],
            None,
        );
        Authority::new(Keypair::generate(&mut rng))
            .certify(&mut Registry::default(), &req, [1; 32], 0)
            .unwrap()
    }

    #[test]
    fn only_certified_peers_and_me_are_selected_and_unknown_ones_are_waited_for() {
        let mut m = Members::new(Vec::new());
        let now = Instant::now();
        let (me, a, b, c) = (peer(), peer(), peer(), peer());
        let a_cert = cert();
        m.states
            .insert(a, State::Certified(Box::new(a_cert.clone())));
        // The certificate a member showed is kept for the readers that select it.
        assert_eq!(m.certificate(&a), Some(a_cert));
        assert_eq!(m.certificate(&b), None);
        m.states.insert(b, State::Not(now));
        assert!(m.should_ask(c, now));
        assert!(!m.should_ask(c, now), "asked once");
        let later = now + Duration::from_secs(5);
        assert_eq!(
            m.select(&[b, c, a, me], 2, me, now, later),
            Selection::Wait(vec![c])
        );
        assert_eq!(
            m.select(&[b, c, a, me], 2, me, later, later),
            Selection::Done(vec![a, me])
        );
        // A garbage answer, or none, is no certificate.
        m.on_answer(c, Some(&[1, 2, 3]), now);
        assert!(!m.certified(&c));
        m.on_answer(c, None, now);
        assert!(!m.certified(&c));
        assert_eq!(
            m.select(&[b, c, a, me], 3, me, now, later),
            Selection::Done(vec![a, me])
        );
    }
}

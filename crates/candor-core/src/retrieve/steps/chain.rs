//! What a scheme-M head says about the past: the chain of gap steps to t, and the statements
//! a reader already holds checked against it.

use super::Head;
use crate::cert::CertifiedCounter;
use crate::keys::PeerId;
use crate::merkle::{HeadStep, SignedStep, StepHead, MAX_GAP_STEPS};
use crate::misbehaviour::{Evidence, Misbehaviour};
use crate::statement::SignedInc;
use crate::verify::check_signed_step;

/// The gap steps on the chain to t, as far as a head carries them.
pub(super) struct GapChain {
    /// Newest first.
    pub(super) steps: Vec<SignedStep>,
    /// A verdict only volume or gaps justify (a gap step wider than the reader takes, a
    /// chain longer than a head carries): held back until the list and the audits are done,
    /// so a node cannot reach for it to escape them.
    pub(super) deferred: Option<Misbehaviour>,
    /// The lowest value the carried steps describe: below it, a chain longer than a head
    /// carries may skip values the reader cannot see, so audits are drawn from here up.
    pub(super) floor: u64,
}

/// Checks the head's gap steps: each signed, a gap step, the one the step before names
/// (starting from the step at t), ending at `stop` or below it (the base, or the audit
/// horizon the head names: no audit goes below it). Their number and width are judged later
/// (after the list and the audits); a chain longer than a head can carry is checked as far
/// as it goes.
pub(super) fn gap_chain(
    head: &StepHead,
    peer: &PeerId,
    counter: &CertifiedCounter,
    max_width: u64,
    stop: u64,
) -> Result<GapChain, Misbehaviour> {
    let mut deferred = None;
    let mut expected = head
        .step
        .as_ref()
        .map_or(counter.initial, HeadStep::last_gap);
    let mut chain = Vec::with_capacity(head.gaps.len());
    let t = head.read.read.value;
    for g in &head.gaps {
        // Every gap step on the chain to t lies at or below t: one signed after the Read
        // cannot answer for values the buyer audits.
        if g.header.value > t {
            return Err(Misbehaviour::BadStep(
                "the head lists a gap step above the value it read",
            ));
        }
        if expected == counter.initial {
            return Err(Misbehaviour::BadStep(
                "the head lists a gap step beyond the chain's last",
            ));
        }
        check_signed_step(&head.cert, peer, counter, g)?;
        crate::verify::gap_header_holds(&g.header)?;
        let Some((first, last)) = g.header.gap() else {
            return Err(Misbehaviour::BadStep(
                "the head's gap steps are not the ones the chain names",
            ));
        };
        if g.header.value != expected {
            return Err(Misbehaviour::BadStep(
                "the head's gap steps are not the ones the chain names",
            ));
        }
        let width = last - first + 1;
        if width > max_width && deferred.is_none() {
            deferred = Some(Misbehaviour::GapTooWide {
                value: g.header.value,
                width,
                max: max_width,
            });
        }
        expected = g.header.gap_link;
        chain.push(g.clone());
    }
    let mut floor = counter.initial.saturating_add(1);
    if expected > stop {
        if head.gaps.len() < MAX_GAP_STEPS {
            return Err(Misbehaviour::BadStep(
                "the head leaves out a gap step the chain names",
            ));
        }
        // Full: the chain goes on below the oldest carried gap step. What it carries is
        // checked; the rest is the verdict, after the list and the audits above it.
        floor = chain
            .last()
            .and_then(|g| g.header.gap())
            .map_or(floor, |(first, _)| first);
        deferred = deferred.or(Some(Misbehaviour::TooManyGaps {
            max: MAX_GAP_STEPS as u32,
        }));
    }
    Ok(GapChain {
        steps: chain,
        deferred,
        floor,
    })
}

/// Checks the statements the checker already holds against the head: none above t, none
/// skipped by a gap step on the chain, none contradicted by a statement at its value.
pub(super) fn check_known(
    head: &Head,
    step: Option<&SignedInc>,
    known: &[SignedInc],
) -> Result<(), Misbehaviour> {
    let device = head.cert.cert.device.id();
    let peer = &head.cert.cert.peer;
    for k in known {
        let i = &k.inc;
        if i.device != device
            || &i.peer != peer
            || i.counter != head.counter.id
            || head.cert.cert.device.verify_inc(k).is_err()
        {
            continue;
        }
        if i.value > head.t {
            return Err(Misbehaviour::ReadBelowReceipt {
                t: head.t,
                receipted: i.value,
            });
        }
        let at_value = step
            .into_iter()
            .chain(head.gaps.iter().map(|g| &g.inc))
            .find(|s| s.inc.value == i.value);
        if let Some(s) = at_value {
            if s.inc.payload != i.payload {
                return Err(Misbehaviour::Evidence(Box::new(Evidence::Equivocation {
                    cert: head.cert.clone(),
                    a: k.clone(),
                    b: s.clone(),
                })));
            }
        }
        if let Some(gap) = head.gap_over(i.value) {
            return Err(Misbehaviour::Evidence(Box::new(Evidence::GapStepOverInc {
                cert: head.cert.clone(),
                inc: k.clone(),
                gap: Box::new(gap.clone()),
            })));
        }
    }
    Ok(())
}

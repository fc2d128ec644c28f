//! The audit horizon a scheme-M head carries (DESIGN.md §9): the newest step whose batch and
//! proof the node may have dropped. Steps at or below it are never audited, so it must be old
//! enough that every offer a step below it could have touched has expired.

use crate::cert::{CertifiedCounter, SignedCertificate};
use crate::keys::PeerId;
use crate::merkle::SignedStep;
use crate::misbehaviour::{Evidence, Misbehaviour};
use crate::statement::SignedInc;
use crate::verify::check_signed_step;

/// Where the head's gap chain may stop: at the horizon `h` when it is a step the device signed
/// in base+1..t−1 dated before the checker's window (a clock disagreement near the edge
/// included: an honest node may land there), else at the base — so a horizon that fails, or
/// one too recent, cannot leave gap steps out. A recent horizon under a step at t dated
/// `ahead` of the checker's clock still stops it: the checker's clock lags, an honest node
/// then looks recent too, and the answer is a clock disagreement, never used. The horizon's
/// full check comes later, after the statements the reader holds.
pub(super) fn stop(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    h: Option<&SignedStep>,
    t: u64,
    now: u64,
    ahead: bool,
) -> u64 {
    let Some(h) = h else {
        return counter.initial;
    };
    let value = h.header.value;
    let rules = cert.cert.time;
    let recent = !ahead
        && h.header.at
            >= rules
                .window_edge(now)
                .saturating_add(2 * u64::from(rules.skew));
    if value <= counter.initial
        || value >= t
        || recent
        || check_signed_step(cert, peer, counter, h).is_err()
    {
        return counter.initial;
    }
    value
}

/// What the head says of the chain, against which its horizon is checked.
pub(super) struct Chain<'a> {
    pub(super) cert: &'a SignedCertificate,
    pub(super) peer: &'a PeerId,
    pub(super) counter: &'a CertifiedCounter,
    /// The `Read`'s value.
    pub(super) t: u64,
    /// The gap steps on the chain to t the head carries.
    pub(super) gaps: &'a [SignedStep],
    /// The step at t's `Inc`.
    pub(super) step: Option<&'a SignedInc>,
    /// The statements the reader holds (its receipts, steps it saw before).
    pub(super) known: &'a [SignedInc],
}

/// Checks the head's horizon `h` against the chain to t: a step the device signed, above the
/// base and below t (an honest node's horizon is dated before its last step, so it is never
/// the step at t, which would leave nothing to audit), at a value the chain does not skip, and the very statement the
/// chain (or the reader) has at its value (another payload at one value is equivocation).
/// Returns the verdict its time earns at the checker's clock `now`, which waits for the audits
/// above it: a horizon dated inside the window (now − L_max − skew) hides steps whose offers
/// may still be live ([`Misbehaviour::RecentBoundary`]); one within 2·skew of the window's
/// edge is a clock disagreement, as for a scheme B/C window boundary.
pub(super) fn check_horizon(
    chain: &Chain<'_>,
    h: &SignedStep,
    now: u64,
) -> Result<Option<Misbehaviour>, Misbehaviour> {
    let Chain {
        cert,
        peer,
        counter,
        t,
        gaps,
        step,
        known,
    } = *chain;
    check_signed_step(cert, peer, counter, h)?;
    let value = h.header.value;
    let device = cert.cert.device.id();
    let theirs = known.iter().filter(|k| {
        k.inc.device == device
            && &k.inc.peer == peer
            && k.inc.counter == counter.id
            && cert.cert.device.verify_inc(k).is_ok()
    });
    for s in step
        .into_iter()
        .chain(gaps.iter().map(|g| &g.inc))
        .chain(theirs)
    {
        if s.inc.value == value && s.inc.payload != h.inc.inc.payload {
            return Err(Misbehaviour::Evidence(Box::new(Evidence::Equivocation {
                cert: cert.clone(),
                a: h.inc.clone(),
                b: s.clone(),
            })));
        }
    }
    if value <= counter.initial || value >= t {
        return Err(Misbehaviour::BadStep(
            "the audit horizon is not a step in base+1..t",
        ));
    }
    if gaps.iter().any(|g| {
        g.header
            .gap()
            .is_some_and(|(first, last)| first <= value && value <= last)
    }) {
        return Err(Misbehaviour::BadStep(
            "the audit horizon is a value the chain skips",
        ));
    }
    let rules = cert.cert.time;
    let edge = rules.window_edge(now);
    let at = h.header.at;
    Ok(if at >= edge.saturating_add(2 * u64::from(rules.skew)) {
        Some(Misbehaviour::RecentBoundary { at, edge })
    } else if at >= edge {
        Some(Misbehaviour::ClockDisagreement {
            at,
            now,
            skew: rules.skew,
        })
    } else {
        None
    })
}

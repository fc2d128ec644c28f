//! Schemes B and C: a receipt is the entry's `Inc`; a retrieve pages every value of the
//! item's counter from the node's base to the `Read`'s t (the core's [`Retrieval`]).

use super::Opened;
use crate::listing::{Query, Refusal};
use candor_core::{
    check_receipt, Decode, Misbehaviour, Outcome, PeerId, PublicKey, Receipt, Retrieval,
    SignedCertificate, SignedOffer,
};

/// The seller's check of a publish answer from a node whose certificate names B or C.
pub(super) fn check_publish(
    trusted: &[PublicKey],
    peer: &PeerId,
    cert: &SignedCertificate,
    offer: &SignedOffer,
    receipt: &[u8],
) -> Result<Receipt, Misbehaviour> {
    let receipt = Receipt::from_bytes(receipt)?;
    check_receipt(trusted, peer, cert, offer, &receipt)?;
    Ok(receipt)
}

/// Whether a fresh B/C receipt's node time is within the certificate's skew of the seller's
/// clock `now` (DESIGN.md §9): if not, a clock disagreement, and the receipt is not accepted
/// (the seller keeps it for monitoring all the same).
pub(super) fn fresh(
    cert: &SignedCertificate,
    receipt: &Receipt,
    now: u64,
) -> Result<(), Misbehaviour> {
    let skew = cert.cert.time.skew;
    if receipt.at.abs_diff(now) > u64::from(skew) {
        return Err(Misbehaviour::ClockDisagreement {
            at: receipt.at,
            now,
            skew,
        });
    }
    Ok(())
}

/// Drives a B/C retrieve from its head: pages until the core's checker has every value of
/// the window up to t, holding the node to `watching` (a seller's receipts, each with its
/// offer's bytes) and to what the reader knew.
pub(super) fn read(
    o: Opened<'_>,
    watching: Vec<(Receipt, Vec<u8>)>,
) -> Result<Outcome, Misbehaviour> {
    let mut s = Retrieval::new(
        o.trusted.to_vec(),
        o.node.peer(),
        o.item.clone(),
        o.nonce,
        o.reading.budget,
        o.reading.now,
    )
    .watching(watching)
    .knowing(o.reading.known.iter().cloned());
    let mut next = s.on_head_bytes(o.head)?;
    while let Some(req) = next {
        let page = o.node.ask(&Query::Page(req)).map_err(Refusal::after_read)?;
        next = s.on_page_bytes(&page)?;
    }
    s.finish()
}

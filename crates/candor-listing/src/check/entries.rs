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

/// Drives a B/C retrieve from its head: pages until the core's checker has every value up
/// to t, holding the node to `watching` (a seller's receipts) and to what the reader knew.
pub(super) fn read(o: Opened<'_>, watching: Vec<Receipt>) -> Result<Outcome, Misbehaviour> {
    let mut s = Retrieval::new(
        o.trusted.to_vec(),
        o.node.peer(),
        o.item.clone(),
        o.nonce,
        o.reading.budget,
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

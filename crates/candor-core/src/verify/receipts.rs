//! The seller's check of a scheme B/C receipt at publish.

use crate::cert::SignedCertificate;
use crate::encoding::Encode;
use crate::entry::{entry_payload, Receipt};
use crate::keys::{PeerId, PublicKey};
use crate::misbehaviour::Misbehaviour;
use crate::offer::SignedOffer;

/// Checks the receipt `receipt` that node `peer`, certified by `cert`, returned for `offer`.
///
/// The seller accepts only an `Inc` from the device certified for the PeerId it published to,
/// by an authority it trusts, on the counter the certificate assigns to the item, above the
/// counter's initial value, binding exactly `H(entry ‖ PeerId ‖ counter ‖ at ‖ offer bytes)`,
/// and an offer within the certificate's lifetime at the receipt's node time (DESIGN.md §9).
/// Whether `at` agrees with the seller's clock is the caller's check: it needs a clock.
pub fn check_receipt(
    trusted: &[PublicKey],
    peer: &PeerId,
    cert: &SignedCertificate,
    offer: &SignedOffer,
    receipt: &Receipt,
) -> Result<(), Misbehaviour> {
    cert.verify_for(trusted, peer)?;
    crate::verify::statements::require_counted(cert)?;
    if receipt.cert_id != cert.id() {
        return Err(Misbehaviour::BadReceipt("it names another certificate"));
    }
    let inc = &receipt.inc.inc;
    let counter = cert.cert.counter_for(&offer.offer.key);
    crate::verify::statements::check_inc(cert, peer, &counter, &receipt.inc)?;
    if inc.payload != entry_payload(peer, counter.id, receipt.at, &offer.to_bytes()) {
        return Err(Misbehaviour::BadReceipt("the Inc does not bind this offer"));
    }
    if offer.offer.expiry > cert.cert.time.latest_expiry(receipt.at) {
        return Err(Misbehaviour::Evidence(Box::new(
            crate::misbehaviour::Evidence::OverlongEntry {
                cert: cert.clone(),
                inc: receipt.inc.clone(),
                at: receipt.at,
                bytes: offer.to_bytes(),
            },
        )));
    }
    Ok(())
}

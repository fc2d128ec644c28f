//! Scheme M: a receipt is the whole step; a retrieve is the item's list under the step at t
//! (the core's [`StepRetrieval`]), then steps drawn at random and checked whole.

use super::{Opened, PublishReceipt};
use crate::listing::{Listing, Query, Refusal};
use candor_core::{
    check_step_receipt, past_len, verify_past, BudgetKind, Decode, Item, ListPage, ListRequest,
    Misbehaviour, PastProof, PeerId, Placement, PublicKey, SignedCertificate, SignedOffer,
    StepOutcome, StepReceipt, StepRetrieval, MAX_LIST_PAGE,
};

/// The seller's check of a publish answer from a node whose certificate names M: the whole
/// step verified, and the offer's place in its item's list.
pub(super) fn check_publish(
    trusted: &[PublicKey],
    peer: &PeerId,
    cert: &SignedCertificate,
    offer: &SignedOffer,
    receipt: &[u8],
) -> Result<(StepReceipt, Placement), Misbehaviour> {
    let receipt = StepReceipt::from_bytes(receipt)?;
    let placement = check_step_receipt(trusted, peer, cert, offer, &receipt)?;
    Ok((receipt, placement))
}

/// Whether a fresh M receipt's node time is within the certificate's skew of the seller's
/// clock `now` (DESIGN.md §9): if not, a clock disagreement, and the receipt is not accepted.
pub(super) fn fresh(
    cert: &SignedCertificate,
    receipt: &PublishReceipt,
    now: u64,
) -> Result<(), Misbehaviour> {
    let PublishReceipt::Step(r, _) = receipt else {
        return Ok(());
    };
    let at = r.step.step.header.at;
    let skew = cert.cert.time.skew;
    if at.abs_diff(now) > u64::from(skew) {
        return Err(Misbehaviour::ClockDisagreement { at, now, skew });
    }
    Ok(())
}

/// Drives an M retrieve from its head: the item's list in pages, checked against its leaf
/// under the root at t, then `audits` steps drawn at random and checked whole (an unanswered
/// audit fails the retrieve). A monitor's receipted offers (`mine`) are held to their steps
/// and checked still at their index with the same chain prefix right after the list, before
/// the audits; it audits like a buyer, so a node cannot tell the two apart by their requests.
pub(super) fn read(
    o: Opened<'_>,
    mine: &[(SignedOffer, StepReceipt, Placement)],
) -> Result<StepOutcome, Misbehaviour> {
    let mut r = StepRetrieval::new(
        o.trusted.to_vec(),
        o.node.peer(),
        o.item.clone(),
        o.nonce,
        o.reading.budget,
        o.reading.now,
    )
    .knowing(mine.iter().map(|(_, r, _)| r.step.step.inc.clone()))
    .knowing(o.reading.known.iter().cloned());
    if let Some(cert) = o.named {
        r = r.with_certificate(cert.clone());
    }
    if !mine.is_empty() {
        r = r.monitoring();
    }
    let mut next = r.on_head_bytes(o.head)?;
    while let Some(req) = next {
        let page = o.node.ask(&Query::List(req)).map_err(Refusal::after_read)?;
        next = r.on_page_bytes(&page)?;
    }
    r.check_list()?;
    // The seller's offers are checked against the signed leaf before any audit: a node that
    // removed one cannot dodge the evidence by stalling or refusing an audit.
    r.check_placements(mine)?;
    for v in r.plan_audits(o.reading.audits, &mut rand_core::OsRng) {
        let step = o.node.ask(&Query::Step(v)).map_err(Refusal::after_read)?;
        r.on_audit_bytes(v, &step)?;
    }
    r.finish()
}

/// What item d's list was after a past step `value` of a scheme-M node, proved under that
/// step's signed root (DESIGN.md §5), within `budget`: the leaf is checked under the root
/// before the list is fetched, so the list's length is the node's signed word. A node whose
/// certificate names B or C has no such roots: its answer fails the check.
pub fn retrieve_at(
    node: &dyn Listing,
    trusted: &[PublicKey],
    item: &Item,
    value: u64,
    budget: candor_core::Budget,
) -> Result<Vec<SignedOffer>, Misbehaviour> {
    let bytes = node
        .ask(&Query::ProveAt(item.key(), value))
        .map_err(Refusal::into_misbehaviour)?;
    let mut taken = bytes.len() as u64;
    let past = PastProof::from_bytes(&bytes)?;
    let n = past_len(trusted, &node.peer(), item, value, &past)?;
    if n > budget.max_entries {
        return Err(Misbehaviour::OverBudget(BudgetKind::Entries));
    }
    // Judged by the signed length before any page is taken (as a retrieve does): pages
    // cannot then be padded past the budget.
    if taken.saturating_add(ListPage::most_bytes(n)) > budget.max_bytes {
        return Err(Misbehaviour::OverBudget(BudgetKind::Bytes));
    }
    let mut list: Vec<Vec<u8>> = Vec::new();
    while (list.len() as u64) < n {
        let want = (n - list.len() as u64).min(MAX_LIST_PAGE as u64) as u32;
        let bytes = node
            .ask(&Query::List(ListRequest {
                item: item.key(),
                value,
                from: list.len() as u64,
                count: want,
            }))
            .map_err(Refusal::after_read)?;
        let page = ListPage::from_bytes(&bytes)?;
        if page.offers.is_empty() || page.offers.len() > want as usize {
            return Err(Misbehaviour::Truncated {
                next: list.len() as u64,
                t: n,
            });
        }
        taken = taken.saturating_add(bytes.len() as u64);
        if taken > budget.max_bytes {
            return Err(Misbehaviour::OverBudget(BudgetKind::Bytes));
        }
        list.extend(page.offers);
    }
    verify_past(trusted, &node.peer(), item, value, &past, &list)
}

//! The checks of scheme M: a step whole (sellers, auditors), a receipt, a removal, a proof
//! under a past root. The prover (`crate::merkle`'s state) is elsewhere.

#[allow(unused_imports)]
use crate::merkle::*;
#[allow(unused_imports)]
use crate::verify::statements::Sig;
#[allow(unused_imports)]
use crate::{
    cert::{CertifiedCounter, SignedCertificate},
    encoding::{Decode, DecodeError, Encode, Reader, Writer},
    hash::{tags, Digest, TaggedHasher},
    item::{Item, ItemKey},
    keys::{PeerId, PublicKey},
    misbehaviour::Misbehaviour,
    offer::{SignedOffer, MAX_OFFER_BYTES},
    smt::{MultiProof, Smt, DEPTH, EMPTY},
    statement::{CounterId, SignedInc, SignedRead},
};
use std::collections::BTreeMap;

pub(crate) fn check_signed_step(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedStep,
) -> Result<(), Misbehaviour> {
    check_signed_step_with(cert, peer, counter, s, Sig::Check)
}

/// [`check_signed_step`], the `Inc`'s signature verified here or already in a batch.
pub(crate) fn check_signed_step_with(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedStep,
    sig: Sig,
) -> Result<(), Misbehaviour> {
    let inc = &s.inc.inc;
    crate::verify::statements::check_inc_with(cert, peer, counter, &s.inc, sig)?;
    if s.header.counter != counter.id {
        return Err(Misbehaviour::WrongCounter {
            expected: counter.id,
            got: s.header.counter,
        });
    }
    if inc.value != s.header.value || inc.payload != s.header.payload(peer) {
        return Err(Misbehaviour::BadStep(
            "the Inc does not bind this step header",
        ));
    }
    Ok(())
}

/// Node time never goes backwards along a counter (DESIGN.md §9): `earlier` (a lower value)
/// binding a later `at` than `later` is transferable evidence. Judged wherever two signed
/// steps of one node meet: a seller's or auditor's whole check, a buyer's head.
pub(crate) fn at_forwards(
    cert: &SignedCertificate,
    earlier: &HeadStep,
    later: &HeadStep,
) -> Result<(), Misbehaviour> {
    if earlier.value() < later.value() && earlier.at() > later.at() {
        return Err(Misbehaviour::Evidence(Box::new(
            crate::misbehaviour::Evidence::AtBackwards {
                cert: cert.clone(),
                a: Box::new(earlier.clone()),
                b: Box::new(later.clone()),
            },
        )));
    }
    Ok(())
}

/// [`check_signed_step_with`] for the step at t as a head carries it (an ordinary step's top,
/// or a whole gap step).
pub(crate) fn check_head_step_with(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &HeadStep,
    sig: Sig,
) -> Result<(), Misbehaviour> {
    let (top, inc) = match s {
        HeadStep::Whole(s) => return check_signed_step_with(cert, peer, counter, s, sig),
        HeadStep::Top { top, inc } => (top, inc),
    };
    crate::verify::statements::check_inc_with(cert, peer, counter, inc, sig)?;
    if top.counter != counter.id {
        return Err(Misbehaviour::WrongCounter {
            expected: counter.id,
            got: top.counter,
        });
    }
    if inc.inc.value != top.value || inc.inc.payload != top.payload(peer) {
        return Err(Misbehaviour::BadStep(
            "the Inc does not bind this step header",
        ));
    }
    Ok(())
}

/// What a gap step's header alone must say (DESIGN.md §7: an empty step over lost values):
/// no offers, no removals, the root unchanged. Checked wherever a gap step comes whole, so a
/// gap step that rewrote the tree is caught with certainty, not only by an audit.
pub(crate) fn gap_header_holds(h: &StepHeader) -> Result<(), Misbehaviour> {
    if h.gap().is_some()
        && (h.batch_len != 0
            || h.batch_root != batch_root(&[])
            || h.new_root != h.prev_root
            || h.removal_count != 0
            || h.removal_root != Digest::default())
    {
        return Err(Misbehaviour::BadStep(
            "a gap step holds offers or changed the root",
        ));
    }
    Ok(())
}

/// The root after the step at `value`: the empty root at the base (and no step), else the
/// step's new root, once `check` passed and the step (value, new root) is the one at exactly
/// that value.
fn root_after(
    counter: &CertifiedCounter,
    value: u64,
    step: Option<(u64, Digest)>,
    check: impl FnOnce() -> Result<(), Misbehaviour>,
) -> Result<Digest, Misbehaviour> {
    match (step, value == counter.initial) {
        (None, true) => Ok(empty_root()),
        (Some((at, root)), false) => {
            check()?;
            if at != value {
                return Err(Misbehaviour::BadStep(
                    "the step is not the one at that value",
                ));
            }
            Ok(root)
        }
        _ => Err(Misbehaviour::BadStep(
            "the step at that value is missing or extra",
        )),
    }
}

/// The root after the step at `value` a head carries (see [`root_after`]), its `Inc` checked
/// here or already in a batch.
pub(crate) fn head_root_with(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    step: Option<&HeadStep>,
    value: u64,
    sig: Sig,
) -> Result<Digest, Misbehaviour> {
    root_after(
        counter,
        value,
        step.map(|s| (s.value(), s.new_root())),
        || match step {
            Some(s) => check_head_step_with(cert, peer, counter, s, sig),
            None => Ok(()),
        },
    )
}

/// The root after the signed step at `value` (see [`root_after`]).
pub(crate) fn root_at(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    step: Option<&SignedStep>,
    value: u64,
) -> Result<Digest, Misbehaviour> {
    root_after(
        counter,
        value,
        step.map(|s| (s.header.value, s.header.new_root)),
        || match step {
            Some(s) => check_signed_step(cert, peer, counter, s),
            None => Ok(()),
        },
    )
}

/// Checks a whole step (DESIGN.md §5, the seller's and the auditor's check). Returns where
/// each batch offer landed, in batch order.
pub fn verify_step(
    cert: &SignedCertificate,
    peer: &PeerId,
    sp: &StepProof,
) -> Result<Vec<Placement>, Misbehaviour> {
    let counter = crate::verify::statements::require_stepped(cert)?;
    check_signed_step(cert, peer, &counter, &sp.step)?;
    let h = &sp.step.header;
    // The batch and the removals first: evidence they carry (an over-long expiry, an
    // unjustified removal) rests on the signed header alone, so no other fault the node adds
    // to the step can turn it into a local verdict.
    // The batch: each a valid offer; batch_root over exactly these.
    // The signatures are verified in one batch (the step's offers are its bulk).
    let mut pairs = Vec::with_capacity(sp.batch.len());
    let mut adds = Vec::with_capacity(sp.batch.len());
    let mut signatures = crate::keys::BatchVerifier::new();
    let mut overlong: Option<u32> = None;
    let mut keys_hold = true;
    for bytes in &sp.batch {
        let o = SignedOffer::from_bytes(bytes)
            .map_err(|_| Misbehaviour::BadStep("a batch entry is not an offer"))?;
        keys_hold &= o.check_key().is_ok();
        // DESIGN.md §9: no offer is listed longer than L_max − 2·skew past the step's time
        // (an honest node refuses it at publish).
        if overlong.is_none() && o.offer.expiry > cert.cert.time.latest_expiry(h.at) {
            overlong = Some(pairs.len() as u32);
        }
        o.queue_signature(&mut signatures);
        pairs.push((o.offer.key, offer_hash(bytes)));
        adds.push(o);
    }
    if batch_root(&pairs) != h.batch_root {
        return Err(Misbehaviour::BadStep(
            "batch_root does not cover exactly the batch",
        ));
    }
    // Evidence as soon as the batch is the step's, before the offers' own keys and
    // signatures are judged: a bad offer beside it cannot turn it into a local verdict.
    if let Some(position) = overlong {
        return Err(Misbehaviour::Evidence(Box::new(
            crate::misbehaviour::Evidence::OverlongExpiry {
                cert: cert.clone(),
                step: Box::new(sp.step.clone()),
                batch: sp.batch.clone(),
                position,
            },
        )));
    }
    let gone = removals_of(h, &sp.removed)?;
    // Each removal justified (DESIGN.md §9), judged as soon as the removals are the step's
    // (the removal root binds them), before any other check of the header: an unjustified
    // one is evidence whatever else the node got wrong beside it.
    if let Some(index) = unjustified(h, &adds, &gone) {
        return Err(Misbehaviour::Evidence(Box::new(
            crate::misbehaviour::Evidence::UnjustifiedRemoval {
                cert: cert.clone(),
                step: Box::new(sp.step.clone()),
                batch: sp.batch.clone(),
                removed: sp.removed.clone(),
                index,
            },
        )));
    }
    gap_header_holds(h)?;
    if h.prev_value < counter.initial || h.prev_value >= h.value {
        return Err(Misbehaviour::BadStep(
            "the step follows a value outside the counter's range",
        ));
    }
    if h.gap().is_some() && (h.batch_len != 0 || !sp.batch.is_empty()) {
        return Err(Misbehaviour::BadStep("a gap step holds offers"));
    }
    // Chaining with the step before (for a gap step, the last step before the lost values).
    let (prev_root, prev_total, prev_last_gap) = if h.prev_value == counter.initial {
        if sp.prev.is_some() {
            return Err(Misbehaviour::BadStep("a step before the first step"));
        }
        (empty_root(), 0, counter.initial)
    } else {
        let prev = sp
            .prev
            .as_ref()
            .ok_or(Misbehaviour::BadStep("the step before is missing"))?;
        check_signed_step(cert, peer, &counter, prev)?;
        if prev.header.value != h.prev_value {
            return Err(Misbehaviour::BadStep(
                "the step before is not the one before",
            ));
        }
        at_forwards(cert, &HeadStep::of(prev), &HeadStep::of(&sp.step))?;
        (
            prev.header.new_root,
            prev.header.total_offers,
            prev.header.last_gap(),
        )
    };
    if h.gap_link != prev_last_gap {
        return Err(Misbehaviour::BadStep(
            "the step's gap link is not the last gap step before it",
        ));
    }
    if h.prev_root != prev_root {
        return Err(match &sp.prev {
            Some(prev) => {
                Misbehaviour::Evidence(Box::new(crate::misbehaviour::Evidence::RootsDoNotChain {
                    cert: cert.clone(),
                    a: Box::new(prev.clone()),
                    b: Box::new(sp.step.clone()),
                }))
            }
            None => Misbehaviour::BadStep("the first step does not start from the empty root"),
        });
    }
    if h.batch_len as usize != sp.batch.len()
        || prev_total.checked_add(u64::from(h.batch_len)) != Some(h.total_offers)
    {
        return Err(Misbehaviour::BadStep(
            "the batch length or the offer total is wrong",
        ));
    }
    if !keys_hold || !signatures.verify_all() {
        return Err(Misbehaviour::BadStep("a batch offer is invalid"));
    }
    // Touched keys: exactly the items of the batch and of the removals, sorted, each with its
    // old list.
    let touched: std::collections::BTreeSet<ItemKey> = adds
        .iter()
        .map(|o| o.offer.key)
        .chain(gone.iter().map(|(d, _, _)| *d))
        .collect();
    if sp.old.len() != touched.len() || sp.old.iter().zip(&touched).any(|((a, _), b)| a != b) {
        return Err(Misbehaviour::BadStep(
            "the touched keys are not the items the step adds to or removes from",
        ));
    }
    let placements: Vec<Placement> = pairs
        .iter()
        .map(|(d, hash)| Placement {
            item: *d,
            hash: *hash,
        })
        .collect();
    if touched.is_empty() {
        // An empty step (or a gap step) has nothing to prove: any proof bytes would be
        // another encoding of the same step.
        if h.new_root != h.prev_root || sp.proof != MultiProof::default() {
            return Err(Misbehaviour::BadStep("an empty step changed the root"));
        }
        return Ok(placements);
    }
    let mut old_leaves = Vec::with_capacity(sp.old.len());
    let mut new_leaves = Vec::with_capacity(sp.old.len());
    for (d, old) in &sp.old {
        old_leaves.push((d.0 .0, old.as_ref().map(|l| l.leaf().value_hash())));
        let new = next_list(h, d, old.as_ref(), &adds, &pairs, &gone)?;
        new_leaves.push((d.0 .0, new.value_hash()));
    }
    let bad = |_| Misbehaviour::BadStep("the transition proof does not fit");
    if sp.proof.root(&old_leaves).map_err(bad)? != h.prev_root {
        return Err(Misbehaviour::BadStep(
            "the touched keys' old lists are not under prev_root",
        ));
    }
    if sp.proof.root_after(&new_leaves).map_err(bad)? != h.new_root {
        return Err(Misbehaviour::BadStep(
            "new_root is not the old tree with exactly the step's additions and removals",
        ));
    }
    Ok(placements)
}

/// The removed offers, decoded, with their items and hashes: sorted by item then list place,
/// and exactly those the removal root and count bind.
fn removals_of(
    h: &StepHeader,
    removed: &[Vec<u8>],
) -> Result<Vec<(ItemKey, Digest, SignedOffer)>, Misbehaviour> {
    let gone = removed
        .iter()
        .map(|b| {
            SignedOffer::from_bytes(b)
                .map(|o| (o.offer.key, offer_hash(b), o))
                .map_err(|_| Misbehaviour::BadStep("a removed record is not an offer"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<(ItemKey, Digest)> = gone.iter().map(|(d, o, _)| (*d, *o)).collect();
    let root = if pairs.is_empty() {
        Digest::default()
    } else {
        removal_root(&pairs)
    };
    if h.removal_count as usize != gone.len() || root != h.removal_root {
        return Err(Misbehaviour::BadStep(
            "the removal root does not cover exactly the removed offers",
        ));
    }
    let sorted = gone
        .windows(2)
        .all(|w| (w[0].0, SortKey::of(&w[0].2.offer)) < (w[1].0, SortKey::of(&w[1].2.offer)));
    if !sorted {
        return Err(Misbehaviour::BadStep(
            "the removed offers are not in item and list order",
        ));
    }
    Ok(gone)
}

/// Whether `o`, removed by a step at `at` whose batch is `adds`, was justified: expired by
/// `at`, or replaced by a higher serial of its seller for its item that lives at least as
/// long (DESIGN.md §9).
pub(crate) fn removal_justified(at: u64, adds: &[SignedOffer], o: &SignedOffer) -> bool {
    // Only a real offer of that seller replaces: a forged one justifies nothing.
    o.offer.expiry <= at || adds.iter().any(|a| supersedes(a, o) && a.verify().is_ok())
}

/// The index of the first removal the step does not justify. Each batch offer's signature
/// is checked at most once, however many removals name its seller.
fn unjustified(
    h: &StepHeader,
    adds: &[SignedOffer],
    gone: &[(ItemKey, Digest, SignedOffer)],
) -> Option<u32> {
    let mut valid: BTreeMap<usize, bool> = BTreeMap::new();
    gone.iter()
        .position(|(_, _, o)| {
            let justified = o.offer.expiry <= h.at
                || adds.iter().enumerate().any(|(i, a)| {
                    supersedes(a, o) && *valid.entry(i).or_insert_with(|| a.verify().is_ok())
                });
            !justified
        })
        .map(|i| i as u32)
}

/// Whether `a` would replace `o` (same seller and item, higher serial, living at least as
/// long), its signature aside.
fn supersedes(a: &SignedOffer, o: &SignedOffer) -> bool {
    a.offer.key == o.offer.key
        && a.offer.seller == o.offer.seller
        && a.offer.serial > o.offer.serial
        && a.offer.expiry >= o.offer.expiry
}

/// Item `d`'s leaf after the step: its old list (sorted, one record per seller) less the
/// step's removals from it, plus its additions, each in its place; last changed at the step.
fn next_list(
    h: &StepHeader,
    d: &ItemKey,
    old: Option<&OldList>,
    adds: &[SignedOffer],
    pairs: &[(ItemKey, Digest)],
    gone: &[(ItemKey, Digest, SignedOffer)],
) -> Result<Leaf, Misbehaviour> {
    let mut recs: Vec<RecordRef> = old.map(|l| l.records.clone()).unwrap_or_default();
    if recs.windows(2).any(|w| w[0].key >= w[1].key) {
        return Err(Misbehaviour::BadStep("an item's old list is not sorted"));
    }
    for (_, hash, o) in gone.iter().filter(|(e, _, _)| e == d) {
        let key = SortKey::of(&o.offer);
        let pos = recs
            .iter()
            .position(|r| r.hash == *hash && r.key == key)
            .ok_or(Misbehaviour::BadStep(
                "a removed offer is not in its item's old list",
            ))?;
        recs.remove(pos);
    }
    for (a, (_, hash)) in adds.iter().zip(pairs).filter(|(a, _)| a.offer.key == *d) {
        if a.offer.expiry <= h.at {
            return Err(Misbehaviour::BadStep("the step adds an expired offer"));
        }
        let key = SortKey::of(&a.offer);
        if recs.iter().any(|r| r.key.seller == key.seller) {
            return Err(Misbehaviour::BadStep(
                "the step leaves a seller two records for one item",
            ));
        }
        let pos = recs.partition_point(|r| r.key < key);
        recs.insert(pos, RecordRef { key, hash: *hash });
    }
    if recs.len() > MAX_LIVE {
        return Err(Misbehaviour::BadStep(
            "an item's list is longer than a list may be",
        ));
    }
    Ok(Leaf::over(recs, h.value))
}

/// The seller's check of an M receipt: the whole step verifies and holds its offer.
pub fn check_step_receipt(
    trusted: &[PublicKey],
    peer: &PeerId,
    cert: &SignedCertificate,
    offer: &SignedOffer,
    receipt: &StepReceipt,
) -> Result<Placement, Misbehaviour> {
    cert.verify_for(trusted, peer)?;
    if receipt.cert_id != cert.id() {
        return Err(Misbehaviour::BadReceipt("it names another certificate"));
    }
    let placements = verify_step(cert, peer, &receipt.step)?;
    let i = receipt.position as usize;
    match (receipt.step.batch.get(i), placements.get(i)) {
        (Some(b), Some(p)) if *b == offer.to_bytes() => Ok(*p),
        _ => Err(Misbehaviour::BadReceipt(
            "the step does not hold the offer at that position",
        )),
    }
}

/// Checks removal evidence (see [`crate::Evidence::Removal`]).
pub(crate) fn verify_removal(
    cert: &SignedCertificate,
    receipt: &StepProof,
    position: u32,
    later: &HeadStep,
    proof: &MultiProof,
    list: &[Vec<u8>],
    last_changed: u64,
) -> Result<String, &'static str> {
    let peer = &cert.cert.peer;
    let placements =
        verify_step(cert, peer, receipt).map_err(|_| "the receipted step does not verify")?;
    let p = placements
        .get(position as usize)
        .ok_or("no offer at that position")?;
    let offer = receipt
        .batch
        .get(position as usize)
        .and_then(|b| SignedOffer::from_bytes(b).ok())
        .ok_or("no offer at that position")?;
    let counter = crate::verify::statements::require_stepped(cert)
        .map_err(|_| "not a scheme-M certificate")?;
    check_head_step_with(cert, peer, &counter, later, Sig::Check)
        .map_err(|_| "the later step is not signed by the device")?;
    if later.value() < receipt.step.header.value {
        return Err("the later step is not later");
    }
    let leaf = leaf_of(list.iter().map(Vec::as_slice), last_changed)
        .ok_or("the later list holds a non-offer")?;
    // An item whose list was never touched is absent; one emptied keeps an empty leaf.
    let value = (!list.is_empty() || last_changed != 0).then(|| leaf.value_hash());
    proof
        .verify(&later.new_root(), &[(p.item.0 .0, value)])
        .map_err(|_| "the list is not the one under the later root")?;
    if let Some(why) =
        crate::retrieve::steps::still_accounted(list, &p.hash, &offer.offer, later.at())
    {
        return Err(why);
    }
    Ok(format!(
        "node {} receipted an offer in step {}, and step {} signs its item's list without it, unexpired and not replaced",
        peer.short(),
        receipt.step.header.value,
        later.value()
    ))
}

/// Checks unjustified-removal evidence (see [`crate::Evidence::UnjustifiedRemoval`]).
pub(crate) fn verify_unjustified(
    cert: &SignedCertificate,
    step: &SignedStep,
    batch: &[Vec<u8>],
    removed: &[Vec<u8>],
    index: u32,
) -> Result<String, crate::misbehaviour::EvidenceError> {
    use crate::misbehaviour::EvidenceError;
    let peer = &cert.cert.peer;
    let counter = crate::verify::statements::require_stepped(cert)
        .map_err(|_| EvidenceError::NotMisbehaviour("not a scheme-M certificate"))?;
    check_signed_step(cert, peer, &counter, step).map_err(|_| EvidenceError::BadSignature)?;
    let h = &step.header;
    let mut adds = Vec::with_capacity(batch.len());
    let mut pairs = Vec::with_capacity(batch.len());
    for b in batch {
        let o = SignedOffer::from_bytes(b)
            .map_err(|_| EvidenceError::NotMisbehaviour("a batch entry is no offer"))?;
        pairs.push((o.offer.key, offer_hash(b)));
        adds.push(o);
    }
    if batch.len() != h.batch_len as usize || batch_root(&pairs) != h.batch_root {
        return Err(EvidenceError::NotMisbehaviour(
            "the batch is not the one the step counted",
        ));
    }
    let gone = removals_of(h, removed).map_err(|_| {
        EvidenceError::NotMisbehaviour("the removals are not the ones the step counted")
    })?;
    let (_, _, o) = gone
        .get(index as usize)
        .ok_or(EvidenceError::NotMisbehaviour("no removal at that index"))?;
    if removal_justified(h.at, &adds, o) {
        return Err(EvidenceError::NotMisbehaviour("the removal is justified"));
    }
    Ok(format!(
        "node {} removed in step {} an offer that expires at {}, after the step's time {}, with no higher serial of its seller in the step",
        peer.short(),
        h.value,
        o.offer.expiry,
        h.at
    ))
}

/// Checks the leaf of `item` under the root of the past step `value` the checker asked for;
/// returns how many offers the list held then (bound under the signed root, so a budget can
/// be applied before anything is fetched).
pub fn past_len(
    trusted: &[PublicKey],
    peer: &PeerId,
    item: &Item,
    value: u64,
    past: &PastProof,
) -> Result<u64, Misbehaviour> {
    past.cert.verify_for(trusted, peer)?;
    let counter = crate::verify::statements::require_stepped(&past.cert)?;
    if past.value != value {
        return Err(Misbehaviour::BadStep(
            "the proof is under another step than the one asked for",
        ));
    }
    let root = root_at(&past.cert, peer, &counter, past.step.as_ref(), past.value)?;
    let d = item.key();
    past.proof
        .verify(&root, &[(d.0 .0, past.leaf.map(|l| l.value_hash()))])
        .map_err(|_| Misbehaviour::BadProof("the leaf is not the one under that step's root"))?;
    Ok(past.leaf.map_or(0, |l| l.n))
}

/// Checks a proof for `item` under a past step's root with the item's list as it was then
/// (`list`, the first n offers), for the step `value` the checker asked for. Returns the offers.
pub fn verify_past(
    trusted: &[PublicKey],
    peer: &PeerId,
    item: &Item,
    value: u64,
    past: &PastProof,
    list: &[Vec<u8>],
) -> Result<Vec<SignedOffer>, Misbehaviour> {
    let n = past_len(trusted, peer, item, value, past)?;
    if list.len() as u64 != n {
        return Err(Misbehaviour::Truncated {
            next: list.len() as u64,
            t: n,
        });
    }
    let d = item.key();
    let got = past
        .leaf
        .and_then(|l| leaf_of(list.iter().map(Vec::as_slice), l.last_changed));
    if got != past.leaf {
        return Err(Misbehaviour::BadProof(
            "the list is not the one under that step's root",
        ));
    }
    let mut signatures = crate::keys::BatchVerifier::new();
    let offers = list
        .iter()
        .map(|b| {
            let o = SignedOffer::from_bytes(b)
                .map_err(|_| Misbehaviour::BadStep("the list holds a non-offer"))?;
            if o.offer.key != d || o.check_key().is_err() {
                return Err(Misbehaviour::BadStep("the list holds an invalid offer"));
            }
            o.queue_signature(&mut signatures);
            Ok(o)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !signatures.verify_all() {
        return Err(Misbehaviour::BadStep("the list holds an invalid offer"));
    }
    Ok(offers)
}

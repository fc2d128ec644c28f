//! Checking evidence: with nothing but the evidence itself and the trusted authority keys,
//! anyone can verify what a listing node's device signed (DESIGN.md §6).

use crate::cert::SignedCertificate;
use crate::encoding::Decode;
use crate::entry::{entry_payload, gap_payload, PageItem};
use crate::keys::PublicKey;
use crate::misbehaviour::{entry_fault, Evidence, EvidenceError};
use crate::statement::SignedInc;

impl Evidence {
    fn check_inc(cert: &SignedCertificate, s: &SignedInc) -> Result<(), EvidenceError> {
        cert.cert
            .device
            .verify_inc(s)
            .map_err(|_| EvidenceError::BadSignature)?;
        if s.inc.device != cert.cert.device.id() || s.inc.peer != cert.cert.peer {
            return Err(EvidenceError::WrongSubject);
        }
        Ok(())
    }

    /// A scheme B/C item whose `Inc` is the device's, binds the item, and is on a counter the
    /// certificate names above its initial value (the values the certificate holds the node
    /// to: the time rules below are this certificate's).
    fn check_counted(cert: &SignedCertificate, item: &PageItem) -> Result<(), EvidenceError> {
        Self::check_inc(cert, item.inc())?;
        if !item.binds(&cert.cert.peer) {
            return Err(EvidenceError::NotMisbehaviour(
                "an Inc does not bind its item",
            ));
        }
        let i = &item.inc().inc;
        match cert.cert.counter(i.counter) {
            Some(c) if i.value > c.initial => Ok(()),
            _ => Err(EvidenceError::NotMisbehaviour(
                "a value the certificate does not hold the node to",
            )),
        }
    }

    /// A scheme-M step whose `Inc` is the device's and binds its header.
    fn check_step(
        cert: &SignedCertificate,
        s: &crate::merkle::SignedStep,
    ) -> Result<(), EvidenceError> {
        Self::check_inc(cert, &s.inc)?;
        if s.inc.inc.value != s.header.value
            || s.inc.inc.counter != s.header.counter
            || s.inc.inc.payload != s.header.payload(&cert.cert.peer)
        {
            return Err(EvidenceError::NotMisbehaviour(
                "an Inc does not bind its step header",
            ));
        }
        Ok(())
    }

    /// Verifies the evidence with nothing but itself and the trusted authority keys. On
    /// success, returns what it proves, in words.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<String, EvidenceError> {
        let cert = self.cert();
        cert.verify(trusted)?;
        let peer = &cert.cert.peer;
        match self {
            Self::Equivocation { a, b, .. } => {
                Self::check_inc(cert, a)?;
                Self::check_inc(cert, b)?;
                if a.inc.counter != b.inc.counter || a.inc.value != b.inc.value {
                    return Err(EvidenceError::NotMisbehaviour(
                        "different counters or values",
                    ));
                }
                if a.inc.payload == b.inc.payload {
                    return Err(EvidenceError::NotMisbehaviour("the payloads are equal"));
                }
                Ok(format!(
                    "device of node {} signed two payloads for counter {} value {}",
                    peer.short(),
                    a.inc.counter,
                    a.inc.value
                ))
            }
            Self::GapOverReceipt {
                receipt,
                gap,
                at,
                first,
                last,
                ..
            } => {
                Self::check_inc(cert, receipt)?;
                Self::check_inc(cert, gap)?;
                if receipt.inc.counter != gap.inc.counter {
                    return Err(EvidenceError::NotMisbehaviour("different counters"));
                }
                if gap.inc.payload != gap_payload(peer, gap.inc.counter, *at, *first, *last) {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the gap Inc is no gap notice",
                    ));
                }
                let v = receipt.inc.value;
                if v < *first || v > *last {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the gap does not cover the value",
                    ));
                }
                Ok(format!(
                    "node {} issued a gap notice over value {} of counter {}, which it had receipted",
                    peer.short(),
                    v,
                    gap.inc.counter
                ))
            }
            Self::GapStepOverInc { inc, gap, .. } => {
                Self::check_inc(cert, inc)?;
                Self::check_step(cert, gap)?;
                if inc.inc.counter != gap.inc.inc.counter {
                    return Err(EvidenceError::NotMisbehaviour("different counters"));
                }
                let v = inc.inc.value;
                match gap.header.gap() {
                    Some((first, last)) if first <= v && v <= last => Ok(format!(
                        "node {} signed a gap step at value {} over value {} of counter {}, whose Inc had left it",
                        peer.short(),
                        gap.header.value,
                        v,
                        inc.inc.counter
                    )),
                    Some(_) => Err(EvidenceError::NotMisbehaviour(
                        "the gap step does not skip the value",
                    )),
                    None => Err(EvidenceError::NotMisbehaviour("the step is no gap step")),
                }
            }
            Self::RootsDoNotChain { a, b, .. } => {
                for s in [a.as_ref(), b.as_ref()] {
                    Self::check_inc(cert, &s.inc)?;
                    if s.inc.inc.value != s.header.value
                        || s.inc.inc.payload != s.header.payload(peer)
                    {
                        return Err(EvidenceError::NotMisbehaviour(
                            "an Inc does not bind its step header",
                        ));
                    }
                }
                // b follows a: the value before it (for a gap step, the last before the gap).
                if a.inc.inc.counter != b.inc.inc.counter || a.header.value != b.header.prev_value {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the second step does not follow the first",
                    ));
                }
                if a.header.new_root == b.header.prev_root {
                    return Err(EvidenceError::NotMisbehaviour("the roots chain"));
                }
                Ok(format!(
                    "node {} signed step {} from a root that step {} did not end with",
                    peer.short(),
                    b.header.value,
                    a.header.value
                ))
            }
            Self::Removal {
                receipt,
                position,
                later,
                proof,
                list,
                last_changed,
                ..
            } => super::verify_removal(cert, receipt, *position, later, proof, list, *last_changed)
                .map_err(EvidenceError::NotMisbehaviour),
            Self::UnjustifiedRemoval {
                step,
                batch,
                removed,
                index,
                ..
            } => super::verify_unjustified(cert, step, batch, removed, *index),
            Self::AtBackwards { a, b, .. } => {
                let counter = crate::verify::statements::require_stepped(cert)
                    .map_err(|_| EvidenceError::NotMisbehaviour("not a scheme-M certificate"))?;
                for s in [a.as_ref(), b.as_ref()] {
                    super::steps::check_head_step_with(
                        cert,
                        peer,
                        &counter,
                        s,
                        crate::verify::statements::Sig::Check,
                    )
                    .map_err(|_| EvidenceError::BadSignature)?;
                }
                if a.value() >= b.value() {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the first step is not the earlier one",
                    ));
                }
                if a.at() <= b.at() {
                    return Err(EvidenceError::NotMisbehaviour("the time does not go back"));
                }
                Ok(format!(
                    "node {} dated step {} at {} and the later step {} at {}: its time went backwards",
                    peer.short(),
                    a.value(),
                    a.at(),
                    b.value(),
                    b.at()
                ))
            }
            Self::OverlongExpiry {
                step,
                batch,
                position,
                ..
            } => {
                // A step of this certificate's one M counter, above its initial value: the
                // bound below is this certificate's.
                let counter = crate::verify::statements::require_stepped(cert)
                    .map_err(|_| EvidenceError::NotMisbehaviour("not a scheme-M certificate"))?;
                super::steps::check_signed_step(cert, peer, &counter, step)
                    .map_err(|_| EvidenceError::BadSignature)?;
                if step.header.value <= counter.initial {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the step is not above the certificate's initial value",
                    ));
                }
                let h = &step.header;
                let mut pairs = Vec::with_capacity(batch.len());
                for b in batch {
                    let o = crate::offer::SignedOffer::from_bytes(b)
                        .map_err(|_| EvidenceError::NotMisbehaviour("a batch entry is no offer"))?;
                    pairs.push((o.offer.key, crate::merkle::offer_hash(b)));
                }
                if batch.len() != h.batch_len as usize
                    || crate::merkle::batch_root(&pairs) != h.batch_root
                {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the batch is not the one the step counted",
                    ));
                }
                let o = batch
                    .get(*position as usize)
                    .and_then(|b| crate::offer::SignedOffer::from_bytes(b).ok())
                    .ok_or(EvidenceError::NotMisbehaviour("no offer at that position"))?;
                let latest = cert.cert.time.latest_expiry(h.at);
                if o.offer.expiry <= latest {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the offer expires within the bound",
                    ));
                }
                Ok(format!(
                    "node {} counted at step {} (time {}) an offer expiring at {}, past the latest its certificate allows ({latest})",
                    peer.short(),
                    h.value,
                    h.at,
                    o.offer.expiry
                ))
            }
            Self::EntryAtBackwards { a, b, .. } => {
                for item in [a, b] {
                    Self::check_counted(cert, item)?;
                }
                if a.inc().inc.counter != b.inc().inc.counter {
                    return Err(EvidenceError::NotMisbehaviour("different counters"));
                }
                if a.value() >= b.value() {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the first item is not the earlier one",
                    ));
                }
                if a.at() <= b.at() {
                    return Err(EvidenceError::NotMisbehaviour("the time does not go back"));
                }
                Ok(format!(
                    "node {} dated value {} of counter {} at {} and the later value {} at {}: its time went backwards",
                    peer.short(),
                    a.value(),
                    a.inc().inc.counter,
                    a.at(),
                    b.value(),
                    b.at()
                ))
            }
            Self::OverlongEntry { inc, at, bytes, .. } => {
                let item = PageItem::Entry {
                    inc: inc.clone(),
                    at: *at,
                    bytes: bytes.clone(),
                };
                Self::check_counted(cert, &item)?;
                let o = crate::offer::SignedOffer::from_bytes(bytes)
                    .map_err(|_| EvidenceError::NotMisbehaviour("the entry is no offer"))?;
                let latest = cert.cert.time.latest_expiry(*at);
                if o.offer.expiry <= latest {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the offer expires within the bound",
                    ));
                }
                Ok(format!(
                    "node {} counted at value {} of counter {} (time {at}) an offer expiring at {}, past the latest its certificate allows ({latest})",
                    peer.short(),
                    inc.inc.value,
                    inc.inc.counter,
                    o.offer.expiry
                ))
            }
            Self::BadEntry { inc, at, bytes, .. } => {
                Self::check_inc(cert, inc)?;
                if inc.inc.payload != entry_payload(peer, inc.inc.counter, *at, bytes) {
                    return Err(EvidenceError::NotMisbehaviour(
                        "the Inc does not bind these bytes",
                    ));
                }
                match entry_fault(bytes) {
                    None => Err(EvidenceError::NotMisbehaviour("the entry is a valid offer")),
                    Some(f) => Ok(format!(
                        "node {} counted an invalid entry at counter {} value {}: {f}",
                        peer.short(),
                        inc.inc.counter,
                        inc.inc.value
                    )),
                }
            }
        }
    }
}

//! One conformance suite for every [`TrustedDevice`] (DESIGN.md §4, §7): what a listing node
//! and the checkers rely on a device for, case by case, with the outcomes each backend may
//! give where DESIGN.md lets them differ (a TPM cannot sign an old value again, so `reissue`
//! may find nothing; it keeps no acknowledgement count, so `acknowledged` may stay 0).
//!
//! Every honest backend passes every case (the software device here; the TPM on swtpm in
//! `candor-tpm`'s tests); each deliberately broken device fails exactly the cases its fault
//! targets, which the tests assert.

use candor_core::{CounterId, Digest, SignedInc};
use candor_device::{DeviceError, TrustedDevice};
use std::collections::BTreeMap;

/// A case of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Case {
    /// A `Read` names this device, its PeerId, the counter, the nonce and the counter's value,
    /// and verifies under the device key.
    ReadNamesItself,
    /// A `Read` includes every increment that returned before it.
    ReadSeesEveryInc,
    /// One increment counts the counter up by exactly one and binds its payload; the statement
    /// names this device, its PeerId and the counter, and verifies under the device key.
    IncCountsUpByOne,
    /// A batch of k payloads takes k consecutive values, in order, each binding its own
    /// payload; an empty batch counts nothing.
    BatchIsConsecutive,
    /// No value is ever signed twice, for any payload: many increments, re-issues and reads
    /// never give two statements for one (counter, value).
    NoValueTwice,
    /// Counters are independent: incrementing one leaves the others where they were.
    CountersAreIndependent,
    /// A counter the device does not have is refused, and nothing changes.
    UnknownCounterRefused,
    /// `reissue` of a value the node has not acknowledged gives the very statement the device
    /// signed, or (a TPM) nothing; never another payload.
    ReissueGivesTheSame,
    /// After `acknowledge(v)` nothing up to v is reissued; `acknowledged` never claims more
    /// than was acknowledged; an acknowledgement beyond the counter's value is refused or
    /// ignored, and changes nothing.
    AcknowledgeForgets,
    /// Closed and opened again, the device keeps its key and its counters' values, and counts
    /// on from where it was.
    SurvivesReopen,
}

impl Case {
    /// Every case, in order.
    pub const ALL: [Case; 10] = [
        Case::ReadNamesItself,
        Case::ReadSeesEveryInc,
        Case::IncCountsUpByOne,
        Case::BatchIsConsecutive,
        Case::NoValueTwice,
        Case::CountersAreIndependent,
        Case::UnknownCounterRefused,
        Case::ReissueGivesTheSame,
        Case::AcknowledgeForgets,
        Case::SurvivesReopen,
    ];
}

/// A backend under test: fresh devices, each with at least two counters, and a way to close
/// one and open it again.
pub trait Subject {
    /// The device type.
    type Device: TrustedDevice;
    /// A fresh device.
    fn fresh(&mut self) -> Self::Device;
    /// `device` closed and opened again (its state kept); `None` if this backend cannot.
    fn reopen(&mut self, device: Self::Device) -> Option<Self::Device>;
}

/// What the suite found: the cases that failed, with why, and the ones skipped.
#[derive(Debug, Default)]
pub struct Report {
    /// Failed cases and what went wrong.
    pub failed: BTreeMap<Case, String>,
    /// Cases the subject could not run (no reopen).
    pub skipped: Vec<Case>,
}

impl Report {
    /// The failed cases.
    pub fn failed_cases(&self) -> Vec<Case> {
        self.failed.keys().copied().collect()
    }
}

/// Runs every case, each on a fresh device.
pub fn run<S: Subject>(subject: &mut S) -> Report {
    let mut report = Report::default();
    for case in Case::ALL {
        match run_case(subject, case) {
            Ok(true) => {}
            Ok(false) => report.skipped.push(case),
            Err(why) => {
                report.failed.insert(case, why);
            }
        }
    }
    report
}

type Outcome = Result<bool, String>;

fn run_case<S: Subject>(subject: &mut S, case: Case) -> Outcome {
    let mut d = subject.fresh();
    let c = first_counter(&d)?;
    match case {
        Case::ReadNamesItself => read_names_itself(&mut d, c),
        Case::ReadSeesEveryInc => read_sees_every_inc(&mut d, c),
        Case::IncCountsUpByOne => inc_counts_up_by_one(&mut d, c),
        Case::BatchIsConsecutive => batch_is_consecutive(&mut d, c),
        Case::NoValueTwice => no_value_twice(&mut d, c),
        Case::CountersAreIndependent => counters_are_independent(&mut d),
        Case::UnknownCounterRefused => unknown_counter_refused(&mut d),
        Case::ReissueGivesTheSame => reissue_gives_the_same(&mut d, c),
        Case::AcknowledgeForgets => acknowledge_forgets(&mut d, c),
        Case::SurvivesReopen => survives_reopen(subject, d, c),
    }
}

fn first_counter<D: TrustedDevice>(d: &D) -> Result<CounterId, String> {
    d.counters()
        .first()
        .copied()
        .ok_or_else(|| "the device has no counter".to_string())
}

fn err(what: &str, e: DeviceError) -> String {
    format!("{what}: {e}")
}

fn payload(n: u64) -> Digest {
    candor_core::sha256(&n.to_be_bytes())
}

/// Checks one `Inc`: this device, this PeerId, this counter, this value and payload, a valid
/// signature.
fn check_inc<D: TrustedDevice>(
    d: &D,
    s: &SignedInc,
    counter: CounterId,
    value: u64,
    payload: &Digest,
) -> Result<(), String> {
    let key = d.device_key();
    key.verify_inc(s)
        .map_err(|_| format!("the Inc for value {value} does not verify"))?;
    let i = &s.inc;
    if i.device != key.id() || &i.peer != d.peer() || i.counter != counter {
        return Err(format!(
            "the Inc for value {value} names another device, peer or counter"
        ));
    }
    if i.value != value {
        return Err(format!(
            "an Inc took value {} where {value} was next",
            i.value
        ));
    }
    if &i.payload != payload {
        return Err(format!("the Inc for value {value} binds another payload"));
    }
    Ok(())
}

fn value<D: TrustedDevice>(d: &D, c: CounterId) -> Result<u64, String> {
    d.value(c).map_err(|e| err("value", e))
}

fn read_names_itself<D: TrustedDevice>(d: &mut D, c: CounterId) -> Outcome {
    let v = value(d, c)?;
    let nonce = [0x5a; 32];
    let r = d.read_sign(c, nonce).map_err(|e| err("read_sign", e))?;
    let key = d.device_key();
    key.verify_read(&r)
        .map_err(|_| "the Read does not verify".to_string())?;
    let x = &r.read;
    if x.device != key.id() || &x.peer != d.peer() || x.counter != c || x.nonce != nonce {
        return Err("the Read names another device, peer, counter or nonce".into());
    }
    if x.value != v {
        return Err(format!(
            "the Read says {} where the counter is at {v}",
            x.value
        ));
    }
    Ok(true)
}

fn read_sees_every_inc<D: TrustedDevice>(d: &mut D, c: CounterId) -> Outcome {
    let before = d.read_sign(c, [1; 32]).map_err(|e| err("read_sign", e))?;
    for n in 0..3 {
        d.inc_sign(c, payload(n)).map_err(|e| err("inc_sign", e))?;
    }
    let after = d.read_sign(c, [2; 32]).map_err(|e| err("read_sign", e))?;
    if after.read.value != before.read.value + 3 {
        return Err(format!(
            "a Read after three increments from {} says {}",
            before.read.value, after.read.value
        ));
    }
    Ok(true)
}

fn inc_counts_up_by_one<D: TrustedDevice>(d: &mut D, c: CounterId) -> Outcome {
    for n in 0..3 {
        let v = value(d, c)?;
        let p = payload(100 + n);
        let s = d.inc_sign(c, p).map_err(|e| err("inc_sign", e))?;
        check_inc(d, &s, c, v + 1, &p)?;
        let now = value(d, c)?;
        if now != v + 1 {
            return Err(format!(
                "after one increment from {v} the counter is at {now}"
            ));
        }
    }
    Ok(true)
}

fn batch_is_consecutive<D: TrustedDevice>(d: &mut D, c: CounterId) -> Outcome {
    let v = value(d, c)?;
    let none = d
        .inc_sign_batch(c, &[])
        .map_err(|e| err("an empty batch", e))?;
    if !none.is_empty() || value(d, c)? != v {
        return Err("an empty batch counted something".into());
    }
    let ps: Vec<Digest> = (0..5).map(|n| payload(200 + n)).collect();
    let out = d
        .inc_sign_batch(c, &ps)
        .map_err(|e| err("inc_sign_batch", e))?;
    if out.len() != ps.len() {
        return Err(format!("a batch of 5 gave {} statements", out.len()));
    }
    for (k, (s, p)) in out.iter().zip(&ps).enumerate() {
        check_inc(d, s, c, v + 1 + k as u64, p)?;
    }
    Ok(true)
}

fn no_value_twice<D: TrustedDevice>(d: &mut D, c: CounterId) -> Outcome {
    // The counter's value at the start was reached before: a statement for it or below
    // would be a second step to a value already taken.
    let start = value(d, c)?;
    let mut seen: BTreeMap<u64, Digest> = BTreeMap::new();
    let mut keep = |s: &SignedInc| -> Result<(), String> {
        if s.inc.value <= start {
            return Err(format!(
                "value {} was signed again (the counter was at {start})",
                s.inc.value
            ));
        }
        match seen.insert(s.inc.value, s.inc.payload) {
            Some(p) if p != s.inc.payload => {
                Err(format!("value {} was signed for two payloads", s.inc.value))
            }
            _ => Ok(()),
        }
    };
    for n in 0..4 {
        let s = d
            .inc_sign(c, payload(300 + n))
            .map_err(|e| err("inc_sign", e))?;
        keep(&s)?;
        let batch = d
            .inc_sign_batch(c, &[payload(400 + n), payload(500 + n)])
            .map_err(|e| err("inc_sign_batch", e))?;
        for s in &batch {
            keep(s)?;
        }
        d.read_sign(c, [n as u8; 32])
            .map_err(|e| err("read_sign", e))?;
        if let Some(again) = d.reissue(c, s.inc.value).map_err(|e| err("reissue", e))? {
            keep(&again)?;
        }
    }
    Ok(true)
}

fn counters_are_independent<D: TrustedDevice>(d: &mut D) -> Outcome {
    let ids = d.counters();
    let (Some(&a), Some(&b)) = (ids.first(), ids.get(1)) else {
        return Err("the suite needs a device with two counters".into());
    };
    let vb = value(d, b)?;
    let va = value(d, a)?;
    d.inc_sign_batch(a, &[payload(600), payload(601)])
        .map_err(|e| err("inc_sign_batch", e))?;
    if value(d, b)? != vb {
        return Err(format!("counting up counter {a} moved counter {b}"));
    }
    let s = d
        .inc_sign(b, payload(602))
        .map_err(|e| err("inc_sign", e))?;
    check_inc(d, &s, b, vb + 1, &payload(602))?;
    if value(d, a)? != va + 2 {
        return Err(format!(
            "counter {a} is not where its own increments left it"
        ));
    }
    Ok(true)
}

fn unknown_counter_refused<D: TrustedDevice>(d: &mut D) -> Outcome {
    let ids = d.counters();
    let missing = ids.iter().max().map_or(0, |m| m.saturating_add(1000));
    let before: Vec<u64> = ids.iter().map(|&c| value(d, c)).collect::<Result<_, _>>()?;
    if d.read_sign(missing, [3; 32]).is_ok() {
        return Err(format!(
            "a Read on counter {missing}, which the device lacks"
        ));
    }
    if d.inc_sign(missing, payload(700)).is_ok() {
        return Err(format!(
            "an Inc on counter {missing}, which the device lacks"
        ));
    }
    if d.value(missing).is_ok() {
        return Err(format!(
            "a value for counter {missing}, which the device lacks"
        ));
    }
    let after: Vec<u64> = ids.iter().map(|&c| value(d, c)).collect::<Result<_, _>>()?;
    if before != after {
        return Err("a refused call on a missing counter moved a counter".into());
    }
    Ok(true)
}

fn reissue_gives_the_same<D: TrustedDevice>(d: &mut D, c: CounterId) -> Outcome {
    let p = payload(800);
    let s = d.inc_sign(c, p).map_err(|e| err("inc_sign", e))?;
    match d.reissue(c, s.inc.value).map_err(|e| err("reissue", e))? {
        None => {}
        Some(again) if again.inc == s.inc => {
            check_inc(d, &again, c, s.inc.value, &p)?;
        }
        Some(_) => return Err("reissue gave another statement than the one signed".into()),
    }
    // Nothing was signed beyond the counter's value.
    let beyond = value(d, c)?.saturating_add(1);
    if d.reissue(c, beyond)
        .map_err(|e| err("reissue", e))?
        .is_some()
    {
        return Err(format!(
            "reissue gave a statement for value {beyond}, never signed"
        ));
    }
    Ok(true)
}

fn acknowledge_forgets<D: TrustedDevice>(d: &mut D, c: CounterId) -> Outcome {
    let base = value(d, c)?;
    let out = d
        .inc_sign_batch(c, &[payload(900), payload(901), payload(902)])
        .map_err(|e| err("inc_sign_batch", e))?;
    let acked = base + 2;
    d.acknowledge(c, acked).map_err(|e| err("acknowledge", e))?;
    for v in base + 1..=acked {
        if d.reissue(c, v).map_err(|e| err("reissue", e))?.is_some() {
            return Err(format!("value {v} was reissued after it was acknowledged"));
        }
    }
    let claimed = d.acknowledged(c).map_err(|e| err("acknowledged", e))?;
    if claimed > acked {
        return Err(format!(
            "acknowledged says {claimed}, but only {acked} was acknowledged"
        ));
    }
    let top = value(d, c)?;
    // Beyond the counter's value: refused or ignored, and nothing changes.
    let _ = d.acknowledge(c, top + 10);
    if value(d, c)? != top {
        return Err("an acknowledgement beyond the value moved the counter".into());
    }
    if d.acknowledged(c).map_err(|e| err("acknowledged", e))? > top {
        return Err("an acknowledgement beyond the value was taken".into());
    }
    // The unacknowledged last value is still the device's to reissue (or not, on a TPM), but
    // never as another statement.
    let last = out.last().ok_or("the batch was empty")?;
    if let Some(again) = d
        .reissue(c, last.inc.value)
        .map_err(|e| err("reissue", e))?
    {
        if again.inc != last.inc {
            return Err("reissue gave another statement than the one signed".into());
        }
    }
    let next = d
        .inc_sign(c, payload(903))
        .map_err(|e| err("inc_sign", e))?;
    check_inc(d, &next, c, top + 1, &payload(903))?;
    Ok(true)
}

fn survives_reopen<S: Subject>(subject: &mut S, mut d: S::Device, c: CounterId) -> Outcome {
    d.inc_sign_batch(c, &[payload(1000), payload(1001)])
        .map_err(|e| err("inc_sign_batch", e))?;
    let v = value(&d, c)?;
    let key = d.device_key();
    let peer = d.peer().clone();
    let Some(mut again) = subject.reopen(d) else {
        return Ok(false);
    };
    if again.device_key() != key || again.peer() != &peer {
        return Err("reopened, the device has another key or PeerId".into());
    }
    let now = value(&again, c)?;
    if now != v {
        return Err(format!("reopened, the counter is at {now}, not {v}"));
    }
    let s = again
        .inc_sign(c, payload(1002))
        .map_err(|e| err("inc_sign after reopen", e))?;
    check_inc(&again, &s, c, v + 1, &payload(1002))?;
    Ok(true)
}

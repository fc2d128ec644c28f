//! The listing node's scheme M: one step per device increment, the tree and the live lists in
//! memory (rebuilt from the stored steps on open), the steps in the store.

use crate::node::{ListingNode, OpenError, PublishError, ReconcileReport, ServeError};
use candor_core::{
    CertifiedCounter, Decode, Digest, Encode, ItemKey, ListPage, ListRequest, LiveList,
    NotAdmitted, PastProof, Record, SignedOffer, SignedStep, StepProof, StepReceipt, StepState,
    MAX_BATCH, MAX_LIST_PAGE,
};
use candor_device::TrustedDevice;
use candor_store::{ItemChange, Pending, PendingItem};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::MutexGuard;

/// A step's pending record: the node time it binds and its batch (DESIGN.md §9: `at` is kept
/// in the pending record, so that a recovered step binds the very `at` the device counted).
fn encode_batch(at: u64, batch: &[Vec<u8>]) -> Vec<u8> {
    let mut w = candor_core::Writer::new();
    w.u64(at).u32(batch.len() as u32);
    for b in batch {
        w.bytes16(b);
    }
    w.into_bytes()
}

fn decode_batch(bytes: &[u8]) -> Option<(u64, Vec<Vec<u8>>)> {
    let mut r = candor_core::Reader::new(bytes);
    let at = r.u64("at").ok()?;
    let n = r.u32("batch").ok()? as usize;
    if n > MAX_BATCH {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            r.bytes16(candor_core::MAX_OFFER_BYTES, "offer")
                .ok()?
                .to_vec(),
        );
    }
    r.finish("batch").ok()?;
    Some((at, out))
}

/// The most steps one publish makes (each takes at least its first admissible offer, so a
/// batch of [`MAX_BATCH`] offers needs at most that many; in practice one or two).
const MAX_ROUNDS: usize = 16;

/// How many of the last steps' replaced lists a node rebuilds on open (a retrieve that began
/// before a restart pages the list as of its head).
const MAX_REWIND: usize = 64;

/// The most steps one sweep makes (each removes up to [`candor_core::MAX_REMOVALS`]).
pub(crate) const MAX_SWEEP_STEPS: usize = 64;

/// A counted step (None: the step took and removed nothing, and was not counted) and the
/// batch offers it did not take.
type Counted = (Option<StepProof>, Vec<(usize, candor_core::NotAdmitted)>);

fn keyed(batch: &[Vec<u8>]) -> Vec<(ItemKey, Vec<u8>)> {
    batch
        .iter()
        .filter_map(|b| {
            SignedOffer::from_bytes(b)
                .ok()
                .map(|o| (o.offer.key, b.clone()))
        })
        .collect()
}

impl<D: TrustedDevice> ListingNode<D> {
    pub(crate) fn step_state(&self) -> MutexGuard<'_, Option<StepState>> {
        self.m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The one counter a scheme-M certificate names.
    fn step_counter(&self) -> Result<CertifiedCounter, OpenError> {
        self.cert
            .cert
            .counters
            .first()
            .copied()
            .ok_or(OpenError::CertMismatch("no counter"))
    }

    /// The state the store holds after its last step: the live map from its tables, the
    /// chain from the step headers, the tree rebuilt from the lists and held to the root the
    /// last header binds. No step is replayed.
    fn load(&self) -> Result<StepState, OpenError> {
        let counter = self.step_counter()?;
        // The headers from the audit horizon up: those below it serve no head, audit or
        // horizon again (they stay on disk, so roots still chain).
        let from = self
            .store
            .step_horizon(counter.id)?
            .unwrap_or(counter.initial);
        let mut headers = Vec::new();
        for (value, bytes) in self.store.step_headers_from(counter.id, from)? {
            let s = SignedStep::from_bytes(&bytes).map_err(|_| OpenError::StepReplay(value))?;
            if s.header.value != value {
                return Err(OpenError::StepReplay(value));
            }
            headers.push(s);
        }
        let value = headers.last().map_or(counter.initial, |s| s.header.value);
        let map = self.store.live_map(counter.id)?;
        let mut lists: BTreeMap<ItemKey, LiveList> = map
            .leaves
            .into_iter()
            .map(|(d, last_changed)| {
                (
                    d,
                    LiveList {
                        last_changed,
                        records: Vec::new(),
                    },
                )
            })
            .collect();
        for r in map.records {
            let offer = SignedOffer::from_bytes(&r.bytes).map_err(|_| OpenError::LiveMap(value))?;
            let list = lists.get_mut(&r.item).ok_or(OpenError::LiveMap(value))?;
            let record = Record::of(&offer, &r.bytes, r.added);
            if record.hash != r.hash || offer.offer.key != r.item {
                return Err(OpenError::LiveMap(value));
            }
            list.records.push(record);
        }
        for list in lists.values_mut() {
            list.records.sort_by_key(|r| r.key);
        }
        let mut state =
            StepState::restore(counter, lists, headers).ok_or(OpenError::LiveMap(value))?;
        // The lists the last steps replaced, so that the pages of a head served just before
        // a restart are still served after it.
        let last: Vec<StepProof> = self
            .store
            .last_steps(counter.id, MAX_REWIND)?
            .into_iter()
            .filter_map(|(_, b)| StepProof::from_bytes(&b).ok())
            .collect();
        if !state.rewind(&last) {
            tracing::warn!(
                value,
                "the last stored steps do not fit the live map: no past lists kept"
            );
        }
        Ok(state)
    }

    /// Rebuilds the tree from the stored steps and reconciles the last step with the device.
    pub(crate) fn open_merkle_with(&self, dev: &mut D) -> Result<ReconcileReport, OpenError> {
        let counter = self.step_counter()?;
        let mut state = self.load()?;
        let mut report = ReconcileReport::default();
        let d = dev.value(counter.id)?;
        let r = state.value();
        let acked = dev.acknowledged(counter.id)?;
        crate::node::check_rollback(counter.id, d, r, acked)?;
        let pending = self.store.pending(counter.id)?;
        if d > r {
            // The device counted past the last stored step: finish that step from its pending
            // record if the device can reissue its `Inc` (an ordinary step at r + 1, or a gap
            // step a crash interrupted), else cover the lost values with a gap step.
            let found = dev.reissue(counter.id, d)?.and_then(|inc| {
                let batch = pending
                    .iter()
                    .filter(|p| p.payload == inc.inc.payload)
                    .find_map(|p| match &p.item {
                        PendingItem::Step(b) => decode_batch(b),
                        _ => None,
                    })?;
                Some((inc, batch))
            });
            let mut finished = false;
            if let Some((inc, (at, batch))) = found {
                let p = if d == r + 1 {
                    state.prepare(keyed(&batch), at)
                } else {
                    state.prepare_gap(d)
                };
                if p.header.payload(&self.peer) == inc.inc.payload {
                    let sp = state.apply(p, inc);
                    self.commit_step(&state, &sp)?;
                    report.recovered += 1;
                    finished = true;
                } else {
                    // `prepare` took the batch into the tree: start again from the store.
                    state = self.load()?;
                }
            }
            if !finished {
                self.write_gap_step(dev, &mut state, r + 1, d)?;
                report.gaps.push((counter.id, r + 1, d));
            }
        }
        let left: Vec<_> = self
            .store
            .pending(counter.id)?
            .into_iter()
            .map(|p| (p.counter, p.payload))
            .collect();
        report.dropped += left.len() as u64;
        self.store.commit(&[], &left)?;
        dev.acknowledge(counter.id, state.value())?;
        *self.step_state() = Some(state);
        Ok(report)
    }

    /// Covers values `first..=last`, which the device counted but a crash lost, with a gap
    /// step at `last + 1` (DESIGN.md §7): pending record, one increment, store commit.
    fn write_gap_step(
        &self,
        dev: &mut D,
        state: &mut StepState,
        first: u64,
        last: u64,
    ) -> Result<(), OpenError> {
        let counter = state.prev_counter();
        let p = state.prepare_gap(last + 1);
        let payload = p.header.payload(&self.peer);
        self.store.put_pending(&[Pending {
            counter,
            payload,
            item: PendingItem::Step(encode_batch(p.header.at, &[])),
        }])?;
        let inc = dev.inc_sign(counter, payload)?;
        if inc.inc.value != last + 1 {
            return Err(OpenError::LostStep {
                counter,
                value: inc.inc.value,
            });
        }
        let sp = state.apply(p, inc);
        self.commit_step(state, &sp)?;
        tracing::warn!(
            counter,
            first,
            last,
            "scheme-M steps lost in a crash: gap step written"
        );
        Ok(())
    }

    /// Stores step `sp`, which `state` has just applied: its proof, its header and what it
    /// changed in the live map, in one transaction.
    fn commit_step(
        &self,
        state: &StepState,
        sp: &StepProof,
    ) -> Result<(), candor_store::StoreError> {
        let h = &sp.step.header;
        let changes: Vec<ItemChange> = sp
            .old
            .iter()
            .map(|(d, old)| {
                let was: BTreeSet<Digest> = old
                    .iter()
                    .flat_map(|o| o.records.iter().map(|r| r.hash))
                    .collect();
                let now = state.list(d);
                let is: BTreeSet<Digest> = now
                    .iter()
                    .flat_map(|l| l.records.iter().map(|r| r.hash))
                    .collect();
                ItemChange {
                    item: *d,
                    last_changed: now.map(|l| l.last_changed),
                    removed: was.difference(&is).copied().collect(),
                    added: now
                        .iter()
                        .flat_map(|l| l.records.iter())
                        .filter(|r| !was.contains(&r.hash))
                        .map(|r| (r.hash, r.bytes.clone()))
                        .collect(),
                }
            })
            .collect();
        self.store.commit_step(
            h.counter,
            h.value,
            &h.payload(&self.peer),
            &sp.to_bytes(),
            &sp.step.to_bytes(),
            &changes,
        )
    }

    /// The records the live map holds, over all items (scheme M).
    pub fn live_records(&self) -> Option<u64> {
        self.step_state().as_ref().map(|s| s.live() as u64)
    }

    /// Removes the records expired by the node's clock, in steps of their own, until none is
    /// due or [`MAX_SWEEP_STEPS`] steps are made (DESIGN.md §9: a record leaves only in a step
    /// that justifies it). Publishes sweep as they go; this is for a quiet node. Returns how
    /// many records it removed.
    pub(crate) fn sweep_steps(&self) -> Result<u64, PublishError> {
        let mut removed = 0;
        for _ in 0..MAX_SWEEP_STEPS {
            let n = self.sweep_step(None)?;
            if n == 0 {
                break;
            }
            removed += n;
        }
        Ok(removed)
    }

    /// A cheating node's move (tests and the demo): a step of its own, at the node's clock,
    /// that removes item `d`'s first record without a justification. Returns the step, or
    /// None when d has no record.
    #[cfg(feature = "fault-injection")]
    pub fn remove_unjustly(&self, d: &ItemKey) -> Result<Option<StepProof>, PublishError> {
        let now = self.clock();
        let mut dev = self.device();
        self.settle(&mut dev).map_err(PublishError::Reconciling)?;
        let mut guard = self.step_state();
        let Some(state) = guard.as_mut() else {
            return Ok(None);
        };
        let Some(p) = state.prepare_unjust_removal(d, now) else {
            return Ok(None);
        };
        let (sp, _) = self.count_prepared(&mut dev, state, p, std::time::Instant::now(), None)?;
        Ok(sp)
    }

    /// One sweeping step that stops at `crash`, as a crash there would (crash tests only).
    #[cfg(feature = "fault-injection")]
    pub fn sweep_crashing(&self, crash: crate::node::CrashAt) {
        let _ = self.sweep_step(Some(crash));
    }

    /// One sweeping step, if a record is due.
    fn sweep_step(&self, crash: Option<crate::node::CrashAtInner>) -> Result<u64, PublishError> {
        let now = self.clock();
        let due = self
            .step_state()
            .as_ref()
            .is_some_and(|s| s.due(now.max(s.at())));
        if !due {
            return Ok(0);
        }
        let mut dev = self.device();
        self.settle(&mut dev).map_err(PublishError::Reconciling)?;
        self.unsettled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let step = {
            let mut guard = self.step_state();
            let Some(state) = guard.as_mut() else {
                return Ok(0);
            };
            self.count_step(&mut dev, state, Vec::new(), now, crash)
        };
        match step {
            Ok(sp) => {
                self.unsettled
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                let removed = sp.0.as_ref().map_or(0, |sp| sp.removed.len() as u64);
                if removed > 0 {
                    tracing::info!(removed, "expired records removed in a step");
                }
                Ok(removed)
            }
            Err(e) => {
                if !matches!(e, PublishError::Unavailable(_)) {
                    self.write_failed(&mut dev, &e);
                }
                Err(e)
            }
        }
    }

    /// The receipt of an offer the live list holds byte for byte: the stored proof of the step
    /// that added it, and the offer's place in its batch.
    fn held_receipt(&self, o: &SignedOffer) -> Option<StepReceipt> {
        let hash = candor_core::offer_hash(&o.to_bytes());
        let added = {
            let guard = self.step_state();
            let list = guard.as_ref()?.list(&o.offer.key)?.clone();
            list.records.iter().find(|r| r.hash == hash)?.added
        };
        let counter = self.cert.cert.counters.first()?.id;
        let sp = StepProof::from_bytes(&self.store.step(counter, added).ok()??).ok()?;
        let position = sp
            .batch
            .iter()
            .position(|b| candor_core::offer_hash(b) == hash)?;
        Some(StepReceipt {
            cert_id: self.cert_id,
            step: std::sync::Arc::new(sp),
            position: position as u32,
        })
    }

    /// Publishes a batch of offers as one scheme-M step: pending batch, one device call, one
    /// store commit; every receipt holds the whole step.
    pub(crate) fn publish_steps(
        &self,
        offers: &[SignedOffer],
        now: u64,
    ) -> Vec<Result<StepReceipt, PublishError>> {
        self.publish_steps_inner(offers, now, None)
    }

    /// Publishes a step and stops at `crash`, as a crash there would (tests only).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn publish_steps_crashing(
        &self,
        offers: &[SignedOffer],
        now: u64,
        crash: crate::node::CrashAt,
    ) {
        let _ = self.publish_steps_inner(offers, now, Some(crash));
    }

    fn publish_steps_inner(
        &self,
        offers: &[SignedOffer],
        now: u64,
        #[allow(unused_variables)] crash: Option<crate::node::CrashAtInner>,
    ) -> Vec<Result<StepReceipt, PublishError>> {
        let t0 = std::time::Instant::now();
        let mut vetted = self.vet(offers, now);
        // An offer the live list holds byte for byte (a seller re-sending after a lost reply)
        // gets the receipt of the step that added it, not a refusal, and is not counted again.
        let mut held: Vec<Option<StepReceipt>> = vec![None; offers.len()];
        for ((o, v), h) in offers.iter().zip(vetted.iter_mut()).zip(held.iter_mut()) {
            if v.is_ok() {
                if let Some(r) = self.held_receipt(o) {
                    *h = Some(r);
                    *v = Err(PublishError::Unavailable("held"));
                }
            }
        }
        tracing::debug!(
            offers = offers.len(),
            vet_us = t0.elapsed().as_micros() as u64,
            "step vetted"
        );
        let mut out: Vec<Result<StepReceipt, PublishError>> = Vec::with_capacity(offers.len());
        let mut batch = Vec::new();
        let mut slots = Vec::new();
        for (i, ((o, v), h)) in offers.iter().zip(vetted).zip(held).enumerate() {
            if let Some(r) = h {
                out.push(Ok(r));
                continue;
            }
            match v {
                Ok(()) if batch.len() < MAX_BATCH => {
                    batch.push((o.offer.key, o.to_bytes()));
                    slots.push(i);
                    out.push(Err(PublishError::Unavailable("not counted")));
                }
                Ok(()) => out.push(Err(PublishError::Unavailable("batch full; publish again"))),
                Err(e) => out.push(Err(e)),
            }
        }
        if batch.is_empty() {
            return out;
        }
        let mut dev = self.device();
        // Offers a step had no room for (or a second of one seller and item) go into the next
        // step of this same publish: a node never answers a seller "publish again" for its
        // own room, which a seller could not tell from a refusal aimed at it.
        let mut pending: Vec<usize> = slots;
        let mut crash = crash;
        for round in 0..MAX_ROUNDS {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                // The same bytes twice in one publish: the second gets the first's receipt.
                pending.retain(|&i| match self.held_receipt(&offers[i]) {
                    Some(r) => {
                        out[i] = Ok(r);
                        false
                    }
                    None => true,
                });
            }
            let batch: Vec<(ItemKey, Vec<u8>)> = pending
                .iter()
                .map(|&i| (offers[i].offer.key, offers[i].to_bytes()))
                .collect();
            if batch.is_empty() {
                break;
            }
            if let Err(why) = self.settle(&mut dev) {
                for &i in &pending {
                    out[i] = Err(PublishError::Reconciling(why.clone()));
                }
                return out;
            }
            // Unsettled until the step is stored and acknowledged: a panic in between leaves
            // the flag set, and the next request reconciles first.
            self.unsettled
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let step = {
                let mut guard = self.step_state();
                let Some(state) = guard.as_mut() else {
                    return out;
                };
                self.count_step(&mut dev, state, batch, now, crash.take())
            };
            // The state lock is released: after a failure the node reconciles from the store.
            let (sp, refused) = match step {
                Ok(counted) => {
                    self.unsettled
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    counted
                }
                Err(e) => {
                    if !matches!(e, PublishError::Unavailable(_)) {
                        self.write_failed(&mut dev, &e);
                    }
                    for &i in &pending {
                        out[i] = Err(match &e {
                            PublishError::Device(x) => PublishError::Device(x.clone()),
                            PublishError::Store(x) => PublishError::Store(x.clone()),
                            PublishError::CountedElsewhere { counted, expected } => {
                                PublishError::CountedElsewhere {
                                    counted: *counted,
                                    expected: *expected,
                                }
                            }
                            _ => PublishError::Unavailable("failed"),
                        });
                    }
                    return out;
                }
            };
            let sp = sp.map(std::sync::Arc::new);
            let mut again = Vec::new();
            let mut pos = 0u32;
            for (j, &i) in pending.iter().enumerate() {
                match (refused.iter().find(|(r, _)| *r == j), &sp) {
                    (Some((_, NotAdmitted::StepFull | NotAdmitted::SameStep)), _) => again.push(i),
                    (Some((_, why)), _) => out[i] = Err(PublishError::NotAdmitted(why.clone())),
                    (None, Some(sp)) => {
                        out[i] = Ok(StepReceipt {
                            cert_id: self.cert_id,
                            step: sp.clone(),
                            position: pos,
                        });
                        pos += 1;
                    }
                    (None, None) => out[i] = Err(PublishError::Unavailable("not counted")),
                }
            }
            pending = again;
        }
        for i in pending {
            out[i] = Err(PublishError::NotAdmitted(NotAdmitted::StepFull));
        }
        out
    }

    /// One step over `batch`: pending record, one device increment, the store's commit, the
    /// device's acknowledgement. A failure after the pending record leaves `state` ahead of
    /// the store or the device ahead of both: the caller reconciles.
    fn count_step(
        &self,
        dev: &mut D,
        state: &mut StepState,
        batch: Vec<(ItemKey, Vec<u8>)>,
        now: u64,
        crash: Option<crate::node::CrashAtInner>,
    ) -> Result<Counted, PublishError> {
        let t0 = std::time::Instant::now();
        let prepared = state.prepare(batch, now);
        self.count_prepared(dev, state, prepared, t0, crash)
    }

    /// [`Self::count_step`] once the step is prepared.
    fn count_prepared(
        &self,
        dev: &mut D,
        state: &mut StepState,
        mut prepared: candor_core::PreparedStep,
        t0: std::time::Instant,
        #[allow(unused_variables)] crash: Option<crate::node::CrashAtInner>,
    ) -> Result<Counted, PublishError> {
        let counter = state.prev_counter();
        let refused = std::mem::take(&mut prepared.refused);
        if prepared.batch.is_empty() && prepared.removed.is_empty() {
            // Nothing to add or remove (the state is untouched): no increment.
            return Ok((None, refused));
        }
        let t_prepare = t0.elapsed();
        let payload = prepared.header.payload(&self.peer);
        let pending = Pending {
            counter,
            payload,
            item: PendingItem::Step(encode_batch(prepared.header.at, &prepared.batch)),
        };
        self.store
            .put_pending(&[pending])
            .map_err(|e| PublishError::Store(e.into()))?;
        let t_pending = t0.elapsed();
        #[cfg(feature = "fault-injection")]
        if crash == Some(crate::node::CrashAt::AfterPending) {
            return Err(PublishError::Unavailable("crashed (simulated)"));
        }
        let inc = dev
            .inc_sign(counter, payload)
            .map_err(|e| PublishError::Device(e.into()))?;
        let t_inc = t0.elapsed();
        if inc.inc.value != prepared.header.value {
            return Err(PublishError::CountedElsewhere {
                counted: inc.inc.value,
                expected: prepared.header.value,
            });
        }
        #[cfg(feature = "fault-injection")]
        if crash == Some(crate::node::CrashAt::AfterInc) {
            return Err(PublishError::Unavailable("crashed (simulated)"));
        }
        let sp = state.apply(prepared, inc);
        let t_apply = t0.elapsed();
        self.commit_step(state, &sp)
            .map_err(|e| PublishError::Store(e.into()))?;
        let t_commit = t0.elapsed();
        #[cfg(feature = "fault-injection")]
        if crash == Some(crate::node::CrashAt::AfterCommit) {
            return Err(PublishError::Unavailable("crashed (simulated)"));
        }
        dev.acknowledge(counter, sp.step.header.value)
            .map_err(|e| PublishError::Device(e.into()))?;
        let us = |d: std::time::Duration| d.as_micros() as u64;
        tracing::debug!(
            value = sp.step.header.value,
            prepare_us = us(t_prepare),
            pending_us = us(t_pending - t_prepare),
            inc_us = us(t_inc - t_pending),
            apply_us = us(t_apply - t_inc),
            commit_us = us(t_commit - t_apply),
            ack_us = us(t0.elapsed() - t_commit),
            "step counted"
        );
        Ok((Some(sp), refused))
    }

    /// A proof for `item` under the root after step `value`, for the last
    /// [`candor_core::MAX_HISTORY`] steps (and the base); older ones are refused with
    /// [`ServeError::HistoryGone`].
    pub(crate) fn past_proof(&self, item: &ItemKey, value: u64) -> Result<PastProof, ServeError> {
        let (proof, counter) = {
            let guard = self.step_state();
            let state = guard.as_ref().ok_or(ServeError::WrongScheme)?;
            if value > state.value()
                || value
                    < self
                        .cert
                        .cert
                        .counters
                        .first()
                        .map(|c| c.initial)
                        .unwrap_or(0)
            {
                return Err(ServeError::NoSuchStep(value));
            }
            (state.prove_at(item, value), state.prev_counter())
        };
        // Proofs under roots older than the kept snapshots are refused, not rebuilt: a
        // replay of every stored step per request is work any peer could make the node do.
        let proof = proof.ok_or(ServeError::HistoryGone {
            value,
            kept: candor_core::MAX_HISTORY,
        })?;
        let initial = self.cert.cert.counters.first().map(|c| c.initial);
        let step = match self.store.step_header(counter, value)? {
            Some(b) => Some(SignedStep::from_bytes(&b).map_err(|_| ServeError::NoSuchStep(value))?),
            // The base has no step; a value a crash lost has none either (a gap step covers it).
            None if Some(value) == initial => None,
            None => return Err(ServeError::NoSuchStep(value)),
        };
        // The list then, as the kept versions tell it.
        let leaf = self
            .step_state()
            .as_ref()
            .ok_or(ServeError::WrongScheme)?
            .list_at(item, value)
            .map_err(|()| ServeError::HistoryGone {
                value,
                kept: candor_core::MAX_HISTORY,
            })?
            .map(|l| l.leaf());
        Ok(PastProof {
            cert: self.cert.clone(),
            step,
            value,
            leaf,
            proof,
        })
    }

    /// Answers a page of an item's list as it was after step `req.value` (from the lists
    /// the state keeps for the last [`candor_core::MAX_HISTORY`] steps).
    pub(crate) fn list_page(&self, req: &ListRequest) -> Result<ListPage, ServeError> {
        let count = (req.count as usize).clamp(1, MAX_LIST_PAGE);
        let guard = self.step_state();
        let state = guard.as_ref().ok_or(ServeError::WrongScheme)?;
        let list = state
            .list_at(&req.item, req.value)
            .map_err(|()| ServeError::HistoryGone {
                value: req.value,
                kept: candor_core::MAX_HISTORY,
            })?;
        let from = usize::try_from(req.from).unwrap_or(usize::MAX);
        Ok(ListPage {
            offers: list
                .map(|l| {
                    l.records
                        .iter()
                        .skip(from)
                        .take(count)
                        .map(|r| r.bytes.to_vec())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Answers an audit: the whole step at `value`, with the step before it — or, for a value
    /// a crash lost, the gap step over it.
    pub(crate) fn step_proof_at(&self, value: u64) -> Result<Option<StepProof>, ServeError> {
        let counter = self.cert.cert.counters.first().map(|c| c.id).unwrap_or(0);
        let Some((_, b)) = self.store.step_from(counter, value)? else {
            return Ok(None);
        };
        Ok(StepProof::from_bytes(&b).ok().filter(|sp| {
            let h = &sp.step.header;
            h.value == value
                || h.gap()
                    .is_some_and(|(first, last)| first <= value && value <= last)
        }))
    }
}

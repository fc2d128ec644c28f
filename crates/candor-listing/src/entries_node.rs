//! Schemes B and C: a batch of offers counted as entries — one pending write, one device call
//! per counter, one store commit — and the hooks the lab's cheating nodes count with.

#[cfg(feature = "fault-injection")]
use crate::node::CrashAt;
use crate::node::{CrashAtInner, ListingNode, PublishError};
use candor_core::{
    entry_payload, gap_payload, CounterId, Digest, Encode, PageItem, Protocol, Receipt, SignedInc,
    SignedOffer,
};
use candor_device::{DeviceError, TrustedDevice};
use candor_store::{Pending, PendingItem, StoreError};
use std::collections::BTreeMap;

impl<D: TrustedDevice> ListingNode<D> {
    /// Publishes a batch of offers: one pending write, one device call per counter, one
    /// store commit; every receipt is durable before it is returned.
    pub(crate) fn publish_entries(
        &self,
        offers: &[SignedOffer],
        now: u64,
    ) -> Vec<Result<Receipt, PublishError>> {
        if self.protocol != Protocol::Entries {
            return offers
                .iter()
                .map(|_| {
                    Err(PublishError::Unavailable(
                        "this node runs scheme M: use publish_all",
                    ))
                })
                .collect();
        }
        let vetted = self.vet(offers, now);
        let mut valid: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, (o, r)) in offers.iter().zip(&vetted).enumerate() {
            if r.is_ok() {
                valid.push((i, o.to_bytes()));
            }
        }
        let mut out: Vec<Result<Receipt, PublishError>> = vetted
            .into_iter()
            .map(|r| {
                r.map(|()| Err(PublishError::Unavailable("not counted")))
                    .and_then(|x| x)
            })
            .collect();
        let items: Vec<(CounterId, PendingItem, usize)> = valid
            .into_iter()
            .map(|(i, bytes)| {
                let counter = offers
                    .get(i)
                    .map(|o| self.cert.cert.counter_for(&o.offer.key).id)
                    .unwrap_or(0);
                (counter, PendingItem::Entry { at: now, bytes }, i)
            })
            .collect();
        match self.append(items, Some(now), None) {
            Ok(done) => {
                for (i, inc, at) in done {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Ok(Receipt {
                            cert_id: self.cert_id,
                            at,
                            inc,
                        });
                    }
                }
            }
            Err(e) => {
                for slot in out
                    .iter_mut()
                    .filter(|s| matches!(s, Err(PublishError::Unavailable(_))))
                {
                    *slot = Err(e.to_publish());
                }
            }
        }
        out
    }

    /// Publishes a batch and stops at `crash`, as a crash there would (tests only).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn publish_entries_crashing(
        &self,
        offers: &[SignedOffer],
        now: u64,
        crash: CrashAt,
    ) {
        let items = offers
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    self.cert.cert.counter_for(&o.offer.key).id,
                    PendingItem::Entry {
                        at: now,
                        bytes: o.to_bytes(),
                    },
                    i,
                )
            })
            .collect();
        let _ = self.append(items, Some(now), Some(crash));
    }

    /// Counts arbitrary items (entries or gap notices): pending → device → store → ack.
    /// With a clock reading `now`, every entry binds node time max(`now`, last durable time)
    /// (taken under the device lock, so it never goes backwards); without one (the lab's
    /// raw counting) each item keeps its own. Returns (tag, Inc, node time) per counted item.
    /// Holds the device lock throughout, so a `Read` is ordered after the items are stored.
    pub(crate) fn append(
        &self,
        items: Vec<(CounterId, PendingItem, usize)>,
        now: Option<u64>,
        #[allow(unused_variables)] crash: Option<CrashAtInner>,
    ) -> Result<Vec<(usize, SignedInc, u64)>, AppendError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut dev = self.device();
        self.settle(&mut dev).map_err(AppendError::Unsettled)?;
        let node_time = now.map(|n| n.max(self.last_at.load(std::sync::atomic::Ordering::SeqCst)));
        let mut by_counter: BTreeMap<CounterId, Vec<(Digest, PendingItem, usize)>> =
            BTreeMap::new();
        let mut pending = Vec::with_capacity(items.len());
        for (counter, mut item, tag) in items {
            if let (Some(t), PendingItem::Entry { at, .. }) = (node_time, &mut item) {
                *at = t;
            }
            let payload = match &item {
                PendingItem::Entry { at, bytes } => entry_payload(&self.peer, counter, *at, bytes),
                PendingItem::Gap { at, first, last } => {
                    gap_payload(&self.peer, counter, *at, *first, *last)
                }
                PendingItem::Step(_) => continue,
            };
            pending.push(Pending {
                counter,
                payload,
                item: item.clone(),
            });
            by_counter
                .entry(counter)
                .or_default()
                .push((payload, item, tag));
        }
        // Unsettled from the pending record until the device is told: a panic in between
        // leaves the flag set, and the next request reconciles first.
        self.unsettled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = self.store.put_pending(&pending) {
            self.write_failed(&mut dev, &e);
            return Err(AppendError::Store(e.into()));
        }
        #[cfg(feature = "fault-injection")]
        if crash == Some(CrashAt::AfterPending) {
            return Err(AppendError::Crashed);
        }
        // From here on the device may count what the store lacks: any failure leaves the
        // node unsettled until a reconcile.
        let result = self.count_and_store(&mut dev, by_counter, crash);
        match result {
            Ok(_) => self
                .unsettled
                .store(false, std::sync::atomic::Ordering::SeqCst),
            Err(AppendError::Device(ref e)) => self.write_failed(&mut dev, e),
            Err(AppendError::Store(ref e)) => self.write_failed(&mut dev, e),
            Err(_) => {}
        }
        result
    }

    /// The device counts each counter's group, the store takes every counted item, the
    /// device is told.
    fn count_and_store(
        &self,
        dev: &mut D,
        by_counter: BTreeMap<CounterId, Vec<(Digest, PendingItem, usize)>>,
        #[allow(unused_variables)] crash: Option<CrashAtInner>,
    ) -> Result<Vec<(usize, SignedInc, u64)>, AppendError> {
        let mut counted = Vec::new();
        let mut out = Vec::new();
        let mut heads = Vec::new();
        for (counter, group) in by_counter {
            let payloads: Vec<Digest> = group.iter().map(|g| g.0).collect();
            let incs = dev
                .inc_sign_batch(counter, &payloads)
                .map_err(|e| AppendError::Device(e.into()))?;
            if let Some(last) = incs.last() {
                heads.push((counter, last.inc.value));
            }
            for ((_, item, tag), inc) in group.into_iter().zip(incs) {
                counted.push(match item {
                    PendingItem::Entry { at, bytes } => PageItem::Entry { inc, at, bytes },
                    PendingItem::Gap { at, first, last } => PageItem::Gap {
                        inc,
                        at,
                        first,
                        last,
                    },
                    PendingItem::Step(_) => continue,
                });
                if let Some(c) = counted.last() {
                    out.push((tag, c.inc().clone(), c.at()));
                }
            }
        }
        #[cfg(feature = "fault-injection")]
        if crash == Some(CrashAt::AfterInc) {
            return Err(AppendError::Crashed);
        }
        self.store
            .commit(&counted, &[])
            .map_err(|e| AppendError::Store(e.into()))?;
        #[cfg(feature = "fault-injection")]
        if crash == Some(CrashAt::AfterCommit) {
            return Err(AppendError::Crashed);
        }
        for item in &counted {
            self.durable(item.at());
        }
        for (counter, head) in heads {
            dev.acknowledge(counter, head)
                .map_err(|e| AppendError::Device(e.into()))?;
        }
        Ok(out)
    }
}

impl AppendError {
    /// What a publish that carried the failed append answers.
    fn to_publish(&self) -> PublishError {
        match self {
            AppendError::Device(d) => PublishError::Device(d.clone()),
            AppendError::Store(s) => PublishError::Store(s.clone()),
            AppendError::Unsettled(why) => PublishError::Reconciling(why.clone()),
            AppendError::Crashed => PublishError::Unavailable("crashed (simulated)"),
        }
    }
}

/// Hooks for the lab's cheating nodes (`candor-lab`), built only with `fault-injection`: an
/// honest node never counts what it was not asked to publish, nor reads another counter.
#[cfg(feature = "fault-injection")]
impl<D: TrustedDevice> ListingNode<D> {
    /// Counts arbitrary items (entries or gap notices) on any counter, durably, as a publish
    /// would; returns each item's tag with its `Inc`.
    pub fn count_raw(
        &self,
        items: Vec<(CounterId, PendingItem, usize)>,
    ) -> Result<Vec<(usize, SignedInc, u64)>, PublishError> {
        self.append(items, None, None).map_err(|e| e.to_publish())
    }

    /// Signs a `Read` on any device counter.
    pub fn read_raw(
        &self,
        counter: CounterId,
        nonce: [u8; 32],
    ) -> Result<candor_core::SignedRead, DeviceError> {
        self.device().read_sign(counter, nonce)
    }
}

/// Why an append failed.
#[derive(Debug)]
pub(crate) enum AppendError {
    Device(std::sync::Arc<DeviceError>),
    Store(std::sync::Arc<StoreError>),
    /// An earlier failed write is not reconciled yet.
    Unsettled(String),
    #[allow(dead_code)]
    Crashed,
}

//! The honest listing node: device + store, publish with group commit, reconcile, serve.

use candor_core::{
    entry_payload, gap_payload, tags, BatchVerifier, CounterId, DecodeError, Digest, Encode,
    OfferFault, Page, PageItem, PageRequest, PeerId, Protocol, Receipt, RetrieveHead,
    RetrieveRequest, SignedCertificate, SignedInc, SignedOffer, MAX_PAGE_ITEMS,
};
use candor_device::{DeviceError, TrustedDevice};
use candor_store::{ListingStore, Pending, PendingItem, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use thiserror::Error;

/// The most bytes of items a page carries.
pub const MAX_PAGE_BYTES: usize = 256 * 1024;

/// How far deletion lags the window heads serve: a day. Deleting is the one thing a node cannot
/// take back, so it trusts its clock less than publishing does: a clock that ran up to a day
/// ahead at a compaction (an RTC in local time before NTP syncs) deletes nothing still live,
/// at the cost of keeping a day more (~3 % of a 30-day window).
pub const COMPACT_LAG: u64 = 86_400;

/// How long (wall-clock) a boundary a head served holds deletion back: far longer than a
/// retrieve may take.
const SERVED_HOLD: std::time::Duration = std::time::Duration::from_secs(600);

/// This machine's clock, unix seconds (`u64::MAX` if it is set before 1970: then node time
/// alone sets the edge).
fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(u64::MAX, |d| d.as_secs())
}

/// The first pause before another reconcile attempt after one failed; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(200);
/// The longest pause between reconcile attempts.
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a node would not open.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A stored scheme-M step does not replay to the root it recorded.
    #[error("stored step {0} does not replay to its recorded root; the store is corrupt")]
    StepReplay(u64),
    /// The device answered a gap step's increment with another value than the next one (a
    /// device or a second process counting behind the node's back).
    #[error("counter {counter}: the gap step was counted at value {value}, not at the next value; is another process using the device?")]
    LostStep {
        /// The counter.
        counter: CounterId,
        /// The lost value.
        value: u64,
    },
    /// The certificate is not this device's, or not for this node.
    #[error("the certificate does not match the device: {0}")]
    CertMismatch(&'static str),
    /// The device's counter is below the store's highest value: the device state was rolled
    /// back (or belongs to another store).
    #[error("counter {counter}: the device is at {device} but the store holds value {store}; the device state was rolled back or replaced. Refusing to start: restore the device state that belongs to this store")]
    DeviceRolledBack {
        /// The counter.
        counter: CounterId,
        /// The device's value.
        device: u64,
        /// The store's head.
        store: u64,
    },
    /// The store is below what the node acknowledged to the device: it was rolled back.
    #[error("counter {counter}: the store holds values up to {store} but the node had stored up to {acknowledged}; the store was rolled back or replaced. Refusing to start: restore the store that belongs to this device")]
    StoreRolledBack {
        /// The counter.
        counter: CounterId,
        /// The store's head.
        store: u64,
        /// What the device was told is stored.
        acknowledged: u64,
    },
    /// The device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refuses to start on a rolled-back device (D < R) or store (R < what was acknowledged).
pub(crate) fn check_rollback(
    counter: CounterId,
    device: u64,
    store: u64,
    acknowledged: u64,
) -> Result<(), OpenError> {
    if device < store {
        return Err(OpenError::DeviceRolledBack {
            counter,
            device,
            store,
        });
    }
    if store < acknowledged {
        return Err(OpenError::StoreRolledBack {
            counter,
            store,
            acknowledged,
        });
    }
    Ok(())
}

/// Why a publish was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The bytes are not a signed offer.
    #[error("the offer does not decode: {0}")]
    Malformed(#[from] DecodeError),
    /// The offer fails a check.
    #[error("the offer is invalid: {0}")]
    Invalid(#[from] OfferFault),
    /// The offer has expired.
    #[error("the offer expired at {expiry} (now {now})")]
    Expired {
        /// Its expiry.
        expiry: u64,
        /// The node's clock.
        now: u64,
    },
    /// The offer would be listed longer than the certificate's L_max allows (DESIGN.md §9):
    /// its expiry is past now + L_max − 2·skew.
    #[error("the offer expires at {expiry}, past the latest this node may list ({latest}: now + L_max − 2·skew); publish it with a shorter lifetime")]
    ExpiryTooLong {
        /// Its expiry.
        expiry: u64,
        /// The latest expiry accepted now.
        latest: u64,
    },
    /// The device failed; the offer was not counted (or will be reconciled). Shared by every
    /// offer of the batch the failed call carried.
    #[error("trusted device: {0}")]
    Device(#[source] std::sync::Arc<DeviceError>),
    /// The device counted another value than the node's next one: another process is using
    /// the device (the node reconciles before it counts again).
    #[error("the device counted value {counted}, not {expected}: is another process using it?")]
    CountedElsewhere {
        /// The value the device counted.
        counted: u64,
        /// The value the node expected.
        expected: u64,
    },
    /// The store failed; the offer was not acknowledged.
    #[error("store: {0}")]
    Store(#[source] std::sync::Arc<StoreError>),
    /// The node is shutting down or overloaded.
    #[error("the node is not accepting publishes: {0}")]
    Unavailable(&'static str),
    /// The item's live list does not take the offer (scheme M, DESIGN.md §9).
    #[error("{0}")]
    NotAdmitted(candor_core::NotAdmitted),
    /// A write failed half-way and the node could not yet reconcile its store with its
    /// device; it answers nothing it cannot back until it has.
    #[error("the node is reconciling its store with its device after a failed write ({0}); try again later")]
    Reconciling(String),
}

/// Why a retrieve request was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A scheme-M node could not write the step that removes expired records.
    #[error("the step removing expired records failed: {0}")]
    Sweep(String),
    /// No such step (yet).
    #[error("there is no step {0} to prove under")]
    NoSuchStep(u64),
    /// A proof under a root older than the snapshots the node keeps (scheme M).
    #[error("step {value} is older than the {kept} steps whose trees this node keeps")]
    HistoryGone {
        /// The step asked for.
        value: u64,
        /// How many recent steps are kept.
        kept: usize,
    },
    /// The request is for another scheme than the node runs.
    #[error("this node runs another scheme")]
    WrongScheme,
    /// A counter the certificate does not name.
    #[error("counter {0} is not certified")]
    UnknownCounter(CounterId),
    /// A write failed half-way and the node could not yet reconcile (no `Read` is served
    /// until it has: it would be a state the store cannot back).
    #[error("the node is reconciling its store with its device after a failed write ({0}); try again later")]
    Reconciling(String),
    /// The device failed.
    #[error("trusted device: {0}")]
    Device(#[from] DeviceError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Too much is waiting (reads for the device): try again shortly.
    #[error("busy: {0}; try again shortly")]
    Busy(&'static str),
    /// The `Read` this request was batched into failed, for the reason given.
    #[error("the batch of reads this request was in failed: {0}")]
    Batched(String),
}

impl ServeError {
    /// This error as every request of a batch gets it: the kinds that matter to a caller
    /// (busy, reconciling, wrong scheme) kept, the rest by their message.
    pub(crate) fn shared(&self) -> Self {
        match self {
            Self::Reconciling(s) => Self::Reconciling(s.clone()),
            Self::Busy(s) => Self::Busy(s),
            Self::WrongScheme => Self::WrongScheme,
            other => Self::Batched(other.to_string()),
        }
    }
}

/// What reconciliation did on open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Entries recovered from pending records and reissued statements.
    pub recovered: u64,
    /// Pending records the device never counted (dropped; their sellers got no receipt).
    pub dropped: u64,
    /// Gap notices written, per counter: (first, last).
    pub gaps: Vec<(CounterId, u64, u64)>,
}

/// Where a publish stops, to simulate a crash (tests only).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashAt {
    /// After the pending records are durable, before the device call.
    AfterPending,
    /// After the device counted, before the entries are stored.
    AfterInc,
    /// After the entries are stored, before the device is told.
    AfterCommit,
}

/// An honest listing node.
pub struct ListingNode<D> {
    pub(crate) cert: SignedCertificate,
    /// The protocol the certificate's scheme runs, decided once, at open.
    pub(crate) protocol: Protocol,
    pub(crate) cert_id: Digest,
    pub(crate) peer: PeerId,
    pub(crate) store: ListingStore,
    pub(crate) device: Mutex<D>,
    /// Scheme M's tree and leaves (locked after the device, never before it).
    pub(crate) m: Mutex<Option<candor_core::StepState>>,
    /// Set (under the device lock) when a write failed after its pending record: the device
    /// may have counted what the store lacks. Nothing is counted or `Read` until a reconcile
    /// (DESIGN.md §7) clears it.
    pub(crate) unsettled: std::sync::atomic::AtomicBool,
    /// When a reconcile after a failed write may be tried next, and the pause after that:
    /// a device that keeps failing is not driven (and its counter not spent) once per request.
    pub(crate) retry: Mutex<(Option<std::time::Instant>, std::time::Duration)>,
    /// Scheme-M retrieves waiting for a `Read` (one `Read` serves a batch of them).
    pub(crate) reads: crate::reads::ReadQueue,
    /// Schemes B and C: the latest node time bound in a durable entry or gap notice, on any
    /// counter (written under the device lock). The next entry binds max(clock, this), so
    /// node time never goes backwards; a gap notice binds this; the window's edge is
    /// measured from it (DESIGN.md §9).
    pub(crate) last_at: std::sync::atomic::AtomicU64,
    /// Schemes B and C: per counter, the boundaries heads served recently (wall-clock time of
    /// the last head that served each, oldest first): compaction deletes nothing a retrieve
    /// begun in the last [`SERVED_HOLD`] may still page.
    pub(crate) served: Mutex<HashMap<CounterId, ServedBoundaries>>,
    /// How long, in wall-clock milliseconds, a served boundary holds deletion back
    /// ([`SERVED_HOLD`] unless set).
    pub(crate) hold_ms: std::sync::atomic::AtomicU64,
    /// A simulated clock (unix seconds) for the window's edge, 0 for this machine's.
    pub(crate) clock: std::sync::atomic::AtomicU64,
    /// Held while a head picks and records its boundary, and while a compaction reads the
    /// served boundaries and deletes: neither can slip between the other's two steps.
    pub(crate) window: Mutex<()>,
}

/// The boundaries heads served on one counter: (when last served, w), oldest first.
pub(crate) type ServedBoundaries = std::collections::VecDeque<(std::time::Instant, u64)>;

impl<D> std::fmt::Debug for ListingNode<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingNode")
            .field("peer", &self.peer)
            .field("scheme", &self.cert.cert.scheme)
            .finish_non_exhaustive()
    }
}

impl<D: TrustedDevice> ListingNode<D> {
    /// Opens a node on `device` and `store` with certificate `cert`, reconciling the store
    /// with the device first (DESIGN.md §7). No `Read` is served before this returns.
    pub fn open(
        device: D,
        store: ListingStore,
        cert: SignedCertificate,
    ) -> Result<(Self, ReconcileReport), OpenError> {
        if cert.cert.device != device.device_key() {
            return Err(OpenError::CertMismatch("it certifies another device key"));
        }
        if &cert.cert.peer != device.peer() {
            return Err(OpenError::CertMismatch(
                "it is for another node than the device's",
            ));
        }
        let ids = device.counters();
        if cert.cert.counters.iter().any(|c| !ids.contains(&c.id)) {
            return Err(OpenError::CertMismatch(
                "it names a counter the device lacks",
            ));
        }
        store.init_counters(
            &cert
                .cert
                .counters
                .iter()
                .map(|c| (c.id, c.initial))
                .collect::<Vec<_>>(),
        )?;
        tracing::info!(protection = device.protection(), "trusted device opened");
        let node = Self {
            cert_id: cert.id(),
            protocol: cert.cert.scheme.protocol(),
            peer: cert.cert.peer.clone(),
            cert,
            store,
            device: Mutex::new(device),
            m: Mutex::new(None),
            unsettled: std::sync::atomic::AtomicBool::new(false),
            retry: Mutex::new((None, RETRY_FIRST)),
            reads: crate::reads::ReadQueue::default(),
            last_at: std::sync::atomic::AtomicU64::new(0),
            served: Mutex::new(HashMap::new()),
            hold_ms: std::sync::atomic::AtomicU64::new(SERVED_HOLD.as_millis() as u64),
            clock: std::sync::atomic::AtomicU64::new(0),
            window: Mutex::new(()),
        };
        let report = {
            let mut dev = node.device();
            node.reconcile_any(&mut dev)?
        };
        Ok((node, report))
    }

    /// Reconciles the store with the device (DESIGN.md §7), for the node's scheme.
    fn reconcile_any(&self, dev: &mut D) -> Result<ReconcileReport, OpenError> {
        match self.protocol {
            Protocol::Entries => self.reconcile_with(dev),
            Protocol::Steps => self.open_merkle_with(dev),
        }
    }

    /// Records that a write failed after its pending record (the device may have counted),
    /// then tries to reconcile at once. Called with the device lock held.
    pub(crate) fn write_failed(&self, dev: &mut D, what: &dyn std::fmt::Display) {
        tracing::warn!(%what, "a write failed half-way: reconciling the store with the device");
        self.unsettled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = self.settle(dev) {
            tracing::warn!(%e, "reconcile failed: serving no Read and counting nothing until it succeeds");
        }
    }

    /// After a failed write, reconciles before anything is counted or read; a no-op
    /// otherwise. Called with the device lock held (and the scheme-M state's not).
    pub(crate) fn settle(&self, dev: &mut D) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        if !self.unsettled.load(Ordering::SeqCst) {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let mut retry = self.retry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(next) = retry.0 {
            if now < next {
                return Err("waiting before the next reconcile attempt".into());
            }
        }
        let report = match self.reconcile_any(dev) {
            Ok(r) => r,
            Err(e) => {
                let pause = retry.1;
                *retry = (Some(now + pause), (pause * 2).min(RETRY_MAX));
                return Err(e.to_string());
            }
        };
        *retry = (None, RETRY_FIRST);
        self.unsettled.store(false, Ordering::SeqCst);
        tracing::info!(?report, "reconciled after a failed write");
        Ok(())
    }

    pub(crate) fn device(&self) -> MutexGuard<'_, D> {
        // A panic while holding the lock cannot leave the device inconsistent (its state is
        // written atomically), so a poisoned lock is taken over.
        self.device.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest node time of the stored heads (each counter's highest value; node time
    /// never goes backwards along a counter, so it is the latest the store holds).
    fn durable_at(&self) -> Result<u64, StoreError> {
        let mut at = 0;
        for c in &self.cert.cert.counters {
            if let Some(head) = self.store.head(c.id)? {
                if let Some(item) = self.store.get(c.id, head)? {
                    at = at.max(item.at());
                }
            }
        }
        Ok(at)
    }

    /// Raises the node's last durable time to `at` (never lowers it).
    fn durable(&self, at: u64) {
        self.last_at
            .fetch_max(at, std::sync::atomic::Ordering::SeqCst);
    }

    fn reconcile_with(&self, dev: &mut D) -> Result<ReconcileReport, OpenError> {
        let mut report = ReconcileReport::default();
        self.durable(self.durable_at()?);
        for c in &self.cert.cert.counters {
            let d = dev.value(c.id)?;
            let r = self.store.head(c.id)?.unwrap_or(c.initial);
            let acked = dev.acknowledged(c.id)?;
            check_rollback(c.id, d, r, acked)?;
            let pending: HashMap<Digest, PendingItem> = self
                .store
                .pending(c.id)?
                .into_iter()
                .map(|p| (p.payload, p.item))
                .collect();
            let mut items = Vec::new();
            let mut lost: Vec<(u64, u64)> = Vec::new();
            for v in r + 1..=d {
                let recovered = dev.reissue(c.id, v)?.and_then(|inc| {
                    match pending.get(&inc.inc.payload)? {
                        PendingItem::Entry { at, bytes } => Some(PageItem::Entry {
                            inc,
                            at: *at,
                            bytes: bytes.clone(),
                        }),
                        PendingItem::Gap { at, first, last } => Some(PageItem::Gap {
                            inc,
                            at: *at,
                            first: *first,
                            last: *last,
                        }),
                        // Scheme M steps are reconciled by `open_merkle`.
                        PendingItem::Step(_) => None,
                    }
                });
                match recovered {
                    Some(item) => items.push(item),
                    None => match lost.last_mut() {
                        Some((_, last)) if *last + 1 == v => *last = v,
                        _ => lost.push((v, v)),
                    },
                }
            }
            report.recovered += items.len() as u64;
            let resolved: Vec<(CounterId, Digest)> = pending.keys().map(|p| (c.id, *p)).collect();
            report.dropped += pending.len() as u64 - items.len().min(pending.len()) as u64;
            self.store.commit(&items, &resolved)?;
            for item in &items {
                self.durable(item.at());
            }
            // Lost values: one gap notice per run, each a new increment (pending first), at
            // the last durable node time (the lost values' statements never left the node).
            let at = self.last_at.load(std::sync::atomic::Ordering::SeqCst);
            let gap_pending: Vec<Pending> = lost
                .iter()
                .map(|&(first, last)| Pending {
                    counter: c.id,
                    payload: gap_payload(&self.peer, c.id, at, first, last),
                    item: PendingItem::Gap { at, first, last },
                })
                .collect();
            if !gap_pending.is_empty() {
                self.store.put_pending(&gap_pending)?;
                let payloads: Vec<Digest> = gap_pending.iter().map(|p| p.payload).collect();
                let incs = dev.inc_sign_batch(c.id, &payloads)?;
                let gaps: Vec<PageItem> = incs
                    .into_iter()
                    .zip(&lost)
                    .map(|(inc, &(first, last))| PageItem::Gap {
                        inc,
                        at,
                        first,
                        last,
                    })
                    .collect();
                self.store.commit(&gaps, &[])?;
                for &(first, last) in &lost {
                    tracing::warn!(
                        counter = c.id,
                        first,
                        last,
                        "values lost in a crash: gap notice written"
                    );
                    report.gaps.push((c.id, first, last));
                }
            }
            let head = dev.value(c.id)?;
            dev.acknowledge(c.id, head)?;
        }
        if report.recovered > 0 || report.dropped > 0 || !report.gaps.is_empty() {
            tracing::info!(?report, "reconciled the store with the device");
        }
        Ok(report)
    }

    /// The node's certificate.
    pub fn certificate(&self) -> &SignedCertificate {
        &self.cert
    }

    /// The protocol its certificate's scheme runs.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The node's PeerId.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// The store (read access for tools and tests).
    pub fn store(&self) -> &ListingStore {
        &self.store
    }

    /// Runs `f` on the device, under its lock (what `candor device show` asks a running
    /// node: the device cannot be opened twice).
    pub fn with_device<R>(&self, f: impl FnOnce(&D) -> R) -> R {
        let guard = self.device.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// Gives the device and the store back (for a restart in tests and tools).
    pub fn into_parts(self) -> (D, ListingStore) {
        (
            self.device.into_inner().unwrap_or_else(|p| p.into_inner()),
            self.store,
        )
    }

    /// Checks offers before counting them: decode, canonical key, signature (one batch),
    /// expiry. Returns the valid ones with their index in the input.
    pub(crate) fn vet(&self, offers: &[SignedOffer], now: u64) -> Vec<Result<(), PublishError>> {
        let mut out: Vec<Result<(), PublishError>> = offers
            .iter()
            .map(|o| {
                o.check_key()?;
                if o.offer.expiry <= now {
                    return Err(PublishError::Expired {
                        expiry: o.offer.expiry,
                        now,
                    });
                }
                // The step's or entry's `at` is never below `now`, so an offer within the
                // bound at `now` is within it at the `at` it is counted under.
                let latest = self.cert.cert.time.latest_expiry(now);
                if o.offer.expiry > latest {
                    return Err(PublishError::ExpiryTooLong {
                        expiry: o.offer.expiry,
                        latest,
                    });
                }
                Ok(())
            })
            .collect();
        let valid: Vec<&SignedOffer> = offers
            .iter()
            .zip(&out)
            .filter(|(_, r)| r.is_ok())
            .map(|(o, _)| o)
            .collect();
        if !signatures_hold(&valid) {
            for (o, r) in offers.iter().zip(out.iter_mut()) {
                if r.is_ok() && o.check_signature().is_err() {
                    *r = Err(PublishError::Invalid(OfferFault::BadSignature));
                }
            }
        }
        out
    }

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

    /// Answers a retrieve's opening request: the certificate, a fresh `Read` on the item's
    /// counter and the window's boundary. Taken under the device lock, so every value up to
    /// the `Read` is stored.
    pub(crate) fn entries_head(&self, req: &RetrieveRequest) -> Result<RetrieveHead, ServeError> {
        if self.protocol != Protocol::Entries {
            return Err(ServeError::WrongScheme);
        }
        let counter = self.cert.cert.counter_for(&req.item).id;
        let read = {
            let mut dev = self.device();
            self.settle(&mut dev).map_err(ServeError::Reconciling)?;
            dev.read_sign(counter, req.nonce)?
        };
        // Every value up to t is stored: the boundary is found without the device lock.
        let boundary = {
            let _window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            let b = self.store.boundary(counter, read.read.value, self.edge())?;
            self.serving(counter, b.as_ref().map_or(0, candor_core::PageItem::value));
            b
        };
        Ok(RetrieveHead {
            cert: self.cert.clone(),
            read,
            boundary,
        })
    }

    /// The window's edge (DESIGN.md §9): node time − L_max − 2·skew, node time being the
    /// lesser of the latest `at` the node bound and its clock. The latest `at` keeps the
    /// edge from running ahead of what checkers see (a quiet node keeps its window until it
    /// counts again); the clock keeps one reading that ran ahead, since corrected, from
    /// pinning the edge in the future, where the boundary would hide live offers (and the
    /// store would delete them). The store never serves a boundary below what it deleted.
    fn edge(&self) -> u64 {
        let at = self.last_at.load(std::sync::atomic::Ordering::SeqCst);
        self.cert.cert.time.node_edge(at.min(self.clock()))
    }

    /// The node's clock: this machine's, or the simulated one [`Self::set_clock`] set.
    /// (Publishes name their time; the clock sets only the window's edge.)
    pub fn clock(&self) -> u64 {
        match self.clock.load(std::sync::atomic::Ordering::SeqCst) {
            0 => wall_clock(),
            t => t,
        }
    }

    /// Runs the node on a simulated clock reading `now` (unix seconds), or on this machine's
    /// again with `None` (tests and simulated runs; a clock corrected after running ahead).
    pub fn set_clock(&self, now: Option<u64>) {
        self.clock
            .store(now.unwrap_or(0), std::sync::atomic::Ordering::SeqCst);
    }

    /// How long a boundary a head served holds deletion back (ten minutes by default, far
    /// longer than a retrieve may take). A run on a simulated clock, whose days pass in
    /// seconds, sets it to zero.
    pub fn hold_served_boundaries(&self, hold: std::time::Duration) {
        self.hold_ms.store(
            u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    fn hold(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.hold_ms.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Records that a head served boundary `w` on `counter` now.
    fn serving(&self, counter: CounterId, w: u64) {
        let hold = self.hold();
        let now = std::time::Instant::now();
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        let q = served.entry(counter).or_default();
        match q.back_mut() {
            Some((at, last)) if *last == w => *at = now,
            _ => q.push_back((now, w)),
        }
        while q
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > hold)
        {
            q.pop_front();
        }
        // Bounded: past 64, the two oldest merge into one holding the lower boundary as long
        // as the later of the two (the hold never loses its minimum).
        while q.len() > 64 {
            if let (Some((_, w0)), Some((t1, w1))) = (q.pop_front(), q.pop_front()) {
                q.push_front((t1, w0.min(w1)));
            }
        }
    }

    /// The lowest boundary a head served on `counter` within the hold, if any.
    fn lowest_served(&self, counter: CounterId) -> Option<u64> {
        let hold = self.hold();
        let now = std::time::Instant::now();
        let served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        served.get(&counter).and_then(|q| {
            q.iter()
                .filter(|(at, _)| now.duration_since(*at) < hold)
                .map(|(_, w)| *w)
                .min()
        })
    }

    /// Deletes every stored entry and gap notice before each counter's window boundary
    /// (DESIGN.md §9: storage bounded by what was counted in the last L_max), keeping the
    /// boundary. The boundary for deletion lags the one heads serve by [`COMPACT_LAG`] of
    /// node time, and never passes a boundary a head served in the last ten minutes, so a
    /// retrieve that began under an earlier boundary still finds its window.
    /// Returns how many items were deleted. Scheme M instead removes the records expired by
    /// the node's clock, in a step that justifies each removal, and returns how many.
    pub fn compact(&self) -> Result<u64, ServeError> {
        if self.protocol == Protocol::Steps {
            return self
                .sweep_steps()
                .map_err(|e| ServeError::Sweep(e.to_string()));
        }
        if self.protocol != Protocol::Entries {
            return Ok(0);
        }
        let _window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let edge = self.edge().saturating_sub(COMPACT_LAG);
        let mut deleted = 0;
        for c in &self.cert.cert.counters {
            let Some(head) = self.store.head(c.id)? else {
                continue;
            };
            if let Some(b) = self.store.boundary(c.id, head, edge)? {
                let below = match self.lowest_served(c.id) {
                    Some(w) => b.value().min(w),
                    None => b.value(),
                };
                deleted += self.store.compact(c.id, below)?;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted entries before the window");
        }
        Ok(deleted)
    }

    /// Answers a page request from the store.
    pub(crate) fn entries_page(&self, req: &PageRequest) -> Result<Page, ServeError> {
        if self.protocol != Protocol::Entries {
            return Err(ServeError::WrongScheme);
        }
        if self.cert.cert.counter(req.counter).is_none() {
            return Err(ServeError::UnknownCounter(req.counter));
        }
        let max = (req.max_items as usize).clamp(1, MAX_PAGE_ITEMS);
        let items = self
            .store
            .page(req.counter, req.after, req.upto, max, MAX_PAGE_BYTES)?;
        Ok(Page { items })
    }

    /// The receipt for an offer this node already counted (B, C), or `None`.
    pub(crate) fn reissue_entry(&self, offer: &SignedOffer) -> Result<Option<Receipt>, ServeError> {
        let counter = self.cert.cert.counter_for(&offer.offer.key).id;
        Ok(self
            .store
            .find(counter, &offer.to_bytes())?
            .map(|item| Receipt {
                cert_id: self.cert_id,
                at: item.at(),
                inc: item.inc().clone(),
            }))
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) type CrashAtInner = CrashAt;
#[cfg(not(feature = "fault-injection"))]
pub(crate) type CrashAtInner = std::convert::Infallible;

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

/// Offers per thread below which a batch's signatures are checked on the calling thread.
const VERIFY_PER_THREAD: usize = 64;

/// True if every offer's signature verifies: one batch verification, split over up to 4
/// threads for a large batch (a step's 256 signatures are most of its CPU time). A split
/// batch that fails, or a thread that fails, answers false: the caller then checks each.
fn signatures_hold(offers: &[&SignedOffer]) -> bool {
    fn one_batch(offers: &[&SignedOffer]) -> bool {
        let mut batch = BatchVerifier::new();
        for o in offers {
            batch.push(
                o.offer.seller,
                tags::OFFER,
                &o.offer.to_bytes(),
                o.signature,
            );
        }
        batch.verify_all()
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
        .min(offers.len() / VERIFY_PER_THREAD)
        .max(1);
    if threads == 1 {
        return one_batch(offers);
    }
    let per = offers.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut parts = offers.chunks(per);
        let first = parts.next().unwrap_or(&[]);
        let mut here = one_batch(first);
        let mut others = Vec::new();
        for part in parts {
            // A thread the system cannot start: that part is checked here.
            match std::thread::Builder::new().spawn_scoped(s, move || one_batch(part)) {
                Ok(h) => others.push(h),
                Err(_) => here = one_batch(part) && here,
            }
        }
        others
            .into_iter()
            .fold(here, |ok, h| h.join().unwrap_or(false) && ok)
    })
}

//! The honest listing node: device + store, publish with group commit, reconcile, serve.

use candor_core::{
    gap_payload, tags, BatchVerifier, CounterId, DecodeError, Digest, Encode, OfferFault, PageItem,
    PeerId, Protocol, SignedCertificate, SignedOffer,
};
use candor_device::{DeviceError, TrustedDevice};
use candor_store::{ListingStore, Pending, PendingItem, StoreError};
use std::collections::HashMap;
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
pub(crate) fn wall_clock() -> u64 {
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
    /// The stored live map does not fold to the root the last stored step binds.
    #[error("the stored live map does not fold to the root step {0} binds; the store is corrupt")]
    LiveMap(u64),
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
    /// Scheme M: the signed step at the audit horizon heads last served (read once from the
    /// store per horizon).
    pub(crate) horizon: Mutex<Option<candor_core::SignedStep>>,
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
            horizon: Mutex::new(None),
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
    pub(crate) fn durable(&self, at: u64) {
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
}

#[cfg(feature = "fault-injection")]
pub(crate) type CrashAtInner = CrashAt;
#[cfg(not(feature = "fault-injection"))]
pub(crate) type CrashAtInner = std::convert::Infallible;

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

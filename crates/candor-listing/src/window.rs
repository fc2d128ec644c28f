//! Schemes B and C as a node serves them: the head with its window boundary, pages, the
//! node's clock and the window's edge, the boundaries served recently, and compaction
//! (DESIGN.md §9's sliding window).

use crate::node::{wall_clock, ListingNode, ServeError, COMPACT_LAG, MAX_PAGE_BYTES};
use candor_core::{
    CounterId, Encode, Page, PageRequest, Protocol, Receipt, RetrieveHead, RetrieveRequest,
    SignedOffer, MAX_PAGE_ITEMS,
};
use candor_device::TrustedDevice;

impl<D: TrustedDevice> ListingNode<D> {
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
    pub(crate) fn serving(&self, counter: CounterId, w: u64) {
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
    pub(crate) fn lowest_served(&self, counter: CounterId) -> Option<u64> {
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
    /// the node's clock, in a step that justifies each removal, and returns how many; then it
    /// drops the proofs of the steps below the audit horizon (`prune_steps`).
    pub fn compact(&self) -> Result<u64, ServeError> {
        if self.protocol == Protocol::Steps {
            let removed = self
                .sweep_steps()
                .map_err(|e| ServeError::Sweep(e.to_string()))?;
            self.prune_steps()?;
            return Ok(removed);
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

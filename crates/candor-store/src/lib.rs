//! # candor-store
//!
//! The listing node's durable store, on the embedded database redb (ACID, copy-on-write
//! B-trees, fsync on commit, pure Rust). It holds:
//! - **pending records**: (counter, exact payload, the entry's bytes), written durably *before*
//!   the device is asked to count them, so a crash at any point can be reconciled;
//! - **entries**: each counted value's page item (the `Inc`, its node time and the offer
//!   bytes, or a gap notice), keyed by (counter, value), served verbatim on retrieve; the
//!   entries below a counter's window boundary are deleted ([`ListingStore::compact`]);
//! - **heads**: per counter, the highest value stored (and the certified initial value);
//! - **scheme M**: every step's signed header, its whole proof until it falls below the audit
//!   horizon ([`ListingStore::prune_steps`]), and the live map — each live record and each
//!   item's last change — written with the step, so a node opens without a replay.
//!
//! Writes are batched by the caller (group commit): one transaction, one fsync, per batch.
//!
//! ```
//! use candor_store::ListingStore;
//! let store = ListingStore::in_memory().unwrap();
//! store.init_counters(&[(0, 5)]).unwrap();
//! assert_eq!(store.head(0).unwrap(), Some(5));
//! ```

use candor_core::{CounterId, Decode, Digest, Encode, PageItem, MAX_ENTRY_BYTES};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use thiserror::Error;

mod steps;

pub use steps::{ItemChange, LiveMap, StoredRecord};

const ENTRIES: TableDefinition<'_, (u32, u64), &[u8]> = TableDefinition::new("entries");
const PENDING: TableDefinition<'_, (u32, &[u8; 32]), &[u8]> = TableDefinition::new("pending");
const HEADS: TableDefinition<'_, u32, (u64, u64)> = TableDefinition::new("heads");
/// (counter, SHA-256 of an entry's offer bytes) → the first value that counted it.
const BY_OFFER: TableDefinition<'_, (u32, &[u8; 32]), u64> = TableDefinition::new("by-offer");
/// counter → the value below which its items were deleted (the kept boundary): a boundary is
/// never served below it, whatever the clock says later.
const FLOORS: TableDefinition<'_, u32, u64> = TableDefinition::new("floors");
/// (counter, value) → a scheme-M step's whole proof, while it is above the pruned horizon.
const M_STEPS: TableDefinition<'_, (u32, u64), &[u8]> = TableDefinition::new("m-steps");
/// (counter, value) → every scheme-M step's signed header, kept when its proof is pruned.
const M_HEADERS: TableDefinition<'_, (u32, u64), &[u8]> = TableDefinition::new("m-headers");
/// (counter, item, H(offer)) → the step that added a live record, then the offer's bytes.
const M_RECORDS: TableDefinition<'_, RecordKey<'_>, &[u8]> = TableDefinition::new("m-records");
/// A live record's key: (counter, item, H(offer)).
type RecordKey<'a> = (u32, &'a [u8; 32], &'a [u8; 32]);
/// (counter, item) → the step at which the item's live list last changed (items with one).
const M_LEAVES: TableDefinition<'_, (u32, &[u8; 32]), u64> = TableDefinition::new("m-leaves");
/// counter → the highest value whose step proof was pruned (the audit horizon).
const M_PRUNED: TableDefinition<'_, u32, u64> = TableDefinition::new("m-pruned");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The store's format. 2: scheme-M steps chain their gap steps (step format 3). 4: each
/// scheme-M list row holds the step that appended it, the item's chain after it, then the
/// offer, so the leaf under any past root is found in O(log n) reads (3, never released,
/// kept the leaves in a table of their own). 5: scheme M's tree collapses single-leaf
/// subtrees and its steps bind the nested payload (step format 4), so format 4's stored steps
/// neither decode nor replay to their roots. 6: steps bind node time (DESIGN.md §9), kept in
/// a step's pending record, under certificates with time rules. 7: scheme B/C entries and
/// gap notices bind node time too (kept in their pending records and page items), and entries
/// are found by their offer's bytes. 8: scheme M's live map (step format 5); the lists live in
/// the replayed state, not in a table. 9: the live map's records and leaves in tables of
/// their own (opened without a replay), every step's header kept apart from its proof, and
/// proofs below the audit horizon pruned. A store of another format is refused (there is no
/// migration: nothing runs in production yet).
pub const STORE_FORMAT: u64 = 9;

/// The largest pending scheme-M step (a batch of offers).
pub const MAX_PENDING_STEP: usize = 1 << 20;

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("listing store {path}: {source}")]
    Db {
        /// The database file (or `memory`).
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<redb::Error>,
    },
    /// Stored bytes do not decode (the database was altered or corrupted).
    #[error("listing store {path}: a stored record is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A counter the store was never told about.
    #[error("the store has no counter {0}; it was initialised for another certificate")]
    UnknownCounter(CounterId),
    /// A failure a test asked for.
    #[cfg(feature = "fault-injection")]
    #[error("listing store: injected fault: the commit failed")]
    Injected,
    /// The store was written in another format than this version reads.
    #[error("listing store {path}: written in store format {found}, but this Candor reads format {expected}. There is no migration (nothing runs in production yet): move the data folder aside and set the node up again (candor device init, candor device enroll)")]
    Format {
        /// The database file.
        path: PathBuf,
        /// The format found.
        found: u64,
        /// The format this version reads.
        expected: u64,
    },
}

/// What a pending record will become once counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingItem {
    /// An entry: the node time it is counted at and its bytes (a signed offer).
    Entry {
        /// The node time.
        at: u64,
        /// The offer's bytes.
        bytes: Vec<u8>,
    },
    /// A scheme-M step's batch (encoded offers, in order).
    Step(Vec<u8>),
    /// A gap notice covering `first..=last`, at node time `at`.
    Gap {
        /// The node time (the last durable one when the notice is written).
        at: u64,
        /// First value covered.
        first: u64,
        /// Last value covered.
        last: u64,
    },
}

impl PendingItem {
    fn encode(&self) -> Vec<u8> {
        let mut w = candor_core::Writer::new();
        match self {
            Self::Entry { at, bytes } => w.u8(1).u64(*at).bytes16(bytes),
            Self::Gap { at, first, last } => w.u8(2).u64(*at).u64(*first).u64(*last),
            Self::Step(b) => w.u8(3).bytes32(b),
        };
        w.into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Self, candor_core::DecodeError> {
        let mut r = candor_core::Reader::new(bytes);
        let item = match r.u8("pending kind")? {
            1 => Self::Entry {
                at: r.u64("at")?,
                bytes: r.bytes16(MAX_ENTRY_BYTES, "entry")?.to_vec(),
            },
            2 => Self::Gap {
                at: r.u64("at")?,
                first: r.u64("first")?,
                last: r.u64("last")?,
            },
            3 => Self::Step(r.bytes32(MAX_PENDING_STEP, "step")?.to_vec()),
            kind => {
                return Err(candor_core::DecodeError::UnknownKind {
                    what: "pending record",
                    kind,
                })
            }
        };
        r.finish("pending record")?;
        Ok(item)
    }
}

/// A pending record: the payload the device will be asked to bind, and what it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The counter.
    pub counter: CounterId,
    /// The payload.
    pub payload: Digest,
    /// The entry or gap notice.
    pub item: PendingItem,
}

/// The durable listing store.
#[derive(Debug)]
pub struct ListingStore {
    db: Database,
    path: PathBuf,
    /// Commits still to fail (tests of what a node does when a write fails).
    #[cfg(feature = "fault-injection")]
    failing: std::sync::atomic::AtomicU32,
}

impl ListingStore {
    fn err(&self) -> impl Fn(redb::Error) -> StoreError + '_ {
        |e| StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e),
        }
    }

    fn setup(db: Database, path: PathBuf) -> Result<Self, StoreError> {
        let store = Self {
            db,
            path,
            #[cfg(feature = "fault-injection")]
            failing: std::sync::atomic::AtomicU32::new(0),
        };
        let txn = store.db.begin_write().map_err(|e| store.err()(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| store.err()(e.into()))?;
            let found = match meta.get("format").map_err(|e| store.err()(e.into()))? {
                Some(f) => Some(f.value()),
                // Stores of format 1 had no format record, but had counters.
                None => {
                    let heads = txn.open_table(HEADS).map_err(|e| store.err()(e.into()))?;
                    let used = !heads.is_empty().map_err(|e| store.err()(e.into()))?;
                    used.then_some(1)
                }
            };
            match found {
                Some(f) if f != STORE_FORMAT => {
                    return Err(StoreError::Format {
                        path: store.path.clone(),
                        found: f,
                        expected: STORE_FORMAT,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("format", STORE_FORMAT)
                        .map_err(|e| store.err()(e.into()))?;
                }
            }
        }
        {
            txn.open_table(ENTRIES).map_err(|e| store.err()(e.into()))?;
            txn.open_table(PENDING).map_err(|e| store.err()(e.into()))?;
            txn.open_table(HEADS).map_err(|e| store.err()(e.into()))?;
            txn.open_table(FLOORS).map_err(|e| store.err()(e.into()))?;
            txn.open_table(BY_OFFER)
                .map_err(|e| store.err()(e.into()))?;
            txn.open_table(M_STEPS).map_err(|e| store.err()(e.into()))?;
            txn.open_table(M_HEADERS)
                .map_err(|e| store.err()(e.into()))?;
            txn.open_table(M_RECORDS)
                .map_err(|e| store.err()(e.into()))?;
            txn.open_table(M_LEAVES)
                .map_err(|e| store.err()(e.into()))?;
            txn.open_table(M_PRUNED)
                .map_err(|e| store.err()(e.into()))?;
        }
        txn.commit().map_err(|e| store.err()(e.into()))?;
        Ok(store)
    }

    /// Makes the next `n` entry or step commits fail, as a full disk would (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn fail_commits(&self, n: u32) {
        self.failing.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(feature = "fault-injection")]
    fn injected(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let took = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match took {
            Ok(_) => Err(StoreError::Injected),
            Err(_) => Ok(()),
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    #[inline(always)]
    fn injected(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Db {
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        })?;
        Self::setup(db, path.to_path_buf())
    }

    /// A store in memory, for simulations and tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Db {
                path: "memory".into(),
                source: Box::new(e.into()),
            })?;
        Self::setup(db, "memory".into())
    }

    /// Records the certified counters and their initial values (idempotent; existing
    /// counters keep their heads).
    pub fn init_counters(&self, counters: &[(CounterId, u64)]) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut heads = txn.open_table(HEADS).map_err(|x| e(x.into()))?;
            for &(id, initial) in counters {
                if heads.get(id).map_err(|x| e(x.into()))?.is_none() {
                    heads
                        .insert(id, (initial, initial))
                        .map_err(|x| e(x.into()))?;
                }
            }
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// The highest value stored for `counter` (its initial value if none), or `None` if the
    /// counter is unknown.
    pub fn head(&self, counter: CounterId) -> Result<Option<u64>, StoreError> {
        Ok(self.heads(counter)?.map(|(_, h)| h))
    }

    /// (initial, head) of `counter`.
    pub fn heads(&self, counter: CounterId) -> Result<Option<(u64, u64)>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let heads = txn.open_table(HEADS).map_err(|x| e(x.into()))?;
        Ok(heads
            .get(counter)
            .map_err(|x| e(x.into()))?
            .map(|g| g.value()))
    }

    /// Makes pending records durable (one transaction, one fsync).
    pub fn put_pending(&self, records: &[Pending]) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut t = txn.open_table(PENDING).map_err(|x| e(x.into()))?;
            for p in records {
                t.insert(
                    (p.counter, p.payload.as_bytes()),
                    p.item.encode().as_slice(),
                )
                .map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// The pending records of `counter`.
    pub fn pending(&self, counter: CounterId) -> Result<Vec<Pending>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(PENDING).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        for row in t
            .range((counter, &[0u8; 32])..=(counter, &[0xffu8; 32]))
            .map_err(|x| e(x.into()))?
        {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            let item = PendingItem::decode(v.value()).map_err(|err| self.corrupt(err))?;
            out.push(Pending {
                counter,
                payload: Digest(*k.value().1),
                item,
            });
        }
        Ok(out)
    }

    fn corrupt(&self, err: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason: err.to_string(),
        }
    }

    /// Stores counted items (each at its `Inc`'s counter and value), advances the heads, and
    /// clears the pending records they resolve and `drop_pending` — one transaction.
    pub fn commit(
        &self,
        items: &[PageItem],
        drop_pending: &[(CounterId, Digest)],
    ) -> Result<(), StoreError> {
        self.injected()?;
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(|x| e(x.into()))?;
            let mut pending = txn.open_table(PENDING).map_err(|x| e(x.into()))?;
            let mut heads = txn.open_table(HEADS).map_err(|x| e(x.into()))?;
            let mut by_offer = txn.open_table(BY_OFFER).map_err(|x| e(x.into()))?;
            for item in items {
                let inc = &item.inc().inc;
                entries
                    .insert((inc.counter, inc.value), item.to_bytes().as_slice())
                    .map_err(|x| e(x.into()))?;
                // The first value that counted an offer is the one a reissued receipt names.
                if let PageItem::Entry { bytes, .. } = item {
                    let key = candor_core::sha256(bytes);
                    if by_offer
                        .get((inc.counter, key.as_bytes()))
                        .map_err(|x| e(x.into()))?
                        .is_none()
                    {
                        by_offer
                            .insert((inc.counter, key.as_bytes()), inc.value)
                            .map_err(|x| e(x.into()))?;
                    }
                }
                pending
                    .remove((inc.counter, inc.payload.as_bytes()))
                    .map_err(|x| e(x.into()))?;
                let (initial, head) = heads
                    .get(inc.counter)
                    .map_err(|x| e(x.into()))?
                    .map(|g| g.value())
                    .ok_or(StoreError::UnknownCounter(inc.counter))?;
                if inc.value > head {
                    heads
                        .insert(inc.counter, (initial, inc.value))
                        .map_err(|x| e(x.into()))?;
                }
            }
            for (c, p) in drop_pending {
                pending
                    .remove((*c, p.as_bytes()))
                    .map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// The stored items of `counter` with values in `after+1 ..= upto`, at most `max` of
    /// them and at most `max_bytes` of encoded items, in value order.
    pub fn page(
        &self,
        counter: CounterId,
        after: u64,
        upto: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<PageItem>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(ENTRIES).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if after >= upto {
            return Ok(out);
        }
        for row in t
            .range((counter, after + 1)..=(counter, upto))
            .map_err(|x| e(x.into()))?
        {
            let (_, v) = row.map_err(|x| e(x.into()))?;
            let raw = v.value();
            if out.len() >= max || (bytes + raw.len() > max_bytes && !out.is_empty()) {
                break;
            }
            bytes += raw.len();
            out.push(PageItem::from_bytes(raw).map_err(|err| self.corrupt(err))?);
        }
        Ok(out)
    }

    /// The stored item at (`counter`, `value`).
    pub fn get(&self, counter: CounterId, value: u64) -> Result<Option<PageItem>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(ENTRIES).map_err(|x| e(x.into()))?;
        match t.get((counter, value)).map_err(|x| e(x.into()))? {
            None => Ok(None),
            Some(v) => Ok(Some(
                PageItem::from_bytes(v.value()).map_err(|err| self.corrupt(err))?,
            )),
        }
    }

    /// The sliding window's boundary (DESIGN.md §9): the stored item of `counter` with the
    /// highest value at most `upto` whose node time is before `edge`, if any. Node time never
    /// goes backwards along a counter's values, so this is a binary search: O(log n) reads.
    pub fn boundary(
        &self,
        counter: CounterId,
        upto: u64,
        edge: u64,
    ) -> Result<Option<PageItem>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(ENTRIES).map_err(|x| e(x.into()))?;
        // The first stored item in lo..=hi.
        let first_in = |lo: u64, hi: u64| -> Result<Option<PageItem>, StoreError> {
            let mut range = t
                .range((counter, lo)..=(counter, hi))
                .map_err(|x| e(x.into()))?;
            match range.next() {
                None => Ok(None),
                Some(row) => {
                    let (_, v) = row.map_err(|x| e(x.into()))?;
                    Ok(Some(
                        PageItem::from_bytes(v.value()).map_err(|err| self.corrupt(err))?,
                    ))
                }
            }
        };
        let floor = txn
            .open_table(FLOORS)
            .map_err(|x| e(x.into()))?
            .get(counter)
            .map_err(|x| e(x.into()))?
            .map_or(0, |g| g.value());
        let Some(lowest) = first_in(0, upto)? else {
            return Ok(None);
        };
        let (mut lo, mut hi) = (lowest.value(), upto);
        let mut best = None;
        while lo <= hi {
            let mid = lo + (hi - lo) / 2;
            match first_in(mid, hi)? {
                Some(item) if item.at() < edge => {
                    lo = item.value() + 1;
                    best = Some(item);
                }
                // Nothing stored in mid..=hi, or it (and all after it) is not before the edge.
                _ => match mid.checked_sub(1) {
                    Some(m) => hi = m,
                    None => break,
                },
            }
        }
        // Never below what was deleted: the item kept there is the boundary at least (a
        // clock stepped back after a compaction cannot open a window onto deleted values).
        if floor > 0 && best.as_ref().is_none_or(|b| b.value() < floor) && floor <= upto {
            return first_in(floor, upto);
        }
        Ok(best)
    }

    /// Deletes the stored items of `counter` below value `below` (everything before the
    /// window's boundary: the boundary itself is kept) and their offers' index rows; one
    /// transaction. Returns how many items were deleted.
    pub fn compact(&self, counter: CounterId, below: u64) -> Result<u64, StoreError> {
        self.injected()?;
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        let mut n = 0u64;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(|x| e(x.into()))?;
            let mut by_offer = txn.open_table(BY_OFFER).map_err(|x| e(x.into()))?;
            let mut floors = txn.open_table(FLOORS).map_err(|x| e(x.into()))?;
            let floor = floors
                .get(counter)
                .map_err(|x| e(x.into()))?
                .map_or(0, |g| g.value());
            if below > floor {
                floors.insert(counter, below).map_err(|x| e(x.into()))?;
            }
            let gone = entries
                .extract_from_if((counter, 0)..(counter, below), |_, _| true)
                .map_err(|x| e(x.into()))?;
            for row in gone {
                let (_, v) = row.map_err(|x| e(x.into()))?;
                n += 1;
                if let Ok(PageItem::Entry { bytes, .. }) = PageItem::from_bytes(v.value()) {
                    let key = candor_core::sha256(&bytes);
                    // Only if the index names a deleted value (an offer counted again later
                    // keeps its row).
                    let indexed = by_offer
                        .get((counter, key.as_bytes()))
                        .map_err(|x| e(x.into()))?
                        .map(|g| g.value());
                    if indexed.is_some_and(|v| v < below) {
                        by_offer
                            .remove((counter, key.as_bytes()))
                            .map_err(|x| e(x.into()))?;
                    }
                }
            }
        }
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(n)
    }

    /// How many items `counter` stores (entries and gap notices).
    pub fn stored(&self, counter: CounterId) -> Result<u64, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(ENTRIES).map_err(|x| e(x.into()))?;
        let mut n = 0u64;
        for row in t
            .range((counter, 0)..=(counter, u64::MAX))
            .map_err(|x| e(x.into()))?
        {
            row.map_err(|x| e(x.into()))?;
            n += 1;
        }
        Ok(n)
    }

    /// The stored entry that counted `offer_bytes` on `counter` (the first such value).
    pub fn find(
        &self,
        counter: CounterId,
        offer_bytes: &[u8],
    ) -> Result<Option<PageItem>, StoreError> {
        let e = self.err();
        let key = candor_core::sha256(offer_bytes);
        let value = {
            let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
            let t = txn.open_table(BY_OFFER).map_err(|x| e(x.into()))?;
            let v = t.get((counter, key.as_bytes())).map_err(|x| e(x.into()))?;
            v.map(|g| g.value())
        };
        match value {
            Some(v) => self.get(counter, v),
            None => Ok(None),
        }
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Ed25519StatementSigner, Keypair, PeerId};

    fn signer() -> Ed25519StatementSigner {
        let node = Keypair::generate(&mut rand_core::OsRng);
        Ed25519StatementSigner::new(
            Keypair::generate(&mut rand_core::OsRng),
            PeerId::from_ed25519(&node.public()),
        )
    }

    #[test]
    fn a_store_of_another_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let store = ListingStore::open(&path).unwrap();
            store.init_counters(&[(0, 0)]).unwrap();
            // A store of format 1 had counters and no format record.
            let txn = store.db.begin_write().unwrap();
            txn.delete_table(META).unwrap();
            txn.commit().unwrap();
        }
        let err = ListingStore::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Format {
                    found: 1,
                    expected: STORE_FORMAT,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("set the node up again"), "{err}");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("format", 99).unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(
            ListingStore::open(&path).unwrap_err(),
            StoreError::Format { found: 99, .. }
        ));
        // Formats 2 and 3 laid list rows out otherwise: proofs under past roots would be wrong;
        // format 4's steps bind roots of the full-depth tree.
        for old in [2, 3, 4] {
            {
                let db = Database::create(&path).unwrap();
                let txn = db.begin_write().unwrap();
                txn.open_table(META).unwrap().insert("format", old).unwrap();
                txn.commit().unwrap();
            }
            assert!(matches!(
                ListingStore::open(&path).unwrap_err(),
                StoreError::Format { found, .. } if found == old
            ));
        }
        // A new store gets this format; reopening it works.
        let fresh = dir.path().join("fresh.redb");
        ListingStore::open(&fresh)
            .unwrap()
            .init_counters(&[(0, 0)])
            .unwrap();
        ListingStore::open(&fresh).unwrap();
    }

    #[test]
    fn pending_commit_page_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let s = signer();
        {
            let store = ListingStore::open(&path).unwrap();
            store.init_counters(&[(0, 10), (1, 0)]).unwrap();
            let p = Pending {
                counter: 0,
                payload: Digest([1; 32]),
                item: PendingItem::Entry {
                    at: 9,
                    bytes: vec![1, 2, 3],
                },
            };
            store.put_pending(std::slice::from_ref(&p)).unwrap();
            assert_eq!(store.pending(0).unwrap(), vec![p]);
            assert!(store.pending(1).unwrap().is_empty());
            let items: Vec<PageItem> = (11..=15)
                .map(|v| PageItem::Entry {
                    inc: s.sign_inc(0, v, Digest([v as u8; 32])),
                    at: v,
                    bytes: vec![v as u8],
                })
                .collect();
            store.commit(&items, &[(0, Digest([1; 32]))]).unwrap();
            assert!(store.pending(0).unwrap().is_empty());
        }
        let store = ListingStore::open(&path).unwrap();
        assert_eq!(store.heads(0).unwrap(), Some((10, 15)));
        let page = store.page(0, 11, 15, 2, usize::MAX).unwrap();
        assert_eq!(
            page.iter().map(PageItem::value).collect::<Vec<_>>(),
            vec![12, 13]
        );
        assert_eq!(store.page(0, 15, 15, 10, usize::MAX).unwrap(), vec![]);
        assert_eq!(store.get(0, 14).unwrap().map(|i| i.value()), Some(14));
        assert_eq!(store.find(0, &[14]).unwrap().map(|i| i.value()), Some(14));
        assert_eq!(store.find(0, &[99]).unwrap(), None);
        assert_eq!(store.head(7).unwrap(), None);
    }

    #[test]
    fn commit_on_unknown_counter_is_refused() {
        let store = ListingStore::in_memory().unwrap();
        let item = PageItem::Gap {
            inc: signer().sign_inc(3, 1, Digest([0; 32])),
            at: 0,
            first: 0,
            last: 0,
        };
        assert!(matches!(
            store.commit(&[item], &[]),
            Err(StoreError::UnknownCounter(3))
        ));
    }

    /// The window's boundary is the last stored item dated before the edge, whatever holes
    /// the stored values have; compaction deletes what lies before it and keeps it.
    #[test]
    fn boundary_search_and_compaction() {
        let store = ListingStore::in_memory().unwrap();
        store.init_counters(&[(0, 0), (1, 0)]).unwrap();
        let s = signer();
        // Values 1..=40 except 10..=14 (lost), at = 100 + 10·v (non-decreasing), on counter 0.
        let items: Vec<PageItem> = (1..=40u64)
            .filter(|v| !(10..=14).contains(v))
            .map(|v| PageItem::Entry {
                inc: s.sign_inc(0, v, Digest([v as u8; 32])),
                at: 100 + 10 * v,
                bytes: vec![v as u8],
            })
            .collect();
        store.commit(&items, &[]).unwrap();
        let b = |upto, edge| store.boundary(0, upto, edge).unwrap().map(|i| i.value());
        assert_eq!(b(40, 0), None);
        assert_eq!(b(40, 110), None);
        assert_eq!(b(40, 111), Some(1));
        assert_eq!(b(40, 230), Some(9), "the holes 10..=14 are skipped");
        assert_eq!(b(40, 251), Some(15));
        assert_eq!(b(40, 10_000), Some(40));
        assert_eq!(b(20, 10_000), Some(20), "never beyond upto");
        for edge in 0..600 {
            let want = items
                .iter()
                .filter(|i| i.at() < edge)
                .map(PageItem::value)
                .next_back();
            assert_eq!(b(40, edge), want, "edge {edge}");
        }
        assert_eq!(store.boundary(1, 40, 10_000).unwrap(), None);
        assert_eq!(store.compact(0, 15).unwrap(), 9);
        assert_eq!(store.stored(0).unwrap(), 26);
        assert_eq!(store.find(0, &[3]).unwrap(), None, "the index row went too");
        assert_eq!(store.find(0, &[15]).unwrap().map(|i| i.value()), Some(15));
        assert_eq!(b(40, 251), Some(15));
        assert_eq!(
            b(40, 200),
            Some(15),
            "never below the kept boundary, even for an earlier edge"
        );
        assert_eq!(b(40, 0), Some(15));
        assert_eq!(store.compact(0, 15).unwrap(), 0);
        assert_eq!(store.compact(0, 3).unwrap(), 0, "the floor never goes down");
        assert_eq!(b(40, 0), Some(15));
    }
}

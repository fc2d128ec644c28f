//! Scheme M's steps in the store: each counted step's whole proof, by counter and value.

use crate::{ListingStore, StoreError, HEADS, M_STEPS, PENDING};
use candor_core::{CounterId, Digest};
use redb::{ReadableDatabase, ReadableTable};

impl ListingStore {
    /// Stores a counted scheme-M step (its whole proof, which replays it), advances the
    /// counter's head and clears the step's pending record — one transaction.
    pub fn commit_step(
        &self,
        counter: CounterId,
        value: u64,
        payload: &Digest,
        step: &[u8],
    ) -> Result<(), StoreError> {
        self.injected()?;
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut steps = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
            let mut pending = txn.open_table(PENDING).map_err(|x| e(x.into()))?;
            let mut heads = txn.open_table(HEADS).map_err(|x| e(x.into()))?;
            steps
                .insert((counter, value), step)
                .map_err(|x| e(x.into()))?;
            pending
                .remove((counter, payload.as_bytes()))
                .map_err(|x| e(x.into()))?;
            let (initial, head) = heads
                .get(counter)
                .map_err(|x| e(x.into()))?
                .map(|g| g.value())
                .ok_or(StoreError::UnknownCounter(counter))?;
            if value > head {
                heads
                    .insert(counter, (initial, value))
                    .map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// The stored scheme-M step at `value`.
    pub fn step(&self, counter: CounterId, value: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
        Ok(t.get((counter, value))
            .map_err(|x| e(x.into()))?
            .map(|g| g.value().to_vec()))
    }

    /// The first stored scheme-M step at or above `value`, with its value (the gap step over a
    /// value a crash lost).
    pub fn step_from(
        &self,
        counter: CounterId,
        value: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
        let mut rows = t
            .range((counter, value)..=(counter, u64::MAX))
            .map_err(|x| e(x.into()))?;
        match rows.next() {
            None => Ok(None),
            Some(row) => {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                Ok(Some((k.value().1, v.value().to_vec())))
            }
        }
    }

    /// Every stored step of `counter`, in value order (to rebuild the tree on open).
    pub fn steps(&self, counter: CounterId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        for row in t
            .range((counter, 0)..=(counter, u64::MAX))
            .map_err(|x| e(x.into()))?
        {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    }
}

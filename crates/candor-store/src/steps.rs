//! Scheme M in the store: each step's signed header (kept for good), its whole proof (pruned
//! below the audit horizon), and the live map — every live record and every item's last
//! change — updated in the transaction that stores the step, so a node opens without a replay.

use crate::{
    ListingStore, StoreError, HEADS, M_HEADERS, M_LEAVES, M_PRUNED, M_RECORDS, M_STEPS, PENDING,
};
use candor_core::{CounterId, Digest, ItemKey};
use redb::{ReadableDatabase, ReadableTable};
use std::sync::Arc;

/// How one step changed one item's live list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemChange {
    /// The item.
    pub item: ItemKey,
    /// The step at which its list last changed (this one), or None: the list is now empty.
    pub last_changed: Option<u64>,
    /// The records the step removed, by H(offer).
    pub removed: Vec<Digest>,
    /// The records it added: H(offer) and the offer's bytes.
    pub added: Vec<(Digest, Arc<[u8]>)>,
}

/// A live record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its item.
    pub item: ItemKey,
    /// H(offer).
    pub hash: Digest,
    /// The step that added it.
    pub added: u64,
    /// The offer's bytes.
    pub bytes: Vec<u8>,
}

/// The live map as stored after the last step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveMap {
    /// Each item with a list, and the step at which it last changed, in item order.
    pub leaves: Vec<(ItemKey, u64)>,
    /// Every live record, in (item, hash) order.
    pub records: Vec<StoredRecord>,
}

impl ListingStore {
    /// Stores a counted scheme-M step — its signed header, its whole proof, and the changes it
    /// made to the live map — advances the counter's head and clears the step's pending
    /// record: one transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_step(
        &self,
        counter: CounterId,
        value: u64,
        payload: &Digest,
        step: &[u8],
        header: &[u8],
        changes: &[ItemChange],
    ) -> Result<(), StoreError> {
        self.injected()?;
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut steps = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
            let mut headers = txn.open_table(M_HEADERS).map_err(|x| e(x.into()))?;
            let mut records = txn.open_table(M_RECORDS).map_err(|x| e(x.into()))?;
            let mut leaves = txn.open_table(M_LEAVES).map_err(|x| e(x.into()))?;
            let mut pending = txn.open_table(PENDING).map_err(|x| e(x.into()))?;
            let mut heads = txn.open_table(HEADS).map_err(|x| e(x.into()))?;
            steps
                .insert((counter, value), step)
                .map_err(|x| e(x.into()))?;
            headers
                .insert((counter, value), header)
                .map_err(|x| e(x.into()))?;
            let mut row = Vec::new();
            for c in changes {
                let d = &c.item.0 .0;
                for h in &c.removed {
                    records
                        .remove((counter, d, h.as_bytes()))
                        .map_err(|x| e(x.into()))?;
                }
                for (h, bytes) in &c.added {
                    row.clear();
                    row.extend_from_slice(&value.to_le_bytes());
                    row.extend_from_slice(bytes);
                    records
                        .insert((counter, d, h.as_bytes()), row.as_slice())
                        .map_err(|x| e(x.into()))?;
                }
                match c.last_changed {
                    Some(v) => leaves.insert((counter, d), v).map_err(|x| e(x.into()))?,
                    None => leaves.remove((counter, d)).map_err(|x| e(x.into()))?,
                };
            }
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

    /// The live map of `counter` as the last stored step left it.
    pub fn live_map(&self, counter: CounterId) -> Result<LiveMap, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let mut map = LiveMap::default();
        let t = txn.open_table(M_LEAVES).map_err(|x| e(x.into()))?;
        for row in t
            .range((counter, &[0u8; 32])..=(counter, &[0xFF; 32]))
            .map_err(|x| e(x.into()))?
        {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            map.leaves.push((ItemKey(Digest(*k.value().1)), v.value()));
        }
        let t = txn.open_table(M_RECORDS).map_err(|x| e(x.into()))?;
        for row in t
            .range((counter, &[0u8; 32], &[0u8; 32])..=(counter, &[0xFF; 32], &[0xFF; 32]))
            .map_err(|x| e(x.into()))?
        {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            let (_, d, h) = k.value();
            let v = v.value();
            let (added, bytes) = v
                .split_first_chunk::<8>()
                .ok_or_else(|| self.corrupt("a live record shorter than its step value"))?;
            map.records.push(StoredRecord {
                item: ItemKey(Digest(*d)),
                hash: Digest(*h),
                added: u64::from_le_bytes(*added),
                bytes: bytes.to_vec(),
            });
        }
        Ok(map)
    }

    /// The stored scheme-M step at `value`, whole (None: no step there, or its proof was
    /// pruned below the audit horizon).
    pub fn step(&self, counter: CounterId, value: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.row(M_STEPS, counter, value)
    }

    /// The signed header of the scheme-M step at `value` (kept when its proof is pruned).
    pub fn step_header(
        &self,
        counter: CounterId,
        value: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.row(M_HEADERS, counter, value)
    }

    fn row(
        &self,
        table: redb::TableDefinition<'_, (u32, u64), &[u8]>,
        counter: CounterId,
        value: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(table).map_err(|x| e(x.into()))?;
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

    /// Every stored step header of `counter`, in value order.
    pub fn step_headers(&self, counter: CounterId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.step_headers_from(counter, 0)
    }

    /// The stored step headers of `counter` at or above `from`, in value order.
    pub fn step_headers_from(
        &self,
        counter: CounterId,
        from: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(M_HEADERS).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        for row in t
            .range((counter, from)..=(counter, u64::MAX))
            .map_err(|x| e(x.into()))?
        {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    }

    /// Every step of `counter` still stored whole, in value order.
    pub fn steps(&self, counter: CounterId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.rows(M_STEPS, counter)
    }

    fn rows(
        &self,
        table: redb::TableDefinition<'_, (u32, u64), &[u8]>,
        counter: CounterId,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(table).map_err(|x| e(x.into()))?;
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

    /// The last `n` steps of `counter` the store keeps whole, in value order.
    pub fn last_steps(
        &self,
        counter: CounterId,
        n: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
        let mut out = Vec::with_capacity(n);
        for row in t
            .range((counter, 0)..=(counter, u64::MAX))
            .map_err(|x| e(x.into()))?
            .rev()
            .take(n)
        {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            out.push((k.value().1, v.value().to_vec()));
        }
        out.reverse();
        Ok(out)
    }

    /// How many steps of `counter` the store keeps whole (their proofs not pruned).
    pub fn step_proofs(&self, counter: CounterId) -> Result<u64, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
        let mut n = 0;
        for row in t
            .range((counter, 0)..=(counter, u64::MAX))
            .map_err(|x| e(x.into()))?
        {
            row.map_err(|x| e(x.into()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Drops the proofs of `counter`'s steps at or below `upto` (their headers stay, so roots
    /// still chain) and records the highest value it dropped as the audit horizon, which never
    /// moves back and is always a step the store has the header of. Returns how many proofs
    /// were dropped.
    pub fn prune_steps(&self, counter: CounterId, upto: u64) -> Result<u64, StoreError> {
        let e = self.err();
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        let mut n = 0;
        {
            let mut pruned = txn.open_table(M_PRUNED).map_err(|x| e(x.into()))?;
            let from = pruned
                .get(counter)
                .map_err(|x| e(x.into()))?
                .map_or(0, |g| g.value());
            if upto <= from {
                return Ok(0);
            }
            let mut steps = txn.open_table(M_STEPS).map_err(|x| e(x.into()))?;
            let gone: Vec<u64> = steps
                .range((counter, from)..=(counter, upto))
                .map_err(|x| e(x.into()))?
                .map(|row| row.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()
                .map_err(|x| e(x.into()))?;
            let Some(&highest) = gone.last() else {
                return Ok(0);
            };
            for v in gone {
                steps.remove((counter, v)).map_err(|x| e(x.into()))?;
                n += 1;
            }
            pruned.insert(counter, highest).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(n)
    }

    /// The audit horizon of `counter`: the highest value whose step proof was pruned.
    pub fn step_horizon(&self, counter: CounterId) -> Result<Option<u64>, StoreError> {
        let e = self.err();
        let txn = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = txn.open_table(M_PRUNED).map_err(|x| e(x.into()))?;
        Ok(t.get(counter).map_err(|x| e(x.into()))?.map(|g| g.value()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(i: u8) -> ItemKey {
        ItemKey(Digest([i; 32]))
    }

    #[test]
    fn the_live_map_follows_each_step_and_pruning_keeps_headers() {
        let store = ListingStore::in_memory().unwrap();
        store.init_counters(&[(0, 0)]).unwrap();
        let bytes = |b: u8| -> Arc<[u8]> { Arc::from(vec![b; 5]) };
        let add = ItemChange {
            item: d(1),
            last_changed: Some(1),
            removed: vec![],
            added: vec![(Digest([10; 32]), bytes(10)), (Digest([11; 32]), bytes(11))],
        };
        store
            .commit_step(0, 1, &Digest([0; 32]), b"proof 1", b"header 1", &[add])
            .unwrap();
        let change = ItemChange {
            item: d(1),
            last_changed: Some(2),
            removed: vec![Digest([10; 32])],
            added: vec![],
        };
        let other = ItemChange {
            item: d(2),
            last_changed: Some(2),
            removed: vec![],
            added: vec![(Digest([20; 32]), bytes(20))],
        };
        store
            .commit_step(
                0,
                2,
                &Digest([0; 32]),
                b"proof 2",
                b"header 2",
                &[change, other],
            )
            .unwrap();
        let map = store.live_map(0).unwrap();
        assert_eq!(map.leaves, vec![(d(1), 2), (d(2), 2)]);
        let held: Vec<(ItemKey, u8, u64)> = map
            .records
            .iter()
            .map(|r| (r.item, r.hash.0[0], r.added))
            .collect();
        assert_eq!(held, vec![(d(1), 11, 1), (d(2), 20, 2)]);
        assert_eq!(map.records[0].bytes, vec![11; 5]);
        // An emptied list leaves the map.
        let gone = ItemChange {
            item: d(2),
            last_changed: None,
            removed: vec![Digest([20; 32])],
            added: vec![],
        };
        store
            .commit_step(0, 3, &Digest([0; 32]), b"proof 3", b"header 3", &[gone])
            .unwrap();
        let map = store.live_map(0).unwrap();
        assert_eq!(map.leaves, vec![(d(1), 2)]);
        assert_eq!(map.records.len(), 1);
        assert_eq!(store.head(0).unwrap(), Some(3));
        // Pruning drops proofs, keeps headers, and the horizon never moves back.
        assert_eq!(store.prune_steps(0, 2).unwrap(), 2);
        assert_eq!(store.step(0, 2).unwrap(), None);
        assert_eq!(store.step_header(0, 2).unwrap(), Some(b"header 2".to_vec()));
        assert_eq!(store.step(0, 3).unwrap(), Some(b"proof 3".to_vec()));
        assert_eq!(store.prune_steps(0, 1).unwrap(), 0);
        assert_eq!(store.step_horizon(0).unwrap(), Some(2));
        // A prune that finds nothing records nothing (the horizon is always a stored step).
        let empty = ListingStore::in_memory().unwrap();
        empty.init_counters(&[(0, 5)]).unwrap();
        assert_eq!(empty.prune_steps(0, 5).unwrap(), 0);
        assert_eq!(empty.step_horizon(0).unwrap(), None);
        assert_eq!(store.step_headers(0).unwrap().len(), 3);
        assert_eq!(store.steps(0).unwrap().len(), 1);
    }
}

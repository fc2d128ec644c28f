//! The seller's wallet: its offers and the receipts listing nodes gave for them, in redb.

use candor_core::{
    Decode, Digest, Encode, ItemKey, PeerId, Placement, Reader, Receipt, SignedInc, SignedOffer,
    StepReceipt, Writer,
};
use candor_listing::PublishReceipt;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const OFFERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("offers");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// The wallet's format (3: an M receipt keeps its offer's item and hash, for the live map of
/// DESIGN.md §9). A wallet of another format (or an older one without a format) is refused.
pub(crate) const WALLET_FORMAT: u64 = 3;
/// Listing nodes' device statements this user saw, by the node's PeerId.
const SEEN: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("seen");

/// An offer and its receipts, by listing node.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) offer: SignedOffer,
    pub(crate) receipts: Vec<(PeerId, PublishReceipt)>,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        // 3: an M receipt's placement is its item and offer hash (the live map, DESIGN.md §9).
        w.u8(3)
            .bytes16(&self.offer.to_bytes())
            .u16(self.receipts.len() as u16);
        for (p, r) in &self.receipts {
            w.bytes8(p.as_bytes());
            match r {
                PublishReceipt::Entry(r) => {
                    w.u8(1).bytes16(&r.to_bytes());
                }
                PublishReceipt::Step(r, pl) => {
                    w.u8(2).bytes32(&r.to_bytes());
                    w.fixed(pl.item.0.as_bytes()).fixed(pl.hash.as_bytes());
                }
            }
        }
        w.into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Self, candor_core::DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(3, "wallet entry")?;
        let offer = SignedOffer::from_bytes(r.bytes16(4096, "offer")?)?;
        let n = r.u16("receipts")?;
        let mut receipts = Vec::new();
        for _ in 0..n {
            let p = PeerId::from_bytes(r.bytes8(64, "peer")?)?;
            let rc = match r.u8("receipt kind")? {
                1 => PublishReceipt::Entry(Receipt::from_bytes(r.bytes16(4096, "receipt")?)?),
                2 => {
                    let m = StepReceipt::from_bytes(r.bytes32(8 << 20, "receipt")?)?;
                    let pl = Placement {
                        item: ItemKey(Digest(r.array("item")?)),
                        hash: Digest(r.array("offer hash")?),
                    };
                    PublishReceipt::Step(Box::new(m), pl)
                }
                kind => {
                    return Err(candor_core::DecodeError::UnknownKind {
                        what: "wallet receipt",
                        kind,
                    })
                }
            };
            receipts.push((p, rc));
        }
        r.finish("wallet entry")?;
        Ok(Self { offer, receipts })
    }
}

fn encode_seen(list: &[SignedInc]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1).u16(list.len() as u16);
    for s in list {
        w.bytes16(&s.to_bytes());
    }
    w.into_bytes()
}

fn decode_seen(bytes: &[u8]) -> Result<Vec<SignedInc>, candor_core::DecodeError> {
    let mut r = Reader::new(bytes);
    r.version(1, "seen statements")?;
    let n = r.u16("statements")?;
    let mut out = Vec::with_capacity(usize::from(n).min(candor_net::MAX_STATEMENTS_PER_NODE));
    for _ in 0..n {
        out.push(SignedInc::from_bytes(r.bytes16(8192, "statement")?)?);
    }
    r.finish("seen statements")?;
    Ok(out)
}

impl candor_net::Memory for Wallet {
    fn recall(&self, node: &PeerId) -> Vec<SignedInc> {
        self.seen(node).unwrap_or_else(|e| {
            tracing::warn!(%e, "cannot read the statements kept for a listing node");
            Vec::new()
        })
    }

    fn remember(&self, node: &PeerId, seen: Vec<SignedInc>) {
        if let Err(e) = self.keep_seen(node, seen) {
            tracing::warn!(%e, "cannot keep the statements a listing node signed");
        }
    }
}

/// Why the wallet failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalletError {
    #[error("wallet: {0}")]
    Db(#[from] redb::Error),
    #[error("wallet: a stored entry is corrupt: {0}")]
    Corrupt(#[from] candor_core::DecodeError),
    #[error("the wallet {path} has format {found}, this candor reads format {expected}: move it aside (its offers stay listed until they expire) and publish again")]
    Format {
        path: std::path::PathBuf,
        found: u64,
        expected: u64,
    },
}

macro_rules! db {
    ($e:expr) => {
        $e.map_err(redb::Error::from)?
    };
}

/// The wallet.
pub(crate) struct Wallet {
    db: Database,
}

impl Wallet {
    pub(crate) fn open(path: &Path) -> Result<Self, WalletError> {
        let db = db!(Database::create(path));
        let txn = db!(db.begin_write());
        {
            let offers = db!(txn.open_table(OFFERS));
            let mut meta = db!(txn.open_table(META));
            let found = match db!(meta.get("format")).map(|g| g.value()) {
                Some(f) => Some(f),
                // A wallet from before formats were kept.
                None if db!(offers.first()).is_some() => Some(2),
                None => None,
            };
            match found {
                Some(f) if f != WALLET_FORMAT => {
                    return Err(WalletError::Format {
                        path: path.to_path_buf(),
                        found: f,
                        expected: WALLET_FORMAT,
                    })
                }
                Some(_) => {}
                None => {
                    db!(meta.insert("format", WALLET_FORMAT));
                }
            }
        }
        db!(txn.open_table(SEEN));
        db!(txn.commit());
        Ok(Self { db })
    }

    /// The statements kept for `node`.
    pub(crate) fn seen(&self, node: &PeerId) -> Result<Vec<SignedInc>, WalletError> {
        let txn = db!(self.db.begin_read());
        let t = db!(txn.open_table(SEEN));
        let Some(v) = db!(t.get(node.as_bytes())) else {
            return Ok(Vec::new());
        };
        Ok(decode_seen(v.value())?)
    }

    /// Keeps `seen` for `node` beside what was kept (bounded, newest first).
    pub(crate) fn keep_seen(&self, node: &PeerId, seen: Vec<SignedInc>) -> Result<(), WalletError> {
        let txn = db!(self.db.begin_write());
        {
            let mut t = db!(txn.open_table(SEEN));
            let kept = match db!(t.get(node.as_bytes())) {
                Some(v) => decode_seen(v.value())?,
                None => Vec::new(),
            };
            let all = candor_net::merge_statements(kept, seen);
            db!(t.insert(node.as_bytes(), encode_seen(&all).as_slice()));
        }
        db!(txn.commit());
        Ok(())
    }

    pub(crate) fn add(&self, entry: &Entry) -> Result<(), WalletError> {
        let txn = db!(self.db.begin_write());
        {
            let mut t = db!(txn.open_table(OFFERS));
            let next = db!(t.last()).map(|(k, _)| k.value() + 1).unwrap_or(0);
            db!(t.insert(next, entry.encode().as_slice()));
        }
        db!(txn.commit());
        Ok(())
    }

    pub(crate) fn list(&self) -> Result<Vec<Entry>, WalletError> {
        let txn = db!(self.db.begin_read());
        let t = db!(txn.open_table(OFFERS));
        let mut out = Vec::new();
        for row in db!(t.iter()) {
            let (_, v) = db!(row);
            out.push(Entry::decode(v.value())?);
        }
        Ok(out)
    }

    /// The next serial for an item: one above the highest used.
    pub(crate) fn next_serial(&self, key: &ItemKey) -> Result<u64, WalletError> {
        Ok(self
            .list()?
            .iter()
            .filter(|e| e.offer.offer.key == *key)
            .map(|e| e.offer.offer.serial)
            .max()
            .unwrap_or(0)
            + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Digest, Ed25519StatementSigner, Keypair};
    use candor_net::Memory;

    fn signer() -> Ed25519StatementSigner {
        let node = Keypair::generate(&mut rand_core::OsRng);
        Ed25519StatementSigner::new(
            Keypair::generate(&mut rand_core::OsRng),
            PeerId::from_ed25519(&node.public()),
        )
    }

    #[test]
    fn seen_statements_are_kept_across_restarts_bounded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.redb");
        let s = signer();
        let node = s.peer().clone();
        {
            let w = Wallet::open(&path).unwrap();
            assert!(w.recall(&node).is_empty());
            w.remember(&node, vec![s.sign_inc(0, 5, Digest([1; 32]))]);
            // The same statement twice is kept once; a second statement at one value is kept
            // beside it (the pair is the node's equivocation).
            w.remember(
                &node,
                vec![
                    s.sign_inc(0, 5, Digest([1; 32])),
                    s.sign_inc(0, 5, Digest([2; 32])),
                ],
            );
        }
        let w = Wallet::open(&path).unwrap();
        assert_eq!(w.recall(&node).len(), 2);
        // At most MAX_STATEMENTS_PER_COUNTER per counter, the highest values kept.
        w.remember(
            &node,
            (10..400)
                .map(|v| s.sign_inc(0, v, Digest([3; 32])))
                .collect(),
        );
        let kept = w.recall(&node);
        let cap = candor_net::MAX_STATEMENTS_PER_COUNTER as usize;
        assert_eq!(kept.len(), cap);
        assert_eq!(kept.first().map(|k| k.inc.value), Some(399));
        assert!(kept.iter().all(|k| k.inc.value >= 400 - cap as u64));
        // A damaged record is an error, not a panic, and reads as nothing kept.
        {
            let txn = w.db.begin_write().unwrap();
            txn.open_table(SEEN)
                .unwrap()
                .insert(node.as_bytes(), [9u8, 9, 9].as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(w.seen(&node), Err(WalletError::Corrupt(_))));
        assert!(w.recall(&node).is_empty());
    }
}

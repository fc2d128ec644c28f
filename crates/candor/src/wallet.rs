//! The seller's wallet: its offers and the receipts listing nodes gave for them, in redb.

use candor_core::{
    Decode, Digest, Encode, ItemKey, MReceipt, PeerId, Placement, Reader, Receipt, SignedOffer,
    Writer,
};
use candor_listing::AnyReceipt;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const OFFERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("offers");

/// An offer and its receipts, by listing node.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) offer: SignedOffer,
    pub(crate) receipts: Vec<(PeerId, AnyReceipt)>,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(2)
            .bytes16(&self.offer.to_bytes())
            .u16(self.receipts.len() as u16);
        for (p, r) in &self.receipts {
            w.bytes8(p.as_bytes());
            match r {
                AnyReceipt::Counted(r) => {
                    w.u8(1).bytes16(&r.to_bytes());
                }
                AnyReceipt::Stepped(r, pl) => {
                    w.u8(2).bytes32(&r.to_bytes());
                    w.fixed(pl.item.0.as_bytes())
                        .u64(pl.index)
                        .fixed(pl.chain.as_bytes());
                }
            }
        }
        w.into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Self, candor_core::DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(2, "wallet entry")?;
        let offer = SignedOffer::from_bytes(r.bytes16(4096, "offer")?)?;
        let n = r.u16("receipts")?;
        let mut receipts = Vec::new();
        for _ in 0..n {
            let p = PeerId::from_bytes(r.bytes8(64, "peer")?)?;
            let rc = match r.u8("receipt kind")? {
                1 => AnyReceipt::Counted(Receipt::from_bytes(r.bytes16(4096, "receipt")?)?),
                2 => {
                    let m = MReceipt::from_bytes(r.bytes32(8 << 20, "receipt")?)?;
                    let pl = Placement {
                        item: ItemKey(Digest(r.array("item")?)),
                        index: r.u64("index")?,
                        chain: Digest(r.array("chain")?),
                    };
                    AnyReceipt::Stepped(Box::new(m), pl)
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

/// Why the wallet failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalletError {
    #[error("wallet: {0}")]
    Db(#[from] redb::Error),
    #[error("wallet: a stored entry is corrupt: {0}")]
    Corrupt(#[from] candor_core::DecodeError),
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
        db!(txn.open_table(OFFERS));
        db!(txn.commit());
        Ok(Self { db })
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

//! Hidden tools for tests: a publish loop that prints each receipt once it is durable, so a
//! test can kill the process at any point and check that nothing receipted was lost.

use crate::{now, LabError};
use candor_core::{Currency, Encode, Item, Keypair, SignedOffer};
use candor_listing::ListingNode;
use candor_node::files::{self, NodeDir};
use candor_store::ListingStore;
use std::io::Write;
use std::path::PathBuf;

/// The hidden test tools.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Open the node in DATA (reconciling), then publish batches forever, printing
    /// `RECEIPT <offer hex> <receipt hex>` for each durable receipt.
    PublishLoop {
        /// The node's data folder.
        #[arg(long)]
        data: PathBuf,
        /// Offers per batch.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// The item's description.
        #[arg(long, default_value = "crash test item")]
        item: String,
    },
}

/// Runs a test tool.
pub fn run(cmd: Cmd) -> Result<(), LabError> {
    match cmd {
        Cmd::PublishLoop { data, batch, item } => publish_loop(data, batch, &item),
    }
}

fn publish_loop(data: PathBuf, batch: usize, item: &str) -> Result<(), LabError> {
    let d = NodeDir(data);
    let cert = d.load_cert()?;
    // The node's own device, software or TPM (with its IncSign journal), as `candor node`.
    let device = candor_node::device::open_device(&d.0, cert.cert.peer.clone())?;
    let store = ListingStore::open(&d.store())?;
    let (node, report) = ListingNode::open(device, store, cert)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "RECONCILED {} {} {}",
        report.recovered,
        report.dropped,
        report.gaps.len()
    );
    let item = Item::new(item).map_err(|e| LabError::Failed(e.to_string()))?;
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let _ = files::write_atomic; // files are only read here
    let mut serial = 0u64;
    loop {
        let offers: Vec<SignedOffer> = (0..batch.max(1))
            .map(|_| {
                serial += 1;
                SignedOffer::sign(
                    &seller,
                    &item,
                    1000 + serial,
                    Currency::EUR,
                    1,
                    now() + 3600,
                    serial,
                )
            })
            .collect();
        for (o, r) in offers.iter().zip(node.publish_all(&offers, now())) {
            let r = r.map_err(|e| LabError::Failed(e.to_string()))?;
            let tag = match r {
                candor_listing::Published::Entry(_) => "RECEIPT",
                candor_listing::Published::Step(_) => "MRECEIPT",
            };
            let (o, r) = (hex::encode(o.to_bytes()), hex::encode(r.receipt_bytes()));
            let _ = writeln!(out, "{tag} {o} {r}");
        }
        let _ = out.flush();
    }
}

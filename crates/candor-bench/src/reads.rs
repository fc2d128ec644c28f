//! `candor bench reads`: retrieves per second from one scheme-M node whose device takes a
//! fixed time per `Read` (a hardware TPM signs only tens of them per second), for one buyer
//! and for many concurrent buyers, whom the node serves with one `Read` per batch.
//!
//! The device is swtpm (started here, on loopback), each `Read` padded to `--read-ms` (what
//! swtpm takes is measured and printed), or the software device with the same padding. The
//! buyers are threads in this process, each running whole retrieves (the head, d's list,
//! every check, the certificate named as the network layer names it) back to back;
//! retrieves per second is the count over the wall time. Buyers and node share this
//! machine's cores, so many buyers measure the node and its buyers' checks together.

use crate::BenchError;
use candor_core::{Budget, Item, Keypair, PeerId, Scheme};
use candor_device::TrustedDevice;
use candor_lab::SlowDevice;
use candor_listing::{retrieve_from, ListingNode, Reading};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// What every `Read` takes, in milliseconds (the device's own time padded up to it).
    #[arg(long, default_value_t = 7)]
    read_ms: u64,
    /// The numbers of concurrent buyers to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    buyers: Vec<usize>,
    /// Seconds of retrieves per measurement.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// The device: `tpm` (swtpm) or `software`.
    #[arg(long, default_value = "tpm")]
    device: String,
}

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(e.to_string())
}

/// Offers the node holds: 1,000 over 100 items (10 each), published in steps of 256.
const OFFERS: usize = 1_000;

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> Result<(), BenchError> {
    let read = Duration::from_millis(args.read_ms);
    let dir = tempfile::tempdir().map_err(fail)?;
    println!(
        "## Batched Reads: retrieves per second from one scheme-M node ({} UTC)\n",
        crate::costs::date()
    );
    match args.device.as_str() {
        "software" => {
            let key = Keypair::generate(&mut rand_core::OsRng);
            let device = candor_device::SoftwareDevice::create(
                &dir.path().join("device.state"),
                PeerId::from_ed25519(&key.public()),
                1,
            )?;
            let authority = candor_core::Authority::new(Keypair::generate(&mut rand_core::OsRng));
            measure(
                &args,
                device,
                &key,
                authority,
                read,
                dir.path(),
                "software device",
            )
        }
        "tpm" => {
            // With an EK certificate: the node is enrolled as `candor node` is.
            let ca = candor_tpm::SwtpmCa::shared().map_err(fail)?;
            let sw = candor_tpm::Swtpm::start_endorsed(ca).map_err(fail)?;
            let mut roots = candor_core::endorsement::EndorsementRoots::new();
            roots
                .add_pem(&ca.certificates_pem().map_err(fail)?, true)
                .map_err(fail)?;
            let key = Keypair::generate(&mut rand_core::OsRng);
            let device = candor_tpm::TpmDevice::open(
                candor_tpm::TcpTransport::connect(sw.server()).map_err(fail)?,
                PeerId::from_ed25519(&key.public()),
                1,
                candor_tpm::DEFAULT_NV_BASE,
            )?;
            let authority = candor_core::Authority::new(Keypair::generate(&mut rand_core::OsRng))
                .with_endorsement_roots(roots);
            measure(&args, device, &key, authority, read, dir.path(), "swtpm")
        }
        other => Err(fail(format!("--device {other:?}: use tpm or software"))),
    }
}

fn measure<D: TrustedDevice + Send + 'static>(
    args: &Args,
    mut device: D,
    key: &Keypair,
    authority: candor_core::Authority,
    read: Duration,
    dir: &std::path::Path,
    name: &str,
) -> Result<(), BenchError> {
    // What the device takes per Read on its own (median of 21), padded up to `read`.
    let mut own = (0..21)
        .map(|i| {
            let t = Instant::now();
            device.read_sign(0, [i as u8; 32]).map(|_| t.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()?;
    own.sort();
    let own = own[own.len() / 2];
    let pad = read.saturating_sub(own);
    let mut device = SlowDevice::new(device, Duration::ZERO).reading(pad);
    let reads = device.read_count();
    let cert = candor_listing::enrol(
        &authority,
        &mut candor_core::Registry::default(),
        key,
        &mut device,
        Scheme::Merkle,
        1,
        crate::now(),
    )?;
    let store = candor_store::ListingStore::open(&dir.join("reads.redb"))?;
    let (node, _) = ListingNode::open(device, store, cert)?;
    let offers = crate::schemes::one_seller_offers("reads item", OFFERS);
    for chunk in offers.chunks(256) {
        for r in node.publish_all(chunk, crate::NOW) {
            r.map_err(fail)?;
        }
    }
    let node = Arc::new(node);
    let trusted = vec![authority.public()];
    let item = Item::new("reads item 7").map_err(fail)?;
    println!(
        "Device: {name}, {:.2} ms per Read on its own, padded to {:.2} ms; {OFFERS} offers, \
         an item of 10; whole retrieves (head, list, checks; certificate named; no audits), {} s \
         each; {} cores shared by node and buyers.\n",
        own.as_secs_f64() * 1e3,
        (own + pad).as_secs_f64() * 1e3,
        args.secs,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!(
        "Whole retrieves: buyers check everything here, on the node's cores. Node side: \
         buyers ask for heads and check only that their nonce's path reaches the signed \
         Read's nonce (what the node can serve when its buyers check on their own machines).\n"
    );
    println!("| buyers | measured | per second | Reads/s | buyers per Read | × one buyer |");
    println!("|---:|---|---:|---:|---:|---:|");
    for whole in [true, false] {
        let mut one = None;
        for &buyers in &args.buyers {
            let before = reads.load(Ordering::Relaxed);
            let (done, secs) = run_buyers(&node, &trusted, &item, buyers.max(1), args.secs, whole)?;
            let signed = reads.load(Ordering::Relaxed) - before;
            let rate = done as f64 / secs;
            let base = *one.get_or_insert(rate);
            println!(
                "| {buyers} | {} | {rate:.0} | {:.0} | {:.1} | {:.1}× |",
                if whole {
                    "whole retrieves"
                } else {
                    "node side (heads)"
                },
                signed as f64 / secs,
                done as f64 / signed.max(1) as f64,
                rate / base
            );
        }
    }
    Ok(())
}

/// One head asked for with a fresh nonce: whether it decodes and its nonce path reaches the
/// nonce of the `Read` it carries.
fn head_only<D: TrustedDevice>(node: &ListingNode<D>, item: &Item) -> bool {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let req = candor_core::RetrieveRequest {
        item: item.key(),
        nonce,
        cert: Some(node.certificate().id()),
    };
    let Ok(bytes) = node.answer(&candor_listing::Query::Head(req.clone())) else {
        return false;
    };
    candor_core::StepHead::decode(&bytes, &req, Some(node.certificate()))
        .is_ok_and(|(h, _)| h.read.read.nonce == h.nonces.root(&nonce))
}

/// `buyers` threads retrieving `item` back to back for `secs` seconds: how many retrieves
/// verified, and the wall time.
fn run_buyers<D: TrustedDevice + Send + 'static>(
    node: &Arc<ListingNode<D>>,
    trusted: &[candor_core::PublicKey],
    item: &Item,
    buyers: usize,
    secs: u64,
    whole: bool,
) -> Result<(u64, f64), BenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..buyers)
        .map(|_| {
            let (node, trusted, item) = (node.clone(), trusted.to_vec(), item.clone());
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !whole {
                        match head_only(node.as_ref(), &item) {
                            true => done.fetch_add(1, Ordering::Relaxed),
                            false => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        continue;
                    }
                    // As a buyer over the network reads: naming the certificate it holds
                    // from selecting Δ(d).
                    let reading = Reading::new(Budget::default())
                        .audits(0)
                        .naming(Some(node.certificate().clone()));
                    match retrieve_from(node.as_ref(), &trusted, &item, reading) {
                        Ok(out) if out.offers().len() == 10 => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| fail("a buyer thread panicked"))?;
    }
    let secs = start.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) > 0 {
        return Err(fail(format!(
            "{} retrieves did not verify",
            failed.load(Ordering::Relaxed)
        )));
    }
    Ok((done.load(Ordering::Relaxed), secs))
}

//! `candor bench core`: a load command that measures the foundation's costs and prints them
//! beside this machine's own ed25519 ceiling, measured in the same run.

use crate::{now, BenchError};
use candor_core::{check_receipt, Currency, Digest, Item, Keypair, SignedOffer};
use candor_device::{SoftwareDevice, TrustedDevice};
use candor_lab::SyntheticRetrieve;
use candor_listing::{enrol, Committer, ListingNode};
use candor_store::ListingStore;
use std::sync::Arc;
use std::time::Instant;

/// Options of the benchmark.
#[derive(clap::Args)]
pub struct Args {
    /// Largest |W| for the buyer's check (10^3 … this, by powers of ten).
    #[arg(long, default_value_t = 100_000)]
    max_w: u64,
    /// Publishes for the durable group-commit measurement.
    #[arg(long, default_value_t = 20_000)]
    publishes: usize,
    /// Concurrent publishers feeding the group committer.
    #[arg(long, default_value_t = 64)]
    publishers: usize,
    /// Folder for the durable files (default: a temporary folder).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// Operations per second at the median of five runs of `f`, which does `n` operations.
fn rate(n: usize, f: impl FnMut()) -> f64 {
    crate::stats::rate(n, 5, f)
}

fn row(what: &str, per_sec: f64, ceiling: f64) {
    println!("| {what} | {per_sec:>12.0} | {:>6.2}× |", per_sec / ceiling);
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> Result<(), BenchError> {
    let fail = |e: String| BenchError::Failed(e);
    let mut rng = rand_core::OsRng;
    let n = 4096;
    let ceilings = crate::stats::Ceilings::measure();
    let (single, batch) = (ceilings.single, ceilings.batch);

    println!(
        "## Candor foundation benchmark ({} UTC, unix {})\n",
        date(),
        now()
    );
    println!("{}\n", ceilings.line());
    println!("Every rate is the median of 5 runs.\n");
    println!("| operation | per second | vs ed25519 single |");
    println!("|---|---:|---:|");
    row("ed25519 verify (single)", single, single);
    row("ed25519 verify (batch of 512)", batch, single);

    let sellers: Vec<Keypair> = (0..16).map(|_| Keypair::generate(&mut rng)).collect();
    let items: Vec<Item> = (0..64)
        .filter_map(|i| Item::new(&format!("Benchmark item number {i}, size M")).ok())
        .collect();
    let offers: Vec<SignedOffer> = (0..n)
        .map(|i| {
            SignedOffer::sign(
                &sellers[i % 16],
                &items[i % 64],
                100 + i as u64,
                Currency::EUR,
                1,
                crate::NOW + 86_400,
                1,
            )
        })
        .collect();
    row(
        "offer verify (canonical form, key, signature)",
        rate(n, || {
            for o in &offers {
                let _ = std::hint::black_box(o.verify());
            }
        }),
        single,
    );
    row(
        "offer canonical-form + key check only",
        rate(n, || {
            for o in &offers {
                let _ = std::hint::black_box(o.check_key());
            }
        }),
        single,
    );

    // Device and receipts, in memory.
    let node_key = Keypair::generate(&mut rng);
    let peer = candor_core::PeerId::from_ed25519(&node_key.public());
    let mut dev = SoftwareDevice::in_memory(peer.clone(), 1);
    row(
        "software device inc_sign (memory)",
        rate(n, || {
            for i in 0..n {
                let _ = dev.inc_sign(0, Digest([i as u8; 32]));
            }
            let v = dev.value(0).unwrap_or(0);
            let _ = dev.acknowledge(0, v);
        }),
        single,
    );
    row(
        "software device read_sign",
        rate(n, || {
            for i in 0..n {
                let _ = std::hint::black_box(dev.read_sign(0, [i as u8; 32]));
            }
        }),
        single,
    );
    let authority = candor_core::Authority::new(Keypair::generate(&mut rng));
    let mut registry = candor_core::Registry::default();
    let mut device = SoftwareDevice::in_memory(peer.clone(), 1);
    let cert = enrol(
        &authority,
        &mut registry,
        &node_key,
        &mut device,
        candor_core::Scheme::Basic,
        1,
        0,
    )?;
    let (node, _) = ListingNode::open(device, ListingStore::in_memory()?, cert.clone())?;
    let receipts: Vec<_> = offers
        .iter()
        .take(1024)
        .map(
            |o| match node.publish_all(std::slice::from_ref(o), crate::NOW).pop() {
                Some(Ok(candor_listing::Published::Entry(r))) => Ok(r),
                Some(Err(e)) => Err(fail(e.to_string())),
                _ => Err(fail(
                    "a scheme-B node answered without an entry receipt".into(),
                )),
            },
        )
        .collect::<Result<_, _>>()?;
    let trusted = [authority.public()];
    row(
        "receipt check (seller)",
        rate(1024, || {
            for (o, r) in offers.iter().zip(&receipts) {
                let _ = std::hint::black_box(check_receipt(&trusted, &peer, &cert, o, r));
            }
        }),
        single,
    );

    // Durable device increments on files.
    let tmp = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let mut fdev = SoftwareDevice::create(&dir.join("bench-device.state"), peer.clone(), 1)?;
    let single_durable = rate(200, || {
        for i in 0..200 {
            let _ = fdev.inc_sign(0, Digest([i as u8; 32]));
            let v = fdev.value(0).unwrap_or(0);
            let _ = fdev.acknowledge(0, v);
        }
    });
    row(
        "software device inc_sign, durable (file, 1 per fsync)",
        single_durable,
        single,
    );
    let payloads: Vec<Digest> = (0..256u32).map(|i| Digest([i as u8; 32])).collect();
    let batch_durable = rate(256 * 20, || {
        for _ in 0..20 {
            let _ = fdev.inc_sign_batch(0, &payloads);
            let v = fdev.value(0).unwrap_or(0);
            let _ = fdev.acknowledge(0, v);
        }
    });
    row(
        "software device inc_sign_batch(256), durable",
        batch_durable,
        single,
    );

    // Buyer's check of a whole scheme-B retrieve.
    println!("\n### Buyer's check of a scheme-B retrieve (10 offers for d)\n");
    println!("| |W| | bytes received | check time (median) | entries/s | vs ed25519 batch |");
    println!("|---:|---:|---:|---:|---:|");
    let mut w = 1_000;
    while w <= args.max_w {
        let fixture = SyntheticRetrieve::new(w, 10).map_err(|e| fail(e.to_string()))?;
        let runs = if w >= 100_000 { 3 } else { 11 };
        let (kept, samples) =
            crate::stats::Samples::take(runs, || fixture.check().map_err(|m| fail(m.to_string())))?;
        let secs = samples.median();
        if kept != 10 {
            return Err(fail(format!("buyer kept {kept} offers, expected 10")));
        }
        let per = w as f64 / secs;
        println!(
            "| {w} | {} ({:.0} B/entry) | {:.1} ms | {per:.0} | {:.2}× |",
            fixture.bytes(),
            fixture.bytes() as f64 / w as f64,
            secs * 1000.0,
            per / batch
        );
        w *= 10;
    }

    // Durable publishes with group commit: files, many concurrent publishers.
    println!("\n### Durable publishes with group commit (software device + redb on files)\n");
    let dkey = Keypair::generate(&mut rng);
    let dpeer = candor_core::PeerId::from_ed25519(&dkey.public());
    let mut ddev = SoftwareDevice::create(&dir.join("node-device.state"), dpeer, 1)?;
    let dcert = enrol(
        &authority,
        &mut registry,
        &dkey,
        &mut ddev,
        candor_core::Scheme::Basic,
        1,
        0,
    )?;
    let store = ListingStore::open(&dir.join("node-store.redb"))?;
    let (dnode, _) = ListingNode::open(ddev, store, dcert)?;
    let dnode = Arc::new(dnode);
    let committer = Arc::new(Committer::spawn(dnode.clone(), 512, 4096));
    let per_thread = args.publishes / args.publishers.max(1);
    let signed: Vec<Vec<SignedOffer>> = (0..args.publishers)
        .map(|t| {
            let s = Keypair::generate(&mut rand_core::OsRng);
            (0..per_thread)
                .map(|i| {
                    SignedOffer::sign(
                        &s,
                        &items[i % 64],
                        1 + i as u64,
                        Currency::EUR,
                        1,
                        crate::NOW + 86_400,
                        (t * per_thread + i) as u64 + 1,
                    )
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    let threads: Vec<_> = signed
        .into_iter()
        .map(|offers| {
            let c = committer.clone();
            std::thread::spawn(move || {
                offers
                    .into_iter()
                    .filter(|o| c.publish(o.clone(), crate::NOW).is_ok())
                    .count()
            })
        })
        .collect();
    let done: usize = threads.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{done} publishes from {} concurrent publishers in {secs:.2} s: **{:.0} durable publishes/s** ({:.2}× the ed25519 single-verification rate; every receipt fsynced before it was returned).",
        args.publishers,
        done as f64 / secs,
        done as f64 / secs / single
    );
    Ok(())
}

pub(crate) fn date() -> String {
    // Days since the epoch to a calendar date (proleptic Gregorian), without a dependency.
    let days = (now() / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

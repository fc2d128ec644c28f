//! `candor bench tree`: scheme M's tree on its own. N distinct items, one offer each, through
//! the step code path ([`StepState::prepare`] and [`StepState::apply`], a batch of offers per
//! step, every step's `Inc` signed), then one key's proof under the final root: its size and
//! the time to verify it, beside the same run's ed25519 ceilings. (The offers are signed
//! before the clock starts: the build time is the tree's.)

use crate::stats::{Ceilings, Samples};
use crate::BenchError;
use candor_core::{
    CertifiedCounter, Currency, Ed25519StatementSigner, Encode, Item, ItemKey, Keypair, PeerId,
    SignedOffer, StepState,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::RngCore;
use std::time::Instant;

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// How many distinct keys to insert.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Offers per step.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed proof verifications.
    #[arg(long, default_value_t = 1_001)]
    runs: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Keys in the tree at the end.
    pub keys: usize,
    /// Steps applied.
    pub steps: u64,
    /// Seconds for all updates (prepare, sign, apply).
    pub build_secs: f64,
    /// Sibling hashes in the proof of a present key, and its encoded bytes.
    pub member_hashes: usize,
    /// Encoded bytes of that proof.
    pub member_bytes: usize,
    /// Encoded bytes of the proof of an absent key.
    pub absent_bytes: usize,
    /// Median and p95 of verifying the present key's proof, in µs.
    pub verify_us: (f64, f64),
}

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(e.to_string())
}

/// Builds the tree and measures it.
pub fn measure(args: &Args) -> Result<Figures, BenchError> {
    let mut rng = rand::thread_rng();
    let node = Keypair::generate(&mut rand_core::OsRng);
    let peer = PeerId::from_ed25519(&node.public());
    let signer =
        Ed25519StatementSigner::new(Keypair::generate(&mut rand_core::OsRng), peer.clone());
    let counter = CertifiedCounter { id: 0, initial: 0 };
    let mut state = StepState::new(counter);
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let offers: Vec<(ItemKey, Vec<u8>)> = (0..args.keys)
        .map(|i| {
            let item = Item::new(&format!("tree item {i}")).map_err(fail)?;
            let o = SignedOffer::sign(&seller, &item, 1, Currency::EUR, 1, crate::NOW + 86_400, 1);
            Ok((item.key(), o.to_bytes()))
        })
        .collect::<Result<_, BenchError>>()?;
    let keys: Vec<ItemKey> = offers.iter().map(|(d, _)| *d).collect();
    let bar = if args.quiet {
        ProgressBar::with_draw_target(Some(args.keys as u64), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(args.keys as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("   updating {bar:40} {pos}/{len} keys ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let batch = args.batch.clamp(1, candor_core::MAX_BATCH);
    let t = Instant::now();
    let mut steps = 0u64;
    for chunk in offers.chunks(batch) {
        let p = state.prepare(chunk.to_vec(), crate::NOW);
        let inc = signer.sign_inc(0, p.header.value, p.header.payload(&peer));
        state.apply(p, inc);
        steps += 1;
        bar.inc(chunk.len() as u64);
    }
    let build_secs = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let d = keys.first().copied().ok_or_else(|| fail("no keys"))?;
    let root = state.root();
    let (leaf, proof) = state.prove(&d);
    let leaf = leaf.ok_or_else(|| fail("the first key is not in the tree"))?;
    let claim = [(d.0 .0, Some(leaf.value_hash()))];
    let (_, verify) = Samples::take(args.runs, || proof.verify(&root, &claim).map_err(fail))?;
    let mut absent = [0u8; 32];
    rng.fill_bytes(&mut absent);
    let (_, absent_proof) = state.prove(&ItemKey(candor_core::Digest(absent)));
    absent_proof
        .verify(&root, &[(absent, None)])
        .map_err(fail)?;
    Ok(Figures {
        keys: args.keys,
        steps,
        build_secs,
        member_hashes: proof.hashes(),
        member_bytes: proof_bytes(&proof),
        absent_bytes: proof_bytes(&absent_proof),
        verify_us: (verify.median() * 1e6, verify.p95() * 1e6),
    })
}

fn proof_bytes(p: &candor_core::MultiProof) -> usize {
    let mut w = candor_core::Writer::new();
    p.encode_to(&mut w);
    w.as_slice().len()
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> Result<(), BenchError> {
    let ceilings = Ceilings::measure();
    println!("## Scheme M's tree ({} UTC)\n", crate::costs::date());
    println!("{}\n", ceilings.line());
    let f = measure(&args)?;
    let single_us = 1e6 / ceilings.single;
    println!("| keys | batch | updates through the step path | per update | proof of a present key | of an absent key | verify median / p95 | ÷ one ed25519 verification |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.1} s ({} steps) | {:.1} µs | {} B ({} hashes) | {} B | {:.1} / {:.1} µs | {:.2}× |",
        f.keys,
        args.batch,
        f.build_secs,
        f.steps,
        f.build_secs * 1e6 / f.keys.max(1) as f64,
        f.member_bytes,
        f.member_hashes,
        f.absent_bytes,
        f.verify_us.0,
        f.verify_us.1,
        f.verify_us.0 / single_us
    );
    Ok(())
}

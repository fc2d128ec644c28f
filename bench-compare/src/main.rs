//! Scheme M's tree beside what a user might pick instead, in one run on one machine:
//! candor-core's collapsed sparse Merkle tree (`Smt`), the Jellyfish Merkle tree (`jmt`, in
//! memory, one version per batch) and an RFC 6962 log (`ct-merkle`, append-only: it proves
//! that an entry is in the log, not that a key's current value is the only one).
//!
//! For each size: N random 32-byte keys with 32-byte values, inserted in batches of 256; then
//! one present key's proof: its encoded bytes and the median and p95 of verifying it, beside
//! the same run's ed25519 single-verification time.
//!
//! Run by hand (never by CI): `cargo run --release -- 100000 1000000`.

use anyhow::{anyhow, Result};
use candor_core::{Digest, Keypair, Smt, Writer};
use rand::RngCore;
use sha2::Sha256;
use std::time::Instant;

const BATCH: usize = 256;
const RUNS: usize = 1_001;

/// Median and p95 of `RUNS` timed calls of `f`, in µs.
fn timed(mut f: impl FnMut() -> bool) -> Result<(f64, f64)> {
    let mut t = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let s = Instant::now();
        if !f() {
            return Err(anyhow!("a proof did not verify"));
        }
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    Ok((t[RUNS / 2], t[RUNS * 95 / 100]))
}

struct Row {
    name: &'static str,
    n: usize,
    build_s: f64,
    proof_bytes: usize,
    verify_us: (f64, f64),
}

fn candor(keys: &[([u8; 32], [u8; 32])]) -> Result<Row> {
    let mut smt = Smt::new();
    let t = Instant::now();
    for chunk in keys.chunks(BATCH) {
        for (k, v) in chunk {
            smt.insert(*k, Digest(*v));
        }
        let _ = smt.root();
    }
    let build_s = t.elapsed().as_secs_f64();
    let (k, v) = keys[keys.len() / 2];
    let root = smt.root();
    let proof = smt.prove(&[k]);
    let mut w = Writer::new();
    proof.encode_to(&mut w);
    let proof_bytes = w.into_bytes().len();
    let verify_us = timed(|| proof.verify(&root, &[(k, Some(Digest(v)))]).is_ok())?;
    Ok(Row {
        name: "candor Smt (scheme M)",
        n: keys.len(),
        build_s,
        proof_bytes,
        verify_us,
    })
}

fn jellyfish(keys: &[([u8; 32], [u8; 32])]) -> Result<Row> {
    use jmt::mock::MockTreeStore;
    use jmt::{KeyHash, Sha256Jmt};
    let store = MockTreeStore::default();
    let tree = Sha256Jmt::new(&store);
    let t = Instant::now();
    let mut version = 0;
    for chunk in keys.chunks(BATCH) {
        let set: Vec<_> = chunk
            .iter()
            .map(|(k, v)| (KeyHash(*k), Some(v.to_vec())))
            .collect();
        let (_, batch) = tree.put_value_set(set, version)?;
        store.write_tree_update_batch(batch)?;
        version += 1;
    }
    let build_s = t.elapsed().as_secs_f64();
    let last = version - 1;
    let (k, v) = keys[keys.len() / 2];
    let root = tree.get_root_hash(last)?;
    let (value, proof) = tree.get_with_proof(KeyHash(k), last)?;
    if value.as_deref() != Some(&v[..]) {
        return Err(anyhow!("jmt lost a value"));
    }
    let proof_bytes = borsh::to_vec(&proof)?.len();
    let verify_us = timed(|| proof.verify(root, KeyHash(k), Some(&v[..])).is_ok())?;
    Ok(Row {
        name: "jmt 0.12 (Jellyfish)",
        n: keys.len(),
        build_s,
        proof_bytes,
        verify_us,
    })
}

fn ct_log(keys: &[([u8; 32], [u8; 32])]) -> Result<Row> {
    let mut log: ct_merkle::CtMerkleTree<Sha256, Vec<u8>> = ct_merkle::CtMerkleTree::new();
    let t = Instant::now();
    for chunk in keys.chunks(BATCH) {
        for (k, v) in chunk {
            log.push([&k[..], &v[..]].concat());
        }
        let _ = log.root();
    }
    let build_s = t.elapsed().as_secs_f64();
    let i = keys.len() / 2;
    let leaf = [&keys[i].0[..], &keys[i].1[..]].concat();
    let root = log.root();
    let proof = log.prove_inclusion(i);
    let proof_bytes = proof.as_bytes().len();
    let verify_us = timed(|| root.verify_inclusion(&leaf, i, &proof).is_ok())?;
    Ok(Row {
        name: "ct-merkle 0.1 (RFC 6962 log)",
        n: keys.len(),
        build_s,
        proof_bytes,
        verify_us,
    })
}

fn main() -> Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    // The same run's ed25519 single verification, for ratios.
    let key = Keypair::generate(&mut rand_core_06());
    let msg = [7u8; 160];
    let sig = key.sign("candor/v1/offer", &msg);
    let pk = key.public();
    let (ed, _) = timed(|| pk.verify("candor/v1/offer", &msg, &sig).is_ok())?;
    println!(
        "## Authenticated maps side by side ({})\n\nSame run: ed25519 single verification \
         {ed:.1} µs (median of {RUNS}). Inserts in batches of {BATCH} (jmt: one version per \
         batch, nodes kept in its in-memory mock store); one present key's proof.\n",
        date()
    );
    println!("| structure | keys | inserts | per insert | proof bytes | verify median / p95 | ÷ ed25519 verify |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rng = rand::thread_rng();
    for n in sizes {
        let keys: Vec<([u8; 32], [u8; 32])> = (0..n)
            .map(|_| {
                let (mut k, mut v) = ([0u8; 32], [0u8; 32]);
                rng.fill_bytes(&mut k);
                rng.fill_bytes(&mut v);
                (k, v)
            })
            .collect();
        for row in [candor(&keys)?, jellyfish(&keys)?, ct_log(&keys)?] {
            println!(
                "| {} | {} | {:.1} s | {:.1} µs | {} | {:.1} / {:.1} µs | {:.2}× |",
                row.name,
                row.n,
                row.build_s,
                row.build_s / row.n as f64 * 1e6,
                row.proof_bytes,
                row.verify_us.0,
                row.verify_us.1,
                row.verify_us.0 / ed
            );
        }
    }
    Ok(())
}

/// An OS random source for key generation (candor-core takes rand_core 0.6's).
fn rand_core_06() -> rand::rngs::OsRng {
    rand::rngs::OsRng
}

fn date() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

//! Signature and offer verification, beside plain ed25519 (single and batch) in the same run.
#![allow(missing_docs, clippy::unwrap_used)]

use candor_core::{canonicalize, tags, BatchVerifier, Currency, Item, Keypair, SignedOffer};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut rng = rand_core::OsRng;
    let key = Keypair::generate(&mut rng);
    let msgs: Vec<Vec<u8>> = (0..512u32).map(|i| i.to_be_bytes().repeat(40)).collect();
    let sigs: Vec<_> = msgs.iter().map(|m| key.sign(tags::OFFER, m)).collect();
    let pk = key.public();

    let mut g = c.benchmark_group("ed25519");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify-single", |b| {
        b.iter(|| pk.verify(tags::OFFER, black_box(&msgs[0]), &sigs[0]))
    });
    g.throughput(Throughput::Elements(512));
    g.bench_function("verify-batch-512", |b| {
        b.iter_batched(
            || {
                let mut v = BatchVerifier::new();
                for (m, s) in msgs.iter().zip(&sigs) {
                    v.push(pk, tags::OFFER, m, *s);
                }
                v
            },
            |v| assert!(v.verify_all()),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let item = Item::new("Sony WH-1000XM5 headphones, black").unwrap();
    let offer = SignedOffer::sign(&key, &item, 29_900, Currency::EUR, 1, u64::MAX, 1);
    let mut g = c.benchmark_group("offer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify", |b| b.iter(|| black_box(&offer).verify()));
    g.bench_function("canonicalize", |b| {
        b.iter(|| canonicalize(black_box("  Sony WH-1000XM5   Headphones, BLACK ")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

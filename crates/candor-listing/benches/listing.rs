//! Device statements, the buyer's check of a scheme-B retrieve against |W|, and durable
//! group-committed publishes on files.
#![allow(missing_docs, clippy::unwrap_used)]

use candor_core::*;
use candor_device::{SoftwareDevice, TrustedDevice};
use candor_lab::SyntheticRetrieve;
use candor_listing::{enrol, ListingNode};
use candor_store::ListingStore;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn device(c: &mut Criterion) {
    let peer = PeerId::from_ed25519(&Keypair::generate(&mut rand_core::OsRng).public());
    let mut dev = SoftwareDevice::in_memory(peer, 1);
    let mut g = c.benchmark_group("device");
    g.throughput(Throughput::Elements(1));
    g.bench_function("inc_sign-memory", |b| {
        b.iter(|| {
            let s = dev.inc_sign(0, Digest([1; 32])).unwrap();
            dev.acknowledge(0, s.inc.value).unwrap();
        })
    });
    g.bench_function("read_sign", |b| {
        b.iter(|| dev.read_sign(0, [2; 32]).unwrap())
    });
    g.finish();
}

fn buyer(c: &mut Criterion) {
    let mut g = c.benchmark_group("buyer-check-scheme-b");
    g.sample_size(10);
    for w in [1_000u64, 10_000, 100_000] {
        let fixture = SyntheticRetrieve::new(w, 10).unwrap();
        g.throughput(Throughput::Elements(w));
        g.bench_function(format!("W={w}"), |b| {
            b.iter(|| assert_eq!(fixture.check().unwrap(), 10))
        });
    }
    g.finish();
}

fn durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new(Keypair::generate(&mut rand_core::OsRng));
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let mut dev = SoftwareDevice::create(
        &dir.path().join("device.state"),
        PeerId::from_ed25519(&node_key.public()),
        1,
    )
    .unwrap();
    let cert = enrol(
        &authority,
        &mut Registry::default(),
        &node_key,
        &mut dev,
        Scheme::Basic,
        1,
        0,
    )
    .unwrap();
    let store = ListingStore::open(&dir.path().join("store.redb")).unwrap();
    let (node, _) = ListingNode::open(dev, store, cert).unwrap();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let item = Item::new("durable benchmark item").unwrap();
    let mut serial = 0;
    let mut g = c.benchmark_group("durable-publish");
    g.sample_size(20);
    g.throughput(Throughput::Elements(256));
    g.bench_function("batch-256", |b| {
        b.iter_batched(
            || {
                (0..256)
                    .map(|_| {
                        serial += 1;
                        SignedOffer::sign(&seller, &item, serial, Currency::EUR, 1, 86_400, serial)
                    })
                    .collect::<Vec<_>>()
            },
            |offers| {
                for r in node.publish_all(&offers, 0) {
                    r.unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, device, buyer, durable);
criterion_main!(benches);

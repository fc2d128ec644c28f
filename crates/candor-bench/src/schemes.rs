//! `candor bench schemes`: schemes B, C and M side by side — a retrieve's bytes and the
//! buyer's verification time against |W|, the cost of one audited step, and scheme M's publish
//! throughput with batches on the software device and on a device that takes 7 ms per
//! increment. Writes an SVG plot.

use crate::stats::{Ceilings, Samples, Signed};
use crate::BenchError;
use candor_core::{
    Authority, Currency, Digest, Ed25519StatementSigner, Encode, EnrolRequest, Item, ItemKey,
    Keypair, ListPage, LiveList, PeerId, Record, Registry, Scheme, SignedCertificate, SignedOffer,
    SignedStep, SortKey, StepProof, StepRetrieval, StepState,
};
use candor_device::{SoftwareDevice, TrustedDevice};
use candor_lab::{SlowDevice, SyntheticRetrieve};
use candor_listing::{enrol, ListingNode};
use candor_store::ListingStore;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// Largest |W| (10^3 … this, by powers of ten).
    #[arg(long, default_value_t = 1_000_000)]
    max_w: u64,
    /// Where to write the plot.
    #[arg(long, default_value = "docs/schemes.svg")]
    plot: PathBuf,
    /// Skip scheme B at |W| above this (its answer is O(|W|): 36 MB and ~8 s at 10^6).
    #[arg(long, default_value_t = 1_000_000)]
    max_b: u64,
}

struct Row {
    scheme: &'static str,
    w: u64,
    bytes: u64,
    offer_bytes: u64,
    verify: Samples,
}

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(e.to_string())
}

fn b_like(scheme: &'static str, w: u64, entries: u64) -> Result<Row, BenchError> {
    let f = SyntheticRetrieve::new(entries.max(10), 10).map_err(fail)?;
    let runs = if entries > 100_000 { 3 } else { 11 };
    let (kept, verify) = Samples::take(runs, || f.check().map_err(fail))?;
    if kept != 10 {
        return Err(fail(format!("{scheme}: kept {kept} offers")));
    }
    Ok(Row {
        scheme,
        w,
        bytes: f.bytes() as u64,
        offer_bytes: 10 * 300,
        verify,
    })
}

struct StepFixture {
    trusted: Vec<candor_core::PublicKey>,
    peer: PeerId,
    signer: Ed25519StatementSigner,
    cert: SignedCertificate,
    state: StepState,
    item: Item,
    d_offers: Vec<Vec<u8>>,
}

fn step_fixture(w: u64) -> Result<StepFixture, BenchError> {
    let mut rng = rand_core::OsRng;
    let authority = Authority::new(Keypair::generate(&mut rng));
    let node = Keypair::generate(&mut rng);
    let peer = PeerId::from_ed25519(&node.public());
    let signer = Ed25519StatementSigner::new(Keypair::generate(&mut rng), peer.clone());
    let req = EnrolRequest::new(
        &node,
        signer.device_key(),
        Scheme::Merkle,
        vec![signer.sign_read(0, 0, [1; 32])],
        None,
    );
    let cert = authority
        .certify(&mut Registry::default(), &req, [1; 32], 0)
        .map_err(fail)?;
    let item = Item::new("benchmark item d").map_err(fail)?;
    // Ten sellers' offers for d (a live list holds one record per seller).
    let d_signed: Vec<SignedOffer> = (0..10)
        .map(|i| {
            SignedOffer::sign(
                &Keypair::generate(&mut rng),
                &item,
                1000 + i,
                Currency::EUR,
                1,
                crate::NOW + 86_400,
                i + 1,
            )
        })
        .collect();
    let d_offers: Vec<Vec<u8>> = d_signed.iter().map(SignedOffer::to_bytes).collect();
    let steps = (w / 256).max(1);
    // Every other item holds 10 records; their offers are stand-ins (a buyer of d never sees
    // them), so the tree is the size it would be with |W| offers.
    let others = (w.saturating_sub(10)) / 10;
    let empty: std::sync::Arc<[u8]> = std::sync::Arc::from(Vec::new());
    let mut lists: Vec<(ItemKey, LiveList)> = (0..others)
        .map(|i| {
            let d = ItemKey(candor_core::sha256(&i.to_be_bytes()));
            let records = (0..10u64)
                .map(|j| Record {
                    key: SortKey {
                        currency: *b"EUR",
                        price: j,
                        seller: [j as u8; 32],
                        serial: 1,
                    },
                    hash: candor_core::sha256(&[i.to_be_bytes(), j.to_be_bytes()].concat()),
                    expiry: crate::NOW + 86_400,
                    added: 1,
                    bytes: empty.clone(),
                })
                .collect();
            (
                d,
                LiveList {
                    last_changed: 1,
                    records,
                },
            )
        })
        .collect();
    let mut records: Vec<Record> = d_signed
        .iter()
        .zip(&d_offers)
        .map(|(o, b)| Record::of(o, b, steps))
        .collect();
    records.sort_by_key(|r| r.key);
    lists.push((
        item.key(),
        LiveList {
            last_changed: steps,
            records,
        },
    ));
    let mut state = StepState::from_lists(cert.cert.counters[0], lists, steps, w, None);
    // The step at t: its header binds the root (its transition is what audits check).
    let header = candor_core::StepHeader {
        counter: 0,
        value: steps,
        prev_value: steps - 1,
        prev_root: Digest([5; 32]),
        new_root: state.root(),
        batch_root: Digest([6; 32]),
        batch_len: 256,
        total_offers: w,
        gap_link: 0,
        at: 0,
        removal_root: Digest::default(),
        removal_count: 0,
    };
    let inc = signer.sign_inc(0, steps, header.payload(&peer));
    state = StepState::from_lists(cert.cert.counters[0], Vec::new(), 0, 0, None)
        .with_tree_of(state, SignedStep { header, inc });
    Ok(StepFixture {
        trusted: vec![authority.public()],
        peer,
        signer,
        cert,
        state,
        item,
        d_offers,
    })
}

/// Scheme M's rows at |W| = `w`: the retrieve with the certificate in the head, and with the
/// certificate the buyer named (cached); the audit of one step.
fn steps_row(w: u64) -> Result<(Row, Row, u64, Samples), BenchError> {
    let f = step_fixture(w)?;
    let head = f.state.head(
        f.cert.clone(),
        f.signer.sign_read(0, f.state.value(), [9; 32]),
        &f.item.key(),
    );
    let page = ListPage {
        offers: f.d_offers.clone(),
    }
    .to_bytes();
    let retrieve = |bytes: &[u8], named: bool| {
        let (kept, verify) = Samples::take(101, || {
            let mut r = StepRetrieval::new(
                f.trusted.clone(),
                f.peer.clone(),
                f.item.clone(),
                [9; 32],
                candor_core::Budget::default(),
                crate::NOW,
            );
            if named {
                r = r.with_certificate(f.cert.clone());
            }
            r.on_head_bytes(bytes).map_err(fail)?;
            r.on_page_bytes(&page).map_err(fail)?;
            r.check_list().map_err(fail)?;
            Ok::<_, BenchError>(r.finish().map_err(fail)?.offers.len())
        })?;
        if kept != 10 {
            return Err(fail("M kept the wrong offers"));
        }
        Ok(((bytes.len() + page.len()) as u64, verify))
    };
    let (full_bytes, full) = retrieve(&head.encode_for(None), false)?;
    let (cached_bytes, cached) = retrieve(&head.encode_for(Some(&f.cert.id())), true)?;
    let offer_bytes: u64 = f.d_offers.iter().map(|o| o.len() as u64).sum();
    // One audited step at this size: a batch of 256 offers over existing items.
    let mut state = f.state.clone();
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let items = (w.saturating_sub(10) / 10).max(1);
    let batch: Vec<(ItemKey, Vec<u8>)> = (0..256u64)
        .map(|i| {
            let it = Item::new(&format!("audit item {}", i * 7919 % items))
                .unwrap_or_else(|_| f.item.clone());
            let o = SignedOffer::sign(
                &seller,
                &it,
                5 + i,
                Currency::EUR,
                1,
                crate::NOW + 86_400,
                i + 1,
            );
            (it.key(), o.to_bytes())
        })
        .collect();
    let prev = state.last().cloned();
    let p = state.prepare(batch, crate::NOW);
    let inc = f
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&f.peer));
    let mut sp: StepProof = state.apply(p, inc);
    // The fixture's step at t is a stand-in: re-sign it so the chain check passes.
    if let Some(prev) = prev {
        let mut h = prev.header;
        h.new_root = sp.step.header.prev_root;
        h.total_offers = sp.step.header.total_offers - 256;
        sp.prev = Some(SignedStep {
            header: h,
            inc: f.signer.sign_inc(0, h.value, h.payload(&f.peer)),
        });
    }
    let audit_bytes = sp.to_bytes().len() as u64;
    let (_, audit) = Samples::take(11, || {
        candor_core::verify_step(&f.cert, &f.peer, &sp).map_err(fail)
    })?;
    Ok((
        Row {
            scheme: "M",
            w,
            bytes: full_bytes,
            offer_bytes,
            verify: full,
        },
        Row {
            scheme: "M, cert cached",
            w,
            bytes: cached_bytes,
            offer_bytes,
            verify: cached,
        },
        audit_bytes,
        audit,
    ))
}

fn publish_rate<D: TrustedDevice>(
    device: D,
    batch: usize,
    total: usize,
    dir: &std::path::Path,
) -> Result<f64, BenchError> {
    let mut device = device;
    let authority = Authority::new(Keypair::generate(&mut rand_core::OsRng));
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let _ = &node_key;
    let cert = enrol(
        &authority,
        &mut Registry::default(),
        &node_key_for(&device)?,
        &mut device,
        Scheme::Merkle,
        1,
        0,
    )?;
    let store = ListingStore::open(&dir.join(format!("m-{}.redb", unique())))?;
    let (node, _) = ListingNode::open(device, store, cert)?;
    let offers = one_seller_offers("publish item", total);
    let t = Instant::now();
    for chunk in offers.chunks(batch) {
        for r in node.publish_all(chunk, crate::NOW) {
            r.map_err(fail)?;
        }
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

thread_local! {
    static NODE_KEY: std::cell::RefCell<Option<Keypair>> = const { std::cell::RefCell::new(None) };
}

fn node_key_for<D: TrustedDevice>(_d: &D) -> Result<Keypair, BenchError> {
    NODE_KEY
        .with(|k| k.borrow().clone())
        .ok_or_else(|| fail("no node key"))
}

fn device(dir: &std::path::Path, name: &str) -> Result<SoftwareDevice, BenchError> {
    let key = Keypair::generate(&mut rand_core::OsRng);
    NODE_KEY.with(|k| *k.borrow_mut() = Some(key.clone()));
    Ok(SoftwareDevice::create(
        &dir.join(format!("{name}-{}.state", unique())),
        PeerId::from_ed25519(&key.public()),
        1,
    )?)
}

fn unique() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> Result<(), BenchError> {
    let mut rows = Vec::new();
    let mut audits = Vec::new();
    println!(
        "## Schemes B, C and M side by side ({} UTC)\n",
        crate::costs::date()
    );
    let ceilings = Ceilings::measure();
    println!("{}\n", ceilings.line());
    // What batch-verifying an M answer's signatures alone costs: certificate, Read, step Inc
    // and the 10 offers (12 when the buyer holds the certificate).
    let answer_sigs = Signed::new(13);
    let sigs = Samples::of(201, || {
        std::hint::black_box(answer_sigs.verify_batched(13));
    });
    let answer12 = Signed::new(12);
    let sigs12 = Samples::of(201, || {
        std::hint::black_box(answer12.verify_batched(12));
    });
    println!(
        "Batch-verifying the signatures of an M answer alone: 13 (certificate, Read, step, 10 offers) {}; 12 (certificate cached) {} (median / p95 of {} runs).\n",
        sigs.ms(),
        sigs12.ms(),
        sigs.runs()
    );
    println!("Retrieve of an item with 10 offers from a node holding |W| offers; bytes the buyer receives and its verification time (audits excluded), median and 95th percentile over the runs shown; the last column is the median over the cost of batch-verifying the answer's 13 signatures.\n");
    println!("| |W| | scheme | bytes | bytes beyond the 10 offers | verify median / p95 | runs | ÷ its signatures batch-verified |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut w = 1_000;
    while w <= args.max_w {
        if w <= args.max_b {
            rows.push(b_like("B", w, w)?);
        }
        rows.push(b_like("C64", w, w / 64)?);
        rows.push(b_like("C1024", w, w / 1024)?);
        let (m, cached, ab, ams) = steps_row(w)?;
        rows.push(m);
        rows.push(cached);
        audits.push((w, ab, ams));
        for r in rows.iter().filter(|r| r.w == w) {
            let (beyond, ratio) = if r.scheme.starts_with('M') {
                let own = if r.scheme == "M" { &sigs } else { &sigs12 };
                (
                    r.bytes.saturating_sub(r.offer_bytes).to_string(),
                    format!("{:.2}×", r.verify.median() / own.median().max(1e-12)),
                )
            } else {
                ("–".into(), "–".into())
            };
            println!(
                "| {} | {} | {} | {beyond} | {} | {} | {ratio} |",
                r.w,
                r.scheme,
                r.bytes,
                r.verify.ms(),
                r.verify.runs()
            );
        }
        w *= 10;
    }
    println!("\nScheme M's audit, per sampled step (a batch of 256 offers):\n");
    println!("| |W| | step proof bytes | verify median / p95 | runs |");
    println!("|---:|---:|---:|---:|");
    for (w, b, s) in &audits {
        println!("| {w} | {b} | {} | {} |", s.ms(), s.runs());
    }

    println!("\n### Scheme M publish throughput (durable: software device and redb on files)\n");
    println!("| batch | software device | 7 ms per increment |");
    println!("|---:|---:|---:|");
    let tmp = tempfile::tempdir().map_err(fail)?;
    for (batch, total) in [(1usize, 300usize), (16, 3_200), (256, 20_480)] {
        let fast = publish_rate(device(tmp.path(), "fast")?, batch, total, tmp.path())?;
        let slow_total = if batch == 1 { 100 } else { total / 2 };
        let slow = publish_rate(
            SlowDevice::new(device(tmp.path(), "slow")?, Duration::from_millis(7)),
            batch,
            slow_total,
            tmp.path(),
        )?;
        println!("| {batch} | {fast:.0} offers/s | {slow:.0} offers/s |");
    }
    write_plot(&args.plot, &rows)?;
    println!("\nPlot: {}", args.plot.display());
    Ok(())
}

/// A log-log SVG plot of bytes and verification time against |W|, one line per scheme.
fn write_plot(path: &std::path::Path, rows: &[Row]) -> Result<(), BenchError> {
    let schemes = ["B", "C64", "C1024", "M"];
    let colors = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4"];
    let mut svg = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="420" font-family="sans-serif" font-size="12">"#,
    );
    svg.push_str(r#"<rect width="960" height="420" fill="white"/>"#);
    type Measure = fn(&Row) -> f64;
    let panels: [(&str, Measure); 2] = [
        ("bytes per retrieve", |r| r.bytes as f64),
        ("buyer verification, median (ms)", |r| {
            r.verify.median() * 1e3
        }),
    ];
    for (p, (title, f)) in panels.iter().enumerate() {
        let (x0, y0, wd, ht) = (60.0 + p as f64 * 470.0, 40.0, 390.0, 320.0);
        let ys: Vec<f64> = rows.iter().map(f).filter(|v| *v > 0.0).collect();
        let (ymin, ymax) = (
            ys.iter().cloned().fold(f64::MAX, f64::min).log10().floor(),
            ys.iter().cloned().fold(0.0, f64::max).log10().ceil(),
        );
        let (xmin, xmax) = (3.0, 6.0);
        let px = |w: f64| x0 + (w.log10() - xmin) / (xmax - xmin) * wd;
        let py = |v: f64| y0 + ht - (v.log10() - ymin) / (ymax - ymin).max(1.0) * ht;
        svg.push_str(&format!(
            r#"<text x="{}" y="24" font-size="14">{title} vs |W| (log-log)</text>"#,
            x0
        ));
        svg.push_str(&format!(
            r##"<rect x="{x0}" y="{y0}" width="{wd}" height="{ht}" fill="none" stroke="#444"/>"##
        ));
        for e in 3..=6 {
            let x = px(10f64.powi(e));
            svg.push_str(&format!(r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{}" y="{}">10^{e}</text>"##, y0 + ht, x - 14.0, y0 + ht + 16.0));
        }
        let mut e = ymin;
        while e <= ymax {
            let y = py(10f64.powf(e));
            svg.push_str(&format!(r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}">1e{e}</text>"##, x0 + wd, x0 - 44.0, y + 4.0));
            e += 1.0;
        }
        for (s, c) in schemes.iter().zip(colors) {
            let pts: Vec<String> = rows
                .iter()
                .filter(|r| r.scheme == *s && f(r) > 0.0)
                .map(|r| format!("{:.1},{:.1}", px(r.w as f64), py(f(r))))
                .collect();
            if pts.is_empty() {
                continue;
            }
            svg.push_str(&format!(
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            ));
        }
    }
    for (i, (s, c)) in schemes.iter().zip(colors).enumerate() {
        let x = 60.0 + i as f64 * 110.0;
        svg.push_str(&format!(r#"<rect x="{x}" y="395" width="14" height="4" fill="{c}"/><text x="{}" y="401">{s}</text>"#, x + 20.0));
    }
    svg.push_str("</svg>\n");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, svg).map_err(fail)
}

/// `total` offers from one seller over `total / 10` items named `{label} {i}`: the workload
/// of the publish benchmarks.
pub(crate) fn one_seller_offers(label: &str, total: usize) -> Vec<SignedOffer> {
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let items: Vec<Item> = (0..(total / 10).max(1))
        .filter_map(|i| Item::new(&format!("{label} {i}")).ok())
        .collect();
    (0..total)
        .map(|i| {
            SignedOffer::sign(
                &seller,
                &items[i % items.len()],
                1 + i as u64,
                Currency::EUR,
                1,
                crate::NOW + 86_400,
                i as u64 + 1,
            )
        })
        .collect()
}

//! `candor bench lifecycle`: a listing node under a steady publish rate for months of
//! simulated time (DESIGN.md §9). Offers live the default lifetime; a tenth of the publishes
//! withdraw an earlier offer (quantity 0) and a tenth sell from one (a lower quantity), each a
//! supersession with a higher serial; one item keeps exactly ten live offers, republished
//! before they expire. At each measuring day the node deletes what lies before its windows,
//! and a buyer retrieves that item: storage per node and the retrieve's bytes and time,
//! against simulated time, per scheme. Writes an SVG plot.
//!
//! The clock is simulated (every publish and read names its time): a 90-day run takes
//! minutes. [`simulate`] is also what CI's smoke test runs at 1 % scale, asserting counts: a
//! B or C node stores no more than what it counted inside its window plus one boundary per
//! counter, and an M node's live map no more records than it counted inside the window.
//! An M node also drops the proofs of steps below its audit horizon (headers stay): the step
//! proofs it keeps are those of about the last L_max.

use crate::BenchError;
use candor_core::{
    Authority, Budget, Currency, Item, Keypair, NotAdmitted, PeerId, Registry, Scheme, SignedOffer,
};
use candor_device::SoftwareDevice;
use candor_listing::{enrol, retrieve_from, ListingNode, PublishError, Reading, COMPACT_LAG};
use candor_store::ListingStore;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DAY: u64 = 86_400;

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// Publishes over the whole run.
    #[arg(long, default_value_t = 1_000_000)]
    publishes: u64,
    /// Simulated days.
    #[arg(long, default_value_t = 90)]
    days: u64,
    /// Days between measurements.
    #[arg(long, default_value_t = 5)]
    every: u64,
    /// Distinct items the publishes spread over.
    #[arg(long, default_value_t = 10_000)]
    items: u64,
    /// Schemes to run (b, c, m).
    #[arg(long, default_value = "b,c,m")]
    schemes: String,
    /// Scheme C's counters.
    #[arg(long, default_value_t = 64)]
    counters: u32,
    /// Where to write the plot.
    #[arg(long, default_value = "docs/lifecycle.svg")]
    plot: PathBuf,
}

/// One run's shape.
#[derive(Debug, Clone)]
pub struct Config {
    /// The scheme.
    pub scheme: Scheme,
    /// Publishes over the whole run.
    pub publishes: u64,
    /// Simulated days.
    pub days: u64,
    /// Days between measurements (the last day is always measured).
    pub every: u64,
    /// Distinct items.
    pub items: u64,
    /// Counters (scheme C; B and M have one).
    pub counters: u32,
}

/// What one measuring day shows.
#[derive(Debug, Clone)]
pub struct Point {
    /// Days since the start.
    pub day: u64,
    /// Publishes so far.
    pub published: u64,
    /// Publishes the node counted at or after its deletion edge (node time − L_max − 2·skew
    /// − the lag): what a B/C node may keep, besides one boundary per counter.
    pub in_window: u64,
    /// Items the store holds (B, C: entries and gap notices; M: offers in its lists).
    pub stored: u64,
    /// The store file's size.
    pub store_bytes: u64,
    /// Scheme M: the steps whose whole proof the store keeps (those above the audit horizon).
    pub step_proofs: u64,
    /// Bytes of the buyer's retrieve of the ten-offer item.
    pub retrieve_bytes: u64,
    /// The retrieve, node serving and buyer checking in one process (scheme M: with its
    /// default audits).
    pub retrieve: Duration,
    /// Scheme M: the same retrieve without audits (the head, the list and their checks), the
    /// median of five: what DESIGN.md §8's ≤ 2 ms target counts, less the per-item walk.
    pub unaudited: Option<Duration>,
    /// The item's current offers, as the buyer sees them.
    pub live: usize,
}

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(e.to_string())
}

/// Runs one scheme through the whole simulated run in `dir`, calling `progress` at each
/// measuring day.
pub fn simulate(
    cfg: &Config,
    dir: &Path,
    mut progress: impl FnMut(&Point),
) -> Result<Vec<Point>, BenchError> {
    let mut rng = rand_core::OsRng;
    let authority = Authority::new(Keypair::generate(&mut rng));
    let node_key = Keypair::generate(&mut rng);
    let counters = if cfg.scheme == Scheme::Counters {
        cfg.counters.max(1)
    } else {
        1
    };
    let mut device = SoftwareDevice::in_memory(PeerId::from_ed25519(&node_key.public()), counters);
    let start = crate::NOW;
    let cert = enrol(
        &authority,
        &mut Registry::default(),
        &node_key,
        &mut device,
        cfg.scheme,
        counters,
        start,
    )?;
    let rules = cert.cert.time;
    let path = dir.join(format!("lifecycle-{:?}.redb", cfg.scheme));
    let (node, _) = ListingNode::open(device, ListingStore::open(&path)?, cert.clone())?;
    // Days pass in seconds here: a served boundary holds nothing back.
    node.hold_served_boundaries(Duration::ZERO);
    let trusted = [authority.public()];
    let sellers: Vec<Keypair> = (0..64).map(|_| Keypair::generate(&mut rng)).collect();
    let items: Vec<Item> = (0..cfg.items.max(1))
        .map(|i| Item::new(&format!("lifecycle item {i}")).map_err(fail))
        .collect::<Result<_, _>>()?;
    let d = Item::new("lifecycle item with ten offers").map_err(fail)?;
    let life = rules.default_lifetime();
    let per_day = (cfg.publishes / cfg.days.max(1)).max(1);
    let budget = Budget {
        max_entries: 50_000_000,
        max_bytes: 16 << 30,
        ..Budget::default()
    };
    let mut serial = 0u64;
    let mut times: Vec<u64> = Vec::with_capacity(cfg.publishes as usize);
    let mut last_of_seller: Vec<Option<(usize, u64)>> = vec![None; sellers.len()];
    let mut points = Vec::new();
    for day in 0..cfg.days {
        let day_start = start + day * DAY;
        // The node's clock is the simulated one (the window's edge follows it).
        node.set_clock(Some(day_start + DAY - 1));
        let mut batch: Vec<SignedOffer> = Vec::with_capacity(256);
        let mut batch_now = day_start;
        // Every offer of a batch is counted at the batch's time. An M step takes one offer
        // per seller and item, and has room for so many: the rest are published again at once.
        let flush = |batch: &mut Vec<SignedOffer>,
                     times: &mut Vec<u64>,
                     now: u64|
         -> Result<(), BenchError> {
            while !batch.is_empty() {
                let mut again = Vec::new();
                for (o, r) in batch.iter().zip(node.publish_all(batch, now)) {
                    match r {
                        Ok(_) => times.push(now),
                        Err(PublishError::NotAdmitted(
                            NotAdmitted::SameStep | NotAdmitted::StepFull,
                        )) => again.push(o.clone()),
                        Err(e) => return Err(fail(e)),
                    }
                }
                *batch = again;
            }
            Ok(())
        };
        // The ten-offer item: ten sellers republish every ten days, before expiry.
        if day % 10 == 0 {
            for (s, seller) in sellers.iter().take(10).enumerate() {
                serial += 1;
                batch.push(SignedOffer::sign(
                    seller,
                    &d,
                    10_000 + s as u64 + day,
                    Currency::EUR,
                    1,
                    day_start + life,
                    serial,
                ));
            }
        }
        for i in 0..per_day {
            let now = day_start + i * DAY / per_day;
            let s = (serial % sellers.len() as u64) as usize;
            serial += 1;
            let kind = serial % 10;
            let (item, quantity) = match (kind, last_of_seller[s]) {
                // Withdraw or sell from this seller's last offer: a supersession.
                (0, Some((item, _))) => (item, 0),
                (5, Some((item, _))) => (item, 1),
                _ => ((serial * 7919 % cfg.items.max(1)) as usize, 3),
            };
            let o = SignedOffer::sign(
                &sellers[s],
                &items[item],
                100 + serial % 1000,
                Currency::EUR,
                quantity,
                now + life,
                serial,
            );
            last_of_seller[s] = Some((item, serial));
            batch.push(o);
            batch_now = now;
            if batch.len() == 256 {
                flush(&mut batch, &mut times, batch_now)?;
            }
        }
        flush(&mut batch, &mut times, batch_now)?;
        let published = times.len() as u64;
        let last = day == cfg.days - 1;
        if day % cfg.every.max(1) != cfg.every.max(1) - 1 && !last {
            continue;
        }
        let now = day_start + DAY - 1;
        node.compact().map_err(fail)?;
        let edge = rules.node_edge(batch_now).saturating_sub(COMPACT_LAG);
        let in_window = times.iter().filter(|&&t| t >= edge).count() as u64;
        // M: the records its live map holds (offers and tombstones not yet expired).
        let stored = match cfg.scheme {
            Scheme::Merkle => node.live_records().unwrap_or(0),
            _ => cert
                .cert
                .counters
                .iter()
                .map(|c| node.store().stored(c.id))
                .sum::<Result<u64, _>>()?,
        };
        let began = Instant::now();
        let out = retrieve_from(&node, &trusted, &d, Reading::new(budget).at(now)).map_err(fail)?;
        let retrieve = began.elapsed();
        let unaudited = match cfg.scheme {
            Scheme::Merkle => {
                let mut times = Vec::with_capacity(5);
                for _ in 0..5 {
                    let began = Instant::now();
                    retrieve_from(&node, &trusted, &d, Reading::new(budget).at(now).audits(0))
                        .map_err(fail)?;
                    times.push(began.elapsed());
                }
                times.sort();
                Some(times[2])
            }
            _ => None,
        };
        let point = Point {
            day: day + 1,
            published,
            in_window,
            stored,
            store_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            step_proofs: match cfg.scheme {
                Scheme::Merkle => node.store().step_proofs(cert.cert.counters[0].id)?,
                _ => 0,
            },
            retrieve_bytes: out.bytes(),
            retrieve,
            unaudited,
            live: out.current(now).len(),
        };
        progress(&point);
        points.push(point);
    }
    Ok(points)
}

/// The run.
pub fn run(args: Args) -> Result<(), BenchError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let mut all: Vec<(Scheme, Vec<Point>)> = Vec::new();
    println!(
        "# {} publishes over {} simulated days, {} items; offers live L_max − 4·skew; a tenth withdraw, a tenth sell",
        args.publishes, args.days, args.items
    );
    let ceilings = crate::stats::Ceilings::measure();
    println!("{}", ceilings.line());
    println!(
        "scheme day published in_window stored store_MiB step_proofs retrieve_KiB retrieve_ms unaudited_ms live"
    );
    for s in args
        .schemes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let scheme = match s {
            "b" | "B" => Scheme::Basic,
            "c" | "C" => Scheme::Counters,
            "m" | "M" => Scheme::Merkle,
            other => return Err(fail(format!("unknown scheme {other:?}: b, c or m"))),
        };
        let cfg = Config {
            scheme,
            publishes: args.publishes,
            days: args.days,
            every: args.every,
            items: args.items,
            counters: args.counters,
        };
        let points = simulate(&cfg, dir.path(), |p| {
            println!(
                "{:<6} {:>3} {:>9} {:>9} {:>9} {:>8.1} {:>6} {:>10.1} {:>9.2} {:>8.3} {:>3}",
                format!("{scheme:?}"),
                p.day,
                p.published,
                p.in_window,
                p.stored,
                p.store_bytes as f64 / (1 << 20) as f64,
                p.step_proofs,
                p.retrieve_bytes as f64 / 1024.0,
                p.retrieve.as_secs_f64() * 1e3,
                p.unaudited.map_or(f64::NAN, |u| u.as_secs_f64() * 1e3),
                p.live
            );
        })?;
        all.push((scheme, points));
    }
    if let Some(parent) = args.plot.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&args.plot, plot(&all)).map_err(fail)?;
    println!("plot: {}", args.plot.display());
    Ok(())
}

/// Two panels against simulated days: items stored, and the retrieve's KiB (log scale).
fn plot(all: &[(Scheme, Vec<Point>)]) -> String {
    let colours = ["#1f77b4", "#d62728", "#2ca02c"];
    let mut svg = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="420" font-family="sans-serif" font-size="12">"#,
    );
    svg.push_str(r#"<rect width="960" height="420" fill="white"/>"#);
    let days = all
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.day))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    type Panel = (&'static str, fn(&Point) -> f64);
    let panels: [Panel; 2] = [
        ("items stored per node", |p| p.stored as f64),
        ("retrieve of one item (KiB)", |p| {
            p.retrieve_bytes as f64 / 1024.0
        }),
    ];
    for (i, (title, value)) in panels.iter().enumerate() {
        let (x0, y0, wd, ht) = (70.0 + i as f64 * 470.0, 40.0, 380.0, 320.0);
        let max = all
            .iter()
            .flat_map(|(_, p)| p.iter().map(value))
            .fold(1.0f64, f64::max)
            .log10()
            .ceil()
            .max(1.0);
        svg.push_str(&format!(
            r#"<text x="{x0}" y="24" font-weight="bold">{title} (log scale) against simulated days</text>"#
        ));
        for e in 0..=max as i32 {
            let y = y0 + ht - ht * f64::from(e) / max;
            svg.push_str(&format!(
                r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}">1e{e}</text>"##,
                x0 + wd,
                x0 - 40.0,
                y + 4.0
            ));
        }
        for dd in (0..=days as u64).step_by(30) {
            let x = x0 + wd * dd as f64 / days;
            svg.push_str(&format!(
                r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{}" y="{}">{dd}</text>"##,
                y0 + ht,
                x - 6.0,
                y0 + ht + 16.0
            ));
        }
        for (k, (scheme, points)) in all.iter().enumerate() {
            let c = colours[k % colours.len()];
            let pts: Vec<String> = points
                .iter()
                .map(|p| {
                    let x = x0 + wd * p.day as f64 / days;
                    let y = y0 + ht - ht * value(p).max(1.0).log10() / max;
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            svg.push_str(&format!(
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            ));
            if i == 0 {
                let x = 70.0 + k as f64 * 120.0;
                svg.push_str(&format!(
                    r#"<rect x="{x}" y="395" width="14" height="4" fill="{c}"/><text x="{}" y="401">{scheme}</text>"#,
                    x + 20.0
                ));
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

//! `candor bench net`: publish and retrieve round trips across N in-process nodes on libp2p's
//! memory transport (the network and the checks, without disk: devices and stores live in
//! memory), latency percentiles, bytes per retrieve, memory per node.

use crate::{now, BenchError};
use candor_core::{Authority, Currency, Item, Keypair, PeerId, Registry, Scheme, SignedOffer};
use candor_device::SoftwareDevice;
use candor_listing::{enrol, ListingNode};
use candor_net::{
    identity, start, with_peer, ListingService, Market, NetConfig, NetHandle, NodeReport, Service,
};
use candor_store::ListingStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the network benchmark.
#[derive(clap::Args)]
pub struct Args {
    /// Overlay sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "20,100,300")]
    nodes: Vec<usize>,
    /// Publishes (and as many retrieves) per size.
    #[arg(long, default_value_t = 240)]
    ops: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// |Δ(d)|.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// The scheme every listing node is certified for: b, c (8 counters) or m.
    #[arg(long, default_value = "b", value_parser = ["b", "c", "m"])]
    scheme: String,
    /// Seconds a connection may stay idle before it is closed (the node's default). Shorter
    /// timeouts close connections a join still needs: at N = 300, 10 s made the join take
    /// over 12 minutes (redials).
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
}

/// Connections and routing per node, at one moment.
struct Conns {
    /// Open connections: median and max.
    open: (usize, usize),
    /// Connections established since the start: median.
    opened: u64,
    /// Routing-table entries: median.
    table: usize,
}

fn connections(runtime: &tokio::runtime::Runtime, nets: &[NetHandle]) -> Conns {
    let statuses: Vec<_> = runtime.block_on(async {
        let mut out = Vec::with_capacity(nets.len());
        for net in nets {
            if let Ok(s) = net.status().await {
                out.push(s);
            }
        }
        out
    });
    fn median<T: Ord + Copy + Default>(mut v: Vec<T>) -> T {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
    let open: Vec<usize> = statuses.iter().map(|s| s.connected).collect();
    Conns {
        open: (
            median(open.clone()),
            open.iter().copied().max().unwrap_or(0),
        ),
        opened: median(statuses.iter().map(|s| s.opened).collect()),
        table: median(statuses.iter().map(|s| s.routing_table).collect()),
    }
}

/// How many of `items` have, as node `i·31 mod N` finds it by lookup, exactly the k nodes
/// closest to their key among all `nets` (Δ(d) as the whole overlay would define it).
fn exact_delta(
    runtime: &tokio::runtime::Runtime,
    nets: &[NetHandle],
    items: &[Item],
    k: usize,
) -> usize {
    use libp2p::kad::KBucketKey;
    runtime.block_on(async {
        let mut exact = 0;
        for (i, item) in items.iter().enumerate() {
            let key = candor_net::dht_key(&item.key());
            let target = KBucketKey::new(key.clone());
            let mut truth: Vec<_> = nets.iter().map(|n| n.peer()).collect();
            truth.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
            truth.truncate(k);
            let Some(from) = nets.get(i * 31 % nets.len().max(1)) else {
                continue;
            };
            if let Ok(mut found) = from.listing_nodes(&key).await {
                found.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
                if found == truth {
                    exact += 1;
                }
            }
        }
        exact
    })
}

fn rss_bytes() -> u64 {
    // Resident pages from /proc/self/statm (Linux); 0 elsewhere.
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

struct Sim {
    nets: Vec<NetHandle>,
    nodes: Vec<Arc<ListingNode<SoftwareDevice>>>,
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> Result<(), BenchError> {
    let fail = |e: String| BenchError::Failed(e);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    // Timers made while dropping nodes need the runtime's context.
    let _guard = runtime.enter();
    let (scheme, counters) = match args.scheme.as_str() {
        "c" => (Scheme::Counters, 8),
        "m" => (Scheme::Merkle, 1),
        _ => (Scheme::Basic, 1),
    };
    let ceilings = crate::stats::Ceilings::measure();
    println!("## Network benchmark (memory transport, in-memory devices and stores, scheme {scheme}, k = {}, {} concurrent clients)\n", args.k, args.clients);
    println!("{}\n", ceilings.line());
    println!("Connections per node (median / max): after the join, at rest (idle {} s later), and after the operations.\n", args.idle_secs);
    println!("| nodes | join | memory/node | conns after join | conns at rest | conns after ops | publish/s | publish p50 / p95 / p99 ms | retrieve/s | retrieve p50 / p95 / p99 ms | bytes/retrieve | verified | exact Δ(d) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut port_base = 10_000u64;
    for &n in &args.nodes {
        let authority = Authority::new(Keypair::generate(&mut rand_core::OsRng));
        let trusted = vec![authority.public()];
        let mut registry = Registry::default();
        let rss0 = rss_bytes();
        let t_join = Instant::now();
        let mut sim = Sim {
            nets: Vec::new(),
            nodes: Vec::new(),
        };
        let mut boot = None;
        for i in 0..n {
            let key = Keypair::generate(&mut rand_core::OsRng);
            let mut device =
                SoftwareDevice::in_memory(PeerId::from_ed25519(&key.public()), counters);
            let cert = enrol(
                &authority,
                &mut registry,
                &key,
                &mut device,
                scheme,
                counters,
                now(),
            )?;
            let (node, _) = ListingNode::open(device, ListingStore::in_memory()?, cert)?;
            let node = Arc::new(node);
            let service: Arc<dyn Service> =
                Arc::new(ListingService::new(node.clone(), candor_net::system_clock));
            let config = NetConfig {
                listen: vec![format!("/memory/{}", port_base + i as u64)
                    .parse()
                    .map_err(|e: candor_net::MultiaddrError| fail(e.to_string()))?],
                bootstrap: boot.iter().cloned().collect(),
                k: args.k,
                memory: true,
                idle_timeout: Duration::from_secs(args.idle_secs),
                reads_per_second: 1e6,
                work_per_second: 1e6,
                max_inflight: 4096,
                trusted: trusted.clone(),
                ..NetConfig::default()
            };
            let (net, addrs) = runtime
                .block_on(start(
                    identity(&key).map_err(|e| fail(e.to_string()))?,
                    config,
                    Some(service),
                ))
                .map_err(|e| fail(e.to_string()))?;
            if boot.is_none() {
                boot = addrs.first().map(|a| with_peer(a, net.peer()));
            }
            sim.nets.push(net);
            sim.nodes.push(node);
        }
        port_base += n as u64 + 1;
        runtime.block_on(async {
            for chunk in sim.nets.chunks(10) {
                let mut set = tokio::task::JoinSet::new();
                for net in chunk {
                    let net = net.clone();
                    set.spawn(async move {
                        let _ = net.bootstrap().await;
                    });
                }
                while set.join_next().await.is_some() {}
            }
        });
        let join = t_join.elapsed();
        let rss1 = rss_bytes();
        let per_node = rss1.saturating_sub(rss0) / n.max(1) as u64;
        let after_join = connections(&runtime, &sim.nets);
        // At rest: once the connections the join opened have been idle for the timeout.
        runtime.block_on(tokio::time::sleep(Duration::from_secs(args.idle_secs + 2)));
        let at_rest = connections(&runtime, &sim.nets);
        eprintln!(
            "N = {n}: join {:.1} s; per node (median) {} connections opened during the join, {} routing-table entries",
            join.as_secs_f64(),
            after_join.opened,
            after_join.table
        );

        let items: Vec<Item> = (0..64)
            .filter_map(|i| Item::new(&format!("bench item {i}")).ok())
            .collect();
        let per_client = args.ops / args.clients.max(1);
        let handle = runtime.handle().clone();
        // Publishes.
        let t = Instant::now();
        let lat: Vec<Duration> = std::thread::scope(|s| {
            let jobs: Vec<_> = (0..args.clients)
                .map(|c| {
                    let (sim, items, trusted, handle) = (&sim, &items, &trusted, handle.clone());
                    s.spawn(move || {
                        let home = (c * 7919) % n;
                        let market = Market::new(
                            sim.nets[home].clone(),
                            Some(sim.nodes[home].clone()),
                            trusted.clone(),
                            handle,
                        );
                        let seller = Keypair::generate(&mut rand_core::OsRng);
                        (0..per_client)
                            .filter_map(|i| {
                                let item = &items[(c * per_client + i) % items.len()];
                                let o = SignedOffer::sign(
                                    &seller,
                                    item,
                                    100 + i as u64,
                                    Currency::EUR,
                                    1,
                                    now() + 3600,
                                    i as u64 + 1,
                                );
                                let t = Instant::now();
                                let r = market.publish(&o, now()).ok()?;
                                r.results
                                    .iter()
                                    .all(|(_, x)| x.is_ok())
                                    .then(|| t.elapsed())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            jobs.into_iter()
                .flat_map(|j| j.join().unwrap_or_default())
                .collect()
        });
        let pub_rate = lat.len() as f64 / t.elapsed().as_secs_f64();
        let mut pub_lat = lat;
        pub_lat.sort();
        // Retrieves.
        let t = Instant::now();
        let results: Vec<(Duration, u64, bool)> = std::thread::scope(|s| {
            let jobs: Vec<_> = (0..args.clients)
                .map(|c| {
                    let (sim, items, trusted, handle) = (&sim, &items, &trusted, handle.clone());
                    s.spawn(move || {
                        let home = (c * 104_729 + 1) % n;
                        let market = Market::new(
                            sim.nets[home].clone(),
                            Some(sim.nodes[home].clone()),
                            trusted.clone(),
                            handle,
                        );
                        (0..per_client)
                            .filter_map(|i| {
                                let item = &items[(c + i * 3) % items.len()];
                                let t = Instant::now();
                                let r = market.retrieve(item, now()).ok()?;
                                let bytes = r
                                    .reports
                                    .iter()
                                    .map(|(_, x)| match x {
                                        NodeReport::Verified(o) => o.bytes(),
                                        _ => 0,
                                    })
                                    .sum();
                                let all = r
                                    .reports
                                    .iter()
                                    .all(|(_, x)| matches!(x, NodeReport::Verified(_)));
                                Some((t.elapsed(), bytes, all))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            jobs.into_iter()
                .flat_map(|j| j.join().unwrap_or_default())
                .collect()
        });
        let ret_rate = results.len() as f64 / t.elapsed().as_secs_f64();
        let verified = results.iter().filter(|r| r.2).count();
        let bytes = results.iter().map(|r| r.1).sum::<u64>() / results.len().max(1) as u64;
        let mut ret_lat: Vec<Duration> = results.iter().map(|r| r.0).collect();
        ret_lat.sort();
        // Open connections per node once the work is done.
        let after_ops = connections(&runtime, &sim.nets);
        let (conn_median, conn_max) = after_ops.open;
        let exact = exact_delta(&runtime, &sim.nets, &items, args.k);
        println!(
            "| {n} | {:.1} s | {:.2} MiB | {} / {} | {} / {} | {conn_median} / {conn_max} | {pub_rate:.0} | {:.1} / {:.1} / {:.1} | {ret_rate:.0} | {:.1} / {:.1} / {:.1} | {bytes} | {verified}/{} | {exact}/{} |",
            join.as_secs_f64(),
            per_node as f64 / (1024.0 * 1024.0),
            after_join.open.0,
            after_join.open.1,
            at_rest.open.0,
            at_rest.open.1,
            pct(&pub_lat, 0.5),
            pct(&pub_lat, 0.95),
            pct(&pub_lat, 0.99),
            pct(&ret_lat, 0.5),
            pct(&ret_lat, 0.95),
            pct(&ret_lat, 0.99),
            results.len(),
            items.len()
        );
        for net in &sim.nets {
            net.shutdown();
        }
        drop(sim);
        runtime.block_on(tokio::time::sleep(Duration::from_millis(300)));
    }
    println!("\nA publish is a Kademlia lookup of Δ(d) and one publish round trip to each of its k nodes (receipt checked); a retrieve is a lookup and, per listing node, a head and one page, every statement checked. bytes/retrieve sums the pages received from the k nodes; exact Δ(d): of the 64 items, how many a lookup from one node finds with exactly the k nodes closest among all.");
    Ok(())
}

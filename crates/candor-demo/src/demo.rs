//! `candor demo`: a whole marketplace on this machine — an authority, ~24 nodes on real TCP
//! sockets on 127.0.0.1, each with a software device and a store on files, sellers publishing
//! a catalogue to each item's listing nodes, a few listing nodes cheating, and buyers that
//! check every answer. Exits non-zero if an honest node is accused or a cheat goes unnoticed.

use crate::catalogue::CATALOGUE;
use crate::{now, LabError};
use candor_core::{
    Authority, Currency, Encode, Item, Keypair, PeerId, Registry, Scheme, SignedOffer,
};
use candor_device::SoftwareDevice;
use candor_lab::{CheatingNode, Strategy};
use candor_listing::{enrol, ListingNode};
use candor_net::{
    identity, short, start, with_peer, ListingService, Market, NetConfig, NetHandle, NodeReport,
    ServeListing, Service,
};
use candor_node::device::AnyDevice;
use candor_node::files;
use candor_store::ListingStore;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the demo.
#[derive(clap::Args)]
pub struct Args {
    /// How many nodes.
    #[arg(long, default_value_t = 24)]
    nodes: usize,
    /// How many of them are cheating listing nodes (each runs one strategy).
    #[arg(long, default_value_t = 4)]
    cheaters: usize,
    /// How many sellers publish the catalogue.
    #[arg(long, default_value_t = 10)]
    sellers: usize,
    /// |Δ(d)|.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// Keep the files in this folder (default: a temporary folder).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed for prices and choices.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// The scheme every listing node runs (b, c with 8 counters, m), or `all` to run the
    /// demo once per scheme.
    #[arg(long, default_value = "all")]
    scheme: String,
    /// The trusted device behind every node: `software`, or `tpm` (one swtpm per node,
    /// started here on loopback).
    #[arg(long, default_value = "software")]
    device: String,
}

/// Strategies that act at retrieve time, on whichever item a buyer asks for.
fn strategies() -> Vec<Strategy> {
    vec![
        Strategy::OmitEntry,
        Strategy::ChangePrice,
        Strategy::StaleRead,
        Strategy::SmallerT,
        Strategy::Reorder,
        Strategy::Duplicate,
        Strategy::StopEarly,
        Strategy::Refuse,
    ]
}

struct DemoNode {
    net: NetHandle,
    node: Option<Arc<ListingNode<AnyDevice>>>,
    cheat: Option<Strategy>,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what:<28} {{bar:32}} {{pos}}/{{len}} ({{elapsed}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Runs the demo; the exit code says whether every cheat was caught and no honest node
/// accused.
pub fn run(args: Args) -> ExitCode {
    if args.device != "software" && args.device != "tpm" {
        eprintln!("error: --device {:?}: use software or tpm", args.device);
        return ExitCode::FAILURE;
    }
    let schemes: Vec<Scheme> = match args.scheme.as_str() {
        "b" => vec![Scheme::Basic],
        "c" => vec![Scheme::Counters],
        "m" => vec![Scheme::Merkle],
        "all" => vec![Scheme::Basic, Scheme::Counters, Scheme::Merkle],
        other => {
            eprintln!("error: --scheme {other:?}: use b, c, m or all");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for (i, scheme) in schemes.into_iter().enumerate() {
        if i > 0 {
            println!("\n{}\n", "=".repeat(100));
        }
        match demo(&args, scheme) {
            Ok(good) => ok &= good,
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn demo(args: &Args, scheme: Scheme) -> Result<bool, LabError> {
    let fail = |e: String| LabError::Failed(e);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let tmp;
    let dir = match &args.data {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
            tmp.path().to_path_buf()
        }
    };
    let n = args.nodes.max(args.k + 1);
    let cheaters = args.cheaters.min(n.saturating_sub(args.k + 1));
    // The files are named only when they are kept (`--data`); a temporary folder is gone
    // when the demo ends.
    println!(
        "Candor demo, scheme {scheme}: {n} nodes on 127.0.0.1 (k = {}), {cheaters} of them cheating; {}",
        args.k,
        match &args.data {
            Some(d) => format!("files kept in {}", d.display()),
            None => "files in a temporary folder (`--data DIR` keeps them)".to_string(),
        }
    );
    let counters = if scheme == Scheme::Counters { 8 } else { 1 };
    if args.device == "tpm" {
        println!("Every device is a TPM 2.0 — swtpm, one per node: real TPM statements, no real protection.");
        println!("Each is certified only once its EK certificate chains to swtpm's local CA (trusted as a");
        println!("development-only root) and it has opened the authority's credential for its signing key.\n");
    } else {
        println!("Every device is the SOFTWARE device: it protects nothing against its owner.\n");
    }
    let started = Instant::now();
    // With TPMs: one swtpm per node, each manufactured with an EK certificate from swtpm's
    // local CA, which the authority trusts as a development-only root.
    let tpms: Vec<candor_tpm::Swtpm> = if args.device == "tpm" {
        start_swtpms(n)?
    } else {
        Vec::new()
    };
    let mut authority = Authority::new(files::new_key(
        &dir.join("authority").join("authority.key"),
    )?);
    if args.device == "tpm" {
        let pem = candor_tpm::SwtpmCa::shared()
            .and_then(|ca| ca.certificates_pem())
            .map_err(|e| fail(e.to_string()))?;
        files::write_atomic(
            &dir.join("authority").join("ek-roots-development.pem"),
            &pem,
            false,
        )?;
        let mut roots = candor_core::endorsement::EndorsementRoots::new();
        roots.add_pem(&pem, true).map_err(|e| fail(e.to_string()))?;
        authority = authority.with_endorsement_roots(roots);
    }
    let trusted = vec![authority.public()];
    let mut registry = Registry::default();
    let mut rng = StdRng::seed_from_u64(args.seed);
    // Node keys first, so the cheaters can be chosen among nodes that list something.
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        keys.push(files::new_key(
            &dir.join(format!("node-{i:02}")).join("node.key"),
        )?);
    }
    let ids: Vec<candor_net::PeerId> = keys
        .iter()
        .map(|k| {
            identity(k)
                .map(|id| id.public().to_peer_id())
                .map_err(|e| fail(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let mut listed = vec![0usize; n];
    for (desc, _) in CATALOGUE {
        let key = Item::new(desc).map_err(|e| fail(e.to_string()))?.key();
        let target = libp2p_kad_key(&key);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| target.distance(&candor_net::KBucketKey::from(ids[i])));
        for &i in order.iter().take(args.k) {
            listed[i] += 1;
        }
    }
    // Node 0 (the bootstrap) stays honest; the cheaters are the busiest other listing nodes.
    let mut candidates: Vec<usize> = (1..n).filter(|&i| listed[i] > 0).collect();
    candidates.sort_by_key(|&i| std::cmp::Reverse(listed[i]));
    let strats = strategies();
    let cheat_at: BTreeMap<usize, Strategy> = candidates
        .into_iter()
        .take(cheaters)
        .enumerate()
        .map(|(j, i)| (i, strats[j % strats.len()].clone()))
        .collect();

    let b = bar(n as u64, "starting nodes");
    let mut nodes: Vec<DemoNode> = Vec::new();
    let mut boot: Option<candor_net::Multiaddr> = None;
    for (i, key) in keys.iter().enumerate() {
        let d = dir.join(format!("node-{i:02}"));
        let peer = PeerId::from_ed25519(&key.public());
        let mut device = if args.device == "tpm" {
            let sw = tpms
                .get(i)
                .ok_or_else(|| fail("fewer swtpms than nodes".into()))?;
            let t =
                candor_tpm::TcpTransport::connect(sw.server()).map_err(|e| fail(e.to_string()))?;
            let dev =
                candor_tpm::TpmDevice::open(t, peer, counters.max(2), candor_tpm::DEFAULT_NV_BASE)?;
            AnyDevice::TpmTcp(dev)
        } else {
            AnyDevice::Software(SoftwareDevice::create(
                &d.join("device.state"),
                peer,
                counters.max(2),
            )?)
        };
        let cert = enrol(
            &authority,
            &mut registry,
            key,
            &mut device,
            scheme,
            counters,
            now(),
        )?;
        let (node, _) =
            ListingNode::open(device, ListingStore::open(&d.join("store.redb"))?, cert)?;
        let cheat = cheat_at.get(&i).cloned();
        let (service, node): (Arc<dyn Service>, _) = match &cheat {
            Some(s) => {
                let placeholder = Item::new(CATALOGUE[0].0).map_err(|e| fail(e.to_string()))?;
                (
                    Arc::new(ServeListing(CheatingNode::any_item(
                        node,
                        s.clone(),
                        placeholder,
                    ))),
                    None,
                )
            }
            None => {
                let node = Arc::new(node);
                (
                    Arc::new(ListingService::new(node.clone(), candor_net::system_clock)),
                    Some(node),
                )
            }
        };
        let config = NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0"
                .parse()
                .map_err(|e: candor_net::MultiaddrError| fail(e.to_string()))?],
            bootstrap: boot.iter().cloned().collect(),
            k: args.k,
            trusted: trusted.clone(),
            ..NetConfig::default()
        };
        let id = identity(key).map_err(|e| fail(e.to_string()))?;
        let (net, addrs) = runtime
            .block_on(start(id, config, Some(service)))
            .map_err(|e| fail(e.to_string()))?;
        if boot.is_none() {
            boot = addrs.first().map(|a| with_peer(a, net.peer()));
        }
        nodes.push(DemoNode { net, node, cheat });
        b.inc(1);
    }
    b.finish_and_clear();
    let b = bar(n as u64, "joining the overlay");
    runtime.block_on(async {
        for chunk in nodes.chunks(8) {
            futures_join(chunk.iter().map(|x| x.net.clone()).collect()).await;
            b.inc(chunk.len() as u64);
        }
        // A second round so the first joiners learn of the later ones.
        futures_join(nodes.iter().map(|x| x.net.clone()).collect()).await;
    });
    b.finish_and_clear();
    println!(
        "1. {n} nodes up and joined in {:.1} s.",
        started.elapsed().as_secs_f64()
    );

    // Sellers on honest nodes publish the catalogue to each item's listing nodes.
    let honest: Vec<usize> = (0..n).filter(|i| nodes[*i].cheat.is_none()).collect();
    let market = |i: usize| {
        let mut m = Market::new(
            nodes[i].net.clone(),
            nodes[i].node.clone(),
            trusted.clone(),
            runtime.handle().clone(),
        );
        m.time_budget = Duration::from_secs(20);
        m
    };
    let mut plan = Vec::new();
    for s in 0..args.sellers {
        let seller = Keypair::generate(&mut rand_core::OsRng);
        let home = honest[s % honest.len()];
        for (desc, base) in CATALOGUE {
            if rng.gen_bool(0.55) {
                let price = base * rng.gen_range(85..118) / 100;
                plan.push((home, seller.clone(), *desc, price));
            }
        }
    }
    let b = bar(plan.len() as u64, "sellers publishing");
    let mut receipts = 0;
    let mut refused = 0;
    let t0 = Instant::now();
    for (home, seller, desc, price) in &plan {
        let item = Item::new(desc).map_err(|e| fail(e.to_string()))?;
        let offer = SignedOffer::sign(
            seller,
            &item,
            *price,
            Currency::EUR,
            1,
            now() + candor_core::TimeRules::DEFAULT.default_lifetime(),
            1,
        );
        let report = market(*home)
            .publish(&offer, now())
            .map_err(|e| fail(e.to_string()))?;
        for (_, r) in &report.results {
            match r {
                Ok(_) => receipts += 1,
                Err(_) => refused += 1,
            }
        }
        b.inc(1);
    }
    b.finish_and_clear();
    println!(
        "2. {} sellers published {} offers to their listing nodes: {receipts} receipts checked, {refused} refused ({:.1} s).",
        args.sellers,
        plan.len(),
        t0.elapsed().as_secs_f64()
    );

    // Buyers on honest nodes retrieve every item from every listing node.
    println!(
        "3. Buyers retrieve each item from its {} listing nodes and check every answer:\n",
        args.k
    );
    let b = bar(CATALOGUE.len() as u64, "buyers retrieving");
    let mut rows = Vec::new();
    let mut accused = Vec::new();
    let mut unnoticed = Vec::new();
    // Cheaters' answers that were exactly the truth (the cheat had nothing to act on).
    let mut harmless = 0u32;
    let mut caught: BTreeMap<usize, (u32, u32, String)> = BTreeMap::new();
    for (j, (desc, _)) in CATALOGUE.iter().enumerate() {
        let item = Item::new(desc).map_err(|e| fail(e.to_string()))?;
        let buyer = honest[(j * 5 + 3) % honest.len()];
        let report = market(buyer)
            .retrieve(&item, now())
            .map_err(|e| fail(e.to_string()))?;
        // The truth for this item: what the honest listing nodes verified (every node of Δ(d)
        // was given the same offers). A cheater whose verified answer is exactly that changed
        // nothing — an omit-entry cheater on an item with no offers has nothing to omit.
        let offer_set = |o: &candor_listing::RetrieveOutcome| -> BTreeSet<Vec<u8>> {
            o.offers().into_iter().map(|x| x.to_bytes()).collect()
        };
        let mut truth: Option<BTreeSet<Vec<u8>>> = None;
        for (peer, r) in &report.reports {
            let honest_node = nodes
                .iter()
                .find(|x| x.net.peer() == *peer)
                .is_some_and(|x| x.cheat.is_none());
            if let (true, NodeReport::Verified(o)) = (honest_node, r) {
                truth.get_or_insert_with(BTreeSet::new).extend(offer_set(o));
            }
        }
        let mut verdicts = Vec::new();
        for (peer, r) in &report.reports {
            let idx = nodes.iter().position(|x| x.net.peer() == *peer);
            let cheat = idx.and_then(|i| nodes[i].cheat.clone());
            let v = match r {
                NodeReport::Verified(_) => "ok".to_string(),
                NodeReport::Misbehaviour(m) => m.kind().to_string(),
                other => other.status().to_string(),
            };
            match (&cheat, r) {
                (None, NodeReport::Verified(_)) => {}
                (None, _) => {
                    accused.push(format!("{} on {:?}: {v}", short(peer), item.description()))
                }
                // Only strategies that change which offers are served can have had nothing
                // to act on; a stale Read, a reordered or duplicated value, a smaller t… is
                // always a cheat to catch.
                (Some(s), NodeReport::Verified(o))
                    if changes_offers_only(s) && truth.as_ref() == Some(&offer_set(o)) =>
                {
                    harmless += 1;
                }
                (Some(s), NodeReport::Verified(_)) => unnoticed.push(format!(
                    "{} ({}) on {:?}",
                    short(peer),
                    s.name(),
                    item.description()
                )),
                (Some(s), _) => {
                    if let Some(i) = idx {
                        let e = caught.entry(i).or_insert((0, 0, s.name().to_string()));
                        e.0 += 1;
                    }
                }
            }
            if let (Some(i), Some(_)) = (idx, &cheat) {
                caught
                    .entry(i)
                    .or_insert((
                        0,
                        0,
                        cheat
                            .as_ref()
                            .map(|s| s.name().to_string())
                            .unwrap_or_default(),
                    ))
                    .1 += 1;
            }
            verdicts.push(format!("{}:{v}", short(peer)));
        }
        let best = report
            .offers
            .iter()
            .filter(|o| o.currency == Currency::EUR)
            .min_by_key(|o| o.price)
            .map(|o| format!("{}.{:02} EUR", o.price / 100, o.price % 100))
            .unwrap_or_else(|| "-".into());
        rows.push((
            item.description().to_string(),
            report.offers.len(),
            best,
            verdicts.join("  "),
        ));
        b.inc(1);
    }
    b.finish_and_clear();
    println!(
        "   {:<40} {:>6} {:>14}  listing nodes (verdict)",
        "item", "offers", "cheapest"
    );
    for (item, count, best, verdicts) in &rows {
        println!("   {item:<40} {count:>6} {best:>14}  {verdicts}");
    }
    println!("\n4. Cheating listing nodes:");
    for (i, s) in &cheat_at {
        let (c, listed, _) = caught.get(i).cloned().unwrap_or((0, 0, String::new()));
        println!(
            "   {} runs {:<14} listed {listed} item(s), caught on {c}",
            short(&nodes[*i].net.peer()),
            s.name()
        );
    }
    if harmless > 0 {
        println!(
            "   ({harmless} cheater answer(s) were exactly the honest nodes' answer: nothing to cheat on there)"
        );
    }
    // Items some honest listing node verified (an item whose Δ(d) is all cheaters shows no
    // offer to anyone: nothing to follow there).
    let served: Vec<&str> = CATALOGUE
        .iter()
        .map(|(d, _)| *d)
        .filter(|d| {
            rows.iter().any(|(item, count, _, _)| {
                *count > 0 && Item::new(d).is_ok_and(|i| i.description() == item)
            })
        })
        .collect();
    let life_ok = offer_life(&market, &honest, &served, &mut rng)?;
    let removal_ok = if scheme == Scheme::Merkle {
        unjust_removal(&market, &trusted, &nodes, &honest, &served, &mut rng)?
    } else {
        true
    };
    for a in &accused {
        println!("   HONEST NODE ACCUSED: {a}");
    }
    for u in &unnoticed {
        println!("   CHEAT UNNOTICED: {u}");
    }
    let ok = accused.is_empty() && unnoticed.is_empty() && life_ok && removal_ok;
    println!(
        "\n{} in {:.1} s: {} honest node accused, {} cheat unnoticed.",
        if ok { "PASS" } else { "FAIL" },
        started.elapsed().as_secs_f64(),
        accused.len(),
        unnoticed.len()
    );
    for x in &nodes {
        x.net.shutdown();
    }
    Ok(ok)
}

/// Step 5: one offer's life (DESIGN.md §9), as buyers see it — published with two units, one
/// sold, then withdrawn, each change a new offer under a higher serial; and an offer that
/// expires three seconds after it is published. Returns whether buyers saw each step.
fn offer_life(
    market: &dyn Fn(usize) -> Market<AnyDevice>,
    honest: &[usize],
    served: &[&str],
    rng: &mut StdRng,
) -> Result<bool, LabError> {
    let fail = LabError::Failed;
    if served.is_empty() {
        println!("\n5. (no item has an honest listing node here: no offer's life to follow)");
        return Ok(true);
    }
    let desc = served[rng.gen_range(0..served.len())];
    let base = CATALOGUE
        .iter()
        .find(|(d, _)| *d == desc)
        .map_or(1_000, |(_, b)| *b);
    let item = Item::new(desc).map_err(|e| fail(e.to_string()))?;
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let (home, buyer) = (honest[0], honest[honest.len() / 2]);
    let life = candor_core::TimeRules::DEFAULT.default_lifetime();
    let expiry = now() + life;
    // What buyers see of this seller's offer: its quantity, or none.
    let seen = || -> Result<Option<u32>, LabError> {
        let report = market(buyer)
            .retrieve(&item, now())
            .map_err(|e| fail(e.to_string()))?;
        Ok(report
            .offers
            .iter()
            .find(|o| o.seller == seller.public())
            .map(|o| o.quantity))
    };
    let publish = |quantity: u32, expiry: u64, serial: u64| -> Result<(), LabError> {
        let o = SignedOffer::sign(
            &seller,
            &item,
            base,
            Currency::EUR,
            quantity,
            expiry,
            serial,
        );
        market(home)
            .publish(&o, now())
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    };
    println!(
        "\n5. One offer's life on {desc:?} (each change is a new offer under a higher serial):"
    );
    let mut steps = Vec::new();
    publish(2, expiry, 1)?;
    steps.push(("published with 2 units", seen()?, Some(2)));
    publish(1, expiry, 2)?;
    steps.push(("1 sold", seen()?, Some(1)));
    publish(0, expiry, 3)?;
    steps.push(("withdrawn", seen()?, None));
    let other =
        Item::new(served[rng.gen_range(0..served.len())]).map_err(|e| fail(e.to_string()))?;
    // Long enough to be published and seen on a slow machine with TPMs.
    let short = 8;
    let short_expiry = now() + short;
    let short_lived = SignedOffer::sign(&seller, &other, base, Currency::EUR, 1, short_expiry, 4);
    market(home)
        .publish(&short_lived, now())
        .map_err(|e| fail(e.to_string()))?;
    let listed = |item: &Item| -> Result<bool, LabError> {
        Ok(market(buyer)
            .retrieve(item, now())
            .map_err(|e| fail(e.to_string()))?
            .offers
            .iter()
            .any(|o| o.seller == seller.public()))
    };
    let before = listed(&other)?;
    while now() <= short_expiry {
        std::thread::sleep(Duration::from_millis(250));
    }
    let after = listed(&other)?;
    let mut ok = true;
    for (what, got, want) in &steps {
        let shown = got.map_or("no offer".to_string(), |q| format!("x{q}"));
        let mark = if got == want { "" } else { "  WRONG" };
        ok &= got == want;
        println!("   {what:<24} buyers see {shown}{mark}");
    }
    let expired_ok = before && !after;
    ok &= expired_ok;
    println!(
        "   an offer of {:?} living {short} s: listed {before}, after its expiry {}{}",
        other.description(),
        if after {
            "still listed"
        } else {
            "gone (expired)"
        },
        if expired_ok { "" } else { "  WRONG" }
    );
    Ok(ok)
}

/// Step 6 (scheme M): a listing node removes a seller's receipted offer in a step of its own,
/// with no justification (not expired, not replaced) — the removal no seller checks at
/// publish. The seller's monitor catches it with evidence anyone can verify. Returns whether
/// it did.
fn unjust_removal(
    market: &dyn Fn(usize) -> Market<AnyDevice>,
    trusted: &[candor_core::PublicKey],
    nodes: &[DemoNode],
    honest: &[usize],
    served: &[&str],
    rng: &mut StdRng,
) -> Result<bool, LabError> {
    let fail = LabError::Failed;
    if served.is_empty() {
        return Ok(true);
    }
    let item =
        Item::new(served[rng.gen_range(0..served.len())]).map_err(|e| fail(e.to_string()))?;
    let seller = Keypair::generate(&mut rand_core::OsRng);
    let home = honest[0];
    // The cheapest offer of the item (a listing node's first record): the one it removes.
    let o = SignedOffer::sign(
        &seller,
        &item,
        1,
        Currency::EUR,
        1,
        now() + candor_core::TimeRules::DEFAULT.default_lifetime(),
        1,
    );
    let report = market(home)
        .publish(&o, now())
        .map_err(|e| fail(e.to_string()))?;
    // A listing node of the item, run in this process, that counted the offer.
    let Some((peer, receipt, node)) = report.kept.iter().find_map(|(p, r)| {
        nodes
            .iter()
            .find(|x| x.net.peer() == *p)
            .and_then(|x| x.node.clone())
            .map(|n| (*p, r.clone(), n))
    }) else {
        println!(
            "\n6. (no listing node of {:?} counted the offer: no removal to show)",
            item.description()
        );
        return Ok(true);
    };
    println!(
        "\n6. Listing node {} removes a receipted offer of {:?} in an empty step of its own:",
        short(&peer),
        item.description()
    );
    let step = node
        .remove_unjustly(&item.key())
        .map_err(|e| fail(e.to_string()))?;
    if step.is_none() {
        println!("   (the node holds no record of it)  WRONG");
        return Ok(false);
    }
    let verdict = market(home).monitor(peer, &item, &[(o, receipt)]);
    let caught = match &verdict {
        NodeReport::Misbehaviour(candor_core::Misbehaviour::Evidence(e)) => {
            let checked = e.verify(trusted);
            println!(
                "   the seller's monitor: {} — evidence {}",
                e.kind(),
                match &checked {
                    Ok(_) => "verified by anyone with the authority's key".to_string(),
                    Err(why) => format!("does not verify: {why}  WRONG"),
                }
            );
            e.kind() == candor_core::Kind::Removal && checked.is_ok()
        }
        other => {
            println!("   the seller's monitor: {other:?}  CHEAT UNNOTICED");
            false
        }
    };
    Ok(caught)
}

/// Whether a strategy acts only on which offers (or prices) are served, so that on an item it
/// finds nothing to act on, its answer is exactly the truth.
fn changes_offers_only(s: &Strategy) -> bool {
    matches!(
        s,
        Strategy::OmitEntry
            | Strategy::OmitCheaperThan(_)
            | Strategy::ChangePrice
            | Strategy::OtherItemUnderD
            | Strategy::ReplaySuperseded
    )
}

fn libp2p_kad_key(key: &candor_core::ItemKey) -> candor_net::KBucketKey<Vec<u8>> {
    candor_net::KBucketKey::new(candor_net::dht_key(key))
}

async fn futures_join(nets: Vec<NetHandle>) {
    let mut set = tokio::task::JoinSet::new();
    for net in nets {
        set.spawn(async move {
            let _ = net.bootstrap().await;
        });
    }
    while set.join_next().await.is_some() {}
}

/// `n` swtpms with EK certificates from the shared development CA, made in parallel
/// (`swtpm_setup` takes most of a second each); they stop when dropped.
fn start_swtpms(n: usize) -> Result<Vec<candor_tpm::Swtpm>, LabError> {
    let ca = candor_tpm::SwtpmCa::shared().map_err(|e| LabError::Failed(e.to_string()))?;
    // The CA's own keys first, alone.
    ca.certificates_pem()
        .map_err(|e| LabError::Failed(e.to_string()))?;
    let b = bar(n as u64, "manufacturing swtpms (EK + certificate)");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let made = std::sync::Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    let sw = candor_tpm::Swtpm::start_endorsed(ca);
                    b.inc(1);
                    made.lock().unwrap_or_else(|p| p.into_inner()).push(sw);
                }
            });
        }
    });
    b.finish_and_clear();
    made.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabError::Failed(e.to_string()))
}

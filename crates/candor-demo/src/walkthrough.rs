//! `candor walkthrough`: a whole marketplace in one process, on real files.

use crate::catalogue::CATALOGUE;
use crate::{now, LabError};
use candor_core::{
    cheapest, check_receipt, Authority, Budget, Currency, Encode, Item, Keypair, Misbehaviour,
    PeerId, PublicKey, Registry, Scheme, SignedOffer,
};
use candor_device::SoftwareDevice;
use candor_lab::{CheatingNode, EquivocatingDevice, Strategy};
use candor_listing::{
    enrol, monitor, publish_to, retrieve_from, Committer, Listing, ListingNode, PublishReceipt,
};
use candor_node::files::{self, AuthorityDir, NodeDir};
use candor_store::ListingStore;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Options of the walk-through.
#[derive(clap::Args)]
pub struct Args {
    /// How many sellers.
    #[arg(long, default_value_t = 8)]
    sellers: usize,
    /// How many offers each seller publishes.
    #[arg(long, default_value_t = 50)]
    offers: usize,
    /// Keep the files in this folder (default: a temporary folder, removed at the end).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run only the cheat with this name (e.g. omit-entry); default: every cheat.
    #[arg(long)]
    cheat: Option<String>,
    /// Seed for prices and choices.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

struct Env {
    dir: PathBuf,
    authority: Authority,
    registry: Registry,
    trusted: Vec<PublicKey>,
    now: u64,
}

impl Env {
    /// A listing node on files: node key, software device, certificate, redb store.
    fn node(
        &mut self,
        name: &str,
        scheme: Scheme,
        counters: u32,
    ) -> Result<ListingNode<SoftwareDevice>, LabError> {
        let d = NodeDir(self.dir.join(name));
        let key = files::new_key(&d.node_key())?;
        let mut device = SoftwareDevice::create(
            &d.device(),
            PeerId::from_ed25519(&key.public()),
            counters.max(2),
        )?;
        let cert = enrol(
            &self.authority,
            &mut self.registry,
            &key,
            &mut device,
            scheme,
            counters,
            self.now,
        )?;
        files::write_atomic(&d.cert(), &cert.to_bytes(), false)?;
        let store = ListingStore::open(&d.store())?;
        Ok(ListingNode::open(device, store, cert)?.0)
    }
}

fn money(minor: u64, c: Currency) -> String {
    format!("{}.{:02} {c}", minor / 100, minor % 100)
}

/// Runs the walk-through; the exit code says whether every cheat was caught and no honest
/// node accused.
pub fn run(args: Args) -> ExitCode {
    match walk(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn walk(args: Args) -> Result<bool, LabError> {
    let tmp;
    let dir = match &args.data {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| LabError::Failed(format!("temporary folder: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    println!("Candor walk-through — files in {}", dir.display());
    println!("Every trusted device here is the SOFTWARE device: it protects nothing against its owner.\n");

    // 1. The authority.
    let a = AuthorityDir(dir.join("authority"));
    let authority = Authority::new(files::new_key(&a.key())?);
    files::write_atomic(&a.public(), authority.public().to_hex().as_bytes(), false)?;
    let trusted = vec![authority.public()];
    let mut env = Env {
        dir: dir.clone(),
        authority,
        registry: Registry::default(),
        trusted,
        now: now(),
    };
    println!(
        "1. Authority {} created.",
        &env.authority.public().to_hex()[..16]
    );

    // 2. An honest listing node (scheme B), enrolled.
    let node = Arc::new(env.node("listing-node", Scheme::Basic, 1)?);
    println!(
        "2. Listing node {} enrolled: scheme {}, certificate {}.",
        node.peer().short(),
        node.certificate().cert.scheme,
        &node.certificate().id().to_hex()[..16]
    );

    // 3. Sellers publish through the group committer, each checking its receipt.
    let ok = publish_catalogue(&env, &node, &args)?;
    // 4. Buyers retrieve every item and verify.
    let mut all_ok = ok && retrieve_catalogue(&env, node.as_ref())?;

    // 5. Cheating listing nodes.
    println!("\n5. Cheating listing nodes — each tries one trick about one item:");
    println!("   {:<28} {:<16} misbehaviour", "cheat", "caught by");
    let stranger = Keypair::generate(&mut rand_core::OsRng).public();
    let count = Strategy::all(stranger, stranger, 0).len();
    let mut caught = 0;
    let mut tried = 0;
    for i in 0..count {
        let name = Strategy::all(stranger, stranger, 0).swap_remove(i).name();
        if args.cheat.as_deref().is_some_and(|c| c != name) {
            continue;
        }
        let (who, what, good) = cheat_scenario(&mut env, i)?;
        println!("   {name:<28} {who:<16} {what}");
        if name != "honest" {
            tried += 1;
            caught += usize::from(good);
        }
        all_ok &= good;
    }
    if args.cheat.is_none() || args.cheat.as_deref() == Some("equivocating-device") {
        let (who, what, good) = equivocation_scenario(&mut env)?;
        println!("   {:<28} {who:<16} {what}", "equivocating-device");
        tried += 1;
        caught += usize::from(good);
        all_ok &= good;
    }
    println!(
        "\n{caught} of {tried} cheats caught; the honest node was {}.",
        if all_ok {
            "never accused"
        } else {
            "NOT handled correctly"
        }
    );
    if !all_ok {
        eprintln!("FAILED: a cheat went unnoticed or an honest node was accused");
    }
    Ok(all_ok)
}

fn publish_catalogue(
    env: &Env,
    node: &Arc<ListingNode<SoftwareDevice>>,
    args: &Args,
) -> Result<bool, LabError> {
    let committer = Arc::new(Committer::spawn(node.clone(), 256, 1024));
    let total = (args.sellers * args.offers) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("   publishing {bar:40} {pos}/{len} offers ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..args.sellers)
        .map(|s| {
            let committer = committer.clone();
            let node = node.clone();
            let trusted = env.trusted.clone();
            let bar = bar.clone();
            let (offers, seed, now) = (args.offers, args.seed, env.now);
            std::thread::spawn(move || -> Result<usize, String> {
                let mut rng = StdRng::seed_from_u64(seed * 1000 + s as u64);
                let seller = Keypair::generate(&mut rand_core::OsRng);
                let cert = node.certificate().clone();
                for n in 0..offers {
                    let (desc, base) = CATALOGUE[rng.gen_range(0..CATALOGUE.len())];
                    let item = Item::new(desc).map_err(|e| e.to_string())?;
                    let price = base * rng.gen_range(80..120) / 100;
                    let qty = if rng.gen_bool(0.05) {
                        0
                    } else {
                        rng.gen_range(1..4)
                    };
                    let o = SignedOffer::sign(
                        &seller,
                        &item,
                        price,
                        Currency::EUR,
                        qty,
                        now + candor_core::TimeRules::DEFAULT.default_lifetime(),
                        n as u64 + 1,
                    );
                    let candor_listing::Published::Entry(r) = committer
                        .publish(o.clone(), now)
                        .map_err(|e| e.to_string())?
                    else {
                        return Err("the node answered a scheme-M receipt".to_string());
                    };
                    check_receipt(&trusted, &node.peer(), &cert, &o, &r)
                        .map_err(|e| e.to_string())?;
                    bar.inc(1);
                }
                Ok(offers)
            })
        })
        .collect();
    let mut published = 0;
    let mut ok = true;
    for t in threads {
        match t.join() {
            Ok(Ok(n)) => published += n,
            Ok(Err(e)) => {
                eprintln!("   a seller failed: {e}");
                ok = false;
            }
            Err(_) => ok = false,
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "3. {} sellers published {published} offers, each receipt durable and checked ({:.0} publishes/s with group commit).",
        args.sellers,
        published as f64 / secs.max(1e-9)
    );
    Ok(ok)
}

fn retrieve_catalogue(env: &Env, node: &dyn Listing) -> Result<bool, LabError> {
    println!("4. A buyer retrieves each item from the listing node and checks every entry:");
    println!(
        "   {:<42} {:>6} {:>9} {:>18}",
        "item", "offers", "checked", "cheapest"
    );
    let mut ok = true;
    for (desc, _) in CATALOGUE {
        let item = Item::new(desc).map_err(|e| LabError::Failed(e.to_string()))?;
        match retrieve_from(node, &env.trusted, &item, Budget::default()) {
            Ok(o) => {
                let current = o.current(env.now);
                let best = cheapest(&current, Currency::EUR)
                    .map(|b| money(b.price, b.currency))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "   {:<42} {:>6} {:>9} {:>18}",
                    item.description(),
                    current.len(),
                    o.t() - o.base(),
                    best
                );
            }
            Err(m) => {
                println!("   {:<42} HONEST NODE ACCUSED: {m}", item.description());
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// One cheat: a fresh node, a small market for the target item, the cheat, and who catches it.
fn cheat_scenario(env: &mut Env, index: usize) -> Result<(String, String, bool), LabError> {
    let target = Item::new(CATALOGUE[0].0).map_err(|e| LabError::Failed(e.to_string()))?;
    let other = Item::new(CATALOGUE[1].0).map_err(|e| LabError::Failed(e.to_string()))?;
    let sellers: Vec<Keypair> = (0..4)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let probe = Strategy::all(sellers[3].public(), sellers[1].public(), 40).swap_remove(index);
    let honest = env.node(&format!("cheat-{}", probe.name()), Scheme::Basic, 1)?;
    let plan: [(usize, &Item, u64, u64); 7] = [
        (0, &target, 46_000, 1),
        (1, &other, 9_000, 1),
        (1, &target, 41_000, 1),
        (2, &target, 43_500, 1),
        (3, &target, 49_900, 1),
        (0, &target, 44_000, 2),
        (2, &other, 8_800, 1),
    ];
    let mut receipts: Vec<(usize, SignedOffer, PublishReceipt)> = Vec::new();
    for (s, item, price, serial) in plan {
        let o = SignedOffer::sign(
            &sellers[s],
            item,
            price,
            Currency::EUR,
            1,
            env.now + 86_400,
            serial,
        );
        let r = publish_to(&honest, &env.trusted, &o, env.now)
            .map_err(|m| LabError::Failed(m.to_string()))?;
        receipts.push((s, o, r));
    }
    let honest_strategy = matches!(probe, Strategy::Honest);
    let cheater = CheatingNode::new(honest, probe, target.clone());
    cheater.prepare(env.now);
    let budget = Budget {
        max_entries: 30,
        ..Budget::default()
    };
    let mut result = retrieve_from(&cheater, &env.trusted, &target, budget);
    if matches!(cheater.strategy(), Strategy::ReplayAnswer) {
        result = retrieve_from(&cheater, &env.trusted, &target, budget);
    }
    let evidence_dir = env.dir.join("evidence");
    Ok(match result {
        Err(m) if honest_strategy => ("-".into(), format!("HONEST NODE ACCUSED: {m}"), false),
        Ok(o) if honest_strategy => {
            let best =
                cheapest(&o.current(env.now), Currency::EUR).map(|b| money(b.price, b.currency));
            (
                "(nobody)".into(),
                format!(
                    "honest: {} offers verified, cheapest {}",
                    o.offers().len(),
                    best.unwrap_or_default()
                ),
                o.faults().is_empty() && o.gaps() == 0,
            )
        }
        Err(m) => (
            "buyer".into(),
            describe(&m, &evidence_dir, cheater.strategy().name(), &env.trusted)?,
            true,
        ),
        Ok(o) if !o.faults().is_empty() => {
            let m = Misbehaviour::Evidence(Box::new(o.faults()[0].clone()));
            let text = describe(&m, &evidence_dir, cheater.strategy().name(), &env.trusted)?;
            (
                "buyer".into(),
                format!("{text}; the entry was skipped"),
                true,
            )
        }
        Ok(o) if o.gaps() > 0 => {
            let mut found = None;
            for s in 0..sellers.len() {
                let mine: Vec<(SignedOffer, PublishReceipt)> = receipts
                    .iter()
                    .filter(|(x, ..)| *x == s)
                    .map(|(_, o, r)| (o.clone(), r.clone()))
                    .collect();
                if let Err(m) = monitor(&cheater, &env.trusted, &target, &mine, Budget::default()) {
                    found = Some(m);
                    break;
                }
            }
            match found {
                Some(m) => (
                    "seller monitor".into(),
                    describe(&m, &evidence_dir, cheater.strategy().name(), &env.trusted)?,
                    true,
                ),
                None => (
                    "NOBODY".into(),
                    "gap over a receipt went unnoticed".into(),
                    false,
                ),
            }
        }
        Ok(_) => ("NOBODY".into(), "the cheat went unnoticed".into(), false),
    })
}

/// Describes a misbehaviour; transferable evidence is written to a file and verified with
/// nothing but the authority key, as a third party would.
fn describe(
    m: &Misbehaviour,
    dir: &Path,
    name: &str,
    trusted: &[PublicKey],
) -> Result<String, LabError> {
    let Misbehaviour::Evidence(e) = m else {
        return Ok(format!("{} ({m})", m.kind()));
    };
    let path = dir.join(format!("{name}.evidence"));
    files::write_atomic(&path, &e.to_bytes(), false)?;
    let verdict = match e.verify(trusted) {
        Ok(_) => "verified by a third party",
        Err(_) => "DOES NOT VERIFY",
    };
    Ok(format!(
        "{} — transferable evidence, {verdict} ({})",
        e.kind(),
        path.display()
    ))
}

fn equivocation_scenario(env: &mut Env) -> Result<(String, String, bool), LabError> {
    let key = Keypair::generate(&mut rand_core::OsRng);
    let mut device = EquivocatingDevice::new(PeerId::from_ed25519(&key.public()), 1);
    let cert = enrol(
        &env.authority,
        &mut env.registry,
        &key,
        &mut device,
        Scheme::Basic,
        1,
        env.now,
    )?;
    let item = Item::new(CATALOGUE[2].0).map_err(|e| LabError::Failed(e.to_string()))?;
    let (node, _) = ListingNode::open(device, ListingStore::in_memory()?, cert.clone())?;
    let alice = Keypair::generate(&mut rand_core::OsRng);
    let bob = Keypair::generate(&mut rand_core::OsRng);
    let fail = |m: Misbehaviour| LabError::Failed(m.to_string());
    let a = SignedOffer::sign(
        &alice,
        &item,
        150_000,
        Currency::EUR,
        1,
        env.now + 86_400,
        1,
    );
    let ra = publish_to(&node, &env.trusted, &a, env.now).map_err(fail)?;
    let (mut device, store) = node.into_parts();
    device.rewind(0);
    let (node, _) = ListingNode::open(device, store, cert)?;
    let b = SignedOffer::sign(&bob, &item, 155_000, Currency::EUR, 1, env.now + 86_400, 1);
    publish_to(&node, &env.trusted, &b, env.now).map_err(fail)?;
    Ok(
        match monitor(&node, &env.trusted, &item, &[(a, ra)], Budget::default()) {
            Err(m @ Misbehaviour::Evidence(_)) => (
                "seller monitor".into(),
                describe(
                    &m,
                    &env.dir.join("evidence"),
                    "equivocating-device",
                    &env.trusted,
                )?,
                true,
            ),
            Err(m) => (
                "seller monitor".into(),
                format!("{} (no evidence)", m.kind()),
                false,
            ),
            Ok(_) => ("NOBODY".into(), "equivocation went unnoticed".into(), false),
        },
    )
}

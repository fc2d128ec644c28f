//! `candor node`: the daemon every user runs. It opens its trusted device and store, joins the
//! overlay, serves as a listing node, and offers the local control API to its user.

use crate::error::{CliError, ConfigError};
use crate::wallet::Wallet;
use candor_core::{Keypair, PublicKey};
use candor_listing::ListingNode;
use candor_net::{
    identity, start, with_peer, ListingService, Market, Multiaddr, NetConfig, NetHandle, Service,
};
use candor_node::device::AnyDevice;
use candor_node::files::{self, NodeDir};
use candor_store::ListingStore;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Options of `candor node` (a config file gives the same keys; flags win).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The node's data folder (node key, device state, certificate, store, wallet).
    #[arg(long, default_value = "candor-data")]
    data: PathBuf,
    /// A TOML config file (default: DATA/node.toml if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A listen address, e.g. /ip4/0.0.0.0/tcp/4040 (repeatable; default /ip4/127.0.0.1/tcp/0).
    #[arg(long)]
    listen: Vec<String>,
    /// A bootstrap peer, `/ip4/…/tcp/…/p2p/<PeerId>` (repeatable).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// The control API's address (loopback; default 127.0.0.1:0, written to DATA/control.addr).
    #[arg(long)]
    control: Option<String>,
    /// |Δ(d)|: listing nodes per item.
    #[arg(long)]
    k: Option<usize>,
    /// An authority public key to trust (hex; repeatable; default: the one that certified this node).
    #[arg(long)]
    trust: Vec<String>,
    /// Publish to the closest listing node only (the paper's choice) instead of all of Δ(d).
    #[arg(long)]
    publish_to_one: bool,
    /// Seconds between the node's own checks of your receipted offers (jittered by a quarter
    /// either way; default 3600; 0 turns them off).
    #[arg(long)]
    monitor_every: Option<u64>,
    /// Print a sample `node.toml` with every key (the values this node would use) and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    control: Option<String>,
    k: Option<usize>,
    trust: Option<Vec<String>>,
    publish_to: Option<String>,
    monitor_every: Option<u64>,
}

/// What the control API's handlers share.
pub(crate) struct AppState {
    pub(crate) node: Arc<ListingNode<AnyDevice>>,
    pub(crate) market: Arc<Market<AnyDevice>>,
    pub(crate) net: NetHandle,
    pub(crate) wallet: Arc<Wallet>,
    pub(crate) seller: Keypair,
    pub(crate) token: String,
    pub(crate) trusted: Vec<PublicKey>,
    pub(crate) evidence: crate::evidence::EvidenceDir,
    /// What the node's own monitoring has done.
    pub(crate) watch: std::sync::Mutex<crate::watch::Watch>,
    /// Notified by `POST /v1/stop` (`candor stop`).
    pub(crate) stop: Arc<tokio::sync::Notify>,
    /// Held from choosing a new offer's serial (and, for a sale or withdrawal, reading the
    /// offer it changes) until the wallet keeps it: two changes never start from one offer
    /// nor share a serial.
    pub(crate) selling: std::sync::Mutex<()>,
}

/// A sample `node.toml`: every key, with what it does and the value this node would use.
fn sample_config(args: &Args, cfg: &FileConfig) -> String {
    let list = |v: &[String]| {
        let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", items.join(", "))
    };
    let or = |flag: &[String], file: &Option<Vec<String>>| {
        if flag.is_empty() {
            file.clone().unwrap_or_default()
        } else {
            flag.to_vec()
        }
    };
    let listen = or(&args.listen, &cfg.listen);
    format!(
        "# Candor node configuration (DATA/node.toml, or --config FILE). Flags win over it.\n\
         # Addresses to listen on: a list, even of one. Empty: the address kept from the first\n\
         # start (DATA/listen), else a free port on 127.0.0.1.\n\
         listen = {}\n\
         # Peers to join through, each ending in /p2p/<PeerId> (a list).\n\
         bootstrap = {}\n\
         # The control API's address (loopback).\n\
         control = {:?}\n\
         # Listing nodes per item, 1 to {}.\n\
         k = {}\n\
         # Authority public keys to trust (hex; a list). Empty: the one that certified this node.\n\
         trust = {}\n\
         # \"all\" listing nodes of an item, or \"one\" (the closest).\n\
         publish_to = {:?}\n\
         # Seconds between this node's own checks of your receipted offers (0: off).\n\
         monitor_every = {}\n",
        list(&listen),
        list(&or(&args.bootstrap, &cfg.bootstrap)),
        args.control
            .clone()
            .or(cfg.control.clone())
            .unwrap_or_else(|| "127.0.0.1:0".into()),
        crate::limits::MAX_K,
        args.k.or(cfg.k).unwrap_or(3),
        list(&or(&args.trust, &cfg.trust)),
        if args.publish_to_one {
            "one".to_string()
        } else {
            cfg.publish_to.clone().unwrap_or_else(|| "all".into())
        },
        args.monitor_every.or(cfg.monitor_every).unwrap_or(3600),
    )
}

pub(crate) fn run(args: Args) -> Result<(), CliError> {
    if args.print_config {
        let cfg = load_config(&args)?;
        print!("{}", sample_config(&args, &cfg));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            what: "starting the async runtime",
            source,
        })?;
    runtime.block_on(serve(args))
}

fn load_config(args: &Args) -> Result<FileConfig, CliError> {
    let path = match &args.config {
        Some(p) => Some(p.clone()),
        None => Some(args.data.join("node.toml")).filter(|p| p.exists()),
    };
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(source) => return Err(ConfigError::Read { path, source }.into()),
    };
    toml::from_str(&text).map_err(|e| {
        ConfigError::Parse {
            path,
            source: Box::new(e),
        }
        .into()
    })
}

fn parse_addrs(list: &[String]) -> Result<Vec<Multiaddr>, CliError> {
    list.iter()
        .map(|s| {
            s.parse().map_err(|source| {
                ConfigError::Address {
                    given: s.clone(),
                    source,
                }
                .into()
            })
        })
        .collect()
}

async fn serve(args: Args) -> Result<(), CliError> {
    let cfg = load_config(&args)?;
    let monitor_every =
        crate::limits::monitor_every(args.monitor_every.or(cfg.monitor_every).unwrap_or(3600))?;
    let k = crate::limits::k(args.k.or(cfg.k).unwrap_or(3))?;
    let publish_to_all =
        !args.publish_to_one && crate::limits::publish_to(cfg.publish_to.as_deref())?;
    let d = NodeDir(args.data.clone());
    let node_key = files::load_key(&d.node_key(), "run `candor device init` first")?;
    let cert = d.load_cert()?;
    let device = candor_node::device::open_device(&d.0, cert.cert.peer.clone())?;
    {
        use candor_device::TrustedDevice;
        let p = device.protection();
        if p.starts_with("NOTHING") {
            println!("WARNING: the trusted device protects {p}");
        }
    }
    let store = ListingStore::open(&d.store())?;
    let (node, report) = ListingNode::open(device, store, cert.clone())?;
    if !report.gaps.is_empty() || report.recovered > 0 {
        tracing::info!(?report, "reconciled after an unclean stop");
    }
    let node = Arc::new(node);
    let trust_hex = if args.trust.is_empty() {
        cfg.trust.clone().unwrap_or_default()
    } else {
        args.trust.clone()
    };
    let trusted: Vec<PublicKey> = if trust_hex.is_empty() {
        tracing::warn!("no --trust given: trusting only the authority that certified this node");
        vec![cert.cert.authority]
    } else {
        trust_hex
            .iter()
            .map(|h| PublicKey::from_hex(h).ok_or_else(|| ConfigError::TrustKey(h.clone())))
            .collect::<Result<_, _>>()?
    };
    // The node's own certificate must be by an authority it trusts: a node that would serve
    // a certificate its own users refuse is misconfigured.
    cert.verify(&trusted)
        .map_err(|source| ConfigError::Untrusted {
            path: d.cert(),
            source,
        })?;
    let peer_files = crate::peers::PeerFiles::of(&args.data);
    // Where to listen: the flag, the config, or the address kept from the first start (a
    // free port picked then), so peers that knew this node find it again.
    let configured = if !args.listen.is_empty() {
        Some(args.listen.clone())
    } else {
        cfg.listen.clone()
    };
    let kept = peer_files.kept_listen();
    let listen = match &configured {
        Some(l) => l.clone(),
        None if !kept.is_empty() => kept.clone(),
        None => vec!["/ip4/127.0.0.1/tcp/0".into()],
    };
    let bootstrap = parse_addrs(&if !args.bootstrap.is_empty() {
        args.bootstrap.clone()
    } else {
        cfg.bootstrap.clone().unwrap_or_default()
    })?;
    let mut join = bootstrap.clone();
    join.extend(peer_files.kept_peers());

    let config = NetConfig {
        listen: parse_addrs(&listen)?,
        bootstrap: join.clone(),
        k,
        trusted: trusted.clone(),
        ..NetConfig::default()
    };
    let service = Arc::new(ListingService::new(node.clone(), candor_net::system_clock));
    let key = identity(&node_key)?;
    let started = start(
        key.clone(),
        config.clone(),
        Some(service.clone() as Arc<dyn Service>),
    )
    .await;
    let (net, addrs) = match started {
        Ok(s) => s,
        // The kept port is taken now: pick a new one (peers learn it when this node dials).
        Err(e) if configured.is_none() && !kept.is_empty() => {
            tracing::warn!(%e, "the kept listen address is not free; picking a new port");
            let config = NetConfig {
                listen: parse_addrs(&["/ip4/127.0.0.1/tcp/0".to_string()])?,
                ..config
            };
            start(key, config, Some(service.clone() as Arc<dyn Service>)).await?
        }
        Err(e) => return Err(e.into()),
    };
    if configured.is_none() {
        peer_files.keep_listen(&addrs)?;
    }
    let full: Vec<String> = addrs
        .iter()
        .map(|a| with_peer(a, net.peer()).to_string())
        .collect();
    files::write_atomic(
        &args.data.join("node.addr"),
        (full.join("\n") + "\n").as_bytes(),
        false,
    )?;
    println!(
        "candor node {} (scheme {}, k = {k})",
        net.peer(),
        cert.cert.scheme
    );
    for a in &full {
        println!("listening on {a}");
    }
    if join.is_empty() {
        println!(
            "WARNING: no peers: this node knows nobody to join, so publishes and retrieves reach \
             only itself. Give it one: `candor connect ADDR` or `--bootstrap ADDR`."
        );
    } else {
        let net = net.clone();
        tokio::spawn(async move {
            for attempt in 0..5u64 {
                match net.bootstrap().await {
                    Ok(()) => {
                        tracing::info!("joined the overlay");
                        return;
                    }
                    Err(e) => tracing::warn!(%e, attempt, "bootstrap failed; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1 + attempt)).await;
            }
        });
    }
    tokio::spawn(keep_compacting(node.clone()));
    tokio::spawn(crate::peers::keep_joined(
        net.clone(),
        peer_files.clone(),
        bootstrap,
    ));
    let mut market = Market::new(
        net.clone(),
        Some(node.clone()),
        trusted.clone(),
        tokio::runtime::Handle::current(),
    );
    market.publish_to_all = publish_to_all;
    let seller_path = args.data.join("seller.key");
    let seller = if seller_path.exists() {
        files::load_key(&seller_path, "")?
    } else {
        files::new_key(&seller_path)?
    };
    let wallet = Arc::new(Wallet::open(&args.data.join("wallet.redb"))?);
    market.memory = wallet.clone();
    let mut token = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut token);
    let token = hex::encode(token);
    let stop = Arc::new(tokio::sync::Notify::new());
    let state = Arc::new(AppState {
        stop: stop.clone(),
        node: node.clone(),
        market: Arc::new(market),
        net: net.clone(),
        wallet,
        seller,
        token: token.clone(),
        trusted,
        evidence: crate::evidence::EvidenceDir::of(&args.data),
        watch: std::sync::Mutex::new(crate::watch::Watch {
            every: monitor_every,
            ..Default::default()
        }),
        selling: std::sync::Mutex::new(()),
    });
    if monitor_every > 0 {
        tokio::spawn(crate::watch::keep_watch(
            state.clone(),
            Duration::from_secs(monitor_every),
        ));
    }
    let control = args
        .control
        .clone()
        .or(cfg.control.clone())
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&control)
        .await
        .map_err(|source| ConfigError::Control {
            addr: control.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| ConfigError::Control {
            addr: control.clone(),
            source,
        })?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "the control API listens beyond loopback; only the token protects it");
    }
    files::write_atomic(&args.data.join("control.token"), token.as_bytes(), true)?;
    // Which process holds this data folder (`candor stop` waits for it to end).
    files::write_atomic(
        &args.data.join("node.pid"),
        format!("{}\n", std::process::id()).as_bytes(),
        false,
    )?;
    files::write_atomic(
        &args.data.join("control.addr"),
        local.to_string().as_bytes(),
        false,
    )?;
    println!(
        "control API on http://{local} (token in {})",
        args.data.join("control.token").display()
    );
    let app = crate::routes::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown_signal() => {},
                _ = stop.notified() => {},
            }
        })
        .await
        .map_err(|source| CliError::Io {
            what: "serving the control API",
            source,
        })?;
    println!("shutting down: finishing queued publishes");
    net.shutdown();
    drop(state);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The committer drains its queue when the last reference goes; the store then closes.
    drop(service);
    // Clients that find no control address know the node is not running.
    for f in ["control.addr", "control.token", "node.pid"] {
        let _ = std::fs::remove_file(args.data.join(f));
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// How often a scheme B/C node deletes what lies before its windows (DESIGN.md §9).
const COMPACT_EVERY: Duration = Duration::from_secs(3_600);

/// Deletes the entries before each counter's window, ten minutes after start (a retrieve that
/// began before a restart finds its window: the boundaries heads served are held in memory)
/// and then every [`COMPACT_EVERY`] (on a blocking thread: it is store work). A failure is
/// logged and tried again next time: the entries stay, nothing is lost.
async fn keep_compacting<D>(node: Arc<candor_listing::ListingNode<D>>)
where
    D: candor_device::TrustedDevice + Send + Sync + 'static,
{
    tokio::time::sleep(Duration::from_secs(600)).await;
    loop {
        let n = node.clone();
        match tokio::task::spawn_blocking(move || n.compact()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(%e, "could not delete the entries before the window"),
            Err(e) => tracing::warn!(%e, "the compaction task failed"),
        }
        tokio::time::sleep(COMPACT_EVERY).await;
    }
}

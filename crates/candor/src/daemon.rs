//! `candor node`: the daemon every user runs. It opens its trusted device and store, joins the
//! overlay, serves as a listing node, and offers the local control API to its user.

use crate::api;
use crate::device::AnyDevice;
use crate::files::{self, NodeDir};
use crate::wallet::{Entry, Wallet};
use crate::{now, CliError};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use candor_core::{Currency, Item, Keypair, PublicKey, SignedOffer};
use candor_listing::AnyReceipt;
use candor_listing::ListingNode;
use candor_net::{
    identity, start, to_candor_peer, to_libp2p_peer, with_peer, ListingService, Market, Multiaddr,
    NetConfig, NetHandle, NodeReport, Service,
};
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
}

struct AppState {
    node: Arc<ListingNode<AnyDevice>>,
    market: Arc<Market<AnyDevice>>,
    net: NetHandle,
    wallet: Arc<Wallet>,
    seller: Keypair,
    token: String,
    trusted: Vec<PublicKey>,
}

type Shared = Arc<AppState>;

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

pub(crate) fn run(args: Args) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(fail)?;
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
    let text =
        std::fs::read_to_string(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| fail(format!("{}: {e}", path.display())))
}

fn parse_addrs(list: &[String]) -> Result<Vec<Multiaddr>, CliError> {
    list.iter()
        .map(|s| s.parse().map_err(|e| fail(format!("address {s:?}: {e}"))))
        .collect()
}

async fn serve(args: Args) -> Result<(), CliError> {
    let cfg = load_config(&args)?;
    let d = NodeDir(args.data.clone());
    let node_key = files::load_key(&d.node_key(), "run `candor device init` first")?;
    let cert = d.load_cert()?;
    let device = crate::device::open_device(&d.0, cert.cert.peer.clone())?;
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
            .map(|h| {
                PublicKey::from_hex(h)
                    .ok_or_else(|| fail(format!("--trust {h:?} is not a 64-hex-digit key")))
            })
            .collect::<Result<_, _>>()?
    };
    // The node's own certificate must be by an authority it trusts: a node that would serve
    // a certificate its own users refuse is misconfigured.
    cert.verify(&trusted).map_err(|e| {
        fail(format!(
            "this node's certificate ({}) does not verify against the trusted authorities: {e}",
            d.cert().display()
        ))
    })?;
    let listen = if !args.listen.is_empty() {
        args.listen.clone()
    } else {
        cfg.listen
            .clone()
            .unwrap_or_else(|| vec!["/ip4/127.0.0.1/tcp/0".into()])
    };
    let bootstrap = if !args.bootstrap.is_empty() {
        args.bootstrap.clone()
    } else {
        cfg.bootstrap.clone().unwrap_or_default()
    };
    let k = args.k.or(cfg.k).unwrap_or(3);
    let config = NetConfig {
        listen: parse_addrs(&listen)?,
        bootstrap: parse_addrs(&bootstrap)?,
        k,
        trusted: trusted.clone(),
        ..NetConfig::default()
    };
    let service = Arc::new(ListingService::new(node.clone(), candor_net::system_clock));
    let (net, addrs) = start(
        identity(&node_key).map_err(fail)?,
        config,
        Some(service.clone() as Arc<dyn Service>),
    )
    .await
    .map_err(fail)?;
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
    if !bootstrap.is_empty() {
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
    let mut market = Market::new(
        net.clone(),
        Some(node.clone()),
        trusted.clone(),
        tokio::runtime::Handle::current(),
    );
    market.publish_to_all = !(args.publish_to_one || cfg.publish_to.as_deref() == Some("one"));
    let seller_path = args.data.join("seller.key");
    let seller = if seller_path.exists() {
        files::load_key(&seller_path, "")?
    } else {
        files::new_key(&seller_path)?
    };
    let wallet = Arc::new(Wallet::open(&args.data.join("wallet.redb")).map_err(fail)?);
    market.memory = wallet.clone();
    let mut token = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut token);
    let token = hex::encode(token);
    let state = Arc::new(AppState {
        node: node.clone(),
        market: Arc::new(market),
        net: net.clone(),
        wallet,
        seller,
        token: token.clone(),
        trusted,
    });
    let control = args
        .control
        .clone()
        .or(cfg.control.clone())
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&control)
        .await
        .map_err(|e| fail(format!("control API on {control}: {e}")))?;
    let local = listener.local_addr().map_err(fail)?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "the control API listens beyond loopback; only the token protects it");
    }
    files::write_atomic(&args.data.join("control.token"), token.as_bytes(), true)?;
    files::write_atomic(
        &args.data.join("control.addr"),
        local.to_string().as_bytes(),
        false,
    )?;
    println!(
        "control API on http://{local} (token in {})",
        args.data.join("control.token").display()
    );
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/offers", post(publish).get(my_offers))
        .route("/v1/retrieve", get(retrieve))
        .route("/v1/monitor", post(monitor))
        .with_state(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(fail)?;
    println!("shutting down: finishing queued publishes");
    net.shutdown();
    drop(state);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The committer drains its queue when the last reference goes; the store then closes.
    drop(service);
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

type ApiResult<T> = Result<Json<T>, (StatusCode, Json<api::ApiError>)>;

fn err(code: StatusCode, e: impl std::fmt::Display) -> (StatusCode, Json<api::ApiError>) {
    (
        code,
        Json(api::ApiError {
            error: e.to_string(),
        }),
    )
}

fn check_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, Json<api::ApiError>)> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time comparison of equal-length tokens.
    let ok = given.len() == state.token.len()
        && given
            .bytes()
            .zip(state.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (see DATA/control.token)",
        ))
    }
}

async fn status(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<api::Status> {
    check_token(&s, &headers)?;
    let st = s
        .net
        .status()
        .await
        .map_err(|e| err(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let cert = s.node.certificate();
    let mut entries = 0;
    for c in &cert.cert.counters {
        if let Ok(Some((initial, head))) = s.node.store().heads(c.id) {
            entries += head - initial;
        }
    }
    Ok(Json(api::Status {
        peer: st.peer.to_string(),
        listen: st
            .listen
            .iter()
            .map(|a| with_peer(a, st.peer).to_string())
            .collect(),
        connected: st.connected,
        routing_table: st.routing_table,
        k: s.net.k(),
        scheme: cert.cert.scheme.to_string(),
        counters: cert.cert.counters.len(),
        entries,
        device: cert.cert.device.backend().to_string(),
        trusted_authorities: s.trusted.iter().map(|k| k.to_hex()).collect(),
    }))
}

fn result_view(
    peer: &candor_net::PeerId,
    r: &Result<AnyReceipt, candor_core::Misbehaviour>,
) -> api::PublishResult {
    match r {
        Ok(rc) => api::PublishResult {
            peer: peer.to_string(),
            status: "receipt".into(),
            counter: Some(rc.value().0),
            value: Some(rc.value().1),
            detail: match rc {
                AnyReceipt::Counted(_) => "receipt checked".into(),
                AnyReceipt::Stepped(_, p) => {
                    format!("whole step checked; index {} in the item's list", p.index)
                }
            },
        },
        Err(m) => api::PublishResult {
            peer: peer.to_string(),
            status: m.kind().into(),
            counter: None,
            value: None,
            detail: m.to_string(),
        },
    }
}

async fn publish(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<api::NewOffer>,
) -> ApiResult<api::PublishAnswer> {
    check_token(&s, &headers)?;
    let item = Item::new(&req.item).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let currency = Currency::new(&req.currency).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let state = s.clone();
    let answer = tokio::task::spawn_blocking(
        move || -> Result<api::PublishAnswer, (StatusCode, Json<api::ApiError>)> {
            let serial = state
                .wallet
                .next_serial(&item.key())
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            let t = now();
            let offer = SignedOffer::sign(
                &state.seller,
                &item,
                req.price,
                currency,
                req.quantity,
                t.saturating_add(req.expires_in),
                serial,
            );
            let report = state
                .market
                .publish(&offer, t)
                .map_err(|e| err(StatusCode::BAD_GATEWAY, e))?;
            let receipts = report
                .results
                .iter()
                .filter_map(|(p, r)| r.as_ref().ok().map(|rc| (to_candor_peer(p), rc.clone())))
                .collect();
            state
                .wallet
                .add(&Entry { offer, receipts })
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            Ok(api::PublishAnswer {
                item: item.description().to_string(),
                item_key: item.key().to_string(),
                serial,
                listing_nodes: report
                    .results
                    .iter()
                    .map(|(p, r)| result_view(p, r))
                    .collect(),
            })
        },
    )
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))??;
    Ok(Json(answer))
}

async fn my_offers(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<api::MyOffers> {
    check_token(&s, &headers)?;
    let list = s
        .wallet
        .list()
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(api::MyOffers {
        seller: s.seller.public().to_hex(),
        offers: list
            .into_iter()
            .map(|e| api::MyOffer {
                item: e.offer.offer.description.clone(),
                price: e.offer.offer.price,
                currency: e.offer.offer.currency.to_string(),
                quantity: e.offer.offer.quantity,
                serial: e.offer.offer.serial,
                expiry: e.offer.offer.expiry,
                receipts: e
                    .receipts
                    .iter()
                    .map(|(p, r)| api::PublishResult {
                        peer: to_libp2p_peer(p)
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| p.to_string()),
                        status: "receipt".into(),
                        counter: Some(r.value().0),
                        value: Some(r.value().1),
                        detail: String::new(),
                    })
                    .collect(),
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
struct ItemQuery {
    item: String,
}

fn node_answer(peer: &candor_net::PeerId, r: &NodeReport) -> api::NodeAnswer {
    let (kind, detail, t, offers, gaps, bytes) = match r {
        NodeReport::Verified(o) => (
            None,
            "every check passed".to_string(),
            Some(o.t()),
            o.offers().len(),
            o.gaps(),
            o.bytes(),
        ),
        NodeReport::Misbehaviour(m) => (Some(m.kind().to_string()), m.to_string(), None, 0, 0, 0),
        NodeReport::OverBudget(k) => (
            Some("over-budget".into()),
            format!("over budget ({k:?})"),
            None,
            0,
            0,
            0,
        ),
        NodeReport::Unreachable(why) => (None, why.clone(), None, 0, 0, 0),
    };
    let residence = match r {
        NodeReport::Verified(o) => Some(o.cert().cert.residence),
        _ => None,
    };
    api::NodeAnswer {
        peer: peer.to_string(),
        status: r.status().into(),
        kind,
        detail,
        t,
        offers,
        gaps,
        bytes,
        device: residence.map(|r| r.to_string()),
        development_only: residence.map(|r| r.is_development_only()),
    }
}

fn retrieve_answer(report: &candor_net::RetrieveReport) -> api::RetrieveAnswer {
    api::RetrieveAnswer {
        item: report.item.description().to_string(),
        item_key: report.item.key().to_string(),
        listing_nodes: report
            .reports
            .iter()
            .map(|(p, r)| node_answer(p, r))
            .collect(),
        offers: report
            .offers
            .iter()
            .map(|o| api::OfferView {
                seller: o.seller.to_hex(),
                price: o.price,
                currency: o.currency.to_string(),
                quantity: o.quantity,
                expiry: o.expiry,
                serial: o.serial,
            })
            .collect(),
    }
}

async fn retrieve(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ItemQuery>,
) -> ApiResult<api::RetrieveAnswer> {
    check_token(&s, &headers)?;
    let item = Item::new(&q.item).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let market = s.market.clone();
    let report = tokio::task::spawn_blocking(move || market.retrieve(&item, now()))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| err(StatusCode::BAD_GATEWAY, e))?;
    Ok(Json(retrieve_answer(&report)))
}

async fn monitor(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<api::MonitorRequest>,
) -> ApiResult<api::RetrieveAnswer> {
    check_token(&s, &headers)?;
    let item = Item::new(&req.item).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let state = s.clone();
    let answer = tokio::task::spawn_blocking(
        move || -> Result<api::RetrieveAnswer, (StatusCode, Json<api::ApiError>)> {
            let list = state
                .wallet
                .list()
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            let mut by_peer: std::collections::BTreeMap<Vec<u8>, Vec<(SignedOffer, AnyReceipt)>> =
                Default::default();
            for e in list.iter().filter(|e| e.offer.offer.key == item.key()) {
                for (p, r) in &e.receipts {
                    by_peer
                        .entry(p.as_bytes().to_vec())
                        .or_default()
                        .push((e.offer.clone(), r.clone()));
                }
            }
            let mut reports = Vec::new();
            for (p, receipts) in by_peer {
                let Ok(peer) = candor_net::PeerId::from_bytes(&p) else {
                    continue;
                };
                reports.push((peer, state.market.monitor(peer, &item, &receipts)));
            }
            Ok(retrieve_answer(&candor_net::RetrieveReport {
                item: item.clone(),
                listing_nodes: reports.iter().map(|(p, _)| *p).collect(),
                reports,
                offers: Vec::new(),
            }))
        },
    )
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))??;
    Ok(Json(answer))
}

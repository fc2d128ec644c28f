//! The control API's routes (HTTP/JSON on loopback, bearer token): what `candor status`,
//! `publish`, `offers`, `retrieve`, `monitor`, `peers`, `connect` and `evidence` ask the
//! running node. The messages are in `api.rs`.

use crate::api;
use crate::daemon::AppState;
use crate::wallet::Entry;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use candor_core::{Currency, Item, SignedOffer};
use candor_listing::PublishReceipt;
use candor_net::system_clock as now;
use candor_net::{to_candor_peer, to_libp2p_peer, with_peer, NodeReport};
use serde::Deserialize;
use std::sync::Arc;

type Shared = Arc<AppState>;

/// The API's routes.
pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/offers", post(publish).get(my_offers))
        .route("/v1/offers/withdraw", post(withdraw))
        .route("/v1/offers/sell", post(sell))
        .route("/v1/retrieve", get(retrieve))
        .route("/v1/monitor", post(monitor))
        .route("/v1/peers", get(peers).post(connect))
        .route("/v1/device", get(device))
        .route("/v1/stop", post(stop))
        .with_state(state)
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
        monitoring: s.watch.lock().map(|w| w.clone()).unwrap_or_default(),
    }))
}

/// One node's part in a publish for the API; evidence its receipt check produced is kept.
fn result_view(
    evidence: &crate::evidence::EvidenceDir,
    trusted: &[candor_core::PublicKey],
    peer: &candor_net::PeerId,
    r: &Result<PublishReceipt, candor_core::Misbehaviour>,
) -> api::PublishResult {
    match r {
        Ok(rc) => api::PublishResult {
            peer: peer.to_string(),
            status: "receipt".into(),
            counter: Some(rc.value().0),
            value: Some(rc.value().1),
            detail: match rc {
                PublishReceipt::Entry(_) => "receipt checked".into(),
                PublishReceipt::Step(_, _) => {
                    "whole step checked; the offer is in the item's list".into()
                }
            },
            evidence: None,
        },
        Err(m) => api::PublishResult {
            peer: peer.to_string(),
            status: m.kind().to_string(),
            counter: None,
            value: None,
            detail: m.to_string(),
            evidence: keep_evidence(evidence, trusted, m),
        },
    }
}

/// Keeps the evidence a check produced, if any; its id.
fn keep_evidence(
    evidence: &crate::evidence::EvidenceDir,
    trusted: &[candor_core::PublicKey],
    m: &candor_core::Misbehaviour,
) -> Option<String> {
    let candor_core::Misbehaviour::Evidence(e) = m else {
        return None;
    };
    match evidence.keep(e, trusted) {
        Ok(id) => id,
        Err(err) => {
            tracing::error!(%err, "cannot keep evidence");
            None
        }
    }
}

async fn publish(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<api::NewOffer>,
) -> ApiResult<api::PublishAnswer> {
    check_token(&s, &headers)?;
    let item = Item::new(&req.item).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    // Checked before anything is signed or kept: a refused publish leaves no trace.
    let code =
        crate::limits::currency(&req.currency).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let currency = Currency::new(&code).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    // The marketplace's time rules, as this node's certificate states them (one authority
    // certifies every node): a listing node refuses an offer that outlives L_max − 2·skew.
    let rules = s.node.certificate().cert.time;
    let expires_in = req.expires_in.unwrap_or(rules.default_lifetime());
    let max = rules.max_lifetime();
    if !(3600..=max).contains(&expires_in) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!(
                "expires_in = {expires_in} s: an offer lives from an hour to {max} s ({:.1} days: the certificate's L_max less twice its clock skew)",
                max as f64 / 86_400.0
            ),
        ));
    }
    let expiry = now().saturating_add(expires_in);
    let state = s.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let _selling = state.selling.lock().unwrap_or_else(|p| p.into_inner());
        let held = state
            .wallet
            .list()
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .iter()
            .any(|e| e.offer.offer.key == item.key());
        // A fresh or restored wallet first reads what the item's listing nodes show.
        let listed = if held {
            0
        } else {
            listed_offers(&state, &item)
                .iter()
                .map(|o| o.offer.serial)
                .max()
                .unwrap_or(0)
        };
        sign_and_publish(
            &state,
            &item,
            req.price,
            currency,
            req.quantity,
            expiry,
            listed,
        )
    })
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))??;
    Ok(Json(answer))
}

type RouteError = (StatusCode, Json<api::ApiError>);

/// This machine's clock in unix milliseconds.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// This seller's offers for `item` that the item's listing nodes show (each verified answer's,
/// superseded ones included); none if the retrieve fails (logged: the serial then rests on the
/// wallet and the clock).
fn listed_offers(state: &crate::daemon::AppState, item: &Item) -> Vec<SignedOffer> {
    let mine = state.seller.public();
    match state.market.retrieve(item, now()) {
        Ok(report) => report
            .reports
            .iter()
            .filter_map(|(_, r)| match r {
                candor_net::NodeReport::Verified(o) => Some(o.offers()),
                _ => None,
            })
            .flatten()
            .filter(|o| o.offer.seller == mine)
            .cloned()
            .collect(),
        Err(e) => {
            tracing::warn!(%e, "could not read this seller's offers the listing nodes show");
            Vec::new()
        }
    }
}

/// The serial of this seller's next offer for `item` (DESIGN.md §9): above every serial the
/// wallet used for it and above `listed` (the highest the item's listing nodes show, read by
/// a fresh wallet or before a change), and at least the clock in milliseconds. So a seller
/// never signs two offers under one serial, which buyers drop as equivocation. Called with
/// `selling` held.
fn new_serial(
    state: &crate::daemon::AppState,
    item: &Item,
    listed: u64,
) -> Result<u64, RouteError> {
    let wallet_next = state
        .wallet
        .next_serial(&item.key())
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(wallet_next.max(unix_ms()).max(listed.saturating_add(1)))
}

/// Signs an offer of this node's seller with a fresh serial (above `listed`), publishes it to
/// the item's listing nodes, and keeps it with every receipt that verified — or not at all if
/// none did: an offer no listing node counted is no offer, and a retry starts from the last
/// one that was. Called with `selling` held.
fn sign_and_publish(
    state: &crate::daemon::AppState,
    item: &Item,
    price: u64,
    currency: Currency,
    quantity: u32,
    expiry: u64,
    listed: u64,
) -> Result<api::PublishAnswer, RouteError> {
    let t = now();
    let serial = new_serial(state, item, listed)?;
    let offer = SignedOffer::sign(
        &state.seller,
        item,
        price,
        currency,
        quantity,
        expiry,
        serial,
    );
    let report = state
        .market
        .publish(&offer, t)
        .map_err(|e| err(StatusCode::BAD_GATEWAY, e))?;
    // Every receipt that verified is kept and monitored, also one refused for a clock
    // disagreement: the node's device counted the offer.
    let receipts: Vec<_> = report
        .kept
        .iter()
        .map(|(p, rc)| (to_candor_peer(p), rc.clone()))
        .collect();
    if !receipts.is_empty() {
        state
            .wallet
            .add(&Entry { offer, receipts })
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    }
    Ok(api::PublishAnswer {
        item: item.description().to_string(),
        item_key: item.key().to_string(),
        serial,
        k: state.net.k(),
        listing_nodes: report
            .results
            .iter()
            .map(|(p, r)| result_view(&state.evidence, &state.trusted, p, r))
            .collect(),
    })
}

/// Withdraws (`sold` = None) or sells `sold` units of this seller's current offer for an
/// item: a new offer under a higher serial that supersedes it, quantity 0 or lowered, its
/// price, currency and expiry unchanged (DESIGN.md §9: a withdrawal or a sale is a
/// supersession).
async fn change_offer(
    s: Shared,
    item: &str,
    sold: Option<u32>,
) -> Result<api::PublishAnswer, RouteError> {
    let item = Item::new(item).map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let state = s.clone();
    tokio::task::spawn_blocking(move || {
        let _selling = state.selling.lock().unwrap_or_else(|p| p.into_inner());
        // The newest of this seller's offers for the item, in this wallet or as the listing
        // nodes show it (another machine's, a wallet restored from a backup).
        let listed = listed_offers(&state, &item);
        let newest = state
            .wallet
            .list()
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .into_iter()
            .map(|e| e.offer)
            .filter(|o| o.offer.key == item.key())
            .chain(listed)
            .max_by_key(|o| o.offer.serial)
            .ok_or_else(|| {
                err(
                    StatusCode::NOT_FOUND,
                    format!(
                        "you have no offer for {:?} (in this wallet or at its listing nodes)",
                        item.description()
                    ),
                )
            })?;
        let floor = newest.offer.serial;
        let o = &newest.offer;
        let t = now();
        if o.expiry <= t {
            return Err(err(
                StatusCode::CONFLICT,
                format!(
                    "your offer for {:?} has expired already: nothing to change",
                    item.description()
                ),
            ));
        }
        if o.quantity == 0 {
            return Err(err(
                StatusCode::CONFLICT,
                format!(
                    "your offer for {:?} is withdrawn already",
                    item.description()
                ),
            ));
        }
        let quantity = match sold {
            None => 0,
            Some(0) => return Err(err(StatusCode::BAD_REQUEST, "sold must be at least 1")),
            Some(n) => o.quantity.saturating_sub(n),
        };
        sign_and_publish(
            &state, &item, o.price, o.currency, quantity, o.expiry, floor,
        )
    })
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?
}

async fn withdraw(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<api::Withdraw>,
) -> ApiResult<api::PublishAnswer> {
    check_token(&s, &headers)?;
    Ok(Json(change_offer(s, &req.item, None).await?))
}

async fn sell(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<api::Sell>,
) -> ApiResult<api::PublishAnswer> {
    check_token(&s, &headers)?;
    Ok(Json(change_offer(s, &req.item, Some(req.sold)).await?))
}

async fn my_offers(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<api::MyOffers> {
    check_token(&s, &headers)?;
    let list = s
        .wallet
        .list()
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let t = now();
    // The newest serial per item: an older offer of the same item is superseded by it.
    let mut newest: std::collections::HashMap<candor_core::ItemKey, u64> = Default::default();
    for e in &list {
        let n = newest.entry(e.offer.offer.key).or_insert(0);
        *n = (*n).max(e.offer.offer.serial);
    }
    Ok(Json(api::MyOffers {
        seller: s.seller.public().to_hex(),
        offers: list
            .into_iter()
            .map(|e| api::MyOffer {
                state: offer_state(&e.offer.offer, newest.get(&e.offer.offer.key), t).into(),
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
                        evidence: None,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// What an offer of mine is now: `superseded` by a newer one of the same item, `expired`,
/// `withdrawn` (quantity 0: the offer that withdraws the item), or `current`.
fn offer_state(o: &candor_core::Offer, newest: Option<&u64>, now: u64) -> &'static str {
    if newest.is_some_and(|n| *n > o.serial) {
        "superseded"
    } else if o.expiry <= now {
        "expired"
    } else if o.quantity == 0 {
        "withdrawn"
    } else {
        "current"
    }
}

#[derive(Deserialize)]
struct ItemQuery {
    item: String,
}

/// One node's verdict for the API; evidence it produced is kept in the data folder first, and
/// the answer names it.
fn node_answer(
    evidence: &crate::evidence::EvidenceDir,
    trusted: &[candor_core::PublicKey],
    peer: &candor_net::PeerId,
    r: &NodeReport,
) -> api::NodeAnswer {
    let kept = match r {
        NodeReport::Misbehaviour(m) => keep_evidence(evidence, trusted, m),
        _ => None,
    };
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
        evidence: kept,
    }
}

fn retrieve_answer(
    evidence: &crate::evidence::EvidenceDir,
    trusted: &[candor_core::PublicKey],
    k: usize,
    report: &candor_net::RetrieveReport,
) -> api::RetrieveAnswer {
    api::RetrieveAnswer {
        item: report.item.description().to_string(),
        item_key: report.item.key().to_string(),
        k,
        listing_nodes: report
            .reports
            .iter()
            .map(|(p, r)| node_answer(evidence, trusted, p, r))
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
    Ok(Json(retrieve_answer(
        &s.evidence,
        &s.trusted,
        s.net.k(),
        &report,
    )))
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
            monitor_item(&state, &item, now())
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))
        },
    )
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))??;
    Ok(Json(answer))
}

/// Checks the live receipted offers of `item` at each listing node that gave a receipt (its
/// own reader per node), keeps any evidence, and says how each node answered. A monitor
/// checks the nodes that gave receipts: all of them must verify, so `k` is their number.
pub(crate) fn monitor_item(
    state: &AppState,
    item: &Item,
    now: u64,
) -> Result<api::RetrieveAnswer, crate::wallet::WalletError> {
    let list = state.wallet.list()?;
    let mut by_peer: std::collections::BTreeMap<Vec<u8>, Vec<(SignedOffer, PublishReceipt)>> =
        Default::default();
    for e in list
        .iter()
        .filter(|e| e.offer.offer.key == item.key() && e.offer.offer.expiry > now)
    {
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
        reports.push((peer, state.market.monitor(peer, item, &receipts)));
    }
    let k = reports.len();
    Ok(retrieve_answer(
        &state.evidence,
        &state.trusted,
        k,
        &candor_net::RetrieveReport {
            item: item.clone(),
            listing_nodes: reports.iter().map(|(p, _)| *p).collect(),
            reports,
            offers: Vec::new(),
        },
    ))
}

/// `GET /v1/peers`: the peers in the routing table (every one certified).
async fn peers(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<api::Peers> {
    check_token(&s, &headers)?;
    let list = s
        .net
        .peers()
        .await
        .map_err(|e| err(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Json(api::Peers {
        peers: list
            .into_iter()
            .map(|p| api::PeerView {
                peer: p.peer.to_string(),
                addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
                connected: p.connected,
            })
            .collect(),
    }))
}

/// `POST /v1/peers`: dial an address; the peer counts once its certificate verifies.
async fn connect(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<api::Connect>,
) -> ApiResult<api::Connected> {
    check_token(&s, &headers)?;
    let addr: candor_net::Multiaddr = req.addr.parse().map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not an address: {e}", req.addr),
        )
    })?;
    s.net
        .dial(addr.clone())
        .await
        .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    // Give the connection and the certificate exchange a moment, then join through it.
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let peers = s.net.peers().await.unwrap_or_default();
        if let Some(p) = peers
            .iter()
            .find(|p| addr.iter().any(|c| c == candor_net::Protocol::P2p(p.peer)))
        {
            let _ = s.net.bootstrap().await;
            return Ok(Json(api::Connected {
                peer: p.peer.to_string(),
                certified: true,
            }));
        }
    }
    Err(err(
        StatusCode::BAD_GATEWAY,
        format!("{addr} did not show a certificate this node trusts within 5 s"),
    ))
}

/// `GET /v1/device`: the device as the running node holds it.
async fn device(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<api::DeviceView> {
    check_token(&s, &headers)?;
    let state = s.clone();
    let view = tokio::task::spawn_blocking(move || {
        use candor_device::TrustedDevice;
        let cert = state.node.certificate().clone();
        state.node.with_device(|d| api::DeviceView {
            peer: candor_net::to_libp2p_peer(d.peer())
                .map(|p| p.to_string())
                .unwrap_or_else(|| d.peer().to_string()),
            device_key: d.device_key().to_string(),
            protection: d.protection().to_string(),
            counters: d
                .counters()
                .into_iter()
                .take(8)
                .filter_map(|c| d.value(c).ok().map(|v| (c, v)))
                .collect(),
            certificate: format!(
                "valid (signed by the authority it names); serial {} by authority {}, scheme {}, id {}",
                cert.cert.serial,
                cert.cert.authority,
                cert.cert.scheme,
                cert.id()
            ),
            residence: cert.cert.residence.to_string(),
        })
    })
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(view))
}

/// `POST /v1/stop`: stops the node as SIGTERM does (queued publishes are committed first).
async fn stop(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<api::Stopping> {
    check_token(&s, &headers)?;
    s.stop.notify_one();
    Ok(Json(api::Stopping { stopping: true }))
}

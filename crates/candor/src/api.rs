//! The local control API's JSON messages (HTTP on loopback, bearer token). The same API will
//! serve a web page; the command line's client commands use it.
//!
//! | method and path | body / query | answer |
//! |---|---|---|
//! | `GET /v1/status` | – | [`Status`] |
//! | `POST /v1/offers` | [`NewOffer`] | [`PublishAnswer`] |
//! | `GET /v1/offers` | – | [`MyOffers`] |
//! | `GET /v1/retrieve?item=…` | – | [`RetrieveAnswer`] |
//! | `POST /v1/monitor` | [`MonitorRequest`] | [`RetrieveAnswer`] (each node checked against your receipts) |
//! | `GET /v1/peers` | – | [`Peers`] |
//! | `GET /v1/device` | – | [`DeviceView`] |
//! | `POST /v1/stop` | – | [`Stopping`] (the node stops as on SIGTERM) |
//! | `POST /v1/peers` | [`Connect`] | [`Connected`] |
//!
//! Errors are `{"error": "..."}` with a 4xx/5xx status.

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Status {
    pub(crate) peer: String,
    pub(crate) listen: Vec<String>,
    pub(crate) connected: usize,
    pub(crate) routing_table: usize,
    pub(crate) k: usize,
    pub(crate) scheme: String,
    pub(crate) counters: usize,
    pub(crate) entries: u64,
    pub(crate) device: String,
    pub(crate) trusted_authorities: Vec<String>,
    /// The node's own monitoring of your receipted offers.
    pub(crate) monitoring: crate::watch::Watch,
}

/// `POST /v1/offers`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NewOffer {
    /// The item description (any form; it is canonicalised).
    pub(crate) item: String,
    /// Price in minor units (cents).
    pub(crate) price: u64,
    /// ISO 4217 code.
    pub(crate) currency: String,
    #[serde(default = "one")]
    pub(crate) quantity: u32,
    /// Seconds until it expires; left out: the certificate's default lifetime (L_max −
    /// 4·skew, DESIGN.md §9).
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

fn one() -> u32 {
    1
}

/// A withdrawal: the seller's current offer for the item, superseded by one of quantity 0.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Withdraw {
    /// The item description (any form; it is canonicalised).
    pub(crate) item: String,
}

/// A sale outside the marketplace's buying flow: the seller's current offer for the item,
/// superseded by one with `sold` fewer units (0 left withdraws it).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Sell {
    /// The item description (any form; it is canonicalised).
    pub(crate) item: String,
    /// Units sold.
    pub(crate) sold: u32,
}

/// One listing node's part in a publish.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PublishResult {
    pub(crate) peer: String,
    /// `receipt` (checked), or the misbehaviour's kind (`refused`, `unreachable`, …).
    pub(crate) status: String,
    pub(crate) counter: Option<u32>,
    pub(crate) value: Option<u64>,
    pub(crate) detail: String,
    /// The id of the evidence the receipt check produced (`candor evidence show ID`).
    #[serde(default)]
    pub(crate) evidence: Option<String>,
}

/// The answer to a publish.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PublishAnswer {
    pub(crate) item: String,
    pub(crate) item_key: String,
    pub(crate) serial: u64,
    /// |Δ(d)| the node aims for: fewer receipts than this is a partial publish.
    pub(crate) k: usize,
    pub(crate) listing_nodes: Vec<PublishResult>,
}

/// One of my offers with its receipts.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MyOffer {
    /// `current`, `superseded` (a newer offer of the item replaced it), `expired` or
    /// `withdrawn` (quantity 0).
    pub(crate) state: String,
    pub(crate) item: String,
    pub(crate) price: u64,
    pub(crate) currency: String,
    pub(crate) quantity: u32,
    pub(crate) serial: u64,
    pub(crate) expiry: u64,
    pub(crate) receipts: Vec<PublishResult>,
}

/// `GET /v1/offers`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MyOffers {
    pub(crate) seller: String,
    pub(crate) offers: Vec<MyOffer>,
}

/// An offer as a buyer sees it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OfferView {
    pub(crate) seller: String,
    pub(crate) price: u64,
    pub(crate) currency: String,
    pub(crate) quantity: u32,
    pub(crate) expiry: u64,
    pub(crate) serial: u64,
}

/// One listing node's answer to a retrieve.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NodeAnswer {
    pub(crate) peer: String,
    /// `verified`, `misbehaviour`, `over-budget` or `unreachable`.
    pub(crate) status: String,
    /// The misbehaviour's kind, when there is one.
    pub(crate) kind: Option<String>,
    pub(crate) detail: String,
    pub(crate) t: Option<u64>,
    pub(crate) offers: usize,
    pub(crate) gaps: usize,
    pub(crate) bytes: u64,
    /// Where the node's device key lives, as its certificate says (verified answers only).
    #[serde(default)]
    pub(crate) device: Option<String>,
    /// Whether that device protects nothing a machine's owner could not fake (a software
    /// device, or a TPM whose EK chains to a development root such as swtpm's).
    #[serde(default)]
    pub(crate) development_only: Option<bool>,
    /// The id of the evidence this answer produced, kept in the node's data folder
    /// (`candor evidence show ID`).
    #[serde(default)]
    pub(crate) evidence: Option<String>,
}

/// `GET /v1/retrieve`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RetrieveAnswer {
    pub(crate) item: String,
    pub(crate) item_key: String,
    /// |Δ(d)| the node aims for: fewer verified answers than this is a partial retrieve.
    pub(crate) k: usize,
    pub(crate) listing_nodes: Vec<NodeAnswer>,
    /// Current offers from the verified nodes, cheapest first per currency.
    pub(crate) offers: Vec<OfferView>,
}

/// `POST /v1/monitor`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MonitorRequest {
    pub(crate) item: String,
}

/// `GET /v1/peers`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Peers {
    pub(crate) peers: Vec<PeerView>,
}

/// A peer in the routing table (every one showed a certificate this node trusts).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PeerView {
    pub(crate) peer: String,
    pub(crate) addrs: Vec<String>,
    pub(crate) connected: bool,
}

/// `POST /v1/peers`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Connect {
    /// `/ip4/…/tcp/…/p2p/<PeerId>`.
    pub(crate) addr: String,
}

/// The answer to `POST /v1/peers`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Connected {
    pub(crate) peer: String,
    pub(crate) certified: bool,
}

/// `GET /v1/device`: the running node's device, counters and certificate.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeviceView {
    pub(crate) peer: String,
    pub(crate) device_key: String,
    pub(crate) protection: String,
    /// (counter, value), at most 8.
    pub(crate) counters: Vec<(u32, u64)>,
    pub(crate) certificate: String,
    pub(crate) residence: String,
}

/// The answer to `POST /v1/stop`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stopping {
    pub(crate) stopping: bool,
}

/// An error.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ApiError {
    pub(crate) error: String,
}

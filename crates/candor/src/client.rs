//! Client commands: talk to the user's own running node through its control API.

use crate::api;
use crate::error::{ApiCallError, CliError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;

/// Where the node is and the token, both from its data folder.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Conn {
    /// The running node's data folder (its control.addr and control.token are read).
    #[arg(long, default_value = "candor-data")]
    data: PathBuf,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

impl Conn {
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    fn not_running(&self, why: &str) -> CliError {
        CliError::NotRunning(format!(
            "the node is not running ({why}); start it with `candor node --data {}`",
            self.data.display()
        ))
    }
}

fn read(conn: &Conn, name: &str) -> Result<String, CliError> {
    let path = conn.data.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(conn.not_running(&format!("no {}", path.display())))
        }
        Err(source) => Err(candor_node::files::FileError::Io { path, source }.into()),
    }
}

struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
    conn: Conn,
}

impl Client {
    fn new(conn: &Conn) -> Result<Self, CliError> {
        let addr = read(conn, "control.addr")?;
        let token = read(conn, "control.token")?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build()
            .into();
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            agent,
            conn: conn.clone(),
        })
    }

    fn answer<T: DeserializeOwned>(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, CliError> {
        let mut r = r.map_err(|e| match e {
            ureq::Error::ConnectionFailed => {
                self.not_running("nothing answers at its control address")
            }
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.not_running("nothing answers at its control address")
            }
            e => ApiCallError::Unreachable(Box::new(e)).into(),
        })?;
        let ok = r.status().is_success();
        let text = r
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiCallError::Read(Box::new(e)))?;
        if !ok {
            let status = r.status().as_u16();
            let msg = serde_json::from_str::<api::ApiError>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            // The node refused the input itself: a usage error, like a bad flag.
            if status == 400 || status == 422 {
                return Err(CliError::Usage(msg));
            }
            return Err(ApiCallError::Refused {
                status,
                message: msg,
            }
            .into());
        }
        serde_json::from_str(&text).map_err(|e| ApiCallError::Unexpected(e).into())
    }

    fn not_running(&self, why: &str) -> CliError {
        self.conn.not_running(why)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.answer(
            self.agent
                .get(format!("{}{path}", self.base))
                .header("authorization", format!("Bearer {}", self.token))
                .call(),
        )
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CliError> {
        self.answer(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("authorization", format!("Bearer {}", self.token))
                .send_json(body),
        )
    }
}

fn print_json<T: Serialize>(v: &T) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn money(minor: u64, currency: &str) -> String {
    format!("{}.{:02} {currency}", minor / 100, minor % 100)
}

/// Parses a price such as `12.50` or `12` into minor units (two decimals).
pub(crate) fn parse_price(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "price {s:?} is not a number with at most two decimals, like 12.50"
        ));
    }
    let whole: u64 = whole
        .parse()
        .map_err(|_| format!("price {s:?} is too large"))?;
    let frac: u64 = format!("{frac:0<2}").parse().unwrap_or(0);
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(|| format!("price {s:?} is too large"))
}

pub(crate) fn status(conn: Conn) -> Result<(), CliError> {
    let s: api::Status = Client::new(&conn)?.get("/v1/status")?;
    if conn.json {
        return print_json(&s);
    }
    println!("node        {}", s.peer);
    for a in &s.listen {
        println!("listening   {a}");
    }
    println!(
        "peers       {} connected, {} in the routing table (k = {})",
        s.connected, s.routing_table, s.k
    );
    if s.connected == 0 {
        println!(
            "WARNING     no peers: publishes and retrieves reach only this node (`candor connect ADDR`)"
        );
    }
    println!(
        "listing     scheme {}, {} counter(s), {} entries counted",
        s.scheme, s.counters, s.entries
    );
    println!("device      {}", s.device);
    println!("trusts      {}", s.trusted_authorities.join(", "));
    let m = &s.monitoring;
    if m.every == 0 {
        println!("monitoring  off (`candor node --monitor-every SECS` turns it on)");
    } else {
        println!(
            "monitoring  every ~{} s; {} run(s){}",
            m.every,
            m.runs,
            match m.last_at {
                Some(_) => format!(
                    ", last: {} check(s), {} failed, {} not verified",
                    m.checked, m.failed, m.unverified
                ),
                None => String::new(),
            }
        );
        if m.failed_total > 0 {
            println!(
                "WARNING     monitoring found {} failed check(s) since the node started:",
                m.failed_total
            );
            for f in &m.findings {
                println!(
                    "            {} on {:?}: {} — {}{}",
                    f.node,
                    f.item,
                    f.kind,
                    f.detail,
                    f.evidence
                        .as_ref()
                        .map(|id| format!(" (evidence: `candor evidence show {id}`)"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// Whether a listing node's status (`receipt`, `verified`, or a misbehaviour's kind) is a
/// failed check — a cheat found — rather than a node that could not or would not answer in
/// time (refused before committing to an answer, timed out, unreachable, over budget) or one
/// whose crashes left more gaps than a buyer takes (`too-many-gaps`, `gap-too-wide`: what an
/// honest node that crashes often shows too), or whose clock disagrees with this one by more
/// than the certificate's skew (`clock-disagreement`: one of the two clocks is wrong). The first
/// is exit 1, the others exit 3.
pub(crate) fn failed_check(status: &str, kind: Option<&str>) -> bool {
    let kind = kind.unwrap_or(status);
    !matches!(
        kind,
        "receipt"
            | "verified"
            | "refused"
            | "timeout"
            | "unreachable"
            | "over-budget"
            | "too-many-gaps"
            | "gap-too-wide"
            | "clock-disagreement"
    )
}

/// The verdict of an answer, once it is shown: `Ok`, or the error whose exit code says how it
/// went (1 a check failed, 3 partial). Under `--json` the answer was printed already.
fn verdict(json: bool, e: Option<CliError>) -> Result<(), CliError> {
    match e {
        None => Ok(()),
        Some(e) if json => Err(CliError::Reported(Box::new(e))),
        Some(e) => Err(e),
    }
}

/// `ok` of `k` listing nodes did `what`; `known` were found: partial when `ok < k`.
fn partial(ok: usize, k: usize, known: usize, what: &str) -> Option<CliError> {
    (ok < k).then(|| {
        let alone = if known < k {
            format!(
                "; this node knows only {known} listing node(s) for the item: is it joined? (`candor peers`)"
            )
        } else {
            String::new()
        };
        CliError::Partial(format!("only {ok} of k = {k} listing nodes {what}{alone}"))
    })
}

fn publish_verdict(r: &api::PublishAnswer) -> Option<CliError> {
    let ok = r
        .listing_nodes
        .iter()
        .filter(|n| n.status == "receipt")
        .count();
    if let Some(bad) = r
        .listing_nodes
        .iter()
        .find(|n| failed_check(&n.status, None))
    {
        return Some(CliError::Check(format!(
            "listing node {} failed a check ({}): {}{}",
            bad.peer,
            bad.status,
            bad.detail,
            bad.evidence
                .as_ref()
                .map(|id| format!("; evidence kept: `candor evidence show {id}`"))
                .unwrap_or_default()
        )));
    }
    partial(ok, r.k, r.listing_nodes.len(), "gave a valid receipt")
}

fn retrieve_verdict(r: &api::RetrieveAnswer, what: &str) -> Option<CliError> {
    if let Some(bad) = r
        .listing_nodes
        .iter()
        .find(|n| failed_check(&n.status, n.kind.as_deref()))
    {
        return Some(CliError::Check(format!(
            "listing node {} misbehaved{what} ({}){}",
            bad.peer,
            bad.kind.as_deref().unwrap_or(&bad.status),
            bad.evidence
                .as_ref()
                .map(|id| format!("; evidence kept: `candor evidence show {id}`"))
                .unwrap_or_default()
        )));
    }
    let ok = r
        .listing_nodes
        .iter()
        .filter(|n| n.status == "verified")
        .count();
    partial(ok, r.k, r.listing_nodes.len(), "verified")
}

/// Stops the running node (as SIGTERM does) and waits until it has.
pub(crate) fn stop(conn: Conn) -> Result<(), CliError> {
    let _: api::Stopping = Client::new(&conn)?.post("/v1/stop", &serde_json::json!({}))?;
    let addr = conn.data.join("control.addr");
    // The process itself (Linux: /proc), so the data folder is free once this returns.
    let process = std::fs::read_to_string(conn.data.join("node.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .map(|pid| PathBuf::from(format!("/proc/{pid}/stat")));
    // Running: its /proc entry exists and is not a zombie (ended, not yet reaped).
    let running = |stat: &PathBuf| {
        std::fs::read_to_string(stat).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    };
    let start = std::time::Instant::now();
    loop {
        match &process {
            // The process has ended: done, whether or not it cleaned up after itself.
            Some(p) if !running(p) => break,
            None if !addr.exists() => break,
            _ => {}
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            return Err(CliError::StopTimeout(60));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if conn.json {
        return print_json(&serde_json::json!({"stopped": true}));
    }
    println!("the node has stopped");
    Ok(())
}

/// The device as the running node at `data` holds it, or `None` when no node runs there (the
/// device is then free to open directly).
pub(crate) fn device_from_node(
    data: &std::path::Path,
) -> Result<Option<api::DeviceView>, CliError> {
    let conn = Conn {
        data: data.to_path_buf(),
        json: false,
    };
    match Client::new(&conn).and_then(|c| c.get::<api::DeviceView>("/v1/device")) {
        Ok(v) => Ok(Some(v)),
        Err(CliError::NotRunning(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn peers(conn: Conn) -> Result<(), CliError> {
    let r: api::Peers = Client::new(&conn)?.get("/v1/peers")?;
    if conn.json {
        return print_json(&r);
    }
    let connected = r.peers.iter().filter(|p| p.connected).count();
    println!(
        "{} peer(s) in the routing table, {connected} connected",
        r.peers.len()
    );
    for p in &r.peers {
        println!(
            "  {}  {}  {}",
            p.peer,
            if p.connected {
                "connected"
            } else {
                "known    "
            },
            p.addrs.first().map(String::as_str).unwrap_or("")
        );
    }
    if connected == 0 {
        println!(
            "WARNING: no peers connected: publishes and retrieves reach only this node. \
             Connect it: `candor connect /ip4/…/tcp/…/p2p/<PeerId>`"
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    conn: Conn,
    /// The peer's address, ending in `/p2p/<PeerId>` (another node prints it at start and keeps
    /// it in its DATA/node.addr).
    addr: String,
}

impl ConnectArgs {
    pub(crate) fn json(&self) -> bool {
        self.conn.json
    }
}

pub(crate) fn connect(a: ConnectArgs) -> Result<(), CliError> {
    let r: api::Connected = Client::new(&a.conn)?.post(
        "/v1/peers",
        &api::Connect {
            addr: a.addr.clone(),
        },
    )?;
    if a.conn.json {
        return print_json(&r);
    }
    println!("connected to {} (certificate verified)", r.peer);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub(crate) struct PublishArgs {
    #[command(flatten)]
    conn: Conn,
    /// The item's description (at most 512 bytes once canonical).
    #[arg(long, value_parser = crate::limits::item)]
    item: String,
    /// The price, e.g. 12.50 (two decimals).
    #[arg(long, value_parser = parse_price)]
    price: u64,
    /// ISO 4217 currency code.
    #[arg(long, default_value = "EUR", value_parser = crate::limits::currency)]
    currency: String,
    /// Units for sale (0 withdraws your offer for the item).
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    /// Days until the offer expires (default: the most the marketplace allows, less a margin
    /// for clock skew: 30 days − 20 minutes with the default rules).
    #[arg(long, value_parser = crate::limits::days)]
    days: Option<u64>,
}

pub(crate) fn publish(a: PublishArgs) -> Result<(), CliError> {
    let req = api::NewOffer {
        item: a.item,
        price: a.price,
        currency: a.currency.clone(),
        quantity: a.quantity,
        expires_in: a.days.map(|d| d.saturating_mul(86_400)),
    };
    let r: api::PublishAnswer = Client::new(&a.conn)?.post("/v1/offers", &req)?;
    if a.conn.json {
        print_json(&r)?;
        return verdict(true, publish_verdict(&r));
    }
    println!(
        "offer for {:?} at {} (serial {}), item key {}",
        r.item,
        money(req.price, &a.currency.to_uppercase()),
        r.serial,
        &r.item_key[..16]
    );
    for n in &r.listing_nodes {
        match (n.counter, n.value) {
            (Some(c), Some(v)) => {
                println!("  {}  receipt checked: counter {c} value {v}", n.peer);
            }
            _ => println!("  {}  {}: {}", n.peer, n.status, n.detail),
        }
    }
    verdict(false, publish_verdict(&r))
}

/// `candor withdraw` and `candor sell`: the seller's current offer for an item, superseded.
#[derive(clap::Args, Debug)]
pub(crate) struct ChangeArgs {
    #[command(flatten)]
    conn: Conn,
    /// The item's description (at most 512 bytes once canonical).
    #[arg(long, value_parser = crate::limits::item)]
    item: String,
}

impl ChangeArgs {
    pub(crate) fn json(&self) -> bool {
        self.conn.json
    }
}

/// `candor sell`: units sold.
#[derive(clap::Args, Debug)]
pub(crate) struct SellArgs {
    #[command(flatten)]
    change: ChangeArgs,
    /// Units sold (your offer keeps the rest; none left withdraws it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    sold: u32,
}

impl SellArgs {
    pub(crate) fn json(&self) -> bool {
        self.change.conn.json
    }
}

pub(crate) fn withdraw(a: ChangeArgs) -> Result<(), CliError> {
    let r: api::PublishAnswer =
        Client::new(&a.conn)?.post("/v1/offers/withdraw", &api::Withdraw { item: a.item })?;
    changed(
        &a.conn,
        &r,
        "withdrawn: an offer of quantity 0 supersedes yours",
    )
}

pub(crate) fn sell(a: SellArgs) -> Result<(), CliError> {
    let req = api::Sell {
        item: a.change.item,
        sold: a.sold,
    };
    let r: api::PublishAnswer = Client::new(&a.change.conn)?.post("/v1/offers/sell", &req)?;
    let what = format!("{} sold: an offer with the rest supersedes yours", a.sold);
    changed(&a.change.conn, &r, &what)
}

/// Shows a withdrawal's or a sale's publish.
fn changed(conn: &Conn, r: &api::PublishAnswer, what: &str) -> Result<(), CliError> {
    if conn.json {
        print_json(r)?;
        return verdict(true, publish_verdict(r));
    }
    println!("{:?}: {what} (serial {})", r.item, r.serial);
    for n in &r.listing_nodes {
        match (n.counter, n.value) {
            (Some(c), Some(v)) => {
                println!("  {}  receipt checked: counter {c} value {v}", n.peer);
            }
            _ => println!("  {}  {}: {}", n.peer, n.status, n.detail),
        }
    }
    verdict(false, publish_verdict(r))
}

#[derive(clap::Args, Debug)]
pub(crate) struct ItemArgs {
    #[command(flatten)]
    conn: Conn,
    /// The item's description (at most 512 bytes once canonical).
    #[arg(long, value_parser = crate::limits::item)]
    item: String,
}

impl ItemArgs {
    pub(crate) fn json(&self) -> bool {
        self.conn.json
    }
}

impl PublishArgs {
    pub(crate) fn json(&self) -> bool {
        self.conn.json
    }
}

/// Prints each listing node's verdict and, for a retrieve (`offers`), the current offers.
fn print_retrieve(r: &api::RetrieveAnswer, offers: bool) {
    println!(
        "item {:?} (key {})",
        r.item,
        &r.item_key[..16.min(r.item_key.len())]
    );
    for n in &r.listing_nodes {
        let what = match n.status.as_str() {
            "verified" => format!(
                "verified: t = {}, {} offer(s) for the item, {} gap(s), {} bytes{}",
                n.t.unwrap_or(0),
                n.offers,
                n.gaps,
                n.bytes,
                n.device
                    .as_ref()
                    .map(|d| format!("\n      device: {d}"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "{}{}: {}",
                n.status.to_uppercase(),
                n.kind
                    .as_ref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default(),
                n.detail
            ),
        };
        println!("  {}  {what}", n.peer);
    }
    if !offers {
        return;
    }
    if r.offers.is_empty() {
        println!("no current offers");
    }
    for o in &r.offers {
        println!(
            "  {:>14}  x{}  seller {}  (serial {})",
            money(o.price, &o.currency),
            o.quantity,
            &o.seller[..16],
            o.serial
        );
    }
}

pub(crate) fn retrieve(a: ItemArgs) -> Result<(), CliError> {
    let c = Client::new(&a.conn)?;
    let query: String = a
        .item
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let r: api::RetrieveAnswer = c.get(&format!("/v1/retrieve?item={query}"))?;
    if a.conn.json {
        print_json(&r)?;
        return verdict(true, retrieve_verdict(&r, ""));
    }
    print_retrieve(&r, true);
    verdict(false, retrieve_verdict(&r, ""))
}

pub(crate) fn monitor(a: ItemArgs) -> Result<(), CliError> {
    let r: api::RetrieveAnswer =
        Client::new(&a.conn)?.post("/v1/monitor", &api::MonitorRequest { item: a.item })?;
    if a.conn.json {
        print_json(&r)?;
        return verdict(true, retrieve_verdict(&r, " against your receipts"));
    }
    if r.listing_nodes.is_empty() {
        println!(
            "you have no live offer with receipts for {:?}: nothing to monitor",
            r.item
        );
        return Ok(());
    }
    print_retrieve(&r, false);
    verdict(false, retrieve_verdict(&r, " against your receipts"))
}

pub(crate) fn offers(conn: Conn) -> Result<(), CliError> {
    let r: api::MyOffers = Client::new(&conn)?.get("/v1/offers")?;
    if conn.json {
        return print_json(&r);
    }
    println!("seller key {}", r.seller);
    if r.offers.is_empty() {
        println!("no offers yet (`candor publish`)");
    }
    for o in &r.offers {
        println!(
            "  {:<10}  {:?}  {}  x{}  serial {}  expires {}  — {} receipt(s)",
            o.state,
            o.item,
            money(o.price, &o.currency),
            o.quantity,
            o.serial,
            utc_date(o.expiry),
            o.receipts.len()
        );
    }
    Ok(())
}

/// A unix time as a UTC date and time, `YYYY-MM-DD HH:MM` (civil calendar from days since
/// the epoch).
pub(crate) fn utc_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::parse_price;

    #[test]
    fn failed_checks_are_cheats_and_the_rest_is_partial() {
        use super::failed_check;
        for partial in [
            "refused",
            "timeout",
            "unreachable",
            "over-budget",
            "too-many-gaps",
            "clock-disagreement",
        ] {
            assert!(!failed_check("misbehaviour", Some(partial)), "{partial}");
        }
        for cheat in [
            "refused-after-read",
            "missing-entry",
            "equivocation",
            "gap-over-receipt",
            "bad-step",
            "wrong-scheme",
            "bad-proof",
            "at-backwards",
            "recent-boundary",
        ] {
            assert!(failed_check("misbehaviour", Some(cheat)), "{cheat}");
        }
        assert!(!failed_check("verified", None));
        assert!(!failed_check("receipt", None));
        assert!(!failed_check("unreachable", None));
        assert!(!failed_check("over-budget", Some("over-budget")));
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(
            super::utc_date(1_796_256_000 + 3_660),
            "2026-12-03 01:01 UTC"
        );
    }

    #[test]
    fn prices_parse_to_minor_units() {
        assert_eq!(parse_price("12.50"), Ok(1250));
        assert_eq!(parse_price("12.5"), Ok(1250));
        assert_eq!(parse_price("7"), Ok(700));
        assert_eq!(parse_price("0.07"), Ok(7));
        assert!(parse_price("1.234").is_err());
        assert!(parse_price("-1").is_err());
        assert!(parse_price("abc").is_err());
        assert!(parse_price("99999999999999999999").is_err());
    }
}

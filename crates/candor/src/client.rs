//! Client commands: talk to the user's own running node through its control API.

use crate::api;
use crate::CliError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

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

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            CliError::Failed(format!(
                "{}: {e} (is `candor node --data {}` running?)",
                path.display(),
                path.parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ))
        })
}

struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(conn: &Conn) -> Result<Self, CliError> {
        let addr = read(&conn.data.join("control.addr"))?;
        let token = read(&conn.data.join("control.token"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build()
            .into();
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            agent,
        })
    }

    fn answer<T: DeserializeOwned>(
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, CliError> {
        let mut r =
            r.map_err(|e| CliError::Failed(format!("cannot reach the node's control API: {e}")))?;
        let ok = r.status().is_success();
        let text = r
            .body_mut()
            .read_to_string()
            .map_err(|e| CliError::Failed(format!("reading the answer: {e}")))?;
        if !ok {
            let msg = serde_json::from_str::<api::ApiError>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            return Err(CliError::Failed(msg));
        }
        serde_json::from_str(&text).map_err(|e| CliError::Failed(format!("unexpected answer: {e}")))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        Self::answer(
            self.agent
                .get(format!("{}{path}", self.base))
                .header("authorization", format!("Bearer {}", self.token))
                .call(),
        )
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CliError> {
        Self::answer(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("authorization", format!("Bearer {}", self.token))
                .send_json(body),
        )
    }
}

fn print_json<T: Serialize>(v: &T) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| CliError::Failed(e.to_string()))?
    );
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
    println!(
        "listing     scheme {}, {} counter(s), {} entries counted",
        s.scheme, s.counters, s.entries
    );
    println!("device      {}", s.device);
    println!("trusts      {}", s.trusted_authorities.join(", "));
    Ok(())
}

#[derive(clap::Args, Debug)]
pub(crate) struct PublishArgs {
    #[command(flatten)]
    conn: Conn,
    /// The item's description.
    #[arg(long)]
    item: String,
    /// The price, e.g. 12.50 (two decimals).
    #[arg(long, value_parser = parse_price)]
    price: u64,
    /// ISO 4217 currency code.
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// Units for sale (0 withdraws your offer for the item).
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    /// Days until the offer expires.
    #[arg(long, default_value_t = 30)]
    days: u64,
}

pub(crate) fn publish(a: PublishArgs) -> Result<(), CliError> {
    let req = api::NewOffer {
        item: a.item,
        price: a.price,
        currency: a.currency.clone(),
        quantity: a.quantity,
        expires_in: a.days.saturating_mul(86_400),
    };
    let r: api::PublishAnswer = Client::new(&a.conn)?.post("/v1/offers", &req)?;
    if a.conn.json {
        return print_json(&r);
    }
    println!(
        "offer for {:?} at {} (serial {}), item key {}",
        r.item,
        money(req.price, &a.currency.to_uppercase()),
        r.serial,
        &r.item_key[..16]
    );
    let mut ok = 0;
    for n in &r.listing_nodes {
        match (n.counter, n.value) {
            (Some(c), Some(v)) => {
                ok += 1;
                println!("  {}  receipt checked: counter {c} value {v}", n.peer);
            }
            _ => println!("  {}  {}: {}", n.peer, n.status, n.detail),
        }
    }
    if ok == 0 {
        return Err(CliError::Failed(
            "no listing node gave a valid receipt".into(),
        ));
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub(crate) struct ItemArgs {
    #[command(flatten)]
    conn: Conn,
    /// The item's description.
    #[arg(long)]
    item: String,
}

fn print_retrieve(r: &api::RetrieveAnswer) {
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
        return print_json(&r);
    }
    print_retrieve(&r);
    if r.listing_nodes.iter().any(|n| n.status == "misbehaviour") {
        return Err(CliError::Failed(
            "a listing node misbehaved (see above)".into(),
        ));
    }
    Ok(())
}

pub(crate) fn monitor(a: ItemArgs) -> Result<(), CliError> {
    let r: api::RetrieveAnswer =
        Client::new(&a.conn)?.post("/v1/monitor", &api::MonitorRequest { item: a.item })?;
    if a.conn.json {
        return print_json(&r);
    }
    print_retrieve(&r);
    if r.listing_nodes.iter().any(|n| n.status == "misbehaviour") {
        return Err(CliError::Failed(
            "a listing node misbehaved against your receipts".into(),
        ));
    }
    Ok(())
}

pub(crate) fn offers(conn: Conn) -> Result<(), CliError> {
    let r: api::MyOffers = Client::new(&conn)?.get("/v1/offers")?;
    if conn.json {
        return print_json(&r);
    }
    println!("seller key {}", r.seller);
    for o in &r.offers {
        println!(
            "  {:?}  {}  x{}  serial {}  — {} receipt(s)",
            o.item,
            money(o.price, &o.currency),
            o.quantity,
            o.serial,
            o.receipts.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_price;

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

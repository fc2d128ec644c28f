//! The daemon's own monitoring: at jittered intervals (default hourly) it checks every live
//! offer of its user that has receipts, at each listing node that gave one — each check under
//! a fresh identity, like any buyer's — keeps the evidence it finds in the data folder, and
//! reports what it found in the logs and in `candor status`.

use crate::daemon::AppState;
use candor_net::system_clock as now;
use std::sync::Arc;
use std::time::Duration;

/// What the monitoring has done, for `candor status`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Watch {
    /// Seconds between runs (before jitter); 0: off.
    pub(crate) every: u64,
    /// Runs done since the node started.
    pub(crate) runs: u64,
    /// Unix seconds of the last run's end.
    pub(crate) last_at: Option<u64>,
    /// Listing-node checks in the last run, and how many failed (a cheat found) or did not
    /// verify (refused, unreachable, over budget).
    pub(crate) checked: usize,
    pub(crate) failed: usize,
    pub(crate) unverified: usize,
    /// Evidence ids the runs kept.
    pub(crate) evidence: Vec<String>,
    /// Failed checks since the node started, and the latest of them (kept even when the
    /// node answers well again: a cheat found once stays found).
    pub(crate) failed_total: u64,
    pub(crate) findings: Vec<Finding>,
}

/// A failed check the monitoring found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Finding {
    pub(crate) at: u64,
    pub(crate) node: String,
    pub(crate) item: String,
    pub(crate) kind: String,
    pub(crate) detail: String,
    pub(crate) evidence: Option<String>,
}

/// Findings kept for `candor status`.
const MAX_FINDINGS: usize = 50;

/// `every`, moved by up to a quarter either way, so runs do not line up with anything a
/// listing node could watch for.
fn jittered(every: Duration) -> Duration {
    let quarter = every.as_millis() as u64 / 4;
    let r = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (2 * quarter + 1);
    every.saturating_sub(Duration::from_millis(quarter)) + Duration::from_millis(r)
}

/// Runs the monitoring until the node stops.
pub(crate) async fn keep_watch(state: Arc<AppState>, every: Duration) {
    loop {
        tokio::time::sleep(jittered(every)).await;
        let s = state.clone();
        let done = tokio::task::spawn_blocking(move || run_once(&s)).await;
        if let Err(e) = done {
            tracing::error!(%e, "a monitoring run failed");
        }
    }
}

/// One run over every item with live receipts.
pub(crate) fn run_once(state: &AppState) {
    let t = now();
    let items = match state.wallet.list() {
        Ok(list) => {
            let mut items: Vec<String> = list
                .iter()
                .filter(|e| e.offer.offer.expiry > t && !e.receipts.is_empty())
                .map(|e| e.offer.offer.description.clone())
                .collect();
            items.sort();
            items.dedup();
            items
        }
        Err(e) => {
            tracing::error!(%e, "monitoring: cannot read the wallet");
            return;
        }
    };
    let (mut checked, mut failed, mut unverified) = (0, 0, 0);
    let mut found = Vec::new();
    for description in items {
        let Ok(item) = candor_core::Item::new(&description) else {
            continue;
        };
        match crate::routes::monitor_item(state, &item, t) {
            Ok(answer) => {
                for n in &answer.listing_nodes {
                    checked += 1;
                    if n.status == "verified" {
                        continue;
                    }
                    if crate::client::failed_check(&n.status, n.kind.as_deref()) {
                        failed += 1;
                        tracing::warn!(
                            node = %n.peer,
                            kind = n.kind.as_deref().unwrap_or(""),
                            evidence = n.evidence.as_deref().unwrap_or("none"),
                            item = %description,
                            "MONITORING FOUND A CHEAT: {}", n.detail
                        );
                        found.push(Finding {
                            at: t,
                            node: n.peer.clone(),
                            item: description.clone(),
                            kind: n.kind.clone().unwrap_or_else(|| n.status.clone()),
                            detail: n.detail.clone(),
                            evidence: n.evidence.clone(),
                        });
                    } else {
                        unverified += 1;
                        tracing::warn!(node = %n.peer, status = %n.status, item = %description, "monitoring: a listing node did not verify: {}", n.detail);
                    }
                }
            }
            Err(e) => tracing::error!(%e, "monitoring: cannot read the wallet"),
        }
    }
    if let Ok(mut w) = state.watch.lock() {
        w.runs += 1;
        w.last_at = Some(now());
        w.checked = checked;
        w.failed = failed;
        w.unverified = unverified;
        w.failed_total += found.len() as u64;
        for f in found {
            if let Some(id) = &f.evidence {
                if !w.evidence.contains(id) && w.evidence.len() < 1000 {
                    w.evidence.push(id.clone());
                }
            }
            if w.findings.len() >= MAX_FINDINGS {
                w.findings.remove(0);
            }
            w.findings.push(f);
        }
    }
    tracing::info!(checked, failed, unverified, "monitoring run done");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        let every = Duration::from_secs(3600);
        for _ in 0..1000 {
            let j = jittered(every);
            assert!(
                j >= Duration::from_secs(2700) && j <= Duration::from_secs(4500),
                "{j:?}"
            );
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }
}

//! How a node finds its way back after a restart: the address it listens on, picked at first
//! start and kept (`DATA/listen`), and the peers it knew (`DATA/peers`, one
//! `/…/p2p/<PeerId>` address per line), redialled with back-off beside the configured
//! bootstrap peers whenever it has no connection. A node with no peers says so, loudly.

use candor_net::{Multiaddr, NetHandle};
use candor_node::files::{self, FileError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Peers kept in `DATA/peers`.
pub(crate) const MAX_KEPT: usize = 64;
/// The longest pause between two rejoin attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the peer list is saved.
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The files of a data folder that remember the overlay.
#[derive(Debug, Clone)]
pub(crate) struct PeerFiles(pub(crate) PathBuf);

impl PeerFiles {
    pub(crate) fn of(data: &Path) -> Self {
        Self(data.to_path_buf())
    }

    fn listen_file(&self) -> PathBuf {
        self.0.join("listen")
    }

    fn peers_file(&self) -> PathBuf {
        self.0.join("peers")
    }

    /// The listen addresses kept from an earlier start, if any.
    pub(crate) fn kept_listen(&self) -> Vec<String> {
        read_lines(&self.listen_file(), 8)
    }

    /// Keeps the addresses the node listens on now, for the next start.
    pub(crate) fn keep_listen(&self, addrs: &[Multiaddr]) -> Result<(), FileError> {
        let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
        files::write_atomic(&self.listen_file(), text.as_bytes(), false)
    }

    /// The peers kept from earlier runs.
    pub(crate) fn kept_peers(&self) -> Vec<Multiaddr> {
        read_lines(&self.peers_file(), MAX_KEPT)
            .iter()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    /// Keeps `addrs` (connected peers first), at most [`MAX_KEPT`].
    pub(crate) fn keep_peers(&self, addrs: &[Multiaddr]) -> Result<(), FileError> {
        let text: String = addrs
            .iter()
            .take(MAX_KEPT)
            .map(|a| format!("{a}\n"))
            .collect();
        files::write_atomic(&self.peers_file(), text.as_bytes(), false)
    }
}

fn loopback(a: &Multiaddr) -> bool {
    a.iter().any(|c| match c {
        candor_net::Protocol::Ip4(ip) => ip.is_loopback(),
        candor_net::Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

fn read_lines(path: &Path, max: usize) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && l.len() < 512)
                .take(max)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the peer list fresh and rejoins when the node is alone: every [`SAVE_EVERY`] the
/// routing table's peers are saved; while no peer is connected, the kept peers and the
/// bootstrap peers are dialled, with a pause doubling from 2 s to 5 minutes.
pub(crate) async fn keep_joined(net: NetHandle, files: PeerFiles, bootstrap: Vec<Multiaddr>) {
    let mut backoff = Duration::from_secs(2);
    let mut alone_since: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(SAVE_EVERY.min(backoff));
    loop {
        tick.tick().await;
        let Ok(peers) = net.peers().await else { return };
        let connected = peers.iter().filter(|p| p.connected).count();
        if connected > 0 {
            if alone_since.take().is_some() {
                tracing::info!(connected, "rejoined the overlay");
                let _ = net.bootstrap().await;
            }
            backoff = Duration::from_secs(2);
            let mut sorted = peers;
            sorted.sort_by_key(|p| !p.connected);
            let addrs: Vec<Multiaddr> = sorted
                .iter()
                .filter_map(|p| {
                    // A routable address before a loopback one: the list is for another start,
                    // perhaps after the peers moved.
                    p.addrs
                        .iter()
                        .find(|a| !loopback(a))
                        .or(p.addrs.first())
                        .map(|a| candor_net::with_peer(a, p.peer))
                })
                .collect();
            if let Err(e) = files.keep_peers(&addrs) {
                tracing::warn!(%e, "cannot save the peer list");
            }
            tick = tokio::time::interval(SAVE_EVERY);
            tick.tick().await;
            continue;
        }
        let since = *alone_since.get_or_insert_with(std::time::Instant::now);
        let mut targets = files.kept_peers();
        targets.extend(bootstrap.iter().cloned());
        targets.dedup();
        if targets.is_empty() {
            if since.elapsed() < Duration::from_secs(1) {
                tracing::warn!(
                    "NO PEERS: this node knows nobody to join; publishes and retrieves reach only \
                     itself. Give it a peer: `candor connect ADDR` or `--bootstrap ADDR`"
                );
            }
        } else {
            tracing::warn!(
                tried = targets.len(),
                next_in = ?backoff,
                "NO PEERS: this node is alone; redialling the peers it knew"
            );
            for a in targets {
                if let Err(e) = net.dial(a.clone()).await {
                    tracing::debug!(%a, %e, "redial failed");
                }
            }
        }
        tick = tokio::time::interval(backoff);
        tick.tick().await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_files_round_trip_and_bad_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let f = PeerFiles::of(dir.path());
        assert!(f.kept_listen().is_empty());
        assert!(f.kept_peers().is_empty());
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/4040".parse().unwrap();
        f.keep_listen(std::slice::from_ref(&a)).unwrap();
        assert_eq!(f.kept_listen(), vec![a.to_string()]);
        let p: Multiaddr =
            "/ip4/127.0.0.1/tcp/4041/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
                .parse()
                .unwrap();
        std::fs::write(
            dir.path().join("peers"),
            format!("# kept peers\n{p}\nnot an address\n\n"),
        )
        .unwrap();
        assert_eq!(f.kept_peers(), vec![p.clone()]);
        let many: Vec<Multiaddr> = (0..100).map(|_| p.clone()).collect();
        f.keep_peers(&many).unwrap();
        assert_eq!(f.kept_peers().len(), MAX_KEPT);
    }
}

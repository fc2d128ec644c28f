//! Four `candor node` processes on 127.0.0.1 over TCP: publish from one, retrieve verified from
//! another; SIGKILL a listing node, restart it on the same files: its offers are still served
//! and verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, wait_for, Node};

use serde_json::Value;
use std::path::PathBuf;

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a)).unwrap()
}

#[test]
fn four_processes_publish_retrieve_and_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth");
    ok(&["authority", "init", "--dir", auth.to_str().unwrap()]);
    let datas: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("n{i}"))).collect();
    for d in &datas {
        ok(&[
            "device",
            "init",
            "--data",
            d.to_str().unwrap(),
            "--counters",
            "2",
        ]);
        ok(&[
            "device",
            "enroll",
            "--data",
            d.to_str().unwrap(),
            "--authority",
            auth.to_str().unwrap(),
            "--scheme",
            "b",
        ]);
    }
    let mut nodes = vec![Node::start(&datas[0], &[] as &[&str])];
    let boot = nodes[0].addr();
    for d in &datas[1..] {
        nodes.push(Node::start(d, &["--bootstrap", &boot]));
    }
    for n in &nodes {
        wait_for(
            || {
                json(&["status", "--data", n.d()])["routing_table"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 3
            },
            "routing tables",
        );
    }

    // A peer that speaks garbage on the TCP port (no noise handshake, random bytes, a huge
    // length) disturbs nothing.
    let port: u16 = nodes[3]
        .addr()
        .split("/tcp/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for junk in [
        vec![0xffu8; 4096],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0, 0, 0xff, 0xff, 1, 2, 3],
    ] {
        use std::io::Write;
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(&junk);
        }
    }
    assert!(
        json(&["status", "--data", nodes[3].d()])["routing_table"]
            .as_u64()
            .unwrap()
            >= 3
    );

    // Publish from node 1; every listing node of Δ(d) gives a checked receipt.
    let item = "Vintage Leica M3 camera body";
    let p = json(&[
        "publish",
        "--data",
        nodes[1].d(),
        "--item",
        item,
        "--price",
        "1450.00",
    ]);
    let receipts: Vec<&Value> = p["listing_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "receipt")
        .collect();
    assert_eq!(receipts.len(), 3, "{p}");

    // Retrieve from node 2: every listing node verified, the offer found.
    let r = json(&["retrieve", "--data", nodes[2].d(), "--item", item]);
    let listing: Vec<String> = r["listing_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["peer"].as_str().unwrap().to_string())
        .collect();
    assert!(
        r["listing_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "verified"),
        "{r}"
    );
    assert_eq!(r["offers"][0]["price"], 145_000);

    // SIGKILL a listing node other than the retriever, restart it on the same files and port.
    let peer_of = |n: &Node| {
        json(&["status", "--data", n.d()])["peer"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let retriever = peer_of(&nodes[2]);
    let victim = (0..4)
        .find(|&i| i != 2 && listing.contains(&peer_of(&nodes[i])))
        .unwrap();
    let victim_peer = peer_of(&nodes[victim]);
    let listen = nodes[victim]
        .addr()
        .rsplit_once("/p2p/")
        .unwrap()
        .0
        .to_string();
    assert_ne!(victim_peer, retriever);
    nodes[victim].kill9();
    let mut extra = vec!["--listen".to_string(), listen];
    if victim != 0 {
        extra.extend(["--bootstrap".to_string(), boot.clone()]);
    }
    nodes[victim] = Node::start(&datas[victim], &extra);
    wait_for(
        || {
            json(&["status", "--data", nodes[victim].d()])["connected"]
                .as_u64()
                .unwrap_or(0)
                >= 1
                || victim == 0
        },
        "the restarted node to reconnect",
    );

    // Its offers are still served and verify.
    wait_for(
        || {
            let r = json(&["retrieve", "--data", nodes[2].d(), "--item", item]);
            r["listing_nodes"].as_array().unwrap().iter().any(|n| {
                n["peer"] == victim_peer.as_str() && n["status"] == "verified" && n["offers"] == 1
            })
        },
        "the restarted listing node to serve its offers",
    );
    // And the seller's monitoring finds every receipt intact.
    let m = json(&["monitor", "--data", nodes[1].d(), "--item", item]);
    assert!(
        m["listing_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "verified"),
        "{m}"
    );
}

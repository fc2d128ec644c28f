//! Running a node day to day, with real processes (issue 10): exit codes that do not depend on
//! `--json`, a node that is not running said as such, a restarted node that comes back on its
//! port and rejoins the peers it knew, `peers` and `connect`, and the evidence folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, wait_for, Node};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `candor args…`: the exit code and stdout.
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_candor"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn connected(n: &Node) -> u64 {
    let (code, out) = run(&["status", "--data", n.d(), "--json"]);
    if code != 0 {
        return 0;
    }
    serde_json::from_str::<Value>(&out).unwrap()["connected"]
        .as_u64()
        .unwrap_or(0)
}

fn setup(dir: &Path, n: usize) -> Vec<PathBuf> {
    let auth = dir.join("auth");
    ok(&["authority", "init", "--dir", auth.to_str().unwrap()]);
    (0..n)
        .map(|i| {
            let d = dir.join(format!("n{i}"));
            ok(&["device", "init", "--data", d.to_str().unwrap()]);
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
            d
        })
        .collect()
}

#[test]
fn exit_codes_say_the_same_with_and_without_json() {
    let dir = tempfile::tempdir().unwrap();
    let datas = setup(dir.path(), 1);
    let d = datas[0].to_str().unwrap();
    // Not running: 4, and under --json the error is JSON on stdout.
    let (code, _) = run(&["status", "--data", d]);
    assert_eq!(code, 4);
    let (code, out) = run(&["status", "--data", d, "--json"]);
    assert_eq!(code, 4);
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["kind"], "not-running");
    assert_eq!(e["exit"], 4);
    assert!(e["error"].as_str().unwrap().contains("candor node --data"));

    // A node alone: a publish reaches only itself, one receipt of k = 3: partial (3), with and
    // without --json; the JSON answer still prints, and parses.
    let mut node = Node::start(&datas[0], &[] as &[&str]);
    let publish = |json: bool| {
        let mut a = vec![
            "publish",
            "--data",
            d,
            "--item",
            "a brass telescope",
            "--price",
            "80",
        ];
        if json {
            a.push("--json");
        }
        run(&a)
    };
    let (code, _) = publish(false);
    assert_eq!(code, 3);
    let (code, out) = publish(true);
    assert_eq!(code, 3);
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["k"], 3);
    assert_eq!(p["listing_nodes"].as_array().unwrap().len(), 1);
    for json in [false, true] {
        let mut a = vec!["retrieve", "--data", d, "--item", "a brass telescope"];
        if json {
            a.push("--json");
        }
        assert_eq!(run(&a).0, 3, "retrieve from a lone node is partial");
    }
    // A bad evidence id is a usage error; the folder is empty.
    assert_eq!(run(&["evidence", "show", "../x", "--data", d]).0, 2);
    let (code, out) = run(&["evidence", "list", "--data", d, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        Value::Array(vec![])
    );

    // `device show` while the node runs asks the node (the device is in use), in people's
    // words: the PeerId as every other command prints it, no debug text.
    let (code, out) = run(&["device", "show", "--data", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("from the running node"), "{out}");
    assert!(out.contains("node PeerId: 12D3Koo"), "{out}");
    assert!(!out.contains("Software("), "{out}");

    // A stopped node leaves no control address: clients say it is not running.
    node.stop();
    assert!(!datas[0].join("control.addr").exists());
    assert_eq!(run(&["offers", "--data", d]).0, 4);
    let (code, out) = run(&["device", "show", "--data", d]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("from the running node"), "{out}");
}

#[test]
fn set_up_that_fails_leaves_nothing_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let d = data.to_str().unwrap();
    // No TPM answers there: the set-up fails, leaves no node key, and fails the same way
    // when tried again (not "already exists").
    for _ in 0..2 {
        let (code, _) = run(&["device", "init", "--data", d, "--tpm", "tcp:127.0.0.1:1"]);
        assert_eq!(code, 1);
        assert!(!data.join("node.key").exists());
    }
    for n in ["0", "100000"] {
        assert_eq!(run(&["device", "init", "--data", d, "--counters", n]).0, 2);
        assert!(!data.join("node.key").exists());
    }
    ok(&["device", "init", "--data", d]);
    // Input out of bounds is refused at the edge (exit 2), naming the limit, before anything
    // is signed or kept.
    for (args, says) in [
        (
            vec![
                "publish",
                "--item",
                "a lamp",
                "--price",
                "5",
                "--currency",
                "XYZ",
            ],
            "ISO 4217",
        ),
        (
            vec!["publish", "--item", "a lamp", "--price", "5", "--days", "0"],
            "1 to 365",
        ),
        (
            vec!["retrieve", "--item", &"x".repeat(100_000)],
            "512 bytes",
        ),
        (vec!["node", "--k", "0"], "1 to 20"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_candor"))
            .args(&args)
            .args(["--data", d])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
    // The sample configuration is a valid node.toml with every key: the node reads it back.
    let (code, sample) = run(&["node", "--print-config", "--data", d, "--k", "5"]);
    assert_eq!(code, 0);
    let parsed: toml::Table = toml::from_str(&sample).unwrap();
    for key in [
        "listen",
        "bootstrap",
        "control",
        "k",
        "trust",
        "publish_to",
        "monitor_every",
    ] {
        assert!(parsed.contains_key(key), "{key} missing:\n{sample}");
    }
    assert_eq!(parsed["k"].as_integer(), Some(5));
    std::fs::write(data.join("node.toml"), &sample).unwrap();
    let (code, again) = run(&["node", "--print-config", "--data", d]);
    assert_eq!(code, 0);
    assert_eq!(again, sample);
    // A second software set-up refuses, and keeps the first.
    let key = std::fs::read(data.join("node.key")).unwrap();
    assert_eq!(run(&["device", "init", "--data", d]).0, 1);
    assert_eq!(std::fs::read(data.join("node.key")).unwrap(), key);
}

#[test]
fn a_restarted_node_comes_back_on_its_port_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let datas = setup(dir.path(), 4);
    // Node 0 checks its own receipts every second or so.
    let mut nodes = vec![Node::start(&datas[0], &["--monitor-every", "1"])];
    let boot = nodes[0].addr();
    for d in &datas[1..3] {
        nodes.push(Node::start(d, &["--bootstrap", &boot]));
    }
    for n in &nodes {
        wait_for(|| connected(n) >= 2, "the three nodes to connect");
    }
    // Node 1 knew its peers; give it time to keep them, then stop it and start it with no
    // bootstrap at all: same address, and it finds its peers again.
    let before = nodes[1].addr();
    wait_for(
        || {
            std::fs::read_to_string(datas[1].join("peers"))
                .map(|t| t.lines().count() >= 2)
                .unwrap_or(false)
        },
        "node 1 to keep its peers",
    );
    nodes[1].stop();
    nodes[1] = Node::start(&datas[1], &[] as &[&str]);
    assert_eq!(nodes[1].addr(), before, "the port is kept");
    wait_for(|| connected(&nodes[1]) >= 2, "node 1 to rejoin");
    let (code, out) = run(&["peers", "--data", nodes[1].d(), "--json"]);
    assert_eq!(code, 0);
    let peers: Value = serde_json::from_str(&out).unwrap();
    assert!(peers["peers"].as_array().unwrap().len() >= 2, "{peers}");

    // Node 0's own monitoring checks its receipted offer at every listing node, accusing
    // none; an item never sold has nothing to monitor.
    let d0 = nodes[0].d().to_string();
    let (code, _) = run(&[
        "publish",
        "--data",
        &d0,
        "--item",
        "an oak writing desk",
        "--price",
        "300",
    ]);
    assert_eq!(code, 0);
    let status =
        || -> Value { serde_json::from_str(&run(&["status", "--data", &d0, "--json"]).1).unwrap() };
    let runs_now = status()["monitoring"]["runs"].as_u64().unwrap();
    wait_for(
        || {
            let m = &status()["monitoring"];
            m["runs"].as_u64().unwrap() > runs_now + 1 && m["checked"].as_u64().unwrap() == 3
        },
        "node 0's monitoring to check its offer",
    );
    let m = &status()["monitoring"];
    assert_eq!(m["failed"], 0, "{m}");
    assert_eq!(m["unverified"], 0, "{m}");
    // `offers` shows each offer's state and expiry: a new price supersedes the old one.
    let (code, _) = run(&[
        "publish",
        "--data",
        &d0,
        "--item",
        "an oak writing desk",
        "--price",
        "280",
    ]);
    assert_eq!(code, 0);
    let (code, out) = run(&["offers", "--data", &d0, "--json"]);
    assert_eq!(code, 0);
    let mine: Value = serde_json::from_str(&out).unwrap();
    let states: Vec<&str> = mine["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["superseded", "current"], "{mine}");
    let (_, out) = run(&["offers", "--data", &d0]);
    assert!(
        out.contains("expires 20") && out.contains("superseded"),
        "{out}"
    );
    let (code, out) = run(&["monitor", "--data", &d0, "--item", "a chair never sold"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to monitor"), "{out}");

    // A node started alone is told to connect, and `connect` joins it.
    let lone = Node::start(&datas[3], &[] as &[&str]);
    assert_eq!(connected(&lone), 0);
    let out = ok(&["peers", "--data", lone.d()]);
    assert!(out.contains("WARNING"), "{out}");
    ok(&["connect", "--data", lone.d(), &boot]);
    wait_for(|| connected(&lone) >= 1, "the lone node to connect");
    // A wrong address is refused with a usage error.
    assert_eq!(
        run(&["connect", "--data", lone.d(), "/ip4/127.0.0.1/tcp/1"]).0,
        2
    );
}

/// TPM set-up is idempotent (swtpm): run again, it keeps the node key and re-derives the same
/// device; enrolment refuses a counter count the device does not have.
#[test]
fn tpm_set_up_run_twice_is_the_same_device() {
    let ca = candor_tpm::SwtpmCa::shared().expect("swtpm_setup (scripts/install-deps)");
    let sw = candor_tpm::Swtpm::start_endorsed(ca).expect("swtpm (scripts/install-deps)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("t");
    let d = data.to_str().unwrap();
    let tpm = format!("tcp:{}", sw.server());
    let first = ok(&[
        "device",
        "init",
        "--data",
        d,
        "--tpm",
        &tpm,
        "--counters",
        "1",
    ]);
    let key = std::fs::read(data.join("node.key")).unwrap();
    let again = ok(&[
        "device",
        "init",
        "--data",
        d,
        "--tpm",
        &tpm,
        "--counters",
        "1",
    ]);
    assert_eq!(std::fs::read(data.join("node.key")).unwrap(), key);
    let line = |s: &str, what: &str| s.lines().find(|l| l.starts_with(what)).unwrap().to_string();
    assert_eq!(line(&first, "node PeerId"), line(&again, "node PeerId"));
    assert_eq!(line(&first, "device key"), line(&again, "device key"));
    let auth = dir.path().join("auth");
    ok(&["authority", "init", "--dir", auth.to_str().unwrap()]);
    let (code, _) = run(&[
        "device",
        "enroll",
        "--data",
        d,
        "--authority",
        auth.to_str().unwrap(),
        "--scheme",
        "c",
        "--counters",
        "3",
    ]);
    assert_eq!(code, 2, "the device has one counter");
}

/// An offer's whole life from the command line (issue 13, item 2): published with a serial at
/// least the clock's milliseconds, partly sold, then withdrawn; each step is a new offer that
/// supersedes the last, and buyers see the quantity drop, then nothing. Changing an offer the
/// wallet does not hold, or one already withdrawn, is refused.
#[test]
fn an_offer_is_published_sold_and_withdrawn() {
    let dir = tempfile::tempdir().unwrap();
    let datas = setup(dir.path(), 1);
    let d = datas[0].to_str().unwrap();
    let _node = Node::start(&datas[0], &[] as &[&str]);
    let item = "a cast-iron kettle";
    let json = |args: &[&str]| -> (i32, Value) {
        let mut a = args.to_vec();
        a.extend(["--data", d, "--json"]);
        let (code, out) = run(&a);
        (code, serde_json::from_str(&out).unwrap_or(Value::Null))
    };
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // A lone node: one receipt of k = 3, a partial publish (exit 3), the answer all the same.
    let (_, p) = json(&[
        "publish",
        "--item",
        item,
        "--price",
        "24.50",
        "--quantity",
        "3",
    ]);
    let first = p["serial"].as_u64().unwrap();
    assert!(first >= before_ms, "serial {first} is below the clock's ms");
    let offers = |want: usize| -> Vec<Value> {
        let (_, r) = json(&["retrieve", "--item", item]);
        let o = r["offers"].as_array().unwrap().clone();
        assert_eq!(o.len(), want, "{r}");
        o
    };
    assert_eq!(offers(1)[0]["quantity"], 3);
    // Two sales at once: each starts from the offer the other left (a review found both
    // starting from the same one: two sold, one subtracted).
    let sales: Vec<_> = (0..2)
        .map(|_| {
            let d = d.to_string();
            std::thread::spawn(move || {
                let (_, out) = run(&[
                    "sell", "--item", item, "--sold", "1", "--data", &d, "--json",
                ]);
                serde_json::from_str::<Value>(&out).unwrap()["serial"]
                    .as_u64()
                    .unwrap()
            })
        })
        .collect();
    let serials: Vec<u64> = sales.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(serials[0], serials[1]);
    assert!(serials.iter().all(|s| *s > first));
    let second = serials[0].max(serials[1]);
    let o = offers(1);
    assert_eq!(
        (o[0]["quantity"].as_u64(), o[0]["price"].as_u64()),
        (Some(1), Some(2450))
    );
    let (_, w) = json(&["withdraw", "--item", item]);
    assert!(w["serial"].as_u64().unwrap() > second);
    offers(0);
    // The wallet shows the life: three superseded offers and the withdrawal.
    let (code, mine) = json(&["offers"]);
    assert_eq!(code, 0);
    let states: Vec<&str> = mine["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "superseded").count(),
        3,
        "{states:?}"
    );
    assert!(states.contains(&"withdrawn"), "{states:?}");
    // Nothing left to change; an item never offered is refused too.
    let (code, _) = run(&["withdraw", "--item", item, "--data", d]);
    assert_ne!(code, 0);
    let (code, _) = run(&["sell", "--item", "a teapot", "--sold", "1", "--data", d]);
    assert_ne!(code, 0);
    let (code, _) = run(&["sell", "--item", item, "--sold", "0", "--data", d]);
    assert_eq!(code, 2, "a usage error");
}

/// A seller restores its wallet from a backup older than its last sale (issue 13, item 2): the
/// next change starts from what the listing nodes show, not from the backup's stale offer, its
/// serial is above every one used (serial = max(wallet + 1, listed + 1, unix ms)), so the
/// seller never signs two offers under one serial; buyers see the right quantity and the
/// seller's own monitoring accuses nobody.
#[test]
fn a_wallet_restored_from_a_backup_never_equivocates_and_accuses_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let datas = setup(dir.path(), 1);
    let d = datas[0].to_str().unwrap();
    let item = "a brass ship's clock";
    let json = |args: &[&str]| -> (i32, Value) {
        let mut a = args.to_vec();
        a.extend(["--data", d, "--json"]);
        let (code, out) = run(&a);
        (code, serde_json::from_str(&out).unwrap_or(Value::Null))
    };
    let mut node = Node::start(&datas[0], &["--monitor-every", "1"]);
    let (_, p) = json(&[
        "publish",
        "--item",
        item,
        "--price",
        "80",
        "--quantity",
        "3",
    ]);
    let first = p["serial"].as_u64().unwrap();
    // The backup, taken with the node stopped.
    node.stop();
    let wallet = datas[0].join("wallet.redb");
    let backup = dir.path().join("wallet.backup");
    std::fs::copy(&wallet, &backup).unwrap();
    let mut node = Node::start(&datas[0], &["--monitor-every", "1"]);
    let (_, s) = json(&["sell", "--item", item, "--sold", "1"]);
    let second = s["serial"].as_u64().unwrap();
    assert!(second > first);
    // The disk is lost; the backup comes back (it knows only the first offer).
    node.stop();
    std::fs::copy(&backup, &wallet).unwrap();
    let node = Node::start(&datas[0], &["--monitor-every", "1"]);
    let (_, s) = json(&["sell", "--item", item, "--sold", "1"]);
    let third = s["serial"].as_u64().unwrap();
    assert!(
        third > second,
        "{third} after {second}: a serial used before would equivocate"
    );
    let (_, r) = json(&["retrieve", "--item", item]);
    let offers = r["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 1, "{r}");
    assert_eq!(
        offers[0]["quantity"], 1,
        "3 less two sales, not 3 less one: {r}"
    );
    // The monitor holds the receipts of the first and third offers (the second's went with
    // the lost disk): the first is superseded, the third current; nobody is accused.
    let status = || -> Value {
        serde_json::from_str(&run(&["status", "--data", node.d(), "--json"]).1).unwrap()
    };
    let runs_now = status()["monitoring"]["runs"].as_u64().unwrap();
    wait_for(
        || status()["monitoring"]["runs"].as_u64().unwrap() > runs_now + 1,
        "the seller's monitoring to run",
    );
    let m = &status()["monitoring"];
    assert_eq!(m["failed"], 0, "{m}");
    assert!(m["checked"].as_u64().unwrap() >= 1, "{m}");
}

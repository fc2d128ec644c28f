//! The load commands at a tiny scale (they run in the lab crate `candor-bench`, linked behind
//! the default `lab` feature): each runs to the end and reports the counts it was asked for.
//! Times are never asserted; the figures themselves are for BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_candor"))
        .arg("bench")
        .args(args)
        .arg("-q")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn bench_core_at_a_tiny_scale_counts_what_it_was_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(&[
        "core",
        "--max-w",
        "1000",
        "--publishes",
        "200",
        "--publishers",
        "4",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.contains("| 1000 |"), "{out}");
    assert!(
        out.contains("200 publishes from 4 concurrent publishers"),
        "{out}"
    );
}

#[test]
fn bench_net_at_a_tiny_scale_verifies_every_retrieve() {
    let out = bench(&["net", "--nodes", "6", "--ops", "12", "--clients", "2"]);
    assert!(out.contains("| 6 |"), "{out}");
    assert!(out.contains("12/12"), "every retrieve verified: {out}");
    assert!(out.contains("Ceilings, same run"), "{out}");
    // Scheme M through the same network flow.
    let out = bench(&[
        "net",
        "--nodes",
        "6",
        "--ops",
        "6",
        "--clients",
        "2",
        "--scheme",
        "m",
    ]);
    assert!(out.contains("scheme M"), "{out}");
    assert!(out.contains("6/6"), "every retrieve verified: {out}");
}

#[test]
fn bench_tree_at_a_tiny_scale_updates_every_key_and_verifies_its_proof() {
    let out = bench(&["tree", "--keys", "3000", "--batch", "256", "--runs", "5"]);
    // 3,000 keys in batches of 256: 12 steps; the proof of a present key verified.
    assert!(out.contains("| 3000 | 256 |"), "{out}");
    assert!(out.contains("(12 steps)"), "{out}");
    assert!(out.contains("Ceilings, same run"), "{out}");
}

//! Running the `candor` binary from the process-level tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::process::Command;

/// Runs `candor args…`: whether it succeeded, and what it printed (stdout then stderr).
pub fn candor(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_candor"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs `candor args…`, which must succeed; returns what it printed.
pub fn ok(args: &[&str]) -> String {
    let (good, out) = candor(args);
    assert!(good, "candor {args:?} failed: {out}");
    out
}

//! Running the `candor` binary from the process-level tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// A `candor node` process on a data folder, killed when dropped.
pub struct Node {
    pub data: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Starts `candor node --data DATA EXTRA…` and waits until its control API is up.
    pub fn start<S: AsRef<std::ffi::OsStr>>(data: &Path, extra: &[S]) -> Self {
        let _ = std::fs::remove_file(data.join("control.addr"));
        let child = Command::new(env!("CARGO_BIN_EXE_candor"))
            .args(["node", "--data", data.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(|| data.join("control.addr").exists(), "the node to start");
        Node {
            data: data.to_path_buf(),
            child: Some(child),
        }
    }

    /// The data folder, as an argument.
    pub fn d(&self) -> &str {
        self.data.to_str().unwrap()
    }

    /// Its first listen address, with its PeerId.
    pub fn addr(&self) -> String {
        std::fs::read_to_string(self.data.join("node.addr"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    /// SIGKILL: no destructor, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the node as a user would (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .arg(c.id().to_string())
                .status()
                .unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits up to 40 s for `f`, polling every 200 ms.
pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! A new user's run of the README (issue 10): the commands of its "Three nodes in three
//! terminals" block, extracted from README.md and run as written with real processes (each
//! `candor node` in the background, as in its own terminal), then a node stopped and started
//! again with no bootstrap: it rejoins on its own and sees its peers' offers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// The shell block under the heading `heading` in README.md.
fn block(readme: &str, heading: &str) -> Vec<String> {
    let after = readme
        .split_once(heading)
        .expect("the README has the section")
        .1;
    let body = after
        .split_once("```sh\n")
        .expect("a shell block")
        .1
        .split_once("```")
        .expect("the block ends")
        .0;
    body.lines().map(str::to_string).collect()
}

/// The block as a script a machine can run: the build line is the test's binary; each
/// `candor node` goes to the background and is waited for; the first client command waits
/// until the nodes have found each other (a person reads the first terminal first).
fn script(lines: &[String], bin_dir: &Path) -> String {
    let mut out = vec![
        "set -euo pipefail".to_string(),
        format!("export PATH={}:$PATH", bin_dir.display()),
    ];
    let mut nodes = Vec::new();
    let mut waited = false;
    for line in lines {
        let cmd = line.split('#').next().unwrap_or("").trim_end();
        if cmd.trim().is_empty() || cmd.trim_start().starts_with("cargo build") {
            continue;
        }
        if let Some(rest) = cmd.trim_start().strip_prefix("candor node ") {
            let data = rest
                .split_whitespace()
                .skip_while(|w| *w != "--data")
                .nth(1)
                .unwrap()
                .to_string();
            out.push(format!("candor node {rest} > {data}.log 2>&1 &"));
            out.push(format!(
                "for i in $(seq 200); do [ -f {data}/control.addr ] && break; sleep 0.1; done"
            ));
            nodes.push(data);
            continue;
        }
        if !nodes.is_empty() && !waited && cmd.trim_start().starts_with("candor ") {
            for n in &nodes {
                out.push(format!(
                    "for i in $(seq 300); do candor peers --data {n} --json | grep -c '\"connected\": true' | grep -q '^[2-9]' && break; sleep 0.1; done"
                ));
            }
            waited = true;
        }
        out.push(cmd.to_string());
    }
    out.join("\n") + "\n"
}

fn run(dir: &Path, bin_dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Stops every node still running in the folder (the test's end, pass or fail).
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in ["alice", "bob", "carol"] {
            if let Ok(pid) = std::fs::read_to_string(self.0.join(n).join("node.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

#[test]
fn the_readme_quick_start_runs_as_written_and_a_restarted_node_rejoins() {
    let readme = include_str!("../../../README.md");
    let lines = block(readme, "## Three nodes in three terminals");
    let bin = Path::new(env!("CARGO_BIN_EXE_candor"));
    let bin_dir = bin.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(dir.path());
    let s = script(&lines, bin_dir);
    let (ok, out) = run(dir.path(), bin_dir, &s);
    assert!(ok, "the README block failed:\n{s}\n---\n{out}");
    // What the README says the retrieve prints.
    assert!(
        out.contains("99.50 EUR") && out.contains("120.00 EUR"),
        "{out}"
    );
    assert!(out.contains("the node has stopped"), "{out}");

    // Bob comes back with no bootstrap: same address, rejoined, and he sees both offers with
    // every listing node verified (exit 0).
    let (ok, out) = run(
        dir.path(),
        bin_dir,
        "set -euo pipefail\n\
         candor node --data bob > bob.log 2>&1 &\n\
         for i in $(seq 200); do [ -f bob/control.addr ] && break; sleep 0.1; done\n\
         for i in $(seq 400); do candor peers --data bob --json | grep -c '\"connected\": true' | grep -q '^[2-9]' && break; sleep 0.1; done\n\
         candor peers --data bob\n\
         candor retrieve --data bob --item 'Blue Bicycle, 28 inch'\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("2 connected"), "{out}");
    assert!(
        out.contains("99.50 EUR") && out.contains("120.00 EUR"),
        "{out}"
    );
}

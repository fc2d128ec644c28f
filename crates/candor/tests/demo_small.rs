//! The demo's bookkeeping on small runs (issue 10, item 8): over many seeds of a 6-node
//! marketplace with one cheater, no honest node is accused and no cheat is counted as
//! unnoticed where it changed nothing (an omit-entry cheater on an item without offers).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

#[test]
fn small_demos_over_many_seeds_pass() {
    for seed in 1..=8u64 {
        let out = Command::new(env!("CARGO_BIN_EXE_candor"))
            .args([
                "demo",
                "--nodes",
                "6",
                "--cheaters",
                "1",
                "--sellers",
                "2",
                "--seed",
                &seed.to_string(),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "seed {seed}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Once per scheme.
        assert_eq!(text.matches("PASS").count(), 3, "seed {seed}: {text}");
        assert!(
            !text.contains("UNNOTICED") && !text.contains("ACCUSED"),
            "{text}"
        );
        // Every cheater was caught at least once ("caught on 0" would mean its strategy never
        // showed: the run would prove nothing about it).
        assert!(!text.contains("caught on 0"), "seed {seed}: {text}");
    }
}

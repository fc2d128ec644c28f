//! `candor bench lifecycle` at 1 % scale (10^4 publishes over 90 simulated days), asserting
//! counts, not times: a B or C node stores no more than what it counted inside its window
//! plus one boundary per counter, its storage is flat once the first L_max has passed, and
//! the buyer always sees the item's ten live offers. A scheme-M node holds no more records
//! than it counted inside the window (its live map drops what expired), flat likewise, and
//! keeps the proofs of the steps above its audit horizon only, as many on day 90 as on day 50.
#![allow(clippy::unwrap_used)]

use candor_bench::lifecycle::{simulate, Config, Point};
use candor_core::Scheme;

fn config(scheme: Scheme) -> Config {
    Config {
        scheme,
        publishes: 10_000,
        days: 90,
        every: 10,
        items: 100,
        counters: 8,
    }
}

/// After day 40 what a node stores stays within 10 %, and well below all it was sent.
fn assert_flat(points: &[Point], scheme: Scheme) {
    let late: Vec<u64> = points
        .iter()
        .filter(|p| p.day > 40)
        .map(|p| p.stored)
        .collect();
    let (lo, hi) = (late.iter().min().unwrap(), late.iter().max().unwrap());
    assert!(*hi as f64 <= *lo as f64 * 1.1, "{scheme:?}: {late:?}");
    assert!(
        *hi < points.last().unwrap().published / 2,
        "{scheme:?}: {late:?}"
    );
}

#[test]
fn b_and_c_store_only_their_window_and_show_every_live_offer() {
    let dir = tempfile::tempdir().unwrap();
    for (scheme, counters) in [(Scheme::Basic, 1), (Scheme::Counters, 8)] {
        let points = simulate(&config(scheme), dir.path(), |_| {}).unwrap();
        assert_eq!(points.len(), 9);
        for p in &points {
            assert!(
                p.stored <= p.in_window + counters,
                "{scheme:?} day {}: {} stored, {} in the window",
                p.day,
                p.stored,
                p.in_window
            );
            assert_eq!(p.live, 10, "{scheme:?} day {}", p.day);
        }
        // After the first L_max, storage is flat: within 10 % of the window's publishes,
        // whatever the day (10^4 / 90 a day, ~31 days kept).
        assert_flat(&points, scheme);
    }
}

#[test]
fn m_holds_only_live_records_and_shows_the_ten_live_offers_throughout() {
    let dir = tempfile::tempdir().unwrap();
    let points = simulate(&config(Scheme::Merkle), dir.path(), |_| {}).unwrap();
    assert_eq!(points.len(), 9);
    for p in &points {
        assert_eq!(p.live, 10, "day {}", p.day);
        assert!(
            p.stored <= p.in_window,
            "day {}: {} records, {} counted in the window",
            p.day,
            p.stored,
            p.in_window
        );
    }
    assert_flat(&points, Scheme::Merkle);
    // The step proofs kept are those above the audit horizon: flat too once L_max has
    // passed, and far fewer than all the steps made.
    let kept: Vec<u64> = points
        .iter()
        .filter(|p| p.day > 40)
        .map(|p| p.step_proofs)
        .collect();
    let (lo, hi) = (kept.iter().min().unwrap(), kept.iter().max().unwrap());
    assert!(*lo > 0 && *hi as f64 <= *lo as f64 * 1.15, "{kept:?}");
    let first = points.iter().find(|p| p.day > 40).unwrap().step_proofs;
    assert!(points.last().unwrap().step_proofs <= first * 115 / 100);
}

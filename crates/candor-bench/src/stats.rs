//! Timing that reports what a user would see: the median of many runs and its 95th
//! percentile, never the best run, beside the same run's ed25519 ceilings (single and batch
//! verification measured in this process, so ratios hold across machines and load).

use candor_core::{tags, BatchVerifier, Keypair, Signature};
use std::time::Instant;

/// Durations of repeated runs of one measurement, in seconds.
#[derive(Debug, Clone)]
pub(crate) struct Samples(Vec<f64>);

impl Samples {
    /// The sorted samples of `runs` timed calls of `f` (at least one); the last call's value.
    pub(crate) fn take<T, E>(
        runs: usize,
        mut f: impl FnMut() -> Result<T, E>,
    ) -> Result<(T, Self), E> {
        let mut secs = Vec::with_capacity(runs.max(1));
        let t = Instant::now();
        let mut last = f()?;
        secs.push(t.elapsed().as_secs_f64());
        while secs.len() < runs {
            let t = Instant::now();
            last = f()?;
            secs.push(t.elapsed().as_secs_f64());
        }
        secs.sort_by(f64::total_cmp);
        Ok((last, Self(secs)))
    }

    /// The samples of `runs` calls of an infallible `f`.
    pub(crate) fn of(runs: usize, mut f: impl FnMut()) -> Self {
        let taken: Result<((), Self), std::convert::Infallible> = Self::take(runs, || {
            f();
            Ok(())
        });
        match taken {
            Ok((_, s)) => s,
            Err(never) => match never {},
        }
    }

    /// How many runs were timed.
    pub(crate) fn runs(&self) -> usize {
        self.0.len()
    }

    /// The value at quantile `q` in [0, 1] (nearest rank).
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.0.len() - 1) as f64).round() as usize;
        self.0[rank.min(self.0.len() - 1)]
    }

    /// The median run, in seconds.
    pub(crate) fn median(&self) -> f64 {
        let n = self.0.len();
        match n {
            0 => 0.0,
            _ if n % 2 == 1 => self.0[n / 2],
            _ => (self.0[n / 2 - 1] + self.0[n / 2]) / 2.0,
        }
    }

    /// The 95th-percentile run, in seconds.
    pub(crate) fn p95(&self) -> f64 {
        self.quantile(0.95)
    }

    /// "median / p95" in milliseconds, as the tables print it.
    pub(crate) fn ms(&self) -> String {
        format!("{:.3} / {:.3} ms", self.median() * 1e3, self.p95() * 1e3)
    }
}

/// Operations per second at the median run, for `runs` calls of `f` doing `n` operations.
pub(crate) fn rate(n: usize, runs: usize, f: impl FnMut()) -> f64 {
    n as f64 / Samples::of(runs, f).median().max(1e-12)
}

/// This machine's ed25519 (ZIP-215) verification rates, measured in the same run as the
/// figures beside them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ceilings {
    /// Single verifications per second.
    pub(crate) single: f64,
    /// Signatures per second when verified in batches of 512.
    pub(crate) batch: f64,
}

/// A set of signed messages to verify.
pub(crate) struct Signed {
    key: Keypair,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<Signature>,
}

impl Signed {
    /// `n` distinct 160-byte messages, each signed.
    pub(crate) fn new(n: usize) -> Self {
        let key = Keypair::generate(&mut rand_core::OsRng);
        let msgs: Vec<Vec<u8>> = (0..n as u32).map(|i| i.to_be_bytes().repeat(40)).collect();
        let sigs = msgs.iter().map(|m| key.sign(tags::OFFER, m)).collect();
        Self { key, msgs, sigs }
    }

    /// Verifies every signature one by one; whether all held.
    pub(crate) fn verify_single(&self) -> bool {
        let pk = self.key.public();
        self.msgs
            .iter()
            .zip(&self.sigs)
            .all(|(m, s)| pk.verify(tags::OFFER, m, s).is_ok())
    }

    /// Verifies every signature in batches of `size`; whether all held.
    pub(crate) fn verify_batched(&self, size: usize) -> bool {
        let pk = self.key.public();
        let pairs: Vec<_> = self.msgs.iter().zip(&self.sigs).collect();
        pairs.chunks(size.max(1)).all(|chunk| {
            let mut b = BatchVerifier::new();
            for (m, s) in chunk {
                b.push(pk, tags::OFFER, m, **s);
            }
            b.verify_all()
        })
    }
}

impl Ceilings {
    /// Measures both rates: the median of 7 runs over 4,096 signatures each.
    pub(crate) fn measure() -> Self {
        let n = 4096;
        let s = Signed::new(n);
        let single = rate(n, 7, || {
            std::hint::black_box(s.verify_single());
        });
        let batch = rate(n, 7, || {
            std::hint::black_box(s.verify_batched(512));
        });
        Self { single, batch }
    }

    /// The line every table is printed under.
    pub(crate) fn line(&self) -> String {
        format!(
            "Ceilings, same run: ed25519 (ZIP-215) single verification {:.0}/s \
             ({:.1} µs each), batch verification (512 per batch) {:.0}/s ({:.1} µs each, \
             {:.1}× faster); medians of 7 runs.",
            self.single,
            1e6 / self.single,
            self.batch,
            1e6 / self.batch,
            self.batch / self.single
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_p95_are_of_the_runs_not_the_best_one() {
        let s = Samples(vec![1.0, 2.0, 3.0, 4.0, 100.0]);
        assert_eq!(s.median(), 3.0);
        assert_eq!(s.p95(), 100.0);
        assert_eq!(Samples(vec![1.0, 3.0]).median(), 2.0);
        let mut calls = 0;
        let (v, s) = Samples::take(4, || {
            calls += 1;
            Ok::<_, ()>(calls)
        })
        .unwrap();
        assert_eq!((v, s.runs()), (4, 4));
        assert!(s.0.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn batched_and_single_verification_agree() {
        let s = Signed::new(40);
        assert!(s.verify_single());
        assert!(s.verify_batched(16));
    }
}

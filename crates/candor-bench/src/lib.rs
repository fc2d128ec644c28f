//! # candor-bench
//!
//! The load commands behind `candor bench …` (part of the lab: the `candor` binary links them
//! behind its default-on `lab` feature). Each measures on this machine and prints its figures
//! beside the machine's own ed25519 ceiling measured in the same run, for BENCHMARKS.md:
//!
//! - [`costs`]: signatures, the device, the buyer's check against |W|, durable publishes with
//!   group commit (`candor bench core`);
//! - [`lifecycle`]: a node under a steady publish rate for months of simulated time: storage
//!   and a retrieve's cost against time, per scheme, with an SVG plot (`candor bench lifecycle`);
//! - [`net`]: publish and retrieve round trips across N in-process nodes (`candor bench net`);
//! - [`reads`]: retrieves per second from a node whose device is slow to sign `Read`s, one
//!   buyer against many served by batched `Read`s (`candor bench reads`);
//! - [`schemes`]: schemes B, C and M side by side, with an SVG plot (`candor bench schemes`);
//! - [`tpm`]: the TPM statements on swtpm (`candor bench tpm`);
//! - [`tree`]: scheme M's tree alone: updates through the step path, proof size and
//!   verification (`candor bench tree`).

pub mod costs;
pub mod lifecycle;
pub mod net;
pub mod reads;
pub mod schemes;
mod stats;
pub mod tpm;
pub mod tree;

use thiserror::Error;

/// The node time the benchmarks publish at (unix seconds, 2023-11-14): fixed, so that runs
/// compare; offers expire a day after it.
pub(crate) const NOW: u64 = 1_700_000_000;

/// Why a benchmark could not run to the end.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The trusted device failed.
    #[error("trusted device: {0}")]
    Device(#[from] candor_device::DeviceError),
    /// Enrolling a node failed.
    #[error("enrolment: {0}")]
    Enrol(#[from] candor_listing::EnrolError),
    /// A listing node would not open.
    #[error("listing node: {0}")]
    Open(#[from] candor_listing::OpenError),
    /// The listing store failed.
    #[error("listing store: {0}")]
    Store(#[from] candor_store::StoreError),
    /// Another step of the benchmark failed; the reason says which and why.
    #[error("{0}")]
    Failed(String),
}

/// Unix seconds from the system clock (the listing service's clock).
pub(crate) use candor_net::system_clock as now;

//! # candor-demo
//!
//! The lab's commands that run a whole marketplace (the `candor` binary links them behind its
//! default-on `lab` feature; no product crate depends on them):
//!
//! - [`demo`]: `candor demo`, ~24 nodes over TCP on this machine, sellers, buyers and cheating
//!   listing nodes caught; it exits non-zero if an honest node is accused or a cheat unnoticed;
//! - [`walkthrough`]: `candor walkthrough`, the same story in one process, step by step;
//! - [`debug`]: hidden tools the crash tests drive (`candor debug …`).

mod catalogue;
pub mod debug;
pub mod demo;
pub mod walkthrough;

use thiserror::Error;

/// Why a lab command could not run to the end.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LabError {
    /// The trusted device failed.
    #[error("trusted device: {0}")]
    Device(#[from] candor_device::DeviceError),
    /// The node's device could not be opened.
    #[error("device: {0}")]
    OpenDevice(#[from] candor_node::device::OpenDeviceError),
    /// A data file could not be read or written.
    #[error(transparent)]
    File(#[from] candor_node::files::FileError),
    /// Enrolling a node failed.
    #[error("enrolment: {0}")]
    Enrol(#[from] candor_listing::EnrolError),
    /// A listing node would not open.
    #[error("listing node: {0}")]
    Open(#[from] candor_listing::OpenError),
    /// The listing store failed.
    #[error("listing store: {0}")]
    Store(#[from] candor_store::StoreError),
    /// Another step failed; the reason says which and why.
    #[error("{0}")]
    Failed(String),
}

/// Unix seconds from the system clock (the listing service's clock).
pub(crate) use candor_net::system_clock as now;

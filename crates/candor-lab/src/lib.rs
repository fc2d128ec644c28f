//! # candor-lab
//!
//! What tests, benchmarks and the demo use to attack and measure a Candor node, kept out of
//! the product crates (nothing in `candor-core`, `candor-device`, `candor-store`,
//! `candor-listing` or `candor-net` depends on it):
//!
//! - the adversary suite: [`CheatingNode`], built from an honest node, runs one [`Strategy`]
//!   a rational listing node might try (DESIGN.md §2); the tests show each one caught;
//! - deliberately broken and slow devices: [`EquivocatingDevice`] (signs a value twice),
//!   [`FailingDevice`] (fails on command before or after counting), [`SlowDevice`];
//! - the [`conformance`] suite every `TrustedDevice` backend runs in its tests;
//! - [`SyntheticRetrieve`], a node's answer made directly for benchmarks.

mod adversary;
pub mod conformance;
mod devices;
mod fixtures;

pub use adversary::{CheatingNode, Strategy};
pub use devices::{EquivocatingDevice, FailingDevice, Fault, Faults, SlowDevice};
pub use fixtures::{FixtureError, SyntheticRetrieve};

//! # candor-node
//!
//! What a Candor node keeps on disk and the device it runs on, shared by the `candor` command
//! and the lab's commands (demo, walk-through): the data folder's layout and the atomic writes
//! of keys, certificates and trust (`files`), and the trusted device a folder names — the
//! software device or a TPM 2.0 over TCP or `/dev/tpmrm0` (`device`).

pub mod device;
pub mod files;

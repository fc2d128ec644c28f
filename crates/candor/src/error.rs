//! The command's errors: one enum whose variants keep their causes as sources, and the exit
//! code and `--json` kind each one maps to (README, "Exit codes").

use candor_core::endorsement::EndorsementError;
use candor_core::{CertError, DecodeError, EvidenceError};
use candor_device::DeviceError;
use candor_listing::{EnrolError, OpenError};
use candor_node::files::FileError;
use std::path::PathBuf;
use thiserror::Error;

/// What went wrong, for a person.
#[derive(Debug, Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("trusted device: {0}")]
    Device(#[from] DeviceError),
    #[error("enrolment: {0}")]
    Enrol(#[from] EnrolError),
    #[error("device: {0}")]
    OpenDevice(#[from] candor_node::device::OpenDeviceError),
    #[error("listing node: {0}")]
    Open(#[from] OpenError),
    #[error("listing store: {0}")]
    Store(#[from] candor_store::StoreError),
    /// The running node's control API could not be used.
    #[error("the node's control API: {0}")]
    Api(#[from] ApiCallError),
    /// The node's configuration is unusable.
    #[error("node configuration: {0}")]
    Config(#[from] ConfigError),
    /// The overlay could not start.
    #[error("network: {0}")]
    Net(#[from] candor_net::NetError),
    /// Kept or given evidence could not be read, or does not hold.
    #[error(transparent)]
    Evidence(#[from] EvidenceFileError),
    /// A CA bundle given to `authority trust-ek` is unusable.
    #[error("{path}: {problem}")]
    CaBundle {
        path: PathBuf,
        #[source]
        problem: CaBundleError,
    },
    /// The buyer's wallet of seen counter statements.
    #[error(transparent)]
    Wallet(#[from] crate::wallet::WalletError),
    /// An operating-system resource the node runs on (its async runtime, its control socket).
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Writing an answer as JSON failed.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// `candor stop`: the node did not end in time.
    #[error("the node was asked to stop but is still finishing after {0} s")]
    StopTimeout(u64),
    /// The demo, the walk-through or a lab command failed.
    #[cfg(feature = "lab")]
    #[error(transparent)]
    Lab(#[from] candor_demo::LabError),
    /// A benchmark failed.
    #[cfg(feature = "lab")]
    #[error(transparent)]
    Bench(#[from] candor_bench::BenchError),
    /// A check failed or a cheat was found (exit 1).
    #[error("{0}")]
    Check(String),
    /// The command was used wrongly, or its input is out of bounds (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Fewer than k listing nodes verified (exit 3).
    #[error("{0}")]
    Partial(String),
    /// The node is not running (exit 4).
    #[error("{0}")]
    NotRunning(String),
    /// An error whose answer was already printed (under `--json`); only its exit code is left.
    #[error("{0}")]
    Reported(Box<CliError>),
}

/// Talking to the running node's control API.
#[derive(Debug, Error)]
pub(crate) enum ApiCallError {
    #[error("cannot reach it: {0}")]
    Unreachable(#[source] Box<ureq::Error>),
    #[error("reading its answer: {0}")]
    Read(#[source] Box<ureq::Error>),
    /// The node answered with an error of its own.
    #[error("{message} (HTTP {status})")]
    Refused { status: u16, message: String },
    #[error("an answer that is not what this version expects: {0}")]
    Unexpected(#[source] serde_json::Error),
}

/// The node's configuration: `node.toml`, flags and the certificate they must agree with.
#[derive(Debug, Error)]
pub(crate) enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("address {given:?}: {source}")]
    Address {
        given: String,
        #[source]
        source: candor_net::MultiaddrError,
    },
    #[error("--trust {0:?} is not a 64-hex-digit key")]
    TrustKey(String),
    #[error(
        "this node's certificate ({path}) does not verify against the trusted authorities: {source}"
    )]
    Untrusted {
        path: PathBuf,
        #[source]
        source: CertError,
    },
    #[error("control API on {addr}: {source}")]
    Control {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Evidence files: the node's kept pieces and `candor evidence verify`.
#[derive(Debug, Error)]
pub(crate) enum EvidenceFileError {
    #[error("no evidence {id} in {dir} (see `candor evidence list`)")]
    NotFound { id: String, dir: PathBuf },
    #[error("{path} was written by another version of Candor (evidence format {found}); this one reads format {expected}. There is no conversion (nothing runs in production yet): move it aside, and keep the Candor that wrote it to read it")]
    OtherFormat {
        path: PathBuf,
        found: u8,
        expected: u8,
    },
    #[error("{path} is damaged: {source}")]
    Damaged {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
    #[error("{path} is not evidence: {source}")]
    NotEvidence {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
    #[error("the evidence does not hold: {0}")]
    DoesNotHold(#[source] EvidenceError),
}

/// Why a CA bundle is refused.
#[derive(Debug, Error)]
pub(crate) enum CaBundleError {
    #[error("over {0} bytes: not a CA certificate bundle")]
    TooLarge(u64),
    #[error(transparent)]
    Parse(#[from] EndorsementError),
    #[error(
        "it holds no self-signed root certificate: add the manufacturer's root with its intermediates"
    )]
    NoRoot,
}

/// The exit codes (README, "Exit codes").
pub(crate) mod exit {
    /// A check failed, a cheat was found, or the command failed.
    pub(crate) const FAILED: u8 = 1;
    /// Usage: a wrong flag, or input out of bounds.
    pub(crate) const USAGE: u8 = 2;
    /// Partial: fewer than k listing nodes verified.
    pub(crate) const PARTIAL: u8 = 3;
    /// The node is not running.
    pub(crate) const NOT_RUNNING: u8 = 4;
}

impl CliError {
    /// The process's exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_)
            | Self::Config(ConfigError::TrustKey(_) | ConfigError::Address { .. }) => exit::USAGE,
            Self::Partial(_) => exit::PARTIAL,
            Self::NotRunning(_) => exit::NOT_RUNNING,
            Self::Reported(e) => e.exit_code(),
            _ => exit::FAILED,
        }
    }

    /// A short name for `--json` error bodies.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Check(_) => "check-failed",
            Self::Usage(_)
            | Self::Config(ConfigError::TrustKey(_) | ConfigError::Address { .. }) => "usage",
            Self::Partial(_) => "partial",
            Self::NotRunning(_) => "not-running",
            Self::Reported(e) => e.kind(),
            _ => "failed",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_readme() {
        let usage = CliError::Config(ConfigError::TrustKey("zz".into()));
        assert_eq!((usage.exit_code(), usage.kind()), (exit::USAGE, "usage"));
        let address = CliError::Config(ConfigError::Address {
            given: "nowhere".into(),
            source: "nowhere".parse::<candor_net::Multiaddr>().unwrap_err(),
        });
        assert_eq!(address.exit_code(), exit::USAGE);
        let unreadable = CliError::Config(ConfigError::Read {
            path: PathBuf::from("node.toml"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(unreadable.exit_code(), exit::FAILED);
        let partial = CliError::Reported(Box::new(CliError::Partial("1 of 3".into())));
        assert_eq!(
            (partial.exit_code(), partial.kind()),
            (exit::PARTIAL, "partial")
        );
        let missing = CliError::Evidence(EvidenceFileError::NotFound {
            id: "00".into(),
            dir: PathBuf::from("e"),
        });
        assert_eq!(
            (missing.exit_code(), missing.kind()),
            (exit::FAILED, "failed")
        );
        let refused = CliError::Api(ApiCallError::Refused {
            status: 500,
            message: "store full".into(),
        });
        assert_eq!(refused.exit_code(), exit::FAILED);
        assert_eq!(
            refused.to_string(),
            "the node's control API: store full (HTTP 500)"
        );
    }

    #[test]
    fn causes_are_kept_as_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use");
        let e = CliError::Config(ConfigError::Control {
            addr: "127.0.0.1:1".into(),
            source: io,
        });
        let inner = std::error::Error::source(&e).and_then(std::error::Error::source);
        assert!(inner.is_some_and(|s| s.to_string() == "in use"));
    }
}

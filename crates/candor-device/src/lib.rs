//! # candor-device
//!
//! The trusted device behind a Candor listing node: monotonic counters that can only be read
//! or incremented, and a key that signs only counter statements (`Inc`, `Read`; DESIGN.md §4).
//! [`TrustedDevice`] is the interface every backend implements.
//!
//! [`SoftwareDevice`] keeps its key and counters in a file. **It protects nothing against the
//! machine's owner**, who can read the key or roll the file back: it exists for development and
//! simulation, says so when it opens, and is certified as what it is. The TPM 2.0 backend
//! (`candor-tpm`) implements the same interface; both pass one conformance suite (in
//! `candor-lab`, with the deliberately broken devices).
//!
//! ```
//! use candor_core::{Digest, Keypair, PeerId};
//! use candor_device::{SoftwareDevice, TrustedDevice};
//! let dir = tempfile::tempdir().unwrap();
//! let node = Keypair::generate(&mut rand_core::OsRng);
//! let peer = PeerId::from_ed25519(&node.public());
//! let mut dev = SoftwareDevice::create(&dir.path().join("device"), peer, 4).unwrap();
//! let incs = dev.inc_sign_batch(2, &[Digest([1; 32]), Digest([2; 32])]).unwrap();
//! assert_eq!((incs[0].inc.value, incs[1].inc.value), (1, 2));
//! assert_eq!(dev.read_sign(2, [9; 32]).unwrap().read.value, 2);
//! ```

mod software;

pub use software::{SoftwareDevice, MAX_UNACKNOWLEDGED};

use candor_core::endorsement::Credential;
use candor_core::{CounterId, DeviceKey, Digest, Endorsement, PeerId, SignedInc, SignedRead};
use std::path::PathBuf;
use thiserror::Error;

/// Why a device operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Reading or writing the device state failed.
    #[error("device state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not a valid device state (truncated, corrupted, or not ours).
    #[error("device state {path} is corrupt ({reason}); refusing to use it. Do not put an older copy of it back: a device whose counters go back signs a second statement for values it already signed, which is exactly what makes a node an equivocator. Keep the damaged file for inspection, then make a new device (a new node key and data folder: `candor device init`) and have it certified again (`candor device enroll`); offers you published stay in your wallet and can be published again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A device state already exists where a new one was to be made.
    #[error("a device state already exists at {0}; refusing to overwrite it")]
    Exists(PathBuf),
    /// Another process holds the device.
    #[error("device state {0} is in use by another process")]
    Locked(PathBuf),
    /// The counter does not exist on this device.
    #[error("the device has no counter {0}")]
    UnknownCounter(CounterId),
    /// Too many statements await acknowledgement.
    #[error(
        "{0} statements await acknowledgement; the node must store and acknowledge them first"
    )]
    TooManyUnacknowledged(usize),
    /// An acknowledgement beyond the counter's value.
    #[error("acknowledgement of value {value} beyond counter {counter}'s value {current}")]
    AckBeyondValue {
        /// The counter.
        counter: CounterId,
        /// The value acknowledged.
        value: u64,
        /// The counter's value.
        current: u64,
    },
    /// The counter would overflow.
    #[error("counter {0} is exhausted")]
    Exhausted(CounterId),
    /// A hardware backend failed (the TPM answered an error, or could not be reached).
    #[error("trusted device backend: {what}")]
    Backend {
        /// What failed, in words a person can act on.
        what: String,
        /// The backend's own error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

/// A trusted device: monotonic counters and a key that signs only counter statements.
///
/// Ordering: per counter, a `read_sign` returns a value that includes every `inc_sign` that
/// returned before it was called (callers hold `&mut self`, so calls are serialised).
pub trait TrustedDevice: Send {
    /// The device's public key.
    fn device_key(&self) -> DeviceKey;

    /// The node this device is bound to.
    fn peer(&self) -> &PeerId;

    /// The device's counter ids.
    fn counters(&self) -> Vec<CounterId>;

    /// A counter's current value (not signed; for the node's own reconciliation).
    fn value(&self, counter: CounterId) -> Result<u64, DeviceError>;

    /// `Read(value, nonce)` for `counter`.
    fn read_sign(&mut self, counter: CounterId, nonce: [u8; 32])
        -> Result<SignedRead, DeviceError>;

    /// Increments `counter` once per payload, binding each; the whole batch is made durable
    /// once, before any statement is returned.
    fn inc_sign_batch(
        &mut self,
        counter: CounterId,
        payloads: &[Digest],
    ) -> Result<Vec<SignedInc>, DeviceError>;

    /// One increment.
    fn inc_sign(&mut self, counter: CounterId, payload: Digest) -> Result<SignedInc, DeviceError> {
        self.inc_sign_batch(counter, &[payload])?
            .pop()
            .ok_or(DeviceError::UnknownCounter(counter))
    }

    /// The stored statement for `value`, if the node has not yet acknowledged it.
    fn reissue(&mut self, counter: CounterId, value: u64)
        -> Result<Option<SignedInc>, DeviceError>;

    /// The node has durably stored every value up to `value`: the device may forget them.
    fn acknowledge(&mut self, counter: CounterId, value: u64) -> Result<(), DeviceError>;

    /// The highest value the node acknowledged.
    fn acknowledged(&self, counter: CounterId) -> Result<u64, DeviceError>;

    /// What this device protects, in words (the software device: nothing).
    fn protection(&self) -> &'static str;

    /// What ties the device to hardware, for the authority's residence check: a TPM's EK
    /// certificate (and any CA certificates it has); none for a device without a hardware
    /// root (the software device).
    fn endorsement(&mut self) -> Result<Option<Endorsement>, DeviceError>;

    /// Opens the authority's `credential` (TPM2_ActivateCredential with the EK and the
    /// device's signing key) and returns its secret: possible only if the signing key lives in
    /// the TPM whose EK the credential was made for. A device without a hardware root refuses.
    fn activate_credential(&mut self, credential: &Credential) -> Result<Vec<u8>, DeviceError>;
}

impl DeviceError {
    /// A backend failure described by `what`, with the backend's own error as its source.
    pub fn backend(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A backend failure with no underlying error.
    pub fn backend_msg(what: impl Into<String>) -> Self {
        Self::Backend {
            what: what.into(),
            source: None,
        }
    }
}

/// The refusal of a device without a hardware root asked to open a credential.
fn no_hardware_root() -> DeviceError {
    DeviceError::backend_msg("this device has no hardware root: it cannot open a credential")
}

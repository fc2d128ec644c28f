//! A device that fails on command, for tests of what a node does after an error in the middle
//! of a write: the device may have counted (a TPM error after NV_Increment) or not, and the
//! statement may be recoverable (a software device keeps it) or lost (a TPM whose audit
//! session is gone).

use candor_core::{CounterId, DeviceKey, Digest, PeerId, SignedInc, SignedRead};
use candor_device::{DeviceError, TrustedDevice};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// How the next increment fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It fails before the device counts anything.
    BeforeCount,
    /// The device counts the whole batch, then the call fails; the statements can be reissued.
    AfterCount,
    /// The device counts the whole batch, then the call fails, and the statements are lost
    /// for good (reissue finds nothing: the values can only be covered by gaps).
    AfterCountLost,
    /// Every call fails until the fault is cleared (a device that went away).
    Down,
}

/// The test's handle on a [`FailingDevice`]: arm a fault while the node holds the device.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<Option<Fault>>>);

impl Faults {
    /// The next increment fails as `fault` says (`Down`: every call until [`Faults::clear`]).
    pub fn arm(&self, fault: Fault) {
        *self.lock() = Some(fault);
    }

    /// No fault.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Fault>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn down(&self) -> bool {
        *self.lock() == Some(Fault::Down)
    }

    /// Takes a one-shot fault (a `Down` stays).
    fn take(&self) -> Option<Fault> {
        let mut f = self.lock();
        match *f {
            Some(Fault::Down) => Some(Fault::Down),
            _ => f.take(),
        }
    }
}

fn injected(what: &str) -> DeviceError {
    DeviceError::backend_msg(format!("injected fault: {what}"))
}

/// Wraps a device; fails when its [`Faults`] say so.
#[derive(Debug)]
pub struct FailingDevice<D> {
    inner: D,
    faults: Faults,
    lost: BTreeSet<(CounterId, u64)>,
}

impl<D> FailingDevice<D> {
    /// Wraps `inner`; returns the handle that arms faults.
    pub fn new(inner: D) -> (Self, Faults) {
        let faults = Faults::default();
        (
            Self {
                inner,
                faults: faults.clone(),
                lost: BTreeSet::new(),
            },
            faults,
        )
    }
}

impl<D: TrustedDevice> TrustedDevice for FailingDevice<D> {
    fn device_key(&self) -> DeviceKey {
        self.inner.device_key()
    }
    fn peer(&self) -> &PeerId {
        self.inner.peer()
    }
    fn counters(&self) -> Vec<CounterId> {
        self.inner.counters()
    }
    fn value(&self, counter: CounterId) -> Result<u64, DeviceError> {
        if self.faults.down() {
            return Err(injected("the device is down"));
        }
        self.inner.value(counter)
    }
    fn read_sign(
        &mut self,
        counter: CounterId,
        nonce: [u8; 32],
    ) -> Result<SignedRead, DeviceError> {
        if self.faults.down() {
            return Err(injected("the device is down"));
        }
        self.inner.read_sign(counter, nonce)
    }
    fn inc_sign_batch(
        &mut self,
        counter: CounterId,
        payloads: &[Digest],
    ) -> Result<Vec<SignedInc>, DeviceError> {
        match self.faults.take() {
            None => self.inner.inc_sign_batch(counter, payloads),
            Some(Fault::BeforeCount) | Some(Fault::Down) => {
                Err(injected("the increment failed before counting"))
            }
            Some(f @ (Fault::AfterCount | Fault::AfterCountLost)) => {
                let incs = self.inner.inc_sign_batch(counter, payloads)?;
                if f == Fault::AfterCountLost {
                    self.lost
                        .extend(incs.iter().map(|i| (counter, i.inc.value)));
                }
                Err(injected("the increment failed after counting"))
            }
        }
    }
    fn reissue(
        &mut self,
        counter: CounterId,
        value: u64,
    ) -> Result<Option<SignedInc>, DeviceError> {
        if self.faults.down() {
            return Err(injected("the device is down"));
        }
        if self.lost.contains(&(counter, value)) {
            return Ok(None);
        }
        self.inner.reissue(counter, value)
    }
    fn acknowledge(&mut self, counter: CounterId, value: u64) -> Result<(), DeviceError> {
        if self.faults.down() {
            return Err(injected("the device is down"));
        }
        self.inner.acknowledge(counter, value)
    }
    fn acknowledged(&self, counter: CounterId) -> Result<u64, DeviceError> {
        self.inner.acknowledged(counter)
    }
    fn protection(&self) -> &'static str {
        "NOTHING: a test device that fails on command"
    }
    fn endorsement(&mut self) -> Result<Option<candor_core::Endorsement>, DeviceError> {
        self.inner.endorsement()
    }
    fn activate_credential(
        &mut self,
        credential: &candor_core::endorsement::Credential,
    ) -> Result<Vec<u8>, DeviceError> {
        self.inner.activate_credential(credential)
    }
}

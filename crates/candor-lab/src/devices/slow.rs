//! A device that takes a fixed time per increment and per `Read`, like a hardware TPM, for
//! benchmarks and for tests of what a slow device makes the node do.

use candor_core::{CounterId, DeviceKey, Digest, PeerId, SignedInc, SignedRead};
use candor_device::{DeviceError, TrustedDevice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Wraps a device and sleeps `delay` in every `inc_sign_batch` call (one increment per call
/// in scheme M, where a whole batch is one step), and `read_delay` in every `read_sign`.
/// Counts the `Read`s it signed.
#[derive(Debug)]
pub struct SlowDevice<D> {
    inner: D,
    delay: Duration,
    read_delay: Duration,
    reads: Arc<AtomicU64>,
}

impl<D> SlowDevice<D> {
    /// `inner`, taking `delay` per increment call (and no extra time per `Read`).
    pub fn new(inner: D, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            read_delay: Duration::ZERO,
            reads: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same, taking `delay` per `Read` too.
    pub fn reading(mut self, delay: Duration) -> Self {
        self.read_delay = delay;
        self
    }

    /// How many `Read`s it has signed, shared (still readable once the device is moved).
    pub fn read_count(&self) -> Arc<AtomicU64> {
        self.reads.clone()
    }
}

impl<D: TrustedDevice> TrustedDevice for SlowDevice<D> {
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
        self.inner.value(counter)
    }
    fn read_sign(
        &mut self,
        counter: CounterId,
        nonce: [u8; 32],
    ) -> Result<SignedRead, DeviceError> {
        std::thread::sleep(self.read_delay);
        let read = self.inner.read_sign(counter, nonce)?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(read)
    }
    fn inc_sign_batch(
        &mut self,
        counter: CounterId,
        payloads: &[Digest],
    ) -> Result<Vec<SignedInc>, DeviceError> {
        std::thread::sleep(self.delay * payloads.len() as u32);
        self.inner.inc_sign_batch(counter, payloads)
    }
    fn reissue(
        &mut self,
        counter: CounterId,
        value: u64,
    ) -> Result<Option<SignedInc>, DeviceError> {
        self.inner.reissue(counter, value)
    }
    fn acknowledge(&mut self, counter: CounterId, value: u64) -> Result<(), DeviceError> {
        self.inner.acknowledge(counter, value)
    }
    fn acknowledged(&self, counter: CounterId) -> Result<u64, DeviceError> {
        self.inner.acknowledged(counter)
    }
    fn protection(&self) -> &'static str {
        self.inner.protection()
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

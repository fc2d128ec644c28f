//! A deliberately broken device, for adversarial tests: it can be told to sign a second
//! payload for a value it already used. A correct verifier must turn that into transferable
//! equivocation evidence.

use candor_core::{CounterId, DeviceKey, Digest, PeerId, SignedInc, SignedRead};
use candor_device::{DeviceError, SoftwareDevice, TrustedDevice};

/// Wraps a [`SoftwareDevice`]; after [`EquivocatingDevice::rewind`], its next increment
/// re-signs the counter's previous value with the new payload instead of counting up.
#[derive(Debug)]
pub struct EquivocatingDevice {
    inner: SoftwareDevice,
    signer: candor_core::Ed25519StatementSigner,
    rewind: Option<CounterId>,
}

impl EquivocatingDevice {
    /// A broken device in memory. It needs its key, so it makes its own.
    pub fn new(peer: PeerId, counters: u32) -> Self {
        let key = candor_core::Keypair::generate(&mut rand_core::OsRng);
        let signer = candor_core::Ed25519StatementSigner::new(key, peer.clone());
        let inner = SoftwareDevice::in_memory(peer, counters);
        Self {
            inner,
            signer,
            rewind: None,
        }
    }

    /// The next increment on `counter` re-uses the current value.
    pub fn rewind(&mut self, counter: CounterId) {
        self.rewind = Some(counter);
    }
}

impl TrustedDevice for EquivocatingDevice {
    fn device_key(&self) -> DeviceKey {
        self.signer.device_key()
    }
    fn peer(&self) -> &PeerId {
        self.signer.peer()
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
        let v = self.inner.value(counter)?;
        Ok(self.signer.sign_read(counter, v, nonce))
    }
    fn inc_sign_batch(
        &mut self,
        counter: CounterId,
        payloads: &[Digest],
    ) -> Result<Vec<SignedInc>, DeviceError> {
        let mut out = Vec::with_capacity(payloads.len());
        for p in payloads {
            if self.rewind == Some(counter) {
                self.rewind = None;
                let v = self.inner.value(counter)?;
                out.push(self.signer.sign_inc(counter, v, *p));
            } else {
                let v = self.inner.inc_sign(counter, *p)?.inc.value;
                self.inner.acknowledge(counter, v)?;
                out.push(self.signer.sign_inc(counter, v, *p));
            }
        }
        Ok(out)
    }
    fn reissue(&mut self, _: CounterId, _: u64) -> Result<Option<SignedInc>, DeviceError> {
        Ok(None)
    }
    fn acknowledge(&mut self, _: CounterId, _: u64) -> Result<(), DeviceError> {
        Ok(())
    }
    fn acknowledged(&self, counter: CounterId) -> Result<u64, DeviceError> {
        self.inner.value(counter)
    }
    fn protection(&self) -> &'static str {
        "NOTHING: a deliberately broken test device that equivocates"
    }

    fn endorsement(&mut self) -> Result<Option<candor_core::Endorsement>, DeviceError> {
        Ok(None)
    }
    fn activate_credential(
        &mut self,
        _credential: &candor_core::endorsement::Credential,
    ) -> Result<Vec<u8>, DeviceError> {
        Err(DeviceError::backend_msg(
            "this device has no hardware root: it cannot open a credential",
        ))
    }
}

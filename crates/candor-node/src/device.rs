//! The device behind this node: the software device (development; protects nothing) or a
//! TPM 2.0 (swtpm over TCP for development and tests, `/dev/tpmrm0` in real use).

use crate::files::FileError;
use candor_core::{CounterId, DeviceKey, Digest, PeerId, SignedInc, SignedRead};
use candor_device::{DeviceError, SoftwareDevice, TrustedDevice};
use candor_tpm::{DeviceTransport, TcpTransport, TpmDevice, DEFAULT_NV_BASE};
use std::path::Path;

/// Why a node's device could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenDeviceError {
    /// The TPM endpoint is neither `tcp:HOST:PORT` nor a device path that opens.
    #[error("TPM endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as written.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TPM could not be reached.
    #[error(transparent)]
    Transport(#[from] candor_tpm::TpmError),
    /// The device refused to open.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The data folder's device file could not be read.
    #[error(transparent)]
    File(#[from] FileError),
}

/// Any of the device backends (one per node, so the size difference does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum AnyDevice {
    /// The software device (development and simulation; it protects nothing).
    Software(SoftwareDevice),
    /// A TPM reached over TCP (swtpm's server port).
    TpmTcp(TpmDevice<TcpTransport>),
    /// A TPM device file (`/dev/tpmrm0`).
    TpmDev(TpmDevice<DeviceTransport>),
}

macro_rules! each {
    ($self:expr, $d:ident => $e:expr) => {
        match $self {
            AnyDevice::Software($d) => $e,
            AnyDevice::TpmTcp($d) => $e,
            AnyDevice::TpmDev($d) => $e,
        }
    };
}

impl TrustedDevice for AnyDevice {
    fn device_key(&self) -> DeviceKey {
        each!(self, d => d.device_key())
    }
    fn peer(&self) -> &PeerId {
        each!(self, d => d.peer())
    }
    fn counters(&self) -> Vec<CounterId> {
        each!(self, d => d.counters())
    }
    fn value(&self, c: CounterId) -> Result<u64, DeviceError> {
        each!(self, d => d.value(c))
    }
    fn read_sign(&mut self, c: CounterId, nonce: [u8; 32]) -> Result<SignedRead, DeviceError> {
        each!(self, d => d.read_sign(c, nonce))
    }
    fn inc_sign_batch(
        &mut self,
        c: CounterId,
        p: &[Digest],
    ) -> Result<Vec<SignedInc>, DeviceError> {
        each!(self, d => d.inc_sign_batch(c, p))
    }
    fn reissue(&mut self, c: CounterId, v: u64) -> Result<Option<SignedInc>, DeviceError> {
        each!(self, d => d.reissue(c, v))
    }
    fn acknowledge(&mut self, c: CounterId, v: u64) -> Result<(), DeviceError> {
        each!(self, d => d.acknowledge(c, v))
    }
    fn acknowledged(&self, c: CounterId) -> Result<u64, DeviceError> {
        each!(self, d => d.acknowledged(c))
    }
    fn protection(&self) -> &'static str {
        each!(self, d => d.protection())
    }
    fn endorsement(&mut self) -> Result<Option<candor_core::Endorsement>, DeviceError> {
        each!(self, d => d.endorsement())
    }
    fn activate_credential(
        &mut self,
        credential: &candor_core::endorsement::Credential,
    ) -> Result<Vec<u8>, DeviceError> {
        each!(self, d => d.activate_credential(credential))
    }
}

/// Where a TPM is: `tcp:HOST:PORT` (swtpm's server port) or a device path (`/dev/tpmrm0`).
/// With `journal`, each IncSign in flight is journaled there so that a step a crash interrupts
/// after its increment can be finished at the next open (the TPM keeps the session loaded).
pub fn open_tpm(
    endpoint: &str,
    peer: PeerId,
    counters: u32,
    journal: Option<std::path::PathBuf>,
) -> Result<AnyDevice, OpenDeviceError> {
    if let Some(addr) = endpoint.strip_prefix("tcp:") {
        let addr =
            addr.parse()
                .map_err(|e: std::net::AddrParseError| OpenDeviceError::Endpoint {
                    endpoint: endpoint.to_string(),
                    reason: e.to_string(),
                })?;
        let t = TcpTransport::connect(addr)?;
        Ok(AnyDevice::TpmTcp(TpmDevice::open_journaled(
            t,
            peer,
            counters,
            DEFAULT_NV_BASE,
            journal,
        )?))
    } else {
        let t = DeviceTransport::open(Path::new(endpoint))?;
        Ok(AnyDevice::TpmDev(TpmDevice::open_journaled(
            t,
            peer,
            counters,
            DEFAULT_NV_BASE,
            journal,
        )?))
    }
}

/// The TPM file in a data folder: `endpoint counters`.
pub fn tpm_file(data: &Path) -> std::path::PathBuf {
    data.join("device.tpm")
}

/// Opens the node's device: the TPM named in `DATA/device.tpm`, else the software device.
pub fn open_device(data: &Path, peer: PeerId) -> Result<AnyDevice, OpenDeviceError> {
    let f = tpm_file(data);
    if f.exists() {
        let text = std::fs::read_to_string(&f).map_err(|source| FileError::Io {
            path: f.clone(),
            source,
        })?;
        let mut parts = text.split_whitespace();
        let endpoint = parts.next().unwrap_or("");
        let counters: u32 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        return open_tpm(endpoint, peer, counters, Some(data.join("tpm.journal")));
    }
    Ok(AnyDevice::Software(SoftwareDevice::open(
        &data.join("device.state"),
    )?))
}

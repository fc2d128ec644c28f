//! Enrolment: a device and a node key become a certified listing node.

use candor_core::{
    Authority, CertError, Decode, Encode, EnrolRequest, Keypair, Registry, Scheme,
    SignedCertificate,
};
use candor_device::{DeviceError, TrustedDevice};
use thiserror::Error;

/// Why enrolment failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnrolError {
    /// The device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The authority refused.
    #[error(transparent)]
    Refused(#[from] CertError),
}

/// Enrols `device` (bound to `node_key`'s PeerId) with a local authority: the device answers
/// the authority's fresh nonce with a `Read` on each of its first `counters` counters, the
/// node signs the request (with the TPM's EK certificate), a TPM opens the authority's
/// credential for its key, and the authority certifies it.
pub fn enrol<D: TrustedDevice>(
    authority: &Authority,
    registry: &mut Registry,
    node_key: &Keypair,
    device: &mut D,
    scheme: Scheme,
    counters: u32,
    now: u64,
) -> Result<SignedCertificate, EnrolError> {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let ids: Vec<_> = device
        .counters()
        .into_iter()
        .take(counters as usize)
        .collect();
    let reads = ids
        .iter()
        .map(|&c| device.read_sign(c, nonce))
        .collect::<Result<Vec<_>, _>>()?;
    let endorsement = device.endorsement()?;
    let req = EnrolRequest::new(node_key, device.device_key(), scheme, reads, endorsement);
    // The request crosses to the authority as bytes.
    let req = EnrolRequest::from_bytes(&req.to_bytes()).map_err(|_| CertError::BadNodeSignature)?;
    let pending = authority.begin(registry, req, nonce, now, &mut rand_core::OsRng)?;
    // A TPM proves its key lives beside the certified EK by opening the credential.
    let answer = match pending.credential().map(|c| device.activate_credential(c)) {
        Some(Ok(secret)) => Some(secret),
        Some(Err(e)) => {
            // The authority's verdict is what counts: no answer, not resident.
            tracing::warn!(%e, "the device could not open the authority's credential");
            None
        }
        None => None,
    };
    Ok(authority.finish(registry, pending, answer.as_deref(), now)?)
}

//! The verifiers: every check a seller, a buyer, an auditor, a monitor or a third party with
//! evidence runs on what a node sent. They depend on the data types (certificates,
//! statements, steps, evidence) and never the other way round, so the types can be read
//! without the checks and the checks audited apart from the provers.

use crate::cert::SignedCertificate;
use crate::encoding::{Decode, DecodeError, Reader};

mod evidence;
mod receipts;
pub(crate) mod statements;
mod steps;

pub use receipts::check_receipt;
pub use steps::*;

/// The certificate a retrieve head of any scheme opens with. Every head (B/C's
/// [`crate::RetrieveHead`], M's `StepHead`) is its version byte, then the node's certificate: a checker
/// reads the certificate first, picks the verifier the certificate's scheme names, and decodes
/// the rest only with that verifier's decoder, so a head of another scheme than the
/// certificate's fails to decode and is never checked by the wrong rules.
///
/// The version byte must be the one of the head the certificate's scheme sends, so the
/// certificate read here is the one that head's own decoder reads.
///
/// A scheme-M head may leave its certificate out when the request named the one the reader
/// holds (`named`): the certificate is then that one.
pub fn head_certificate(
    bytes: &[u8],
    named: Option<&SignedCertificate>,
) -> Result<SignedCertificate, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8("version")?;
    let cert_bytes = r.bytes32(crate::cert::MAX_CERT_BYTES, "certificate")?;
    let cert = match (cert_bytes.is_empty(), named) {
        (true, Some(c)) => c.clone(),
        (true, None) => {
            return Err(DecodeError::Invalid {
                field: "certificate",
                reason: "left out, but the request named none",
            })
        }
        (false, _) => SignedCertificate::from_bytes(cert_bytes)?,
    };
    let (expected, what) = match cert.cert.scheme.protocol() {
        crate::cert::Protocol::Entries => (
            crate::entry::MSG_VERSION,
            <crate::entry::RetrieveHead as Decode>::WHAT,
        ),
        crate::cert::Protocol::Steps => (crate::merkle::HEAD_VERSION, "M head"),
    };
    if version != expected {
        return Err(DecodeError::UnknownVersion { what, version });
    }
    Ok(cert)
}

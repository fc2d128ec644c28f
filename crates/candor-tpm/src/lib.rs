//! # candor-tpm
//!
//! The TPM 2.0 backend of Candor's trusted device (issue 5), under construction. This first
//! layer is what every TPM command needs:
//!
//! - [`Transport`]: send one command's bytes, receive one response's bytes, with a hard size
//!   limit — to swtpm over TCP ([`TcpTransport`]) or to the kernel's resource manager
//!   ([`DeviceTransport`], `/dev/tpmrm0`);
//! - [`Tpm`]: command framing, typed response codes, and retry of the passing ones
//!   (`TPM_RC_RETRY`, `TPM_RC_YIELDED`, `TPM_RC_TESTING`);
//! - [`Swtpm`]: a swtpm process on 127.0.0.1 with a temporary state folder and free ports,
//!   stopped by PID when dropped — for tests and benchmarks.
//!
//! On top of it, the commands the device uses, marshaled by hand with password authorization
//! (CreatePrimary of a restricted ECC P-256 signing key, NV_DefineSpace of a non-orderly
//! counter, NV_Increment, NV_Read, NV_ReadPublic, NV_Certify, FlushContext), and the
//! pure-Rust verifier of a `Read` ([`verify_nv_read`]: every pinned field of the TPMS_ATTEST,
//! ECDSA P-256/SHA-256 with high s accepted), and the sound `Inc` ([`Tpm::inc_sign`]: an
//! audited HMAC session over NV_Read, StirRandom(payload), NV_Increment, NV_Read, then
//! GetSessionAuditDigest; [`verify_nv_inc`] recomputes the digest from zero and requires
//! post = pre + 1). Enrolment (EK chain, MakeCredential/ActivateCredential), the
//! `TrustedDevice` backend and crash recovery come next (see `../shared/notes/tpm2.md`).

mod commands;
mod device;
mod endorsement;
mod session;
mod swtpm;
mod transport;
mod wire;

pub use candor_core::tpm::{verify_nv_inc, verify_nv_read, verifying_key, AttestError};
pub use commands::{
    Certified, SigningKey, COUNTER_ATTRIBUTES, SIGNING_KEY_ATTRIBUTES, TPM_RH_ENDORSEMENT,
    TPM_RH_OWNER,
};
pub use device::{TpmDevice, DEFAULT_NV_BASE};
pub use endorsement::EK_PERSISTENT_HANDLE;
pub use session::{InFlight, IncAttest};
pub use swtpm::{Swtpm, SwtpmCa, SwtpmError};
pub use transport::{DeviceTransport, TcpTransport, Tpm, TpmError, Transport, MAX_RESPONSE};

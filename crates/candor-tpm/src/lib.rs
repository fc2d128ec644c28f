//! # candor-tpm
//!
//! The TPM 2.0 backend of Candor's trusted device (`../shared/notes/tpm2.md`):
//!
//! - [`Transport`]: send one command's bytes, receive one response's bytes, with a hard size
//!   limit — to swtpm over TCP ([`TcpTransport`]) or to a character device such as the
//!   kernel's resource manager ([`DeviceTransport`], `/dev/tpmrm0`);
//! - [`Tpm`]: command framing, typed response codes, and retry of the passing ones
//!   (`TPM_RC_RETRY`, `TPM_RC_YIELDED`, `TPM_RC_TESTING`);
//! - the commands the device uses, marshaled by hand (TPM 2.0 Part 3) with password or
//!   session authorization: CreatePrimary of a restricted ECC P-256 signing key, NV counters
//!   (define, increment, read, read public), NV_Certify (the `Read`), the audited HMAC
//!   session behind the sound `Inc` ([`Tpm::inc_sign`]: NV_Read, StirRandom(payload),
//!   NV_Increment, NV_Read, then GetSessionAuditDigest), and for enrolment the EK certificate
//!   and ActivateCredential under a PolicySecret(endorsement) session;
//! - [`TpmDevice`]: the `TrustedDevice` on a TPM, with idempotent setup and an IncSign
//!   journal so a crash between an increment and its signature is finished at the next open;
//! - [`Swtpm`] and [`SwtpmCa`]: a swtpm on 127.0.0.1 with a temporary state folder and free
//!   ports, stopped by PID when dropped, manufactured with an EK certificate from a local CA —
//!   for tests, benchmarks and the demo.
//!
//! The verifier of the statements ([`verify_nv_read`], [`verify_nv_inc`]) lives in the pure
//! core (`candor_core::tpm`), and the authority's residence check (EK chain, MakeCredential)
//! in `candor_core::endorsement`: buyers, sellers and the authority need no TPM.

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

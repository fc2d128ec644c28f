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
//! The statements (`NV_Certify` for `Read`, the audited HMAC session for `Inc`), enrolment and
//! the pure-Rust verifier come next (see `../shared/notes/tpm2.md`).

mod swtpm;
mod transport;

pub use swtpm::{Swtpm, SwtpmError};
pub use transport::{DeviceTransport, TcpTransport, Tpm, TpmError, Transport, MAX_RESPONSE};

//! TPM 2.0 marshaling for the few commands the device uses: big-endian integers, TPM2B
//! size-prefixed buffers, and a bounded reader that never reads past its input.

use crate::transport::TpmError;

/// The password authorization session.
pub(crate) const TPM_RS_PW: u32 = 0x4000_0009;
/// A command or response without sessions.
pub(crate) const ST_NO_SESSIONS: u16 = 0x8001;
/// A command or response with sessions.
pub(crate) const ST_SESSIONS: u16 = 0x8002;
/// SHA-256.
pub(crate) const ALG_SHA256: u16 = 0x000B;
/// No algorithm.
pub(crate) const ALG_NULL: u16 = 0x0010;
/// The null hierarchy / no handle.
pub(crate) const TPM_RH_NULL: u32 = 0x4000_0007;
/// TPM2_StartAuthSession.
pub(crate) const CC_START_AUTH_SESSION: u32 = 0x176;

/// Builds a command.
#[derive(Debug, Default)]
pub(crate) struct Out(pub(crate) Vec<u8>);

impl Out {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Writes the command's total size into its header (bytes 2..6), once it is complete.
    pub(crate) fn set_size(&mut self) -> &mut Self {
        let len = self.0.len() as u32;
        self.0.splice(2..6, len.to_be_bytes());
        self
    }
    /// A TPM2B: u16 size, then the bytes.
    pub(crate) fn b(&mut self, v: &[u8]) -> &mut Self {
        self.u16(v.len() as u16).raw(v)
    }
}

/// Reads a response, bounded.
#[derive(Debug)]
pub(crate) struct In<'a> {
    rest: &'a [u8],
}

impl<'a> In<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { rest: b }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], TpmError> {
        if self.rest.len() < n {
            return Err(TpmError::Malformed("field beyond the end"));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, TpmError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    pub(crate) fn u16(&mut self) -> Result<u16, TpmError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, TpmError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A TPM2B.
    pub(crate) fn b(&mut self) -> Result<&'a [u8], TpmError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

//! Shared test helpers for the swtpm tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use candor_tpm::{TcpTransport, TpmError, Transport};
use std::sync::{Arc, Mutex};

/// A connection the test cuts, as a SIGKILL does: nothing more reaches the TPM (no flush).
pub struct Cuttable(pub Arc<Mutex<Option<TcpTransport>>>);

impl Cuttable {
    /// A cuttable connection to `addr`, and the handle that cuts it (set it to `None`).
    pub fn connect(addr: std::net::SocketAddr) -> (Self, Arc<Mutex<Option<TcpTransport>>>) {
        let link = Arc::new(Mutex::new(Some(TcpTransport::connect(addr).unwrap())));
        (Self(link.clone()), link)
    }
}

impl Transport for Cuttable {
    fn exchange(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        match self.0.lock().unwrap().as_mut() {
            Some(t) => t.exchange(command),
            None => Err(TpmError::Io {
                endpoint: "cut".into(),
                source: std::io::ErrorKind::BrokenPipe.into(),
            }),
        }
    }
}

//! Transports and framing of TPM 2.0 commands.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The largest response accepted (TPM 2.0 responses are at most a few KiB).
pub const MAX_RESPONSE: usize = 64 * 1024;

const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_CC_GET_RANDOM: u32 = 0x0000_017B;
const RC_RETRY: u32 = 0x922;
const RC_YIELDED: u32 = 0x908;
const RC_TESTING: u32 = 0x90A;

/// Why talking to the TPM failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The transport failed.
    #[error("TPM transport {endpoint}: {source}")]
    Io {
        /// Where the TPM is.
        endpoint: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The response is not a well-formed TPM response.
    #[error("malformed TPM response: {0}")]
    Malformed(&'static str),
    /// The TPM answered with an error code.
    #[error("the TPM answered response code {code:#x} to command {command:#x}")]
    Response {
        /// The command code.
        command: u32,
        /// The response code.
        code: u32,
    },
    /// A passing failure lasted through every retry.
    #[error("the TPM kept answering {code:#x} (retry) to command {command:#x}")]
    Busy {
        /// The command code.
        command: u32,
        /// The response code.
        code: u32,
    },
}

/// Sends a command's bytes and returns the response's bytes.
pub trait Transport: Send {
    /// One command, one response.
    fn exchange(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError>;
}

fn read_response(r: &mut impl Read, endpoint: &str) -> Result<Vec<u8>, TpmError> {
    let io = |source| TpmError::Io {
        endpoint: endpoint.to_string(),
        source,
    };
    let mut header = [0u8; 10];
    r.read_exact(&mut header).map_err(io)?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(10..=MAX_RESPONSE).contains(&size) {
        return Err(TpmError::Malformed("response size out of range"));
    }
    let mut out = header.to_vec();
    out.resize(size, 0);
    r.read_exact(out.get_mut(10..).unwrap_or_default())
        .map_err(io)?;
    Ok(out)
}

/// swtpm's server port: raw command bytes over TCP.
#[derive(Debug)]
pub struct TcpTransport {
    addr: SocketAddr,
    stream: TcpStream,
}

impl TcpTransport {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Result<Self, TpmError> {
        let io = |source| TpmError::Io {
            endpoint: addr.to_string(),
            source,
        };
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        Ok(Self { addr, stream })
    }
}

impl Transport for TcpTransport {
    fn exchange(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        let endpoint = self.addr.to_string();
        self.stream
            .write_all(command)
            .map_err(|source| TpmError::Io {
                endpoint: endpoint.clone(),
                source,
            })?;
        read_response(&mut self.stream, &endpoint)
    }
}

/// The kernel's TPM resource manager (`/dev/tpmrm0`): write a command, read its response.
#[derive(Debug)]
pub struct DeviceTransport {
    path: PathBuf,
    file: std::fs::File,
}

impl DeviceTransport {
    /// Opens `path` (usually `/dev/tpmrm0`).
    pub fn open(path: &Path) -> Result<Self, TpmError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| TpmError::Io {
                endpoint: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }
}

impl Transport for DeviceTransport {
    fn exchange(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        let endpoint = self.path.display().to_string();
        self.file
            .write_all(command)
            .map_err(|source| TpmError::Io {
                endpoint: endpoint.clone(),
                source,
            })?;
        // The kernel's device returns the whole response to one read of a buffer that can
        // hold it (older kernels drop what a short buffer leaves); a character device that
        // delivers it in parts (a pty) is read on until the header's size is in.
        let io = |source| TpmError::Io {
            endpoint: endpoint.clone(),
            source,
        };
        let mut buf = vec![0u8; MAX_RESPONSE];
        let mut have = 0;
        loop {
            let n = self.file.read(&mut buf[have..]).map_err(io)?;
            if n == 0 {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            have += n;
            let want = buf
                .get(2..6)
                .filter(|_| have >= 10)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            match want {
                Some(size) if !(10..=MAX_RESPONSE).contains(&size) => {
                    return Err(TpmError::Malformed("response size out of range"))
                }
                Some(size) if have >= size => break,
                _ => {}
            }
        }
        buf.truncate(have);
        read_response(&mut buf.as_slice(), &endpoint)
    }
}

/// A TPM behind a transport.
pub struct Tpm<T> {
    transport: T,
    retries: u32,
}

impl<T> std::fmt::Debug for Tpm<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm").finish_non_exhaustive()
    }
}

impl<T: Transport> Tpm<T> {
    /// A TPM reached through `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            transport,
            retries: 50,
        }
    }

    /// Sends a whole command (header included); returns the response's parameter area on
    /// success. Passing failures are retried; lasting ones are typed errors.
    pub fn command(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        let code = command
            .get(6..10)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0);
        let mut last = 0;
        for attempt in 0..=self.retries {
            let resp = self.transport.exchange(command)?;
            let rc = resp
                .get(6..10)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or(TpmError::Malformed("no response code"))?;
            match rc {
                0 => return Ok(resp.get(10..).unwrap_or_default().to_vec()),
                RC_RETRY | RC_YIELDED | RC_TESTING => {
                    last = rc;
                    std::thread::sleep(Duration::from_millis(2 * u64::from(attempt + 1)));
                }
                rc => {
                    return Err(TpmError::Response {
                        command: code,
                        code: rc,
                    })
                }
            }
        }
        Err(TpmError::Busy {
            command: code,
            code: last,
        })
    }

    /// TPM2_GetRandom: up to 32 random bytes from the TPM.
    pub fn get_random(&mut self, n: u16) -> Result<Vec<u8>, TpmError> {
        let mut cmd = Vec::with_capacity(12);
        cmd.extend_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
        cmd.extend_from_slice(&12u32.to_be_bytes());
        cmd.extend_from_slice(&TPM_CC_GET_RANDOM.to_be_bytes());
        cmd.extend_from_slice(&n.min(32).to_be_bytes());
        let params = self.command(&cmd)?;
        // TPM2B_DIGEST: u16 size, then the bytes.
        let size = params
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or(TpmError::Malformed("short GetRandom response"))?;
        params
            .get(2..2 + size)
            .map(<[u8]>::to_vec)
            .ok_or(TpmError::Malformed("GetRandom size beyond the response"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Canned(Vec<Vec<u8>>);
    impl Transport for Canned {
        fn exchange(&mut self, _: &[u8]) -> Result<Vec<u8>, TpmError> {
            if self.0.is_empty() {
                return Err(TpmError::Malformed("no more canned answers"));
            }
            Ok(self.0.remove(0))
        }
    }

    fn resp(rc: u32, params: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, 0x01];
        v.extend_from_slice(&((10 + params.len()) as u32).to_be_bytes());
        v.extend_from_slice(&rc.to_be_bytes());
        v.extend_from_slice(params);
        v
    }

    #[test]
    fn retry_then_success_and_typed_failures() {
        let mut t = Tpm::new(Canned(vec![resp(RC_RETRY, &[]), resp(0, &[0, 2, 7, 9])]));
        assert_eq!(t.get_random(2).unwrap(), vec![7, 9]);
        let mut t = Tpm::new(Canned(vec![resp(0x101, &[])]));
        assert!(matches!(
            t.get_random(2),
            Err(TpmError::Response { code: 0x101, .. })
        ));
        let mut t = Tpm::new(Canned(vec![resp(0, &[0, 9, 1])]));
        assert!(matches!(t.get_random(2), Err(TpmError::Malformed(_))));
    }

    #[test]
    fn response_framing_is_bounded() {
        let mut huge = vec![0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(read_response(&mut huge.as_slice(), "t").is_err());
        huge.truncate(5);
        assert!(read_response(&mut huge.as_slice(), "t").is_err());
    }
}

//! A swtpm process for tests and benchmarks: loopback only, a temporary state folder, free
//! ports, stopped by PID when dropped. swtpm gives no security (its state can be copied back):
//! it stands in for a TPM in development and CI only.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why swtpm could not be started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SwtpmError {
    /// The `swtpm` program is missing.
    #[error("swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)")]
    NotInstalled,
    /// Starting or reaching it failed.
    #[error("swtpm: {0}")]
    Failed(String),
}

/// A running swtpm. Dropping it stops the process.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    server: SocketAddr,
    _state: tempfile::TempDir,
}

fn free_port_pair() -> Result<u16, SwtpmError> {
    // swtpm wants the control port next to the server port: find two free ones in a row.
    for _ in 0..50 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| SwtpmError::Failed(e.to_string()))?;
        let port = l
            .local_addr()
            .map_err(|e| SwtpmError::Failed(e.to_string()))?
            .port();
        if port < u16::MAX && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(SwtpmError::Failed(
        "no two free ports in a row on 127.0.0.1".into(),
    ))
}

impl Swtpm {
    /// Whether swtpm is installed.
    pub fn available() -> bool {
        Command::new("swtpm")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts swtpm (TPM 2.0, started up) with a fresh state folder.
    pub fn start() -> Result<Self, SwtpmError> {
        if !Self::available() {
            return Err(SwtpmError::NotInstalled);
        }
        // Port choice and start are serialised in this process, and a start whose process
        // died (its port taken meanwhile) is retried on other ports.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = SwtpmError::Failed("never started".into());
        for _ in 0..5 {
            let state = tempfile::tempdir().map_err(|e| SwtpmError::Failed(e.to_string()))?;
            let port = free_port_pair()?;
            let mut child = spawn(state.path(), port)?;
            let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match wait_ready(&mut child, server) {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        server,
                        _state: state,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// The server (command) port.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Stops and restarts swtpm on the same state folder and ports (a TPM power cycle).
    pub fn restart(&mut self) -> Result<(), SwtpmError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self._state.path(), self.server.port())?;
        wait_ready(&mut self.child, self.server)
    }
}

/// Waits until our swtpm answers on `server` — and is still our process (a swtpm that could
/// not bind its port exits, and the port may answer for another one).
fn wait_ready(child: &mut Child, server: SocketAddr) -> Result<(), SwtpmError> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SwtpmError::Failed(format!(
                "swtpm exited ({status}); its port may be taken"
            )));
        }
        if TcpStream::connect_timeout(&server, Duration::from_millis(100)).is_ok() {
            // Give a swtpm that lost its port the moment it takes to exit.
            std::thread::sleep(Duration::from_millis(30));
            if let Ok(Some(status)) = child.try_wait() {
                return Err(SwtpmError::Failed(format!(
                    "swtpm exited ({status}); its port was taken"
                )));
            }
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(SwtpmError::Failed(format!(
                "no answer on {server} after 10 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(state: &Path, port: u16) -> Result<Child, SwtpmError> {
    Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| SwtpmError::Failed(e.to_string()))
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

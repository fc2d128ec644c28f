//! A swtpm process for tests and benchmarks: loopback only, a temporary state folder, free
//! ports, stopped by PID when dropped. swtpm gives no security (its state can be copied back):
//! it stands in for a TPM in development and CI only.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

    /// Starts swtpm (TPM 2.0, started up) with a fresh state folder and no EK certificate.
    pub fn start() -> Result<Self, SwtpmError> {
        Self::start_inner(None)
    }

    /// Starts swtpm with a fresh state manufactured by `swtpm_setup`: an RSA-2048 EK
    /// (persistent at 0x81010001) with its certificate at NV 0x01c00002, issued by `ca`.
    pub fn start_endorsed(ca: &SwtpmCa) -> Result<Self, SwtpmError> {
        Self::start_inner(Some(ca))
    }

    fn start_inner(ca: Option<&SwtpmCa>) -> Result<Self, SwtpmError> {
        if !Self::available() {
            return Err(SwtpmError::NotInstalled);
        }
        // Port choice and start are serialised in this process, and a start whose process
        // died (its port taken meanwhile) is retried on other ports.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let mut last = SwtpmError::Failed("never started".into());
        for _ in 0..5 {
            let state = tempfile::tempdir().map_err(|e| SwtpmError::Failed(e.to_string()))?;
            if let Some(ca) = ca {
                ca.manufacture(state.path())?;
            }
            let _guard = STARTING.lock().unwrap_or_else(|p| p.into_inner());
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

/// swtpm's local certificate authority (`swtpm_localca`): it issues the EK certificates of the
/// swtpms made with [`Swtpm::start_endorsed`]. Its root certifies no hardware, so an
/// authority trusts it as a development-only root.
#[derive(Debug)]
pub struct SwtpmCa {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// Whether the CA's own keys exist; held while the first certificate makes them, so that
    /// two first certificates do not make two CAs.
    made: std::sync::Mutex<bool>,
}

impl SwtpmCa {
    /// A new CA in a temporary folder, removed when dropped (its keys are made with the first
    /// EK certificate, ~2 s).
    pub fn create() -> Result<Self, SwtpmError> {
        let temp = tempfile::tempdir().map_err(|e| SwtpmError::Failed(e.to_string()))?;
        let mut ca = Self::at(temp.path())?;
        ca._temp = Some(temp);
        Ok(ca)
    }

    /// The development CA shared by this machine's tests and demos, in the temporary folder
    /// (`candor-swtpm-ca`): made once, then reused, so that each run does not make new CA keys.
    /// One per process, so that its first certificate (which makes its keys) is made once.
    pub fn shared() -> Result<&'static Self, SwtpmError> {
        static SHARED: std::sync::OnceLock<SwtpmCa> = std::sync::OnceLock::new();
        if let Some(ca) = SHARED.get() {
            return Ok(ca);
        }
        let ca = Self::at(&std::env::temp_dir().join("candor-swtpm-ca"))?;
        Ok(SHARED.get_or_init(|| ca))
    }

    /// The CA kept in `dir` (made there if missing).
    pub fn at(dir: &Path) -> Result<Self, SwtpmError> {
        let fail = |e: std::io::Error| SwtpmError::Failed(format!("{}: {e}", dir.display()));
        let ca = dir.join("ca");
        std::fs::create_dir_all(&ca).map_err(fail)?;
        let files = [
            (
                "localca.conf",
                format!(
                    "statedir = {0}\nsigningkey = {0}/signkey.pem\nissuercert = {0}/issuercert.pem\ncertserial = {0}/certserial\n",
                    ca.display()
                ),
            ),
            (
                "localca.options",
                "--platform-manufacturer Candor\n--platform-version 2.1\n--platform-model swtpm\n"
                    .to_string(),
            ),
            (
                "setup.conf",
                format!(
                    "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {0}/localca.conf\ncreate_certs_tool_options = {0}/localca.options\nactive_pcr_banks = sha256\n",
                    dir.display()
                ),
            ),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                // Written whole, then renamed: a concurrent reader sees the old or the new.
                let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
                std::fs::write(&tmp, text).map_err(fail)?;
                std::fs::rename(&tmp, &path).map_err(fail)?;
            }
        }
        let made = ca.join("issuercert.pem").exists();
        Ok(Self {
            dir: dir.to_path_buf(),
            _temp: None,
            made: std::sync::Mutex::new(made),
        })
    }

    /// Runs `swtpm_setup` on `state`: an EK and its certificate. The first run makes the CA's
    /// own keys, alone; later runs go in parallel.
    fn manufacture(&self, state: &Path) -> Result<(), SwtpmError> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if *made {
            drop(made);
            return self.setup(state);
        }
        self.setup(state)?;
        *made = true;
        Ok(())
    }

    fn setup(&self, state: &Path) -> Result<(), SwtpmError> {
        let out = Command::new("swtpm_setup")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(state)
            .arg("--create-ek-cert")
            .arg("--config")
            .arg(self.dir.join("setup.conf"))
            .arg("--logfile")
            .arg(state.join("setup.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| SwtpmError::Failed(format!("swtpm_setup (Debian: swtpm-tools): {e}")))?;
        if !out.success() {
            let log = std::fs::read_to_string(state.join("setup.log")).unwrap_or_default();
            return Err(SwtpmError::Failed(format!(
                "swtpm_setup failed ({out}): {}",
                log.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
            )));
        }
        Ok(())
    }

    /// The CA's certificates in PEM: its self-signed root, then the issuer of EK certificates
    /// (a CA that has issued none yet makes its keys first).
    pub fn certificates_pem(&self) -> Result<Vec<u8>, SwtpmError> {
        let ca = self.dir.join("ca");
        if !*self.made.lock().unwrap_or_else(|p| p.into_inner()) {
            let scratch = tempfile::tempdir().map_err(|e| SwtpmError::Failed(e.to_string()))?;
            self.manufacture(scratch.path())?;
        }
        let mut out = Vec::new();
        for f in ["swtpm-localca-rootca-cert.pem", "issuercert.pem"] {
            out.extend(
                std::fs::read(ca.join(f))
                    .map_err(|e| SwtpmError::Failed(format!("the local CA has no {f} yet: {e}")))?,
            );
        }
        Ok(out)
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

//! The files the command line keeps: keys, the authority's registry, a node's data folder.

use candor_core::endorsement::EndorsementRoots;
use candor_core::{Authority, Decode, Encode, Keypair, PublicKey, Registry, SignedCertificate};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a file could not be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what it should hold.
    #[error("{path} is not a valid {what}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file was written in a format this Candor no longer reads (no migration: nothing
    /// runs in production yet).
    #[error("{path} holds a {what} of format {version}, written by an earlier Candor; there is no migration: move the data folder aside and set the node up again (candor device init, candor device enroll; an authority issues certificates again)")]
    OldFormat {
        /// The file.
        path: PathBuf,
        /// What it holds.
        what: &'static str,
        /// The format found.
        version: u8,
    },
    /// The file exists where a new one was to be made.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// The file is missing.
    #[error("{path} does not exist: {hint}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What to do about it.
        hint: &'static str,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder);
/// `private` files are readable by their owner only.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), FileError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    // A temporary name of this process's own: two writers never rename each other's file.
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn read(path: &Path, hint: &'static str) -> Result<Vec<u8>, FileError> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FileError::Missing {
            path: path.to_path_buf(),
            hint,
        }),
        Err(e) => Err(io(path)(e)),
    }
}

fn read_hex32(path: &Path, what: &'static str, hint: &'static str) -> Result<[u8; 32], FileError> {
    let text = read(path, hint)?;
    let text = String::from_utf8_lossy(&text);
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|e| FileError::Invalid {
        path: path.to_path_buf(),
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Creates a new secret key file; refuses to overwrite one.
pub fn new_key(path: &Path) -> Result<Keypair, FileError> {
    if path.exists() {
        return Err(FileError::Exists(path.to_path_buf()));
    }
    let key = Keypair::generate(&mut rand_core::OsRng);
    save_key(path, &key)?;
    Ok(key)
}

/// Writes `key` to `path` (mode 0600).
pub fn save_key(path: &Path, key: &Keypair) -> Result<(), FileError> {
    write_atomic(path, hex::encode(key.secret_bytes()).as_bytes(), true)
}

/// A secret key (hex) from `path`; `hint` says what to do if it is missing.
pub fn load_key(path: &Path, hint: &'static str) -> Result<Keypair, FileError> {
    Ok(Keypair::from_secret(read_hex32(path, "secret key", hint)?))
}

/// A public key (hex) from `path`; `hint` says what to do if it is missing.
pub fn load_public(path: &Path, hint: &'static str) -> Result<PublicKey, FileError> {
    Ok(PublicKey(read_hex32(path, "public key", hint)?))
}

fn decode<T: Decode>(path: &Path, what: &'static str, hint: &'static str) -> Result<T, FileError> {
    let bytes = read(path, hint)?;
    T::from_bytes(&bytes).map_err(|e| match e {
        candor_core::DecodeError::UnknownVersion { what, version } => FileError::OldFormat {
            path: path.to_path_buf(),
            what,
            version,
        },
        e => FileError::Invalid {
            path: path.to_path_buf(),
            what,
            reason: e.to_string(),
        },
    })
}

/// An authority's folder: its key, its public key, its registry.
pub struct AuthorityDir(pub PathBuf);

impl AuthorityDir {
    /// The authority's secret key.
    pub fn key(&self) -> PathBuf {
        self.0.join("authority.key")
    }
    /// The authority's public key (what nodes trust).
    pub fn public(&self) -> PathBuf {
        self.0.join("authority.pub")
    }
    /// The registry of certified devices and PeerIds.
    pub fn registry(&self) -> PathBuf {
        self.0.join("registry.bin")
    }
    /// The registry, checked as it decodes.
    pub fn load_registry(&self) -> Result<Registry, FileError> {
        decode(
            &self.registry(),
            "authority registry",
            "run `candor authority init` first",
        )
    }
    /// Writes the registry atomically.
    pub fn save_registry(&self, r: &Registry) -> Result<(), FileError> {
        write_atomic(&self.registry(), &r.to_bytes(), false)
    }
    /// Holds the registry for one enrolment: an exclusive lock on `registry.lock`, waited
    /// for, released when the returned file is dropped. Every load-certify-save runs under it,
    /// so concurrent enrolments never certify one node, device or counter twice.
    pub fn lock_registry(&self) -> Result<File, FileError> {
        let path = self.0.join("registry.lock");
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        f.lock().map_err(io(&path))?;
        Ok(f)
    }
    /// The authority's public key.
    pub fn load_public(&self) -> Result<PublicKey, FileError> {
        load_public(&self.public(), "run `candor authority init` first")
    }
    /// The TPM manufacturer CA certificates trusted for EK chains (PEM), production or
    /// development-only.
    pub fn ek_roots(&self, development: bool) -> PathBuf {
        self.0.join(if development {
            "ek-roots-development.pem"
        } else {
            "ek-roots.pem"
        })
    }
    /// The authority: its key and the EK roots it trusts.
    pub fn load_authority(&self) -> Result<Authority, FileError> {
        let key = load_key(&self.key(), "run `candor authority init` first")?;
        let mut roots = EndorsementRoots::new();
        for development in [false, true] {
            let path = self.ek_roots(development);
            let pem = match std::fs::read(&path) {
                Ok(pem) => pem,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(FileError::Io { path, source }),
            };
            roots
                .add_pem(&pem, development)
                .map_err(|e| FileError::Invalid {
                    path,
                    what: "EK root certificates",
                    reason: e.to_string(),
                })?;
        }
        Ok(Authority::new(key).with_endorsement_roots(roots))
    }
}

/// A node's data folder.
pub struct NodeDir(pub PathBuf);

impl NodeDir {
    /// The node key (its PeerId's key).
    pub fn node_key(&self) -> PathBuf {
        self.0.join("node.key")
    }
    /// The software device's state file.
    pub fn device(&self) -> PathBuf {
        self.0.join("device.state")
    }
    /// The node's certificate.
    pub fn cert(&self) -> PathBuf {
        self.0.join("cert.bin")
    }
    /// The listing store.
    pub fn store(&self) -> PathBuf {
        self.0.join("store.redb")
    }
    /// The node's certificate, checked: it decodes and its authority's signature verifies
    /// (a damaged file is refused, never shown or served as valid). Whether that authority is
    /// one the user trusts is the caller's check.
    pub fn load_cert(&self) -> Result<SignedCertificate, FileError> {
        let cert: SignedCertificate = decode(
            &self.cert(),
            "certificate",
            "run `candor device enroll` first",
        )?;
        cert.verify(&[cert.cert.authority])
            .map_err(|e| FileError::Invalid {
                path: self.cert(),
                what: "certificate",
                reason: format!(
                    "{e}: the file is damaged. Nothing else is wrong with the node: move cert.bin aside and ask the authority for it again (candor device enroll)"
                ),
            })?;
        Ok(cert)
    }
}

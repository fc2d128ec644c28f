//! The evidence a node's checks produced, kept in its data folder (`DATA/evidence/ID.evidence`,
//! the encoded evidence; ID is the first 16 hex digits of its hash, so the same evidence is
//! kept once). Anyone can check a file with nothing but the authority's public key:
//! `candor evidence verify FILE`.

use crate::error::{CliError, EvidenceFileError};
use candor_core::{Decode, DecodeError, Encode, Evidence, TaggedHasher};
use candor_node::files::{self, FileError};
use std::path::{Path, PathBuf};

/// At most this many pieces are kept; more are logged and dropped (a node that produces this
/// much evidence has been reported many times over).
pub(crate) const MAX_KEPT: usize = 10_000;
/// The largest evidence file kept and read back: removal evidence carries an item's whole
/// list, which a checker's byte budget (64 MiB) bounds.
const MAX_FILE: u64 = 96 << 20;

/// A data folder's evidence.
#[derive(Debug, Clone)]
pub(crate) struct EvidenceDir(pub(crate) PathBuf);

/// One kept piece, as listed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Kept {
    pub(crate) id: String,
    pub(crate) kind: String,
    /// The listing node it is against (its PeerId).
    pub(crate) node: String,
    /// Unix seconds when it was kept.
    pub(crate) kept_at: u64,
    /// Where the file is.
    pub(crate) file: String,
}

impl EvidenceDir {
    /// The evidence folder of data folder `data`.
    pub(crate) fn of(data: &Path) -> Self {
        Self(data.join("evidence"))
    }

    /// The id of `e`.
    pub(crate) fn id(e: &Evidence) -> String {
        let d = TaggedHasher::new("candor/v1/evidence-id")
            .var(&e.to_bytes())
            .finish();
        d.to_hex()[..16].to_string()
    }

    fn path(&self, id: &str) -> PathBuf {
        self.0.join(format!("{id}.evidence"))
    }

    /// Keeps `e` (once) and returns its id.
    ///
    /// Only evidence that verifies against the `trusted` authorities is kept: a piece the
    /// node's own checks produced always does, and one that did not would accuse a node with
    /// nothing a third party accepts. Such a piece is logged and not kept (`None`).
    pub(crate) fn keep(
        &self,
        e: &Evidence,
        trusted: &[candor_core::PublicKey],
    ) -> Result<Option<String>, FileError> {
        if let Err(err) = e.verify(trusted) {
            tracing::error!(%err, kind = e.kind().as_str(), "a check produced evidence that does not verify; not kept");
            return Ok(None);
        }
        let id = Self::id(e);
        let path = self.path(&id);
        if path.exists() {
            return Ok(Some(id));
        }
        let count = std::fs::read_dir(&self.0).map(|d| d.count()).unwrap_or(0);
        if count >= MAX_KEPT {
            tracing::warn!(%id, "the evidence folder is full ({MAX_KEPT} pieces); not kept");
            return Ok(Some(id));
        }
        let bytes = e.to_bytes();
        if bytes.len() as u64 > MAX_FILE {
            tracing::warn!(%id, bytes = bytes.len(), "evidence over {MAX_FILE} bytes; not kept");
            return Ok(Some(id));
        }
        files::write_atomic(&path, &bytes, false)?;
        tracing::warn!(%id, kind = e.kind().as_str(), "transferable evidence kept in {}", path.display());
        Ok(Some(id))
    }

    /// Reads a kept piece by id.
    pub(crate) fn load(&self, id: &str) -> Result<(Evidence, PathBuf), CliError> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CliError::Usage(format!(
                "{id:?} is not an evidence id (16 hex digits, from `candor evidence list`)"
            )));
        }
        let path = self.path(id);
        let bytes = read_bounded(&path).map_err(|e| match e {
            FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                EvidenceFileError::NotFound {
                    id: id.to_string(),
                    dir: self.0.clone(),
                }
                .into()
            }
            e => CliError::from(e),
        })?;
        let e = Evidence::from_bytes(&bytes).map_err(|source| match source {
            // A format an earlier Candor wrote (anything else is damage).
            DecodeError::UnknownVersion { what, version }
                if what == Evidence::WHAT
                    && (1..candor_core::EVIDENCE_VERSION).contains(&version) =>
            {
                EvidenceFileError::OtherFormat {
                    path: path.clone(),
                    found: version,
                    expected: candor_core::EVIDENCE_VERSION,
                }
            }
            source => EvidenceFileError::Damaged {
                path: path.clone(),
                source,
            },
        })?;
        Ok((e, path))
    }

    /// Every kept piece, newest first. Files that do not decode are listed as damaged.
    pub(crate) fn list(&self) -> Result<Vec<Kept>, FileError> {
        let rd = match std::fs::read_dir(&self.0) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(FileError::Io {
                    path: self.0.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for entry in rd.flatten().take(MAX_KEPT) {
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".evidence"))
                .map(str::to_string)
            else {
                continue;
            };
            let kept_at = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let (kind, node) = match read_bounded(&path)
                .ok()
                .and_then(|b| Evidence::from_bytes(&b).ok())
            {
                Some(e) => (
                    e.kind().to_string(),
                    candor_net::to_libp2p_peer(e.subject())
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| e.subject().to_string()),
                ),
                None => ("damaged".into(), String::new()),
            };
            out.push(Kept {
                id,
                kind,
                node,
                kept_at,
                file: path.display().to_string(),
            });
        }
        out.sort_by(|a, b| b.kept_at.cmp(&a.kept_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(FileError::Invalid {
            path: path.to_path_buf(),
            what: "evidence file",
            reason: "over 96 MiB".into(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equivocation evidence from a device certified by a fresh authority: its trusted key,
    /// the evidence, and the same with one statement's signature broken.
    fn equivocation() -> (candor_core::PublicKey, Evidence, Evidence) {
        use candor_core::*;
        let mut rng = rand_core::OsRng;
        let node = Keypair::generate(&mut rng);
        let peer = PeerId::from_ed25519(&node.public());
        let signer = Ed25519StatementSigner::new(Keypair::generate(&mut rng), peer.clone());
        let auth = Authority::new(Keypair::generate(&mut rng));
        let req = EnrolRequest::new(
            &node,
            signer.device_key(),
            Scheme::Basic,
            vec![signer.sign_read(0, 0, [1; 32])],
            None,
        );
        let cert = auth
            .certify(&mut Registry::default(), &req, [1; 32], 0)
            .unwrap();
        let a = signer.sign_inc(0, 3, Digest([1; 32]));
        let b = signer.sign_inc(0, 3, Digest([2; 32]));
        let good = Evidence::Equivocation {
            cert: cert.clone(),
            a: a.clone(),
            b: b.clone(),
        };
        let mut forged = b;
        forged.inc.payload = Digest([3; 32]);
        let bad = Evidence::Equivocation { cert, a, b: forged };
        (auth.public(), good, bad)
    }

    #[test]
    fn only_evidence_that_verifies_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ev = EvidenceDir::of(dir.path());
        let (trusted, good, bad) = equivocation();
        assert!(ev.keep(&bad, &[trusted]).unwrap().is_none());
        assert!(ev.list().unwrap().is_empty());
        // Good evidence, but under an authority this node does not trust: not kept either.
        let stranger = candor_core::Keypair::generate(&mut rand_core::OsRng).public();
        assert!(ev.keep(&good, &[stranger]).unwrap().is_none());
        let id = ev.keep(&good, &[trusted]).unwrap().unwrap();
        assert_eq!(ev.list().unwrap().len(), 1);
        let (loaded, _) = ev.load(&id).unwrap();
        assert_eq!(loaded, good);
    }

    #[test]
    fn ids_are_refused_unless_hex() {
        let dir = tempfile::tempdir().unwrap();
        let ev = EvidenceDir::of(dir.path());
        assert!(matches!(ev.load("../x"), Err(CliError::Usage(_))));
        assert!(matches!(ev.load(""), Err(CliError::Usage(_))));
        assert!(matches!(
            ev.load("abcdef0123456789"),
            Err(CliError::Evidence(EvidenceFileError::NotFound { .. }))
        ));
        assert!(ev.list().unwrap().is_empty());
        std::fs::create_dir_all(&ev.0).unwrap();
        std::fs::write(ev.0.join("0000000000000000.evidence"), b"junk").unwrap();
        let l = ev.list().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].kind, "damaged");
        assert!(matches!(
            ev.load("0000000000000000"),
            Err(CliError::Evidence(EvidenceFileError::Damaged { .. }))
        ));
        // A piece an earlier Candor wrote (evidence format 1) is refused as such, with what
        // to do.
        std::fs::write(ev.0.join("0000000000000001.evidence"), [1u8, 5, 0]).unwrap();
        let err = ev.load("0000000000000001").unwrap_err();
        assert!(
            matches!(
                err,
                CliError::Evidence(EvidenceFileError::OtherFormat { found: 1, .. })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("move it aside"), "{err}");
    }
}

//! The TPM 2.0 trusted device: counters are non-orderly NV counters, statements are
//! NV_Certify (`Read`) and the audited session (`Inc`), all signed by a restricted P-256 key
//! the TPM derives from its endorsement hierarchy (the same key at every open).

use crate::commands::{SigningKey, TPM_RH_ENDORSEMENT};
use crate::session::InFlight;
use crate::transport::{Tpm, TpmError, Transport};
use candor_core::endorsement::EK_CERT_NV_INDEX;
use candor_core::{
    CounterId, DeviceKey, DeviceSig, Digest, Inc, PeerId, Read, SignedInc, SignedRead, TpmKey,
    TpmProof,
};
use candor_device::{DeviceError, TrustedDevice};
use std::sync::Mutex;

/// The first NV index of the device's counters.
pub const DEFAULT_NV_BASE: u32 = 0x0150_1000;

const RC_NV_UNINITIALIZED: u32 = 0x14A;
/// The first transient object handle.
const TRANSIENT_FIRST: u32 = 0x8000_0000;
/// The first loaded HMAC session handle.
const HMAC_SESSION_FIRST: u32 = 0x0200_0000;
/// The first policy session handle.
const POLICY_SESSION_FIRST: u32 = 0x0300_0000;

#[derive(Debug, Clone)]
struct Counter {
    id: CounterId,
    index: u32,
    name: Vec<u8>,
}

/// A trusted device backed by a TPM 2.0.
pub struct TpmDevice<T: Transport> {
    journal: Option<std::path::PathBuf>,
    /// What the journal file holds (counter index, pre value), so that an acknowledgement
    /// clears it without reading it.
    journaled: Option<(u32, u64)>,
    /// The audit session of the last IncSign, kept loaded until its step is acknowledged: a
    /// crash before the node stored the step is then finished by signing its digest again.
    kept: Option<u32>,
    /// Statements signed but not yet acknowledged as stored, kept beside the journal (as the
    /// software device keeps them) so that `reissue` returns them after a crash.
    unacked: Vec<SignedInc>,
    tpm: Mutex<Tpm<T>>,
    key: SigningKey,
    peer: PeerId,
    counters: Vec<Counter>,
    device_key: DeviceKey,
}

impl<T: Transport> std::fmt::Debug for TpmDevice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmDevice")
            .field("counters", &self.counters.len())
            .finish_non_exhaustive()
    }
}

fn backend(e: TpmError) -> DeviceError {
    DeviceError::backend(e.to_string(), e)
}

impl<T: Transport> TpmDevice<T> {
    /// Opens the device on `transport` for node `peer`, with `counters` NV counters from
    /// `nv_base`. Setup is idempotent: the key is re-derived, counters defined only if missing
    /// and incremented only if never written (a never-written counter cannot be read).
    pub fn open(
        transport: T,
        peer: PeerId,
        counters: u32,
        nv_base: u32,
    ) -> Result<Self, DeviceError> {
        Self::open_journaled(transport, peer, counters, nv_base, None)
    }

    /// [`Self::open`], journaling each IncSign in flight at `journal` (once the increment has
    /// answered, and again after the post read), so that after a crash `reissue` can finish it
    /// in the still-loaded session.
    ///
    /// Without a resource manager (swtpm's port, a direct device) a process that died left
    /// its transient key and perhaps an audit session loaded: they are flushed first, all but
    /// the journaled session, so that repeated crashes do not exhaust the TPM's slots. (Through
    /// `/dev/tpmrm0` a connection sees only its own handles, so there is nothing to flush.)
    pub fn open_journaled(
        transport: T,
        peer: PeerId,
        counters: u32,
        nv_base: u32,
        journal: Option<std::path::PathBuf>,
    ) -> Result<Self, DeviceError> {
        let mut tpm = Tpm::new(transport);
        let in_flight = journal.as_deref().and_then(read_journal);
        let keep = in_flight.as_ref().map(|f| f.session);
        // Best effort: a TPM that will not list a handle range is left as it is.
        let mut stale = Vec::new();
        for first in [TRANSIENT_FIRST, HMAC_SESSION_FIRST, POLICY_SESSION_FIRST] {
            match tpm.handles(first) {
                Ok(hs) => stale.extend(hs),
                Err(e) => tracing::debug!(%e, "cannot list the TPM's loaded handles"),
            }
        }
        for h in stale.into_iter().filter(|h| Some(*h) != keep) {
            tracing::debug!(
                handle = format_args!("{h:#010x}"),
                "flushing a handle a dead process left loaded"
            );
            let _ = tpm.flush(h);
        }
        let key = tpm
            .create_signing_key(TPM_RH_ENDORSEMENT)
            .map_err(backend)?;
        let mut list = Vec::new();
        for id in 0..counters.max(1) {
            let index = nv_base + id;
            tpm.nv_define_counter(index).map_err(backend)?;
            match tpm.nv_read_counter(index) {
                Ok(_) => {}
                Err(TpmError::Response { code, .. }) if code & 0xfff == RC_NV_UNINITIALIZED => {
                    tpm.nv_increment(index).map_err(backend)?;
                }
                Err(e) => return Err(backend(e)),
            }
            let (_, name) = tpm.nv_read_public(index).map_err(backend)?;
            list.push(Counter { id, index, name });
        }
        let mut nv_public = Vec::with_capacity(list.len());
        for c in &list {
            let (public, _) = tpm.nv_read_public(c.index).map_err(backend)?;
            nv_public.push((c.id, public));
        }
        let device_key = DeviceKey::Tpm(Box::new(TpmKey {
            hierarchy: TPM_RH_ENDORSEMENT,
            key_public: key.public_area.clone(),
            nv_public,
        }));
        tracing::info!(counters = list.len(), "TPM 2.0 trusted device opened");
        Ok(Self {
            journaled: in_flight.map(|f| (f.index, f.pre)),
            kept: None,
            unacked: journal
                .as_deref()
                .map(|j| read_statements(&statements_path(j), &device_key, &peer))
                .unwrap_or_default(),
            journal,
            tpm: Mutex::new(tpm),
            key,
            peer,
            counters: list,
            device_key,
        })
    }

    fn counter(&self, id: CounterId) -> Result<&Counter, DeviceError> {
        self.counters
            .iter()
            .find(|c| c.id == id)
            .ok_or(DeviceError::UnknownCounter(id))
    }

    fn tpm(&self) -> std::sync::MutexGuard<'_, Tpm<T>> {
        self.tpm.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Transport> TrustedDevice for TpmDevice<T> {
    fn device_key(&self) -> DeviceKey {
        self.device_key.clone()
    }

    fn peer(&self) -> &PeerId {
        &self.peer
    }

    fn counters(&self) -> Vec<CounterId> {
        self.counters.iter().map(|c| c.id).collect()
    }

    fn value(&self, counter: CounterId) -> Result<u64, DeviceError> {
        let index = self.counter(counter)?.index;
        self.tpm().nv_read_counter(index).map_err(backend)
    }

    fn read_sign(
        &mut self,
        counter: CounterId,
        nonce: [u8; 32],
    ) -> Result<SignedRead, DeviceError> {
        let c = self.counter(counter)?.clone();
        let cert = self
            .tpm()
            .nv_certify(&self.key, c.index, &nonce)
            .map_err(backend)?;
        let vk = candor_core::tpm::verifying_key(&self.key.x, &self.key.y)
            .map_err(|e| DeviceError::backend(e.to_string(), e))?;
        let value = candor_core::tpm::verify_nv_read(
            &vk,
            &self.key.qualified_name(),
            &c.name,
            &nonce,
            &cert.attest,
            &cert.r,
            &cert.s,
        )
        .map_err(|e| DeviceError::backend(format!("the TPM's own Read does not verify: {e}"), e))?;
        Ok(SignedRead {
            read: Read {
                device: self.device_key.id(),
                peer: self.peer.clone(),
                counter,
                value,
                nonce,
            },
            sig: DeviceSig::Tpm(TpmProof {
                attest: cert.attest,
                r: cert.r,
                s: cert.s,
            }),
        })
    }

    fn inc_sign_batch(
        &mut self,
        counter: CounterId,
        payloads: &[Digest],
    ) -> Result<Vec<SignedInc>, DeviceError> {
        let c = self.counter(counter)?.clone();
        let device = self.device_key.id();
        let mut out = Vec::with_capacity(payloads.len());
        for p in payloads {
            let journal = self.journal.clone();
            let mut written = None;
            let mut write = |f: &InFlight| -> Result<(), TpmError> {
                if let Some(path) = &journal {
                    // Best effort: without it a crash now leaves a gap notice, not an error.
                    match write_journal(path, f) {
                        Ok(()) => written = Some((f.index, f.pre)),
                        Err(e) => tracing::warn!(%e, "cannot journal the IncSign in flight"),
                    }
                }
                Ok(())
            };
            let mut tpm = self.tpm.lock().unwrap_or_else(|p| p.into_inner());
            // The previous step's session: its journal is about to be replaced.
            if let Some(h) = self.kept.take() {
                let _ = tpm.flush(h);
            }
            let inc = tpm.inc_sign_journaled(&self.key, c.index, &c.name, p.as_bytes(), &mut write);
            if written.is_some() {
                self.journaled = written;
            }
            let inc = inc.map_err(backend)?;
            if self.journal.is_some() {
                self.kept = Some(inc.session);
            } else {
                let _ = tpm.flush(inc.session);
            }
            drop(tpm);
            let signed = SignedInc {
                inc: Inc {
                    device,
                    peer: self.peer.clone(),
                    counter,
                    value: inc.post,
                    payload: *p,
                },
                sig: DeviceSig::Tpm(TpmProof {
                    attest: inc.certified.attest,
                    r: inc.certified.r,
                    s: inc.certified.s,
                }),
            };
            if let Some(j) = &self.journal {
                // Best effort, like the journal: without it a crash now leaves a gap notice.
                if let Err(e) = append_statement(&statements_path(j), &signed) {
                    tracing::warn!(%e, "cannot keep the signed statement until it is stored");
                }
                if self.unacked.len() < MAX_UNACKED {
                    self.unacked.push(signed.clone());
                }
            }
            out.push(signed);
        }
        Ok(out)
    }

    fn reissue(
        &mut self,
        counter: CounterId,
        value: u64,
    ) -> Result<Option<SignedInc>, DeviceError> {
        // A TPM cannot sign an old step again; but a step a crash interrupted after its
        // increment can be finished in its audit session if the TPM still has it loaded
        // (DESIGN.md §7). Otherwise the node writes a gap notice.
        let c = self.counter(counter)?.clone();
        // Signed before the crash but not stored: kept, and verified when it was read back.
        if let Some(kept) = self
            .unacked
            .iter()
            .find(|s| s.inc.counter == counter && s.inc.value == value)
        {
            return Ok(Some(kept.clone()));
        }
        let Some(f) = self.journal.as_deref().and_then(read_journal) else {
            return Ok(None);
        };
        if f.index != c.index || f.pre.checked_add(1) != Some(value) {
            return Ok(None);
        }
        let recovered = self.tpm().recover_inc(&self.key, &c.name, &f);
        // Only a statement every buyer will accept leaves the device: a recovered step is
        // verified like any other before it is stored and served.
        let verified = |inc: &crate::IncAttest| {
            candor_core::tpm::verifying_key(&self.key.x, &self.key.y)
                .and_then(|vk| {
                    candor_core::tpm::verify_nv_inc(
                        &vk,
                        &self.key.qualified_name(),
                        &c.name,
                        &inc.payload,
                        inc.pre,
                        inc.post,
                        &inc.certified.attest,
                        &inc.certified.r,
                        &inc.certified.s,
                    )
                })
                .is_ok_and(|v| v == value)
        };
        match recovered {
            Ok(inc) if verified(&inc) => Ok(Some(SignedInc {
                inc: Inc {
                    device: self.device_key.id(),
                    peer: self.peer.clone(),
                    counter,
                    value,
                    payload: Digest(inc.payload),
                },
                sig: DeviceSig::Tpm(TpmProof {
                    attest: inc.certified.attest,
                    r: inc.certified.r,
                    s: inc.certified.s,
                }),
            })),
            Ok(_) => {
                tracing::warn!("the finished IncSign does not verify: a gap notice will cover it");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(%e, "the interrupted IncSign could not be finished: a gap notice will cover it");
                Ok(None)
            }
        }
    }

    fn acknowledge(&mut self, counter: CounterId, value: u64) -> Result<(), DeviceError> {
        let index = self.counter(counter)?.index;
        let before = self.unacked.len();
        self.unacked
            .retain(|s| s.inc.counter != counter || s.inc.value > value);
        if let (Some(j), true) = (&self.journal, self.unacked.len() != before) {
            if let Err(e) = write_statements(&statements_path(j), &self.unacked) {
                tracing::warn!(%e, "cannot rewrite the kept statements");
            }
        }
        if let (Some(path), Some((i, pre))) = (&self.journal, self.journaled) {
            // Only the acknowledged counter's step: another counter's may still be unstored.
            if i == index && pre < value {
                let _ = std::fs::remove_file(path);
                self.journaled = None;
                if let Some(h) = self.kept.take() {
                    let _ = self.tpm().flush(h);
                }
            }
        }
        Ok(())
    }

    fn acknowledged(&self, counter: CounterId) -> Result<u64, DeviceError> {
        self.counter(counter).map(|_| 0)
    }

    fn protection(&self) -> &'static str {
        "TPM 2.0: the key and the counters live in the TPM (swtpm protects nothing: development only)"
    }

    fn endorsement(&mut self) -> Result<Option<candor_core::Endorsement>, DeviceError> {
        let ek_cert = self
            .tpm()
            .nv_read_all(EK_CERT_NV_INDEX)
            .map_err(|e| match e {
                TpmError::Response { .. } => DeviceError::backend(
                    format!(
                        "the TPM has no EK certificate at NV index {EK_CERT_NV_INDEX:#010x} ({e}); \
                         for swtpm, create its state with `swtpm_setup --tpm2 --create-ek-cert`"
                    ),
                    e,
                ),
                e => backend(e),
            })?;
        Ok(Some(candor_core::Endorsement {
            ek_cert,
            chain: Vec::new(),
        }))
    }

    fn activate_credential(
        &mut self,
        credential: &candor_core::endorsement::Credential,
    ) -> Result<Vec<u8>, DeviceError> {
        let mut tpm = self.tpm();
        let (ek, transient) = tpm.ek_handle().map_err(backend)?;
        let secret = tpm.activate_credential(&self.key, ek, credential);
        if transient {
            let _ = tpm.flush(ek);
        }
        secret.map_err(|e| {
            DeviceError::backend(
                format!(
                    "the TPM did not open the authority's credential ({e}): the signing key \
                     and the EK are not in one TPM, or the credential was made for another EK"
                ),
                e,
            )
        })
    }
}

impl<T: Transport> Drop for TpmDevice<T> {
    fn drop(&mut self) {
        // swtpm has no resource manager: free the key's object slot (and a kept session: a
        // clean close has nothing left to finish).
        let handle = self.key.handle;
        if let Ok(mut tpm) = self.tpm.lock() {
            let _ = tpm.flush(handle);
            if let Some(h) = self.kept.take() {
                let _ = tpm.flush(h);
            }
        }
    }
}

/// The most signed-but-unstored statements kept (a batch's worth, with room to spare).
const MAX_UNACKED: usize = 4096;
/// The largest kept statement (a TPM `Inc` is ~400 bytes).
const MAX_STATEMENT: usize = 2048;

/// Where the kept statements live: beside the journal.
fn statements_path(journal: &std::path::Path) -> std::path::PathBuf {
    journal.with_extension("statements")
}

/// Appends one statement (u16 length, then its bytes). Not synced, like the journal: it
/// matters after a process crash, which keeps the page cache.
fn append_statement(path: &std::path::Path, s: &SignedInc) -> std::io::Result<()> {
    use candor_core::Encode as _;
    use std::io::Write;
    let bytes = s.to_bytes();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut rec = (bytes.len() as u16).to_be_bytes().to_vec();
    rec.extend_from_slice(&bytes);
    f.write_all(&rec)
}

/// Rewrites the kept statements whole (or removes the file when none is left).
fn write_statements(path: &std::path::Path, all: &[SignedInc]) -> std::io::Result<()> {
    use candor_core::Encode as _;
    if all.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut out = Vec::new();
    for s in all {
        let bytes = s.to_bytes();
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    let tmp = path.with_extension("statements.tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, path)
}

/// The kept statements that decode and verify as this device's for `peer`; anything else in
/// the file (a torn last record, garbage) is ignored. Read bounded.
fn read_statements(path: &std::path::Path, key: &DeviceKey, peer: &PeerId) -> Vec<SignedInc> {
    use candor_core::Decode as _;
    let limit = (MAX_UNACKED * (MAX_STATEMENT + 2)) as u64;
    let mut bytes = Vec::new();
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if std::io::Read::read_to_end(&mut std::io::Read::take(file, limit), &mut bytes).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while let [a, b, tail @ ..] = rest {
        let n = u16::from_be_bytes([*a, *b]) as usize;
        let Some(rec) = tail.get(..n) else { break };
        rest = &tail[n..];
        match SignedInc::from_bytes(rec) {
            Ok(s)
                if n <= MAX_STATEMENT
                    && out.len() < MAX_UNACKED
                    && &s.inc.peer == peer
                    && s.inc.device == key.id()
                    && key.verify_inc(&s).is_ok() =>
            {
                out.push(s)
            }
            _ => {
                tracing::warn!(path = %path.display(), "a kept statement does not verify: ignored")
            }
        }
    }
    out
}

fn write_journal(path: &std::path::Path, f: &InFlight) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = candor_core::Writer::new();
    w.u8(1)
        .u32(f.index)
        .u32(f.session)
        .u64(f.pre)
        .fixed(&f.payload)
        .bytes8(&f.nonce_tpm)
        .u64(f.seq)
        .u8(u8::from(f.post.is_some()))
        .u64(f.post.unwrap_or(0));
    // Not synced: it only matters after a process crash, which keeps the page cache. A power
    // loss resets the TPM, which flushes every session, so a synced journal would not help.
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(w.as_slice())?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// The largest journal read (it holds a fixed set of fields and a nonce of at most 64 bytes).
const MAX_JOURNAL: u64 = 256;

fn read_journal(path: &std::path::Path) -> Option<InFlight> {
    // A journal is under 200 bytes: anything larger is not one, and is not read whole.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).ok()?, MAX_JOURNAL + 1),
        &mut bytes,
    )
    .ok()?;
    if bytes.len() as u64 > MAX_JOURNAL {
        tracing::warn!(path = %path.display(), "the TPM journal is oversized: ignored");
        return None;
    }
    let mut r = candor_core::Reader::new(&bytes);
    r.version(1, "tpm journal").ok()?;
    let f = InFlight {
        index: r.u32("index").ok()?,
        session: r.u32("session").ok()?,
        pre: r.u64("pre").ok()?,
        payload: r.array("payload").ok()?,
        nonce_tpm: r.bytes8(64, "nonce").ok()?.to_vec(),
        seq: r.u64("seq").ok()?,
        post: match (r.u8("post?").ok()?, r.u64("post").ok()?) {
            (0, _) => None,
            (1, p) => Some(p),
            _ => return None,
        },
    };
    r.finish("tpm journal").ok()?;
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signed statements are kept until acknowledged, read back only if they verify as this
    /// device's, and a torn or foreign record is ignored.
    #[test]
    fn signed_statements_are_kept_until_acknowledged() {
        use candor_device::TrustedDevice;
        let sw = crate::Swtpm::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("tpm.journal");
        let peer = PeerId::from_bytes(&[0, 1, 2]).unwrap();
        let open = || {
            TpmDevice::open_journaled(
                crate::TcpTransport::connect(sw.server()).unwrap(),
                peer.clone(),
                1,
                DEFAULT_NV_BASE,
                Some(journal.clone()),
            )
            .unwrap()
        };
        let mut dev = open();
        let incs = dev
            .inc_sign_batch(0, &[Digest([1; 32]), Digest([2; 32]), Digest([3; 32])])
            .unwrap();
        let path = statements_path(&journal);
        let key = dev.device_key();
        assert_eq!(read_statements(&path, &key, &peer), incs);
        assert_eq!(
            dev.reissue(0, incs[1].inc.value).unwrap().as_ref(),
            Some(&incs[1])
        );
        dev.acknowledge(0, incs[1].inc.value).unwrap();
        assert_eq!(read_statements(&path, &key, &peer), incs[2..]);
        assert_eq!(dev.reissue(0, incs[1].inc.value).unwrap(), None);
        // Another node's view of the same statements, a torn record, garbage: ignored.
        let other = PeerId::from_bytes(&[9, 9]).unwrap();
        assert!(read_statements(&path, &key, &other).is_empty());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 200, 1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_statements(&path, &key, &peer), incs[2..]);
        std::fs::write(&path, [0u8, 3, 1, 2, 3, 0, 1]).unwrap();
        assert!(read_statements(&path, &key, &peer).is_empty());
        drop(dev);
        // Acknowledging everything removes the file.
        write_statements(&path, &incs[2..]).unwrap();
        let mut dev = open();
        assert_eq!(
            dev.reissue(0, incs[2].inc.value).unwrap().as_ref(),
            Some(&incs[2])
        );
        dev.acknowledge(0, incs[2].inc.value).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn the_journal_round_trips_and_bad_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tpm.journal");
        for post in [None, Some(8)] {
            let f = InFlight {
                index: 0x0150_0000,
                session: 0x0200_0000,
                pre: 7,
                payload: [3; 32],
                nonce_tpm: vec![9; 32],
                seq: 4,
                post,
            };
            write_journal(&path, &f).unwrap();
            assert_eq!(read_journal(&path), Some(f));
        }
        let good = std::fs::read(&path).unwrap();
        // Truncated, trailing bytes, an unknown version, oversized, missing: none is read.
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert_eq!(read_journal(&path), None);
        std::fs::write(&path, [&good[..], &[0]].concat()).unwrap();
        assert_eq!(read_journal(&path), None);
        std::fs::write(&path, [&[2u8][..], &good[1..]].concat()).unwrap();
        assert_eq!(read_journal(&path), None);
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        assert_eq!(read_journal(&path), None);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read_journal(&path), None);
    }
}

//! The software device: ed25519 key and counters in one file, replaced atomically.

use crate::{DeviceError, TrustedDevice};
use candor_core::{
    sha256, CounterId, Decode, DeviceKey, Digest, Ed25519StatementSigner, Encode, Keypair, PeerId,
    Reader, SignedInc, SignedRead, Writer, MAX_COUNTERS, MAX_PEER_ID,
};
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"candor-softdev\0\0";
const FILE_VERSION: u8 = 1;

/// The most statements the device keeps for the node before it refuses to count more.
pub const MAX_UNACKNOWLEDGED: usize = 1 << 20;

const PROTECTION: &str = "NOTHING: software device; its key and counters are a file the \
machine's owner can read, copy and roll back. For development and simulation only.";

#[derive(Debug, Clone, Default)]
struct Counter {
    value: u64,
    acked: u64,
    /// Statements for values `acked+1 ..= value`, in order.
    unacked: VecDeque<SignedInc>,
}

/// A device in software. **It protects nothing against the machine's owner.**
///
/// Its state (key, counters, and the statements the node has not yet acknowledged) is one
/// file, replaced atomically (write a temporary file, fsync, rename, fsync the folder). No
/// statement leaves the device before its (value, payload) is durable. A lock file keeps a
/// second process out.
#[derive(Debug)]
pub struct SoftwareDevice {
    path: Option<PathBuf>,
    _lock: Option<File>,
    key: Keypair,
    signer: Ed25519StatementSigner,
    counters: BTreeMap<CounterId, Counter>,
    total_unacked: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeviceError + '_ {
    move |source| DeviceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SoftwareDevice {
    fn new_state(
        peer: PeerId,
        counters: u32,
    ) -> (
        Keypair,
        BTreeMap<CounterId, Counter>,
        Ed25519StatementSigner,
    ) {
        let key = Keypair::generate(&mut rand_core::OsRng);
        let signer = Ed25519StatementSigner::new(key.clone(), peer);
        let counters = (0..counters.clamp(1, MAX_COUNTERS as u32))
            .map(|id| (id, Counter::default()))
            .collect();
        (key, counters, signer)
    }

    /// Creates a device with `counters` counters (at least 1) bound to node `peer`, and
    /// stores it at `path`, which must not exist.
    pub fn create(path: &Path, peer: PeerId, counters: u32) -> Result<Self, DeviceError> {
        if path.exists() {
            return Err(DeviceError::Exists(path.to_path_buf()));
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let lock = lock(path)?;
        let (key, counters, signer) = Self::new_state(peer, counters);
        let dev = Self {
            path: Some(path.to_path_buf()),
            _lock: Some(lock),
            key,
            signer,
            counters,
            total_unacked: 0,
        };
        dev.persist()?;
        warn_protects_nothing(path);
        Ok(dev)
    }

    /// A device that lives only in memory, for simulations and tests.
    pub fn in_memory(peer: PeerId, counters: u32) -> Self {
        let (key, counters, signer) = Self::new_state(peer, counters);
        Self {
            path: None,
            _lock: None,
            key,
            signer,
            counters,
            total_unacked: 0,
        }
    }

    /// Opens the device stored at `path`. A truncated, corrupted or foreign file is refused.
    /// (A file rolled back to an older, intact state cannot be told from the file alone: the
    /// node checks it against its store's highest receipt.)
    pub fn open(path: &Path) -> Result<Self, DeviceError> {
        let lock = lock(path)?;
        let bytes = fs::read(path).map_err(io_err(path))?;
        let corrupt = |reason: String| DeviceError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < MAGIC.len() + 32 {
            return Err(corrupt("the file is too short".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if sha256(body).as_bytes() != sum {
            return Err(corrupt(
                "its checksum does not match (truncated or corrupted)".into(),
            ));
        }
        let mut r = Reader::new(body);
        let magic: [u8; 16] = r.array("magic").map_err(|e| corrupt(e.to_string()))?;
        if &magic != MAGIC {
            return Err(corrupt("it is not a Candor software device".into()));
        }
        let (key, peer, counters) = decode_state(&mut r).map_err(|e| corrupt(e.to_string()))?;
        r.finish("device state")
            .map_err(|e| corrupt(e.to_string()))?;
        let signer = Ed25519StatementSigner::new(key.clone(), peer);
        let device_id = signer.device_key().id();
        let mut total_unacked = 0;
        for (id, c) in &counters {
            if c.acked > c.value || (c.value - c.acked) as usize != c.unacked.len() {
                return Err(corrupt(format!(
                    "counter {id}'s pending statements do not add up"
                )));
            }
            for (i, s) in c.unacked.iter().enumerate() {
                let ok = s.inc.counter == *id
                    && s.inc.value == c.acked + 1 + i as u64
                    && s.inc.device == device_id
                    && signer.device_key().verify_inc(s).is_ok();
                if !ok {
                    return Err(corrupt(format!(
                        "counter {id} holds a statement it did not sign"
                    )));
                }
            }
            total_unacked += c.unacked.len();
        }
        warn_protects_nothing(path);
        Ok(Self {
            path: Some(path.to_path_buf()),
            _lock: Some(lock),
            key,
            signer,
            counters,
            total_unacked,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256 + self.total_unacked * 200);
        w.fixed(MAGIC)
            .u8(FILE_VERSION)
            .fixed(&self.key.secret_bytes());
        w.bytes8(self.signer.peer().as_bytes());
        w.u32(self.counters.len() as u32);
        for (id, c) in &self.counters {
            w.u32(*id)
                .u64(c.value)
                .u64(c.acked)
                .u32(c.unacked.len() as u32);
            for s in &c.unacked {
                w.bytes16(&s.to_bytes());
            }
        }
        let mut bytes = w.into_bytes();
        let sum = sha256(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        bytes
    }

    /// Writes the state durably: temporary file, fsync, rename, fsync of the folder.
    fn persist(&self) -> Result<(), DeviceError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        // The state holds the device's secret key: readable by its owner only.
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&self.encode()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err(path))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        Ok(())
    }

    fn counter_mut(&mut self, id: CounterId) -> Result<&mut Counter, DeviceError> {
        self.counters
            .get_mut(&id)
            .ok_or(DeviceError::UnknownCounter(id))
    }

    fn counter(&self, id: CounterId) -> Result<&Counter, DeviceError> {
        self.counters
            .get(&id)
            .ok_or(DeviceError::UnknownCounter(id))
    }

    /// Where the state lives (None in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

fn lock(path: &Path) -> Result<File, DeviceError> {
    let lock_path = path.with_extension("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(DeviceError::Locked(path.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&lock_path)(e)),
    }
}

fn warn_protects_nothing(path: &Path) {
    // Once per process: a simulation opens many devices.
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    // Logged, not shouted: the tools that open it say it once where it matters (`device
    // init`, the node's start, `device show`), not on every command that touches it.
    tracing::info!(
        path = %path.display(),
        "software trusted device: it protects NOTHING against this machine's owner \
         (key and counters are a plain file); use it for development and simulation only"
    );
}

type State = (Keypair, PeerId, BTreeMap<CounterId, Counter>);

fn decode_state(r: &mut Reader<'_>) -> Result<State, candor_core::DecodeError> {
    r.version(FILE_VERSION, "device state")?;
    let key = Keypair::from_secret(r.array("secret key")?);
    let peer = PeerId::from_bytes(r.bytes8(MAX_PEER_ID, "peer")?)?;
    let n = r.u32("counter count")? as usize;
    if n == 0 || n > MAX_COUNTERS {
        return Err(candor_core::DecodeError::Invalid {
            field: "counters",
            reason: "count out of range",
        });
    }
    let mut counters = BTreeMap::new();
    for _ in 0..n {
        let id = r.u32("counter id")?;
        let value = r.u64("value")?;
        let acked = r.u64("acked")?;
        let m = r.u32("pending count")? as usize;
        if m > MAX_UNACKNOWLEDGED || m > r.remaining() / 2 {
            return Err(candor_core::DecodeError::Invalid {
                field: "pending",
                reason: "count out of range",
            });
        }
        let mut unacked = VecDeque::with_capacity(m);
        for _ in 0..m {
            unacked.push_back(SignedInc::from_bytes(r.bytes16(1024, "statement")?)?);
        }
        if counters
            .insert(
                id,
                Counter {
                    value,
                    acked,
                    unacked,
                },
            )
            .is_some()
        {
            return Err(candor_core::DecodeError::Invalid {
                field: "counters",
                reason: "a counter is listed twice",
            });
        }
    }
    Ok((key, peer, counters))
}

impl TrustedDevice for SoftwareDevice {
    fn device_key(&self) -> DeviceKey {
        self.signer.device_key()
    }

    fn peer(&self) -> &PeerId {
        self.signer.peer()
    }

    fn counters(&self) -> Vec<CounterId> {
        self.counters.keys().copied().collect()
    }

    fn value(&self, counter: CounterId) -> Result<u64, DeviceError> {
        Ok(self.counter(counter)?.value)
    }

    fn read_sign(
        &mut self,
        counter: CounterId,
        nonce: [u8; 32],
    ) -> Result<SignedRead, DeviceError> {
        let value = self.counter(counter)?.value;
        Ok(self.signer.sign_read(counter, value, nonce))
    }

    fn inc_sign_batch(
        &mut self,
        counter: CounterId,
        payloads: &[Digest],
    ) -> Result<Vec<SignedInc>, DeviceError> {
        if self.total_unacked + payloads.len() > MAX_UNACKNOWLEDGED {
            return Err(DeviceError::TooManyUnacknowledged(self.total_unacked));
        }
        let start = self.counter(counter)?.value;
        if start.checked_add(payloads.len() as u64).is_none() {
            return Err(DeviceError::Exhausted(counter));
        }
        let signed: Vec<SignedInc> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| self.signer.sign_inc(counter, start + 1 + i as u64, *p))
            .collect();
        let c = self.counter_mut(counter)?;
        c.value = start + payloads.len() as u64;
        c.unacked.extend(signed.iter().cloned());
        self.total_unacked += payloads.len();
        if let Err(e) = self.persist() {
            // Nothing left the device: undo the increments in memory.
            let c = self.counter_mut(counter)?;
            c.value = start;
            let keep = c.unacked.len() - payloads.len();
            c.unacked.truncate(keep);
            self.total_unacked -= payloads.len();
            return Err(e);
        }
        Ok(signed)
    }

    fn reissue(
        &mut self,
        counter: CounterId,
        value: u64,
    ) -> Result<Option<SignedInc>, DeviceError> {
        let c = self.counter(counter)?;
        if value <= c.acked || value > c.value {
            return Ok(None);
        }
        Ok(c.unacked.get((value - c.acked - 1) as usize).cloned())
    }

    fn acknowledge(&mut self, counter: CounterId, value: u64) -> Result<(), DeviceError> {
        let c = self.counter_mut(counter)?;
        if value > c.value {
            return Err(DeviceError::AckBeyondValue {
                counter,
                value,
                current: c.value,
            });
        }
        let mut dropped = 0;
        while c.acked < value {
            c.unacked.pop_front();
            c.acked += 1;
            dropped += 1;
        }
        self.total_unacked -= dropped;
        // Acknowledgements are persisted with the next increment: a stale file only keeps
        // statements the node already stored, which reconciliation ignores.
        Ok(())
    }

    fn acknowledged(&self, counter: CounterId) -> Result<u64, DeviceError> {
        Ok(self.counter(counter)?.acked)
    }

    fn protection(&self) -> &'static str {
        PROTECTION
    }

    fn endorsement(&mut self) -> Result<Option<candor_core::Endorsement>, DeviceError> {
        Ok(None)
    }
    fn activate_credential(
        &mut self,
        _credential: &candor_core::endorsement::Credential,
    ) -> Result<Vec<u8>, DeviceError> {
        Err(crate::no_hardware_root())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::PublicKey;

    fn peer() -> PeerId {
        PeerId::from_ed25519(&Keypair::generate(&mut rand_core::OsRng).public())
    }

    #[test]
    fn statements_survive_reopen_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        let mut d = SoftwareDevice::create(&path, peer(), 2).unwrap();
        let key = d.device_key();
        let incs = d
            .inc_sign_batch(1, &[Digest([1; 32]), Digest([2; 32]), Digest([3; 32])])
            .unwrap();
        for s in &incs {
            key.verify_inc(s).unwrap();
        }
        d.acknowledge(1, 1).unwrap();
        d.inc_sign(0, Digest([4; 32])).unwrap();
        drop(d);
        let mut d = SoftwareDevice::open(&path).unwrap();
        assert_eq!(d.device_key(), key);
        assert_eq!(d.value(1).unwrap(), 3);
        assert_eq!(d.acknowledged(1).unwrap(), 1);
        assert_eq!(d.reissue(1, 1).unwrap(), None);
        assert_eq!(d.reissue(1, 2).unwrap(), Some(incs[1].clone()));
        assert_eq!(d.reissue(1, 3).unwrap(), Some(incs[2].clone()));
        assert_eq!(d.reissue(1, 4).unwrap(), None);
        assert!(matches!(
            d.inc_sign(7, Digest([0; 32])),
            Err(DeviceError::UnknownCounter(7))
        ));
    }

    #[test]
    fn second_opener_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        let _d = SoftwareDevice::create(&path, peer(), 1).unwrap();
        assert!(matches!(
            SoftwareDevice::open(&path),
            Err(DeviceError::Locked(_))
        ));
        assert!(matches!(
            SoftwareDevice::create(&path, peer(), 1),
            Err(DeviceError::Exists(_))
        ));
    }

    #[test]
    fn truncated_or_corrupted_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        let mut d = SoftwareDevice::create(&path, peer(), 1).unwrap();
        d.inc_sign(0, Digest([1; 32])).unwrap();
        drop(d);
        let good = fs::read(&path).unwrap();
        for cut in [0, 10, good.len() / 2, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(matches!(
                SoftwareDevice::open(&path),
                Err(DeviceError::Corrupt { .. })
            ));
        }
        let mut bad = good.clone();
        bad[40] ^= 0x20;
        fs::write(&path, &bad).unwrap();
        let err = SoftwareDevice::open(&path).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        // The advice never says to put an old copy back: that is what makes an equivocator.
        assert!(
            err.to_string().contains("Do not put an older copy"),
            "{err}"
        );
        assert!(!err.to_string().contains("Restore"), "{err}");
        fs::write(&path, &good).unwrap();
        SoftwareDevice::open(&path).unwrap();
    }

    #[test]
    fn read_follows_every_returned_inc() {
        let mut d = SoftwareDevice::in_memory(peer(), 1);
        for i in 1..=5u64 {
            d.inc_sign(0, Digest([i as u8; 32])).unwrap();
            let r = d.read_sign(0, [0; 32]).unwrap();
            assert_eq!(r.read.value, i);
        }
        assert!(d.protection().starts_with("NOTHING"));
        assert!(matches!(d.device_key(), DeviceKey::Software(PublicKey(_))));
    }

    #[test]
    fn ack_beyond_value_is_refused() {
        let mut d = SoftwareDevice::in_memory(peer(), 1);
        assert!(matches!(
            d.acknowledge(0, 1),
            Err(DeviceError::AckBeyondValue { .. })
        ));
    }
}

//! Against a real swtpm that the test starts itself (installed by `.ci/run` and
//! `./scripts/test` when missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::Cuttable;

use candor_tpm::{Swtpm, TcpTransport, Tpm};

#[test]
fn get_random_from_swtpm_and_across_a_restart() {
    let mut sw =
        Swtpm::start().expect("swtpm must be installed for the test suite (see scripts/test)");
    let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).unwrap());
    let a = tpm.get_random(32).unwrap();
    let b = tpm.get_random(32).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b, "two draws of 32 random bytes are equal");
    sw.restart().unwrap();
    let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).unwrap());
    assert_eq!(tpm.get_random(16).unwrap().len(), 16);
}

#[test]
fn read_sign_by_nv_certify_verifies_in_pure_rust_and_rejects_tampering() {
    use candor_tpm::{verify_nv_read, verifying_key, AttestError, TPM_RH_ENDORSEMENT};
    let sw = Swtpm::start().unwrap();
    let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).unwrap());
    let key = tpm.create_signing_key(TPM_RH_ENDORSEMENT).unwrap();
    let index = 0x0150_0010;
    tpm.nv_define_counter(index).unwrap();
    tpm.nv_define_counter(index).unwrap(); // idempotent
                                           // A never-written counter cannot be read: increment once at setup.
    tpm.nv_increment(index).unwrap();
    let v0 = tpm.nv_read_counter(index).unwrap();
    tpm.nv_increment(index).unwrap();
    assert_eq!(tpm.nv_read_counter(index).unwrap(), v0 + 1);
    let (_, nv_name) = tpm.nv_read_public(index).unwrap();
    let vk = verifying_key(&key.x, &key.y).unwrap();
    let qn = key.qualified_name();
    let mut high_s = 0;
    for i in 0..12u8 {
        let nonce = [i; 32];
        let c = tpm.nv_certify(&key, index, &nonce).unwrap();
        let read = verify_nv_read(&vk, &qn, &nv_name, &nonce, &c.attest, &c.r, &c.s).unwrap();
        assert_eq!(read, v0 + 1);
        high_s += usize::from(c.s.first().is_some_and(|b| *b >= 0x80));
        // Tampering with any pinned field, or another nonce, fails.
        assert_eq!(
            verify_nv_read(&vk, &qn, &nv_name, &[0xEE; 32], &c.attest, &c.r, &c.s),
            Err(AttestError::Mismatch("extra data (nonce)"))
        );
        let mut bad = c.attest.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            verify_nv_read(&vk, &qn, &nv_name, &nonce, &bad, &c.r, &c.s),
            Err(AttestError::BadSignature)
        );
        assert!(verify_nv_read(&vk, &qn, &[0, 11, 1, 2], &nonce, &c.attest, &c.r, &c.s).is_err());
    }
    // TPMs emit high-s signatures; the verifier accepts them (they verified above).
    eprintln!("{high_s} of 12 TPM signatures had a high s");
    tpm.flush(key.handle).unwrap();
}

#[test]
fn inc_sign_by_audited_session_verifies_and_binds_one_payload_to_one_value() {
    use candor_tpm::{verify_nv_inc, verifying_key, AttestError, TPM_RH_ENDORSEMENT};
    let sw = Swtpm::start().unwrap();
    let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).unwrap());
    let key = tpm.create_signing_key(TPM_RH_ENDORSEMENT).unwrap();
    let index = 0x0150_0020;
    tpm.nv_define_counter(index).unwrap();
    tpm.nv_increment(index).unwrap();
    let (_, nv_name) = tpm.nv_read_public(index).unwrap();
    let vk = verifying_key(&key.x, &key.y).unwrap();
    let qn = key.qualified_name();
    let mut last = tpm.nv_read_counter(index).unwrap();
    for i in 0..5u8 {
        let payload = [i; 32];
        let inc = tpm.inc_sign(&key, index, &nv_name, &payload).unwrap();
        assert_eq!((inc.pre, inc.post), (last, last + 1));
        let c = &inc.certified;
        assert_eq!(
            verify_nv_inc(&vk, &qn, &nv_name, &payload, inc.pre, inc.post, &c.attest, &c.r, &c.s),
            Ok(inc.post)
        );
        // Another payload, another value, or a skipped value: rejected.
        assert!(matches!(
            verify_nv_inc(
                &vk,
                &qn,
                &nv_name,
                &[0xEE; 32],
                inc.pre,
                inc.post,
                &c.attest,
                &c.r,
                &c.s
            ),
            Err(AttestError::Mismatch(_))
        ));
        assert!(verify_nv_inc(
            &vk,
            &qn,
            &nv_name,
            &payload,
            inc.pre + 1,
            inc.post + 1,
            &c.attest,
            &c.r,
            &c.s
        )
        .is_err());
        assert!(verify_nv_inc(
            &vk,
            &qn,
            &nv_name,
            &payload,
            inc.pre,
            inc.post + 1,
            &c.attest,
            &c.r,
            &c.s
        )
        .is_err());
        // Another counter's name: rejected.
        assert!(verify_nv_inc(
            &vk,
            &qn,
            &[0, 11, 9, 9],
            &payload,
            inc.pre,
            inc.post,
            &c.attest,
            &c.r,
            &c.s
        )
        .is_err());
        last = inc.post;
    }
    assert_eq!(tpm.nv_read_counter(index).unwrap(), last);
}

/// The character-device transport (`/dev/tpmrm0` in real use) against swtpm: no TPM device
/// exists on CI machines, so a pty that `socat` bridges to swtpm's port stands in for it. The
/// whole device — key, counters, `Read` and `Inc` verified in pure Rust — runs through it.
#[test]
fn the_device_file_transport_runs_the_device_through_a_character_device() {
    use candor_core::{Digest, PeerId};
    use candor_device::TrustedDevice;
    use candor_tpm::{DeviceTransport, TpmDevice, DEFAULT_NV_BASE};
    let sw = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("tpm0");
    let mut socat = std::process::Command::new("socat")
        .arg(format!("PTY,link={},rawer", link.display()))
        .arg(format!("TCP:{}", sw.server()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat (scripts/install-deps installs it)");
    let started = std::time::Instant::now();
    while !link.exists() {
        assert!(started.elapsed().as_secs() < 10, "socat made no pty");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let peer = PeerId::from_bytes(&[0, 1, 2]).unwrap();
    let transport = DeviceTransport::open(&link).unwrap();
    let mut dev = TpmDevice::open(transport, peer, 2, DEFAULT_NV_BASE).unwrap();
    let key = dev.device_key();
    for i in 0..20u8 {
        let inc = dev.inc_sign(i as u32 % 2, Digest([i; 32])).unwrap();
        key.verify_inc(&inc).unwrap();
        let read = dev.read_sign(i as u32 % 2, [i; 32]).unwrap();
        key.verify_read(&read).unwrap();
        assert_eq!(read.read.value, inc.inc.value);
    }
    drop(dev);
    let _ = socat.kill();
    let _ = socat.wait();
}

/// A process that dies without flushing (SIGKILL) leaves its transient key loaded in swtpm,
/// which has no resource manager: reopening many times must not run out of object slots.
#[test]
fn reopening_after_many_unclean_exits_does_not_exhaust_the_tpm() {
    use candor_core::{Digest, PeerId};
    use candor_device::TrustedDevice;
    use candor_tpm::{TpmDevice, DEFAULT_NV_BASE};
    let sw = Swtpm::start().unwrap();
    let peer = PeerId::from_bytes(&[0, 1, 2]).unwrap();
    for i in 0..8u8 {
        let (transport, link) = Cuttable::connect(sw.server());
        let mut dev = TpmDevice::open(transport, peer.clone(), 1, DEFAULT_NV_BASE)
            .unwrap_or_else(|e| panic!("open {i}: {e}"));
        let inc = dev.inc_sign(0, Digest([i; 32])).unwrap();
        dev.device_key().verify_inc(&inc).unwrap();
        *link.lock().unwrap() = None; // killed: the socket closes, nothing is flushed
        drop(dev);
    }
}

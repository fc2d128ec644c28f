//! A listing node on a TPM (swtpm): enrolment with Reads against the authority's nonce, publish
//! and retrieve for schemes B, C and M, every statement verified in pure Rust; a restart of
//! the node and a power cycle of the TPM keep every statement verifiable and the counters
//! where they were.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::Cuttable;

use candor_core::*;
use candor_listing::{enrol, publish_to, retrieve_from, ListingNode, PublishReceipt, Reading};
use candor_store::ListingStore;
use candor_tpm::{Swtpm, SwtpmCa, TcpTransport, TpmDevice, DEFAULT_NV_BASE};

/// An swtpm with an EK certificate from the shared development CA, and an authority that
/// trusts that CA.
fn endorsed() -> (Swtpm, Authority) {
    let ca = SwtpmCa::shared().expect("swtpm_setup (scripts/test installs swtpm-tools)");
    let sw = Swtpm::start_endorsed(ca).expect("swtpm (scripts/test installs it)");
    let mut roots = endorsement::EndorsementRoots::new();
    roots
        .add_pem(&ca.certificates_pem().unwrap(), true)
        .unwrap();
    let authority =
        Authority::new(Keypair::generate(&mut rand_core::OsRng)).with_endorsement_roots(roots);
    (sw, authority)
}

const NOW: u64 = 1_800_000_000;

fn offers(item: &Item, n: u64) -> Vec<SignedOffer> {
    (0..n)
        .map(|i| {
            let s = Keypair::generate(&mut rand_core::OsRng);
            SignedOffer::sign(&s, item, 1000 + i, Currency::EUR, 1, NOW + 3600, 1)
        })
        .collect()
}

fn run(scheme: Scheme, counters: u32) {
    let (mut sw, authority) = endorsed();
    let trusted = [authority.public()];
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let peer = PeerId::from_ed25519(&node_key.public());
    let open = |sw: &Swtpm| {
        TpmDevice::open(
            TcpTransport::connect(sw.server()).unwrap(),
            peer.clone(),
            counters,
            DEFAULT_NV_BASE,
        )
        .unwrap()
    };
    let mut device = open(&sw);
    let cert = enrol(
        &authority,
        &mut Registry::default(),
        &node_key,
        &mut device,
        scheme,
        counters,
        NOW,
    )
    .unwrap();
    assert!(matches!(cert.cert.device, DeviceKey::Tpm(_)));
    let (node, _) =
        ListingNode::open(device, ListingStore::in_memory().unwrap(), cert.clone()).unwrap();
    let item = Item::new("a TPM-listed item").unwrap();
    for o in offers(&item, 3) {
        match publish_to(&node, &trusted, &o, NOW).unwrap() {
            PublishReceipt::Entry(r) => assert!(matches!(r.inc.sig, DeviceSig::Tpm(_))),
            PublishReceipt::Step(r, _) => assert!(matches!(r.step.step.inc.sig, DeviceSig::Tpm(_))),
        }
    }
    let out = retrieve_from(&node, &trusted, &item, Reading::default().at(NOW).audits(3)).unwrap();
    assert_eq!(out.offers().len(), 3);
    let t = out.t();
    // Restart the node on the same TPM, then power-cycle the TPM: counters stay where they
    // were and everything still verifies.
    let (device, store) = node.into_parts();
    drop(device);
    let (node, report) = ListingNode::open(open(&sw), store, cert.clone()).unwrap();
    assert!(report.gaps.is_empty() && report.recovered == 0);
    let (device, store) = node.into_parts();
    drop(device);
    sw.restart().unwrap();
    let (node, _) = ListingNode::open(open(&sw), store, cert).unwrap();
    let out = retrieve_from(&node, &trusted, &item, Reading::default().at(NOW).audits(3)).unwrap();
    assert_eq!((out.offers().len(), out.t()), (3, t));
    for o in offers(&item, 2) {
        publish_to(&node, &trusted, &o, NOW).unwrap();
    }
    assert_eq!(
        retrieve_from(&node, &trusted, &item, Reading::default().at(NOW).audits(2))
            .unwrap()
            .offers()
            .len(),
        5
    );
}

#[test]
fn scheme_b_on_a_tpm() {
    run(Scheme::Basic, 1);
}

#[test]
fn scheme_c_on_a_tpm() {
    run(Scheme::Counters, 4);
}

#[test]
fn scheme_m_on_a_tpm() {
    run(Scheme::Merkle, 1);
}

#[test]
fn the_authority_vets_the_tpm_key_and_counters() {
    let sw = Swtpm::start().unwrap();
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let peer = PeerId::from_ed25519(&node_key.public());
    let device = TpmDevice::open(
        TcpTransport::connect(sw.server()).unwrap(),
        peer,
        2,
        DEFAULT_NV_BASE,
    )
    .unwrap();
    let DeviceKey::Tpm(key) = candor_device::TrustedDevice::device_key(&device) else {
        panic!()
    };
    key.vet().unwrap();
    // An unrestricted key (it could sign any attestation) is refused.
    let mut unrestricted = (*key).clone();
    let attrs = candor_tpm::SIGNING_KEY_ATTRIBUTES & !0x1_0000;
    unrestricted.key_public[4..8].copy_from_slice(&attrs.to_be_bytes());
    assert!(unrestricted.vet().unwrap_err().contains("restricted"));
    // An orderly counter (it can jump after an unclean restart) is refused.
    let mut orderly = (*key).clone();
    let nv = &mut orderly.nv_public[0].1;
    let a = u32::from_be_bytes(nv[6..10].try_into().unwrap()) | (1 << 26);
    nv[6..10].copy_from_slice(&a.to_be_bytes());
    assert!(orderly.vet().unwrap_err().contains("orderly"));
    // Two counter ids naming one NV area (one increment would count twice), or one id twice.
    let mut twice = (*key).clone();
    twice.nv_public[1].1 = twice.nv_public[0].1.clone();
    assert_eq!(twice.vet().unwrap_err(), "two counters name one NV index");
    let mut same_id = (*key).clone();
    same_id.nv_public[1].0 = same_id.nv_public[0].0;
    assert_eq!(same_id.vet().unwrap_err(), "a counter id is named twice");
    // A key under another hierarchy is refused.
    let mut owner = (*key).clone();
    owner.hierarchy = candor_tpm::TPM_RH_OWNER;
    assert!(owner.vet().is_err());
}

/// Where the process dies, counted in TPM commands after the NV_Increment answered (1 = the
/// post read, 2 = the signed digest), and whether the TPM ran that command (its answer lost)
/// or never saw it. Every later command fails: nothing is flushed.
#[derive(Clone, Copy)]
struct Death {
    at: usize,
    executed: bool,
}

struct Dying {
    inner: TcpTransport,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    death: Death,
    since_increment: Option<usize>,
    dead: bool,
}

impl candor_tpm::Transport for Dying {
    fn exchange(&mut self, command: &[u8]) -> Result<Vec<u8>, candor_tpm::TpmError> {
        let gone = || candor_tpm::TpmError::Io {
            endpoint: "dying".into(),
            source: std::io::Error::other("the process is gone"),
        };
        if self.dead {
            return Err(gone());
        }
        if let Some(n) = self.since_increment.as_mut() {
            *n += 1;
            if *n == self.death.at {
                self.dead = true;
                if self.death.executed {
                    let _ = self.inner.exchange(command);
                }
                return Err(gone());
            }
        }
        let response = self.inner.exchange(command)?;
        let increment = command.get(6..10) == Some(&0x0000_0134u32.to_be_bytes()[..]);
        if increment && self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            self.since_increment = Some(0);
        }
        Ok(response)
    }
}

/// The node crashes after the TPM counted a step but before the step was signed: with the
/// journal, the next open finishes the step in its still-loaded audit session, so the offer
/// is published and nothing is lost or accused; without it, the B node writes a gap notice.
fn crash_after_increment(scheme: Scheme, journal: bool, death: Death, recovers: bool) {
    let (sw, authority) = endorsed();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tpm.journal");
    let trusted = [authority.public()];
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let peer = PeerId::from_ed25519(&node_key.public());
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let open = |sw: &Swtpm| {
        let t = Dying {
            inner: TcpTransport::connect(sw.server()).unwrap(),
            armed: armed.clone(),
            death,
            since_increment: None,
            dead: false,
        };
        TpmDevice::open_journaled(
            t,
            peer.clone(),
            1,
            DEFAULT_NV_BASE,
            journal.then(|| path.clone()),
        )
        .unwrap()
    };
    let mut device = open(&sw);
    let cert = enrol(
        &authority,
        &mut Registry::default(),
        &node_key,
        &mut device,
        scheme,
        1,
        NOW,
    )
    .unwrap();
    let (node, _) =
        ListingNode::open(device, ListingStore::in_memory().unwrap(), cert.clone()).unwrap();
    let item = Item::new("an item whose listing node crashes").unwrap();
    let all = offers(&item, 3);
    publish_to(&node, &trusted, &all[0], NOW).unwrap();
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(publish_to(&node, &trusted, &all[1], NOW).is_err());
    armed.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        path.exists(),
        journal,
        "journaled once the increment answered"
    );

    let (device, store) = node.into_parts();
    drop(device); // the transport is dead: nothing is flushed, the socket closes
    let (node, report) = ListingNode::open(open(&sw), store, cert.clone()).unwrap();
    if recovers {
        assert_eq!(report.recovered, 1);
        assert!(report.gaps.is_empty());
    } else {
        assert_eq!(report.recovered, 0);
        assert_eq!(report.gaps.len(), 1);
    }
    publish_to(&node, &trusted, &all[2], NOW).unwrap();
    assert!(
        !path.exists(),
        "the journal is cleared once the step is acknowledged"
    );
    // Every value audited (scheme M): a lost one is answered by the gap step over it.
    let out = retrieve_from(
        &node,
        &trusted,
        &item,
        Reading::default().at(NOW).audits(16),
    )
    .unwrap();
    let expected = if recovers { 3 } else { 2 };
    assert_eq!(out.offers().len(), expected);
    assert_eq!(
        out.gaps(),
        usize::from(!recovers),
        "gaps reported, no accusation"
    );
    // And once more after a clean restart: the stored steps (a gap step among them) replay.
    let (device, store) = node.into_parts();
    drop(device);
    let (node, report) = ListingNode::open(open(&sw), store, cert).unwrap();
    assert!(report.gaps.is_empty() && report.recovered == 0);
    let again = retrieve_from(
        &node,
        &trusted,
        &item,
        Reading::default().at(NOW).audits(16),
    )
    .unwrap();
    assert_eq!((again.offers().len(), again.gaps()), (expected, out.gaps()));
}

const BEFORE_POST_READ: Death = Death {
    at: 1,
    executed: false,
};

#[test]
fn a_crash_after_the_increment_is_finished_from_the_journal_scheme_b() {
    crash_after_increment(Scheme::Basic, true, BEFORE_POST_READ, true);
}

#[test]
fn a_crash_after_the_increment_is_finished_from_the_journal_scheme_m() {
    crash_after_increment(Scheme::Merkle, true, BEFORE_POST_READ, true);
}

#[test]
fn without_the_journal_a_crash_after_the_increment_leaves_a_gap_notice() {
    crash_after_increment(Scheme::Basic, false, BEFORE_POST_READ, false);
}

/// A crash before the digest was asked, or after the TPM signed it but before the answer was
/// stored: the journal holds the post value, so only the digest is asked (again).
#[test]
fn a_crash_around_the_signed_digest_is_finished_from_the_journal() {
    let at = 2;
    crash_after_increment(
        Scheme::Basic,
        true,
        Death {
            at,
            executed: false,
        },
        true,
    );
    crash_after_increment(Scheme::Merkle, true, Death { at, executed: true }, true);
}

/// The TPM ran the post read but the process died before journaling its answer: the
/// journal's session nonce is stale, the TPM refuses to go on in that session, and a gap
/// notice covers the value. Nothing unverifiable is stored or served; no one is accused.
#[test]
fn a_crash_with_the_post_read_unjournaled_leaves_a_gap_notice() {
    let death = Death {
        at: 1,
        executed: true,
    };
    crash_after_increment(Scheme::Basic, true, death, false);
}

/// Scheme M: a step lost in a crash (no journal, or a stale one) is covered by a gap step, an
/// empty step binding the last stored step's value; buyers auditing every value accept it.
#[test]
fn a_lost_scheme_m_step_is_covered_by_a_gap_step() {
    crash_after_increment(Scheme::Merkle, false, BEFORE_POST_READ, false);
    let death = Death {
        at: 1,
        executed: true,
    };
    crash_after_increment(Scheme::Merkle, true, death, false);
}

/// The process dies after the TPM signed a step but before the node stored it: the audit
/// session was kept loaded, so the next open has the TPM sign its digest again and stores
/// the step — nothing lost, no gap (schemes B and M).
#[test]
fn a_crash_after_the_signature_before_the_store_is_finished_by_signing_again() {
    use candor_listing::CrashAt;
    for scheme in [Scheme::Basic, Scheme::Merkle] {
        let (sw, authority) = endorsed();
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("tpm.journal");
        let trusted = [authority.public()];
        let node_key = Keypair::generate(&mut rand_core::OsRng);
        let peer = PeerId::from_ed25519(&node_key.public());
        let open = || {
            let (transport, link) = Cuttable::connect(sw.server());
            let d = TpmDevice::open_journaled(
                transport,
                peer.clone(),
                1,
                DEFAULT_NV_BASE,
                Some(journal.clone()),
            )
            .unwrap();
            (d, link)
        };
        let (mut device, link) = open();
        let cert = enrol(
            &authority,
            &mut Registry::default(),
            &node_key,
            &mut device,
            scheme,
            1,
            NOW,
        )
        .unwrap();
        let (node, _) =
            ListingNode::open(device, ListingStore::in_memory().unwrap(), cert.clone()).unwrap();
        let item = Item::new("signed but not stored").unwrap();
        let all = offers(&item, 2);
        publish_to(&node, &trusted, &all[0], NOW).unwrap();
        node.publish_all_crashing(&all[1..], NOW, CrashAt::AfterInc);
        *link.lock().unwrap() = None; // killed: nothing is flushed
        let (device, store) = node.into_parts();
        drop(device);
        let (device, _link) = open();
        let (node, report) = ListingNode::open(device, store, cert).unwrap();
        assert_eq!((report.recovered, report.gaps.len()), (1, 0), "{scheme}");
        let out = retrieve_from(
            &node,
            &trusted,
            &item,
            Reading::default().at(NOW).audits(16),
        )
        .unwrap();
        assert_eq!((out.offers().len(), out.gaps()), (2, 0), "{scheme}");
    }
}

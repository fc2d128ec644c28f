//! Real process kills: a `candor` process publishes batches on real files and is killed with
//! SIGKILL at random moments, again and again. After each restart it must reconcile and go
//! on; at the end every receipt it ever printed must be served and verify, and the node is
//! never accused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candor_core::*;
use candor_device::SoftwareDevice;
use candor_listing::{monitor, retrieve_from, ListingNode};
use candor_store::ListingStore;
use rand::Rng;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

fn candor(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_candor"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "candor {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the publish loop for about `ms` milliseconds, kills it, returns the complete lines.
fn run_and_kill(data: &Path, ms: u64) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_candor"))
        .args([
            "debug",
            "publish-loop",
            "--data",
            data.to_str().unwrap(),
            "--batch",
            "8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = sync_channel::<String>(1 << 16);
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline: it was never a full receipt.
                Ok(_) if line.ends_with('\n') => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    while start.elapsed() < Duration::from_millis(ms) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(5)) {
            lines.push(l);
        }
    }
    // SIGKILL: no destructor, no flush, no clean shutdown.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

#[test]
fn killed_at_random_points_loses_nothing_and_is_never_accused() {
    killed_at_random_points("b", None);
}

#[test]
fn scheme_m_killed_at_random_points_loses_nothing_and_is_never_accused() {
    killed_at_random_points("m", None);
}

/// The same on a TPM (swtpm with an EK certificate, the node enrolled with its residence
/// checked): each kill may land inside an IncSign; the next start finishes it from the
/// journal or covers it with a gap notice (a gap step in M), and flushes what the dead
/// process left loaded in the TPM.
#[test]
fn on_a_tpm_killed_at_random_points_loses_nothing_and_is_never_accused() {
    let ca = candor_tpm::SwtpmCa::shared().expect("swtpm_setup (scripts/install-deps)");
    for scheme in ["b", "m"] {
        let sw = candor_tpm::Swtpm::start_endorsed(ca).expect("swtpm (scripts/install-deps)");
        killed_at_random_points(scheme, Some((&sw, ca)));
    }
}

fn killed_at_random_points(scheme: &str, tpm: Option<(&candor_tpm::Swtpm, &candor_tpm::SwtpmCa)>) {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("authority");
    let data = dir.path().join("node");
    candor(&["authority", "init", "--dir", auth.to_str().unwrap()]);
    match tpm {
        None => candor(&[
            "device",
            "init",
            "--data",
            data.to_str().unwrap(),
            "--counters",
            "2",
        ]),
        Some((sw, ca)) => {
            let pem = dir.path().join("swtpm-ca.pem");
            std::fs::write(&pem, ca.certificates_pem().unwrap()).unwrap();
            candor(&[
                "authority",
                "trust-ek",
                "--dir",
                auth.to_str().unwrap(),
                "--pem",
                pem.to_str().unwrap(),
                "--development",
            ]);
            candor(&[
                "device",
                "init",
                "--data",
                data.to_str().unwrap(),
                "--tpm",
                &format!("tcp:{}", sw.server()),
                "--counters",
                "1",
            ]);
        }
    }
    candor(&[
        "device",
        "enroll",
        "--data",
        data.to_str().unwrap(),
        "--authority",
        auth.to_str().unwrap(),
        "--scheme",
        scheme,
    ]);

    let mut rng = rand::thread_rng();
    let mut receipts: Vec<(SignedOffer, Receipt)> = Vec::new();
    let mut step_receipts: Vec<(SignedOffer, StepReceipt)> = Vec::new();
    let mut restarts = 0;
    for _ in 0..8 {
        let lines = run_and_kill(&data, rng.gen_range(40..400));
        let mut reconciled = false;
        for l in lines {
            let mut parts = l.split_whitespace();
            match parts.next() {
                Some("RECONCILED") => reconciled = true,
                Some("MRECEIPT") => {
                    let o = SignedOffer::from_bytes(&hex::decode(parts.next().unwrap()).unwrap())
                        .unwrap();
                    let r = StepReceipt::from_bytes(&hex::decode(parts.next().unwrap()).unwrap())
                        .unwrap();
                    step_receipts.push((o, r));
                }
                Some("RECEIPT") => {
                    let o = SignedOffer::from_bytes(&hex::decode(parts.next().unwrap()).unwrap())
                        .unwrap();
                    let r =
                        Receipt::from_bytes(&hex::decode(parts.next().unwrap()).unwrap()).unwrap();
                    receipts.push((o, r));
                }
                _ => panic!("unexpected line {l:?}"),
            }
        }
        // A start that never printed RECONCILED was killed before it opened: that is fine,
        // but most should get through.
        restarts += usize::from(reconciled);
    }
    assert!(
        restarts >= 4,
        "the node restarted cleanly only {restarts} times"
    );
    assert!(
        !receipts.is_empty() || !step_receipts.is_empty(),
        "no receipt was printed before the kills"
    );

    let trusted =
        vec![
            PublicKey::from_hex(&std::fs::read_to_string(auth.join("authority.pub")).unwrap())
                .unwrap(),
        ];
    let cert =
        SignedCertificate::from_bytes(&std::fs::read(data.join("cert.bin")).unwrap()).unwrap();
    for (o, r) in &receipts {
        check_receipt(&trusted, &cert.cert.peer, &cert, o, r).unwrap();
    }
    let store = ListingStore::open(&data.join("store.redb")).unwrap();
    match tpm {
        None => {
            let device = SoftwareDevice::open(&data.join("device.state")).unwrap();
            check_node(
                device,
                store,
                scheme,
                &cert,
                &trusted,
                &receipts,
                &step_receipts,
                restarts,
            );
        }
        Some((sw, _)) => {
            let device = candor_tpm::TpmDevice::open_journaled(
                candor_tpm::TcpTransport::connect(sw.server()).unwrap(),
                cert.cert.peer.clone(),
                1,
                candor_tpm::DEFAULT_NV_BASE,
                Some(data.join("tpm.journal")),
            )
            .unwrap();
            check_node(
                device,
                store,
                scheme,
                &cert,
                &trusted,
                &receipts,
                &step_receipts,
                restarts,
            );
        }
    }
}

/// Every receipt the killed process printed is served and verifies; the node is never
/// accused; a software device never loses a value (a TPM may, covered by gap notices).
#[allow(clippy::too_many_arguments)]
fn check_node<D: candor_device::TrustedDevice>(
    device: D,
    store: ListingStore,
    scheme: &str,
    cert: &SignedCertificate,
    trusted: &[PublicKey],
    receipts: &[(SignedOffer, Receipt)],
    step_receipts: &[(SignedOffer, StepReceipt)],
    restarts: usize,
) {
    let software = matches!(cert.cert.device, DeviceKey::Software(_));
    let (node, report) = ListingNode::open(device, store, cert.clone()).unwrap();
    if scheme == "m" {
        let item = Item::new("crash test item").unwrap();
        // Every value audited: lost ones are answered by gap steps.
        let candor_listing::RetrieveOutcome::Steps(out) = retrieve_from(
            &node,
            trusted,
            &item,
            candor_listing::Reading::default().audits(10_000),
        )
        .unwrap() else {
            panic!("a scheme-M node answered as B/C")
        };
        for (o, r) in step_receipts {
            let p = check_step_receipt(trusted, &cert.cert.peer, cert, o, r).unwrap();
            check_monitor(r, o, &p, &out).unwrap();
        }
        assert!(
            !software || out.gaps.is_empty(),
            "the software device never loses a step"
        );
        eprintln!(
            "{} M receipts across {restarts} clean restarts; t = {}, {} gap step(s)",
            step_receipts.len(),
            out.t,
            out.gaps.len()
        );
        return;
    }
    assert!(
        !software || report.gaps.is_empty(),
        "the software device never loses a value: {report:?}"
    );
    let item = Item::new("crash test item").unwrap();
    let candor_listing::RetrieveOutcome::Entries(outcome) =
        retrieve_from(&node, trusted, &item, Budget::default()).unwrap()
    else {
        panic!("a scheme-B/C node answered as M")
    };
    let served: std::collections::BTreeMap<u64, Vec<u8>> = outcome
        .offers
        .iter()
        .map(|(v, o)| (*v, o.to_bytes()))
        .collect();
    for (o, r) in receipts {
        assert_eq!(
            served.get(&r.inc.inc.value),
            Some(&o.to_bytes()),
            "receipted offer lost"
        );
    }
    // Every seller's monitoring retrieve passes.
    let all: Vec<_> = receipts
        .iter()
        .map(|(o, r)| (o.clone(), candor_listing::PublishReceipt::Entry(r.clone())))
        .collect();
    monitor(&node, trusted, &item, &all, Budget::default()).unwrap();
    eprintln!(
        "{} receipts across {restarts} clean restarts; t = {}, {} gap notice(s)",
        receipts.len(),
        outcome.t,
        outcome.gaps.len()
    );
}

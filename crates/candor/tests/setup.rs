//! Set-up as a new user does it, with real processes (issue 9, item 8): concurrent enrolments
//! against one authority never certify twice, the device's secret state is private, a damaged
//! certificate is refused (not shown or served as valid), and a second node cannot listen on a
//! port another node uses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{candor, ok};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn concurrent_enrolments_never_certify_twice() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth");
    ok(&["authority", "init", "--dir", s(&auth)]);
    let datas: Vec<_> = (0..8).map(|i| dir.path().join(format!("n{i}"))).collect();
    for d in &datas {
        ok(&["device", "init", "--data", s(d), "--counters", "1"]);
    }
    // Eight enrolments at once, as eight processes.
    let children: Vec<_> = datas
        .iter()
        .map(|d| {
            Command::new(env!("CARGO_BIN_EXE_candor"))
                .args(["device", "enroll", "--data", s(d), "--authority", s(&auth)])
                .args(["--scheme", "b"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut serials = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        let serial = text
            .split("serial ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap()
            .to_string();
        assert!(serials.insert(serial), "a serial was issued twice: {text}");
    }
    assert_eq!(serials.len(), 8);
    // The registry holds all eight: a ninth enrolment of any of them is refused.
    for d in &datas {
        std::fs::remove_file(d.join("cert.bin")).unwrap();
        let (good, out) = candor(&[
            "device",
            "enroll",
            "--data",
            s(d),
            "--authority",
            s(&auth),
            "--scheme",
            "b",
        ]);
        assert!(!good, "enrolled twice: {out}");
        assert!(out.contains("has a certificate"), "{out}");
    }
}

#[test]
fn the_device_state_is_private_and_a_damaged_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth");
    let data = dir.path().join("n");
    ok(&["authority", "init", "--dir", s(&auth)]);
    ok(&["device", "init", "--data", s(&data), "--counters", "1"]);
    ok(&[
        "device",
        "enroll",
        "--data",
        s(&data),
        "--authority",
        s(&auth),
        "--scheme",
        "b",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["device.state", "node.key"] {
            let mode = std::fs::metadata(data.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
        }
    }
    assert!(ok(&["device", "show", "--data", s(&data)]).contains("certificate: valid"));
    // One flipped bit in the certificate's signed part.
    let path = data.join("cert.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (good, out) = candor(&["device", "show", "--data", s(&data)]);
    assert!(!good, "a damaged certificate was shown as valid: {out}");
    assert!(out.contains("UNUSABLE"), "{out}");
    let (good, out) = candor(&["node", "--data", s(&data)]);
    assert!(!good, "a node started on a damaged certificate: {out}");
    assert!(out.contains("cert.bin"), "{out}");
}

#[test]
fn a_second_node_cannot_listen_on_a_port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth");
    ok(&["authority", "init", "--dir", s(&auth)]);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        ok(&["device", "init", "--data", s(d), "--counters", "1"]);
        ok(&[
            "device",
            "enroll",
            "--data",
            s(d),
            "--authority",
            s(&auth),
            "--scheme",
            "b",
        ]);
    }
    let mut first = Command::new(env!("CARGO_BIN_EXE_candor"))
        .args(["node", "--data", s(&a)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !a.join("node.addr").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr = std::fs::read_to_string(a.join("node.addr")).unwrap();
    let port = addr
        .lines()
        .next()
        .unwrap()
        .split("/tcp/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let (good, out) = candor(&["node", "--data", s(&b), "--listen", &listen]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!good, "a second node listened on a port in use: {out}");
    assert!(out.contains("already in use"), "{out}");
}

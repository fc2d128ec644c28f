//! Against a real swtpm that the test starts itself (installed by `.ci/run` and
//! `./scripts/test` when missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

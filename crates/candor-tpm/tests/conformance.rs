//! The TrustedDevice conformance suite (`candor_lab::conformance`) against a TPM on swtpm:
//! the same cases the software device passes, with the outcomes DESIGN.md §7 lets a TPM give
//! (a value it cannot sign again is not reissued).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candor_core::{Keypair, PeerId};
use candor_lab::conformance::{run, Subject};
use candor_tpm::{Swtpm, TcpTransport, TpmDevice, DEFAULT_NV_BASE};

/// Devices on one swtpm, each with its own PeerId and its own two NV counters, reopened on a
/// new connection.
struct OnSwtpm {
    sw: Swtpm,
    made: u32,
    last: Option<(PeerId, u32)>,
}

impl OnSwtpm {
    fn open(&self, peer: PeerId, nv_base: u32) -> TpmDevice<TcpTransport> {
        TpmDevice::open(
            TcpTransport::connect(self.sw.server()).unwrap(),
            peer,
            2,
            nv_base,
        )
        .unwrap()
    }
}

impl Subject for OnSwtpm {
    type Device = TpmDevice<TcpTransport>;
    fn fresh(&mut self) -> Self::Device {
        self.made += 1;
        let peer = PeerId::from_ed25519(&Keypair::generate(&mut rand_core::OsRng).public());
        let nv_base = DEFAULT_NV_BASE + 0x10 * self.made;
        self.last = Some((peer.clone(), nv_base));
        self.open(peer, nv_base)
    }
    fn reopen(&mut self, device: Self::Device) -> Option<Self::Device> {
        drop(device);
        let (peer, nv_base) = self.last.clone()?;
        Some(self.open(peer, nv_base))
    }
}

#[test]
fn a_tpm_passes_every_case() {
    let mut subject = OnSwtpm {
        sw: Swtpm::start().expect("swtpm (scripts/test installs it)"),
        made: 0,
        last: None,
    };
    let report = run(&mut subject);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.skipped.is_empty());
    // Each case ran on its own device.
    assert_eq!(
        subject.made as usize,
        candor_lab::conformance::Case::ALL.len()
    );
}

//! The conformance suite (`candor_lab::conformance`) against the software device, which
//! passes every case, and against each deliberately broken device, which fails exactly the
//! cases its fault targets.
#![allow(clippy::unwrap_used, clippy::panic)]

use candor_core::{Keypair, PeerId};
use candor_device::{SoftwareDevice, TrustedDevice};
use candor_lab::conformance::{run, Case, Subject};
use candor_lab::{EquivocatingDevice, FailingDevice, Fault, Faults, SlowDevice};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn peer() -> PeerId {
    PeerId::from_ed25519(&Keypair::generate(&mut rand_core::OsRng).public())
}

/// Software devices in state files, reopened from them.
struct Software {
    dir: tempfile::TempDir,
    made: usize,
    paths: Vec<PathBuf>,
}

impl Software {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            made: 0,
            paths: Vec::new(),
        }
    }
}

impl Subject for Software {
    type Device = SoftwareDevice;
    fn fresh(&mut self) -> SoftwareDevice {
        self.made += 1;
        let path = self.dir.path().join(format!("device-{}", self.made));
        self.paths.push(path.clone());
        SoftwareDevice::create(&path, peer(), 3).unwrap()
    }
    fn reopen(&mut self, device: SoftwareDevice) -> Option<SoftwareDevice> {
        drop(device);
        let path = self.paths.last()?.clone();
        Some(SoftwareDevice::open(&path).unwrap())
    }
}

fn set(cases: &[Case]) -> BTreeSet<Case> {
    cases.iter().copied().collect()
}

#[test]
fn the_software_device_passes_every_case() {
    let report = run(&mut Software::new());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.skipped.is_empty());
}

#[test]
fn a_slow_device_is_still_a_correct_one() {
    struct Slow(Software);
    impl Subject for Slow {
        type Device = SlowDevice<SoftwareDevice>;
        fn fresh(&mut self) -> Self::Device {
            SlowDevice::new(self.0.fresh(), std::time::Duration::from_millis(1))
        }
        fn reopen(&mut self, _: Self::Device) -> Option<Self::Device> {
            None
        }
    }
    let report = run(&mut Slow(Software::new()));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.skipped, vec![Case::SurvivesReopen]);
}

/// A device that signs a value it already reached (its first increment on the first counter
/// re-signs the current value instead of counting up): every case that counts on that counter
/// and checks the value it took fails.
#[test]
fn an_equivocating_device_fails_the_cases_about_values() {
    struct Equivocating;
    impl Subject for Equivocating {
        type Device = EquivocatingDevice;
        fn fresh(&mut self) -> EquivocatingDevice {
            let mut d = EquivocatingDevice::new(peer(), 3);
            let first = d.counters()[0];
            d.rewind(first);
            d
        }
        fn reopen(&mut self, _: EquivocatingDevice) -> Option<EquivocatingDevice> {
            None
        }
    }
    let report = run(&mut Equivocating);
    assert_eq!(
        set(&report.failed_cases()),
        set(&[
            Case::ReadSeesEveryInc,
            Case::IncCountsUpByOne,
            Case::BatchIsConsecutive,
            Case::NoValueTwice,
            Case::CountersAreIndependent,
        ]),
        "{:?}",
        report.failed
    );
}

/// Devices whose next increment fails (before or after counting, its statement kept or
/// lost): every case whose increments must succeed fails; reads, refusals of missing
/// counters and the empty batch are untouched.
#[test]
fn a_failing_device_fails_exactly_the_cases_that_count() {
    struct Failing(Software, Fault);
    impl Subject for Failing {
        type Device = FailingDevice<SoftwareDevice>;
        fn fresh(&mut self) -> Self::Device {
            let (d, faults): (_, Faults) = FailingDevice::new(self.0.fresh());
            faults.arm(self.1);
            d
        }
        fn reopen(&mut self, _: Self::Device) -> Option<Self::Device> {
            None
        }
    }
    let counting = set(&[
        Case::ReadSeesEveryInc,
        Case::IncCountsUpByOne,
        Case::BatchIsConsecutive,
        Case::NoValueTwice,
        Case::CountersAreIndependent,
        Case::ReissueGivesTheSame,
        Case::AcknowledgeForgets,
    ]);
    for fault in [Fault::BeforeCount, Fault::AfterCount, Fault::AfterCountLost] {
        let report = run(&mut Failing(Software::new(), fault));
        let mut expected = counting.clone();
        // Its first call is an increment: it fails before it would ask to reopen.
        expected.insert(Case::SurvivesReopen);
        assert_eq!(
            set(&report.failed_cases()),
            expected,
            "{fault:?}: {:?}",
            report.failed
        );
    }
    // A device that went away fails every case that calls it at all.
    let report = run(&mut Failing(Software::new(), Fault::Down));
    assert_eq!(
        set(&report.failed_cases()),
        set(&Case::ALL),
        "{:?}",
        report.failed
    );
}

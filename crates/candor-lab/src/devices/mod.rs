//! Devices that break the rules on purpose (or keep them slowly), for adversarial and
//! failure tests: a correct node and correct checkers must turn each into a typed verdict.

mod equivocating;
mod failing;
mod slow;

pub use equivocating::EquivocatingDevice;
pub use failing::{FailingDevice, Fault, Faults};
pub use slow::SlowDevice;

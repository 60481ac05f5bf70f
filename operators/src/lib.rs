//! augur-operators: record types and the Timely/Differential operators of augur's dataflow.
//!
//! One operator per module; each module's doc says what goes in, what comes out and what
//! state it keeps.

pub mod alert;
pub mod decide;
pub mod detect;
pub mod detector;
pub mod records;

pub use alert::{Alert, AlertKind, Culprit, Detection, ModelRef};
pub use detector::Detector;
pub use records::*;

//! The model boundary: a detector reads closed windows and says what it sees.
//!
//! `operators` knows nothing of libtorch; statistical detectors and libtorch models
//! (in `augur-models`) both implement this trait, so operators can be tested with plain
//! Rust stand-ins.

use crate::alert::Detection;
use crate::records::WindowSnapshot;

pub trait Detector: Send {
    /// Name reported in alerts and in `augur eval` (e.g. `nsigma`).
    fn name(&self) -> &str;
    /// Version reported in alerts (a checkpoint version for learned models).
    fn version(&self) -> &str {
        "0"
    }
    /// Called once per closed window, in window order. Returns this window's detections.
    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection>;
}

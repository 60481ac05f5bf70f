//! The model boundary: a detector reads closed windows and says what it sees.
//!
//! `operators` knows nothing of libtorch; statistical detectors and libtorch models
//! (in `augur-models`) both implement this trait, so operators can be tested with plain
//! Rust stand-ins. Detectors run on a model worker's inference thread (see
//! [`crate::model_worker`]), never on a timely worker's thread, so `observe` may block on
//! a model.

use crate::alert::Detection;
use crate::records::WindowSnapshot;

pub trait Detector: Send {
    /// Name reported in alerts and in `augur eval` (e.g. `nsigma`).
    fn name(&self) -> &str;
    /// Version reported in alerts (a checkpoint version for learned models).
    fn version(&self) -> &str {
        "0"
    }
    /// Windows the detector had to let pass because it has no model for them (no
    /// checkpoint matches the application, the model doesn't know the entry point, ...);
    /// it says why in its log. 0 for detectors that serve every window.
    fn unserved_windows(&self) -> u64 {
        0
    }
    /// Called once per closed window, in window order. Returns this window's detections.
    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection>;
    /// Several consecutive windows at once (a backlog that queued while the model was
    /// busy), in window order; one result per window. Models that batch inference
    /// override this; the default observes them one by one.
    fn observe_batch(&mut self, windows: &[WindowSnapshot]) -> Vec<Vec<Detection>> {
        windows.iter().map(|w| self.observe(w)).collect()
    }
}

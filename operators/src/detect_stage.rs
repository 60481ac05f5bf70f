//! A detect stage: one detector with its decide state, run on one window or a batch of
//! consecutive windows; detections become alerts through the decide step, and the decide
//! state is published to a log when one is given (so a restarted job resumes it). The
//! `Detect` operator ([`crate::detect`]) hands stages to model workers
//! ([`crate::model_worker`]).

use std::sync::Arc;

use crate::alert::{Alert, ModelRef};
use crate::decide::{DecideConfig, Decider, DeciderState};
use crate::decide_log::DecideLog;
use crate::detector::Detector;
use crate::records::WindowSnapshot;

/// A detector with its decide state, and where that state is persisted.
pub struct DetectStage {
    detector: Box<dyn Detector>,
    decider: Decider,
    /// The log this stage publishes its state to, and the last state published.
    log: Option<(Arc<DecideLog>, DeciderState)>,
}

impl DetectStage {
    pub fn new(detector: Box<dyn Detector>, config: DecideConfig) -> Self {
        let model = ModelRef {
            name: detector.name().to_string(),
            version: detector.version().to_string(),
        };
        DetectStage {
            detector,
            decider: Decider::new(config, model),
            log: None,
        }
    }

    /// Resumes the decide state the last run saved in `log` (if any) and publishes every
    /// change of it there.
    pub fn with_log(mut self, log: Arc<DecideLog>) -> Self {
        let resumed = log.resume_state(self.detector.name());
        if let Some(state) = resumed.clone() {
            self.decider.restore(state);
        }
        self.log = Some((log, resumed.unwrap_or_default()));
        self
    }

    fn decide(&mut self, window: &WindowSnapshot, detections: Vec<crate::Detection>) -> Vec<Alert> {
        let alerts = self.decider.decide(window, detections);
        if let Some((log, last)) = self.log.as_mut() {
            let state = self.decider.state(window.window_end);
            if !state.same_episodes(last) {
                log.publish(self.detector.name(), state.clone());
                *last = state;
            }
        }
        alerts
    }

    /// The detector's name.
    pub fn name(&self) -> &str {
        self.detector.name()
    }

    /// The detector's version now (a learned model's may change while it runs).
    pub fn version(&self) -> &str {
        self.detector.version()
    }

    /// See [`Detector::unserved_windows`].
    pub fn unserved_windows(&self) -> u64 {
        self.detector.unserved_windows()
    }

    /// Detection and decision on one window, outside any dataflow (used by offline
    /// scoring).
    pub fn observe(&mut self, window: &WindowSnapshot) -> Vec<Alert> {
        let detections = self.detector.observe(window);
        self.decide(window, detections)
    }

    /// Detection and decision on consecutive windows; one list of alerts per window.
    pub fn observe_batch(&mut self, windows: &[WindowSnapshot]) -> Vec<Vec<Alert>> {
        let detections = self.detector.observe_batch(windows);
        windows
            .iter()
            .zip(detections)
            .map(|(window, found)| self.decide(window, found))
            .collect()
    }
}

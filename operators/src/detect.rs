//! Detect: runs detectors and the decide step over closed windows, in window order.
//!
//! In: `WindowSnapshot`s (one per window, all on one worker — the snapshot gather puts
//! them on worker 0). Out: `Alert`s stamped with their window; each detector's alerts carry
//! its name in `model.name`. State: snapshots whose window the input frontier hasn't passed
//! yet (with a capability each), so detectors see windows strictly in order even when
//! several arrive in one activation; and each detector's own history plus its [`Decider`].

use std::collections::BTreeMap;

use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::alert::{Alert, ModelRef};
use crate::decide::{DecideConfig, Decider};
use crate::detector::Detector;
use crate::records::{EventTime, WindowSnapshot};

/// A detector with its decide state.
pub struct DetectStage {
    detector: Box<dyn Detector>,
    decider: Decider,
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
        }
    }

    /// Detection and decision on one window, outside any dataflow (used by the operator and
    /// by offline scoring).
    pub fn observe(&mut self, window: &WindowSnapshot) -> Vec<Alert> {
        let detections = self.detector.observe(window);
        self.decider.decide(window, detections)
    }
}

/// Runs `stages` over the snapshots in window order; see the module docs.
pub fn detect<'scope>(
    snapshots: Stream<'scope, EventTime, Vec<WindowSnapshot>>,
    mut stages: Vec<DetectStage>,
) -> Stream<'scope, EventTime, Vec<Alert>> {
    snapshots.unary_frontier(Pipeline, "Detect", move |_cap, _info| {
        let mut pending: BTreeMap<
            EventTime,
            (
                timely::dataflow::operators::Capability<EventTime>,
                Vec<WindowSnapshot>,
            ),
        > = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                let Some(time) = cap.least().copied() else {
                    return;
                };
                let slot = pending
                    .entry(time)
                    .or_insert_with(|| (cap.delayed(&time, output.output_index()), Vec::new()));
                slot.1.append(data);
            });
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (cap, windows) = entry.remove();
                let mut session = output.session(&cap);
                for window in &windows {
                    for stage in stages.iter_mut() {
                        for alert in stage.observe(window) {
                            session.give(alert);
                        }
                    }
                }
            }
        }
    })
}

//! The built-in cluster simulator as a source (like Vector's `demo_logs`).
//!
//! The simulation is sequential, so it runs on worker 0; other workers get an empty
//! source. Paced to `speed` simulated seconds per wall second (for `demo`), or as fast as
//! possible when `speed` is `None`.
//!
//! In a closed loop ([`SimulatorSource::with_feedback`]) it applies the actuation commands
//! the job decides ([`SimFeedback`], from [`crate::actuation::closed_loop`]) and never runs
//! more than `lead_ms` past the time up to which decisions are complete, so commands take
//! effect at the event time they would live, whatever the speed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use augur_connectors::simulator::{Labels, RuntimeCommand, Simulator};
use augur_operators::EventTime;
use crossbeam_channel::Receiver;

use super::{Batch, SourceError, SourceState, WorkerSource};

/// Simulated time advanced per poll at most, ms: bounds the batch size.
const STEP_MS: u64 = 100;

/// What the closed loop tells the simulator: the commands decided on the windows ending
/// before `through`, and that no other command will come from those windows.
#[derive(Clone, Debug)]
pub struct SimFeedback {
    pub through: EventTime,
    pub commands: Vec<RuntimeCommand>,
}

/// The closed loop's end at the source.
struct FeedbackGate {
    from_job: Receiver<SimFeedback>,
    through: EventTime,
    /// A command decided on the window ending at `E` is applied no sooner than `E + lead_ms`.
    lead_ms: u64,
}

pub struct SimulatorSource {
    sim: Simulator,
    start_ms: u64,
    end_ms: Option<u64>,
    speed: Option<f64>,
    started: Instant,
    notes: Option<crossbeam_channel::Sender<String>>,
    announced: std::collections::BTreeSet<String>,
    feedback: Option<FeedbackGate>,
    labels_out: Option<Arc<Mutex<Option<Labels>>>>,
}

impl SimulatorSource {
    pub fn new(sim: Simulator, duration_ms: Option<u64>, speed: Option<f64>) -> Self {
        let start_ms = sim.now_ms();
        SimulatorSource {
            sim,
            start_ms,
            end_ms: duration_ms.map(|d| start_ms + d),
            speed,
            started: Instant::now(),
            notes: None,
            announced: std::collections::BTreeSet::new(),
            feedback: None,
            labels_out: None,
        }
    }

    /// Closes the loop: commands come from `from_job`; a command decided on the window
    /// ending at `E` applies no sooner than `E + lead_ms` (allowed lateness + the shortest
    /// actuation delay), which bounds how far the simulation may run ahead.
    pub fn with_feedback(mut self, from_job: Receiver<SimFeedback>, lead_ms: u64) -> Self {
        self.feedback = Some(FeedbackGate {
            from_job,
            through: self.start_ms,
            lead_ms: lead_ms.max(1),
        });
        self
    }

    /// Writes the ground truth (faults, changes incl. applied commands) to `out` when the
    /// simulation ends.
    pub fn labels_to(mut self, out: Arc<Mutex<Option<Labels>>>) -> Self {
        self.labels_out = Some(out);
        self
    }

    fn publish_labels(&self) {
        if let Some(out) = &self.labels_out {
            if let Ok(mut slot) = out.lock() {
                *slot = Some(self.sim.labels());
            }
        }
    }
}

impl Drop for SimulatorSource {
    fn drop(&mut self) {
        self.publish_labels();
    }
}

impl WorkerSource for SimulatorSource {
    fn poll(&mut self, batch: &mut Batch) -> Result<SourceState, SourceError> {
        let now = self.sim.now_ms();
        if self.end_ms.is_some_and(|end| now >= end) {
            self.publish_labels();
            return Ok(SourceState::Exhausted);
        }
        let mut target = now + STEP_MS;
        let mut waiting_for_job = false;
        if let Some(gate) = self.feedback.as_mut() {
            for feedback in gate.from_job.try_iter() {
                for command in feedback.commands {
                    self.sim.command(command);
                }
                gate.through = gate.through.max(feedback.through);
            }
            let bound = gate.through.saturating_add(gate.lead_ms);
            waiting_for_job = bound < target;
            target = target.min(bound);
        }
        if let Some(speed) = self.speed {
            let paced =
                self.start_ms + (self.started.elapsed().as_secs_f64() * speed * 1000.0) as u64;
            target = target.min(paced);
        }
        if let Some(end) = self.end_ms {
            target = target.min(end);
        }
        if target <= now {
            if !waiting_for_job {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Ok(SourceState::Active {
                watermark_ms: now,
                idle: true,
            });
        }
        let before = batch.spans.len() + batch.metrics.len();
        self.sim
            .advance_to(target, &mut batch.spans, &mut batch.metrics);
        batch.messages += (batch.spans.len() + batch.metrics.len() - before) as u64;
        self.announce();
        Ok(SourceState::Active {
            watermark_ms: self.sim.now_ms(),
            idle: false,
        })
    }

    fn progress(&self) -> (u64, u64) {
        let done = self.sim.now_ms() - self.start_ms;
        (done, self.end_ms.map_or(done, |end| end - self.start_ms))
    }
}

/// A worker with no share of the input.
pub struct EmptySource;

impl WorkerSource for EmptySource {
    fn poll(&mut self, _batch: &mut Batch) -> Result<SourceState, SourceError> {
        Ok(SourceState::Exhausted)
    }

    fn progress(&self) -> (u64, u64) {
        (0, 0)
    }
}

impl SimulatorSource {
    /// Sends a line to `notes` when an injected fault or a deployment change starts (demo).
    pub fn announcing(mut self, notes: crossbeam_channel::Sender<String>) -> Self {
        self.notes = Some(notes);
        self
    }

    fn announce(&mut self) {
        let Some(notes) = &self.notes else { return };
        let now = self.sim.now_ms();
        let Ok(labels) = serde_json::to_value(self.sim.labels()) else {
            return;
        };
        for list in ["faults", "load_spikes", "changes"] {
            let Some(items) = labels.get(list).and_then(|v| v.as_array()) else {
                continue;
            };
            for item in items {
                let start = item
                    .get("start_ms")
                    .or_else(|| item.get("at_ms"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(u64::MAX);
                if start > now || !self.announced.insert(item.to_string()) {
                    continue;
                }
                let text = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                let line = match list {
                    "faults" => format!(
                        "fault injected: {} on {}{} ({}), {} s",
                        text("kind"),
                        text("service"),
                        item.get("instance")
                            .and_then(|v| v.as_str())
                            .map(|i| format!(" / {i}"))
                            .unwrap_or_default(),
                        text("resource"),
                        item.get("end_ms")
                            .and_then(|v| v.as_u64())
                            .unwrap_or(start)
                            .saturating_sub(start)
                            / 1000
                    ),
                    "load_spikes" => format!(
                        "load spike (not a fault): x{:.1} for {} s",
                        item.get("factor").and_then(|v| v.as_f64()).unwrap_or(0.0),
                        item.get("end_ms")
                            .and_then(|v| v.as_u64())
                            .unwrap_or(start)
                            .saturating_sub(start)
                            / 1000
                    ),
                    _ => format!(
                        "deployment change: {} {} ({})",
                        text("kind"),
                        text("service"),
                        text("detail")
                    ),
                };
                let _ = notes.send(line);
            }
        }
    }
}

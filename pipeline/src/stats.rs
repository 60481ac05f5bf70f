//! Job counters shared by workers and the main thread.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use augur_operators::{EventTime, InferenceTimes};
use std::sync::Arc;

#[derive(Default)]
pub struct JobStats {
    /// Lines or messages read, good or bad.
    pub messages: AtomicU64,
    pub spans: AtomicU64,
    pub metric_points: AtomicU64,
    /// Records or messages that failed to decode or validate.
    pub dead_letters: AtomicU64,
    /// Records that arrived after their window had closed (also dead-lettered).
    pub late: AtomicU64,
    /// Outputs of this process's windows ending before this are durable (set by the main
    /// thread after the sinks confirmed them; `EventTime::MAX` at the end). Sources commit
    /// up to the lowest of all processes' (see `control`).
    pub durable: AtomicU64,
    /// Set by the main thread when the outputs of everything before `durable` are
    /// confirmed for the last time: workers make their final commit.
    pub finished: std::sync::atomic::AtomicBool,
    /// The lowest resume frontier of the workers' sources (see `WorkerSource`).
    pub resume_from: Mutex<Option<EventTime>>,
    /// Set when outputs can't be delivered: workers stop waiting to commit.
    pub aborted: std::sync::atomic::AtomicBool,
    /// Per worker: (done, total) progress in the source's unit.
    pub progress: Mutex<BTreeMap<usize, (u64, u64)>>,
    /// When each window was released by the sources (the last worker to pass it).
    pub window_closed_at: Mutex<BTreeMap<EventTime, Instant>>,
    /// Inference time per window, per detector (recorded by the model workers).
    pub inference: Arc<InferenceTimes>,
}

impl JobStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Summed progress over workers.
    pub fn progress(&self) -> (u64, u64) {
        match self.progress.lock() {
            Ok(p) => p.values().fold((0, 0), |(d, t), (a, b)| (d + a, t + b)),
            Err(_) => (0, 0),
        }
    }

    /// Outputs of windows before this were delivered by an earlier run.
    pub fn resume_from(&self) -> EventTime {
        self.resume_from.lock().ok().and_then(|r| *r).unwrap_or(0)
    }

    pub fn closed_at(&self, window_end: EventTime) -> Option<Instant> {
        self.window_closed_at.lock().ok()?.get(&window_end).copied()
    }
}

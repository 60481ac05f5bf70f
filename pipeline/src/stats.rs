//! Job counters shared by workers and the main thread.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use augur_operators::EventTime;

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
    /// Per worker: (done, total) progress in the source's unit.
    pub progress: Mutex<BTreeMap<usize, (u64, u64)>>,
    /// When each window was released by the sources (the last worker to pass it).
    pub window_closed_at: Mutex<BTreeMap<EventTime, Instant>>,
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

    pub fn closed_at(&self, window_end: EventTime) -> Option<Instant> {
        self.window_closed_at.lock().ok()?.get(&window_end).copied()
    }
}

//! Inference time per window and detector, shared by the model workers' inference threads
//! (which record it) and the job's metrics and reports (which read it).
//!
//! State: per detector, the number of windows, the summed time and the most recent
//! [`MAX_SAMPLES`] per-window times (for percentiles), and the detector's version and
//! unserved windows after its latest batch, behind one mutex taken twice per batch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use crate::quantile::{Rank, quantile};

/// Per-window times kept per detector for percentiles (the newest ones).
pub const MAX_SAMPLES: usize = 100_000;

/// One detector's inference times.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DetectorTimes {
    /// Windows inferred.
    pub windows: u64,
    /// Summed inference time, ms.
    pub total_ms: f64,
    /// Recent per-window times, ms, oldest first.
    pub samples_ms: VecDeque<f64>,
    /// The detector's version after its latest batch.
    pub version: String,
    /// Windows it could not serve so far ([`crate::Detector::unserved_windows`]).
    pub unserved_windows: u64,
}

impl DetectorTimes {
    /// The `q`-th percentile (0..=100) of the kept samples, ms; 0 without samples.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let samples: Vec<f64> = self.samples_ms.iter().copied().collect();
        quantile(&samples, q / 100.0, Rank::Rounded)
    }
}

/// Inference times of every detector of a job, by detector name.
#[derive(Debug, Default)]
pub struct InferenceTimes {
    by_detector: Mutex<BTreeMap<String, DetectorTimes>>,
}

impl InferenceTimes {
    /// Records that `detector` took `ms` for each of `windows` windows (a batch's time
    /// split evenly over its windows).
    pub fn record(&self, detector: &str, windows: usize, ms_per_window: f64) {
        let Ok(mut map) = self.by_detector.lock() else {
            return;
        };
        let times = map.entry(detector.to_string()).or_default();
        times.windows += windows as u64;
        times.total_ms += ms_per_window * windows as f64;
        for _ in 0..windows {
            if times.samples_ms.len() == MAX_SAMPLES {
                times.samples_ms.pop_front();
            }
            times.samples_ms.push_back(ms_per_window);
        }
    }

    /// Notes `detector`'s version and unserved windows after a batch.
    pub fn note(&self, detector: &str, version: &str, unserved_windows: u64) {
        let Ok(mut map) = self.by_detector.lock() else {
            return;
        };
        let times = map.entry(detector.to_string()).or_default();
        if times.version != version {
            times.version = version.to_string();
        }
        times.unserved_windows = unserved_windows;
    }

    /// A copy of every detector's times.
    pub fn snapshot(&self) -> BTreeMap<String, DetectorTimes> {
        self.by_detector
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// A copy of one detector's times.
    pub fn of(&self, detector: &str) -> Option<DetectorTimes> {
        self.by_detector.lock().ok()?.get(detector).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_split_per_window_and_percentiles_read_them() {
        let times = InferenceTimes::default();
        times.record("seer", 3, 2.0);
        times.record("seer", 1, 10.0);
        let seer = times.of("seer").unwrap_or_default();
        assert_eq!(seer.windows, 4);
        assert!((seer.total_ms - 16.0).abs() < 1e-9);
        assert_eq!(seer.percentile_ms(50.0), 2.0);
        assert_eq!(seer.percentile_ms(100.0), 10.0);
        assert!(times.of("nsigma").is_none());
    }
}

//! The decide states a job persists so that a restarted job continues its alert episodes:
//! in, from the decide step on the model threads, each detector's [`DeciderState`] whenever
//! it changes; out, to the main thread, per detector the newest state of the windows its
//! output frontier has passed (written next to the alerts of those windows, so a state is
//! durable no later than the alerts it follows). At start it holds the states the last run
//! saved, which the detect stages resume from. State: the states not yet taken, per
//! detector in window order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::decide::DeciderState;
use crate::records::EventTime;

#[derive(Debug, Default)]
pub struct DecideLog {
    resume: BTreeMap<String, DeciderState>,
    pending: Mutex<BTreeMap<String, Vec<DeciderState>>>,
}

impl DecideLog {
    /// A log whose detectors resume from `resume` (detector name → the state saved last).
    pub fn new(resume: BTreeMap<String, DeciderState>) -> Self {
        DecideLog {
            resume,
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// The state `detector` resumes from, if the last run saved one.
    pub fn resume_state(&self, detector: &str) -> Option<DeciderState> {
        self.resume.get(detector).cloned()
    }

    /// Notes `detector`'s state after a window (called only when it changed).
    pub fn publish(&self, detector: &str, state: DeciderState) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.entry(detector.to_string()).or_default().push(state);
        }
    }

    /// Per detector, the newest state of a window ending before `frontier`; older ones are
    /// dropped, later ones kept.
    pub fn take_before(&self, frontier: EventTime) -> Vec<(String, DeciderState)> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (detector, states) in pending.iter_mut() {
            let passed = states.partition_point(|s| s.window_end < frontier);
            if passed > 0 {
                if let Some(newest) = states.drain(..passed).next_back() {
                    out.push((detector.clone(), newest));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(window_end: EventTime) -> DeciderState {
        DeciderState {
            window_end,
            ..DeciderState::default()
        }
    }

    #[test]
    fn takes_the_newest_state_behind_the_frontier() {
        let log = DecideLog::default();
        for w in [1000, 2000, 5000] {
            log.publish("seer", at(w));
        }
        log.publish("sage", at(3000));
        assert!(log.take_before(1000).is_empty());
        let taken = log.take_before(3001);
        assert_eq!(
            taken
                .iter()
                .map(|(d, s)| (d.as_str(), s.window_end))
                .collect::<Vec<_>>(),
            vec![("sage", 3000), ("seer", 2000)]
        );
        assert!(log.take_before(4000).is_empty());
        assert_eq!(log.take_before(u64::MAX)[0].1.window_end, 5000);
    }
}

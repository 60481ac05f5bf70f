//! Training labels for windows of a replay, from QoS verdicts and the fault schedule.
//!
//! In: per window its end and whether its QoS check failed; the injected faults
//! (`labels.json`). Out: per window, *positive* when a violating window ends within
//! `[t, t + horizon]` (the same definition `augur eval` scores false positives with), and
//! for positive windows the culprit: the service of the earliest-starting fault active
//! (its end extended by `slack_ms`, as queues take time to drain) during the window or the
//! horizon. Positive windows with no fault (load spikes) have no culprit. No state.

/// One injected fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub service: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A window's label.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub positive: bool,
    pub culprit: Option<String>,
}

/// Labels for `windows` = `(window_end, violated)` in time order.
pub fn label_windows(
    windows: &[(u64, bool)],
    faults: &[Fault],
    window_ms: u64,
    horizon_ms: u64,
    slack_ms: u64,
) -> Vec<Label> {
    windows
        .iter()
        .map(|(t, _)| {
            let positive = windows
                .iter()
                .any(|(u, violated)| *violated && *u >= *t && *u <= t + horizon_ms);
            let culprit = positive
                .then(|| {
                    faults
                        .iter()
                        .filter(|f| {
                            f.start_ms <= t + horizon_ms
                                && f.end_ms + slack_ms >= t.saturating_sub(window_ms)
                        })
                        .min_by_key(|f| f.start_ms)
                        .map(|f| f.service.clone())
                })
                .flatten();
            Label { positive, culprit }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_within_horizon_with_the_fault_as_culprit() {
        let windows: Vec<(u64, bool)> = (1..=10).map(|i| (i * 1000, i == 6 || i == 7)).collect();
        let faults = vec![Fault {
            service: "db".into(),
            start_ms: 4500,
            end_ms: 7000,
        }];
        let labels = label_windows(&windows, &faults, 1000, 1000, 2000);
        let pos: Vec<bool> = labels.iter().map(|l| l.positive).collect();
        assert_eq!(
            pos,
            [
                false, false, false, false, true, true, true, false, false, false
            ]
        );
        assert_eq!(labels[4].culprit.as_deref(), Some("db"));
        assert_eq!(labels[0].culprit, None);
    }
}

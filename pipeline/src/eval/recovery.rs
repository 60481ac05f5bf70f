//! How long each injected fault kept the application out of QoS, from a run's windows (the
//! closed-loop comparison of `augur eval --closed-loop`).
//!
//! In: the run's per-window end-to-end latency points ([`P99Point`]) and the faults of its
//! labels. Out: per fault the violated time and the time to recover. No state.
//!
//! A fault's span is `[start, next fault's start)` capped at `end + slack` (queues may drain
//! after the fault ends; the next fault's windows are its own). Within it,
//! `violated_s` counts violating windows × window length, and `recovered_after_s` is the
//! time from the fault's start to the end of its last violating window (0 when QoS never
//! broke).

use serde::Serialize;

use augur_connectors::simulator::FaultLabel;

/// One window's end-to-end tail latency (the worst entry by latency / SLO).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct P99Point {
    pub window_end: u64,
    pub p99_ms: f64,
    pub slo_ms: f64,
    pub violated: bool,
}

/// One fault in one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultRecovery {
    pub service: String,
    pub resource: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Violating windows within the fault's span × window length, s.
    pub violated_s: f64,
    /// From the fault's start to the end of its last violating window, s (0: no violation).
    pub recovered_after_s: f64,
}

/// Per fault (in start order), its violated time and time to recover in `points`.
pub fn recoveries(
    points: &[P99Point],
    faults: &[FaultLabel],
    window_ms: u64,
    slack_ms: u64,
) -> Vec<FaultRecovery> {
    let mut faults: Vec<&FaultLabel> = faults.iter().collect();
    faults.sort_by_key(|f| f.start_ms);
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let next = faults.get(i + 1).map_or(u64::MAX, |n| n.start_ms);
            let until = (f.end_ms.saturating_add(slack_ms)).min(next);
            // A window belongs to the fault when it ends after the start and starts before `until`.
            let inside: Vec<&P99Point> = points
                .iter()
                .filter(|p| {
                    p.window_end > f.start_ms && p.window_end.saturating_sub(window_ms) < until
                })
                .collect();
            let violated = inside.iter().filter(|p| p.violated).count();
            let last = inside
                .iter()
                .filter(|p| p.violated)
                .map(|p| p.window_end)
                .max();
            FaultRecovery {
                service: f.service.clone(),
                resource: f.resource.clone(),
                start_ms: f.start_ms,
                end_ms: f.end_ms,
                violated_s: violated as f64 * window_ms as f64 / 1000.0,
                recovered_after_s: last.map_or(0.0, |l| (l - f.start_ms) as f64 / 1000.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(end: u64, violated: bool) -> P99Point {
        P99Point {
            window_end: end,
            p99_ms: if violated { 90.0 } else { 10.0 },
            slo_ms: 50.0,
            violated,
        }
    }

    #[test]
    fn counts_the_faults_own_windows_and_the_last_violation() {
        // Fault A 10–20 s, violating 11–16 s and again at 18 s; fault B from 25 s, violating
        // 26–27 s; a violation at 40 s is past B's slack.
        let points: Vec<P99Point> = (1..=45)
            .map(|s| {
                let v = (12..=16).contains(&s) || s == 18 || (26..=27).contains(&s) || s == 40;
                point(s * 1000, v)
            })
            .collect();
        let fault = |start: u64, end: u64| FaultLabel::new("x", "cpu", start, end);
        let r = recoveries(
            &points,
            &[fault(25_000, 30_000), fault(10_000, 20_000)],
            1000,
            5000,
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].start_ms, 10_000);
        assert_eq!(r[0].violated_s, 6.0);
        assert_eq!(r[0].recovered_after_s, 8.0);
        assert_eq!(r[1].violated_s, 2.0);
        assert_eq!(r[1].recovered_after_s, 2.0);
    }
}

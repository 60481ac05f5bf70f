//! Scores one detector's alerts against QoS ground truth and the injected faults.
//!
//! Definitions (the same for every detector, so figures compare):
//! - A **violation episode** is a maximal run of windows whose QoS check failed; runs
//!   separated by a single passing window merge. Its *onset* `v` is the end of its first
//!   violating window (the moment the QoS check itself would know), its end `e` the end of
//!   its last.
//! - An alert that fires at window end `t` and resolves at `r` (never: `r = ∞`) claims,
//!   while active, "a violation starts within `horizon`". It **detects** an episode when it
//!   is active at some moment of `[v - horizon, e]`: `t ≤ e` and `r > v - horizon`. So an
//!   alert that fired earlier than `v - horizon` and is still active then counts (it kept
//!   claiming, and the claim came true); one that resolved before `v - horizon` doesn't.
//!   Recall is detected episodes / episodes; `predicted_recall` counts only alerts with
//!   `t < v` (seen coming). Lead time of a detecting alert is `v - max(t, v - horizon)` (at
//!   most `horizon`: the claim never promised more); an episode's is that of its earliest
//!   detecting alert.
//! - Precision is firing alerts that detect some episode / firing alerts.
//! - A window is *positive* when a violating window ends within `[w, w + horizon]`;
//!   FPR is negative windows during which an alert was active (fired, not yet resolved) /
//!   negative windows.
//! - **RCA cases** are episodes that overlap exactly one injected fault (its interval
//!   extended by `slack_ms` at the end, as queues take time to drain). AC@k: the fault's
//!   service is among the top k culprits of the earliest alert detecting the episode —
//!   which, by the rule above, may be one fired in an earlier episode and still active
//!   (one fault can break QoS in several short episodes while the decider keeps one alert
//!   firing, which the operator reads); an undetected case counts as a miss.
//!   Resource accuracy compares the top culprit's resource with the fault's (a
//!   thread-pool fault, labelled `threads`, shows as the `queue` resource).
//! - `root_cause` alerts (Sage) count like `qos_violation_predicted` ones: they detect the
//!   episodes they fire in and their culprits are scored the same way. So do
//!   `latency_forecast` alerts (Fluxion: forecast end-to-end latency over the SLO), which
//!   name no culprits.
//! - **Multi-fault episodes** (overlapping several faults) are scored apart:
//!   `multi_fault_ac1` when the top culprit is one of the faults' services, `multi_fault_ac3`
//!   when the top three hold at least one.

use serde::Serialize;

use augur_connectors::simulator::FaultLabel;
use augur_operators::quantile::median;
use augur_operators::{Alert, AlertKind, EventTime};

/// One closed window's ground truth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowTruth {
    pub window_end: EventTime,
    pub violated: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct ScoreParams {
    pub window_ms: u64,
    pub horizon_ms: u64,
    pub slack_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Detection {
    pub recall: f64,
    pub predicted_recall: f64,
    pub precision: f64,
    pub fpr: f64,
    pub lead_time_ms_p50: f64,
    /// Firing alerts.
    pub alerts: usize,
    pub detected: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rca {
    pub cases: usize,
    pub ac1: f64,
    pub ac3: f64,
    /// `None` when the detector names no resources.
    pub resource_ac1: Option<f64>,
    /// Episodes that overlap no fault (load spikes, noise).
    pub episodes_without_fault: usize,
    /// Episodes that overlap several faults (reported apart).
    pub multi_fault_episodes: usize,
    /// Of those, top culprit among the faults' services.
    pub multi_fault_ac1: f64,
    /// Of those, one of the faults' services among the top three.
    pub multi_fault_ac3: f64,
    /// Cases scored by an alert that fired more than `horizon` before the episode began —
    /// still active from an earlier episode, so its culprits are what it named then.
    pub cases_scored_by_earlier_alerts: usize,
}

/// One RCA case and how it was scored (`augur eval --report`: `rca-<detector>.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct RcaCase {
    /// The episode's first and last violating windows (their ends).
    pub onset: EventTime,
    pub end: EventTime,
    pub fault: FaultLabel,
    /// When the alert it was scored by fired (none: undetected), and whether that was more
    /// than `horizon` before the onset (for an earlier episode).
    pub alert_fired: Option<EventTime>,
    pub earlier: bool,
    /// The alert's top three culprits, with the top one's resource.
    pub culprits: Vec<String>,
    pub top_resource: Option<String>,
    /// The fault's service's rank among the culprits.
    pub rank: Option<usize>,
}

/// Whether a culprit's resource names the fault's (`threads` faults show as `queue`).
pub(crate) fn resource_matches(resource: &str, fault: &str) -> bool {
    resource == fault || (resource == "queue" && fault == "threads")
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Score {
    pub windows: usize,
    pub violating_windows: usize,
    /// Violation episodes.
    pub violations: usize,
    pub detection: Detection,
    pub rca: Rca,
    /// Every RCA case (not in the JSON object: `--report` writes them).
    #[serde(skip)]
    pub cases: Vec<RcaCase>,
}

struct Episode {
    onset: EventTime,
    end: EventTime,
    first_window_start: EventTime,
}

fn episodes(windows: &[WindowTruth], window_ms: u64) -> Vec<Episode> {
    let mut out: Vec<Episode> = Vec::new();
    for w in windows.iter().filter(|w| w.violated) {
        match out.last_mut() {
            Some(last) if w.window_end <= last.end + 2 * window_ms => last.end = w.window_end,
            _ => out.push(Episode {
                onset: w.window_end,
                end: w.window_end,
                first_window_start: w.window_end.saturating_sub(window_ms),
            }),
        }
    }
    out
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Scores `alerts` (one detector's; resolved copies carry `ends_at`) against the truth.
pub fn score(
    windows: &[WindowTruth],
    alerts: &[Alert],
    faults: &[FaultLabel],
    p: ScoreParams,
) -> Score {
    let mut windows = windows.to_vec();
    windows.sort_by_key(|w| w.window_end);
    let episodes = episodes(&windows, p.window_ms);
    let firing: Vec<&Alert> = {
        let mut f: Vec<&Alert> = alerts
            .iter()
            .filter(|a| {
                a.ends_at.is_none()
                    && matches!(
                        a.kind,
                        AlertKind::QosViolationPredicted
                            | AlertKind::RootCause
                            | AlertKind::LatencyForecast
                    )
            })
            .collect();
        f.sort_by_key(|a| a.window_end);
        f
    };
    // When each firing alert stopped being active.
    let resolved_at = |a: &Alert| -> EventTime {
        alerts
            .iter()
            .filter(|r| r.id == a.id && r.ends_at.is_some())
            .filter_map(|r| r.ends_at.as_deref())
            .filter_map(|s| humantime::parse_rfc3339(s).ok())
            .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as EventTime)
            .next()
            .unwrap_or(EventTime::MAX)
    };

    // (alert, fired at, resolved at), in firing order.
    let active: Vec<(&Alert, EventTime, EventTime)> = firing
        .iter()
        .map(|a| (*a, a.window_end, resolved_at(a)))
        .collect();
    let detects = |from: EventTime, to: EventTime, ep: &Episode| {
        from <= ep.end && to > ep.onset.saturating_sub(p.horizon_ms)
    };

    let mut detected = 0;
    let mut predicted = 0;
    let mut leads = Vec::new();
    let mut first_detector: Vec<Option<&Alert>> = Vec::new();
    for ep in &episodes {
        let hit = active
            .iter()
            .find(|(_, from, to)| detects(*from, *to, ep))
            .copied();
        if let Some((_, from, _)) = hit {
            detected += 1;
            if from < ep.onset {
                predicted += 1;
            }
            let credited_from = from.max(ep.onset.saturating_sub(p.horizon_ms));
            leads.push(ep.onset as f64 - credited_from as f64);
        }
        first_detector.push(hit.map(|(a, _, _)| a));
    }
    let true_alerts = active
        .iter()
        .filter(|(_, from, to)| episodes.iter().any(|ep| detects(*from, *to, ep)))
        .count();

    let violating: Vec<EventTime> = windows
        .iter()
        .filter(|w| w.violated)
        .map(|w| w.window_end)
        .collect();
    let (mut negatives, mut false_alarms) = (0usize, 0usize);
    for w in &windows {
        let positive = violating
            .iter()
            .any(|v| *v >= w.window_end && *v <= w.window_end + p.horizon_ms);
        if positive {
            continue;
        }
        negatives += 1;
        if active
            .iter()
            .any(|(_, from, to)| w.window_end >= *from && w.window_end < *to)
        {
            false_alarms += 1;
        }
    }

    let mut rca = Rca::default();
    let (mut hit1, mut hit3, mut res_hit, mut res_named) = (0, 0, 0, 0);
    let (mut multi_hit1, mut multi_hit3) = (0, 0);
    let mut cases = Vec::new();
    for (ep, alert) in episodes.iter().zip(&first_detector) {
        let overlapping: Vec<&FaultLabel> = faults
            .iter()
            .filter(|f| f.start_ms < ep.end && f.end_ms + p.slack_ms > ep.first_window_start)
            .collect();
        match overlapping.len() {
            0 => rca.episodes_without_fault += 1,
            1 => {
                rca.cases += 1;
                let fault = overlapping[0];
                let earlier = alert.is_some_and(|a| a.window_end + p.horizon_ms < ep.onset);
                rca.cases_scored_by_earlier_alerts += usize::from(earlier);
                let top = alert.and_then(|a| a.culprits.first());
                let case = RcaCase {
                    onset: ep.onset,
                    end: ep.end,
                    fault: fault.clone(),
                    alert_fired: alert.map(|a| a.window_end),
                    earlier,
                    culprits: alert.map_or_else(Vec::new, |a| {
                        a.culprits
                            .iter()
                            .take(3)
                            .map(|c| c.service.clone())
                            .collect()
                    }),
                    top_resource: top.and_then(|c| c.resource).map(|r| r.as_str().to_string()),
                    rank: alert
                        .and_then(|a| a.culprits.iter().position(|c| c.service == fault.service)),
                };
                if case.rank == Some(0) {
                    hit1 += 1;
                }
                if case.rank.is_some_and(|r| r < 3) {
                    hit3 += 1;
                }
                if let Some(resource) = &case.top_resource {
                    res_named += 1;
                    if case.rank == Some(0) && resource_matches(resource, &fault.resource) {
                        res_hit += 1;
                    }
                }
                cases.push(case);
            }
            _ => {
                rca.multi_fault_episodes += 1;
                if let Some(alert) = alert {
                    let rank = alert
                        .culprits
                        .iter()
                        .position(|c| overlapping.iter().any(|f| f.service == c.service));
                    if rank == Some(0) {
                        multi_hit1 += 1;
                    }
                    if rank.is_some_and(|r| r < 3) {
                        multi_hit3 += 1;
                    }
                }
            }
        }
    }
    rca.multi_fault_ac1 = ratio(multi_hit1, rca.multi_fault_episodes);
    rca.multi_fault_ac3 = ratio(multi_hit3, rca.multi_fault_episodes);
    rca.ac1 = ratio(hit1, rca.cases);
    rca.ac3 = ratio(hit3, rca.cases);
    rca.resource_ac1 = (res_named > 0).then(|| ratio(res_hit, rca.cases));

    Score {
        windows: windows.len(),
        violating_windows: violating.len(),
        violations: episodes.len(),
        detection: Detection {
            recall: ratio(detected, episodes.len()),
            predicted_recall: ratio(predicted, episodes.len()),
            precision: ratio(true_alerts, firing.len()),
            fpr: ratio(false_alarms, negatives),
            lead_time_ms_p50: median(&leads),
            alerts: firing.len(),
            detected,
        },
        rca,
        cases,
    }
}

/// The cases as a Markdown table, in episode order.
pub fn case_table(cases: &[RcaCase], start_ms: EventTime) -> String {
    let secs = |t: EventTime| t.saturating_sub(start_ms) as f64 / 1000.0;
    let mut out = String::from(
        "| episode (s) | fault | fault start (s) | alert fired (s) | top culprits | top resource | rank of the fault's service |\n|---|---|---|---|---|---|---|\n",
    );
    for c in cases {
        let fired = match (c.alert_fired, c.earlier) {
            (Some(t), true) => format!("{:.0} (earlier episode)", secs(t)),
            (Some(t), false) => format!("{:.0}", secs(t)),
            (None, _) => "not detected".to_string(),
        };
        out.push_str(&format!(
            "| {:.0}–{:.0} | {} {} | {:.0} | {} | {} | {} | {} |\n",
            secs(c.onset),
            secs(c.end),
            c.fault.service,
            c.fault.resource,
            secs(c.fault.start_ms),
            fired,
            c.culprits.join(", "),
            c.top_resource.as_deref().unwrap_or("–"),
            c.rank
                .map_or("not named".to_string(), |r| (r + 1).to_string()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use augur_operators::{Culprit, ModelRef, Resource, decide::rfc3339};

    use super::*;

    const W: u64 = 1000;

    /// `W` ms windows, this horizon, no slack.
    fn params(horizon_ms: u64) -> ScoreParams {
        ScoreParams {
            window_ms: W,
            horizon_ms,
            slack_ms: 0,
        }
    }

    /// Windows 1..=n of `W` ms, violated where `violated(i)`.
    fn truth(n: u64, violated: impl Fn(u64) -> bool) -> Vec<WindowTruth> {
        (1..=n)
            .map(|i| WindowTruth {
                window_end: i * W,
                violated: violated(i),
            })
            .collect()
    }

    fn alert(at: EventTime, culprits: &[&str], ends: Option<EventTime>) -> Alert {
        Alert {
            id: format!("{at}"),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at: rfc3339(at),
            ends_at: ends.map(rfc3339),
            kind: AlertKind::QosViolationPredicted,
            service: culprits[0].to_string(),
            probability: 0.9,
            horizon_ms: 2000,
            culprits: culprits
                .iter()
                .map(|s| Culprit {
                    service: s.to_string(),
                    score: 1.0,
                    resource: Some(Resource::Cpu),
                    operation: None,
                })
                .collect(),
            window_end: at,
            model: ModelRef {
                name: "t".into(),
                version: "0".into(),
            },
        }
    }

    /// 20 windows; episodes at windows ending 6000–8000 and 15000; a fault on `b`
    /// (cpu) 4500–8000 and nothing under the second episode (a load spike).
    #[test]
    fn hand_made_case() {
        let windows = truth(20, |i| matches!(i, 6..=8 | 15));
        let faults = vec![FaultLabel::new("b", "cpu", 4500, 8000)];
        let a1 = alert(5000, &["a", "b"], None);
        let a1_resolved = alert(5000, &["a", "b"], Some(10_000));
        // A false alarm at 11000, active until 12000.
        let a2 = alert(11_000, &["c"], None);
        let a2_resolved = alert(11_000, &["c"], Some(12_000));
        let alerts = vec![a1, a1_resolved, a2, a2_resolved];
        let s = score(&windows, &alerts, &faults, params(2000));
        assert_eq!(s.windows, 20);
        assert_eq!(s.violating_windows, 4);
        assert_eq!(s.violations, 2);
        // Episode 1 detected 1000 ms ahead; episode 2 missed.
        assert_eq!(s.detection.detected, 1);
        assert!((s.detection.recall - 0.5).abs() < 1e-9);
        assert!((s.detection.predicted_recall - 0.5).abs() < 1e-9);
        assert!((s.detection.lead_time_ms_p50 - 1000.0).abs() < 1e-9);
        assert_eq!(s.detection.alerts, 2);
        assert!((s.detection.precision - 0.5).abs() < 1e-9);
        // Positive windows: 4..=8 and 13..=15 (violation within [w, w+2000]) → 12 negatives.
        // Active alarm on negatives: 9000 (a1 active 5000..10000) and 11000 (a2) → 2/12.
        assert!(
            (s.detection.fpr - 2.0 / 12.0).abs() < 1e-9,
            "{}",
            s.detection.fpr
        );
        // One RCA case (episode 1, fault on b): b is second → AC@1 0, AC@3 1.
        assert_eq!(s.rca.cases, 1);
        assert_eq!(s.rca.episodes_without_fault, 1);
        assert_eq!(s.rca.ac1, 0.0);
        assert_eq!(s.rca.ac3, 1.0);
        assert_eq!(s.rca.resource_ac1, Some(0.0));
    }

    /// Episode at windows ending 10000–11000, horizon 2000 (credited from 8000). An alert
    /// that fired at 4000 and is still active counts, with its lead capped at the horizon;
    /// one that fired at 3000 and resolved at 7000 (before 8000) doesn't; one that fired at
    /// 5000 and resolved at 9000 does (active at 8000).
    #[test]
    fn early_alerts_count_while_active_within_the_horizon() {
        let windows = truth(14, |i| matches!(i, 10 | 11));
        let p = params(2000);
        let still_active = vec![alert(4000, &["b"], None)];
        let s = score(&windows, &still_active, &[], p);
        assert_eq!(s.detection.detected, 1);
        assert!((s.detection.predicted_recall - 1.0).abs() < 1e-9);
        assert!((s.detection.lead_time_ms_p50 - 2000.0).abs() < 1e-9);
        assert!((s.detection.precision - 1.0).abs() < 1e-9);
        // Negatives: windows 1..=7 and 12..=14 (10); active on 4000..=7000 and 12000..=14000.
        assert!((s.detection.fpr - 7.0 / 10.0).abs() < 1e-9);

        let resolved_early = vec![alert(3000, &["b"], None), alert(3000, &["b"], Some(7000))];
        let s = score(&windows, &resolved_early, &[], p);
        assert_eq!(s.detection.detected, 0);
        assert_eq!(s.detection.precision, 0.0);

        let active_at_credit_start =
            vec![alert(5000, &["b"], None), alert(5000, &["b"], Some(9000))];
        let s = score(&windows, &active_at_credit_start, &[], p);
        assert_eq!(s.detection.detected, 1);
        assert!((s.detection.lead_time_ms_p50 - 2000.0).abs() < 1e-9);
    }

    /// One fault on `b` breaks QoS in two episodes (windows 3 and 7); the alert fired in
    /// the first stays active (resolved at 9000) and names `b` for both. A second fault on
    /// `c` breaks it at window 15, after the alert was resolved: a miss.
    #[test]
    fn an_alert_still_active_names_the_culprit_of_a_later_episode() {
        let windows = truth(20, |i| matches!(i, 3 | 7 | 15));
        let faults = vec![
            FaultLabel::new("b", "cpu", 2500, 7000),
            FaultLabel::new("c", "cpu", 14_500, 15_000),
        ];
        let alerts = vec![
            alert(3000, &["b", "a"], None),
            alert(3000, &["b", "a"], Some(9000)),
        ];
        let s = score(&windows, &alerts, &faults, params(0));
        assert_eq!(s.violations, 3);
        assert_eq!(s.rca.cases, 3);
        // Detection credits the alert in both episodes it is active in, not the third.
        assert_eq!(s.detection.detected, 2);
        assert!((s.rca.ac1 - 2.0 / 3.0).abs() < 1e-9, "{:?}", s.rca);
        assert!((s.rca.ac3 - 2.0 / 3.0).abs() < 1e-9, "{:?}", s.rca);
        // The second episode (window 7) was scored by the alert of the first (window 3).
        assert_eq!(s.rca.cases_scored_by_earlier_alerts, 1);
        let scored: Vec<(EventTime, Option<EventTime>, bool, Option<usize>)> = s
            .cases
            .iter()
            .map(|c| (c.onset, c.alert_fired, c.earlier, c.rank))
            .collect();
        assert_eq!(
            scored,
            [
                (3000, Some(3000), false, Some(0)),
                (7000, Some(3000), true, Some(0)),
                (15_000, None, false, None),
            ]
        );
        let table = case_table(&s.cases, 0);
        assert!(
            table.contains("| 7–7 | b cpu | 2 | 3 (earlier episode) | b, a |"),
            "{table}"
        );
        assert!(
            table.contains("| 15–15 | c cpu | 14 | not detected |"),
            "{table}"
        );
    }

    #[test]
    fn no_violations_no_alerts_is_all_zero_not_nan() {
        let windows = truth(5, |_| false);
        let s = score(&windows, &[], &[], params(1000));
        assert_eq!(s.violations, 0);
        assert_eq!(s.detection.recall, 0.0);
        assert_eq!(s.detection.fpr, 0.0);
        assert_eq!(s.rca.resource_ac1, None);
    }
}

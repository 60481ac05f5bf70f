//! Decide: turns per-window detections into alerts, with hysteresis, cooldown and a rate limit.
//!
//! In: for each closed window, in window order, the window and the detections a detector
//! made on it; the window's QoS verdicts also count as `qos_violation` detections.
//! Out: alerts — one *firing* alert when an episode starts (after `fire_after` consecutive
//! detecting windows) and one *resolved* alert (with `endsAt`) after `clear_after` quiet
//! windows. State: per alert kind, the open episode and its streak counters, and the
//! cooldown that keeps a resolved kind from re-firing for `cooldown_ms`.
//!
//! The state is kept canonical (counters capped where more makes no difference, expired
//! cooldowns and idle kinds dropped), so it changes only when a decision could: a
//! restarted job seeds a decider with [`DeciderState`] saved at some window and gets the
//! same alerts — the same ids, and resolutions of episodes that began before the restart
//! — as a decider that never stopped.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKind, Detection, ModelRef};
use crate::records::{EventTime, WindowSnapshot};

/// Settings of the decide step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecideConfig {
    /// Consecutive detecting windows before an alert fires. Default 1.
    pub fire_after: u32,
    /// Consecutive quiet windows before a firing alert resolves. Default 3.
    pub clear_after: u32,
    /// After an alert resolves, the same kind doesn't fire again for this long. Default 0:
    /// a violation right after a resolution is alerted on (flapping is `clear_after`'s to
    /// damp, as Prometheus's `keep_firing_for`; a cooldown silences real violations).
    pub cooldown_ms: u64,
    /// At most this many alerts leave per window; the rest are counted as suppressed. Default 20.
    pub max_alerts_per_window: usize,
}

impl Default for DecideConfig {
    fn default() -> Self {
        DecideConfig {
            fire_after: 1,
            clear_after: 3,
            cooldown_ms: 0,
            max_alerts_per_window: 20,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Episode {
    firing: Option<Alert>,
    on_streak: u32,
    off_streak: u32,
    cooldown_until: EventTime,
}

/// A decider's state after the window ending at `window_end` (see the module docs): what a
/// restarted job seeds its decider with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeciderState {
    /// The last window decided.
    pub window_end: EventTime,
    pub(crate) episodes: Vec<(AlertKind, Episode)>,
}

impl DeciderState {
    /// Whether the two states decide the future alike (their windows may differ).
    pub fn same_episodes(&self, other: &DeciderState) -> bool {
        self.episodes == other.episodes
    }

    /// The ids of the alerts firing in this state.
    pub fn firing_ids(&self) -> Vec<&str> {
        self.episodes
            .iter()
            .filter_map(|(_, e)| e.firing.as_ref().map(|a| a.id.as_str()))
            .collect()
    }
}

/// The decide state machine of one detector.
pub struct Decider {
    config: DecideConfig,
    model: ModelRef,
    episodes: BTreeMap<AlertKind, Episode>,
    /// Windows ending at or before this were decided by an earlier run (see [`Decider::restore`]).
    decided_through: Option<EventTime>,
    /// Alerts dropped by the rate limit so far.
    pub suppressed: u64,
}

/// RFC 3339 with milliseconds, UTC (`YYYY-MM-DDTHH:MM:SS.mmmZ`): the one time format of
/// augur's output (alerts, actions, dead letters).
pub fn rfc3339(t_ms: EventTime) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t_ms)).to_string()
}

impl Decider {
    pub fn new(config: DecideConfig, model: ModelRef) -> Self {
        Decider {
            config,
            model,
            episodes: BTreeMap::new(),
            decided_through: None,
            suppressed: 0,
        }
    }

    /// The state after the last window decided (`window_end` 0 before any).
    pub fn state(&self, window_end: EventTime) -> DeciderState {
        DeciderState {
            window_end,
            episodes: self.episodes.iter().map(|(k, e)| (*k, e.clone())).collect(),
        }
    }

    /// Continues from `state`: windows ending at or before `state.window_end` are skipped
    /// (an earlier run decided them), later ones are decided as that run would have.
    pub fn restore(&mut self, state: DeciderState) {
        self.episodes = state.episodes.into_iter().collect();
        self.decided_through = Some(state.window_end);
    }

    /// Decides on one window. Windows must come in order.
    pub fn decide(
        &mut self,
        window: &WindowSnapshot,
        mut detections: Vec<Detection>,
    ) -> Vec<Alert> {
        if self
            .decided_through
            .is_some_and(|through| window.window_end <= through)
        {
            return Vec::new();
        }
        if let Some(worst) = window
            .qos
            .iter()
            .filter(|q| q.violated)
            .max_by(|a, b| (a.measured_ms / a.slo_ms).total_cmp(&(b.measured_ms / b.slo_ms)))
        {
            detections.push(Detection {
                kind: AlertKind::QosViolation,
                service: worst.entry.clone(),
                probability: 1.0,
                horizon_ms: 0,
                culprits: Vec::new(),
                summary: format!(
                    "{}: p{} {:.1} ms exceeds the {:.0} ms SLO",
                    worst.entry,
                    (worst.quantile * 100.0).round(),
                    worst.measured_ms,
                    worst.slo_ms
                ),
            });
        }
        let mut by_kind: BTreeMap<AlertKind, Detection> = BTreeMap::new();
        for d in detections {
            match by_kind.get(&d.kind) {
                Some(kept) if kept.probability >= d.probability => {}
                _ => {
                    by_kind.insert(d.kind, d);
                }
            }
        }
        let mut out = Vec::new();
        let kinds: Vec<AlertKind> = self
            .episodes
            .keys()
            .copied()
            .chain(by_kind.keys().copied())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for kind in kinds {
            let episode = self.episodes.entry(kind).or_default();
            match by_kind.remove(&kind) {
                Some(detection) => {
                    episode.off_streak = 0;
                    episode.on_streak += 1;
                    if episode.firing.is_none()
                        && episode.on_streak >= self.config.fire_after
                        && window.window_end >= episode.cooldown_until
                    {
                        let alert = build_alert(window, &detection, &self.model);
                        episode.firing = Some(alert.clone());
                        out.push(alert);
                    }
                }
                None => {
                    episode.on_streak = 0;
                    episode.off_streak += 1;
                    if episode.off_streak >= self.config.clear_after {
                        if let Some(mut alert) = episode.firing.take() {
                            alert.ends_at = Some(rfc3339(window.window_end));
                            out.push(alert);
                            episode.cooldown_until = window.window_end + self.config.cooldown_ms;
                        }
                    }
                }
            }
        }
        self.canonicalize(window.window_end);
        if out.len() > self.config.max_alerts_per_window {
            self.suppressed += (out.len() - self.config.max_alerts_per_window) as u64;
            out.truncate(self.config.max_alerts_per_window);
        }
        out
    }
}

impl Decider {
    /// Caps what no longer matters, so equal futures have equal states: a firing episode's
    /// on-streak and a quiet one's off-streak, streaks past their thresholds, cooldowns
    /// that ended; kinds with nothing left are dropped.
    fn canonicalize(&mut self, now: EventTime) {
        let (fire_after, clear_after) = (self.config.fire_after, self.config.clear_after);
        self.episodes.retain(|_, e| {
            if e.firing.is_some() {
                e.on_streak = 0;
                e.off_streak = e.off_streak.min(clear_after);
            } else {
                e.off_streak = 0;
                e.on_streak = e.on_streak.min(fire_after);
            }
            if e.cooldown_until <= now {
                e.cooldown_until = 0;
            }
            *e != Episode::default()
        });
    }
}

fn build_alert(window: &WindowSnapshot, d: &Detection, model: &ModelRef) -> Alert {
    let severity = match d.kind {
        AlertKind::QosViolation => "critical",
        _ => "warning",
    };
    let labels = BTreeMap::from([
        ("alertname".to_string(), d.kind.as_str().to_string()),
        ("service".to_string(), d.service.clone()),
        ("severity".to_string(), severity.to_string()),
        ("detector".to_string(), model.name.clone()),
    ]);
    let mut annotations = BTreeMap::from([("summary".to_string(), d.summary.clone())]);
    if !d.culprits.is_empty() {
        let ranked: Vec<String> = d
            .culprits
            .iter()
            .map(|c| format!("{} ({:.2})", c.service, c.score))
            .collect();
        annotations.insert("culprits".to_string(), ranked.join(", "));
    }
    Alert {
        id: Alert::id_for(window.window_end, &d.service, d.kind, &model.name),
        labels,
        annotations,
        starts_at: rfc3339(window.window_end),
        ends_at: None,
        kind: d.kind,
        service: d.service.clone(),
        probability: d.probability,
        horizon_ms: d.horizon_ms,
        culprits: d.culprits.clone(),
        window_end: window.window_end,
        model: model.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::QosVerdict;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_123), "2024-02-29T23:59:59.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    fn window(end: EventTime, violated: bool) -> WindowSnapshot {
        WindowSnapshot {
            window_end: end,
            window_ms: 1000,
            qos: vec![QosVerdict {
                window_end: end,
                entry: "fe".into(),
                requests: 10,
                errors: 0,
                latency_ms: [1.0; 5],
                quantile: 0.99,
                slo_ms: 100.0,
                measured_ms: if violated { 150.0 } else { 50.0 },
                violated,
            }],
            ..WindowSnapshot::default()
        }
    }

    fn detection() -> Detection {
        Detection {
            kind: AlertKind::QosViolationPredicted,
            service: "db".into(),
            probability: 0.9,
            horizon_ms: 1000,
            culprits: vec![],
            summary: "db slow".into(),
        }
    }

    fn decider(fire_after: u32, clear_after: u32, cooldown_ms: u64) -> Decider {
        Decider::new(
            DecideConfig {
                fire_after,
                clear_after,
                cooldown_ms,
                max_alerts_per_window: 20,
            },
            ModelRef {
                name: "t".into(),
                version: "0".into(),
            },
        )
    }

    /// Detections on windows 1..=3 and 9, quiet otherwise.
    fn run(d: &mut Decider) -> Vec<(EventTime, bool)> {
        let mut out = Vec::new();
        for i in 1..=12u64 {
            let dets = if matches!(i, 1..=3 | 9) {
                vec![detection()]
            } else {
                vec![]
            };
            for a in d.decide(&window(i * 1000, false), dets) {
                // A resolved alert keeps its start window; report when it resolved.
                let at = if a.ends_at.is_some() {
                    i * 1000
                } else {
                    a.window_end
                };
                out.push((at, a.ends_at.is_some()));
            }
        }
        out
    }

    #[test]
    fn fires_once_per_episode_and_resolves_after_quiet_windows() {
        let mut d = decider(1, 2, 0);
        // Fires at 1000, resolves after 2 quiet windows (5000), fires again at 9000,
        // resolves at 11000.
        assert_eq!(
            run(&mut d),
            vec![(1000, false), (5000, true), (9000, false), (11000, true)]
        );
    }

    #[test]
    fn fire_after_delays_and_cooldown_suppresses() {
        let mut d = decider(2, 2, 10_000);
        // Needs two windows: fires at 2000; resolves at 5000; 9000 is inside the cooldown.
        assert_eq!(run(&mut d), vec![(2000, false), (5000, true)]);
    }

    /// With the defaults (resolve after 3 quiet windows, no cooldown), a detection in the
    /// window right after a resolution fires a new alert.
    #[test]
    fn by_default_a_detection_right_after_a_resolution_fires() {
        let mut d = Decider::new(
            DecideConfig::default(),
            ModelRef {
                name: "t".into(),
                version: "0".into(),
            },
        );
        let mut fired = Vec::new();
        for i in 1..=8u64 {
            let dets = if matches!(i, 1 | 5) {
                vec![detection()]
            } else {
                vec![]
            };
            for a in d.decide(&window(i * 1000, false), dets) {
                fired.push((i, a.ends_at.is_some()));
            }
        }
        // Fires at 1, resolves after windows 2–4, fires again at 5, resolves at 8.
        assert_eq!(fired, vec![(1, false), (4, true), (5, false), (8, true)]);
    }

    /// Two detectors alerting on the same window, service and kind never share an id.
    #[test]
    fn alert_ids_differ_between_detectors() {
        let mut a = decider(1, 1, 0);
        let mut b = Decider::new(
            DecideConfig {
                fire_after: 1,
                clear_after: 1,
                cooldown_ms: 0,
                max_alerts_per_window: 20,
            },
            ModelRef {
                name: "u".into(),
                version: "0".into(),
            },
        );
        let (x, y) = (
            a.decide(&window(7000, true), vec![]),
            b.decide(&window(7000, true), vec![]),
        );
        assert_eq!((x.len(), y.len()), (1, 1));
        assert_ne!(x[0].id, y[0].id);
    }

    #[test]
    fn qos_violations_alert_with_stable_ids() {
        let mut d = decider(1, 1, 0);
        let alerts = d.decide(&window(7000, true), vec![]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, AlertKind::QosViolation);
        assert_eq!(alerts[0].id, "7000-fe-qos_violation-t");
        assert_eq!(alerts[0].starts_at, "1970-01-01T00:00:07.000Z");
    }

    /// A decider restored from a state saved at any window, fed again from any earlier
    /// window (a restarted job replays some input), emits exactly what one that never
    /// stopped emits after that window — compared against the uninterrupted run.
    #[test]
    fn a_restored_decider_continues_as_if_it_never_stopped() {
        use proptest::prelude::*;
        use proptest::test_runner::TestRunner;
        let kinds = [AlertKind::QosViolationPredicted, AlertKind::RootCause];
        let windows = 40u64;
        let strategy = (
            proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 40),
            1u32..4,
            1u32..4,
            prop_oneof![Just(0u64), Just(3000u64), Just(7000u64)],
            1u64..40,
            0u64..10,
        );
        TestRunner::default()
            .run(&strategy, |(plan, fire, clear, cooldown, stop, back)| {
                let detections = |i: u64| -> (WindowSnapshot, Vec<Detection>) {
                    let (a, b, violated) = plan[(i - 1) as usize];
                    let mut found = Vec::new();
                    for (on, kind) in [(a, kinds[0]), (b, kinds[1])] {
                        if on {
                            found.push(Detection {
                                kind,
                                ..detection()
                            });
                        }
                    }
                    (window(i * 1000, violated), found)
                };
                let mut whole = decider(fire, clear, cooldown);
                let mut first = decider(fire, clear, cooldown);
                let mut expected = Vec::new();
                let mut saved = None;
                for i in 1..=windows {
                    let (w, found) = detections(i);
                    let alerts = whole.decide(&w, found.clone());
                    if i > stop {
                        expected.extend(alerts);
                    }
                    if i <= stop {
                        first.decide(&w, found);
                        if i == stop {
                            saved = Some(first.state(w.window_end));
                        }
                    }
                }
                let saved = saved.expect("saved at `stop`");
                // Through JSON, as the job stores it.
                let text = serde_json::to_string(&saved).expect("serializes");
                let mut restored = decider(fire, clear, cooldown);
                restored.restore(serde_json::from_str(&text).expect("parses"));
                let mut got = Vec::new();
                for i in stop.saturating_sub(back).max(1)..=windows {
                    let (w, found) = detections(i);
                    got.extend(restored.decide(&w, found));
                }
                prop_assert_eq!(got, expected);
                Ok(())
            })
            .expect("restored decider diverged");
    }
}

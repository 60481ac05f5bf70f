//! Decide: turns per-window detections into alerts, with hysteresis, cooldown and a rate limit.
//!
//! In: for each closed window, in window order, the window and the detections a detector
//! made on it; the window's QoS verdicts also count as `qos_violation` detections.
//! Out: alerts — one *firing* alert when an episode starts (after `fire_after` consecutive
//! detecting windows) and one *resolved* alert (with `endsAt`) after `clear_after` quiet
//! windows. State: per alert kind, the open episode and its streak counters, and the
//! cooldown that keeps a resolved kind from re-firing for `cooldown_ms`.

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
    /// After an alert resolves, the same kind doesn't fire again for this long. Default 5000.
    pub cooldown_ms: u64,
    /// At most this many alerts leave per window; the rest are counted as suppressed. Default 20.
    pub max_alerts_per_window: usize,
}

impl Default for DecideConfig {
    fn default() -> Self {
        DecideConfig {
            fire_after: 1,
            clear_after: 3,
            cooldown_ms: 5_000,
            max_alerts_per_window: 20,
        }
    }
}

#[derive(Default)]
struct Episode {
    firing: Option<Alert>,
    on_streak: u32,
    off_streak: u32,
    cooldown_until: EventTime,
}

/// The decide state machine of one detector.
pub struct Decider {
    config: DecideConfig,
    model: ModelRef,
    episodes: BTreeMap<AlertKind, Episode>,
    /// Alerts dropped by the rate limit so far.
    pub suppressed: u64,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t_ms: EventTime) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t_ms)).to_string()
}

impl Decider {
    pub fn new(config: DecideConfig, model: ModelRef) -> Self {
        Decider {
            config,
            model,
            episodes: BTreeMap::new(),
            suppressed: 0,
        }
    }

    /// Decides on one window. Windows must come in order.
    pub fn decide(&mut self, window: &WindowSnapshot, mut detections: Vec<Detection>) -> Vec<Alert> {
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
        if out.len() > self.config.max_alerts_per_window {
            self.suppressed += (out.len() - self.config.max_alerts_per_window) as u64;
            out.truncate(self.config.max_alerts_per_window);
        }
        out
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
        id: Alert::id_for(window.window_end, &d.service, d.kind),
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

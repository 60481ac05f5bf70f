//! The `evidence` detector: [`super::diagnose`] run continuously, so a diagnosis is made
//! whenever a service departs from its own normal, whether or not an SLO is crossed.
//!
//! **In:** closed windows, in order. **Out:** per window, at most one `root_cause`
//! detection: when, over the latest `recent_ms`, some service's own signal moved by at least
//! `min_score` with `z ≥ min_z` against the windows before (the normal), its culprits.
//!
//! **State:** the latest `recent_ms` of windows, and up to `before_ms` of earlier windows
//! as the normal. A window that was part of a detection never joins the normal, so a
//! lasting fault does not become normal while it lasts. Nothing is diagnosed until the
//! normal holds `min_normal_windows` windows with requests: with the defaults, the first
//! diagnosis can come 30 s after the job starts seeing traffic.

use std::collections::VecDeque;

use augur_operators::{AlertKind, Culprit, Detection, Detector, Resource, WindowSnapshot};
use serde::{Deserialize, Serialize};

use super::{EvidenceParams, diagnose_split};

/// Settings of the `evidence` detector (`[detector.evidence]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceDetectorConfig {
    /// The normal: up to this much time before the recent range, ms. Default 120000.
    pub before_ms: u64,
    /// The recent range examined every window, ms. Default 10000.
    pub recent_ms: u64,
    /// Windows with requests the normal needs before anything is diagnosed. Default 30.
    pub min_normal_windows: usize,
    /// Smallest z of a move that counts. Default 4 (every service and signal is tested
    /// every window: a stricter bar than a one-off `augur diagnose`).
    pub min_z: f64,
    /// Smallest score (move relative to the normal level) that makes a detection.
    /// Default 0.5.
    pub min_score: f64,
    /// Culprits listed per detection. Default 5.
    pub max_culprits: usize,
}

impl Default for EvidenceDetectorConfig {
    fn default() -> Self {
        EvidenceDetectorConfig {
            before_ms: 120_000,
            recent_ms: 10_000,
            min_normal_windows: 30,
            min_z: 4.0,
            min_score: 0.5,
            max_culprits: 5,
        }
    }
}

pub struct EvidenceDetector {
    config: EvidenceDetectorConfig,
    normal: VecDeque<WindowSnapshot>,
    /// Recent windows, and whether each was part of a detection.
    recent: VecDeque<(WindowSnapshot, bool)>,
}

impl EvidenceDetector {
    pub fn new(config: EvidenceDetectorConfig) -> Self {
        EvidenceDetector {
            config,
            normal: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    fn normal_windows(&self) -> usize {
        self.normal
            .iter()
            .filter(|w| w.services.iter().any(|s| s.requests > 0))
            .count()
    }
}

fn resource(name: &str) -> Option<Resource> {
    match name {
        "cpu" => Some(Resource::Cpu),
        "network" => Some(Resource::Network),
        _ => None,
    }
}

impl Detector for EvidenceDetector {
    fn name(&self) -> &str {
        "evidence"
    }

    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        let now = window.window_end;
        self.recent.push_back((window.clone(), false));
        // Windows leaving the recent range join the normal unless they were detected.
        while let Some((w, _)) = self.recent.front()
            && w.window_end + self.config.recent_ms <= now
        {
            if let Some((w, detected)) = self.recent.pop_front()
                && !detected
            {
                self.normal.push_back(w);
            }
        }
        while let Some(w) = self.normal.front()
            && w.window_end + self.config.recent_ms + self.config.before_ms <= now
        {
            self.normal.pop_front();
        }
        if self.normal_windows() < self.config.min_normal_windows {
            return Vec::new();
        }
        let at = self.normal.back().map_or(0, |w| w.window_end);
        let params = EvidenceParams {
            before_ms: self.config.before_ms,
            after_ms: now.saturating_sub(at),
            min_z: self.config.min_z,
            max_culprits: self.config.max_culprits,
            ..EvidenceParams::default()
        };
        let d = diagnose_split(
            self.normal.iter(),
            self.recent.iter().map(|(w, _)| w),
            at,
            &params,
        );
        let Some(top) = d.culprits.first() else {
            return Vec::new();
        };
        if top.score < self.config.min_score {
            return Vec::new();
        }
        if let Some(last) = self.recent.back_mut() {
            last.1 = true;
        }
        let summary = top
            .evidence
            .first()
            .map(|e| {
                let on =
                    e.on.as_deref()
                        .map(|o| format!(" ({o})"))
                        .unwrap_or_default();
                format!(
                    "{} {:?}{on} {:.3} -> {:.3} (z {:.1})",
                    top.service, e.signal, e.before, e.after, e.z
                )
            })
            .unwrap_or_default();
        vec![Detection {
            kind: AlertKind::RootCause,
            service: top.service.clone(),
            probability: (top.score / (1.0 + top.score)).clamp(0.0, 1.0),
            horizon_ms: 0,
            culprits: d
                .culprits
                .iter()
                .map(|c| Culprit {
                    service: c.service.clone(),
                    score: c.score,
                    resource: resource(&c.resource),
                })
                .collect(),
            summary,
        }]
    }
}

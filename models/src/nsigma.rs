//! The n-sigma detector: the statistical stand-in for the learned predictor, and a baseline.
//!
//! Per service it keeps the recent history of two signals — server-side p99 latency and
//! outstanding requests (queue depth) — and scores each window by how many standard
//! deviations the current value lies above the history's mean. When any service scores
//! above `sigma`, it predicts a QoS violation and ranks services by score. Windows that
//! score above the threshold are not added to the history, so a long fault doesn't become
//! the new normal.

use std::collections::{BTreeMap, VecDeque};

use augur_operators::{AlertKind, Culprit, Detection, Detector, WindowSnapshot};
use serde::{Deserialize, Serialize};

/// Settings of the n-sigma detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NSigmaConfig {
    /// Standard deviations above the mean that count as anomalous. Default 3.
    pub sigma: f64,
    /// Windows of history kept per service. Default 60.
    pub history: usize,
    /// Windows of history needed before a service is scored. Default 10.
    pub min_history: usize,
    /// Relative floor on the standard deviation (fraction of the mean), so that very
    /// steady signals don't alarm on noise. Default 0.05.
    pub min_relative_std: f64,
}

impl Default for NSigmaConfig {
    fn default() -> Self {
        NSigmaConfig {
            sigma: 3.0,
            history: 60,
            min_history: 10,
            min_relative_std: 0.05,
        }
    }
}

/// Per-service rolling history of one signal.
#[derive(Default)]
struct History {
    values: VecDeque<f64>,
}

impl History {
    /// z-score of `x` against the history, or `None` while the history is too short.
    fn score(&self, x: f64, config: &NSigmaConfig) -> Option<f64> {
        if self.values.len() < config.min_history {
            return None;
        }
        let n = self.values.len() as f64;
        let mean = self.values.iter().sum::<f64>() / n;
        let var = self.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let std = var
            .sqrt()
            .max(mean.abs() * config.min_relative_std)
            .max(1e-9);
        Some((x - mean) / std)
    }

    fn push(&mut self, x: f64, capacity: usize) {
        if self.values.len() == capacity {
            self.values.pop_front();
        }
        self.values.push_back(x);
    }
}

pub struct NSigma {
    config: NSigmaConfig,
    horizon_ms: u64,
    latency: BTreeMap<String, History>,
    outstanding: BTreeMap<String, History>,
}

impl NSigma {
    pub fn new(config: NSigmaConfig, horizon_ms: u64) -> Self {
        NSigma {
            config,
            horizon_ms,
            latency: BTreeMap::new(),
            outstanding: BTreeMap::new(),
        }
    }
}

/// Maps a score above the threshold to (0.5, 1): a readable confidence, not a calibrated one.
fn probability(score: f64, sigma: f64) -> f64 {
    1.0 / (1.0 + (-(score - sigma)).exp())
}

impl Detector for NSigma {
    fn name(&self) -> &str {
        "nsigma"
    }

    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        let mut scored: Vec<(f64, &str, String)> = Vec::new();
        for s in &window.services {
            if s.requests == 0 {
                continue;
            }
            let p99 = s.latency_ms[4];
            let lat = self.latency.entry(s.service.clone()).or_default();
            let out = self.outstanding.entry(s.service.clone()).or_default();
            let z_lat = lat.score(p99, &self.config);
            let z_out = out.score(s.outstanding, &self.config);
            let score = z_lat.unwrap_or(0.0).max(z_out.unwrap_or(0.0));
            if score < self.config.sigma {
                lat.push(p99, self.config.history);
                out.push(s.outstanding, self.config.history);
            }
            if z_lat.is_some() || z_out.is_some() {
                let why = if z_lat.unwrap_or(0.0) >= z_out.unwrap_or(0.0) {
                    format!("p99 {p99:.1} ms is {score:.1}σ above its mean")
                } else {
                    format!(
                        "{:.1} requests outstanding is {score:.1}σ above its mean",
                        s.outstanding
                    )
                };
                scored.push((score, &s.service, why));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        match scored.first() {
            Some((top, service, why)) if *top >= self.config.sigma => vec![Detection {
                kind: AlertKind::QosViolationPredicted,
                service: service.to_string(),
                probability: probability(*top, self.config.sigma),
                horizon_ms: self.horizon_ms,
                culprits: scored
                    .iter()
                    .take(5)
                    .map(|(score, service, _)| Culprit {
                        service: service.to_string(),
                        score: *score,
                        resource: None,
                    })
                    .collect(),
                summary: format!("{service}: {why}"),
            }],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use augur_operators::{ServiceFeatures, WindowSnapshot};

    use super::*;

    fn features(service: &str, p99: f64, outstanding: f64, end: u64) -> ServiceFeatures {
        ServiceFeatures {
            window_end: end,
            service: service.into(),
            requests: 100,
            errors: 0,
            latency_ms: [p99 / 2.0, p99 / 1.5, p99 / 1.2, p99 / 1.1, p99],
            outstanding,
            replicas: 1,
            usage: [[0.0; 4]; 5],
        }
    }

    /// Two services with steady noisy signals; at window 40 `db` jumps 3x, `fe` 1.3x.
    #[test]
    fn flags_the_jump_and_ranks_the_bigger_deviation_first() {
        let mut d = NSigma::new(NSigmaConfig::default(), 1000);
        let mut first_alarm = None;
        for i in 0..50u64 {
            let wobble = (i % 5) as f64;
            let (db, fe) = if i >= 40 { (30.0 + wobble, 65.0 + wobble) } else { (10.0 + wobble, 50.0 + wobble) };
            let w = WindowSnapshot {
                window_end: i * 1000,
                window_ms: 1000,
                services: vec![features("db", db, db / 10.0, i * 1000), features("fe", fe, 2.0, i * 1000)],
                ..WindowSnapshot::default()
            };
            let dets = d.observe(&w);
            if i < 40 {
                assert!(dets.is_empty(), "false alarm at window {i}: {dets:?}");
            } else if first_alarm.is_none() && !dets.is_empty() {
                first_alarm = Some(i);
                assert_eq!(dets[0].service, "db");
                assert_eq!(dets[0].culprits[0].service, "db");
                assert!(dets[0].probability > 0.5);
            }
        }
        assert_eq!(first_alarm, Some(40));
    }
}

//! The `fluxion` detector: an inference graph learned online that forecasts the entry
//! point's end-to-end latency `horizon` ahead and alerts when the forecast exceeds the SLO.
//!
//! In: closed windows, in order. Out: `latency_forecast` detections ("p99 forecast 240 ms
//! vs SLO 200 ms"). State: recent samples; the graph (warm-started from a checkpoint when
//! `checkpoint` names one, else trained once `min_train_windows` windows are in); pending
//! deployment changes (a service whose replica count changed, a new service or call) each
//! refitted — only its vertex — once `adapt_samples` windows after the change are in; the
//! forecast error's moving average, whose growth triggers graph debugging and a refit of
//! the vertex it names.
//!
//! Forecast: each service's own inputs extrapolated linearly over the last `trend_windows`
//! windows to `horizon_ms` ahead, composed through the graph.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use augur_operators::{AlertKind, Detection, Detector, WindowSnapshot};
use serde::{Deserialize, Serialize};

use super::assignment::{AssignmentSettings, Start};
use super::debugging::find_fault;
use super::features::{OWN, P90, Sample, sample, spectrum_index};
use super::graph::{GraphState, InferenceGraph};

/// Settings of the `fluxion` detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FluxionConfig {
    /// A graph checkpoint (JSON `GraphState`) to start from; empty: learn from the stream.
    /// Default empty.
    pub checkpoint: PathBuf,
    /// Windows collected before the first graph is trained. Default 120.
    pub min_train_windows: usize,
    /// Recent windows kept for refits and debugging. Default 600.
    pub history: usize,
    /// Windows after a deployment change used to refit the changed vertex. Default 15.
    pub adapt_samples: usize,
    /// Windows the input trend is fitted over. Default 5.
    pub trend_windows: usize,
    /// The forecast error's moving average at which graph debugging runs, as a multiple of
    /// its level after the last (re)fit. Default 2.
    pub error_growth: f64,
    /// Pearson r above which the debugging walk steps to a callee. Default 0.25.
    pub min_r: f64,
}

impl Default for FluxionConfig {
    fn default() -> Self {
        FluxionConfig {
            checkpoint: PathBuf::new(),
            min_train_windows: 120,
            history: 600,
            adapt_samples: 15,
            trend_windows: 5,
            error_growth: 2.0,
            min_r: 0.25,
        }
    }
}

pub struct Fluxion {
    config: FluxionConfig,
    horizon_ms: u64,
    graph: Option<InferenceGraph>,
    recent: VecDeque<Sample>,
    replicas: BTreeMap<String, f32>,
    /// Service → windows seen since its change.
    pending: BTreeMap<String, (usize, Start)>,
    error_avg: Option<f64>,
    error_base: Option<f64>,
    since_debug: usize,
}

impl Fluxion {
    /// Reads the checkpoint, if one is named.
    pub fn new(config: FluxionConfig, horizon_ms: u64) -> Result<Self, std::io::Error> {
        let graph = if config.checkpoint.as_os_str().is_empty() {
            None
        } else {
            let text = std::fs::read_to_string(&config.checkpoint)?;
            let state: GraphState = serde_json::from_str(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            Some(InferenceGraph::from_state(&state).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "malformed model in checkpoint",
                )
            })?)
        };
        Ok(Fluxion {
            config,
            horizon_ms,
            graph,
            recent: VecDeque::new(),
            replicas: BTreeMap::new(),
            pending: BTreeMap::new(),
            error_avg: None,
            error_base: None,
            since_debug: 0,
        })
    }

    pub fn graph(&self) -> Option<&InferenceGraph> {
        self.graph.as_ref()
    }

    /// The sample `steps` windows ahead: own inputs extrapolated along their recent trend.
    fn extrapolate(&self, steps: f32) -> Option<Sample> {
        let last = self.recent.back()?.clone();
        let n = self.config.trend_windows.min(self.recent.len());
        if n < 2 {
            return Some(last);
        }
        let first = &self.recent[self.recent.len() - n];
        let mut out = last.clone();
        for (name, s) in out.services.iter_mut() {
            let Some(old) = first.services.get(name) else {
                continue;
            };
            for j in 0..OWN {
                // Replicas are a knob, not a trend.
                if j == 1 {
                    continue;
                }
                let slope = (s.own[j] - old.own[j]) / (n - 1) as f32;
                s.own[j] = (s.own[j] + slope * steps).max(0.0);
            }
        }
        Some(out)
    }

    fn track_changes(&mut self, s: &Sample) {
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        for service in graph.sync_topology(s) {
            self.pending.insert(service, (0, Start::Fresh));
        }
        for (name, own) in &s.services {
            let r = own.own[1];
            if let Some(before) = self.replicas.insert(name.clone(), r)
                && before != r
            {
                self.pending.entry(name.clone()).or_insert((0, Start::Warm));
            }
        }
        let ready: Vec<(String, Start)> = self
            .pending
            .iter_mut()
            .filter_map(|(k, (n, start))| {
                *n += 1;
                (*n >= self.config.adapt_samples).then(|| (k.clone(), *start))
            })
            .collect();
        for (service, start) in ready {
            self.pending.remove(&service);
            let n = self.config.adapt_samples.min(self.recent.len());
            let recent: Vec<Sample> = self.recent.iter().rev().take(n).rev().cloned().collect();
            graph.fit_vertex(&service, &recent, start, false);
            tracing::info!("fluxion: refitted {service} on {n} windows after its change");
            self.error_base = None;
        }
    }

    fn track_error(&mut self, s: &Sample) {
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        let Some(observed) = s.e2e(&graph.entry) else {
            return;
        };
        let Some(predicted) = graph.predict(s) else {
            return;
        };
        let e = (predicted[P90] - observed[P90]).abs() as f64;
        let avg = self.error_avg.map_or(e, |a| 0.9 * a + 0.1 * e);
        self.error_avg = Some(avg);
        self.since_debug += 1;
        let base = *self.error_base.get_or_insert(avg);
        if self.since_debug >= 60 && avg > self.config.error_growth * base.max(0.1) {
            let recent: Vec<Sample> = self.recent.iter().rev().take(60).rev().cloned().collect();
            if let Some(d) = find_fault(graph, &recent, P90, self.config.min_r) {
                tracing::info!(
                    "fluxion: forecast error grew; retraining {} ({:?})",
                    d.service,
                    d.path
                );
                graph.fit_vertex(&d.service, &recent, Start::Warm, false);
            }
            self.since_debug = 0;
            self.error_base = None;
        }
    }
}

impl Detector for Fluxion {
    fn name(&self) -> &str {
        "fluxion"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        let s = sample(window);
        if s.services.is_empty() {
            return Vec::new();
        }
        self.recent.push_back(s.clone());
        while self.recent.len() > self.config.history.max(2) {
            self.recent.pop_front();
        }
        if self.graph.is_none() {
            let entry = self.recent.iter().rev().find_map(|s| s.entry.clone());
            if let Some((entry, _)) = entry
                && self.recent.len() >= self.config.min_train_windows
            {
                let all: Vec<Sample> = self.recent.iter().cloned().collect();
                self.graph = Some(InferenceGraph::fit(
                    &all,
                    &entry,
                    AssignmentSettings::default(),
                ));
                for (name, own) in &s.services {
                    self.replicas.insert(name.clone(), own.own[1]);
                }
            }
            return Vec::new();
        }
        self.track_changes(&s);
        self.track_error(&s);
        let steps = self.horizon_ms as f32 / window.window_ms.max(1) as f32;
        let (Some(graph), Some(ahead), Some((quantile, slo_ms))) =
            (self.graph.as_ref(), self.extrapolate(steps), s.slo)
        else {
            return Vec::new();
        };
        let Some(forecast) = graph.predict(&ahead) else {
            return Vec::new();
        };
        let q = spectrum_index(quantile);
        let value = forecast[q] as f64;
        if value <= slo_ms {
            return Vec::new();
        }
        // Confidence grows with the margin over the SLO, in units of the recent error.
        let scale = self.error_avg.unwrap_or(1.0).max(0.5);
        let probability = 1.0 / (1.0 + (-(value - slo_ms) / scale).exp());
        vec![Detection {
            kind: AlertKind::LatencyForecast,
            service: graph.entry.clone(),
            probability,
            horizon_ms: self.horizon_ms,
            culprits: Vec::new(),
            summary: format!(
                "p{:.0} forecast {value:.0} ms vs SLO {slo_ms:.0} ms",
                quantile * 100.0
            ),
        }]
    }
}

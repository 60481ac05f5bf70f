//! The `fluxion` detector: an inference graph learned online that forecasts the entry
//! point's end-to-end latency `horizon` ahead and alerts when the forecast exceeds the SLO.
//!
//! In: closed windows, in order. Out: `latency_forecast` detections ("p99 forecast 240 ms
//! vs SLO 200 ms"). State: recent samples; the graph (from the checkpoint `checkpoint`
//! names, else from the newest `fluxion-*` checkpoint in `models_dir` whose services cover
//! the stream's, once the entry point is known; else trained once `min_train_windows`
//! windows are in — then it keeps learning online either way); pending
//! deployment changes (a service whose replica count changed, or a new `service.version` —
//! a replacement, whose first refit drops the old models — both with their callers
//! refitted warm too, as their input now moves on its own; a new service or
//! call, whose changed vertex's callers are refitted warm too when, at its first refit,
//! its latency lies more than [`INPUT_SHIFT_SD`] of their training spread away; a service
//! gone from the dependency graph, whose callers are refitted) each
//! refitted — only those vertices — `adapt_samples` × 1, 2, 4, … windows after the change
//! ([`REFITS_PER_CHANGE`] times, each on every window since the change); the
//! forecast error's moving average, whose growth triggers graph debugging and a refit of
//! the vertex it names. A load shift — the entry's request rate over the last
//! `adapt_samples` windows averaging more than [`LOAD_SHIFT`] outside the range the graph
//! was trained on — refits every vertex (warm) on the windows since the last deployment
//! change: the services are the same, only their inputs moved where the models never saw.
//!
//! Forecast: each service's own inputs extrapolated linearly over the last `trend_windows`
//! windows to `horizon_ms` ahead, composed through the graph.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use augur_operators::{AlertKind, Detection, Detector, WindowSnapshot};
use serde::{Deserialize, Serialize};

use super::assignment::{AssignmentSettings, Start};
use super::board::GraphBoard;
use super::checkpoint::FluxionCheckpoint;
use super::debugging::find_fault;
use super::features::{OWN, P90, SPECTRUM, Sample, sample, spectrum_index};
use super::graph::InferenceGraph;

/// Settings of the `fluxion` detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FluxionConfig {
    /// A checkpoint file (`fluxion-<topology>-vN.json`) to start from; empty: look in
    /// `models_dir`. Default empty.
    pub checkpoint: PathBuf,
    /// Directory searched for the newest `fluxion-*-vN.json` whose services cover the
    /// stream's (same entry point); empty: never load one, learn from the stream. `augur
    /// train --model fluxion` writes here (creating it). When it doesn't exist, the
    /// checkpoints shipped inside the binary are used, extracted once into a cache
    /// directory ([`crate::shipped`]). Default `models/checkpoints` (relative to the
    /// working directory).
    pub models_dir: PathBuf,
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
            models_dir: PathBuf::from("models/checkpoints"),
            min_train_windows: 120,
            history: 600,
            adapt_samples: 15,
            trend_windows: 5,
            error_growth: 2.0,
            min_r: 0.25,
        }
    }
}

/// Refits of a changed vertex: `adapt_samples` × 1, 2, 4, … windows after the change,
/// each on every window since it, so the vertex first adapts from few samples and then
/// covers the load range the following windows show (the first refit sees only
/// `adapt_samples` windows of it). The eval's monolithic baseline is retrained from
/// scratch on the same doubling schedule, one step longer (15 … 480 windows).
pub const REFITS_PER_CHANGE: u32 = 5;

/// A changed service's vertex, waiting for its next refit.
#[derive(Clone, Copy, Debug)]
struct PendingRefit {
    /// Windows seen since the change.
    windows: usize,
    /// How the first refit starts (later ones start warm from it).
    start: Start,
    /// Whether the first refit drops the vertex's old models (a replacement: a new
    /// assignment, `GE.replace`); later refits add models beside it either way.
    replace: bool,
    /// Refits done.
    refits: u32,
    /// A new service or a new call (not a replica count or a version): at its first refit
    /// its callers' inputs are checked against the range they were fitted on.
    topology: bool,
}

impl PendingRefit {
    fn new(start: Start) -> Self {
        PendingRefit {
            windows: 0,
            start,
            replace: false,
            refits: 0,
            topology: false,
        }
    }

    /// A new version of the service: its models describe a service that is gone.
    fn replacement() -> Self {
        PendingRefit {
            replace: true,
            ..PendingRefit::new(Start::Warm)
        }
    }
}

/// A load shift: the recent mean request rate beyond the trained range by this fraction.
pub const LOAD_SHIFT: f32 = 0.1;

/// An input shift: a caller's input from a changed callee averaging this many of its
/// training standard deviations away (three: fixed, not tuned).
pub const INPUT_SHIFT_SD: f32 = 3.0;

/// What one window gave: the alerts, and what the evaluation scores.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub detections: Vec<Detection>,
    /// The end-to-end spectrum forecast for `horizon_ms` after this window's end (`None`
    /// before the graph is trained).
    pub forecast: Option<[f32; SPECTRUM]>,
    /// The entry's end-to-end spectrum observed in this window.
    pub observed: Option<[f32; SPECTRUM]>,
    /// The sample the forecast was made from (own inputs extrapolated `horizon_ms` ahead):
    /// the baseline is fed the same.
    pub ahead: Option<Sample>,
    /// Wall time spent (re)fitting models in this window, ms.
    pub fit_wall_ms: f64,
}

/// The graph of a checkpoint.
fn graph_of(c: &FluxionCheckpoint) -> Result<InferenceGraph, std::io::Error> {
    InferenceGraph::from_state(&c.graph).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("malformed model in checkpoint {}-v{}", c.name, c.version),
        )
    })
}

impl FluxionConfig {
    /// The checkpoint directory to read (see `models_dir`); `None` when empty.
    pub fn dir(&self) -> Result<Option<PathBuf>, crate::shipped::ShippedError> {
        if self.models_dir.as_os_str().is_empty() {
            Ok(None)
        } else {
            crate::shipped::checkpoint_dir(&self.models_dir).map(Some)
        }
    }
}

pub struct Fluxion {
    config: FluxionConfig,
    /// Checkpoint the graph started from (`name-vN`), if any.
    loaded: Option<String>,
    looked_for_checkpoint: bool,
    horizon_ms: u64,
    graph: Option<InferenceGraph>,
    recent: VecDeque<Sample>,
    replicas: BTreeMap<String, f32>,
    /// Each service's `service.version`, as last seen.
    versions: BTreeMap<String, String>,
    /// Services the dependency graph has listed (its `order`) since the start.
    listed: BTreeSet<String>,
    /// Services changed recently, with their refit schedule.
    pending: BTreeMap<String, PendingRefit>,
    error_avg: Option<f64>,
    error_base: Option<f64>,
    since_debug: usize,
    /// The entry's request rate range the graph was (re)fitted over.
    load_range: Option<(f32, f32)>,
    /// Windows since the last deployment change's refit.
    since_change: usize,
    /// Where the graph and the newest window are published for the what-if query, if any.
    board: Option<Arc<GraphBoard>>,
    /// Total vertex fits of the graph last published.
    published_fits: Option<u64>,
}

impl Fluxion {
    /// Reads the checkpoint, if one is named.
    pub fn new(config: FluxionConfig, horizon_ms: u64) -> Result<Self, std::io::Error> {
        let (graph, loaded) = if config.checkpoint.as_os_str().is_empty() {
            (None, None)
        } else {
            let c = FluxionCheckpoint::load(&config.checkpoint)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            (
                Some(graph_of(&c)?),
                Some(format!("{}-v{}", c.name, c.version)),
            )
        };
        Ok(Fluxion {
            config,
            looked_for_checkpoint: loaded.is_some(),
            loaded,
            horizon_ms,
            graph,
            recent: VecDeque::new(),
            replicas: BTreeMap::new(),
            versions: BTreeMap::new(),
            listed: BTreeSet::new(),
            pending: BTreeMap::new(),
            error_avg: None,
            error_base: None,
            since_debug: 0,
            load_range: None,
            since_change: 0,
            board: None,
            published_fits: None,
        })
    }

    /// Publishes the graph after every (re)fit, and every window's sample, on `board`.
    pub fn with_board(mut self, board: Arc<GraphBoard>) -> Self {
        self.board = Some(board);
        self
    }

    /// The graph (when it changed) and the window, to the board.
    fn publish(&mut self, s: &Sample) {
        let (Some(board), Some(graph)) = (&self.board, &self.graph) else {
            return;
        };
        let fits = graph.total_fits();
        if self.published_fits != Some(fits) {
            board.publish_graph(graph.state());
            self.published_fits = Some(fits);
        }
        board.publish_sample(s.clone());
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

    /// The checkpoint the graph started from (`name-vN`), if any.
    pub fn loaded(&self) -> Option<&str> {
        self.loaded.as_deref()
    }

    /// Once the entry is known: the newest matching checkpoint of `models_dir`, if any.
    fn load_matching(&mut self, entry: &str) {
        self.looked_for_checkpoint = true;
        let dir = match self.config.dir() {
            Ok(Some(dir)) => dir,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("fluxion: not looking for a checkpoint: {e}");
                return;
            }
        };
        let services: BTreeSet<String> = self
            .recent
            .iter()
            .flat_map(|s| s.services.keys().cloned())
            .collect();
        let Some(c) = FluxionCheckpoint::find(&dir, entry, &services) else {
            return;
        };
        match graph_of(&c) {
            Ok(graph) => {
                tracing::info!(
                    "fluxion: starting from checkpoint {}-v{} ({} services)",
                    c.name,
                    c.version,
                    c.services.len()
                );
                self.graph = Some(graph);
                self.loaded = Some(format!("{}-v{}", c.name, c.version));
            }
            Err(e) => tracing::warn!("fluxion: checkpoint {}-v{}: {e}", c.name, c.version),
        }
    }

    /// Whether a graph exists (loaded or trained).
    pub fn trained(&self) -> bool {
        self.graph.is_some()
    }

    fn track_changes(&mut self, s: &Sample) {
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        for service in graph.sync_topology(s) {
            self.pending.insert(
                service,
                PendingRefit {
                    topology: true,
                    ..PendingRefit::new(Start::Fresh)
                },
            );
        }
        for (name, own) in &s.services {
            let r = own.own[1];
            let mut changed = false;
            if let Some(before) = self.replicas.insert(name.clone(), r)
                && before != r
            {
                // A second change restarts the schedule: the windows before it are stale.
                let pending = match self.pending.get(name) {
                    Some(p) if p.refits == 0 => PendingRefit { windows: 0, ..*p },
                    Some(p) => PendingRefit::new(p.start),
                    None => PendingRefit::new(Start::Warm),
                };
                self.pending.insert(name.clone(), pending);
                changed = true;
            }
            if let Some(version) = &own.version
                && let Some(before) = self.versions.insert(name.clone(), version.clone())
                && before != *version
            {
                tracing::info!("fluxion: {name} {before} -> {version}: a new assignment for it");
                self.pending
                    .insert(name.clone(), PendingRefit::replacement());
                changed = true;
            }
            if changed {
                // Its callers read its latency, which now moves on its own (apart from the
                // load they learnt it with), often beyond the range their models were
                // fitted on: they adapt from a copy of their newest model.
                for caller in graph.callers_of(name) {
                    self.pending
                        .entry(caller)
                        .or_insert(PendingRefit::new(Start::Warm));
                }
            }
        }
        let first = self.config.adapt_samples.max(1);
        let mut ready = Vec::new();
        for (service, p) in self.pending.iter_mut() {
            p.windows += 1;
            if p.windows == first << p.refits {
                let first_refit = p.refits == 0;
                let start = if first_refit { p.start } else { Start::Warm };
                let delete = first_refit && p.replace;
                let check_callers = first_refit && p.topology;
                ready.push((service.clone(), start, delete, p.windows, check_callers));
                p.refits += 1;
            }
        }
        self.pending.retain(|_, p| p.refits < REFITS_PER_CHANGE);
        while let Some((service, start, delete, windows, check_callers)) = ready.pop() {
            let first_refit = windows == first;
            let n = windows.min(self.recent.len());
            let recent: Vec<Sample> = self.recent.iter().rev().take(n).rev().cloned().collect();
            if check_callers {
                // A caller fitted where this service's latency moved only with the load
                // extrapolates badly once it moves on its own, beyond that range: it adapts
                // too, warm, from now on the same schedule.
                for caller in graph.callers_of(&service) {
                    let shift = graph.input_shift(&caller, &service, &recent);
                    if self.pending.contains_key(&caller) || shift <= INPUT_SHIFT_SD {
                        continue;
                    }
                    tracing::info!(
                        "fluxion: {service}'s latency is {shift:.1} sd outside what {caller} was fitted on; {caller} refits"
                    );
                    self.pending.insert(
                        caller.clone(),
                        PendingRefit {
                            windows,
                            refits: 1,
                            ..PendingRefit::new(Start::Warm)
                        },
                    );
                    ready.push((caller, Start::Warm, false, windows, false));
                }
            }
            graph.fit_vertex(&service, &recent, start, delete);
            tracing::info!("fluxion: refitted {service} on {n} windows after its change");
            self.error_base = None;
            if first_refit {
                self.since_change = 0;
            }
        }
    }

    /// A service the dependency graph listed and no longer does (its calls retired) is
    /// removed: its vertex goes (`GE.remove`), and each caller is refitted from scratch on
    /// the windows after — its inputs changed. Services a checkpoint knows that the stream
    /// hasn't shown yet are not "gone": only a listed service can leave.
    fn track_removals(&mut self, window: &WindowSnapshot) {
        if window.order.is_empty() {
            return;
        }
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        let listed: BTreeSet<String> = window.order.iter().cloned().collect();
        let gone: Vec<String> = self
            .listed
            .difference(&listed)
            .filter(|s| **s != graph.entry && graph.vertex(s).is_some())
            .cloned()
            .collect();
        self.listed.extend(listed);
        for service in gone {
            let callers = graph.remove_service(&service);
            self.listed.remove(&service);
            self.pending.remove(&service);
            self.replicas.remove(&service);
            self.versions.remove(&service);
            tracing::info!(
                "fluxion: {service} left the dependency graph; its callers {callers:?} refit"
            );
            for caller in callers {
                self.pending.insert(caller, PendingRefit::new(Start::Fresh));
            }
        }
    }

    /// The entry's request rate in each of the last `n` windows.
    fn entry_rates(&self, n: usize) -> Vec<f32> {
        let Some(entry) = self.graph.as_ref().map(|g| g.entry.clone()) else {
            return Vec::new();
        };
        self.recent
            .iter()
            .rev()
            .take(n)
            .filter_map(|s| s.services.get(&entry).map(|o| o.own[0]))
            .collect()
    }

    /// Refits every vertex when the load left the range the graph was fitted over.
    fn track_load(&mut self) {
        self.since_change += 1;
        let n = self.config.adapt_samples.max(2);
        let recent = self.entry_rates(n);
        if recent.len() < n {
            return;
        }
        let lo = recent.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = recent.iter().copied().fold(0.0f32, f32::max);
        let Some((min, max)) = self.load_range else {
            // A graph from a checkpoint: its range is where the stream starts.
            self.load_range = Some((lo, hi));
            return;
        };
        let mean = recent.iter().sum::<f32>() / recent.len() as f32;
        if mean <= max * (1.0 + LOAD_SHIFT) && mean >= min * (1.0 - LOAD_SHIFT) {
            return;
        }
        let take = self
            .since_change
            .clamp(n, self.config.history.max(n))
            .min(self.recent.len());
        let window: Vec<Sample> = self.recent.iter().rev().take(take).rev().cloned().collect();
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        for service in graph.order() {
            graph.fit_vertex(&service, &window, Start::Warm, false);
        }
        tracing::info!(
            "fluxion: load {mean:.0}/s outside {min:.0}..{max:.0}/s; refitted every vertex on {take} windows"
        );
        self.load_range = Some((min.min(lo), max.max(hi)));
        self.error_base = None;
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
        self.step(window).detections
    }
}

impl Fluxion {
    /// One window: learn from it, forecast `horizon_ms` ahead, alert when the forecast
    /// exceeds the SLO.
    pub fn step(&mut self, window: &WindowSnapshot) -> Step {
        let s = sample(window);
        let mut out = Step::default();
        if s.services.is_empty() {
            return out;
        }
        let started = Instant::now();
        self.recent.push_back(s.clone());
        while self.recent.len() > self.config.history.max(2) {
            self.recent.pop_front();
        }
        if self.graph.is_none() && !self.looked_for_checkpoint {
            if let Some((entry, _)) = s.entry.clone() {
                self.load_matching(&entry);
                if self.graph.is_some() {
                    for (name, own) in &s.services {
                        self.replicas.insert(name.clone(), own.own[1]);
                    }
                }
            }
        }
        if self.graph.is_none() {
            let entry = self.recent.iter().rev().find_map(|s| s.entry.clone());
            if let Some((entry, _)) = entry
                && self.recent.len() >= self.config.min_train_windows
            {
                let all: Vec<Sample> = self.recent.iter().cloned().collect();
                let rates: Vec<f32> = all
                    .iter()
                    .filter_map(|s| s.services.get(&entry).map(|o| o.own[0]))
                    .collect();
                self.load_range = Some((
                    rates.iter().copied().fold(f32::INFINITY, f32::min),
                    rates.iter().copied().fold(0.0f32, f32::max),
                ));
                self.graph = Some(InferenceGraph::fit(
                    &all,
                    &entry,
                    AssignmentSettings::default(),
                ));
                for (name, own) in &s.services {
                    self.replicas.insert(name.clone(), own.own[1]);
                }
            }
            out.fit_wall_ms = started.elapsed().as_secs_f64() * 1e3;
            return out;
        }
        self.track_removals(window);
        self.track_changes(&s);
        self.track_load();
        self.track_error(&s);
        out.fit_wall_ms = started.elapsed().as_secs_f64() * 1e3;
        self.publish(&s);
        let steps = self.horizon_ms as f32 / window.window_ms.max(1) as f32;
        let (Some(graph), Some(ahead)) = (self.graph.as_ref(), self.extrapolate(steps)) else {
            return out;
        };
        out.observed = s.e2e(&graph.entry);
        let Some(forecast) = graph.predict(&ahead) else {
            return out;
        };
        out.forecast = Some(forecast);
        out.ahead = Some(ahead);
        let Some((quantile, slo_ms)) = s.slo else {
            return out;
        };
        let q = spectrum_index(quantile);
        let value = forecast[q] as f64;
        // For tuning the alert rule offline: every window's forecast beside what was observed.
        tracing::debug!(
            target: "augur_models::fluxion::forecast",
            window_end = window.window_end,
            forecast = value,
            observed = out.observed.map(|o| f64::from(o[q])),
            slo_ms,
            error_avg = self.error_avg,
        );
        if value <= slo_ms {
            return out;
        }
        // Confidence grows with the margin over the SLO, in units of the recent error.
        let scale = self.error_avg.unwrap_or(1.0).max(0.5);
        let probability = 1.0 / (1.0 + (-(value - slo_ms) / scale).exp());
        out.detections.push(Detection {
            kind: AlertKind::LatencyForecast,
            service: graph.entry.clone(),
            probability,
            horizon_ms: self.horizon_ms,
            culprits: Vec::new(),
            summary: format!(
                "p{:.0} forecast {value:.0} ms vs SLO {slo_ms:.0} ms",
                quantile * 100.0
            ),
        });
        out
    }
}

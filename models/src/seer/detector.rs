//! The `seer` detector: a trained Seer model behind the [`Detector`] trait.
//!
//! In: closed windows, in order. Out: a `qos_violation_predicted` detection when the
//! model's violation probability reaches the threshold, with services ranked by
//! P(initiates the violation). State: the last H feature matrices and each service's last
//! reported usage (carried into windows without a metric sample); a dedicated inference
//! thread that owns the libtorch model and is fed through a crossbeam channel, so the
//! model worker's thread only waits. `observe` waits for its window's result (the reply
//! comes back on a per-request channel); `observe_batch` sends a backlog's requests
//! first, and requests that queue up while the thread is busy are run as one batch.
//!
//! Hot swap: every `check_every_windows` windows the detector looks for a newer checkpoint
//! version in the models directory; a loader thread reads it and hands it to the inference
//! thread, which keeps serving the old model until then.
//!
//! Topology change: when a window's dependency graph names services the model doesn't
//! know, the inference thread rebuilds the model for the new service set at once, reusing
//! weights by service identity (`remap.rs`), and a background thread fine-tunes a copy on
//! the recent windows (their QoS verdicts give the labels; culprits are unknown at run time)
//! — or, when more than `retrain_fraction` of the services changed, trains a new model from
//! scratch — and swaps it in when done. Services that disappear are fed as zeros, exactly
//! as services missing from a window were in training. A change seen with few recent
//! windows (a job that starts on a topology the checkpoint never saw has none) gets a
//! second fine-tune once `refit_after_windows` windows of the new topology are in.
//!
//! Shutdown: dropping the detector sets a stop flag that fine-tunes check between
//! optimizer steps, then joins the checkpoint loaders and the inference thread, which
//! joins its fine-tunes before it ends. No thread of the detector is left inside
//! libtorch when the process tears libtorch down.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use augur_operators::{AlertKind, Culprit, Detection, Detector, WindowSnapshot};
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::checkpoint::{CheckpointError, latest_version};
use crate::device::{DeviceChoice, resolve};
use crate::seer::SeerModel;
use crate::seer::dataset::{Dataset, Row};
use crate::seer::features::UsageFill;
use crate::seer::labels::label_windows;
use crate::seer::remap::{change_fraction, remap};
use crate::seer::train::{TrainSettings, fit_until, train_until};
use crate::shipped::{ShippedError, checkpoint_dir};

/// Settings of the `seer` detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeerConfig {
    /// Directory of versioned checkpoints (`seer-vN.safetensors` + `seer-vN.json`), read
    /// at start and for hot swaps; `augur train --model seer` writes here (creating it).
    /// Default `models/checkpoints` (relative to the working directory). When it doesn't
    /// exist, the checkpoints shipped inside the binary are used, extracted once into a
    /// cache directory ([`crate::shipped`]).
    pub models_dir: PathBuf,
    /// `auto` (CUDA when available, else CPU), `cpu` or `cuda:N`. Default `auto`.
    pub device: DeviceChoice,
    /// Violation probability that fires; 0 uses the checkpoint's (chosen on validation
    /// data when it was trained). Default 0.
    pub threshold: f64,
    /// Look for a newer checkpoint every this many windows (0: never). Default 30.
    pub check_every_windows: u64,
    /// Recent windows kept for fine-tuning after a topology change. Default 300.
    pub recent_windows: usize,
    /// Epochs of background fine-tuning after a topology change. Default 5.
    pub fine_tune_epochs: usize,
    /// Share of services added or removed above which the model is retrained from scratch
    /// instead of fine-tuned. Default 0.5.
    pub retrain_fraction: f64,
    /// After a topology change, fine-tune again once this many windows of the new
    /// topology have been seen, when fewer than that were at hand at the change
    /// (0: never). Default 300.
    pub refit_after_windows: usize,
}

impl Default for SeerConfig {
    fn default() -> Self {
        SeerConfig {
            models_dir: PathBuf::from("models/checkpoints"),
            device: DeviceChoice::Auto,
            threshold: 0.0,
            check_every_windows: 30,
            recent_windows: 300,
            fine_tune_epochs: 5,
            retrain_fraction: 0.5,
            refit_after_windows: 300,
        }
    }
}

impl SeerConfig {
    /// The checkpoint directory to read (see `models_dir`).
    pub fn dir(&self) -> Result<PathBuf, ShippedError> {
        checkpoint_dir(&self.models_dir)
    }
}

/// The model's answer for one window.
#[derive(Clone, Debug)]
struct Prediction {
    window_end: u64,
    violation: f64,
    /// (service, P(initiates | violation)), model order, for the services in the window.
    culprits: Vec<(String, f64)>,
    threshold: f64,
    version: u64,
}

enum Request {
    Predict {
        window_end: u64,
        /// H raw matrices in the order of `services`.
        history: Vec<Vec<f32>>,
        services: Vec<String>,
        /// Services that reported in the window: only they can be named culprits (a model
        /// trained on several topologies knows services this one doesn't have).
        present: Vec<String>,
        reply: Sender<Prediction>,
    },
    /// A model to serve from now on (hot swap or finished fine-tuning).
    Swap(Box<SeerModel>),
    /// The service set changed: rebuild now, fine-tune in the background on these windows.
    Topology {
        services: Vec<String>,
        recent: Vec<WindowSnapshot>,
    },
    /// Fine-tune the served model again on these windows of the current topology.
    Refit { recent: Vec<WindowSnapshot> },
}

pub struct Seer {
    config: SeerConfig,
    /// The checkpoint directory the served checkpoint was found in.
    dir: PathBuf,
    horizon_ms: u64,
    version: String,
    /// Services of the model being served (the inference thread's view, mirrored).
    services: Vec<String>,
    history: usize,
    /// The window length the checkpoint was trained on, ms (a mismatch is logged once).
    trained_window_ms: u64,
    warned_window: bool,
    windows: VecDeque<Vec<f32>>,
    /// Last reported usage per service (carried into windows without a metric sample);
    /// computes the checkpoint's feature columns.
    fill: UsageFill,
    /// The served checkpoint's features (a newer one with other features isn't swapped in).
    features: Vec<String>,
    recent: VecDeque<WindowSnapshot>,
    seen: u64,
    /// `seen` at which to ask for a second fine-tune after a topology change.
    refit_at: Option<u64>,
    /// Second fine-tunes asked for so far.
    refits: u64,
    loaded_version: u64,
    thread: Option<(Sender<Request>, JoinHandle<()>)>,
    /// Checkpoint loaders of hot swaps (joined on drop).
    loaders: Vec<JoinHandle<()>>,
    /// Set on drop: fine-tunes in flight stop at their next optimizer step.
    stop: Arc<AtomicBool>,
    /// Background threads (loaders, fine-tunes) running now.
    live: Arc<AtomicUsize>,
}

/// Counts a background thread as running while it lives (also when it panics).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(live: &Arc<AtomicUsize>) -> Running {
        live.fetch_add(1, Ordering::SeqCst);
        Running(Arc::clone(live))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Seer {
    /// Checks that a checkpoint exists; the model loads on the first window, on the
    /// inference thread.
    pub fn new(config: SeerConfig, horizon_ms: u64) -> Result<Self, CheckpointError> {
        let dir = config.dir()?;
        let version = latest_version(&dir, "seer").ok_or_else(|| CheckpointError::Missing {
            model: "seer".into(),
            dir: dir.clone(),
        })?;
        let (_, json) = crate::checkpoint::paths(&dir, "seer", version);
        let text = std::fs::read_to_string(&json).map_err(|source| CheckpointError::Io {
            path: json.clone(),
            source,
        })?;
        let layout: crate::seer::layout::Layout =
            serde_json::from_str(&text).map_err(|source| CheckpointError::Json {
                path: json.clone(),
                source,
            })?;
        let fill = UsageFill::for_features(&layout.features)
            .map_err(|source| CheckpointError::Features { path: json, source })?;
        Ok(Seer {
            config,
            dir,
            horizon_ms,
            version: version.to_string(),
            features: layout.features,
            services: layout.services,
            history: layout.hyper.history,
            trained_window_ms: layout.window_ms,
            warned_window: false,
            windows: VecDeque::new(),
            fill,
            recent: VecDeque::new(),
            seen: 0,
            refit_at: None,
            refits: 0,
            loaded_version: version,
            thread: None,
            loaders: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Second fine-tunes after a topology change asked for so far (`refit_after_windows`).
    pub fn refits(&self) -> u64 {
        self.refits
    }

    fn sender(&mut self) -> Option<Sender<Request>> {
        if self.thread.is_none() {
            let device = match resolve(self.config.device) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("seer: {e}; using the CPU");
                    Device::Cpu
                }
            };
            tracing::info!(
                "seer: inference on {device:?} (device = \"{}\")",
                self.config.device
            );
            let model = match SeerModel::load(&self.dir, "seer", self.loaded_version, device) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!("seer: cannot load the checkpoint: {e}");
                    return None;
                }
            };
            let (tx, rx) = crossbeam_channel::unbounded();
            let config = self.config.clone();
            let background = Background {
                stop: Arc::clone(&self.stop),
                live: Arc::clone(&self.live),
                fine_tunes: Vec::new(),
            };
            let handle = std::thread::Builder::new()
                .name("seer-inference".into())
                .spawn(move || inference_loop(model, rx, config, background))
                .ok()?;
            self.thread = Some((tx, handle));
        }
        self.thread.as_ref().map(|(tx, _)| tx.clone())
    }

    fn maybe_hot_swap(&mut self, tx: &Sender<Request>) {
        let every = self.config.check_every_windows;
        if every == 0 || self.seen % every != 0 {
            return;
        }
        let dir = match self.config.dir() {
            Ok(dir) => dir,
            Err(e) => {
                tracing::warn!("seer: not looking for a newer checkpoint: {e}");
                return;
            }
        };
        let Some(newest) = latest_version(&dir, "seer") else {
            return;
        };
        if newest <= self.loaded_version {
            return;
        }
        self.loaded_version = newest;
        let tx = tx.clone();
        let device = resolve(self.config.device).unwrap_or(Device::Cpu);
        let features = self.features.clone();
        let running = Running::start(&self.live);
        self.loaders.retain(|h| !h.is_finished());
        // Load off the worker's thread; the old model serves until the new one arrives.
        let spawned = std::thread::Builder::new()
            .name("seer-loader".into())
            .spawn(move || {
                let _running = running;
                match SeerModel::load(&dir, "seer", newest, device) {
                    Ok(model) if model.layout.features != features => tracing::warn!(
                        "seer: not hot-swapping to v{newest}: its features {:?} differ from the \
                         served model's {features:?} (restart the job to use it)",
                        model.layout.features
                    ),
                    Ok(model) => {
                        tracing::info!("seer: hot-swapping to checkpoint v{newest}");
                        let _ = tx.send(Request::Swap(Box::new(model)));
                    }
                    Err(e) => tracing::warn!("seer: cannot load v{newest}: {e}"),
                }
            });
        match spawned {
            Ok(handle) => self.loaders.push(handle),
            Err(e) => tracing::error!("seer: cannot start loading v{newest}: {e}"),
        }
    }
}

/// The inference thread's fine-tunes: the detector's stop flag and live-thread count, and
/// the fine-tune threads started so far (joined before the inference thread ends).
struct Background {
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    fine_tunes: Vec<JoinHandle<()>>,
}

impl Background {
    /// Stops the fine-tunes in flight at their next optimizer step and waits for them.
    fn join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for handle in self.fine_tunes.drain(..) {
            if handle.join().is_err() {
                tracing::error!("seer: a background fine-tune panicked");
            }
        }
    }
}

/// The inference thread: serves requests until the detector hangs up. Models fine-tuned
/// in the background come back on their own channel, so the thread ends with its detector,
/// after stopping and joining the fine-tunes still running.
fn inference_loop(
    mut model: SeerModel,
    rx: Receiver<Request>,
    config: SeerConfig,
    mut background: Background,
) {
    let (back, swaps) = crossbeam_channel::unbounded::<SeerModel>();
    // The service set after the last topology change, if any.
    let mut topology: Option<Vec<String>> = None;
    while let Ok(first) = rx.recv() {
        if let Some(new) = swaps.try_iter().last() {
            // A checkpoint hot-swapped in meanwhile is newer: keep it.
            if new.layout.version >= model.layout.version {
                tracing::info!("seer: serving the model retrained for the new topology");
                model = new;
            }
        }
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut predicts = Vec::new();
        for request in batch {
            match request {
                Request::Swap(new) => {
                    model = match &topology {
                        // A checkpoint that predates the topology change: rebuild it too.
                        Some(services)
                            if services.iter().any(|s| !new.layout.services.contains(s)) =>
                        {
                            remap(&new, services)
                        }
                        _ => *new,
                    };
                }
                Request::Topology { services, recent } => {
                    topology = Some(services.clone());
                    let fraction = change_fraction(&model.layout.services, &services);
                    tracing::info!(
                        "seer: topology changed ({:.0} % of services); serving the remapped model, {} in the background",
                        fraction * 100.0,
                        if fraction > config.retrain_fraction {
                            "retraining from scratch"
                        } else {
                            "fine-tuning"
                        }
                    );
                    model = remap(&model, &services);
                    retrain_in_background(
                        &model,
                        recent,
                        &config,
                        fraction,
                        &back,
                        &mut background,
                    );
                }
                Request::Refit { recent } => {
                    tracing::info!(
                        "seer: fine-tuning again on {} windows of the new topology",
                        recent.len()
                    );
                    // Fine-tune, never from scratch: run-time windows have no culprits, and
                    // the shared culprit head is what knows them.
                    retrain_in_background(&model, recent, &config, 0.0, &back, &mut background);
                }
                Request::Predict { .. } => predicts.push(request),
            }
        }
        if predicts.is_empty() {
            continue;
        }
        let mut values = Vec::new();
        let mut replies = Vec::new();
        for request in predicts {
            if let Request::Predict {
                window_end,
                history,
                services,
                present,
                reply,
            } = request
            {
                let f = model.layout.features.len();
                for m in history {
                    // Re-index from the detector's service order to the model's.
                    let mut x = vec![0.0f32; model.layout.services.len() * f];
                    for (i, s) in model.layout.services.iter().enumerate() {
                        if let Some(j) = services.iter().position(|o| o == s) {
                            x[i * f..(i + 1) * f].copy_from_slice(&m[j * f..(j + 1) * f]);
                        }
                    }
                    model.standardize(&mut x);
                    values.extend_from_slice(&x);
                }
                replies.push((window_end, present, reply));
            }
        }
        let out = model.predict(&values, replies.len());
        let threshold = if config.threshold > 0.0 {
            config.threshold
        } else {
            model.layout.threshold
        };
        for ((window_end, present, reply), (violation, culprit)) in replies.into_iter().zip(out) {
            let _ = reply.send(Prediction {
                window_end,
                violation,
                culprits: model
                    .layout
                    .services
                    .iter()
                    .cloned()
                    .zip(culprit)
                    .filter(|(s, _)| present.contains(s))
                    .collect(),
                threshold,
                version: model.layout.version,
            });
        }
    }
    background.join();
}

/// Retrains a copy of `model` on `recent` ([`retrain`]) on a thread of its own and sends
/// the result `back`, for the inference thread to swap in; the model keeps serving meanwhile.
/// The thread is kept in `background`, which stops and joins it at shutdown.
fn retrain_in_background(
    model: &SeerModel,
    recent: Vec<WindowSnapshot>,
    config: &SeerConfig,
    fraction: f64,
    back: &Sender<SeerModel>,
    background: &mut Background,
) {
    let copy = remap(model, &model.layout.services);
    let (back, config) = (back.clone(), config.clone());
    let stop = Arc::clone(&background.stop);
    let running = Running::start(&background.live);
    background.fine_tunes.retain(|h| !h.is_finished());
    let spawned = std::thread::Builder::new()
        .name("seer-fine-tune".into())
        .spawn(move || {
            let _running = running;
            let new = retrain(copy, &recent, &config, fraction, &stop);
            if !stop.load(Ordering::SeqCst) {
                let _ = back.send(new);
            }
        });
    match spawned {
        Ok(handle) => background.fine_tunes.push(handle),
        Err(e) => tracing::error!("seer: cannot start a background fine-tune: {e}"),
    }
}

/// Fine-tunes (or, for a large change, retrains) a model for a new service set on recent
/// windows labelled by their QoS verdicts.
fn retrain(
    model: SeerModel,
    recent: &[WindowSnapshot],
    config: &SeerConfig,
    fraction: f64,
    stop: &AtomicBool,
) -> SeerModel {
    tch::set_num_threads(1);
    let services = model.layout.services.clone();
    let window_ms = recent.first().map_or(1000, |w| w.window_ms.max(1));
    let verdicts: Vec<(u64, bool)> = recent
        .iter()
        .map(|w| (w.window_end, w.violated()))
        .collect();
    let labels = label_windows(&verdicts, &[], window_ms, model.layout.horizon_ms, 0);
    let Ok(mut fill) = UsageFill::for_features(&model.layout.features) else {
        // The served model's features were checked when it loaded.
        return model;
    };
    let ds = Dataset {
        services: services.clone(),
        features: model.layout.features.clone(),
        window_ms,
        horizon_ms: model.layout.horizon_ms,
        rows: recent
            .iter()
            .zip(labels)
            .map(|(w, l)| Row {
                window_end: w.window_end,
                violated: w.violated(),
                positive: l.positive,
                culprit: None,
                x: fill.matrix(w, &services),
            })
            .collect(),
    };
    let settings = TrainSettings {
        epochs: config.fine_tune_epochs,
        hyper: model.layout.hyper.clone(),
        ..TrainSettings::default()
    };
    if fraction > config.retrain_fraction {
        let layout = model.layout.clone();
        let device = model.device();
        train_until(
            std::slice::from_ref(&ds),
            layout,
            &settings,
            device,
            stop,
            |_| {},
        )
    } else {
        let mut model = model;
        fit_until(
            &mut model,
            std::slice::from_ref(&ds),
            &settings,
            stop,
            |_| {},
        );
        model
    }
}

impl Detector for Seer {
    fn name(&self) -> &str {
        "seer"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        let pending = self.submit(window);
        self.answer(pending)
    }

    /// Sends every window's request before waiting for any answer, so the inference
    /// thread runs them as one batch.
    fn observe_batch(&mut self, windows: &[WindowSnapshot]) -> Vec<Vec<Detection>> {
        let pending: Vec<_> = windows.iter().map(|w| self.submit(w)).collect();
        pending.into_iter().map(|p| self.answer(p)).collect()
    }
}

impl Seer {
    /// Updates the history with `window` and asks the inference thread for a prediction
    /// (none before H windows, or for a window without services).
    fn submit(&mut self, window: &WindowSnapshot) -> Option<(u64, Receiver<Prediction>)> {
        let tx = self.sender()?;
        self.seen += 1;
        if window.window_ms != self.trained_window_ms && !self.warned_window {
            self.warned_window = true;
            tracing::warn!(
                "seer: checkpoint v{} was trained on {} ms windows but the job's are {} ms \
                 (set [window] length_ms to match); predictions will be off",
                self.loaded_version,
                self.trained_window_ms,
                window.window_ms
            );
        }
        self.maybe_hot_swap(&tx);
        if self.recent.len() == self.config.recent_windows.max(1) {
            self.recent.pop_front();
        }
        self.recent.push_back(window.clone());
        let new: Vec<String> = window
            .order
            .iter()
            .filter(|s| !self.services.contains(s))
            .cloned()
            .collect();
        if !new.is_empty() {
            // New services go where the dependency graph puts them (back end first):
            // the graph's order, then the model's services it no longer names.
            let mut services = window.order.clone();
            services.extend(
                self.services
                    .iter()
                    .filter(|s| !window.order.contains(s))
                    .cloned(),
            );
            let _ = tx.send(Request::Topology {
                services: services.clone(),
                recent: self.recent.iter().cloned().collect(),
            });
            self.services = services;
            let wanted = self.config.refit_after_windows;
            self.refit_at =
                (wanted > 0 && self.recent.len() < wanted).then_some(self.seen + wanted as u64);
        } else if self.refit_at.is_some_and(|at| self.seen >= at) {
            self.refit_at = None;
            self.refits += 1;
            let _ = tx.send(Request::Refit {
                recent: self.recent.iter().cloned().collect(),
            });
        }
        if self.windows.len() == self.history {
            self.windows.pop_front();
        }
        let matrix = self.fill.matrix(window, &self.services);
        self.windows.push_back(matrix);
        // Histories from before a topology change have fewer columns: pad them.
        let width = self.services.len() * self.fill.width();
        for m in self.windows.iter_mut() {
            m.resize(width, 0.0);
        }
        if self.windows.len() < self.history || window.services.is_empty() {
            return None;
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        tx.send(Request::Predict {
            window_end: window.window_end,
            history: self.windows.iter().cloned().collect(),
            services: self.services.clone(),
            present: self.present(),
            reply,
        })
        .ok()?;
        Some((window.window_end, answer))
    }

    /// The services seen in any window of the history (a service of a quiet application
    /// has windows without a request; one the history never shows is never named).
    fn present(&self) -> Vec<String> {
        let seen = crate::seer::train::history_presence(
            self.windows.iter().map(Vec::as_slice),
            self.fill.width(),
        );
        self.services
            .iter()
            .zip(seen)
            .filter(|(_, seen)| *seen)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Waits for a submitted window's prediction and turns it into detections.
    fn answer(&mut self, pending: Option<(u64, Receiver<Prediction>)>) -> Vec<Detection> {
        let Some((window_end, p)) =
            pending.and_then(|(end, answer)| Some((end, answer.recv().ok()?)))
        else {
            return Vec::new();
        };
        debug_assert_eq!(p.window_end, window_end);
        self.version = p.version.to_string();
        if p.violation < p.threshold {
            return Vec::new();
        }
        let mut ranked = p.culprits;
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top = ranked.first().map(|c| c.0.clone()).unwrap_or_default();
        vec![Detection {
            kind: AlertKind::QosViolationPredicted,
            service: top.clone(),
            probability: p.violation,
            horizon_ms: self.horizon_ms,
            culprits: ranked
                .iter()
                .take(5)
                .map(|(service, c)| Culprit {
                    service: service.clone(),
                    score: c * p.violation,
                    resource: None,
                    operation: None,
                })
                .collect(),
            summary: format!(
                "{top}: QoS violation predicted within {} ms (p = {:.2})",
                self.horizon_ms, p.violation
            ),
        }]
    }
}

impl Drop for Seer {
    /// Stops the fine-tunes in flight and joins every thread of the detector: the loaders
    /// first (they hold senders of the inference thread's channel), then the inference
    /// thread, which ends once its channel has no sender and joins its fine-tunes.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take();
        let tx_dropped = thread.map(|(tx, handle)| {
            drop(tx);
            handle
        });
        for loader in self.loaders.drain(..) {
            if loader.join().is_err() {
                tracing::error!("seer: a checkpoint loader panicked");
            }
        }
        if let Some(handle) = tx_dropped {
            if handle.join().is_err() {
                tracing::error!("seer: the inference thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::device::DeviceChoice;
    use crate::seer::features::{FEATURES, N_FEATURES};
    use crate::seer::layout::{Layout, SeerHyper};
    use augur_operators::{QosVerdict, ServiceFeatures};

    fn snapshot(t: u64, services: &[&str], violated: bool) -> WindowSnapshot {
        WindowSnapshot {
            window_end: t * 1000,
            window_ms: 1000,
            services: services
                .iter()
                .map(|s| ServiceFeatures {
                    window_end: t * 1000,
                    service: s.to_string(),
                    requests: 100,
                    latency_ms: [5.0, 6.0, 8.0, 9.0, 12.0],
                    outstanding: if violated { 30.0 } else { 1.0 },
                    replicas: 1,
                    usage: [[0.1; 4]; 5],
                    ..Default::default()
                })
                .collect(),
            edges: Vec::new(),
            qos: vec![QosVerdict {
                window_end: t * 1000,
                entry: services.last().map_or("a", |s| s).to_string(),
                requests: 100,
                errors: 0,
                latency_ms: [0.0; 5],
                quantile: 0.99,
                slo_ms: 100.0,
                measured_ms: if violated { 200.0 } else { 50.0 },
                violated,
            }],
            order: services.iter().map(|s| s.to_string()).collect(),
            topology_changed: false,
            logs: Vec::new(),
        }
    }

    /// A one-epoch checkpoint of services `a`, `b`, `c` in `dir`.
    fn checkpoint(dir: &Path) {
        let services: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let rows = (0..40u64)
            .map(|t| Row {
                window_end: (t + 1) * 1000,
                violated: t % 5 == 0,
                positive: t % 5 == 0,
                culprit: (t % 5 == 0).then_some((t % 3) as usize),
                x: (0..services.len() * N_FEATURES)
                    .map(|i| ((i as u64 * 7 + t) % 11) as f32 / 11.0)
                    .collect(),
            })
            .collect();
        let ds = Dataset {
            services: services.clone(),
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            window_ms: 1000,
            horizon_ms: 1000,
            rows,
        };
        let hyper = SeerHyper {
            history: 2,
            hidden: 8,
            ..SeerHyper::default()
        };
        let layout = Layout {
            model: "seer".into(),
            version: 1,
            services,
            features: ds.features.clone(),
            hyper: hyper.clone(),
            mean: Vec::new(),
            std: Vec::new(),
            threshold: 0.5,
            window_ms: 1000,
            horizon_ms: 1000,
            provenance: "test".into(),
        };
        let settings = TrainSettings {
            epochs: 1,
            hyper,
            ..TrainSettings::default()
        };
        let model = crate::seer::train::train(&[ds], layout, &settings, Device::Cpu, |_| {});
        model.save(dir).expect("the checkpoint is written");
    }

    /// A detector dropped while it fine-tunes for a new topology stops the fine-tune and
    /// joins it (and the inference thread) before `drop` returns: nothing of it is left
    /// running inside libtorch when the process exits.
    #[test]
    fn drop_stops_and_joins_a_fine_tune_in_flight() {
        let _torch = crate::torch_test_lock();
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().expect("a temp dir");
        checkpoint(dir.path());
        let config = SeerConfig {
            models_dir: dir.path().to_path_buf(),
            device: DeviceChoice::Cpu,
            check_every_windows: 0,
            recent_windows: 200,
            // Far longer than the test: only the stop flag ends it.
            fine_tune_epochs: 1_000_000,
            refit_after_windows: 0,
            ..SeerConfig::default()
        };
        let mut seer = Seer::new(config, 1000).expect("the checkpoint loads");
        let live = Arc::clone(&seer.live);
        for t in 1..=100 {
            seer.observe(&snapshot(t, &["a", "b", "c"], t % 10 == 0));
        }
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "nothing runs before the change"
        );
        // A new service: the inference thread starts a fine-tune on the recent windows.
        seer.observe(&snapshot(101, &["new", "a", "b", "c"], false));
        let asked = std::time::Instant::now();
        while live.load(Ordering::SeqCst) == 0 && asked.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(live.load(Ordering::SeqCst), 1, "no fine-tune started");
        // Let it get into its epochs.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let dropping = std::time::Instant::now();
        drop(seer);
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "a background thread outlived the detector"
        );
        assert!(
            dropping.elapsed().as_secs() < 10,
            "drop took {:?}: the fine-tune did not stop promptly",
            dropping.elapsed()
        );
    }
}

//! Training Sage's GVAE on unlabelled windows.
//!
//! In: window snapshots of replays (never fault labels: Sage is unsupervised; the windows'
//! own QoS verdicts only pick the "normal" values and which windows to oversample).
//! Out: a trained [`SageModel`]. State: none between calls.
//!
//! - The CBN comes from every RPC edge seen in the windows and the dependency graph's
//!   longest order.
//! - Features are standardized with statistics of these windows; normal values are the
//!   medians over windows that met QoS (both stored in the checkpoint).
//! - Windows that violate QoS are rare; they are oversampled up to `oversample_to` of the
//!   draws, so the model learns to reproduce violating latencies too (Sage §4.2).
//! - [`fit`] trains a subset of units and channels: everything for a new model, only the
//!   changed services and their ancestors after a topology change ([`transfer`] copies
//!   the weights of unchanged parts).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use augur_operators::{Resource, WindowSnapshot};
use tch::nn::OptimizerConfig;
use tch::{Device, Tensor, nn};
use thiserror::Error;

use super::cbn::{Cbn, Overlaps};
use super::features::{Normalizer, Sample, mask_resources, raw_blocks};
use super::gvae::GvaeHyper;
use super::model::{SageLayout, SageModel, X_RESOURCES};

/// Training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SageTrainSettings {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: i64,
    /// Share of draws that are violating windows (when there are any).
    pub oversample_to: f64,
    /// Resources whose usage goes into `X` (a new model's layout).
    pub x_resources: Vec<Resource>,
}

impl Default for SageTrainSettings {
    fn default() -> Self {
        SageTrainSettings {
            epochs: 40,
            batch: 64,
            learning_rate: 3e-3,
            seed: 1,
            oversample_to: 0.3,
            x_resources: X_RESOURCES.to_vec(),
        }
    }
}

/// Windows that carry an application's traffic (the end of a replay retires edges in
/// empty snapshots).
fn useful(w: &WindowSnapshot) -> bool {
    !w.services.is_empty() && !w.edges.is_empty()
}

/// Why a set of windows can't train a model.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum TrainDataError {
    #[error(
        "none of the {windows} windows has RPC calls between services: the input has no spans \
         (metrics alone don't show the call graph). Sage trains on traces and metrics: give \
         input with spans (traces.otlp.jsonl beside metrics.otlp.jsonl), at least {min} windows \
         with requests and RPC calls ({min_s} s of traffic with {window_ms} ms windows)"
    )]
    NoSpans {
        windows: usize,
        min: usize,
        min_s: u64,
        window_ms: u64,
    },
    #[error(
        "only {useful} of the {windows} windows have requests and RPC calls; training needs at \
         least {min} ({min_s} s of traffic with {window_ms} ms windows): one batch of windows \
         (fewer never make a full batch, and batch normalisation would see only those). Record \
         or simulate longer"
    )]
    TooFew {
        useful: usize,
        windows: usize,
        min: usize,
        min_s: u64,
        window_ms: u64,
    },
}

/// The least number of windows with requests and RPC calls that trains a model: one
/// batch of `settings.batch`. [`fit`] draws every epoch in batches of that many windows
/// and skips a batch of fewer than 2 (batch normalisation); with fewer than one batch,
/// each epoch is a single short step on the statistics of those few windows, and below
/// 2 nothing is trained at all (an empty or untrained model).
pub fn min_windows(settings: &SageTrainSettings) -> usize {
    settings.batch.max(2)
}

/// The windows of `windows` that train a model, or why there are too few.
pub fn check_windows(
    windows: &[WindowSnapshot],
    settings: &SageTrainSettings,
) -> Result<usize, TrainDataError> {
    let min = min_windows(settings);
    let useful_windows = windows.iter().filter(|w| useful(w)).count();
    let window_ms = windows.first().map_or(1000, |w| w.window_ms.max(1));
    let min_s = (min as u64 * window_ms).div_ceil(1000);
    let traced = windows.iter().any(|w| !w.edges.is_empty());
    if !traced {
        return Err(TrainDataError::NoSpans {
            windows: windows.len(),
            min,
            min_s,
            window_ms,
        });
    }
    if useful_windows < min {
        return Err(TrainDataError::TooFew {
            useful: useful_windows,
            windows: windows.len(),
            min,
            min_s,
            window_ms,
        });
    }
    Ok(useful_windows)
}

/// The CBN of a set of windows: all RPC edges seen, the longest service order, parallel
/// calls marked.
pub fn cbn_of(windows: &[WindowSnapshot]) -> Cbn {
    // Every edge with calls, with its calls and overlaps summed (its keys, sorted: the edges).
    let mut overlaps = Overlaps::new();
    let mut order: Vec<String> = Vec::new();
    for w in windows {
        for e in &w.edges {
            if e.calls > 0 {
                let (calls, with) = overlaps
                    .entry((e.caller.clone(), e.callee.clone()))
                    .or_default();
                *calls += e.calls;
                for (other, n) in &e.parallel {
                    *with.entry(other.clone()).or_default() += n;
                }
            }
        }
        if w.order.len() > order.len() {
            order = w.order.clone();
        }
    }
    let edges: Vec<(String, String)> = overlaps.keys().cloned().collect();
    let mut cbn = Cbn::build(&edges, &order);
    cbn.mark_parallel(&overlaps);
    cbn
}

/// Layout (untrained) and standardized samples of some windows.
pub fn prepare(
    windows: &[WindowSnapshot],
    name: &str,
    hyper: GvaeHyper,
    x_resources: &[Resource],
    provenance: String,
) -> (SageLayout, Vec<Sample>, Vec<bool>) {
    let windows: Vec<&WindowSnapshot> = windows.iter().filter(|w| useful(w)).collect();
    let owned: Vec<WindowSnapshot> = windows.iter().map(|w| (*w).clone()).collect();
    let cbn = cbn_of(&owned);
    let raw: Vec<BTreeMap<String, Vec<f32>>> = windows
        .iter()
        .map(|w| {
            let mut raw = raw_blocks(w);
            mask_resources(&mut raw, x_resources);
            raw
        })
        .collect();
    let violated: Vec<bool> = windows.iter().map(|w| w.violated()).collect();
    let met: Vec<bool> = violated.iter().map(|v| !v).collect();
    let norm = Normalizer::fit(&raw, &met);
    let samples: Vec<Sample> = raw.iter().map(|r| Sample::new(r, &cbn, &norm)).collect();
    let layout = SageLayout {
        model: name.to_string(),
        version: 1,
        cbn,
        hyper,
        norm,
        window_ms: windows.first().map_or(1000, |w| w.window_ms),
        windows: windows.len(),
        violating: violated.iter().filter(|v| **v).count(),
        provenance,
        x_resources: x_resources.to_vec(),
    };
    (layout, samples, violated)
}

/// A small deterministic generator for shuffling (no global RNG state).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The draws of one epoch: every window once, violating ones repeated up to `oversample_to`.
fn draws(violated: &[bool], oversample_to: f64, rng: &mut SplitMix) -> Vec<i64> {
    let bad: Vec<i64> = (0..violated.len() as i64)
        .filter(|i| violated[*i as usize])
        .collect();
    let good = violated.len() - bad.len();
    let mut out: Vec<i64> = (0..violated.len() as i64).collect();
    if !bad.is_empty() && oversample_to > 0.0 && oversample_to < 1.0 {
        let want = (oversample_to / (1.0 - oversample_to) * good as f64) as usize;
        let mut extra = want.saturating_sub(bad.len());
        // At most 20 copies of each violating window.
        extra = extra.min(bad.len() * 19);
        for k in 0..extra {
            out.push(bad[k % bad.len()]);
        }
    }
    for i in (1..out.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// Trains the given units and channels of `model` on `samples`; returns the last epoch's
/// mean loss. `progress(epoch, loss)` after every epoch.
pub fn fit(
    model: &mut SageModel,
    samples: &[Sample],
    violated: &[bool],
    units: &[usize],
    channels: &[usize],
    settings: &SageTrainSettings,
    progress: impl FnMut(usize, f64),
) -> f64 {
    fit_until(
        model,
        samples,
        violated,
        units,
        channels,
        settings,
        &AtomicBool::new(false),
        progress,
    )
}

/// [`fit`], abandoned at the next batch once `stop` is set (an online retraining whose
/// detector goes away ends within one optimizer step; its model is then thrown away).
#[allow(clippy::too_many_arguments)]
pub fn fit_until(
    model: &mut SageModel,
    samples: &[Sample],
    violated: &[bool],
    units: &[usize],
    channels: &[usize],
    settings: &SageTrainSettings,
    stop: &AtomicBool,
    mut progress: impl FnMut(usize, f64),
) -> f64 {
    if samples.len() < 2 || (units.is_empty() && channels.is_empty()) {
        return 0.0;
    }
    tch::manual_seed(settings.seed);
    let refs: Vec<&Sample> = samples.iter().collect();
    let all = model.batch(&refs);
    let mut opt = match nn::Adam::default().build(&model.vs, settings.learning_rate) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("sage: cannot build the optimizer: {e}");
            return f64::NAN;
        }
    };
    let mut rng = SplitMix(settings.seed as u64 ^ 0x5a6e);
    let mut last = 0.0;
    for epoch in 1..=settings.epochs {
        let order = draws(violated, settings.oversample_to, &mut rng);
        let (mut sum, mut steps) = (0.0, 0usize);
        for chunk in order.chunks(settings.batch.max(2)) {
            if stop.load(Ordering::Relaxed) {
                return last;
            }
            if chunk.len() < 2 {
                continue; // batch-norm needs two rows
            }
            let idx = Tensor::from_slice(chunk).to_device(model.device());
            let pick = |ts: &[Tensor]| -> Vec<Tensor> {
                ts.iter().map(|t| t.index_select(0, &idx)).collect()
            };
            let batch = super::gvae::Batch {
                x: pick(&all.x),
                ys: pick(&all.ys),
                yc: pick(&all.yc),
                ynet: pick(&all.ynet),
                xnet: pick(&all.xnet),
            };
            let loss = model.gvae.loss(&batch, units, channels);
            opt.backward_step(&loss);
            model.gvae.clamp_call_weights(units);
            sum += loss.double_value(&[]);
            steps += 1;
        }
        last = sum / steps.max(1) as f64;
        progress(epoch, last);
    }
    last
}

/// A new model trained from scratch on `windows`; an error when they are too few to
/// train one ([`check_windows`]).
pub fn train(
    windows: &[WindowSnapshot],
    name: &str,
    hyper: GvaeHyper,
    settings: &SageTrainSettings,
    provenance: String,
    device: Device,
    progress: impl FnMut(usize, f64),
) -> Result<SageModel, TrainDataError> {
    check_windows(windows, settings)?;
    let (layout, samples, violated) =
        prepare(windows, name, hyper, &settings.x_resources, provenance);
    tch::manual_seed(settings.seed);
    let mut model = SageModel::new(layout, device);
    let units: Vec<usize> = (0..model.layout.cbn.units.len()).collect();
    let channels: Vec<usize> = (0..model.layout.cbn.rpcs.len()).collect();
    fit(
        &mut model, &samples, &violated, &units, &channels, settings, progress,
    );
    Ok(model)
}

/// Copies into `new` every variable of `old` with the same name and shape; returns the
/// names of the variables that were *not* copied (new or reshaped parts).
pub fn transfer(old: &SageModel, new: &mut SageModel) -> BTreeSet<String> {
    let from = old.vs.variables();
    let mut fresh = BTreeSet::new();
    let mut to = new.vs.variables();
    tch::no_grad(|| {
        for (name, dst) in to.iter_mut() {
            match from.get(name) {
                Some(src) if src.size() == dst.size() => {
                    dst.copy_(src);
                }
                _ => {
                    fresh.insert(name.clone());
                }
            }
        }
    });
    fresh
}

/// Units and channels to retrain after a topology change: those with fresh variables,
/// those of `changed` services, and every unit that (transitively) calls one of them.
pub fn retrain_set(
    model: &SageModel,
    fresh: &BTreeSet<String>,
    changed: &[String],
) -> (Vec<usize>, Vec<usize>) {
    use super::gvae::path_name;
    let cbn = &model.layout.cbn;
    let mut units: BTreeSet<usize> = BTreeSet::new();
    for (u, unit) in cbn.units.iter().enumerate() {
        let prefix = format!("u:{}.", path_name(&unit.name));
        let has_fresh = fresh.iter().any(|n| n.starts_with(&prefix))
            || cbn.invoked(u).iter().any(|i| {
                let p = format!("c:{}.", path_name(&cbn.rpcs[*i].key()));
                fresh.iter().any(|n| n.starts_with(&p))
            });
        if has_fresh || unit.members.iter().any(|m| changed.contains(m)) {
            units.insert(u);
        }
    }
    for u in units.clone() {
        units.extend(cbn.ancestors(u));
    }
    let channels: Vec<usize> = cbn
        .rpcs
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let p = format!("n:{}.", path_name(&r.key()));
            fresh.iter().any(|n| n.starts_with(&p))
                || changed.contains(&r.callee)
                || changed.contains(&r.caller)
        })
        .map(|(i, _)| i)
        .collect();
    (units.into_iter().collect(), channels)
}

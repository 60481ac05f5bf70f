//! Training a Seer model on recorded datasets.
//!
//! In: datasets (consecutive windows of replays), the model's service order, settings.
//! Out: a trained [`SeerModel`] (the epoch with the best validation score) and a report
//! per epoch. The last `val_fraction` of each dataset's windows validates; the violation
//! threshold is chosen on them. Classes are balanced by weighting positive windows by
//! negatives/positives in the loss. State: none between calls.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

use crate::seer::SeerModel;
use crate::seer::dataset::{Dataset, Row};
use crate::seer::layout::{Layout, SeerHyper};
use crate::seer::net::LossTargets;

/// Training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: i64,
    /// Share of each dataset's windows (its end) held out for validation.
    pub val_fraction: f64,
    /// Loss weight of positive windows that don't violate yet (the ones before a
    /// violation starts): predicting ahead is the point, and there are few of them.
    pub ahead_weight: f64,
    /// Choose the epoch and the threshold by the validation windows' *ahead* recall
    /// (positives that don't violate yet) instead of their recall over all positives.
    pub select_ahead: bool,
    pub hyper: SeerHyper,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 30,
            batch: 32,
            learning_rate: 3e-3,
            seed: 1,
            val_fraction: 0.2,
            ahead_weight: 1.0,
            select_ahead: false,
            hyper: SeerHyper::default(),
        }
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    /// Window-level, at probability 0.5.
    pub val_recall: f64,
    /// Recall on positive windows whose violation is still ahead (they don't violate).
    pub val_ahead_recall: f64,
    pub val_fpr: f64,
    /// Top culprit right, among validation windows that have one.
    pub val_ac1: f64,
    pub seconds: f64,
}

/// Rows of all datasets in one tensor, and which histories end where.
struct Samples {
    /// `[rows, services, features]`, standardized.
    x: Tensor,
    violation: Vec<f32>,
    /// The window itself violates (vs. a violation still ahead within the horizon).
    violated: Vec<bool>,
    culprit: Vec<i64>,
    /// `[rows, services]` bool: the service reported in a window of the row's history
    /// (its raw row there isn't all zeros).
    present: Tensor,
    train: Vec<i64>,
    val: Vec<i64>,
}

/// Per-feature mean and std over all rows (all services).
pub fn feature_stats(rows: &[&Row], features: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0.0f64; features];
    let mut sq = vec![0.0f64; features];
    let mut n = 0usize;
    for r in rows {
        for (i, x) in r.x.iter().enumerate() {
            sum[i % features] += *x as f64;
            sq[i % features] += (*x as f64) * (*x as f64);
        }
        n += r.x.len() / features.max(1);
    }
    let n = n.max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / n - (*m as f64).powi(2)).max(0.0).sqrt().max(1e-3)) as f32)
        .collect();
    (mean, std)
}

/// Per service, whether any of `windows` (raw feature matrices, `features` values per
/// service, row-major) shows it: a value that isn't zero.
pub(crate) fn history_presence<'a>(
    windows: impl IntoIterator<Item = &'a [f32]>,
    features: usize,
) -> Vec<bool> {
    let mut present: Vec<bool> = Vec::new();
    for w in windows {
        for (j, values) in w.chunks(features.max(1)).enumerate() {
            if j >= present.len() {
                present.resize(j + 1, false);
            }
            present[j] |= values.iter().any(|v| *v != 0.0);
        }
    }
    present
}

fn samples(datasets: &[Dataset], model: &SeerModel, val_fraction: f64) -> Samples {
    let h = model.layout.hyper.history;
    let mut all = Vec::new();
    let (mut violation, mut culprit, mut train, mut val) = (vec![], vec![], vec![], vec![]);
    let mut violated = Vec::new();
    let mut present = Vec::new();
    let f = model.layout.features.len().max(1);
    for ds in datasets {
        let rows = ds.project(&model.layout.services);
        let base = violation.len();
        let split = ((rows.len() as f64) * (1.0 - val_fraction)).round() as usize;
        for (i, r) in rows.iter().enumerate() {
            // Present: seen in any window of the history the model reads (a service of a
            // quiet application has windows without a request).
            let history = &rows[i.saturating_sub(h.max(1) - 1)..=i];
            let in_history = history_presence(history.iter().map(|r| r.x.as_slice()), f);
            // A culprit the history never shows cannot be named: no culprit target.
            let target = r
                .culprit
                .filter(|&c| in_history.get(c).copied().unwrap_or(false));
            present.extend(in_history);
            let mut x = r.x.clone();
            model.standardize(&mut x);
            all.extend_from_slice(&x);
            violation.push(if r.positive { 1.0 } else { 0.0 });
            violated.push(r.violated);
            culprit.push(target.map_or(-1, |c| c as i64));
            // A history needs h consecutive windows of this dataset.
            let consecutive = i + 1 >= h
                && rows[i + 1 - h..=i]
                    .windows(2)
                    .all(|w| w[1].window_end == w[0].window_end + ds.window_ms);
            if consecutive {
                if i < split {
                    train.push((base + i) as i64);
                } else if i + 1 >= split + h {
                    val.push((base + i) as i64);
                }
            }
        }
    }
    let s = model.layout.services.len() as i64;
    let f = model.layout.features.len() as i64;
    Samples {
        x: Tensor::from_slice(&all)
            .reshape([-1, s, f])
            .to_device(model.device()),
        violation,
        violated,
        culprit,
        present: Tensor::from_slice(&present)
            .reshape([-1, s])
            .to_device(model.device()),
        train,
        val,
    }
}

/// Histories `[batch, H, S, F]` ending at `ends`.
fn gather(x: &Tensor, ends: &[i64], h: usize) -> Tensor {
    let idx: Vec<i64> = ends
        .iter()
        .flat_map(|e| (0..h as i64).map(move |k| e - (h as i64 - 1) + k))
        .collect();
    let size = x.size();
    x.index_select(0, &Tensor::from_slice(&idx).to_device(x.device()))
        .reshape([ends.len() as i64, h as i64, size[1], size[2]])
}

/// Violation probability and top culprit for each history ending at `ends`.
fn evaluate(model: &SeerModel, data: &Samples, ends: &[i64]) -> Vec<(f64, usize)> {
    let h = model.layout.hyper.history;
    let mut out = Vec::with_capacity(ends.len());
    for chunk in ends.chunks(256) {
        let x = gather(&data.x, chunk, h);
        let idx = Tensor::from_slice(chunk).to_device(data.present.device());
        let (v, c) = model
            .net
            .predict(&x, Some(&data.present.index_select(0, &idx)));
        let v: Vec<f64> =
            Vec::try_from(&v.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
        let top: Vec<i64> =
            Vec::try_from(&c.argmax(1, false).to_device(Device::Cpu)).unwrap_or_default();
        out.extend(v.into_iter().zip(top.into_iter().map(|t| t as usize)));
    }
    out
}

/// Validation figures at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Figures {
    /// Positive windows flagged.
    recall: f64,
    /// Positive windows that don't violate yet (the violation is still ahead) flagged.
    ahead_recall: f64,
    fpr: f64,
    /// Top culprit right, among positive windows that have one.
    ac1: f64,
}

impl Figures {
    /// The recall selection uses: over all positive windows, or (`ahead`) only those whose
    /// violation is still ahead.
    fn selected_recall(&self, ahead: bool) -> f64 {
        if ahead {
            self.ahead_recall
        } else {
            self.recall
        }
    }

    /// What epochs are chosen by: seeing violations (ahead ones, with `ahead`), few false
    /// alarms, the right culprit.
    fn score(&self, ahead: bool) -> f64 {
        self.selected_recall(ahead) - self.fpr + self.ac1
    }
}

/// Window-level recall (all positives, and those still ahead) and FPR at `threshold`, and
/// culprit AC@1.
fn figures(data: &Samples, ends: &[i64], preds: &[(f64, usize)], threshold: f64) -> Figures {
    let (mut tp, mut pos, mut fp, mut neg, mut right, mut cases) = (0, 0, 0, 0, 0, 0);
    let (mut ahead_tp, mut ahead) = (0, 0);
    for (e, (p, top)) in ends.iter().zip(preds) {
        let e = *e as usize;
        if data.violation[e] > 0.5 {
            pos += 1;
            tp += usize::from(*p >= threshold);
            if !data.violated[e] {
                ahead += 1;
                ahead_tp += usize::from(*p >= threshold);
            }
            if data.culprit[e] >= 0 {
                cases += 1;
                right += usize::from(*top as i64 == data.culprit[e]);
            }
        } else {
            neg += 1;
            fp += usize::from(*p >= threshold);
        }
    }
    let r = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Figures {
        recall: r(tp, pos),
        ahead_recall: r(ahead_tp, ahead),
        fpr: r(fp, neg),
        ac1: r(right, cases),
    }
}

/// Trains a new model on `datasets`. `layout` supplies the model name, version, service
/// order, window and horizon; its `mean`, `std` and `threshold` are computed here.
pub fn train(
    datasets: &[Dataset],
    layout: Layout,
    settings: &TrainSettings,
    device: Device,
    on_epoch: impl FnMut(&EpochReport),
) -> SeerModel {
    train_until(
        datasets,
        layout,
        settings,
        device,
        &AtomicBool::new(false),
        on_epoch,
    )
}

/// [`train`], abandoned at the next batch once `stop` is set (the model returned is then
/// only partly trained: callers that set `stop` throw it away).
pub fn train_until(
    datasets: &[Dataset],
    mut layout: Layout,
    settings: &TrainSettings,
    device: Device,
    stop: &AtomicBool,
    on_epoch: impl FnMut(&EpochReport),
) -> SeerModel {
    tch::manual_seed(settings.seed);
    layout.hyper = settings.hyper.clone();
    let projected: Vec<Vec<Row>> = datasets
        .iter()
        .map(|d| d.project(&layout.services))
        .collect();
    let refs: Vec<&Row> = projected.iter().flatten().collect();
    let (mean, std) = feature_stats(&refs, layout.features.len());
    layout.mean = mean;
    layout.std = std;
    layout.threshold = 0.5;
    let mut model = SeerModel::new(layout, device);
    fit_until(&mut model, datasets, settings, stop, on_epoch);
    model
}

/// Trains `model` further on `datasets` (its layout's standardization is kept), keeps the
/// epoch with the best validation score and sets the threshold on the validation windows.
pub fn fit(
    model: &mut SeerModel,
    datasets: &[Dataset],
    settings: &TrainSettings,
    on_epoch: impl FnMut(&EpochReport),
) {
    fit_until(model, datasets, settings, &AtomicBool::new(false), on_epoch);
}

/// [`fit`], abandoned at the next batch once `stop` is set: a background fine-tune ends
/// within one optimizer step when its detector goes away.
pub fn fit_until(
    model: &mut SeerModel,
    datasets: &[Dataset],
    settings: &TrainSettings,
    stop: &AtomicBool,
    mut on_epoch: impl FnMut(&EpochReport),
) {
    let device = model.device();
    let data = samples(datasets, model, settings.val_fraction);
    let h = model.layout.hyper.history;
    let positives = data
        .train
        .iter()
        .filter(|e| data.violation[**e as usize] > 0.5)
        .count();
    let pos_weight = (data.train.len() - positives) as f64 / positives.max(1) as f64;
    let violation = Tensor::from_slice(&data.violation).to_device(device);
    let weights: Vec<f32> = data
        .violation
        .iter()
        .zip(&data.violated)
        .map(|(v, now)| {
            if *v > 0.5 && !now {
                settings.ahead_weight as f32
            } else {
                1.0
            }
        })
        .collect();
    let row_weight = Tensor::from_slice(&weights).to_device(device);
    let culprit = Tensor::from_slice(&data.culprit).to_device(device);
    let mut best = nn::VarStore::new(device);
    let _ = crate::seer::net::SeerNet::new(
        &best.root(),
        &model.layout.hyper,
        model.layout.services.len(),
        model.layout.features.len(),
    );
    let _ = best.copy(&model.vs);
    let mut best_score = f64::NEG_INFINITY;
    let Ok(mut opt) = nn::Adam::default().build(&model.vs, settings.learning_rate) else {
        return;
    };
    for epoch in 1..=settings.epochs {
        let start = std::time::Instant::now();
        let order: Vec<i64> = Vec::try_from(&Tensor::randperm(
            data.train.len() as i64,
            (Kind::Int64, Device::Cpu),
        ))
        .unwrap_or_default();
        let mut total = 0.0;
        let mut batches = 0usize;
        for chunk in order.chunks(settings.batch.max(1)) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let ends: Vec<i64> = chunk.iter().map(|i| data.train[*i as usize]).collect();
            let idx = Tensor::from_slice(&ends).to_device(device);
            let x = gather(&data.x, &ends, h);
            let targets = LossTargets {
                violation: violation.index_select(0, &idx),
                culprit: culprit.index_select(0, &idx),
                present: data.present.index_select(0, &idx),
            };
            let loss = model.net.loss(
                &x,
                &targets,
                pos_weight,
                Some(&row_weight.index_select(0, &idx)),
            );
            opt.backward_step(&loss);
            total += f64::try_from(&loss).unwrap_or(f64::NAN);
            batches += 1;
        }
        let preds = evaluate(model, &data, &data.val);
        let fig = figures(&data, &data.val, &preds, 0.5);
        let score = fig.score(settings.select_ahead);
        if score > best_score || data.val.is_empty() {
            best_score = score;
            let _ = best.copy(&model.vs);
        }
        on_epoch(&EpochReport {
            epoch,
            train_loss: total / batches.max(1) as f64,
            val_recall: fig.recall,
            val_ahead_recall: fig.ahead_recall,
            val_fpr: fig.fpr,
            val_ac1: fig.ac1,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    let _ = model.vs.copy(&best);
    // Threshold: the best recall (ahead recall with `select_ahead`) − FPR on the
    // validation windows.
    let preds = evaluate(model, &data, &data.val);
    let mut threshold = 0.5;
    let mut best_j = f64::NEG_INFINITY;
    for k in 2..20 {
        let t = k as f64 * 0.05;
        let fig = figures(&data, &data.val, &preds, t);
        let j = fig.selected_recall(settings.select_ahead) - fig.fpr;
        if j > best_j + 1e-9 {
            best_j = j;
            threshold = t;
        }
    }
    if !data.val.is_empty() {
        model.layout.threshold = threshold;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seer::dataset::Row;

    /// Two services, history 3; service `b` reports only in the first window.
    fn quiet_culprit() -> (Dataset, SeerModel) {
        let services = vec!["a".to_string(), "b".to_string()];
        let row = |t: u64, b: f32, culprit: Option<usize>| Row {
            window_end: t * 1000,
            violated: false,
            positive: culprit.is_some(),
            culprit,
            x: vec![1.0, b],
        };
        let ds = Dataset {
            services: services.clone(),
            features: vec!["latency".into()],
            window_ms: 1000,
            horizon_ms: 1000,
            rows: vec![
                row(1, 2.0, None),
                row(2, 0.0, None),
                row(3, 0.0, Some(1)),
                row(4, 0.0, Some(1)),
            ],
        };
        let layout = Layout {
            model: "seer".into(),
            version: 1,
            services,
            features: ds.features.clone(),
            hyper: crate::seer::SeerHyper {
                history: 3,
                ..Default::default()
            },
            mean: vec![0.0],
            std: vec![1.0],
            threshold: 0.5,
            window_ms: 1000,
            horizon_ms: 1000,
            provenance: "test".into(),
        };
        (ds, SeerModel::new(layout, Device::Cpu))
    }

    /// At one request a second a culprit is often quiet in the window a violation follows:
    /// it stays nameable while the history shows it (masking it made the culprit loss
    /// 1e9 and training useless), and is no culprit target once the history never does.
    #[test]
    fn a_culprit_quiet_in_the_last_window_stays_a_target_while_the_history_shows_it() {
        let (ds, model) = quiet_culprit();
        let s = samples(&[ds], &model, 0.0);
        let present: Vec<bool> = Vec::try_from(s.present.reshape([-1])).unwrap();
        assert_eq!(present, [true, true, true, true, true, true, true, false]);
        assert_eq!(s.culprit, [-1, -1, 1, -1]);
        assert_eq!(
            history_presence([&[0.0, 1.0][..], &[1.0, 0.0][..]], 1),
            [true, true]
        );
    }
}

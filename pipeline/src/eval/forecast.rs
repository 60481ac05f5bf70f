//! The `forecast` object of `augur eval --detector fluxion`: how well Fluxion's inference
//! graph forecasts the entry's end-to-end p90, against the monolithic baseline, overall and
//! around each deployment change in `labels.json`.
//!
//! In: the replay's closed windows (in event-time order), the labelled changes, the
//! `fluxion` detector's settings and the horizon. Out: a [`ForecastReport`]. State: none
//! kept between calls (a fresh detector and baseline per call).
//!
//! Definitions (field names are stable):
//! - A **forecast** is made at the end of window `t` for the window `h = horizon / window`
//!   windows later; its error is `|forecast p90 − observed end-to-end p90 of window t+h|`.
//!   Only windows after warm-up (once the graph is trained, `min_train_windows` in, or at
//!   once from a checkpoint) count.
//! - **Graph**: the `fluxion` detector itself (the same code the stream job runs), which
//!   refits only the vertex of a changed service `adapt_samples` windows after its change.
//! - **Baseline** (`baseline_*`): the monolithic MLP over all services' own inputs, trained
//!   on the same warm-up windows (the first `min_train_windows`, also when the graph
//!   started from a checkpoint; windows count once both models exist), then after each change retrained *from scratch* on the
//!   windows since the change, when [`BASELINE_RETRAIN_AT`] of them are in (until then it
//!   keeps its old model). It is fed the same extrapolated inputs as the graph.
//! - `mae_ms` / `baseline_mae_ms`: mean error over every scored window; `mae_p99_ms` the
//!   graph's p99 forecast error (the baseline models p90 only). References without a
//!   model, over the same windows: `persistence_mae_ms` (forecast = the p90 observed at
//!   `t`) and `spread_ms` (forecast = the mean observed p90 of the run).
//! - Per change (`changes[]`, changes at the same time form one row): `mae_ms` over the
//!   windows from the change to the next change (or the end).
//!   **Adapted after n samples**: the smallest n ≥ 0 such that the MAE over the
//!   [`ADAPT_WINDOW`] forecasts that follow the first n post-change windows is at most
//!   `max(ADAPT_TOLERANCE × the model's MAE over the PRE_CHANGE windows before the change,
//!   ADAPT_FLOOR × the mean observed p90 after the change)`. `samples_to_adapt` is that n
//!   (`null` when it never happens before the next change); `adapt_wall_ms` is the wall
//!   time the model spent (re)fitting from the change until then (until the next change
//!   when it never adapted).
//! - **Samples to match the other model** (Fluxion §5's comparison: how many post-change
//!   samples the monolithic model needs to get as close as the graph does):
//!   `baseline_samples_to_match_graph` is the smallest n ≥ 0 such that, over the forecasts
//!   from the n-th post-change window to the end of the period (at least [`ADAPT_WINDOW`] of
//!   them), the baseline's MAE is at most `max(ADAPT_TOLERANCE × the graph's MAE over the
//!   same forecasts, ADAPT_FLOOR × the mean observed p90 after the change)`; from then on it
//!   is about as good. `samples_to_match_baseline` is the same with the roles swapped.
//!   `null`: not within the period.

use std::collections::BTreeMap;
use std::time::Instant;

use augur_connectors::simulator::Labels;
use augur_models::fluxion::{
    Fluxion, FluxionConfig, Monolithic, P90, P99, Sample, baseline_settings, sample,
};
use augur_operators::WindowSnapshot;
use serde::Serialize;

/// libtorch seed of the baseline fit at window t is this + t.
const BASELINE_SEED: i64 = 1_000_003;

/// Post-change window counts at which the baseline is retrained from scratch.
pub const BASELINE_RETRAIN_AT: [usize; 6] = [15, 30, 60, 120, 240, 480];
/// Forecasts the adapted test averages over.
pub const ADAPT_WINDOW: usize = 10;
/// Windows before a change that give the pre-change error level.
pub const PRE_CHANGE: usize = 30;
/// Adapted: within this factor of the pre-change error level…
pub const ADAPT_TOLERANCE: f64 = 1.25;
/// …or within this fraction of the observed p90 (the noise floor), whichever is larger.
pub const ADAPT_FLOOR: f64 = 0.05;

/// One deployment change (or several at the same time) from `labels.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    pub at_ms: u64,
    /// E.g. `scale_out geo (replicas 1 -> 2); scale_out rate (...)`.
    pub change: String,
}

/// The changes in the labels, grouped by time.
pub fn changes_from_labels(labels: &Labels) -> Vec<ChangeEvent> {
    let mut by_time: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for c in &labels.changes {
        by_time
            .entry(c.at_ms)
            .or_default()
            .push(format!("{} {} ({})", c.kind, c.service, c.detail));
    }
    by_time
        .into_iter()
        .map(|(at_ms, parts)| ChangeEvent {
            at_ms,
            change: parts.join("; "),
        })
        .collect()
}

/// One row per change.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChangeRow {
    pub at_ms: u64,
    pub change: String,
    /// Scored windows in the row's period.
    pub windows: usize,
    pub mae_ms: f64,
    pub baseline_mae_ms: f64,
    pub samples_to_adapt: Option<usize>,
    pub baseline_samples_to_adapt: Option<usize>,
    pub adapt_wall_ms: f64,
    pub baseline_adapt_wall_ms: f64,
    pub samples_to_match_baseline: Option<usize>,
    pub baseline_samples_to_match_graph: Option<usize>,
}

/// One scored window, for the plot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// End of the window forecast, ms since the epoch.
    pub at_ms: u64,
    pub actual_ms: f64,
    pub graph_ms: f64,
    pub baseline_ms: f64,
}

/// The `forecast` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ForecastReport {
    /// Windows scored (after warm-up, with an observed target).
    pub windows: usize,
    /// Forecast step, windows ahead.
    pub horizon_windows: usize,
    pub mae_ms: f64,
    pub baseline_mae_ms: f64,
    pub mae_p99_ms: f64,
    /// Mean observed end-to-end p90 over the scored windows.
    pub actual_mean_ms: f64,
    /// Reference: the MAE of forecasting the last observed p90 (no model).
    pub persistence_mae_ms: f64,
    /// Reference: the mean absolute deviation of the observed p90 from `actual_mean_ms`
    /// (the MAE of forecasting the run's mean, which a forecast must beat to have learnt
    /// anything).
    pub spread_ms: f64,
    /// Wall time of the whole forecast evaluation (graph and baseline), ms.
    pub wall_ms: f64,
    /// The checkpoint the graph started from (`name-vN`); `null`: learnt from the stream.
    pub checkpoint: Option<String>,
    pub changes: Vec<ChangeRow>,
    #[serde(skip)]
    pub series: Vec<Point>,
    #[serde(skip)]
    pub change_times: Vec<u64>,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Scored windows of one model: (window end, absolute error).
fn adapted_after(errors: &[f64], pre_level: f64, floor: f64) -> Option<usize> {
    let bar = (ADAPT_TOLERANCE * pre_level).max(floor);
    if errors.len() < ADAPT_WINDOW {
        return None;
    }
    (0..=errors.len() - ADAPT_WINDOW)
        .find(|&n| mean(errors[n..n + ADAPT_WINDOW].iter().copied()) <= bar)
}

/// The first post-change sample from which on `errors` average within the bar set by
/// `other` over the same forecasts (see the module doc).
fn matched_from(errors: &[f64], other: &[f64], floor: f64) -> Option<usize> {
    let len = errors.len().min(other.len());
    if len < ADAPT_WINDOW {
        return None;
    }
    (0..=len - ADAPT_WINDOW).find(|&n| {
        let own = mean(errors[n..len].iter().copied());
        let bar = (ADAPT_TOLERANCE * mean(other[n..len].iter().copied())).max(floor);
        own <= bar
    })
}

/// Runs the graph and the baseline over `windows` and scores them.
pub fn evaluate(
    windows: &[WindowSnapshot],
    changes: &[ChangeEvent],
    config: &FluxionConfig,
    window_ms: u64,
    horizon_ms: u64,
) -> Result<ForecastReport, std::io::Error> {
    let started = Instant::now();
    // Deterministic weights for a given input (the models draw from libtorch's generator).
    augur_models::runtime::seed(1);
    let mut windows: Vec<&WindowSnapshot> = windows
        .iter()
        .filter(|w| !w.services.is_empty() || !w.qos.is_empty())
        .collect();
    windows.sort_by_key(|w| w.window_end);
    let h = (horizon_ms / window_ms.max(1)).max(1) as usize;
    let mut fluxion = Fluxion::new(config.clone(), horizon_ms)?;

    let samples: Vec<Sample> = windows.iter().map(|w| sample(w)).collect();
    let n = windows.len();
    // Per window t: forecasts made at t (for t + h), fit wall times.
    let mut graph_fc: Vec<Option<(f64, f64)>> = vec![None; n];
    let mut base_fc: Vec<Option<f64>> = vec![None; n];
    let mut observed: Vec<Option<(f64, f64)>> = vec![None; n];
    let mut graph_fit = vec![0.0f64; n];
    let mut base_fit = vec![0.0f64; n];
    let mut baseline: Option<Monolithic> = None;
    let mut next_change = 0usize;
    let mut since_change: Option<(usize, usize)> = None; // (first window index, retrains done)
    let settings = baseline_settings();
    for (t, w) in windows.iter().enumerate() {
        let step = fluxion.step(w);
        graph_fit[t] = step.fit_wall_ms;
        observed[t] = sample_e2e(&samples[t]);
        if let Some(f) = step.forecast {
            graph_fc[t] = Some((f64::from(f[P90]), f64::from(f[P99])));
        }
        while next_change < changes.len() && changes[next_change].at_ms < w.window_end {
            since_change = Some((t, 0));
            next_change += 1;
        }
        let entry = samples[t].entry.as_ref().map(|e| e.0.clone());
        let fit_started = Instant::now();
        // The baseline's weights must not depend on how many draws the graph made before
        // (they share libtorch's generator): each fit starts from a seed of its own window.
        let seed_baseline = || augur_models::runtime::seed(BASELINE_SEED + t as i64);
        match (&baseline, fluxion.trained(), entry) {
            (None, true, Some(entry)) if t + 1 >= config.min_train_windows.max(2) => {
                seed_baseline();
                baseline = Some(Monolithic::fit(&samples[..=t], &entry, P90, &settings));
            }
            (Some(_), _, Some(entry)) => {
                if let Some((first, done)) = since_change.as_mut() {
                    let count = t + 1 - *first;
                    if BASELINE_RETRAIN_AT.get(*done) == Some(&count) {
                        seed_baseline();
                        baseline = Some(Monolithic::fit(
                            &samples[*first..=t],
                            &entry,
                            P90,
                            &settings,
                        ));
                        *done += 1;
                    }
                }
            }
            _ => {}
        }
        base_fit[t] = fit_started.elapsed().as_secs_f64() * 1e3;
        if let (Some(b), Some(ahead)) = (&baseline, &step.ahead) {
            base_fc[t] = b
                .predict(std::slice::from_ref(ahead))
                .first()
                .map(|v| f64::from(v.max(0.0)));
        }
    }

    // Scored windows: target index u = t + h.
    struct Scored {
        u: usize,
        at_ms: u64,
        actual: f64,
        /// Observed p90 of the window the forecast was made at.
        last: f64,
        graph: f64,
        graph_p99: f64,
        actual_p99: f64,
        baseline: f64,
    }
    let mut scored = Vec::new();
    for t in 0..n.saturating_sub(h) {
        let u = t + h;
        let (Some((g90, g99)), Some(b), Some((a90, a99)), Some((last, _))) =
            (graph_fc[t], base_fc[t], observed[u], observed[t])
        else {
            continue;
        };
        scored.push(Scored {
            u,
            at_ms: windows[u].window_end,
            actual: a90,
            last,
            graph: g90,
            graph_p99: g99,
            actual_p99: a99,
            baseline: b,
        });
    }
    let actual_mean_ms = mean(scored.iter().map(|s| s.actual));
    let mut report = ForecastReport {
        windows: scored.len(),
        horizon_windows: h,
        mae_ms: mean(scored.iter().map(|s| (s.graph - s.actual).abs())),
        baseline_mae_ms: mean(scored.iter().map(|s| (s.baseline - s.actual).abs())),
        mae_p99_ms: mean(scored.iter().map(|s| (s.graph_p99 - s.actual_p99).abs())),
        actual_mean_ms,
        persistence_mae_ms: mean(scored.iter().map(|s| (s.last - s.actual).abs())),
        spread_ms: mean(scored.iter().map(|s| (s.actual - actual_mean_ms).abs())),
        series: scored
            .iter()
            .map(|s| Point {
                at_ms: s.at_ms,
                actual_ms: s.actual,
                graph_ms: s.graph,
                baseline_ms: s.baseline,
            })
            .collect(),
        change_times: changes.iter().map(|c| c.at_ms).collect(),
        ..ForecastReport::default()
    };
    for (i, c) in changes.iter().enumerate() {
        let until = changes.get(i + 1).map_or(u64::MAX, |c| c.at_ms);
        let after: Vec<&Scored> = scored
            .iter()
            .filter(|s| s.at_ms > c.at_ms && s.at_ms <= until)
            .collect();
        let before: Vec<&Scored> = scored
            .iter()
            .filter(|s| s.at_ms <= c.at_ms)
            .rev()
            .take(PRE_CHANGE)
            .collect();
        let floor = ADAPT_FLOOR * mean(after.iter().map(|s| s.actual));
        let graph_err: Vec<f64> = after.iter().map(|s| (s.graph - s.actual).abs()).collect();
        let base_err: Vec<f64> = after
            .iter()
            .map(|s| (s.baseline - s.actual).abs())
            .collect();
        let pre_graph = mean(before.iter().map(|s| (s.graph - s.actual).abs()));
        let pre_base = mean(before.iter().map(|s| (s.baseline - s.actual).abs()));
        let graph_n = adapted_after(&graph_err, pre_graph, floor);
        let base_n = adapted_after(&base_err, pre_base, floor);
        // Fit time from the change's first window to the adapted point (target index − h).
        let first = windows
            .iter()
            .position(|w| w.window_end > c.at_ms)
            .unwrap_or(n);
        let last_of_period = windows
            .iter()
            .rposition(|w| w.window_end <= until)
            .unwrap_or(0);
        let wall = |fit: &[f64], adapted: Option<usize>| -> f64 {
            let end = match adapted {
                Some(k) => after
                    .get(k)
                    .map_or(last_of_period, |s| s.u.saturating_sub(h)),
                None => last_of_period,
            };
            if end < first {
                return 0.0;
            }
            fit[first..=end.min(n.saturating_sub(1))].iter().sum()
        };
        report.changes.push(ChangeRow {
            at_ms: c.at_ms,
            change: c.change.clone(),
            windows: after.len(),
            mae_ms: mean(graph_err.iter().copied()),
            baseline_mae_ms: mean(base_err.iter().copied()),
            samples_to_adapt: graph_n,
            baseline_samples_to_adapt: base_n,
            adapt_wall_ms: wall(&graph_fit, graph_n),
            baseline_adapt_wall_ms: wall(&base_fit, base_n),
            samples_to_match_baseline: matched_from(&graph_err, &base_err, floor),
            baseline_samples_to_match_graph: matched_from(&base_err, &graph_err, floor),
        });
    }
    report.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    report.checkpoint = fluxion.loaded().map(str::to_string);
    Ok(report)
}

fn sample_e2e(s: &Sample) -> Option<(f64, f64)> {
    s.entry
        .as_ref()
        .map(|(_, l)| (f64::from(l[P90]), f64::from(l[P99])))
}

/// The per-change table (Markdown).
pub fn change_table(report: &ForecastReport) -> String {
    let opt = |v: Option<usize>| v.map_or("never".to_string(), |v| v.to_string());
    let mut out = String::from(
        "| change | at (s) | windows | MAE graph (ms) | MAE monolithic (ms) | samples to adapt graph | monolithic | adapt wall graph (ms) | monolithic (ms) | samples to match the other: graph | monolithic |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let start = report.series.first().map_or(0, |p| p.at_ms);
    for c in &report.changes {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {:.2} | {:.2} | {} | {} | {:.0} | {:.0} | {} | {} |\n",
            c.change,
            c.at_ms.saturating_sub(start) as f64 / 1000.0,
            c.windows,
            c.mae_ms,
            c.baseline_mae_ms,
            opt(c.samples_to_adapt),
            opt(c.baseline_samples_to_adapt),
            c.adapt_wall_ms,
            c.baseline_adapt_wall_ms,
            opt(c.samples_to_match_baseline),
            opt(c.baseline_samples_to_match_graph)
        ));
    }
    out.push_str(&format!(
        "| **all** | | {} | {:.2} | {:.2} | | | | | | |\n",
        report.windows, report.mae_ms, report.baseline_mae_ms
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapted_after_finds_the_first_good_stretch() {
        let mut errors = vec![10.0; 20];
        errors.extend(vec![1.0; 20]);
        // Bar 1.25: the first 10-window stretch averaging ≤ 1.25 starts at 20 − 1 (one 10
        // in ten ones averages 1.9 > 1.25), so at 20.
        assert_eq!(adapted_after(&errors, 1.0, 0.0), Some(20));
        // A higher floor lets it adapt earlier.
        assert_eq!(adapted_after(&errors, 1.0, 2.0), Some(19));
        assert_eq!(adapted_after(&[10.0; 30], 1.0, 0.0), None);
        assert_eq!(adapted_after(&[1.0; 30], 1.0, 0.0), Some(0));
    }

    #[test]
    fn matched_from_waits_until_the_rest_of_the_period_is_as_good() {
        // The baseline is 4 ms off for 30 samples, then as good as the graph (1 ms).
        let mut baseline = vec![4.0; 30];
        baseline.extend(vec![1.0; 30]);
        let graph = vec![1.0; 60];
        // From n on its mean is (4(30 − n) + 30) / (60 − n): 42 / 33 = 1.27 at n = 27, 38 / 32
        // = 1.19 ≤ 1.25 at n = 28.
        assert_eq!(matched_from(&baseline, &graph, 0.0), Some(28));
        // The graph matches the baseline at once.
        assert_eq!(matched_from(&graph, &baseline, 0.0), Some(0));
        // A floor above the error matches at once; a model that is never as good, never.
        assert_eq!(matched_from(&baseline, &graph, 4.0), Some(0));
        assert_eq!(matched_from(&[3.0; 40], &graph[..40], 0.0), None);
        // Fewer than ADAPT_WINDOW forecasts: no verdict.
        assert_eq!(matched_from(&[1.0; 5], &[1.0; 5], 0.0), None);
    }

    #[test]
    fn changes_group_by_time() {
        let labels: Labels = serde_json::from_value(serde_json::json!({"changes": [
            {"kind": "scale_out", "service": "a", "at_ms": 5, "detail": "replicas 1 -> 2"},
            {"kind": "scale_out", "service": "b", "at_ms": 5, "detail": "replicas 1 -> 2"},
            {"kind": "replace", "service": "a", "at_ms": 9, "detail": "x"},
        ]}))
        .unwrap();
        let c = changes_from_labels(&labels);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].at_ms, 5);
        assert!(c[0].change.contains("scale_out a") && c[0].change.contains("scale_out b"));
        assert_eq!(c[1].change, "replace a (x)");
    }
}

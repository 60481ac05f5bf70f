//! `augur eval`: replay recorded input once, run every requested detector on the same
//! windows, and score each against the QoS ground truth and `labels.json`.

pub mod forecast;
pub mod plot;
pub mod recovery;
pub mod score;
pub mod svg;
pub mod twin_plot;

use serde::Serialize;

use augur_operators::{Alert, WindowSnapshot};

use augur_connectors::simulator::FaultLabel;

use score::{Score, ScoreParams, WindowTruth};

/// Pipeline figures of the replay.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PipelineFigures {
    pub spans: u64,
    pub spans_per_s: f64,
    pub alert_latency_ms_p99: f64,
    pub wall_s: f64,
    pub workers: usize,
    pub dead_letters: u64,
    pub late: u64,
    /// The replay was stopped (Ctrl-C, SIGTERM) before the end of its input: every figure
    /// covers only the windows read until then.
    pub interrupted: bool,
    /// Spans by kind (`unspecified`, `server`, ...; kinds not seen are left out): all
    /// `unspecified` is kind-less instrumentation, whose calls are inferred from parents.
    pub span_kinds: std::collections::BTreeMap<String, u64>,
    /// Log records decoded.
    pub log_records: u64,
}

/// A detector's inference cost in the replay (on the model workers' inference threads),
/// and what it served with.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelFigures {
    /// Windows the detector observed.
    pub windows: u64,
    pub inference_ms_p50: f64,
    pub inference_ms_p99: f64,
    /// The detector's version at the end (a learned model's checkpoint, e.g.
    /// `sage-chain-v3`); empty when it observed no window.
    pub version: String,
    /// Windows it had no model for (e.g. sage with no checkpoint matching the services).
    pub unserved_windows: u64,
}

impl ModelFigures {
    pub fn of(times: Option<augur_operators::DetectorTimes>) -> Self {
        let times = times.unwrap_or_default();
        ModelFigures {
            windows: times.windows,
            inference_ms_p50: times.percentile_ms(50.0),
            inference_ms_p99: times.percentile_ms(99.0),
            version: times.version.clone(),
            unserved_windows: times.unserved_windows,
        }
    }
}

/// One detector's report: the stable `augur eval --json` object.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub detector: String,
    #[serde(flatten)]
    pub score: Score,
    pub pipeline: PipelineFigures,
    /// Set by the caller from the job's inference times.
    pub model: ModelFigures,
    /// Fluxion only: forecast accuracy and adaptation (`eval/forecast.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<forecast::ForecastReport>,
}

/// Ground truth of the windows that saw traffic. When the input ends, the dependency
/// graph retires its edges in snapshots with no services and no QoS verdicts; those aren't
/// windows of the application and don't count.
pub fn window_truth(windows: &[WindowSnapshot]) -> Vec<WindowTruth> {
    windows
        .iter()
        .filter(|w| !w.services.is_empty() || !w.qos.is_empty())
        .map(|w| WindowTruth {
            window_end: w.window_end,
            violated: w.violated(),
        })
        .collect()
}

/// Scores one detector's alerts (those whose `model.name` is `detector`).
pub fn report_for(
    detector: &str,
    windows: &[WindowTruth],
    alerts: &[Alert],
    faults: &[FaultLabel],
    params: ScoreParams,
    pipeline: PipelineFigures,
) -> Report {
    let mine: Vec<Alert> = alerts
        .iter()
        .filter(|a| a.model.name == detector)
        .cloned()
        .collect();
    Report {
        detector: detector.to_string(),
        score: score::score(windows, &mine, faults, params),
        pipeline,
        model: ModelFigures::default(),
        forecast: None,
    }
}

/// A Markdown table of reports, for terminals and documentation.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| detector | windows | violations | recall | predicted | precision | FPR | lead p50 (ms) | RCA cases | AC@1 | AC@3 |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let s = &r.score;
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.0} | {} | {:.2} | {:.2} |\n",
            r.detector,
            s.windows,
            s.violations,
            s.detection.recall,
            s.detection.predicted_recall,
            s.detection.precision,
            s.detection.fpr,
            s.detection.lead_time_ms_p50,
            s.rca.cases,
            s.rca.ac1,
            s.rca.ac3
        ));
    }
    out
}

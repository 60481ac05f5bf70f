//! `augur record --input DIR --out FILE.arrow` or `augur record --brokers B [--topic T]
//! [--labels FILE] --out FILE.arrow`: replay recorded files or a topic's history through
//! the dataflow and write Seer's training data — per window the `[services × features]` tensor (back
//! end first, missing services zeros) and its labels — as one Arrow IPC file.
//!
//! Labels: a window is positive when a violating window ends within `[t, t + horizon]`;
//! its culprit is the service of the fault in `labels.json` active then (see
//! `augur_models::seer::labels`).

use std::sync::Arc;

use augur_models::seer::{Dataset, FEATURES, Fault, Row, UsageFill, label_windows};
use augur_operators::WindowSnapshot;

use crate::cli::RecordArgs;
use crate::commands::eval::labels_and_slos;
use crate::commands::replay::topic_source_spec;
use crate::commands::{load_config, metric_names, stop_on_signal};
use crate::dataflow::JobSpec;
use crate::eval::window_truth;
use crate::job_metrics::JobMetrics;
use crate::run::{RunOptions, run as run_job};
use crate::source::replay_sources;

pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let config = load_config(args.job.config.as_deref())?;
    let (labels, slos) = labels_and_slos(
        &config,
        args.input.as_deref(),
        &args.topics,
        args.labels.as_deref(),
        &args.labels_topic,
    )?;
    let names = metric_names(&config);
    let topic_source = match &args.input {
        Some(_) => None,
        None => Some(topic_source_spec(&config, &args.topics, names.clone())?),
    };
    let window_ms = config.window.length_ms;
    let horizon_ms = config.window.horizon_ms;
    let spec = JobSpec {
        decide_log: None,
        graph_board: None,
        log_miners: Default::default(),
        config,
        slos,
        detectors: Vec::new(),
        workers: args.job.workers,
    };
    let make_source = replay_sources(
        args.input.clone(),
        topic_source,
        names,
        Arc::new(JobMetrics::default()),
    );
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            progress: Some(if args.input.is_some() {
                "input bytes"
            } else {
                "offsets"
            }),
            keep_windows: true,
            ..RunOptions::default()
        },
        stop_on_signal(),
        |_| {},
        |_| {},
    )?;
    let faults: Vec<Fault> = labels
        .faults
        .into_iter()
        .map(|f| Fault {
            service: f.service,
            start_ms: f.start_ms,
            end_ms: f.end_ms,
        })
        .collect();
    let ds = dataset(&outcome.windows, &faults, window_ms, horizon_ms);
    ds.write(&args.out)?;
    let positives = ds.rows.iter().filter(|r| r.positive).count();
    println!(
        "record: {} windows ({positives} positive, {} with a culprit), {} services × {} features → {}",
        ds.rows.len(),
        ds.rows.iter().filter(|r| r.culprit.is_some()).count(),
        ds.services.len(),
        ds.features.len(),
        args.out.display()
    );
    Ok(())
}

/// The windows of one replay as a dataset. Services: the longest dependency-graph order
/// seen (back end first), then any others in order of appearance.
pub fn dataset(
    windows: &[WindowSnapshot],
    faults: &[Fault],
    window_ms: u64,
    horizon_ms: u64,
) -> Dataset {
    let truth = window_truth(windows);
    let windows: Vec<&WindowSnapshot> = windows
        .iter()
        .filter(|w| !w.services.is_empty() || !w.qos.is_empty())
        .collect();
    let mut services: Vec<String> = windows
        .iter()
        .max_by_key(|w| w.order.len())
        .map(|w| w.order.clone())
        .unwrap_or_default();
    for w in &windows {
        for s in w.order.iter().chain(w.services.iter().map(|s| &s.service)) {
            if !services.contains(s) {
                services.push(s.clone());
            }
        }
    }
    let verdicts: Vec<(u64, bool)> = truth.iter().map(|t| (t.window_end, t.violated)).collect();
    let labels = label_windows(&verdicts, faults, window_ms, horizon_ms, 5 * window_ms);
    let mut fill = UsageFill::default();
    let rows = windows
        .iter()
        .zip(labels)
        .map(|(w, label)| Row {
            window_end: w.window_end,
            violated: w.violated(),
            positive: label.positive,
            culprit: label
                .culprit
                .and_then(|c| services.iter().position(|s| *s == c)),
            x: fill.matrix(w, &services),
        })
        .collect();
    Dataset {
        services,
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        window_ms,
        horizon_ms,
        rows,
    }
}

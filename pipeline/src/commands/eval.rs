//! `augur eval --input DIR`: replay once, score every requested detector.

use crate::cli::EvalArgs;
use crate::commands::{load_config, metric_names, read_labels, resolve_slos, stop_on_signal};
use crate::dataflow::JobSpec;
use crate::eval::score::ScoreParams;
use crate::eval::{
    PipelineFigures, faults_from_labels, percentile, report_for, table, window_truth,
};
use crate::run::{RunOptions, run as run_job};
use crate::source::WorkerSource;
use crate::source::files::{FileSource, input_files};
use crate::stats::JobStats;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let config = load_config(args.job.config.as_deref())?;
    input_files(&args.input)?;
    let labels = read_labels(&args.input)?;
    let slos = resolve_slos(&config, &args.input)?;
    let detectors: Vec<String> = match args.detector.as_deref() {
        None => vec![config.detector.name.clone()],
        Some("all") => augur_models::DETECTOR_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
    };
    for name in &detectors {
        augur_models::build(name, &config.detector.settings(), config.window.horizon_ms)?;
    }
    let names = metric_names(&config);
    let input = args.input.clone();
    let params = ScoreParams {
        window_ms: config.window.length_ms,
        horizon_ms: config.window.horizon_ms,
        slack_ms: 5 * config.window.length_ms,
    };
    let spec = JobSpec {
        config,
        slos,
        detectors: detectors.clone(),
        workers: args.job.workers,
    };
    let make_source = move |index: usize, peers: usize| -> anyhow::Result<Box<dyn WorkerSource>> {
        Ok(Box::new(FileSource::open(
            &input,
            names.clone(),
            index,
            peers,
        )?))
    };
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            progress: if args.json { None } else { Some("input bytes") },
            keep_windows: true,
            ..RunOptions::default()
        },
        stop_on_signal(),
        |_| {},
        |_| {},
    )?;
    let secs = outcome.wall.as_secs_f64().max(1e-9);
    let spans = JobStats::get(&outcome.stats.spans);
    let pipeline = PipelineFigures {
        spans,
        spans_per_s: spans as f64 / secs,
        alert_latency_ms_p99: percentile(&outcome.alert_latency_ms, 99.0),
        wall_s: secs,
        workers: args.job.workers,
        dead_letters: JobStats::get(&outcome.stats.dead_letters),
        late: JobStats::get(&outcome.stats.late),
    };
    let truth = window_truth(&outcome.windows);
    let faults = faults_from_labels(&labels);
    let reports: Vec<_> = detectors
        .iter()
        .map(|d| {
            report_for(
                d,
                &truth,
                &outcome.alerts,
                &faults,
                params,
                pipeline.clone(),
            )
        })
        .collect();
    if args.json {
        for report in &reports {
            println!("{}", serde_json::to_string(report)?);
        }
    } else {
        println!("{}", table(&reports));
        println!(
            "pipeline: {spans} spans in {secs:.1} s ({:.0} spans/s on {} worker(s)); window-close→alert p99 {:.1} ms; {} dead letters",
            pipeline.spans_per_s,
            pipeline.workers,
            pipeline.alert_latency_ms_p99,
            pipeline.dead_letters
        );
    }
    Ok(())
}

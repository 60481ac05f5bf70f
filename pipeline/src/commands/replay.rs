//! `augur replay --input DIR`: the same dataflow over recorded files, as fast as possible.

use std::io::Write;

use anyhow::Context;
use augur_connectors::files::LineWriter;

use crate::cli::ReplayArgs;
use crate::commands::{load_config, metric_names, resolve_slos, stop_on_signal};
use crate::dataflow::JobSpec;
use crate::display::alert_line;
use crate::run::{RunOptions, run as run_job};
use crate::source::WorkerSource;
use crate::source::files::{FileSource, input_files};
use crate::stats::JobStats;

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let config = load_config(args.job.config.as_deref())?;
    input_files(&args.input)?;
    let slos = resolve_slos(&config, &args.input)?;
    let detector = args
        .detector
        .clone()
        .unwrap_or_else(|| config.detector.name.clone());
    augur_models::build(
        &detector,
        &config.detector.settings(),
        config.window.horizon_ms,
    )?;
    let names = metric_names(&config);
    let input = args.input.clone();
    let spec = JobSpec {
        config,
        slos,
        detectors: vec![detector],
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
    let mut writer = match &args.alerts_out {
        Some(path) => {
            Some(LineWriter::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let mut write_error = None;
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            progress: Some("input bytes"),
            keep_windows: false,
        },
        stop_on_signal(),
        |alert| match writer.as_mut() {
            Some(w) => {
                let line = serde_json::to_vec(alert).unwrap_or_default();
                if let Err(e) = w.write_line(&line) {
                    write_error.get_or_insert(e);
                }
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", alert_line(alert));
            }
        },
        |_| {},
    )?;
    if let Some(e) = write_error {
        return Err(e).context("writing alerts");
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    let secs = outcome.wall.as_secs_f64().max(1e-9);
    let spans = JobStats::get(&outcome.stats.spans);
    eprintln!(
        "replayed {spans} spans in {secs:.1} s ({:.0} spans/s); {} alerts; {} dead letters ({} late)",
        spans as f64 / secs,
        outcome
            .alerts
            .iter()
            .filter(|a| a.ends_at.is_none())
            .count(),
        JobStats::get(&outcome.stats.dead_letters),
        JobStats::get(&outcome.stats.late)
    );
    if let Some(path) = &args.alerts_out {
        eprintln!("alerts written to {}", path.display());
    }
    Ok(())
}

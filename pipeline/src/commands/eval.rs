//! `augur eval --input DIR` or `augur eval --brokers B [--topic T] [--labels FILE]`: replay
//! files or a topic's history once, score every requested detector.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use augur_connectors::kafka::{PartitionConsumer, StartAt};
use augur_connectors::simulator::Labels;

use crate::cli::{EvalArgs, TopicInput};
use crate::commands::replay::topic_source_spec;
use crate::commands::{
    load_config, metric_names, read_labels, resolve_slos, stop_on_signal, topology_slos,
};
use crate::config::Config;
use crate::dataflow::JobSpec;
use crate::eval::forecast::{self, changes_from_labels};
use crate::eval::plot;
use crate::eval::score::ScoreParams;
use crate::eval::{ModelFigures, PipelineFigures, percentile, report_for, table, window_truth};
use crate::job_metrics::JobMetrics;
use crate::run::{RunOptions, run as run_job};
use crate::source::files::input_files;
use crate::source::replay_sources;
use crate::stats::JobStats;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    if args.closed_loop {
        return crate::commands::closed_loop::run(args);
    }
    if args.simulate {
        return crate::commands::sim_eval::run(args);
    }
    if let Some(dir) = &args.cases {
        return crate::commands::eval_cases::run(args, dir);
    }
    run_until(args, stop_on_signal())
}

/// A replay eval that stops reading once `stop` is set (Ctrl-C, SIGTERM): it still scores
/// and prints what was read, marked `pipeline.interrupted`, then fails, so that a stopped
/// eval is never mistaken for a complete one.
pub fn run_until(args: &EvalArgs, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let config = load_config(args.job.config.as_deref())?;
    let (labels, slos) = labels_and_slos(
        &config,
        args.input.as_deref(),
        &args.topics,
        args.labels.as_deref(),
        &args.labels_topic,
    )?;
    let topic_source = match &args.input {
        Some(_) => None,
        None => Some(topic_source_spec(
            &config,
            &args.topics,
            metric_names(&config),
        )?),
    };
    let detectors = crate::commands::detector_list(args.detector.as_deref(), &config)?;
    let names = metric_names(&config);
    let input = args.input.clone();
    let fluxion_config = config.detector.fluxion.clone();
    let params = ScoreParams {
        window_ms: config.window.length_ms,
        horizon_ms: config.window.horizon_ms,
        slack_ms: 5 * config.window.length_ms,
    };
    let spec = JobSpec {
        decide_log: None,
        graph_board: None,
        config,
        slos,
        detectors: detectors.clone(),
        workers: args.job.workers,
    };
    let metrics = Arc::new(JobMetrics::default());
    let make_source = replay_sources(input, topic_source, names, Arc::clone(&metrics));
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            progress: match (args.json, &args.input) {
                (true, _) => None,
                (false, Some(_)) => Some("input bytes"),
                (false, None) => Some("offsets"),
            },
            keep_windows: true,
            ..RunOptions::default()
        },
        Arc::clone(&stop),
        |_| {},
        |_| {},
    )?;
    let interrupted = stop.load(Ordering::SeqCst);
    print_reports(
        args,
        &detectors,
        &outcome,
        &labels,
        params,
        &fluxion_config,
        interrupted,
    )?;
    if interrupted {
        anyhow::bail!(
            "interrupted after {} windows: the reports cover only those",
            outcome.windows.len()
        );
    }
    Ok(())
}

/// Scores every detector of a finished run against its windows and labels, and prints the
/// reports (a table, or one JSON object per detector with `--json`).
pub fn print_reports(
    args: &EvalArgs,
    detectors: &[String],
    outcome: &crate::run::RunOutcome,
    labels: &Labels,
    params: ScoreParams,
    fluxion_config: &augur_models::fluxion::FluxionConfig,
    interrupted: bool,
) -> anyhow::Result<()> {
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
        interrupted,
        span_kinds: outcome
            .stats
            .span_kind_counts()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| (kind.to_string(), *n))
            .collect(),
        log_records: JobStats::get(&outcome.stats.log_records),
    };
    let truth = window_truth(&outcome.windows);
    let faults = &labels.faults;
    let reports: Vec<_> = detectors
        .iter()
        .map(|d| {
            let mut report =
                report_for(d, &truth, &outcome.alerts, faults, params, pipeline.clone());
            report.model = ModelFigures::of(outcome.stats.inference.of(d));
            report
        })
        .collect();
    let mut reports = reports;
    for report in reports.iter_mut().filter(|r| r.detector == "fluxion") {
        let changes = changes_from_labels(labels);
        let forecast = forecast::evaluate(
            &outcome.windows,
            &changes,
            fluxion_config,
            params.window_ms,
            params.horizon_ms,
        )
        .context("evaluating the fluxion forecasts")?;
        report.forecast = Some(forecast);
    }
    if let Some(dir) = &args.report {
        write_report(dir, &reports, labels, &outcome.alerts)?;
    }
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
        println!(
            "{}",
            crate::display::inference_summary(&outcome.stats.inference)
        );
        for r in &reports {
            if let Some(f) = &r.forecast {
                println!(
                    "fluxion forecast of the next window's end-to-end p90 ({} windows): MAE \
                     graph {:.2} ms, monolithic {:.2} ms; no model: last value {:.2} ms, \
                     run mean {:.2} ms\n{}",
                    f.windows,
                    f.mae_ms,
                    f.baseline_mae_ms,
                    f.persistence_mae_ms,
                    f.spread_ms,
                    forecast::change_table(f)
                );
            }
        }
    }
    Ok(())
}

/// `--report DIR`: every alert of the run (`alerts.jsonl`, as written to the alerts topic),
/// each detector's RCA cases and how each was scored (`rca-<detector>.md`, when it has
/// any), and the forecast plot and table of each report that has them.
fn write_report(
    dir: &std::path::Path,
    reports: &[crate::eval::Report],
    labels: &Labels,
    alerts: &[augur_operators::Alert],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let topology = labels.topology().unwrap_or("input");
    let seed = labels.seed;
    let mut lines = String::new();
    for alert in alerts {
        lines.push_str(&serde_json::to_string(alert)?);
        lines.push('\n');
    }
    let path = dir.join("alerts.jsonl");
    std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))?;
    let start_ms = labels.start_ms;
    for r in reports.iter().filter(|r| !r.score.cases.is_empty()) {
        let path = dir.join(format!("rca-{}.md", r.detector));
        let text = format!(
            "# {topology} seed {seed}: {} RCA cases, scored by {} (times in s from the run's start)\n\n{}",
            r.score.cases.len(),
            r.detector,
            crate::eval::score::case_table(&r.score.cases, start_ms)
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("wrote the alerts and RCA cases to {}", dir.display());
    for r in reports {
        let Some(f) = &r.forecast else {
            continue;
        };
        let title = format!(
            "{topology} seed {seed}: next-window end-to-end p90, {} forecast vs observed",
            r.detector
        );
        let svg = dir.join("forecast.svg");
        std::fs::write(&svg, plot::forecast_svg(f, &title))
            .with_context(|| format!("writing {}", svg.display()))?;
        let md = dir.join("forecast.md");
        std::fs::write(&md, format!("# {title}\n\n{}", forecast::change_table(f)))
            .with_context(|| format!("writing {}", md.display()))?;
        eprintln!("wrote {} and {}", svg.display(), md.display());
    }
    Ok(())
}

/// Ground truth and SLOs of a replay: from `input`'s labels.json (and its topology), or,
/// for topics, from a labels file or the last message of `labels_topic`.
pub fn labels_and_slos(
    config: &Config,
    input: Option<&std::path::Path>,
    topics: &TopicInput,
    labels: Option<&std::path::Path>,
    labels_topic: &str,
) -> anyhow::Result<(Labels, Vec<augur_operators::Slo>)> {
    match input {
        Some(input) => {
            input_files(input)?;
            Ok((read_labels(input)?, resolve_slos(config, input)?))
        }
        None => {
            let labels = match labels {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))?
                }
                None => labels_from_topic(config, topics, labels_topic)?,
            };
            let slos = if config.slo.is_empty() {
                let topology = labels
                    .topology()
                    .context("no [[slo]] in the config and the labels name no topology")?;
                topology_slos(topology)?
            } else {
                config.slo.clone()
            };
            Ok((labels, slos))
        }
    }
}

/// The last message of the labels topic.
fn labels_from_topic(config: &Config, topics: &TopicInput, topic: &str) -> anyhow::Result<Labels> {
    let mut settings = config.kafka.settings(topics.brokers.as_deref());
    settings.group_id = format!("augur-eval-{}", std::process::id());
    let mut consumer = PartitionConsumer::open(
        &settings,
        &[topic.to_string()],
        0,
        1,
        StartAt::Beginning,
        true,
    )?;
    let mut last = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(0..consumer.assignment().len()).all(|slot| consumer.done(slot)) {
        consumer.poll(64, Duration::from_millis(100), |m| {
            last = Some(m.payload.to_vec())
        });
        if std::time::Instant::now() > deadline {
            break;
        }
    }
    let last = last.with_context(|| format!("no labels in topic {topic}"))?;
    serde_json::from_slice(&last).with_context(|| format!("parsing the labels from {topic}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(argv: &[&str]) -> Command {
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{argv:?}: {e}"),
        }
    }

    /// A stopped eval reports what it read but fails: its exit status must not say the
    /// replay was scored in full. The stop is raised before the replay starts, so the
    /// test doesn't depend on when a signal would land.
    #[test]
    fn a_stopped_eval_fails_after_its_reports() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let out = tmp.path().join("chain");
        let out_arg = out.to_str().expect("a UTF-8 path");
        let Command::Simulate(sim) = parse(&[
            "augur",
            "simulate",
            "--topology",
            "chain",
            "--duration",
            "20s",
            "--seed",
            "3",
            "--out",
            out_arg,
        ]) else {
            panic!("not simulate");
        };
        crate::commands::simulate::run(&sim).expect("the simulation");
        let Command::Eval(eval) = parse(&[
            "augur",
            "eval",
            "--input",
            out_arg,
            "--detector",
            "nsigma",
            "--json",
        ]) else {
            panic!("not eval");
        };
        run_until(&eval, Arc::new(AtomicBool::new(false))).expect("a complete eval succeeds");
        let stopped = run_until(&eval, Arc::new(AtomicBool::new(true)));
        let message = format!("{:#}", stopped.expect_err("a stopped eval fails"));
        assert!(message.contains("interrupted after"), "{message}");
    }
}

//! `augur eval --input DIR` or `augur eval --brokers B [--topic T] [--labels FILE]`: replay
//! files or a topic's history once, score every requested detector.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use augur_connectors::kafka::{PartitionConsumer, StartAt};
use augur_connectors::simulator::Labels;

use crate::cli::{EvalArgs, EvalMode, TopicInput};
use crate::commands::eval_report::print_reports;
use crate::commands::replay::topic_source_spec;
use crate::commands::{
    load_config, metric_names, read_labels, resolve_slos, stop_on_signal, topology_slos,
};
use crate::config::Config;
use crate::dataflow::JobSpec;
use crate::eval::score::ScoreParams;
use crate::job_metrics::JobMetrics;
use crate::run::{RunOptions, run as run_job};
use crate::source::input_files;
use crate::source::replay_sources;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    match args.mode() {
        EvalMode::ClosedLoop => crate::commands::closed_loop::run(args),
        EvalMode::Simulate => crate::commands::sim_eval::run(args),
        EvalMode::Cases(dir) => crate::commands::eval_cases::run(args, dir),
        EvalMode::Replay => run_until(args, stop_on_signal()),
    }
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
    let detectors = crate::commands::detector_list(args.detector.as_ref(), &config)?;
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
        log_miners: Default::default(),
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
            if input_files(input)?.single.is_some() {
                anyhow::bail!(
                    "{} is a file: `augur eval --input` takes the directory that holds the \
                     recorded files and their labels.json (`augur diagnose` and `augur replay` \
                     read one file)",
                    input.display()
                );
            }
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

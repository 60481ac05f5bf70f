//! `augur run`: the stream job. Kafka spans, metrics and logs in (the workers of all the job's
//! processes split the partitions; see `cluster`); alerts to `augur.alerts`, actuation commands to `augur.actions`, dead
//! letters to `augur.dlq`; offsets committed at least once (see docs/kafka.md, "Delivery
//! guarantee"); job metrics on an HTTP endpoint. Stops on SIGTERM/Ctrl-C with a final commit.

use std::io::Write;
use std::sync::Arc;

use std::collections::BTreeMap;

use augur_connectors::kafka::{
    BROKER_WAIT, KafkaMetrics, KafkaSink, KafkaSource, KafkaSourceSpec, OutputTopics, StartAt,
    ensure_compacted_topic, ensure_reachable, ensure_topics, latest_by_key, state_key,
};
use augur_models::DetectorKind;
use augur_operators::EventTime;
use augur_operators::decide::DeciderState;
use augur_operators::decide_log::DecideLog;

use crate::actuation::what_if::JobWhatIf;
use crate::cli::RunArgs;
use crate::commands::supervise::{self, RestartStrategy};
use crate::commands::{
    STOP_GRACE, job_slos, load_config, load_job_normal, metric_names, stop_on_signal_within,
};
use crate::dataflow::JobSpec;
use crate::display::alert_line;
use crate::job_metrics::{JobMetrics, serve};
use crate::run::{RunOptions, run as run_job};
use crate::sink::kafka::KafkaOutputs;
use crate::source::WorkerSource;
use crate::stats::JobStats;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.job.config.as_deref())?;
    if config.restart.strategy != RestartStrategy::None && !supervise::is_supervised_job() {
        std::process::exit(supervise::supervise(&config.restart)?);
    }
    let cluster = args.cluster.cluster()?;
    let kafka = config.kafka.clone();
    let settings = kafka.settings(args.brokers.as_deref());
    ensure_reachable(&settings, BROKER_WAIT)?;
    let slos = job_slos(&config)?;
    augur_models::build(
        config.detector.name,
        &config.detector.settings(),
        config.window.horizon_ms,
    )?;
    ensure_topics(
        &settings,
        &[
            (kafka.spans_topic.as_str(), kafka.partitions),
            (kafka.metrics_topic.as_str(), kafka.partitions),
            (kafka.logs_topic.as_str(), kafka.partitions),
            (kafka.alerts_topic.as_str(), kafka.partitions),
            (kafka.actions_topic.as_str(), kafka.partitions),
            (kafka.dlq_topic.as_str(), kafka.partitions),
        ],
    )?;
    ensure_compacted_topic(&settings, &kafka.state_topic)?;
    let state_prefix = format!("{}/", kafka.group_id);
    let mut detectors = vec![config.detector.name];
    let what_if = JobWhatIf::for_job(&config, &mut detectors);
    let resume = resume_states(&settings, &kafka.state_topic, &state_prefix, &detectors)?;
    let metrics = Arc::new(JobMetrics::default());
    let sink = KafkaSink::new(
        &settings,
        OutputTopics {
            partitions: kafka.partitions,
            alerts: kafka.alerts_topic.clone(),
            actions: kafka.actions_topic.clone(),
            dlq: kafka.dlq_topic.clone(),
            state: kafka.state_topic.clone(),
            state_prefix,
        },
        Arc::clone(&metrics) as Arc<dyn KafkaMetrics>,
    )?
    .with_dlq_max_bytes(kafka.dlq_max_bytes);
    let outputs = KafkaOutputs::new(sink, kafka.actions_mode, config.actuation.clone())
        .with_what_if(what_if.model());
    let source_spec = KafkaSourceSpec {
        settings: settings.clone(),
        spans_topic: kafka.spans_topic.clone(),
        spans_encoding: kafka.spans_encoding,
        metrics_topic: kafka.metrics_topic.clone(),
        metrics_encoding: kafka.metrics_encoding,
        logs_topic: Some(kafka.logs_topic.clone()),
        logs_encoding: kafka.logs_encoding,
        max_future_ms: kafka.max_future_ms,
        names: metric_names(&config),
        window_ms: config.window.length_ms,
        lateness_ms: config.window.allowed_lateness_ms,
        idle_ms: kafka.idle_timeout_ms,
        start: StartAt::Committed,
        bounded: false,
        time_range: (0, EventTime::MAX),
        commit: true,
        replay_ms: kafka.restart_replay_ms,
    };
    let workers = match &cluster {
        Some(c) => format!(
            "{} workers (process {} of {}, {} workers in all)",
            args.job.workers,
            c.process,
            c.addresses.len(),
            args.job.workers * c.addresses.len()
        ),
        None => format!("{} workers", args.job.workers),
    };
    eprintln!(
        "augur run: {} → {workers} → {}, {}, {} (group {}, detectors {}, window {} ms)",
        [
            kafka.spans_topic.as_str(),
            kafka.metrics_topic.as_str(),
            kafka.logs_topic.as_str()
        ]
        .join(" + "),
        kafka.alerts_topic,
        kafka.actions_topic,
        kafka.dlq_topic,
        kafka.group_id,
        detectors
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", "),
        config.window.length_ms
    );
    let log_miners = load_job_normal(&mut config, &detectors)?;
    let listen = config.job_metrics.listen.clone();
    let spec = JobSpec {
        decide_log: Some(Arc::new(DecideLog::new(resume))),
        graph_board: what_if.board.clone(),
        log_miners,
        detectors,
        slos,
        workers: args.job.workers,
        config,
    };
    let source_metrics = Arc::clone(&metrics);
    let make_source = move |index: usize, peers: usize| -> anyhow::Result<Box<dyn WorkerSource>> {
        Ok(Box::new(KafkaSource::open(
            source_spec.clone(),
            index,
            peers,
            Arc::clone(&source_metrics) as Arc<dyn KafkaMetrics>,
        )?))
    };
    let latency_metrics = Arc::clone(&metrics);
    let endpoint = (!listen.is_empty()).then_some(listen);
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            progress: None,
            keep_windows: false,
            quiet: false,
            outputs: Some(Box::new(outputs)),
            on_start: Some(Box::new(move |stats: Arc<JobStats>| {
                supervise::mark_started();
                if let Some(addr) = &endpoint {
                    match serve(addr, Arc::clone(&metrics), stats) {
                        Ok(bound) => eprintln!("job metrics at http://{bound}/metrics"),
                        Err(e) => eprintln!("warning: no metrics endpoint: {e:#}"),
                    }
                }
            })),
            on_latency: Some(Box::new(move |ms: f64| {
                latency_metrics.alert_latency(ms / 1000.0)
            })),
            feedback: None,
            cluster,
        },
        stop_on_signal_within(Some(STOP_GRACE)),
        |alert| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", alert_line(alert));
        },
        |_| {},
    )?;
    eprintln!(
        "augur run: stopped after {} messages, {} spans, {} alerts, {} dead letters ({} late); offsets committed",
        JobStats::get(&outcome.stats.messages),
        JobStats::get(&outcome.stats.spans),
        outcome.alerts.len(),
        JobStats::get(&outcome.stats.dead_letters),
        JobStats::get(&outcome.stats.late),
    );
    eprintln!(
        "{}",
        crate::display::inference_summary(&outcome.stats.inference)
    );
    Ok(())
}

/// The decide states the group's last run saved in the state topic, per detector. A
/// record that doesn't parse is reported and ignored (the detector starts fresh).
fn resume_states(
    settings: &augur_connectors::kafka::KafkaSettings,
    topic: &str,
    prefix: &str,
    detectors: &[DetectorKind],
) -> anyhow::Result<BTreeMap<String, DeciderState>> {
    let mut states = BTreeMap::new();
    let mut latest = latest_by_key(settings, topic, prefix)?;
    for detector in detectors {
        let key = state_key(prefix, detector.name());
        let Some(bytes) = latest.remove(&key) else {
            continue;
        };
        match serde_json::from_slice::<DeciderState>(&bytes) {
            Ok(state) => {
                let firing = state.firing_ids();
                eprintln!(
                    "resuming {detector}'s alert state after window {} ({} firing{}{})",
                    state.window_end,
                    firing.len(),
                    if firing.is_empty() { "" } else { ": " },
                    firing.join(", ")
                );
                states.insert(detector.to_string(), state);
            }
            Err(e) => eprintln!(
                "warning: {topic} key {key}: not a decide state ({e}); {detector} starts without it"
            ),
        }
    }
    Ok(states)
}

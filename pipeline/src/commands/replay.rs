//! `augur replay --input DIR` or `augur replay --brokers B [--topic T] [--from T0] [--to T1]`:
//! the same dataflow over recorded files or a topic's history, as fast as possible.

use std::io::Write;

use anyhow::Context;
use augur_connectors::files::LineWriter;

use std::sync::Arc;

use augur_connectors::kafka::{KafkaSettings, StartAt};
use augur_connectors::otlp::MetricNames;
use augur_operators::EventTime;

use crate::cli::{ReplayArgs, TopicInput};
use crate::commands::{
    job_slos, load_config, load_job_normal, metric_names, parse_time_ms, resolve_slos,
    stop_on_signal,
};
use crate::config::Config;
use crate::dataflow::JobSpec;
use crate::display::alert_line;
use crate::job_metrics::JobMetrics;
use crate::run::{RunOptions, run as run_job};
use crate::source::replay_sources;
use crate::source::{KafkaSourceSpec, input_files};
use crate::stats::JobStats;

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let cluster = args.cluster.cluster()?;
    let mut config = load_config(args.job.config.as_deref())?;
    let (slos, unit) = match &args.input {
        Some(input) => {
            input_files(input)?;
            (resolve_slos(&config, input)?, "input bytes")
        }
        None => (job_slos(&config)?, "offsets"),
    };
    let detector = args.detector.unwrap_or(config.detector.name);
    augur_models::build(
        detector,
        &config.detector.settings(),
        config.window.horizon_ms,
    )?;
    let names = metric_names(&config);
    let topic_source = match &args.input {
        Some(_) => None,
        None => Some(topic_source_spec(&config, &args.topics, names.clone())?),
    };
    let input = args.input.clone();
    let log_miners = load_job_normal(&mut config, std::slice::from_ref(&detector))?;
    let spec = JobSpec {
        decide_log: None,
        graph_board: None,
        log_miners,
        config,
        slos,
        detectors: vec![detector],
        workers: args.job.workers,
    };
    let metrics = Arc::new(JobMetrics::default());
    let make_source = replay_sources(input, topic_source, names, Arc::clone(&metrics));
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
            progress: Some(unit),
            keep_windows: false,
            cluster,
            ..RunOptions::default()
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
        "replayed {spans} spans and {} log records in {secs:.1} s ({:.0} spans/s); {} alerts; {} dead letters ({} late)",
        JobStats::get(&outcome.stats.log_records),
        spans as f64 / secs,
        outcome
            .alerts
            .iter()
            .filter(|a| a.ends_at.is_none())
            .count(),
        JobStats::get(&outcome.stats.dead_letters),
        JobStats::get(&outcome.stats.late)
    );
    eprintln!(
        "{}",
        crate::display::inference_summary(&outcome.stats.inference)
    );
    if let Some(path) = &args.alerts_out {
        eprintln!("alerts written to {}", path.display());
    }
    Ok(())
}

/// What `--brokers` and its topic flags name, the config filling in the rest: the client
/// settings with a throwaway group (`augur-<purpose>-<pid>`, committing nothing), the
/// topics and the time range, ms since the epoch.
pub struct TopicChoice {
    pub settings: KafkaSettings,
    pub spans_topic: String,
    pub metrics_topic: String,
    pub logs_topic: String,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
}

pub fn topic_choice(
    config: &Config,
    topics: &TopicInput,
    purpose: &str,
) -> anyhow::Result<TopicChoice> {
    let kafka = &config.kafka;
    let mut settings = kafka.settings(topics.brokers.as_deref());
    settings.group_id = format!("augur-{purpose}-{}", std::process::id());
    let or =
        |flag: &Option<String>, default: &String| flag.clone().unwrap_or_else(|| default.clone());
    Ok(TopicChoice {
        settings,
        spans_topic: or(&topics.topic, &kafka.spans_topic),
        metrics_topic: or(&topics.metrics_topic, &kafka.metrics_topic),
        logs_topic: or(&topics.logs_topic, &kafka.logs_topic),
        from_ms: topics.from.as_deref().map(parse_time_ms).transpose()?,
        to_ms: topics.to.as_deref().map(parse_time_ms).transpose()?,
    })
}

/// A bounded read of the topics' history: from `--from` (by `offsets_for_times`, else from
/// the start) to the end offsets at the start, records outside `[from, to)` skipped. Uses
/// a throwaway consumer group and commits nothing.
pub fn topic_source_spec(
    config: &Config,
    topics: &TopicInput,
    names: MetricNames,
) -> anyhow::Result<KafkaSourceSpec> {
    let kafka = &config.kafka;
    let TopicChoice {
        settings,
        spans_topic,
        metrics_topic,
        logs_topic,
        from_ms: from,
        to_ms: to,
    } = topic_choice(config, topics, "replay")?;
    Ok(KafkaSourceSpec {
        settings,
        spans_topic,
        spans_encoding: kafka.spans_encoding,
        metrics_topic,
        metrics_encoding: kafka.metrics_encoding,
        logs_topic: Some(logs_topic),
        logs_encoding: kafka.logs_encoding,
        max_future_ms: kafka.max_future_ms,
        names,
        window_ms: config.window.length_ms,
        lateness_ms: config.window.allowed_lateness_ms,
        idle_ms: kafka.idle_timeout_ms,
        start: from.map_or(StartAt::Beginning, |ms| StartAt::Time {
            ms,
            ask: kafka.offsets_for_times,
        }),
        bounded: true,
        time_range: (from.unwrap_or(0), to.unwrap_or(EventTime::MAX)),
        commit: false,
        replay_ms: 0,
    })
}

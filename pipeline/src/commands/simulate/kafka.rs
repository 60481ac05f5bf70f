//! `augur simulate --kafka BROKERS`: in, the simulator; out, its spans and metrics as the
//! OpenTelemetry Collector's Kafka exporter writes them (one export request per message,
//! the config's encodings), spread over the topics' partitions by trace id (spans) and
//! service (metrics), at `--speed` or as fast as possible; the ground-truth labels as one
//! JSON message to the labels topic (and optionally a file); optionally corrupt messages.
//! Each message is its own producer batch (`batch.num.messages=1`), which brokers that
//! serve whole batches need.

use std::time::{Duration, Instant};

use anyhow::Context;
use augur_connectors::kafka::{
    BROKER_WAIT, Encoding, KafkaSettings, OutputProducer, ensure_reachable, ensure_topics,
    topic_partitions,
};
use augur_connectors::otlp::{
    encode_metrics_json, encode_metrics_proto, encode_traces_json, encode_traces_proto,
};
use augur_connectors::simulator::Simulator;
use rdkafka::consumer::BaseConsumer;

use super::{LINE_MS, MAX_SPANS_PER_LINE};
use crate::cli::SimulateArgs;
use crate::commands::load_config;

pub fn to_kafka(args: &SimulateArgs, brokers: &str) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let kafka = &config.kafka;
    let settings: KafkaSettings = kafka.settings(Some(brokers));
    ensure_reachable(&settings, BROKER_WAIT)?;
    ensure_topics(
        &settings,
        &[
            (kafka.spans_topic.as_str(), kafka.partitions),
            (kafka.metrics_topic.as_str(), kafka.partitions),
            (args.labels_topic.as_str(), 1),
        ],
    )?;
    let probe: BaseConsumer = settings
        .consumer()
        .create()
        .context("creating a metadata client")?;
    let span_parts = topic_partitions(&probe, &kafka.spans_topic)?.max(1) as u64;
    let metric_parts = topic_partitions(&probe, &kafka.metrics_topic)?.max(1) as u64;
    drop(probe);

    let (sim_config, duration_ms) = super::sim_config(args)?;
    let mut sim = Simulator::new(sim_config)?;
    let mut producer = OutputProducer::unbatched(&settings)?;

    let start = sim.now_ms();
    let started = Instant::now();
    let corrupt_every = (args.corrupt > 0).then(|| (duration_ms / (args.corrupt + 1)).max(LINE_MS));
    let mut corrupt_sent = 0u64;
    let (mut spans, mut points) = (Vec::new(), Vec::new());
    let (mut span_count, mut point_count, mut messages) = (0u64, 0u64, 0u64);
    let mut now = start;
    while now < start + duration_ms {
        now = (now + LINE_MS).min(start + duration_ms);
        spans.clear();
        points.clear();
        sim.advance_to(now, &mut spans, &mut points);
        for (partition, group) in split(&spans, span_parts, |s| s.trace_id as u64) {
            for chunk in group.chunks(MAX_SPANS_PER_LINE) {
                let payload = match kafka.spans_encoding {
                    Encoding::OtlpJson => encode_traces_json(chunk).into_bytes(),
                    _ => encode_traces_proto(chunk),
                };
                producer.send(
                    &kafka.spans_topic,
                    Some(partition),
                    None,
                    &payload,
                    &[],
                    None,
                )?;
                messages += 1;
            }
        }
        for (partition, group) in split(&points, metric_parts, |p| fnv(&p.service)) {
            let payload = match kafka.metrics_encoding {
                Encoding::OtlpJson => encode_metrics_json(&group).into_bytes(),
                _ => encode_metrics_proto(&group),
            };
            producer.send(
                &kafka.metrics_topic,
                Some(partition),
                None,
                &payload,
                &[],
                None,
            )?;
            messages += 1;
        }
        if let Some(every) = corrupt_every {
            while corrupt_sent < args.corrupt && now - start >= every * (corrupt_sent + 1) {
                let payload = format!("\u{0}corrupt message {corrupt_sent} {{not otlp");
                let partition = (corrupt_sent % span_parts) as i32;
                producer.send(
                    &kafka.spans_topic,
                    Some(partition),
                    None,
                    payload.as_bytes(),
                    &[],
                    None,
                )?;
                corrupt_sent += 1;
                messages += 1;
            }
        }
        span_count += spans.len() as u64;
        point_count += points.len() as u64;
        if let Some(speed) = args.speed {
            let due = Duration::from_secs_f64((now - start) as f64 / 1000.0 / speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let labels = serde_json::to_string_pretty(&sim.labels())?;
    producer.send(
        &args.labels_topic,
        None,
        Some(b"labels"),
        labels.as_bytes(),
        &[],
        None,
    )?;
    producer
        .flush_waiting(std::time::Duration::from_secs(60))
        .context("waiting for the broker to acknowledge")?;
    if let Some(path) = &args.labels_out {
        std::fs::write(path, &labels).with_context(|| format!("writing {}", path.display()))?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "simulated {} s of {} (seed {}): {span_count} spans, {point_count} metric points, {corrupt_sent} corrupt, in {messages} messages to {} in {secs:.1} s ({:.0} msg/s, {:.0} spans/s, all acknowledged)",
        duration_ms / 1000,
        args.topology,
        args.seed,
        settings.brokers,
        messages as f64 / secs,
        span_count as f64 / secs,
    );
    Ok(())
}

/// Records grouped by `key % partitions`, in partition order.
fn split<T: Clone>(records: &[T], partitions: u64, key: impl Fn(&T) -> u64) -> Vec<(i32, Vec<T>)> {
    let mut groups: Vec<Vec<T>> = vec![Vec::new(); partitions as usize];
    for r in records {
        groups[(key(r) % partitions) as usize].push(r.clone());
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .map(|(p, g)| (p as i32, g))
        .collect()
}

/// FNV-1a: a stable hash across runs and processes.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

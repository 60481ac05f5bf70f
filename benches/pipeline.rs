//! Whole-pipeline harness: a simulated social network, encoded as OTLP protobuf messages in
//! memory, through decode → features → graph → QoS → detector → alerts, on 1 and 2
//! workers. Prints spans/s (total and per worker) and window-close→alert latency.
//!
//! `cargo bench --bench pipeline [-- SECONDS]` (default 120 simulated seconds).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use augur::config::Config;
use augur::dataflow::JobSpec;
use augur::eval::percentile;
use augur::run::{RunOptions, run};
use augur::source::{Batch, PartitionWatermarks, SourceState, WorkerSource};
use augur::stats::JobStats;
use augur_connectors::otlp::{
    MetricNames, decode_metrics_proto, decode_traces_proto, encode_metrics_proto,
    encode_traces_proto,
};
use augur_connectors::simulator::{SimConfig, Simulator, Topology};

/// Encoded messages: (partition 0 = spans / 1 = metrics, bytes).
struct MemorySource {
    messages: Arc<Vec<(usize, Vec<u8>)>>,
    next: usize,
    index: usize,
    peers: usize,
    watermarks: PartitionWatermarks,
    names: MetricNames,
}

impl WorkerSource for MemorySource {
    fn poll(&mut self, batch: &mut Batch) -> anyhow::Result<SourceState> {
        let mut taken = 0;
        while self.next < self.messages.len() && taken < 8 {
            let i = self.next;
            self.next += 1;
            if i % self.peers != self.index {
                continue;
            }
            taken += 1;
            let (partition, bytes) = &self.messages[i];
            batch.messages += 1;
            if *partition == 0 {
                let before = batch.spans.len();
                decode_traces_proto(bytes, &mut batch.spans)?;
                if let Some(t) = batch.spans[before..].iter().map(|s| s.event_ms()).max() {
                    self.watermarks.observe(0, t);
                }
            } else {
                let before = batch.metrics.len();
                decode_metrics_proto(bytes, &self.names, &mut batch.metrics)?;
                if let Some(t) = batch.metrics[before..].iter().map(|m| m.event_ms()).max() {
                    self.watermarks.observe(1, t);
                }
            }
        }
        if self.next >= self.messages.len() {
            return Ok(SourceState::Exhausted);
        }
        Ok(SourceState::Active {
            watermark_ms: self.watermarks.watermark(),
            idle: false,
        })
    }

    fn progress(&self) -> (u64, u64) {
        (self.next as u64, self.messages.len() as u64)
    }
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(120);
    let topology = Topology::load("social-network")?;
    let mut sim_config = SimConfig::new(topology.clone(), 11);
    sim_config.faults = augur_connectors::simulator::FaultPlan::parse("random")?;
    let mut sim = Simulator::new(sim_config)?;
    let start = sim.now_ms();
    let mut messages = Vec::new();
    let (mut spans, mut points) = (Vec::new(), Vec::new());
    let mut total_spans = 0;
    for step in 1..=seconds * 10 {
        spans.clear();
        points.clear();
        sim.advance_to(start + step * 100, &mut spans, &mut points);
        total_spans += spans.len();
        for chunk in spans.chunks(2048) {
            messages.push((0, encode_traces_proto(chunk)));
        }
        if !points.is_empty() {
            messages.push((1, encode_metrics_proto(&points)));
        }
    }
    let messages = Arc::new(messages);
    println!(
        "social-network, {seconds} simulated s: {total_spans} spans in {} OTLP protobuf messages",
        messages.len()
    );
    let slos = augur::commands::slos_of(&topology);
    for workers in [1usize, 2] {
        let spec = JobSpec {
            config: Config::default(),
            slos: slos.clone(),
            detectors: vec!["nsigma".to_string()],
            workers,
        };
        let messages = Arc::clone(&messages);
        let make_source =
            move |index: usize, peers: usize| -> anyhow::Result<Box<dyn WorkerSource>> {
                Ok(Box::new(MemorySource {
                    messages: Arc::clone(&messages),
                    next: 0,
                    index,
                    peers,
                    watermarks: PartitionWatermarks::new(2),
                    names: MetricNames::default(),
                }))
            };
        let started = Instant::now();
        let outcome = run(
            spec,
            make_source,
            RunOptions {
                progress: None,
                keep_windows: false,
                ..RunOptions::default()
            },
            Arc::new(AtomicBool::new(false)),
            |_| {},
            |_| {},
        )?;
        let secs = started.elapsed().as_secs_f64();
        let spans = JobStats::get(&outcome.stats.spans);
        println!(
            "workers {workers}: {spans} spans in {secs:.2} s = {:.0} spans/s ({:.0} per worker); alerts {}; window-close→alert p50 {:.1} ms p99 {:.1} ms",
            spans as f64 / secs,
            spans as f64 / secs / workers as f64,
            outcome.alerts.len(),
            percentile(&outcome.alert_latency_ms, 50.0),
            percentile(&outcome.alert_latency_ms, 99.0),
        );
    }
    Ok(())
}

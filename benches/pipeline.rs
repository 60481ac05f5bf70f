//! Whole-pipeline harness: a simulated social network, encoded as OTLP protobuf messages in
//! memory, through decode → features → graph → QoS → detector → alerts, on 1 and 2
//! workers. Prints spans/s (total and per worker) and window-close→alert latency.
//!
//! `cargo bench --bench pipeline [-- SECONDS] [--workers N] [--dump DIR]` (default 120 simulated seconds).
//! `--workers N` runs only N workers (default: 1, then 2). Spans/s is wall-clock; "per CPU s" divides by the process's CPU time during the run
//! (user + system, from `/proc/self/stat` on Linux), which is steadier on a shared machine.
//! `--dump DIR` also keeps every window snapshot and alert and writes them as JSON lines to
//! `DIR/windows-{workers}.jsonl` and `DIR/alerts-{workers}.jsonl` (to check that a change
//! leaves results byte-identical; slower, so don't time with it).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use augur::config::Config;
use augur::dataflow::JobSpec;
use augur::run::{RunOptions, run};
use augur::source::{Batch, PartitionWatermarks, SourceError, SourceState, WorkerSource};
use augur::stats::JobStats;
use augur_connectors::otlp::{
    MetricNames, decode_metrics_proto, decode_traces_proto, encode_metrics_proto,
    encode_traces_proto,
};
use augur_connectors::simulator::{SimConfig, Simulator, Topology};
use augur_operators::quantile::{Rank, quantile};

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
    fn poll(&mut self, batch: &mut Batch) -> Result<SourceState, SourceError> {
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

/// CPU time of this process so far (user + system), seconds; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks; 100 per second on every Linux configuration we run on.
    Some((utime + stime) / 100.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let dump = flag("--dump").map(std::path::PathBuf::from);
    let worker_counts: Vec<usize> = match flag("--workers") {
        Some(w) => vec![w.parse()?],
        None => vec![1, 2],
    };
    let seconds: u64 = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !args[*i - 1].starts_with("--"))
        .find_map(|(_, a)| a.parse().ok())
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
    for workers in worker_counts {
        let spec = JobSpec {
            decide_log: None,
            config: Config::default(),
            slos: slos.clone(),
            detectors: vec![augur_models::DetectorKind::NSigma],
            workers,
            graph_board: None,
            log_miners: Default::default(),
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
        let cpu_before = cpu_seconds();
        let outcome = run(
            spec,
            make_source,
            RunOptions {
                progress: None,
                keep_windows: dump.is_some(),
                ..RunOptions::default()
            },
            Arc::new(AtomicBool::new(false)),
            |_| {},
            |_| {},
        )?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        let spans = JobStats::get(&outcome.stats.spans);
        let per_cpu = cpu.map_or_else(
            || "n/a".to_string(),
            |c| format!("{:.0}", spans as f64 / c.max(1e-9)),
        );
        println!(
            "workers {workers}: {spans} spans in {secs:.2} s = {:.0} spans/s ({:.0} per worker, {per_cpu} per CPU s); alerts {}; window-close→alert p50 {:.1} ms p99 {:.1} ms",
            spans as f64 / secs,
            spans as f64 / secs / workers as f64,
            outcome.alerts.len(),
            quantile(&outcome.alert_latency_ms, 50.0 / 100.0, Rank::Nearest),
            quantile(&outcome.alert_latency_ms, 99.0 / 100.0, Rank::Nearest),
        );
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir)?;
            let mut windows = String::new();
            for w in &outcome.windows {
                windows.push_str(&serde_json::to_string(w)?);
                windows.push('\n');
            }
            std::fs::write(dir.join(format!("windows-{workers}.jsonl")), windows)?;
            let mut alerts = String::new();
            for a in &outcome.alerts {
                alerts.push_str(&serde_json::to_string(a)?);
                alerts.push('\n');
            }
            std::fs::write(dir.join(format!("alerts-{workers}.jsonl")), alerts)?;
        }
    }
    Ok(())
}

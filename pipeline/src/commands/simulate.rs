//! `augur simulate`: the cluster simulator to OTLP JSON-lines files plus `labels.json`.

use std::time::Instant;

use anyhow::Context;
use augur_connectors::files::LineWriter;
use augur_connectors::otlp::{encode_metrics_json, encode_traces_json};
use augur_connectors::simulator::{
    FaultPlan, Instrumentation, SimConfig, Simulator, Topology, scenario,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::SimulateArgs;

mod kafka;
use kafka::to_kafka;

/// The `--drop-metrics/--drop-spans` shares, checked to be in [0, 1].
pub fn instrumentation(args: &SimulateArgs) -> anyhow::Result<Instrumentation> {
    for (flag, share) in [
        ("--drop-metrics", args.drop_metrics),
        ("--drop-spans", args.drop_spans),
    ] {
        if !(0.0..=1.0).contains(&share) {
            anyhow::bail!("{flag} {share}: a share of services must be in [0, 1]");
        }
    }
    Ok(Instrumentation {
        drop_metrics: args.drop_metrics,
        drop_spans: args.drop_spans,
    })
}

/// Simulated time per output line, ms (the Collector batches similarly).
const LINE_MS: u64 = 100;
/// At most this many spans per line.
const MAX_SPANS_PER_LINE: usize = 4096;

/// The simulator's configuration and the simulated time, ms, from the arguments: topology,
/// seed, fault plan, load scale and, with `--scenario`, its changes and default length.
pub fn sim_config(args: &SimulateArgs) -> anyhow::Result<(SimConfig, u64)> {
    let topology = Topology::load(&args.topology)?;
    let mut duration_ms = 600_000;
    let mut config = SimConfig::new(topology, args.seed);
    if let Some(kind) = args.scenario {
        let s = scenario(kind, &config.topology)?;
        config.topology = s.topology;
        config.changes = s.changes;
        duration_ms = s.duration_ms;
    }
    if let Some(d) = args.duration {
        duration_ms = d.as_millis() as u64;
    }
    config.faults = FaultPlan::load(&args.faults())?;
    config.rate_scale = args.rate_scale;
    config.instrumentation = instrumentation(args)?;
    Ok((config, duration_ms))
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    if let Some(brokers) = &args.kafka {
        return to_kafka(args, brokers);
    }
    let Some(out) = &args.out else {
        anyhow::bail!("give --out DIR or --kafka BROKERS");
    };
    let (config, duration_ms) = sim_config(args)?;
    let mut sim = Simulator::new(config)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ext = if args.zstd { "jsonl.zst" } else { "jsonl" };
    let traces_path = out.join(format!("traces.otlp.{ext}"));
    let metrics_path = out.join(format!("metrics.otlp.{ext}"));
    let mut traces = LineWriter::create(&traces_path)?;
    let mut metrics = LineWriter::create(&metrics_path)?;

    let start = sim.now_ms();
    let bar = ProgressBar::new(duration_ms / 1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} simulated s · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let (mut spans, mut points) = (Vec::new(), Vec::new());
    let (mut span_count, mut point_count) = (0u64, 0u64);
    let mut now = start;
    while now < start + duration_ms {
        now = (now + LINE_MS).min(start + duration_ms);
        spans.clear();
        points.clear();
        sim.advance_to(now, &mut spans, &mut points);
        for chunk in spans.chunks(MAX_SPANS_PER_LINE) {
            traces.write_line(encode_traces_json(chunk).as_bytes())?;
        }
        if !points.is_empty() {
            metrics.write_line(encode_metrics_json(&points).as_bytes())?;
        }
        span_count += spans.len() as u64;
        point_count += points.len() as u64;
        bar.set_position((now - start) / 1000);
        bar.set_message(format!("{span_count} spans"));
    }
    traces.finish()?;
    metrics.finish()?;
    bar.finish_and_clear();
    let labels_path = out.join("labels.json");
    let labels = serde_json::to_string_pretty(&sim.labels())?;
    std::fs::write(&labels_path, labels)
        .with_context(|| format!("writing {}", labels_path.display()))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "simulated {} s of {} (seed {}): {span_count} spans, {point_count} metric points in {secs:.1} s ({:.0} spans/s incl. JSON encoding)",
        duration_ms / 1000,
        args.topology,
        args.seed,
        span_count as f64 / secs.max(1e-9)
    );
    eprintln!(
        "wrote {}, {}, {}",
        traces_path.display(),
        metrics_path.display(),
        labels_path.display()
    );
    Ok(())
}

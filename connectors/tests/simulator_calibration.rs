//! Calibration and speed measurements of the simulator, ignored by default; run with
//! `cargo test --release -p augur-connectors --test simulator_calibration -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::time::Instant;

use augur_connectors::simulator::{
    ExplicitPlan, FaultKind, FaultPlan, FaultSpec, SimConfig, Simulator, Topology,
};
use augur_operators::records::{MetricPoint, Resource, Span};

fn run(config: SimConfig, seconds: u64) -> (Vec<Span>, Vec<MetricPoint>, Simulator) {
    let mut sim = Simulator::new(config).expect("valid config");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    let end = sim.now_ms() + seconds * 1000;
    sim.advance_to(end, &mut spans, &mut metrics);
    (spans, metrics, sim)
}

/// Per 1-s window p99 of root spans at `entry`.
fn window_p99(spans: &[Span], entry: &str) -> BTreeMap<u64, f64> {
    let mut by_window: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for s in spans {
        if s.parent_span_id.is_none() && s.service == entry {
            by_window
                .entry(s.event_ms() / 1000)
                .or_default()
                .push(s.duration_ms());
        }
    }
    by_window
        .into_iter()
        .map(|(w, mut v)| {
            v.sort_by(f64::total_cmp);
            let i = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1;
            (w, v[i])
        })
        .collect()
}

fn summarize(name: &str, fault: Option<FaultSpec>) {
    let topology = Topology::builtin(name).expect("builtin");
    let slo = topology.slos()[0].clone();
    let mut config = SimConfig::new(topology, 1);
    let start_s = config.start_ms / 1000;
    if let Some(f) = fault.clone() {
        config.faults = FaultPlan::Explicit(ExplicitPlan {
            faults: vec![f],
            load_spikes: vec![],
        });
    }
    let (spans, metrics, _) = run(config, 120);
    let p99 = window_p99(&spans, &slo.entry);
    let (lo, hi) = match &fault {
        Some(f) => (
            start_s + f.start_ms / 1000,
            start_s + (f.start_ms + f.duration_ms) / 1000,
        ),
        None => (start_s + 5, start_s + 120),
    };
    let in_range: Vec<f64> = p99
        .iter()
        .filter(|(w, _)| **w >= lo && **w < hi)
        .map(|(_, v)| *v)
        .collect();
    let violated = in_range.iter().filter(|v| **v > slo.threshold_ms).count();
    let mut sorted = in_range.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{name} fault={:?}: spans={} windows={} violated={} ({:.1}%) p99 median={:.1} max={:.1} slo={}",
        fault.as_ref().map(|f| (f.kind, f.service.clone())),
        spans.len(),
        in_range.len(),
        violated,
        100.0 * violated as f64 / in_range.len().max(1) as f64,
        sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        sorted.last().copied().unwrap_or(0.0),
        slo.threshold_ms
    );
    if fault.is_none() {
        let mut cpu: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for m in metrics.iter().filter(|m| m.resource == Resource::Cpu) {
            let e = cpu.entry(m.instance.clone()).or_default();
            e.0 += m.value;
            e.1 += 1;
        }
        let line: Vec<String> = cpu
            .iter()
            .map(|(k, (s, n))| format!("{k}={:.2}", s / *n as f64))
            .collect();
        println!("  cpu: {}", line.join(" "));
    }
}

#[test]
#[ignore]
fn calibrate_slos() {
    for name in Topology::builtin_names() {
        summarize(name, None);
    }
    let cpu = |service: &str, magnitude: f64| FaultSpec {
        kind: FaultKind::CpuContention,
        service: service.into(),
        instance: None,
        caller: None,
        start_ms: 60_000,
        duration_ms: 30_000,
        magnitude,
        ramp_ms: 0,
    };
    summarize("chain", Some(cpu("tier-3", 3.0)));
    summarize("fanout", Some(cpu("leaf-2", 3.0)));
    summarize("social-network", Some(cpu("post-storage-service", 3.0)));
    summarize("social-network", Some(cpu("home-timeline-service", 3.0)));
    summarize("social-network", Some(cpu("text-service", 3.0)));
    summarize("social-network", Some(cpu("post-storage-mongodb", 3.0)));
    summarize("hotel-reservation", Some(cpu("profile", 3.0)));
    summarize("online-boutique", Some(cpu("currencyservice", 3.0)));
    for kind in FaultKind::ALL {
        let magnitude = match kind {
            FaultKind::CpuContention | FaultKind::MemoryContention => 3.0,
            FaultKind::NetworkDelay => 30.0,
            FaultKind::NetworkLoss => 0.1,
            FaultKind::ThreadPoolShrink => 8.0,
            FaultKind::MemoryLeak => 6.0,
            FaultKind::ErrorFault => 0.2,
        };
        let mut f = cpu("post-storage-service", magnitude);
        f.kind = kind;
        summarize("social-network", Some(f));
    }
}

/// Under the random plan: share of 1-s windows violating the SLO inside faults, inside
/// spikes, and elsewhere.
#[test]
#[ignore]
fn random_plan_violation_rates() {
    for name in Topology::builtin_names() {
        for seed in [1u64, 2] {
            let topology = Topology::builtin(name).expect("builtin");
            let slo = topology.slos()[0].clone();
            let mut config = SimConfig::new(topology, seed);
            config.faults = FaultPlan::parse("random").expect("random");
            let (spans, _, sim) = run(config, 900);
            let labels = sim.labels();
            let p99 = window_p99(&spans, &slo.entry);
            let (mut fault_w, mut fault_v, mut spike_w, mut spike_v, mut quiet_w, mut quiet_v) =
                (0, 0, 0, 0, 0, 0);
            let mut per_fault = Vec::new();
            for f in &labels.faults {
                let windows: Vec<bool> = p99
                    .iter()
                    .filter(|(w, _)| **w * 1000 >= f.start_ms && **w * 1000 + 1000 <= f.end_ms)
                    .map(|(_, v)| *v > slo.threshold_ms)
                    .collect();
                let share =
                    windows.iter().filter(|v| **v).count() as f64 / windows.len().max(1) as f64;
                per_fault.push(format!("{}@{}={:.0}%", f.kind, f.service, share * 100.0));
            }
            for (w, v) in &p99 {
                let t = w * 1000;
                let violated = *v > slo.threshold_ms;
                if labels
                    .faults
                    .iter()
                    .any(|f| t + 1000 > f.start_ms && t < f.end_ms + 10_000)
                {
                    fault_w += 1;
                    fault_v += usize::from(violated);
                } else if labels
                    .load_spikes
                    .iter()
                    .any(|s| t + 1000 > s.start_ms && t < s.end_ms)
                {
                    spike_w += 1;
                    spike_v += usize::from(violated);
                } else if t >= labels.start_ms + 2000 {
                    quiet_w += 1;
                    quiet_v += usize::from(violated);
                }
            }
            let pct = |v: usize, w: usize| 100.0 * v as f64 / w.max(1) as f64;
            println!(
                "{name} seed {seed}: faults {} windows {:.0}% violated; spikes {:.0}% of {spike_w}; quiet {:.1}% of {quiet_w}",
                labels.faults.len(),
                pct(fault_v, fault_w),
                pct(spike_v, spike_w),
                pct(quiet_v, quiet_w)
            );
            println!("  {}", per_fault.join(" "));
        }
    }
}

#[test]
#[ignore]
fn spans_per_second() {
    let topology = Topology::builtin("social-network").expect("builtin");
    let mut config = SimConfig::new(topology, 3);
    config.faults = FaultPlan::parse("random").expect("random");
    // As the pipeline uses it: 100-ms steps, buffers drained and reused.
    let mut sim = Simulator::new(config).expect("valid config");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    let (mut span_count, mut metric_count) = (0usize, 0usize);
    let started = Instant::now();
    for _ in 0..600 {
        let until = sim.now_ms() + 100;
        sim.advance_to(until, &mut spans, &mut metrics);
        span_count += spans.len();
        metric_count += metrics.len();
        spans.clear();
        metrics.clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "social-network, 60 s simulated: {span_count} spans, {metric_count} metrics in {elapsed:.3} s wall = {:.0} spans/s",
        span_count as f64 / elapsed
    );
}

/// Fault-free violation rate over longer runs and several seeds.
#[test]
#[ignore]
fn fault_free_violation_rates() {
    for name in Topology::builtin_names() {
        let mut line = Vec::new();
        for seed in 1..=3u64 {
            let topology = Topology::builtin(name).expect("builtin");
            let slo = topology.slos()[0].clone();
            let (spans, _, _) = run(SimConfig::new(topology, seed), 300);
            let p99 = window_p99(&spans, &slo.entry);
            let windows: Vec<f64> = p99.values().skip(2).copied().collect();
            let violated = windows.iter().filter(|v| **v > slo.threshold_ms).count();
            line.push(format!("seed {seed}: {violated}/{}", windows.len()));
        }
        println!("{name} fault-free, 300 s: {}", line.join(", "));
    }
}

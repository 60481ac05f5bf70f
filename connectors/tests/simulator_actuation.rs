//! Tests of runtime commands (actuation) and incomplete instrumentation in the simulator:
//! a scale-out or a CPU scale-up ends a CPU saturation, deterministically; commands are
//! recorded in the labels; dropped services export nothing.

use std::collections::HashSet;

use augur_connectors::simulator::{
    ExplicitPlan, FaultKind, FaultPlan, FaultSpec, Instrumentation, RuntimeAction, RuntimeCommand,
    SimConfig, Simulator, Topology,
};
use augur_operators::records::{MetricPoint, Resource, Span, SpanKind};

/// The chain with tier-3 (both replicas) slowed 4×: 2.4 of its 2 cores busy, so it saturates.
fn saturated_chain(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(Topology::builtin("chain").expect("chain"), seed);
    config.faults = FaultPlan::Explicit(ExplicitPlan {
        faults: vec![FaultSpec {
            kind: FaultKind::CpuContention,
            service: "tier-3".to_string(),
            instance: None,
            caller: None,
            start_ms: 10_000,
            duration_ms: 60_000,
            magnitude: 4.0,
            ramp_ms: 0,
        }],
        load_spikes: vec![],
    });
    config
}

fn run(
    config: SimConfig,
    commands: &[(u64, RuntimeAction)],
    seconds: u64,
) -> (Vec<Span>, Vec<MetricPoint>, Simulator) {
    let mut sim = Simulator::new(config).expect("valid config");
    let start = sim.now_ms();
    for (i, (at, action)) in commands.iter().enumerate() {
        sim.command(RuntimeCommand {
            id: format!("cmd-{i}"),
            service: "tier-3".to_string(),
            decided_ms: start + at,
            action: action.clone(),
        });
    }
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    // In steps, as the pipeline's source advances.
    let mut now = start;
    while now < start + seconds * 1000 {
        now += 100;
        sim.advance_to(now, &mut spans, &mut metrics);
    }
    (spans, metrics, sim)
}

/// p90 server-span latency of `service` over spans ending in `[from_s, to_s)` after the start.
fn p90_server_ms(spans: &[Span], start_ms: u64, service: &str, from_s: u64, to_s: u64) -> f64 {
    let mut v: Vec<f64> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server && s.service == service)
        .filter(|s| (start_ms + from_s * 1000..start_ms + to_s * 1000).contains(&s.event_ms()))
        .map(Span::duration_ms)
        .collect();
    assert!(!v.is_empty(), "no server spans of {service}");
    v.sort_by(f64::total_cmp);
    v[v.len() * 9 / 10]
}

#[test]
fn scale_out_ends_a_cpu_saturation_deterministically() {
    let start = SimConfig::new(Topology::builtin("chain").expect("chain"), 1).start_ms;
    let (baseline, _, _) = run(saturated_chain(3), &[], 45);
    let scale_out = [(20_000, RuntimeAction::ScaleOut { replicas: 2 })];
    let (scaled, _, sim) = run(saturated_chain(3), &scale_out, 45);
    let before = p90_server_ms(&baseline, start, "tier-3", 35, 45);
    let after = p90_server_ms(&scaled, start, "tier-3", 35, 45);
    assert!(
        after * 3.0 < before,
        "p90 of tier-3 {after:.1} ms with two more replicas vs {before:.1} ms without"
    );
    // Before the command is applied the runs are identical.
    let early = |spans: &[Span]| {
        spans
            .iter()
            .filter(|s| s.event_ms() < start + 20_000)
            .count()
    };
    assert_eq!(early(&baseline), early(&scaled));
    let labels = sim.labels();
    let change = labels.changes.last().expect("recorded");
    assert_eq!(change.kind, "scale_out");
    assert_eq!(change.service, "tier-3");
    assert!(
        (start + 22_000..=start + 25_000).contains(&change.at_ms),
        "applied 2–5 s after the decision: {}",
        change.at_ms - start
    );
    assert!(
        change.detail.contains("replicas 2 -> 4"),
        "{}",
        change.detail
    );
    // New replicas run on other nodes: the contention doesn't reach them.
    let new_replica = p90_server_ms(
        &scaled
            .iter()
            .filter(|s| s.instance == "tier-3-2")
            .cloned()
            .collect::<Vec<_>>(),
        start,
        "tier-3",
        35,
        45,
    );
    assert!(new_replica < 10.0, "new replica p90 {new_replica:.1} ms");
    // Deterministic: the same commands give the same spans.
    let (again, _, _) = run(saturated_chain(3), &scale_out, 45);
    assert_eq!(again, scaled);
}

#[test]
fn cpu_scale_up_dilutes_the_contention_and_raises_the_cores() {
    let start = SimConfig::new(Topology::builtin("chain").expect("chain"), 1).start_ms;
    let (baseline, _, _) = run(saturated_chain(4), &[], 45);
    let up = [(
        20_000,
        RuntimeAction::ScaleUp {
            resource: Resource::Cpu,
            factor: 2.0,
        },
    )];
    let (scaled, metrics, sim) = run(saturated_chain(4), &up, 45);
    let before = p90_server_ms(&baseline, start, "tier-3", 35, 45);
    let after = p90_server_ms(&scaled, start, "tier-3", 35, 45);
    assert!(after * 3.0 < before, "p90 {after:.1} ms vs {before:.1} ms");
    let change = sim.labels().changes.last().cloned().expect("recorded");
    assert_eq!(change.kind, "scale_up");
    assert!(
        change.detail.contains("cpu cores 2 -> 4"),
        "{}",
        change.detail
    );
    assert!((start + 20_500..=start + 21_500).contains(&change.at_ms));
    // Utilization is a fraction of the larger allotment.
    let cpu = |from_s: u64, to_s: u64| {
        let v: Vec<f64> = metrics
            .iter()
            .filter(|m| m.service == "tier-3" && m.resource == Resource::Cpu)
            .filter(|m| (start + from_s * 1000..start + to_s * 1000).contains(&m.event_ms()))
            .map(|m| m.value)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    assert!(
        cpu(35, 45) < cpu(12, 20),
        "{} vs {}",
        cpu(35, 45),
        cpu(12, 20)
    );
    // A resource that can't be scaled up is recorded as ignored.
    let (_, _, sim) = run(
        saturated_chain(4),
        &[(
            5_000,
            RuntimeAction::ScaleUp {
                resource: Resource::Queue,
                factor: 2.0,
            },
        )],
        8,
    );
    assert!(sim.labels().changes[0].detail.starts_with("ignored"));
}

#[test]
fn dropped_services_export_no_metrics_or_spans() {
    let mut config = SimConfig::new(Topology::builtin("social-network").expect("sn"), 5);
    config.instrumentation = Instrumentation {
        drop_metrics: 0.2,
        drop_spans: 0.2,
    };
    let complete = SimConfig::new(Topology::builtin("social-network").expect("sn"), 5);
    let (spans, metrics, sim) = run_plain(config, 5);
    let (all_spans, _, _) = run_plain(complete, 5);
    let labels = sim.labels();
    let services = sim.topology().services().len();
    let expected = (0.2 * services as f64).round() as usize;
    assert_eq!(labels.no_metrics.len(), expected);
    assert_eq!(labels.no_spans.len(), expected);
    let with_metrics: HashSet<&str> = metrics.iter().map(|m| m.service.as_str()).collect();
    let with_spans: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    for s in &labels.no_metrics {
        assert!(!with_metrics.contains(s.as_str()), "{s} exported metrics");
    }
    for s in &labels.no_spans {
        assert!(!with_spans.contains(s.as_str()), "{s} exported spans");
        assert!(
            spans
                .iter()
                .any(|c| c.kind == SpanKind::Client && c.peer_service.as_deref() == Some(s)),
            "{s} is seen at the border"
        );
    }
    // The simulation is the same: every exported span is one the complete run exported too
    // (up to the peer name).
    let ids: HashSet<u64> = all_spans.iter().map(|s| s.span_id).collect();
    assert!(spans.iter().all(|s| ids.contains(&s.span_id)));
}

fn run_plain(config: SimConfig, seconds: u64) -> (Vec<Span>, Vec<MetricPoint>, Simulator) {
    let mut sim = Simulator::new(config).expect("valid");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    let end = sim.now_ms() + seconds * 1000;
    sim.advance_to(end, &mut spans, &mut metrics);
    (spans, metrics, sim)
}

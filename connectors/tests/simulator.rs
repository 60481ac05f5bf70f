//! Tests of the cluster simulator: determinism, well-formed spans, backpressure, labels,
//! built-in topologies with their SLO calibration, and configuration errors.

use std::collections::{BTreeMap, HashMap, HashSet};

use augur_connectors::simulator::{
    ChangeAction, ChangeSpec, ExplicitPlan, FaultKind, FaultPlan, FaultSpec, SimConfig, SimError,
    Simulator, SpikeSpec, Topology,
};
use augur_operators::records::{MetricPoint, Resource, Span, SpanKind};

fn config(name: &str, seed: u64) -> SimConfig {
    SimConfig::new(Topology::builtin(name).expect("builtin topology"), seed)
}

fn run(config: SimConfig, seconds: u64) -> (Vec<Span>, Vec<MetricPoint>, Simulator) {
    let mut sim = Simulator::new(config).expect("valid config");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    let end = sim.now_ms() + seconds * 1000;
    sim.advance_to(end, &mut spans, &mut metrics);
    (spans, metrics, sim)
}

fn fault(
    kind: FaultKind,
    service: &str,
    start_ms: u64,
    duration_ms: u64,
    magnitude: f64,
) -> FaultSpec {
    FaultSpec {
        kind,
        service: service.to_string(),
        instance: None,
        caller: None,
        start_ms,
        duration_ms,
        magnitude,
        ramp_ms: 0,
    }
}

fn explicit(faults: Vec<FaultSpec>) -> FaultPlan {
    FaultPlan::Explicit(ExplicitPlan {
        faults,
        load_spikes: vec![],
    })
}

/// Mean server-span latency of `service` over spans ending in `[from_ms, to_ms)`.
fn mean_server_ms(spans: &[Span], service: &str, from_ms: u64, to_ms: u64) -> f64 {
    let v: Vec<f64> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server && s.service == service)
        .filter(|s| (from_ms..to_ms).contains(&s.event_ms()))
        .map(Span::duration_ms)
        .collect();
    assert!(!v.is_empty(), "no server spans of {service}");
    v.iter().sum::<f64>() / v.len() as f64
}

/// Mean of a metric over the replicas of `service` in `[from_ms, to_ms)`.
fn mean_metric(
    metrics: &[MetricPoint],
    service: &str,
    resource: Resource,
    from_ms: u64,
    to_ms: u64,
) -> f64 {
    let v: Vec<f64> = metrics
        .iter()
        .filter(|m| m.service == service && m.resource == resource)
        .filter(|m| (from_ms..to_ms).contains(&m.event_ms()))
        .map(|m| m.value)
        .collect();
    assert!(!v.is_empty(), "no {resource:?} metrics of {service}");
    v.iter().sum::<f64>() / v.len() as f64
}

/// p99 of root-span latency at `entry` per 1-s window (keyed by window start, ms).
fn window_p99(spans: &[Span], entry: &str) -> BTreeMap<u64, f64> {
    let mut by_window: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for s in spans
        .iter()
        .filter(|s| s.parent_span_id.is_none() && s.service == entry)
    {
        by_window
            .entry(s.event_ms() / 1000 * 1000)
            .or_default()
            .push(s.duration_ms());
    }
    by_window
        .into_iter()
        .map(|(w, mut v)| {
            v.sort_by(f64::total_cmp);
            let rank = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len());
            (w, v[rank - 1])
        })
        .collect()
}

#[test]
fn same_seed_same_output_different_seed_different() {
    let mut c = config("chain", 11);
    c.faults = FaultPlan::parse("random").expect("random plan");
    let (a_spans, a_metrics, a) = run(c.clone(), 40);
    let (b_spans, b_metrics, b) = run(c.clone(), 40);
    assert!(a_spans.len() > 10_000);
    assert_eq!(a_spans, b_spans);
    assert_eq!(a_metrics, b_metrics);
    assert_eq!(a.labels(), b.labels());

    // Chunking does not matter: 100-ms steps give the same output as one big step.
    let mut sim = Simulator::new(c.clone()).expect("valid");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    for _ in 0..400 {
        let until = sim.now_ms() + 100;
        sim.advance_to(until, &mut spans, &mut metrics);
    }
    assert_eq!(spans, a_spans);
    assert_eq!(metrics, a_metrics);

    c.seed = 12;
    let (c_spans, c_metrics, _) = run(c, 40);
    assert_ne!(c_spans, a_spans);
    assert_ne!(c_metrics, a_metrics);
}

#[test]
fn spans_are_well_formed() {
    let mut c = config("social-network", 5);
    // Error faults and network loss exercise the unusual paths.
    c.faults = explicit(vec![
        fault(
            FaultKind::ErrorFault,
            "user-timeline-service",
            2_000,
            4_000,
            0.3,
        ),
        fault(
            FaultKind::NetworkLoss,
            "post-storage-memcached",
            5_000,
            3_000,
            0.1,
        ),
    ]);
    let mut sim = Simulator::new(c).expect("valid");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    let mut last_span_ms = 0;
    let mut last_metric_ms = 0;
    for step in 0..100 {
        let from = spans.len();
        let from_m = metrics.len();
        let until = sim.now_ms() + 100;
        sim.advance_to(until, &mut spans, &mut metrics);
        assert_eq!(sim.now_ms(), until, "step {step}");
        for s in &spans[from..] {
            assert!(s.event_ms() >= last_span_ms, "span event time went back");
            assert!(s.event_ms() < until, "span ended after the step");
            last_span_ms = s.event_ms();
        }
        for m in &metrics[from_m..] {
            assert!(m.event_ms() >= last_metric_ms && m.event_ms() < until);
            last_metric_ms = m.event_ms();
        }
    }
    let end_ms = sim.now_ms();
    let by_id: HashMap<(u128, u64), &Span> =
        spans.iter().map(|s| ((s.trace_id, s.span_id), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");
    let entries: HashSet<String> = sim.topology().entry_services().into_iter().collect();
    let (mut roots, mut children, mut errors) = (0, 0, 0);
    for s in &spans {
        assert_ne!(s.span_id, 0);
        assert!(s.end_ns >= s.start_ns);
        assert!(
            s.instance.starts_with(&s.service),
            "instance {} of {}",
            s.instance,
            s.service
        );
        errors += usize::from(s.error);
        match (s.kind, s.parent_span_id) {
            (SpanKind::Server, None) => {
                roots += 1;
                assert!(entries.contains(&s.service));
            }
            (SpanKind::Server, Some(parent)) => {
                // The client span ends after the server span; skip those cut off by the end.
                let Some(client) = by_id.get(&(s.trace_id, parent)) else {
                    assert!(s.event_ms() + 1_000 > end_ms, "orphan server span {s:?}");
                    continue;
                };
                children += 1;
                assert_eq!(client.kind, SpanKind::Client);
                assert_eq!(
                    client.name, s.name,
                    "client span is named after the callee operation"
                );
                assert_ne!(client.service, s.service);
                assert!(client.start_ns <= s.start_ns && client.end_ns >= s.end_ns);
                assert!(client.duration_ms() >= s.duration_ms());
                assert_eq!(client.error, s.error);
                // The client span belongs to a server span of the caller in the same trace.
                let caller = by_id
                    .get(&(
                        s.trace_id,
                        client.parent_span_id.expect("client spans have parents"),
                    ))
                    .expect("the caller's server span");
                assert_eq!(caller.kind, SpanKind::Server);
                assert_eq!(caller.service, client.service);
                assert_eq!(caller.instance, client.instance);
            }
            (SpanKind::Client, Some(_)) => {}
            other => panic!("unexpected span shape {other:?}"),
        }
    }
    assert!(
        roots > 2_000 && children > 10_000,
        "roots {roots} children {children}"
    );
    assert!(errors > 100, "error fault produced {errors} error spans");
}

#[test]
fn uninstrumented_peers_appear_only_in_client_spans() {
    let toml = r#"
name = "tiny"
[load]
rate_per_s = 200.0
[[request]]
name = "get"
weight = 1.0
entry = "api"
operation = "Get"
[[service]]
name = "api"
[[service.operation]]
name = "Get"
service_time_ms = 1.0
stages = [["cache:get"]]
[[service]]
name = "cache"
instrumented = false
[[service.operation]]
name = "get"
service_time_ms = 0.2
"#;
    let topology = Topology::from_toml_str(toml).expect("valid");
    let (spans, metrics, _) = run(SimConfig::new(topology, 1), 5);
    assert!(spans.iter().all(|s| s.service == "api"));
    let clients: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();
    assert!(clients.len() > 500);
    assert!(
        clients
            .iter()
            .all(|s| s.peer_service.as_deref() == Some("cache") && s.name == "get")
    );
    // The cache still reports metrics.
    assert!(metrics.iter().any(|m| m.instance == "cache-0"));
}

#[test]
fn backpressure_travels_upstream_and_not_sideways() {
    // chain: CPU contention on the last tier from 30 s to 60 s.
    let mut c = config("chain", 3);
    let t0 = c.start_ms;
    c.faults = explicit(vec![fault(
        FaultKind::CpuContention,
        "tier-4",
        30_000,
        30_000,
        4.0,
    )]);
    let (spans, metrics, _) = run(c, 60);
    let (before, during) = ((t0 + 5_000, t0 + 30_000), (t0 + 40_000, t0 + 60_000));
    for tier in ["tier-4", "tier-3", "tier-2", "tier-1", "tier-0"] {
        let a = mean_server_ms(&spans, tier, before.0, before.1);
        let b = mean_server_ms(&spans, tier, during.0, during.1);
        assert!(b > 3.0 * a, "{tier} latency {a:.1} ms -> {b:.1} ms");
    }
    // The saturated tier queues, and as its callers' threads fill up waiting on it, they
    // queue too, up to the front end.
    for tier in ["tier-4", "tier-3", "tier-2", "tier-1", "tier-0"] {
        let a = mean_metric(&metrics, tier, Resource::Queue, before.0, before.1);
        let b = mean_metric(&metrics, tier, Resource::Queue, during.0, during.1);
        assert!(a < 0.5 && b > 2.0, "{tier} queue {a:.2} -> {b:.2}");
    }
    let a = mean_metric(&metrics, "tier-4", Resource::Cpu, before.0, before.1);
    let b = mean_metric(&metrics, "tier-4", Resource::Cpu, during.0, during.1);
    assert!(b > a + 0.4, "tier-4 cpu {a:.2} -> {b:.2}");

    // fanout: a sibling leaf of the faulty one does not slow down.
    let mut c = config("fanout", 3);
    let t0 = c.start_ms;
    c.faults = explicit(vec![fault(
        FaultKind::CpuContention,
        "leaf-2",
        30_000,
        30_000,
        4.0,
    )]);
    let (spans, metrics, _) = run(c, 60);
    let (before, during) = ((t0 + 5_000, t0 + 30_000), (t0 + 40_000, t0 + 60_000));
    for (service, rises) in [("leaf-2", true), ("root", true), ("leaf-4", false)] {
        let a = mean_server_ms(&spans, service, before.0, before.1);
        let b = mean_server_ms(&spans, service, during.0, during.1);
        if rises {
            assert!(b > 3.0 * a, "{service} latency {a:.1} -> {b:.1}");
        } else {
            assert!(b < 1.2 * a, "{service} latency {a:.1} -> {b:.1}");
            let qa = mean_metric(&metrics, service, Resource::Queue, before.0, before.1);
            let qb = mean_metric(&metrics, service, Resource::Queue, during.0, during.1);
            assert!(qb < qa + 0.5, "{service} queue {qa:.2} -> {qb:.2}");
        }
    }
}

#[test]
fn labels_match_the_explicit_plan_and_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("faults.toml");
    std::fs::write(
        &path,
        r#"
[[fault]]
kind = "cpu_contention"
service = "tier-2"
instance = "tier-2-1"
start_ms = 5000
duration_ms = 4000
magnitude = 3.0

[[fault]]
kind = "network_delay"
service = "tier-3"
caller = "tier-2"
start_ms = 12000
duration_ms = 3000
magnitude = 25.0

[[load_spike]]
start_s = 16.0
duration_s = 2.0
factor = 1.5
"#,
    )
    .expect("write plan");
    let mut c = config("chain", 9);
    let t0 = c.start_ms;
    c.faults = FaultPlan::parse(path.to_str().expect("utf-8 path")).expect("plan parses");
    c.changes = vec![
        ChangeSpec {
            service: "tier-1".into(),
            at_ms: 3_000,
            action: ChangeAction::ScaleOut { replicas: 1 },
        },
        ChangeSpec {
            service: "tier-5".into(),
            at_ms: 8_000,
            action: ChangeAction::AddService {
                caller: "tier-4".into(),
                callee: "tier-2".into(),
                service_time_ms: 1.0,
                replicas: 1,
            },
        },
    ];
    // tier-4 does not call tier-2: rejected, naming the problem.
    let err = Simulator::new(c.clone()).expect_err("bad change");
    assert!(err.to_string().contains("does not call"), "{err}");
    c.changes[1].action = ChangeAction::AddService {
        caller: "tier-4".into(),
        callee: "tier-3".into(),
        service_time_ms: 1.0,
        replicas: 1,
    };
    let err = Simulator::new(c.clone()).expect_err("bad change");
    assert!(err.to_string().contains("does not call"), "{err}");
    c.changes[1].action = ChangeAction::AddService {
        caller: "tier-3".into(),
        callee: "tier-4".into(),
        service_time_ms: 1.0,
        replicas: 1,
    };

    let mut sim = Simulator::new(c).expect("valid");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    sim.advance_to(t0 + 4_000, &mut spans, &mut metrics);
    assert!(sim.labels().faults.is_empty(), "nothing started yet");
    sim.advance_to(t0 + 20_000, &mut spans, &mut metrics);
    let labels = sim.labels();
    assert_eq!((labels.topology.as_str(), labels.seed), ("chain", 9));
    assert_eq!((labels.start_ms, labels.end_ms), (t0, t0 + 20_000));
    assert_eq!(labels.faults.len(), 2);
    let f = &labels.faults[0];
    assert_eq!(
        (
            f.kind.as_str(),
            f.service.as_str(),
            f.instance.as_deref(),
            f.resource.as_str()
        ),
        ("cpu_contention", "tier-2", Some("tier-2-1"), "cpu")
    );
    assert_eq!(
        (f.start_ms, f.end_ms, f.magnitude),
        (t0 + 5_000, t0 + 9_000, 3.0)
    );
    let f = &labels.faults[1];
    assert_eq!(
        (f.kind.as_str(), f.resource.as_str(), f.instance.as_deref()),
        ("network_delay", "network", None)
    );
    assert_eq!((f.start_ms, f.end_ms), (t0 + 12_000, t0 + 15_000));
    assert_ne!(labels.faults[0].id, labels.faults[1].id);
    assert_eq!(labels.load_spikes.len(), 1);
    assert_eq!(
        (
            labels.load_spikes[0].start_ms,
            labels.load_spikes[0].end_ms,
            labels.load_spikes[0].factor
        ),
        (t0 + 16_000, t0 + 18_000, 1.5)
    );
    let kinds: Vec<(&str, &str, u64)> = labels
        .changes
        .iter()
        .map(|c| (c.kind.as_str(), c.service.as_str(), c.at_ms))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("scale_out", "tier-1", t0 + 3_000),
            ("add_service", "tier-5", t0 + 8_000)
        ]
    );
    // The changes are in the data: a third tier-1 replica and the inserted service.
    assert!(
        spans
            .iter()
            .any(|s| s.instance == "tier-1-2" && s.event_ms() > t0 + 3_000)
    );
    assert!(
        !spans
            .iter()
            .any(|s| s.instance == "tier-1-2" && s.event_ms() < t0 + 3_000)
    );
    assert!(
        spans
            .iter()
            .any(|s| s.service == "tier-5" && s.kind == SpanKind::Server)
    );
    assert!(
        spans.iter().any(|s| s.service == "tier-3"
            && s.kind == SpanKind::Client
            && s.event_ms() > t0 + 9_000)
    );
    // The edge delay shows in tier-2's client spans to tier-3 only during the fault.
    let edge = |from: u64, to: u64| {
        let v: Vec<f64> = spans
            .iter()
            .filter(|s| {
                s.service == "tier-2"
                    && s.kind == SpanKind::Client
                    && (from..to).contains(&s.event_ms())
            })
            .map(Span::duration_ms)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(edge(t0 + 12_500, t0 + 15_000) > edge(t0 + 9_500, t0 + 12_000) + 40.0);
    // JSON round trip of labels.json.
    let json = labels.to_json_pretty().expect("serializes");
    assert!(json.contains("\"load_spikes\"") && json.contains("\"tier-2-1\""));
}

#[test]
fn random_plan_is_reproducible_and_non_overlapping() {
    let labels = |seed: u64| {
        let mut c = config("social-network", seed);
        c.rate_scale = 0.02; // the schedule is what matters here, not the traffic
        c.faults = FaultPlan::parse("random").expect("random");
        let (_, _, sim) = run(c, 1_800);
        sim.labels()
    };
    let a = labels(21);
    assert_eq!(a, labels(21));
    assert_ne!(a.faults, labels(22).faults);
    assert!(a.faults.len() >= 15, "{} faults in 30 min", a.faults.len());
    let entries = Topology::builtin("social-network")
        .expect("builtin")
        .entry_services();
    let mut kinds = HashSet::new();
    for pair in a.faults.windows(2) {
        assert!(
            pair[1].start_ms >= pair[0].end_ms + 30_000,
            "gap of at least 30 s"
        );
    }
    for f in &a.faults {
        let d = f.end_ms - f.start_ms;
        assert!((10_000..=40_000).contains(&d), "duration {d}");
        assert!(!entries.contains(&f.service));
        assert!(f.start_ms < a.end_ms);
        kinds.insert(f.kind.clone());
    }
    assert!(kinds.len() >= 4, "kinds {kinds:?}");
    for s in &a.load_spikes {
        assert!(s.factor > 1.0);
        for f in &a.faults {
            assert!(
                s.end_ms <= f.start_ms || s.start_ms >= f.end_ms,
                "spike overlaps a fault"
            );
        }
    }
}

#[test]
fn every_builtin_runs_and_every_instrumented_service_emits_spans() {
    assert_eq!(Topology::builtin_names().len(), 5);
    for name in Topology::builtin_names() {
        let topology = Topology::builtin(name).expect("builtin parses");
        assert_eq!(topology.name(), *name);
        assert!(!topology.slos().is_empty(), "{name} declares an SLO");
        let instrumented: Vec<String> = topology
            .spec()
            .services
            .iter()
            .filter(|s| s.instrumented)
            .map(|s| s.name.clone())
            .collect();
        let expected_size = match *name {
            "social-network" => 24..=30,
            "hotel-reservation" => 14..=18,
            "online-boutique" => 11..=11,
            _ => 5..=8,
        };
        assert!(expected_size.contains(&topology.services().len()), "{name}");
        let (spans, metrics, _) = run(SimConfig::new(topology.clone(), 1), 10);
        let seen: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        for s in &instrumented {
            assert!(seen.contains(s.as_str()), "{name}: no spans from {s}");
        }
        for s in topology.services() {
            assert!(
                metrics
                    .iter()
                    .any(|m| m.service == s && m.instance == format!("{s}-0"))
            );
        }
        // Metric sanity: every resource present, CPU in range without faults.
        for r in Resource::ALL {
            assert!(metrics.iter().any(|m| m.resource == r), "{name} {r:?}");
        }
        assert!(
            metrics
                .iter()
                .filter(|m| m.resource == Resource::Cpu)
                .all(|m| m.value < 1.0)
        );
        assert!(Topology::load(name).expect("load by name") == topology);
    }
}

#[test]
fn social_network_slo_is_calibrated() {
    let topology = Topology::builtin("social-network").expect("builtin");
    let slo = topology.slos()[0].clone();
    assert_eq!(slo.entry, "nginx-web-server");
    let c = SimConfig::new(topology, 17);
    let t0 = c.start_ms;
    let (spans, _, _) = run(c.clone(), 120);
    let p99 = window_p99(&spans, &slo.entry);
    let windows: Vec<f64> = p99.range(t0 + 2_000..).map(|(_, v)| *v).collect();
    let violated = windows.iter().filter(|v| **v > slo.threshold_ms).count();
    assert!(windows.len() >= 115);
    assert!(
        (violated as f64) < 0.05 * windows.len() as f64,
        "{violated}/{} fault-free windows violate",
        windows.len()
    );

    let mut c = c;
    c.faults = explicit(vec![fault(
        FaultKind::CpuContention,
        "home-timeline-service",
        40_000,
        30_000,
        3.0,
    )]);
    let (spans, _, _) = run(c, 70);
    let p99 = window_p99(&spans, &slo.entry);
    let during: Vec<f64> = p99
        .range(t0 + 40_000..t0 + 70_000)
        .map(|(_, v)| *v)
        .collect();
    let violated = during.iter().filter(|v| **v > slo.threshold_ms).count();
    assert!(
        violated as f64 > 0.5 * during.len() as f64,
        "{violated}/{} fault windows violate",
        during.len()
    );
}

#[test]
fn configuration_errors_are_clear() {
    let base = Topology::builtin("chain").expect("builtin").spec().clone();
    let good = toml::to_string(&base).expect("serializes");
    assert!(
        Topology::from_toml_str(&good).is_ok(),
        "a spec round-trips through TOML"
    );

    let err = Topology::from_toml_str(&good.replacen("threads = 8", "threds = 8", 1))
        .expect_err("unknown field");
    assert!(matches!(err, SimError::Toml(_)));
    assert!(err.to_string().contains("threds"), "{err}");

    let err = Topology::from_toml_str(&good.replacen("tier-2:Tier2", "tier-9:Tier2", 1))
        .expect_err("unknown service");
    match &err {
        SimError::UnknownService { service, context } => {
            assert_eq!(service, "tier-9");
            assert!(context.contains("tier-1"), "{context}");
        }
        other => panic!("wrong error {other:?}"),
    }
    assert!(err.to_string().contains("tier-9"));

    let err = Topology::from_toml_str(&good.replacen("tier-2:Tier2", "tier-2:Nope", 1))
        .expect_err("unknown op");
    assert!(err.to_string().contains("Nope"), "{err}");

    let err =
        Topology::from_toml_str(&good.replacen("tier-4\"", "tier-0\"", 1)).expect_err("duplicate");
    assert!(err.to_string().contains("declared twice"), "{err}");

    let mut cyclic = base.clone();
    cyclic.services[4].operations[0].stages = vec![vec!["tier-1:Tier1".into()]];
    let err = Topology::from_spec(cyclic).expect_err("cycle");
    assert!(err.to_string().contains("cycle"), "{err}");

    assert!(matches!(
        Topology::builtin("nope"),
        Err(SimError::UnknownTopology(_))
    ));
    assert!(matches!(
        Topology::load("/nonexistent/x.toml"),
        Err(SimError::Io { .. })
    ));

    let err = FaultPlan::from_toml_str("[[fault]]\nkind = \"cpu_hog\"\nservice = \"a\"\nstart_ms = 0\nduration_ms = 1\nmagnitude = 1.0\n")
        .expect_err("unknown kind");
    assert!(err.to_string().contains("cpu_hog"), "{err}");
    let mut c = config("chain", 1);
    c.faults = explicit(vec![fault(FaultKind::CpuContention, "tier-7", 0, 1, 2.0)]);
    let err = Simulator::new(c.clone()).expect_err("unknown fault service");
    assert!(err.to_string().contains("tier-7"), "{err}");
    let mut f = fault(FaultKind::CpuContention, "tier-1", 0, 1, 2.0);
    f.instance = Some("tier-1-7".into());
    c.faults = explicit(vec![f]);
    let err = Simulator::new(c).expect_err("unknown instance");
    assert!(err.to_string().contains("tier-1-7"), "{err}");
    let changes = augur_connectors::simulator::ChangesFile::from_toml_str(
        "[[change]]\nservice = \"tier-1\"\nat_ms = 500\naction = { kind = \"scale_out\", replicas = 2 }\n",
    )
    .expect("changes parse");
    assert_eq!(changes[0].action, ChangeAction::ScaleOut { replicas: 2 });
    let err = augur_connectors::simulator::ChangesFile::from_toml_str(
        "[[change]]\nservice = \"tier-1\"\nat_ms = 500\naction = { kind = \"scale_up\" }\n",
    )
    .expect_err("unknown change kind");
    assert!(err.to_string().contains("scale_up"), "{err}");
    // JSON plans parse too.
    let plan = FaultPlan::from_json_str(
        r#"{"fault":[{"kind":"error_fault","service":"tier-1","start_ms":0,"duration_ms":5,"magnitude":0.2}],
            "load_spike":[{"start_s":1.0,"duration_s":1.0,"factor":2.0}]}"#,
    )
    .expect("json plan");
    let FaultPlan::Explicit(plan) = plan else {
        panic!("explicit")
    };
    assert_eq!(plan.faults[0].kind, FaultKind::ErrorFault);
    assert_eq!(
        plan.load_spikes[0],
        SpikeSpec {
            start_s: 1.0,
            duration_s: 1.0,
            factor: 2.0
        }
    );
}

/// Each fault kind leaves its own signature on tier-3 of the chain (fault from 15 s to 35 s).
#[test]
fn each_fault_kind_has_its_signature() {
    let run_fault = |kind: FaultKind, magnitude: f64| {
        let mut c = config("chain", 4);
        c.faults = explicit(vec![fault(kind, "tier-3", 15_000, 20_000, magnitude)]);
        let t0 = c.start_ms;
        let (spans, metrics, _) = run(c, 36);
        (spans, metrics, t0)
    };
    let ratio = |spans: &[Span], service: &str, t0: u64| {
        mean_server_ms(spans, service, t0 + 20_000, t0 + 35_000)
            / mean_server_ms(spans, service, t0 + 5_000, t0 + 15_000)
    };
    let metric_delta = |metrics: &[MetricPoint], resource: Resource, t0: u64| {
        mean_metric(metrics, "tier-3", resource, t0 + 20_000, t0 + 35_000)
            - mean_metric(metrics, "tier-3", resource, t0 + 5_000, t0 + 15_000)
    };
    let error_share = |spans: &[Span], service: &str, parent: bool, t0: u64| {
        let v: Vec<bool> = spans
            .iter()
            .filter(|s| {
                s.service == service
                    && s.kind == SpanKind::Server
                    && s.parent_span_id.is_some() == parent
            })
            .filter(|s| (t0 + 20_000..t0 + 35_000).contains(&s.event_ms()))
            .map(|s| s.error)
            .collect();
        v.iter().filter(|e| **e).count() as f64 / v.len() as f64
    };

    let (spans, metrics, t0) = run_fault(FaultKind::CpuContention, 3.0);
    assert!(ratio(&spans, "tier-3", t0) > 2.5);
    assert!(metric_delta(&metrics, Resource::Cpu, t0) > 0.4);

    let (spans, metrics, t0) = run_fault(FaultKind::MemoryContention, 3.0);
    assert!(ratio(&spans, "tier-3", t0) > 2.5);
    let base = mean_metric(
        &metrics,
        "tier-3",
        Resource::Memory,
        t0 + 5_000,
        t0 + 15_000,
    );
    assert!(metric_delta(&metrics, Resource::Memory, t0) > 0.2 * base);

    let (spans, metrics, t0) = run_fault(FaultKind::MemoryLeak, 6.0);
    let early = mean_metric(
        &metrics,
        "tier-3",
        Resource::Memory,
        t0 + 15_000,
        t0 + 20_000,
    );
    let late = mean_metric(
        &metrics,
        "tier-3",
        Resource::Memory,
        t0 + 30_000,
        t0 + 35_000,
    );
    assert!(late > 1.5 * early, "memory {early} -> {late}");
    let early = mean_server_ms(&spans, "tier-3", t0 + 15_000, t0 + 18_000);
    let late = mean_server_ms(&spans, "tier-3", t0 + 30_000, t0 + 35_000);
    assert!(
        late > 2.0 * early,
        "a leak creeps: {early:.1} -> {late:.1} ms"
    );

    // A software bug, not a resource: queues grow, CPU does not.
    let (spans, metrics, t0) = run_fault(FaultKind::ThreadPoolShrink, 16.0);
    assert!(metric_delta(&metrics, Resource::Queue, t0) > 2.0);
    assert!(metric_delta(&metrics, Resource::Cpu, t0) < 0.05);
    assert!(ratio(&spans, "tier-3", t0) > 2.0);

    // The delay is on the wire: tier-2's client spans grow, tier-3's server spans do not.
    let (spans, _, t0) = run_fault(FaultKind::NetworkDelay, 30.0);
    let client = |from: u64, to: u64| {
        let v: Vec<f64> = spans
            .iter()
            .filter(|s| {
                s.service == "tier-2"
                    && s.kind == SpanKind::Client
                    && (from..to).contains(&s.event_ms())
            })
            .map(|s| s.duration_ms())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(client(t0 + 20_000, t0 + 35_000) > client(t0 + 5_000, t0 + 15_000) + 55.0);
    assert!(ratio(&spans, "tier-3", t0) < 1.5);

    let (spans, _, t0) = run_fault(FaultKind::NetworkLoss, 0.1);
    let mut slow: Vec<f64> = spans
        .iter()
        .filter(|s| s.service == "tier-2" && s.kind == SpanKind::Client)
        .filter(|s| (t0 + 20_000..t0 + 35_000).contains(&s.event_ms()))
        .map(|s| s.duration_ms())
        .collect();
    slow.sort_by(f64::total_cmp);
    let p95 = slow[slow.len() * 95 / 100];
    assert!(
        p95 > 200.0,
        "retransmissions show in the tail: p95 {p95:.1} ms"
    );

    // Errors rise much more than latency.
    let (spans, _, t0) = run_fault(FaultKind::ErrorFault, 0.3);
    let share = error_share(&spans, "tier-3", true, t0);
    assert!((0.2..0.4).contains(&share), "tier-3 error share {share}");
    let root = error_share(&spans, "tier-0", false, t0);
    assert!(root > 0.1, "errors propagate to the root: {root}");
    assert!(ratio(&spans, "tier-3", t0) < 1.3);
}

#[test]
fn chain_and_fanout_take_a_size() {
    let chain = Topology::load("chain:8").expect("chain:8");
    assert_eq!(chain.services().len(), 8);
    assert_eq!(chain.entry_services(), vec!["tier-0".to_string()]);
    assert_eq!(
        Topology::chain(5).expect("chain 5").spec().services,
        Topology::builtin("chain").expect("chain").spec().services
    );
    let fanout = Topology::builtin("fanout:10").expect("fanout:10");
    assert_eq!(fanout.services().len(), 11);
    let (spans, _, _) = run(SimConfig::new(chain, 2), 3);
    assert!(
        spans
            .iter()
            .any(|s| s.service == "tier-7" && s.kind == SpanKind::Server)
    );
    let (spans, _, _) = run(SimConfig::new(fanout, 2), 3);
    assert!(spans.iter().any(|s| s.service == "leaf-9"));
    assert!(Topology::builtin("chain:0").is_err() && Topology::builtin("ring:3").is_err());
}

#[test]
fn load_follows_spikes_and_the_diurnal_cycle() {
    let roots_per_s = |spans: &[Span], t0: u64, from_s: u64, to_s: u64| {
        spans
            .iter()
            .filter(|s| s.parent_span_id.is_none())
            .filter(|s| (t0 + from_s * 1000..t0 + to_s * 1000).contains(&s.event_ms()))
            .count() as f64
            / (to_s - from_s) as f64
    };
    let mut c = config("fanout", 8);
    let t0 = c.start_ms;
    c.faults = FaultPlan::Explicit(ExplicitPlan {
        faults: vec![],
        load_spikes: vec![SpikeSpec {
            start_s: 10.0,
            duration_s: 5.0,
            factor: 2.0,
        }],
    });
    c.rate_scale = 0.5;
    let (spans, _, sim) = run(c, 20);
    let (before, during) = (
        roots_per_s(&spans, t0, 2, 10),
        roots_per_s(&spans, t0, 10, 15),
    );
    assert!(
        (170.0..230.0).contains(&before),
        "rate_scale 0.5 of 400/s: {before}"
    );
    assert!(
        (1.7..2.3).contains(&(during / before)),
        "spike x2: {before} -> {during}"
    );
    assert_eq!(sim.labels().load_spikes.len(), 1);
    assert!(sim.labels().faults.is_empty(), "a spike is not a fault");

    let mut spec = Topology::builtin("fanout").expect("builtin").spec().clone();
    spec.load.diurnal_amplitude = 0.5;
    spec.load.diurnal_period_s = 40.0;
    let (spans, _, _) = run(
        SimConfig::new(Topology::from_spec(spec).expect("valid"), 8),
        40,
    );
    let (peak, trough) = (
        roots_per_s(&spans, t0, 5, 15),
        roots_per_s(&spans, t0, 25, 35),
    );
    assert!(
        peak > 2.0 * trough,
        "diurnal peak {peak} vs trough {trough}"
    );
}

#[test]
fn scale_in_replace_and_remove_change_the_data() {
    let mut c = config("social-network", 6);
    let t0 = c.start_ms;
    c.changes = vec![
        ChangeSpec {
            service: "post-storage-service".into(),
            at_ms: 4_000,
            action: ChangeAction::ScaleIn { replicas: 1 },
        },
        ChangeSpec {
            service: "text-service".into(),
            at_ms: 4_000,
            action: ChangeAction::Replace {
                service_time_factor: 5.0,
            },
        },
        ChangeSpec {
            service: "media-memcached".into(),
            at_ms: 4_000,
            action: ChangeAction::RemoveService,
        },
    ];
    let mut bad = c.clone();
    bad.changes.push(ChangeSpec {
        service: "text-service".into(),
        at_ms: 1,
        action: ChangeAction::RemoveService,
    });
    let err = Simulator::new(bad).expect_err("text-service is not a leaf");
    assert!(err.to_string().contains("leaf"), "{err}");

    let (spans, _, sim) = run(c, 10);
    let labels = sim.labels();
    let kinds: Vec<&str> = labels.changes.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, vec!["scale_in", "replace", "remove_service"]);
    assert!(labels.changes.iter().all(|c| c.at_ms == t0 + 4_000));
    assert_eq!(labels.changes[0].detail, "replicas 2 -> 1");
    let late = |s: &&Span| s.event_ms() > t0 + 5_000;
    assert!(
        !spans
            .iter()
            .filter(late)
            .any(|s| s.instance == "post-storage-service-1")
    );
    assert!(
        spans
            .iter()
            .filter(late)
            .any(|s| s.instance == "post-storage-service-0")
    );
    assert!(
        !spans
            .iter()
            .filter(late)
            .any(|s| s.service == "media-memcached")
    );
    assert!(spans.iter().any(|s| s.service == "media-memcached"));
    let slower = mean_server_ms(&spans, "text-service", t0 + 5_000, t0 + 10_000)
        / mean_server_ms(&spans, "text-service", t0, t0 + 4_000);
    assert!(
        slower > 2.0,
        "replaced text-service is slower: x{slower:.1}"
    );
}

/// The in-flight gauge: every 100 ms per live replica, a whole count; off at interval 0,
/// and the spans don't depend on it (sampling draws no random numbers).
#[test]
fn in_flight_gauge_is_sampled_and_changes_nothing_else() {
    let (spans, metrics, _) = run(config("social-network", 5), 3);
    let in_flight: Vec<&MetricPoint> = metrics
        .iter()
        .filter(|m| m.resource == Resource::InFlight)
        .collect();
    let times: HashSet<u64> = in_flight.iter().map(|m| m.time_ns / 1_000_000).collect();
    assert!(times.iter().all(|t| t % 100 == 0), "{times:?}");
    assert!(times.len() >= 29, "{} sample times", times.len());
    assert!(
        in_flight
            .iter()
            .all(|m| m.value >= 0.0 && m.value.fract() == 0.0)
    );
    assert!(in_flight.iter().any(|m| m.value > 0.0));

    let mut off = config("social-network", 5);
    off.in_flight_interval_ms = 0;
    let (spans_off, metrics_off, _) = run(off, 3);
    assert!(metrics_off.iter().all(|m| m.resource != Resource::InFlight));
    assert_eq!(spans, spans_off);
    let usage: Vec<&MetricPoint> = metrics
        .iter()
        .filter(|m| m.resource != Resource::InFlight)
        .collect();
    assert_eq!(usage, metrics_off.iter().collect::<Vec<_>>());
}

//! Known answer: a twin fitted from a built-in topology's own simulated traces recovers the
//! topology — the same services and replicas, the same operations, the same calls in the
//! same stages with their probabilities, the request mix and rate, and the service times.
//!
//! Tolerances (stated here, asserted below): call probabilities within 0.05, request weights
//! within 0.03, the rate within 5 %, each operation's mean service time within 15 % and its
//! CV within 0.2 for operations with at least 300 simulated calls (fewer: within 35 %).

use std::collections::{BTreeMap, BTreeSet};

use augur_connectors::simulator::{CallRef, SpanShape, Topology, TopologySpec};
use augur_connectors::twin::{self, FitInput, Names, hops_of};

/// Load as a share of the topology's own: low enough that queueing adds little to the
/// measured self times.
const RATE_SCALE: f64 = 0.25;
const SECONDS: f64 = 60.0;

/// Stages as sets of `service:operation` with probabilities.
fn stages_of(spec: &TopologySpec) -> BTreeMap<(String, String), Vec<BTreeMap<String, f64>>> {
    let mut out = BTreeMap::new();
    for s in &spec.services {
        for o in &s.operations {
            let stages = o
                .stages
                .iter()
                .map(|stage| {
                    let mut calls: BTreeMap<String, f64> = BTreeMap::new();
                    for call in stage {
                        let c = CallRef::parse(call).expect("valid call");
                        let op = c.operation.unwrap_or_else(|| {
                            spec.services
                                .iter()
                                .find(|x| x.name == c.service)
                                .map(|x| x.operations[0].name.clone())
                                .unwrap_or_default()
                        });
                        calls.insert(format!("{}:{op}", c.service), c.probability);
                    }
                    calls
                })
                .collect();
            out.insert((s.name.clone(), o.name.clone()), stages);
        }
    }
    out
}

fn known_answer(name: &str, shape: SpanShape) {
    let mut spec = Topology::builtin(name).expect("built-in").spec().clone();
    spec.telemetry.spans = shape;
    let topology = Topology::from_spec(spec).expect("valid");
    let (spans, _) =
        twin::simulate::run(&topology, RATE_SCALE, 5.0, SECONDS, 3).expect("simulates");
    let telemetry = twin::read::telemetry_of(&spans, &[]).expect("no files to read");
    assert_eq!(telemetry.spans, shape, "{name}: the span shape seen");
    let mut names = Names::default();
    let hops = hops_of(&spans, &mut names);
    let fitted = twin::fit(&FitInput {
        name: "known",
        hops: &hops,
        names: &names,
        duration_s: SECONDS,
        sources: vec![format!("simulated {name}")],
        telemetry,
    })
    .expect("fits");
    // The written file reads back as the same spec.
    let text = twin::to_toml(&fitted);
    let back = Topology::from_toml_str(&text).expect("the twin's TOML parses");
    assert_eq!(back.spec(), &fitted.spec, "{name}: TOML round trip");
    let (truth, twin) = (topology.spec(), &fitted.spec);

    let services = |s: &TopologySpec| -> BTreeMap<String, u32> {
        s.services
            .iter()
            .map(|x| (x.name.clone(), x.replicas))
            .collect()
    };
    assert_eq!(
        services(twin),
        services(truth),
        "{name}: services, replicas"
    );

    let (want, got) = (stages_of(truth), stages_of(twin));
    assert_eq!(
        want.keys().collect::<BTreeSet<_>>(),
        got.keys().collect::<BTreeSet<_>>(),
        "{name}: operations"
    );
    for (op, want_stages) in &want {
        let got_stages = &got[op];
        let sets = |v: &Vec<BTreeMap<String, f64>>| -> Vec<BTreeSet<String>> {
            v.iter().map(|s| s.keys().cloned().collect()).collect()
        };
        assert_eq!(
            sets(got_stages),
            sets(want_stages),
            "{name}: stages of {op:?}"
        );
        for (w, g) in want_stages.iter().zip(got_stages) {
            for (call, p) in w {
                assert!(
                    (g[call] - p).abs() <= 0.05,
                    "{name}: {op:?} calls {call} with p {} (true {p})",
                    g[call]
                );
            }
        }
    }

    let rate = truth.load.rate_per_s * RATE_SCALE;
    assert!(
        (twin.load.rate_per_s / rate - 1.0).abs() < 0.05,
        "{name}: rate {} vs {rate}",
        twin.load.rate_per_s
    );
    let total: f64 = truth.requests.iter().map(|r| r.weight).sum();
    for r in &truth.requests {
        let got = twin
            .requests
            .iter()
            .find(|x| x.entry == r.entry && x.operation == r.operation)
            .map_or(0.0, |x| x.weight);
        assert!(
            (got - r.weight / total).abs() <= 0.03,
            "{name}: request {} weight {got} vs {}",
            r.name,
            r.weight / total
        );
    }

    let calls: BTreeMap<(String, String), usize> = hops
        .iter()
        .map(|h| {
            (
                names.name(h.service).to_string(),
                names.name(h.op).to_string(),
            )
        })
        .fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k).or_default() += 1;
            m
        });
    for s in &truth.services {
        let ts = twin
            .services
            .iter()
            .find(|x| x.name == s.name)
            .expect("service");
        for o in &s.operations {
            let n = calls
                .get(&(s.name.clone(), o.name.clone()))
                .copied()
                .unwrap_or(0);
            if n == 0 {
                continue;
            }
            let to = ts
                .operations
                .iter()
                .find(|x| x.name == o.name)
                .expect("operation");
            let tolerance = if n >= 300 { 0.15 } else { 0.35 };
            // Without client spans the network time of the operation's calls is part of
            // what the caller's span shows as its own: two legs per stage that makes a call
            // (a stage's calls run in parallel, their legs overlap).
            let expected = match shape {
                SpanShape::ClientServer => o.service_time_ms,
                SpanShape::OnePerHop => {
                    let stages_calling: f64 = o
                        .stages
                        .iter()
                        .map(|stage| {
                            1.0 - stage
                                .iter()
                                .map(|c| 1.0 - CallRef::parse(c).expect("valid call").probability)
                                .product::<f64>()
                        })
                        .sum();
                    o.service_time_ms
                        + stages_calling * 2.0 * (truth.network_base_ms + truth.network_jitter_ms)
                }
            };
            let err = to.service_time_ms / expected - 1.0;
            assert!(
                err.abs() <= tolerance,
                "{name} ({shape:?}): {}:{} service time {} vs {expected} ms ({n} calls)",
                s.name,
                o.name,
                to.service_time_ms,
            );
            if n >= 300 {
                // The network legs folded into the self time add to its mean, barely to
                // its spread.
                let cv = o.cv * o.service_time_ms / expected;
                assert!(
                    (to.cv - cv).abs() <= 0.2,
                    "{name} ({shape:?}): {}:{} cv {} vs {cv}",
                    s.name,
                    o.name,
                    to.cv,
                );
            }
        }
    }
}

#[test]
fn twin_of_each_builtin_recovers_its_topology() {
    for name in Topology::builtin_names() {
        known_answer(name, SpanShape::ClientServer);
    }
}

/// The same from one span per hop, without kinds (the shape Jaeger and Zipkin imports
/// give): the twin sees that shape, writes it, and still recovers the topology.
#[test]
fn twin_of_kind_less_traces_recovers_the_topology() {
    for name in Topology::builtin_names() {
        known_answer(name, SpanShape::OnePerHop);
    }
}

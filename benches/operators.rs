//! Criterion benches of the hot pieces: OTLP decode, sketch merge, and the feature
//! dataflow (trace assembly + windows + graph + QoS) on one worker.

use std::hint::black_box;

use augur_connectors::otlp::{decode_traces_proto, encode_traces_proto};
use augur_connectors::simulator::{SimConfig, Simulator, Topology};
use augur_operators::{EventTime, FeatureParams, MetricPoint, Span, features_dataflow, window_end};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};
use timely::dataflow::operators::Probe;
use timely::dataflow::operators::core::UnorderedInput;

fn simulated(
    seconds: u64,
) -> (
    Vec<Span>,
    Vec<MetricPoint>,
    Vec<augur_operators::qos_check::Slo>,
) {
    let topology = Topology::load("social-network").expect("built-in topology");
    let slos = augur::commands::slos_of(&topology);
    let mut sim = Simulator::new(SimConfig::new(topology, 3)).expect("simulator");
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    let until = sim.now_ms() + seconds * 1000;
    sim.advance_to(until, &mut spans, &mut metrics);
    (spans, metrics, slos)
}

fn decode(c: &mut Criterion) {
    let (spans, _, _) = simulated(5);
    let messages: Vec<Vec<u8>> = spans.chunks(2048).map(encode_traces_proto).collect();
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function("decode_traces_proto", |b| {
        let mut out = Vec::with_capacity(spans.len());
        b.iter(|| {
            out.clear();
            for m in &messages {
                black_box(decode_traces_proto(m, &mut out).expect("valid"));
            }
        })
    });
    group.finish();
}

fn sketch(c: &mut Criterion) {
    let mut group = c.benchmark_group("ddsketch");
    let parts: Vec<DDSketch> = (0..32)
        .map(|i| {
            let mut s = DDSketch::new(SketchConfig::defaults());
            for j in 0..1000 {
                s.add(1.0 + ((i * 1000 + j) % 977) as f64);
            }
            s
        })
        .collect();
    group.throughput(Throughput::Elements(parts.len() as u64));
    group.bench_function("merge_32_partials", |b| {
        b.iter(|| {
            let mut total = DDSketch::new(SketchConfig::defaults());
            for p in &parts {
                total.merge(p).expect("same config");
            }
            black_box(total.quantile(0.99).expect("valid quantile"))
        })
    });
    group.finish();
}

fn feature_dataflow(c: &mut Criterion) {
    let (spans, metrics, slos) = simulated(20);
    let mut group = c.benchmark_group("features");
    group.sample_size(10);
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function("assembly_windows_graph_qos_1_worker", |b| {
        b.iter(|| {
            let spans = spans.clone();
            let metrics = metrics.clone();
            let slos = slos.clone();
            timely::execute_directly(move |worker| {
                let params = FeatureParams {
                    window_ms: 1000,
                    trace_ttl_ms: 10_000,
                    graph_retention_ms: 60_000,
                    slos,
                    ..FeatureParams::default()
                };
                let ((mut span_in, span_cap), (mut metric_in, metric_cap), probe) =
                    worker.dataflow::<EventTime, _, _>(|scope| {
                        let (sh, s) = scope.new_unordered_input::<timely::container::CapacityContainerBuilder<Vec<Span>>>();
                        let (mh, m) =
                            scope.new_unordered_input::<timely::container::CapacityContainerBuilder<Vec<MetricPoint>>>();
                        let (probe, _) = features_dataflow(s, m, &params).probe();
                        (sh, mh, probe)
                    });
                let mut by_window: std::collections::BTreeMap<EventTime, Vec<Span>> = Default::default();
                for s in spans {
                    by_window.entry(window_end(s.event_ms(), 1000)).or_default().push(s);
                }
                for (end, mut v) in by_window {
                    span_in.activate().session(&span_cap.delayed(&end)).give_container(&mut v);
                }
                let mut ms: std::collections::BTreeMap<EventTime, Vec<MetricPoint>> = Default::default();
                for m in metrics {
                    ms.entry(window_end(m.event_ms(), 1000)).or_default().push(m);
                }
                for (end, mut v) in ms {
                    metric_in.activate().session(&metric_cap.delayed(&end)).give_container(&mut v);
                }
                drop((span_cap, metric_cap));
                while !probe.done() {
                    worker.step();
                }
            });
        })
    });
    group.finish();
}

criterion_group!(benches, decode, sketch, feature_dataflow);
criterion_main!(benches);

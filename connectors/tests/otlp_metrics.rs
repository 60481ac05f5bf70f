//! OTLP metric codec tests: round trips, Collector-shaped JSON, names, bad input.

use augur_connectors::otlp::{
    ExportMetricsServiceRequest, MetricNames, decode_metrics, decode_metrics_json,
    decode_metrics_proto, encode_metrics, encode_metrics_json, encode_metrics_proto,
};
use augur_operators::records::{MetricPoint, Resource};
use proptest::prelude::*;
use prost::Message;

fn arb_point() -> impl Strategy<Value = MetricPoint> {
    (
        prop_oneof!["[a-z]{1,3}", "(?s).{1,8}"],
        "[a-z0-9]{1,3}",
        0..5usize,
        1..u64::MAX,
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            0.0..1.0f64,
            (0..1u64 << 40).prop_map(|v| v as f64)
        ],
    )
        .prop_map(|(service, instance, r, time_ns, value)| MetricPoint {
            service,
            instance,
            resource: Resource::ALL[r],
            time_ns,
            value,
        })
}

fn sorted(mut v: Vec<MetricPoint>) -> Vec<MetricPoint> {
    v.sort_by(|a, b| {
        (
            &a.service,
            &a.instance,
            a.resource,
            a.time_ns,
            a.value.to_bits(),
        )
            .cmp(&(
                &b.service,
                &b.instance,
                b.resource,
                b.time_ns,
                b.value.to_bits(),
            ))
    });
    v
}

fn bits(v: &[MetricPoint]) -> Vec<u64> {
    v.iter().map(|p| p.value.to_bits()).collect()
}

proptest! {
    #[test]
    fn json_round_trip(points in proptest::collection::vec(arb_point(), 0..20)) {
        let line = encode_metrics_json(&points);
        prop_assert!(!line.contains('\n'));
        let mut out = Vec::new();
        let d = decode_metrics_json(line.as_bytes(), &MetricNames::default(), &mut out).expect("parses");
        prop_assert!(d.errors.is_empty(), "{:?}", d.errors);
        prop_assert_eq!(d.ignored, 0);
        let (out, points) = (sorted(out), sorted(points));
        prop_assert_eq!(bits(&out), bits(&points), "values exact");
        prop_assert_eq!(out, points);
    }

    #[test]
    fn proto_round_trip(points in proptest::collection::vec(arb_point(), 0..20)) {
        let bytes = encode_metrics_proto(&points);
        prop_assert_eq!(&encode_metrics(&points).encode_to_vec(), &bytes);
        let mut out = Vec::new();
        let d = decode_metrics_proto(&bytes, &MetricNames::default(), &mut out).expect("parses");
        prop_assert!(d.errors.is_empty());
        prop_assert_eq!(sorted(out), sorted(points.clone()));
        let req = ExportMetricsServiceRequest::decode(bytes.as_slice()).expect("prost");
        let mut out2 = Vec::new();
        let d = decode_metrics(&req, &MetricNames::default(), &mut out2);
        prop_assert!(d.errors.is_empty());
        prop_assert_eq!(sorted(out2), sorted(points));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut out = Vec::new();
        let names = MetricNames::default();
        let _ = decode_metrics_proto(&bytes, &names, &mut out);
        let _ = decode_metrics_json(&bytes, &names, &mut out);
    }

    #[test]
    fn mutated_encodings_never_panic(
        points in proptest::collection::vec(arb_point(), 1..4),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let names = MetricNames::default();
        let mut proto = encode_metrics_proto(&points);
        let mut json = encode_metrics_json(&points).into_bytes();
        for (i, b) in &cuts {
            let pi = i.index(proto.len());
            proto[pi] = *b;
            let ji = i.index(json.len());
            json[ji] = *b;
        }
        let mut out = Vec::new();
        if decode_metrics_proto(&proto, &names, &mut out).is_err() {
            prop_assert!(out.is_empty());
        }
        let _ = decode_metrics_json(&json, &names, &mut out);
    }
}

/// The Collector's file-exporter shape: gauge (asDouble), sum (asInt as a string), a
/// histogram, an unmapped metric, and a prometheus-style resource-less point.
const COLLECTOR_LINE: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"user"}},{"key":"k8s.pod.name","value":{"stringValue":"user-5c6d"}}]},"scopeMetrics":[{"scope":{"name":"otelcol/kubeletstatsreceiver","version":"0.98.0"},"metrics":[{"name":"k8s.pod.cpu.utilization","unit":"1","gauge":{"dataPoints":[{"startTimeUnixNano":"1700000000000000000","timeUnixNano":"1700000001000000000","asDouble":0.25},{"timeUnixNano":"1700000002000000000","asDouble":0.5}]}},{"name":"k8s.pod.memory.usage","unit":"By","sum":{"dataPoints":[{"timeUnixNano":"1700000001000000000","asInt":"104857600"}],"aggregationTemporality":2,"isMonotonic":false}},{"name":"http.server.duration","histogram":{"dataPoints":[{"timeUnixNano":"1700000001000000000","count":"3","sum":1.5,"bucketCounts":["1","2"],"explicitBounds":[1.0]}],"aggregationTemporality":2}},{"name":"k8s.pod.filesystem.usage","gauge":{"dataPoints":[{"timeUnixNano":"1700000001000000000","asInt":"5"},{"timeUnixNano":"1700000002000000000","asInt":6}]}}]}]},{"resource":{},"scopeMetrics":[{"metrics":[{"name":"rpc.server.queue_length","gauge":{"dataPoints":[{"attributes":[{"key":"service.name","value":{"stringValue":"text"}},{"key":"service.instance.id","value":{"stringValue":"text-1"}}],"timeUnixNano":1700000001000000000,"asInt":7}]}}]}]}]}"#;

#[test]
fn collector_metrics_line() {
    let mut out = Vec::new();
    let d = decode_metrics_json(COLLECTOR_LINE.as_bytes(), &MetricNames::default(), &mut out)
        .expect("parses");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.ignored, 3, "1 histogram point + 2 unmapped gauge points");
    let p = |service: &str, instance: &str, resource, time_ns, value| MetricPoint {
        service: service.into(),
        instance: instance.into(),
        resource,
        time_ns,
        value,
    };
    assert_eq!(
        out,
        vec![
            p(
                "user",
                "user-5c6d",
                Resource::Cpu,
                1_700_000_001_000_000_000,
                0.25
            ),
            p(
                "user",
                "user-5c6d",
                Resource::Cpu,
                1_700_000_002_000_000_000,
                0.5
            ),
            p(
                "user",
                "user-5c6d",
                Resource::Memory,
                1_700_000_001_000_000_000,
                104_857_600.0
            ),
            p(
                "text",
                "text-1",
                Resource::Queue,
                1_700_000_001_000_000_000,
                7.0
            ),
        ]
    );
    // Extra names from config.
    let names = MetricNames::default().with("k8s.pod.filesystem.usage", Resource::Disk);
    let mut out = Vec::new();
    let d = decode_metrics_json(COLLECTOR_LINE.as_bytes(), &names, &mut out).expect("parses");
    assert_eq!(d.ignored, 1);
    assert_eq!(
        out.iter().filter(|p| p.resource == Resource::Disk).count(),
        2
    );
}

#[test]
fn names() {
    let n = MetricNames::default();
    assert_eq!(n.resource("container.cpu.utilization"), Some(Resource::Cpu));
    assert_eq!(n.resource("k8s.pod.cpu.usage"), Some(Resource::Cpu));
    assert_eq!(n.resource("system.memory.usage"), Some(Resource::Memory));
    assert_eq!(n.resource("k8s.pod.network.io"), Some(Resource::Network));
    assert_eq!(n.resource("system.disk.io"), Some(Resource::Disk));
    assert_eq!(n.resource("rpc.server.queue_length"), Some(Resource::Queue));
    assert_eq!(n.resource("nope"), None);
    for r in Resource::ALL {
        assert_eq!(n.resource(MetricNames::canonical(r)), Some(r));
    }
    assert_eq!(
        MetricNames::canonical(Resource::Memory),
        "container.memory.usage"
    );
}

#[test]
fn bad_points_are_record_errors() {
    let line = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"h"}}]},"scopeMetrics":[{"metrics":[{"name":"system.cpu.utilization","gauge":{"dataPoints":[{"timeUnixNano":"5","asDouble":0.1}]}}]}]},{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeMetrics":[{"metrics":[{"name":"system.cpu.utilization","gauge":{"dataPoints":[{"asDouble":0.1},{"timeUnixNano":"5"},{"timeUnixNano":"5","asDouble":"NaN"},{"timeUnixNano":"5","asDouble":0.3}]}}]}]}]}"#;
    let mut out = Vec::new();
    let d =
        decode_metrics_json(line.as_bytes(), &MetricNames::default(), &mut out).expect("parses");
    let reasons: Vec<&str> = d.errors.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "missing service.name",
            "missing time (timeUnixNano is 0)",
            "data point has no value",
            "value NaN is not finite"
        ]
    );
    for e in &d.errors {
        let v: serde_json::Value = serde_json::from_str(&e.record).expect("context is JSON");
        assert_eq!(v["metric"], "system.cpu.utilization");
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].instance, "s");
    assert_eq!(out[0].value, 0.3);

    let e = decode_metrics_json(b"[1,2", &MetricNames::default(), &mut out).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid OTLP JSON at line 1"),
        "{e}"
    );
    let bytes = encode_metrics_proto(&out);
    let e = decode_metrics_proto(&bytes[..bytes.len() - 2], &MetricNames::default(), &mut out)
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid protobuf: "), "{e}");
    assert_eq!(out.len(), 1);
}

#[test]
fn json_values_are_numbers_or_special_strings() {
    let pts = vec![MetricPoint {
        service: "s".into(),
        instance: "i".into(),
        resource: Resource::Cpu,
        time_ns: 1,
        value: 1e300,
    }];
    let line = encode_metrics_json(&pts);
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let dp = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0];
    assert_eq!(dp["asDouble"].as_f64(), Some(1e300));
    assert_eq!(dp["timeUnixNano"], "1");
}

/// `{}` is an empty request; a JSON object without `resourceMetrics` (a Prometheus
/// remote-write dump, a line of traces) is no request, not an empty one.
#[test]
fn other_json_is_not_an_empty_request() {
    let names = MetricNames::default();
    let mut out = Vec::new();
    assert!(decode_metrics_json(b"{}", &names, &mut out).is_ok());
    let Err(e) = decode_metrics_json(br#"{"timeseries":[]}"#, &names, &mut out) else {
        panic!("not an export request");
    };
    assert!(e.to_string().contains("no `resourceMetrics` field"), "{e}");
    assert!(out.is_empty());
}

/// One `k8s.pod.network.io` data point of pod `cart-1` (`direction` receive or transmit),
/// as a sum of the given temporality (1 delta, 2 cumulative) and monotonicity.
fn network_sum(
    temporality: i32,
    monotonic: bool,
    points: &[(&str, u64, u64, i64)],
) -> ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1 as m;
    use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
    let text = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let data_points = points
        .iter()
        .map(|&(direction, start_s, time_s, bytes)| m::NumberDataPoint {
            attributes: vec![text("direction", direction), text("interface", "eth0")],
            start_time_unix_nano: start_s * 1_000_000_000,
            time_unix_nano: time_s * 1_000_000_000,
            value: Some(m::number_data_point::Value::AsInt(bytes)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![m::ResourceMetrics {
            resource: Some(OtlpResource {
                attributes: vec![text("service.name", "cart"), text("k8s.pod.name", "cart-1")],
                ..Default::default()
            }),
            scope_metrics: vec![m::ScopeMetrics {
                metrics: vec![m::Metric {
                    name: "k8s.pod.network.io".into(),
                    data: Some(m::metric::Data::Sum(m::Sum {
                        data_points,
                        aggregation_temporality: temporality,
                        is_monotonic: monotonic,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The values each decoder (protobuf, JSON, parsed) makes of `requests` in turn, counters
/// through one [`Rates`] per decoder.
fn decoded_values(requests: &[ExportMetricsServiceRequest]) -> [Vec<f64>; 3] {
    use augur_connectors::otlp::Rates;
    let names = MetricNames::default();
    let mut out: [Vec<MetricPoint>; 3] = Default::default();
    let mut rates: [Rates; 3] = Default::default();
    for req in requests {
        let decoded = [
            decode_metrics_proto(&req.encode_to_vec(), &names, &mut out[0]).expect("protobuf"),
            decode_metrics_json(
                serde_json::to_string(req).expect("json").as_bytes(),
                &names,
                &mut out[1],
            )
            .expect("json"),
            decode_metrics(req, &names, &mut out[2]),
        ];
        for (i, d) in decoded.iter().enumerate() {
            assert!(d.errors.is_empty(), "{:?}", d.errors);
            rates[i].extend(&d.cumulative, &mut out[i]);
        }
    }
    out.map(|points| {
        assert!(
            points
                .iter()
                .all(|p| p.instance == "cart-1" && p.resource == Resource::Network)
        );
        points.iter().map(|p| p.value).collect()
    })
}

/// kubeletstats' `k8s.pod.network.io` is a cumulative counter per direction: what a window
/// reads is bytes per second, each direction's increase over the time since its previous
/// point; the first point of each series gives none.
#[test]
fn cumulative_counters_become_rates_per_series() {
    let scrapes = [
        network_sum(
            2,
            true,
            &[("receive", 1, 100, 50_000), ("transmit", 1, 100, 9_000)],
        ),
        network_sum(
            2,
            true,
            &[("receive", 1, 110, 60_000), ("transmit", 1, 110, 9_500)],
        ),
        network_sum(
            2,
            true,
            &[("receive", 1, 130, 60_000), ("transmit", 1, 130, 10_500)],
        ),
    ];
    for values in decoded_values(&scrapes) {
        assert_eq!(values, vec![1000.0, 50.0, 0.0, 50.0]);
    }
}

/// A delta sum is its increase over the time since its start; a sum that may fall (an
/// up-down counter) is a level, as a gauge.
#[test]
fn delta_sums_are_rates_and_non_monotonic_sums_levels() {
    let delta = network_sum(1, true, &[("receive", 100, 110, 5_000)]);
    let level = network_sum(2, false, &[("receive", 1, 110, 7_000)]);
    for values in decoded_values(&[delta, level]) {
        assert_eq!(values, vec![500.0, 7000.0]);
    }
    // A delta without a start time says nothing per second: ignored, and named so.
    let no_start = network_sum(1, true, &[("receive", 0, 110, 5_000)]);
    let mut out = Vec::new();
    let d = decode_metrics(&no_start, &MetricNames::default(), &mut out);
    assert!(out.is_empty());
    assert_eq!(d.ignored_names, vec![("k8s.pod.network.io".to_string(), 1)]);
}

/// The temporality as protobuf's JSON mapping names it, as some writers do.
#[test]
fn temporality_by_name_in_json() {
    use augur_connectors::otlp::Rates;
    let line = |t: u64, v: u64| {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"process.cpu.time","sum":{{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,"dataPoints":[{{"timeUnixNano":"{t}000000000","asDouble":{v}}}]}}}}]}}]}}]}}"#
        )
    };
    let (mut out, mut rates) = (Vec::new(), Rates::default());
    for (t, v) in [(100, 40), (110, 45)] {
        let d = decode_metrics_json(line(t, v).as_bytes(), &MetricNames::default(), &mut out)
            .expect("parses");
        rates.extend(&d.cumulative, &mut out);
    }
    assert_eq!(out.iter().map(|p| p.value).collect::<Vec<_>>(), vec![0.5]);
    assert_eq!(out[0].resource, Resource::Cpu);
}

/// Every decoder names the metrics it does not read, with their points.
#[test]
fn metrics_not_read_are_named() {
    use opentelemetry_proto::tonic::metrics::v1 as m;
    let mut req = network_sum(2, false, &[("receive", 1, 110, 7_000)]);
    let metrics = &mut req.resource_metrics[0].scope_metrics[0].metrics;
    metrics.push(m::Metric {
        name: "jvm.gc.pause".into(),
        data: Some(m::metric::Data::Gauge(m::Gauge {
            data_points: vec![m::NumberDataPoint::default(); 2],
        })),
        ..Default::default()
    });
    metrics.push(m::Metric {
        name: "http.server.duration".into(),
        data: Some(m::metric::Data::Histogram(m::Histogram {
            data_points: vec![m::HistogramDataPoint::default(); 3],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    });
    let names = MetricNames::default();
    let json = serde_json::to_string(&req).expect("json");
    let decoded = [
        decode_metrics_proto(&req.encode_to_vec(), &names, &mut Vec::new()).expect("protobuf"),
        decode_metrics_json(json.as_bytes(), &names, &mut Vec::new()).expect("json"),
        decode_metrics(&req, &names, &mut Vec::new()),
    ];
    for d in decoded {
        assert_eq!(
            d.ignored_names,
            vec![
                ("jvm.gc.pause".to_string(), 2),
                ("http.server.duration".to_string(), 3)
            ]
        );
        assert_eq!(d.ignored, 5);
    }
}

/// cAdvisor's CPU counter as the Collector's Prometheus receiver delivers it: the resource
/// is the scrape job, the pod a data point label. The point's pod names the service (its
/// deployment) and the instance; the counter is cores in use.
#[test]
fn prometheus_scraped_container_metrics_are_the_pods() {
    use augur_connectors::otlp::Rates;
    let line = |time_s: u64, cpu_seconds: f64| {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"kubernetes-cadvisor"}}}},{{"key":"service.instance.id","value":{{"stringValue":"10.0.0.7:10250"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"container_cpu_usage_seconds_total","sum":{{"dataPoints":[{{"attributes":[{{"key":"container","value":{{"stringValue":"server"}}}},{{"key":"namespace","value":{{"stringValue":"shop"}}}},{{"key":"pod","value":{{"stringValue":"cartservice-7d4b9c8f6-x2x9k"}}}}],"startTimeUnixNano":"1000000000","timeUnixNano":"{time_s}000000000","asDouble":{cpu_seconds}}}],"aggregationTemporality":2,"isMonotonic":true}}}}]}}]}}]}}"#
        )
    };
    let names = MetricNames::default();
    let mut rates = Rates::default();
    let mut out = Vec::new();
    for (t, v) in [(100, 40.0), (115, 43.0)] {
        let d = decode_metrics_json(line(t, v).as_bytes(), &names, &mut out).expect("parses");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        rates.extend(&d.cumulative, &mut out);
    }
    assert_eq!(
        out,
        vec![MetricPoint {
            service: "cartservice".into(),
            instance: "cartservice-7d4b9c8f6-x2x9k".into(),
            resource: Resource::Cpu,
            time_ns: 115_000_000_000,
            value: 0.2,
        }]
    );
    // A pod label that names no deployment (a stateful set's `db-0`) leaves the resource's
    // service; the pod is still the instance, so the traced service of the pod's spans can
    // take the point (the service join).
    let mut out = Vec::new();
    let mut rates = Rates::default();
    for (t, v) in [(100, 40.0), (115, 43.0)] {
        let db = line(t, v).replace("cartservice-7d4b9c8f6-x2x9k", "db-0");
        let d = decode_metrics_json(db.as_bytes(), &names, &mut out).expect("parses");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        rates.extend(&d.cumulative, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].service.as_str(), out[0].instance.as_str()),
        ("kubernetes-cadvisor", "db-0")
    );
}

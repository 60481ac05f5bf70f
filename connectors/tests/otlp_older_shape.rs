//! Exports written before OTLP 0.15 (Collectors of early 2022 and older, and the files they
//! left) name the scopes "instrumentation libraries": `instrumentationLibrarySpans` /
//! `…Metrics` / `…Logs` in JSON, field 1000 of `ResourceSpans` / `ResourceMetrics` in the
//! protobuf of 0.15–0.18 senders. They decode as the current shape does, not to nothing.

use augur_connectors::otlp::{
    ExportMetricsServiceRequest, ExportTraceServiceRequest, MetricNames, decode_logs_json,
    decode_metrics_json, decode_metrics_proto, decode_traces_json, decode_traces_proto,
    encode_metrics_json, encode_metrics_proto, encode_traces_json, encode_traces_proto,
};
use augur_operators::records::{MetricPoint, Resource, Span, SpanKind};
use opentelemetry_proto::tonic::metrics::v1::ScopeMetrics;
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::ScopeSpans;
use prost::Message;

fn spans() -> Vec<Span> {
    (0..3u64)
        .map(|i| Span {
            trace_id: 0x5b8e_fff7_9803_8103_d269_b633_813f_c60c,
            span_id: i + 1,
            parent_span_id: (i > 0).then_some(1),
            service: format!("svc-{}", i.min(1)),
            instance: format!("svc-{}-0", i.min(1)),
            kind: if i == 0 {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            name: format!("op-{i}"),
            start_ns: 1_700_000_000_000_000_000 + i * 1_000_000,
            end_ns: 1_700_000_000_500_000_000,
            error: i == 2,
            peer_service: None,
            version: None,
        })
        .collect()
}

fn points() -> Vec<MetricPoint> {
    ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, service)| MetricPoint {
            service: service.to_string(),
            instance: format!("{service}-0"),
            resource: Resource::Cpu,
            time_ns: 1_700_000_001_000_000_000 + i as u64,
            value: 0.25 * (i + 1) as f64,
        })
        .collect()
}

/// The old JSON names in place of the current ones.
fn older_json(current: &str, scopes: &str) -> String {
    let older = current
        .replace(
            &format!("\"scope{scopes}\""),
            &format!("\"instrumentationLibrary{scopes}\""),
        )
        .replace("\"scope\":", "\"instrumentationLibrary\":");
    assert_ne!(older, current, "the current shape names its scopes");
    older
}

#[test]
fn older_json_decodes_as_the_current_shape() {
    let spans = spans();
    let mut out = Vec::new();
    let errors = decode_traces_json(
        older_json(&encode_traces_json(&spans), "Spans").as_bytes(),
        &mut out,
    )
    .expect("parses");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out, spans);

    let points = points();
    let mut out = Vec::new();
    let d = decode_metrics_json(
        older_json(&encode_metrics_json(&points), "Metrics").as_bytes(),
        &MetricNames::default(),
        &mut out,
    )
    .expect("parses");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(out, points);

    let line = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"instrumentationLibraryLogs":[{"instrumentationLibrary":{"name":"x"},"logs":[],"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":17,"body":{"stringValue":"boom"}}]}]}]}"#;
    let mut out = Vec::new();
    let errors = decode_logs_json(line.as_bytes(), &mut out).expect("parses");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].service, "shop");
}

/// `ResourceSpans` as OTLP 0.15–0.18 senders wrote it: the scopes in field 1000.
#[derive(Clone, PartialEq, Message)]
struct OlderResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<OtlpResource>,
    #[prost(message, repeated, tag = "1000")]
    instrumentation_library_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct OlderTraceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<OlderResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct OlderResourceMetrics {
    #[prost(message, optional, tag = "1")]
    resource: Option<OtlpResource>,
    #[prost(message, repeated, tag = "1000")]
    instrumentation_library_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, Message)]
struct OlderMetricsRequest {
    #[prost(message, repeated, tag = "1")]
    resource_metrics: Vec<OlderResourceMetrics>,
}

#[test]
fn older_protobuf_decodes_as_the_current_shape() {
    let spans = spans();
    let current = ExportTraceServiceRequest::decode(encode_traces_proto(&spans).as_slice())
        .expect("our encoding");
    let older = OlderTraceRequest {
        resource_spans: current
            .resource_spans
            .into_iter()
            .map(|rs| OlderResourceSpans {
                resource: rs.resource,
                instrumentation_library_spans: rs.scope_spans,
            })
            .collect(),
    };
    let mut out = Vec::new();
    let errors = decode_traces_proto(&older.encode_to_vec(), &mut out).expect("decodes");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out, spans);

    let points = points();
    let current = ExportMetricsServiceRequest::decode(encode_metrics_proto(&points).as_slice())
        .expect("our encoding");
    let older = OlderMetricsRequest {
        resource_metrics: current
            .resource_metrics
            .into_iter()
            .map(|rm| OlderResourceMetrics {
                resource: rm.resource,
                instrumentation_library_metrics: rm.scope_metrics,
            })
            .collect(),
    };
    let mut out = Vec::new();
    let d = decode_metrics_proto(&older.encode_to_vec(), &MetricNames::default(), &mut out)
        .expect("decodes");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(out, points);
}

#[derive(Clone, PartialEq, Message)]
struct OlderResourceLogs {
    #[prost(message, optional, tag = "1")]
    resource: Option<OtlpResource>,
    #[prost(message, repeated, tag = "1000")]
    instrumentation_library_logs: Vec<opentelemetry_proto::tonic::logs::v1::ScopeLogs>,
}

#[derive(Clone, PartialEq, Message)]
struct OlderLogsRequest {
    #[prost(message, repeated, tag = "1")]
    resource_logs: Vec<OlderResourceLogs>,
}

#[test]
fn older_protobuf_logs_decode_as_the_current_shape() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ScopeLogs};
    let text = |s: &str| AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    };
    let record = |body: &str| OtlpLog {
        time_unix_nano: 1_700_000_000_000_000_000,
        severity_number: 17,
        body: Some(text(body)),
        ..Default::default()
    };
    let resource = |service: &str| OtlpResource {
        attributes: vec![KeyValue {
            key: "service.name".to_string(),
            value: Some(text(service)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let older = OlderLogsRequest {
        resource_logs: vec![
            OlderResourceLogs {
                resource: Some(resource("a")),
                instrumentation_library_logs: vec![ScopeLogs {
                    log_records: vec![record("one"), record("two")],
                    ..Default::default()
                }],
            },
            OlderResourceLogs {
                resource: Some(resource("b")),
                instrumentation_library_logs: vec![ScopeLogs {
                    log_records: vec![record("three")],
                    ..Default::default()
                }],
            },
        ],
    };
    let mut out = Vec::new();
    let errors = augur_connectors::otlp::decode_logs_proto(&older.encode_to_vec(), &mut out)
        .expect("decodes");
    assert!(errors.is_empty(), "{errors:?}");
    let got: Vec<(String, String)> = out.into_iter().map(|r| (r.service, r.body)).collect();
    assert_eq!(
        got,
        [("a", "one"), ("a", "two"), ("b", "three")].map(|(s, b)| (s.to_string(), b.to_string()))
    );
}

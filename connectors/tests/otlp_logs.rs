//! OTLP log codec tests: the Collector's JSON shape (as the file and Kafka exporters write
//! it), protobuf, and bad input.

use augur_connectors::otlp::{
    DecodeError, ExportLogsServiceRequest, decode_logs_json, decode_logs_proto,
};
use augur_operators::records::{LogRecord, Severity};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const LINE: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ts-travel2-service"}},{"key":"k8s.pod.name","value":{"stringValue":"ts-travel2-service-5c66-6mp2b"}}]},"scopeLogs":[{"scope":{"name":"x"},"logRecords":[
{"timeUnixNano":"1674981729487160534","observedTimeUnixNano":"1674981729487160534","severityNumber":9,"severityText":"INFO","body":{"stringValue":"16:42:09.486 INFO  t.c.Travel2Controller#115 TraceID: 6f3cbf058c2765548a39ad724905d6a1 SpanID: 576f9c38fc25e197 [query]"},"traceId":"6f3cbf058c2765548a39ad724905d6a1","spanId":"576f9c38fc25e197"},
{"observedTimeUnixNano":"1674981730000000000","severityNumber":17,"body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"boom"}}]}}},
{"timeUnixNano":"1674981731000000000","body":{"stringValue":"no level"}},
{"severityNumber":13,"body":{"stringValue":"no time"}},
{"timeUnixNano":"1674981732000000000","traceId":"xyz","body":{"stringValue":"bad id"}}
]}]},{"resource":{"attributes":[]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1","body":{"stringValue":"no service"}}]}]}]}"#;

#[test]
fn collector_json_decodes_and_bad_records_are_reported() {
    let mut out = Vec::new();
    let errors = decode_logs_json(LINE.as_bytes(), &mut out).expect("an export request");
    assert_eq!(out.len(), 3, "{out:#?}");
    assert_eq!(
        out[0],
        LogRecord {
            service: "ts-travel2-service".into(),
            instance: "ts-travel2-service-5c66-6mp2b".into(),
            time_ns: 1674981729487160534,
            severity: Severity::Info,
            body: "16:42:09.486 INFO  t.c.Travel2Controller#115 TraceID: 6f3cbf058c2765548a39ad724905d6a1 SpanID: 576f9c38fc25e197 [query]".into(),
            trace_id: Some(0x6f3cbf058c2765548a39ad724905d6a1),
            span_id: Some(0x576f9c38fc25e197),
        }
    );
    // No time: the observed time; a non-string body as its JSON.
    assert_eq!(out[1].time_ns, 1674981730000000000);
    assert_eq!(out[1].severity, Severity::Error);
    assert!(out[1].body.contains("boom"), "{}", out[1].body);
    assert_eq!(out[2].severity, Severity::Unspecified);
    let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("missing time"), "{reasons:?}");
    assert!(reasons[1].contains("trace id"), "{reasons:?}");
    assert!(reasons[2].contains("service.name"), "{reasons:?}");
    assert!(errors[1].record.contains("bad id"), "{}", errors[1].record);
}

#[test]
fn not_an_export_request_is_a_decode_error() {
    let mut out = Vec::new();
    for bad in [&b"{"[..], b"[1,2]", b"{\"resourceLogs\": 5}", b"\xff\xfe"] {
        assert!(
            matches!(
                decode_logs_json(bad, &mut out),
                Err(DecodeError::Json { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(out.is_empty());
    assert!(matches!(
        decode_logs_proto(b"\xff\xff\xff\xff", &mut out),
        Err(DecodeError::Protobuf(_))
    ));
    // An empty request is no records and no errors; a line of another signal is no request.
    assert_eq!(decode_logs_json(b"{}", &mut out).map(|e| e.len()), Ok(0));
    assert!(matches!(
        decode_logs_json(br#"{"resourceSpans":[]}"#, &mut out),
        Err(DecodeError::NotAnExport {
            field: "resourceLogs",
            ..
        })
    ));
    assert!(out.is_empty());
}

#[test]
fn protobuf_decodes_like_json() {
    let s = |v: &str| AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(s("cart")),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![OtlpLog {
                    time_unix_nano: 5_000_000,
                    severity_number: 18,
                    body: Some(s("payment failed")),
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut out = Vec::new();
    let errors = decode_logs_proto(&req.encode_to_vec(), &mut out).expect("decodes");
    assert!(errors.is_empty());
    assert_eq!(
        out,
        vec![LogRecord {
            service: "cart".into(),
            instance: "cart".into(),
            time_ns: 5_000_000,
            severity: Severity::Error,
            body: "payment failed".into(),
            trace_id: Some(u128::from_be_bytes([1; 16])),
            span_id: Some(u64::from_be_bytes([2; 8])),
        }]
    );
}

/// A record without a `severityNumber` takes its `severityText`, else the level its line
/// starts with (lines shipped as printed), or its level field (structured lines); a number,
/// when there is one, decides.
#[test]
fn severity_from_number_text_or_line() {
    let record = |fields: &str| {
        format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"s"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1",{fields}}}]}}]}}]}}"#
        )
    };
    let cases = [
        (
            r#""severityNumber":9,"severityText":"ERROR","body":{"stringValue":"ERROR x y"}"#,
            Severity::Info,
        ),
        (
            r#""severityText":"Warning","body":{"stringValue":"x y"}"#,
            Severity::Warn,
        ),
        (
            r#""severityText":"E42","body":{"stringValue":"2023-01-29 16:43:17.120 ERROR c.s.Contacts#37 none"}"#,
            Severity::Error,
        ),
        (
            r#""body":{"stringValue":"16:43:17.120 [fatal] out of memory"}"#,
            Severity::Fatal,
        ),
        (
            r#""body":{"stringValue":"c.s.Contacts#37 retrying after error"}"#,
            Severity::Unspecified,
        ),
        // Structured lines: a JSON string, or a map body.
        (
            r#""body":{"stringValue":"{\"level\":\"error\",\"msg\":\"boom\"}"}"#,
            Severity::Error,
        ),
        (
            r#""body":{"kvlistValue":{"values":[{"key":"severity","value":{"stringValue":"warning"}},{"key":"message","value":{"stringValue":"slow"}}]}}"#,
            Severity::Warn,
        ),
    ];
    for (fields, want) in cases {
        let mut out = Vec::new();
        let errors = decode_logs_json(record(fields).as_bytes(), &mut out).expect("parses");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out[0].severity, want, "{fields}");
    }
}

/// A map body reads as the JSON object it is, in JSON and in protobuf.
#[test]
fn map_bodies_are_plain_json() {
    let line = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1","body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"boom"}},{"key":"n","value":{"intValue":"3"}},{"key":"ok","value":{"boolValue":false}},{"key":"tags","value":{"arrayValue":{"values":[{"doubleValue":1.5}]}}}]}}}]}]}]}"#;
    let mut out = Vec::new();
    decode_logs_json(line.as_bytes(), &mut out).expect("parses");
    let want = serde_json::json!({"msg": "boom", "n": 3, "ok": false, "tags": [1.5]});
    let got: serde_json::Value = serde_json::from_str(&out[0].body).expect("JSON");
    assert_eq!(got, want);
    let kv = |key: &str, value: any_value::Value| KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let body = any_value::Value::KvlistValue(KeyValueList {
        values: vec![
            kv("msg", any_value::Value::StringValue("boom".into())),
            kv("n", any_value::Value::IntValue(3)),
            kv("ok", any_value::Value::BoolValue(false)),
            kv(
                "tags",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::DoubleValue(1.5)),
                    }],
                }),
            ),
        ],
    });
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("s".into()),
                )],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![OtlpLog {
                    time_unix_nano: 1,
                    body: Some(AnyValue { value: Some(body) }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut out = Vec::new();
    decode_logs_proto(&req.encode_to_vec(), &mut out).expect("decodes");
    let got: serde_json::Value = serde_json::from_str(&out[0].body).expect("JSON");
    assert_eq!(got, want);
}

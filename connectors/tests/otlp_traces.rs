//! OTLP trace codec tests: round trips, the Collector's JSON shape, bad input, speed.

use augur_connectors::otlp::{
    DecodeError, ExportTraceServiceRequest, decode_traces, decode_traces_json, decode_traces_proto,
    encode_traces, encode_traces_json, encode_traces_proto,
};
use augur_operators::records::{Span, SpanKind};
use proptest::prelude::*;
use prost::Message;

const KINDS: [SpanKind; 6] = [
    SpanKind::Unspecified,
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];

fn arb_span() -> impl Strategy<Value = Span> {
    (
        (
            1..=u128::MAX,
            1..=u64::MAX,
            proptest::option::of(1..=u64::MAX),
        ),
        (
            prop_oneof!["[a-z]{1,3}", "(?s).{1,10}"],
            prop_oneof!["[a-z0-9-]{1,3}", "(?s).{1,10}"],
            "(?s).{0,12}",
        ),
        (
            0..6usize,
            1..u64::MAX / 2,
            0..1_000_000_000_000u64,
            any::<bool>(),
        ),
        proptest::option::of("(?s).{1,8}"),
        proptest::option::of("(?s).{1,8}"),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent),
                (service, instance, name),
                (k, start, dur, error),
                peer,
                version,
            )| Span {
                trace_id,
                span_id,
                parent_span_id: parent,
                service,
                instance,
                kind: KINDS[k],
                name,
                start_ns: start,
                end_ns: start + dur,
                error,
                peer_service: peer,
                version,
            },
        )
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort();
    v
}

proptest! {
    #[test]
    fn json_round_trip(spans in proptest::collection::vec(arb_span(), 0..20)) {
        let line = encode_traces_json(&spans);
        prop_assert!(!line.contains('\n'));
        let mut out = Vec::new();
        let errors = decode_traces_json(line.as_bytes(), &mut out).expect("parses");
        prop_assert!(errors.is_empty(), "{errors:?}");
        prop_assert_eq!(sorted(out), sorted(spans));
    }

    #[test]
    fn proto_round_trip(spans in proptest::collection::vec(arb_span(), 0..20)) {
        let bytes = encode_traces_proto(&spans);
        let mut out = Vec::new();
        let errors = decode_traces_proto(&bytes, &mut out).expect("parses");
        prop_assert!(errors.is_empty(), "{errors:?}");
        prop_assert_eq!(sorted(out), sorted(spans.clone()));
        // The prost path agrees.
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("prost decodes");
        let mut out2 = Vec::new();
        prop_assert!(decode_traces(&req, &mut out2).is_empty());
        prop_assert_eq!(sorted(out2), sorted(spans));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut out = Vec::new();
        let _ = decode_traces_proto(&bytes, &mut out);
        let _ = decode_traces_json(&bytes, &mut out);
    }

    #[test]
    fn mutated_encodings_never_panic(
        spans in proptest::collection::vec(arb_span(), 1..4),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut proto = encode_traces_proto(&spans);
        let mut json = encode_traces_json(&spans).into_bytes();
        for (i, b) in &cuts {
            let pi = i.index(proto.len());
            proto[pi] = *b;
            let ji = i.index(json.len());
            json[ji] = *b;
        }
        let mut out = Vec::new();
        if decode_traces_proto(&proto, &mut out).is_err() {
            prop_assert!(out.is_empty(), "a failed decode appends nothing");
        }
        let _ = decode_traces_json(&json, &mut out);
        let half = proto.len() / 2;
        let _ = decode_traces_proto(&proto[..half], &mut out);
    }
}

/// Exactly the shape the Collector's file exporter writes (plus fields augur ignores).
const COLLECTOR_LINE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"frontend"}},{"key":"k8s.pod.name","value":{"stringValue":"frontend-7d9f-abc"}},{"key":"host.name","value":{"stringValue":"node-1"}},{"key":"process.pid","value":{"intValue":"4242"}}]},"scopeSpans":[{"scope":{"name":"io.opentelemetry.http","version":"1.2.0"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"","flags":256,"name":"GET /compose","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","attributes":[{"key":"http.method","value":{"stringValue":"GET"}},{"key":"http.status_code","value":{"intValue":"500"}}],"events":[{"timeUnixNano":"1544712660500000000","name":"exception","attributes":[{"key":"exception.message","value":{"stringValue":"boom \"quoted\""}}]}],"status":{"code":2,"message":"boom"}},{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","traceState":"","name":"redis GET","kind":3,"startTimeUnixNano":"1544712660100000000","endTimeUnixNano":"1544712660200000000","attributes":[{"key":"peer.service","value":{"stringValue":"redis"}},{"key":"db.system","value":{"stringValue":"redis"}}],"droppedAttributesCount":0,"status":{}}]}],"schemaUrl":"https://opentelemetry.io/schemas/1.4.0"},{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"compose\u0050ost"}},{"key":"service.instance.id","value":{"stringValue":"cp-1"}}]},"scopeSpans":[{"scope":{},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"0000000000000001","parentSpanId":"eee19b7ec3c1b174","name":"ComposePost","kind":2,"startTimeUnixNano":"1544712660300000000","endTimeUnixNano":"1544712660300000000","status":{"code":1}}]}]}]}
"#;

fn expected_collector_spans() -> Vec<Span> {
    vec![
        Span {
            trace_id: 0x5b8efff798038103d269b633813fc60c,
            span_id: 0xeee19b7ec3c1b174,
            parent_span_id: None,
            service: "frontend".into(),
            instance: "frontend-7d9f-abc".into(),
            kind: SpanKind::Server,
            name: "GET /compose".into(),
            start_ns: 1_544_712_660_000_000_000,
            end_ns: 1_544_712_661_000_000_000,
            error: true,
            peer_service: None,
            version: None,
        },
        Span {
            trace_id: 0x5b8efff798038103d269b633813fc60c,
            span_id: 0xeee19b7ec3c1b175,
            parent_span_id: Some(0xeee19b7ec3c1b174),
            service: "frontend".into(),
            instance: "frontend-7d9f-abc".into(),
            kind: SpanKind::Client,
            name: "redis GET".into(),
            start_ns: 1_544_712_660_100_000_000,
            end_ns: 1_544_712_660_200_000_000,
            error: false,
            peer_service: Some("redis".into()),
            version: None,
        },
        Span {
            trace_id: 0x5b8efff798038103d269b633813fc60c,
            span_id: 1,
            parent_span_id: Some(0xeee19b7ec3c1b174),
            service: "composePost".into(),
            instance: "cp-1".into(),
            kind: SpanKind::Server,
            name: "ComposePost".into(),
            start_ns: 1_544_712_660_300_000_000,
            end_ns: 1_544_712_660_300_000_000,
            error: false,
            peer_service: None,
            version: None,
        },
    ]
}

#[test]
fn collector_file_exporter_line() {
    let mut out = Vec::new();
    let errors = decode_traces_json(COLLECTOR_LINE.as_bytes(), &mut out).expect("parses");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out, expected_collector_spans());
}

#[test]
fn int64_times_as_numbers_and_enum_names() {
    let line = COLLECTOR_LINE
        .replace("\"1544712660000000000\"", "1544712660000000000")
        .replace("\"1544712661000000000\"", "1544712661000000000")
        .replace("\"kind\":3", "\"kind\":\"SPAN_KIND_CLIENT\"")
        .replace("\"code\":2", "\"code\":\"STATUS_CODE_ERROR\"");
    assert_ne!(line, COLLECTOR_LINE);
    let mut out = Vec::new();
    let errors = decode_traces_json(line.as_bytes(), &mut out).expect("parses");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out, expected_collector_spans());
}

#[test]
fn our_json_is_collector_shaped() {
    let spans = expected_collector_spans();
    let line = encode_traces_json(&spans);
    let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(span["spanId"], "eee19b7ec3c1b174");
    assert_eq!(span["startTimeUnixNano"], "1544712660000000000");
    assert_eq!(span["kind"], 2);
    assert_eq!(span["status"]["code"], 2);
    let attrs = &v["resourceSpans"][0]["resource"]["attributes"];
    assert_eq!(attrs[0]["key"], "service.name");
    assert_eq!(attrs[0]["value"]["stringValue"], "frontend");
    assert_eq!(attrs[1]["key"], "service.instance.id");
    let client = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
    assert_eq!(client["attributes"][0]["key"], "peer.service");
    assert_eq!(client["parentSpanId"], "eee19b7ec3c1b174");
    // Two resources: (frontend, pod) and (composePost, cp-1).
    assert_eq!(v["resourceSpans"].as_array().map(Vec::len), Some(2));
}

#[test]
fn instance_fallbacks() {
    let line = |attrs: &str| {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{attrs}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#
        )
    };
    let kv = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#);
    for (attrs, want) in [
        (
            vec![
                kv("service.name", "a"),
                kv("host.name", "h"),
                kv("k8s.pod.name", "p"),
                kv("service.instance.id", "i"),
            ],
            "p",
        ),
        (
            vec![
                kv("service.name", "a"),
                kv("host.name", "h"),
                kv("service.instance.id", "i"),
            ],
            "i",
        ),
        (vec![kv("service.name", "a"), kv("host.name", "h")], "h"),
        (
            vec![kv("service.name", "a"), kv("service.instance.id", "")],
            "a",
        ),
    ] {
        let mut out = Vec::new();
        let errs = decode_traces_json(line(&attrs.join(",")).as_bytes(), &mut out).expect("parses");
        assert!(errs.is_empty());
        assert_eq!(out[0].instance, want);
        assert_eq!(out[0].kind, SpanKind::Unspecified);
    }
}

fn one_span_line(
    service: &str,
    trace: &str,
    span: &str,
    parent: &str,
    start: &str,
    end: &str,
) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{trace}","spanId":"{span}","parentSpanId":"{parent}","name":"op","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"}}]}}]}}]}}"#
    )
}

const T: &str = "5b8efff798038103d269b633813fc60c";
const S: &str = "eee19b7ec3c1b174";

fn one_error(line: &str) -> String {
    let mut out = Vec::new();
    let errors = decode_traces_json(line.as_bytes(), &mut out).expect("parses");
    assert!(out.is_empty());
    assert_eq!(errors.len(), 1);
    // The context is JSON that names the record.
    let ctx: serde_json::Value = serde_json::from_str(&errors[0].record).expect("context is JSON");
    assert!(ctx.get("spanId").is_some());
    errors[0].reason.clone()
}

#[test]
fn bad_spans_are_record_errors() {
    assert_eq!(
        one_error(&one_span_line("", T, S, "", "1", "2")),
        "missing service.name"
    );
    assert_eq!(
        one_error(&one_span_line("svc", "5b8e", S, "", "1", "2")),
        "trace id is 4 hex digits, expected 32"
    );
    assert_eq!(
        one_error(&one_span_line("svc", T, "eee19b7ec3c1b1", "", "1", "2")),
        "span id is 14 hex digits, expected 16"
    );
    assert_eq!(
        one_error(&one_span_line("svc", T, S, "ee", "1", "2")),
        "parent span id is 2 hex digits, expected 16"
    );
    assert_eq!(
        one_error(&one_span_line("svc", T, "zzzzzzzzzzzzzzzz", "", "1", "2")),
        "span id \"zzzzzzzzzzzzzzzz\" is not hex"
    );
    assert_eq!(
        one_error(&one_span_line("svc", &"0".repeat(32), S, "", "1", "2")),
        "trace id is all zeros"
    );
    assert_eq!(
        one_error(&one_span_line("svc", T, "0000000000000000", "", "1", "2")),
        "span id is all zeros"
    );
    assert_eq!(
        one_error(&one_span_line("svc", T, S, "", "20", "10")),
        "end time 10 is before start time 20"
    );
    assert_eq!(
        one_error(&one_span_line("svc", T, S, "", "0", "10")),
        "missing start time (startTimeUnixNano is 0)"
    );
    assert_eq!(
        one_error(&one_span_line("svc", "", S, "", "1", "2")),
        "missing trace id"
    );
}

#[test]
fn two_good_one_bad() {
    let mut spans = expected_collector_spans();
    spans[1].end_ns = spans[1].start_ns - 1; // bad
    for decoded in [
        {
            let mut out = Vec::new();
            let e = decode_traces_json(encode_traces_json(&spans).as_bytes(), &mut out)
                .expect("parses");
            (out, e)
        },
        {
            let mut out = Vec::new();
            let e = decode_traces_proto(&encode_traces_proto(&spans), &mut out).expect("parses");
            (out, e)
        },
        {
            let mut out = Vec::new();
            let e = decode_traces(&encode_traces(&spans), &mut out);
            (out, e)
        },
    ] {
        let (out, errors) = decoded;
        assert_eq!(out.len(), 2);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].reason.starts_with("end time"),
            "{}",
            errors[0].reason
        );
        assert!(
            errors[0].record.contains("eee19b7ec3c1b175"),
            "{}",
            errors[0].record
        );
    }
}

#[test]
fn unparseable_messages_are_errors() {
    let mut out = Vec::new();
    let e = decode_traces_json(b"not json", &mut out).unwrap_err();
    assert!(matches!(e, DecodeError::Json { line: 1, .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid OTLP JSON at line 1 column"),
        "{e}"
    );

    let e = decode_traces_json(b"", &mut out).unwrap_err();
    assert!(e.to_string().contains("EOF"), "{e}");

    let e = decode_traces_json(
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"x"}]}]}]}"#,
        &mut out,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("\"x\" is not an unsigned integer"),
        "{e}"
    );

    let e = decode_traces_json(br#"{"resourceSpans":{}}"#, &mut out).unwrap_err();
    assert!(matches!(e, DecodeError::Json { .. }), "{e}");

    let bytes = encode_traces_proto(&expected_collector_spans());
    for cut in [1, bytes.len() / 3, bytes.len() - 1] {
        let e = decode_traces_proto(&bytes[..cut], &mut out).unwrap_err();
        assert!(e.to_string().starts_with("invalid protobuf: "), "{e}");
    }
    assert!(out.is_empty());
    // An empty message is a valid empty request.
    assert_eq!(decode_traces_proto(&[], &mut out), Ok(vec![]));
    assert_eq!(decode_traces_json(b"{}", &mut out), Ok(vec![]));
    // Another format's export (Jaeger's JSON here), or another signal's, is not read as an
    // empty request.
    for other in [
        &br#"{"data":[{"traceID":"5b8e","spans":[{"spanID":"1","operationName":"x"}]}]}"#[..],
        br#"{"resourceLogs":[]}"#,
    ] {
        let e = decode_traces_json(other, &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::NotAnExport {
                    field: "resourceSpans",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("no `resourceSpans` field"), "{e}");
    }
    assert!(out.is_empty());
}

fn bench_spans(n: usize) -> Vec<Span> {
    let services = [
        "frontend",
        "compose-post",
        "user",
        "media",
        "text",
        "url-shorten",
        "home-timeline",
        "social-graph",
    ];
    (0..n)
        .map(|i| {
            let svc = services[i % services.len()];
            Span {
                trace_id: 0x5b8efff798038103d269b633813fc60c ^ (i as u128 / 8),
                span_id: i as u64 + 1,
                parent_span_id: (i % 8 != 0).then_some(i as u64),
                service: svc.to_owned(),
                instance: format!("{svc}-{}", i % 3),
                kind: if i % 2 == 0 {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                },
                name: format!("/{svc}/op{}", i % 5),
                start_ns: 1_700_000_000_000_000_000 + i as u64 * 1000,
                end_ns: 1_700_000_000_000_000_000 + i as u64 * 1000 + 5_000_000,
                error: i % 50 == 0,
                peer_service: (i % 16 == 1).then(|| "redis".to_owned()),
                version: None,
            }
        })
        .collect()
}

/// `cargo test --release -p augur-connectors --test otlp_traces -- --ignored --nocapture`
#[test]
#[ignore]
fn decode_speed() {
    use std::time::Instant;
    let batches: Vec<Vec<Span>> = (0..200).map(|_| bench_spans(500)).collect();
    let total: usize = batches.iter().map(Vec::len).sum();
    let protos: Vec<Vec<u8>> = batches.iter().map(|b| encode_traces_proto(b)).collect();
    let jsons: Vec<String> = batches.iter().map(|b| encode_traces_json(b)).collect();
    let mut out = Vec::with_capacity(total);
    for _ in 0..3 {
        out.clear();
        let t = Instant::now();
        for p in &protos {
            decode_traces_proto(p, &mut out).expect("ok");
        }
        let proto_s = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), total);
        out.clear();
        let t = Instant::now();
        for j in &jsons {
            decode_traces_json(j.as_bytes(), &mut out).expect("ok");
        }
        let json_s = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), total);
        out.clear();
        let t = Instant::now();
        for p in &protos {
            let req = ExportTraceServiceRequest::decode(p.as_slice()).expect("ok");
            decode_traces(&req, &mut out);
        }
        let prost_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut n = 0;
        for b in &batches {
            n += encode_traces_proto(b).len();
        }
        let enc_s = t.elapsed().as_secs_f64();
        println!(
            "{total} spans: proto decode {:.2} M spans/s, JSON decode {:.2} M spans/s, prost+decode_traces {:.2} M spans/s, proto encode {:.2} M spans/s ({n} bytes)",
            total as f64 / proto_s / 1e6,
            total as f64 / json_s / 1e6,
            total as f64 / prost_s / 1e6,
            total as f64 / enc_s / 1e6,
        );
    }
}

/// A client span without `peer.service` is named after the service its server address
/// names (an uninstrumented database's Kubernetes service); an IP address, `localhost` or
/// a span that is not a client names none. All three decoders alike.
#[test]
fn a_client_span_names_its_callee_by_its_server_address() {
    let span = |kind: i32, attrs: &str| {
        format!(
            r#"{{"traceId":"{T}","spanId":"{S}","name":"op","kind":{kind},"startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{attrs}]}}"#
        )
    };
    let text = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#);
    let cases = [
        (
            3,
            text("server.address", "carts-db.sock-shop.svc.cluster.local"),
            Some("carts-db"),
        ),
        (3, text("net.peer.name", "redis"), Some("redis")),
        (
            3,
            format!(
                "{},{}",
                text("net.peer.name", "old"),
                text("server.address", "new")
            ),
            Some("new"),
        ),
        (
            3,
            format!(
                "{},{}",
                text("server.address", "db"),
                text("peer.service", "users-db")
            ),
            Some("users-db"),
        ),
        (3, text("server.address", "10.0.3.7"), None),
        (3, text("server.address", "::1"), None),
        (3, text("server.address", "localhost"), None),
        (2, text("server.address", "carts-db"), None),
    ];
    for (kind, attrs, want) in cases {
        let line = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            text("service.name", "carts"),
            span(kind, &attrs)
        );
        let mut json = Vec::new();
        assert!(
            decode_traces_json(line.as_bytes(), &mut json)
                .expect("parses")
                .is_empty()
        );
        let req: ExportTraceServiceRequest = serde_json::from_str(&line).expect("prost json");
        let mut proto = Vec::new();
        assert!(
            decode_traces_proto(&req.encode_to_vec(), &mut proto)
                .expect("decodes")
                .is_empty()
        );
        let mut parsed = Vec::new();
        assert!(decode_traces(&req, &mut parsed).is_empty());
        for out in [&json, &proto, &parsed] {
            assert_eq!(out[0].peer_service.as_deref(), want, "{attrs}");
        }
    }
}

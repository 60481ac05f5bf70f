//! Fuzzing of every message decoder a source calls (OTLP protobuf and JSON for spans,
//! metrics and logs; prometheus-kafka-adapter JSON) with proptest: arbitrary bytes, valid
//! encodings cut short, bit-flipped and spliced, JSON of other shapes (deep nesting, huge
//! numbers, long strings, OTLP keys holding the wrong types), and valid messages with
//! extreme values. Each input goes through all seven decoders, and each call must
//!
//! - return (no panic), with a non-empty message when it is an error;
//! - yield at most one record or rejected record per two input bytes;
//! - own at most [`OWNED_PER_BYTE`] bytes of strings per input byte in what it returns;
//! - allocate at most [`ALLOC_PER_BYTE`] bytes per input byte at its peak, measured on
//!   the calling thread by the counting allocator below (so a length field claiming 4 GB,
//!   or one long resource attribute copied into every record, fails the test instead of
//!   the machine).
//!
//! The number of cases per test is proptest's (256), or `PROPTEST_CASES`.

#![allow(unsafe_code)] // the counting allocator

use augur_connectors::kafka::{Encoding, decode_message};
use augur_connectors::otlp::{
    ExportLogsServiceRequest, MAX_RESOURCE_VALUE_BYTES, MetricNames, RECORD_CONTEXTS,
    decode_logs_json, decode_logs_proto, decode_metrics_json, decode_metrics_proto,
    decode_traces_json, decode_traces_proto, encode_metrics_json, encode_metrics_proto,
    encode_traces_json, encode_traces_proto,
};
use augur_operators::records::{MetricPoint, Resource, Span, SpanKind};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use proptest::prelude::*;
use prost::Message;
use serde_json::Value;

/// Bytes a decoder may allocate at its peak per input byte (plus [`ALLOC_SLACK`]).
const ALLOC_PER_BYTE: usize = 256;
const ALLOC_SLACK: usize = 64 << 10;
/// String bytes the decoded records and rejections may own per input byte (plus
/// [`OWNED_SLACK`]).
const OWNED_PER_BYTE: usize = 64;
const OWNED_SLACK: usize = 4 << 10;

/// Counts the bytes live on each thread and their peak.
mod meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = LIVE.try_with(|live| {
            let v = live.get() + n;
            live.set(v);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(v)));
        });
    }

    pub struct Counting;

    // SAFETY: every call is forwarded to the system allocator unchanged; the counters are
    // const-initialised thread-locals without destructors, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                add(layout.size() as isize);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                add(layout.size() as isize);
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            unsafe { System.dealloc(p, layout) };
            add(-(layout.size() as isize));
        }
        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let q = unsafe { System.realloc(p, layout, new_size) };
            if !q.is_null() {
                add(new_size as isize - layout.size() as isize);
            }
            q
        }
    }

    /// `f`'s result, and the most bytes it had allocated (and not yet freed) at once.
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let start = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(start));
        let r = f();
        let peak = PEAK.with(Cell::get);
        (r, usize::try_from(peak - start).unwrap_or(0))
    }
}

#[global_allocator]
static ALLOCATOR: meter::Counting = meter::Counting;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decoder {
    TracesProto,
    TracesJson,
    MetricsProto,
    MetricsJson,
    LogsProto,
    LogsJson,
    PromJson,
}

const DECODERS: [Decoder; 7] = [
    Decoder::TracesProto,
    Decoder::TracesJson,
    Decoder::MetricsProto,
    Decoder::MetricsJson,
    Decoder::LogsProto,
    Decoder::LogsJson,
    Decoder::PromJson,
];

/// What one decode returned, measured.
#[derive(Debug, Default)]
struct Outcome {
    records: usize,
    rejected: usize,
    /// String bytes owned by the records, the rejections and the error.
    owned: usize,
    error: Option<String>,
}

fn span_bytes(s: &Span) -> usize {
    s.service.len()
        + s.instance.len()
        + s.name.len()
        + s.peer_service.as_ref().map_or(0, String::len)
        + s.version.as_ref().map_or(0, String::len)
}

fn run(d: Decoder, bytes: &[u8]) -> Outcome {
    let names = MetricNames::default();
    let mut o = Outcome::default();
    let rejected = |o: &mut Outcome, errors: &[augur_connectors::otlp::RecordError]| {
        o.rejected += errors.len();
        o.owned += errors
            .iter()
            .map(|e| e.reason.len() + e.record.len())
            .sum::<usize>();
    };
    match d {
        Decoder::TracesProto | Decoder::TracesJson => {
            let mut spans = Vec::new();
            let r = if d == Decoder::TracesProto {
                decode_traces_proto(bytes, &mut spans)
            } else {
                decode_traces_json(bytes, &mut spans)
            };
            match r {
                Ok(errors) => rejected(&mut o, &errors),
                Err(e) => o.error = Some(e.to_string()),
            }
            o.records = spans.len();
            o.owned += spans.iter().map(span_bytes).sum::<usize>();
        }
        Decoder::MetricsProto | Decoder::MetricsJson => {
            let mut points = Vec::new();
            let r = if d == Decoder::MetricsProto {
                decode_metrics_proto(bytes, &names, &mut points)
            } else {
                decode_metrics_json(bytes, &names, &mut points)
            };
            match r {
                Ok(decoded) => rejected(&mut o, &decoded.errors),
                Err(e) => o.error = Some(e.to_string()),
            }
            o.records = points.len();
            o.owned += points
                .iter()
                .map(|p| p.service.len() + p.instance.len())
                .sum::<usize>();
        }
        Decoder::LogsProto | Decoder::LogsJson => {
            let mut logs = Vec::new();
            let r = if d == Decoder::LogsProto {
                decode_logs_proto(bytes, &mut logs)
            } else {
                decode_logs_json(bytes, &mut logs)
            };
            match r {
                Ok(errors) => rejected(&mut o, &errors),
                Err(e) => o.error = Some(e.to_string()),
            }
            o.records = logs.len();
            o.owned += logs
                .iter()
                .map(|l| l.service.len() + l.instance.len() + l.body.len())
                .sum::<usize>();
        }
        Decoder::PromJson => {
            // The Kafka entry point: prom_json is a metrics encoding.
            let (mut spans, mut points) = (Vec::new(), Vec::new());
            match decode_message(
                bytes,
                true,
                Encoding::PromJson,
                &names,
                &mut augur_connectors::otlp::Rates::default(),
                &mut spans,
                &mut points,
            ) {
                Ok(decoded) => rejected(&mut o, &decoded.record_errors),
                Err(e) => o.error = Some(e.to_string()),
            }
            o.records = points.len();
            o.owned += points
                .iter()
                .map(|p| p.service.len() + p.instance.len())
                .sum::<usize>();
        }
    }
    if let Some(e) = &o.error {
        o.owned += e.len();
    }
    o
}

/// Decodes `bytes` with every decoder and checks the bounds of the module doc.
fn check_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    for d in DECODERS {
        check(d, bytes)?;
    }
    Ok(())
}

fn check(d: Decoder, bytes: &[u8]) -> Result<(), TestCaseError> {
    let n = bytes.len();
    let (o, peak) = meter::peak(|| run(d, bytes));
    prop_assert!(
        o.records + o.rejected <= n / 2 + 1,
        "{d:?}: {} records and {} rejections from {n} bytes",
        o.records,
        o.rejected
    );
    prop_assert!(
        o.owned <= OWNED_PER_BYTE * n + OWNED_SLACK,
        "{d:?}: {} bytes of strings from {n} bytes",
        o.owned
    );
    prop_assert!(
        peak <= ALLOC_PER_BYTE * n + ALLOC_SLACK,
        "{d:?}: {peak} bytes allocated at the peak for {n} bytes"
    );
    if let Some(e) = &o.error {
        prop_assert!(!e.is_empty(), "{d:?}: an empty error message");
    }
    Ok(())
}

// ---- valid messages, with extreme values ----

const KINDS: [SpanKind; 6] = [
    SpanKind::Unspecified,
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];

/// Times at the edges: 0, 1, u64::MAX, around now.
fn arb_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        1_600_000_000_000_000_000u64..1_900_000_000_000_000_000,
        any::<u64>(),
    ]
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z]{1,8}",
        "(?s).{0,12}",
        (1..3000usize).prop_map(|n| "n".repeat(n)),
    ]
}

fn arb_span() -> impl Strategy<Value = Span> {
    (
        (
            any::<u128>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
        ),
        (arb_name(), arb_name(), arb_name()),
        (0..6usize, arb_time(), arb_time(), any::<bool>()),
        proptest::option::of(arb_name()),
        proptest::option::of(arb_name()),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent),
                (service, instance, name),
                (k, start, end, error),
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
                // End before start (a negative duration) is as likely as not.
                end_ns: end,
                error,
                peer_service: peer,
                version,
            },
        )
}

const RESOURCES: [Resource; 6] = [
    Resource::Cpu,
    Resource::Memory,
    Resource::Network,
    Resource::Disk,
    Resource::Queue,
    Resource::InFlight,
];

fn arb_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(-0.0),
        Just(9.007_199_254_740_993e15),
    ]
}

fn arb_point() -> impl Strategy<Value = MetricPoint> {
    (arb_name(), arb_name(), 0..6usize, arb_time(), arb_value()).prop_map(
        |(service, instance, r, time_ns, value)| MetricPoint {
            service,
            instance,
            resource: RESOURCES[r],
            time_ns,
            value,
        },
    )
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        key_strindex: 0,
    }
}

/// A log body: a string, or nested arrays and maps of other values.
fn arb_body() -> impl Strategy<Value = Option<AnyValue>> {
    let leaf = prop_oneof![
        arb_name().prop_map(any_value::Value::StringValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(any_value::Value::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    let tree = leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            proptest::collection::vec(("[a-z.]{0,8}", inner), 0..6).prop_map(|kvs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, v)| KeyValue {
                            key,
                            value: Some(v),
                            key_strindex: 0,
                        })
                        .collect(),
                })),
            }),
        ]
    });
    proptest::option::of(prop_oneof![Just(AnyValue { value: None }), tree])
}

fn arb_log() -> impl Strategy<Value = OtlpLog> {
    (
        arb_time(),
        arb_time(),
        any::<i32>(),
        arb_body(),
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(any::<u8>(), 0..12),
    )
        .prop_map(
            |(time, observed, severity, body, trace_id, span_id)| OtlpLog {
                time_unix_nano: time,
                observed_time_unix_nano: observed,
                severity_number: severity,
                body,
                trace_id,
                span_id,
                ..Default::default()
            },
        )
}

fn logs_request(service: &str, instance: &str, records: Vec<OtlpLog>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(OtlpResource {
                attributes: vec![
                    string_kv("service.name", service),
                    string_kv("service.instance.id", instance),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn arb_logs_request() -> impl Strategy<Value = ExportLogsServiceRequest> {
    (
        arb_name(),
        arb_name(),
        proptest::collection::vec(arb_log(), 0..8),
    )
        .prop_map(|(service, instance, records)| logs_request(&service, &instance, records))
}

fn prom_sample(name: &str, labels: &[(&str, &str)], timestamp: Value, value: Value) -> Vec<u8> {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "timestamp": timestamp, "value": value, "name": name, "labels": labels,
    }))
    .expect("serialises")
}

fn arb_prom() -> impl Strategy<Value = Vec<u8>> {
    let timestamp = prop_oneof![
        Just(Value::from("2024-02-29T23:59:59.123Z")),
        Just(Value::from("9999-12-31T23:59:59.999999999+14:00")),
        Just(Value::from("0000-01-01T00:00:00-23:59")),
        Just(Value::from("1970-01-01T00:00:00Z")),
        "[0-9T:.Z+-]{18,40}".prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
    ];
    let value = prop_oneof![
        any::<f64>().prop_map(|v| Value::from(v.to_string())),
        any::<f64>().prop_map(Value::from),
        Just(Value::from("NaN")),
        Just(Value::from("1e400")),
        Just(Value::Null),
    ];
    let name = prop_oneof![
        Just("container_cpu_utilization".to_owned()),
        Just("container.memory.usage".to_owned()),
        arb_name(),
    ];
    (name, arb_name(), arb_name(), timestamp, value).prop_map(
        |(name, service, instance, timestamp, value)| {
            prom_sample(
                &name,
                &[("job", &service), ("instance", &instance)],
                timestamp,
                value,
            )
        },
    )
}

/// One valid encoding of some decoder's message (with extreme values).
fn arb_valid() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(arb_span(), 0..12).prop_map(|s| encode_traces_proto(&s)),
        proptest::collection::vec(arb_span(), 0..12)
            .prop_map(|s| encode_traces_json(&s).into_bytes()),
        proptest::collection::vec(arb_point(), 0..12).prop_map(|p| encode_metrics_proto(&p)),
        proptest::collection::vec(arb_point(), 0..12)
            .prop_map(|p| encode_metrics_json(&p).into_bytes()),
        arb_logs_request().prop_map(|r| r.encode_to_vec()),
        arb_logs_request().prop_map(|r| serde_json::to_vec(&r).expect("serialises")),
        arb_prom(),
    ]
}

// ---- mutations ----

#[derive(Clone, Debug)]
enum Mutation {
    /// Cut the message at this fraction of its length.
    Truncate(f64),
    /// Flip bit `1` of the byte at this fraction.
    Flip(f64, u8),
    /// Overwrite the byte at this fraction.
    Set(f64, u8),
    /// Insert bytes at this fraction.
    Insert(f64, Vec<u8>),
    /// Remove up to this many bytes at this fraction.
    Remove(f64, usize),
    /// Repeat the slice `[a, b)` (fractions) `n` times in place.
    Repeat(f64, f64, usize),
}

/// Tokens that are valid JSON on their own and often wrong where they land.
const JSON_TOKENS: [&str; 16] = [
    "1e400",
    "-1e400",
    "-0",
    "18446744073709551616",
    "-9223372036854775809",
    "0.0000000000000000000000000000001",
    "\"\\ud800\"",
    "\"NaN\"",
    "null",
    "[]",
    "{}",
    "[[[[[[[[]]]]]]]]",
    "\"SPAN_KIND_SERVER\"",
    "\"ffffffffffffffffffffffffffffffff\"",
    "1.5",
    "true",
];

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let at = 0.0..1.0f64;
    prop_oneof![
        at.clone().prop_map(Mutation::Truncate),
        (at.clone(), 0..8u8).prop_map(|(a, b)| Mutation::Flip(a, b)),
        (at.clone(), any::<u8>()).prop_map(|(a, b)| Mutation::Set(a, b)),
        (
            at.clone(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..12),
                proptest::sample::select(&JSON_TOKENS[..]).prop_map(|t| t.as_bytes().to_vec()),
                // A varint length of 4 GB, and of u64::MAX.
                Just(vec![0x0a, 0x80, 0x80, 0x80, 0x80, 0x10]),
                Just(vec![
                    0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
                ]),
            ]
        )
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        (at.clone(), 1..16usize).prop_map(|(a, n)| Mutation::Remove(a, n)),
        (at.clone(), at, 1..8usize).prop_map(|(a, b, n)| Mutation::Repeat(a, b, n)),
    ]
}

fn index(len: usize, at: f64) -> usize {
    ((len as f64 * at) as usize).min(len)
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Truncate(at) => bytes.truncate(index(len, *at)),
            Mutation::Flip(at, bit) if len > 0 => {
                let i = index(len - 1, *at);
                bytes[i] ^= 1 << bit;
            }
            Mutation::Set(at, b) if len > 0 => {
                let i = index(len - 1, *at);
                bytes[i] = *b;
            }
            Mutation::Insert(at, b) => {
                let i = index(len, *at);
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Remove(at, n) => {
                let i = index(len, *at);
                let j = (i + n).min(len);
                bytes.drain(i..j);
            }
            Mutation::Repeat(a, b, n) => {
                let (i, j) = (index(len, a.min(*b)), index(len, a.max(*b)));
                let slice = bytes[i..j].to_vec();
                for _ in 0..*n {
                    bytes.splice(j..j, slice.iter().copied());
                }
            }
            _ => {}
        }
    }
    bytes
}

// ---- JSON of other shapes ----

/// Keys the JSON decoders look for, so random trees reach their inner levels.
const KEYS: [&str; 40] = [
    "resourceSpans",
    "resource_spans",
    "resource",
    "attributes",
    "key",
    "value",
    "stringValue",
    "scopeSpans",
    "spans",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "status",
    "code",
    "resourceMetrics",
    "scopeMetrics",
    "metrics",
    "gauge",
    "sum",
    "histogram",
    "summary",
    "exponentialHistogram",
    "dataPoints",
    "timeUnixNano",
    "asDouble",
    "asInt",
    "resourceLogs",
    "scopeLogs",
    "logRecords",
    "observedTimeUnixNano",
    "severityNumber",
    "body",
    "timestamp",
    "labels",
    "service.name",
    "job",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "(?s).{0,24}".prop_map(Value::from),
        proptest::sample::select(&KEYS[..]).prop_map(Value::from),
        "[0-9a-f]{16,32}".prop_map(Value::from),
        (1..5000usize).prop_map(|n| Value::from("s".repeat(n))),
        Just(Value::from("container.cpu.utilization")),
        Just(Value::from("18446744073709551616")),
    ];
    leaf.prop_recursive(8, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(&KEYS[..]).prop_map(str::to_owned),
                        "[a-z]{0,6}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kvs| Value::Object(kvs.into_iter().collect())),
        ]
    })
}

/// JSON nested `depth` levels deep, inside a request's array.
fn deep_json(depth: usize, open: &str, close: &str) -> Vec<u8> {
    let mut s = String::from("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
    s.push_str(&open.repeat(depth));
    s.push_str(&close.repeat(depth));
    s.push_str("]}]}],\"resourceMetrics\":[],\"resourceLogs\":[]}");
    s.into_bytes()
}

/// A log body nested `depth` levels of arrays and maps deep.
fn deep_log_body(depth: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(any_value::Value::StringValue("leaf".to_owned())),
    };
    for i in 0..depth {
        v = if i % 2 == 0 {
            AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
            }
        } else {
            AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".to_owned(),
                        value: Some(v),
                        key_strindex: 0,
                    }],
                })),
            }
        };
    }
    v
}

// ---- one long resource attribute shared by many records ----

/// Which record an amplifier repeats.
#[derive(Clone, Copy, Debug)]
enum Repeated {
    /// A small valid record.
    Valid,
    /// An empty record (two bytes on the wire, one rejection).
    Empty,
}

/// A message of each format whose resource has a `service.name` of `len` bytes, followed
/// by `count` small records. Decoders that copy the resource into every record own
/// `len × count` bytes for `len + count` bytes of input.
fn amplifier(format: usize, len: usize, count: usize, repeated: Repeated) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1 as m;
    use opentelemetry_proto::tonic::trace::v1 as t;
    let service = "s".repeat(len);
    let resource = Some(OtlpResource {
        attributes: vec![string_kv("service.name", &service)],
        ..Default::default()
    });
    let valid = matches!(repeated, Repeated::Valid);
    let json_resource = format!(
        "\"resource\":{{\"attributes\":[{{\"key\":\"service.name\",\"value\":{{\"stringValue\":\"{service}\"}}}}]}}"
    );
    let json_list = |one: &str| vec![one; count].join(",");
    match format {
        0 => ExportTraceServiceRequest {
            resource_spans: vec![t::ResourceSpans {
                resource,
                scope_spans: vec![t::ScopeSpans {
                    spans: (0..count)
                        .map(|i| {
                            if valid {
                                t::Span {
                                    trace_id: vec![1; 16],
                                    span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                                    start_time_unix_nano: 1,
                                    end_time_unix_nano: 2,
                                    ..Default::default()
                                }
                            } else {
                                t::Span::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        1 => {
            let one = if valid {
                "{\"traceId\":\"01010101010101010101010101010101\",\"spanId\":\"0101010101010101\",\"startTimeUnixNano\":1,\"endTimeUnixNano\":2}"
            } else {
                "{}"
            };
            format!(
                "{{\"resourceSpans\":[{{{json_resource},\"scopeSpans\":[{{\"spans\":[{}]}}]}}]}}",
                json_list(one)
            )
            .into_bytes()
        }
        2 => ExportMetricsServiceRequest {
            resource_metrics: vec![m::ResourceMetrics {
                resource,
                scope_metrics: vec![m::ScopeMetrics {
                    metrics: vec![m::Metric {
                        name: "container.cpu.utilization".to_owned(),
                        data: Some(m::metric::Data::Gauge(m::Gauge {
                            data_points: (0..count)
                                .map(|_| {
                                    if valid {
                                        m::NumberDataPoint {
                                            time_unix_nano: 1,
                                            value: Some(m::number_data_point::Value::AsDouble(0.5)),
                                            ..Default::default()
                                        }
                                    } else {
                                        m::NumberDataPoint::default()
                                    }
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        3 => {
            let one = if valid {
                "{\"timeUnixNano\":1,\"asDouble\":0.5}"
            } else {
                "{}"
            };
            format!("{{\"resourceMetrics\":[{{{json_resource},\"scopeMetrics\":[{{\"metrics\":[{{\"name\":\"container.cpu.utilization\",\"gauge\":{{\"dataPoints\":[{}]}}}}]}}]}}]}}", json_list(one)).into_bytes()
        }
        4 => {
            let mut req = logs_request(&service, "", Vec::new());
            req.resource_logs[0].scope_logs[0].log_records = (0..count)
                .map(|_| OtlpLog {
                    time_unix_nano: u64::from(valid),
                    ..Default::default()
                })
                .collect();
            req.encode_to_vec()
        }
        _ => {
            let one = if valid { "{\"timeUnixNano\":1}" } else { "{}" };
            format!("{{\"resourceLogs\":[{{{json_resource},\"scopeLogs\":[{{\"logRecords\":[{}]}}]}}]}}", json_list(one)).into_bytes()
        }
    }
}

fn arb_amplifier() -> impl Strategy<Value = Vec<u8>> {
    (
        0..6usize,
        1..20_000usize,
        1..2_000usize,
        prop_oneof![Just(Repeated::Valid), Just(Repeated::Empty)],
    )
        .prop_map(|(format, len, count, repeated)| amplifier(format, len, count, repeated))
}

proptest! {
    #[test]
    fn fuzz_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_all(&bytes)?;
    }

    #[test]
    fn fuzz_valid_messages_with_extreme_values(bytes in arb_valid()) {
        check_all(&bytes)?;
    }

    #[test]
    fn fuzz_mutated_valid_messages(
        bytes in arb_valid(),
        mutations in proptest::collection::vec(arb_mutation(), 1..6),
    ) {
        check_all(&mutate(bytes, &mutations))?;
    }

    #[test]
    fn fuzz_json_of_other_shapes(
        value in arb_json(),
        mutations in proptest::collection::vec(arb_mutation(), 0..3),
    ) {
        let bytes = serde_json::to_vec(&value).expect("serialises");
        check_all(&bytes)?;
        check_all(&mutate(bytes, &mutations))?;
    }

    #[test]
    fn fuzz_one_resource_many_records(bytes in arb_amplifier()) {
        check_all(&bytes)?;
    }

    #[test]
    fn fuzz_deep_nesting(depth in 1..20_000usize, kind in 0..4usize) {
        let (open, close) = [("[", "]"), ("{\"a\":", "}"), ("{\"spans\":[", "]}"), ("[{\"body\":", "}]")][kind];
        check_all(&deep_json(depth, open, close))?;
    }

    #[test]
    fn fuzz_deep_log_bodies(depth in 1..400usize) {
        let log = OtlpLog { time_unix_nano: 1, body: Some(deep_log_body(depth)), ..Default::default() };
        let req = logs_request("svc", "i", vec![log]);
        check_all(&req.encode_to_vec())?;
        if depth < 100 {
            check_all(&serde_json::to_vec(&req).expect("serialises"))?;
        }
    }
}

/// A length-delimited field that claims 4 GB (and one that claims u64::MAX) in each
/// decoder's outermost message: an error, nothing allocated for it.
#[test]
fn lengths_past_the_end_allocate_nothing() {
    for claim in [
        vec![0x0a, 0x80, 0x80, 0x80, 0x80, 0x10],
        vec![
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    ] {
        for d in [
            Decoder::TracesProto,
            Decoder::MetricsProto,
            Decoder::LogsProto,
        ] {
            let (o, peak) = meter::peak(|| run(d, &claim));
            assert!(o.error.is_some(), "{d:?} accepted {claim:?}");
            assert!(peak < 4096, "{d:?} allocated {peak} bytes for {claim:?}");
        }
    }
}

/// The decoder of each [`amplifier`] format.
const AMPLIFIER_DECODERS: [Decoder; 6] = [
    Decoder::TracesProto,
    Decoder::TracesJson,
    Decoder::MetricsProto,
    Decoder::MetricsJson,
    Decoder::LogsProto,
    Decoder::LogsJson,
];

/// A `service.name` of 20 kB over 2000 records: the records are rejected for it (each would
/// otherwise own a copy: 80 MB for 100 kB of input), and the rejections repeat only a
/// prefix of it. One of [`MAX_RESOURCE_VALUE_BYTES`] is accepted.
#[test]
fn a_long_resource_attribute_is_not_copied_into_every_record() {
    for (format, d) in AMPLIFIER_DECODERS.into_iter().enumerate() {
        for repeated in [Repeated::Valid, Repeated::Empty] {
            let bytes = amplifier(format, 20_000, 2_000, repeated);
            if let Err(e) = check(d, &bytes) {
                panic!("{d:?} {repeated:?}: {e}");
            }
            let o = run(d, &bytes);
            assert_eq!((o.records, o.rejected), (0, 2000), "{d:?} {repeated:?}");
        }
        let o = run(
            d,
            &amplifier(format, MAX_RESOURCE_VALUE_BYTES, 10, Repeated::Valid),
        );
        assert_eq!((o.records, o.rejected), (10, 0), "{d:?}");
    }
    let mut spans = Vec::new();
    let errors = decode_traces_proto(&amplifier(0, 20_000, 1, Repeated::Valid), &mut spans)
        .expect("decodes");
    assert_eq!(
        errors[0].reason,
        "service.name is 20000 bytes long (at most 256)"
    );
    assert!(errors[0].record.len() < 400, "{}", errors[0].record);
}

/// Just past a power of two, a list's growth leaves it nearly half empty: the parsed
/// records of a message of small records (empty or valid) stay within the bounds there
/// too, where the spare half of a list of large parsed records would not.
#[test]
fn many_small_records_stay_within_bounds_just_past_a_power_of_two() {
    for (format, d) in AMPLIFIER_DECODERS.into_iter().enumerate() {
        for count in [129, 257, 513, 1025] {
            for repeated in [Repeated::Valid, Repeated::Empty] {
                let bytes = amplifier(format, 8, count, repeated);
                if let Err(e) = check(d, &bytes) {
                    panic!("{d:?} {repeated:?} {count}: {e}");
                }
            }
        }
    }
}

/// 100 000 empty spans, points and log records (two bytes each) under one resource: every
/// one is rejected and counted, only the first [`RECORD_CONTEXTS`] with their context, and
/// the decoders stay within the bounds (a context for each would cost about 70 bytes of
/// strings per input byte).
#[test]
fn many_small_bad_records_cost_a_reason_each() {
    for (format, d) in AMPLIFIER_DECODERS.into_iter().enumerate() {
        let bytes = amplifier(format, 8, 100_000, Repeated::Empty);
        if let Err(e) = check(d, &bytes) {
            panic!("{d:?}: {e}");
        }
        assert_eq!(run(d, &bytes).rejected, 100_000, "{d:?}");
    }
    let mut spans = Vec::new();
    let errors =
        decode_traces_proto(&amplifier(0, 8, 100, Repeated::Empty), &mut spans).expect("decodes");
    assert!(
        errors[..RECORD_CONTEXTS]
            .iter()
            .all(|e| !e.record.is_empty())
    );
    assert!(
        errors[RECORD_CONTEXTS..]
            .iter()
            .all(|e| e.record.is_empty())
    );
    assert!(errors.iter().all(|e| e.reason == "missing trace id"));
}

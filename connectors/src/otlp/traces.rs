//! Spans ↔ OTLP trace export requests. Decoding from a prost `ExportTraceServiceRequest`
//! (out: validated [`Span`]s plus [`RecordError`]s), and encoding [`Span`]s into a request,
//! its protobuf bytes, or one OTLP/JSON line as the Collector's file exporter writes it.

use augur_operators::records::{Span, SpanKind};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1 as otlp;
use prost::Message;

use super::error::RecordError;
use super::group::by_resource;
use super::json_write::{push_str, push_string_attr, push_u64_str};
use super::view::{
    IdRef, NET_PEER_NAME, OwnedIdentity, PEER_SERVICE, RawSpan, ResourceAttrs, SERVER_ADDRESS,
    SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, STATUS_ERROR,
};

/// The instrumentation scope name augur writes.
pub(crate) const SCOPE_NAME: &str = "augur";

fn string_value(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The resource attributes augur reads from a prost `Resource`.
pub(crate) fn resource_attrs(res: Option<&OtlpResource>) -> ResourceAttrs<'_> {
    let mut attrs = ResourceAttrs::default();
    for kv in res.iter().flat_map(|r| &r.attributes) {
        if let Some(v) = string_value(kv) {
            attrs.set(&kv.key, v);
        }
    }
    attrs
}

/// Decodes an already-parsed request: good spans are appended to `out`; every span that
/// failed validation is returned with its reason.
pub fn decode_traces(req: &ExportTraceServiceRequest, out: &mut Vec<Span>) -> Vec<RecordError> {
    let mut errors = Vec::new();
    for rs in &req.resource_spans {
        let ident = OwnedIdentity::new(&resource_attrs(rs.resource.as_ref()));
        for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            let peer_service = s
                .attributes
                .iter()
                .rev()
                .find(|kv| kv.key == PEER_SERVICE)
                .and_then(string_value);
            let raw = RawSpan {
                trace_id: IdRef::Bytes(&s.trace_id),
                span_id: IdRef::Bytes(&s.span_id),
                parent_span_id: IdRef::Bytes(&s.parent_span_id),
                name: &s.name,
                kind: s.kind,
                start_ns: s.start_time_unix_nano,
                end_ns: s.end_time_unix_nano,
                status_code: s.status.as_ref().map_or(0, |st| st.code),
                peer_service,
                peer_address: [SERVER_ADDRESS, NET_PEER_NAME].iter().find_map(|key| {
                    s.attributes
                        .iter()
                        .rev()
                        .find(|kv| kv.key == *key)
                        .and_then(string_value)
                }),
            };
            match raw.validate(&ident, errors.len()) {
                Ok(span) => out.push(span),
                Err(e) => errors.push(e),
            }
        }
    }
    errors
}

pub(crate) fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        key_strindex: 0,
    }
}

/// A `Resource` with `service.name`, `service.instance.id` and, if given, `service.version`.
pub(crate) fn otlp_resource(service: &str, instance: &str, version: Option<&str>) -> OtlpResource {
    let mut attributes = vec![
        string_kv(SERVICE_NAME, service),
        string_kv(SERVICE_INSTANCE_ID, instance),
    ];
    attributes.extend(version.map(|v| string_kv(SERVICE_VERSION, v)));
    OtlpResource {
        attributes,
        ..Default::default()
    }
}

/// A span's resource: `(service, instance, version)`.
fn span_resource(s: &Span) -> (&str, &str, Option<&str>) {
    (
        s.service.as_str(),
        s.instance.as_str(),
        s.version.as_deref(),
    )
}

pub(crate) fn otlp_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        ..Default::default()
    }
}

/// OTLP span kind number.
fn kind_number(k: SpanKind) -> i32 {
    match k {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Encodes spans as one request: one `ResourceSpans` per `(service, instance)` (in order of
/// first appearance) with `service.name`, `service.instance.id` and `service.version` (when
/// the span has one; spans of other versions form their own resource), `peer.service` on spans
/// that have it, status code ERROR on error spans.
pub fn encode_traces(spans: &[Span]) -> ExportTraceServiceRequest {
    let resource_spans = by_resource(spans, span_resource)
        .into_iter()
        .map(
            |((service, instance, version), group)| otlp::ResourceSpans {
                resource: Some(otlp_resource(service, instance, version)),
                scope_spans: vec![otlp::ScopeSpans {
                    scope: Some(otlp_scope()),
                    spans: group.into_iter().map(otlp_span).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        )
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

fn otlp_span(s: &Span) -> otlp::Span {
    otlp::Span {
        trace_id: s.trace_id.to_be_bytes().to_vec(),
        span_id: s.span_id.to_be_bytes().to_vec(),
        parent_span_id: s
            .parent_span_id
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        name: s.name.clone(),
        kind: kind_number(s.kind),
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: s.end_ns,
        attributes: s
            .peer_service
            .iter()
            .map(|p| string_kv(PEER_SERVICE, p))
            .collect(),
        status: s.error.then(|| otlp::Status {
            message: String::new(),
            code: STATUS_ERROR,
        }),
        ..Default::default()
    }
}

/// Encodes spans as protobuf `ExportTraceServiceRequest` bytes (see [`encode_traces`]).
pub fn encode_traces_proto(spans: &[Span]) -> Vec<u8> {
    encode_traces(spans).encode_to_vec()
}

/// Appends `"resource":{"attributes":[service.name, service.instance.id(, service.version)]}`.
pub(crate) fn push_json_resource(
    out: &mut String,
    service: &str,
    instance: &str,
    version: Option<&str>,
) {
    out.push_str("\"resource\":{\"attributes\":[");
    push_string_attr(out, SERVICE_NAME, service);
    out.push(',');
    push_string_attr(out, SERVICE_INSTANCE_ID, instance);
    if let Some(v) = version {
        out.push(',');
        push_string_attr(out, SERVICE_VERSION, v);
    }
    out.push_str("]}");
}

/// Encodes spans as one OTLP/JSON line (no trailing newline) in the Collector file-exporter
/// shape: lowerCamelCase, hex ids, times as decimal strings, kind and status code as numbers,
/// default-valued fields omitted.
pub fn encode_traces_json(spans: &[Span]) -> String {
    let mut out = String::with_capacity(64 + spans.len() * 300);
    out.push_str("{\"resourceSpans\":[");
    for (i, ((service, instance, version), group)) in
        by_resource(spans, span_resource).into_iter().enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        push_json_resource(&mut out, service, instance, version);
        out.push_str(",\"scopeSpans\":[{\"scope\":{\"name\":\"");
        out.push_str(SCOPE_NAME);
        out.push_str("\"},\"spans\":[");
        for (j, s) in group.into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_json_span(&mut out, s);
        }
        out.push_str("]}]}");
    }
    out.push_str("]}");
    out
}

fn push_json_span(out: &mut String, s: &Span) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{{\"traceId\":\"{:032x}\",\"spanId\":\"{:016x}\"",
        s.trace_id, s.span_id
    );
    if let Some(p) = s.parent_span_id {
        let _ = write!(out, ",\"parentSpanId\":\"{p:016x}\"");
    }
    out.push_str(",\"name\":");
    push_str(out, &s.name);
    let _ = write!(out, ",\"kind\":{}", kind_number(s.kind));
    out.push_str(",\"startTimeUnixNano\":");
    push_u64_str(out, s.start_ns);
    out.push_str(",\"endTimeUnixNano\":");
    push_u64_str(out, s.end_ns);
    if let Some(p) = &s.peer_service {
        out.push_str(",\"attributes\":[");
        push_string_attr(out, PEER_SERVICE, p);
        out.push(']');
    }
    if s.error {
        let _ = write!(out, ",\"status\":{{\"code\":{STATUS_ERROR}}}");
    } else {
        out.push_str(",\"status\":{}");
    }
    out.push('}');
}

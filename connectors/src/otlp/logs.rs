//! OTLP logs: `ExportLogsServiceRequest` (protobuf, or OTLP/JSON as the Collector's file and
//! Kafka exporters write it) → validated [`LogRecord`]s. Out: the good records appended to
//! `out`, the rejected ones as [`RecordError`]s; input that isn't an export request is a
//! [`DecodeError`] and leaves `out` as it was.
//!
//! A record needs its resource's `service.name` and a time (`timeUnixNano`, else
//! `observedTimeUnixNano`). Trace and span ids are kept when valid hex of the right length
//! (an invalid one is a rejected record; an absent one is fine). A string body is kept as
//! is; any other body as its JSON text. The severity is the record's `severityNumber`, else
//! its `severityText`, else the level its line starts with (`2023-01-29 18:11:08 ERROR …`):
//! lines shipped as printed carry their level only in the text.

use augur_operators::log_line::leading_severity;
use augur_operators::records::{LogRecord, Severity};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use serde::Deserialize;

use super::error::{DecodeError, RECORD_CONTEXTS, RecordError, not_an_export};
use super::json_model::{EnumInt, Str, U64};
use super::json_write::{push_str_truncated, push_u64_str};
use super::traces::resource_attrs;
use super::view::{IdRef, OwnedIdentity};

/// A record's severity: its `severityNumber`, else its `severityText`, else the level its
/// line starts with (lines shipped as printed, with no severity parsed).
fn severity(number: i32, text: &str, body: &str) -> Severity {
    match Severity::from_number(number) {
        Severity::Unspecified => Severity::from_text(text)
            .or_else(|| leading_severity(body))
            .unwrap_or(Severity::Unspecified),
        known => known,
    }
}

/// The fields of one log record, however it was encoded.
struct RawLog<'a> {
    time_ns: u64,
    observed_ns: u64,
    severity_number: i32,
    severity_text: &'a str,
    body: String,
    trace_id: IdRef<'a>,
    span_id: IdRef<'a>,
}

impl RawLog<'_> {
    fn validate(self, res: &OwnedIdentity, rejected: usize) -> Result<LogRecord, RecordError> {
        let check = || -> Result<LogRecord, String> {
            let (service, instance) = res.get()?;
            let time_ns = if self.time_ns > 0 {
                self.time_ns
            } else {
                self.observed_ns
            };
            if time_ns == 0 {
                return Err("missing time (timeUnixNano and observedTimeUnixNano are 0)".into());
            }
            Ok(LogRecord {
                service: service.clone(),
                instance: instance.clone(),
                time_ns,
                severity: severity(self.severity_number, self.severity_text, &self.body),
                body: self.body.clone(),
                trace_id: self
                    .trace_id
                    .decode::<16>("trace id")?
                    .map(u128::from_be_bytes),
                span_id: self.span_id.decode::<8>("span id")?.map(u64::from_be_bytes),
            })
        };
        check().map_err(|reason| RecordError {
            reason,
            record: if rejected < RECORD_CONTEXTS {
                self.context(res)
            } else {
                String::new()
            },
        })
    }

    /// The record's identifying fields as one JSON object.
    fn context(&self, res: &OwnedIdentity) -> String {
        let mut out = String::with_capacity(160);
        out.push_str("{\"timeUnixNano\":");
        push_u64_str(&mut out, self.time_ns);
        if let Some((service, instance)) = &res.service_instance {
            out.push_str(",\"service\":");
            push_str_truncated(&mut out, service, 64);
            out.push_str(",\"instance\":");
            push_str_truncated(&mut out, instance, 64);
        }
        out.push_str(",\"body\":");
        push_str_truncated(&mut out, &self.body, 256);
        out.push('}');
        out
    }
}

fn body_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        None => String::new(),
        Some(other) => plain(other).to_string(),
    }
}

/// A protobuf `AnyValue` as plain JSON: a map as an object of its keys, a list as an
/// array, scalars as themselves (bytes in base64, as OTLP/JSON writes them), so a
/// structured body reads as the JSON line its application would have printed.
fn plain(v: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    let of = |v: &AnyValue| v.value.as_ref().map_or(J::Null, plain);
    match v {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => J::from(*d),
        any_value::Value::ArrayValue(a) => J::Array(a.values.iter().map(of).collect()),
        any_value::Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, of)))
                .collect(),
        ),
        any_value::Value::BytesValue(b) => {
            use base64::Engine;
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

/// Decodes an already-parsed request: good records are appended to `out`; every record
/// that failed validation is returned with its reason.
pub fn decode_logs(req: &ExportLogsServiceRequest, out: &mut Vec<LogRecord>) -> Vec<RecordError> {
    let mut errors = Vec::new();
    for rl in &req.resource_logs {
        let ident = OwnedIdentity::new(&resource_attrs(rl.resource.as_ref()));
        for r in rl.scope_logs.iter().flat_map(|sl| &sl.log_records) {
            let raw = RawLog {
                time_ns: r.time_unix_nano,
                observed_ns: r.observed_time_unix_nano,
                severity_number: r.severity_number,
                severity_text: &r.severity_text,
                body: body_text(r.body.as_ref()),
                trace_id: IdRef::Bytes(&r.trace_id),
                span_id: IdRef::Bytes(&r.span_id),
            };
            match raw.validate(&ident, errors.len()) {
                Ok(rec) => out.push(rec),
                Err(e) => errors.push(e),
            }
        }
    }
    errors
}

/// Decodes one protobuf `ExportLogsServiceRequest`.
pub fn decode_logs_proto(
    bytes: &[u8],
    out: &mut Vec<LogRecord>,
) -> Result<Vec<RecordError>, DecodeError> {
    let mut req = ExportLogsServiceRequest::decode(bytes)
        .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    older_scopes(bytes, &mut req)?;
    Ok(decode_logs(&req, out))
}

/// The deprecated field number of `ResourceLogs.instrumentation_library_logs`.
const INSTRUMENTATION_LIBRARY_LOGS: u32 = 1000;

/// Adds the scopes OTLP 0.15–0.18 senders wrote in field 1000 of each `ResourceLogs`
/// (laid out as scope logs are; the current schema, which prost decodes, has no such
/// field, so they would be dropped without a word).
fn older_scopes(bytes: &[u8], req: &mut ExportLogsServiceRequest) -> Result<(), DecodeError> {
    use super::wire::Fields;
    use opentelemetry_proto::tonic::logs::v1::ScopeLogs;
    let mut resources = req.resource_logs.iter_mut();
    let mut f = Fields::new(bytes);
    while let Some((n, v)) = f.next()? {
        if n != 1 {
            continue;
        }
        let rl = v.bytes("resource_logs")?;
        let Some(decoded) = resources.next() else {
            break;
        };
        let mut rf = Fields::new(rl);
        while let Some((n, v)) = rf.next()? {
            if n == INSTRUMENTATION_LIBRARY_LOGS {
                let scope = v.bytes("ResourceLogs.instrumentation_library_logs")?;
                decoded.scope_logs.push(
                    ScopeLogs::decode(scope).map_err(|e| DecodeError::Protobuf(e.to_string()))?,
                );
            }
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow, default, alias = "resource_logs")]
    resource_logs: Option<Vec<ResourceLogs<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLogs<'a> {
    #[serde(borrow, default)]
    resource: Option<super::traces_json::Resource<'a>>,
    // Exports before OTLP 0.15 name the scopes instrumentation libraries.
    #[serde(
        borrow,
        default,
        alias = "scope_logs",
        alias = "instrumentationLibraryLogs",
        alias = "instrumentation_library_logs"
    )]
    scope_logs: Option<Vec<ScopeLogs<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeLogs<'a> {
    #[serde(borrow, default, alias = "log_records")]
    log_records: Option<Vec<JsonLog<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonLog<'a> {
    #[serde(default, alias = "time_unix_nano")]
    time_unix_nano: Option<U64>,
    #[serde(default, alias = "observed_time_unix_nano")]
    observed_time_unix_nano: Option<U64>,
    #[serde(default, alias = "severity_number")]
    severity_number: Option<EnumInt>,
    #[serde(borrow, default, alias = "severity_text")]
    severity_text: Option<Str<'a>>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(borrow, default, alias = "trace_id")]
    trace_id: Option<Str<'a>>,
    #[serde(borrow, default, alias = "span_id")]
    span_id: Option<Str<'a>>,
    // A record's attributes are not read: left out, serde skips them without keeping
    // anything per record (a message of many small records stays small in memory).
}

/// A JSON `AnyValue` body as text: a string as is, anything else as its plain JSON
/// ([`plain_json`]).
fn json_body(v: Option<&serde_json::Value>) -> String {
    match v.map(plain_json) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

/// An OTLP/JSON `AnyValue` (`{"stringValue": …}`, `{"kvlistValue": {"values": […]}}`, …)
/// as plain JSON, as [`plain`] does for protobuf; anything else as it is.
fn plain_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    let J::Object(o) = v else {
        return v.clone();
    };
    let field = |camel: &str, snake: &str| o.get(camel).or(o.get(snake));
    if let Some(s) = field("stringValue", "string_value") {
        return s.clone();
    }
    if let Some(b) = field("boolValue", "bool_value") {
        return b.clone();
    }
    if let Some(i) = field("intValue", "int_value") {
        // int64 as a string, as OTLP/JSON writes it.
        return match i {
            J::String(s) => s.parse::<i64>().map_or_else(|_| i.clone(), J::from),
            _ => i.clone(),
        };
    }
    if let Some(d) = field("doubleValue", "double_value") {
        return d.clone();
    }
    if let Some(b) = field("bytesValue", "bytes_value") {
        return b.clone();
    }
    if let Some(a) = field("arrayValue", "array_value") {
        let values = a.get("values").and_then(J::as_array);
        return J::Array(values.map_or_else(Vec::new, |vs| vs.iter().map(plain_json).collect()));
    }
    if let Some(kv) = field("kvlistValue", "kvlist_value") {
        let values = kv.get("values").and_then(J::as_array);
        return J::Object(
            values
                .into_iter()
                .flatten()
                .filter_map(|kv| {
                    let key = kv.get("key")?.as_str()?.to_string();
                    Some((key, kv.get("value").map_or(J::Null, plain_json)))
                })
                .collect(),
        );
    }
    v.clone()
}

/// Decodes one OTLP/JSON `ExportLogsServiceRequest` (one line of the Collector's file
/// exporter, or one Kafka message).
pub fn decode_logs_json(
    bytes: &[u8],
    out: &mut Vec<LogRecord>,
) -> Result<Vec<RecordError>, DecodeError> {
    let req: Request<'_> = serde_json::from_slice(bytes)?;
    let Some(resource_logs) = req.resource_logs else {
        // `{}` is an empty request (proto3 JSON leaves out empty lists); other keys alone
        // are another format.
        not_an_export(bytes, "ExportLogsServiceRequest", "resourceLogs")?;
        return Ok(Vec::new());
    };
    let mut errors = Vec::new();
    for rl in &resource_logs {
        let attrs = rl
            .resource
            .as_ref()
            .map(|r| r.attributes.resource())
            .unwrap_or_default();
        let ident = OwnedIdentity::new(&attrs);
        for sl in rl.scope_logs.iter().flatten() {
            for r in sl.log_records.iter().flatten() {
                let raw = RawLog {
                    time_ns: r.time_unix_nano.unwrap_or_default().0,
                    observed_ns: r.observed_time_unix_nano.unwrap_or_default().0,
                    severity_number: r.severity_number.unwrap_or_default().0,
                    severity_text: r.severity_text.as_ref().map_or("", Str::as_str),
                    body: json_body(r.body.as_ref()),
                    trace_id: IdRef::Hex(r.trace_id.as_ref().map_or("", Str::as_str)),
                    span_id: IdRef::Hex(r.span_id.as_ref().map_or("", Str::as_str)),
                };
                match raw.validate(&ident, errors.len()) {
                    Ok(rec) => out.push(rec),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    Ok(errors)
}

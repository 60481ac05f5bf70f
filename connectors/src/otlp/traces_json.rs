//! OTLP/JSON `ExportTraceServiceRequest` (one line of the Collector's file exporter, or one
//! Kafka message) → validated [`Span`]s. Accepts what the Collector writes: lowerCamelCase
//! names, hex ids, 64-bit times as strings or numbers, enums as numbers (or names). Out: the
//! good spans appended to `out`, the rejected ones as [`RecordError`]s; JSON that isn't an
//! export request is a [`DecodeError`].

use augur_operators::records::Span;
use serde::Deserialize;

use super::error::{DecodeError, RecordError, not_an_export};
use super::json_model::{Attrs, EnumInt, Str, U64};
use super::view::{IdRef, OwnedIdentity, RawSpan};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow, default, alias = "resource_spans")]
    resource_spans: Option<Vec<ResourceSpans<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(borrow, default)]
    resource: Option<Resource<'a>>,
    // Exports before OTLP 0.15 (Collectors of early 2022 and older) name the scopes
    // instrumentation libraries.
    #[serde(
        borrow,
        default,
        alias = "scope_spans",
        alias = "instrumentationLibrarySpans",
        alias = "instrumentation_library_spans"
    )]
    scope_spans: Option<Vec<ScopeSpans<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct Resource<'a> {
    #[serde(borrow, default)]
    pub attributes: Attrs<'a>,
}

#[derive(Deserialize)]
struct ScopeSpans<'a> {
    #[serde(borrow, default)]
    spans: Option<Vec<JsonSpan<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan<'a> {
    #[serde(borrow, default, alias = "trace_id")]
    trace_id: Option<Str<'a>>,
    #[serde(borrow, default, alias = "span_id")]
    span_id: Option<Str<'a>>,
    #[serde(borrow, default, alias = "parent_span_id")]
    parent_span_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(default)]
    kind: Option<EnumInt>,
    #[serde(default, alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<U64>,
    #[serde(default, alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<U64>,
    #[serde(borrow, default)]
    attributes: Attrs<'a>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: Option<EnumInt>,
}

fn id<'b>(s: &'b Option<Str<'_>>) -> IdRef<'b> {
    IdRef::Hex(s.as_ref().map_or("", Str::as_str))
}

/// Decodes one OTLP/JSON `ExportTraceServiceRequest`: good spans are appended to `out`,
/// each span that failed validation is returned with its reason. JSON that can't be parsed
/// as an export request is an `Err` (and nothing is appended).
pub fn decode_traces_json(
    bytes: &[u8],
    out: &mut Vec<Span>,
) -> Result<Vec<RecordError>, DecodeError> {
    let req: Request<'_> = serde_json::from_slice(bytes)?;
    let Some(resource_spans) = req.resource_spans else {
        // `{}` is an empty request (proto3 JSON leaves out empty lists); other keys alone
        // are another format.
        not_an_export(bytes, "ExportTraceServiceRequest", "resourceSpans")?;
        return Ok(Vec::new());
    };
    let mut errors = Vec::new();
    for rs in &resource_spans {
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.resource())
            .unwrap_or_default();
        let ident = OwnedIdentity::new(&attrs);
        for ss in rs.scope_spans.iter().flatten() {
            for s in ss.spans.iter().flatten() {
                let raw = RawSpan {
                    trace_id: id(&s.trace_id),
                    span_id: id(&s.span_id),
                    parent_span_id: id(&s.parent_span_id),
                    name: s.name.as_ref().map_or("", Str::as_str),
                    kind: s.kind.unwrap_or_default().0,
                    start_ns: s.start_time_unix_nano.unwrap_or_default().0,
                    end_ns: s.end_time_unix_nano.unwrap_or_default().0,
                    status_code: s
                        .status
                        .as_ref()
                        .and_then(|st| st.code)
                        .unwrap_or_default()
                        .0,
                    peer_service: s.attributes.peer_service(),
                    peer_address: s.attributes.peer_address(),
                };
                match raw.validate(&ident, errors.len()) {
                    Ok(span) => out.push(span),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    Ok(errors)
}

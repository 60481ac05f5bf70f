//! Protobuf `ExportTraceServiceRequest` bytes → validated [`Span`]s, by walking the wire
//! format directly (zero-copy: only the strings a `Span` owns are allocated). Out: the good
//! spans appended to `out`, the rejected ones as [`RecordError`]s; malformed protobuf is a
//! [`DecodeError`] and leaves `out` as it was.

use augur_operators::records::Span;

use super::error::{DecodeError, RecordError};
use super::view::{
    IdRef, NET_PEER_NAME, OwnedIdentity, PEER_SERVICE, RawSpan, ResourceAttrs, SERVER_ADDRESS,
};
use super::wire::{Fields, WireError, resource_attrs, string_attr, utf8};

/// Decodes one protobuf `ExportTraceServiceRequest`: good spans are appended to `out`, each
/// span that failed validation is returned with its reason. Malformed protobuf is an `Err`
/// (and nothing is appended).
pub fn decode_traces_proto(
    bytes: &[u8],
    out: &mut Vec<Span>,
) -> Result<Vec<RecordError>, DecodeError> {
    let before = out.len();
    let mut errors = Vec::new();
    match request(bytes, out, &mut errors) {
        Ok(()) => Ok(errors),
        Err(e) => {
            out.truncate(before);
            Err(e.into())
        }
    }
}

fn request(
    bytes: &[u8],
    out: &mut Vec<Span>,
    errors: &mut Vec<RecordError>,
) -> Result<(), WireError> {
    let mut f = Fields::new(bytes);
    while let Some((n, v)) = f.next()? {
        if n == 1 {
            resource_spans(v.bytes("resource_spans")?, out, errors)?;
        }
    }
    Ok(())
}

/// The deprecated field number of `ResourceSpans.instrumentation_library_spans`.
const INSTRUMENTATION_LIBRARY_SPANS: u32 = 1000;

fn resource_spans(
    rs: &[u8],
    out: &mut Vec<Span>,
    errors: &mut Vec<RecordError>,
) -> Result<(), WireError> {
    // The resource may follow the spans on the wire: find it first.
    let mut attrs = ResourceAttrs::default();
    let mut f = Fields::new(rs);
    while let Some((n, v)) = f.next()? {
        if n == 1 {
            attrs = resource_attrs(v.bytes("ResourceSpans.resource")?)?;
        }
    }
    let ident = OwnedIdentity::new(&attrs);
    let mut f = Fields::new(rs);
    while let Some((n, v)) = f.next()? {
        // 1000: `instrumentation_library_spans` of OTLP 0.15–0.18 senders, laid out as
        // scope spans are.
        if n == 2 || n == INSTRUMENTATION_LIBRARY_SPANS {
            let mut ss = Fields::new(v.bytes("ResourceSpans.scope_spans")?);
            while let Some((n, v)) = ss.next()? {
                if n == 2 {
                    let raw = span(v.bytes("ScopeSpans.spans")?)?;
                    match raw.validate(&ident, errors.len()) {
                        Ok(s) => out.push(s),
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
    }
    Ok(())
}

#[inline]
fn span(b: &[u8]) -> Result<RawSpan<'_>, WireError> {
    let mut raw = RawSpan::default();
    let mut f = Fields::new(b);
    while let Some((n, v)) = f.next()? {
        match n {
            1 => raw.trace_id = IdRef::Bytes(v.bytes("Span.trace_id")?),
            2 => raw.span_id = IdRef::Bytes(v.bytes("Span.span_id")?),
            4 => raw.parent_span_id = IdRef::Bytes(v.bytes("Span.parent_span_id")?),
            5 => raw.name = v.str("Span.name")?,
            6 => raw.kind = v.varint("Span.kind")? as i32,
            7 => raw.start_ns = v.fixed64("Span.start_time_unix_nano")?,
            8 => raw.end_ns = v.fixed64("Span.end_time_unix_nano")?,
            9 => {
                let (k, val) = string_attr(v.bytes("Span.attributes")?)?;
                if k == PEER_SERVICE.as_bytes() {
                    raw.peer_service = match val {
                        Some(val) => Some(utf8(val, "peer.service")?),
                        None => None,
                    };
                } else if k == SERVER_ADDRESS.as_bytes()
                    || (k == NET_PEER_NAME.as_bytes() && raw.peer_address.is_none())
                {
                    if let Some(val) = val {
                        raw.peer_address = Some(utf8(val, "server.address")?);
                    }
                }
            }
            15 => {
                let mut st = Fields::new(v.bytes("Span.status")?);
                while let Some((n, v)) = st.next()? {
                    if n == 3 {
                        raw.status_code = v.varint("Status.code")? as i32;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(raw)
}

//! Decode errors: a whole message that can't be parsed ([`DecodeError`]), and one record
//! inside a parseable message that failed validation ([`RecordError`]).

use std::fmt;

/// A message that could not be parsed at all; the caller dead-letters the whole message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid OTLP JSON (syntax, or a field of the wrong type).
    #[error("invalid OTLP JSON at line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// Not a valid protobuf encoding of the export request.
    #[error("invalid protobuf: {0}")]
    Protobuf(String),
    /// JSON, but not an OTLP export request: its resources' field is missing (another
    /// format's export, or a file of another signal).
    #[error(
        "not an OTLP {request}: no `{field}` field (a line is one OTLP/JSON export request, as the Collector's file exporter writes)"
    )]
    NotAnExport {
        request: &'static str,
        field: &'static str,
    },
}

/// `Ok` when the JSON object `bytes` has no keys (an empty export request), else
/// [`DecodeError::NotAnExport`].
pub(crate) fn not_an_export(
    bytes: &[u8],
    request: &'static str,
    field: &'static str,
) -> Result<(), DecodeError> {
    let keys: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)?;
    if keys.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::NotAnExport { request, field })
    }
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        // serde_json's Display appends " at line L column C"; keep only the message.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        DecodeError::Json {
            line: e.line(),
            column: e.column(),
            message,
        }
    }
}

/// One record (span or metric data point) that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Why the record was rejected, e.g. `missing service.name`.
    pub reason: String,
    /// The bad record's identifying fields as one JSON object (ids in hex, times in ns,
    /// service, name or metric name): enough to find it. Only the first
    /// [`RECORD_CONTEXTS`] rejections of a message carry it; the rest leave it empty, so
    /// a message of many small bad records costs a reason per record, not a context.
    pub record: String,
}

/// How many rejected records of one message keep their context ([`RecordError::record`]).
pub const RECORD_CONTEXTS: usize = 16;

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.record)
    }
}

impl std::error::Error for RecordError {}

//! Message encodings: in, one Kafka message's bytes, its stream (spans, metrics or logs)
//! and encoding; out, records appended to the caller's buffers plus the records that failed
//! validation, or an error for a message that can't be parsed at all. Stateless.
//!
//! `otlp_proto` / `otlp_json` are what the OpenTelemetry Collector's Kafka exporter
//! writes (one export request per message); `prom_json` is prometheus-kafka-adapter JSON
//! (metrics only).

use augur_operators::records::{LogRecord, MetricPoint, Span};
use serde::{Deserialize, Serialize};

use super::prom_json::{RecordErrorOrDecode, decode_prom_json};
use crate::otlp::{
    DecodeError, MetricNames, Rates, RecordError, decode_logs_json, decode_logs_proto,
    decode_metrics_json, decode_metrics_proto, decode_traces_json, decode_traces_proto,
};
use crate::source::Batch;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    OtlpProto,
    OtlpJson,
    PromJson,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::OtlpProto => "otlp_proto",
            Encoding::OtlpJson => "otlp_json",
            Encoding::PromJson => "prom_json",
        }
    }
}

/// What one message held besides its good records.
#[derive(Debug, Default)]
pub struct Decoded {
    pub record_errors: Vec<RecordError>,
    /// Metric points not read, by metric name.
    pub ignored_metrics: Vec<(String, u64)>,
}

/// Decodes a spans message (`metrics == false`) or a metrics message.
/// Counters (monotonic cumulative sums) become rates through `rates`, which holds each
/// series' previous point.
pub fn decode_message(
    bytes: &[u8],
    metrics: bool,
    encoding: Encoding,
    names: &MetricNames,
    rates: &mut Rates,
    spans: &mut Vec<Span>,
    points: &mut Vec<MetricPoint>,
) -> Result<Decoded, DecodeError> {
    let mut ignored_metrics = Vec::new();
    let record_errors = match (metrics, encoding) {
        (false, Encoding::OtlpProto) => decode_traces_proto(bytes, spans)?,
        (false, Encoding::OtlpJson) => decode_traces_json(bytes, spans)?,
        (false, Encoding::PromJson) => {
            return Err(DecodeError::Protobuf(
                "prom_json is a metrics encoding, not a spans encoding".to_string(),
            ));
        }
        (true, Encoding::OtlpProto | Encoding::OtlpJson) => {
            let decoded = match encoding {
                Encoding::OtlpProto => decode_metrics_proto(bytes, names, points)?,
                _ => decode_metrics_json(bytes, names, points)?,
            };
            rates.extend(&decoded.cumulative, points);
            ignored_metrics = decoded.ignored_names;
            decoded.errors
        }
        (true, Encoding::PromJson) => match decode_prom_json(bytes, names) {
            Ok(Some(point)) => {
                points.push(point);
                Vec::new()
            }
            Ok(None) => Vec::new(),
            Err(RecordErrorOrDecode::Decode(e)) => return Err(e),
            Err(RecordErrorOrDecode::Record(e)) => vec![e],
        },
    };
    Ok(Decoded {
        record_errors,
        ignored_metrics,
    })
}

/// Decodes a logs message (`otlp_proto` or `otlp_json` `ExportLogsServiceRequest`).
pub fn decode_logs_message(
    bytes: &[u8],
    encoding: Encoding,
    logs: &mut Vec<LogRecord>,
) -> Result<Decoded, DecodeError> {
    let record_errors = match encoding {
        Encoding::OtlpProto => decode_logs_proto(bytes, logs)?,
        Encoding::OtlpJson => decode_logs_json(bytes, logs)?,
        Encoding::PromJson => {
            return Err(DecodeError::Protobuf(
                "prom_json is a metrics encoding, not a logs encoding".to_string(),
            ));
        }
    };
    Ok(Decoded {
        record_errors,
        ignored_metrics: Vec::new(),
    })
}

/// What an input topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Spans,
    Metrics,
    Logs,
}

/// Decodes one message of `stream` into the batch's spans, metric points or log records.
pub fn decode_into(
    bytes: &[u8],
    stream: Stream,
    encoding: Encoding,
    names: &MetricNames,
    rates: &mut Rates,
    batch: &mut Batch,
) -> Result<Decoded, DecodeError> {
    match stream {
        Stream::Spans | Stream::Metrics => decode_message(
            bytes,
            stream == Stream::Metrics,
            encoding,
            names,
            rates,
            &mut batch.spans,
            &mut batch.metrics,
        ),
        Stream::Logs => decode_logs_message(bytes, encoding, &mut batch.logs),
    }
}

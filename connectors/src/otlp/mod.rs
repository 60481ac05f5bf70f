//! OTLP codecs: OpenTelemetry trace, metric and log export requests (protobuf, and OTLP/JSON as
//! the Collector writes it) to and from augur's [`Span`](augur_operators::records::Span) and
//! [`MetricPoint`](augur_operators::records::MetricPoint) records. Decoders validate each
//! record: good ones are appended to the caller's buffer, bad ones come back as
//! [`RecordError`]s for the dead-letter queue, and a message that can't be parsed at all is
//! a [`DecodeError`]. No input makes them panic.

mod error;
mod group;
mod json_model;
mod json_write;
mod logs;
mod metric_names;
mod metrics;
mod metrics_json;
mod metrics_proto;
mod rates;
mod traces;
mod traces_json;
mod traces_proto;
mod view;
mod wire;

pub(crate) use view::cut_at_char;

pub use error::{DecodeError, RECORD_CONTEXTS, RecordError};
pub use logs::{decode_logs, decode_logs_json, decode_logs_proto};
pub use metric_names::MetricNames;
pub use metrics::{
    MetricsDecoded, decode_metrics, encode_metrics, encode_metrics_json, encode_metrics_proto,
};
pub use metrics_json::decode_metrics_json;
pub use metrics_proto::decode_metrics_proto;
pub use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use rates::{CumulativePoint, Rates};
pub use traces::{decode_traces, encode_traces, encode_traces_json, encode_traces_proto};
pub use traces_json::decode_traces_json;
pub use traces_proto::decode_traces_proto;
pub use view::MAX_RESOURCE_VALUE_BYTES;

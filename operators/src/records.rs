//! Record types that flow through the dataflow.
//!
//! Every stream is stamped with a timely time that is a **window end** in milliseconds since
//! the Unix epoch: a record whose event time `t` lies in `[E - W, E)` carries time `E`
//! (see [`window_end`]). One timestamp per window keeps progress tracking cheap and makes a
//! window complete exactly when the frontier no longer contains its end.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Event time in milliseconds since the Unix epoch; also the timely timestamp type.
pub type EventTime = u64;

/// The end (exclusive) of the tumbling window of length `window_ms` that holds `t_ms`.
pub fn window_end(t_ms: EventTime, window_ms: u64) -> EventTime {
    (t_ms / window_ms + 1) * window_ms
}

/// OpenTelemetry span kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// Whether a span of this kind, lasting `duration_ns`, is the caller's side of a call to
    /// a child in another service lasting `child_duration_ns`: a `Client`/`Producer` span,
    /// or a kind-less one (kinds not recorded) as long as it covers the child. Trace assembly
    /// reads calls this way and own time leaves such spans out, so the two agree.
    pub fn is_call_side(self, duration_ns: u64, child_duration_ns: u64) -> bool {
        match self {
            SpanKind::Client | SpanKind::Producer => true,
            SpanKind::Unspecified => duration_ns >= child_duration_ns,
            _ => false,
        }
    }

    /// Whether a span of this kind, of `service`, naming `peer` (its `peer.service`) is a
    /// call to that peer, which may emit no spans of its own: a `Client` span naming another
    /// service. Trace assembly makes it an edge and own time gives it none, alike.
    pub fn calls_peer(self, service: &str, peer: Option<&str>) -> bool {
        self == SpanKind::Client && peer.is_some_and(|p| p != service)
    }
}

/// One decoded, validated span: the fields of an OTLP span that augur uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// 16-byte trace id as a big-endian integer.
    pub trace_id: u128,
    /// 8-byte span id as a big-endian integer (never 0).
    pub span_id: u64,
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<u64>,
    /// `service.name` of the emitting resource.
    pub service: String,
    /// `k8s.pod.name`, else `service.instance.id`, else `host.name`, else the service name.
    pub instance: String,
    pub kind: SpanKind,
    /// Span name (the operation, e.g. `/compose` or `ComposePost`).
    pub name: String,
    /// Start time, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End time, nanoseconds since the Unix epoch (`>= start_ns`).
    pub end_ns: u64,
    /// Status code ERROR.
    pub error: bool,
    /// `peer.service` attribute, for calls to peers that emit no spans of their own.
    pub peer_service: Option<String>,
    /// `service.version` of the emitting resource (a new deployment of the service).
    pub version: Option<String>,
}

impl Span {
    /// Event time of a span: when it ended, in ms. Spans are observed once they end.
    pub fn event_ms(&self) -> EventTime {
        self.end_ns / 1_000_000
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }
}

/// OpenTelemetry log severity, by `severityNumber` range (1-4 trace, 5-8 debug, 9-12 info,
/// 13-16 warn, 17-20 error, 21-24 fatal; 0 or out of range: unspecified). A record without
/// one takes its `severityText`, else the level its line starts with
/// ([`crate::log_line::leading_severity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Unspecified,
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    pub fn from_number(n: i32) -> Severity {
        match n {
            1..=4 => Severity::Trace,
            5..=8 => Severity::Debug,
            9..=12 => Severity::Info,
            13..=16 => Severity::Warn,
            17..=20 => Severity::Error,
            21..=24 => Severity::Fatal,
            _ => Severity::Unspecified,
        }
    }

    /// The severity a level word names (`ERROR`, `[warn]`, `Info:`, `CRITICAL`; any case,
    /// in brackets or with a colon), as OpenTelemetry maps them; `None` for any other word.
    pub fn from_text(word: &str) -> Option<Severity> {
        let w = word.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')' | ':'));
        let is = |name: &str| w.eq_ignore_ascii_case(name);
        Some(if is("TRACE") {
            Severity::Trace
        } else if is("DEBUG") {
            Severity::Debug
        } else if is("INFO") || is("NOTICE") {
            Severity::Info
        } else if is("WARN") || is("WARNING") {
            Severity::Warn
        } else if is("ERROR") {
            Severity::Error
        } else if is("FATAL") || is("CRITICAL") {
            Severity::Fatal
        } else {
            return None;
        })
    }

    /// Error or fatal.
    pub fn is_error(self) -> bool {
        self >= Severity::Error
    }
}

/// One decoded log record: the fields of an OTLP log record that augur uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogRecord {
    /// `service.name` of the emitting resource.
    pub service: String,
    /// As [`Span::instance`].
    pub instance: String,
    /// `timeUnixNano`, else `observedTimeUnixNano`.
    pub time_ns: u64,
    pub severity: Severity,
    /// The body as text (a string body as is; other kinds as their JSON).
    pub body: String,
    /// The span the record was written in, where the record says.
    pub trace_id: Option<u128>,
    pub span_id: Option<u64>,
}

impl LogRecord {
    pub fn event_ms(&self) -> EventTime {
        self.time_ns / 1_000_000
    }
}

/// Per-service log features of one window: how many records, how many at error severity
/// or above, and per log template (mined online) how many.
#[derive(Clone, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct LogFeatures {
    pub window_end: EventTime,
    pub service: String,
    pub records: u64,
    pub errors: u64,
    pub warnings: u64,
    /// Per template, by id (stable within a run), its text and count; sorted by id.
    pub templates: Vec<TemplateCount>,
    /// Within each trace, which template's record follows which ([`END_OF_TRACE`] when
    /// none follows in the window), counted; sorted. Records without a trace id have none.
    #[serde(default)]
    pub transitions: Vec<TemplateTransition>,
}

/// The `to` of a transition from a trace's last record in a window.
pub const END_OF_TRACE: u64 = u64::MAX;

/// How often, within a trace, a record of template `to` followed one of template `from`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TemplateTransition {
    pub from: u64,
    pub to: u64,
    pub count: u64,
}

/// One log template's records in a window.
#[derive(Clone, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct TemplateCount {
    pub id: u64,
    pub template: String,
    pub count: u64,
}

/// The resource a metric measures, after the configured name mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// CPU utilization, fraction of the instance's CPU limit (0..=1, may exceed 1 when throttled).
    Cpu,
    /// Memory in use, bytes.
    Memory,
    /// Network traffic, bytes per second.
    Network,
    /// Disk I/O, bytes per second.
    Disk,
    /// Requests waiting in the instance's queue (a gauge).
    Queue,
    /// Requests the instance has accepted and not yet answered, queued or being served, at
    /// the sample time (a gauge, as OpenTelemetry's `http.server.active_requests`). Not a
    /// usage resource: it is not in [`Resource::ALL`] or `usage` arrays; it goes to
    /// [`ServiceFeatures::in_flight`].
    InFlight,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Network,
        Resource::Disk,
        Resource::Queue,
    ];

    /// Dense index, for per-resource arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Network => "network",
            Resource::Disk => "disk",
            Resource::Queue => "queue",
            Resource::InFlight => "in_flight",
        }
    }
}

/// One resource-usage sample of one instance.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct MetricPoint {
    pub service: String,
    pub instance: String,
    pub resource: Resource,
    /// Sample time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub value: f64,
}

impl MetricPoint {
    pub fn event_ms(&self) -> EventTime {
        self.time_ns / 1_000_000
    }
}

/// One RPC: a child span joined to its parent across a service boundary.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct RpcEdge {
    pub trace_id: u128,
    pub caller: String,
    pub callee: String,
    /// The callee's operation (server span name, or the client span name for peers).
    pub operation: String,
    /// Latency seen by the caller (client span), ms.
    pub client_ms: f64,
    /// Latency seen by the callee (server span), ms; `None` for an uninstrumented peer.
    pub server_ms: Option<f64>,
    /// `client_ms - server_ms`: network delay both ways plus any queueing before the server span.
    pub gap_ms: Option<f64>,
    pub error: bool,
    /// The caller's span the call was made from: the client span's parent (the client
    /// span itself when it has none), or the parent for instrumentations without client
    /// spans. Calls from one caller span are siblings, which is how parallel calls show.
    pub caller_span: u64,
    /// When the call started and ended as the caller saw it (the client span; the server
    /// span without one), ns.
    pub start_ns: u64,
    pub end_ns: u64,
    /// The callee's span states no server kind (kind-less instrumentation): it is counted as
    /// one of the callee's requests from this edge, with `server_ms` as its latency.
    #[serde(default)]
    pub callee_request: bool,
}

/// Latency quantiles reported for services, edges and entry points.
pub const LATENCY_QUANTILES: [f64; 5] = [0.5, 0.75, 0.9, 0.95, 0.99];
/// The gap levels, ms, at which [`EdgeFeatures::gap_over`] counts calls: 16 ms doubling to
/// about 4 s, so how often calls are delayed by a given amount can be compared between edges
/// and ranges without keeping every call.
pub const GAP_LEVELS_MS: [f64; 9] = [
    16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// Quantiles across replicas of per-replica resource usage (Sage's "vector of percentiles",
/// so the shape of the feature doesn't change with the replica count): min, median, p90, max.
pub const USAGE_QUANTILES: [f64; 4] = [0.0, 0.5, 0.9, 1.0];

/// Per-service features of one window, merged across replicas and workers.
#[derive(Clone, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct ServiceFeatures {
    pub window_end: EventTime,
    pub service: String,
    /// Server spans that ended in the window.
    pub requests: u64,
    /// Of those, with status ERROR.
    pub errors: u64,
    /// Server-side latency at [`LATENCY_QUANTILES`], ms (zeros when `requests == 0`).
    pub latency_ms: [f64; 5],
    /// Time-averaged requests in flight at the service (Little's law: summed server-span
    /// time of the window's requests / window length): the queue depth Seer uses.
    pub outstanding: f64,
    /// Distinct instances seen in spans or metrics during the window.
    pub replicas: u32,
    /// Per resource (indexed by [`Resource::index`]), per-replica window means at
    /// [`USAGE_QUANTILES`] across replicas; zeros when no replica reported it.
    pub usage: [[f64; 4]; 5],
    /// Requests in flight at the window's end: Σ over instances of each one's latest
    /// [`Resource::InFlight`] sample in the window (an instantaneous queue depth, unlike
    /// the window average `outstanding`); 0 when no instance reported one.
    #[serde(default)]
    pub in_flight: f64,
    /// `service.version` of the window's latest server span (ties: the greatest), if its
    /// spans carry one: a change is a new deployment of the service.
    #[serde(default)]
    pub version: Option<String>,
    /// Σ own time of the window's spans of the service, ms: each span's duration less its
    /// children's, none for the caller's side of a call ([`crate::own_time`]). A request's
    /// calls are subtracted from it whatever window they ended in. `None` where not taken.
    #[serde(default)]
    pub own_ms: Option<f64>,
    /// Per resource (indexed by [`Resource::index`]): `usage` is not sampled in this window
    /// but held from the latest window that sampled it, within the staleness bound
    /// ([`crate::metric_hold`]): metrics scraped less often than windows pass do not read
    /// as zero in between. Statistics over samples skip held values.
    #[serde(default)]
    pub usage_held: [bool; 5],
    /// `own_ms` of the operations (span names) with the most of it, at most
    /// [`MAX_OPERATIONS`], sorted by name: where in the service its own time went.
    #[serde(default)]
    pub operations: Vec<OperationTime>,
}

/// Operations kept per service and window in [`ServiceFeatures::operations`]: span names
/// can be many (a URL with an id in it), and what a diagnosis names is where most time went.
pub const MAX_OPERATIONS: usize = 16;

/// One operation's own time in a window.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct OperationTime {
    /// The span name.
    pub name: String,
    /// Σ own time of its spans, ms.
    pub own_ms: f64,
}

/// Per-edge features of one window (Sage's per-RPC latency nodes).
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct EdgeFeatures {
    pub window_end: EventTime,
    pub caller: String,
    pub callee: String,
    pub calls: u64,
    pub errors: u64,
    pub client_ms: [f64; 5],
    pub server_ms: [f64; 5],
    pub gap_ms: [f64; 5],
    /// Per other callee of the same caller: how many of this edge's calls overlapped in time
    /// a call to it from the same caller span (Sage combines parallel calls by their
    /// maximum, sequential ones by their sum). Callees never overlapped are absent.
    #[serde(default)]
    pub parallel: BTreeMap<String, u64>,
    /// Σ client latency of the window's calls, ms (summed in whole microseconds, so the
    /// result doesn't depend on merge order): with `calls`, the exact mean.
    #[serde(default)]
    pub client_total_ms: f64,
    /// Σ gap of the calls that have a server side, ms (microseconds summed, as above), and
    /// how many calls that is.
    #[serde(default)]
    pub gap_total_ms: f64,
    #[serde(default)]
    pub gap_calls: u64,
    /// Of the `gap_calls`, how many had a gap of at least each of [`GAP_LEVELS_MS`].
    #[serde(default)]
    pub gap_over: [u64; GAP_LEVELS_MS.len()],
}

/// End-to-end latency of one entry point (root server spans) in one window, checked
/// against its SLO.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct QosVerdict {
    pub window_end: EventTime,
    /// The entry point: the root span's service (and operation, if the SLO names one).
    pub entry: String,
    pub requests: u64,
    pub errors: u64,
    /// End-to-end latency at [`LATENCY_QUANTILES`], ms.
    pub latency_ms: [f64; 5],
    /// The SLO's quantile and threshold, and the measured latency at that quantile.
    pub quantile: f64,
    pub slo_ms: f64,
    pub measured_ms: f64,
    pub violated: bool,
}

/// The RPC dependency graph after one window: what changed and the order services are in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GraphUpdate {
    pub window_end: EventTime,
    /// Edges `(caller, callee)` that appeared in this window.
    pub added: Vec<(String, String)>,
    /// Edges that retired (not seen for the retention period).
    pub removed: Vec<(String, String)>,
    /// Every service in the graph, back end first: each service comes before its callers
    /// (cycles are broken deterministically by name).
    pub order: Vec<String>,
}

/// Everything known about one closed window: what detectors and models read.
#[derive(Clone, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct WindowSnapshot {
    pub window_end: EventTime,
    pub window_ms: u64,
    /// Sorted by service name.
    pub services: Vec<ServiceFeatures>,
    /// Sorted by (caller, callee).
    pub edges: Vec<EdgeFeatures>,
    /// Sorted by entry.
    pub qos: Vec<QosVerdict>,
    /// Back end → front end, from the dependency graph.
    pub order: Vec<String>,
    /// Set when the dependency graph changed in this window.
    pub topology_changed: bool,
    /// Sorted by service; services that logged nothing are absent.
    #[serde(default)]
    pub logs: Vec<LogFeatures>,
}

impl WindowSnapshot {
    pub fn violated(&self) -> bool {
        self.qos.iter().any(|q| q.violated)
    }
}

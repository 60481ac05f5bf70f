//! The feature dataflow (design steps 3–6) wired together.
//!
//! **In:** [`Span`]s and [`MetricPoint`]s, each stamped with the end of the window of length
//! [`FeatureParams::window_ms`] that holds its event time ([`crate::records::window_end`] of
//! [`Span::event_ms`] / [`MetricPoint::event_ms`]); each window's records sent under a single
//! time; the input frontier advanced past a window once it is complete (after the watermark).
//!
//! **Out:** one [`WindowSnapshot`] per window with any output, on worker 0, in window order.
//! Identical for any number of workers.
//!
//! **State:** that of the operators it wires: [`span_fanout`] (which reads each span once
//! and feeds [`trace_assembly`], [`own_time`] and stage 1 of [`crate::service_features`] and
//! [`crate::qos_check`]), [`service_features_of_partials`], [`edge_partials`] and
//! [`edge_features_of_partials`] (whose stage-1 keys also feed the graph),
//! [`qos_verdicts`], [`dependency_graph_of_pairs`], [`window_snapshot`].

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::Map;

use crate::dependency_graph::dependency_graph_of_pairs;
use crate::edge_features::{edge_features_of_partials, edge_partials};
use crate::log_features::{LogMiners, log_features};
use crate::own_time::own_time;
use crate::qos_check::{Slo, qos_verdicts};
use crate::records::{LogRecord, MetricPoint, Span, WindowSnapshot};
use crate::service_features::service_features_of_partials;
use crate::span_fanout::span_fanout;
use crate::trace_assembly::{DEFAULT_TRACE_TTL_MS, TraceAssemblyStats, trace_assembly};
use crate::window_snapshot::window_snapshot;

/// Parameters of the feature dataflow (a config section).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureParams {
    /// Window length, ms (> 0).
    pub window_ms: u64,
    /// How long a span waits for its parent or children, ms.
    pub trace_ttl_ms: u64,
    /// An RPC edge not seen for this long leaves the dependency graph, ms (rounded up to a
    /// multiple of the window).
    pub graph_retention_ms: u64,
    pub slos: Vec<Slo>,
    /// How long a service's latest sampled resource usage stands in windows without a
    /// sample, ms ([`crate::metric_hold`]; 0: not at all). Default 300000, Prometheus'
    /// lookback: metrics scraped every 10 s to a minute do not read as zero in between.
    pub metric_stale_ms: u64,
    /// The log template miners (default: new, empty ones).
    #[serde(skip)]
    pub log_miners: LogMiners,
}

impl Default for FeatureParams {
    fn default() -> Self {
        FeatureParams {
            window_ms: 1000,
            trace_ttl_ms: DEFAULT_TRACE_TTL_MS,
            graph_retention_ms: 60_000,
            slos: Vec::new(),
            metric_stale_ms: crate::metric_hold::DEFAULT_METRIC_STALE_MS,
            log_miners: LogMiners::default(),
        }
    }
}

impl FeatureParams {
    /// Retention rounded up to a whole number (≥ 1) of windows.
    pub fn retention_windows_ms(&self) -> u64 {
        let w = self.window_ms.max(1);
        self.graph_retention_ms.div_ceil(w).max(1) * w
    }
}

/// Wires steps 3–6 and the snapshot gather; see the module docs.
pub fn features_dataflow<'s>(
    spans: StreamVec<'s, u64, Span>,
    metrics: StreamVec<'s, u64, MetricPoint>,
    params: &FeatureParams,
) -> StreamVec<'s, u64, WindowSnapshot> {
    features_dataflow_with_stats(spans, metrics, params).0
}

/// [`features_dataflow`], also returning the trace-assembly counters.
pub fn features_dataflow_with_stats<'s>(
    spans: StreamVec<'s, u64, Span>,
    metrics: StreamVec<'s, u64, MetricPoint>,
    params: &FeatureParams,
) -> (StreamVec<'s, u64, WindowSnapshot>, TraceAssemblyStats) {
    let logs = timely::dataflow::operators::generic::operator::empty(spans.scope());
    features_dataflow_with_logs(spans, metrics, logs, params)
}

/// [`features_dataflow_with_stats`] with log records too (their [`log_features`] join each
/// window's snapshot).
pub fn features_dataflow_with_logs<'s>(
    spans: StreamVec<'s, u64, Span>,
    metrics: StreamVec<'s, u64, MetricPoint>,
    logs: StreamVec<'s, u64, LogRecord>,
    params: &FeatureParams,
) -> (StreamVec<'s, u64, WindowSnapshot>, TraceAssemblyStats) {
    let window_ms = params.window_ms.max(1);
    let (spans, span_partials, qos_partials, timings) = span_fanout(spans, &params.slos);
    let (edges, stats) = trace_assembly(spans, params.trace_ttl_ms);
    let own = own_time(timings, params.trace_ttl_ms);
    let qos = qos_verdicts(qos_partials, &params.slos);
    // Stage 1 of the edge features once per edge; the graph needs only its keys (per window
    // and worker, not per RPC), so the edges themselves are not copied for two consumers.
    let partials = edge_partials(edges);
    // Requests of kind-less callee spans, counted on their edges, join the spans' own.
    let callee_requests = partials
        .clone()
        .flat_map(|((_, callee), p)| p.callee_requests.map(|requests| (callee, requests)));
    let services = service_features_of_partials(
        span_partials.concat(callee_requests).concat(own),
        metrics,
        window_ms,
    );
    let graph = dependency_graph_of_pairs(
        partials.clone().map(|(pair, _)| pair),
        params.retention_windows_ms(),
    );
    let edge_feats = edge_features_of_partials(partials);
    let logs = log_features(logs, &params.log_miners);
    let snapshots = window_snapshot(
        services,
        edge_feats,
        qos,
        graph,
        logs,
        window_ms,
        params.metric_stale_ms,
    );
    (snapshots, stats)
}

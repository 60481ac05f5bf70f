//! augur-operators: record types and the Timely/Differential operators of augur's dataflow.
//!
//! One operator per module; each module's doc says what goes in, what comes out and what
//! state it keeps. Timestamps are window ends (see [`records::window_end`]).
//!
//! Wiring (what [`features_dataflow`] does):
//! ```text
//! spans ─ span_fanout ─┬─ trace_assembly ─ edges ─┬─ edge_features ───┐
//!                      │                          └─ dependency_graph ┤
//!                      ├─ service_features (+ metrics) ───────────────┼─ window_snapshot ─ WindowSnapshot
//!                      └─ qos_check (SLOs) ───────────────────────────┤
//! logs ─ log_features (templates mined per service) ───────────────────┘
//! ```
//! [`span_fanout`] reads each span container once: it does stage 1 (the per-worker partial
//! aggregates) of service features and the QoS check and moves the spans on to trace
//! assembly, so no container is cloned for several consumers.

pub mod alert;
pub mod decide;
pub mod decide_log;
pub mod dependency_graph;
pub mod detect;
pub mod detect_stage;
pub mod detector;
pub mod edge_features;
pub mod features;
pub mod inference_times;
pub mod log_features;
pub mod log_line;
pub mod metric_hold;
pub mod model_worker;
pub mod names;
pub mod own_time;
pub mod qos_check;
pub mod quantile;
pub mod records;
pub mod service_features;
pub mod span_fanout;
pub mod trace_assembly;
pub mod window;
pub mod window_snapshot;

pub use alert::{Alert, AlertKind, Culprit, Detection, ModelRef};
pub use dependency_graph::{back_end_first, dependency_graph, dependency_graph_of_pairs};
pub use detector::Detector;
pub use edge_features::{edge_features, edge_features_of_partials, edge_partials};
pub use features::{
    FeatureParams, features_dataflow, features_dataflow_with_logs, features_dataflow_with_stats,
};
pub use inference_times::{DetectorTimes, InferenceTimes};
pub use log_features::{LogMiners, log_features};
pub use qos_check::{Slo, qos_check, qos_verdicts};
pub use records::*;
pub use service_features::{service_features, service_features_of_partials};
pub use span_fanout::span_fanout;
pub use trace_assembly::{DEFAULT_TRACE_TTL_MS, TraceAssemblyStats, trace_assembly};
pub use window::window_fold;
pub use window_snapshot::window_snapshot;

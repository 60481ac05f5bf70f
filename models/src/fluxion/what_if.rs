//! What-if queries over an inference graph: "what would the entry's p99 be if service S
//! had N more replicas?" — what actuation asks to choose between scaling out S and scaling
//! it up.
//!
//! In: a graph, the latest sample, a service and a replica delta (or a CPU allotment
//! factor). Out: the predicted end-to-end p99. State: none.

use super::features::{P99, Sample};
use super::graph::InferenceGraph;

/// One what-if answer.
#[derive(Clone, Debug, PartialEq)]
pub struct WhatIf {
    pub service: String,
    pub replicas_delta: i32,
    /// Predicted end-to-end p99 now and with the change, ms.
    pub p99_now_ms: f64,
    pub p99_after_ms: f64,
}

/// The end-to-end p99 the graph predicts if `service` had `replicas_delta` more replicas
/// (per-replica load and CPU spread over the new count), all else as in `sample`.
pub fn what_if(
    graph: &InferenceGraph,
    sample: &Sample,
    service: &str,
    replicas_delta: i32,
) -> Option<WhatIf> {
    let now = graph.predict(sample)?;
    let after = graph.predict(&sample.with_replicas(service, replicas_delta))?;
    Some(WhatIf {
        service: service.to_string(),
        replicas_delta,
        p99_now_ms: now[P99] as f64,
        p99_after_ms: after[P99] as f64,
    })
}

/// The end-to-end p99 the graph predicts if `service`'s CPU allotment were × `factor`
/// (its CPU utilization divided by it), all else as in `sample`: (now, after), ms.
pub fn what_if_cpu(
    graph: &InferenceGraph,
    sample: &Sample,
    service: &str,
    factor: f32,
) -> Option<(f64, f64)> {
    let now = graph.predict(sample)?;
    let after = graph.predict(&sample.with_cpu_scaled(service, factor))?;
    Some((now[P99] as f64, after[P99] as f64))
}

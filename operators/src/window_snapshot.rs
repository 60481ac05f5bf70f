//! Window snapshot: everything known about one closed window, gathered on worker 0.
//!
//! **In:** the per-window outputs of the feature operators — [`ServiceFeatures`],
//! [`EdgeFeatures`], [`QosVerdict`], [`GraphUpdate`], [`LogFeatures`] — stamped with window
//! ends, and the window length.
//!
//! **Out:** on worker 0, one [`WindowSnapshot`] per window that received at least one of
//! them, stamped with the window end, emitted when the window closes, in window order.
//! Services are sorted by name, edges by (caller, callee), verdicts by entry. `order` is
//! the order of the latest [`GraphUpdate`] at or before the window (empty before the first);
//! `topology_changed` is set when the window has a `GraphUpdate`. Each service's resource
//! usage that no instance reported in the window is held from its latest sample up to
//! `metric_stale_ms` old ([`MetricHold`]).
//!
//! **State:** the parts of each open window (freed when it closes), the latest order, and
//! the [`MetricHold`]'s latest usage per service and resource.

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::operators::vec::Map;

use crate::metric_hold::MetricHold;
use crate::records::{
    EdgeFeatures, GraphUpdate, LogFeatures, QosVerdict, ServiceFeatures, WindowSnapshot,
};
use crate::window::window_fold;

/// One part of a window snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SnapshotPart {
    Service(ServiceFeatures),
    Edge(EdgeFeatures),
    Qos(QosVerdict),
    Graph(GraphUpdate),
    Logs(LogFeatures),
}

#[derive(Default)]
struct Parts {
    services: Vec<ServiceFeatures>,
    edges: Vec<EdgeFeatures>,
    qos: Vec<QosVerdict>,
    graph: Option<GraphUpdate>,
    logs: Vec<LogFeatures>,
}

/// Gathers the parts of each window into a [`WindowSnapshot`]; see the module docs.
pub fn window_snapshot<'s>(
    services: StreamVec<'s, u64, ServiceFeatures>,
    edges: StreamVec<'s, u64, EdgeFeatures>,
    qos: StreamVec<'s, u64, QosVerdict>,
    graph: StreamVec<'s, u64, GraphUpdate>,
    logs: StreamVec<'s, u64, LogFeatures>,
    window_ms: u64,
    metric_stale_ms: u64,
) -> StreamVec<'s, u64, WindowSnapshot> {
    let scope = services.scope();
    let parts = scope.concatenate([
        services.map(SnapshotPart::Service),
        edges.map(SnapshotPart::Edge),
        qos.map(SnapshotPart::Qos),
        graph.map(SnapshotPart::Graph),
        logs.map(SnapshotPart::Logs),
    ]);
    let mut last_order: Vec<String> = Vec::new();
    let mut hold = MetricHold::new(metric_stale_ms);
    window_fold(
        parts,
        Exchange::new(|_: &SnapshotPart| 0),
        "WindowSnapshot",
        |acc: &mut Parts, part: SnapshotPart| match part {
            SnapshotPart::Service(s) => acc.services.push(s),
            SnapshotPart::Edge(e) => acc.edges.push(e),
            SnapshotPart::Qos(q) => acc.qos.push(q),
            SnapshotPart::Logs(l) => acc.logs.push(l),
            SnapshotPart::Graph(g) => {
                // One update per window is produced; if several arrive, the last by content wins.
                if acc.graph.as_ref().is_none_or(|old| *old < g) {
                    acc.graph = Some(g);
                }
            }
        },
        move |t, mut acc| {
            acc.services.sort_by(|a, b| a.service.cmp(&b.service));
            hold.fill(t, &mut acc.services);
            acc.edges
                .sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
            acc.qos.sort_by(|a, b| {
                a.entry
                    .cmp(&b.entry)
                    .then(a.quantile.total_cmp(&b.quantile))
                    .then(a.slo_ms.total_cmp(&b.slo_ms))
            });
            acc.logs.sort_by(|a, b| a.service.cmp(&b.service));
            let topology_changed = acc.graph.is_some();
            if let Some(g) = acc.graph {
                last_order = g.order;
            }
            vec![WindowSnapshot {
                window_end: t,
                window_ms,
                services: acc.services,
                edges: acc.edges,
                qos: acc.qos,
                order: last_order.clone(),
                topology_changed,
                logs: acc.logs,
            }]
        },
    )
}

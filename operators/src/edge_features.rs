//! Per-edge window features (design step 4, Sage's per-RPC latency nodes).
//!
//! **In:** [`RpcEdge`]s stamped with window ends (from [`crate::trace_assembly`]).
//!
//! **Out:** one [`EdgeFeatures`] per (window, caller, callee) with at least one call, stamped
//! with the window end, emitted when the window closes, sorted by (caller, callee) within a
//! worker's batch: calls, errors, and DDSketch quantiles ([`LATENCY_QUANTILES`]) of client,
//! server and gap latency. Server and gap quantiles cover the calls that have a server side
//! (zeros when none has: calls to uninstrumented peers). Gaps may be negative (clock skew);
//! the sketch keeps their sign.
//!
//! **State:** stage 1 ([`edge_partials`]) keeps an [`EdgePartial`] per worker, window and
//! edge; stage 2 ([`edge_features_of_partials`], exchanged by edge) merges them. A window's
//! state is freed when the frontier passes it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};

use crate::records::{EdgeFeatures, LATENCY_QUANTILES, RpcEdge};
use crate::window::{route, sketch_quantiles, window_fold};

/// Partial aggregate of one edge in one window on one worker.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct EdgePartial {
    pub calls: u64,
    pub errors: u64,
    pub client: DDSketch,
    pub server: DDSketch,
    pub gap: DDSketch,
}

impl EdgePartial {
    pub fn add(&mut self, e: &RpcEdge) {
        self.calls += 1;
        self.errors += u64::from(e.error);
        self.client.add(e.client_ms);
        if let Some(s) = e.server_ms {
            self.server.add(s);
        }
        if let Some(g) = e.gap_ms {
            self.gap.add(g);
        }
    }

    pub fn merge(&mut self, o: &EdgePartial) {
        self.calls += o.calls;
        self.errors += o.errors;
        for (m, s) in [
            (&mut self.client, &o.client),
            (&mut self.server, &o.server),
            (&mut self.gap, &o.gap),
        ] {
            m.merge(s).expect("all sketches share the default config");
        }
    }

    pub fn finish(&self, window_end: u64, caller: String, callee: String) -> EdgeFeatures {
        EdgeFeatures {
            window_end,
            caller,
            callee,
            calls: self.calls,
            errors: self.errors,
            client_ms: sketch_quantiles(&self.client, &LATENCY_QUANTILES),
            server_ms: sketch_quantiles(&self.server, &LATENCY_QUANTILES),
            gap_ms: sketch_quantiles(&self.gap, &LATENCY_QUANTILES),
        }
    }
}

/// `(caller, callee)`.
pub type EdgeKey = (String, String);

/// Per-edge features of each window; see the module docs.
pub fn edge_features<'s>(edges: StreamVec<'s, u64, RpcEdge>) -> StreamVec<'s, u64, EdgeFeatures> {
    edge_features_of_partials(edge_partials(edges))
}

/// Stage 1: per window and worker, an [`EdgePartial`] per `(caller, callee)`, sorted.
pub fn edge_partials<'s>(
    edges: StreamVec<'s, u64, RpcEdge>,
) -> StreamVec<'s, u64, (EdgeKey, EdgePartial)> {
    window_fold(
        edges,
        Pipeline,
        "EdgePartials",
        |acc: &mut HashMap<EdgeKey, EdgePartial, foldhash::fast::RandomState>, e: RpcEdge| {
            // The edge's strings become the key: moved, not copied.
            let key = (e.caller, e.callee);
            let rest = RpcEdge {
                caller: String::new(),
                callee: String::new(),
                ..e
            };
            acc.entry(key).or_default().add(&rest);
        },
        |_t, acc| {
            let mut out: Vec<_> = acc.into_iter().collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        },
    )
}

/// Stage 2: the partials of all workers merged per edge (exchanged by edge), finished.
pub fn edge_features_of_partials<'s>(
    partials: StreamVec<'s, u64, (EdgeKey, EdgePartial)>,
) -> StreamVec<'s, u64, EdgeFeatures> {
    window_fold(
        partials,
        Exchange::new(|(key, _): &(EdgeKey, EdgePartial)| route(key)),
        "EdgeFeatures",
        |acc: &mut BTreeMap<EdgeKey, EdgePartial>, (key, p): (EdgeKey, EdgePartial)| match acc
            .get_mut(&key)
        {
            Some(mine) => mine.merge(&p),
            None => {
                acc.insert(key, p);
            }
        },
        |t, acc| {
            acc.into_iter()
                .map(|((caller, callee), p)| p.finish(t, caller, callee))
                .collect()
        },
    )
}

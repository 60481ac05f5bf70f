//! Per-edge window features (design step 4, Sage's per-RPC latency nodes).
//!
//! **In:** [`RpcEdge`]s stamped with window ends (from [`crate::trace_assembly`]).
//!
//! **Out:** one [`EdgeFeatures`] per (window, caller, callee) with at least one call, stamped
//! with the window end, emitted when the window closes, sorted by (caller, callee) within a
//! worker's batch: calls, errors, and DDSketch quantiles ([`LATENCY_QUANTILES`]) of client,
//! server and gap latency. Server and gap quantiles cover the calls that have a server side
//! (zeros when none has: calls to uninstrumented peers). Gaps may be negative (clock skew);
//! the sketch keeps their sign; the calls with a gap of at least each of [`GAP_LEVELS_MS`]
//! are counted. Per other callee of the same caller, the calls that
//! overlapped a call to it from the same caller span (parallel calls; sibling calls in
//! different windows aren't paired).
//!
//! **State:** stage 1 ([`edge_partials`]) keeps an [`EdgePartial`] per worker, window and
//! edge, and each call's caller span, edge and interval until the window closes; stage 2
//! ([`edge_features_of_partials`], exchanged by edge) merges them. A window's state is
//! freed when the frontier passes it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};

use crate::records::{EdgeFeatures, GAP_LEVELS_MS, LATENCY_QUANTILES, RpcEdge};
use crate::service_features::ServicePartial;
use crate::window::{route, sketch_quantiles, window_fold};

/// Partial aggregate of one edge in one window on one worker.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct EdgePartial {
    pub calls: u64,
    pub errors: u64,
    pub client: DDSketch,
    pub server: DDSketch,
    pub gap: DDSketch,
    /// Per other callee: calls of this edge that overlapped a call to it from the same
    /// caller span.
    pub parallel: BTreeMap<String, u64>,
    /// The callee's requests counted from this edge's calls ([`RpcEdge::callee_request`]),
    /// for the callee's service features; `None` when there were none.
    pub callee_requests: Option<ServicePartial>,
    /// Σ client latency, µs.
    pub client_total_us: u64,
    /// Σ gap (may be negative: clock skew), µs, over `gap_calls` calls.
    pub gap_total_us: i64,
    pub gap_calls: u64,
    /// Of those, the calls with a gap of at least each of [`GAP_LEVELS_MS`].
    pub gap_over: [u64; GAP_LEVELS_MS.len()],
}

impl EdgePartial {
    pub fn add(&mut self, e: &RpcEdge) {
        if e.callee_request
            && let Some(server_ms) = e.server_ms
        {
            let duration_ns = (server_ms * 1e6).round() as u64;
            self.callee_requests
                .get_or_insert_with(ServicePartial::default)
                .add_request(duration_ns, e.error);
        }
        self.calls += 1;
        self.errors += u64::from(e.error);
        self.client.add(e.client_ms);
        self.client_total_us += (e.client_ms.max(0.0) * 1e3).round() as u64;
        if let Some(g) = e.gap_ms {
            self.gap_total_us += (g * 1e3).round() as i64;
            self.gap_calls += 1;
            for (over, level) in self.gap_over.iter_mut().zip(GAP_LEVELS_MS) {
                *over += u64::from(g >= level);
            }
        }
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
        self.client_total_us += o.client_total_us;
        self.gap_total_us += o.gap_total_us;
        self.gap_calls += o.gap_calls;
        for (over, o) in self.gap_over.iter_mut().zip(o.gap_over) {
            *over += o;
        }
        for (m, s) in [
            (&mut self.client, &o.client),
            (&mut self.server, &o.server),
            (&mut self.gap, &o.gap),
        ] {
            m.merge(s).expect("all sketches share the default config");
        }
        for (callee, n) in &o.parallel {
            *self.parallel.entry(callee.clone()).or_default() += n;
        }
        // `callee_requests` are taken from stage 1 for the services (see
        // `crate::features`); stage 2 doesn't need them merged.
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
            parallel: self.parallel.clone(),
            client_total_ms: self.client_total_us as f64 / 1e3,
            gap_total_ms: self.gap_total_us as f64 / 1e3,
            gap_calls: self.gap_calls,
            gap_over: self.gap_over,
        }
    }
}

/// `(caller, callee)`.
pub type EdgeKey = (String, String);

/// Per-edge features of each window; see the module docs.
pub fn edge_features<'s>(edges: StreamVec<'s, u64, RpcEdge>) -> StreamVec<'s, u64, EdgeFeatures> {
    edge_features_of_partials(edge_partials(edges))
}

type Hasher = foldhash::fast::RandomState;

/// One call: its caller span `(trace id, span id)`, its edge (index into
/// [`WindowEdges::keys`]) and its interval.
struct Call {
    caller_span: (u128, u64),
    edge: usize,
    start_ns: u64,
    end_ns: u64,
}

/// Stage 1's state of one window on one worker.
#[derive(Default)]
struct WindowEdges {
    index: HashMap<EdgeKey, usize, Hasher>,
    keys: Vec<EdgeKey>,
    partials: Vec<EdgePartial>,
    /// Every call of the window: a trace's spans all meet on one worker, so the sibling
    /// calls of a caller span do too (when they fall in one window).
    calls: Vec<Call>,
}

impl WindowEdges {
    fn add(&mut self, e: RpcEdge) {
        // The edge's strings become the key: moved, not copied.
        let key = (e.caller, e.callee);
        let edge = match self.index.get(&key) {
            Some(&k) => k,
            None => {
                let k = self.keys.len();
                self.index.insert(key.clone(), k);
                self.keys.push(key);
                self.partials.push(EdgePartial::default());
                k
            }
        };
        let rest = RpcEdge {
            caller: String::new(),
            callee: String::new(),
            ..e
        };
        self.partials[edge].add(&rest);
        self.calls.push(Call {
            caller_span: (rest.trace_id, rest.caller_span),
            edge,
            start_ns: rest.start_ns,
            end_ns: rest.end_ns,
        });
    }

    /// Counts, per call, the other callees it overlapped in time (each callee once).
    fn count_parallel(&mut self) {
        self.calls.sort_unstable_by_key(|c| c.caller_span);
        let mut overlapped: Vec<usize> = Vec::new();
        for siblings in self.calls.chunk_by(|a, b| a.caller_span == b.caller_span) {
            if siblings.len() < 2 {
                continue;
            }
            for a in siblings {
                let caller = &self.keys[a.edge].0;
                overlapped.clear();
                // Another edge of the same caller is another callee; times first, as
                // they rule out most pairs without a string compare.
                overlapped.extend(
                    siblings
                        .iter()
                        .filter(|b| {
                            b.edge != a.edge
                                && a.start_ns < b.end_ns
                                && b.start_ns < a.end_ns
                                && self.keys[b.edge].0 == *caller
                        })
                        .map(|b| b.edge),
                );
                overlapped.sort_unstable();
                overlapped.dedup();
                for &b in &overlapped {
                    let other = &self.keys[b].1;
                    let parallel = &mut self.partials[a.edge].parallel;
                    match parallel.get_mut(other) {
                        Some(n) => *n += 1,
                        None => {
                            parallel.insert(other.clone(), 1);
                        }
                    }
                }
            }
        }
    }
}

/// Stage 1: per window and worker, an [`EdgePartial`] per `(caller, callee)`, sorted.
pub fn edge_partials<'s>(
    edges: StreamVec<'s, u64, RpcEdge>,
) -> StreamVec<'s, u64, (EdgeKey, EdgePartial)> {
    window_fold(
        edges,
        Pipeline,
        "EdgePartials",
        |acc: &mut WindowEdges, e: RpcEdge| acc.add(e),
        |_t, mut acc| {
            acc.count_parallel();
            let mut out: Vec<_> = acc.keys.into_iter().zip(acc.partials).collect();
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

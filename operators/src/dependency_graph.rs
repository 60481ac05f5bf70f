//! The RPC dependency graph (design step 5), maintained by differential dataflow.
//!
//! **In:** [`RpcEdge`]s (or, for [`dependency_graph_of_pairs`], just their `(caller, callee)`
//! pairs) stamped with window ends, and a retention period `retention_ms`
//! (should be a multiple of the window length, so retirements land on window ends;
//! [`crate::features::features_dataflow`] rounds it up).
//!
//! **Out:** one [`GraphUpdate`] per window in which the topology changed, stamped with that
//! window, all on worker 0: the `(caller, callee)` pairs that appeared (`added`) and retired
//! (`removed`), sorted, and `order`, every service of the current graph back end first (each
//! callee before its callers; Kahn's algorithm taking the smallest name among ready services;
//! on a cycle, the smallest-name remaining service is taken next).
//!
//! An edge seen in window `t` is present in windows `t .. t + retention_ms` (exclusive): the
//! collection of sightings is `pairs.concat(pairs.delay(t + retention).negate())`, and
//! `distinct()` of it is the topology. So an edge not seen for `retention_ms` retires in the
//! window `last sighting + retention_ms`. When the input closes, every edge retires (after the
//! last data), so replays end with updates that remove everything.
//!
//! **State:** stage 1 keeps, per worker and open window, the distinct pairs seen (sent to
//! differential once per window, not once per RPC); differential keeps its arrangements of the
//! sightings in the retention period (compacted as the frontier advances); the final operator
//! on worker 0 keeps the current edge set and the changes of open windows (freed as they
//! close).

use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::AsCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Operator};

use crate::records::{GraphUpdate, RpcEdge};
use crate::window::window_fold;

type Pair = (String, String);

/// Services of `edges` (caller, callee), back end first: every callee before its callers.
/// Deterministic: ties go to the smallest name, a cycle is broken at its smallest-name node.
pub fn back_end_first<'a>(edges: impl IntoIterator<Item = &'a Pair>) -> Vec<String> {
    // For each node: callees not yet placed, and its callers.
    let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
    let mut callers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (caller, callee) in edges {
        pending.entry(callee.as_str()).or_insert(0);
        if caller == callee {
            pending.entry(caller.as_str()).or_insert(0);
            continue;
        }
        *pending.entry(caller.as_str()).or_insert(0) += 1;
        callers
            .entry(callee.as_str())
            .or_default()
            .push(caller.as_str());
    }
    let mut ready: BTreeSet<&str> = pending
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut order = Vec::with_capacity(pending.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while placed.len() < pending.len() {
        let next = match ready.pop_first() {
            Some(n) => n,
            None => match pending.keys().find(|k| !placed.contains(*k)) {
                Some(n) => *n,
                None => break,
            },
        };
        if !placed.insert(next) {
            continue;
        }
        order.push(next.to_string());
        for caller in callers.get(next).into_iter().flatten() {
            if let Some(n) = pending.get_mut(caller) {
                *n = n.saturating_sub(1);
                if *n == 0 && !placed.contains(caller) {
                    ready.insert(caller);
                }
            }
        }
    }
    order
}

/// Maintains the dependency graph; see the module docs.
pub fn dependency_graph<'s>(
    edges: StreamVec<'s, u64, RpcEdge>,
    retention_ms: u64,
) -> StreamVec<'s, u64, GraphUpdate> {
    dependency_graph_of_pairs(edges.map(|e| (e.caller, e.callee)), retention_ms)
}

/// [`dependency_graph`] from the `(caller, callee)` pairs of the edges (any number of copies
/// of a pair per window; e.g. the keys of [`crate::edge_features::edge_partials`]).
pub fn dependency_graph_of_pairs<'s>(
    pairs: StreamVec<'s, u64, Pair>,
    retention_ms: u64,
) -> StreamVec<'s, u64, GraphUpdate> {
    let sightings = window_fold(
        pairs,
        Pipeline,
        "EdgeSightings",
        |acc: &mut BTreeSet<Pair>, p: Pair| {
            acc.insert(p);
        },
        |t, acc| acc.into_iter().map(|p| (p, t, 1isize)).collect(),
    )
    .as_collection();
    let topology = sightings
        .clone()
        .concat(
            sightings
                .delay(move |t| t.saturating_add(retention_ms))
                .negate(),
        )
        .distinct();

    topology
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<GraphUpdate>>, _, _, _>(
            Exchange::new(|_: &(Pair, u64, isize)| 0),
            "GraphUpdates",
            |_cap, _info| {
                let mut current: BTreeSet<Pair> = BTreeSet::new();
                let mut open: BTreeMap<u64, (Capability<u64>, BTreeMap<Pair, isize>)> =
                    BTreeMap::new();
                move |(input, frontier), output| {
                    let port = output.output_index();
                    input.for_each_stamp(|cap, data| {
                        for batch in data {
                            for (pair, t, diff) in batch.drain(..) {
                                let slot = open
                                    .entry(t)
                                    .or_insert_with(|| (cap.delayed(&t, port), BTreeMap::new()));
                                *slot.1.entry(pair).or_insert(0) += diff;
                            }
                        }
                    });
                    while let Some(entry) = open.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (t, (cap, changes)) = entry.remove_entry();
                        let mut added = Vec::new();
                        let mut removed = Vec::new();
                        for (pair, diff) in changes {
                            if diff > 0 && !current.contains(&pair) {
                                current.insert(pair.clone());
                                added.push(pair);
                            } else if diff < 0 && current.remove(&pair) {
                                removed.push(pair);
                            }
                        }
                        if added.is_empty() && removed.is_empty() {
                            continue;
                        }
                        let order = back_end_first(&current);
                        output.session(&cap).give(GraphUpdate {
                            window_end: t,
                            added,
                            removed,
                            order,
                        });
                    }
                }
            },
        )
}

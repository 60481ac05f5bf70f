//! Trace assembly (design step 3): spans joined to their parents give RPC edges.
//!
//! **In:** a stream of [`Span`]s, each stamped with the window end of its event time
//! ([`Span::event_ms`]). Spans are exchanged by trace id, so all spans of a trace meet on one
//! worker.
//!
//! **Out:** a stream of [`RpcEdge`]s. A span and its parent in *another* service form an edge
//! when the child is a `Server` (or `Consumer`) span:
//! - parent `Client`/`Producer`: caller = parent's service, callee = child's service,
//!   `client_ms` = parent duration, `server_ms` = child duration, `gap_ms` = their difference,
//!   error = either errored;
//! - parent of any other kind (instrumentations without client spans): `client_ms` =
//!   `server_ms` = child duration, `gap_ms` = 0, error = the child's.
//!
//! The operation is the child's name. Either arrival order works; an edge is stamped with
//! the later of the two spans' times (`max`, so the result doesn't depend on processing
//! order).
//!
//! **Uninstrumented peers:** a `Client` span with `peer_service = Some(p)` (`p` another
//! service) that has no child in another service *when its own window closes* yields an edge
//! caller → `p` with `server_ms = gap_ms = None` and the client span's name as operation,
//! stamped with the client span's window. Waiting for the window to close (rather than
//! emitting on arrival) makes the decision independent of the processing order of spans of
//! the same window, so results are identical for any number of workers. A server child of
//! service `p` arriving after that (only possible with clock skew, as a server span ends
//! before its client span) is dropped so the call is not counted twice; a child of another
//! service still gives its own edge.
//!
//! **State:** per worker, every span seen (a potential parent) by (trace id, span id), and
//! children whose parent has not arrived by (trace id, parent span id). Each is freed when the
//! input frontier passes its time + `ttl_ms`; freed entries are counted in
//! [`TraceAssemblyStats`] (shared by the workers of one process). The peer check holds a
//! capability for the windows of pending client spans until they close.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};

use crate::records::{RpcEdge, Span, SpanKind};
use crate::window::route;

/// Default time a span waits for its parent or children, ms.
pub const DEFAULT_TRACE_TTL_MS: u64 = 10_000;

/// Counters of the trace-assembly state, shared by all workers of a process.
#[derive(Clone, Debug, Default)]
pub struct TraceAssemblyStats {
    /// Spans freed by the TTL (every span is eventually freed: this is a throughput gauge of
    /// the state, not an error count).
    pub evicted: Arc<AtomicU64>,
    /// Of those, children whose parent never arrived within the TTL (broken traces, or
    /// parents from outside the data).
    pub unmatched_children: Arc<AtomicU64>,
    /// Entries currently held (spans + waiting children), over all workers.
    pub held: Arc<AtomicI64>,
    /// Edges emitted for uninstrumented peers.
    pub peer_edges: Arc<AtomicU64>,
}

impl TraceAssemblyStats {
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
    pub fn unmatched_children(&self) -> u64 {
        self.unmatched_children.load(Ordering::Relaxed)
    }
    pub fn held(&self) -> i64 {
        self.held.load(Ordering::Relaxed)
    }
    pub fn peer_edges(&self) -> u64 {
        self.peer_edges.load(Ordering::Relaxed)
    }
}

type Key = (u128, u64);

struct Held {
    span: Span,
    time: u64,
    /// A child in another service has been joined to this span.
    remote_child: bool,
    /// A peer edge was emitted for this (client) span.
    peer_emitted: bool,
}

enum Expiring {
    Span(Key),
    Children(Key),
}

/// The edge formed by `child` under `parent`, if they are an RPC across services.
pub fn edge_of(parent: &Span, child: &Span) -> Option<RpcEdge> {
    if parent.service == child.service
        || !matches!(child.kind, SpanKind::Server | SpanKind::Consumer)
    {
        return None;
    }
    let server = child.duration_ms();
    let edge = if matches!(parent.kind, SpanKind::Client | SpanKind::Producer) {
        let client = parent.duration_ms();
        RpcEdge {
            trace_id: child.trace_id,
            caller: parent.service.clone(),
            callee: child.service.clone(),
            operation: child.name.clone(),
            client_ms: client,
            server_ms: Some(server),
            gap_ms: Some(client - server),
            error: parent.error || child.error,
        }
    } else {
        RpcEdge {
            trace_id: child.trace_id,
            caller: parent.service.clone(),
            callee: child.service.clone(),
            operation: child.name.clone(),
            client_ms: server,
            server_ms: Some(server),
            gap_ms: Some(0.0),
            error: child.error,
        }
    };
    Some(edge)
}

/// The edge to an uninstrumented peer for a client span, if it names one.
fn peer_edge(client: &Span) -> Option<RpcEdge> {
    let peer = client.peer_service.as_ref()?;
    if client.kind != SpanKind::Client || *peer == client.service {
        return None;
    }
    Some(RpcEdge {
        trace_id: client.trace_id,
        caller: client.service.clone(),
        callee: peer.clone(),
        operation: client.name.clone(),
        client_ms: client.duration_ms(),
        server_ms: None,
        gap_ms: None,
        error: client.error,
    })
}

/// Joins spans to their parents; see the module docs. Returns the edges and the shared
/// state counters.
pub fn trace_assembly<'s>(
    spans: StreamVec<'s, u64, Span>,
    ttl_ms: u64,
) -> (StreamVec<'s, u64, RpcEdge>, TraceAssemblyStats) {
    let stats = TraceAssemblyStats::default();
    let st = stats.clone();
    let pact = Exchange::new(|s: &Span| route(&s.trace_id));
    let edges = spans.unary_frontier::<CapacityContainerBuilder<Vec<RpcEdge>>, _, _, _>(
        pact,
        "TraceAssembly",
        move |_cap, _info| {
            let mut spans: HashMap<Key, Held> = HashMap::new();
            let mut children: HashMap<Key, Vec<(Span, u64)>> = HashMap::new();
            let mut expiry: BTreeMap<u64, Vec<Expiring>> = BTreeMap::new();
            let mut peer_pending: BTreeMap<u64, (Capability<u64>, Vec<Key>)> = BTreeMap::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|cap, data| {
                    let Some(&t) = cap.least() else { return };
                    let mut out: Vec<(u64, RpcEdge)> = Vec::new();
                    for batch in data {
                        for span in batch.drain(..) {
                            let key = (span.trace_id, span.span_id);
                            let mut remote_child = false;
                            // Children that arrived first.
                            if let Some(waiting) = children.remove(&key) {
                                st.held.fetch_sub(waiting.len() as i64, Ordering::Relaxed);
                                for (child, tc) in waiting {
                                    remote_child |= child.service != span.service;
                                    if let Some(e) = edge_of(&span, &child) {
                                        out.push((t.max(tc), e));
                                    }
                                }
                            }
                            // The parent, if it arrived first.
                            if let Some(p) = span.parent_span_id {
                                let pkey = (span.trace_id, p);
                                if let Some(parent) = spans.get_mut(&pkey) {
                                    let counted = parent.peer_emitted
                                        && parent.span.peer_service.as_ref() == Some(&span.service);
                                    if span.service != parent.span.service {
                                        parent.remote_child = true;
                                    }
                                    if !counted && let Some(e) = edge_of(&parent.span, &span) {
                                        out.push((t.max(parent.time), e));
                                    }
                                } else {
                                    children.entry(pkey).or_default().push((span.clone(), t));
                                    expiry
                                        .entry(t.saturating_add(ttl_ms))
                                        .or_default()
                                        .push(Expiring::Children(pkey));
                                    st.held.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            if !remote_child && peer_edge(&span).is_some() {
                                peer_pending
                                    .entry(t)
                                    .or_insert_with(|| (cap.delayed(&t, port), Vec::new()))
                                    .1
                                    .push(key);
                            }
                            let held = Held {
                                span,
                                time: t,
                                remote_child,
                                peer_emitted: false,
                            };
                            if spans.insert(key, held).is_none() {
                                st.held.fetch_add(1, Ordering::Relaxed);
                            }
                            expiry
                                .entry(t.saturating_add(ttl_ms))
                                .or_default()
                                .push(Expiring::Span(key));
                        }
                    }
                    out.sort_by_key(|(time, _)| *time);
                    let mut out = out.into_iter().peekable();
                    while let Some((time, edge)) = out.next() {
                        let ecap = cap.delayed(&time, port);
                        let mut session = output.session(&ecap);
                        session.give(edge);
                        while let Some((_, e)) = out.next_if(|(t2, _)| *t2 == time) {
                            session.give(e);
                        }
                    }
                });
                // Client spans of closed windows that found no server child: peer edges.
                while let Some(entry) = peer_pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (cap, keys) = entry.remove();
                    let mut session = output.session(&cap);
                    for key in keys {
                        if let Some(held) = spans.get_mut(&key)
                            && !held.remote_child
                            && !held.peer_emitted
                            && let Some(e) = peer_edge(&held.span)
                        {
                            held.peer_emitted = true;
                            st.peer_edges.fetch_add(1, Ordering::Relaxed);
                            session.give(e);
                        }
                    }
                }
                // TTL eviction.
                while let Some(entry) = expiry.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (deadline, items) = entry.remove_entry();
                    for item in items {
                        match item {
                            Expiring::Span(key) => {
                                let expired = spans
                                    .get(&key)
                                    .is_some_and(|h| h.time.saturating_add(ttl_ms) <= deadline);
                                if expired {
                                    spans.remove(&key);
                                    st.held.fetch_sub(1, Ordering::Relaxed);
                                    st.evicted.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Expiring::Children(pkey) => {
                                if let Some(waiting) = children.get_mut(&pkey) {
                                    let before = waiting.len();
                                    waiting.retain(|(_, tc)| tc.saturating_add(ttl_ms) > deadline);
                                    let gone = (before - waiting.len()) as u64;
                                    if waiting.is_empty() {
                                        children.remove(&pkey);
                                    }
                                    st.held.fetch_sub(gone as i64, Ordering::Relaxed);
                                    st.evicted.fetch_add(gone, Ordering::Relaxed);
                                    st.unmatched_children.fetch_add(gone, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
            }
        },
    );
    (edges, stats)
}

//! Trace assembly (design step 3): spans joined to their parents give RPC edges.
//!
//! **In:** a stream of [`Span`]s, each stamped with the window end of its event time
//! ([`Span::event_ms`]). Spans are exchanged by trace id, so all spans of a trace meet on one
//! worker.
//!
//! **Out:** a stream of [`RpcEdge`]s. A span and its parent in *another* service form an edge
//! whatever the child's kind, unless it is a `Client`/`Producer` span: instrumentations that
//! record no span kinds (Jaeger and Zipkin imports, some agents) still show a call as a span
//! whose parent belongs to another service.
//! - parent `Client`/`Producer`, or a kind-less parent at least as long as the child (the
//!   caller's side of the call with its kind not recorded): caller = parent's service,
//!   callee = child's service, `client_ms` = parent duration, `server_ms` = child duration,
//!   `gap_ms` = their difference, error = either errored;
//! - parent of any other kind (instrumentations without client spans): `client_ms` =
//!   `server_ms` = child duration, `gap_ms` = 0, error = the child's.
//!
//! A child that is not a `Server`/`Consumer` span is marked [`RpcEdge::callee_request`]: it
//! is the callee's handling of the request, which service features count from the edge.
//!
//! Every edge carries the caller span it was called from and the call's start and end, so
//! sibling calls that overlap in time (parallel calls) can be told from sequential ones.
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
//! children whose parent has not arrived by (trace id, parent span id): of each span only what
//! edges need (kind, error, duration and its service, operation and peer names, interned in a
//! per-worker table that drops names no held span uses). Each is freed when the
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

use crate::names::Names;
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
type Hasher = foldhash::fast::RandomState;

/// What trace assembly keeps of a span (its ids are the map key).
#[derive(Clone)]
struct Part {
    span_id: u64,
    parent_span_id: Option<u64>,
    start_ns: u64,
    service: Arc<str>,
    name: Arc<str>,
    peer_service: Option<Arc<str>>,
    kind: SpanKind,
    error: bool,
    /// `end_ns - start_ns` (saturating).
    duration_ns: u64,
}

impl Part {
    fn new(span: &Span, names: &mut Names) -> Part {
        Part {
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            start_ns: span.start_ns,
            service: names.intern(&span.service),
            name: names.intern(&span.name),
            peer_service: span.peer_service.as_deref().map(|p| names.intern(p)),
            kind: span.kind,
            error: span.error,
            duration_ns: span.end_ns.saturating_sub(span.start_ns),
        }
    }

    fn end_ns(&self) -> u64 {
        self.start_ns.saturating_add(self.duration_ns)
    }

    /// The caller span of a call made through this client span.
    fn caller_span(&self) -> u64 {
        self.parent_span_id.unwrap_or(self.span_id)
    }

    /// As [`Span::duration_ms`].
    fn duration_ms(&self) -> f64 {
        self.duration_ns as f64 / 1e6
    }
}

struct Held {
    span: Part,
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
    let mut names = Names::default();
    part_edge_of(
        &Part::new(parent, &mut names),
        child.trace_id,
        &Part::new(child, &mut names),
    )
}

/// [`edge_of`] on held parts; `trace_id` is the child's.
fn part_edge_of(parent: &Part, trace_id: u128, child: &Part) -> Option<RpcEdge> {
    if parent.service == child.service
        || matches!(child.kind, SpanKind::Client | SpanKind::Producer)
    {
        return None;
    }
    let server = child.duration_ms();
    // A kind-less child with a parent in another service is that service's handling of a
    // call: one of its requests, counted from the edge (a SERVER span counts itself).
    let callee_request = !matches!(child.kind, SpanKind::Server | SpanKind::Consumer);
    let client_side = parent
        .kind
        .is_call_side(parent.duration_ns, child.duration_ns);
    let edge = if client_side {
        let client = parent.duration_ms();
        RpcEdge {
            trace_id,
            caller: parent.service.to_string(),
            callee: child.service.to_string(),
            operation: child.name.to_string(),
            client_ms: client,
            server_ms: Some(server),
            gap_ms: Some(client - server),
            error: parent.error || child.error,
            caller_span: parent.caller_span(),
            start_ns: parent.start_ns,
            end_ns: parent.end_ns(),
            callee_request,
        }
    } else {
        RpcEdge {
            trace_id,
            caller: parent.service.to_string(),
            callee: child.service.to_string(),
            operation: child.name.to_string(),
            client_ms: server,
            server_ms: Some(server),
            gap_ms: Some(0.0),
            error: child.error,
            caller_span: parent.span_id,
            start_ns: child.start_ns,
            end_ns: child.end_ns(),
            callee_request,
        }
    };
    Some(edge)
}

/// The edge to an uninstrumented peer for a client span, if it names one.
fn peer_edge(trace_id: u128, client: &Part) -> Option<RpcEdge> {
    let peer = client.peer_service.as_ref()?;
    if !client.kind.calls_peer(&client.service, Some(peer)) {
        return None;
    }
    Some(RpcEdge {
        trace_id,
        caller: client.service.to_string(),
        callee: peer.to_string(),
        operation: client.name.to_string(),
        client_ms: client.duration_ms(),
        server_ms: None,
        gap_ms: None,
        error: client.error,
        caller_span: client.caller_span(),
        start_ns: client.start_ns,
        end_ns: client.end_ns(),
        callee_request: false,
    })
}

/// Whether [`peer_edge`] would give an edge (without building it).
fn has_peer_edge(client: &Part) -> bool {
    client.kind == SpanKind::Client
        && client
            .peer_service
            .as_ref()
            .is_some_and(|p| *p != client.service)
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
            let mut names = Names::default();
            let mut spans: HashMap<Key, Held, Hasher> = HashMap::default();
            let mut children: HashMap<Key, Vec<(Part, u64)>, Hasher> = HashMap::default();
            let mut expiry: BTreeMap<u64, Vec<Expiring>> = BTreeMap::new();
            let mut peer_pending: BTreeMap<u64, (Capability<u64>, Vec<Key>)> = BTreeMap::new();
            let mut out: Vec<(u64, RpcEdge)> = Vec::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                // Counter changes, published once per activation (the counters are shared by
                // the workers: one atomic update per span would contend).
                let mut held_delta: i64 = 0;
                input.for_each_stamp(|cap, data| {
                    let Some(&t) = cap.least() else { return };
                    let deadline = t.saturating_add(ttl_ms);
                    let mut expiring = expiry.remove(&deadline).unwrap_or_default();
                    for batch in data {
                        for span in batch.drain(..) {
                            let key = (span.trace_id, span.span_id);
                            let part = Part::new(&span, &mut names);
                            let parent_id = span.parent_span_id;
                            drop(span);
                            let mut remote_child = false;
                            // Children that arrived first.
                            if let Some(waiting) = children.remove(&key) {
                                held_delta -= waiting.len() as i64;
                                for (child, tc) in waiting {
                                    remote_child |= child.service != part.service;
                                    if let Some(e) = part_edge_of(&part, key.0, &child) {
                                        out.push((t.max(tc), e));
                                    }
                                }
                            }
                            // The parent, if it arrived first.
                            if let Some(p) = parent_id {
                                let pkey = (key.0, p);
                                if let Some(parent) = spans.get_mut(&pkey) {
                                    let counted = parent.peer_emitted
                                        && parent.span.peer_service.as_ref() == Some(&part.service);
                                    if part.service != parent.span.service {
                                        parent.remote_child = true;
                                    }
                                    if !counted
                                        && let Some(e) = part_edge_of(&parent.span, key.0, &part)
                                    {
                                        out.push((t.max(parent.time), e));
                                    }
                                } else {
                                    children.entry(pkey).or_default().push((part.clone(), t));
                                    expiring.push(Expiring::Children(pkey));
                                    held_delta += 1;
                                }
                            }
                            if !remote_child && has_peer_edge(&part) {
                                peer_pending
                                    .entry(t)
                                    .or_insert_with(|| (cap.delayed(&t, port), Vec::new()))
                                    .1
                                    .push(key);
                            }
                            let held = Held {
                                span: part,
                                time: t,
                                remote_child,
                                peer_emitted: false,
                            };
                            if spans.insert(key, held).is_none() {
                                held_delta += 1;
                            }
                            expiring.push(Expiring::Span(key));
                        }
                    }
                    expiry.insert(deadline, expiring);
                    out.sort_by_key(|(time, _)| *time);
                    let mut out = out.drain(..).peekable();
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
                            && let Some(e) = peer_edge(key.0, &held.span)
                        {
                            held.peer_emitted = true;
                            st.peer_edges.fetch_add(1, Ordering::Relaxed);
                            session.give(e);
                        }
                    }
                }
                // TTL eviction.
                let (mut evicted, mut unmatched) = (0u64, 0u64);
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
                                    held_delta -= 1;
                                    evicted += 1;
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
                                    held_delta -= gone as i64;
                                    evicted += gone;
                                    unmatched += gone;
                                }
                            }
                        }
                    }
                }
                names.sweep();
                if held_delta != 0 {
                    st.held.fetch_add(held_delta, Ordering::Relaxed);
                }
                if evicted > 0 {
                    st.evicted.fetch_add(evicted, Ordering::Relaxed);
                    st.unmatched_children
                        .fetch_add(unmatched, Ordering::Relaxed);
                }
            }
        },
    );
    (edges, stats)
}

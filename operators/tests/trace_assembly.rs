//! Trace assembly: both arrival orders, clients without server spans, peers, TTL eviction.

mod common;

use std::sync::{Arc, Mutex};

use augur_operators::records::{RpcEdge, SpanKind};
use augur_operators::trace_assembly::{TraceAssemblyStats, trace_assembly};
use common::{Feed, frontend_calls_backend, run, run_with_hook, span};

const W: u64 = 100;

fn edges(workers: usize, feed: Feed, ttl: u64) -> Vec<(u64, RpcEdge)> {
    let mut out = run(workers, feed, W, move |spans, _| {
        trace_assembly(spans, ttl).0
    });
    out.sort_by(|a, b| {
        (a.0, &a.1.caller, &a.1.callee, a.1.trace_id).cmp(&(
            b.0,
            &b.1.caller,
            &b.1.callee,
            b.1.trace_id,
        ))
    });
    out
}

/// Root frontend server span 1 → frontend client span 2 → backend server span 3.
fn client_server_trace(
    trace: u128,
    server_end: u64,
    client_end: u64,
) -> Vec<augur_operators::Span> {
    frontend_calls_backend(
        trace,
        (client_end + 5, 70),
        (client_end, 50),
        (server_end, 40),
    )
}

fn check_client_server(e: &RpcEdge, trace: u128) {
    assert_eq!(e.trace_id, trace);
    assert_eq!(
        (e.caller.as_str(), e.callee.as_str()),
        ("frontend", "backend")
    );
    assert_eq!(e.operation, "GetUser");
    assert_eq!(e.client_ms, 50.0);
    assert_eq!(e.server_ms, Some(40.0));
    assert_eq!(e.gap_ms, Some(10.0));
    assert!(!e.error);
}

#[test]
fn child_before_parent_and_parent_before_child() {
    for workers in [1, 2] {
        // Trace 1: server span in window 100, client in window 200 (child first).
        // Trace 2: same window 300; parent listed (sent) first.
        let t1 = client_server_trace(1, 95, 150);
        let mut t2 = client_server_trace(2, 250, 260);
        t2.reverse(); // root, client first; server last
        // Trace 3: parent in window 400, child in a later window 500 (clock skew).
        let t3 = client_server_trace(3, 420, 390);
        let spans: Vec<_> = t1.into_iter().chain(t2).chain(t3).collect();
        let out = edges(workers, Feed::new(spans, vec![], W), 10_000);
        assert_eq!(out.len(), 3, "one edge per trace: {out:?}");
        assert_eq!(out[0].0, 200, "stamped with the later span");
        check_client_server(&out[0].1, 1);
        assert_eq!(out[1].0, 300);
        check_client_server(&out[1].1, 2);
        assert_eq!(out[2].0, 500);
        check_client_server(&out[2].1, 3);
    }
}

#[test]
fn server_parent_without_client_span_and_errors() {
    let mut child = span(
        7,
        11,
        Some(10),
        "backend",
        "be-1",
        SpanKind::Server,
        "Get",
        140,
        30,
    );
    child.error = true;
    let spans = vec![
        span(
            7,
            10,
            None,
            "frontend",
            "fe-0",
            SpanKind::Server,
            "/",
            150,
            60,
        ),
        child,
        // Same-service child: no edge.
        span(
            7,
            12,
            Some(10),
            "frontend",
            "fe-0",
            SpanKind::Internal,
            "render",
            145,
            5,
        ),
    ];
    let out = edges(1, Feed::new(spans, vec![], W), 10_000);
    assert_eq!(out.len(), 1, "{out:?}");
    let e = &out[0].1;
    assert_eq!(
        (e.caller.as_str(), e.callee.as_str()),
        ("frontend", "backend")
    );
    assert_eq!(
        (e.client_ms, e.server_ms, e.gap_ms),
        (30.0, Some(30.0), Some(0.0))
    );
    assert!(e.error);
}

#[test]
fn peer_service_edges() {
    for workers in [1, 2] {
        let mut redis_call = span(
            5,
            2,
            Some(1),
            "frontend",
            "fe-0",
            SpanKind::Client,
            "GET",
            120,
            8,
        );
        redis_call.peer_service = Some("redis".into());
        redis_call.error = true;
        // A client naming an instrumented peer whose server span arrives after it in the
        // same window: the real edge only, no peer edge.
        let mut be_call = span(
            6,
            2,
            Some(1),
            "frontend",
            "fe-0",
            SpanKind::Client,
            "GetUser",
            130,
            50,
        );
        be_call.peer_service = Some("backend".into());
        let spans = vec![
            span(
                5,
                1,
                None,
                "frontend",
                "fe-0",
                SpanKind::Server,
                "/",
                150,
                60,
            ),
            redis_call,
            be_call,
            span(
                6,
                3,
                Some(2),
                "backend",
                "be-0",
                SpanKind::Server,
                "GetUser",
                125,
                40,
            ),
        ];
        let out = edges(workers, Feed::new(spans, vec![], W), 10_000);
        assert_eq!(out.len(), 2, "{out:?}");
        let (t, e) = &out[0];
        assert_eq!(*t, 200);
        assert_eq!(
            (e.caller.as_str(), e.callee.as_str()),
            ("frontend", "backend")
        );
        assert_eq!(e.server_ms, Some(40.0));
        let (t, e) = &out[1];
        assert_eq!(*t, 200);
        assert_eq!(
            (e.caller.as_str(), e.callee.as_str(), e.operation.as_str()),
            ("frontend", "redis", "GET")
        );
        assert_eq!(
            (e.client_ms, e.server_ms, e.gap_ms, e.error),
            (8.0, None, None, true)
        );
    }
}

#[test]
fn ttl_evicts_unmatched_spans() {
    let ttl = 300;
    // An orphan child at window 100 whose parent arrives at window 600 — after the TTL — and
    // filler roots that move time forward.
    let mut spans = vec![span(
        9,
        3,
        Some(2),
        "backend",
        "be-0",
        SpanKind::Server,
        "Get",
        50,
        10,
    )];
    for w in 1..10u64 {
        spans.push(span(
            100 + u128::from(w),
            1,
            None,
            "frontend",
            "fe-0",
            SpanKind::Server,
            "/",
            w * 100 + 50,
            10,
        ));
    }
    spans.push(span(
        9,
        2,
        Some(1),
        "frontend",
        "fe-0",
        SpanKind::Client,
        "Get",
        550,
        20,
    ));
    let all: Arc<Mutex<Vec<TraceAssemblyStats>>> = Arc::default();
    let held: Arc<Mutex<Vec<(u64, i64)>>> = Arc::default();
    let (all2, all3, held2) = (all.clone(), all.clone(), held.clone());
    let out = run_with_hook(
        1,
        Feed::new(spans, vec![], W),
        W,
        move |s, _| {
            let (e, st) = trace_assembly(s, ttl);
            all2.lock().expect("lock").push(st);
            e
        },
        move |w| {
            let n = all3.lock().expect("lock").iter().map(|s| s.held()).sum();
            held2.lock().expect("lock").push((w, n));
        },
    );
    assert!(out.is_empty(), "the parent came after the TTL: {out:?}");
    let held = held.lock().expect("lock").clone();
    // Window 100: the orphan's entries (as child and as span) are held.
    assert_eq!(held[0], (100, 2));
    // Each window adds one root; each entry lives while the frontier is ≤ time + ttl, i.e. in
    // windows t..=t+ttl plus the one in which the frontier passes: at most 4 windows of roots.
    for &(w, n) in &held {
        assert!(n <= 5, "state bounded by the TTL at window {w}: {n}");
    }
    let stats = all.lock().expect("lock");
    let st = &stats[0];
    // The orphan, and the late client span (its own parent, span 1 of trace 9, never comes).
    assert_eq!(st.unmatched_children(), 2);
    assert_eq!(st.held(), 0, "input closed: everything freed");
    // 11 spans stored as potential parents + 2 waiting children.
    assert_eq!(st.evicted(), 13);
}

/// Kind-less spans (SPAN_KIND_UNSPECIFIED everywhere, as Jaeger/Zipkin imports give), shaped
/// as a real Train Ticket trace: gateway root `/*` → gateway `HTTP POST` → travel
/// `/api/v1/travel` → travel `SELECT` (same service) and travel `HTTP GET` → route
/// `/api/v1/route`. Calls are the spans whose parent is in another service; the kind-less
/// parent is the caller's side of the call.
#[test]
fn calls_from_kindless_spans() {
    let u = SpanKind::Unspecified;
    let spans = vec![
        span(9, 1, None, "gateway", "gw-0", u, "/*", 190, 90),
        span(9, 2, Some(1), "gateway", "gw-0", u, "HTTP POST", 185, 80),
        span(
            9,
            3,
            Some(2),
            "travel",
            "tr-0",
            u,
            "/api/v1/travel",
            180,
            70,
        ),
        span(9, 4, Some(3), "travel", "tr-0", u, "SELECT", 130, 10),
        span(9, 5, Some(3), "travel", "tr-0", u, "HTTP GET", 170, 30),
        span(9, 6, Some(5), "route", "ro-0", u, "/api/v1/route", 166, 22),
    ];
    for workers in [1, 2] {
        let mut fed = spans.clone();
        fed.reverse(); // children before parents
        let out = edges(workers, Feed::new(fed, vec![], W), 10_000);
        let got: Vec<_> = out
            .iter()
            .map(|(_, e)| {
                (
                    e.caller.as_str(),
                    e.callee.as_str(),
                    e.operation.as_str(),
                    e.client_ms,
                    e.server_ms,
                    e.gap_ms,
                    e.callee_request,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "gateway",
                    "travel",
                    "/api/v1/travel",
                    80.0,
                    Some(70.0),
                    Some(10.0),
                    true
                ),
                (
                    "travel",
                    "route",
                    "/api/v1/route",
                    30.0,
                    Some(22.0),
                    Some(8.0),
                    true
                ),
            ],
            "{workers} workers"
        );
        // Sibling calls are told apart by the caller's span: the kind-less client span's parent.
        assert_eq!(out[0].1.caller_span, 1);
        assert_eq!(out[1].1.caller_span, 3);
    }
}

/// A kind-less parent shorter than its remote child (clock skew, or a one-span-per-hop
/// caller that returned early) is not taken for the call's client side.
#[test]
fn kindless_parent_shorter_than_child_gives_server_side_call() {
    let u = SpanKind::Unspecified;
    let spans = vec![
        span(4, 1, None, "front", "f-0", u, "/", 150, 20),
        span(4, 2, Some(1), "back", "b-0", u, "get", 160, 40),
    ];
    let out = edges(1, Feed::new(spans, vec![], W), 10_000);
    assert_eq!(out.len(), 1, "{out:?}");
    let e = &out[0].1;
    assert_eq!(
        (e.client_ms, e.server_ms, e.gap_ms, e.callee_request),
        (40.0, Some(40.0), Some(0.0), true)
    );
}

//! Test harness: builds records by hand and drives a dataflow window by window.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use augur_operators::records::{MetricPoint, Resource, Span, SpanKind, window_end};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Inspect, Probe};

pub const MS: u64 = 1_000_000;

/// A span ending at `end_ms` after `dur_ms` (fractional ms allowed through `dur_us`).
#[allow(clippy::too_many_arguments)]
pub fn span(
    trace: u128,
    id: u64,
    parent: Option<u64>,
    service: &str,
    instance: &str,
    kind: SpanKind,
    name: &str,
    end_ms: u64,
    dur_ms: u64,
) -> Span {
    Span {
        trace_id: trace,
        span_id: id,
        parent_span_id: parent,
        service: service.to_string(),
        instance: instance.to_string(),
        kind,
        name: name.to_string(),
        start_ns: (end_ms - dur_ms) * MS,
        end_ns: end_ms * MS,
        error: false,
        peer_service: None,
        version: None,
    }
}

/// A `frontend` request calling `backend` once: root server span 1 (`/home`) → client
/// span 2 → backend server span 3 (`GetUser`), each given as (end ms, duration ms).
pub fn frontend_calls_backend(
    trace: u128,
    (root_end, root_ms): (u64, u64),
    (client_end, client_ms): (u64, u64),
    (server_end, server_ms): (u64, u64),
) -> Vec<Span> {
    vec![
        span(
            trace,
            1,
            None,
            "frontend",
            "fe-0",
            SpanKind::Server,
            "/home",
            root_end,
            root_ms,
        ),
        span(
            trace,
            2,
            Some(1),
            "frontend",
            "fe-0",
            SpanKind::Client,
            "GetUser",
            client_end,
            client_ms,
        ),
        span(
            trace,
            3,
            Some(2),
            "backend",
            "be-0",
            SpanKind::Server,
            "GetUser",
            server_end,
            server_ms,
        ),
    ]
}

pub fn metric(
    service: &str,
    instance: &str,
    resource: Resource,
    at_ms: u64,
    value: f64,
) -> MetricPoint {
    MetricPoint {
        service: service.to_string(),
        instance: instance.to_string(),
        resource,
        time_ns: at_ms * MS,
        value,
    }
}

/// Spans and metrics, each tagged with the window end it is sent at.
#[derive(Clone, Default)]
pub struct Feed {
    pub spans: Vec<(u64, Span)>,
    pub metrics: Vec<(u64, MetricPoint)>,
}

impl Feed {
    /// Spans at the window of their event time.
    pub fn new(spans: Vec<Span>, metrics: Vec<MetricPoint>, window_ms: u64) -> Feed {
        Feed {
            spans: spans
                .into_iter()
                .map(|s| (window_end(s.event_ms(), window_ms), s))
                .collect(),
            metrics: metrics
                .into_iter()
                .map(|m| (window_end(m.event_ms(), window_ms), m))
                .collect(),
        }
    }
}

/// Runs `build` on `workers` workers. Records are dealt round-robin to the workers and sent
/// window by window (in the order given within a window); after each window the input advances
/// to the next window end and the workers step until the output frontier has caught up. Returns
/// every output record with its time, in the order worker 0.. saw them (sort when comparing).
pub fn run<O, F>(workers: usize, feed: Feed, window_ms: u64, build: F) -> Vec<(u64, O)>
where
    O: Clone + Send + 'static,
    F: for<'s> Fn(
            StreamVec<'s, u64, Span>,
            StreamVec<'s, u64, MetricPoint>,
        ) -> StreamVec<'s, u64, O>
        + Send
        + Sync
        + 'static,
{
    run_with_hook(workers, feed, window_ms, build, |_| {})
}

/// [`run`], calling `hook(w)` on worker 0 after window `w` has been processed.
pub fn run_with_hook<O, F, H>(
    workers: usize,
    feed: Feed,
    window_ms: u64,
    build: F,
    hook: H,
) -> Vec<(u64, O)>
where
    H: Fn(u64) + Send + Sync + 'static,
    O: Clone + Send + 'static,
    F: for<'s> Fn(
            StreamVec<'s, u64, Span>,
            StreamVec<'s, u64, MetricPoint>,
        ) -> StreamVec<'s, u64, O>
        + Send
        + Sync
        + 'static,
{
    let out: Arc<Mutex<Vec<(u64, O)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let feed = Arc::new(feed);
    let config = if workers == 1 {
        timely::Config::thread()
    } else {
        timely::Config::process(workers)
    };
    let guards = timely::execute(config, move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let sink = sink.clone();
        let (mut sin, mut min, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (sin, spans) = scope.new_input::<Span>();
            let (min, metrics) = scope.new_input::<MetricPoint>();
            let (probe, _) = build(spans, metrics)
                .inspect_core(move |ev| {
                    if let Ok((stamp, data)) = ev {
                        let t = *stamp.iter().next().expect("non-empty stamp");
                        let mut g = sink.lock().expect("lock");
                        g.extend(data.iter().cloned().map(|d| (t, d)));
                    }
                })
                .probe();
            (sin, min, probe)
        });
        let windows: BTreeSet<u64> = feed
            .spans
            .iter()
            .map(|(t, _)| *t)
            .chain(feed.metrics.iter().map(|(t, _)| *t))
            .collect();
        for w in windows {
            sin.advance_to(w);
            min.advance_to(w);
            for (i, (_, s)) in feed.spans.iter().enumerate().filter(|(_, (t, _))| *t == w) {
                if i % peers == index {
                    sin.send(s.clone());
                }
            }
            for (i, (_, m)) in feed
                .metrics
                .iter()
                .enumerate()
                .filter(|(_, (t, _))| *t == w)
            {
                if i % peers == index {
                    min.send(m.clone());
                }
            }
            let next = w + window_ms;
            sin.advance_to(next);
            min.advance_to(next);
            worker.step_while(|| probe.less_than(&next));
            if index == 0 {
                hook(w);
            }
        }
    })
    .expect("timely runs");
    for r in guards.join() {
        r.expect("worker ran");
    }
    out.lock().expect("lock").clone()
}

pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-9)
}

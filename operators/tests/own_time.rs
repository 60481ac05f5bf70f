//! Own time per service and window, in all and by operation: by hand where a request's
//! calls end in earlier windows, and against a from-scratch recomputation over random
//! traces, on 1 and 2 workers.

mod common;

use std::collections::BTreeMap;

use augur_operators::FeatureParams;
use augur_operators::features_dataflow;
use augur_operators::own_time::{SpanTiming, own_ns};
use augur_operators::records::{Span, SpanKind, window_end};
use common::{Feed, run, span};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const W: u64 = 1000;

/// Own time (ms) per (window, service, operation) as the feature dataflow reports it;
/// operation `None`: the service's in all.
type OwnTimes = BTreeMap<(u64, String, Option<String>), f64>;

fn reported(workers: usize, spans: Vec<Span>) -> OwnTimes {
    let params = FeatureParams {
        window_ms: W,
        ..FeatureParams::default()
    };
    let out = run(workers, Feed::new(spans, vec![], W), W, move |s, m| {
        features_dataflow(s, m, &params)
    });
    let mut own = BTreeMap::new();
    for (_, snapshot) in out {
        for s in snapshot.services {
            for op in s.operations {
                own.insert(
                    (snapshot.window_end, s.service.clone(), Some(op.name)),
                    op.own_ms,
                );
            }
            if let Some(ms) = s.own_ms {
                own.insert((snapshot.window_end, s.service, None), ms);
            }
        }
    }
    own
}

#[test]
fn a_request_is_charged_with_its_calls_whatever_window_they_ended_in() {
    // `front` serves a 2.4 s request ending at 3.2 s. Through kind-less client spans it calls
    // `back` twice: the first call ends at 1.9 s, two windows before the request ends.
    let kindless = SpanKind::Unspecified;
    let hop = |id, parent, service: &str, kind, end_ms, dur_ms| {
        span(1, id, parent, service, service, kind, "op", end_ms, dur_ms)
    };
    let spans = vec![
        hop(1, None, "front", kindless, 3200, 2400),
        hop(2, Some(1), "front", kindless, 1900, 1000),
        hop(3, Some(2), "back", kindless, 1890, 980),
        hop(4, Some(1), "front", kindless, 3100, 1000),
        hop(5, Some(4), "back", kindless, 3090, 900),
        // `back`'s own database span: its own time.
        hop(6, Some(5), "back", SpanKind::Client, 3050, 300),
    ];
    for workers in [1, 2] {
        let own = reported(workers, spans.clone());
        let at = |w: u64, s: &str| own.get(&(w, s.to_string(), None)).copied();
        // The request's window: 2400 - 2 × 1000 of calls.
        assert_eq!(at(4000, "front"), Some(400.0), "{own:?}");
        // The first call's window holds only the client side of a call: no own time.
        assert_eq!(at(2000, "front"), Some(0.0), "{own:?}");
        assert_eq!(at(2000, "back"), Some(980.0), "{own:?}");
        assert_eq!(at(4000, "back"), Some(900.0), "{own:?}");
    }
}

/// A random trace: a tree of spans over a few services, each child inside its parent.
fn trace(trace_id: u128, seed: &[(u8, u8, u16, u16)]) -> Vec<Span> {
    let services = ["a", "b", "c"];
    let operations = ["op", "read", "write"];
    let kinds = [
        SpanKind::Unspecified,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Internal,
    ];
    let mut spans = vec![span(
        trace_id,
        1,
        None,
        "a",
        "a-0",
        SpanKind::Server,
        "/",
        10_000,
        6_000,
    )];
    for (i, &(parent, service, shrink, kind)) in seed.iter().enumerate() {
        let p = spans[usize::from(parent) % spans.len()].clone();
        let (p_start, p_end) = (p.start_ns / common::MS, p.end_ns / common::MS);
        let len = p_end - p_start;
        let end = p_end - u64::from(shrink) % (len / 2 + 1);
        let dur = (end - p_start) * u64::from(kind % 97 + 1) / 100;
        spans.push(span(
            trace_id,
            i as u64 + 2,
            Some(p.span_id),
            services[usize::from(service) % 3],
            "i-0",
            kinds[usize::from(kind) % 4],
            operations[usize::from(shrink) % 3],
            end,
            dur,
        ));
    }
    spans
}

/// Own time per (window, service, operation) recomputed from whole traces: every span's own
/// time in its window, its children all known.
fn from_scratch(spans: &[Span]) -> OwnTimes {
    let mut children: BTreeMap<(u128, u64), Vec<&Span>> = BTreeMap::new();
    for s in spans {
        if let Some(p) = s.parent_span_id {
            children.entry((s.trace_id, p)).or_default().push(s);
        }
    }
    let mut own: BTreeMap<(u64, String, Option<String>), i128> = BTreeMap::new();
    for s in spans {
        let window = window_end(s.event_ms(), W);
        let kids = children.get(&(s.trace_id, s.span_id));
        let ns = own_ns(
            &SpanTiming::of(s),
            kids.into_iter()
                .flatten()
                .map(|c| (c.service.as_str(), c.end_ns.saturating_sub(c.start_ns))),
        );
        *own.entry((window, s.service.clone(), None)).or_default() += ns;
        *own.entry((window, s.service.clone(), Some(s.name.clone())))
            .or_default() += ns;
    }
    own.into_iter()
        .map(|(k, ns)| (k, ns as f64 / 1e6))
        .collect()
}

#[test]
fn own_time_matches_a_recomputation_from_whole_traces() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let traces = proptest::collection::vec(
        proptest::collection::vec(
            (any::<u8>(), any::<u8>(), any::<u16>(), any::<u16>()),
            1..12,
        ),
        1..6,
    );
    runner
        .run(&traces, |seeds| {
            let spans: Vec<Span> = seeds
                .iter()
                .enumerate()
                .flat_map(|(i, seed)| trace(i as u128 + 1, seed))
                .collect();
            let want = from_scratch(&spans);
            for workers in [1, 2] {
                let got = reported(workers, spans.clone());
                prop_assert_eq!(got.len(), want.len());
                for (k, v) in &want {
                    let g = got.get(k).copied().unwrap_or(f64::NAN);
                    prop_assert!((g - v).abs() < 1e-6, "{:?}: {} vs {}", k, g, v);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn own_time_partials_merge_across_workers() {
    // The partials of two workers for one service and window add up.
    use augur_operators::service_features::ServicePartial;
    let ops = |pairs: &[(&str, i128)]| {
        pairs
            .iter()
            .map(|&(name, ns)| (name.to_string(), ns))
            .collect::<BTreeMap<String, i128>>()
    };
    let mut a = ServicePartial::of_own_time(1_500_000, ops(&[("get", 1_500_000)]));
    a.merge(ServicePartial::of_own_time(
        -500_000,
        ops(&[("get", -700_000), ("put", 200_000)]),
    ));
    assert_eq!(a.own_ns, Some(1_000_000));
    assert_eq!(
        a.own_by_operation,
        ops(&[("get", 800_000), ("put", 200_000)])
    );
    let mut none = ServicePartial::default();
    none.merge(ServicePartial::default());
    assert_eq!(none.own_ns, None);
}

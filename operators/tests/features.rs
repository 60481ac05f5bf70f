//! Service, edge and QoS features against hand-computed values; snapshots for 1 vs 2 workers.

mod common;

use augur_operators::records::{GAP_LEVELS_MS, Resource, Span, SpanKind, WindowSnapshot};
use augur_operators::{
    FeatureParams, Slo, edge_features, features_dataflow, qos_check, service_features,
    trace_assembly,
};
use common::{Feed, close, frontend_calls_backend, metric, run, span};

const W: u64 = 1000;
/// DDSketch's relative accuracy, with margin.
const ACC: f64 = 0.011;

fn server(trace: u128, service: &str, inst: &str, end: u64, dur: u64) -> Span {
    span(
        trace,
        1,
        None,
        service,
        inst,
        SpanKind::Server,
        "/",
        end,
        dur,
    )
}

#[test]
fn service_features_by_hand() {
    for workers in [1, 2] {
        let mut spans = vec![
            server(1, "api", "api-0", 100, 10),
            server(2, "api", "api-1", 200, 20),
            server(3, "api", "api-0", 300, 30),
            server(4, "api", "api-1", 400, 40),
            // A client span of api: not a request.
            span(
                4,
                2,
                Some(1),
                "api",
                "api-1",
                SpanKind::Client,
                "q",
                390,
                35,
            ),
            server(5, "api", "api-0", 1500, 50),
        ];
        spans[1].error = true;
        let metrics = vec![
            metric("api", "api-0", Resource::Cpu, 100, 0.2),
            metric("api", "api-0", Resource::Cpu, 600, 0.4),
            metric("api", "api-1", Resource::Cpu, 500, 0.5),
            metric("api", "api-2", Resource::Cpu, 500, 0.9),
            metric("api", "api-0", Resource::Memory, 500, 100.0),
            metric("db", "db-0", Resource::Disk, 700, 7.0),
        ];
        let mut out = run(workers, Feed::new(spans, metrics, W), W, |s, m| {
            service_features(s, m, W)
        });
        out.sort_by(|a, b| (a.0, &a.1.service).cmp(&(b.0, &b.1.service)));
        assert_eq!(out.len(), 3, "{out:?}");

        let (t, api) = &out[0];
        assert_eq!(
            (*t, api.window_end, api.service.as_str()),
            (1000, 1000, "api")
        );
        assert_eq!((api.requests, api.errors, api.replicas), (4, 1, 3));
        // Lower nearest rank floor(q (n-1)) of [10, 20, 30, 40]: 20, 30, 30, 30, 30.
        for (got, want) in api.latency_ms.iter().zip([20.0, 30.0, 30.0, 30.0, 30.0]) {
            assert!(close(*got, want, ACC), "latency {:?}", api.latency_ms);
        }
        assert!(close(api.outstanding, 0.1, 1e-12), "{}", api.outstanding);
        // CPU means per replica: 0.3, 0.5, 0.9 → min, median, p90 (interpolated), max.
        let cpu = api.usage[Resource::Cpu.index()];
        for (got, want) in cpu.iter().zip([0.3, 0.5, 0.82, 0.9]) {
            assert!(close(*got, want, 1e-9), "cpu {cpu:?}");
        }
        assert_eq!(api.usage[Resource::Memory.index()], [100.0; 4]);
        assert_eq!(api.usage[Resource::Disk.index()], [0.0; 4]);

        let (t, db) = &out[1];
        assert_eq!(
            (*t, db.service.as_str(), db.requests, db.replicas),
            (1000, "db", 0, 1)
        );
        assert_eq!(db.latency_ms, [0.0; 5]);
        assert_eq!(db.usage[Resource::Disk.index()], [7.0; 4]);

        let (t, api2) = &out[2];
        assert_eq!((*t, api2.requests, api2.replicas), (2000, 1, 1));
        assert!(api2.latency_ms.iter().all(|l| close(*l, 50.0, ACC)));
        assert!(close(api2.outstanding, 0.05, 1e-12));
    }
}

#[test]
fn edge_features_by_hand() {
    for workers in [1, 2] {
        let mut spans = Vec::new();
        for (trace, client, srv) in [(1u128, 50, 40), (2, 30, 25)] {
            spans.extend(frontend_calls_backend(
                trace,
                (300, 80),
                (290, client),
                (280, srv),
            ));
        }
        let mut peer = span(
            3,
            2,
            Some(1),
            "frontend",
            "fe-0",
            SpanKind::Client,
            "GET",
            250,
            8,
        );
        peer.peer_service = Some("redis".into());
        peer.error = true;
        spans.push(peer);
        let mut out = run(workers, Feed::new(spans, vec![], W), W, |s, _| {
            edge_features(trace_assembly(s, 10_000).0)
        });
        out.sort_by(|a, b| (a.0, &a.1.caller, &a.1.callee).cmp(&(b.0, &b.1.caller, &b.1.callee)));
        assert_eq!(out.len(), 2, "{out:?}");
        let be = &out[0].1;
        assert_eq!(
            (out[0].0, be.caller.as_str(), be.callee.as_str()),
            (1000, "frontend", "backend")
        );
        assert_eq!((be.calls, be.errors), (2, 0));
        // n = 2: every quantile below 1 is the lower value.
        assert!(be.client_ms.iter().all(|v| close(*v, 30.0, ACC)), "{be:?}");
        assert!(be.server_ms.iter().all(|v| close(*v, 25.0, ACC)), "{be:?}");
        assert!(be.gap_ms.iter().all(|v| close(*v, 5.0, ACC)), "{be:?}");
        let redis = &out[1].1;
        assert_eq!(
            (redis.callee.as_str(), redis.calls, redis.errors),
            ("redis", 1, 1)
        );
        assert!(redis.client_ms.iter().all(|v| close(*v, 8.0, ACC)));
        assert_eq!((redis.server_ms, redis.gap_ms), ([0.0; 5], [0.0; 5]));
    }
}

/// Calls counted at each gap level they reach, against the gaps the spans were made with.
#[test]
fn gap_levels_count_the_calls_that_reach_them() {
    let gaps = [5u64, 20, 300, 5000];
    for workers in [1, 2] {
        let mut spans = Vec::new();
        for (i, gap) in gaps.iter().enumerate() {
            let server = 10;
            spans.extend(frontend_calls_backend(
                i as u128 + 1,
                (9900, server + gap + 20),
                (9890, server + gap),
                (9880, server),
            ));
        }
        let out = run(workers, Feed::new(spans, vec![], W), W, |s, _| {
            edge_features(trace_assembly(s, 10_000).0)
        });
        assert_eq!(out.len(), 1, "{out:?}");
        let edge = &out[0].1;
        let expected: Vec<u64> = GAP_LEVELS_MS
            .iter()
            .map(|level| gaps.iter().filter(|g| **g as f64 >= *level).count() as u64)
            .collect();
        assert_eq!(expected, [3, 2, 2, 2, 2, 1, 1, 1, 1]);
        assert_eq!(edge.gap_over.to_vec(), expected, "{workers} workers");
        assert_eq!(edge.gap_calls, 4);
    }
}

fn slos() -> Vec<Slo> {
    vec![
        Slo {
            entry: "frontend".into(),
            operation: None,
            quantile: 0.9,
            threshold_ms: 85.0,
            error_rate: None,
        },
        Slo {
            entry: "frontend".into(),
            operation: Some("/home".into()),
            quantile: 0.5,
            threshold_ms: 100.0,
            error_rate: Some(0.1),
        },
    ]
}

#[test]
fn qos_check_by_hand() {
    for workers in [1, 2] {
        let mut spans: Vec<Span> = (1..=10u64)
            .map(|i| {
                let mut s = server(u128::from(i), "frontend", "fe-0", 100 + i * 10, i * 10);
                s.name = if i <= 5 {
                    "/home".into()
                } else {
                    "/post".into()
                };
                s.error = i == 3;
                s
            })
            .collect();
        // Not end-to-end requests: a non-root server span and a root client span.
        spans.push(span(
            50,
            2,
            Some(1),
            "frontend",
            "fe-0",
            SpanKind::Server,
            "/",
            500,
            400,
        ));
        spans.push(span(
            51,
            1,
            None,
            "frontend",
            "fe-0",
            SpanKind::Client,
            "/",
            500,
            400,
        ));
        spans.push(server(60, "frontend", "fe-1", 1500, 20));
        spans.push(server(61, "frontend", "fe-1", 1600, 20));
        let slos = slos();
        let mut out = run(workers, Feed::new(spans, vec![], W), W, move |s, _| {
            qos_check(s, &slos)
        });
        out.sort_by(|a, b| (a.0, &a.1.entry).cmp(&(b.0, &b.1.entry)));
        assert_eq!(out.len(), 3, "{out:?}");
        let all = &out[0].1;
        assert_eq!(
            (out[0].0, all.entry.as_str(), all.requests, all.errors),
            (1000, "frontend", 10, 1)
        );
        // p90 of 10..=100 by lower nearest rank: rank 8 → 90 ms > 85.
        assert!(close(all.measured_ms, 90.0, ACC), "{all:?}");
        assert!(all.violated);
        assert_eq!((all.quantile, all.slo_ms), (0.9, 85.0));
        assert!(
            close(all.latency_ms[0], 50.0, ACC) && close(all.latency_ms[4], 90.0, ACC),
            "{all:?}"
        );
        // Latency within the objective, but 1 error in 5 requests is above the error rate.
        let home = &out[1].1;
        assert_eq!(
            (home.entry.as_str(), home.requests, home.errors),
            ("frontend /home", 5, 1)
        );
        assert!(
            close(home.measured_ms, 30.0, ACC) && home.violated,
            "{home:?}"
        );
        let next = &out[2].1;
        assert_eq!(
            (out[2].0, next.entry.as_str(), next.requests),
            (2000, "frontend", 2)
        );
        assert!(close(next.measured_ms, 20.0, ACC) && !next.violated);
    }
}

/// A small deterministic generator (xorshift), so the test needs no extra dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Calls from one caller span that overlap in time are counted as parallel, per other
/// callee; calls that follow each other aren't. Trace 1: `a` and `b` overlap, `c` follows
/// both; trace 2: `a` and `c` overlap. `c` is an uninstrumented peer in trace 2.
#[test]
fn parallel_calls_by_hand() {
    for workers in [1, 2] {
        let mut spans = Vec::new();
        // (trace, callee, client span id, end, duration)
        let calls: [(u128, &str, u64, u64, u64); 5] = [
            (1, "a", 2, 150, 50),
            (1, "b", 3, 170, 50),
            (1, "c", 4, 200, 20),
            (2, "a", 2, 150, 50),
            (2, "c", 3, 160, 20),
        ];
        for trace in [1u128, 2] {
            spans.push(span(
                trace,
                1,
                None,
                "fe",
                "fe-0",
                SpanKind::Server,
                "/",
                300,
                250,
            ));
        }
        for (trace, callee, id, end, dur) in calls {
            let mut client = span(
                trace,
                id,
                Some(1),
                "fe",
                "fe-0",
                SpanKind::Client,
                "call",
                end,
                dur,
            );
            if trace == 2 && callee == "c" {
                client.peer_service = Some("c".into());
            } else {
                spans.push(span(
                    trace,
                    10 + id,
                    Some(id),
                    callee,
                    &format!("{callee}-0"),
                    SpanKind::Server,
                    "op",
                    end - 1,
                    dur - 2,
                ));
            }
            spans.push(client);
        }
        let mut out = run(workers, Feed::new(spans, vec![], W), W, |s, _| {
            edge_features(trace_assembly(s, 10_000).0)
        });
        out.sort_by(|a, b| a.1.callee.cmp(&b.1.callee));
        // (callee, calls, [(other callee, overlapping calls)])
        type Parallel<'a> = Vec<(&'a str, u64, Vec<(&'a str, u64)>)>;
        let parallel: Parallel = out
            .iter()
            .map(|(_, e)| {
                (
                    e.callee.as_str(),
                    e.calls,
                    e.parallel.iter().map(|(c, n)| (c.as_str(), *n)).collect(),
                )
            })
            .collect();
        assert_eq!(
            parallel,
            vec![
                ("a", 2, vec![("b", 1), ("c", 1)]),
                ("b", 1, vec![("a", 1)]),
                ("c", 2, vec![("a", 1)]),
            ],
            "{workers} workers"
        );
    }
}

/// Traces front → {mid-k} → {db | cache(peer)} over `windows` windows, plus metrics.
fn random_feed(seed: u64, windows: u64) -> Feed {
    let mut rng = Rng(seed);
    let mut spans = Vec::new();
    let mut metrics = Vec::new();
    let mut trace = 0u128;
    for w in 0..windows {
        for _ in 0..(20 + rng.below(20)) {
            trace += 1;
            let end = w * W + 200 + rng.below(700);
            let mid = format!("mid-{}", rng.below(3));
            let d_mid = 5 + rng.below(50);
            let d_db = 1 + rng.below(d_mid);
            let root_dur = d_mid + 10 + rng.below(30);
            let mut root = span(
                trace,
                1,
                None,
                "front",
                &format!("front-{}", rng.below(2)),
                SpanKind::Server,
                "/",
                end,
                root_dur,
            );
            root.error = rng.below(10) == 0;
            spans.push(root);
            spans.push(span(
                trace,
                2,
                Some(1),
                "front",
                "front-0",
                SpanKind::Client,
                "call",
                end - 2,
                d_mid + 3,
            ));
            spans.push(span(
                trace,
                3,
                Some(2),
                &mid,
                &format!("{mid}-{}", rng.below(2)),
                SpanKind::Server,
                "op",
                end - 4,
                d_mid,
            ));
            if rng.below(2) == 0 && w < windows - 2 {
                spans.push(span(
                    trace,
                    4,
                    Some(3),
                    "db",
                    "db-0",
                    SpanKind::Server,
                    "query",
                    end - 5,
                    d_db,
                ));
            } else {
                let mut c = span(
                    trace,
                    4,
                    Some(3),
                    &mid,
                    "x",
                    SpanKind::Client,
                    "GET",
                    end - 5,
                    d_db,
                );
                c.peer_service = Some("cache".into());
                spans.push(c);
            }
        }
        for inst in ["front-0", "front-1", "mid-0-0", "mid-0-1", "db-0"] {
            let service = inst.rsplit_once('-').map(|(s, _)| s).unwrap_or(inst);
            for k in 0..3 {
                metrics.push(metric(
                    service,
                    inst,
                    Resource::Cpu,
                    w * W + k * 300,
                    rng.below(1000) as f64 / 1000.0,
                ));
            }
        }
    }
    // Arrival order within a window is shuffled: children and parents in any order.
    let mut feed = Feed::new(spans, metrics, W);
    for i in (1..feed.spans.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        feed.spans.swap(i, j);
    }
    feed
}

fn snapshots(workers: usize, feed: Feed) -> Vec<WindowSnapshot> {
    let params = FeatureParams {
        window_ms: W,
        graph_retention_ms: 2 * W,
        slos: vec![Slo {
            entry: "front".into(),
            operation: None,
            quantile: 0.99,
            threshold_ms: 60.0,
            error_rate: None,
        }],
        ..FeatureParams::default()
    };
    let out = run(workers, feed, W, move |s, m| {
        features_dataflow(s, m, &params)
    });
    let times: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
    assert!(
        times.windows(2).all(|p| p[0] < p[1]),
        "one snapshot per window, in order: {times:?}"
    );
    out.into_iter()
        .map(|(t, s)| {
            assert_eq!(t, s.window_end);
            s
        })
        .collect()
}

#[test]
fn snapshots_identical_for_one_and_two_workers() {
    let feed = random_feed(0x5eed, 6);
    let one = snapshots(1, feed.clone());
    let two = snapshots(2, feed);
    assert_eq!(one, two);
    // Windows 1000..=6000 with data, then (input closed) the retirement of the edges last seen
    // at 6000 in window 8000 (retention 2 windows); every edge seen at 5000 is seen again at 6000.
    let ends: Vec<u64> = one.iter().map(|s| s.window_end).collect();
    assert_eq!(ends, vec![1000, 2000, 3000, 4000, 5000, 6000, 8000]);
    let first = &one[0];
    assert!(first.topology_changed);
    assert_eq!(first.window_ms, W);
    assert_eq!(first.order.last().map(String::as_str), Some("front"));
    assert!(
        first
            .services
            .windows(2)
            .all(|p| p[0].service < p[1].service)
    );
    assert!(
        first
            .edges
            .windows(2)
            .all(|p| (&p[0].caller, &p[0].callee) < (&p[1].caller, &p[1].callee))
    );
    assert_eq!(first.qos.len(), 1);
    let spans_in_first: u64 = first
        .services
        .iter()
        .find(|s| s.service == "front")
        .map(|s| s.requests)
        .unwrap_or(0);
    assert_eq!(first.qos[0].requests, spans_in_first);
    // db stops being called after window 4000; with 2-window retention it retires at 6000.
    let retired: Vec<u64> = one
        .iter()
        .filter(|s| s.topology_changed && !s.order.contains(&"db".to_string()))
        .map(|s| s.window_end)
        .collect();
    assert_eq!(retired.first(), Some(&6000), "{retired:?}");
    assert!(
        one.last()
            .is_some_and(|s| s.order.is_empty() && s.services.is_empty())
    );
}

/// The same traces with no span kinds recorded (client spans with a `peer.service` keep
/// theirs: a peer call is named only by them) give every service the same requests, every
/// edge the same calls and every entry the same QoS requests, over the run, as with
/// SERVER/CLIENT kinds: the kinded run is the reference computation.
#[test]
fn kindless_traces_count_like_kinded_ones() {
    let feed = random_feed(0x6b1d, 6);
    let mut kindless = feed.clone();
    for (_, s) in &mut kindless.spans {
        if s.peer_service.is_none() {
            s.kind = SpanKind::Unspecified;
        }
    }
    type Totals = (
        std::collections::BTreeMap<String, (u64, u64)>,
        std::collections::BTreeMap<(String, String), u64>,
        u64,
    );
    let totals = |snaps: &[WindowSnapshot]| -> Totals {
        let mut services = std::collections::BTreeMap::new();
        let mut edges = std::collections::BTreeMap::new();
        let mut qos = 0;
        for w in snaps {
            for s in &w.services {
                let t: &mut (u64, u64) = services.entry(s.service.clone()).or_default();
                t.0 += s.requests;
                t.1 += s.errors;
            }
            for e in &w.edges {
                *edges
                    .entry((e.caller.clone(), e.callee.clone()))
                    .or_default() += e.calls;
            }
            qos += w.qos.iter().map(|q| q.requests).sum::<u64>();
        }
        (services, edges, qos)
    };
    for workers in [1, 2] {
        let reference = totals(&snapshots(workers, feed.clone()));
        let got = totals(&snapshots(workers, kindless.clone()));
        assert!(reference.0.values().all(|t| t.0 > 0));
        assert!(reference.2 > 0);
        assert_eq!(got, reference, "{workers} workers");
    }
}

#[test]
fn params_and_slo_serde() {
    let p: FeatureParams =
        serde_json::from_str(r#"{"slos":[{"entry":"nginx","quantile":0.99,"threshold_ms":200}]}"#)
            .expect("valid params");
    assert_eq!(
        (p.window_ms, p.trace_ttl_ms, p.graph_retention_ms),
        (1000, 10_000, 60_000)
    );
    assert_eq!(p.slos[0].operation, None);
    let p2 = FeatureParams {
        window_ms: 300,
        graph_retention_ms: 1000,
        ..FeatureParams::default()
    };
    assert_eq!(p2.retention_windows_ms(), 1200);
    assert!(
        serde_json::from_str::<Slo>(r#"{"entry":"a","quantile":0.5,"threshold_ms":1,"oops":1}"#)
            .is_err()
    );
    assert!(serde_json::from_str::<FeatureParams>(r#"{"window":5}"#).is_err());
}

/// CPU scraped once, in the first window, and requests every window after: the snapshots
/// hold the sample (marked held) while it is at most `metric_stale_ms` old, then zeros;
/// the same for one and two workers. Without the hold every window but the first read 0.
#[test]
fn a_scraped_sample_stands_in_the_windows_after_it_until_stale() {
    let spans: Vec<Span> = (1..=8u64)
        .map(|w| server(u128::from(w), "api", "api-0", w * W - 100, 10))
        .collect();
    let metrics = vec![metric("api", "api-0", Resource::Cpu, 500, 0.4)];
    let feed = Feed::new(spans, metrics, W);
    for workers in [1, 2] {
        let params = FeatureParams {
            window_ms: W,
            metric_stale_ms: 3 * W,
            ..FeatureParams::default()
        };
        let out = run(workers, feed.clone(), W, move |s, m| {
            features_dataflow(s, m, &params)
        });
        let cpu: Vec<(u64, f64, bool)> = out
            .iter()
            .filter_map(|(_, snapshot)| {
                let api = snapshot.services.iter().find(|s| s.service == "api")?;
                let i = Resource::Cpu.index();
                Some((snapshot.window_end, api.usage[i][1], api.usage_held[i]))
            })
            .collect();
        let expected: Vec<(u64, f64, bool)> = (1..=8u64)
            .map(|w| match w {
                1 => (W, 0.4, false),
                2..=4 => (w * W, 0.4, true),
                _ => (w * W, 0.0, false),
            })
            .collect();
        assert_eq!(cpu, expected, "{workers} workers");
    }
}

//! The inference graph on a system whose answer is known: each service's latency spectrum
//! is a known function of its own per-replica load and its callees' spectra.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use augur_operators::{EdgeFeatures, QosVerdict, Resource, ServiceFeatures, WindowSnapshot};

use super::assignment::AssignmentSettings;
use super::debugging::find_fault;
use super::detector::{Fluxion, FluxionConfig};
use super::features::{P90, P99, SPECTRUM, Sample, ServiceSample};
use super::graph::InferenceGraph;
use super::what_if::what_if;

/// Spread of the quantiles around the median.
const SPREAD: [f32; SPECTRUM] = [1.0, 1.2, 1.5, 1.8, 2.5];

/// front → logic → {db, cache}. `db_cost` scales the database's service time (a
/// replacement changes it).
struct System {
    db_cost: f32,
    /// Whether logic still calls the cache (a removal takes it out of the graph).
    cache: bool,
    /// A proxy added between logic and db, with this service time (ms).
    proxy_ms: Option<f32>,
}

impl System {
    fn sample(&self, rng: &mut Xoshiro256PlusPlus, replicas: &BTreeMap<&str, f32>) -> Sample {
        let rate: f32 = rng.random_range(50.0..300.0);
        let mut draws = Xoshiro256PlusPlus::seed_from_u64(rng.random());
        let mut services = BTreeMap::new();
        // Each service has its own interference level (seen as its CPU state), independent
        // of the load, so a caller's latency can only be explained through its callees'.
        let mut own = |name: &str, rate: f32| {
            let r = replicas.get(name).copied().unwrap_or(1.0);
            let u = rate / r / 100.0;
            let k: f32 = draws.random_range(0.0..1.0);
            ([rate, r, rate / r, k, 0.4 * u], u * (1.0 + k))
        };
        let noise = |rng: &mut Xoshiro256PlusPlus| 1.0 + rng.random_range(-0.02f32..0.02);
        let spectrum =
            |name: &str, base: f32, children: &[[f32; SPECTRUM]], rng: &mut Xoshiro256PlusPlus| {
                let mut l = [0.0f32; SPECTRUM];
                for q in 0..SPECTRUM {
                    l[q] =
                        base * SPREAD[q] * noise(rng) + children.iter().map(|c| c[q]).sum::<f32>();
                }
                let _ = name;
                l
            };
        let (db_own, u) = own("db", rate * 0.6);
        let (cache_own, uc) = own("cache", rate);
        let (logic_own, ul) = own("logic", rate);
        let (front_own, uf) = own("front", rate);
        let db = spectrum("db", self.db_cost * (2.0 + 3.0 * u * u), &[], rng);
        let cache = spectrum("cache", 0.5 + 0.5 * uc, &[], rng);
        let proxy = self.proxy_ms.map(|ms| {
            (
                own("proxy", rate * 0.6).0,
                spectrum("proxy", ms, &[db], rng),
            )
        });
        let to_db = proxy.map_or(db, |(_, latency)| latency);
        let children = if self.cache {
            vec![to_db, cache]
        } else {
            vec![to_db]
        };
        let logic = spectrum("logic", 1.0 + 2.0 * ul, &children, rng);
        let front = spectrum("front", 0.5 + 0.5 * uf, &[logic], rng);
        let proxy_own = proxy.map_or([0.0; 5], |(own, _)| own);
        for (name, own, latency) in [
            ("db", db_own, db),
            ("cache", cache_own, cache),
            ("logic", logic_own, logic),
            ("front", front_own, front),
            ("proxy", proxy_own, to_db),
        ] {
            if (name == "cache" && !self.cache) || (name == "proxy" && proxy.is_none()) {
                continue;
            }
            services.insert(
                name.to_string(),
                ServiceSample {
                    own,
                    latency,
                    active: true,
                    version: None,
                },
            );
        }
        let mut callees = BTreeMap::new();
        callees.insert("front".to_string(), vec!["logic".to_string()]);
        let to_db = if self.proxy_ms.is_some() {
            callees.insert("proxy".to_string(), vec!["db".to_string()]);
            "proxy"
        } else {
            "db"
        };
        let logic_calls = if self.cache {
            vec!["cache".to_string(), to_db.to_string()]
        } else {
            vec![to_db.to_string()]
        };
        callees.insert("logic".to_string(), logic_calls);
        Sample {
            window_end: 0,
            services,
            callees,
            entry: Some(("front".to_string(), front)),
            slo: Some((0.99, 30.0)),
        }
    }

    fn samples(&self, n: usize, seed: u64, replicas: &BTreeMap<&str, f32>) -> Vec<Sample> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n).map(|_| self.sample(&mut rng, replicas)).collect()
    }
}

fn replicas(db: f32) -> BTreeMap<&'static str, f32> {
    [("front", 2.0), ("logic", 1.0), ("cache", 1.0), ("db", db)]
        .into_iter()
        .collect()
}

fn e2e_mae(graph: &InferenceGraph, samples: &[Sample], q: usize) -> f64 {
    let pred = graph.predict_batch(samples);
    samples
        .iter()
        .zip(&pred)
        .map(|(s, p)| (p["front"][q] - s.e2e("front").unwrap()[q]).abs() as f64)
        .sum::<f64>()
        / samples.len() as f64
}

fn trained() -> (System, InferenceGraph) {
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let system = System {
        db_cost: 1.0,
        cache: true,
        proxy_ms: None,
    };
    // Train over db replica counts 1 and 2, so replicas are an input it has seen vary.
    let mut train = system.samples(150, 1, &replicas(1.0));
    train.extend(system.samples(150, 2, &replicas(2.0)));
    let graph = InferenceGraph::fit(&train, "front", AssignmentSettings::default());
    (system, graph)
}

#[test]
fn the_graph_learns_a_known_system_and_answers_what_if() {
    let _torch = crate::torch_test_lock();
    let (system, graph) = trained();
    let test = system.samples(100, 99, &replicas(1.0));
    let mean_p90: f64 = test
        .iter()
        .map(|s| s.e2e("front").unwrap()[P90] as f64)
        .sum::<f64>()
        / test.len() as f64;
    let mae = e2e_mae(&graph, &test, P90);
    assert!(
        mae < 0.05 * mean_p90,
        "p90 MAE {mae:.3} ms of mean {mean_p90:.2} ms"
    );
    let mae99 = e2e_mae(&graph, &test, P99);
    assert!(mae99 < 0.08 * mean_p90 * 2.5 / 1.5, "p99 MAE {mae99:.3}");
    // The database is the load-sensitive service: a second replica must lower p99 at high load.
    let mut busy = test.clone();
    busy.sort_by(|a, b| b.services["db"].own[0].total_cmp(&a.services["db"].own[0]));
    let answer = what_if(&graph, &busy[0], "db", 1).unwrap();
    assert!(
        answer.p99_after_ms < answer.p99_now_ms - 1.0,
        "what-if {answer:?}"
    );
}

#[test]
fn a_replacement_refits_only_its_vertex_and_restores_accuracy() {
    let _torch = crate::torch_test_lock();
    let (system, mut graph) = trained();
    let before = graph.fits();
    // The database is replaced by a slower version; 20 samples after the change.
    let replaced = System {
        db_cost: 1.6,
        cache: true,
        proxy_ms: None,
    };
    let recent = replaced.samples(20, 5, &replicas(1.0));
    let test = replaced.samples(100, 6, &replicas(1.0));
    let stale = e2e_mae(&graph, &test, P90);
    // The dependency graph didn't change: no vertex needs new inputs.
    assert!(graph.sync_topology(&recent[0]).is_empty());
    graph.replace("db", &recent);
    let after = graph.fits();
    for (service, n) in &after {
        let expected = before[service] + u64::from(service == "db");
        assert_eq!(*n, expected, "{service} refitted {n} times");
    }
    let fresh = e2e_mae(&graph, &test, P90);
    assert!(
        fresh < 0.5 * stale,
        "MAE {stale:.3} before the refit, {fresh:.3} after"
    );
    let _ = system;
    // A scale-out of the database, likewise, touches only the database's vertex.
    let scaled = replaced.samples(20, 8, &replicas(3.0));
    graph.scale("db", &scaled);
    assert_eq!(graph.fits()["db"], before["db"] + 2);
    assert_eq!(graph.fits()["logic"], before["logic"]);
}

#[test]
fn graph_debugging_finds_a_corrupted_assignment() {
    let _torch = crate::torch_test_lock();
    let (system, mut graph) = trained();
    // Corrupt the logic service's assignments: train them on targets with a load-dependent
    // error, so its predictions (and the entry's, downstream of it) go wrong together.
    let mut corrupt = system.samples(200, 11, &replicas(1.0));
    for s in &mut corrupt {
        let logic = s.services.get_mut("logic").unwrap();
        let extra = 8.0 * logic.own[2] / 100.0;
        for l in &mut logic.latency {
            *l += extra;
        }
    }
    graph.fit_vertex("logic", &corrupt, super::assignment::Start::Fresh, true);
    let test = system.samples(100, 12, &replicas(1.0));
    let diagnosis = find_fault(&graph, &test, P90, 0.25).unwrap();
    assert_eq!(diagnosis.service, "logic", "{diagnosis:?}");
    // Retraining only that vertex on clean data fixes the forecast.
    let broken = e2e_mae(&graph, &test, P90);
    let clean = system.samples(200, 13, &replicas(1.0));
    graph.fit_vertex("logic", &clean, super::assignment::Start::Fresh, true);
    let fixed = e2e_mae(&graph, &test, P90);
    assert!(fixed < 0.3 * broken, "{broken:.3} → {fixed:.3}");
}

/// A window as the pipeline would close it over the system's sample (1 s windows).
fn snapshot(s: &Sample, window_end: u64, versions: &BTreeMap<&str, &str>) -> WindowSnapshot {
    let services = s
        .services
        .iter()
        .map(|(name, o)| {
            let mut usage = [[0.0; 4]; 5];
            usage[Resource::Cpu.index()][1] = f64::from(o.own[3]);
            usage[Resource::Cpu.index()][3] = f64::from(o.own[4]);
            ServiceFeatures {
                window_end,
                service: name.clone(),
                requests: o.own[0].round() as u64,
                latency_ms: o.latency.map(f64::from),
                replicas: o.own[1] as u32,
                usage,
                version: versions.get(name.as_str()).map(|v| v.to_string()),
                ..Default::default()
            }
        })
        .collect();
    let edges = s
        .callees
        .iter()
        .flat_map(|(caller, callees)| {
            callees.iter().map(move |callee| EdgeFeatures {
                window_end,
                caller: caller.clone(),
                callee: callee.clone(),
                calls: 1,
                errors: 0,
                client_ms: [0.0; 5],
                server_ms: [0.0; 5],
                gap_ms: [0.0; 5],
                parallel: Default::default(),
                client_total_ms: 0.0,
                gap_total_ms: 0.0,
                gap_calls: 0,
                gap_over: Default::default(),
            })
        })
        .collect();
    let (entry, e2e) = s.entry.clone().unwrap();
    WindowSnapshot {
        window_end,
        window_ms: 1000,
        services,
        edges,
        qos: vec![QosVerdict {
            window_end,
            entry,
            requests: 100,
            errors: 0,
            latency_ms: e2e.map(f64::from),
            quantile: 0.99,
            slo_ms: 1000.0,
            measured_ms: f64::from(e2e[P99]),
            violated: false,
        }],
        // The dependency graph lists every service with a call (retirement is immediate here).
        order: s
            .callees
            .iter()
            .flat_map(|(caller, callees)| std::iter::once(caller).chain(callees))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        topology_changed: false,
        logs: Vec::new(),
    }
}

/// The detector learning from the stream alone (no checkpoint; its graph trained at window
/// 150), with graph debugging off so that only deployment events refit vertices.
fn stream_detector() -> Fluxion {
    let config = FluxionConfig {
        models_dir: std::path::PathBuf::new(),
        min_train_windows: 150,
        error_growth: f64::INFINITY,
        ..FluxionConfig::default()
    };
    Fluxion::new(config, 1000).unwrap()
}

/// Feeds the detector the system's windows `windows` (window t ends at t s; the samples
/// are seeded by the first), each service of `versions` stamped with its version.
fn feed(
    detector: &mut Fluxion,
    system: &System,
    windows: std::ops::Range<u64>,
    versions: &BTreeMap<&str, &str>,
) {
    feed_scaled(detector, system, windows, versions, 1.0);
}

/// [`feed`] with `db_replicas` replicas of the database.
fn feed_scaled(
    detector: &mut Fluxion,
    system: &System,
    windows: std::ops::Range<u64>,
    versions: &BTreeMap<&str, &str>,
    db_replicas: f32,
) {
    let samples = system.samples(
        windows.clone().count(),
        windows.start,
        &replicas(db_replicas),
    );
    for (t, s) in windows.zip(samples) {
        detector.step(&snapshot(&s, 1000 * t, versions));
    }
}

/// Every vertex of `after` was fitted `refits` more times than in `before` if it is one of
/// `changed`, else as often.
fn assert_refitted(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    changed: &[&str],
    refits: u64,
) {
    for (service, n) in after {
        let extra = if changed.contains(&service.as_str()) {
            refits
        } else {
            0
        };
        assert_eq!(*n, before[service] + extra, "{service}: {n} fits");
    }
}

/// The detector, from the stream: a new `service.version` of the database makes it refit
/// the database's vertex (its old models dropped) and its callers' (whose input moved), and
/// no other — without a version it has no deployment event to act on.
#[test]
fn a_new_version_refits_its_vertex_and_its_callers_only() {
    let _torch = crate::torch_test_lock();
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let run = |versioned: bool| {
        let mut detector = stream_detector();
        let before = System {
            db_cost: 1.0,
            cache: true,
            proxy_ms: None,
        };
        let after = System {
            db_cost: 1.6,
            cache: true,
            proxy_ms: None,
        };
        let v = |db: &'static str| -> BTreeMap<&str, &str> {
            if versioned {
                [
                    ("db", db),
                    ("logic", "v1"),
                    ("cache", "v1"),
                    ("front", "v1"),
                ]
                .into()
            } else {
                BTreeMap::new()
            }
        };
        feed(&mut detector, &before, 1..152, &v("v1"));
        let fitted = detector.graph().unwrap().fits();
        // Sixty windows of the new version: refits at 15, 30 and 60 windows.
        feed(&mut detector, &after, 152..212, &v("v2"));
        let graph = detector.graph().unwrap();
        let test = after.samples(100, 33, &replicas(1.0));
        (
            fitted,
            graph.fits(),
            e2e_mae(graph, &test, P90),
            graph.callers_of("db"),
        )
    };
    let (fitted, refitted, mae, callers) = run(true);
    assert_eq!(callers, ["logic"]);
    assert_refitted(&fitted, &refitted, &["db", "logic"], 3);
    let (_, unchanged, stale, _) = run(false);
    assert_eq!(unchanged, fitted);
    assert!(
        mae < 0.5 * stale,
        "MAE {stale:.3} without versions, {mae:.3} with"
    );
}

/// The detector, from the stream: a scale-out of the database refits the database's vertex
/// and its caller's (logic's input from it now moves apart from the load), and no other.
#[test]
fn a_scale_out_refits_its_vertex_and_its_callers_only() {
    let _torch = crate::torch_test_lock();
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let mut detector = stream_detector();
    let system = System {
        db_cost: 1.0,
        cache: true,
        proxy_ms: None,
    };
    let none = BTreeMap::new();
    feed(&mut detector, &system, 1..152, &none);
    let fitted = detector.graph().unwrap().fits();
    // Sixty windows with three database replicas: refits at 15, 30 and 60 windows.
    feed_scaled(&mut detector, &system, 152..212, &none, 3.0);
    assert_refitted(
        &fitted,
        &detector.graph().unwrap().fits(),
        &["db", "logic"],
        3,
    );
}

/// The detector, from the stream: when the dependency graph stops listing the cache (logic
/// no longer calls it), the cache's vertex goes and only logic's vertex is refitted.
#[test]
fn a_removed_service_leaves_the_graph_and_its_caller_refits() {
    let _torch = crate::torch_test_lock();
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let mut detector = stream_detector();
    let with_cache = System {
        db_cost: 1.0,
        cache: true,
        proxy_ms: None,
    };
    let without = System {
        db_cost: 1.0,
        cache: false,
        proxy_ms: None,
    };
    let none = BTreeMap::new();
    feed(&mut detector, &with_cache, 1..152, &none);
    let fitted = detector.graph().unwrap().fits();
    assert!(fitted.contains_key("cache"));
    feed(&mut detector, &without, 152..212, &none);
    let graph = detector.graph().unwrap();
    let refitted = graph.fits();
    assert!(!refitted.contains_key("cache"), "{refitted:?}");
    assert_refitted(&fitted, &refitted, &["logic"], 3);
    assert_eq!(
        graph.vertex("logic").unwrap().callees,
        vec!["db".to_string()]
    );
    let test = without.samples(100, 41, &replicas(1.0));
    let mean_p90: f64 = test
        .iter()
        .map(|s| f64::from(s.e2e("front").unwrap()[P90]))
        .sum::<f64>()
        / test.len() as f64;
    let mae = e2e_mae(graph, &test, P90);
    assert!(
        mae < 0.05 * mean_p90,
        "p90 MAE {mae:.3} ms of mean {mean_p90:.2} ms"
    );
}

/// A new callee (sorted before the others) joins a vertex's inputs at its next refit; until
/// then the vertex's models read the callees they were fitted with, in their order.
#[test]
fn a_new_callee_leaves_the_predictions_alone_until_the_refit() {
    let _torch = crate::torch_test_lock();
    let (system, mut graph) = trained();
    let test = system.samples(50, 51, &replicas(1.0));
    let before = graph.predict_batch(&test);
    let mut with_new = test[0].clone();
    with_new
        .callees
        .get_mut("logic")
        .unwrap()
        .insert(0, "auth".to_string());
    with_new.services.insert(
        "auth".to_string(),
        ServiceSample {
            own: [100.0, 1.0, 100.0, 0.1, 0.1],
            latency: [1.0; SPECTRUM],
            active: true,
            version: None,
        },
    );
    let changed = graph.sync_topology(&with_new);
    assert_eq!(changed, vec!["auth".to_string(), "logic".to_string()]);
    let after = graph.predict_batch(&test);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b["front"], a["front"]);
    }
}

/// The detector, from the stream: a proxy goes between logic and db. The proxy's vertex is
/// new and logic's has a new callee, so both refit (15, 30, 60 windows). Front's is
/// refitted too only when logic's latency now lies far outside what front was fitted on
/// (a slow proxy), not when it barely moved (a fast one); db's and cache's never.
#[test]
fn a_new_callee_refits_its_caller_and_far_beyond_their_range_the_callers_caller() {
    let _torch = crate::torch_test_lock();
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let run = |proxy_ms: f32| {
        let mut detector = stream_detector();
        let before = System {
            db_cost: 1.0,
            cache: true,
            proxy_ms: None,
        };
        let after = System {
            db_cost: 1.0,
            cache: true,
            proxy_ms: Some(proxy_ms),
        };
        let none = BTreeMap::new();
        feed(&mut detector, &before, 1..152, &none);
        let fitted = detector.graph().unwrap().fits();
        feed(&mut detector, &after, 152..212, &none);
        let graph = detector.graph().unwrap();
        let shift = graph.input_shift("front", "logic", &after.samples(15, 61, &replicas(1.0)));
        (fitted, graph.fits(), shift)
    };
    for (proxy_ms, front_refits) in [(40.0, true), (0.05, false)] {
        let (fitted, refitted, shift) = run(proxy_ms);
        assert_eq!(refitted.get("proxy"), Some(&3), "{refitted:?}");
        for service in ["front", "logic", "db", "cache"] {
            let changed = service == "logic" || (service == "front" && front_refits);
            let expected = fitted[service] + if changed { 3 } else { 0 };
            assert_eq!(
                refitted[service], expected,
                "proxy {proxy_ms} ms, front's input shift {shift:.1} sd: {service}"
            );
        }
    }
}

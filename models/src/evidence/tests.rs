//! Diagnoses of windows where the answer is known: a chain `a → b → c`, one request per
//! second at `a` (low traffic: every window's mean is one request), a fault from `AT` on.

use augur_operators::{
    END_OF_TRACE, EdgeFeatures, LogFeatures, ServiceFeatures, TemplateCount, TemplateTransition,
    WindowSnapshot,
};

use super::*;

const AT: u64 = 100_000;
const CHAIN: [&str; 3] = ["a", "b", "c"];

/// A fault from `AT` on.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// The service's own time × 3.
    Slow(usize),
    /// +20 ms on every call the service takes part in.
    Delay(usize),
    /// `a` stops calling `b` in half of its requests (and so `b` and `c` get half the load).
    SkipsCalls,
    /// The service logs a new error line in a third of its requests.
    ErrorLogs(usize),
    /// In half of its requests the service stops after its first log line (an exception
    /// thrown between the two lines every request writes).
    BrokenFlow(usize),
    /// One request of the service, in the window ending 5 s after `AT`, takes 100 times its
    /// own time; nothing else changes.
    OneSlowRequest(usize),
    /// The service never writes its second line again.
    StopsSecondLine(usize),
    /// The service's own time × 1.05.
    SlightlySlow(usize),
    /// `b` logs an error line in every request, and `a` (its caller) spends 500 ms more
    /// of its own time per request (handling the failure: retries, fallbacks).
    FailingCalleeBusyCaller,
    /// `a` logs a new error line in a third of its requests; `b`'s own time × 1.5.
    FailingCallerSlowerCallee,
    /// `c` logs an error line in every request, and `a` (its caller's caller) spends 500 ms
    /// more of its own time per request.
    FailingLeafBusyEntry,
    /// `c`'s own time × 3, and `a` (its caller's caller) spends 500 ms more of its own time
    /// per request (its requests queue while its threads wait on `b`, which waits on `c`).
    SlowLeafQueuedEntry,
}

struct Lcg(u64);
impl Lcg {
    /// Uniform in [1 - s, 1 + s].
    fn noise(&mut self, s: f64) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        1.0 + s * (((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
    }
}

/// Per gap level, whether `calls` calls of gap `gap_ms` each reach it.
fn over(gap_ms: f64, calls: u64) -> [u64; augur_operators::GAP_LEVELS_MS.len()] {
    augur_operators::GAP_LEVELS_MS.map(|level| if gap_ms >= level { calls } else { 0 })
}

fn window(end: u64, fault: Fault, rng: &mut Lcg) -> WindowSnapshot {
    let on = end > AT;
    let own_ms = [5.0, 8.0, 3.0];
    let mut own = [0.0; 3];
    let mut gap = [0.0; 3]; // gap[i]: the call into CHAIN[i]
    for i in 0..3 {
        own[i] = own_ms[i] * rng.noise(0.3);
        gap[i] = 1.0 * rng.noise(0.3);
        match fault {
            Fault::Slow(s) if on && s == i => own[i] *= 3.0,
            Fault::SlightlySlow(s) if on && s == i => own[i] *= 1.05,
            Fault::FailingCalleeBusyCaller | Fault::FailingLeafBusyEntry if on && i == 0 => {
                own[i] += 500.0
            }
            Fault::FailingCallerSlowerCallee if on && i == 1 => own[i] *= 1.5,
            Fault::SlowLeafQueuedEntry if on && i == 2 => own[i] *= 3.0,
            Fault::SlowLeafQueuedEntry if on && i == 0 => own[i] += 500.0,
            Fault::OneSlowRequest(s) if end == AT + 5000 && s == i => own[i] *= 100.0,
            _ => {}
        }
    }
    for (i, g) in gap.iter_mut().enumerate().skip(1) {
        if let Fault::Delay(d) = fault
            && on
            && (d == i || d == i - 1)
        {
            *g += 20.0;
        }
    }
    let calls_b = if matches!(fault, Fault::SkipsCalls) && on && end % 2000 == 0 {
        0
    } else {
        1
    };
    // Back end first: latency = own + client latency of the call made.
    let lat_c = own[2];
    let client_c = lat_c + gap[2];
    let lat_b = own[1] + client_c;
    let client_b = lat_b + gap[1];
    let lat_a = own[0] + calls_b as f64 * client_b;
    let requests = [1, calls_b, calls_b];
    let lat = [lat_a, lat_b, lat_c];
    let services = (0..3)
        .filter(|&i| requests[i] > 0)
        .map(|i| ServiceFeatures {
            window_end: end,
            service: CHAIN[i].into(),
            requests: requests[i],
            latency_ms: [lat[i]; 5],
            outstanding: lat[i] * requests[i] as f64 / 1000.0,
            replicas: 1,
            ..Default::default()
        })
        .collect();
    let edge = |i: usize, client: f64| EdgeFeatures {
        window_end: end,
        caller: CHAIN[i - 1].into(),
        callee: CHAIN[i].into(),
        calls: 1,
        errors: 0,
        client_ms: [client; 5],
        server_ms: [lat[i]; 5],
        gap_ms: [gap[i]; 5],
        parallel: Default::default(),
        client_total_ms: client,
        gap_total_ms: gap[i],
        gap_calls: 1,
        gap_over: over(gap[i], 1),
    };
    let edges = if calls_b > 0 {
        vec![edge(1, client_b), edge(2, client_c)]
    } else {
        Vec::new()
    };
    // Every service logs two info lines per request, `start` then `handled`, in one trace;
    // with `ErrorLogs`, an error line too in every third window; with `BrokenFlow`, only
    // `start` in every other window.
    let logs = (0..3)
        .filter(|&i| requests[i] > 0)
        .map(|i| {
            let broken = (matches!(fault, Fault::BrokenFlow(f) if f == i) && on && end % 2000 == 0)
                || (matches!(fault, Fault::StopsSecondLine(f) if f == i) && on);
            let mut templates = vec![TemplateCount {
                id: 3,
                template: format!("INFO {} start <*>", CHAIN[i]),
                count: 1,
            }];
            let transitions = if broken {
                vec![TemplateTransition {
                    from: 3,
                    to: END_OF_TRACE,
                    count: 1,
                }]
            } else {
                templates.push(TemplateCount {
                    id: 1,
                    template: format!("INFO {} handled <*>", CHAIN[i]),
                    count: 1,
                });
                vec![
                    TemplateTransition {
                        from: 1,
                        to: END_OF_TRACE,
                        count: 1,
                    },
                    TemplateTransition {
                        from: 3,
                        to: 1,
                        count: 1,
                    },
                ]
            };
            templates.sort_by_key(|t| t.id);
            let failing = (matches!(fault, Fault::ErrorLogs(f) if f == i) && on && end % 3000 == 0)
                || (matches!(fault, Fault::FailingCalleeBusyCaller) && on && i == 1)
                || (matches!(fault, Fault::FailingLeafBusyEntry) && on && i == 2)
                || (matches!(fault, Fault::FailingCallerSlowerCallee)
                    && on
                    && i == 0
                    && end % 3000 == 0);
            if failing {
                templates.push(TemplateCount {
                    id: 2,
                    template: format!("ERROR {} no such record <*>", CHAIN[i]),
                    count: 1,
                });
            }
            LogFeatures {
                window_end: end,
                service: CHAIN[i].into(),
                records: templates.len() as u64,
                errors: u64::from(failing),
                warnings: 0,
                templates,
                transitions,
            }
        })
        .collect();
    WindowSnapshot {
        window_end: end,
        window_ms: 1000,
        services,
        edges,
        logs,
        ..WindowSnapshot::default()
    }
}

fn run(fault: Fault, seed: u64) -> Diagnosis {
    let mut rng = Lcg(seed);
    let windows: Vec<_> = (1..=160)
        .map(|k| window(k * 1000, fault, &mut rng))
        .collect();
    diagnose(&windows, AT, &EvidenceParams::default())
}

fn top(d: &Diagnosis) -> (&str, &str) {
    d.culprits
        .first()
        .map(|c| (c.service.as_str(), c.resource.as_str()))
        .unwrap_or(("-", "-"))
}

#[test]
fn a_slow_service_is_named_not_its_callers() {
    for seed in 1..=5 {
        for (i, name) in CHAIN.iter().enumerate() {
            let d = run(Fault::Slow(i), seed);
            assert_eq!(top(&d), (*name, "cpu"), "seed {seed}: {d:#?}");
            assert_eq!((d.windows_before, d.windows_after), (100, 60));
        }
    }
}

/// Own time taken from span trees, split in two operations: `read` 1 ms and `write` 2 ms
/// per request, `write` of `slow` (if any) 20 ms more after the moment.
fn with_operations(windows: &mut [WindowSnapshot], slow: Option<&str>) {
    for w in windows {
        let after = w.window_end > AT;
        for s in &mut w.services {
            let n = s.requests as f64;
            let extra = if after && slow == Some(s.service.as_str()) {
                20.0
            } else {
                0.0
            };
            s.operations = vec![
                augur_operators::OperationTime {
                    name: "read".into(),
                    own_ms: n,
                },
                augur_operators::OperationTime {
                    name: "write".into(),
                    own_ms: (2.0 + extra) * n,
                },
            ];
            s.own_ms = Some((3.0 + extra) * n);
        }
    }
}

/// A service whose own time rose is named with the operation it rose in, per request of
/// the service; a normal that knew no operations (learned before they were kept) does not
/// make an operation look new.
#[test]
fn the_operation_whose_own_time_rose_is_named() {
    for seed in 1..=3 {
        let mut all = windows(1, 160, Fault::None, seed);
        with_operations(&mut all, Some("b"));
        let d = diagnose(&all, AT, &EvidenceParams::default());
        assert_eq!(top(&d), ("b", "cpu"), "seed {seed}: {d:#?}");
        let op = d.culprits[0].operation.as_ref().expect("an operation");
        assert_eq!(op.name, "write");
        assert!((op.before - 2.0).abs() < 1e-9, "{op:?}");
        assert!((op.after - 22.0).abs() < 1e-9, "{op:?}");

        let mut old = windows(1, 90, Fault::None, seed + 10);
        with_operations(&mut old, None);
        for w in &mut old {
            for s in &mut w.services {
                s.operations.clear();
                s.own_ms = None;
            }
        }
        // The detector's alert names it too.
        use augur_operators::Detector;
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        let detection = all
            .iter()
            .flat_map(|w| det.observe(w))
            .next()
            .expect("a detection");
        assert_eq!(detection.culprits[0].service, "b");
        assert_eq!(detection.culprits[0].operation.as_deref(), Some("write"));
        assert!(detection.summary.contains("most in write"), "{detection:?}");

        let normal = NormalProfile::learn("old", &old, &BTreeMap::new()).expect("learned");
        let incident: Vec<_> = all
            .into_iter()
            .filter(|w| w.window_end > AT - 10_000)
            .collect();
        let d = diagnose_with_normal(&incident, AT, &EvidenceParams::default(), Some(&normal));
        let op = d.culprits[0].operation.as_ref().expect("an operation");
        assert_eq!((op.name.as_str(), op.before), ("write", 2.0), "{op:?}");
    }
}

#[test]
fn a_network_delay_is_named_at_the_service_whose_edges_all_moved() {
    for seed in 1..=5 {
        for (i, name) in CHAIN.iter().enumerate() {
            let d = run(Fault::Delay(i), seed);
            assert_eq!(top(&d), (*name, "network"), "seed {seed}: {d:#?}");
        }
    }
}

#[test]
fn one_slow_request_is_not_a_move() {
    for seed in 1..=5 {
        for i in 0..CHAIN.len() {
            let d = run(Fault::OneSlowRequest(i), seed);
            assert!(d.culprits.is_empty() || d.weak, "seed {seed}: {d:#?}");
        }
    }
}

/// A line every request wrote that is no longer written is as large a move as a new line
/// in every request (rate 1 -> 0 against 0 -> 1, both scored against the smaller rate,
/// floored), not at most 1 as a fall relative to the normal rate would be.
#[test]
fn a_line_no_longer_written_scores_as_a_new_one() {
    let params = EvidenceParams {
        signals: vec![Signal::LogTemplate],
        ..EvidenceParams::default()
    };
    for seed in 1..=5 {
        let mut rng = Lcg(seed);
        let windows: Vec<_> = (1..=160)
            .map(|k| window(k * 1000, Fault::StopsSecondLine(1), &mut rng))
            .collect();
        let d = diagnose(&windows, AT, &params);
        assert_eq!(top(&d), ("b", "errors"), "seed {seed}: {d:#?}");
        let ev = &d.culprits[0].evidence[0];
        assert!(
            (ev.before, ev.after) == (1.0, 0.0) && ev.score > 10.0,
            "{ev:?}"
        );
    }
}

/// Telemetry missing for 90 s after the moment asked about: the first minute after the gap
/// is examined, and the diagnosis says where it started.
#[test]
fn a_gap_after_the_moment_moves_the_examined_range_to_the_first_data() {
    let mut rng = Lcg(3);
    let windows: Vec<_> = (1..=250)
        .filter(|k| !(101..=190).contains(k))
        .map(|k| window(k * 1000, Fault::Slow(1), &mut rng))
        .collect();
    let d = diagnose(&windows, AT, &EvidenceParams::default());
    assert_eq!(d.examined_from, Some(AT + 90_000), "{d:#?}");
    assert_eq!(top(&d), ("b", "cpu"), "{d:#?}");
    assert_eq!(d.windows_after, 60);
    // Data within the minute: the range starts at the moment.
    assert_eq!(run(Fault::Slow(1), 3).examined_from, None);
}

/// A failing callee explains its caller's other moves: `b` fails every request and `a`
/// spends longer handling it; `b` is named first though `a`'s self time moved more.
#[test]
fn a_failing_callee_comes_before_its_busier_caller() {
    for seed in 1..=5 {
        let d = run(Fault::FailingCalleeBusyCaller, seed);
        assert_eq!(top(&d), ("b", "errors"), "seed {seed}: {d:#?}");
        assert!(
            d.culprits.iter().any(|c| c.service == "a"),
            "seed {seed}: {d:#?}"
        );
    }
}

/// Failures travel up whole chains: `c` fails and `a`, two calls up, is busier (500 ms
/// more per request, far the larger move): `c` comes first.
#[test]
fn a_failing_service_comes_before_its_callers_callers() {
    for seed in 1..=3 {
        let d = run(Fault::FailingLeafBusyEntry, seed);
        assert_eq!(top(&d), ("c", "errors"), "seed {seed}: {d:?}");
    }
}

/// A slower callee does not explain a caller's new error line: `a` stays first.
/// Slowness travels up whole chains, as failures do: the entry's own time rose far more
/// than the slow leaf's (queueing while its calls wait), but its calls slowed because `b`'s
/// latency did, because `c`'s own time did; `b`'s own time did not move.
#[test]
fn a_slow_leaf_comes_before_its_queued_callers_caller() {
    for seed in 1..=5 {
        let d = run(Fault::SlowLeafQueuedEntry, seed);
        let order: Vec<&str> = d.culprits.iter().map(|c| c.service.as_str()).collect();
        assert_eq!(top(&d), ("c", "cpu"), "seed {seed}: {d:#?}");
        assert!(
            order.contains(&"a"),
            "the entry's own time moved: {order:?}"
        );
        assert!(!order.contains(&"b"), "{order:?}");
    }
}

#[test]
fn a_slower_callee_does_not_explain_its_callers_errors() {
    for seed in 1..=5 {
        let d = run(Fault::FailingCallerSlowerCallee, seed);
        assert_eq!(top(&d), ("a", "errors"), "seed {seed}: {d:#?}");
        assert!(
            d.culprits.iter().any(|c| c.service == "b"),
            "seed {seed}: {d:#?}"
        );
    }
}

#[test]
fn skipped_calls_are_named_at_the_caller() {
    for seed in 1..=5 {
        let d = run(Fault::SkipsCalls, seed);
        assert_eq!(top(&d), ("a", "errors"), "seed {seed}: {d:#?}");
        let ev = &d.culprits[0].evidence[0];
        assert_eq!(ev.signal, Signal::CallPattern);
        assert!(ev.z < 0.0, "fewer calls: {ev:?}");
    }
}

#[test]
fn a_new_error_line_is_named_at_the_service_that_logs_it() {
    for seed in 1..=5 {
        for (i, name) in CHAIN.iter().enumerate() {
            let d = run(Fault::ErrorLogs(i), seed);
            assert_eq!(top(&d), (*name, "errors"), "seed {seed}: {d:#?}");
            let signals: Vec<Signal> = d.culprits[0].evidence.iter().map(|e| e.signal).collect();
            assert!(signals.contains(&Signal::LogTemplate), "{signals:?}");
        }
    }
}

#[test]
fn a_broken_log_flow_is_named_at_the_service_that_logs_it() {
    for seed in 1..=5 {
        for (i, name) in CHAIN.iter().enumerate() {
            let d = run(Fault::BrokenFlow(i), seed);
            assert_eq!(top(&d), (*name, "errors"), "seed {seed}: {d:#?}");
            let flow = d.culprits[0]
                .evidence
                .iter()
                .find(|e| e.signal == Signal::LogFlow)
                .unwrap_or_else(|| panic!("no log flow evidence: {d:#?}"));
            assert!(flow.z < 0.0 && flow.before > 0.99, "{flow:?}");
            assert!(
                flow.on.as_deref().is_some_and(|o| o.contains("start")),
                "{flow:?}"
            );
        }
    }
}

/// Nothing passes the bar; what is listed below it is said to be weak.
#[test]
fn nothing_moved_names_nobody_with_evidence() {
    for seed in 1..=5 {
        let d = run(Fault::None, seed);
        assert!(d.culprits.is_empty() || d.weak, "seed {seed}: {d:#?}");
    }
}

/// A move too small for the bar (b's own time × 1.05, z between 1.5 and 3 over the minute
/// after) is still the answer, marked weak; a fault past the bar is not marked.
#[test]
fn a_move_below_the_bar_is_a_weak_answer() {
    let mut found = 0;
    for seed in 1..=10 {
        let d = run(Fault::SlightlySlow(1), seed);
        assert!(d.culprits.is_empty() || d.weak, "seed {seed}: {d:#?}");
        found += usize::from(top(&d) == ("b", "cpu"));
    }
    assert!(found >= 5, "b first in {found} of 10");
    assert!(!run(Fault::Slow(1), 1).weak);
}

/// The detector, window by window: nothing before the fault, then `root_cause` detections
/// naming the slowed service within the recent range, and the fault never becomes normal.
#[test]
fn the_detector_names_the_fault_soon_after_it_starts_and_not_before() {
    use augur_operators::{AlertKind, Detector};
    for seed in 1..=3 {
        let mut rng = Lcg(seed);
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        let mut first = None;
        let mut detected_windows = 0;
        for k in 1..=160u64 {
            let w = window(k * 1000, Fault::Slow(1), &mut rng);
            let out = det.observe(&w);
            if w.window_end <= AT {
                assert!(
                    out.is_empty(),
                    "seed {seed}: before the fault at {k}: {out:?}"
                );
            } else if let Some(d) = out.first() {
                assert_eq!(d.kind, AlertKind::RootCause);
                assert_eq!(d.culprits[0].service, "b", "seed {seed}: {d:?}");
                first.get_or_insert(w.window_end);
                detected_windows += 1;
            }
        }
        let first = first.expect("detected");
        assert!(first <= AT + 10_000, "seed {seed}: first at {first}");
        assert!(
            detected_windows >= 50,
            "seed {seed}: {detected_windows} windows"
        );
    }
}

/// `b`'s own time triples (8 → 24 ms, one call per request at `a`): had it stayed normal,
/// the entry `a` would be about 16 ms faster per request; the counterfactual says so, and
/// the entry's own rise is about as much.
#[test]
fn the_repair_of_a_slow_service_is_its_excess_time_at_the_entry() {
    for seed in 1..=3 {
        let d = run(Fault::Slow(1), seed);
        let b = d
            .culprits
            .iter()
            .find(|c| c.service == "b")
            .expect("b named");
        let saved = b.repair_ms.expect("a repair");
        assert!((12.0..=20.0).contains(&saved), "seed {seed}: {saved}");
        let (before, after) = d.entry_ms.expect("entry latency");
        assert!(
            ((after - before) - saved).abs() < 4.0,
            "seed {seed}: entry {before} -> {after}, repair {saved}"
        );
    }
}

/// The detector's detections over 160 windows with `fault` from `AT`, and the first
/// window that had one.
fn detect(
    config: EvidenceDetectorConfig,
    fault: Fault,
    seed: u64,
) -> (Vec<augur_operators::Detection>, Option<u64>) {
    detect_from(1, config, fault, seed)
}

/// [`detect`] over the windows from `from_s` on.
fn detect_from(
    from_s: u64,
    config: EvidenceDetectorConfig,
    fault: Fault,
    seed: u64,
) -> (Vec<augur_operators::Detection>, Option<u64>) {
    use augur_operators::Detector;
    let mut det = EvidenceDetector::new(config);
    let mut all = Vec::new();
    let mut first = None;
    for w in windows(from_s, 160, fault, seed) {
        let out = det.observe(&w);
        if !out.is_empty() {
            first.get_or_insert(w.window_end);
        }
        all.extend(out);
    }
    (all, first)
}

/// A normal learned from the chain's windows `from_s..=to_s` with `fault`.
fn learned(from_s: u64, to_s: u64, fault: Fault, seed: u64) -> NormalProfile {
    NormalProfile::learn(
        "chain",
        &windows(from_s, to_s, fault, seed),
        &BTreeMap::new(),
    )
    .expect("enough windows with requests")
}

/// The detector's default settings, judging against `normal` as well.
fn with_learned(normal: NormalProfile) -> EvidenceDetectorConfig {
    EvidenceDetectorConfig {
        learned: LearnedNormal(Some(std::sync::Arc::new(normal))),
        ..EvidenceDetectorConfig::default()
    }
}

/// With a learned normal in which `b` runs three times slower, `b` tripling is a swing the
/// application is known to make: the windows before alone would call it a fault, the
/// detector with the learned normal does not.
#[test]
fn the_detector_ignores_a_swing_the_learned_normal_knows() {
    for seed in 1..=3 {
        let slow_b_is_normal = learned(101, 190, Fault::Slow(1), seed + 10);
        let (alone, _) = detect(EvidenceDetectorConfig::default(), Fault::Slow(1), seed);
        assert!(!alone.is_empty(), "seed {seed}: without it, a detection");
        let (with, _) = detect(with_learned(slow_b_is_normal), Fault::Slow(1), seed);
        assert!(with.is_empty(), "seed {seed}: {with:?}");
    }
}

/// A job started 25 s before the fault has too few windows of its own for a normal; a
/// learned one stands in for them, and the fault is named within 10 s.
#[test]
fn a_learned_normal_stands_in_for_the_windows_a_new_job_has_not_seen() {
    for seed in 1..=3 {
        let start_s = AT / 1000 - 25;
        // Alone, it waits for 30 windows of its own past the recent range.
        let (_, without) = detect_from(
            start_s,
            EvidenceDetectorConfig::default(),
            Fault::Slow(1),
            seed,
        );
        assert!(
            without.is_none_or(|t| t >= AT + 20_000),
            "seed {seed}: at {without:?}"
        );
        let normal = learned(1, 90, Fault::None, seed + 10);
        let (with, first) = detect_from(start_s, with_learned(normal), Fault::Slow(1), seed);
        let first = first.expect("detected");
        assert!(
            (AT..=AT + 10_000).contains(&first),
            "seed {seed}: at {first}"
        );
        assert!(
            with.iter().all(|d| d.culprits[0].service == "b"),
            "seed {seed}: {with:?}"
        );
    }
}

/// A learned normal of the usual level keeps a real fault a detection, named as before
/// (within 15 s: the move has to last `pending_ms`, 5 s, too).
#[test]
fn the_detector_with_a_learned_normal_names_the_fault() {
    for seed in 1..=3 {
        let normal = learned(1, 90, Fault::None, seed + 10);
        let (detections, first) = detect(with_learned(normal), Fault::Slow(1), seed);
        let first = first.expect("detected");
        assert!(
            (AT..=AT + 15_000).contains(&first),
            "seed {seed}: at {first}"
        );
        assert!(
            detections.iter().all(|d| d.culprits[0].service == "b"),
            "seed {seed}: {detections:?}"
        );
    }
}

/// Windows of the chain from `from_s` to `to_s` (ends, seconds), with `fault`.
fn windows(from_s: u64, to_s: u64, fault: Fault, seed: u64) -> Vec<WindowSnapshot> {
    let mut rng = Lcg(seed);
    (from_s..=to_s)
        .map(|k| window(k * 1000, fault, &mut rng))
        .collect()
}

/// A replay that starts at the fault (nothing before it) has no normal of its own: a normal
/// learned from fault-free windows of another time gives the diagnosis one.
#[test]
fn a_learned_normal_stands_in_for_missing_minutes_before() {
    for seed in 1..=3 {
        let normal = learned(1, 90, Fault::None, seed + 10);
        assert_eq!(normal.services, ["a", "b", "c"]);
        let incident = windows(101, 160, Fault::Slow(1), seed);
        let alone = diagnose(&incident, AT, &EvidenceParams::default());
        assert!(
            alone.culprits.is_empty(),
            "no normal, no answer: {alone:#?}"
        );
        let d = diagnose_with_normal(&incident, AT, &EvidenceParams::default(), Some(&normal));
        assert_eq!(top(&d), ("b", "cpu"), "seed {seed}: {d:#?}");
        assert_eq!(d.windows_before, 90);
    }
}

#[test]
fn a_normal_needs_traces_and_enough_of_them() {
    let mut no_requests = windows(1, 60, Fault::None, 1);
    for w in &mut no_requests {
        for s in &mut w.services {
            s.requests = 0;
        }
    }
    assert!(matches!(
        NormalProfile::learn("x", &no_requests, &BTreeMap::new()),
        Err(NormalError::NoTraces { windows: 60 })
    ));
    assert!(matches!(
        NormalProfile::learn("x", &windows(1, 10, Fault::None, 1), &BTreeMap::new()),
        Err(NormalError::TooLittle {
            windows: 10,
            needed: MIN_NORMAL_WINDOWS
        })
    ));
}

/// Saved, found by the services it knows (not by another application's), read back equal.
#[test]
fn a_normal_is_found_by_its_services() {
    let dir = tempfile::tempdir().expect("temp dir");
    let miners = BTreeMap::from([("a".to_string(), vec![1u8, 2, 250])]);
    let normal =
        NormalProfile::learn("chain", &windows(1, 60, Fault::None, 1), &miners).expect("learned");
    let path = normal.save(dir.path()).expect("saved");
    assert_eq!(path, dir.path().join("normal-chain.json"));
    // Before anything is read: the only normal there is, or the one named, else the one
    // that knows the services of a first look at the input.
    let set = |names: &[&str]| -> std::collections::BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    };
    let guess_seeing = |name: Option<&str>, seen: &[&str]| {
        NormalProfile::guess(dir.path(), name, &set(seen))
            .expect("readable")
            .map(|(p, _)| p)
    };
    let guess = |name: Option<&str>| guess_seeing(name, &[]);
    assert_eq!(guess(None), Some(path.clone()));
    assert_eq!(guess(Some("missing")), Some(path.clone()));
    let mut other = windows(1, 60, Fault::None, 2);
    for w in &mut other {
        for s in &mut w.services {
            s.service = format!("x-{}", s.service);
        }
        for l in &mut w.logs {
            l.service = format!("x-{}", l.service);
        }
    }
    NormalProfile::learn("other", &other, &BTreeMap::new())
        .expect("learned")
        .save(dir.path())
        .expect("saved");
    assert_eq!(guess(None), None, "two to choose from");
    assert_eq!(
        guess(Some("other")),
        Some(dir.path().join("normal-other.json"))
    );
    assert_eq!(
        guess_seeing(None, &["x-a", "x-b"]),
        Some(dir.path().join("normal-other.json"))
    );
    assert_eq!(guess_seeing(None, &["a"]), Some(path.clone()));
    assert_eq!(guess_seeing(None, &["nobody"]), None);
    assert_eq!(
        guess_seeing(Some("chain"), &["x-a"]),
        Some(path.clone()),
        "the one named comes first"
    );
    let seen: std::collections::BTreeSet<String> =
        ["a", "b", "zz"].iter().map(|s| s.to_string()).collect();
    let (found, loaded, overlap) = NormalProfile::find(dir.path(), &seen)
        .expect("readable")
        .expect("one fits");
    assert_eq!(found, path);
    assert!((overlap - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(loaded.miner_snapshots(&found).expect("hex"), miners);
    assert_eq!(loaded.windows, 60);
    let unknown: std::collections::BTreeSet<String> =
        ["q", "r"].iter().map(|s| s.to_string()).collect();
    assert!(
        NormalProfile::find(dir.path(), &unknown)
            .expect("readable")
            .is_none()
    );
    std::fs::write(dir.path().join("normal-bad.json"), "{}").expect("write");
    assert!(NormalProfile::find(dir.path(), &seen).is_err());
}

/// Learned normals live apart from the model checkpoints: a directory holding only normals
/// where the checkpoints are looked for would hide the shipped ones from Seer and Sage.
#[test]
fn normals_are_not_written_where_checkpoints_are_read() {
    let params = EvidenceParams::default();
    assert_ne!(
        params.normal_dir,
        crate::sage::SageConfig::default().models_dir
    );
    assert_ne!(
        params.normal_dir,
        crate::seer::SeerConfig::default().models_dir
    );
}

/// `windows` with every service's CPU (median replica) at about `level` (± 30 %).
/// A window of the chain's CPU samples alone (an application without tracing, or a scrape
/// between requests): `b` at `b_cpu`, the others at 0.05, each ±30 %.
fn metric_window(end: u64, b_cpu: f64, rng: &mut Lcg) -> WindowSnapshot {
    let services = CHAIN
        .iter()
        .map(|name| {
            let cpu = if *name == "b" { b_cpu } else { 0.05 };
            let mut usage = [[0.0; 4]; 5];
            usage[augur_operators::Resource::Cpu.index()] = [cpu * rng.noise(0.3); 4];
            ServiceFeatures {
                window_end: end,
                service: (*name).into(),
                replicas: 1,
                usage,
                ..Default::default()
            }
        })
        .collect();
    WindowSnapshot {
        window_end: end,
        window_ms: 1000,
        services,
        ..WindowSnapshot::default()
    }
}

fn with_cpu(mut windows: Vec<WindowSnapshot>, level: f64, seed: u64) -> Vec<WindowSnapshot> {
    let mut rng = Lcg(seed);
    for w in &mut windows {
        for s in &mut w.services {
            s.usage[augur_operators::Resource::Cpu.index()] = [level * rng.noise(0.3); 4];
        }
    }
    windows
}

/// Metrics scraped once a minute and no traces give one window a minute, without requests.
/// The recent range fills by time, not by its count of windows, so the detector still
/// names the service whose CPU rose: at the second scrape after the rise, the first that
/// shows the move lasted `pending_ms`.
#[test]
fn metrics_scraped_once_a_minute_still_make_detections() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let normal = NormalProfile::learn(
            "chain",
            &with_cpu(windows(1, 90, Fault::None, seed + 10), 0.05, seed + 20),
            &BTreeMap::new(),
        )
        .expect("enough windows with requests");
        let mut det = EvidenceDetector::new(with_learned(normal));
        let mut rng = Lcg(seed);
        let mut first = None;
        for minute in 1..=10u64 {
            let end = minute * 60_000;
            let rise = minute > 5;
            let w = metric_window(end, if rise { 0.8 } else { 0.05 }, &mut rng);
            let out = det.observe(&w);
            if !rise {
                assert!(out.is_empty(), "seed {seed}: minute {minute}: {out:?}");
            } else if let Some(d) = out.first() {
                assert_eq!(d.culprits[0].service, "b", "seed {seed}: {d:?}");
                first.get_or_insert(minute);
            }
        }
        assert_eq!(first, Some(7), "seed {seed}");
    }
}

/// An application without tracing and no learned normal: metrics scraped every 5 s are its
/// only telemetry. The detector counts those windows toward the normal it needs (it would
/// otherwise wait forever for windows with requests) and names the service whose CPU rose.
#[test]
fn without_traces_the_detector_learns_from_metric_windows() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        let mut rng = Lcg(seed);
        let mut first = None;
        for scrape in 1..=120u64 {
            let end = scrape * 5_000;
            let rise = end > 400_000;
            let w = metric_window(end, if rise { 0.8 } else { 0.05 }, &mut rng);
            let out = det.observe(&w);
            if !rise {
                assert!(out.is_empty(), "seed {seed}: {end} ms: {out:?}");
            } else if let Some(d) = out.first() {
                assert_eq!(d.culprits[0].service, "b", "seed {seed}: {d:?}");
                assert_eq!(d.culprits[0].resource, Some(augur_operators::Resource::Cpu));
                first.get_or_insert(end);
            }
        }
        let first = first.unwrap_or_else(|| panic!("seed {seed}: no detection"));
        assert!(first <= 420_000, "seed {seed}: first at {first} ms");
    }
}

/// `b` three times slower for 6 s only: the detector finds the move in a run of fewer than
/// 20 consecutive windows (while the rise weighs enough in the recent 20 s). With
/// `pending_ms = 0` those are detections; with `pending_ms` longer than the run, none.
#[test]
fn a_move_shorter_than_pending_is_no_detection() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let slow = windows(1, 160, Fault::Slow(1), seed);
        let calm = windows(1, 160, Fault::None, seed);
        let burst = AT + 1000..=AT + 6000;
        let stream: Vec<WindowSnapshot> = calm
            .into_iter()
            .zip(slow)
            .map(|(c, s)| if burst.contains(&c.window_end) { s } else { c })
            .collect();
        let count = |pending_ms: u64| {
            let mut det = EvidenceDetector::new(EvidenceDetectorConfig {
                pending_ms,
                ..EvidenceDetectorConfig::default()
            });
            stream.iter().map(|w| det.observe(w).len()).sum::<usize>()
        };
        let at_once = count(0);
        assert!((1..20).contains(&at_once), "seed {seed}: {at_once} windows");
        assert_eq!(count(20_000), 0, "seed {seed}");
    }
}

/// `b` calls `c` once every 30 s, and one of those calls, 20 s after `AT`, spends 200 ms
/// more on the wire (a lost packet's retransmission): one delayed call is no service's
/// network, so the detector names nobody for it; `b` and `c` delayed on every call (+20 ms)
/// is a detection naming one of them.
#[test]
fn one_slow_call_on_a_quiet_edge_is_no_detection() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let quiet: Vec<WindowSnapshot> = windows(1, 160, Fault::None, seed)
            .into_iter()
            .map(|mut w| {
                let end = w.window_end;
                w.edges.retain(|e| e.callee != "c" || end % 30_000 == 0);
                for e in w.edges.iter_mut().filter(|e| e.callee == "c") {
                    if end == AT + 20_000 {
                        e.gap_total_ms += 200.0 * e.gap_calls as f64;
                        e.client_total_ms += 200.0 * e.calls as f64;
                        e.gap_over = over(200.0, e.gap_calls);
                    }
                }
                w
            })
            .collect();
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        let found: Vec<_> = quiet.iter().flat_map(|w| det.observe(w)).collect();
        assert!(found.is_empty(), "seed {seed}: {found:?}");
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        let delayed: Vec<_> = windows(1, 160, Fault::Delay(1), seed)
            .iter()
            .flat_map(|w| det.observe(w))
            .collect();
        assert!(
            delayed
                .first()
                .is_some_and(|d| ["b", "c"].contains(&d.culprits[0].service.as_str())),
            "seed {seed}: {delayed:?}"
        );
    }
}

/// `c` serves a request once every 30 s, and one of them, 20 s after `AT`, takes 100 times
/// its own time: one slow request of a quiet service is no detection. `b` three times
/// slower on every request is (`the_detector_names_the_fault_soon_after_it_starts_and_not_before`).
#[test]
fn one_slow_request_of_a_quiet_service_is_no_detection() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let quiet: Vec<WindowSnapshot> = windows(1, 160, Fault::None, seed)
            .into_iter()
            .map(|mut w| {
                let end = w.window_end;
                if end % 30_000 != 0 {
                    w.services.retain(|s| s.service != "c");
                    w.edges.retain(|e| e.callee != "c");
                    w.logs.retain(|l| l.service != "c");
                } else if end == AT + 20_000 {
                    for s in w.services.iter_mut().filter(|s| s.service == "c") {
                        s.outstanding *= 100.0;
                    }
                }
                w
            })
            .collect();
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        let found: Vec<_> = quiet.iter().flat_map(|w| det.observe(w)).collect();
        assert!(found.is_empty(), "seed {seed}: {found:?}");
    }
}

/// `w` with every call into `callee` delayed 220 ms more on the wire.
fn delayed(mut w: WindowSnapshot, callee: &str) -> WindowSnapshot {
    for e in w.edges.iter_mut().filter(|e| e.callee == callee) {
        e.gap_total_ms += 220.0 * e.gap_calls as f64;
        e.client_total_ms += 220.0 * e.calls as f64;
        e.gap_over = over(e.gap_total_ms / e.gap_calls.max(1) as f64, e.gap_calls);
    }
    w
}

/// The application's calls are delayed by about 220 ms now and then (retransmissions): in
/// its learned normal, one call in 20 into `b`. Two calls into `c` delayed as much after
/// `AT`, 6 s apart, are what its calls show every half minute: no detection (counted only
/// as two or more delayed calls, they were one). Every call into `c` delayed so is a
/// detection naming `b` or `c`.
#[test]
fn delays_the_applications_calls_show_normally_are_no_detection() {
    use augur_operators::Detector;
    let tail = |w: WindowSnapshot| {
        if w.window_end % 20_000 == 0 {
            delayed(w, "b")
        } else {
            w
        }
    };
    for seed in 1..=3 {
        let normal = NormalProfile::learn(
            "chain",
            &windows(101, 190, Fault::None, seed + 10)
                .into_iter()
                .map(tail)
                .collect::<Vec<_>>(),
            &BTreeMap::new(),
        )
        .expect("enough windows with requests");
        let twice: Vec<WindowSnapshot> = windows(1, 160, Fault::None, seed)
            .into_iter()
            .map(|w| match w.window_end {
                e if e == AT + 3000 || e == AT + 9000 => delayed(w, "c"),
                _ => w,
            })
            .collect();
        let mut det = EvidenceDetector::new(with_learned(normal.clone()));
        let found: Vec<_> = twice.iter().flat_map(|w| det.observe(w)).collect();
        assert!(found.is_empty(), "seed {seed}: {found:?}");
        let every: Vec<WindowSnapshot> = windows(1, 160, Fault::None, seed)
            .into_iter()
            .map(|w| {
                if w.window_end > AT {
                    delayed(w, "c")
                } else {
                    w
                }
            })
            .collect();
        let mut det = EvidenceDetector::new(with_learned(normal));
        let found: Vec<_> = every.iter().flat_map(|w| det.observe(w)).collect();
        assert!(
            found
                .first()
                .is_some_and(|d| ["b", "c"].contains(&d.culprits[0].service.as_str())),
            "seed {seed}: {found:?}"
        );
    }
}

/// `b` three times slower for 8 s from the fault on, and then no window for 30 s (its
/// telemetry stopped), `pending_ms` 10 s: event time ran the move's clock with nothing to
/// undo it, so the
/// next window — quiet, its own recent range holding no move — brings the detection that
/// fell due in the gap, naming `b`. The same quiet window after calm ones brings none.
#[test]
fn a_move_pending_when_the_windows_stop_is_a_detection_at_the_next() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let slow = windows(1, AT / 1000 + 8, Fault::Slow(1), seed);
        let mut quiet = windows(AT / 1000 + 40, AT / 1000 + 40, Fault::None, seed + 7);
        let quiet = quiet.remove(0);
        let config = || EvidenceDetectorConfig {
            pending_ms: 10_000,
            ..EvidenceDetectorConfig::default()
        };
        let mut det = EvidenceDetector::new(config());
        for w in &slow {
            assert!(
                det.observe(w).is_empty(),
                "seed {seed}: at {}",
                w.window_end
            );
        }
        let out = det.observe(&quiet);
        assert_eq!(out.len(), 1, "seed {seed}: {out:?}");
        assert_eq!(out[0].culprits[0].service, "b", "seed {seed}: {out:?}");
        let mut calm = EvidenceDetector::new(config());
        for w in windows(1, AT / 1000 + 8, Fault::None, seed) {
            assert!(calm.observe(&w).is_empty());
        }
        assert!(calm.observe(&quiet).is_empty(), "seed {seed}");
    }
}

/// A slower callee explains its caller's own slowness, not delays of the calls into the
/// caller: with `c` twice as slow (so `b`'s calls to it slowed), a `b` named for its
/// network stays ahead of `c`; a `b` named for its own time comes after it.
#[test]
fn a_slower_callee_does_not_explain_its_callers_network() {
    for seed in 1..=3 {
        let all = windows(1, 160, Fault::Slow(2), seed);
        let before = Range::of(all.iter().filter(|w| w.window_end <= AT));
        let after = Range::of(all.iter().filter(|w| w.window_end > AT));
        let culprit = |service: &str, score: f64, resource: &str| Culprit {
            service: service.into(),
            score,
            resource: resource.into(),
            evidence: vec![Evidence {
                signal: if resource == "network" {
                    Signal::Network
                } else {
                    Signal::SelfTime
                },
                on: None,
                before: 1.0,
                after: 2.0,
                z: 10.0,
                score,
            }],
            repair_ms: None,
            operation: None,
        };
        let order = |b_resource: &str| {
            let ranked = vec![culprit("b", 10.0, b_resource), culprit("c", 1.0, "cpu")];
            explained_last(ranked, &before, &after, 3.0, 5)
                .into_iter()
                .map(|c| c.service)
                .collect::<Vec<_>>()
        };
        assert_eq!(order("network"), ["b", "c"], "seed {seed}");
        assert_eq!(order("cpu"), ["c", "b"], "seed {seed}");
    }
}

#[test]
fn a_failing_callee_does_not_explain_its_callers_network() {
    let all = windows(1, 160, Fault::None, 1);
    let before = Range::of(all.iter().filter(|w| w.window_end <= AT));
    let after = Range::of(all.iter().filter(|w| w.window_end > AT));
    let culprit = |service: &str, score: f64, signal: Signal| Culprit {
        service: service.into(),
        score,
        resource: signal.resource().into(),
        evidence: vec![Evidence {
            signal,
            on: None,
            before: 1.0,
            after: 2.0,
            z: 10.0,
            score,
        }],
        repair_ms: None,
        operation: None,
    };
    let order = |b_signal: Signal| {
        // `b` moved strongly; `c`, which it calls, logs a little differently.
        let ranked = vec![
            culprit("b", 100.0, b_signal),
            culprit("c", 1.0, Signal::LogFlow),
        ];
        explained_last(ranked, &before, &after, 3.0, 5)
            .into_iter()
            .map(|c| c.service)
            .collect::<Vec<_>>()
    };
    assert_eq!(order(Signal::Network), ["b", "c"]);
    assert_eq!(order(Signal::SelfTime), ["c", "b"]);
}

/// `windows` with every service's `resource` at about `level` (± `noise`, relative), and
/// `b`'s multiplied by `b_after` from `AT` on.
fn with_usage(
    mut windows: Vec<WindowSnapshot>,
    resource: augur_operators::Resource,
    (level, noise): (f64, f64),
    b_after: f64,
    seed: u64,
) -> Vec<WindowSnapshot> {
    let mut rng = Lcg(seed);
    for w in &mut windows {
        for s in &mut w.services {
            let factor = if s.service == "b" && w.window_end > AT {
                b_after
            } else {
                1.0
            };
            s.usage[resource.index()] = [level * factor * rng.noise(noise); 4];
        }
    }
    windows
}

/// Network traffic at about `level` bytes/s (± 30 %), `b`'s × `b_after` from `AT` on.
fn with_traffic(windows: Vec<WindowSnapshot>, level: f64, b_after: f64) -> Vec<WindowSnapshot> {
    with_usage(
        windows,
        augur_operators::Resource::Network,
        (level, 0.3),
        b_after,
        99,
    )
}

/// A service whose network traffic falls tenfold (a delayed or lossy link) is named for
/// its network; one whose traffic rises tenfold (load) is not.
#[test]
fn a_fall_in_traffic_is_named_and_a_rise_is_not() {
    for seed in 1..=3 {
        let calm = windows(1, 160, Fault::None, seed);
        let fell = with_traffic(calm.clone(), 100_000.0, 0.1);
        let d = diagnose(&fell, AT, &EvidenceParams::default());
        assert_eq!(top(&d), ("b", "network"), "seed {seed}: {d:?}");
        assert_eq!(d.culprits[0].evidence[0].signal, Signal::Traffic);
        let rose = with_traffic(calm, 100_000.0, 10.0);
        let d = diagnose(&rose, AT, &EvidenceParams::default());
        assert!(
            d.culprits.iter().all(|c| c.service != "b"),
            "seed {seed}: {d:?}"
        );
    }
}

/// A quiet service: after the moment, four requests of `a`, none of which calls `b`, where
/// every request did before. Per request the call is there or not: four skips of a call
/// made every time are a move (a Poisson count of 4 expected calls would call it noise).
#[test]
fn a_call_every_request_made_skipped_by_a_few_requests_is_a_move() {
    for seed in 1..=3 {
        let all = windows(1, 160, Fault::SkipsCalls, seed);
        let quiet: Vec<WindowSnapshot> = all
            .into_iter()
            .filter(|w| w.window_end <= AT || w.edges.is_empty())
            .filter(|w| w.window_end <= AT + 8000)
            .collect();
        assert_eq!(quiet.iter().filter(|w| w.window_end > AT).count(), 4);
        let d = diagnose(&quiet, AT, &EvidenceParams::default());
        let a = d.culprits.iter().find(|c| c.service == "a");
        assert!(
            !d.weak
                && a.is_some_and(|c| {
                    c.evidence
                        .iter()
                        .any(|e| e.signal == Signal::CallPattern && e.z <= -3.0)
                }),
            "seed {seed}: {d:?}"
        );
    }
}

/// Memory in use at about `level` bytes (± 5 %), `b`'s × `b_after` from `AT` on.
fn with_memory(windows: Vec<WindowSnapshot>, level: f64, b_after: f64) -> Vec<WindowSnapshot> {
    with_usage(
        windows,
        augur_operators::Resource::Memory,
        (level, 0.05),
        b_after,
        7,
    )
}

/// A service whose own time rose with its memory in use (and no CPU metric moved) is named
/// for memory; the same slowdown without a memory rise is named for CPU, as before.
#[test]
fn own_time_that_rose_with_memory_is_named_for_memory() {
    for seed in 1..=3 {
        let slow = windows(1, 160, Fault::Slow(1), seed);
        let d = diagnose(
            &with_memory(slow.clone(), 200e6, 2.0),
            AT,
            &EvidenceParams::default(),
        );
        assert_eq!(top(&d), ("b", "memory"), "seed {seed}: {d:?}");
        assert!(
            d.culprits[0]
                .evidence
                .iter()
                .any(|e| e.signal == Signal::Memory && e.z >= 3.0),
            "{d:?}"
        );
        let d = diagnose(
            &with_memory(slow, 200e6, 1.0),
            AT,
            &EvidenceParams::default(),
        );
        assert_eq!(top(&d), ("b", "cpu"), "seed {seed}: {d:?}");
    }
}

/// Memory levels of another day are no normal (instances restart, caches fill): a learned
/// normal holds none, so a job whose instances use more memory than the day it learned on
/// names nobody for memory, while a rise within the minutes it watched still counts.
#[test]
fn a_learned_normal_holds_no_memory_levels() {
    let normal = NormalProfile::learn(
        "chain",
        &with_memory(windows(1, 90, Fault::None, 11), 100e6, 1.0),
        &BTreeMap::new(),
    )
    .expect("enough windows with requests");
    assert!(normal.range().memory.is_empty());
    let today = with_memory(windows(101, 160, Fault::None, 3), 300e6, 1.0);
    let d = diagnose_with_normal(&today, AT, &EvidenceParams::default(), Some(&normal));
    assert!(
        d.culprits
            .iter()
            .all(|c| c.evidence.iter().all(|e| e.signal != Signal::Memory)),
        "{d:?}"
    );
}

/// `windows`, with every window end (and the features stamped with it) moved by `by_s`.
fn shifted(mut windows: Vec<WindowSnapshot>, by_s: u64) -> Vec<WindowSnapshot> {
    let by = by_s * 1000;
    for w in &mut windows {
        w.window_end += by;
        for s in &mut w.services {
            s.window_end += by;
        }
        for e in &mut w.edges {
            e.window_end += by;
        }
        for l in &mut w.logs {
            l.window_end += by;
        }
    }
    windows
}

/// A job that has run a while keeps a normal of its own past the two minutes before: after
/// five minutes without traffic (a quiet night, a telemetry outage) its live normal is
/// empty, and a fault soon after traffic resumes is still named within 10 s; without the
/// long-term normal the detector first waits for 30 windows of its own.
#[test]
fn the_jobs_own_long_term_normal_stands_in_after_a_quiet_spell() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let earlier = windows(1, 90, Fault::None, seed + 10);
        // The incident's windows from 25 s before the fault, 300 s after the earlier ones.
        let incident = shifted(windows(AT / 1000 - 25, 160, Fault::Slow(1), seed), 300);
        let at = AT + 300_000;
        let first_detection = |config: EvidenceDetectorConfig| {
            let mut det = EvidenceDetector::new(config);
            let mut first = None;
            let mut named = Vec::new();
            for w in earlier.iter().chain(&incident) {
                let out = det.observe(w);
                if !out.is_empty() {
                    first.get_or_insert(w.window_end);
                }
                named.extend(out.into_iter().map(|d| d.culprits[0].service.clone()));
            }
            (first, named)
        };
        let (without, _) = first_detection(EvidenceDetectorConfig {
            long_normal_ms: 0,
            ..EvidenceDetectorConfig::default()
        });
        assert!(
            without.is_none_or(|t| t >= at + 20_000),
            "seed {seed}: without it, at {without:?}"
        );
        let (with, named) = first_detection(EvidenceDetectorConfig::default());
        let with = with.expect("detected");
        assert!((at..=at + 10_000).contains(&with), "seed {seed}: at {with}");
        assert!(named.iter().all(|s| s == "b"), "seed {seed}: {named:?}");
    }
}

/// The long-term normal pooled window by window equals the range of the same windows
/// computed at once (while they fit in one half), and never holds more than `reach` of
/// them once it rotates.
#[test]
fn the_long_term_normal_pools_as_a_range_of_its_windows_does() {
    let all = windows(1, 160, Fault::Slow(1), 7);
    let mut long = detector::LongNormal::default();
    for w in &all[..60] {
        long.add(w, 1_000_000);
    }
    let at_once = Range::of(all[..60].iter());
    let after = Range::of(all[100..].iter());
    let params = EvidenceParams::default();
    let (a, b) = (
        diagnose_ranges(&long.range(), &after, AT, &params),
        diagnose_ranges(&at_once, &after, AT, &params),
    );
    assert_eq!(long.range().windows, at_once.windows);
    assert_eq!(a.culprits.len(), b.culprits.len());
    for (x, y) in a.culprits.iter().zip(&b.culprits) {
        assert_eq!(x.service, y.service);
        assert!(
            (x.score - y.score).abs() <= 1e-9 * y.score.abs().max(1.0),
            "{x:?} vs {y:?}"
        );
    }
    // A reach of 40 s keeps between 20 and 40 of the last windows.
    let mut rotating = detector::LongNormal::default();
    for w in &all {
        rotating.add(w, 40_000);
        assert!(rotating.range().windows <= 40);
    }
    assert!(rotating.range().windows >= 20);
}

/// `augur diagnose --at` over a long recording takes the fault-free windows from earlier in
/// it as normal, as a job would have kept them: traffic that resumes at the fault, five
/// minutes after the earlier traffic, has no minutes before of its own, and the slow service
/// is named with the earlier windows and not without.
#[test]
fn a_long_recording_is_its_own_normal() {
    for seed in 1..=3 {
        let earlier = windows(1, 90, Fault::None, seed + 10);
        let incident = shifted(windows(AT / 1000 + 1, 160, Fault::Slow(1), seed), 300);
        let at = AT + 300_000;
        let alone = diagnose(&incident, at, &EvidenceParams::default());
        assert!(
            alone.culprits.is_empty(),
            "seed {seed}: no normal, no answer: {alone:#?}"
        );
        let recording: Vec<WindowSnapshot> = earlier.into_iter().chain(incident).collect();
        let d = diagnose(&recording, at, &EvidenceParams::default());
        assert_eq!(top(&d), ("b", "cpu"), "seed {seed}: {d:#?}");
        assert!(!d.weak, "seed {seed}: {d:#?}");
        assert!(
            d.history_windows >= 60,
            "seed {seed}: {}",
            d.history_windows
        );
    }
}

/// The same for an application without tracing: metric samples are its only windows, and
/// the earlier ones are the history that names the service whose CPU rose when the
/// telemetry resumed.
#[test]
fn a_long_recording_without_traces_is_its_own_normal() {
    let metric_windows = |from_s: u64, to_s: u64, b_cpu: f64, seed: u64| {
        let mut rng = Lcg(seed);
        (from_s..=to_s)
            .map(|s| metric_window(s * 1000, b_cpu, &mut rng))
            .collect::<Vec<_>>()
    };
    for seed in 1..=3 {
        let earlier = metric_windows(1, 90, 0.05, seed + 10);
        let incident = metric_windows(391, 450, 0.8, seed);
        let at = 390_000;
        let alone = diagnose(&incident, at, &EvidenceParams::default());
        assert!(alone.culprits.is_empty(), "seed {seed}: {alone:#?}");
        let recording: Vec<WindowSnapshot> = earlier.into_iter().chain(incident).collect();
        let d = diagnose(&recording, at, &EvidenceParams::default());
        assert_eq!(top(&d), ("b", "cpu"), "seed {seed}: {d:#?}");
        assert!(
            d.history_windows >= 60,
            "seed {seed}: {}",
            d.history_windows
        );
    }
}

/// An earlier incident in the recording does not become normal: its windows were a
/// detection, so they stay out of the history, and the same fault later is named again.
#[test]
fn an_earlier_incident_in_the_recording_is_not_normal() {
    for seed in 1..=3 {
        // b three times slower from 100 s to 160 s, then the same again 400 s later.
        let earlier = windows(1, 160, Fault::Slow(1), seed + 10);
        let later = shifted(windows(AT / 1000 - 25, 160, Fault::Slow(1), seed), 400);
        let at = AT + 400_000;
        let recording: Vec<WindowSnapshot> = earlier.into_iter().chain(later).collect();
        let d = diagnose(&recording, at, &EvidenceParams::default());
        assert_eq!(top(&d), ("b", "cpu"), "seed {seed}: {d:#?}");
        assert!(!d.weak, "seed {seed}: {d:#?}");
        // 100 fault-free windows, and at most the first few of the slow ones (before the
        // move was significant in the recent range).
        assert!(
            d.history_windows <= 110,
            "seed {seed}: the slow windows joined the history: {}",
            d.history_windows
        );
    }
}

/// A window of service `s` serving 4 requests, `calls` of which call `x`.
fn fan_out_window(end: u64, calls: u64) -> WindowSnapshot {
    let service = |name: &str, requests: u64| ServiceFeatures {
        window_end: end,
        service: name.into(),
        requests,
        latency_ms: [5.0; 5],
        outstanding: 5.0 * requests as f64 / 1000.0,
        replicas: 1,
        ..Default::default()
    };
    let mut services = vec![service("s", 4)];
    let mut edges = Vec::new();
    if calls > 0 {
        services.push(service("x", calls));
        edges.push(EdgeFeatures {
            window_end: end,
            caller: "s".into(),
            callee: "x".into(),
            calls,
            errors: 0,
            client_ms: [6.0; 5],
            server_ms: [5.0; 5],
            gap_ms: [1.0; 5],
            parallel: Default::default(),
            client_total_ms: 6.0 * calls as f64,
            gap_total_ms: calls as f64,
            gap_calls: calls,
            gap_over: over(1.0, calls),
        });
    }
    WindowSnapshot {
        window_end: end,
        window_ms: 1000,
        services,
        edges,
        ..WindowSnapshot::default()
    }
}

/// Half of `s`'s requests call `x`, as whole windows (all four or none: a search that
/// fans out to every item it lists) or spread evenly (two in every window); then ten
/// windows make no call. The share's fall is a move only where the normal's requests were
/// independent: against clustered ones, ten empty windows in a row are a 1-in-1000 run,
/// not a 1-in-10^9 one (the binomial test takes 40 requests, not 10 clusters).
#[test]
fn a_share_that_moves_by_whole_clusters_is_judged_by_its_clusters() {
    let mut rng = Lcg(5);
    let clustered: Vec<u64> = (0..100)
        .map(|_| if rng.noise(1.0) > 1.0 { 4 } else { 0 })
        .collect();
    assert!((40..=60).contains(&clustered.iter().filter(|&&c| c == 4).count()));
    for (normal, expect_move) in [(clustered, false), (vec![2; 100], true)] {
        let windows: Vec<WindowSnapshot> = normal
            .iter()
            .chain(std::iter::repeat_n(&0, 10))
            .enumerate()
            .map(|(k, &calls)| fan_out_window(1000 * (k as u64 + 1), calls))
            .collect();
        let d = diagnose(
            &windows,
            100_000,
            &EvidenceParams {
                min_z: 4.0,
                ..EvidenceParams::default()
            },
        );
        // A weak answer (no move passed the bar) lists moves of half of it.
        let moved = !d.weak
            && d.culprits.iter().any(|c| {
                c.service == "s" && c.evidence.iter().any(|e| e.signal == Signal::CallPattern)
            });
        assert_eq!(moved, expect_move, "{d:#?}");
    }
}

/// `b`'s own time × 3 (8 → 24 ms) from `AT` on; asked 40 s later, the minutes before
/// hold the slowdown's first 40 s. The detector, run over the telemetry, was following
/// the departure since it began: the diagnosis is made there, against a normal without
/// the fault. With the onset left alone, the normal is a third slow and the move half as
/// large.
#[test]
fn a_departure_under_way_is_diagnosed_from_where_it_began() {
    let own_b = |d: &Diagnosis| {
        d.culprits
            .iter()
            .find(|c| c.service == "b")
            .and_then(|c| c.evidence.iter().find(|e| e.signal == Signal::SelfTime))
            .map_or((f64::NAN, f64::NAN), |e| (e.before, e.score))
    };
    for seed in 1..=3 {
        let windows = windows(1, 160, Fault::Slow(1), seed);
        let late = AT + 40_000;
        let d = diagnose(&windows, late, &EvidenceParams::default());
        let onset = d.onset.unwrap_or(late);
        let (normal, score) = own_b(&d);
        assert!(
            onset.abs_diff(AT) <= 3_000 && top(&d) == ("b", "cpu") && normal < 9.0 && score > 1.5,
            "seed {seed}: onset {onset}: {d:#?}"
        );
        let exact = diagnose(
            &windows,
            late,
            &EvidenceParams {
                follow_onset: false,
                ..EvidenceParams::default()
            },
        );
        let (normal, score) = own_b(&exact);
        assert!(
            exact.onset.is_none() && normal > 11.0 && score < 1.2,
            "seed {seed}: {exact:#?}"
        );
    }
}

/// Asked at the start of a fault, or before anything departs, the moment is kept.
#[test]
fn a_moment_at_a_departures_start_is_kept() {
    for seed in 1..=3 {
        let windows = windows(1, 160, Fault::Slow(1), seed);
        for at in [AT, AT - 30_000] {
            let d = diagnose(&windows, at, &EvidenceParams::default());
            assert_eq!(d.onset, None, "seed {seed}, at {at}: {d:#?}");
        }
        assert_eq!(
            top(&diagnose(&windows, AT, &EvidenceParams::default())),
            ("b", "cpu")
        );
    }
}

/// `b` logs an error line in every third request from before the telemetry begins (a
/// defect injected earlier that never stopped): the minutes before the moment hold the
/// failure too, so against them nothing moved. Against the learned normal, where `b`
/// writes no error, `b` was already failing: its logs are judged against the learned
/// normal alone, and it is named.
#[test]
fn a_service_failing_before_the_moment_is_judged_against_the_learned_normal() {
    for seed in 1..=3 {
        let normal = learned(1, 40, Fault::None, seed);
        let failing = windows(AT / 1000 + 1, AT / 1000 + 160, Fault::ErrorLogs(1), seed);
        let at = AT + 100_000;
        let d = diagnose_with_normal(&failing, at, &EvidenceParams::default(), Some(&normal));
        let b = d.culprits.first().filter(|c| c.service == "b");
        assert!(
            !d.weak && b.is_some_and(|c| c.evidence.iter().any(|e| e.signal == Signal::LogErrors)),
            "seed {seed}: {d:#?}"
        );
    }
}

/// The chain with a branch: `a` also calls `d` (2 ms of its own) once per request, the gap
/// of that call about 1 ms — and `delay_ms` more in the windows ending in `delayed`.
fn with_branch(
    mut windows: Vec<WindowSnapshot>,
    delayed: std::ops::RangeInclusive<u64>,
    delay_ms: f64,
    seed: u64,
) -> Vec<WindowSnapshot> {
    let mut rng = Lcg(seed + 100);
    for w in &mut windows {
        let own_d = 2.0 * rng.noise(0.3);
        let mut gap = rng.noise(0.3);
        if delayed.contains(&w.window_end) {
            gap += delay_ms;
        }
        let client = own_d + gap;
        if let Some(a) = w.services.iter_mut().find(|s| s.service == "a") {
            a.latency_ms = a.latency_ms.map(|l| l + client);
            a.outstanding += client / 1000.0;
        }
        w.services.push(ServiceFeatures {
            window_end: w.window_end,
            service: "d".into(),
            requests: 1,
            latency_ms: [own_d; 5],
            outstanding: own_d / 1000.0,
            replicas: 1,
            ..Default::default()
        });
        w.edges.push(EdgeFeatures {
            window_end: w.window_end,
            caller: "a".into(),
            callee: "d".into(),
            calls: 1,
            errors: 0,
            client_ms: [client; 5],
            server_ms: [own_d; 5],
            gap_ms: [gap; 5],
            parallel: Default::default(),
            client_total_ms: client,
            gap_total_ms: gap,
            gap_calls: 1,
            gap_over: over(gap, 1),
        });
    }
    windows
}

/// `c` three times slower (3 → 9 ms) from `AT`, then, in the window where the detector
/// would first name it, every call from `a` to `d` 300 ms slower: the entry latency jumps
/// by far more than `c` could account for, and the delayed calls are one window, not yet a
/// move. Named at once (`min_explained = 0`) the detection is `c`; waiting until what
/// raised the latency is in view, it is `d` a window or two later.
#[test]
fn a_detection_waits_for_what_raised_the_entry_latency() {
    use augur_operators::Detector;
    let first = |config: EvidenceDetectorConfig, stream: &[WindowSnapshot]| {
        let mut det = EvidenceDetector::new(config);
        stream.iter().find_map(|w| {
            let out = det.observe(w);
            out.first()
                .map(|d| (w.window_end, d.culprits[0].service.clone()))
        })
    };
    let at_once = EvidenceDetectorConfig {
        min_explained: 0.0,
        ..EvidenceDetectorConfig::default()
    };
    for seed in 1..=3 {
        let slow_c = windows(1, 160, Fault::Slow(2), seed);
        let (named_at, named) = first(
            at_once.clone(),
            &with_branch(slow_c.clone(), 0..=0, 0.0, seed),
        )
        .expect("c detected");
        assert_eq!(named, "c", "seed {seed}");
        let stream = with_branch(slow_c, named_at..=u64::MAX, 300.0, seed);
        assert_eq!(
            first(at_once.clone(), &stream),
            Some((named_at, "c".to_string())),
            "seed {seed}"
        );
        let (at, named) = first(EvidenceDetectorConfig::default(), &stream).expect("detected");
        assert_eq!(named, "d", "seed {seed}: at {at}");
        assert!(
            (named_at + 1000..=named_at + 5000).contains(&at),
            "seed {seed}: {named_at} -> {at}"
        );
    }
}

/// Once a run of moves has made a detection it is not held back again: `c` three times
/// slower from `AT` and named, then one call from `a` to `d` 300 ms slower 10 s later (the
/// entry latency jumps while `c` is still on top): every window of the run stays a
/// detection, so the alert it raised does not resolve and fire again.
#[test]
fn a_detection_made_is_not_held_back_by_a_later_jump() {
    use augur_operators::Detector;
    for seed in 1..=3 {
        let slow_c = windows(1, 160, Fault::Slow(2), seed);
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        let named_at = with_branch(slow_c.clone(), 0..=0, 0.0, seed)
            .iter()
            .find(|w| !det.observe(w).is_empty())
            .map(|w| w.window_end)
            .expect("c detected");
        let jump = named_at + 10_000;
        let stream = with_branch(slow_c, jump..=jump, 300.0, seed);
        let mut det = EvidenceDetector::new(EvidenceDetectorConfig::default());
        for w in &stream {
            let found = !det.observe(w).is_empty();
            if (named_at..=jump + 3000).contains(&w.window_end) {
                assert!(
                    found,
                    "seed {seed}: none at {} (named at {named_at})",
                    w.window_end
                );
            }
        }
    }
}

/// A wider network gap beside a rise of own time is a starved service (its requests wait
/// before its handler runs and its answers before they are sent), unless own time moved
/// by little against the gap (a delay on the wire slows the few calls made in own time,
/// to a database, say).
#[test]
fn own_time_beside_a_wider_gap_names_cpu() {
    let ev = |signal: Signal, score: f64| Evidence {
        signal,
        on: None,
        before: 1.0,
        after: 1.0 + score,
        z: 20.0,
        score,
    };
    let network = ev(Signal::Network, 50.0);
    assert_eq!(resource_of(std::slice::from_ref(&network)), "network");
    assert_eq!(
        resource_of(&[network.clone(), ev(Signal::SelfTime, 1.0)]),
        "network"
    );
    assert_eq!(
        resource_of(&[network.clone(), ev(Signal::SelfTime, 10.0)]),
        "cpu"
    );
    // Own time with memory and not CPU: memory, as when own time leads.
    assert_eq!(
        resource_of(&[
            network.clone(),
            ev(Signal::SelfTime, 10.0),
            ev(Signal::Memory, 2.0)
        ]),
        "memory"
    );
    // What travels along calls is still told by the strongest move.
    assert_eq!(
        strongest_resource(&[network, ev(Signal::SelfTime, 10.0)]),
        "network"
    );
}

//! Diagnosis time of the training-free `evidence` method: one `augur diagnose --at` (the
//! diagnosis of 180 windows: 2 minutes of normal and 1 minute after; the same after 10
//! minutes of earlier telemetry, which the diagnosis reads as the detector would to pool its
//! fault-free history; and one asked a minute into a departure, whose onset it searches)
//! and one window of the `evidence` detector, on a synthetic 30-service
//! application (a tree of calls, logs with 5 templates per service, a CPU metric), at low and
//! high traffic.
//!
//! `cargo bench --bench evidence`: 20 warm-up runs, then the median and p99 of 200 (2 and 10
//! for the diagnoses with history or a departure).
//! The replay that produces the windows is measured by the `pipeline` bench.

mod common;

use std::time::Instant;

use augur_models::evidence::{
    EvidenceDetector, EvidenceDetectorConfig, EvidenceParams, LearnedNormal, NormalProfile,
    diagnose,
};
use augur_operators::{
    Detector, EdgeFeatures, LogFeatures, ServiceFeatures, TemplateCount, WindowSnapshot,
};
use common::pct;

const SERVICES: usize = 30;

/// Service `i` calls `2i + 1` and `2i + 2` (a binary tree); `requests` per window at the
/// root, halving per level.
fn window(end: u64, requests: u64, k: u64) -> WindowSnapshot {
    let name = |i: usize| format!("service-{i:02}");
    let jitter = |i: usize| 1.0 + ((k * 31 + i as u64 * 17) % 13) as f64 / 50.0;
    let level_requests =
        |i: usize| (requests >> (usize::BITS - (i + 1).leading_zeros() - 1)).max(1);
    let services = (0..SERVICES)
        .map(|i| {
            let n = level_requests(i);
            let mut usage = [[0.0; 4]; 5];
            usage[0] = [0.3 * jitter(i); 4];
            ServiceFeatures {
                window_end: end,
                service: name(i),
                requests: n,
                errors: u64::from(k % 50 == 0),
                latency_ms: [5.0 * jitter(i); 5],
                outstanding: n as f64 * 5.0 * jitter(i) / 1000.0,
                replicas: 2,
                usage,
                ..Default::default()
            }
        })
        .collect();
    let edges = (1..SERVICES)
        .map(|c| {
            let p = (c - 1) / 2;
            let calls = level_requests(c);
            EdgeFeatures {
                window_end: end,
                caller: name(p),
                callee: name(c),
                calls,
                errors: 0,
                client_ms: [3.0; 5],
                server_ms: [2.0; 5],
                gap_ms: [1.0; 5],
                parallel: Default::default(),
                client_total_ms: calls as f64 * 3.0 * jitter(c),
                gap_total_ms: calls as f64 * jitter(c),
                gap_calls: calls,
                gap_over: Default::default(),
            }
        })
        .collect();
    let logs = (0..SERVICES)
        .map(|i| LogFeatures {
            window_end: end,
            service: name(i),
            records: 5 * level_requests(i),
            errors: 0,
            warnings: 0,
            templates: (0..5)
                .map(|t| TemplateCount {
                    id: t,
                    template: format!("INFO handler {t} <*>"),
                    count: level_requests(i),
                })
                .collect(),
            transitions: Vec::new(),
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

fn time<F: FnMut()>(f: F) -> (f64, f64) {
    time_n(20, 200, f)
}

fn time_n<F: FnMut()>(warm_up: usize, runs: usize, mut f: F) -> (f64, f64) {
    for _ in 0..warm_up {
        f();
    }
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (pct(&mut ms, 0.5), pct(&mut ms, 0.99))
}

fn main() {
    println!("evidence bench: {SERVICES} services, 29 call edges, 5 log templates per service");
    for requests in [1, 10_000] {
        let windows: Vec<WindowSnapshot> =
            (1..=180).map(|k| window(k * 1000, requests, k)).collect();
        let params = EvidenceParams::default();
        let (p50, p99) = time(|| {
            std::hint::black_box(diagnose(&windows, 120_000, &params));
        });
        println!(
            "diagnose --at (180 windows), {requests} requests/s at the root: p50 {p50:.3} ms, p99 {p99:.3} ms"
        );
        let recording: Vec<WindowSnapshot> =
            (1..=780).map(|k| window(k * 1000, requests, k)).collect();
        let (p50, p99) = time_n(2, 10, || {
            std::hint::black_box(diagnose(&recording, 720_000, &params));
        });
        println!(
            "diagnose --at after 10 min of earlier telemetry (780 windows), {requests} requests/s at the root: p50 {p50:.3} ms, p99 {p99:.3} ms"
        );
        // Service 5's own time × 3 from 150 s on, asked about 60 s later: the detector's
        // pass finds the departure and the onset is searched.
        let incident: Vec<WindowSnapshot> = (1..=240)
            .map(|k| {
                let mut w = window(k * 1000, requests, k);
                if k > 150
                    && let Some(s) = w.services.get_mut(5)
                {
                    s.outstanding *= 3.0;
                }
                w
            })
            .collect();
        let onset = diagnose(&incident, 210_000, &params).onset;
        let (p50, p99) = time_n(2, 10, || {
            std::hint::black_box(diagnose(&incident, 210_000, &params));
        });
        println!(
            "diagnose --at 60 s into a departure (240 windows; onset found {} s before), {requests} requests/s at the root: p50 {p50:.3} ms, p99 {p99:.3} ms",
            onset.map_or(0, |o| (210_000 - o) / 1000)
        );
        let learned = NormalProfile::learn("bench", &windows, &Default::default())
            .map(|n| LearnedNormal(Some(std::sync::Arc::new(n))))
            .unwrap_or_default();
        for (label, learned) in [
            ("", LearnedNormal::default()),
            (", learned normal", learned),
        ] {
            let mut detector = EvidenceDetector::new(EvidenceDetectorConfig {
                learned,
                ..EvidenceDetectorConfig::default()
            });
            for w in &windows[..130] {
                detector.observe(w);
            }
            let mut next = 130u64;
            let (p50, p99) = time(|| {
                next += 1;
                let w = window(next * 1000, requests, next);
                std::hint::black_box(detector.observe(&w));
            });
            println!(
                "evidence detector{label}, one window (130 s of history), {requests} requests/s: p50 {p50:.3} ms, p99 {p99:.3} ms"
            );
        }
    }
}

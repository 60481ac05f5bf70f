//! What Fluxion reads from a closed window: per service, its own knobs and states and its
//! latency spectrum; the call graph; the entry point's end-to-end latency.
//!
//! In: a [`WindowSnapshot`]. Out: a [`Sample`]. State: none.

use std::collections::BTreeMap;

use augur_operators::{Resource, WindowSnapshot};

/// Names of a service's own inputs (knobs and observable states), in column order.
pub const OWN_FEATURES: [&str; 5] = [
    "requests_per_s",
    "replicas",
    "requests_per_s_per_replica",
    "cpu_p50",
    "cpu_max",
];
/// Own inputs per service.
pub const OWN: usize = OWN_FEATURES.len();
/// Latency quantiles per service (the spectrum, `LATENCY_QUANTILES`: p50 p75 p90 p95 p99).
pub const SPECTRUM: usize = 5;
/// Index of p90 and p99 in the spectrum.
pub const P90: usize = 2;
pub const P99: usize = 4;

/// One service in one window.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSample {
    pub own: [f32; OWN],
    /// Server-side latency quantiles, ms.
    pub latency: [f32; SPECTRUM],
    /// Whether the service served requests (else its latency is unknown).
    pub active: bool,
    /// `service.version` its spans carry, if any: a change is a replacement.
    pub version: Option<String>,
}

/// Everything Fluxion needs of one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub window_end: u64,
    pub services: BTreeMap<String, ServiceSample>,
    /// Caller → callees seen in this window.
    pub callees: BTreeMap<String, Vec<String>>,
    /// The entry point (the service of the first QoS verdict) and its end-to-end latency.
    pub entry: Option<(String, [f32; SPECTRUM])>,
    /// The SLO on the entry: (quantile, threshold ms).
    pub slo: Option<(f64, f64)>,
}

impl Sample {
    /// The end-to-end latency spectrum of `entry`, if measured in this window.
    pub fn e2e(&self, entry: &str) -> Option<[f32; SPECTRUM]> {
        match &self.entry {
            Some((e, l)) if e == entry => Some(*l),
            _ => None,
        }
    }

    /// What the service's own inputs would be with `replicas_delta` more replicas: per-replica
    /// load and CPU scale with the replica count (the same work spread over more replicas).
    pub fn with_replicas(&self, service: &str, replicas_delta: i32) -> Sample {
        let mut out = self.clone();
        if let Some(s) = out.services.get_mut(service) {
            let before = s.own[1].max(1.0);
            let after = (before + replicas_delta as f32).max(1.0);
            let ratio = before / after;
            s.own[1] = after;
            s.own[2] *= ratio;
            s.own[3] *= ratio;
            s.own[4] *= ratio;
        }
        out
    }
}

impl Sample {
    /// What the service's own inputs would be with its CPU allotment × `factor`: its CPU
    /// utilization (used / allotted) divides by it; load and replicas stay.
    pub fn with_cpu_scaled(&self, service: &str, factor: f32) -> Sample {
        let mut out = self.clone();
        if let Some(s) = out.services.get_mut(service) {
            let f = factor.max(1e-3);
            s.own[3] /= f;
            s.own[4] /= f;
        }
        out
    }
}

/// Reads a window.
pub fn sample(window: &WindowSnapshot) -> Sample {
    let secs = (window.window_ms.max(1) as f32) / 1000.0;
    let cpu = Resource::Cpu.index();
    let services = window
        .services
        .iter()
        .map(|s| {
            let rate = s.requests as f32 / secs;
            let replicas = s.replicas.max(1) as f32;
            let mut latency = [0.0f32; SPECTRUM];
            for (l, v) in latency.iter_mut().zip(&s.latency_ms) {
                *l = *v as f32;
            }
            (
                s.service.clone(),
                ServiceSample {
                    own: [
                        rate,
                        replicas,
                        rate / replicas,
                        s.usage[cpu][1] as f32,
                        s.usage[cpu][3] as f32,
                    ],
                    latency,
                    active: s.requests > 0,
                    version: s.version.clone(),
                },
            )
        })
        .collect();
    let mut callees: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &window.edges {
        if e.caller != e.callee {
            callees
                .entry(e.caller.clone())
                .or_default()
                .push(e.callee.clone());
        }
    }
    for list in callees.values_mut() {
        list.sort();
        list.dedup();
    }
    let verdict = window.qos.iter().find(|q| q.requests > 0);
    let entry = verdict.map(|q| {
        let mut l = [0.0f32; SPECTRUM];
        for (a, b) in l.iter_mut().zip(&q.latency_ms) {
            *a = *b as f32;
        }
        // A verdict on one operation is labelled "service operation".
        let service = q.entry.split(' ').next().unwrap_or(&q.entry).to_string();
        (service, l)
    });
    Sample {
        window_end: window.window_end,
        services,
        callees,
        entry,
        slo: verdict.map(|q| (q.quantile, q.slo_ms)),
    }
}

/// The spectrum index nearest to quantile `q` (e.g. 0.99 → p99).
pub fn spectrum_index(q: f64) -> usize {
    augur_operators::LATENCY_QUANTILES
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - q).abs().total_cmp(&(b.1 - q).abs()))
        .map_or(P99, |(i, _)| i)
}

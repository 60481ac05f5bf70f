//! Comparing a twin's simulated hops with real ones: the service call-edge sets, and per
//! service the request rate, latency quantiles and error rate.
//!
//! In: two sets of hops (with their name tables and the length of time each covers). Out: a
//! [`Comparison`] whose relative errors are `twin / real - 1`. Keeps no state.

use std::collections::BTreeMap;

use serde::Serialize;

use super::hops::{Hop, Names};
use super::quantile::quantile;

/// One side's per-service figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServiceStats {
    pub spans: u64,
    pub rate_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
}

/// Hops of one side summarised: per service, and the caller → callee service edges.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub services: BTreeMap<String, ServiceStats>,
    /// Caller → callee service edges and their number of calls.
    pub edges: BTreeMap<(String, String), u64>,
    pub duration_s: f64,
}

/// Summarises `hops` observed over `duration_s`.
pub fn summarize(hops: &[Hop], names: &Names, duration_s: f64) -> Summary {
    let mut latency: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
    for h in hops {
        let service = names.name(h.service).to_string();
        if let Some(p) = h.parent {
            *edges
                .entry((names.name(hops[p].service).to_string(), service.clone()))
                .or_default() += 1;
        }
        *errors.entry(service.clone()).or_default() += u64::from(h.error);
        latency
            .entry(service)
            .or_default()
            .push(h.duration_ns() as f64 / 1e6);
    }
    let services = latency
        .into_iter()
        .map(|(service, mut v)| {
            v.sort_by(f64::total_cmp);
            let n = v.len() as u64;
            let stats = ServiceStats {
                spans: n,
                rate_per_s: n as f64 / duration_s.max(1e-9),
                p50_ms: quantile(&v, 0.5),
                p90_ms: quantile(&v, 0.9),
                p99_ms: quantile(&v, 0.99),
                error_rate: errors.get(&service).copied().unwrap_or(0) as f64 / n.max(1) as f64,
            };
            (service, stats)
        })
        .collect();
    Summary {
        services,
        edges,
        duration_s,
    }
}

/// One service's row: real and twin figures and their differences.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceRow {
    pub service: String,
    /// Real spans (service entries) in the held-back range.
    pub spans: u64,
    pub twin_spans: u64,
    pub real_rate_per_s: f64,
    pub twin_rate_per_s: f64,
    pub rate_err: Option<f64>,
    pub real_p50_ms: f64,
    pub twin_p50_ms: f64,
    pub p50_err: Option<f64>,
    pub real_p90_ms: f64,
    pub twin_p90_ms: f64,
    pub p90_err: Option<f64>,
    pub real_p99_ms: f64,
    pub twin_p99_ms: f64,
    pub p99_err: Option<f64>,
    pub real_error_rate: f64,
    pub twin_error_rate: f64,
    /// Twin minus real error rate, percentage points.
    pub error_rate_diff_pp: f64,
    /// Mean CPU utilization, real and twin, where both sides have it.
    pub real_cpu: Option<f64>,
    pub twin_cpu: Option<f64>,
}

/// The whole check.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The twin's call edges are exactly the real data's.
    pub edges_match: bool,
    /// No real edge is missing from the twin, and the twin's extra edges are all ones it
    /// makes so rarely that the real data would show them fewer than
    /// [`RARE_EDGE_CALLS`] times in its time range.
    pub edges_match_expected: bool,
    /// Edges of the real data the twin never made.
    pub missing_edges: Vec<(String, String)>,
    /// Edges the twin made that the real held-back data does not have.
    pub extra_edges: Vec<(String, String)>,
    /// Of `extra_edges`, those expected fewer than [`RARE_EDGE_CALLS`] times in the real range.
    pub rare_extra_edges: Vec<(String, String)>,
    pub services: Vec<ServiceRow>,
}

/// An edge the twin makes this rarely (expected calls over the real data's time range) is
/// not expected to show in the real data.
pub const RARE_EDGE_CALLS: f64 = 3.0;

fn rel(twin: f64, real: f64) -> Option<f64> {
    (real > 0.0 && real.is_finite() && twin.is_finite()).then(|| twin / real - 1.0)
}

/// Compares twin against real, over the services either side saw (real's first).
pub fn compare(real: &Summary, twin: &Summary) -> Comparison {
    let missing_edges: Vec<_> = real
        .edges
        .keys()
        .filter(|e| !twin.edges.contains_key(*e))
        .cloned()
        .collect();
    let extra_edges: Vec<_> = twin
        .edges
        .keys()
        .filter(|e| !real.edges.contains_key(*e))
        .cloned()
        .collect();
    let rare_extra_edges: Vec<_> = extra_edges
        .iter()
        .filter(|e| {
            let calls = twin.edges[*e] as f64;
            calls / twin.duration_s.max(1e-9) * real.duration_s < RARE_EDGE_CALLS
        })
        .cloned()
        .collect();
    let mut names: Vec<&String> = real.services.keys().collect();
    names.extend(
        twin.services
            .keys()
            .filter(|s| !real.services.contains_key(*s)),
    );
    let empty = ServiceStats::default();
    let services = names
        .into_iter()
        .map(|service| {
            let r = real.services.get(service).unwrap_or(&empty);
            let t = twin.services.get(service).unwrap_or(&empty);
            ServiceRow {
                service: service.clone(),
                spans: r.spans,
                twin_spans: t.spans,
                real_rate_per_s: r.rate_per_s,
                twin_rate_per_s: t.rate_per_s,
                rate_err: rel(t.rate_per_s, r.rate_per_s),
                real_p50_ms: r.p50_ms,
                twin_p50_ms: t.p50_ms,
                p50_err: rel(t.p50_ms, r.p50_ms),
                real_p90_ms: r.p90_ms,
                twin_p90_ms: t.p90_ms,
                p90_err: rel(t.p90_ms, r.p90_ms),
                real_p99_ms: r.p99_ms,
                twin_p99_ms: t.p99_ms,
                p99_err: rel(t.p99_ms, r.p99_ms),
                real_error_rate: r.error_rate,
                twin_error_rate: t.error_rate,
                error_rate_diff_pp: 100.0 * (t.error_rate - r.error_rate),
                real_cpu: None,
                twin_cpu: None,
            }
        })
        .collect();
    Comparison {
        edges_match: missing_edges.is_empty() && extra_edges.is_empty(),
        edges_match_expected: missing_edges.is_empty()
            && extra_edges.len() == rare_extra_edges.len(),
        missing_edges,
        extra_edges,
        rare_extra_edges,
        services,
    }
}

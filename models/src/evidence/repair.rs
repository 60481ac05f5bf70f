//! The counterfactual of a diagnosis: how much lower the application's entry latency would
//! have been had a culprit behaved as normal — its own time per request, and the network
//! gap of each call it takes part in, at their normal levels.
//!
//! The excess of each (after minus normal, never negative) times how often it was paid
//! after the moment (requests, calls), over the requests that entered the application (at
//! services no other service calls), is what one entry request would have saved. Calls are
//! taken as sequential, so it is an upper bound where a request's calls overlap.

use super::Range;

/// The entry services' requests and mean request latency (ms) in `range`.
pub(super) fn entry(range: &Range) -> Option<(f64, f64)> {
    let called: std::collections::BTreeSet<&str> = range
        .calls
        .keys()
        .filter(|(caller, callee)| caller != callee)
        .map(|(_, callee)| callee.as_str())
        .collect();
    let (mut requests, mut busy_ms) = (0.0, 0.0);
    for (service, n) in &range.requests {
        if called.contains(service.as_str()) {
            continue;
        }
        requests += n;
        busy_ms += range
            .latency
            .get(service)
            .map_or(0.0, |p| p.mean() * p.units());
    }
    (requests > 0.0).then(|| (requests, busy_ms / requests))
}

/// Milliseconds per entry request saved had `service` behaved as in `before` (see the
/// module docs), given the `entry_requests` of `after`.
pub(super) fn repair_ms(service: &str, before: &Range, after: &Range, entry_requests: f64) -> f64 {
    let mut saved = 0.0;
    if let (Some(b), Some(a)) = (before.self_time.get(service), after.self_time.get(service)) {
        saved += (a.mean() - b.mean()).max(0.0) * a.units();
    }
    for (edge, a) in &after.gap {
        if edge.0 != service && edge.1 != service {
            continue;
        }
        if let Some(b) = before.gap.get(edge) {
            saved += (a.mean() - b.mean()).max(0.0) * a.units();
        }
    }
    saved / entry_requests
}

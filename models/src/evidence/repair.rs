//! The counterfactual of a diagnosis: how much lower the application's entry latency would
//! have been had a culprit behaved as normal — its own time per request, and the network
//! gap of each call it takes part in, at their normal levels.
//!
//! The excess of each (after minus normal, never negative) times how often it was paid
//! after the moment (requests, calls), over the requests that entered the application (at
//! services no other service calls), is what one entry request would have saved. Calls are
//! taken as sequential, so it is an upper bound where a request's calls overlap.

use super::{Range, stats, upstream};

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
    let mut saved = own_excess(service, before, after);
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

/// What repairing `top` would take back of the entry latency with its effects upstream: its
/// counterfactual repair, and the excess own time of each service that calls it, directly
/// or through other services, where that rose significantly (`min_z`): a slower service
/// holds its callers' threads and fills their queues, so their own time rises with it; the
/// delays of their other calls are not its doing. Ms per entry request.
pub(super) fn explained_ms(top: &str, before: &Range, after: &Range, min_z: f64) -> f64 {
    let Some((requests, _)) = entry(after) else {
        return 0.0;
    };
    let queued: f64 = upstream(&after.callers_of(), top)
        .into_iter()
        .filter(|&s| s != top)
        .filter(
            |&s| match (before.self_time.get(s), after.self_time.get(s)) {
                (Some(b), Some(a)) => stats::own_time_increase(b, a, min_z).is_some(),
                _ => false,
            },
        )
        .map(|s| own_excess(s, before, after))
        .sum();
    repair_ms(top, before, after, requests) + queued / requests
}

/// A service's own time above its normal level, times its requests after (ms).
fn own_excess(service: &str, before: &Range, after: &Range) -> f64 {
    match (before.self_time.get(service), after.self_time.get(service)) {
        (Some(b), Some(a)) => (a.mean() - b.mean()).max(0.0) * a.units(),
        _ => 0.0,
    }
}

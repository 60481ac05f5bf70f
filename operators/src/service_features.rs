//! Per-service window features (design step 4).
//!
//! **In:** [`Span`]s and [`MetricPoint`]s stamped with window ends, and the window length.
//!
//! **Out:** one [`ServiceFeatures`] per (window, service) that had any span or metric sample
//! in the window, stamped with the window end, emitted when the window closes, sorted by
//! service within a worker's batch. Rows of one service are produced on one worker.
//! - `requests`/`errors`/`latency_ms`: `Server` spans only (DDSketch, 1 % relative accuracy;
//!   sketches merge exactly across workers, so quantiles are identical for any worker count).
//! - `outstanding`: Σ server-span durations (integer nanoseconds, so exact) / window length.
//! - `replicas`: distinct instances seen in any span or metric sample of the service.
//! - `version`: `service.version` of the latest server span (ties in time: the greatest).
//! - `own_ms`, `operations`: own time from [`crate::own_time`], in all and for the
//!   [`MAX_OPERATIONS`] span names with the most (ties: by name).
//! - `in_flight`: per instance, its latest [`Resource::InFlight`] sample in the window (ties
//!   in time: the larger value), summed over instances.
//! - `usage`: per instance and resource, the mean of its samples in the window (summed in
//!   sorted order, so independent of arrival order); then, across the instances that reported
//!   the resource, the values at [`USAGE_QUANTILES`] with linear interpolation between closest
//!   ranks (NumPy's default; min and max are exact). Zeros when no instance reported it.
//!
//! **State:** two window stages. Stage 1 (no exchange) keeps, per worker, window and service,
//! a [`ServicePartial`] of the spans ([`SpanPartials`]) and one of the metric samples; stage 2
//! (exchanged by service) merges the partials of all workers. Both free a window's state when
//! the input frontier passes its end. [`service_features`] runs both stages;
//! [`service_features_of_partials`] takes stage 1 over spans from elsewhere (the
//! [`crate::span_fanout`], which reads each span once for all its consumers).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Concat;

use crate::records::{
    LATENCY_QUANTILES, MAX_OPERATIONS, MetricPoint, OperationTime, Resource, ServiceFeatures, Span,
    SpanKind, USAGE_QUANTILES,
};
use crate::window::{interpolated_quantile, route, sketch_quantiles, stable_sum, window_fold};

/// Partial aggregate of one service in one window on one worker.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ServicePartial {
    pub requests: u64,
    pub errors: u64,
    pub latency: DDSketch,
    /// Σ server-span durations, ns.
    pub busy_ns: u128,
    pub instances: BTreeSet<String>,
    /// Per instance, per resource ([`Resource::index`]): the samples of the window.
    pub usage: BTreeMap<String, [Vec<f64>; 5]>,
    /// Per instance: its latest in-flight sample of the window, `(time_ns, value)`.
    pub in_flight: BTreeMap<String, (u64, f64)>,
    /// The latest server span's `(end_ns, service.version)`, if it carries one.
    pub version: Option<(u64, String)>,
    /// Σ own time of the window's spans, ns ([`crate::own_time`]); `None` when not taken.
    pub own_ns: Option<i128>,
    /// `own_ns` by span name (the operation), ns.
    pub own_by_operation: BTreeMap<String, i128>,
}

/// The later of two in-flight samples (equal times: the larger value, so merge order
/// doesn't matter).
fn latest(a: (u64, f64), b: (u64, f64)) -> (u64, f64) {
    match a.0.cmp(&b.0) {
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Greater => a,
        std::cmp::Ordering::Equal => (a.0, a.1.max(b.1)),
    }
}

impl ServicePartial {
    /// A partial holding only own time, in all and by operation.
    pub fn of_own_time(own_ns: i128, own_by_operation: BTreeMap<String, i128>) -> ServicePartial {
        ServicePartial {
            own_ns: Some(own_ns),
            own_by_operation,
            ..ServicePartial::default()
        }
    }

    pub fn add_span(&mut self, span: &Span) {
        if !self.instances.contains(&span.instance) {
            self.instances.insert(span.instance.clone());
        }
        // A kind-less root is an end-to-end request; kind-less spans called from another
        // service are counted from their edge (see `RpcEdge::callee_request`).
        let root_request = span.kind == SpanKind::Unspecified && span.parent_span_id.is_none();
        if span.kind == SpanKind::Server || root_request {
            self.add_request(span.end_ns.saturating_sub(span.start_ns), span.error);
            if let Some(v) = &span.version {
                self.note_version(span.end_ns, v);
            }
        }
    }

    /// One request served, of this duration.
    pub fn add_request(&mut self, duration_ns: u64, error: bool) {
        self.requests += 1;
        self.errors += u64::from(error);
        self.latency.add(duration_ns as f64 / 1e6);
        self.busy_ns += u128::from(duration_ns);
    }

    /// Keeps the later version (equal times: the greater, so merge order doesn't matter).
    /// Runs per server span: the same version only moves the time, and the string is
    /// cloned only when a different version takes over.
    fn note_version(&mut self, end_ns: u64, version: &str) {
        match &mut self.version {
            Some((t, v)) if v == version => *t = (*t).max(end_ns),
            Some((t, v)) if (end_ns, version) <= (*t, v.as_str()) => {}
            _ => self.version = Some((end_ns, version.to_owned())),
        }
    }

    pub fn add_metric(&mut self, m: MetricPoint) {
        if !self.instances.contains(&m.instance) {
            self.instances.insert(m.instance.clone());
        }
        if m.resource == Resource::InFlight {
            let sample = (m.time_ns, m.value);
            let slot = self.in_flight.entry(m.instance).or_insert(sample);
            *slot = latest(*slot, sample);
            return;
        }
        self.usage.entry(m.instance).or_default()[m.resource.index()].push(m.value);
    }

    pub fn merge(&mut self, other: ServicePartial) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency
            .merge(&other.latency)
            .expect("all sketches share the default config");
        self.busy_ns += other.busy_ns;
        self.instances.extend(other.instances);
        for (inst, samples) in other.usage {
            let mine = self.usage.entry(inst).or_default();
            for (m, o) in mine.iter_mut().zip(samples) {
                m.extend(o);
            }
        }
        for (inst, sample) in other.in_flight {
            let slot = self.in_flight.entry(inst).or_insert(sample);
            *slot = latest(*slot, sample);
        }
        if let Some((t, v)) = other.version {
            self.note_version(t, &v);
        }
        if let Some(o) = other.own_ns {
            self.own_ns = Some(self.own_ns.unwrap_or(0) + o);
        }
        for (name, ns) in other.own_by_operation {
            *self.own_by_operation.entry(name).or_default() += ns;
        }
    }

    /// The features of this (complete) partial.
    pub fn finish(mut self, window_end: u64, service: String, window_ms: u64) -> ServiceFeatures {
        let mut usage = [[0.0; 4]; 5];
        for r in Resource::ALL {
            let mut means: Vec<f64> = self
                .usage
                .values_mut()
                .filter(|s| !s[r.index()].is_empty())
                .map(|s| {
                    let n = s[r.index()].len() as f64;
                    stable_sum(&mut s[r.index()]) / n
                })
                .collect();
            means.sort_by(f64::total_cmp);
            for (u, q) in usage[r.index()].iter_mut().zip(USAGE_QUANTILES) {
                *u = interpolated_quantile(&means, q);
            }
        }
        ServiceFeatures {
            window_end,
            service,
            requests: self.requests,
            errors: self.errors,
            latency_ms: sketch_quantiles(&self.latency, &LATENCY_QUANTILES),
            outstanding: self.busy_ns as f64 / 1e6 / window_ms.max(1) as f64,
            replicas: u32::try_from(self.instances.len()).unwrap_or(u32::MAX),
            usage,
            in_flight: stable_sum(&mut self.in_flight.values().map(|s| s.1).collect::<Vec<_>>()),
            version: self.version.map(|(_, v)| v),
            own_ms: self.own_ns.map(|ns| ns as f64 / 1e6),
            usage_held: [false; 5],
            operations: top_operations(self.own_by_operation),
        }
    }
}

/// The [`MAX_OPERATIONS`] operations with the most own time (ties: by name), sorted by name.
fn top_operations(by_operation: BTreeMap<String, i128>) -> Vec<OperationTime> {
    let mut ops: Vec<(String, i128)> = by_operation.into_iter().collect();
    ops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ops.truncate(MAX_OPERATIONS);
    ops.sort_by(|a, b| a.0.cmp(&b.0));
    ops.into_iter()
        .map(|(name, ns)| OperationTime {
            name,
            own_ms: ns as f64 / 1e6,
        })
        .collect()
}

/// Stage 1 over the spans of one window on one worker: a [`ServicePartial`] per service.
#[derive(Default)]
pub struct SpanPartials {
    by_service: HashMap<String, ServicePartial, foldhash::fast::RandomState>,
}

impl SpanPartials {
    pub fn add(&mut self, span: &Span) {
        if let Some(p) = self.by_service.get_mut(span.service.as_str()) {
            p.add_span(span);
        } else {
            let mut p = ServicePartial::default();
            p.add_span(span);
            self.by_service.insert(span.service.clone(), p);
        }
    }

    /// The partials, sorted by service.
    pub fn finish(self) -> Vec<(String, ServicePartial)> {
        let mut out: Vec<_> = self.by_service.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Per-service features of each window; see the module docs.
pub fn service_features<'s>(
    spans: StreamVec<'s, u64, Span>,
    metrics: StreamVec<'s, u64, MetricPoint>,
    window_ms: u64,
) -> StreamVec<'s, u64, ServiceFeatures> {
    let span_partials = window_fold(
        spans,
        Pipeline,
        "SpanPartials",
        |acc: &mut SpanPartials, s: Span| acc.add(&s),
        |_t, acc| acc.finish(),
    );
    service_features_of_partials(span_partials, metrics, window_ms)
}

/// [`service_features`] from stage 1 over spans ([`SpanPartials::finish`] per window and
/// worker) and the metric samples.
pub fn service_features_of_partials<'s>(
    span_partials: StreamVec<'s, u64, (String, ServicePartial)>,
    metrics: StreamVec<'s, u64, MetricPoint>,
    window_ms: u64,
) -> StreamVec<'s, u64, ServiceFeatures> {
    let metric_partials = window_fold(
        metrics,
        Pipeline,
        "MetricPartials",
        |acc: &mut BTreeMap<String, ServicePartial>, m: MetricPoint| {
            if let Some(p) = acc.get_mut(&m.service) {
                p.add_metric(m);
            } else {
                let mut p = ServicePartial::default();
                let service = m.service.clone();
                p.add_metric(m);
                acc.insert(service, p);
            }
        },
        |_t, acc| acc.into_iter().collect::<Vec<_>>(),
    );
    let partials = span_partials.concat(metric_partials);
    window_fold(
        partials,
        Exchange::new(|(service, _): &(String, ServicePartial)| route(service)),
        "ServiceFeatures",
        |acc: &mut BTreeMap<String, ServicePartial>, (service, p): (String, ServicePartial)| {
            match acc.get_mut(&service) {
                Some(mine) => mine.merge(p),
                None => {
                    acc.insert(service, p);
                }
            }
        },
        move |t, acc| {
            acc.into_iter()
                .map(|(service, p)| p.finish(t, service, window_ms))
                .collect()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(instance: &str, resource: Resource, time_ms: u64, value: f64) -> MetricPoint {
        MetricPoint {
            service: "api".into(),
            instance: instance.into(),
            resource,
            time_ns: time_ms * 1_000_000,
            value,
        }
    }

    /// In-flight: each instance's latest sample (across merged partials), summed; usage
    /// arrays don't see it.
    #[test]
    fn in_flight_is_the_sum_of_each_instances_latest_sample() {
        let mut a = ServicePartial::default();
        a.add_metric(sample("api-0", Resource::InFlight, 100, 3.0));
        a.add_metric(sample("api-0", Resource::InFlight, 900, 5.0));
        a.add_metric(sample("api-1", Resource::InFlight, 900, 2.0));
        a.add_metric(sample("api-1", Resource::Queue, 500, 1.0));
        let mut b = ServicePartial::default();
        b.add_metric(sample("api-0", Resource::InFlight, 400, 9.0));
        b.add_metric(sample("api-1", Resource::InFlight, 900, 4.0));
        a.merge(b);
        let f = a.finish(1000, "api".into(), 1000);
        // api-0: 5 (t 900 beats t 400); api-1: max(2, 4) at the same time.
        assert_eq!(f.in_flight, 9.0);
        assert_eq!(f.usage[Resource::Queue.index()][3], 1.0);
        assert_eq!(f.replicas, 2);

        let empty = ServicePartial::default().finish(1000, "api".into(), 1000);
        assert_eq!(empty.in_flight, 0.0);
    }

    /// Operations: the ones with the most own time, at most `MAX_OPERATIONS`, by name.
    #[test]
    fn operations_kept_are_those_with_the_most_own_time() {
        let by_operation: BTreeMap<String, i128> = (0..MAX_OPERATIONS as i128 + 4)
            .map(|i| (format!("op-{i:02}"), i * 1_000_000))
            .collect();
        let f = ServicePartial::of_own_time(0, by_operation).finish(1000, "api".into(), 1000);
        assert_eq!(f.operations.len(), MAX_OPERATIONS);
        // The four smallest (op-00..op-03) are left out; the rest in name order.
        assert_eq!(f.operations[0].name, "op-04");
        assert_eq!(f.operations[0].own_ms, 4.0);
        let last = &f.operations[MAX_OPERATIONS - 1];
        assert_eq!(last.name, format!("op-{:02}", MAX_OPERATIONS + 3));
    }

    fn server_span(end_ms: u64, version: Option<&str>) -> Span {
        Span {
            trace_id: 1,
            span_id: end_ms + 1,
            parent_span_id: None,
            service: "api".into(),
            instance: "api-0".into(),
            kind: SpanKind::Server,
            name: "/".into(),
            start_ns: (end_ms - 1) * 1_000_000,
            end_ns: end_ms * 1_000_000,
            error: false,
            peer_service: None,
            version: version.map(str::to_owned),
        }
    }

    /// Version: the latest server span's, whatever the order partials merge in.
    #[test]
    fn version_is_the_latest_server_spans() {
        let partial = |spans: &[(u64, Option<&str>)]| {
            let mut p = ServicePartial::default();
            for (t, v) in spans {
                p.add_span(&server_span(*t, *v));
            }
            p
        };
        let early = || partial(&[(100, Some("1")), (300, None)]);
        let late = || partial(&[(200, Some("1")), (700, Some("2"))]);
        for (mut a, b) in [(early(), late()), (late(), early())] {
            a.merge(b);
            assert_eq!(
                a.finish(1000, "api".into(), 1000).version.as_deref(),
                Some("2")
            );
        }
        let unversioned = partial(&[(100, None)]).finish(1000, "api".into(), 1000);
        assert_eq!(unversioned.version, None);
    }
}

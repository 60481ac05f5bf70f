//! Metrics and logs joined to the traced service of their instance.
//!
//! Pod metrics and pod logs join the traces by service name. A resource without
//! `service.name` — kubeletstats' and cAdvisor's pod metrics, the filelog receiver's
//! lines — is named by its Kubernetes workload, which is not always the name the
//! application's SDKs give its spans (a chart's `demo-cartservice` beside the traces'
//! `cartservice`); its CPU, memory, logs and errors would then belong to a service no span
//! names. Spans name their instance too (`service.instance.id`, else the pod, else the
//! host, which in a pod is the pod's name): a metric point or log record whose service no
//! span names, of an instance whose spans name one service, takes that service. An
//! instance whose spans name two services (a sidecar that traces) joins nothing.
//!
//! The join is learned from the spans read so far, by each process from its own: a
//! recorded directory's replay reads the traces' first lines before the metrics' (all
//! partitions start level), but a stream may bring a pod's metrics before its first span;
//! those keep their name, and the run's summary says how many. So does a record whose
//! instance's spans another process of the job reads (Kafka partitions split between
//! processes).
//!
//! **State:** per process, the services spans named, and per instance the one service its
//! spans named (at most [`INSTANCES_KEPT`] instances); what was joined, counted for the
//! run's summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use augur_operators::{LogRecord, MetricPoint, Span};

/// Instances remembered: a bound on what a stream of made-up instance names costs.
pub const INSTANCES_KEPT: usize = 100_000;

#[derive(Default)]
struct State {
    traced: HashSet<String>,
    /// The service of an instance's spans; `None` once its spans named two.
    of_instance: HashMap<String, Option<String>>,
    /// (service as named, traced service it took) → records.
    joined: BTreeMap<(String, String), u64>,
    /// Records of services no span names whose instance was not known (yet) → records; at
    /// most [`INSTANCES_KEPT`] services.
    unjoined: HashMap<String, u64>,
}

/// See the module docs. Shared by a process's workers.
#[derive(Default)]
pub struct ServiceJoin(Mutex<State>);

impl ServiceJoin {
    /// Learns the services and instances of `spans`.
    pub fn learn(&self, spans: &[Span]) {
        self.learn_pairs(
            spans
                .iter()
                .map(|s| (s.service.as_str(), s.instance.as_str())),
        );
    }

    /// Learns `(service, instance)` pairs of spans.
    pub fn learn_pairs<'a>(&self, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        let mut last: Option<(&str, &str)> = None;
        for pair in pairs {
            // Spans come in runs of one resource.
            if last == Some(pair) {
                continue;
            }
            last = Some(pair);
            if !state.traced.contains(pair.0) {
                state.traced.insert(pair.0.to_string());
            }
            if pair.1 == pair.0 {
                continue;
            }
            let full = state.of_instance.len() >= INSTANCES_KEPT;
            match state.of_instance.get_mut(pair.1) {
                Some(known) if known.as_deref().is_some_and(|s| s != pair.0) => *known = None,
                Some(_) => {}
                None if !full => {
                    state
                        .of_instance
                        .insert(pair.1.to_string(), Some(pair.0.to_string()));
                }
                None => {}
            }
        }
    }

    /// Renames the points whose service no span names to their instance's traced service.
    pub fn join_points(&self, points: &mut [MetricPoint]) {
        self.join(
            points
                .iter_mut()
                .map(|p| (&mut p.service, p.instance.as_str())),
        );
    }

    /// Renames the log records whose service no span names to their instance's traced
    /// service.
    pub fn join_logs(&self, logs: &mut [LogRecord]) {
        self.join(
            logs.iter_mut()
                .map(|r| (&mut r.service, r.instance.as_str())),
        );
    }

    fn join<'a>(&self, records: impl Iterator<Item = (&'a mut String, &'a str)>) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        let State {
            traced,
            of_instance,
            joined,
            unjoined,
        } = &mut *state;
        for (service, instance) in records {
            if traced.contains(service.as_str()) {
                continue;
            }
            match of_instance.get(instance) {
                Some(Some(to)) => {
                    let from = std::mem::replace(service, to.clone());
                    *joined.entry((from, to.clone())).or_default() += 1;
                }
                None => {
                    if let Some(n) = unjoined.get_mut(service.as_str()) {
                        *n += 1;
                    } else if unjoined.len() < INSTANCES_KEPT {
                        unjoined.insert(service.clone(), 1);
                    }
                }
                Some(None) => {}
            }
        }
    }

    /// What was joined, in one line; `None` when nothing was.
    pub fn summary_line(&self) -> Option<String> {
        let state = self.0.lock().ok()?;
        if state.joined.is_empty() {
            return None;
        }
        let pairs: Vec<String> = state
            .joined
            .iter()
            .map(|((from, to), n)| format!("{from} → {to} ({n})"))
            .collect();
        // Records of a joined name read before any span of their instance.
        let early: Vec<String> = state
            .joined
            .keys()
            .map(|(from, _)| from)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|from| state.unjoined.get(from).map(|n| format!("{from} ({n})")))
            .collect();
        let early = if early.is_empty() {
            String::new()
        } else {
            format!(
                "; read before any span of their instance, kept their name: {}",
                crate::display::listed(&early, 8)
            )
        };
        Some(format!(
            "metrics and logs joined to the traced service of their instance (their service no span names): {}{early}",
            crate::display::listed(&pairs, 8)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::{Resource, Severity, SpanKind};

    fn span(service: &str, instance: &str) -> Span {
        Span {
            trace_id: 1,
            span_id: 1,
            parent_span_id: None,
            service: service.into(),
            instance: instance.into(),
            kind: SpanKind::Server,
            name: "op".into(),
            start_ns: 1,
            end_ns: 2,
            error: false,
            peer_service: None,
            version: None,
        }
    }

    fn point(service: &str, instance: &str) -> MetricPoint {
        MetricPoint {
            service: service.into(),
            instance: instance.into(),
            resource: Resource::Cpu,
            time_ns: 1,
            value: 0.5,
        }
    }

    #[test]
    fn a_workload_named_point_takes_its_pods_traced_service() {
        let join = ServiceJoin::default();
        join.learn(&[
            span("cartservice", "demo-cartservice-7d4b9c8f6-x2x9k"),
            span("checkout", "demo-checkout-5f6d8-abcde"),
            // A pod whose spans name two services joins nothing.
            span("app", "shared-pod"),
            span("proxy", "shared-pod"),
        ]);
        let mut points = vec![
            point("demo-cartservice", "demo-cartservice-7d4b9c8f6-x2x9k"),
            // Already a traced service: kept, whatever its instance.
            point("checkout", "demo-cartservice-7d4b9c8f6-x2x9k"),
            // No span of its instance: kept.
            point("redis", "redis-0"),
            point("shared", "shared-pod"),
        ];
        join.join_points(&mut points);
        let names: Vec<&str> = points.iter().map(|p| p.service.as_str()).collect();
        assert_eq!(names, ["cartservice", "checkout", "redis", "shared"]);
        let mut logs = vec![LogRecord {
            service: "demo-checkout".into(),
            instance: "demo-checkout-5f6d8-abcde".into(),
            time_ns: 1,
            severity: Severity::Error,
            body: "boom".into(),
            trace_id: None,
            span_id: None,
        }];
        join.join_logs(&mut logs);
        assert_eq!(logs[0].service, "checkout");
        assert_eq!(
            join.summary_line().as_deref(),
            Some(
                "metrics and logs joined to the traced service of their instance (their service no span names): demo-cartservice → cartservice (1), demo-checkout → checkout (1)"
            )
        );
    }

    #[test]
    fn nothing_joins_before_spans_or_without_them() {
        let join = ServiceJoin::default();
        let mut points = vec![point("demo-cartservice", "pod-1")];
        join.join_points(&mut points);
        assert_eq!(points[0].service, "demo-cartservice");
        // Once the pod's spans are seen, its points join, and the early one is said.
        let seen = ServiceJoin::default();
        seen.join_points(&mut points);
        seen.learn(&[span("cartservice", "pod-1")]);
        let mut later = vec![point("demo-cartservice", "pod-1")];
        seen.join_points(&mut later);
        assert_eq!(later[0].service, "cartservice");
        assert!(
            seen.summary_line().is_some_and(|l| l.ends_with(
                "demo-cartservice → cartservice (1); read before any span of their instance, kept their name: demo-cartservice (1)"
            )),
            "{:?}",
            seen.summary_line()
        );
        // Spans whose instance is their service name (no instance attribute) join nothing.
        join.learn(&[span("cartservice", "cartservice")]);
        join.join_points(&mut points);
        assert_eq!(points[0].service, "demo-cartservice");
        assert_eq!(join.summary_line(), None);
    }
}

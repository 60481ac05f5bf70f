//! Metrics and logs joined to the traced service of their instance.
//!
//! Pod metrics and pod logs join the traces by service name. A resource without
//! `service.name` — kubeletstats' and cAdvisor's pod metrics, the filelog receiver's
//! lines — is named by its Kubernetes workload, which is not always the name the
//! application's SDKs give its spans (a chart's `demo-cartservice` beside the traces'
//! `cartservice`); its CPU, memory, logs and errors would then belong to a service no span
//! names. Spans name their instance too (the pod, else `service.instance.id`, else the
//! host, which in a pod is the pod's name): a metric point or log record whose service no
//! span names, of an instance whose spans name one service, takes that service. An
//! instance whose spans name two services (a sidecar that traces) joins nothing.
//!
//! The join is learned from the spans as they are read: each process learns from its own,
//! and tells the job's other processes the pairs it learned through a small dataflow
//! ([`share_pairs`]), since a job whose Kafka partitions split between processes may read
//! a pod's spans in one and its metrics in another. Points and records are joined when
//! their window closes ([`join_at_window_close`]), not as they are read: by then every
//! span of the window, and of any later time read so far, has been learned, so a pod's
//! first scrape joins even when it was read before the pod's first span. A record whose
//! window closed before any span of its instance was read (or before another process's
//! word of it arrived) keeps its name, and the run's summary says how many.
//!
//! A run ends by saying what it joined, and whether the metrics, joined, name the traced
//! services at all ([`ServiceJoin::coverage_line`]).
//!
//! **State:** per process, the services spans and metric points named (at most
//! [`SERVICES_KEPT`] each), and per instance the one service its spans named (at most
//! [`INSTANCES_KEPT`] instances); what was joined, counted for the run's summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use augur_operators::{LogRecord, MetricPoint, Span, window_fold};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::vec::{Broadcast, Input};
use timely::dataflow::{InputHandleVec, StreamVec};

/// Instances remembered: a bound on what a stream of made-up instance names costs.
pub const INSTANCES_KEPT: usize = 100_000;

/// Services remembered per signal: a bound on what a stream of made-up names costs.
pub const SERVICES_KEPT: usize = 10_000;

#[derive(Default)]
struct State {
    /// Services spans name.
    traced: HashSet<String>,
    /// Services metric points name, once joined.
    metered: HashSet<String>,
    /// The service of an instance's spans; `None` once its spans named two.
    of_instance: HashMap<String, Option<String>>,
    /// (service as named, traced service it took) → records.
    joined: BTreeMap<(String, String), u64>,
    /// Records of services no span names whose instance was not known (yet) → records; at
    /// most [`INSTANCES_KEPT`] services.
    unjoined: HashMap<String, u64>,
}

impl State {
    /// Notes that spans of `service` name `instance`; whether that was new (a service not
    /// traced before, an instance not known, or a second service of an instance).
    fn note(&mut self, service: &str, instance: &str) -> bool {
        let mut new = false;
        if !self.traced.contains(service) && self.traced.len() < SERVICES_KEPT {
            self.traced.insert(service.to_string());
            new = true;
        }
        if instance == service {
            return new;
        }
        let full = self.of_instance.len() >= INSTANCES_KEPT;
        match self.of_instance.get_mut(instance) {
            Some(known) if known.as_deref().is_some_and(|s| s != service) => {
                *known = None;
                true
            }
            Some(_) => new,
            None if !full => {
                self.of_instance
                    .insert(instance.to_string(), Some(service.to_string()));
                true
            }
            None => new,
        }
    }
}

/// `names`, sorted.
fn sorted(names: &HashSet<String>) -> Vec<&str> {
    let mut v: Vec<&str> = names.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
}

/// Builds, on this worker, the dataflow through which every worker tells every worker of
/// the job (in every process, itself included) the `(service, instance)` pairs its
/// process learned ([`ServiceJoin::learn`]); each arrives, as the workers step, in the
/// receiving process's `join` ([`ServiceJoin::learn_pairs`]). Every worker must build it,
/// in the same order relative to its other dataflows; the dataflow ends once every
/// worker has dropped the input returned.
pub fn share_pairs(
    worker: &mut timely::worker::Worker,
    join: Arc<ServiceJoin>,
) -> InputHandleVec<u64, (String, String)> {
    worker.dataflow::<u64, _, _>(|scope| {
        let (input, pairs) = scope.new_input::<(String, String)>();
        pairs
            .broadcast()
            .inspect(move |pair: &(String, String)| join.learn_pairs(std::slice::from_ref(pair)));
        input
    })
}

/// The metric points and log records of `streams`, joined ([`ServiceJoin::join_points`],
/// [`ServiceJoin::join_logs`]) when their window closes.
///
/// **In:** points and records stamped with their window's end, on the worker that read
/// them. **Out:** the same, each window's once the input frontier has passed it, renamed
/// where their service no span names and their instance's spans name one. **State:** the
/// open windows' points and records.
pub fn join_at_window_close<'s>(
    points: StreamVec<'s, u64, MetricPoint>,
    logs: StreamVec<'s, u64, LogRecord>,
    join: &Arc<ServiceJoin>,
) -> (
    StreamVec<'s, u64, MetricPoint>,
    StreamVec<'s, u64, LogRecord>,
) {
    (
        joined_at_close(points, "ServiceJoinPoints", join, ServiceJoin::join_points),
        joined_at_close(logs, "ServiceJoinLogs", join, ServiceJoin::join_logs),
    )
}

/// `stream`'s records, each window's given to `apply` when it closes.
fn joined_at_close<'s, R: Clone + 'static>(
    stream: StreamVec<'s, u64, R>,
    name: &str,
    join: &Arc<ServiceJoin>,
    apply: fn(&ServiceJoin, &mut [R]),
) -> StreamVec<'s, u64, R> {
    let join = Arc::clone(join);
    window_fold(
        stream,
        Pipeline,
        name,
        |open: &mut Vec<R>, r| open.push(r),
        move |_, mut records| {
            apply(&join, &mut records);
            records
        },
    )
}

/// See the module docs. Shared by a process's workers.
#[derive(Default)]
pub struct ServiceJoin(Mutex<State>);

impl ServiceJoin {
    /// Learns the services and instances of `spans`; returns the `(service, instance)`
    /// pairs this process had not seen, for the job's other processes
    /// ([`ServiceJoin::learn_pairs`]).
    pub fn learn(&self, spans: &[Span]) -> Vec<(String, String)> {
        let Ok(mut state) = self.0.lock() else {
            return Vec::new();
        };
        let mut new = Vec::new();
        let mut last: Option<(&str, &str)> = None;
        for span in spans {
            let pair = (span.service.as_str(), span.instance.as_str());
            // Spans come in runs of one resource.
            if last == Some(pair) {
                continue;
            }
            last = Some(pair);
            if state.note(pair.0, pair.1) {
                new.push((pair.0.to_string(), pair.1.to_string()));
            }
        }
        new
    }

    /// Learns `(service, instance)` pairs another process learned from its spans (a job
    /// whose Kafka partitions split between processes: a pod's spans may be read by one,
    /// its metrics by another).
    pub fn learn_pairs(&self, pairs: &[(String, String)]) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        for (service, instance) in pairs {
            state.note(service, instance);
        }
    }

    /// Renames the points whose service no span names to their instance's traced service.
    pub fn join_points(&self, points: &mut [MetricPoint]) {
        self.join(
            points
                .iter_mut()
                .map(|p| (&mut p.service, p.instance.as_str())),
            true,
        );
    }

    /// Renames the log records whose service no span names to their instance's traced
    /// service.
    pub fn join_logs(&self, logs: &mut [LogRecord]) {
        self.join(
            logs.iter_mut()
                .map(|r| (&mut r.service, r.instance.as_str())),
            false,
        );
    }

    /// Joins `records`; `metrics` notes the services they name, once joined.
    fn join<'a>(&self, records: impl Iterator<Item = (&'a mut String, &'a str)>, metrics: bool) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        let State {
            traced,
            metered,
            of_instance,
            joined,
            unjoined,
        } = &mut *state;
        for (service, instance) in records {
            if !traced.contains(service.as_str()) {
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
            if metrics && !metered.contains(service.as_str()) && metered.len() < SERVICES_KEPT {
                metered.insert(service.clone());
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
        // Records of a joined name whose window closed before any span of their instance
        // was read.
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
                "; in windows that closed before any span of their instance was read, kept their name: {}",
                crate::display::listed(&early, 8)
            )
        };
        Some(format!(
            "metrics and logs joined to the traced service of their instance (their service no span names): {}{early}",
            crate::display::listed(&pairs, 8)
        ))
    }

    /// Whether the metrics, joined, name the traced services, in one line; `None` when
    /// they name every one, or when there are no spans or no metrics. When they name
    /// none, both lists and how to fix it; else the traced services without metrics.
    pub fn coverage_line(&self) -> Option<String> {
        let state = self.0.lock().ok()?;
        if state.traced.is_empty() || state.metered.is_empty() {
            return None;
        }
        let traced = sorted(&state.traced);
        let unmetered: Vec<&str> = traced
            .iter()
            .copied()
            .filter(|n| !state.metered.contains(*n))
            .collect();
        let list = |names: &[&str]| crate::display::listed(names, 8);
        if unmetered.len() == traced.len() {
            return Some(format!(
                "metrics name none of the {} traced services ({}); they name {}: CPU, memory, network and disk are not joined to the traces. A metric resource without service.name is named by its Kubernetes workload: give the metrics the traces' service.name (the Collector's k8sattributes or resource processor)",
                traced.len(),
                list(&traced),
                list(&sorted(&state.metered))
            ));
        }
        (!unmetered.is_empty()).then(|| {
            format!(
                "traced services without metrics: {} (their CPU, memory, network and disk are not in the evidence)",
                list(&unmetered)
            )
        })
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

    /// A pod's first scrape read before its first span, in the same window: joined when the
    /// window closes, as every span of the window has been learned by then. A scrape whose
    /// window closed before any span of its pod was read keeps its name.
    #[test]
    fn a_point_read_before_its_pods_first_span_joins_when_its_window_closes() {
        use timely::dataflow::operators::vec::Input;
        use timely::dataflow::operators::{Inspect, Probe};
        let join = Arc::new(ServiceJoin::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        timely::execute_directly({
            let (join, seen) = (Arc::clone(&join), Arc::clone(&seen));
            move |worker| {
                let (mut points_in, mut logs_in, probe) = worker.dataflow::<u64, _, _>(|scope| {
                    let (points_in, points) = scope.new_input::<MetricPoint>();
                    let (logs_in, logs) = scope.new_input::<LogRecord>();
                    let (points, _) = join_at_window_close(points, logs, &join);
                    let (probe, _) = points
                        .inspect(move |p: &MetricPoint| {
                            if let Ok(mut seen) = seen.lock() {
                                seen.push((p.instance.clone(), p.service.clone()));
                            }
                        })
                        .probe();
                    (points_in, logs_in, probe)
                });
                // Window 1000: a pod's scrape whose window closes before its pod's spans
                // are read; window 2000: the cart pod's, read before its span.
                points_in.send(point("demo-cart", "cart-1"));
                points_in.advance_to(2000);
                logs_in.advance_to(2000);
                while probe.less_than(&2000) {
                    worker.step();
                }
                points_in.send(point("demo-cart", "cart-0"));
                worker.step();
                join.learn(&[span("cart", "cart-0"), span("cart", "cart-1")]);
                drop((points_in, logs_in));
                while worker.step() {}
            }
        });
        let mut names = seen.lock().map(|s| s.clone()).unwrap_or_default();
        names.sort();
        assert_eq!(
            names,
            [
                ("cart-0".to_string(), "cart".to_string()),
                ("cart-1".to_string(), "demo-cart".to_string())
            ]
        );
    }

    /// Two workers each with their own join, as two processes of a job: a pod's spans read
    /// by one, its metrics by the other. The pair the first learns reaches the second,
    /// which joins the metrics; and a second service of the instance, learned by the
    /// second, undoes the first's join too.
    #[test]
    fn pairs_learned_in_one_process_join_the_records_of_another() -> anyhow::Result<()> {
        let joined = |spans_by_worker: Vec<Vec<Span>>| -> anyhow::Result<Vec<String>> {
            let spans_by_worker = Arc::new(spans_by_worker);
            let results = timely::execute(timely::Config::process(2), move |worker| {
                let join = Arc::new(ServiceJoin::default());
                let mut input = share_pairs(worker, Arc::clone(&join));
                for pair in join.learn(&spans_by_worker[worker.index()]) {
                    input.send(pair);
                }
                drop(input);
                while worker.step_or_park(None) {}
                let mut points = vec![point("demo-cart", "cart-0")];
                join.join_points(&mut points);
                points[0].service.clone()
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .join();
            results
                .into_iter()
                .map(|r| r.map_err(|e| anyhow::anyhow!("{e}")))
                .collect()
        };
        let cart = vec![span("cart", "cart-0")];
        assert_eq!(joined(vec![cart.clone(), Vec::new()])?, ["cart", "cart"]);
        // Without the pairs of the other worker, the second would keep the workload's name.
        let alone = ServiceJoin::default();
        let mut points = vec![point("demo-cart", "cart-0")];
        alone.join_points(&mut points);
        assert_eq!(points[0].service, "demo-cart");
        // A sidecar that traces in the same pod, read by the other worker: no join anywhere.
        let sidecar = vec![span("mesh-proxy", "cart-0")];
        assert_eq!(joined(vec![cart, sidecar])?, ["demo-cart", "demo-cart"]);
        Ok(())
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
                "demo-cartservice → cartservice (1); in windows that closed before any span of their instance was read, kept their name: demo-cartservice (1)"
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

    #[test]
    fn metrics_that_name_no_traced_service_are_said() {
        let join = ServiceJoin::default();
        assert_eq!(join.coverage_line(), None);
        // Spans without an instance of their own: nothing joins by instance.
        join.learn(&[
            span("cart", "cart"),
            span("cart", "cart"),
            span("checkout", "checkout"),
        ]);
        assert_eq!(join.coverage_line(), None, "no metrics: nothing to join");
        join.join_points(&mut [
            point("demo-cartservice", "demo-cartservice"),
            point("demo-checkoutservice", "demo-checkoutservice"),
            point("redis", "redis"),
        ]);
        let line = join.coverage_line().expect("a mismatch is said");
        assert!(
            line.starts_with("metrics name none of the 2 traced services (cart, checkout)"),
            "{line}"
        );
        assert!(
            line.contains("demo-cartservice, demo-checkoutservice, redis"),
            "{line}"
        );
        // Once they join for one service, the others without metrics are listed.
        join.join_points(&mut [point("cart", "cart")]);
        assert_eq!(
            join.coverage_line().as_deref(),
            Some(
                "traced services without metrics: checkout (their CPU, memory, network and disk are not in the evidence)"
            )
        );
        join.join_points(&mut [point("checkout", "checkout")]);
        assert_eq!(join.coverage_line(), None);
    }
}

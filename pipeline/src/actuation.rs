//! The actuation policy: in, alerts as the decide step emits them (and, per closed window,
//! whether QoS still fails); out, CloudEvents 1.0 actuation commands for a cluster manager.
//!
//! What it does, per Sage §4.3 ("first adjust resources on the offending node, and only when
//! that is insufficient scale out"):
//! - a firing `root_cause` or `qos_violation_predicted` alert (kinds in `act_on`) whose
//!   probability is at least `min_probability` names a diagnosis: its top culprit's service
//!   and resource. Low-confidence alerts are never acted on.
//! - **scale up** the named resource first (`augur.scale_up`, `data.resource`, the allotment
//!   multiplied by `scale_up_factor`), when the resource can be scaled up (`scalable_resources`)
//!   and the service's allotment stays within its cap (`max_scale_up`, or the per-service
//!   `max_scale_up_per_service`);
//! - **scale out** (`augur.scale_out`, `replicas_delta: 1`) when it can't — no resource named,
//!   a resource like a queue or thread pool, the cap reached — or when scale-up wasn't enough:
//!   the same service is still the culprit of an open diagnosis while QoS still fails, within
//!   `escalate_within_ms` of its scale-up (see [`ActuationPolicy::on_window`]);
//!   at most `max_replicas_added` replicas per service;
//! - one command per service per `cooldown_ms` of event time, so an action has time to show.
//! - with a what-if model ([`ActuationPolicy::with_what_if`], Fluxion's inference graph):
//!   before a scale-up it asks "p99 if S had one more replica?" and "p99 if S's resource
//!   were scaled up?", and scales out instead when one more replica is predicted to bring
//!   the end-to-end p99 lower by more than [`WHAT_IF_MARGIN`] (e.g. the latency follows the
//!   per-replica load, not the CPU that Sage's counterfactual named).
//!
//! Ids are deterministic (the alert's id + the type, + the window for later commands of the
//! same diagnosis) so a consumer can drop duplicates after a restart.
//!
//! State: per service, the last command (time and type), the allotment factor per resource
//! (relative to the start) and the replicas added; the open (firing, confident) diagnoses.

pub mod autoscaler;
pub mod closed_loop;
pub mod what_if;

use std::collections::BTreeMap;

use augur_operators::decide::rfc3339;
use augur_operators::{Alert, AlertKind, EventTime, Resource, WindowSnapshot};
use serde::{Deserialize, Serialize};

/// `[actuation]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActuationConfig {
    /// Emit actuation commands at all (to the actions topic in `augur run`; applied to the
    /// simulated cluster in `augur demo`). Default true.
    pub enabled: bool,
    /// No second command for the same service within this much event time, ms: long enough
    /// for an action to be applied (1–5 s) and for queues to drain. Default 10000.
    pub cooldown_ms: u64,
    /// Namespace in the subject when the alert has no `namespace` label. Default `default`.
    pub namespace: String,
    /// CloudEvents `source`. Default `augur`.
    pub source: String,
    /// Alert kinds that carry a diagnosis to act on. Default `["root_cause",
    /// "qos_violation_predicted"]`.
    pub act_on: Vec<AlertKind>,
    /// Alerts with a lower probability are never acted on. Default 0.7.
    pub min_probability: f64,
    /// Resources that can be scaled up in place (CPU quota, memory limit, network bandwidth
    /// share); a culprit naming another resource (queue/thread pool, disk) is scaled out.
    /// Default `["cpu", "memory", "network"]`.
    pub scalable_resources: Vec<Resource>,
    /// A scale-up multiplies the resource's allotment by this. Default 2.0.
    pub scale_up_factor: f64,
    /// Cap on a service's allotment of one resource, as a multiple of its allotment at the
    /// start; beyond it the service is scaled out instead. Default 4.0.
    pub max_scale_up: f64,
    /// Per-service caps that override `max_scale_up` (1.0 = never scale this service up).
    /// Default none.
    pub max_scale_up_per_service: BTreeMap<String, f64>,
    /// A service that is still the culprit of an open diagnosis, with QoS still failing,
    /// this soon after its scale-up is scaled out, ms. Default 30000.
    pub escalate_within_ms: u64,
    /// At most this many replicas are added to one service. Default 4.
    pub max_replicas_added: u32,
    /// The CPU-utilization autoscaler baseline (`augur eval --closed-loop`).
    pub autoscaler: autoscaler::AutoscalerConfig,
    /// Run Fluxion's inference graph (the `fluxion` detector, `[detector.fluxion]`) beside
    /// the job's detector and ask it before each scale-up whether one more replica would
    /// lower the end-to-end p99 more (see [`WHAT_IF_MARGIN`]). Until the graph is trained
    /// (or loaded from a checkpoint) the policy keeps its default order. In a cluster it
    /// answers only in the process whose model worker runs `fluxion`. Default false.
    pub what_if: bool,
    /// In a window that violates QoS while no confident diagnosis is open and none gave a
    /// command (a crowd makes every service busy and none abnormal), apply the CPU
    /// autoscaler's rule (`[actuation.autoscaler]`) instead. Applies where the job sees
    /// windows beside alerts: `augur demo` and `augur eval --closed-loop`. Default true:
    /// on a load ramp it cuts Sage's violated time from 121–128 s to 9–11 s, and on step
    /// faults it makes no difference pooled (docs/experiments/closed-loop.md).
    pub fallback_autoscaler: bool,
}

impl Default for ActuationConfig {
    fn default() -> Self {
        ActuationConfig {
            enabled: true,
            cooldown_ms: 10_000,
            namespace: "default".to_string(),
            source: "augur".to_string(),
            act_on: vec![AlertKind::RootCause, AlertKind::QosViolationPredicted],
            min_probability: 0.7,
            scalable_resources: vec![Resource::Cpu, Resource::Memory, Resource::Network],
            scale_up_factor: 2.0,
            max_scale_up: 4.0,
            max_scale_up_per_service: BTreeMap::new(),
            escalate_within_ms: 30_000,
            max_replicas_added: 4,
            autoscaler: autoscaler::AutoscalerConfig::default(),
            what_if: false,
            fallback_autoscaler: true,
        }
    }
}

impl ActuationConfig {
    /// Semantic checks: `(field, reason)` of the first problem.
    pub fn check(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, reason: &str| Err((format!("actuation.{field}"), reason.into()));
        if !(0.0..=1.0).contains(&self.min_probability) {
            return fail("min_probability", "must be in [0, 1]");
        }
        if !(self.scale_up_factor.is_finite() && self.scale_up_factor > 1.0) {
            return fail("scale_up_factor", "must be above 1 (e.g. 2.0)");
        }
        if !(self.max_scale_up.is_finite() && self.max_scale_up >= 1.0) {
            return fail("max_scale_up", "must be at least 1");
        }
        for (service, cap) in &self.max_scale_up_per_service {
            if !(cap.is_finite() && *cap >= 1.0) {
                return fail(
                    &format!("max_scale_up_per_service.{service}"),
                    "must be at least 1 (1 = never scale up)",
                );
            }
        }
        self.autoscaler.check()
    }
}

/// A CloudEvents 1.0 event (structured JSON mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: String,
    pub time: String,
    pub datacontenttype: String,
    pub data: ActionData,
}

/// `augur.scale_out`.
pub const SCALE_OUT: &str = "augur.scale_out";
/// `augur.scale_up`.
pub const SCALE_UP: &str = "augur.scale_up";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionData {
    /// Replicas to add (scale-out); 0 for a scale-up.
    pub replicas_delta: i32,
    /// The resource to scale up (scale-up), or the one the diagnosis named (scale-out).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<String>,
    /// Scale-up: multiply the resource's current allotment (e.g. the CPU quota) by this.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scale_factor: Option<f64>,
    /// The id of the alert that caused the command.
    pub reason: String,
    pub service: String,
    /// The window whose close led to the command.
    pub window_end: EventTime,
    pub probability: f64,
    /// Why, for people: e.g. "still the culprit 12 s after a cpu scale-up".
    #[serde(default)]
    pub summary: String,
}

impl CloudEvent {
    pub fn is_scale_up(&self) -> bool {
        self.kind == SCALE_UP
    }
}

/// Scale out instead of up when one more replica's predicted p99 is below the scale-up's by
/// more than this fraction.
pub const WHAT_IF_MARGIN: f64 = 0.05;

/// Predicted end-to-end p99 under the two actions the policy chooses between.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WhatIfAnswer {
    pub p99_now_ms: f64,
    /// With one more replica of the service.
    pub p99_scale_out_ms: f64,
    /// With the service's `resource` allotment × `factor`.
    pub p99_scale_up_ms: f64,
}

/// A latency model the policy can ask before acting (Fluxion's what-if query).
pub trait WhatIfModel: Send {
    fn ask(&self, service: &str, resource: Resource, factor: f64) -> Option<WhatIfAnswer>;
}

/// What the policy remembers of one service.
#[derive(Clone, Debug, Default)]
struct ServiceState {
    last_at: Option<EventTime>,
    last_was_scale_up: bool,
    /// Allotment factor per resource, relative to the start (absent = 1).
    allotment: BTreeMap<Resource, f64>,
    replicas_added: u32,
}

pub struct ActuationPolicy {
    config: ActuationConfig,
    services: BTreeMap<String, ServiceState>,
    /// Firing, confident diagnoses by alert id.
    open: BTreeMap<String, Alert>,
    what_if: Option<Box<dyn WhatIfModel>>,
    /// With `fallback_autoscaler`: the CPU rule for violating windows without a command.
    fallback: Option<Box<autoscaler::Autoscaler>>,
}

impl ActuationPolicy {
    pub fn new(config: ActuationConfig) -> Self {
        let fallback = config
            .fallback_autoscaler
            .then(|| Box::new(autoscaler::Autoscaler::new(config.clone())));
        ActuationPolicy {
            config,
            services: BTreeMap::new(),
            open: BTreeMap::new(),
            what_if: None,
            fallback,
        }
    }

    /// Consults `model` before every scale-up (see the module doc).
    pub fn with_what_if(mut self, model: Box<dyn WhatIfModel>) -> Self {
        self.what_if = Some(model);
        self
    }

    /// Replaces (or removes) the what-if model, e.g. when a newer graph is trained.
    pub fn set_what_if(&mut self, model: Option<Box<dyn WhatIfModel>>) {
        self.what_if = model;
    }

    /// The command an alert calls for, if any. A resolved alert closes its diagnosis.
    pub fn decide(&mut self, alert: &Alert) -> Option<CloudEvent> {
        if alert.ends_at.is_some() {
            self.open.remove(&alert.id);
            return None;
        }
        if !self.config.enabled
            || !self.config.act_on.contains(&alert.kind)
            || alert.probability < self.config.min_probability
            || alert.culprits.is_empty()
        {
            return None;
        }
        self.open.insert(alert.id.clone(), alert.clone());
        self.act(alert, alert.window_end)
    }

    /// After the alerts of the window ending at `window_end`: while QoS still fails, an
    /// open diagnosis whose culprit's cooldown is over gets its next command — scale-out if
    /// the culprit was scaled up within `escalate_within_ms`, else another scale-up while
    /// the cap allows. Diagnoses are visited in id order, so the result is deterministic.
    pub fn on_window(&mut self, window_end: EventTime, violated: bool) -> Vec<CloudEvent> {
        if !self.config.enabled || !violated {
            return Vec::new();
        }
        let open: Vec<Alert> = self.open.values().cloned().collect();
        open.iter()
            .filter_map(|alert| self.act(alert, window_end))
            .collect()
    }

    /// With `fallback_autoscaler`: the CPU autoscaler's scale-outs for `window` when it
    /// violates QoS, no confident diagnosis is open (one being acted on keeps its own
    /// cooldowns) and the diagnoses gave no command for it (`decided` is what they gave).
    pub fn fallback(&mut self, window: &WindowSnapshot, decided: &[CloudEvent]) -> Vec<CloudEvent> {
        let quiet = self.open.is_empty() && decided.is_empty();
        match &mut self.fallback {
            Some(autoscaler) if self.config.enabled && window.violated() && quiet => {
                autoscaler.on_window(window)
            }
            _ => Vec::new(),
        }
    }

    /// Allotment factor of `resource` for `service` so far (1 = as at the start).
    pub fn allotment(&self, service: &str, resource: Resource) -> f64 {
        self.services
            .get(service)
            .and_then(|s| s.allotment.get(&resource).copied())
            .unwrap_or(1.0)
    }

    fn cap(&self, service: &str) -> f64 {
        self.config
            .max_scale_up_per_service
            .get(service)
            .copied()
            .unwrap_or(self.config.max_scale_up)
    }

    /// The next command for the alert's top culprit at `now`, if the cooldown allows one.
    fn act(&mut self, alert: &Alert, now: EventTime) -> Option<CloudEvent> {
        let culprit = alert.culprits.first()?;
        let service = culprit.service.clone();
        let cap = self.cap(&service);
        // Fluxion's what-if: would one more replica beat scaling the resource up?
        let prefer_out = match (&self.what_if, culprit.resource) {
            (Some(model), Some(r)) if self.config.scalable_resources.contains(&r) => model
                .ask(&service, r, self.config.scale_up_factor)
                .filter(|a| a.p99_scale_out_ms < a.p99_scale_up_ms * (1.0 - WHAT_IF_MARGIN)),
            _ => None,
        };
        let config = &self.config;
        let state = self.services.entry(service.clone()).or_default();
        if let Some(last) = state.last_at {
            if now < last.saturating_add(config.cooldown_ms) {
                return None;
            }
        }
        let resource = culprit.resource;
        let scalable = resource.filter(|r| config.scalable_resources.contains(r));
        let recently_scaled_up = state.last_was_scale_up
            && state
                .last_at
                .is_some_and(|t| now < t.saturating_add(config.escalate_within_ms));
        let up = scalable.and_then(|r| {
            let current = state.allotment.get(&r).copied().unwrap_or(1.0);
            let next = current * config.scale_up_factor;
            (next <= cap * (1.0 + 1e-9) && !recently_scaled_up && prefer_out.is_none())
                .then_some((r, next))
        });
        let (kind, replicas_delta, scale_factor, summary) = match up {
            Some((r, next)) => {
                state.allotment.insert(r, next);
                (
                    SCALE_UP,
                    0,
                    Some(config.scale_up_factor),
                    format!(
                        "{} allotment x{} (now x{next} of the start)",
                        r.as_str(),
                        config.scale_up_factor
                    ),
                )
            }
            None if state.replicas_added < config.max_replicas_added => {
                state.replicas_added += 1;
                let why = if let Some(a) = prefer_out {
                    format!(
                        "predicted p99 {:.1} ms with one more replica vs {:.1} ms after a {} scale-up (now {:.1} ms)",
                        a.p99_scale_out_ms,
                        a.p99_scale_up_ms,
                        resource.map_or("resource", |r| r.as_str()),
                        a.p99_now_ms
                    )
                } else if recently_scaled_up {
                    format!(
                        "still the culprit {:.0} s after a scale-up",
                        now.saturating_sub(state.last_at.unwrap_or(now)) as f64 / 1000.0
                    )
                } else {
                    match (resource, scalable) {
                        (None, _) => "no resource named".to_string(),
                        (Some(r), None) => format!("{} can't be scaled up", r.as_str()),
                        (Some(r), Some(_)) => format!("{} at its scale-up cap", r.as_str()),
                    }
                };
                (SCALE_OUT, 1, None, format!("+1 replica: {why}"))
            }
            None => return None,
        };
        state.last_at = Some(now);
        state.last_was_scale_up = kind == SCALE_UP;
        let namespace = alert
            .labels
            .get("namespace")
            .cloned()
            .unwrap_or_else(|| config.namespace.clone());
        let id = if now == alert.window_end {
            format!("{}-{kind}", alert.id)
        } else {
            format!("{}-{kind}-{now}", alert.id)
        };
        Some(CloudEvent {
            specversion: "1.0".to_string(),
            id,
            source: config.source.clone(),
            kind: kind.to_string(),
            subject: format!("{namespace}/{service}"),
            time: rfc3339(now),
            datacontenttype: "application/json".to_string(),
            data: ActionData {
                replicas_delta,
                resource: resource.map(|r| r.as_str().to_string()),
                scale_factor,
                reason: alert.id.clone(),
                service,
                window_end: now,
                probability: alert.probability,
                summary,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::{Culprit, ModelRef, Resource};
    use std::collections::BTreeMap;

    fn alert_of(
        kind: AlertKind,
        window_end: EventTime,
        service: &str,
        resource: Option<Resource>,
        probability: f64,
    ) -> Alert {
        Alert {
            id: Alert::id_for(window_end, "front", kind, "seer"),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at: rfc3339(window_end),
            ends_at: None,
            kind,
            service: "front".to_string(),
            probability,
            horizon_ms: 1000,
            culprits: vec![Culprit {
                service: service.to_string(),
                score: 1.0,
                resource,
                operation: None,
            }],
            window_end,
            model: ModelRef {
                name: "nsigma".to_string(),
                version: "1".to_string(),
            },
        }
    }

    fn alert(window_end: EventTime, service: &str, resource: Option<Resource>) -> Alert {
        alert_of(
            AlertKind::QosViolationPredicted,
            window_end,
            service,
            resource,
            0.9,
        )
    }

    fn resolved(mut alert: Alert, at: EventTime) -> Alert {
        alert.ends_at = Some(rfc3339(at));
        alert
    }

    #[test]
    fn scale_up_with_resource_scale_out_without_and_cooldown() {
        let mut p = ActuationPolicy::new(ActuationConfig::default());
        let e = p
            .decide(&alert(10_000, "db", Some(Resource::Cpu)))
            .expect("fires");
        assert_eq!(e.kind, SCALE_UP);
        assert_eq!(e.subject, "default/db");
        assert_eq!(e.data.resource.as_deref(), Some("cpu"));
        assert_eq!(e.data.scale_factor, Some(2.0));
        assert_eq!(e.data.replicas_delta, 0);
        assert_eq!(
            e.id,
            "10000-front-qos_violation_predicted-seer-augur.scale_up"
        );
        assert!(p.decide(&alert(15_000, "db", None)).is_none(), "cooldown");
        let e = p
            .decide(&alert(15_000, "cache", None))
            .expect("other service");
        assert_eq!(e.kind, SCALE_OUT, "no resource named: scale out");
        assert_eq!(e.data.replicas_delta, 1);
        assert!(
            p.decide(&alert(60_000, "db", None)).is_some(),
            "cooldown over"
        );
        assert!(
            p.decide(&resolved(alert(70_000, "x", None), 75_000))
                .is_none()
        );
    }

    #[test]
    fn root_cause_scales_up_first_then_out_when_still_the_culprit() {
        let mut p = ActuationPolicy::new(ActuationConfig::default());
        let rc = alert_of(
            AlertKind::RootCause,
            10_000,
            "tier-3",
            Some(Resource::Cpu),
            0.95,
        );
        let first = p.decide(&rc).expect("acts on a confident root cause");
        assert_eq!(first.kind, SCALE_UP);
        assert!((p.allotment("tier-3", Resource::Cpu) - 2.0).abs() < 1e-9);
        // QoS still fails: nothing during the cooldown.
        for t in (11_000..20_000).step_by(1000) {
            assert!(p.on_window(t, true).is_empty(), "cooldown at {t}");
        }
        // Not while QoS holds.
        assert!(p.on_window(20_000, false).is_empty());
        // Still the culprit after the cooldown, within escalate_within_ms: scale out.
        let next = p.on_window(21_000, true);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].kind, SCALE_OUT);
        assert_eq!(next[0].data.service, "tier-3");
        assert_eq!(next[0].data.reason, rc.id);
        assert!(next[0].data.summary.contains("after a scale-up"));
        assert_ne!(next[0].id, first.id);
        // After the resolution nothing more comes from that diagnosis.
        assert!(p.decide(&resolved(rc.clone(), 25_000)).is_none());
        assert!(p.on_window(40_000, true).is_empty());
    }

    #[test]
    fn resources_that_cant_be_scaled_up_and_caps_scale_out() {
        let mut config = ActuationConfig::default();
        config
            .max_scale_up_per_service
            .insert("pinned".to_string(), 1.0);
        config.max_scale_up = 2.0;
        let mut p = ActuationPolicy::new(config);
        let q = p
            .decide(&alert(10_000, "pool", Some(Resource::Queue)))
            .expect("queue");
        assert_eq!(q.kind, SCALE_OUT);
        assert_eq!(q.data.resource.as_deref(), Some("queue"));
        let pinned = p
            .decide(&alert(10_000, "pinned", Some(Resource::Cpu)))
            .expect("pinned");
        assert_eq!(pinned.kind, SCALE_OUT, "per-service cap 1.0");
        // Global cap 2.0: one doubling, then (a new diagnosis long after) scale out.
        let a = p
            .decide(&alert(10_000, "db", Some(Resource::Memory)))
            .expect("db");
        assert_eq!(a.kind, SCALE_UP);
        let b = p
            .decide(&alert(100_000, "db", Some(Resource::Memory)))
            .expect("db again");
        assert_eq!(b.kind, SCALE_OUT, "cap reached");
    }

    #[test]
    fn low_confidence_and_other_kinds_are_ignored() {
        let mut p = ActuationPolicy::new(ActuationConfig::default());
        let weak = alert_of(AlertKind::RootCause, 10_000, "db", Some(Resource::Cpu), 0.5);
        assert!(p.decide(&weak).is_none(), "below min_probability");
        assert!(p.on_window(30_000, true).is_empty(), "no open diagnosis");
        let qos = alert_of(AlertKind::QosViolation, 10_000, "db", None, 1.0);
        assert!(p.decide(&qos).is_none(), "not a diagnosis kind");
        let mut none = alert(10_000, "db", None);
        none.culprits.clear();
        assert!(p.decide(&none).is_none(), "no culprit");
        let off = ActuationConfig {
            enabled: false,
            ..ActuationConfig::default()
        };
        assert!(
            ActuationPolicy::new(off)
                .decide(&alert(1, "db", Some(Resource::Cpu)))
                .is_none()
        );
    }

    #[test]
    fn replicas_added_are_capped() {
        let config = ActuationConfig {
            max_replicas_added: 2,
            cooldown_ms: 1000,
            ..ActuationConfig::default()
        };
        let mut p = ActuationPolicy::new(config);
        let outs = (0..5)
            .filter_map(|i| p.decide(&alert(10_000 * (i + 1), "db", None)))
            .count();
        assert_eq!(outs, 2);
    }

    #[test]
    fn config_checks_name_the_field() {
        let bad = ActuationConfig {
            scale_up_factor: 1.0,
            ..ActuationConfig::default()
        };
        let (field, _) = bad.check().expect_err("factor 1");
        assert_eq!(field, "actuation.scale_up_factor");
        assert!(ActuationConfig::default().check().is_ok());
    }

    /// `api` at `cpu` utilization on 2 replicas, QoS violated or not.
    fn busy_window(end: EventTime, cpu: f64, violated: bool) -> WindowSnapshot {
        WindowSnapshot {
            qos: vec![augur_operators::QosVerdict {
                window_end: end,
                entry: "api".to_string(),
                requests: 100,
                errors: 0,
                latency_ms: [1.0; 5],
                quantile: 0.99,
                slo_ms: 1.0,
                measured_ms: if violated { 2.0 } else { 0.5 },
                violated,
            }],
            ..autoscaler::tests::window(end, cpu, 2)
        }
    }

    #[test]
    fn the_autoscaler_fallback_acts_only_on_violations_no_diagnosis_answered() {
        let config = ActuationConfig {
            fallback_autoscaler: true,
            ..ActuationConfig::default()
        };
        let mut p = ActuationPolicy::new(config);
        // Busy but within the SLO: the fallback waits for a violation.
        assert!(p.fallback(&busy_window(1000, 1.4, false), &[]).is_empty());
        // A diagnosis gave a command for this window: nothing more.
        let decided = p
            .decide(&alert_of(
                AlertKind::RootCause,
                2000,
                "db",
                Some(Resource::Cpu),
                0.9,
            ))
            .into_iter()
            .collect::<Vec<_>>();
        assert_eq!(decided.len(), 1);
        assert!(
            p.fallback(&busy_window(2000, 1.4, true), &decided)
                .is_empty()
        );
        // Nor while that diagnosis is open, in cooldown windows without a command.
        assert!(p.fallback(&busy_window(3000, 1.4, true), &[]).is_empty());
        // Violated, no diagnosis open: the CPU rule scales the busy service out.
        let mut p = ActuationPolicy::new(ActuationConfig {
            fallback_autoscaler: true,
            ..ActuationConfig::default()
        });
        let out = p.fallback(&busy_window(3000, 1.4, true), &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, SCALE_OUT);
        assert_eq!(out[0].data.service, "api");
        // Off when configured so.
        let mut off = ActuationPolicy::new(ActuationConfig {
            fallback_autoscaler: false,
            ..ActuationConfig::default()
        });
        assert!(off.fallback(&busy_window(3000, 1.4, true), &[]).is_empty());
    }
}

//! The CPU-utilization autoscaler baseline (Kubernetes HPA-style), for the closed-loop
//! experiment: in, every closed window; out, `augur.scale_out` CloudEvents.
//!
//! Per service, HPA's rule: `desired = ceil(replicas × utilization / target)`, acted on when
//! `utilization / target` leaves `1 ± tolerance`; only scale-out (HPA's scale-down waits out a
//! 5-minute stabilization window, longer than the faults it is compared on). Utilization is
//! the median across replicas of their mean CPU use in the window (the snapshot keeps
//! min/median/p90/max, not the mean; with two replicas the median is the mean).
//! State: per service, the last command's time (the `[actuation] cooldown_ms` applies, as
//! HPA's sync period and pod start-up do) and the replicas added (`max_replicas_added`).

use std::collections::BTreeMap;

use augur_operators::decide::rfc3339;
use augur_operators::{EventTime, Resource, WindowSnapshot};
use serde::{Deserialize, Serialize};

use super::{ActionData, ActuationConfig, CloudEvent, SCALE_OUT};

/// `[actuation.autoscaler]`: the CPU-threshold autoscaler baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscalerConfig {
    /// Target CPU utilization (fraction of the instance's CPU limit). Default 0.7.
    pub target_cpu: f64,
    /// No action while utilization / target is within 1 ± this (Kubernetes' default). Default 0.1.
    pub tolerance: f64,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            target_cpu: 0.7,
            tolerance: 0.1,
        }
    }
}

impl AutoscalerConfig {
    pub fn check(&self) -> Result<(), (String, String)> {
        if !(self.target_cpu.is_finite() && self.target_cpu > 0.0) {
            return Err((
                "actuation.autoscaler.target_cpu".into(),
                "must be positive (e.g. 0.7)".into(),
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err((
                "actuation.autoscaler.tolerance".into(),
                "must be at least 0".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Scaled {
    last_at: Option<EventTime>,
    added: u32,
}

pub struct Autoscaler {
    config: ActuationConfig,
    services: BTreeMap<String, Scaled>,
}

impl Autoscaler {
    pub fn new(config: ActuationConfig) -> Self {
        Autoscaler {
            config,
            services: BTreeMap::new(),
        }
    }

    /// The scale-outs one closed window calls for, in service order.
    pub fn on_window(&mut self, window: &WindowSnapshot) -> Vec<CloudEvent> {
        let target = &self.config.autoscaler;
        let mut out = Vec::new();
        for s in &window.services {
            let utilization = s.usage[Resource::Cpu.index()][1];
            let ratio = utilization / target.target_cpu;
            if s.replicas == 0 || ratio <= 1.0 + target.tolerance {
                continue;
            }
            let state = self.services.entry(s.service.clone()).or_default();
            if state
                .last_at
                .is_some_and(|t| window.window_end < t.saturating_add(self.config.cooldown_ms))
            {
                continue;
            }
            let replicas = f64::from(s.replicas);
            let desired = (replicas * ratio).ceil() as u32;
            let delta = desired.saturating_sub(s.replicas).min(
                self.config.max_replicas_added - state.added.min(self.config.max_replicas_added),
            );
            if delta == 0 {
                continue;
            }
            state.added += delta;
            state.last_at = Some(window.window_end);
            let kind = SCALE_OUT;
            out.push(CloudEvent {
                specversion: "1.0".to_string(),
                id: format!("{}-{}-autoscaler-{kind}", window.window_end, s.service),
                source: self.config.source.clone(),
                kind: kind.to_string(),
                subject: format!("{}/{}", self.config.namespace, s.service),
                time: rfc3339(window.window_end),
                datacontenttype: "application/json".to_string(),
                data: ActionData {
                    replicas_delta: i32::try_from(delta).unwrap_or(i32::MAX),
                    resource: Some(Resource::Cpu.as_str().to_string()),
                    scale_factor: None,
                    reason: format!("{}-{}-cpu", window.window_end, s.service),
                    service: s.service.clone(),
                    window_end: window.window_end,
                    probability: 1.0,
                    summary: format!(
                        "CPU {:.0} % over the {:.0} % target: {} -> {desired} replicas",
                        utilization * 100.0,
                        target.target_cpu * 100.0,
                        s.replicas
                    ),
                },
            });
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use augur_operators::ServiceFeatures;

    use super::*;

    /// One service, `api`, at `cpu` utilization on `replicas` replicas (no QoS verdict).
    pub(crate) fn window(end: EventTime, cpu: f64, replicas: u32) -> WindowSnapshot {
        let mut usage = [[0.0; 4]; 5];
        usage[Resource::Cpu.index()] = [cpu, cpu, cpu, cpu];
        WindowSnapshot {
            window_end: end,
            services: vec![ServiceFeatures {
                window_end: end,
                service: "api".to_string(),
                requests: 100,
                latency_ms: [1.0; 5],
                outstanding: 1.0,
                replicas,
                usage,
                ..Default::default()
            }],
            ..WindowSnapshot::default()
        }
    }

    #[test]
    fn hpa_rule_with_tolerance_cooldown_and_cap() {
        let mut a = Autoscaler::new(ActuationConfig::default());
        assert!(
            a.on_window(&window(1000, 0.75, 2)).is_empty(),
            "within 10 %"
        );
        let e = a.on_window(&window(2000, 1.4, 2));
        assert_eq!(e.len(), 1);
        // ceil(2 × 1.4 / 0.7) = 4 replicas: +2.
        assert_eq!(e[0].data.replicas_delta, 2);
        assert_eq!(e[0].kind, SCALE_OUT);
        assert!(a.on_window(&window(5000, 1.4, 4)).is_empty(), "cooldown");
        // Cap: 4 added at most.
        let e = a.on_window(&window(20_000, 2.1, 4));
        assert_eq!(e[0].data.replicas_delta, 2);
        assert!(a.on_window(&window(40_000, 2.1, 6)).is_empty(), "cap");
    }
}

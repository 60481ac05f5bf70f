//! The closed loop of the simulator: in, the job's alerts, closed windows and output
//! frontier (on the main thread, through [`crate::run::JobFeedback`]); out, actuation
//! commands to the [`crate::source::simulator::SimulatorSource`] together with how far the
//! decisions are complete.
//!
//! Event time is kept as live: a command decided on the window ending at `E` is decided when
//! that window closes, at `E + allowed_lateness` (the watermark that closed it), and the
//! simulator applies it after its actuation delay. When the frontier says every window
//! before `F` has been handed over, the loop runs the actuator over those windows in order
//! (a window's alerts, then the window itself) and sends the commands with `through = F`;
//! the simulator never runs past `F + allowed_lateness + the shortest actuation delay`, so
//! every command arrives before its time and a run is deterministic per seed.
//!
//! State: alerts and windows not yet covered by the frontier, and the actuator's own.

use std::collections::BTreeMap;

use augur_connectors::simulator::{RuntimeAction, RuntimeCommand};
use augur_operators::{Alert, EventTime, Resource, WindowSnapshot};
use crossbeam_channel::Sender;

use super::autoscaler::Autoscaler;
use super::{ActuationConfig, ActuationPolicy, CloudEvent, SCALE_UP, WhatIfModel};
use crate::run::JobFeedback;
use crate::source::simulator::SimFeedback;

/// Who decides the actions.
pub enum Actuator {
    /// Nobody (the "no actuation" arm): windows are only passed through.
    Off,
    /// The actuation policy over the detector's diagnoses.
    Policy(ActuationPolicy),
    /// The CPU-utilization autoscaler baseline.
    Autoscaler(Autoscaler),
}

/// Which [`Actuator`] decides, before it is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActuatorKind {
    Policy,
    Off,
    Autoscaler,
}

impl ActuatorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActuatorKind::Policy => "policy",
            ActuatorKind::Off => "off",
            ActuatorKind::Autoscaler => "autoscaler",
        }
    }
}

impl std::fmt::Display for ActuatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Actuator {
    pub fn of(kind: ActuatorKind, config: &ActuationConfig) -> Actuator {
        match kind {
            ActuatorKind::Off => Actuator::Off,
            ActuatorKind::Policy => Actuator::Policy(ActuationPolicy::new(config.clone())),
            ActuatorKind::Autoscaler => Actuator::Autoscaler(Autoscaler::new(config.clone())),
        }
    }

    /// The policy consults `model` (Fluxion's what-if) before each scale-up; other
    /// actuators ignore it.
    pub fn with_what_if(self, model: Option<Box<dyn WhatIfModel>>) -> Actuator {
        match (self, model) {
            (Actuator::Policy(policy), Some(model)) => Actuator::Policy(policy.with_what_if(model)),
            (other, _) => other,
        }
    }
}

/// Sees each command as it is decided.
type ActionHook = Box<dyn FnMut(&CloudEvent)>;

pub struct ClosedLoop {
    actuator: Actuator,
    lateness_ms: u64,
    alerts: BTreeMap<EventTime, Vec<Alert>>,
    windows: BTreeMap<EventTime, WindowSnapshot>,
    to_sim: Sender<SimFeedback>,
    on_action: Option<ActionHook>,
}

impl ClosedLoop {
    pub fn new(actuator: Actuator, lateness_ms: u64, to_sim: Sender<SimFeedback>) -> Self {
        ClosedLoop {
            actuator,
            lateness_ms,
            alerts: BTreeMap::new(),
            windows: BTreeMap::new(),
            to_sim,
            on_action: None,
        }
    }

    /// Calls `f` with every command as it is decided (the demo prints them).
    pub fn on_action(mut self, f: impl FnMut(&CloudEvent) + 'static) -> Self {
        self.on_action = Some(Box::new(f));
        self
    }

    fn decide(&mut self, window_end: EventTime) -> Vec<CloudEvent> {
        let mut out = Vec::new();
        let alerts = self.alerts.remove(&window_end).unwrap_or_default();
        let window = self.windows.remove(&window_end);
        match &mut self.actuator {
            Actuator::Off => {}
            Actuator::Policy(policy) => {
                out.extend(alerts.iter().filter_map(|a| policy.decide(a)));
                if let Some(w) = &window {
                    out.extend(policy.on_window(window_end, w.violated()));
                    let fallback = policy.fallback(w, &out);
                    out.extend(fallback);
                }
            }
            Actuator::Autoscaler(autoscaler) => {
                if let Some(w) = &window {
                    out.extend(autoscaler.on_window(w));
                }
            }
        }
        out
    }
}

/// The simulator command of an actuation event decided at `decided_ms`.
pub fn command_of(event: &CloudEvent, decided_ms: EventTime) -> RuntimeCommand {
    let action = if event.kind == SCALE_UP {
        let resource = event
            .data
            .resource
            .as_deref()
            .and_then(|r| serde_json::from_value::<Resource>(serde_json::json!(r)).ok())
            .unwrap_or(Resource::Cpu);
        RuntimeAction::ScaleUp {
            resource,
            factor: event.data.scale_factor.unwrap_or(2.0),
        }
    } else {
        RuntimeAction::ScaleOut {
            replicas: u32::try_from(event.data.replicas_delta.max(1)).unwrap_or(1),
        }
    };
    RuntimeCommand {
        id: event.id.clone(),
        service: event.data.service.clone(),
        decided_ms,
        action,
    }
}

impl JobFeedback for ClosedLoop {
    fn alert(&mut self, alert: &Alert, emitted_at: EventTime) {
        self.alerts
            .entry(emitted_at)
            .or_default()
            .push(alert.clone());
    }

    fn window(&mut self, window: &WindowSnapshot) {
        self.windows.insert(window.window_end, window.clone());
    }

    fn frontier(&mut self, frontier: EventTime) {
        let mut ends: Vec<EventTime> = self
            .alerts
            .range(..frontier)
            .map(|(t, _)| *t)
            .chain(self.windows.range(..frontier).map(|(t, _)| *t))
            .collect();
        ends.sort_unstable();
        ends.dedup();
        let mut commands = Vec::new();
        for end in ends {
            for event in self.decide(end) {
                if let Some(f) = self.on_action.as_mut() {
                    f(&event);
                }
                commands.push(command_of(&event, end + self.lateness_ms));
            }
        }
        // The simulator may have finished; nothing to tell it then.
        let _ = self.to_sim.send(SimFeedback {
            through: frontier,
            commands,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::decide::rfc3339;
    use augur_operators::{AlertKind, Culprit, ModelRef, QosVerdict};

    fn window(end: EventTime, violated: bool) -> WindowSnapshot {
        WindowSnapshot {
            window_end: end,
            window_ms: 1000,
            qos: vec![QosVerdict {
                window_end: end,
                entry: "front".into(),
                requests: 10,
                errors: 0,
                latency_ms: [1.0; 5],
                quantile: 0.99,
                slo_ms: 10.0,
                measured_ms: if violated { 50.0 } else { 5.0 },
                violated,
            }],
            ..WindowSnapshot::default()
        }
    }

    #[test]
    fn commands_come_in_window_order_at_close_time_with_the_frontier() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut lp = ClosedLoop::new(
            Actuator::Policy(ActuationPolicy::new(ActuationConfig::default())),
            2000,
            tx,
        );
        let alert = Alert {
            id: "5000-front-root_cause".into(),
            labels: Default::default(),
            annotations: Default::default(),
            starts_at: rfc3339(5000),
            ends_at: None,
            kind: AlertKind::RootCause,
            service: "front".into(),
            probability: 0.9,
            horizon_ms: 0,
            culprits: vec![Culprit {
                service: "db".into(),
                score: 1.0,
                resource: Some(Resource::Cpu),
                operation: None,
            }],
            window_end: 5000,
            model: ModelRef {
                name: "x".into(),
                version: "1".into(),
            },
        };
        for end in (1000..=20_000).step_by(1000) {
            lp.window(&window(end, end >= 5000));
        }
        lp.alert(&alert, 5000);
        lp.frontier(5000);
        let first = rx.try_recv().expect("feedback");
        assert_eq!(first.through, 5000);
        assert!(first.commands.is_empty(), "window 5000 isn't complete yet");
        lp.frontier(20_001);
        let next = rx.try_recv().expect("feedback");
        assert_eq!(next.through, 20_001);
        let kinds: Vec<(&str, u64)> = next
            .commands
            .iter()
            .map(|c| (c.action.kind(), c.decided_ms))
            .collect();
        // Scale-up when the alert's window closes (5000 + 2000 lateness); still violating
        // after the 10 s cooldown: scale out.
        assert_eq!(kinds, vec![("scale_up", 7000), ("scale_out", 17_000)]);
    }
}

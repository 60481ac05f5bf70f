//! Runtime commands on the running cluster: in, [`RuntimeCommand`]s (scale out, scale up a
//! resource) decided at some event time; out, the change applied after its actuation delay
//! and recorded in the labels (`changes`). State: the pending commands by apply time.

use std::collections::BTreeMap;

use augur_operators::records::Resource;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{MS, Simulator};
use crate::simulator::commands::{ActuationDelays, RuntimeAction, RuntimeCommand};
use crate::simulator::labels::ChangeLabel;

#[derive(Debug)]
pub(super) struct Actuation {
    /// Commands not yet applied, by (due time ns, arrival order).
    pending: BTreeMap<(u64, u64), RuntimeCommand>,
    seq: u64,
    /// Draws the delays; a stream of its own, so commands leave the simulation's
    /// random stream untouched.
    rng: Xoshiro256PlusPlus,
    delays: ActuationDelays,
}

impl Actuation {
    pub(super) fn new(seed: u64, delays: ActuationDelays) -> Self {
        Actuation {
            pending: BTreeMap::new(),
            seq: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xac7_0a7e_0000_0001),
            delays,
        }
    }

    /// When the earliest pending command is due; `u64::MAX` when none is.
    pub(super) fn next_due_ns(&self) -> u64 {
        self.pending
            .first_key_value()
            .map_or(u64::MAX, |(k, _)| k.0)
    }
}

impl Simulator {
    /// Schedules `command` at `decided_ms` + its actuation delay (drawn on the actuation
    /// random stream), or now if that has passed — which only happens when the caller let
    /// the simulation run further ahead of its decisions than the shortest delay.
    pub fn command(&mut self, command: RuntimeCommand) {
        let (lo, hi) = match command.action {
            RuntimeAction::ScaleOut { .. } => self.actuation.delays.scale_out_ms,
            RuntimeAction::ScaleUp { .. } => self.actuation.delays.scale_up_ms,
        };
        let delay = if hi > lo {
            self.actuation.rng.random_range(lo..=hi)
        } else {
            lo
        };
        let due_ns = (command.decided_ms.saturating_add(delay) * MS).max(self.now_ns);
        self.actuation.seq += 1;
        self.actuation
            .pending
            .insert((due_ns, self.actuation.seq), command);
    }

    /// Applies the earliest pending command (its time has come).
    pub(super) fn apply_command(&mut self) {
        let Some(((due_ns, _), command)) = self.actuation.pending.pop_first() else {
            return;
        };
        let detail = match self.model.service_index(&command.service) {
            None => format!("ignored: unknown service {:?}", command.service),
            Some(s) => match &command.action {
                RuntimeAction::ScaleOut { replicas } => {
                    let before = self.cluster.services[s as usize].active.len();
                    for _ in 0..*replicas {
                        self.add_replica(s);
                    }
                    format!(
                        "replicas {before} -> {}",
                        self.cluster.services[s as usize].active.len()
                    )
                }
                RuntimeAction::ScaleUp { resource, factor } => self.scale_up(s, *resource, *factor),
            },
        };
        self.changes.applied.push(ChangeLabel {
            kind: command.action.kind().to_string(),
            service: command.service.clone(),
            at_ms: due_ns / MS,
            detail: format!(
                "{detail}; action {} decided at {} ms",
                command.id, command.decided_ms
            ),
        });
    }

    /// Multiplies one resource allotment of service `s`; returns the label detail.
    fn scale_up(&mut self, s: u32, resource: Resource, factor: f64) -> String {
        let allotment = &mut self.cluster.services[s as usize].allotment;
        let slot = match resource {
            Resource::Cpu => &mut allotment.cpu,
            Resource::Memory => &mut allotment.memory,
            Resource::Network => &mut allotment.network,
            other => return format!("ignored: {} can't be scaled up", other.as_str()),
        };
        if !(factor.is_finite() && factor > 0.0) {
            return format!("ignored: factor {factor}");
        }
        let before = *slot;
        *slot = before * factor;
        if resource == Resource::Cpu {
            let service = &mut self.model.services[s as usize];
            let cores_before = service.cores;
            service.cores *= factor;
            let slots = service.cores.ceil().max(1.0) as u32;
            for i in 0..self.cluster.services[s as usize].all.len() {
                let r = self.cluster.services[s as usize].all[i] as usize;
                self.cluster.replicas[r].cpu_slots = slots;
                // More cores: calls waiting for one start now.
                while self.cluster.replicas[r].cpu_busy < self.cluster.replicas[r].cpu_slots {
                    let Some((next, post)) = self.cluster.replicas[r].run_queue.pop_front() else {
                        break;
                    };
                    self.request_core(next, post);
                }
            }
            return format!(
                "cpu cores {cores_before} -> {} per replica",
                self.model.services[s as usize].cores
            );
        }
        format!(
            "{} allotment x{before} -> x{}",
            resource.as_str(),
            before * factor
        )
    }
}

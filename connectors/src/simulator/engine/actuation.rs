//! Runtime commands on the running cluster: in, [`RuntimeCommand`]s (scale out, scale up a
//! resource) decided at some event time; out, the change applied after its actuation delay
//! and recorded in the labels (`changes`). State: the pending commands by apply time.

use rand::Rng;

use super::{CPU, MEMORY, MS, NETWORK, Simulator};
use crate::simulator::commands::{RuntimeAction, RuntimeCommand};
use crate::simulator::labels::ChangeLabel;
use augur_operators::records::Resource;

impl Simulator {
    /// Schedules `command` at `decided_ms` + its actuation delay (drawn on the actuation
    /// random stream), or now if that has passed — which only happens when the caller let
    /// the simulation run further ahead of its decisions than the shortest delay.
    pub fn command(&mut self, command: RuntimeCommand) {
        let (lo, hi) = match command.action {
            RuntimeAction::ScaleOut { .. } => self.delays.scale_out_ms,
            RuntimeAction::ScaleUp { .. } => self.delays.scale_up_ms,
        };
        let delay = if hi > lo {
            self.actuation_rng.random_range(lo..=hi)
        } else {
            lo
        };
        let due_ns = (command.decided_ms.saturating_add(delay) * MS).max(self.now_ns);
        self.command_seq += 1;
        self.commands.insert((due_ns, self.command_seq), command);
    }

    /// Commands scheduled and not yet applied.
    pub fn pending_commands(&self) -> usize {
        self.commands.len()
    }

    /// Applies the earliest pending command (its time has come).
    pub(super) fn apply_command(&mut self) {
        let Some(((due_ns, _), command)) = self.commands.pop_first() else {
            return;
        };
        let detail = match self.model.service_index(&command.service) {
            None => format!("ignored: unknown service {:?}", command.service),
            Some(s) => match &command.action {
                RuntimeAction::ScaleOut { replicas } => {
                    let before = self.service_active[s as usize].len();
                    for _ in 0..*replicas {
                        self.add_replica(s);
                    }
                    format!(
                        "replicas {before} -> {}",
                        self.service_active[s as usize].len()
                    )
                }
                RuntimeAction::ScaleUp { resource, factor } => self.scale_up(s, *resource, *factor),
            },
        };
        self.change_labels.push(ChangeLabel {
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
        let slot = match resource {
            Resource::Cpu => CPU,
            Resource::Memory => MEMORY,
            Resource::Network => NETWORK,
            other => return format!("ignored: {} can't be scaled up", other.as_str()),
        };
        if !(factor.is_finite() && factor > 0.0) {
            return format!("ignored: factor {factor}");
        }
        let before = self.allotment[s as usize][slot];
        self.allotment[s as usize][slot] = before * factor;
        if slot == CPU {
            let service = &mut self.model.services[s as usize];
            let cores_before = service.cores;
            service.cores *= factor;
            let slots = service.cores.ceil().max(1.0) as u32;
            for i in 0..self.service_replicas[s as usize].len() {
                let r = self.service_replicas[s as usize][i] as usize;
                self.replicas[r].cpu_slots = slots;
                // More cores: calls waiting for one start now.
                while self.replicas[r].cpu_busy < self.replicas[r].cpu_slots {
                    let Some((next, post)) = self.replicas[r].run_queue.pop_front() else {
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

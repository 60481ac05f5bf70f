//! Injected faults and load spikes: each is scheduled as a start and an end boundary; the
//! active ones change how calls are served (faults) or how fast requests arrive (spikes).
//! A random fault plan is drawn ahead as far as the simulation runs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::super::faults::{FaultKind, FaultSpec, Planned, RandomPlanner};
use super::super::labels::{FaultLabel, SpikeLabel};
use super::super::topology::SpikeSpec;
use super::{MS, SimError, Simulator};

/// Which replicas of its service a fault hits.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scope {
    /// One replica, by index.
    Replica(u32),
    /// Every replica with an index below `limit`: for node-local contention, those running
    /// when it started (set at the start; replicas started later run on other nodes);
    /// otherwise all.
    Service { limit: u32 },
}

/// A fault resolved to indices.
#[derive(Clone, Debug)]
pub(super) struct Fault {
    pub(super) kind: FaultKind,
    pub(super) service: u32,
    scope: Scope,
    /// For network faults: only calls from this service.
    pub(super) caller: Option<u32>,
    magnitude: f64,
    start_ns: u64,
    end_ns: u64,
    /// Linear ramp to full strength after the start, ns (0: a step).
    ramp_ns: u64,
    label: FaultLabel,
}

impl Fault {
    pub(super) fn hits(&self, service: u32, replica: u32) -> bool {
        self.service == service
            && match self.scope {
                Scope::Replica(r) => r == replica,
                Scope::Service { limit } => replica < limit,
            }
    }

    /// Contention on the node (CPU, memory bandwidth/cache, the network link), as opposed
    /// to faults in the software, which every replica carries.
    fn node_local(&self) -> bool {
        matches!(
            self.kind,
            FaultKind::CpuContention
                | FaultKind::MemoryContention
                | FaultKind::NetworkDelay
                | FaultKind::NetworkLoss
        )
    }

    pub(super) fn progress(&self, now_ns: u64) -> f64 {
        let span = self.end_ns.saturating_sub(self.start_ns).max(1) as f64;
        (now_ns.saturating_sub(self.start_ns) as f64 / span).min(1.0)
    }

    /// The magnitude in effect at `now_ns`: full for a step fault; during a ramp, a
    /// factor (`> 1` kinds) grows linearly from 1 and a share or delay from 0.
    pub(super) fn magnitude_at(&self, now_ns: u64) -> f64 {
        if self.ramp_ns == 0 {
            return self.magnitude;
        }
        let s = (now_ns.saturating_sub(self.start_ns) as f64 / self.ramp_ns as f64).min(1.0);
        match self.kind {
            // Already grows over its whole duration (`progress`).
            FaultKind::MemoryLeak => self.magnitude,
            FaultKind::CpuContention
            | FaultKind::MemoryContention
            | FaultKind::ThreadPoolShrink => 1.0 + (self.magnitude - 1.0) * s,
            FaultKind::NetworkDelay | FaultKind::NetworkLoss | FaultKind::ErrorFault => {
                self.magnitude * s
            }
        }
    }
}

/// Whether a boundary starts or ends its injection. Ends come first at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    End,
    Start,
}

/// What a boundary starts or ends. Faults come first at the same time and phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Injection {
    Fault,
    Spike,
}

/// A start or end, ordered by content (time, phase, kind, index), so that ties resolve the
/// same whenever the boundary was scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Boundary {
    time_ns: u64,
    phase: Phase,
    injection: Injection,
    index: u32,
}

#[derive(Debug, Default)]
pub(super) struct Injections {
    /// Every fault scheduled so far, started or not, by index.
    pub(super) faults: Vec<Fault>,
    /// Every load spike scheduled so far.
    pub(super) spikes: Vec<SpikeLabel>,
    boundaries: BinaryHeap<Reverse<Boundary>>,
    /// Indices of the faults in effect now.
    pub(super) active_faults: Vec<u32>,
    active_spikes: Vec<u32>,
    /// Draws the random fault plan, if there is one.
    pub(super) planner: Option<RandomPlanner>,
}

impl Injections {
    /// The time of the next start or end; `u64::MAX` when there is none.
    pub(super) fn next_boundary_ns(&self) -> u64 {
        self.boundaries.peek().map_or(u64::MAX, |b| b.0.time_ns)
    }

    fn schedule(&mut self, time_ns: u64, phase: Phase, injection: Injection, index: u32) {
        self.boundaries.push(Reverse(Boundary {
            time_ns,
            phase,
            injection,
            index,
        }));
    }

    /// The labels of the faults that started before `now_ms`.
    pub(super) fn fault_labels(&self, now_ms: u64) -> Vec<FaultLabel> {
        self.faults
            .iter()
            .filter(|f| f.label.start_ms < now_ms)
            .map(|f| f.label.clone())
            .collect()
    }

    /// The load spikes that started before `now_ms`.
    pub(super) fn spike_labels(&self, now_ms: u64) -> Vec<SpikeLabel> {
        self.spikes
            .iter()
            .filter(|s| s.start_ms < now_ms)
            .cloned()
            .collect()
    }
}

impl Simulator {
    pub(super) fn add_spike(&mut self, spike: &SpikeSpec) {
        let start_ms = self.start_ms + (spike.start_s * 1000.0).round() as u64;
        let end_ms = start_ms + (spike.duration_s * 1000.0).round() as u64;
        let index = self.injections.spikes.len() as u32;
        self.injections.spikes.push(SpikeLabel {
            start_ms,
            end_ms,
            factor: spike.factor,
        });
        self.injections
            .schedule(start_ms * MS, Phase::Start, Injection::Spike, index);
    }

    pub(super) fn add_fault(&mut self, spec: &FaultSpec, context: &str) -> Result<(), SimError> {
        let unknown = |service: &str| SimError::UnknownService {
            service: service.to_string(),
            context: context.to_string(),
        };
        let service = self
            .model
            .service_index(&spec.service)
            .ok_or_else(|| unknown(&spec.service))?;
        let scope = match &spec.instance {
            None => Scope::Service { limit: u32::MAX },
            Some(instance) => Scope::Replica(
                self.cluster.services[service as usize]
                    .all
                    .iter()
                    .copied()
                    .find(|&r| self.cluster.replicas[r as usize].name == *instance)
                    .ok_or_else(|| SimError::UnknownInstance {
                        service: spec.service.clone(),
                        instance: instance.clone(),
                        context: context.to_string(),
                    })?,
            ),
        };
        let caller = match &spec.caller {
            None => None,
            Some(caller) => Some(
                self.model
                    .service_index(caller)
                    .ok_or_else(|| unknown(caller))?,
            ),
        };
        if spec.magnitude.is_nan() || spec.magnitude <= 0.0 {
            return Err(SimError::Invalid(format!(
                "{context}: magnitude must be > 0"
            )));
        }
        let start_ms = self.start_ms + spec.start_ms;
        let end_ms = start_ms + spec.duration_ms;
        let index = self.injections.faults.len() as u32;
        self.injections.faults.push(Fault {
            kind: spec.kind,
            service,
            scope,
            caller,
            magnitude: spec.magnitude,
            start_ns: start_ms * MS,
            end_ns: end_ms * MS,
            ramp_ns: spec.ramp_ms.min(spec.duration_ms) * MS,
            label: FaultLabel {
                id: format!("fault-{index:04}"),
                kind: spec.kind.as_str().to_string(),
                service: spec.service.clone(),
                instance: spec.instance.clone(),
                resource: spec.kind.resource().to_string(),
                start_ms,
                end_ms,
                magnitude: spec.magnitude,
            },
        });
        self.injections
            .schedule(start_ms * MS, Phase::Start, Injection::Fault, index);
        Ok(())
    }

    /// Draws the random schedule far enough that every fault starting before `until_ns` is
    /// known.
    pub(super) fn plan_random_until(&mut self, until_ns: u64) {
        while let Some(planner) = self.injections.planner.as_mut() {
            if (self.start_ms + planner.cursor_ms()) * MS >= until_ns {
                break;
            }
            for planned in planner.next() {
                match planned {
                    Planned::Fault(spec) => {
                        // Targets come from the model, so this cannot fail; skip if it does.
                        let _ = self.add_fault(&spec, "random plan");
                    }
                    Planned::Spike(spike) => self.add_spike(&spike),
                }
            }
        }
    }

    /// Starts or ends the injection of the earliest boundary (its time has come).
    pub(super) fn apply_boundary(&mut self) {
        let Some(Reverse(boundary)) = self.injections.boundaries.pop() else {
            return;
        };
        let (t, index) = (boundary.time_ns, boundary.index);
        match (boundary.injection, boundary.phase) {
            (Injection::Fault, Phase::Start) => {
                let replicas = self.cluster.replicas.len() as u32;
                let fault = &mut self.injections.faults[index as usize];
                if fault.node_local()
                    && let Scope::Service { limit } = &mut fault.scope
                {
                    *limit = replicas;
                }
                let end = fault.end_ns;
                self.injections.active_faults.push(index);
                self.injections
                    .schedule(end.max(t), Phase::End, Injection::Fault, index);
            }
            (Injection::Fault, Phase::End) => {
                self.injections.active_faults.retain(|&f| f != index);
                // A thread pool may have grown back: start queued work.
                let service = self.injections.faults[index as usize].service as usize;
                for i in 0..self.cluster.services[service].all.len() {
                    let r = self.cluster.services[service].all[i];
                    self.dequeue(r);
                }
            }
            (Injection::Spike, Phase::Start) => {
                self.injections.active_spikes.push(index);
                let end = self.injections.spikes[index as usize].end_ms * MS;
                self.injections
                    .schedule(end.max(t), Phase::End, Injection::Spike, index);
                self.update_spike_factor();
            }
            (Injection::Spike, Phase::End) => {
                self.injections.active_spikes.retain(|&s| s != index);
                self.update_spike_factor();
            }
        }
    }

    fn update_spike_factor(&mut self) {
        self.load.spike_factor = self
            .injections
            .active_spikes
            .iter()
            .map(|&s| self.injections.spikes[s as usize].factor)
            .product();
        // Redraw the next arrival at the new rate (memoryless, so this stays Poisson).
        self.load.next_arrival_ns = self.now_ns + self.exp_gap_ns(self.now_ns);
    }
}

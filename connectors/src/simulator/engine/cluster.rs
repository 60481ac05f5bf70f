//! The cluster: every replica ever started, and per service its replicas, the active ones
//! that receive requests (round robin) and its resource allotment.

use std::collections::VecDeque;

/// One replica: a queue in front of `threads` workers.
#[derive(Debug)]
pub(super) struct Replica {
    pub(super) name: String,
    pub(super) service: u32,
    /// Receives new requests; a retired replica still finishes what it holds.
    pub(super) active: bool,
    /// Threads held (by calls in any phase, including waiting on children).
    pub(super) busy: u32,
    /// Calls waiting for a thread.
    pub(super) queue: VecDeque<u32>,
    /// Cores: local processing needs one; a CPU-bound replica queues here.
    pub(super) cpu_slots: u32,
    pub(super) cpu_busy: u32,
    /// Calls holding a thread and waiting for a core: `(call, post phase)`.
    pub(super) run_queue: VecDeque<(u32, bool)>,
    pub(super) inflight: u32,
    // Accumulators of the current metrics interval.
    pub(super) cpu_busy_ns: f64,
    pub(super) net_bytes: u64,
    pub(super) disk_bytes: u64,
}

/// A service's CPU, memory and network allotment factors (1 = as configured); scaling up
/// multiplies them, and faults on that resource are diluted by them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Allotment {
    pub(super) cpu: f64,
    pub(super) memory: f64,
    pub(super) network: f64,
}

impl Default for Allotment {
    fn default() -> Self {
        Allotment {
            cpu: 1.0,
            memory: 1.0,
            network: 1.0,
        }
    }
}

/// One service's replicas.
#[derive(Debug, Default)]
pub(super) struct ServiceReplicas {
    /// Every replica ever created, by index in [`Cluster::replicas`].
    pub(super) all: Vec<u32>,
    /// Those receiving requests.
    pub(super) active: Vec<u32>,
    round_robin: u32,
    pub(super) allotment: Allotment,
}

#[derive(Debug, Default)]
pub(super) struct Cluster {
    pub(super) replicas: Vec<Replica>,
    /// By service index.
    pub(super) services: Vec<ServiceReplicas>,
}

impl Cluster {
    pub(super) fn add_service(&mut self) {
        self.services.push(ServiceReplicas::default());
    }

    /// Starts a replica of `service`, named `<service name>-<n>`.
    pub(super) fn add_replica(&mut self, service: u32, service_name: &str, cores: f64) {
        let index = self.replicas.len() as u32;
        let slots = &mut self.services[service as usize];
        self.replicas.push(Replica {
            name: format!("{service_name}-{}", slots.all.len()),
            service,
            active: true,
            busy: 0,
            queue: VecDeque::new(),
            cpu_slots: cores.ceil().max(1.0) as u32,
            cpu_busy: 0,
            run_queue: VecDeque::new(),
            inflight: 0,
            cpu_busy_ns: 0.0,
            net_bytes: 0,
            disk_bytes: 0,
        });
        slots.all.push(index);
        slots.active.push(index);
    }

    /// The next active replica of `service`, round robin; `None` when it has none.
    pub(super) fn pick_replica(&mut self, service: u32) -> Option<u32> {
        let s = &mut self.services[service as usize];
        if s.active.is_empty() {
            return None;
        }
        let cursor = s.round_robin as usize % s.active.len();
        s.round_robin = s.round_robin.wrapping_add(1);
        Some(s.active[cursor])
    }
}

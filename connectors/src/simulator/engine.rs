//! The discrete-event engine: a binary heap of events keyed by (time, sequence number) drives
//! calls through replicas, applies faults, load spikes and deployment changes at their times,
//! and emits spans as they end and metric samples every interval.
//!
//! A replica is a FIFO queue in front of K worker threads. A thread is held for the whole
//! synchronous RPC, children included, which is how backpressure travels upstream: a slow
//! back end holds its callers' threads and their queues grow. Local processing (split before
//! and after the children) also needs one of the replica's C cores, with a FIFO run queue,
//! so CPU contention saturates a busy replica the way a CPU hog does. A request that waited
//! longer than the topology's `queue_timeout_ms` for a thread is rejected with an error.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};

use augur_operators::records::{MetricPoint, Resource, Span, SpanKind};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::changes::{ChangeAction, ChangeSpec};
use super::commands::{ActuationDelays, RuntimeCommand};
use super::faults::{FaultKind, FaultPlan, FaultSpec, FaultTarget, Planned, RandomPlanner};
use super::instrumentation::Dropped;
use super::labels::{ChangeLabel, FaultLabel, Labels, SpikeLabel};
use super::model::{CallModel, FIRST_VERSION, Model, OpModel, ServiceModel, next_version};
use super::topology::{SloSpec, SpikeSpec, Topology};
use super::{SimConfig, SimError};

mod actuation;

/// Index of a resource in a service's allotment factors ([`Simulator::allot`]).
const CPU: usize = 0;
const MEMORY: usize = 1;
const NETWORK: usize = 2;

/// "No index" for parent calls, fault replicas and fault callers.
const NONE: u32 = u32::MAX;
/// Retransmission timeout a lost message waits (Linux's minimum RTO).
const RTO_NS: f64 = 200e6;
/// A failing request gives up after this share of its normal processing time.
const FAIL_FAST_SHARE: f64 = 0.2;
/// Processing time of rejecting a request that timed out in the queue.
const REJECT_NS: f64 = 20_000.0;
const MS: u64 = 1_000_000;
/// Headers and framing of one RPC message (HTTP/2 + gRPC or Thrift), bytes.
const MESSAGE_OVERHEAD_BYTES: u64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    /// A request reaches its replica (after the network delay).
    Arrive,
    /// Local processing before the children is done (core released): start the first stage.
    PreDone,
    /// Local processing after the children is done (core released): reply.
    PostDone,
    /// The reply reaches the caller (after the network delay).
    Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    time_ns: u64,
    seq: u64,
    kind: EventKind,
    call: u32,
}

/// One replica: a queue in front of `threads` workers.
#[derive(Debug)]
struct Replica {
    name: String,
    service: u32,
    /// Receives new requests; a retired replica still finishes what it holds.
    active: bool,
    /// Threads held (by calls in any phase, including waiting on children).
    busy: u32,
    /// Calls waiting for a thread.
    queue: VecDeque<u32>,
    /// Cores: local processing needs one; a CPU-bound replica queues here.
    cpu_slots: u32,
    cpu_busy: u32,
    /// Calls holding a thread and waiting for a core: `(call, post phase)`.
    run_queue: VecDeque<(u32, bool)>,
    inflight: u32,
    // Accumulators of the current metrics interval.
    cpu_busy_ns: f64,
    net_bytes: u64,
    disk_bytes: u64,
}

/// One RPC in flight (or the root request).
#[derive(Clone, Copy, Debug)]
struct Call {
    trace_id: u128,
    /// The callee's server span.
    span_id: u64,
    /// The caller's client span (the server span's parent); 0 for the root request.
    client_span_id: u64,
    parent: u32,
    service: u32,
    op: u32,
    replica: u32,
    stage: u32,
    pending: u32,
    send_ns: u64,
    arrive_ns: u64,
    pre_ns: u64,
    post_ns: u64,
    error: bool,
}

/// A fault resolved to indices.
#[derive(Clone, Debug)]
struct Fault {
    kind: FaultKind,
    service: u32,
    replica: u32,
    caller: u32,
    magnitude: f64,
    start_ns: u64,
    end_ns: u64,
    /// Linear ramp to full strength after the start, ns (0: a step).
    ramp_ns: u64,
    label: FaultLabel,
    /// A fault on every replica of a service hits only replicas with a lower index: for
    /// node-local contention, those running when it started (set at the start; replicas
    /// started later run on other nodes).
    replica_limit: u32,
}

impl Fault {
    fn hits(&self, service: u32, replica: u32) -> bool {
        self.service == service
            && if self.replica == NONE {
                replica < self.replica_limit
            } else {
                self.replica == replica
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

    fn progress(&self, now_ns: u64) -> f64 {
        let span = self.end_ns.saturating_sub(self.start_ns).max(1) as f64;
        (now_ns.saturating_sub(self.start_ns) as f64 / span).min(1.0)
    }

    /// The magnitude in effect at `now_ns`: full for a step fault; during a ramp, a
    /// factor (`> 1` kinds) grows linearly from 1 and a share or delay from 0.
    fn magnitude_at(&self, now_ns: u64) -> f64 {
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

/// Boundary classes and phases; a boundary is `(time, phase, class, index)` so that ties
/// resolve by content, whenever the boundary was scheduled.
const END: u8 = 0;
const START: u8 = 1;
const FAULT: u8 = 0;
const SPIKE: u8 = 1;

pub struct Simulator {
    topology: Topology,
    seed: u64,
    start_ms: u64,
    now_ms: u64,
    now_ns: u64,
    model: Model,
    rng: Xoshiro256PlusPlus,
    id_key: u64,
    id_counter: u64,
    events: BinaryHeap<Reverse<Event>>,
    seq: u64,
    calls: Vec<Call>,
    free_calls: Vec<u32>,
    replicas: Vec<Replica>,
    /// Per service: every replica ever created, the active ones (routing), round-robin cursor.
    service_replicas: Vec<Vec<u32>>,
    service_active: Vec<Vec<u32>>,
    round_robin: Vec<u32>,
    // Load.
    base_rate_per_ns: f64,
    diurnal_amplitude: f64,
    diurnal_period_ns: f64,
    next_arrival_ns: u64,
    // Metrics.
    interval_ns: u64,
    next_sample_ns: u64,
    /// In-flight gauge interval (0: off) and next sample time (`u64::MAX` when off).
    in_flight_interval_ns: u64,
    next_in_flight_ns: u64,
    // Faults, spikes and changes.
    faults: Vec<Fault>,
    spikes: Vec<SpikeLabel>,
    boundaries: BinaryHeap<Reverse<(u64, u8, u8, u32)>>,
    active_faults: Vec<u32>,
    active_spikes: Vec<u32>,
    spike_factor: f64,
    planner: Option<RandomPlanner>,
    changes: Vec<(u64, ChangeSpec)>,
    next_change: usize,
    change_labels: Vec<ChangeLabel>,
    // Runtime commands (actuation) and telemetry.
    commands: std::collections::BTreeMap<(u64, u64), RuntimeCommand>,
    command_seq: u64,
    actuation_rng: Xoshiro256PlusPlus,
    delays: ActuationDelays,
    /// Per service: CPU, memory and network allotment factors (1 = as configured).
    allotment: Vec<[f64; 3]>,
    dropped: Dropped,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("topology", &self.topology.name())
            .field("seed", &self.seed)
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

/// SplitMix64 finalizer: a bijection, so distinct counters give distinct ids.
fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Simulator {
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        if config.metrics_interval_ms == 0 {
            return Err(SimError::Invalid("metrics_interval_ms must be > 0".into()));
        }
        if config.rate_scale.is_nan() || config.rate_scale <= 0.0 {
            return Err(SimError::Invalid("rate_scale must be > 0".into()));
        }
        let model = Model::compile(&config.topology)?;
        let start_ns = config.start_ms * MS;
        let load = &config.topology.spec().load;
        let mut sim = Simulator {
            seed: config.seed,
            start_ms: config.start_ms,
            now_ms: config.start_ms,
            now_ns: start_ns,
            rng: Xoshiro256PlusPlus::seed_from_u64(config.seed),
            id_key: splitmix(config.seed ^ 0x1d5_0000_0000_0001),
            id_counter: 0,
            events: BinaryHeap::with_capacity(1 << 16),
            seq: 0,
            calls: Vec::with_capacity(1 << 16),
            free_calls: Vec::new(),
            replicas: Vec::new(),
            service_replicas: Vec::new(),
            service_active: Vec::new(),
            round_robin: Vec::new(),
            base_rate_per_ns: load.rate_per_s * config.rate_scale / 1e9,
            diurnal_amplitude: load.diurnal_amplitude,
            diurnal_period_ns: load.diurnal_period_s * 1e9,
            next_arrival_ns: start_ns,
            interval_ns: config.metrics_interval_ms * MS,
            next_sample_ns: start_ns + config.metrics_interval_ms * MS,
            in_flight_interval_ns: config.in_flight_interval_ms * MS,
            next_in_flight_ns: if config.in_flight_interval_ms == 0 {
                u64::MAX
            } else {
                start_ns + config.in_flight_interval_ms * MS
            },
            faults: Vec::new(),
            spikes: Vec::new(),
            boundaries: BinaryHeap::new(),
            active_faults: Vec::new(),
            active_spikes: Vec::new(),
            spike_factor: 1.0,
            planner: None,
            changes: Vec::new(),
            next_change: 0,
            change_labels: Vec::new(),
            commands: std::collections::BTreeMap::new(),
            command_seq: 0,
            actuation_rng: Xoshiro256PlusPlus::seed_from_u64(config.seed ^ 0xac7_0a7e_0000_0001),
            delays: config.delays.clone(),
            allotment: Vec::new(),
            dropped: Dropped::default(),
            model,
            topology: config.topology.clone(),
        };
        for s in 0..sim.model.services.len() {
            sim.add_service_slots();
            for _ in 0..sim.model.initial_replicas[s] {
                sim.add_replica(s as u32);
            }
        }
        for spike in &load.spikes {
            sim.add_spike(spike);
        }
        let entries: Vec<usize> = sim
            .model
            .requests
            .iter()
            .map(|r| r.service as usize)
            .collect();
        sim.dropped =
            config
                .instrumentation
                .choose(config.seed, sim.model.services.len(), &entries);
        match &config.faults {
            FaultPlan::None => {}
            FaultPlan::Explicit(plan) => {
                for (i, fault) in plan.faults.iter().enumerate() {
                    sim.add_fault(fault, &format!("fault {i}"))?;
                }
                for spike in &plan.load_spikes {
                    sim.add_spike(spike);
                }
            }
            FaultPlan::Random(plan) => {
                let entries: HashSet<u32> = sim.model.requests.iter().map(|r| r.service).collect();
                // Services on the hot path are hit more often: a fault on a service that few
                // requests visit rarely moves the entry's tail latency.
                let (visits, thread_s) = sim.model.load_profile();
                let rate = sim.base_rate_per_ns * 1e9;
                let targets = sim
                    .model
                    .services
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !entries.contains(&(*i as u32)))
                    .map(|(i, s)| {
                        let replicas = sim.model.initial_replicas[i];
                        FaultTarget {
                            service: s.name.clone(),
                            replicas,
                            threads: s.threads,
                            weight: visits[i].min(1.0) + 0.05,
                            occupancy: rate * thread_s[i] / f64::from(replicas),
                        }
                    })
                    .collect();
                sim.planner = Some(RandomPlanner::new(plan.clone(), config.seed, targets));
            }
        }
        sim.validate_changes(&config.changes)?;
        let mut changes: Vec<(u64, ChangeSpec)> = config
            .changes
            .iter()
            .map(|c| (start_ns + c.at_ms * MS, c.clone()))
            .collect();
        changes.sort_by_key(|(t, _)| *t);
        sim.changes = changes;
        sim.next_arrival_ns = start_ns + sim.exp_gap_ns(start_ns);
        Ok(sim)
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn slos(&self) -> &[SloSpec] {
        self.topology.slos()
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Ground truth so far: every fault, load spike and change that started before
    /// [`Simulator::now_ms`], with its planned end time (which may lie after now for one
    /// still running). Nothing scheduled for later is included, so after the last
    /// `advance_to` the labels describe exactly the data emitted.
    pub fn labels(&self) -> Labels {
        Labels {
            topology: self.topology.name().to_string(),
            seed: self.seed,
            start_ms: self.start_ms,
            end_ms: self.now_ms,
            faults: self
                .faults
                .iter()
                .filter(|f| f.label.start_ms < self.now_ms)
                .map(|f| f.label.clone())
                .collect(),
            load_spikes: self
                .spikes
                .iter()
                .filter(|s| s.start_ms < self.now_ms)
                .cloned()
                .collect(),
            changes: self.change_labels.clone(),
            no_metrics: self.dropped_names(&self.dropped.metrics),
            no_spans: self.dropped_names(&self.dropped.spans),
        }
    }

    fn dropped_names(&self, dropped: &[bool]) -> Vec<String> {
        dropped
            .iter()
            .zip(&self.model.services)
            .filter(|(d, _)| **d)
            .map(|(_, s)| s.name.clone())
            .collect()
    }

    /// Runs the simulation up to event time `until_ms`, appending every span that ended
    /// before it and every metric sample taken before it, in nondecreasing event-time order.
    pub fn advance_to(
        &mut self,
        until_ms: u64,
        spans: &mut Vec<Span>,
        metrics: &mut Vec<MetricPoint>,
    ) {
        if until_ms <= self.now_ms {
            return;
        }
        let until_ns = until_ms * MS;
        self.plan_random_until(until_ns);
        loop {
            let t_event = self.events.peek().map_or(u64::MAX, |e| e.0.time_ns);
            let t_boundary = self.boundaries.peek().map_or(u64::MAX, |b| b.0.0);
            let t_change = self.changes.get(self.next_change).map_or(u64::MAX, |c| c.0);
            let t_command = self
                .commands
                .first_key_value()
                .map_or(u64::MAX, |(k, _)| k.0);
            let t = t_event
                .min(t_boundary)
                .min(t_change)
                .min(t_command)
                .min(self.next_sample_ns)
                .min(self.next_in_flight_ns)
                .min(self.next_arrival_ns);
            if t >= until_ns {
                break;
            }
            self.now_ns = t;
            // Fixed priority on ties: a sample sees the state before anything else at t.
            if t == self.next_sample_ns {
                self.sample(metrics);
            } else if t == self.next_in_flight_ns {
                self.sample_in_flight(metrics);
            } else if t == t_boundary {
                self.apply_boundary();
            } else if t == t_change {
                self.apply_change();
            } else if t == t_command {
                self.apply_command();
            } else if t == self.next_arrival_ns {
                self.arrival();
            } else if let Some(Reverse(event)) = self.events.pop() {
                self.handle(event, spans);
            }
        }
        self.now_ns = until_ns;
        self.now_ms = until_ms;
    }

    // ---- setup ----

    fn add_service_slots(&mut self) {
        self.allotment.push([1.0; 3]);
        self.dropped.metrics.push(false);
        self.dropped.spans.push(false);
        self.service_replicas.push(Vec::new());
        self.service_active.push(Vec::new());
        self.round_robin.push(0);
    }

    fn add_replica(&mut self, service: u32) {
        let s = service as usize;
        let index = self.replicas.len() as u32;
        let name = format!(
            "{}-{}",
            self.model.services[s].name,
            self.service_replicas[s].len()
        );
        self.replicas.push(Replica {
            name,
            service,
            active: true,
            busy: 0,
            queue: VecDeque::new(),
            cpu_slots: self.model.services[s].cores.ceil().max(1.0) as u32,
            cpu_busy: 0,
            run_queue: VecDeque::new(),
            inflight: 0,
            cpu_busy_ns: 0.0,
            net_bytes: 0,
            disk_bytes: 0,
        });
        self.service_replicas[s].push(index);
        self.service_active[s].push(index);
    }

    fn add_spike(&mut self, spike: &SpikeSpec) {
        let start_ms = self.start_ms + (spike.start_s * 1000.0).round() as u64;
        let end_ms = start_ms + (spike.duration_s * 1000.0).round() as u64;
        let index = self.spikes.len() as u32;
        self.spikes.push(SpikeLabel {
            start_ms,
            end_ms,
            factor: spike.factor,
        });
        self.boundaries
            .push(Reverse((start_ms * MS, START, SPIKE, index)));
    }

    fn add_fault(&mut self, spec: &FaultSpec, context: &str) -> Result<(), SimError> {
        let unknown = |service: &str| SimError::UnknownService {
            service: service.to_string(),
            context: context.to_string(),
        };
        let service = self
            .model
            .service_index(&spec.service)
            .ok_or_else(|| unknown(&spec.service))?;
        let replica = match &spec.instance {
            None => NONE,
            Some(instance) => self.service_replicas[service as usize]
                .iter()
                .copied()
                .find(|&r| self.replicas[r as usize].name == *instance)
                .ok_or_else(|| SimError::UnknownInstance {
                    service: spec.service.clone(),
                    instance: instance.clone(),
                    context: context.to_string(),
                })?,
        };
        let caller = match &spec.caller {
            None => NONE,
            Some(caller) => self
                .model
                .service_index(caller)
                .ok_or_else(|| unknown(caller))?,
        };
        if spec.magnitude.is_nan() || spec.magnitude <= 0.0 {
            return Err(SimError::Invalid(format!(
                "{context}: magnitude must be > 0"
            )));
        }
        let start_ms = self.start_ms + spec.start_ms;
        let end_ms = start_ms + spec.duration_ms;
        let index = self.faults.len() as u32;
        self.faults.push(Fault {
            kind: spec.kind,
            service,
            replica,
            caller,
            magnitude: spec.magnitude,
            start_ns: start_ms * MS,
            end_ns: end_ms * MS,
            ramp_ns: spec.ramp_ms.min(spec.duration_ms) * MS,
            replica_limit: u32::MAX,
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
        self.boundaries
            .push(Reverse((start_ms * MS, START, FAULT, index)));
        Ok(())
    }

    /// Draws the random schedule far enough that every fault starting before `until_ns` is
    /// known.
    fn plan_random_until(&mut self, until_ns: u64) {
        while let Some(planner) = self.planner.as_mut() {
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

    fn validate_changes(&self, changes: &[ChangeSpec]) -> Result<(), SimError> {
        let mut names: HashSet<String> =
            self.model.services.iter().map(|s| s.name.clone()).collect();
        for (i, change) in changes.iter().enumerate() {
            let context = format!("change {i} ({})", change.action.kind());
            let known = |name: &str, names: &HashSet<String>| {
                if names.contains(name) {
                    Ok(())
                } else {
                    Err(SimError::UnknownService {
                        service: name.to_string(),
                        context: context.clone(),
                    })
                }
            };
            match &change.action {
                ChangeAction::AddService {
                    caller,
                    callee,
                    service_time_ms,
                    replicas,
                } => {
                    known(caller, &names)?;
                    known(callee, &names)?;
                    if names.contains(&change.service) {
                        return Err(SimError::Invalid(format!(
                            "{context}: service {:?} already exists",
                            change.service
                        )));
                    }
                    if *service_time_ms <= 0.0 || *replicas == 0 {
                        return Err(SimError::Invalid(format!(
                            "{context}: service_time_ms and replicas must be > 0"
                        )));
                    }
                    if let (Some(a), Some(b)) = (
                        self.model.service_index(caller),
                        self.model.service_index(callee),
                    ) {
                        let calls = self.model.services[a as usize]
                            .ops
                            .iter()
                            .flat_map(|o| o.stages.iter().flatten())
                            .any(|c| c.service == b);
                        if !calls {
                            return Err(SimError::Invalid(format!(
                                "{context}: {caller:?} does not call {callee:?}"
                            )));
                        }
                    }
                    names.insert(change.service.clone());
                }
                ChangeAction::RemoveService => {
                    known(&change.service, &names)?;
                    if let Some(s) = self.model.service_index(&change.service) {
                        let leaf = self.model.services[s as usize]
                            .ops
                            .iter()
                            .all(|o| o.stages.iter().all(|st| st.is_empty()));
                        let entry = self.model.requests.iter().any(|r| r.service == s);
                        if !leaf || entry {
                            return Err(SimError::Invalid(format!(
                                "{context}: only a leaf that is not an entry can be removed, {:?} is not",
                                change.service
                            )));
                        }
                    }
                }
                ChangeAction::Replace {
                    service_time_factor,
                } => {
                    known(&change.service, &names)?;
                    if service_time_factor.is_nan() || *service_time_factor <= 0.0 {
                        return Err(SimError::Invalid(format!(
                            "{context}: service_time_factor must be > 0"
                        )));
                    }
                }
                ChangeAction::Rps { factor } => {
                    known(&change.service, &names)?;
                    if factor.is_nan() || *factor <= 0.0 {
                        return Err(SimError::Invalid(format!("{context}: factor must be > 0")));
                    }
                }
                ChangeAction::ScaleOut { replicas } | ChangeAction::ScaleIn { replicas } => {
                    known(&change.service, &names)?;
                    if *replicas == 0 {
                        return Err(SimError::Invalid(format!(
                            "{context}: replicas must be > 0"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    // ---- randomness and ids ----

    fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    fn normal(&mut self) -> f64 {
        self.rng.sample::<f64, _>(StandardNormal)
    }

    fn next_span_id(&mut self) -> u64 {
        self.id_counter += 1;
        match splitmix(
            self.id_key
                .wrapping_add(self.id_counter.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        ) {
            0 => 1,
            id => id,
        }
    }

    fn next_trace_id(&mut self) -> u128 {
        let hi = self.next_span_id() as u128;
        let lo = self.next_span_id() as u128;
        (hi << 64) | lo
    }

    // ---- load ----

    fn rate_per_ns(&self, t_ns: u64) -> f64 {
        let mut rate = self.base_rate_per_ns * self.spike_factor;
        if self.diurnal_amplitude > 0.0 {
            let phase = (t_ns - self.start_ms * MS) as f64 / self.diurnal_period_ns;
            rate *= 1.0 + self.diurnal_amplitude * (std::f64::consts::TAU * phase).sin();
        }
        rate
    }

    fn exp_gap_ns(&mut self, t_ns: u64) -> u64 {
        let u = self.uniform();
        let gap = -(1.0 - u).ln() / self.rate_per_ns(t_ns).max(1e-18);
        (gap.min(1e15) as u64).max(1)
    }

    fn arrival(&mut self) {
        let t = self.now_ns;
        let x = self.uniform();
        let request = self
            .model
            .request_cdf
            .partition_point(|&c| c < x)
            .min(self.model.requests.len() - 1);
        let (service, op) = {
            let r = &self.model.requests[request];
            (r.service, r.op)
        };
        if let Some(replica) = self.pick_replica(service) {
            let trace_id = self.next_trace_id();
            let span_id = self.next_span_id();
            let call = self.alloc(Call {
                trace_id,
                span_id,
                client_span_id: 0,
                parent: NONE,
                service,
                op,
                replica,
                stage: 0,
                pending: 0,
                send_ns: t,
                arrive_ns: t,
                pre_ns: 0,
                post_ns: 0,
                error: false,
            });
            self.arrive(call);
        }
        self.next_arrival_ns = t + self.exp_gap_ns(t);
    }

    fn pick_replica(&mut self, service: u32) -> Option<u32> {
        let s = service as usize;
        let active = &self.service_active[s];
        if active.is_empty() {
            return None;
        }
        let cursor = self.round_robin[s] as usize % active.len();
        self.round_robin[s] = self.round_robin[s].wrapping_add(1);
        Some(active[cursor])
    }

    // ---- calls ----

    fn alloc(&mut self, call: Call) -> u32 {
        match self.free_calls.pop() {
            Some(i) => {
                self.calls[i as usize] = call;
                i
            }
            None => {
                self.calls.push(call);
                (self.calls.len() - 1) as u32
            }
        }
    }

    fn schedule(&mut self, time_ns: u64, kind: EventKind, call: u32) {
        self.seq += 1;
        self.events.push(Reverse(Event {
            time_ns,
            seq: self.seq,
            kind,
            call,
        }));
    }

    fn op(&self, service: u32, op: u32) -> &OpModel {
        &self.model.services[service as usize].ops[op as usize]
    }

    fn handle(&mut self, event: Event, spans: &mut Vec<Span>) {
        match event.kind {
            EventKind::Arrive => self.arrive(event.call),
            EventKind::PreDone => {
                self.release_core(event.call);
                self.run_stages(event.call);
            }
            EventKind::PostDone => {
                self.release_core(event.call);
                self.post_done(event.call, spans);
            }
            EventKind::Response => self.response(event.call, spans),
        }
    }

    fn arrive(&mut self, c: u32) {
        let call = &mut self.calls[c as usize];
        call.arrive_ns = self.now_ns;
        let (service, op, r) = (call.service, call.op, call.replica);
        let bytes = self.op(service, op).request_bytes;
        let capacity = self.capacity(r);
        let replica = &mut self.replicas[r as usize];
        replica.inflight += 1;
        replica.net_bytes += bytes + MESSAGE_OVERHEAD_BYTES;
        if replica.busy < capacity {
            self.start(c);
        } else {
            replica.queue.push_back(c);
        }
    }

    /// Worker threads of a replica now, after any thread-pool shrink.
    fn capacity(&self, r: u32) -> u32 {
        let service = self.replicas[r as usize].service;
        let mut threads = self.model.services[service as usize].threads;
        for &f in &self.active_faults {
            let fault = &self.faults[f as usize];
            if fault.kind == FaultKind::ThreadPoolShrink && fault.hits(service, r) {
                let magnitude = fault.magnitude_at(self.now_ns);
                threads = ((f64::from(threads) / magnitude).round() as u32).max(1);
            }
        }
        threads
    }

    /// A thread takes the call: draw its processing time (with faults) and run the part
    /// before the children.
    fn start(&mut self, c: u32) {
        let call = self.calls[c as usize];
        let (mu, sigma, pre_fraction) = {
            let op = self.op(call.service, call.op);
            (op.mu, op.sigma, op.pre_fraction)
        };
        let z = self.normal();
        let mut time = (mu + sigma * z).exp();
        let mut fail = false;
        if self.now_ns - call.arrive_ns > self.model.queue_timeout_ns {
            // Deadline exceeded while queued: rejected at once, no children.
            let call = &mut self.calls[c as usize];
            call.error = true;
            call.pre_ns = 0;
            call.post_ns = REJECT_NS as u64;
            call.stage = u32::MAX;
            self.replicas[call.replica as usize].busy += 1;
            self.request_core(c, true);
            return;
        }
        for i in 0..self.active_faults.len() {
            let fault = &self.faults[self.active_faults[i] as usize];
            if !fault.hits(call.service, call.replica) {
                continue;
            }
            let (kind, magnitude, progress) = (
                fault.kind,
                fault.magnitude_at(self.now_ns),
                fault.progress(self.now_ns),
            );
            let allot = self.allotment[call.service as usize];
            match kind {
                FaultKind::CpuContention => time *= 1.0 + (magnitude - 1.0) / allot[CPU],
                FaultKind::MemoryContention => {
                    // Cache and bandwidth contention: slower and more variable (CV 0.5 noise).
                    let z = self.normal();
                    time *=
                        (1.0 + (magnitude - 1.0) / allot[MEMORY]) * (-0.1116 + 0.4724 * z).exp();
                }
                FaultKind::MemoryLeak => {
                    time *= 1.0 + (magnitude - 1.0) * progress / allot[MEMORY];
                }
                FaultKind::ErrorFault => fail |= self.uniform() < magnitude,
                FaultKind::NetworkDelay | FaultKind::NetworkLoss | FaultKind::ThreadPoolShrink => {}
            }
        }
        let call = &mut self.calls[c as usize];
        if fail {
            // Fails fast: a short burst of processing, no children.
            call.error = true;
            call.pre_ns = 0;
            call.post_ns = (time * FAIL_FAST_SHARE) as u64;
            call.stage = u32::MAX;
        } else {
            let pre = time * pre_fraction;
            call.pre_ns = pre as u64;
            call.post_ns = (time - pre) as u64;
        }
        self.replicas[call.replica as usize].busy += 1;
        let post = call.stage == u32::MAX;
        self.request_core(c, post);
    }

    /// Local processing needs a core; without a free one the call waits in the run queue.
    fn request_core(&mut self, c: u32, post: bool) {
        let call = &self.calls[c as usize];
        let duration = if post { call.post_ns } else { call.pre_ns };
        let replica = &mut self.replicas[call.replica as usize];
        if replica.cpu_busy < replica.cpu_slots {
            replica.cpu_busy += 1;
            replica.cpu_busy_ns += duration as f64;
            let kind = if post {
                EventKind::PostDone
            } else {
                EventKind::PreDone
            };
            self.schedule(self.now_ns + duration, kind, c);
        } else {
            replica.run_queue.push_back((c, post));
        }
    }

    /// A processing phase ended: the core goes to the next call in the run queue.
    fn release_core(&mut self, c: u32) {
        let r = self.calls[c as usize].replica as usize;
        self.replicas[r].cpu_busy -= 1;
        if let Some((next, post)) = self.replicas[r].run_queue.pop_front() {
            self.request_core(next, post);
        }
    }

    /// Starts the call's current stage; empty stages (every call skipped by its probability)
    /// fall through; after the last stage, the post-processing.
    fn run_stages(&mut self, c: u32) {
        loop {
            let call = self.calls[c as usize];
            let stages = self.op(call.service, call.op).stages.len();
            if call.stage as usize >= stages {
                self.request_core(c, true);
                return;
            }
            let width = self.op(call.service, call.op).stages[call.stage as usize].len();
            let mut launched = 0;
            for i in 0..width {
                let target: CallModel =
                    self.op(call.service, call.op).stages[call.stage as usize][i];
                if target.probability < 1.0 && self.uniform() >= target.probability {
                    continue;
                }
                if self.launch(c, target) {
                    launched += 1;
                }
            }
            if launched > 0 {
                self.calls[c as usize].pending = launched;
                return;
            }
            self.calls[c as usize].stage += 1;
        }
    }

    /// Sends one child RPC; false if the callee has no replica left.
    fn launch(&mut self, parent: u32, target: CallModel) -> bool {
        let Some(replica) = self.pick_replica(target.service) else {
            return false;
        };
        let p = self.calls[parent as usize];
        let span_id = self.next_span_id();
        let client_span_id = self.next_span_id();
        let child = self.alloc(Call {
            trace_id: p.trace_id,
            span_id,
            client_span_id,
            parent,
            service: target.service,
            op: target.op,
            replica,
            stage: 0,
            pending: 0,
            send_ns: self.now_ns,
            arrive_ns: self.now_ns,
            pre_ns: 0,
            post_ns: 0,
            error: false,
        });
        let bytes = self.op(target.service, target.op).request_bytes;
        self.replicas[p.replica as usize].net_bytes += bytes + MESSAGE_OVERHEAD_BYTES;
        let delay = self.network_delay_ns(p.service, replica);
        self.schedule(self.now_ns + delay, EventKind::Arrive, child);
        true
    }

    /// One leg of an RPC between `caller` and the replica `callee`, with network faults.
    fn network_delay_ns(&mut self, caller: u32, callee: u32) -> u64 {
        let u = self.uniform();
        let mut delay = self.model.network_base_ns - self.model.network_jitter_ns * (1.0 - u).ln();
        let service = self.replicas[callee as usize].service;
        let network = self.allotment[service as usize][NETWORK];
        for i in 0..self.active_faults.len() {
            let fault = &self.faults[self.active_faults[i] as usize];
            if !fault.hits(service, callee) || (fault.caller != NONE && fault.caller != caller) {
                continue;
            }
            match fault.kind {
                FaultKind::NetworkDelay => delay += fault.magnitude_at(self.now_ns) * 1e6 / network,
                FaultKind::NetworkLoss => {
                    let magnitude = fault.magnitude_at(self.now_ns) / network;
                    if self.uniform() < magnitude {
                        delay += RTO_NS;
                    }
                }
                _ => {}
            }
        }
        delay as u64
    }

    /// The reply is sent: server span, thread freed, response on the wire.
    fn post_done(&mut self, c: u32, spans: &mut Vec<Span>) {
        let call = self.calls[c as usize];
        let service = &self.model.services[call.service as usize];
        let op = &service.ops[call.op as usize];
        let replica = &mut self.replicas[call.replica as usize];
        if service.instrumented && !self.dropped.spans[call.service as usize] {
            spans.push(Span {
                trace_id: call.trace_id,
                span_id: call.span_id,
                parent_span_id: (call.client_span_id != 0).then_some(call.client_span_id),
                service: service.name.clone(),
                instance: replica.name.clone(),
                kind: SpanKind::Server,
                name: op.name.clone(),
                start_ns: call.arrive_ns,
                end_ns: self.now_ns,
                error: call.error,
                peer_service: None,
                version: Some(service.version.clone()),
            });
        }
        replica.busy -= 1;
        replica.inflight -= 1;
        replica.net_bytes += op.response_bytes + MESSAGE_OVERHEAD_BYTES;
        if !call.error {
            replica.disk_bytes += op.disk_write_bytes;
        }
        self.dequeue(call.replica);
        if call.parent == NONE {
            self.free_calls.push(c);
        } else {
            let caller = self.calls[call.parent as usize].service;
            let delay = self.network_delay_ns(caller, call.replica);
            self.schedule(self.now_ns + delay, EventKind::Response, c);
        }
    }

    fn dequeue(&mut self, r: u32) {
        let capacity = self.capacity(r);
        while self.replicas[r as usize].busy < capacity {
            let Some(next) = self.replicas[r as usize].queue.pop_front() else {
                break;
            };
            self.start(next);
        }
    }

    /// The reply reaches the caller: client span; the caller's stage may be complete.
    fn response(&mut self, c: u32, spans: &mut Vec<Span>) {
        let call = self.calls[c as usize];
        let p = call.parent;
        let parent = self.calls[p as usize];
        let callee = &self.model.services[call.service as usize];
        let op = &callee.ops[call.op as usize];
        let caller = &self.model.services[parent.service as usize];
        let caller_replica = &mut self.replicas[parent.replica as usize];
        let callee_hidden = !callee.instrumented || self.dropped.spans[call.service as usize];
        if !self.dropped.spans[parent.service as usize] {
            spans.push(Span {
                trace_id: call.trace_id,
                span_id: call.client_span_id,
                parent_span_id: Some(parent.span_id),
                service: caller.name.clone(),
                instance: caller_replica.name.clone(),
                kind: SpanKind::Client,
                name: op.name.clone(),
                start_ns: call.send_ns,
                end_ns: self.now_ns,
                error: call.error,
                peer_service: callee_hidden.then(|| callee.name.clone()),
                version: Some(caller.version.clone()),
            });
        }
        caller_replica.net_bytes += op.response_bytes + MESSAGE_OVERHEAD_BYTES;
        if call.error && self.uniform() < self.model.error_propagation {
            self.calls[p as usize].error = true;
        }
        self.free_calls.push(c);
        let parent = &mut self.calls[p as usize];
        parent.pending -= 1;
        if parent.pending == 0 {
            // A failed call aborts the rest of the caller's work: straight to its reply.
            parent.stage = if parent.error {
                u32::MAX
            } else {
                parent.stage + 1
            };
            self.run_stages(p);
        }
    }

    // ---- metrics ----

    fn sample(&mut self, metrics: &mut Vec<MetricPoint>) {
        let t = self.now_ns;
        let interval_s = self.interval_ns as f64 / 1e9;
        for r in 0..self.replicas.len() {
            let (service, live) = {
                let rep = &self.replicas[r];
                (rep.service, rep.active || rep.inflight > 0)
            };
            if !live {
                continue;
            }
            let mut hog = 0.0;
            let mut memory_extra = 0.0;
            let svc = &self.model.services[service as usize];
            for &f in &self.active_faults {
                let fault = &self.faults[f as usize];
                if !fault.hits(service, r as u32) {
                    continue;
                }
                match fault.kind {
                    // The hog's own share of the cores (a larger allotment dilutes it).
                    FaultKind::CpuContention => {
                        hog += 0.7 * (1.0 - 1.0 / fault.magnitude_at(t))
                            / self.allotment[service as usize][CPU];
                    }
                    FaultKind::MemoryContention => {
                        memory_extra += 0.3 * svc.memory_base;
                        hog += 0.1;
                    }
                    FaultKind::MemoryLeak => {
                        memory_extra += 1.5 * svc.memory_base * fault.progress(t);
                    }
                    _ => {}
                }
            }
            let (cores, memory_base, per_request) =
                (svc.cores, svc.memory_base, svc.memory_per_request);
            let (z1, z2) = (self.normal(), self.normal());
            let svc = &self.model.services[service as usize];
            let rep = &mut self.replicas[r];
            let cpu =
                (rep.cpu_busy_ns / (cores * self.interval_ns as f64) + 0.02 + hog + 0.005 * z1)
                    .max(0.0);
            let memory =
                memory_base * (1.0 + 0.005 * z2) + per_request * rep.inflight as f64 + memory_extra;
            let values = [
                (Resource::Cpu, cpu),
                (Resource::Memory, memory),
                (Resource::Network, rep.net_bytes as f64 / interval_s),
                (Resource::Disk, rep.disk_bytes as f64 / interval_s),
                (
                    Resource::Queue,
                    (rep.queue.len() + rep.run_queue.len()) as f64,
                ),
            ];
            if self.dropped.metrics[service as usize] {
                // Not exported; the draws above still happened, so the run is unchanged.
                rep.cpu_busy_ns = 0.0;
                rep.net_bytes = 0;
                rep.disk_bytes = 0;
                continue;
            }
            for (resource, value) in values {
                metrics.push(MetricPoint {
                    service: svc.name.clone(),
                    instance: rep.name.clone(),
                    resource,
                    time_ns: t,
                    value,
                });
            }
            rep.cpu_busy_ns = 0.0;
            rep.net_bytes = 0;
            rep.disk_bytes = 0;
        }
        self.next_sample_ns += self.interval_ns;
    }

    /// Every live replica's in-flight requests (queued or being served) now, as the
    /// `InFlight` gauge. Draws no random numbers.
    fn sample_in_flight(&mut self, metrics: &mut Vec<MetricPoint>) {
        let t = self.now_ns;
        for rep in &self.replicas {
            let service = rep.service as usize;
            if !(rep.active || rep.inflight > 0) || self.dropped.metrics[service] {
                continue;
            }
            metrics.push(MetricPoint {
                service: self.model.services[service].name.clone(),
                instance: rep.name.clone(),
                resource: Resource::InFlight,
                time_ns: t,
                value: f64::from(rep.inflight),
            });
        }
        self.next_in_flight_ns += self.in_flight_interval_ns;
    }

    // ---- faults, spikes, changes ----

    fn apply_boundary(&mut self) {
        let Some(Reverse((t, phase, class, index))) = self.boundaries.pop() else {
            return;
        };
        match (class, phase) {
            (FAULT, START) => {
                let replicas = self.replicas.len() as u32;
                let fault = &mut self.faults[index as usize];
                if fault.node_local() {
                    fault.replica_limit = replicas;
                }
                self.active_faults.push(index);
                let end = self.faults[index as usize].end_ns;
                self.boundaries
                    .push(Reverse((end.max(t), END, FAULT, index)));
            }
            (FAULT, _) => {
                self.active_faults.retain(|&f| f != index);
                // A thread pool may have grown back: start queued work.
                let service = self.faults[index as usize].service as usize;
                for i in 0..self.service_replicas[service].len() {
                    let r = self.service_replicas[service][i];
                    self.dequeue(r);
                }
            }
            (_, START) => {
                self.active_spikes.push(index);
                let end = self.spikes[index as usize].end_ms * MS;
                self.boundaries
                    .push(Reverse((end.max(t), END, SPIKE, index)));
                self.update_spike_factor();
            }
            _ => {
                self.active_spikes.retain(|&s| s != index);
                self.update_spike_factor();
            }
        }
    }

    fn update_spike_factor(&mut self) {
        self.spike_factor = self
            .active_spikes
            .iter()
            .map(|&s| self.spikes[s as usize].factor)
            .product();
        // Redraw the next arrival at the new rate (memoryless, so this stays Poisson).
        self.next_arrival_ns = self.now_ns + self.exp_gap_ns(self.now_ns);
    }

    fn apply_change(&mut self) {
        let Some((t, change)) = self.changes.get(self.next_change).cloned() else {
            return;
        };
        self.next_change += 1;
        let service = self.model.service_index(&change.service);
        let detail = match (&change.action, service) {
            (ChangeAction::ScaleOut { replicas }, Some(s)) => {
                let before = self.service_active[s as usize].len();
                for _ in 0..*replicas {
                    self.add_replica(s);
                }
                format!(
                    "replicas {before} -> {}",
                    self.service_active[s as usize].len()
                )
            }
            (ChangeAction::ScaleIn { replicas }, Some(s)) => {
                let before = self.service_active[s as usize].len();
                for _ in 0..*replicas {
                    if self.service_active[s as usize].len() <= 1 {
                        break;
                    }
                    if let Some(r) = self.service_active[s as usize].pop() {
                        self.replicas[r as usize].active = false;
                    }
                }
                format!(
                    "replicas {before} -> {}",
                    self.service_active[s as usize].len()
                )
            }
            (
                ChangeAction::Replace {
                    service_time_factor,
                },
                Some(s),
            ) => {
                let service = &mut self.model.services[s as usize];
                for op in &mut service.ops {
                    op.set_time(op.mean_ns * service_time_factor, op.cv);
                }
                service.version = next_version(&service.version);
                format!(
                    "new version {}: service time x{service_time_factor}",
                    service.version
                )
            }
            (
                ChangeAction::AddService {
                    caller,
                    callee,
                    service_time_ms,
                    replicas,
                },
                None,
            ) => {
                let (Some(a), Some(b)) = (
                    self.model.service_index(caller),
                    self.model.service_index(callee),
                ) else {
                    return;
                };
                let new = self.model.services.len() as u32;
                let proxy_ops = self.model.services[b as usize]
                    .ops
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        let mut op = OpModel {
                            name: o.name.clone(),
                            mean_ns: 0.0,
                            cv: 0.0,
                            mu: 0.0,
                            sigma: 0.0,
                            pre_fraction: 0.5,
                            request_bytes: o.request_bytes,
                            response_bytes: o.response_bytes,
                            disk_write_bytes: 0,
                            stages: vec![vec![CallModel {
                                service: b,
                                op: i as u32,
                                probability: 1.0,
                            }]],
                        };
                        op.set_time(service_time_ms * 1e6, 0.5);
                        op
                    })
                    .collect();
                self.model.services.push(ServiceModel {
                    name: change.service.clone(),
                    threads: 16,
                    cores: 1.0,
                    memory_base: 256.0 * 1024.0 * 1024.0,
                    memory_per_request: 64.0 * 1024.0,
                    instrumented: true,
                    ops: proxy_ops,
                    version: FIRST_VERSION.to_owned(),
                });
                self.add_service_slots();
                for _ in 0..*replicas {
                    self.add_replica(new);
                }
                for op in &mut self.model.services[a as usize].ops {
                    for call in op.stages.iter_mut().flatten() {
                        if call.service == b {
                            call.service = new;
                        }
                    }
                }
                format!("inserted between {caller} and {callee}")
            }
            (ChangeAction::RemoveService, Some(s)) => {
                for svc in &mut self.model.services {
                    for op in &mut svc.ops {
                        for stage in &mut op.stages {
                            stage.retain(|c| c.service != s);
                        }
                    }
                }
                for &r in &self.service_active[s as usize] {
                    self.replicas[r as usize].active = false;
                }
                self.service_active[s as usize].clear();
                format!("removed leaf {}", change.service)
            }
            (ChangeAction::Rps { factor }, Some(_)) => {
                let before = self.base_rate_per_ns * 1e9;
                self.base_rate_per_ns *= factor;
                // Redraw the next arrival at the new rate (memoryless, so this stays Poisson).
                self.next_arrival_ns = self.now_ns + self.exp_gap_ns(self.now_ns);
                format!(
                    "offered load {before:.0} -> {:.0} requests/s",
                    self.base_rate_per_ns * 1e9
                )
            }
            // Validated in `new`; a change that no longer applies is skipped, unlabelled.
            _ => return,
        };
        self.change_labels.push(ChangeLabel {
            kind: change.action.kind().to_string(),
            service: change.service.clone(),
            at_ms: t / MS,
            detail,
        });
    }
}

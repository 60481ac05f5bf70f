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
//!
//! The state is in parts, one file each: the [`event`] queue, the [`call`]s in flight, the
//! [`cluster`] of replicas, the offered [`load`], metric [`sampling`], the scheduled
//! [`injections`] (faults and load spikes), deployment [`changes`] and runtime
//! [`actuation`]; [`requests`] moves a call through its replicas.

use std::collections::HashSet;

use augur_operators::records::{MetricPoint, Span};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::changes::ChangeSpec;
use super::faults::{FaultPlan, FaultTarget, RandomPlanner};
use super::instrumentation::Dropped;
use super::labels::Labels;
use super::model::Model;
use super::topology::{SloSpec, Topology};
use super::{SimConfig, SimError};

mod actuation;
mod call;
mod changes;
mod cluster;
mod event;
mod injections;
mod load;
mod requests;
mod sampling;

use actuation::Actuation;
use call::CallPool;
use changes::Changes;
use cluster::Cluster;
use event::EventQueue;
use injections::Injections;
use load::Load;
use sampling::Sampling;

const MS: u64 = 1_000_000;

pub struct Simulator {
    topology: Topology,
    seed: u64,
    start_ms: u64,
    now_ms: u64,
    now_ns: u64,
    model: Model,
    /// The simulation's random stream (service times, routing draws, faults' effects).
    rng: Xoshiro256PlusPlus,
    ids: Ids,
    events: EventQueue,
    calls: CallPool,
    cluster: Cluster,
    load: Load,
    sampling: Sampling,
    injections: Injections,
    changes: Changes,
    actuation: Actuation,
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

/// Span and trace ids: a keyed counter through SplitMix64, so they look random, never
/// repeat and draw nothing from the simulation's random stream.
#[derive(Debug)]
struct Ids {
    key: u64,
    counter: u64,
}

impl Ids {
    fn new(seed: u64) -> Self {
        Ids {
            key: splitmix(seed ^ 0x1d5_0000_0000_0001),
            counter: 0,
        }
    }

    fn next_span_id(&mut self) -> u64 {
        self.counter += 1;
        match splitmix(
            self.key
                .wrapping_add(self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
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
        // The application's own scrape interval (a twin's) over the run's default.
        let metrics_interval_ms = config
            .topology
            .spec()
            .telemetry
            .metrics_interval_ms
            .filter(|&ms| ms > 0)
            .unwrap_or(config.metrics_interval_ms);
        let start_ns = config.start_ms * MS;
        let load = &config.topology.spec().load;
        let mut sim = Simulator {
            seed: config.seed,
            start_ms: config.start_ms,
            now_ms: config.start_ms,
            now_ns: start_ns,
            rng: Xoshiro256PlusPlus::seed_from_u64(config.seed),
            ids: Ids::new(config.seed),
            events: EventQueue::default(),
            calls: CallPool::default(),
            cluster: Cluster::default(),
            load: Load::new(load, config.rate_scale, start_ns),
            sampling: Sampling::new(
                start_ns,
                metrics_interval_ms * MS,
                config.in_flight_interval_ms * MS,
            ),
            injections: Injections::default(),
            changes: Changes::default(),
            actuation: Actuation::new(config.seed, config.delays.clone()),
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
                let rate = sim.load.base_rate_per_ns * 1e9;
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
                sim.injections.planner =
                    Some(RandomPlanner::new(plan.clone(), config.seed, targets));
            }
        }
        sim.validate_changes(&config.changes)?;
        let mut changes: Vec<(u64, ChangeSpec)> = config
            .changes
            .iter()
            .map(|c| (start_ns + c.at_ms * MS, c.clone()))
            .collect();
        changes.sort_by_key(|(t, _)| *t);
        sim.changes.scheduled = changes;
        sim.load.next_arrival_ns = start_ns + sim.exp_gap_ns(start_ns);
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
            faults: self.injections.fault_labels(self.now_ms),
            load_spikes: self.injections.spike_labels(self.now_ms),
            changes: self.changes.applied.clone(),
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
            let t_event = self.events.next_time();
            let t_boundary = self.injections.next_boundary_ns();
            let t_change = self.changes.next_ns();
            let t_command = self.actuation.next_due_ns();
            let t = t_event
                .min(t_boundary)
                .min(t_change)
                .min(t_command)
                .min(self.sampling.next_sample_ns)
                .min(self.sampling.next_in_flight_ns)
                .min(self.load.next_arrival_ns);
            if t >= until_ns {
                break;
            }
            self.now_ns = t;
            // Fixed priority on ties: a sample sees the state before anything else at t.
            if t == self.sampling.next_sample_ns {
                self.sample(metrics);
            } else if t == self.sampling.next_in_flight_ns {
                self.sample_in_flight(metrics);
            } else if t == t_boundary {
                self.apply_boundary();
            } else if t == t_change {
                self.apply_change();
            } else if t == t_command {
                self.apply_command();
            } else if t == self.load.next_arrival_ns {
                self.arrival();
            } else if let Some(event) = self.events.pop() {
                self.handle(event, spans);
            }
        }
        self.now_ns = until_ns;
        self.now_ms = until_ms;
    }

    /// Room for one more service in every per-service part.
    fn add_service_slots(&mut self) {
        self.dropped.metrics.push(false);
        self.dropped.spans.push(false);
        self.cluster.add_service();
    }

    fn add_replica(&mut self, service: u32) {
        let s = &self.model.services[service as usize];
        self.cluster.add_replica(service, &s.name, s.cores);
    }

    // ---- randomness and ids ----

    fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    fn normal(&mut self) -> f64 {
        self.rng.sample::<f64, _>(StandardNormal)
    }
}

//! Metric sampling: every interval, each live replica's CPU, memory, network, disk and
//! queue; and, on its own clock, the in-flight gauge.

use augur_operators::records::{MetricPoint, Resource};

use super::super::faults::FaultKind;
use super::Simulator;

#[derive(Debug)]
pub(super) struct Sampling {
    pub(super) interval_ns: u64,
    pub(super) next_sample_ns: u64,
    /// In-flight gauge interval (0: off) and next sample time (`u64::MAX` when off).
    in_flight_interval_ns: u64,
    pub(super) next_in_flight_ns: u64,
}

impl Sampling {
    pub(super) fn new(start_ns: u64, interval_ns: u64, in_flight_interval_ns: u64) -> Self {
        Sampling {
            interval_ns,
            next_sample_ns: start_ns + interval_ns,
            in_flight_interval_ns,
            next_in_flight_ns: if in_flight_interval_ns == 0 {
                u64::MAX
            } else {
                start_ns + in_flight_interval_ns
            },
        }
    }
}

impl Simulator {
    /// Every live replica's resource samples of the interval that ends now; resets the
    /// interval's accumulators.
    pub(super) fn sample(&mut self, metrics: &mut Vec<MetricPoint>) {
        let t = self.now_ns;
        let interval_s = self.sampling.interval_ns as f64 / 1e9;
        for r in 0..self.cluster.replicas.len() {
            let (service, live) = {
                let rep = &self.cluster.replicas[r];
                (rep.service, rep.active || rep.inflight > 0)
            };
            if !live {
                continue;
            }
            let mut hog = 0.0;
            let mut memory_extra = 0.0;
            let svc = &self.model.services[service as usize];
            for &f in &self.injections.active_faults {
                let fault = &self.injections.faults[f as usize];
                if !fault.hits(service, r as u32) {
                    continue;
                }
                match fault.kind {
                    // The hog's own share of the cores (a larger allotment dilutes it).
                    FaultKind::CpuContention => {
                        hog += 0.7 * (1.0 - 1.0 / fault.magnitude_at(t))
                            / self.cluster.services[service as usize].allotment.cpu;
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
            let rep = &mut self.cluster.replicas[r];
            let cpu = (rep.cpu_busy_ns / (cores * self.sampling.interval_ns as f64)
                + 0.02
                + hog
                + 0.005 * z1)
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
                if !self.model.telemetry.exports(resource) {
                    continue;
                }
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
        self.sampling.next_sample_ns += self.sampling.interval_ns;
    }

    /// Every live replica's in-flight requests (queued or being served) now, as the
    /// `InFlight` gauge. Draws no random numbers.
    pub(super) fn sample_in_flight(&mut self, metrics: &mut Vec<MetricPoint>) {
        let t = self.now_ns;
        for rep in &self.cluster.replicas {
            let service = rep.service as usize;
            if !(rep.active || rep.inflight > 0)
                || self.dropped.metrics[service]
                || !self.model.telemetry.exports(Resource::InFlight)
            {
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
        self.sampling.next_in_flight_ns += self.sampling.in_flight_interval_ns;
    }
}

//! Which metric names measure which [`Resource`]: in, an OTLP metric name; out, the resource
//! it maps to (or none: the metric is ignored). Defaults are the OpenTelemetry
//! semantic-convention names; more can be added from config.

use std::collections::HashMap;

use augur_operators::records::Resource;

/// Metric name → [`Resource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricNames {
    map: HashMap<String, Resource>,
}

impl Default for MetricNames {
    /// The OpenTelemetry semantic-convention names (container, k8s pod, process and system
    /// CPU/memory/network/disk), cAdvisor's as Prometheus exposes them (the Collector's
    /// Prometheus receiver keeps the names), `rpc.server.queue_length` for the queue gauge
    /// and `http.server.active_requests` for the in-flight gauge.
    fn default() -> Self {
        use Resource::*;
        let defaults: [(&str, Resource); 25] = [
            ("container.cpu.utilization", Cpu),
            ("k8s.pod.cpu.utilization", Cpu),
            // kubeletstats' newer name for the same cores in use (the older is deprecated;
            // a Collector may send both).
            ("k8s.pod.cpu.usage", Cpu),
            ("process.cpu.utilization", Cpu),
            ("system.cpu.utilization", Cpu),
            // Counters of CPU seconds (kubeletstats, hostmetrics): their rate is cores in use.
            ("container.cpu.time", Cpu),
            ("k8s.pod.cpu.time", Cpu),
            ("process.cpu.time", Cpu),
            ("container.memory.usage", Memory),
            ("k8s.pod.memory.usage", Memory),
            ("process.memory.usage", Memory),
            ("system.memory.usage", Memory),
            ("container.network.io", Network),
            ("k8s.pod.network.io", Network),
            ("system.network.io", Network),
            ("container.disk.io", Disk),
            ("system.disk.io", Disk),
            // cAdvisor (kubelet's /metrics/cadvisor), per container; counters as rates.
            ("container_cpu_usage_seconds_total", Cpu),
            ("container_memory_working_set_bytes", Memory),
            ("container_network_receive_bytes_total", Network),
            ("container_network_transmit_bytes_total", Network),
            ("container_fs_reads_bytes_total", Disk),
            ("container_fs_writes_bytes_total", Disk),
            ("rpc.server.queue_length", Queue),
            ("http.server.active_requests", InFlight),
        ];
        MetricNames {
            map: defaults
                .into_iter()
                .map(|(n, r)| (n.to_owned(), r))
                .collect(),
        }
    }
}

impl MetricNames {
    /// No names mapped.
    pub fn empty() -> Self {
        MetricNames {
            map: HashMap::new(),
        }
    }

    /// Maps `name` to `r` (replacing any earlier mapping of `name`).
    pub fn with(mut self, name: &str, r: Resource) -> Self {
        self.map.insert(name.to_owned(), r);
        self
    }

    /// The resource `name` measures, if mapped.
    pub fn resource(&self, name: &str) -> Option<Resource> {
        self.map.get(name).copied()
    }

    /// The name the encoders write for `r`.
    pub fn canonical(r: Resource) -> &'static str {
        match r {
            Resource::Cpu => "container.cpu.utilization",
            Resource::Memory => "container.memory.usage",
            Resource::Network => "container.network.io",
            Resource::Disk => "container.disk.io",
            Resource::Queue => "rpc.server.queue_length",
            Resource::InFlight => "http.server.active_requests",
        }
    }
}

//! Topologies: services, their operations and call stages, the request mix, the load and the
//! SLOs; parsed from TOML, validated (errors name the wrong field or service), and the
//! built-ins, which are the files under `configs/topologies/` so there is one source of truth.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use augur_operators::records::Resource;

use super::SimError;

/// Built-in topologies: `(name, TOML text)`.
const BUILTINS: &[(&str, &str)] = &[
    (
        "chain",
        include_str!("../../../configs/topologies/chain.toml"),
    ),
    (
        "fanout",
        include_str!("../../../configs/topologies/fanout.toml"),
    ),
    (
        "social-network",
        include_str!("../../../configs/topologies/social-network.toml"),
    ),
    (
        "hotel-reservation",
        include_str!("../../../configs/topologies/hotel-reservation.toml"),
    ),
    (
        "online-boutique",
        include_str!("../../../configs/topologies/online-boutique.toml"),
    ),
];

const BUILTIN_NAMES: &[&str] = &[
    "chain",
    "fanout",
    "social-network",
    "hotel-reservation",
    "online-boutique",
];

/// A latency objective on an entry point: the `quantile` of root-span latency per window must
/// stay at or below `threshold_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    pub entry: String,
    #[serde(default)]
    pub operation: Option<String>,
    pub quantile: f64,
    pub threshold_ms: f64,
}

/// The whole TOML document of a topology.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    pub name: String,
    /// Base one-way network delay per RPC leg, ms.
    #[serde(default = "default_network_base_ms")]
    pub network_base_ms: f64,
    /// Mean of the exponential random part of the one-way delay, ms.
    #[serde(default = "default_network_jitter_ms")]
    pub network_jitter_ms: f64,
    /// Probability that a caller whose child failed fails too.
    #[serde(default = "default_error_propagation")]
    pub error_propagation: f64,
    /// A request that waited longer than this for a thread is rejected with an error when
    /// it reaches one (a deadline, as RPC frameworks have), so overload ends in errors and
    /// bounded latency rather than an ever-growing backlog.
    #[serde(default = "default_queue_timeout_ms")]
    pub queue_timeout_ms: f64,
    pub load: LoadSpec,
    #[serde(rename = "slo", default)]
    pub slos: Vec<SloSpec>,
    #[serde(rename = "service")]
    pub services: Vec<ServiceSpec>,
    #[serde(rename = "request")]
    pub requests: Vec<RequestSpec>,
    /// What the application's telemetry looks like, when not the simulator's own (a twin
    /// writes what it observed, so models trained in it see the shape the real stream has).
    #[serde(default, skip_serializing_if = "TelemetrySpec::is_default")]
    pub telemetry: TelemetrySpec,
}

/// The shape of the telemetry a simulated run exports (`[telemetry]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySpec {
    /// How calls show in spans. Default `client_server`.
    pub spans: SpanShape,
    /// How often metrics are sampled, ms (as a scrape interval). Default: the run's own
    /// (500 ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_interval_ms: Option<u64>,
    /// The resources the application exports metrics for (`cpu`, `memory`, `network`,
    /// `disk`, `queue`, `in_flight`). Default: all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<Resource>>,
}

impl TelemetrySpec {
    fn is_default(&self) -> bool {
        *self == TelemetrySpec::default()
    }

    /// Whether metrics of `resource` are exported.
    pub fn exports(&self, resource: Resource) -> bool {
        self.metrics.as_ref().is_none_or(|m| m.contains(&resource))
    }
}

/// How calls show in spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanShape {
    /// A CLIENT span at the caller and a SERVER span at the callee, per call
    /// (OpenTelemetry's RPC instrumentation).
    #[default]
    ClientServer,
    /// One span per service visit, no kind, its parent the caller's span (Jaeger and
    /// Zipkin imports, some agents). Calls to uninstrumented services do not show.
    OnePerHop,
}

/// Open-loop Poisson load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Mean arrival rate, requests per second.
    pub rate_per_s: f64,
    /// Diurnal sinusoid amplitude as a fraction of the mean (0 = constant rate).
    #[serde(default)]
    pub diurnal_amplitude: f64,
    #[serde(default = "default_diurnal_period_s")]
    pub diurnal_period_s: f64,
    /// Scheduled load spikes (not faults; they are labelled as `load_spikes`).
    #[serde(rename = "spike", default)]
    pub spikes: Vec<SpikeSpec>,
}

/// A load spike: the arrival rate is multiplied by `factor` for `duration_s` from `start_s`
/// after the simulation start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeSpec {
    pub start_s: f64,
    pub duration_s: f64,
    pub factor: f64,
}

/// One microservice: `replicas` instances, each a queue served by `threads` workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    #[serde(default = "default_threads")]
    pub threads: u32,
    /// CPU cores per replica: the denominator of the utilization metric.
    #[serde(default = "default_cores")]
    pub cores: f64,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: f64,
    /// Memory held per request in flight, KiB.
    #[serde(default = "default_memory_per_request_kb")]
    pub memory_per_request_kb: f64,
    /// Emits spans; an uninstrumented service (a cache or database without tracing) must be a
    /// leaf, and its callers' client spans carry `peer_service`.
    #[serde(default = "default_true")]
    pub instrumented: bool,
    #[serde(rename = "operation")]
    pub operations: Vec<OperationSpec>,
}

/// One operation of a service: its local processing and the calls it makes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationSpec {
    pub name: String,
    /// The name its spans carry, when it differs from `name` (a twin models one span name
    /// seen with different call sets at the entry as several operations, one per request
    /// type). Default: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    /// Mean local processing time (lognormal), ms.
    pub service_time_ms: f64,
    /// Coefficient of variation of the processing time.
    #[serde(default = "default_cv")]
    pub cv: f64,
    /// Share of the processing done before the first stage of calls (the rest after).
    #[serde(default = "default_pre_fraction")]
    pub pre_fraction: f64,
    #[serde(default = "default_request_bytes")]
    pub request_bytes: u64,
    #[serde(default = "default_response_bytes")]
    pub response_bytes: u64,
    /// Bytes written to disk per request (storage back ends).
    #[serde(default)]
    pub disk_write_bytes: u64,
    /// Probability that a call fails on its own (no fault injected): it fails fast, with no
    /// children, as under an error fault. Default 0; a twin fitted from traces sets it from
    /// the operation's observed error rate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub error_rate: f64,
    /// Stages run in sequence; the calls of a stage run in parallel and the caller waits
    /// for all of them. A call is `"service"`, `"service:operation"`, optionally followed
    /// by `"@probability"` (e.g. `"media-service:UploadMedia@0.3"`).
    #[serde(default)]
    pub stages: Vec<Vec<String>>,
}

/// A request type of the load generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub name: String,
    pub weight: f64,
    pub entry: String,
    pub operation: String,
}

/// A parsed call string.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRef {
    pub service: String,
    /// `None` = the callee's first operation.
    pub operation: Option<String>,
    pub probability: f64,
}

impl CallRef {
    /// Parses `"service[:operation][@probability]"`.
    pub fn parse(text: &str) -> Result<CallRef, SimError> {
        let (target, probability) = match text.split_once('@') {
            Some((target, p)) => {
                let p: f64 = p.trim().parse().map_err(|_| {
                    SimError::Invalid(format!("call {text:?}: probability {p:?} is not a number"))
                })?;
                (target, p)
            }
            None => (text, 1.0),
        };
        if !(probability > 0.0 && probability <= 1.0) {
            return Err(SimError::Invalid(format!(
                "call {text:?}: probability must be in (0, 1]"
            )));
        }
        let (service, operation) = match target.split_once(':') {
            Some((s, o)) => (s.trim(), Some(o.trim().to_string())),
            None => (target.trim(), None),
        };
        if service.is_empty() {
            return Err(SimError::Invalid(format!(
                "call {text:?}: empty service name"
            )));
        }
        Ok(CallRef {
            service: service.to_string(),
            operation,
            probability,
        })
    }
}

/// A validated topology.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    spec: TopologySpec,
}

impl Topology {
    /// A built-in topology by name (see [`Topology::builtin_names`]); `chain:N` and
    /// `fanout:N` give a chain of N tiers or a fan-out to N leaves.
    pub fn builtin(name: &str) -> Result<Topology, SimError> {
        if let Some((shape, n)) = name.split_once(':') {
            let n: usize = n
                .parse()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| SimError::UnknownTopology(name.to_string()))?;
            return match shape {
                "chain" => Topology::chain(n),
                "fanout" => Topology::fanout(n),
                _ => Err(SimError::UnknownTopology(name.to_string())),
            };
        }
        let text = BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
            .ok_or_else(|| SimError::UnknownTopology(name.to_string()))?;
        Topology::from_toml_str(text)
    }

    pub fn builtin_names() -> &'static [&'static str] {
        BUILTIN_NAMES
    }

    pub fn from_toml_str(s: &str) -> Result<Topology, SimError> {
        let spec: TopologySpec = toml::from_str(s).map_err(|e| SimError::Toml(e.to_string()))?;
        Topology::from_spec(spec)
    }

    /// A chain of `tiers` tiers shaped like the `chain` built-in (whose first and last
    /// tiers are the templates); thread pools grow towards the front end and the SLO with
    /// the depth.
    pub fn chain(tiers: usize) -> Result<Topology, SimError> {
        let base = Topology::builtin("chain")?.spec;
        let tiers = tiers.max(1);
        let mut spec = base.clone();
        spec.name = format!("chain:{tiers}");
        spec.services = (0..tiers)
            .map(|i| {
                let template = if i == 0 {
                    &base.services[0]
                } else {
                    &base.services[base.services.len() - 1]
                };
                let mut service = template.clone();
                service.name = format!("tier-{i}");
                service.threads = if i == 0 {
                    64.max(8 * (tiers as u32 + 3))
                } else {
                    8 * (tiers - i) as u32
                };
                let op = &mut service.operations[0];
                if i > 0 {
                    op.name = format!("Tier{i}");
                }
                op.stages = if i + 1 < tiers {
                    vec![vec![format!("tier-{}:Tier{}", i + 1, i + 1)]]
                } else {
                    Vec::new()
                };
                service
            })
            .collect();
        for slo in &mut spec.slos {
            slo.threshold_ms = (7.0 * tiers as f64).max(15.0);
        }
        Topology::from_spec(spec)
    }

    /// A root calling `leaves` leaves in parallel, shaped like the `fanout` built-in.
    pub fn fanout(leaves: usize) -> Result<Topology, SimError> {
        let base = Topology::builtin("fanout")?.spec;
        let leaves = leaves.max(1);
        let mut spec = base.clone();
        spec.name = format!("fanout:{leaves}");
        let mut root = base.services[0].clone();
        root.operations[0].stages = vec![(0..leaves).map(|i| format!("leaf-{i}:Leaf")).collect()];
        spec.services = std::iter::once(root)
            .chain((0..leaves).map(|i| {
                let mut leaf = base.services[1].clone();
                leaf.name = format!("leaf-{i}");
                leaf
            }))
            .collect();
        if leaves > 6 {
            for slo in &mut spec.slos {
                slo.threshold_ms += 5.0;
            }
        }
        Topology::from_spec(spec)
    }

    /// A built-in name (or `chain:N`, `fanout:N`), or the path of a TOML file.
    pub fn load(path_or_name: &str) -> Result<Topology, SimError> {
        if BUILTIN_NAMES.contains(&path_or_name)
            || path_or_name.starts_with("chain:")
            || path_or_name.starts_with("fanout:")
        {
            return Topology::builtin(path_or_name);
        }
        let path = std::path::Path::new(path_or_name);
        if !path.exists() && !path_or_name.contains('/') && !path_or_name.ends_with(".toml") {
            return Err(SimError::UnknownTopology(path_or_name.to_string()));
        }
        let text = std::fs::read_to_string(path_or_name).map_err(|source| SimError::Io {
            path: path_or_name.to_string(),
            source,
        })?;
        Topology::from_toml_str(&text).map_err(|error| SimError::InFile {
            path: path_or_name.to_string(),
            error: Box::new(error),
        })
    }

    /// Validates a spec: every name referenced exists, values are in range, calls are acyclic.
    pub fn from_spec(spec: TopologySpec) -> Result<Topology, SimError> {
        validate(&spec)?;
        Ok(Topology { spec })
    }

    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn services(&self) -> Vec<String> {
        self.spec.services.iter().map(|s| s.name.clone()).collect()
    }

    /// Services that receive requests from the load generator, in first-use order.
    pub fn entry_services(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.spec.requests {
            if !out.contains(&r.entry) {
                out.push(r.entry.clone());
            }
        }
        out
    }

    pub fn slos(&self) -> &[SloSpec] {
        &self.spec.slos
    }
}

fn validate(spec: &TopologySpec) -> Result<(), SimError> {
    let invalid = |msg: String| Err(SimError::Invalid(msg));
    if spec.services.is_empty() {
        return invalid("topology has no [[service]]".into());
    }
    if spec.requests.is_empty() {
        return invalid("topology has no [[request]]".into());
    }
    if spec.load.rate_per_s.is_nan() || spec.load.rate_per_s <= 0.0 {
        return invalid("load.rate_per_s must be > 0".into());
    }
    if !(0.0..1.0).contains(&spec.load.diurnal_amplitude) {
        return invalid("load.diurnal_amplitude must be in [0, 1)".into());
    }
    if spec.load.diurnal_period_s.is_nan() || spec.load.diurnal_period_s <= 0.0 {
        return invalid("load.diurnal_period_s must be > 0".into());
    }
    for spike in &spec.load.spikes {
        if spike.start_s < 0.0 || spike.duration_s <= 0.0 || spike.factor <= 0.0 {
            return invalid(format!(
                "load.spike {spike:?}: times and factor must be positive"
            ));
        }
    }
    if !(0.0..=1.0).contains(&spec.error_propagation) {
        return invalid("error_propagation must be in [0, 1]".into());
    }
    if spec.queue_timeout_ms.is_nan() || spec.queue_timeout_ms <= 0.0 {
        return invalid("queue_timeout_ms must be > 0".into());
    }
    if spec.network_base_ms < 0.0 || spec.network_jitter_ms < 0.0 {
        return invalid("network_base_ms and network_jitter_ms must be >= 0".into());
    }
    let mut by_name: HashMap<&str, &ServiceSpec> = HashMap::new();
    for s in &spec.services {
        if by_name.insert(s.name.as_str(), s).is_some() {
            return invalid(format!("service {:?} is declared twice", s.name));
        }
        if s.replicas == 0 || s.threads == 0 {
            return invalid(format!(
                "service {:?}: replicas and threads must be >= 1",
                s.name
            ));
        }
        if s.cores.is_nan() || s.cores <= 0.0 || s.memory_mb < 0.0 || s.memory_per_request_kb < 0.0
        {
            return invalid(format!(
                "service {:?}: cores must be > 0 and memory >= 0",
                s.name
            ));
        }
        if s.operations.is_empty() {
            return invalid(format!("service {:?} has no [[service.operation]]", s.name));
        }
        let mut ops = HashSet::new();
        for op in &s.operations {
            if !ops.insert(op.name.as_str()) {
                return invalid(format!(
                    "service {:?}: operation {:?} is declared twice",
                    s.name, op.name
                ));
            }
            if op.service_time_ms.is_nan() || op.service_time_ms <= 0.0 || op.cv < 0.0 {
                return invalid(format!(
                    "service {:?} operation {:?}: service_time_ms must be > 0 and cv >= 0",
                    s.name, op.name
                ));
            }
            if !(0.0..=1.0).contains(&op.error_rate) {
                return invalid(format!(
                    "service {:?} operation {:?}: error_rate must be in [0, 1]",
                    s.name, op.name
                ));
            }
            if !(0.0..=1.0).contains(&op.pre_fraction) {
                return invalid(format!(
                    "service {:?} operation {:?}: pre_fraction must be in [0, 1]",
                    s.name, op.name
                ));
            }
            if !s.instrumented && !op.stages.is_empty() {
                return invalid(format!(
                    "service {:?} is not instrumented, so it must be a leaf (operation {:?} has stages)",
                    s.name, op.name
                ));
            }
        }
    }
    let find_op = |service: &str, op: Option<&str>, context: &str| -> Result<(), SimError> {
        let s = by_name
            .get(service)
            .ok_or_else(|| SimError::UnknownService {
                service: service.to_string(),
                context: context.to_string(),
            })?;
        if let Some(op) = op
            && !s.operations.iter().any(|o| o.name == op)
        {
            return Err(SimError::UnknownOperation {
                service: service.to_string(),
                operation: op.to_string(),
                context: context.to_string(),
            });
        }
        Ok(())
    };
    for s in &spec.services {
        for op in &s.operations {
            for (k, stage) in op.stages.iter().enumerate() {
                for call in stage {
                    let context = format!(
                        "service {:?} operation {:?} stage {k} call {call:?}",
                        s.name, op.name
                    );
                    let c = CallRef::parse(call)?;
                    find_op(&c.service, c.operation.as_deref(), &context)?;
                }
            }
        }
    }
    for r in &spec.requests {
        if r.weight.is_nan() || r.weight <= 0.0 {
            return invalid(format!("request {:?}: weight must be > 0", r.name));
        }
        find_op(
            &r.entry,
            Some(&r.operation),
            &format!("request {:?} entry", r.name),
        )?;
    }
    for slo in &spec.slos {
        find_op(&slo.entry, slo.operation.as_deref(), "slo entry")?;
        if !(slo.quantile > 0.0 && slo.quantile < 1.0) || slo.threshold_ms <= 0.0 {
            return invalid(format!(
                "slo for {:?}: quantile must be in (0, 1) and threshold_ms > 0",
                slo.entry
            ));
        }
    }
    check_acyclic(spec)
}

/// Depth-first search over (service, operation) nodes; a back edge is a call cycle, which a
/// synchronous RPC system would deadlock on.
fn check_acyclic(spec: &TopologySpec) -> Result<(), SimError> {
    fn callees(spec: &TopologySpec, service: &str, op: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(s) = spec.services.iter().find(|s| s.name == service) else {
            return out;
        };
        let Some(o) = s.operations.iter().find(|o| o.name == op) else {
            return out;
        };
        for call in o.stages.iter().flatten() {
            if let Ok(c) = CallRef::parse(call) {
                let callee_op = match c.operation {
                    Some(op) => op,
                    None => spec
                        .services
                        .iter()
                        .find(|s| s.name == c.service)
                        .and_then(|s| s.operations.first())
                        .map(|o| o.name.clone())
                        .unwrap_or_default(),
                };
                out.push((c.service, callee_op));
            }
        }
        out
    }
    /// A depth-first search's knowledge of an operation; absent: not visited yet.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Visit {
        OnStack,
        Done,
    }
    let mut state: HashMap<(String, String), Visit> = HashMap::new();
    for s in &spec.services {
        for o in &s.operations {
            let root = (s.name.clone(), o.name.clone());
            if state.contains_key(&root) {
                continue;
            }
            let mut stack = vec![(root.clone(), callees(spec, &root.0, &root.1), 0usize)];
            state.insert(root, Visit::OnStack);
            while let Some((node, children, next)) = stack.last_mut() {
                if *next < children.len() {
                    let child = children[*next].clone();
                    *next += 1;
                    match state.get(&child) {
                        None => {
                            let grand = callees(spec, &child.0, &child.1);
                            state.insert(child.clone(), Visit::OnStack);
                            stack.push((child, grand, 0));
                        }
                        Some(Visit::OnStack) => {
                            return Err(SimError::Invalid(format!(
                                "call cycle: {}:{} calls {}:{} which is already on its call path",
                                node.0, node.1, child.0, child.1
                            )));
                        }
                        Some(Visit::Done) => {}
                    }
                } else {
                    state.insert(node.clone(), Visit::Done);
                    stack.pop();
                }
            }
        }
    }
    Ok(())
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}
fn default_network_base_ms() -> f64 {
    0.1
}
fn default_network_jitter_ms() -> f64 {
    0.05
}
fn default_error_propagation() -> f64 {
    0.8
}
fn default_queue_timeout_ms() -> f64 {
    1000.0
}
fn default_diurnal_period_s() -> f64 {
    3600.0
}
fn default_replicas() -> u32 {
    1
}
fn default_threads() -> u32 {
    16
}
fn default_cores() -> f64 {
    1.0
}
fn default_memory_mb() -> f64 {
    256.0
}
fn default_memory_per_request_kb() -> f64 {
    64.0
}
fn default_true() -> bool {
    true
}
fn default_cv() -> f64 {
    0.6
}
fn default_pre_fraction() -> f64 {
    0.5
}
fn default_request_bytes() -> u64 {
    512
}
fn default_response_bytes() -> u64 {
    1024
}

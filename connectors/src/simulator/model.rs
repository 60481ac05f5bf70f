//! The compiled, index-based form of a topology that the engine runs on: names resolved to
//! indices once, service-time distributions precomputed, so the hot loop never looks up a
//! string.

use super::SimError;
use super::topology::{CallRef, Topology};

/// A call from an operation to another service's operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CallModel {
    pub service: u32,
    pub op: u32,
    pub probability: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct OpModel {
    /// The name on its spans (the spec's `span_name`, else its `name`).
    pub name: String,
    pub mean_ns: f64,
    pub cv: f64,
    /// Lognormal parameters of the processing time in ns.
    pub mu: f64,
    pub sigma: f64,
    pub pre_fraction: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub disk_write_bytes: u64,
    /// Probability that a call fails on its own (the operation's `error_rate`).
    pub error_rate: f64,
    pub stages: Vec<Vec<CallModel>>,
}

impl OpModel {
    /// Sets the mean and CV, recomputing the lognormal parameters.
    pub fn set_time(&mut self, mean_ns: f64, cv: f64) {
        let sigma2 = (1.0 + cv * cv).ln();
        self.mean_ns = mean_ns;
        self.cv = cv;
        self.sigma = sigma2.sqrt();
        self.mu = mean_ns.ln() - sigma2 / 2.0;
    }
}

/// The `service.version` of every service at the start of a simulation.
pub(crate) const FIRST_VERSION: &str = "v1";

/// The version after `version` (`v1` → `v2`; anything else gets `.1` appended).
pub(crate) fn next_version(version: &str) -> String {
    match version
        .strip_prefix('v')
        .and_then(|n| n.parse::<u64>().ok())
    {
        Some(n) => format!("v{}", n + 1),
        None => format!("{version}.1"),
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ServiceModel {
    pub name: String,
    pub threads: u32,
    pub cores: f64,
    pub memory_base: f64,
    pub memory_per_request: f64,
    pub instrumented: bool,
    pub ops: Vec<OpModel>,
    /// `service.version` on its spans: `v1`, bumped by each replacement.
    pub version: String,
}

#[derive(Clone, Debug)]
pub(crate) struct RequestModel {
    pub service: u32,
    pub op: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub services: Vec<ServiceModel>,
    pub initial_replicas: Vec<u32>,
    pub requests: Vec<RequestModel>,
    /// Cumulative request weights, normalised to end at 1.
    pub request_cdf: Vec<f64>,
    pub network_base_ns: f64,
    pub network_jitter_ns: f64,
    pub error_propagation: f64,
    pub queue_timeout_ns: u64,
    pub span_shape: super::SpanShape,
    /// The telemetry section: which resources' metrics are exported.
    pub telemetry: super::TelemetrySpec,
}

impl Model {
    pub fn compile(topology: &Topology) -> Result<Model, SimError> {
        let spec = topology.spec();
        let index = |name: &str, context: &str| -> Result<u32, SimError> {
            spec.services
                .iter()
                .position(|s| s.name == name)
                .map(|i| i as u32)
                .ok_or_else(|| SimError::UnknownService {
                    service: name.to_string(),
                    context: context.to_string(),
                })
        };
        let op_index = |service: u32, op: Option<&str>, context: &str| -> Result<u32, SimError> {
            let s = &spec.services[service as usize];
            match op {
                None => Ok(0),
                Some(op) => s
                    .operations
                    .iter()
                    .position(|o| o.name == op)
                    .map(|i| i as u32)
                    .ok_or_else(|| SimError::UnknownOperation {
                        service: s.name.clone(),
                        operation: op.to_string(),
                        context: context.to_string(),
                    }),
            }
        };
        let mut services = Vec::with_capacity(spec.services.len());
        for s in &spec.services {
            let mut ops = Vec::with_capacity(s.operations.len());
            for o in &s.operations {
                let mut stages = Vec::with_capacity(o.stages.len());
                for stage in &o.stages {
                    let mut calls = Vec::with_capacity(stage.len());
                    for call in stage {
                        let context = format!("service {:?} operation {:?}", s.name, o.name);
                        let c = CallRef::parse(call)?;
                        let service = index(&c.service, &context)?;
                        let op = op_index(service, c.operation.as_deref(), &context)?;
                        calls.push(CallModel {
                            service,
                            op,
                            probability: c.probability,
                        });
                    }
                    stages.push(calls);
                }
                let mut op = OpModel {
                    name: o.span_name.clone().unwrap_or_else(|| o.name.clone()),
                    mean_ns: 0.0,
                    cv: 0.0,
                    mu: 0.0,
                    sigma: 0.0,
                    pre_fraction: o.pre_fraction,
                    request_bytes: o.request_bytes,
                    response_bytes: o.response_bytes,
                    disk_write_bytes: o.disk_write_bytes,
                    error_rate: o.error_rate,
                    stages,
                };
                op.set_time(o.service_time_ms * 1e6, o.cv);
                ops.push(op);
            }
            services.push(ServiceModel {
                name: s.name.clone(),
                threads: s.threads,
                cores: s.cores,
                memory_base: s.memory_mb * 1024.0 * 1024.0,
                memory_per_request: s.memory_per_request_kb * 1024.0,
                instrumented: s.instrumented,
                ops,
                version: FIRST_VERSION.to_owned(),
            });
        }
        let mut requests = Vec::new();
        let mut request_cdf = Vec::new();
        let total: f64 = spec.requests.iter().map(|r| r.weight).sum();
        let mut acc = 0.0;
        for r in &spec.requests {
            let context = format!("request {:?}", r.name);
            let service = index(&r.entry, &context)?;
            let op = op_index(service, Some(&r.operation), &context)?;
            requests.push(RequestModel { service, op });
            acc += r.weight / total;
            request_cdf.push(acc);
        }
        if let Some(last) = request_cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Model {
            services,
            initial_replicas: spec.services.iter().map(|s| s.replicas).collect(),
            requests,
            request_cdf,
            network_base_ns: spec.network_base_ms * 1e6,
            network_jitter_ns: spec.network_jitter_ms * 1e6,
            error_propagation: spec.error_propagation,
            queue_timeout_ns: (spec.queue_timeout_ms * 1e6) as u64,
            span_shape: spec.telemetry.spans,
            telemetry: spec.telemetry.clone(),
        })
    }

    pub fn service_index(&self, name: &str) -> Option<u32> {
        self.services
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32)
    }

    /// Per service, per request of the load mix: the expected number of calls it receives
    /// and the expected thread-seconds it holds (its own processing plus the time it waits
    /// on its children, which is what fills a thread pool). The call graph is acyclic.
    pub fn load_profile(&self) -> (Vec<f64>, Vec<f64>) {
        let leg_s = 2.0 * (self.network_base_ns + self.network_jitter_ns) / 1e9;
        fn holding_s(model: &Model, service: u32, op: u32, leg_s: f64) -> f64 {
            let op = &model.services[service as usize].ops[op as usize];
            let children: f64 = op
                .stages
                .iter()
                .map(|stage| {
                    stage
                        .iter()
                        .map(|c| c.probability * (holding_s(model, c.service, c.op, leg_s) + leg_s))
                        .fold(0.0, f64::max)
                })
                .sum();
            op.mean_ns / 1e9 + children
        }
        fn visit(
            model: &Model,
            service: u32,
            op: u32,
            weight: f64,
            leg_s: f64,
            out: &mut (Vec<f64>, Vec<f64>),
        ) {
            out.0[service as usize] += weight;
            out.1[service as usize] += weight * holding_s(model, service, op, leg_s);
            for call in model.services[service as usize].ops[op as usize]
                .stages
                .iter()
                .flatten()
            {
                visit(
                    model,
                    call.service,
                    call.op,
                    weight * call.probability,
                    leg_s,
                    out,
                );
            }
        }
        let mut out = (
            vec![0.0; self.services.len()],
            vec![0.0; self.services.len()],
        );
        let mut previous = 0.0;
        for (request, &cdf) in self.requests.iter().zip(&self.request_cdf) {
            visit(
                self,
                request.service,
                request.op,
                cdf - previous,
                leg_s,
                &mut out,
            );
            previous = cdf;
        }
        out
    }
}

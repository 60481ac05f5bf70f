//! The built-in cluster simulator: a deterministic discrete-event simulation of a
//! microservice application (replicas as multi-threaded queues, synchronous RPCs that hold
//! their caller's thread, open-loop load) that emits spans and resource metrics together
//! with ground-truth labels of the faults, load spikes and deployment changes it injected.
//!
//! ```no_run
//! use augur_connectors::simulator::{SimConfig, Simulator, Topology, FaultPlan};
//! let mut config = SimConfig::new(Topology::builtin("social-network")?, 7);
//! config.faults = FaultPlan::parse("random")?;
//! let mut sim = Simulator::new(config)?;
//! let (mut spans, mut metrics) = (Vec::new(), Vec::new());
//! sim.advance_to(sim.now_ms() + 60_000, &mut spans, &mut metrics);
//! let labels = sim.labels();
//! # Ok::<(), augur_connectors::simulator::SimError>(())
//! ```

mod changes;
mod commands;
mod config;
mod engine;
mod faults;
mod instrumentation;
mod labels;
mod model;
mod scenarios;
mod topology;

pub use changes::{ChangeAction, ChangeSpec, ChangesFile};
pub use commands::{ActuationDelays, RuntimeAction, RuntimeCommand};
pub use config::{SimConfig, SimulatorConfig};
pub use engine::Simulator;
pub use faults::{ExplicitPlan, FaultChoice, FaultKind, FaultPlan, FaultSpec, RandomPlan};
pub use instrumentation::Instrumentation;
pub use labels::{ChangeLabel, FaultLabel, Labels, SpikeLabel};
pub use scenarios::{
    SCALE_REPLACE_PERIOD_S, SCALE_REPLACE_RPS_FACTOR, SCALE_REPLACE_SERVICE_TIME_FACTOR,
    SCALE_REPLACE_SWING, SCALE_REPLACE_SWING_PERIOD_S, Scenario, ScenarioKind, scenario,
};
pub use topology::{
    CallRef, LoadSpec, OperationSpec, RequestSpec, ServiceSpec, SloSpec, SpanShape, SpikeSpec,
    TelemetrySpec, Topology, TopologySpec,
};

/// A fixed default start time (2023-11-14T22:13:20Z) so runs are reproducible.
pub const DEFAULT_START_MS: u64 = 1_700_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(
        "unknown topology {0:?} (built-ins: chain, fanout, social-network, hotel-reservation, online-boutique)"
    )]
    UnknownTopology(String),
    #[error("invalid TOML: {0}")]
    Toml(String),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("unknown service {service:?} in {context}")]
    UnknownService { service: String, context: String },
    #[error("service {service:?} has no operation {operation:?} (in {context})")]
    UnknownOperation {
        service: String,
        operation: String,
        context: String,
    },
    #[error("unknown instance {instance:?} of service {service:?} in {context}")]
    UnknownInstance {
        service: String,
        instance: String,
        context: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// An error in a file, named.
    #[error("{path}: {error}")]
    InFile { path: String, error: Box<SimError> },
    /// A field of the simulator's section of the job config.
    #[error("field `{field}`: {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
}

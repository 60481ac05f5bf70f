//! The simulator's configuration: [`SimConfig`], everything one run needs, and
//! [`SimulatorConfig`], the `[simulator]` section of the job config that `demo` and the
//! in-process evaluations build runs from.

use serde::{Deserialize, Serialize};

use super::{
    ActuationDelays, ChangeSpec, DEFAULT_START_MS, FaultChoice, FaultPlan, Instrumentation,
    SimError, Topology,
};

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub topology: Topology,
    pub seed: u64,
    /// Event time of the simulation start, ms since the Unix epoch.
    pub start_ms: u64,
    pub faults: FaultPlan,
    pub changes: Vec<ChangeSpec>,
    pub metrics_interval_ms: u64,
    /// How often every replica's in-flight gauge (`http.server.active_requests`: requests
    /// accepted and not yet answered) is sampled, ms; 0: not exported. Sampling draws no
    /// random numbers, so spans and the other metrics don't depend on it.
    pub in_flight_interval_ms: u64,
    /// Multiplies the topology's load.
    pub rate_scale: f64,
    /// How long runtime commands ([`Simulator::command`]) take to apply.
    pub delays: ActuationDelays,
    /// Services whose metrics or spans are not exported.
    pub instrumentation: Instrumentation,
}

impl SimConfig {
    /// No faults, no changes, metrics every 500 ms, the in-flight gauge every 100 ms, the
    /// topology's own load, start at
    /// [`DEFAULT_START_MS`].
    pub fn new(topology: Topology, seed: u64) -> Self {
        SimConfig {
            topology,
            seed,
            start_ms: DEFAULT_START_MS,
            faults: FaultPlan::None,
            changes: Vec::new(),
            metrics_interval_ms: 500,
            in_flight_interval_ms: 100,
            rate_scale: 1.0,
            delays: ActuationDelays::default(),
            instrumentation: Instrumentation::default(),
        }
    }
}

/// The built-in simulator, as `augur demo` uses it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// A built-in topology name or a TOML file. Default `social-network`.
    pub topology: String,
    /// Default 1.
    pub seed: u64,
    /// `random`, `random-ramp`, `none`, or a fault-plan file. Default `random`.
    pub faults: FaultChoice,
    /// Simulated seconds per wall-clock second in `demo`. Default 4.
    pub speed: f64,
    /// How long an `augur.scale_out` takes to apply in the simulated cluster (container
    /// start), ms, drawn uniformly from `[min, max]` per command. Default [2000, 5000].
    pub scale_out_delay_ms: (u64, u64),
    /// How long an `augur.scale_up` takes to apply (a quota change), ms. Default [500, 1500].
    pub scale_up_delay_ms: (u64, u64),
    /// Share of services that export no metrics (incomplete instrumentation). Default 0.
    pub drop_metrics: f64,
    /// Share of services that export no spans (never an entry service). Default 0.
    pub drop_spans: f64,
}

impl SimulatorConfig {
    /// Semantic checks that types can't express: the first problem as [`SimError::Field`].
    pub fn check(&self) -> Result<(), SimError> {
        let fail = |field, reason| Err(SimError::Field { field, reason });
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return fail("speed", "must be positive");
        }
        for (field, (lo, hi)) in [
            ("scale_out_delay_ms", self.scale_out_delay_ms),
            ("scale_up_delay_ms", self.scale_up_delay_ms),
        ] {
            if lo == 0 || hi < lo {
                return fail(field, "must be [min, max] with 0 < min <= max");
            }
        }
        for (field, share) in [
            ("drop_metrics", self.drop_metrics),
            ("drop_spans", self.drop_spans),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return fail(field, "must be a share in [0, 1]");
            }
        }
        Ok(())
    }

    /// Sets the actuation delays and the instrumentation of a simulator config.
    pub fn apply_to(&self, sim: &mut SimConfig) {
        sim.delays = ActuationDelays {
            scale_out_ms: self.scale_out_delay_ms,
            scale_up_ms: self.scale_up_delay_ms,
        };
        sim.instrumentation = Instrumentation {
            drop_metrics: self.drop_metrics,
            drop_spans: self.drop_spans,
        };
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            topology: "social-network".to_string(),
            seed: 1,
            faults: FaultChoice::Random,
            speed: 4.0,
            scale_out_delay_ms: (2000, 5000),
            scale_up_delay_ms: (500, 1500),
            drop_metrics: 0.0,
            drop_spans: 0.0,
        }
    }
}

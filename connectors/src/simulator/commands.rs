//! Runtime commands: actuation applied to the running simulated cluster (what a cluster
//! manager does with augur's `augur.scale_out` / `augur.scale_up` CloudEvents), each after
//! a realistic delay — a new container takes seconds to start, a quota change about one.

use augur_operators::records::Resource;
use serde::{Deserialize, Serialize};

/// One command, decided at event time `decided_ms` (when the window that led to it closed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeCommand {
    /// The actuation event's id, recorded in the change label.
    pub id: String,
    pub service: String,
    pub decided_ms: u64,
    pub action: RuntimeAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuntimeAction {
    /// Start `replicas` new replicas (on other nodes: node-local contention that was
    /// already running doesn't reach them).
    ScaleOut { replicas: u32 },
    /// Multiply the service's allotment of `resource` by `factor`: CPU cores (quota), memory
    /// (limit and cache share) or network bandwidth share. Contention on that resource hurts
    /// in proportion: a fault's excess slowdown (or extra delay, or loss) is divided by the
    /// allotment factor. Other resources can't be scaled up; the command is recorded as
    /// ignored.
    ScaleUp { resource: Resource, factor: f64 },
}

impl RuntimeAction {
    /// The change-label kind.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeAction::ScaleOut { .. } => "scale_out",
            RuntimeAction::ScaleUp { .. } => "scale_up",
        }
    }
}

/// How long commands take to apply, ms: each command draws uniformly from its range (on
/// its own random stream, so the simulation's other draws don't shift).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActuationDelays {
    /// Scheduling and starting a container. Default 2000–5000.
    pub scale_out_ms: (u64, u64),
    /// A cgroup quota or limit change. Default 500–1500.
    pub scale_up_ms: (u64, u64),
}

impl Default for ActuationDelays {
    fn default() -> Self {
        ActuationDelays {
            scale_out_ms: (2000, 5000),
            scale_up_ms: (500, 1500),
        }
    }
}

impl ActuationDelays {
    /// The shortest delay of any command: how far ahead of the decisions the simulation may
    /// safely run.
    pub fn min_ms(&self) -> u64 {
        self.scale_out_ms.0.min(self.scale_up_ms.0)
    }
}

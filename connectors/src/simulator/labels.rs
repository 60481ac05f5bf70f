//! Ground-truth labels (`labels.json`): the faults, load spikes and deployment changes that
//! were injected, with absolute event times in ms since the Unix epoch, matching the spans.
//! This is the one typed form that evaluation and training read; a hand-written file may
//! leave out everything but each fault's service and times.

use serde::{Deserialize, Serialize};

use super::SimError;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Labels {
    pub topology: String,
    pub seed: u64,
    pub start_ms: u64,
    /// The simulation time reached when the labels were taken.
    pub end_ms: u64,
    pub faults: Vec<FaultLabel>,
    pub load_spikes: Vec<SpikeLabel>,
    pub changes: Vec<ChangeLabel>,
    /// Services that exported no metrics (incomplete instrumentation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_metrics: Vec<String>,
    /// Services that exported no spans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_spans: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultLabel {
    #[serde(default)]
    pub id: String,
    /// E.g. `cpu_contention` (a [`super::FaultKind`]).
    #[serde(default)]
    pub kind: String,
    pub service: String,
    /// `None` = every replica of the service.
    #[serde(default)]
    pub instance: Option<String>,
    /// The resource the fault is on (`cpu`, `memory`, `network`, `threads`, `errors`);
    /// empty when unknown.
    #[serde(default)]
    pub resource: String,
    pub start_ms: u64,
    pub end_ms: u64,
    #[serde(default)]
    pub magnitude: f64,
}

impl FaultLabel {
    /// A fault known only by its service, resource and times (hand-made ground truth).
    pub fn new(service: &str, resource: &str, start_ms: u64, end_ms: u64) -> Self {
        FaultLabel {
            id: String::new(),
            kind: String::new(),
            service: service.to_string(),
            instance: None,
            resource: resource.to_string(),
            start_ms,
            end_ms,
            magnitude: 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpikeLabel {
    pub start_ms: u64,
    pub end_ms: u64,
    #[serde(default)]
    pub factor: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeLabel {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub service: String,
    pub at_ms: u64,
    #[serde(default)]
    pub detail: String,
}

impl Labels {
    /// The simulator topology the recording came from, if the labels name one.
    pub fn topology(&self) -> Option<&str> {
        Some(self.topology.as_str()).filter(|t| !t.is_empty())
    }

    pub fn to_json_pretty(&self) -> Result<String, SimError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Writes `labels.json` (or any path).
    pub fn write(&self, path: &std::path::Path) -> Result<(), SimError> {
        std::fs::write(path, self.to_json_pretty()?).map_err(|source| SimError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

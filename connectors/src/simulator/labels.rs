//! Ground-truth labels (`labels.json`): the faults, load spikes and deployment changes that
//! were injected, with absolute event times in ms since the Unix epoch, matching the spans.

use serde::{Deserialize, Serialize};

use super::SimError;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    pub id: String,
    pub kind: String,
    pub service: String,
    /// `None` = every replica of the service.
    pub instance: Option<String>,
    pub resource: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub magnitude: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpikeLabel {
    pub start_ms: u64,
    pub end_ms: u64,
    pub factor: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeLabel {
    pub kind: String,
    pub service: String,
    pub at_ms: u64,
    pub detail: String,
}

impl Labels {
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

//! Scheduled deployment changes: scale a service out or in, replace it with a new
//! service-time profile, insert a new service between a caller and a callee, remove a leaf,
//! change the offered load (requests per second).

use serde::{Deserialize, Serialize};

use super::SimError;

/// One deployment change, `at_ms` after the simulation start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSpec {
    pub service: String,
    pub at_ms: u64,
    pub action: ChangeAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeAction {
    /// Add `replicas` replicas.
    ScaleOut { replicas: u32 },
    /// Retire `replicas` replicas (at least one stays); they finish the work they hold.
    ScaleIn { replicas: u32 },
    /// A new version: every operation's mean service time × `service_time_factor`.
    Replace { service_time_factor: f64 },
    /// A new service `service` between `caller` and `callee`: the caller's calls to the callee
    /// now go through it (one proxy operation per callee operation).
    AddService {
        caller: String,
        callee: String,
        service_time_ms: f64,
        #[serde(default = "default_replicas")]
        replicas: u32,
    },
    /// Remove a leaf service: its callers stop calling it.
    RemoveService,
    /// The offered load (every entry's request rate) × `factor` from now on; `service`
    /// names the entry it is labelled on.
    Rps { factor: f64 },
}

fn default_replicas() -> u32 {
    1
}

impl ChangeAction {
    /// The label kind string.
    pub fn kind(&self) -> &'static str {
        match self {
            ChangeAction::ScaleOut { .. } => "scale_out",
            ChangeAction::ScaleIn { .. } => "scale_in",
            ChangeAction::Replace { .. } => "replace",
            ChangeAction::AddService { .. } => "add_service",
            ChangeAction::RemoveService => "remove_service",
            ChangeAction::Rps { .. } => "rps_change",
        }
    }
}

/// A changes file: `[[change]] service = "user-service" at_ms = 60000 action = { kind = "scale_out", replicas = 1 }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesFile {
    #[serde(rename = "change", default)]
    pub changes: Vec<ChangeSpec>,
}

impl ChangesFile {
    pub fn from_toml_str(s: &str) -> Result<Vec<ChangeSpec>, SimError> {
        let file: ChangesFile = toml::from_str(s).map_err(|e| SimError::Toml(e.to_string()))?;
        Ok(file.changes)
    }

    /// A TOML file, or JSON (`{"change": [...]}`) when the path ends in `.json`.
    pub fn load(path: &str) -> Result<Vec<ChangeSpec>, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_string(),
            source,
        })?;
        if path.ends_with(".json") {
            let file: ChangesFile = serde_json::from_str(&text)?;
            Ok(file.changes)
        } else {
            ChangesFile::from_toml_str(&text)
        }
    }
}

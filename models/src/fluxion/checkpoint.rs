//! Fluxion checkpoints: a trained inference graph with where it came from, as
//! `<name>-v<N>.json` in a models directory (e.g. `models/checkpoints/fluxion-hotel-reservation-v1.json`).
//!
//! In: a graph state and its provenance (the command that made it). Out: the file, and
//! the newest checkpoint whose service set covers a running system's. State: none.
//!
//! One JSON file rather than safetensors + JSON: an inference graph is dozens of tiny MLPs
//! (a few hundred weights each) keyed by service and quantile, which the JSON body keeps
//! together with their input selections and output weights.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::graph::GraphState;

/// A saved graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FluxionCheckpoint {
    /// E.g. `fluxion-hotel-reservation`.
    pub name: String,
    pub version: u64,
    /// The command that made it.
    pub provenance: String,
    /// Windows it was trained on.
    pub windows: usize,
    /// Services with a vertex.
    pub services: Vec<String>,
    pub graph: GraphState,
}

#[derive(Debug, thiserror::Error)]
pub enum FluxionCheckpointError {
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

/// `<dir>/<name>-v<version>.json`.
pub fn path(dir: &Path, name: &str, version: u64) -> PathBuf {
    dir.join(format!("{name}-v{version}.json"))
}

/// The newest version of `name` in `dir`.
pub fn latest_version(dir: &Path, name: &str) -> Option<u64> {
    checkpoints(dir)
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, v, _)| v)
        .max()
}

/// Every `fluxion-*-v<N>.json` in `dir`: (name, version, path).
fn checkpoints(dir: &Path) -> Vec<(String, u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().to_string();
            let stem = file.strip_suffix(".json")?;
            let (name, version) = stem.rsplit_once("-v")?;
            if !name.starts_with("fluxion-") {
                return None;
            }
            Some((name.to_string(), version.parse().ok()?, e.path()))
        })
        .collect()
}

impl FluxionCheckpoint {
    /// Writes `<dir>/<name>-v<version>.json`.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, FluxionCheckpointError> {
        let p = path(dir, &self.name, self.version);
        let io = |source| FluxionCheckpointError::Io {
            path: p.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = serde_json::to_string(self).map_err(|source| FluxionCheckpointError::Json {
            path: p.display().to_string(),
            source,
        })?;
        std::fs::write(&p, text).map_err(io)?;
        Ok(p)
    }

    pub fn load(p: &Path) -> Result<Self, FluxionCheckpointError> {
        let text = std::fs::read_to_string(p).map_err(|source| FluxionCheckpointError::Io {
            path: p.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| FluxionCheckpointError::Json {
            path: p.display().to_string(),
            source,
        })
    }

    /// The newest checkpoint in `dir` for entry `entry` whose services include every one
    /// of `services` (a window may miss a rarely called service, never have an extra one).
    pub fn find(dir: &Path, entry: &str, services: &BTreeSet<String>) -> Option<Self> {
        let mut all = checkpoints(dir);
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.into_iter().find_map(|(_, _, p)| {
            let c = FluxionCheckpoint::load(&p).ok()?;
            let known: BTreeSet<&String> = c.services.iter().collect();
            (c.graph.entry == entry && services.iter().all(|s| known.contains(s))).then_some(c)
        })
    }
}

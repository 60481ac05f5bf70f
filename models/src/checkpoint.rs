//! Versioned checkpoint files, as every learned model stores them.
//!
//! Files: `{dir}/{model}-v{version}.safetensors` (the `VarStore`) and
//! `{dir}/{model}-v{version}.json` (the model's layout: what the weights mean). The newest
//! version in a directory is the one a job loads, and the one it hot-swaps to when a newer
//! file appears.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tch::nn;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Torch {
        path: PathBuf,
        source: tch::TchError,
    },
    #[error("no {model} checkpoint in {dir}")]
    Missing { model: String, dir: PathBuf },
    #[error("{path}: {source}")]
    Features {
        path: PathBuf,
        source: crate::seer::features::UnknownFeature,
    },
    #[error(transparent)]
    Shipped(#[from] crate::shipped::ShippedError),
}

/// Writes a checkpoint's two files: the layout JSON first (a reader that sees the weights
/// finds its layout too), then the weights through a temporary file renamed into place.
/// Returns the weights' path.
pub fn write_files<L: Serialize>(
    dir: &Path,
    model: &str,
    version: u64,
    layout: &L,
    pretty: bool,
    vs: &nn::VarStore,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (weights, json) = paths(dir, model, version);
    let text = if pretty {
        serde_json::to_string_pretty(layout)
    } else {
        serde_json::to_string(layout)
    }
    .map_err(|source| CheckpointError::Json {
        path: json.clone(),
        source,
    })?;
    std::fs::write(&json, text + "\n").map_err(|source| CheckpointError::Io {
        path: json.clone(),
        source,
    })?;
    let tmp = weights.with_extension("tmp.safetensors");
    vs.save(&tmp).map_err(|source| CheckpointError::Torch {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &weights).map_err(|source| CheckpointError::Io {
        path: weights.clone(),
        source,
    })?;
    Ok(weights)
}

/// Reads a checkpoint's layout JSON.
pub fn read_layout<L: DeserializeOwned>(json: &Path) -> Result<L, CheckpointError> {
    let text = std::fs::read_to_string(json).map_err(|source| CheckpointError::Io {
        path: json.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| CheckpointError::Json {
        path: json.to_path_buf(),
        source,
    })
}

/// Loads a checkpoint's weights into `vs` (built for its layout).
pub fn load_weights(vs: &mut nn::VarStore, weights: &Path) -> Result<(), CheckpointError> {
    vs.load(weights).map_err(|source| CheckpointError::Torch {
        path: weights.to_path_buf(),
        source,
    })
}

/// Weights and layout paths of one version.
pub fn paths(dir: &Path, model: &str, version: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{model}-v{version}.safetensors")),
        dir.join(format!("{model}-v{version}.json")),
    )
}

/// The highest version of `model` in `dir` that has both files.
pub fn latest_version(dir: &Path, model: &str) -> Option<u64> {
    let prefix = format!("{model}-v");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let v: u64 = name
                .strip_prefix(&prefix)?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()?;
            dir.join(format!("{model}-v{v}.json")).exists().then_some(v)
        })
        .max()
}

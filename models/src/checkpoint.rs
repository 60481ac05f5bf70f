//! A trained Seer model and its versioned files.
//!
//! Files: `{dir}/{model}-v{version}.safetensors` (the `VarStore`) and
//! `{dir}/{model}-v{version}.json` (the [`Layout`]). The newest version in a directory is
//! the one a job loads, and the one it hot-swaps to when a newer file appears.
//! In: a layout (to build) or a directory (to load). Out: predictions for a history of
//! raw feature matrices. State: the weights on one device.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tch::{Device, Kind, Tensor, nn};
use thiserror::Error;

use crate::layout::Layout;
use crate::seer_net::SeerNet;

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
        source: crate::features::UnknownFeature,
    },
    #[error(transparent)]
    Shipped(#[from] crate::shipped::ShippedError),
}

/// A Seer network with its layout and weights.
#[derive(Debug)]
pub struct SeerModel {
    pub vs: nn::VarStore,
    pub net: SeerNet,
    pub layout: Layout,
}

impl SeerModel {
    /// A freshly initialized model for `layout` (seeded by `tch::manual_seed` beforehand).
    pub fn new(layout: Layout, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let net = SeerNet::new(
            &vs.root(),
            &layout.hyper,
            layout.services.len(),
            layout.features.len(),
        );
        SeerModel { vs, net, layout }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Writes the weights and the layout as version `layout.version`; returns the weights' path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, CheckpointError> {
        write_files(
            dir,
            &self.layout.model,
            self.layout.version,
            &self.layout,
            true,
            &self.vs,
        )
    }

    /// Loads version `version` of `model` from `dir`.
    pub fn load(
        dir: &Path,
        model: &str,
        version: u64,
        device: Device,
    ) -> Result<Self, CheckpointError> {
        let (weights, json) = paths(dir, model, version);
        let mut model = SeerModel::new(read_layout(&json)?, device);
        load_weights(&mut model.vs, &weights)?;
        Ok(model)
    }

    /// Loads the newest version of `model` in `dir`.
    pub fn load_latest(dir: &Path, model: &str, device: Device) -> Result<Self, CheckpointError> {
        let version = latest_version(dir, model).ok_or_else(|| CheckpointError::Missing {
            model: model.to_string(),
            dir: dir.to_path_buf(),
        })?;
        SeerModel::load(dir, model, version, device)
    }

    /// Standardizes raw feature values in place (`[.. × features]` row-major).
    pub fn standardize(&self, raw: &mut [f32]) {
        let f = self.layout.features.len();
        for (i, x) in raw.iter_mut().enumerate() {
            let j = i % f;
            *x = (*x - self.layout.mean[j]) / self.layout.std[j].max(1e-6);
        }
    }

    /// Input tensor `[batch, H, services, features]` from standardized values.
    pub fn input(&self, values: &[f32], batch: usize) -> Tensor {
        let h = self.layout.hyper.history as i64;
        let s = self.layout.services.len() as i64;
        let f = self.layout.features.len() as i64;
        Tensor::from_slice(values)
            .reshape([batch as i64, h, s, f])
            .to_device(self.device())
    }

    /// For a batch of standardized histories: per row, P(violation) and per-service
    /// P(initiates | violation).
    pub fn predict(&self, values: &[f32], batch: usize) -> Vec<(f64, Vec<f64>)> {
        let x = self.input(values, batch);
        let (violation, culprit) = self.net.predict(&x, None);
        let violation = violation.to_kind(Kind::Double).to_device(Device::Cpu);
        let culprit = culprit.to_kind(Kind::Double).to_device(Device::Cpu);
        let v: Vec<f64> = Vec::try_from(&violation).unwrap_or_default();
        let c: Vec<f64> = Vec::try_from(&culprit.reshape([-1])).unwrap_or_default();
        let s = self.layout.services.len();
        v.iter()
            .enumerate()
            .map(|(i, p)| (*p, c.get(i * s..(i + 1) * s).unwrap_or_default().to_vec()))
            .collect()
    }
}

/// Weights and layout paths of one version.
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

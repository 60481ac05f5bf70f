//! A trained Seer model: the network, its layout and its weights on one device.
//!
//! In: a layout (to build) or a checkpoint directory (to load). Out: predictions for a
//! history of raw feature matrices. State: the weights.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor, nn};

use super::layout::Layout;
use super::net::SeerNet;
use crate::checkpoint::{
    CheckpointError, latest_version, load_weights, paths, read_layout, write_files,
};

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

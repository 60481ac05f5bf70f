//! A trained Sage model: the GVAE's weights, its CBN, normalization and normal values —
//! and its versioned checkpoint files.
//!
//! Files (the checkpoint convention of `checkpoint.rs`): `{dir}/{name}-v{N}.safetensors`
//! (the `VarStore`) and `{dir}/{name}-v{N}.json` (the [`SageLayout`]); `name` is `sage-`
//! plus the topology it was trained on (`sage-chain`, `sage-social-network`, ...).
//! [`select`] picks, among the newest version of every `sage-*` checkpoint in a directory,
//! the one whose services best match the services a job sees (Jaccard overlap), if it
//! matches well enough.
//! In: a layout (to build) or a directory (to load). Out: the model. State: the weights.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use augur_operators::Resource;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor, nn};

use super::cbn::Cbn;
use super::features::{Normalizer, Sample, mask_resources};
use super::gvae::{Batch, Gvae, GvaeHyper};
use crate::checkpoint::{
    CheckpointError, latest_version, load_weights, paths, read_layout, write_files,
};

/// Everything but the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SageLayout {
    /// Checkpoint name, `sage-<topology>`.
    pub model: String,
    pub version: u64,
    pub cbn: Cbn,
    pub hyper: GvaeHyper,
    pub norm: Normalizer,
    pub window_ms: u64,
    /// Training windows, and how many of them violated QoS.
    pub windows: usize,
    pub violating: usize,
    /// The command that made it.
    pub provenance: String,
    /// Resources whose usage is in `X` (the others read as their normal value, and the
    /// diagnosis doesn't repair them). Checkpoints written before this field used all.
    #[serde(default = "all_resources")]
    pub x_resources: Vec<Resource>,
}

fn all_resources() -> Vec<Resource> {
    Resource::ALL.to_vec()
}

/// The resources new models put in `X`: all but the queue. A thread is held for the
/// whole of a call, so a caller's queue grows behind a slow back end: it is an effect of
/// its children's latency, not a state of the caller. With it in `X`, repairing the
/// caller's queue "explains" a back end's fault (the fanout root is then named for leaf
/// faults from an episode's second window on). A shrunk thread pool still shows: its
/// service's latency rises with no child to explain it, which its latent `Z` carries.
pub const X_RESOURCES: [Resource; 4] = [
    Resource::Cpu,
    Resource::Memory,
    Resource::Network,
    Resource::Disk,
];

impl SageLayout {
    /// A window's raw blocks ([`super::features::raw_blocks`]) as this model's sample: the
    /// resources it leaves out of `X` masked, standardized, laid out by its CBN.
    pub fn sample(&self, mut raw: BTreeMap<String, Vec<f32>>) -> Sample {
        mask_resources(&mut raw, &self.x_resources);
        Sample::new(&raw, &self.cbn, &self.norm)
    }

    /// Every service of the model.
    pub fn services(&self) -> BTreeSet<String> {
        self.cbn
            .units
            .iter()
            .flat_map(|u| u.members.iter().cloned())
            .collect()
    }
}

#[derive(Debug)]
pub struct SageModel {
    pub vs: nn::VarStore,
    pub gvae: Gvae,
    pub layout: SageLayout,
}

impl SageModel {
    /// A freshly initialized model (seeded by `tch::manual_seed` beforehand).
    pub fn new(layout: SageLayout, device: Device) -> SageModel {
        let vs = nn::VarStore::new(device);
        let gvae = Gvae::new(
            &vs.root(),
            layout.cbn.clone(),
            layout.hyper.clone(),
            &layout.norm,
        );
        SageModel { vs, gvae, layout }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn parameters(&self) -> usize {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum()
    }

    /// Node tensors of some samples.
    pub fn batch(&self, samples: &[&Sample]) -> Batch {
        let device = self.device();
        let stack = |get: &dyn Fn(&Sample) -> &Vec<f32>| -> Tensor {
            let dim = samples.first().map_or(0, |s| get(s).len()) as i64;
            let flat: Vec<f32> = samples
                .iter()
                .flat_map(|s| get(s).iter().copied())
                .collect();
            Tensor::from_slice(&flat)
                .reshape([samples.len() as i64, dim])
                .to_device(device)
        };
        let units = self.layout.cbn.units.len();
        let rpcs = self.layout.cbn.rpcs.len();
        Batch {
            x: (0..units).map(|u| stack(&|s| &s.x[u])).collect(),
            ys: (0..units).map(|u| stack(&|s| &s.ys[u])).collect(),
            yc: (0..rpcs).map(|i| stack(&|s| &s.yc[i])).collect(),
            ynet: (0..rpcs).map(|i| stack(&|s| &s.ynet[i])).collect(),
            xnet: (0..rpcs).map(|i| stack(&|s| &s.xnet[i])).collect(),
        }
    }

    /// Writes version `layout.version`; returns the weights' path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, CheckpointError> {
        write_files(
            dir,
            &self.layout.model,
            self.layout.version,
            &self.layout,
            false,
            &self.vs,
        )
    }

    pub fn load(
        dir: &Path,
        name: &str,
        version: u64,
        device: Device,
    ) -> Result<SageModel, CheckpointError> {
        let (weights, json) = paths(dir, name, version);
        let layout = read_layout(&json)?;
        let mut model = SageModel::new(layout, device);
        load_weights(&mut model.vs, &weights)?;
        Ok(model)
    }
}

/// The newest version of every `sage-*` checkpoint in `dir`: (name, version, layout).
pub fn available(dir: &Path) -> Vec<(String, u64, SageLayout)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    for e in entries.filter_map(|e| e.ok()) {
        let Ok(file) = e.file_name().into_string() else {
            continue;
        };
        if let Some(stem) = file
            .strip_prefix("sage-")
            .and_then(|f| f.strip_suffix(".safetensors"))
        {
            if let Some((name, _)) = stem.rsplit_once("-v") {
                names.insert(format!("sage-{name}"));
            }
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let version = latest_version(dir, &name)?;
            let layout = read_layout(&paths(dir, &name, version).1).ok()?;
            Some((name, version, layout))
        })
        .collect()
}

/// Jaccard overlap of two service sets.
pub fn overlap(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let inter = a.intersection(b).count() as f64;
    let union = a.union(b).count() as f64;
    if union == 0.0 { 0.0 } else { inter / union }
}

/// The newest version of every `sage-*` checkpoint in `dir` with the Jaccard overlap of
/// its services and `services`: (name, version, overlap), by name.
pub fn overlaps(dir: &Path, services: &BTreeSet<String>) -> Vec<(String, u64, f64)> {
    available(dir)
        .into_iter()
        .map(|(name, version, layout)| {
            let score = overlap(&layout.services(), services);
            (name, version, score)
        })
        .collect()
}

/// The checkpoint (name, version) whose services best match `services`; ties go to the
/// name that sorts first. `None` when none shares a service or reaches `min_overlap`.
pub fn select(dir: &Path, services: &BTreeSet<String>, min_overlap: f64) -> Option<(String, u64)> {
    let mut best: Option<(f64, String, u64)> = None;
    for (name, version, score) in overlaps(dir, services) {
        let enough = score > 0.0 && score >= min_overlap;
        if enough && best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, name, version));
        }
    }
    best.map(|(_, name, version)| (name, version))
}

//! A small libtorch MLP regressor: the model a learning assignment hosts.
//!
//! In: rows of raw inputs and a target. Out: predictions. State: the weights (a tch
//! `VarStore`) and the standardization of inputs and target it was trained with, so a
//! model trained over one period keeps its own scale when another period's model sits
//! beside it. Serializes to plain numbers ([`MlpState`]) for the JSON checkpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::nn::{Module, OptimizerConfig};
use tch::{Device, Kind, Tensor, nn};

/// Training settings of one MLP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpSettings {
    /// Hidden units per layer (two layers). Default 16.
    pub hidden: i64,
    /// Full-batch Adam steps. Default 300.
    pub epochs: usize,
    /// Default 0.01.
    pub learning_rate: f64,
    /// Adam weight decay (keeps models trained on few samples smooth). Default 1e-3.
    pub weight_decay: f64,
}

impl Default for MlpSettings {
    fn default() -> Self {
        MlpSettings {
            hidden: 16,
            epochs: 300,
            learning_rate: 0.01,
            weight_decay: 1e-3,
        }
    }
}

/// A trained MLP.
pub struct Mlp {
    vs: nn::VarStore,
    net: Network,
    inputs: usize,
    hidden: i64,
    x_mean: Vec<f32>,
    x_std: Vec<f32>,
    y_mean: f32,
    y_std: f32,
}

impl std::fmt::Debug for Mlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mlp")
            .field("inputs", &self.inputs)
            .field("hidden", &self.hidden)
            .finish()
    }
}

/// The weights and scales of an [`Mlp`] as plain numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpState {
    pub inputs: usize,
    pub hidden: i64,
    pub x_mean: Vec<f32>,
    pub x_std: Vec<f32>,
    pub y_mean: f32,
    pub y_std: f32,
    /// Variable name → flattened values.
    pub weights: BTreeMap<String, Vec<f32>>,
}

/// Two tanh layers plus a linear path from the inputs to the output: latency composes
/// mostly additively along calls, and the linear path lets a model extrapolate when a
/// callee's latency leaves the range it was trained on (tanh layers saturate there).
#[derive(Debug)]
struct Network {
    hidden: nn::Sequential,
    skip: nn::Linear,
}

impl Module for Network {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.hidden.forward(x) + self.skip.forward(x)
    }
}

fn network(root: &nn::Path, inputs: usize, hidden: i64) -> Network {
    let layers = nn::seq()
        .add(nn::linear(
            root / "l1",
            inputs as i64,
            hidden,
            Default::default(),
        ))
        .add_fn(|x| x.tanh())
        .add(nn::linear(root / "l2", hidden, hidden, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(root / "out", hidden, 1, Default::default()));
    let skip = nn::linear(root / "skip", inputs as i64, 1, Default::default());
    Network {
        hidden: layers,
        skip,
    }
}

fn column_scales(x: &[Vec<f32>], inputs: usize) -> (Vec<f32>, Vec<f32>) {
    let n = x.len().max(1) as f32;
    let mut mean = vec![0.0f32; inputs];
    for row in x {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n;
        }
    }
    let mut var = vec![0.0f32; inputs];
    for row in x {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v - m) * (v - m) / n;
        }
    }
    let std = var.iter().map(|v| v.sqrt().max(1e-3)).collect();
    (mean, std)
}

impl Mlp {
    /// A fresh, untrained network (seeded by `tch::manual_seed` beforehand).
    pub fn new(inputs: usize, hidden: i64) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = network(&vs.root(), inputs, hidden);
        Mlp {
            vs,
            net,
            inputs,
            hidden,
            x_mean: vec![0.0; inputs],
            x_std: vec![1.0; inputs],
            y_mean: 0.0,
            y_std: 1.0,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// How far `value` of input `j` lies from what the model was trained on, in standard
    /// deviations of its training data (`None` for an input it doesn't have).
    pub fn standardized(&self, j: usize, value: f32) -> Option<f32> {
        Some((value - self.x_mean.get(j)?) / self.x_std.get(j)?)
    }

    /// A copy with the same weights and scales (to fine-tune without touching this one).
    pub fn duplicate(&self) -> Mlp {
        let mut copy = Mlp::new(self.inputs, self.hidden);
        // Same shapes by construction, so the copy can't fail.
        let _ = copy.vs.copy(&self.vs);
        copy.x_mean = self.x_mean.clone();
        copy.x_std = self.x_std.clone();
        copy.y_mean = self.y_mean;
        copy.y_std = self.y_std;
        copy
    }

    fn tensor(&self, x: &[Vec<f32>]) -> Tensor {
        let mut flat = Vec::with_capacity(x.len() * self.inputs);
        for row in x {
            for j in 0..self.inputs {
                let v = row.get(j).copied().unwrap_or(0.0);
                flat.push((v - self.x_mean[j]) / self.x_std[j]);
            }
        }
        Tensor::from_slice(&flat).reshape([x.len() as i64, self.inputs as i64])
    }

    /// Trains on `(x, y)`. `rescale` recomputes the standardization from this data (a new
    /// model); a fine-tuned copy keeps the scales it was trained with so its weights still mean
    /// what they meant.
    pub fn fit(&mut self, x: &[Vec<f32>], y: &[f32], settings: &MlpSettings, rescale: bool) {
        if x.is_empty() || x.len() != y.len() {
            return;
        }
        if rescale {
            let (mean, std) = column_scales(x, self.inputs);
            self.x_mean = mean;
            self.x_std = std;
            let ys: Vec<Vec<f32>> = y.iter().map(|v| vec![*v]).collect();
            let (ym, ys) = column_scales(&ys, 1);
            self.y_mean = ym[0];
            self.y_std = ys[0];
        }
        let xt = self.tensor(x);
        let yt = Tensor::from_slice(
            &y.iter()
                .map(|v| (v - self.y_mean) / self.y_std)
                .collect::<Vec<_>>(),
        )
        .reshape([y.len() as i64, 1]);
        let Ok(mut opt) = nn::Adam {
            wd: settings.weight_decay,
            ..Default::default()
        }
        .build(&self.vs, settings.learning_rate) else {
            return;
        };
        for _ in 0..settings.epochs {
            let loss = self.net.forward(&xt).mse_loss(&yt, tch::Reduction::Mean);
            opt.backward_step(&loss);
        }
    }

    /// Predictions for raw rows.
    pub fn predict(&self, x: &[Vec<f32>]) -> Vec<f32> {
        if x.is_empty() {
            return Vec::new();
        }
        let out = tch::no_grad(|| self.net.forward(&self.tensor(x)));
        let out = out.to_kind(Kind::Float).reshape([-1]);
        let v: Vec<f32> = Vec::try_from(&out).unwrap_or_default();
        v.iter().map(|p| p * self.y_std + self.y_mean).collect()
    }

    pub fn state(&self) -> MlpState {
        let weights = self
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| {
                let flat = t.detach().to_kind(Kind::Float).reshape([-1]);
                (name, Vec::<f32>::try_from(&flat).unwrap_or_default())
            })
            .collect();
        MlpState {
            inputs: self.inputs,
            hidden: self.hidden,
            x_mean: self.x_mean.clone(),
            x_std: self.x_std.clone(),
            y_mean: self.y_mean,
            y_std: self.y_std,
            weights,
        }
    }

    /// Rebuilds a model from its state; `None` when a variable is missing or misshapen.
    pub fn from_state(state: &MlpState) -> Option<Mlp> {
        let mut mlp = Mlp::new(state.inputs, state.hidden);
        if state.x_mean.len() != state.inputs || state.x_std.len() != state.inputs {
            return None;
        }
        mlp.x_mean = state.x_mean.clone();
        mlp.x_std = state.x_std.clone();
        mlp.y_mean = state.y_mean;
        mlp.y_std = state.y_std;
        let mut vars = mlp.vs.variables();
        for (name, var) in vars.iter_mut() {
            let values = state.weights.get(name)?;
            if values.len() != var.numel() {
                return None;
            }
            let src = Tensor::from_slice(values).reshape(var.size());
            tch::no_grad(|| var.copy_(&src));
        }
        Some(mlp)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn learns_a_smooth_function_and_round_trips() {
        let _torch = crate::torch_test_lock();
        tch::set_num_threads(1);
        tch::manual_seed(1);
        let x: Vec<Vec<f32>> = (0..200)
            .map(|i| vec![i as f32 / 20.0, (i % 7) as f32])
            .collect();
        let y: Vec<f32> = x.iter().map(|r| 3.0 * r[0] + r[1] * r[1] + 10.0).collect();
        let mut mlp = Mlp::new(2, 16);
        mlp.fit(&x, &y, &MlpSettings::default(), true);
        let p = mlp.predict(&x);
        let mae: f32 = p.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f32>() / y.len() as f32;
        assert!(mae < 1.0, "mae {mae}");
        let back = Mlp::from_state(&mlp.state()).unwrap();
        assert_eq!(back.predict(&x), p);
    }
}

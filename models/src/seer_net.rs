//! The Seer network (ASPLOS'19, §4): 1-D convolutions across the service axis, an LSTM
//! over the last H windows, dropout, and a head.
//!
//! In: `[batch, H, services, features]`, standardized, services back end first. With
//! `hyper.delta`, each value's difference from its service's mean over the H windows is
//! fed beside it (a queue building up is the precursor of a violation).
//! Out: logits `[batch, 1 + services]`: column 0 is "a QoS violation starts within the
//! horizon" (sigmoid), columns 1.. rank the services that initiate it (softmax), so
//! P(service s initiates a violation) = sigmoid(l₀) · softmax(l₁..)ₛ.
//! State: the weights, in the `VarStore` the network was built on. Convolution weights
//! don't depend on the service count; the LSTM's input weights and the culprit head are
//! per service (see `remap.rs`).

use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

use crate::layout::SeerHyper;

#[derive(Debug)]
pub struct SeerNet {
    conv1: nn::Conv1D,
    conv2: nn::Conv1D,
    lstm: nn::LSTM,
    head: nn::Linear,
    /// With `hyper.shared_culprit`: per-service culprit score from the first
    /// convolution's channels (1×1 convolutions, weights shared across services).
    culprit: Option<(nn::Conv1D, nn::Conv1D)>,
    services: i64,
    features: i64,
    hyper: SeerHyper,
}

impl SeerNet {
    /// Builds the network under `path` for `services` services and `features` features.
    pub fn new(path: &nn::Path, hyper: &SeerHyper, services: usize, features: usize) -> Self {
        let (s, f) = (services as i64, features as i64);
        let conv = nn::ConvConfig {
            padding: hyper.kernel / 2,
            ..Default::default()
        };
        let inputs = if hyper.delta { 2 * f } else { f };
        let conv1 = nn::conv1d(path / "conv1", inputs, hyper.conv1, hyper.kernel, conv);
        let conv2 = nn::conv1d(path / "conv2", hyper.conv1, hyper.conv2, hyper.kernel, conv);
        let lstm = nn::lstm(
            path / "lstm",
            hyper.conv2 * s,
            hyper.hidden,
            nn::RNNConfig {
                num_layers: hyper.layers,
                batch_first: true,
                ..Default::default()
            },
        );
        let head = nn::linear(path / "head", hyper.hidden, 1 + s, Default::default());
        let culprit = hyper.shared_culprit.then(|| {
            let one = nn::ConvConfig::default();
            let from = if hyper.culprit_inputs {
                inputs
            } else {
                hyper.conv1
            };
            (
                nn::conv1d(path / "culprit1", from, hyper.conv1, 1, one),
                nn::conv1d(path / "culprit2", hyper.conv1, 1, 1, one),
            )
        });
        SeerNet {
            conv1,
            conv2,
            lstm,
            head,
            culprit,
            services: s,
            features: f,
            hyper: hyper.clone(),
        }
    }

    pub fn services(&self) -> usize {
        self.services as usize
    }

    /// Logits `[batch, 1 + services]` for `x: [batch, H, services, features]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let size = x.size();
        let (b, h) = (size[0], size[1]);
        let (x, channels) = if self.hyper.delta {
            let change = x - x.mean_dim(1, true, Kind::Float);
            (Tensor::cat(&[x, &change], 3), 2 * self.features)
        } else {
            (x.shallow_clone(), self.features)
        };
        let y_in = x.reshape([b * h, self.services, channels]).transpose(1, 2);
        let spatial = self.conv1.forward(&y_in).relu();
        let y = self.conv2.forward(&spatial).relu();
        let y = y.reshape([b, h, self.hyper.conv2 * self.services]);
        let (out, _) = self.lstm.seq(&y);
        let last = out.select(1, h - 1).dropout(self.hyper.dropout, train);
        let logits = self.head.forward(&last);
        let Some((c1, c2)) = &self.culprit else {
            return logits;
        };
        // The last window's channels per service, [b, channels, services]: its own inputs,
        // or the first convolution's output.
        let now = if self.hyper.culprit_inputs {
            y_in.reshape([b, h, channels, self.services])
                .select(1, h - 1)
        } else {
            spatial
                .reshape([b, h, self.hyper.conv1, self.services])
                .select(1, h - 1)
        };
        let scores = c2
            .forward(&c1.forward(&now).relu().dropout(self.hyper.dropout, train))
            .reshape([b, self.services]);
        Tensor::cat(&[logits.narrow(1, 0, 1), scores], 1)
    }

    /// `(P(violation within horizon) [batch], P(service initiates | violation) [batch, services])`.
    /// Services whose `present` entry (`[batch, services]`, bool) is false — absent from
    /// the window — get probability 0.
    pub fn predict(&self, x: &Tensor, present: Option<&Tensor>) -> (Tensor, Tensor) {
        let logits = tch::no_grad(|| self.forward_t(x, false));
        let violation = logits.select(1, 0).sigmoid();
        let culprit =
            mask_absent(logits.narrow(1, 1, self.services), present).softmax(-1, Kind::Float);
        (violation, culprit)
    }

    /// Training loss: class-balanced BCE on the violation logit (each row weighted by
    /// `row_weight`) plus cross-entropy on the culprit for the rows that have one
    /// (`culprit >= 0`), over the services `present` in the row's last window.
    pub fn loss(
        &self,
        x: &Tensor,
        targets: &LossTargets,
        pos_weight: f64,
        row_weight: Option<&Tensor>,
    ) -> Tensor {
        let LossTargets {
            violation,
            culprit,
            present,
        } = targets;
        let logits = self.forward_t(x, true);
        let pw = Tensor::from_slice(&[pos_weight as f32]).to_device(x.device());
        let bce = logits
            .select(1, 0)
            .binary_cross_entropy_with_logits::<&Tensor>(
                violation,
                row_weight,
                Some(&pw),
                tch::Reduction::Mean,
            );
        let has = culprit.ge(0);
        let n = i64::try_from(has.sum(Kind::Int64)).unwrap_or(0);
        if n == 0 {
            return bce;
        }
        let rows = has.nonzero().squeeze_dim(1);
        let culprit_logits =
            mask_absent(logits.narrow(1, 1, self.services), Some(present)).index_select(0, &rows);
        let targets = culprit.index_select(0, &rows);
        bce + culprit_logits.cross_entropy_for_logits(&targets)
    }
}

/// What [`SeerNet::loss`] is trained towards, per row of the batch.
pub struct LossTargets {
    /// `[batch]` float: a violation starts within the horizon.
    pub violation: Tensor,
    /// `[batch]` int64: the culprit's service index, or −1 when none is known.
    pub culprit: Tensor,
    /// `[batch, services]` bool: the service is in the last window.
    pub present: Tensor,
}

/// Culprit logits with absent services' pushed so low that softmax gives them nothing:
/// a model over several topologies' services must not name one the window doesn't have.
fn mask_absent(scores: Tensor, present: Option<&Tensor>) -> Tensor {
    match present {
        Some(p) => scores.masked_fill(&p.logical_not(), -1e9),
        None => scores,
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, nn};

    use super::*;

    #[test]
    fn a_service_absent_from_the_window_is_never_named() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = SeerNet::new(&vs.root(), &SeerHyper::default(), 4, 3);
        let x = Tensor::randn([2, 5, 4, 3], (Kind::Float, Device::Cpu));
        let present = Tensor::from_slice(&[true, false, true, false, false, true, true, true])
            .reshape([2, 4]);
        let (_, culprit) = net.predict(&x, Some(&present));
        let p: Vec<f32> = Vec::try_from(culprit.reshape([-1])).unwrap();
        for (i, absent) in [1, 3, 4].into_iter().enumerate() {
            assert!(p[absent] < 1e-6, "absent service {i} got {}", p[absent]);
        }
        assert!((p[..4].iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let (_, unmasked) = net.predict(&x, None);
        let q: Vec<f32> = Vec::try_from(unmasked.reshape([-1])).unwrap();
        assert!(q[1] > 1e-6);
    }
}

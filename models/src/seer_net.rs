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
            (
                nn::conv1d(path / "culprit1", hyper.conv1, hyper.conv1, 1, one),
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
        let y = x.reshape([b * h, self.services, channels]).transpose(1, 2);
        let spatial = self.conv1.forward(&y).relu();
        let y = self.conv2.forward(&spatial).relu();
        let y = y.reshape([b, h, self.hyper.conv2 * self.services]);
        let (out, _) = self.lstm.seq(&y);
        let last = out.select(1, h - 1).dropout(self.hyper.dropout, train);
        let logits = self.head.forward(&last);
        let Some((c1, c2)) = &self.culprit else {
            return logits;
        };
        // The last window's first-convolution channels per service: [b, conv1, services].
        let now = spatial
            .reshape([b, h, self.hyper.conv1, self.services])
            .select(1, h - 1);
        let scores = c2
            .forward(&c1.forward(&now).relu().dropout(self.hyper.dropout, train))
            .reshape([b, self.services]);
        Tensor::cat(&[logits.narrow(1, 0, 1), scores], 1)
    }

    /// `(P(violation within horizon) [batch], P(service initiates | violation) [batch, services])`.
    pub fn predict(&self, x: &Tensor) -> (Tensor, Tensor) {
        let logits = tch::no_grad(|| self.forward_t(x, false));
        let violation = logits.select(1, 0).sigmoid();
        let culprit = logits.narrow(1, 1, self.services).softmax(-1, Kind::Float);
        (violation, culprit)
    }

    /// Training loss: class-balanced BCE on the violation logit (each row weighted by
    /// `row_weight`) plus cross-entropy on the culprit for the rows that have one
    /// (`culprit >= 0`).
    pub fn loss(
        &self,
        x: &Tensor,
        violation: &Tensor,
        culprit: &Tensor,
        pos_weight: f64,
        row_weight: Option<&Tensor>,
    ) -> Tensor {
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
        let culprit_logits = logits.narrow(1, 1, self.services).index_select(0, &rows);
        let targets = culprit.index_select(0, &rows);
        bce + culprit_logits.cross_entropy_for_logits(&targets)
    }
}

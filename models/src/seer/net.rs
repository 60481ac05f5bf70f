//! The Seer network (ASPLOS'19, §4): 1-D convolutions across the service axis, an LSTM
//! over the last H windows, dropout, and a head.
//!
//! In: `[batch, H, services, features]`, standardized, services back end first. With
//! `hyper.delta`, each value's difference from its service's mean over the H windows is
//! fed beside it (a queue building up is the precursor of a violation).
//! Out: logits `[batch, 1 + services]`: column 0 is "a QoS violation starts within the
//! horizon" (sigmoid), columns 1.. rank the services that initiate it (softmax), so
//! P(service s initiates a violation) = sigmoid(l₀) · softmax(l₁..)ₛ.
//! With `hyper.members` = K > 1 the network is K such networks trained side by side from
//! different initial weights (an ensemble: the first under the root path, as a single
//! network's, the others under `member1`, `member2`, …); predictions average their
//! probabilities, which evens out how much one training run depends on its seed.
//! State: the weights, in the `VarStore` the network was built on. Convolution weights
//! don't depend on the service count; the LSTM's input weights and the culprit head are
//! per service (see `remap.rs`).

use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

use crate::seer::layout::SeerHyper;

#[derive(Debug)]
pub struct SeerNet {
    /// One network, or the members of an ensemble (`hyper.members`).
    members: Vec<Member>,
    services: i64,
    features: i64,
    hyper: SeerHyper,
}

/// One convolution + LSTM + head network.
#[derive(Debug)]
struct Member {
    conv1: nn::Conv1D,
    conv2: nn::Conv1D,
    lstm: nn::LSTM,
    head: nn::Linear,
    /// With `hyper.shared_culprit`: per-service culprit score from the first
    /// convolution's channels (1×1 convolutions, weights shared across services).
    culprit: Option<(nn::Conv1D, nn::Conv1D)>,
}

/// The variable name of `name` inside its member (`member2.head.bias` → `head.bias`).
pub fn member_local_name(name: &str) -> &str {
    match name.split_once('.') {
        Some((first, rest))
            if first
                .strip_prefix("member")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            rest
        }
        _ => name,
    }
}

impl SeerNet {
    /// Builds the network under `path` for `services` services and `features` features.
    pub fn new(path: &nn::Path, hyper: &SeerHyper, services: usize, features: usize) -> Self {
        let members = (0..hyper.members.max(1))
            .map(|k| {
                let at = if k == 0 {
                    path.clone()
                } else {
                    path / format!("member{k}")
                };
                Member::new(&at, hyper, services, features)
            })
            .collect();
        SeerNet {
            members,
            services: services as i64,
            features: features as i64,
            hyper: hyper.clone(),
        }
    }

    pub fn services(&self) -> usize {
        self.services as usize
    }

    /// Logits `[batch, 1 + services]` of each member for `x: [batch, H, services, features]`.
    fn forward_members(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        self.members
            .iter()
            .map(|m| m.forward_t(x, train, self.services, self.features, &self.hyper))
            .collect()
    }

    /// `(P(violation within horizon) [batch], P(service initiates | violation) [batch, services])`,
    /// averaged over the members. Services whose `present` entry (`[batch, services]`,
    /// bool) is false — absent from the window — get probability 0.
    pub fn predict(&self, x: &Tensor, present: Option<&Tensor>) -> (Tensor, Tensor) {
        let all = tch::no_grad(|| self.forward_members(x, false));
        // `new` builds at least one member, so the stacks are never empty.
        let mean = |probs: Vec<Tensor>| Tensor::stack(&probs, 0).mean_dim(0, false, Kind::Float);
        let violation = mean(all.iter().map(|l| l.select(1, 0).sigmoid()).collect());
        let culprit = mean(
            all.iter()
                .map(|l| {
                    mask_absent(l.narrow(1, 1, self.services), present).softmax(-1, Kind::Float)
                })
                .collect(),
        );
        (violation, culprit)
    }

    /// Training loss: the sum over members of each one's class-balanced BCE on the
    /// violation logit (each row weighted by `row_weight`) plus cross-entropy on the
    /// culprit for the rows that have one (`culprit >= 0`), over the services `present` in
    /// the row's last window. Summed, each member gets the gradient it would alone.
    pub fn loss(
        &self,
        x: &Tensor,
        targets: &LossTargets,
        pos_weight: f64,
        row_weight: Option<&Tensor>,
    ) -> Tensor {
        let losses: Vec<Tensor> = self
            .forward_members(x, true)
            .iter()
            .map(|logits| member_loss(logits, self.services, targets, pos_weight, row_weight))
            .collect();
        Tensor::stack(&losses, 0).sum(Kind::Float)
    }
}

impl Member {
    fn new(path: &nn::Path, hyper: &SeerHyper, services: usize, features: usize) -> Self {
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
        Member {
            conv1,
            conv2,
            lstm,
            head,
            culprit,
        }
    }

    /// Logits `[batch, 1 + services]` for `x: [batch, H, services, features]`.
    fn forward_t(
        &self,
        x: &Tensor,
        train: bool,
        services: i64,
        features: i64,
        hyper: &SeerHyper,
    ) -> Tensor {
        let size = x.size();
        let (b, h) = (size[0], size[1]);
        let (x, channels) = if hyper.delta {
            let change = x - x.mean_dim(1, true, Kind::Float);
            (Tensor::cat(&[x, &change], 3), 2 * features)
        } else {
            (x.shallow_clone(), features)
        };
        let y_in = x.reshape([b * h, services, channels]).transpose(1, 2);
        let spatial = self.conv1.forward(&y_in).relu();
        let y = self.conv2.forward(&spatial).relu();
        let y = y.reshape([b, h, hyper.conv2 * services]);
        let (out, _) = self.lstm.seq(&y);
        let last = out.select(1, h - 1).dropout(hyper.dropout, train);
        let logits = self.head.forward(&last);
        let Some((c1, c2)) = &self.culprit else {
            return logits;
        };
        // The last window's channels per service, [b, channels, services]: its own inputs,
        // or the first convolution's output.
        let now = if hyper.culprit_inputs {
            y_in.reshape([b, h, channels, services]).select(1, h - 1)
        } else {
            spatial
                .reshape([b, h, hyper.conv1, services])
                .select(1, h - 1)
        };
        let scores = c2
            .forward(&c1.forward(&now).relu().dropout(hyper.dropout, train))
            .reshape([b, services]);
        Tensor::cat(&[logits.narrow(1, 0, 1), scores], 1)
    }
}

/// One member's loss (see [`SeerNet::loss`]).
fn member_loss(
    logits: &Tensor,
    services: i64,
    targets: &LossTargets,
    pos_weight: f64,
    row_weight: Option<&Tensor>,
) -> Tensor {
    let LossTargets {
        violation,
        culprit,
        present,
    } = targets;
    let pw = Tensor::from_slice(&[pos_weight as f32]).to_device(logits.device());
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
        mask_absent(logits.narrow(1, 1, services), Some(present)).index_select(0, &rows);
    let targets = culprit.index_select(0, &rows);
    bce + culprit_logits.cross_entropy_for_logits(&targets)
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

    #[test]
    fn an_ensemble_averages_its_members_probabilities() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let hyper = SeerHyper {
            members: 3,
            ..SeerHyper::default()
        };
        let net = SeerNet::new(&vs.root(), &hyper, 4, 3);
        // The first member keeps a single network's variable names (older checkpoints load).
        let names = vs.variables();
        assert!(names.contains_key("head.bias"));
        assert!(names.contains_key("member2.head.bias"));
        assert!(!names.contains_key("member3.head.bias"));
        let x = Tensor::randn([2, 5, 4, 3], (Kind::Float, Device::Cpu));
        let (v, c) = net.predict(&x, None);
        let each: Vec<Tensor> = net
            .members
            .iter()
            .map(|m| tch::no_grad(|| m.forward_t(&x, false, 4, 3, &hyper)))
            .collect();
        let v_mean = each
            .iter()
            .map(|l| l.select(1, 0).sigmoid())
            .reduce(|a, b| a + b)
            .unwrap()
            / 3.0;
        let c_mean = each
            .iter()
            .map(|l| l.narrow(1, 1, 4).softmax(-1, Kind::Float))
            .reduce(|a, b| a + b)
            .unwrap()
            / 3.0;
        assert!(f64::try_from((&v - &v_mean).abs().max()).unwrap() < 1e-6);
        assert!(f64::try_from((&c - &c_mean).abs().max()).unwrap() < 1e-6);
        // Members start from different weights, so they disagree.
        let spread = (each[0].select(1, 0) - each[1].select(1, 0)).abs().max();
        assert!(f64::try_from(spread).unwrap() > 1e-4);
    }

    #[test]
    fn member_prefixes_are_stripped_from_variable_names() {
        assert_eq!(member_local_name("member2.head.bias"), "head.bias");
        assert_eq!(
            member_local_name("member12.lstm.weight_ih_l0"),
            "lstm.weight_ih_l0"
        );
        assert_eq!(member_local_name("head.bias"), "head.bias");
        assert_eq!(member_local_name("members.head"), "members.head");
        assert_eq!(member_local_name("member.head"), "member.head");
    }
}

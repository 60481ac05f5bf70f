//! Sage's graphical variational autoencoder (GVAE): one small conditional VAE per CBN unit
//! and per RPC channel, wired along the [`Cbn`].
//!
//! In: batches of standardized node values ([`Batch`]). Out: the training loss (Sage
//! eq. 6–9) and, for inference, posterior/prior means of the latents and decoded
//! latencies. State: the weights in a `VarStore`, named by service and RPC
//! (`u:<unit>.*`, `c:<caller->callee>.*`, `n:<caller->callee>.*`) so a topology change can
//! reuse every part whose shape is unchanged.
//!
//! Per unit `u`: encoder Q(Z_u | X_u, Ys_u, Yc of its calls and their co-parents Ys of
//! the callees and Ynet), prior P(Z_u | X_u), decoder P(Ys_u | X_u, Z_u, Yc of its calls),
//! and per RPC `i` it invokes a decoder P(Yc_i | X_u, Z_u, Ys_callee, Ynet_i).
//! The latency decoders are *structured*: latencies add up in milliseconds, so
//! `Ys_u = own(X_u, Z_u) + Σ_g max_{i∈g} w_i · Yc_i` over groups `g` of calls made in
//! parallel (a call made on its own is a group of one: the sum; an MLP gives the service's
//! own time, `w_i` are learned per RPC and percentile, starting at 1, never below 0) and
//! `Yc_i = Ys_callee + Ynet_i + corr(X_u, Z_u, Ys_callee, Ynet_i)` (an MLP corrects for
//! percentiles not adding exactly). A plain MLP learns nothing about a child's latency
//! from training data where it barely moves, and can't extrapolate to a fault it has seen
//! a few times; the sums carry any child's slowdown to its callers, as the CBN says they
//! should. Per RPC channel: Q(Znet | Xnet, Ynet), P(Znet | Xnet), P(Ynet | Xnet, Znet).
//! Every network is an MLP (linear → batch-norm → ReLU, twice, then dropout and a linear
//! head). Decoders are trained teacher-forced on the observed parent latencies, so each
//! unit's loss depends on its own weights only: encoders, priors and decoders of all units
//! train in parallel, and partial retraining is training a subset of the units' losses.
//!
//! Loss per unit (eq. 8, summed over units as eq. 9):
//! `α·(‖Y − D(X, z_q)‖²/2 + β·KL(Q ‖ P)) + (1 − α)·‖Y − D(X, z_p)‖²/2`,
//! with `z_q ~ Q` (the CVAE) and `z_p ~ P` (the GSNN).

use serde::{Deserialize, Serialize};
use tch::nn::ModuleT;
use tch::{Kind, Tensor, nn};

use super::cbn::Cbn;
use super::features::{Normalizer, X_DIM, XNET_DIM, Y_DIM};

/// Layer sizes and loss weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GvaeHyper {
    /// Hidden width of the unit networks. Default 16.
    pub hidden: i64,
    /// Latent size per unit. Default 4.
    pub z_dim: i64,
    /// Hidden width of the channel networks. Default 8.
    pub net_hidden: i64,
    /// Latent size per channel. Default 2.
    pub znet_dim: i64,
    /// Dropout after the last hidden layer. Default 0.1.
    pub dropout: f64,
    /// Weight of the CVAE term against the GSNN term (eq. 8). Default 0.5.
    pub alpha: f64,
    /// Weight of the KL term (eq. 6). Default 0.5.
    pub beta: f64,
}

impl Default for GvaeHyper {
    fn default() -> Self {
        GvaeHyper {
            hidden: 16,
            z_dim: 4,
            net_hidden: 8,
            znet_dim: 2,
            dropout: 0.1,
            alpha: 0.5,
            beta: 0.5,
        }
    }
}

fn mlp(p: nn::Path, input: i64, hidden: i64, out: i64, dropout: f64) -> nn::SequentialT {
    nn::seq_t()
        .add(nn::linear(&p / "l1", input, hidden, Default::default()))
        .add(nn::batch_norm1d(&p / "bn1", hidden, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&p / "l2", hidden, hidden, Default::default()))
        .add(nn::batch_norm1d(&p / "bn2", hidden, Default::default()))
        .add_fn(|x| x.relu())
        .add_fn_t(move |x, train| x.dropout(dropout, train))
        .add(nn::linear(&p / "out", hidden, out, Default::default()))
}

/// A name safe inside a `VarStore` path (which separates with `.`).
pub fn path_name(s: &str) -> String {
    s.replace('.', "_")
}

#[derive(Debug)]
struct UnitNet {
    enc: nn::SequentialT,
    prior: nn::SequentialT,
    /// The members' own processing time (ms, through softplus).
    dec_s: nn::SequentialT,
    /// Per invoked RPC (in `Cbn::invoked` order): the correction of its client latency.
    dec_c: Vec<nn::SequentialT>,
    /// Per invoked RPC: weight of its client latency in the caller's, per percentile.
    weight: Vec<Tensor>,
}

/// Standardization of one latency block, as tensors `[1, dim]`.
#[derive(Debug)]
struct Scale {
    mean: Tensor,
    std: Tensor,
}

impl Scale {
    fn of(norm: &Normalizer, keys: &[String], device: tch::Device) -> Scale {
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for key in keys {
            match norm.blocks.get(key) {
                Some(b) if b.mean.len() == Y_DIM => {
                    mean.extend_from_slice(&b.mean);
                    std.extend_from_slice(&b.std);
                }
                _ => {
                    mean.extend_from_slice(&[0.0; Y_DIM]);
                    std.extend_from_slice(&[1.0; Y_DIM]);
                }
            }
        }
        let n = mean.len() as i64;
        Scale {
            mean: Tensor::from_slice(&mean).reshape([1, n]).to_device(device),
            std: Tensor::from_slice(&std).reshape([1, n]).to_device(device),
        }
    }

    /// Standardized `ln(1 + ms)` → ms.
    fn ms(&self, v: &Tensor) -> Tensor {
        (v * &self.std + &self.mean).clamp(0.0, 15.0).expm1()
    }

    /// ms → standardized `ln(1 + ms)`.
    fn standardized(&self, ms: &Tensor) -> Tensor {
        (ms.clamp_min(0.0).log1p() - &self.mean) / &self.std
    }

    fn narrow(&self, start: i64, len: i64) -> Scale {
        Scale {
            mean: self.mean.narrow(1, start, len),
            std: self.std.narrow(1, start, len),
        }
    }
}

#[derive(Debug)]
struct ChannelNet {
    enc: nn::SequentialT,
    prior: nn::SequentialT,
    dec: nn::SequentialT,
}

/// Node values of a batch, as tensors `[B, dim]` laid out like [`super::features::Sample`].
pub struct Batch {
    pub x: Vec<Tensor>,
    pub ys: Vec<Tensor>,
    pub yc: Vec<Tensor>,
    pub ynet: Vec<Tensor>,
    pub xnet: Vec<Tensor>,
}

/// Gaussian parameters (mean, log-variance) from a head's output.
fn gaussian(h: &Tensor, dim: i64) -> (Tensor, Tensor) {
    let mean = h.narrow(1, 0, dim);
    let logvar = h.narrow(1, dim, dim).clamp(-8.0, 8.0);
    (mean, logvar)
}

fn sample(mean: &Tensor, logvar: &Tensor) -> Tensor {
    mean + (logvar * 0.5).exp() * mean.randn_like()
}

/// KL(N(mq, lq) ‖ N(mp, lp)), summed over dimensions, averaged over the batch.
fn kl(mq: &Tensor, lq: &Tensor, mp: &Tensor, lp: &Tensor) -> Tensor {
    let term = lp - lq + (lq.exp() + (mq - mp).square()) / lp.exp() - 1.0;
    (term.sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * 0.5).mean(Kind::Float)
}

fn sse(pred: &Tensor, target: &Tensor) -> Tensor {
    ((pred - target)
        .square()
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        * 0.5)
        .mean(Kind::Float)
}

/// The GVAE of one CBN.
#[derive(Debug)]
pub struct Gvae {
    pub cbn: Cbn,
    pub hyper: GvaeHyper,
    units: Vec<UnitNet>,
    channels: Vec<ChannelNet>,
    ys_scale: Vec<Scale>,
    yc_scale: Vec<Scale>,
    ynet_scale: Vec<Scale>,
    /// Per RPC: the callee's position among its unit's members.
    callee_member: Vec<i64>,
    /// Per RPC: the caller's position among its unit's members.
    caller_member: Vec<i64>,
    /// Per unit: its invoked RPCs (positions in `Cbn::invoked`) in groups of parallel calls.
    groups: Vec<Vec<Vec<usize>>>,
}

impl Gvae {
    pub fn new(root: &nn::Path, cbn: Cbn, hyper: GvaeHyper, norm: &Normalizer) -> Gvae {
        let (h, z, d) = (hyper.hidden, hyper.z_dim, hyper.dropout);
        let m = |u: usize| cbn.units[u].members.len() as i64;
        let y = Y_DIM as i64;
        let mut units = Vec::new();
        for (u, unit) in cbn.units.iter().enumerate() {
            let p = root / format!("u:{}", path_name(&unit.name));
            let dx = X_DIM as i64 * m(u);
            let invoked = cbn.invoked(u);
            let co_parents: i64 = invoked
                .iter()
                .map(|i| y * m(cbn.rpcs[*i].callee_unit) + y)
                .sum();
            let k = invoked.len() as i64;
            let enc = mlp(&p / "enc", dx + y * m(u) + y * k + co_parents, h, 2 * z, d);
            let prior = mlp(&p / "prior", dx, h, 2 * z, d);
            let dec_s = mlp(&p / "dec_s", dx + z, h, y * m(u), d);
            let mut dec_c = Vec::new();
            let mut weight = Vec::new();
            for i in &invoked {
                let r = &cbn.rpcs[*i];
                let pc = root / format!("c:{}", path_name(&r.key()));
                dec_c.push(mlp(
                    &pc / "corr",
                    dx + z + y * m(r.callee_unit) + y,
                    h,
                    y,
                    d,
                ));
                weight.push(pc.var("w", &[1, y], nn::Init::Const(1.0)));
            }
            let _ = k;
            units.push(UnitNet {
                enc,
                prior,
                dec_s,
                dec_c,
                weight,
            });
        }
        let (hn, zn) = (hyper.net_hidden, hyper.znet_dim);
        let xn = XNET_DIM as i64;
        let channels = cbn
            .rpcs
            .iter()
            .map(|r| {
                let p = root / format!("n:{}", path_name(&r.key()));
                ChannelNet {
                    enc: mlp(&p / "enc", xn + y, hn, 2 * zn, d),
                    prior: mlp(&p / "prior", xn, hn, 2 * zn, d),
                    dec: mlp(&p / "dec", xn + zn, hn, y, d),
                }
            })
            .collect();
        let device = root.device();
        let ys_scale = cbn
            .units
            .iter()
            .map(|u| {
                let keys: Vec<String> = u.members.iter().map(|m| format!("ys:{m}")).collect();
                Scale::of(norm, &keys, device)
            })
            .collect();
        let rpc_scale = |prefix: &str| -> Vec<Scale> {
            cbn.rpcs
                .iter()
                .map(|r| Scale::of(norm, &[format!("{prefix}:{}", r.key())], device))
                .collect()
        };
        let yc_scale = rpc_scale("yc");
        let ynet_scale = rpc_scale("ynet");
        let position = |unit: usize, service: &str| -> i64 {
            cbn.units[unit]
                .members
                .iter()
                .position(|m| m == service)
                .unwrap_or(0) as i64
        };
        let callee_member = cbn
            .rpcs
            .iter()
            .map(|r| position(r.callee_unit, &r.callee))
            .collect();
        let caller_member = cbn
            .rpcs
            .iter()
            .map(|r| position(r.caller_unit, &r.caller))
            .collect();
        let groups = (0..cbn.units.len())
            .map(|u| cbn.parallel_groups(u))
            .collect();
        Gvae {
            groups,
            cbn,
            hyper,
            units,
            channels,
            ys_scale,
            yc_scale,
            ynet_scale,
            callee_member,
            caller_member,
        }
    }

    /// Encoder input of unit `u`.
    fn enc_input(&self, u: usize, b: &Batch) -> Tensor {
        let mut parts = vec![b.x[u].shallow_clone(), b.ys[u].shallow_clone()];
        for i in self.cbn.invoked(u) {
            parts.push(b.yc[i].shallow_clone());
            parts.push(b.ynet[i].shallow_clone());
            parts.push(b.ys[self.cbn.rpcs[i].callee_unit].shallow_clone());
        }
        Tensor::cat(&parts, 1)
    }

    /// Posterior Q(Z_u | ·): mean and log-variance.
    pub fn posterior(&self, u: usize, b: &Batch, train: bool) -> (Tensor, Tensor) {
        let h = self.units[u].enc.forward_t(&self.enc_input(u, b), train);
        gaussian(&h, self.hyper.z_dim)
    }

    /// Prior P(Z_u | X_u): mean and log-variance.
    pub fn prior(&self, u: usize, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let h = self.units[u].prior.forward_t(x, train);
        gaussian(&h, self.hyper.z_dim)
    }

    /// Ys_u (standardized) from X_u, Z_u and the Yc of the RPCs `u` invokes (in
    /// `Cbn::invoked` order): own time plus the weighted client latencies, in ms.
    pub fn decode_s(&self, u: usize, x: &Tensor, z: &Tensor, yc: &[Tensor], train: bool) -> Tensor {
        let net = &self.units[u];
        let y = Y_DIM as i64;
        let own = net
            .dec_s
            .forward_t(&Tensor::cat(&[x, z], 1), train)
            .softplus();
        let mut members: Vec<Tensor> = (0..self.cbn.units[u].members.len() as i64)
            .map(|k| own.narrow(1, k * y, y))
            .collect();
        let invoked = self.cbn.invoked(u);
        for group in &self.groups[u] {
            // The caller waits for the slowest of parallel calls: their maximum.
            let mut slowest: Option<(usize, Tensor)> = None;
            for &k in group {
                let (Some(yc), Some(i)) = (yc.get(k), invoked.get(k)) else {
                    continue;
                };
                let term = self.yc_scale[*i].ms(yc) * &net.weight[k];
                let slot = self.caller_member[*i] as usize;
                slowest = Some(match slowest {
                    Some((s, t)) => (s, t.maximum(&term)),
                    None => (slot, term),
                });
            }
            if let Some((slot, term)) = slowest
                && let Some(m) = members.get_mut(slot)
            {
                *m = &*m + term;
            }
        }
        self.ys_scale[u].standardized(&Tensor::cat(&members, 1))
    }

    /// Yc of the `k`-th RPC unit `u` invokes. (Each argument is one parent in the CBN.)
    #[allow(clippy::too_many_arguments)]
    pub fn decode_c(
        &self,
        u: usize,
        k: usize,
        x: &Tensor,
        z: &Tensor,
        ys_callee: &Tensor,
        ynet: &Tensor,
        train: bool,
    ) -> Tensor {
        self.decode_c_wired(u, k, x, z, ys_callee, ynet, ynet, train)
    }

    /// [`Self::decode_c`] with the network delay read separately by the correction MLP
    /// (`ynet_corr`) and by the wire term (`ynet_wire`, added in ms). A counterfactual that
    /// restores a channel changes only the wire term: the delay is exactly that part of the
    /// call, and the MLP, which saw few slow channels, extrapolates arbitrarily from one
    /// far outside them (with one delay read by both, repairing a service behind a
    /// delayed channel raises the modelled end-to-end p99 of a social-network run from 44
    /// to 120 ms).
    #[allow(clippy::too_many_arguments)]
    pub fn decode_c_wired(
        &self,
        u: usize,
        k: usize,
        x: &Tensor,
        z: &Tensor,
        ys_callee: &Tensor,
        ynet_corr: &Tensor,
        ynet_wire: &Tensor,
        train: bool,
    ) -> Tensor {
        let input = Tensor::cat(
            &[
                x.shallow_clone(),
                z.shallow_clone(),
                ys_callee.shallow_clone(),
                ynet_corr.shallow_clone(),
            ],
            1,
        );
        let corr = self.units[u].dec_c[k].forward_t(&input, train);
        let i = self.cbn.invoked(u)[k];
        let callee = self.cbn.rpcs[i].callee_unit;
        let y = Y_DIM as i64;
        let start = self.callee_member[i] * y;
        let server = self.ys_scale[callee]
            .narrow(start, y)
            .ms(&ys_callee.narrow(1, start, y));
        let wire = self.ynet_scale[i].ms(ynet_wire);
        self.yc_scale[i].standardized(&(server + wire + corr))
    }

    /// Channel `i`: posterior (mean, log-variance) from Xnet and Ynet.
    pub fn net_posterior(
        &self,
        i: usize,
        xnet: &Tensor,
        ynet: &Tensor,
        train: bool,
    ) -> (Tensor, Tensor) {
        let h = self.channels[i]
            .enc
            .forward_t(&Tensor::cat(&[xnet, ynet], 1), train);
        gaussian(&h, self.hyper.znet_dim)
    }

    pub fn net_prior(&self, i: usize, xnet: &Tensor, train: bool) -> (Tensor, Tensor) {
        let h = self.channels[i].prior.forward_t(xnet, train);
        gaussian(&h, self.hyper.znet_dim)
    }

    pub fn net_decode(&self, i: usize, xnet: &Tensor, z: &Tensor, train: bool) -> Tensor {
        self.channels[i]
            .dec
            .forward_t(&Tensor::cat(&[xnet, z], 1), train)
    }

    /// Loss of unit `u` (eq. 8), teacher-forced on the batch's observed latencies.
    pub fn unit_loss(&self, u: usize, b: &Batch) -> Tensor {
        let (alpha, beta) = (self.hyper.alpha, self.hyper.beta);
        let (mq, lq) = self.posterior(u, b, true);
        let (mp, lp) = self.prior(u, &b.x[u], true);
        let invoked = self.cbn.invoked(u);
        let yc: Vec<Tensor> = invoked.iter().map(|i| b.yc[*i].shallow_clone()).collect();
        let recon = |z: &Tensor| -> Tensor {
            let mut terms = vec![sse(&self.decode_s(u, &b.x[u], z, &yc, true), &b.ys[u])];
            for (k, i) in invoked.iter().enumerate() {
                let callee = self.cbn.rpcs[*i].callee_unit;
                let pred = self.decode_c(u, k, &b.x[u], z, &b.ys[callee], &b.ynet[*i], true);
                terms.push(sse(&pred, &b.yc[*i]));
            }
            Tensor::stack(&terms, 0).sum(Kind::Float)
        };
        let cvae = recon(&sample(&mq, &lq)) + kl(&mq, &lq, &mp, &lp) * beta;
        let gsnn = recon(&sample(&mp, &lp));
        cvae * alpha + gsnn * (1.0 - alpha)
    }

    /// Loss of channel `i` (eq. 8).
    pub fn channel_loss(&self, i: usize, b: &Batch) -> Tensor {
        let (alpha, beta) = (self.hyper.alpha, self.hyper.beta);
        let (mq, lq) = self.net_posterior(i, &b.xnet[i], &b.ynet[i], true);
        let (mp, lp) = self.net_prior(i, &b.xnet[i], true);
        let recon = |z: &Tensor| sse(&self.net_decode(i, &b.xnet[i], z, true), &b.ynet[i]);
        let cvae = recon(&sample(&mq, &lq)) + kl(&mq, &lq, &mp, &lp) * beta;
        let gsnn = recon(&sample(&mp, &lp));
        cvae * alpha + gsnn * (1.0 - alpha)
    }

    /// Clamps the call weights of `units` at zero, after every optimizer step: a slower
    /// call never makes its caller faster. Over calls that run in parallel (the caller
    /// waits for the slowest) least squares is free to give one of them a negative
    /// weight, and repairing that call then *raises* the caller's modelled latency —
    /// unclamped, social-network's `compose-post-service` gets −1.3 at p99 for its
    /// `unique-id` call, and a network fault there is never named. Units not trained keep
    /// theirs.
    pub fn clamp_call_weights(&mut self, units: &[usize]) {
        tch::no_grad(|| {
            for u in units {
                if let Some(net) = self.units.get_mut(*u) {
                    for w in &mut net.weight {
                        let _ = w.clamp_min_(0.0);
                    }
                }
            }
        });
    }

    /// Eq. 9 over the given units and channels (all of them for full training).
    pub fn loss(&self, b: &Batch, units: &[usize], channels: &[usize]) -> Tensor {
        let mut terms: Vec<Tensor> = units.iter().map(|u| self.unit_loss(*u, b)).collect();
        terms.extend(channels.iter().map(|i| self.channel_loss(*i, b)));
        if terms.is_empty() {
            return Tensor::zeros([], (Kind::Float, b.x[0].device()));
        }
        Tensor::stack(&terms, 0).sum(Kind::Float)
    }
}

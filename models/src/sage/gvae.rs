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
//! and per RPC `i` it invokes a decoder P(Yc_i | X_u, Z_u, Ys_callee, Ynet_i). Per RPC
//! channel: Q(Znet | Xnet, Ynet), P(Znet | Xnet), P(Ynet | Xnet, Znet). Every network is
//! an MLP (linear → batch-norm → ReLU, twice, then dropout and a linear head). Decoders are
//! trained teacher-forced on the observed parent latencies, so each unit's loss depends on
//! its own weights only: encoders, priors and decoders of all units train in parallel, and
//! partial retraining is training a subset of the units' losses.
//!
//! Loss per unit (eq. 8, summed over units as eq. 9):
//! `α·(‖Y − D(X, z_q)‖²/2 + β·KL(Q ‖ P)) + (1 − α)·‖Y − D(X, z_p)‖²/2`,
//! with `z_q ~ Q` (the CVAE) and `z_p ~ P` (the GSNN).

use serde::{Deserialize, Serialize};
use tch::nn::ModuleT;
use tch::{Kind, Tensor, nn};

use super::cbn::Cbn;
use super::features::{X_DIM, XNET_DIM, Y_DIM};

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
    dec_s: nn::SequentialT,
    /// Per invoked RPC (in `Cbn::invoked` order).
    dec_c: Vec<nn::SequentialT>,
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
}

impl Gvae {
    pub fn new(root: &nn::Path, cbn: Cbn, hyper: GvaeHyper) -> Gvae {
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
            let dec_s = mlp(&p / "dec_s", dx + z + y * k, h, y * m(u), d);
            let dec_c = invoked
                .iter()
                .map(|i| {
                    let r = &cbn.rpcs[*i];
                    let pc = root / format!("c:{}", path_name(&r.key()));
                    mlp(pc, dx + z + y * m(r.callee_unit) + y, h, y, d)
                })
                .collect();
            units.push(UnitNet {
                enc,
                prior,
                dec_s,
                dec_c,
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
        Gvae {
            cbn,
            hyper,
            units,
            channels,
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

    /// Ys_u from X_u, Z_u and the Yc of the RPCs `u` invokes (in `Cbn::invoked` order).
    pub fn decode_s(&self, u: usize, x: &Tensor, z: &Tensor, yc: &[Tensor], train: bool) -> Tensor {
        let mut parts = vec![x.shallow_clone(), z.shallow_clone()];
        parts.extend(yc.iter().map(|t| t.shallow_clone()));
        self.units[u]
            .dec_s
            .forward_t(&Tensor::cat(&parts, 1), train)
    }

    /// Yc of the `k`-th RPC unit `u` invokes.
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
        let input = Tensor::cat(
            &[
                x.shallow_clone(),
                z.shallow_clone(),
                ys_callee.shallow_clone(),
                ynet.shallow_clone(),
            ],
            1,
        );
        self.units[u].dec_c[k].forward_t(&input, train)
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
            let mut loss = sse(&self.decode_s(u, &b.x[u], z, &yc, true), &b.ys[u]);
            for (k, i) in invoked.iter().enumerate() {
                let callee = self.cbn.rpcs[*i].callee_unit;
                let pred = self.decode_c(u, k, &b.x[u], z, &b.ys[callee], &b.ynet[*i], true);
                loss = loss + sse(&pred, &b.yc[*i]);
            }
            loss
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

    /// Eq. 9 over the given units and channels (all of them for full training).
    pub fn loss(&self, b: &Batch, units: &[usize], channels: &[usize]) -> Tensor {
        let mut total = Tensor::zeros([], (Kind::Float, b.x[0].device()));
        for u in units {
            total = total + self.unit_loss(*u, b);
        }
        for i in channels {
            total = total + self.channel_loss(*i, b);
        }
        total
    }
}

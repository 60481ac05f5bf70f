//! Sage's node values from a window snapshot, and their normalization.
//!
//! In: a [`WindowSnapshot`] and a [`Cbn`]. Out: per unit its metric vector `X` and
//! server-side latency `Ys`, per RPC its client-side latency `Yc`, network delay `Ynet`
//! and channel metrics `Xnet` — standardized, with anything missing from the window
//! (a service that exported nothing, an RPC not called, the resource usage of a service
//! that exports no metrics) filled with its normal value.
//! State: the [`Normalizer`] (per block mean, std and "normal" median), fitted on training
//! windows and stored in the checkpoint.
//!
//! Blocks are keyed by service or RPC (`x:svc`, `ys:svc`, `yc:a->b`, `ynet:a->b`,
//! `xnet:a->b`) so they survive topology changes and meta-node merges.
//!
//! - `X` per service (22): per resource ([`Resource::ALL`] order) the usage at the four
//!   [`USAGE_QUANTILES`] across replicas, then the request rate and the error ratio.
//!   Magnitudes go through `ln(1 + x)`. Resources the model leaves out of `X` (its
//!   layout's `x_resources`) read as unknown, i.e. their normal value.
//! - `Ys`, `Yc`, `Ynet`: `ln(1 + ms)` at the five [`LATENCY_QUANTILES`] (finer at the tail).
//!   `Ynet` is the RPC's gap (client − server time: request and response on the wire).
//! - `Xnet` per RPC (2): `ln(1 + calls/s)` and the error ratio. The simulator, like most
//!   OpenTelemetry setups, exports no per-channel network probe, so a slow channel shows
//!   only in `Ynet` and is explained by the channel's latent `Znet`.

use std::collections::BTreeMap;

use augur_operators::quantile::{Rank, quantile_sorted};
use augur_operators::{LATENCY_QUANTILES, Resource, WindowSnapshot};
use serde::{Deserialize, Serialize};

use super::cbn::Cbn;

/// Metric values per service.
pub const X_DIM: usize = 22;
/// Columns of the request rate and the error ratio in a service's `X`.
pub const RATE_COL: usize = 20;
pub const ERROR_COL: usize = 21;
/// Latency percentiles per latency node.
pub const Y_DIM: usize = 5;
/// Channel metrics per RPC.
pub const XNET_DIM: usize = 2;

/// Columns of `resource` in a service's `X`.
pub fn resource_cols(resource: Resource) -> std::ops::Range<usize> {
    resource.index() * 4..resource.index() * 4 + 4
}

fn log1p(x: f64) -> f32 {
    x.max(0.0).ln_1p() as f32
}

/// The raw (transformed, not yet standardized) blocks present in a window, every resource
/// included (a model's layout drops the ones it leaves out: [`mask_resources`]).
pub fn raw_blocks(window: &WindowSnapshot) -> BTreeMap<String, Vec<f32>> {
    let secs = (window.window_ms.max(1)) as f64 / 1000.0;
    let mut out = BTreeMap::new();
    for s in &window.services {
        let mut x = Vec::with_capacity(X_DIM);
        // No replica reported any resource: the service exports no metrics (incomplete
        // instrumentation). Its usage is unknown, not zero: NaN, read as the normal value.
        let reported = s.usage.iter().flatten().any(|v| *v != 0.0);
        for r in Resource::ALL {
            for v in s.usage[r.index()] {
                x.push(if reported { log1p(v) } else { f32::NAN });
            }
        }
        x.push(log1p(s.requests as f64 / secs));
        x.push(if s.requests > 0 {
            (s.errors as f64 / s.requests as f64) as f32
        } else {
            0.0
        });
        out.insert(format!("x:{}", s.service), x);
        if s.requests > 0 {
            out.insert(
                format!("ys:{}", s.service),
                s.latency_ms.iter().map(|v| log1p(*v)).collect(),
            );
        }
    }
    for e in &window.edges {
        if e.calls == 0 {
            continue;
        }
        let key = format!("{}->{}", e.caller, e.callee);
        out.insert(
            format!("yc:{key}"),
            e.client_ms.iter().map(|v| log1p(*v)).collect(),
        );
        out.insert(
            format!("ynet:{key}"),
            e.gap_ms.iter().map(|v| log1p(*v)).collect(),
        );
        out.insert(
            format!("xnet:{key}"),
            vec![
                log1p(e.calls as f64 / secs),
                (e.errors as f64 / e.calls as f64) as f32,
            ],
        );
    }
    out
}

/// Makes the usage of resources not in `x_resources` unknown (NaN, read as the normal
/// value) in every service's `X` block.
pub fn mask_resources(raw: &mut BTreeMap<String, Vec<f32>>, x_resources: &[Resource]) {
    let masked: Vec<Resource> = Resource::ALL
        .into_iter()
        .filter(|r| !x_resources.contains(r))
        .collect();
    if masked.is_empty() {
        return;
    }
    for (key, x) in raw.iter_mut() {
        if !key.starts_with("x:") {
            continue;
        }
        for r in &masked {
            for c in resource_cols(*r) {
                if let Some(v) = x.get_mut(c) {
                    *v = f32::NAN;
                }
            }
        }
    }
}

/// Mean, standard deviation and normal value (median over windows that met QoS) of one block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Standardized.
    pub normal: Vec<f32>,
}

/// Standardization and normal values of every block seen in training.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    pub blocks: BTreeMap<String, BlockStats>,
}

/// The upper median; 0 when empty.
fn median(mut xs: Vec<f32>) -> f32 {
    xs.sort_by(f32::total_cmp);
    quantile_sorted(&xs, 0.5, Rank::Floor).unwrap_or(0.0)
}

impl Normalizer {
    /// Fits on raw windows; `met[i]` says whether window `i` met its QoS (its values are
    /// the normal ones). Blocks seen in no QoS-meeting window take the median of all.
    pub fn fit(raw: &[BTreeMap<String, Vec<f32>>], met: &[bool]) -> Normalizer {
        let mut keys: Vec<&String> = raw.iter().flat_map(|w| w.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut blocks = BTreeMap::new();
        for key in keys {
            let rows: Vec<(&Vec<f32>, bool)> = raw
                .iter()
                .zip(met)
                .filter_map(|(w, m)| w.get(key).map(|v| (v, *m)))
                .collect();
            let dim = rows.first().map_or(0, |r| r.0.len());
            let n = rows.len().max(1) as f64;
            let mut mean = vec![0.0f32; dim];
            let mut std = vec![0.0f32; dim];
            let mut normal = vec![0.0f32; dim];
            for j in 0..dim {
                let col: Vec<f32> = rows
                    .iter()
                    .filter_map(|r| r.0.get(j).copied())
                    .filter(|v| !v.is_nan())
                    .collect();
                let n = if col.is_empty() { n } else { col.len() as f64 };
                let m = col.iter().map(|v| *v as f64).sum::<f64>() / n;
                let var = col.iter().map(|v| (*v as f64 - m).powi(2)).sum::<f64>() / n;
                mean[j] = m as f32;
                // A floor keeps constant columns (disk of a service that never writes) finite.
                std[j] = (var.sqrt() as f32).max(0.05);
                let good: Vec<f32> = rows
                    .iter()
                    .filter(|r| r.1)
                    .filter_map(|r| r.0.get(j).copied())
                    .filter(|v| !v.is_nan())
                    .collect();
                let med = if good.is_empty() {
                    median(col)
                } else {
                    median(good)
                };
                normal[j] = (med - mean[j]) / std[j];
            }
            blocks.insert(key.clone(), BlockStats { mean, std, normal });
        }
        Normalizer { blocks }
    }

    /// Standardized values of block `key` (its normal value when the window lacks it, and
    /// per column where the raw value is NaN, i.e. unknown; zeros of `dim` for a block
    /// never seen in training).
    pub fn standardized(
        &self,
        raw: &BTreeMap<String, Vec<f32>>,
        key: &str,
        dim: usize,
    ) -> Vec<f32> {
        self.standardize(raw, key, dim, STD_CLAMP)
    }

    fn standardize(
        &self,
        raw: &BTreeMap<String, Vec<f32>>,
        key: &str,
        dim: usize,
        clamp: f32,
    ) -> Vec<f32> {
        match (self.blocks.get(key), raw.get(key)) {
            (Some(stats), Some(values)) if values.len() == dim => values
                .iter()
                .zip(stats.mean.iter().zip(&stats.std))
                .zip(&stats.normal)
                .map(|((v, (m, s)), normal)| {
                    if v.is_nan() {
                        *normal
                    } else {
                        ((v - m) / s).clamp(-clamp, clamp)
                    }
                })
                .collect(),
            (Some(stats), _) if stats.normal.len() == dim => stats.normal.clone(),
            _ => vec![0.0; dim],
        }
    }

    /// The normal (standardized) value of block `key`.
    pub fn normal(&self, key: &str, dim: usize) -> Vec<f32> {
        match self.blocks.get(key) {
            Some(stats) if stats.normal.len() == dim => stats.normal.clone(),
            _ => vec![0.0; dim],
        }
    }

    /// Standard deviation of one column of block `key` (1 when unknown).
    pub fn std_of(&self, key: &str, col: usize) -> f32 {
        self.blocks
            .get(key)
            .and_then(|s| s.std.get(col).copied())
            .unwrap_or(1.0)
    }
}

/// Standardized values are clamped to ± this many standard deviations: the networks'
/// inputs stay finite for anything a window brings.
pub const STD_CLAMP: f32 = 20.0;

/// One window's standardized node values, laid out by a [`Cbn`].
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Per unit: members' `X`, concatenated.
    pub x: Vec<Vec<f32>>,
    /// Per unit: members' `Ys`, concatenated.
    pub ys: Vec<Vec<f32>>,
    /// Per RPC.
    pub yc: Vec<Vec<f32>>,
    pub ynet: Vec<Vec<f32>>,
    pub xnet: Vec<Vec<f32>>,
    /// Per RPC: `Ynet` without the clamp — the wire term of a counterfactual, so that a
    /// restored channel gives back all of its delay, however far out it was.
    pub ynet_wire: Vec<Vec<f32>>,
}

impl Sample {
    pub fn new(raw: &BTreeMap<String, Vec<f32>>, cbn: &Cbn, norm: &Normalizer) -> Sample {
        let unit_blocks = |prefix: &str, dim: usize| -> Vec<Vec<f32>> {
            cbn.units
                .iter()
                .map(|u| {
                    u.members
                        .iter()
                        .flat_map(|m| norm.standardized(raw, &format!("{prefix}:{m}"), dim))
                        .collect()
                })
                .collect()
        };
        let rpc_blocks = |prefix: &str, dim: usize| -> Vec<Vec<f32>> {
            cbn.rpcs
                .iter()
                .map(|r| norm.standardized(raw, &format!("{prefix}:{}", r.key()), dim))
                .collect()
        };
        let ynet_wire = cbn
            .rpcs
            .iter()
            .map(|r| norm.standardize(raw, &format!("ynet:{}", r.key()), Y_DIM, f32::INFINITY))
            .collect();
        Sample {
            x: unit_blocks("x", X_DIM),
            ys: unit_blocks("ys", Y_DIM),
            yc: rpc_blocks("yc", Y_DIM),
            ynet: rpc_blocks("ynet", Y_DIM),
            xnet: rpc_blocks("xnet", XNET_DIM),
            ynet_wire,
        }
    }
}

/// Index into [`LATENCY_QUANTILES`] nearest to `q`.
pub fn quantile_index(q: f64) -> usize {
    let mut best = 0;
    for (i, l) in LATENCY_QUANTILES.iter().enumerate() {
        if (l - q).abs() < (LATENCY_QUANTILES[best] - q).abs() {
            best = i;
        }
    }
    best
}

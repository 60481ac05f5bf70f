//! Counterfactual diagnosis (Sage §3.4, §4.2): "had this service been in its normal state,
//! would the end-to-end latency have met QoS?" — for every service, then for every resource
//! of the culprit.
//!
//! In: a trained [`SageModel`] and one violating window's [`Sample`] with its QoS verdict.
//! Out: a [`Diagnosis`]: per service the counterfactual end-to-end latency at the SLO's
//! quantile when that service is repaired, a greedy set when no single repair restores QoS,
//! and the culprit's resource. State: none.
//!
//! How a counterfactual is generated, for a batch of interventions at once:
//! 1. *Abduction*: each unit's latent is the posterior mean Q(Z | X, Y) of the observed
//!    window, each channel's likewise.
//! 2. *Action*: a repaired service's metrics `X` are set to their normal values (medians
//!    over training windows that met QoS) — all of them except the request rate (the
//!    load is not the service's state) — its latent is redrawn as the prior mean
//!    P(Z | X_normal) (the repaired service is in its normal state, latent causes
//!    included), and the channels that serve it are restored: their delay `Ynet` takes its
//!    normal value. (Sage measures channels with probes — its `Xnet` holds the RTT — so
//!    restoring a channel's metrics restores its delay; our spans carry no probe, the
//!    delay itself is the channel's only measurement, and the channel model, which saw
//!    few slow channels in training, would barely move it.)
//!    A resource repair sets only that resource's columns and keeps the abducted latent;
//!    the network resource repairs the channels into the service.
//! 3. *Prediction*: latencies are regenerated back end → front end along the CBN, only
//!    for descendants of the intervention; every other node keeps its observed value.
//!    A regenerated node is its observed value plus the decoder's change
//!    `D(counterfactual parents) − D(observed parents)`, so the model's reconstruction
//!    error cancels and an intervention that changes nothing changes nothing.
//!    A call's decoder is its callee's latency plus the network delay (the wire term) plus
//!    a correction MLP; in a counterfactual the MLP reads the observed delay capped at
//!    [`CORR_YNET_MAX`] and the wire term the delay unclamped, so a restored channel gives
//!    back exactly the delay it had, however far out, and the MLP is never asked about a
//!    delay far outside its training windows.
//!    One exception: a repaired service none of whose calls is abnormal (client-side
//!    latency within [`ABNORMAL_CALL`] standard deviations of normal) takes its decoder
//!    value, residual dropped (never slower than the rule above gives, never below its
//!    normal value). With its callees
//!    normal, a rise its decoder can't explain (a fault never seen in training, or one its
//!    metrics don't show) is its own, and repairing the service is what makes it normal;
//!    a caller whose call is abnormal keeps its residual — its wait may be the callee's
//!    doing (see [`queued_behind`]).
//!
//! The end-to-end latency of an entry point is its service's server-side latency at the
//! SLO's quantile: the counterfactual scales the measured value by the change of that node.

use std::collections::BTreeSet;

use augur_operators::{QosVerdict, Resource};
use tch::{Kind, Tensor};

use super::cbn::Cbn;
use super::features::{Normalizer, RATE_COL, Sample, X_DIM, Y_DIM, quantile_index, resource_cols};
use super::model::SageModel;

/// One hypothetical repair.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Intervention {
    /// Units whose members' `X` columns (within each member's block) are set to normal.
    pub x_cols: Vec<(usize, Vec<usize>)>,
    /// Units whose latent is redrawn from the prior.
    pub z_reset: Vec<usize>,
    /// Channels (RPC indices) repaired.
    pub channels: Vec<usize>,
}

impl Intervention {
    /// Everything about unit `u` back to normal.
    pub fn service(model: &SageModel, u: usize) -> Intervention {
        Intervention {
            x_cols: vec![(u, (0..X_DIM).filter(|c| *c != RATE_COL).collect())],
            z_reset: vec![u],
            channels: model.layout.cbn.served(u),
        }
    }

    /// Only `resource` of unit `u` back to normal.
    pub fn resource(model: &SageModel, u: usize, resource: Resource) -> Intervention {
        Intervention {
            x_cols: vec![(u, resource_cols(resource).collect())],
            z_reset: Vec::new(),
            channels: if resource == Resource::Network {
                model.layout.cbn.served(u)
            } else {
                Vec::new()
            },
        }
    }

    pub fn union(&self, other: &Intervention) -> Intervention {
        let mut out = self.clone();
        out.x_cols.extend(other.x_cols.iter().cloned());
        out.z_reset.extend(other.z_reset.iter().copied());
        out.channels.extend(other.channels.iter().copied());
        out
    }

    fn touches_unit(&self, u: usize) -> bool {
        self.x_cols.iter().any(|(v, _)| *v == u) || self.z_reset.contains(&u)
    }
}

/// How far (standard deviations) above its normal value a call's client-side latency must
/// be, in some quantile, to count as abnormal.
const ABNORMAL_CALL: f32 = 3.0;

/// The largest network delay (standard deviations above its mean) a call's correction MLP
/// reads in a counterfactual. Beyond the range it was trained on, its output — and its
/// response to the other parents — is arbitrary (a delay 20 std out makes repairing the
/// back end of a chain look like the fix for a slow channel at its front).
const CORR_YNET_MAX: f64 = 3.0;

/// Whether none of the calls `invoked` (RPC indices) was abnormal in the observed window.
fn calls_normal(sample: &Sample, norm: &Normalizer, cbn: &Cbn, invoked: &[usize]) -> bool {
    invoked.iter().all(|i| {
        let normal = norm.normal(&format!("yc:{}", cbn.rpcs[*i].key()), Y_DIM);
        sample.yc[*i]
            .iter()
            .zip(&normal)
            .all(|(o, n)| o - n <= ABNORMAL_CALL)
    })
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let t = t.to_kind(Kind::Float).to_device(tch::Device::Cpu);
    let size = t.size();
    let (n, d) = (size[0] as usize, size.get(1).copied().unwrap_or(1) as usize);
    let flat: Vec<f32> = Vec::try_from(&t.reshape([-1])).unwrap_or_default();
    (0..n)
        .map(|i| flat.get(i * d..(i + 1) * d).unwrap_or_default().to_vec())
        .collect()
}

/// Counterfactual `Ys` (standardized) of every unit, per intervention.
pub fn counterfactual_ys(
    model: &SageModel,
    sample: &Sample,
    interventions: &[Intervention],
) -> Vec<Vec<Vec<f32>>> {
    let b = interventions.len();
    if b == 0 {
        return Vec::new();
    }
    let cbn = &model.layout.cbn;
    let norm = &model.layout.norm;
    let g = &model.gvae;
    let device = model.device();
    let obs = model.batch(&[sample]);
    let bi = b as i64;
    let repeat = |t: &Tensor| t.repeat([bi, 1]);
    let mask = |flags: Vec<f32>| {
        Tensor::from_slice(&flags)
            .reshape([bi, 1])
            .to_device(device)
    };
    tch::no_grad(|| {
        // Counterfactual metrics.
        let x_cf: Vec<Tensor> = (0..cbn.units.len())
            .map(|u| {
                let normal: Vec<f32> = cbn.units[u]
                    .members
                    .iter()
                    .flat_map(|m| norm.normal(&format!("x:{m}"), X_DIM))
                    .collect();
                let mut flat = Vec::with_capacity(b * sample.x[u].len());
                for iv in interventions {
                    let mut row = sample.x[u].clone();
                    for (v, cols) in &iv.x_cols {
                        if *v != u {
                            continue;
                        }
                        for k in 0..cbn.units[u].members.len() {
                            for c in cols {
                                let j = k * X_DIM + c;
                                if let (Some(dst), Some(src)) = (row.get_mut(j), normal.get(j)) {
                                    *dst = *src;
                                }
                            }
                        }
                    }
                    flat.extend(row);
                }
                Tensor::from_slice(&flat)
                    .reshape([bi, sample.x[u].len() as i64])
                    .to_device(device)
            })
            .collect();
        // Which nodes descend from each intervention.
        let mut unit_hit = vec![vec![false; cbn.units.len()]; b];
        let mut rpc_hit = vec![vec![false; cbn.rpcs.len()]; b];
        for (s, iv) in interventions.iter().enumerate() {
            for u in 0..cbn.units.len() {
                let own = iv.touches_unit(u);
                let mut any = own;
                for i in cbn.invoked(u) {
                    let callee = cbn.rpcs[i].callee_unit;
                    rpc_hit[s][i] = own || iv.channels.contains(&i) || unit_hit[s][callee];
                    any |= rpc_hit[s][i];
                }
                unit_hit[s][u] = any;
            }
        }
        // Channels: a repaired channel's delay takes its normal value. (The wire term reads
        // the delay unclamped.)
        let ynet_wire: Vec<Tensor> = sample
            .ynet_wire
            .iter()
            .map(|v| {
                Tensor::from_slice(v)
                    .reshape([1, v.len() as i64])
                    .to_device(device)
            })
            .collect();
        let mut ynet_cf: Vec<Tensor> = Vec::new();
        for (i, r) in cbn.rpcs.iter().enumerate() {
            let repaired: Vec<f32> = interventions
                .iter()
                .map(|iv| if iv.channels.contains(&i) { 1.0 } else { 0.0 })
                .collect();
            let m = mask(repaired);
            let normal_delay =
                Tensor::from_slice(&norm.normal(&format!("ynet:{}", r.key()), Y_DIM))
                    .reshape([1, Y_DIM as i64])
                    .to_device(device);
            // Never make a channel slower by repairing it.
            let restored = normal_delay.minimum(&ynet_wire[i]);
            ynet_cf.push(&m * restored.repeat([bi, 1]) + (1.0 - &m) * repeat(&ynet_wire[i]));
        }
        // Units, back end first.
        let mut ys_cf: Vec<Tensor> = Vec::new();
        let mut yc_cf: Vec<Option<Tensor>> = (0..cbn.rpcs.len()).map(|_| None).collect();
        for u in 0..cbn.units.len() {
            let (zq, _) = g.posterior(u, &obs, false);
            let reset = mask(
                interventions
                    .iter()
                    .map(|iv| if iv.z_reset.contains(&u) { 1.0 } else { 0.0 })
                    .collect(),
            );
            let (zp, _) = g.prior(u, &x_cf[u], false);
            let z = &reset * zp + (1.0 - &reset) * repeat(&zq);
            let invoked = cbn.invoked(u);
            let mut yc_u_cf = Vec::new();
            let mut yc_u_obs = Vec::new();
            for (k, i) in invoked.iter().enumerate() {
                let callee = cbn.rpcs[*i].callee_unit;
                let hit = mask(
                    (0..b)
                        .map(|s| f32::from(u8::from(rpc_hit[s][*i])))
                        .collect(),
                );
                // The correction MLP reads the observed delay, capped where training data
                // thins out; the wire term carries the delay, repaired or not, exactly.
                let ynet_corr = obs.ynet[*i].clamp_max(CORR_YNET_MAX);
                let cf = g.decode_c_wired(
                    u,
                    k,
                    &x_cf[u],
                    &z,
                    &ys_cf[callee],
                    &repeat(&ynet_corr),
                    &ynet_cf[*i],
                    false,
                );
                let fact = g.decode_c_wired(
                    u,
                    k,
                    &obs.x[u],
                    &zq,
                    &obs.ys[callee],
                    &ynet_corr,
                    &ynet_wire[*i],
                    false,
                );
                let yc = repeat(&obs.yc[*i]) + hit * (cf - fact);
                yc_u_cf.push(yc.shallow_clone());
                yc_u_obs.push(obs.yc[*i].shallow_clone());
                yc_cf[*i] = Some(yc);
            }
            let hit = mask(
                (0..b)
                    .map(|s| f32::from(u8::from(unit_hit[s][u])))
                    .collect(),
            );
            let cf = g.decode_s(u, &x_cf[u], &z, &yc_u_cf, false);
            let fact = g.decode_s(u, &obs.x[u], &zq, &yc_u_obs, false);
            let kept = repeat(&obs.ys[u]) + hit * (&cf - fact);
            // A repaired service whose calls were all normal: its own latency is what the
            // repair makes normal, so its residual goes — never making it slower, nor faster
            // than normal (a decoder that undershoots a service already normal would
            // otherwise credit its repair with a gain it can't make).
            let repaired: Vec<f32> = interventions
                .iter()
                .map(|iv| f32::from(u8::from(iv.z_reset.contains(&u))))
                .collect();
            if repaired.contains(&1.0) && calls_normal(sample, norm, cbn, &invoked) {
                let own = mask(repaired);
                let normal: Vec<f32> = cbn.units[u]
                    .members
                    .iter()
                    .flat_map(|m| norm.normal(&format!("ys:{m}"), Y_DIM))
                    .collect();
                let floor = Tensor::from_slice(&normal)
                    .reshape([1, normal.len() as i64])
                    .to_device(device)
                    .minimum(&kept);
                let dropped = cf.minimum(&kept).maximum(&floor);
                ys_cf.push(&own * dropped + (1.0 - &own) * kept);
            } else {
                ys_cf.push(kept);
            }
        }
        let per_unit: Vec<Vec<Vec<f32>>> = ys_cf.iter().map(rows).collect();
        (0..b)
            .map(|s| per_unit.iter().map(|u| u[s].clone()).collect())
            .collect()
    })
}

/// The entry point a diagnosis is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub entry: String,
    pub quantile: f64,
    pub slo_ms: f64,
    pub observed_ms: f64,
    unit: usize,
    col: usize,
    std: f32,
}

impl Target {
    /// The worst violated verdict whose entry service the model knows.
    pub fn of(model: &SageModel, qos: &[QosVerdict]) -> Option<Target> {
        qos.iter()
            .filter(|q| q.violated)
            .filter_map(|q| {
                let service = q.entry.split(' ').next().unwrap_or(&q.entry);
                let unit = model.layout.cbn.unit_of(service)?;
                let member = model.layout.cbn.units[unit]
                    .members
                    .iter()
                    .position(|m| m == service)?;
                let qi = quantile_index(q.quantile);
                Some(Target {
                    entry: q.entry.clone(),
                    quantile: q.quantile,
                    slo_ms: q.slo_ms,
                    observed_ms: q.measured_ms,
                    unit,
                    col: member * Y_DIM + qi,
                    std: model.layout.norm.std_of(&format!("ys:{service}"), qi),
                })
            })
            .max_by(|a, b| (a.observed_ms / a.slo_ms).total_cmp(&(b.observed_ms / b.slo_ms)))
    }

    /// The counterfactual end-to-end latency, ms.
    fn latency(&self, sample: &Sample, ys_cf: &[Vec<f32>]) -> f64 {
        let obs = sample.ys[self.unit].get(self.col).copied().unwrap_or(0.0);
        let cf = ys_cf[self.unit].get(self.col).copied().unwrap_or(obs);
        let delta = f64::from((cf - obs) * self.std);
        ((self.observed_ms + 1.0) * delta.exp() - 1.0).max(0.0)
    }
}

/// What the counterfactuals say about one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    pub target: Target,
    /// Per service (meta-node members share their unit's value): counterfactual end-to-end
    /// latency when it alone is repaired, best first.
    pub ranked: Vec<(String, f64)>,
    /// The greedy set (services in the order added) and its counterfactual latency; one
    /// service when that alone restores QoS.
    pub set: Vec<String>,
    pub set_ms: f64,
    /// Per resource of the top culprit, its counterfactual latency, best first.
    pub resources: Vec<(Resource, f64)>,
    /// The top single repair when the culprit is a callee it queues behind
    /// ([`queued_behind`]); the culprit is then `ranked[0]`.
    pub queued_caller: Option<String>,
}

/// Largest greedy set tried.
const MAX_SET: usize = 3;

/// Share of the excess left after a caller's repair that one of its callees must close,
/// repaired with it, for the callee to be named first (see [`queued_behind`]).
const QUEUE_GAIN: f64 = 0.2;

/// The member of the greedy set that the top repair's delay queues behind, if any: walking
/// the set in the order added, a member that is a (transitive) callee of the culprit so far
/// and closes at least [`QUEUE_GAIN`] of the excess the repairs before it left becomes the
/// culprit (so a queue that spans several callers ends at the deepest callee behind it).
///
/// Why: a thread is held for the whole of a call, so a slow callee fills its callers'
/// pools and their requests wait in their queues. That wait is part of the caller's
/// server-side latency but not of its calls' client-side latency, so abduction puts it in
/// the caller's latent, and the counterfactual keeps it when only the callee is repaired:
/// the caller's own repair then looks best (without this rule a fanout root is named for
/// its leaves' faults from an episode's second window on), though only the callee's
/// repair, with the queue it built up, restores QoS. A caller at fault itself is restored
/// by its own repair and gains little from a callee's.
fn queued_behind(cbn: &Cbn, set: &[usize], steps_ms: &[f64], slo_ms: f64) -> Option<(usize, f64)> {
    let mut culprit: Option<(usize, f64)> = None;
    let mut below = *set.first()?;
    for k in 1..set.len() {
        let before = steps_ms[k - 1];
        if cbn.ancestors(set[k]).contains(&below)
            && before - steps_ms[k] >= QUEUE_GAIN * (before - slo_ms)
        {
            below = set[k];
            culprit = Some((set[k], steps_ms[k]));
        }
    }
    culprit
}

/// Diagnoses one violating window; `None` when no verdict is violated on a known entry.
pub fn diagnose(model: &SageModel, sample: &Sample, qos: &[QosVerdict]) -> Option<Diagnosis> {
    let target = Target::of(model, qos)?;
    let cbn = &model.layout.cbn;
    let n = cbn.units.len();
    let singles: Vec<Intervention> = (0..n).map(|u| Intervention::service(model, u)).collect();
    let ys = counterfactual_ys(model, sample, &singles);
    let mut by_unit: Vec<(usize, f64)> = ys
        .iter()
        .enumerate()
        .map(|(u, y)| (u, target.latency(sample, y)))
        .collect();
    by_unit.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let (top, top_ms) = *by_unit.first()?;
    // Greedy set: add the unit that lowers the latency most, until QoS is met.
    let mut set = vec![top];
    let mut set_ms = top_ms;
    // The set's counterfactual latency after each member was added.
    let mut steps_ms = vec![top_ms];
    let mut current = singles[top].clone();
    while set_ms > target.slo_ms && set.len() < MAX_SET {
        let rest: Vec<usize> = (0..n).filter(|u| !set.contains(u)).collect();
        if rest.is_empty() {
            break;
        }
        let trials: Vec<Intervention> = rest.iter().map(|u| current.union(&singles[*u])).collect();
        let ys = counterfactual_ys(model, sample, &trials);
        let Some((k, ms)) = ys
            .iter()
            .enumerate()
            .map(|(k, y)| (k, target.latency(sample, y)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
        else {
            break;
        };
        // Stop when the next tier helps by less than 2 % of the remaining excess.
        if set_ms - ms < 0.02 * (set_ms - target.slo_ms) {
            break;
        }
        set.push(rest[k]);
        set_ms = ms;
        steps_ms.push(ms);
        current = trials[k].clone();
    }
    // The culprit: the top repair, or the callee it queues behind — named with the
    // latency of repairing it together with the callers that queue behind it.
    let behind = queued_behind(cbn, &set, &steps_ms, target.slo_ms);
    let culprit = behind.map_or(top, |b| b.0);
    let x_resources = &model.layout.x_resources;
    let resource_trials: Vec<Intervention> = x_resources
        .iter()
        .map(|r| Intervention::resource(model, culprit, *r))
        .collect();
    let ys = counterfactual_ys(model, sample, &resource_trials);
    let mut resources: Vec<(Resource, f64)> = x_resources
        .iter()
        .zip(&ys)
        .map(|(r, y)| (*r, target.latency(sample, y)))
        .collect();
    resources.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let names = |u: usize| cbn.units[u].members.clone();
    let mut ranked: Vec<(String, f64)> = Vec::new();
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    // The callee queued behind first, then the greedy set (in the order added), then the
    // rest by their single repair.
    for u in behind
        .map(|b| b.0)
        .into_iter()
        .chain(set.iter().copied())
        .chain(by_unit.iter().map(|x| x.0))
    {
        if !seen.insert(u) {
            continue;
        }
        let ms = match behind {
            Some((b, ms)) if b == u => ms,
            _ => by_unit
                .iter()
                .find(|x| x.0 == u)
                .map_or(target.observed_ms, |x| x.1),
        };
        for m in names(u) {
            ranked.push((m, ms));
        }
    }
    Some(Diagnosis {
        target,
        ranked,
        set: set.iter().flat_map(|u| names(*u)).collect(),
        set_ms,
        resources,
        queued_caller: behind.map(|_| cbn.units[top].name.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `front → mid → back`, plus `side` called by `front`; units back end first.
    fn cbn() -> (Cbn, impl Fn(&str) -> usize) {
        let edges = [("front", "mid"), ("mid", "back"), ("front", "side")]
            .map(|(a, b)| (a.to_string(), b.to_string()));
        let order = ["back", "side", "mid", "front"].map(String::from);
        let cbn = Cbn::build(&edges, &order);
        let units = cbn.clone();
        (cbn, move |s: &str| units.unit_of(s).unwrap_or(usize::MAX))
    }

    #[test]
    fn a_queue_across_callers_ends_at_the_deepest_callee_behind_it() {
        let (cbn, u) = cbn();
        let set = [u("front"), u("mid"), u("back")];
        assert_eq!(
            queued_behind(&cbn, &set, &[700.0, 450.0, 200.0], 35.0),
            Some((u("back"), 200.0))
        );
        // The walk stops where a member isn't below the culprit so far.
        let set = [u("mid"), u("side")];
        assert_eq!(queued_behind(&cbn, &set, &[700.0, 30.0], 35.0), None);
    }

    #[test]
    fn a_caller_restored_by_its_own_repair_stays_the_culprit() {
        let (cbn, u) = cbn();
        // Its repair alone restores QoS: no set.
        assert_eq!(queued_behind(&cbn, &[u("front")], &[30.0], 35.0), None);
        // A callee that closes little of what is left doesn't take the blame.
        let set = [u("front"), u("mid")];
        assert_eq!(queued_behind(&cbn, &set, &[100.0, 95.0], 35.0), None);
        assert_eq!(
            queued_behind(&cbn, &set, &[100.0, 80.0], 35.0),
            Some((u("mid"), 80.0))
        );
    }
}

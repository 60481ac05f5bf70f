//! Topology change: rebuild a Seer model for a new service set, reusing weights by service
//! identity.
//!
//! In: a model and the new service order. Out: a model for the new order whose
//! service-independent weights (convolutions, LSTM recurrence, violation head) are copied,
//! whose per-service weights (LSTM input columns, culprit head rows) are copied for the
//! services both sets share, and are zero for new services (they start out ignored, and
//! fine-tuning learns them). State: none.

use tch::Tensor;

use crate::seer::SeerModel;
use crate::seer::layout::Layout;

/// Share of the new service set that is new (or removed from the old), in 0..=1.
pub fn change_fraction(old: &[String], new: &[String]) -> f64 {
    let added = new.iter().filter(|s| !old.contains(s)).count();
    let removed = old.iter().filter(|s| !new.contains(s)).count();
    (added + removed) as f64 / new.len().max(old.len()).max(1) as f64
}

/// A model for `services` (back end first) with weights carried over from `old`.
pub fn remap(old: &SeerModel, services: &[String]) -> SeerModel {
    let layout = Layout {
        services: services.to_vec(),
        version: old.layout.version,
        ..old.layout.clone()
    };
    let new = SeerModel::new(layout, old.device());
    // new index -> old index, for the shared services.
    let pairs: Vec<(i64, i64)> = services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let j = old.layout.services.iter().position(|o| o == s)?;
            Some((i as i64, j as i64))
        })
        .collect();
    let c2 = old.layout.hyper.conv2;
    let (s_old, s_new) = (old.layout.services.len() as i64, services.len() as i64);
    let old_vars = old.vs.variables();
    let mut new_vars = new.vs.variables();
    tch::no_grad(|| {
        for (name, dst) in new_vars.iter_mut() {
            let Some(src) = old_vars.get(name) else {
                continue;
            };
            // Each member of an ensemble lays out its per-service weights alike.
            let local = crate::seer::net::member_local_name(name);
            if local.starts_with("lstm.weight_ih_l0") {
                // [4·hidden, conv2·S]: columns are channel-major, service-minor.
                let rows = src.size()[0];
                let src = src.reshape([rows, c2, s_old]);
                let out = Tensor::zeros([rows, c2, s_new], (src.kind(), src.device()));
                for (i, j) in &pairs {
                    out.narrow(2, *i, 1).copy_(&src.narrow(2, *j, 1));
                }
                dst.copy_(&out.reshape([rows, c2 * s_new]));
            } else if local == "head.weight" || local == "head.bias" {
                // Row 0 is the violation logit; rows 1.. are per service.
                let out = dst.zeros_like();
                out.narrow(0, 0, 1).copy_(&src.narrow(0, 0, 1));
                for (i, j) in &pairs {
                    out.narrow(0, 1 + i, 1).copy_(&src.narrow(0, 1 + j, 1));
                }
                if local == "head.bias" {
                    // New services start with a very low culprit score.
                    for i in 0..s_new {
                        if !pairs.iter().any(|(n, _)| *n == i) {
                            let _ = out.narrow(0, 1 + i, 1).fill_(-10.0);
                        }
                    }
                }
                dst.copy_(&out);
            } else if src.size() == dst.size() {
                dst.copy_(src);
            }
        }
    });
    new
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;
    use crate::seer::layout::SeerHyper;

    /// Every member of an ensemble follows its services to their new positions.
    #[test]
    fn an_ensemble_remapped_to_a_reordered_service_set_predicts_the_same() {
        tch::manual_seed(9);
        let services: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let layout = Layout {
            model: "seer".into(),
            version: 1,
            services: services.clone(),
            features: vec!["f0".into(), "f1".into()],
            hyper: SeerHyper {
                members: 2,
                // Kernel 1: no convolution across neighbours, so the order is immaterial.
                kernel: 1,
                ..SeerHyper::default()
            },
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
            threshold: 0.5,
            window_ms: 1000,
            horizon_ms: 1000,
            provenance: String::new(),
        };
        let old = SeerModel::new(layout, Device::Cpu);
        let reversed: Vec<String> = services.iter().rev().cloned().collect();
        let new = remap(&old, &reversed);
        let h = old.layout.hyper.history;
        let values: Vec<f32> = (0..h * 3 * 2).map(|i| (i as f32 * 0.37).sin()).collect();
        // The same windows with the services in reversed order.
        let mut flipped = Vec::with_capacity(values.len());
        for window in values.chunks(3 * 2) {
            for s in (0..3).rev() {
                flipped.extend_from_slice(&window[s * 2..(s + 1) * 2]);
            }
        }
        let (v_old, c_old) = old.predict(&values, 1).remove(0);
        let (v_new, c_new) = new.predict(&flipped, 1).remove(0);
        assert!((v_old - v_new).abs() < 1e-5, "{v_old} vs {v_new}");
        for (i, p) in c_old.iter().enumerate() {
            assert!(
                (p - c_new[2 - i]).abs() < 1e-5,
                "service {i}: {p} vs {}",
                c_new[2 - i]
            );
        }
    }
}

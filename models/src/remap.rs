//! Topology change: rebuild a Seer model for a new service set, reusing weights by service
//! identity.
//!
//! In: a model and the new service order. Out: a model for the new order whose
//! service-independent weights (convolutions, LSTM recurrence, violation head) are copied,
//! whose per-service weights (LSTM input columns, culprit head rows) are copied for the
//! services both sets share, and are zero for new services (they start out ignored, and
//! fine-tuning learns them). State: none.

use tch::{Tensor, nn};

use crate::checkpoint::SeerModel;
use crate::layout::Layout;

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
            if name.starts_with("lstm.weight_ih_l0") {
                // [4·hidden, conv2·S]: columns are channel-major, service-minor.
                let rows = src.size()[0];
                let src = src.reshape([rows, c2, s_old]);
                let out = Tensor::zeros([rows, c2, s_new], (src.kind(), src.device()));
                for (i, j) in &pairs {
                    out.narrow(2, *i, 1).copy_(&src.narrow(2, *j, 1));
                }
                dst.copy_(&out.reshape([rows, c2 * s_new]));
            } else if name == "head.weight" || name == "head.bias" {
                // Row 0 is the violation logit; rows 1.. are per service.
                let out = dst.zeros_like();
                out.narrow(0, 0, 1).copy_(&src.narrow(0, 0, 1));
                for (i, j) in &pairs {
                    out.narrow(0, 1 + i, 1).copy_(&src.narrow(0, 1 + j, 1));
                }
                if name == "head.bias" {
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

/// Copies every variable of `src` into `dst` (same layout).
pub fn copy_weights(dst: &mut nn::VarStore, src: &nn::VarStore) -> Result<(), tch::TchError> {
    dst.copy(src)
}

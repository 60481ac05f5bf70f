//! Sage bench: time per diagnosis (the service-level counterfactuals for every unit, the
//! greedy set, the resource-level counterfactuals of the culprit) with the shipped
//! checkpoints, on CPU.
//!
//! `cargo bench --bench sage` (set `OMP_NUM_THREADS` to pin libtorch's threads). For every
//! `sage-*` checkpoint in `models/checkpoints`: a violating window made from the model's
//! normal values with the front end's latency raised and one back-end tier's metrics
//! disturbed; 20 warm-up diagnoses, then the median and p99 of 200.

mod common;

use common::pct;
use std::path::Path;
use std::time::Instant;

use augur_models::sage::counterfactual::diagnose;
use augur_models::sage::features::{Sample, X_DIM, XNET_DIM, Y_DIM};
use augur_models::sage::model::{SageModel, available};
use augur_operators::QosVerdict;
use tch::Device;

fn main() {
    let threads = common::libtorch_threads();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/checkpoints");
    println!(
        "sage bench: CPU, {threads} libtorch thread(s), checkpoints in {}",
        dir.display()
    );
    for (name, version, _) in available(&dir) {
        let Ok(model) = SageModel::load(&dir, &name, version, Device::Cpu) else {
            println!("{name}: cannot load");
            continue;
        };
        let cbn = &model.layout.cbn;
        let norm = &model.layout.norm;
        let unit_normal = |prefix: &str, dim: usize| -> Vec<Vec<f32>> {
            cbn.units
                .iter()
                .map(|u| {
                    u.members
                        .iter()
                        .flat_map(|m| norm.normal(&format!("{prefix}:{m}"), dim))
                        .collect()
                })
                .collect()
        };
        let rpc_normal = |prefix: &str, dim: usize| -> Vec<Vec<f32>> {
            cbn.rpcs
                .iter()
                .map(|r| norm.normal(&format!("{prefix}:{}", r.key()), dim))
                .collect()
        };
        let mut sample = Sample {
            x: unit_normal("x", X_DIM),
            ys: unit_normal("ys", Y_DIM),
            yc: rpc_normal("yc", Y_DIM),
            ynet: rpc_normal("ynet", Y_DIM),
            xnet: rpc_normal("xnet", XNET_DIM),
            ynet_wire: rpc_normal("ynet", Y_DIM),
        };
        // Disturb the first (back-end) unit; raise the front end's latency.
        for v in sample.x[0].iter_mut().take(4) {
            *v += 3.0;
        }
        let front = cbn.units.len() - 1;
        for v in sample.ys[front].iter_mut() {
            *v += 2.0;
        }
        let entry = cbn.units[front].members[0].clone();
        let qos = vec![QosVerdict {
            window_end: 1000,
            entry,
            requests: 100,
            errors: 0,
            latency_ms: [100.0; 5],
            quantile: 0.99,
            slo_ms: 50.0,
            measured_ms: 100.0,
            violated: true,
        }];
        for _ in 0..20 {
            let _ = diagnose(&model, &sample, &qos);
        }
        let mut ms: Vec<f64> = (0..200)
            .map(|_| {
                let t = Instant::now();
                let _ = diagnose(&model, &sample, &qos);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        println!(
            "{name}-v{version}: {} services ({} units, {} RPCs, {} parameters): diagnosis p50 {:.1} ms, p99 {:.1} ms",
            model.layout.services().len(),
            cbn.units.len(),
            cbn.rpcs.len(),
            model.parameters(),
            pct(&mut ms, 0.5),
            pct(&mut ms, 0.99)
        );
    }
}

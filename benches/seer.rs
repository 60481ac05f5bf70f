//! Seer model bench: inference latency per window (batch 1, 30 and 300 services, CPU) and
//! training time, with the default layer sizes, for one network and a 3-member ensemble.
//!
//! `cargo bench --bench seer` (set `OMP_NUM_THREADS` to pin libtorch's threads). Prints the
//! median and p99 of per-window inference over 500 calls after 50 warm-up calls, and the
//! time of 200 Adam steps at batch 32 on random data.

mod common;

use common::pct;
use std::time::Instant;

use augur_models::seer::SeerModel;
use augur_models::seer::dataset::{Dataset, Row};
use augur_models::seer::features::N_FEATURES;
use augur_models::seer::layout::{Layout, SeerHyper};
use augur_models::seer::train::{TrainSettings, fit};
use tch::Device;

fn layout(services: usize, members: i64) -> Layout {
    Layout {
        model: "seer".into(),
        version: 1,
        services: (0..services).map(|i| format!("s{i}")).collect(),
        features: (0..N_FEATURES).map(|i| format!("f{i}")).collect(),
        hyper: SeerHyper {
            members,
            ..SeerHyper::default()
        },
        mean: vec![0.0; N_FEATURES],
        std: vec![1.0; N_FEATURES],
        threshold: 0.5,
        window_ms: 1000,
        horizon_ms: 1000,
        provenance: String::new(),
    }
}

fn main() {
    let threads = common::libtorch_threads();
    tch::manual_seed(1);
    println!(
        "seer bench: CPU, {threads} libtorch thread(s), default layer sizes {:?}",
        SeerHyper::default()
    );
    for (members, services) in [(1, 30usize), (1, 300), (3, 30), (3, 300)] {
        let model = SeerModel::new(layout(services, members), Device::Cpu);
        let h = model.layout.hyper.history;
        let values: Vec<f32> = (0..h * services * N_FEATURES)
            .map(|i| ((i * 7919) % 100) as f32 / 100.0)
            .collect();
        for _ in 0..50 {
            let _ = model.predict(&values, 1);
        }
        let mut ms: Vec<f64> = (0..500)
            .map(|_| {
                let t = Instant::now();
                let _ = model.predict(&values, 1);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let params: i64 = model
            .vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        println!(
            "inference, batch 1, {services} services, {members} member(s) ({params} parameters): p50 {:.3} ms, p99 {:.3} ms",
            pct(&mut ms, 0.5),
            pct(&mut ms, 0.99)
        );
        // Training: 200 steps at batch 32 = one epoch over 6400 + H windows.
        let rows: Vec<Row> = (0..6400 + h)
            .map(|i| Row {
                window_end: (i as u64 + 1) * 1000,
                violated: false,
                positive: i % 10 == 0,
                culprit: (i % 10 == 0).then_some(i % services),
                x: (0..services * N_FEATURES)
                    .map(|j| (((i * 31 + j * 17) % 97) as f32) / 97.0)
                    .collect(),
            })
            .collect();
        let ds = Dataset {
            services: model.layout.services.clone(),
            features: model.layout.features.clone(),
            window_ms: 1000,
            horizon_ms: 1000,
            rows,
        };
        let mut model = model;
        let settings = TrainSettings {
            epochs: 1,
            val_fraction: 0.0,
            ..TrainSettings::default()
        };
        let t = Instant::now();
        fit(&mut model, std::slice::from_ref(&ds), &settings, |_| {});
        println!(
            "training, {services} services, {members} member(s): 200 Adam steps at batch 32 (H = {h}) in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
}

//! Sage retraining after a topology change: partial + incremental vs from scratch.
//!
//! `cargo bench --bench sage_retrain` (CPU, `OMP_NUM_THREADS` libtorch threads, default 1).
//! A 4-tier synthetic chain `s0 → s1 → s2 → s3` (see `augur_models::sage::synthetic`:
//! unlabelled windows, one in four with a random tier slowed) is trained from scratch;
//! then three changes: a service `x` added between `s1` and `s2`; `s3` removed; `s2`
//! replaced by a version 5× slower. For each, on 300 unlabelled windows of the new
//! topology: the partial + incremental retraining (only the changed units and their
//! ancestors train, starting from the old weights) and a model from scratch, at the same
//! epochs; printed: seconds, units trained, and root-cause AC@1 on 4 held-out windows per
//! tier with that tier slowed 4× (what the model is never told).

mod common;

use std::time::Instant;

use augur_models::sage::detector::Sage;
use augur_models::sage::gvae::GvaeHyper;
use augur_models::sage::model::SageModel;
use augur_models::sage::retrain::retrain_partial;
use augur_models::sage::synthetic::{custom_chain_window, custom_chain_windows};
use augur_models::sage::train::{SageTrainSettings, train};
use augur_operators::{Detector, WindowSnapshot};
use tch::Device;

/// One topology change: name, services after it, their relative service times, changed services.
type ChangeCase = (&'static str, Vec<String>, Vec<f64>, Vec<String>);

fn names(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

/// How much a tier is slowed in the probe windows: enough that one slowed tier breaks the
/// SLO (1.6 × the normal end-to-end p99) in every chain here. At 4× a 5-tier chain never
/// violates, so its probe would have no cases.
const PROBE_SLOWDOWN: f64 = 8.0;

/// AC@1 over windows with each tier slowed [`PROBE_SLOWDOWN`]×, and the number of those
/// windows that violated QoS (the cases); gives the model back.
fn accuracy(model: SageModel, names: &[String], own: &[f64]) -> (f64, usize, SageModel) {
    let mut sage = Sage::with_model(model);
    // One diagnosis per probe window: back to back, they would make one episode.
    sage.set_episode_windows(1);
    let (mut hit, mut n) = (0, 0);
    for (tier, name) in names.iter().enumerate() {
        for k in 0..4u64 {
            let w = custom_chain_window(
                names,
                own,
                10_000_000 + k * 1000,
                Some(tier),
                PROBE_SLOWDOWN,
                9000 + k * 31 + tier as u64,
            );
            if !w.violated() {
                continue;
            }
            n += 1;
            let top = sage
                .observe(&w)
                .first()
                .and_then(|d| d.culprits.first())
                .map(|c| c.service.clone());
            if top.as_ref() == Some(name) {
                hit += 1;
            }
        }
    }
    let Some(model) = sage.into_model() else {
        panic!("the detector holds its model");
    };
    assert!(n > 0, "no probe window violates QoS: raise PROBE_SLOWDOWN");
    (hit as f64 / n as f64, n, model)
}

fn main() {
    let threads = common::libtorch_threads();
    let epochs: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(25);
    let settings = SageTrainSettings {
        epochs,
        ..SageTrainSettings::default()
    };
    let base_names = names(&["s0", "s1", "s2", "s3"]);
    let base_own = vec![1.0; 4];
    let t = Instant::now();
    let from_scratch = |windows: &[WindowSnapshot]| {
        train(
            windows,
            "sage-retrain",
            GvaeHyper::default(),
            &settings,
            "bench".into(),
            Device::Cpu,
            |_, _| {},
        )
        .expect("enough windows")
    };
    let base = from_scratch(&custom_chain_windows(&base_names, &base_own, 400, 4, 1));
    let base_s = t.elapsed().as_secs_f64();
    let (base_ac, base_cases, base) = accuracy(base, &base_names, &base_own);
    println!("sage retrain bench: CPU, {threads} thread(s), {epochs} epochs, 4-tier chain");
    println!("base model from scratch: {base_s:.2} s, AC@1 {base_ac:.2} ({base_cases} cases)");
    println!(
        "| change | cases | before: AC@1 | partial: units trained | partial: s | partial: AC@1 | scratch: s | scratch: AC@1 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // (change, services after it, their own service times, services whose behaviour changed)
    let cases: Vec<ChangeCase> = vec![
        (
            "add x between s1 and s2",
            names(&["s0", "s1", "x", "s2", "s3"]),
            vec![1.0; 5],
            vec![],
        ),
        (
            "remove s3",
            names(&["s0", "s1", "s2"]),
            vec![1.0; 3],
            vec![],
        ),
        (
            "s2 5x slower (new version)",
            base_names.clone(),
            vec![1.0, 1.0, 5.0, 1.0],
            names(&["s2"]),
        ),
    ];
    let mut base = Some(base);
    for (label, new_names, own, changed) in cases {
        let Some(old) = base.take() else { break };
        let windows = custom_chain_windows(&new_names, &own, 300, 4, 2);
        // The old model on the new topology, before any retraining.
        let (before, cases, old) = accuracy(old, &new_names, &own);
        let (partial, report) = retrain_partial(&old, &windows, &changed, &settings);
        let (partial_ac, _, _) = accuracy(partial, &new_names, &own);
        let t = Instant::now();
        let scratch = from_scratch(&windows);
        let scratch_s = t.elapsed().as_secs_f64();
        let (scratch_ac, _, _) = accuracy(scratch, &new_names, &own);
        println!(
            "| {label} | {cases} | {before:.2} | {}/{} ({}) | {:.2} | {partial_ac:.2} | {scratch_s:.2} | {scratch_ac:.2} |",
            report.units_trained.len(),
            report.units_total,
            report.units_trained.join(", "),
            report.seconds,
        );
        base = Some(old);
    }
}

//! Known-answer tests of the whole Sage model: train on unlabelled synthetic chain
//! windows, then diagnose windows where a known tier is slowed.
#![allow(clippy::unwrap_used)]

use augur_operators::{AlertKind, Detector, Resource};
use tch::Device;

use super::detector::Sage;
use super::gvae::GvaeHyper;
use super::model::SageModel;
use super::synthetic::{chain_window, chain_windows};
use super::train::{SageTrainSettings, train};

const N: usize = 3;

fn trained() -> SageModel {
    tch::set_num_threads(1);
    let windows = chain_windows(N, 400, 4, 7);
    let settings = SageTrainSettings {
        epochs: 25,
        ..SageTrainSettings::default()
    };
    train(
        &windows,
        "sage-test",
        GvaeHyper::default(),
        &settings,
        "test".into(),
        Device::Cpu,
        |_, _| {},
    )
}

#[test]
fn counterfactual_ranks_the_slowed_tier_first_and_names_cpu() {
    let _torch = crate::torch_test_lock();
    let model = trained();
    let mut sage = Sage::with_model(model);
    let mut hits = 0;
    let mut cpu = 0;
    let mut cases = 0;
    for slow in 0..N {
        for k in 0..4u64 {
            let w = chain_window(
                N,
                1_000_000 + k * 1000,
                Some(slow),
                4.0,
                1000 + k + 10 * slow as u64,
            );
            assert!(w.violated(), "a 4x slower tier must break the SLO");
            let detections = sage.observe(&w);
            assert_eq!(detections.len(), 1);
            let d = &detections[0];
            assert_eq!(d.kind, AlertKind::RootCause);
            cases += 1;
            if d.culprits[0].service == format!("s{slow}") {
                hits += 1;
                if d.culprits[0].resource == Some(Resource::Cpu) {
                    cpu += 1;
                }
            } else {
                eprintln!("slow s{slow}: {}", d.summary);
            }
        }
    }
    assert_eq!(hits, cases, "AC@1 {hits}/{cases}");
    assert!(cpu * 4 >= cases * 3, "resource cpu {cpu}/{cases}");
    // A window that meets QoS costs nothing and says nothing.
    assert!(
        sage.observe(&chain_window(N, 2_000_000, None, 1.0, 5))
            .is_empty()
    );
}

#[test]
fn save_load_round_trip_gives_identical_diagnoses() {
    let _torch = crate::torch_test_lock();
    let model = trained();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = SageModel::load(dir.path(), "sage-test", 1, Device::Cpu).unwrap();
    assert_eq!(loaded.layout, model.layout);
    let mut a = Sage::with_model(model);
    let mut b = Sage::with_model(loaded);
    for slow in 0..N {
        let w = chain_window(N, 5000, Some(slow), 3.5, 77 + slow as u64);
        assert_eq!(a.observe(&w), b.observe(&w));
    }
}

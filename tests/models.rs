//! Real libtorch models on data where the answer is known: the Seer network learns a
//! synthetic rule, checkpoints round-trip exactly, and a topology change keeps the
//! detector serving with a model rebuilt for the new service set.

use augur_models::checkpoint::latest_version;
use augur_models::seer::SeerModel;
use augur_models::seer::dataset::{Dataset, Row};
use augur_models::seer::features::{FEATURES, N_FEATURES};
use augur_models::seer::layout::{Layout, SeerHyper};
use augur_models::seer::train::{TrainSettings, train};
use augur_models::seer::{Seer, SeerConfig};
use augur_operators::{Detector, QosVerdict, ServiceFeatures, WindowSnapshot};
use tch::Device;

/// A small deterministic generator (xorshift), so the data needs no extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f32 / 10_000.0
    }
}

/// libtorch's random generator is global: tests that seed it and train run one at a time,
/// so each sees the same random numbers on every run.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TORCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const SERVICES: usize = 6;
const Q: f32 = 2.0;

/// The rule: when service k's queue (feature 0) exceeds `Q` in window t, a violation
/// follows, caused by k. Episodes last 3 windows; queues are noise otherwise, and latency
/// features are noise everywhere (distractors).
fn synthetic(seed: u64, windows: usize) -> Dataset {
    let mut rng = Rng(seed);
    let mut rows = Vec::new();
    let mut episode: Option<(usize, usize)> = None; // (service, windows left)
    for t in 0..windows {
        if episode.is_none() && rng.next() < 0.08 {
            episode = Some(((rng.next() * SERVICES as f32) as usize % SERVICES, 3));
        }
        let mut x = vec![0.0f32; SERVICES * N_FEATURES];
        for s in 0..SERVICES {
            for f in 0..N_FEATURES {
                x[s * N_FEATURES + f] = rng.next() * 1.5;
            }
        }
        let mut culprit = None;
        if let Some((k, left)) = episode {
            x[k * N_FEATURES] = Q + 0.5 + rng.next() * 2.0;
            culprit = Some(k);
            episode = (left > 1).then_some((k, left - 1));
        }
        rows.push(Row {
            window_end: (t as u64 + 1) * 1000,
            violated: culprit.is_some(),
            positive: culprit.is_some(),
            culprit,
            x,
        });
    }
    Dataset {
        services: (0..SERVICES).map(|i| format!("svc{i}")).collect(),
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        window_ms: 1000,
        horizon_ms: 1000,
        rows,
    }
}

fn layout(services: Vec<String>) -> Layout {
    Layout {
        model: "seer".into(),
        version: 1,
        services,
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        hyper: SeerHyper::default(),
        mean: Vec::new(),
        std: Vec::new(),
        threshold: 0.5,
        window_ms: 1000,
        horizon_ms: 1000,
        provenance: "test".into(),
    }
}

fn small() -> TrainSettings {
    TrainSettings {
        epochs: 16,
        hyper: SeerHyper {
            history: 3,
            hidden: 32,
            // The rule is on absolute queue depth; the change input is for precursors.
            delta: false,
            ..SeerHyper::default()
        },
        ..TrainSettings::default()
    }
}

/// Histories of the test set as standardized model input, with their labels.
fn held_out(model: &SeerModel, ds: &Dataset) -> (Vec<f32>, Vec<Option<usize>>) {
    let h = model.layout.hyper.history;
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for end in h - 1..ds.rows.len() {
        for r in &ds.rows[end + 1 - h..=end] {
            let mut x = r.x.clone();
            model.standardize(&mut x);
            values.extend_from_slice(&x);
        }
        labels.push(ds.rows[end].culprit);
    }
    (values, labels)
}

#[test]
fn seer_learns_the_queue_threshold_rule() {
    let _torch = one_at_a_time();
    tch::set_num_threads(1);
    // 3000 windows (~70 episodes): with culprits scored from each service's own inputs,
    // the violation head alone learns the rule through the convolutions and needs more
    // than the 1500 windows that sufficed when the culprit head shared them (recall 0.86).
    let data = synthetic(7, 3000);
    let model = train(
        std::slice::from_ref(&data),
        layout(data.services.clone()),
        &small(),
        Device::Cpu,
        |_| {},
    );
    let test = synthetic(99, 600);
    let (values, labels) = held_out(&model, &test);
    let preds = model.predict(&values, labels.len());
    let (mut tp, mut pos, mut fp, mut neg, mut right) = (0, 0, 0, 0, 0);
    for ((p, culprits), label) in preds.iter().zip(&labels) {
        let fired = *p >= model.layout.threshold;
        match label {
            Some(k) => {
                pos += 1;
                tp += usize::from(fired);
                let top = culprits
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i);
                right += usize::from(top == Some(*k));
            }
            None => {
                neg += 1;
                fp += usize::from(fired);
            }
        }
    }
    let recall = tp as f64 / pos as f64;
    let fpr = fp as f64 / neg as f64;
    let ac1 = right as f64 / pos as f64;
    assert!(pos > 50, "too few positives: {pos}");
    assert!(recall >= 0.95, "recall {recall}");
    assert!(fpr <= 0.05, "FPR {fpr}");
    assert!(ac1 >= 0.95, "culprit AC@1 {ac1}");
}

#[test]
fn checkpoint_save_load_gives_identical_outputs() {
    let _torch = one_at_a_time();
    tch::set_num_threads(1);
    let data = synthetic(3, 200);
    let mut settings = small();
    settings.epochs = 1;
    let model = train(
        std::slice::from_ref(&data),
        layout(data.services.clone()),
        &settings,
        Device::Cpu,
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    assert_eq!(latest_version(dir.path(), "seer"), Some(1));
    let back = SeerModel::load_latest(dir.path(), "seer", Device::Cpu).unwrap();
    assert_eq!(back.layout, model.layout);
    let (values, labels) = held_out(&model, &data);
    let a = model.predict(&values, labels.len());
    let b = back.predict(&values, labels.len());
    assert_eq!(a, b, "outputs differ after save → load");
}

fn snapshot(t: u64, services: &[&str], order: &[&str], violated: bool) -> WindowSnapshot {
    WindowSnapshot {
        window_end: t * 1000,
        window_ms: 1000,
        services: services
            .iter()
            .map(|s| ServiceFeatures {
                window_end: t * 1000,
                service: s.to_string(),
                requests: 100,
                latency_ms: [5.0, 6.0, 8.0, 9.0, 12.0],
                outstanding: if violated && *s == "svc0" { 30.0 } else { 1.0 },
                replicas: 1,
                usage: [[0.1; 4]; 5],
                ..Default::default()
            })
            .collect(),
        qos: vec![QosVerdict {
            window_end: t * 1000,
            entry: "svc5".into(),
            requests: 100,
            errors: 0,
            latency_ms: [0.0; 5],
            quantile: 0.99,
            slo_ms: 100.0,
            measured_ms: if violated { 200.0 } else { 50.0 },
            violated,
        }],
        order: order.iter().map(|s| s.to_string()).collect(),
        topology_changed: false,
        logs: Vec::new(),
        edges: Vec::new(),
    }
}

#[test]
fn topology_change_keeps_serving_and_rebuilds_for_the_new_services() {
    let _torch = one_at_a_time();
    tch::set_num_threads(1);
    let data = synthetic(5, 300);
    let mut settings = small();
    settings.epochs = 2;
    let model = train(
        std::slice::from_ref(&data),
        layout(data.services.clone()),
        &settings,
        Device::Cpu,
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let config = SeerConfig {
        models_dir: dir.path().to_path_buf(),
        device: augur_models::device::DeviceChoice::Cpu,
        threshold: 1e-6, // fire on every window: we check that it serves
        check_every_windows: 5,
        recent_windows: 40,
        fine_tune_epochs: 1,
        // The change comes with 20 recent windows: fine-tune again 25 windows later.
        refit_after_windows: 25,
        ..SeerConfig::default()
    };
    let mut seer = Seer::new(config, 1000).unwrap();
    let old: Vec<&str> = vec!["svc0", "svc1", "svc2", "svc3", "svc4", "svc5"];
    let mut fired = 0;
    for t in 1..=20 {
        fired += usize::from(
            !seer
                .observe(&snapshot(t, &old, &old, t % 7 == 0))
                .is_empty(),
        );
    }
    assert!(
        fired >= 15,
        "served {fired} of 20 windows before the change"
    );
    // A new back end appears (and svc4 disappears).
    let new: Vec<&str> = vec!["cache", "svc0", "svc1", "svc2", "svc3", "svc5"];
    for t in 21..=50 {
        let dets = seer.observe(&snapshot(t, &new, &new, t % 7 == 0));
        assert_eq!(dets.len(), 1, "window {t}: the detector stopped serving");
        // The second fine-tune is asked for once 25 windows of the new topology are in.
        assert_eq!(seer.refits(), u64::from(t >= 46), "window {t}");
    }
    // Every service of the rebuilt model can be ranked, including the new one.
    let ranked: Vec<String> = seer
        .observe(&snapshot(51, &new, &new, true))
        .into_iter()
        .flat_map(|d| d.culprits)
        .map(|c| c.service)
        .collect();
    assert_eq!(ranked.len(), 5);

    // Hot swap: a newer version in the directory is picked up without a restart.
    let mut newer = SeerModel::load_latest(dir.path(), "seer", Device::Cpu).unwrap();
    newer.layout.version = 2;
    newer.save(dir.path()).unwrap();
    let mut version = String::new();
    for t in 52..=90 {
        seer.observe(&snapshot(t, &new, &new, false));
        version = seer.version().to_string();
        if version == "2" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(version, "2", "did not hot-swap to v2");
}

//! Known-answer tests of the whole Sage model: train on unlabelled synthetic chain
//! windows, then diagnose windows where a known tier is slowed.
#![allow(clippy::unwrap_used)]

use augur_operators::{AlertKind, Detector, Resource};
use tch::Device;

use super::detector::Sage;
use super::gvae::GvaeHyper;
use super::model::SageModel;
use super::synthetic::{
    self, chain_window, chain_window_with_slow_channel, chain_windows, parallel_window,
    parallel_windows,
};
use super::train::{SageTrainSettings, train};

const N: usize = 3;

fn trained() -> SageModel {
    trained_on(&chain_windows(N, 400, 4, 7))
}

/// A model trained for 25 epochs on `windows`, unlabelled.
fn trained_on(windows: &[augur_operators::WindowSnapshot]) -> SageModel {
    trained_for(windows, 25)
}

/// A model trained for `epochs` on `windows`, unlabelled.
fn trained_for(windows: &[augur_operators::WindowSnapshot], epochs: usize) -> SageModel {
    tch::set_num_threads(1);
    let settings = SageTrainSettings {
        epochs,
        ..SageTrainSettings::default()
    };
    train(
        windows,
        "sage-test",
        GvaeHyper::default(),
        &settings,
        "test".into(),
        Device::Cpu,
        |_, _| {},
    )
    .unwrap()
}

#[test]
fn counterfactual_ranks_the_slowed_tier_first_and_names_cpu() {
    let _torch = crate::torch_test_lock();
    let model = trained();
    let mut sage = Sage::with_model(model);
    // Per-window diagnoses: the windows below, back to back, would make one episode.
    sage.set_episode_windows(1);
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

#[test]
fn online_retraining_swaps_in_a_model_that_still_ranks_the_slowed_tier_first() {
    let _torch = crate::torch_test_lock();
    let mut sage = Sage::with_model(trained());
    sage.set_episode_windows(1);
    let before = sage.version().to_string();
    sage.set_online(super::online::OnlineConfig {
        every: 100,
        recent: 60,
        older: 60,
        epochs: 3,
    });
    // Unlabelled windows, a quarter with a slowed tier; the first retraining starts at
    // the 100th and works on the 60 latest plus 40 older ones.
    let stream = chain_windows(N, 100, 4, 11);
    for w in &stream {
        sage.observe(w);
    }
    assert_eq!(
        sage.retrains(),
        (0, true),
        "one retraining running, none done"
    );
    // The old model keeps serving until the new one is ready.
    assert_eq!(sage.version(), before);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut k = 0u64;
    while sage.retrains().0 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no retrained model in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        sage.observe(&chain_window(N, 3_000_000 + k * 1000, None, 1.0, 900 + k));
        k += 1;
    }
    assert_eq!(sage.version(), format!("{before}+r1"));
    let mut hits = 0;
    for slow in 0..N {
        for k in 0..4u64 {
            let w = chain_window(
                N,
                4_000_000 + k * 1000,
                Some(slow),
                4.0,
                500 + k + 10 * slow as u64,
            );
            let d = sage.observe(&w);
            if d.first()
                .is_some_and(|d| d.culprits[0].service == format!("s{slow}"))
            {
                hits += 1;
            }
        }
    }
    assert!(hits >= 10, "retrained AC@1 {hits}/12");
}

/// A tier never slowed in training, slowed without a sign in its metrics (its CPU stays as
/// usual): its decoder can't explain the rise, which stays in its residual. Repairing it
/// drops that residual — its calls are normal, so the rise is its own — and names it; its
/// caller, whose call to it is abnormal, keeps its residual and isn't blamed.
#[test]
fn a_silent_slowdown_of_a_tier_never_faulted_in_training_is_named() {
    let _torch = crate::torch_test_lock();
    // Unlabelled training windows; only the front and back tiers are ever slowed.
    let windows: Vec<_> = (0..400u64)
        .map(|k| {
            let slow = (k % 4 == 0).then_some(if k % 8 == 0 { 0 } else { N - 1 });
            let factor = 1.5 + 3.5 * ((k * 37) % 100) as f64 / 100.0;
            chain_window(N, (k + 1) * 1000, slow, factor, 7 ^ (k * 7919))
        })
        .collect();
    let mut sage = Sage::with_model(trained_on(&windows));
    sage.set_episode_windows(1);
    let mut hits = 0;
    for k in 0..4u64 {
        let (end, seed) = (1_000_000 + k * 1000, 3000 + k);
        let mut w = chain_window(N, end, Some(1), 4.0, seed);
        let usual = chain_window(N, end, None, 1.0, seed);
        w.services[1].usage = usual.services[1].usage;
        assert!(w.violated(), "a 4x slower middle tier must break the SLO");
        let d = sage.observe(&w);
        if d.first().is_some_and(|d| d.culprits[0].service == "s1") {
            hits += 1;
        } else {
            eprintln!("{:?}", d.first().map(|d| &d.summary));
        }
    }
    assert_eq!(hits, 4, "AC@1 {hits}/4");
}

/// A channel slowed far beyond anything in training (a network delay into a tier, seen in
/// no metric): the tier's repair restores the channel, whose delay is exactly the wire part
/// of the call, so the tier is named.
#[test]
fn a_slow_channel_into_a_tier_is_named_by_restoring_it() {
    let _torch = crate::torch_test_lock();
    let mut sage = Sage::with_model(trained());
    sage.set_episode_windows(1);
    let mut hits = 0;
    for into in 1..N {
        for k in 0..4u64 {
            let end = 2_000_000 + (into as u64 * 10 + k) * 1000;
            let w = chain_window_with_slow_channel(N, end, into, 15.0, 5000 + k);
            assert!(w.violated(), "a 15 ms delay per leg must break the SLO");
            let d = sage.observe(&w);
            let named = d.first().map(|d| d.culprits[0].service.clone());
            if named.as_deref() == Some(format!("s{into}").as_str()) {
                hits += 1;
            } else {
                eprintln!("into s{into}: {:?}", d.first().map(|d| &d.summary));
            }
        }
    }
    assert_eq!(hits, 4 * (N - 1), "AC@1 {hits}/{}", 4 * (N - 1));
}

/// Training never leaves a call weight below zero (a slower call can't make its caller
/// faster), and a partial retraining leaves the units it doesn't train as they were.
/// Weights are set to −1 and then trained with a step too small to move them, so only
/// the clamp can bring them back.
#[test]
fn training_clamps_the_call_weights_of_the_units_it_trains_at_zero() {
    let _torch = crate::torch_test_lock();
    tch::set_num_threads(1);
    // One batch: the fewest windows `train` accepts.
    let windows = chain_windows(N, 64, 4, 7);
    let mut model = trained_for(&windows, 1);
    let weight = |model: &SageModel, key: &str| -> Vec<f64> {
        let w = &model.vs.variables()[&format!("c:{key}.w")];
        Vec::<f64>::try_from(w.flatten(0, -1)).unwrap()
    };
    for key in ["s0->s1", "s1->s2"] {
        let mut w = model.vs.variables()[&format!("c:{key}.w")].shallow_clone();
        tch::no_grad(|| {
            let _ = w.fill_(-1.0);
        });
    }
    let samples: Vec<_> = windows
        .iter()
        .map(|w| model.layout.sample(super::features::raw_blocks(w)))
        .collect();
    let violated = vec![false; samples.len()];
    let front = model
        .layout
        .cbn
        .units
        .iter()
        .position(|u| u.name == "s0")
        .unwrap();
    let tiny = SageTrainSettings {
        epochs: 1,
        learning_rate: 1e-9,
        ..SageTrainSettings::default()
    };
    super::train::fit(
        &mut model,
        &samples,
        &violated,
        &[front],
        &[],
        &tiny,
        |_, _| {},
    );
    assert!(
        weight(&model, "s0->s1").iter().all(|w| *w == 0.0),
        "trained unit's call weight clamped: {:?}",
        weight(&model, "s0->s1")
    );
    assert!(
        weight(&model, "s1->s2").iter().all(|w| *w == -1.0),
        "untrained unit's call weight kept: {:?}",
        weight(&model, "s1->s2")
    );
}

/// Two calls made in parallel (the edges count their overlaps), `b` always the faster in
/// training: the CBN groups them, and with the calls combined by their maximum a delay
/// into `b` that makes it the slower call is named `b`, and repairing `b` alone restores
/// QoS. (On this small system a sum of the calls, whose weight for `b` stays near its
/// start, names `b` too; social-network's seven calls, not this test, are where the sum
/// went wrong.)
#[test]
fn a_delay_into_the_faster_of_two_parallel_calls_is_named() {
    let _torch = crate::torch_test_lock();
    let model = trained_on(&parallel_windows(400, 4, 7));
    let groups = model
        .layout
        .cbn
        .unit_of("p")
        .map(|u| model.layout.cbn.parallel_groups(u));
    assert_eq!(
        groups,
        Some(vec![vec![0, 1]]),
        "p's two calls are one parallel group"
    );
    let mut sage = Sage::with_model(model);
    let mut restored = 0;
    for k in 0..6u64 {
        let w = parallel_window(2_000_000 + k * 1000, None, 1.0, 60.0, 5000 + k);
        assert!(
            w.violated(),
            "a 60 ms delay per leg into b must break the SLO"
        );
        let d = sage.diagnose(&w).unwrap();
        let (top, ms) = d.ranked[0].clone();
        if top == "b" && d.set == vec!["b".to_string()] && ms <= synthetic::parallel_slo_ms() {
            restored += 1;
        } else {
            eprintln!("ranked {:?}, set {:?}", d.ranked, d.set);
        }
    }
    assert!(
        restored >= 5,
        "b named and its repair restores QoS in {restored}/6"
    );
}

/// A detector dropped while an online retraining runs stops it at its next optimizer step
/// and joins it: the drop is prompt, and no training outlives the detector.
#[test]
fn dropping_the_detector_stops_an_online_retraining_promptly() {
    let _torch = crate::torch_test_lock();
    let mut sage = Sage::with_model(trained_for(&chain_windows(N, 200, 4, 7), 2));
    sage.set_online(super::online::OnlineConfig {
        every: 100,
        recent: 60,
        older: 60,
        // Minutes of training: only the stop flag ends it within the test.
        epochs: 5_000,
    });
    for w in &chain_windows(N, 100, 4, 11) {
        sage.observe(w);
    }
    assert_eq!(sage.retrains(), (0, true), "one retraining running");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dropping = std::time::Instant::now();
    drop(sage);
    assert!(
        dropping.elapsed() < std::time::Duration::from_secs(5),
        "drop took {:?}: the retraining ran on",
        dropping.elapsed()
    );
}

/// `w` as a window of another application: the names of tiers `s0` (the entry) to
/// `s{renamed - 1}` prefixed with `other-`.
fn another_application(
    mut w: augur_operators::WindowSnapshot,
    renamed: usize,
) -> augur_operators::WindowSnapshot {
    let names: Vec<String> = (0..renamed).map(|i| format!("s{i}")).collect();
    let rename = |s: &mut String| {
        let service = s.split(' ').next().unwrap_or_default().to_string();
        if names.contains(&service) {
            *s = format!("other-{s}");
        }
    };
    for s in &mut w.services {
        rename(&mut s.service);
    }
    w.services.sort_by(|a, b| a.service.cmp(&b.service));
    for e in &mut w.edges {
        rename(&mut e.caller);
        rename(&mut e.callee);
        let parallel = std::mem::take(&mut e.parallel);
        for (mut other, n) in parallel {
            rename(&mut other);
            e.parallel.insert(other, n);
        }
    }
    for q in &mut w.qos {
        rename(&mut q.entry);
    }
    for s in &mut w.order {
        rename(s);
    }
    w
}

/// A checkpoint whose services barely overlap the job's (Jaccard below `min_overlap`) or
/// not at all is not used: the detector diagnoses nothing, says so once, counts the
/// violating windows as unserved and keeps running; the application it was trained on is
/// still diagnosed by a detector of the same config.
#[test]
fn no_checkpoint_matching_the_services_is_said_and_counted_and_the_detector_keeps_running() {
    let _torch = crate::torch_test_lock();
    let dir = tempfile::tempdir().unwrap();
    trained_for(&chain_windows(N, 200, 4, 7), 2)
        .save(dir.path())
        .unwrap();
    let config = super::SageConfig {
        models_dir: dir.path().to_path_buf(),
        device: crate::device::DeviceChoice::Cpu,
        ..super::SageConfig::default()
    };
    // s0 (the entry) and s1 renamed, s2 shared: 1 of 5 services, Jaccard 0.2 < 0.5.
    let mut sage = Sage::new(config.clone()).unwrap();
    for k in 0..4u64 {
        let w = another_application(
            chain_window(N, 1_000_000 + k * 1000, Some(0), 4.0, 40 + k),
            2,
        );
        assert!(w.violated());
        assert!(sage.observe(&w).is_empty(), "window {k} diagnosed");
    }
    assert!(sage.unmatched());
    assert_eq!(sage.unserved_windows(), 4);
    // Windows that meet QoS aren't counted.
    sage.observe(&another_application(
        chain_window(N, 2_000_000, None, 1.0, 9),
        2,
    ));
    assert_eq!(sage.unserved_windows(), 4);
    // Nothing shared at all.
    let mut sage = Sage::new(config.clone()).unwrap();
    let w = another_application(chain_window(N, 1_000_000, Some(1), 4.0, 50), N);
    assert!(sage.observe(&w).is_empty());
    assert!(sage.unmatched());
    assert_eq!(sage.unserved_windows(), 1);
    // The checkpoint's own application.
    let mut sage = Sage::new(config).unwrap();
    let d = sage.observe(&chain_window(N, 1_000_000, Some(1), 4.0, 50));
    assert_eq!(d.len(), 1);
    assert!(!sage.unmatched());
    assert_eq!(sage.unserved_windows(), 0);
    assert_eq!(sage.version(), "sage-test-v1");
}

/// Windows without RPC calls (metrics but no spans) or too few of them train nothing: an
/// error that says so, instead of an empty or untrained model.
#[test]
fn too_little_data_is_an_error_not_an_empty_model() {
    use super::train::{TrainDataError, check_windows, min_windows};
    let settings = SageTrainSettings::default();
    let min = min_windows(&settings);
    assert_eq!(min, settings.batch);
    let mut metrics_only = chain_windows(N, 200, 4, 7);
    for w in &mut metrics_only {
        w.edges.clear();
    }
    let err = train(
        &metrics_only,
        "sage-test",
        GvaeHyper::default(),
        &settings,
        "test".into(),
        Device::Cpu,
        |_, _| {},
    )
    .err();
    assert!(
        matches!(err, Some(TrainDataError::NoSpans { windows: 200, .. })),
        "{err:?}"
    );
    let few = chain_windows(N, min - 1, 4, 7);
    assert!(matches!(
        check_windows(&few, &settings),
        Err(TrainDataError::TooFew { useful, .. }) if useful == min - 1
    ));
    let text = check_windows(&few, &settings).unwrap_err().to_string();
    assert!(text.contains(&format!("at least {min}")), "{text}");
    assert_eq!(
        check_windows(&chain_windows(N, min, 4, 7), &settings),
        Ok(min)
    );
}

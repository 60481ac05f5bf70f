//! The `Detect` operator on model workers: a slow stand-in detector placed on worker 1 of
//! two gives, per window and in window order, the alerts of running it inline; the
//! timely worker isn't blocked meanwhile; inference times are recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use augur_operators::decide::DecideConfig;
use augur_operators::detect::{DetectStage, ModelPlacement, detect};
use augur_operators::{
    Alert, AlertKind, Culprit, Detection, Detector, InferenceTimes, WindowSnapshot,
};
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Inspect, Probe};

/// Fires on two windows of every six (so alerts fire and resolve), slowly (as a model
/// would).
struct Slow;

impl Detector for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        std::thread::sleep(Duration::from_millis(3));
        if (window.window_end / 1000) % 6 >= 2 {
            return Vec::new();
        }
        vec![Detection {
            kind: AlertKind::QosViolationPredicted,
            service: format!("svc-{}", window.window_end / 3000 % 2),
            probability: 0.9,
            horizon_ms: 1000,
            culprits: vec![Culprit {
                service: "db".into(),
                score: 0.9,
                resource: None,
                operation: None,
            }],
            summary: "slow".into(),
        }]
    }
}

fn windows() -> Vec<WindowSnapshot> {
    (1..=30)
        .map(|i| WindowSnapshot {
            window_end: i * 1000,
            window_ms: 1000,
            ..WindowSnapshot::default()
        })
        .collect()
}

fn decide() -> DecideConfig {
    DecideConfig {
        cooldown_ms: 0,
        ..DecideConfig::default()
    }
}

#[test]
fn a_detector_on_another_worker_gives_the_inline_alerts_in_order() {
    let mut inline = DetectStage::new(Box::new(Slow), decide());
    let expected: Vec<(u64, Alert)> = windows()
        .iter()
        .flat_map(|w| inline.observe(w).into_iter().map(|a| (w.window_end, a)))
        .collect();
    assert!(expected.len() >= 5, "the stand-in fires: {expected:?}");

    let got: Arc<Mutex<Vec<(u64, Alert)>>> = Arc::new(Mutex::new(Vec::new()));
    let times = Arc::new(InferenceTimes::default());
    let (sink, shared_times) = (Arc::clone(&got), Arc::clone(&times));
    timely::execute(timely::Config::process(2), move |worker| {
        let index = worker.index();
        let sink = Arc::clone(&sink);
        let times = Arc::clone(&shared_times);
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, snapshots) = scope.new_input::<WindowSnapshot>();
            let stages = vec![DetectStage::new(Box::new(Slow), decide())];
            let placement = ModelPlacement::new(Some(&[1]), 2);
            let (probe, _) = detect(snapshots, stages, &placement, times)
                .inspect_core(
                    move |event: Result<(&timely::progress::Stamp<u64>, &Vec<Alert>), &[u64]>| {
                        if let Ok((stamp, alerts)) = event {
                            let at = stamp.least().copied().unwrap();
                            assert_eq!(index, 1, "alerts come from the model worker");
                            let mut g = sink.lock().unwrap();
                            g.extend(alerts.iter().cloned().map(|a| (at, a)));
                        }
                    },
                )
                .probe();
            (input, probe)
        });
        if index == 0 {
            for w in windows() {
                input.advance_to(w.window_end);
                input.send(w);
            }
        }
        input.advance_to(u64::MAX);
        drop(input);
        while !probe.done() {
            worker.step_or_park(None);
        }
    })
    .unwrap();
    let got = got.lock().unwrap().clone();
    assert_eq!(got, expected);
    let slow = times.of("slow").expect("inference times recorded");
    assert_eq!(slow.windows, 30);
    assert!(slow.percentile_ms(50.0) >= 2.5, "{slow:?}");
}

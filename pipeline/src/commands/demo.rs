//! `augur demo`: simulator → dataflow → live alerts in the terminal. No broker, no files.

use augur_connectors::simulator::{FaultPlan, RandomPlan, SimConfig, Simulator, Topology};
use augur_models::DetectorKind;
use crossbeam_channel::{Receiver, Sender};

use crate::actuation::closed_loop::{Actuator, ClosedLoop};
use crate::actuation::what_if::JobWhatIf;
use crate::actuation::{ActuationPolicy, CloudEvent};
use crate::cli::DemoArgs;
use crate::commands::{load_config, slos_of, stop_on_signal};
use crate::dataflow::JobSpec;
use crate::display::{alert_line, clock, window_line};
use crate::run::{RunOptions, run as run_job};
use crate::source::WorkerSource;
use crate::source::simulator::{EmptySource, SimulatorSource};

/// A status line every this many windows, so the demo visibly lives between alerts.
const STATUS_EVERY: usize = 5;

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.job.config.as_deref())?;
    if let Some(topology) = &args.topology {
        config.simulator.topology = topology.clone();
    }
    if let Some(seed) = args.seed {
        config.simulator.seed = seed;
    }
    if let Some(speed) = args.speed {
        config.simulator.speed = speed;
    }
    // The demo shows the learned predictor; run/replay/eval keep the config's default.
    match (&args.detector, &args.job.config) {
        (Some(kind), _) => config.detector.name = *kind,
        (None, None) => config.detector.name = DetectorKind::Seer,
        (None, Some(_)) => {}
    }
    if let Err((field, reason)) = config.check() {
        anyhow::bail!("{field}: {reason}");
    }
    let topology = Topology::load(&config.simulator.topology)?;
    let slos = if config.slo.is_empty() {
        slos_of(&topology)
    } else {
        config.slo.clone()
    };
    let mut sim_config = SimConfig::new(topology.clone(), config.simulator.seed);
    config.simulator.apply_to(&mut sim_config);
    sim_config.faults = match FaultPlan::load(&config.simulator.faults)? {
        // Faults come sooner and more often than in `simulate`, so a demo shows one
        // within seconds (after a few windows of history for the detector).
        FaultPlan::Random(plan) => FaultPlan::Random(RandomPlan {
            warmup_s: 5.0,
            gap_s: (15.0, 40.0),
            ..plan
        }),
        plan => plan,
    };
    // Fail on a bad simulator config here, not inside a worker.
    Simulator::new(sim_config.clone())?;

    println!(
        "augur demo: simulating {} ({} services) at {}x speed, seed {}; detector {}; window {} ms",
        topology.name(),
        topology.services().len(),
        config.simulator.speed,
        config.simulator.seed,
        config.detector.name,
        config.window.length_ms
    );
    for slo in &slos {
        println!(
            "  SLO: {} p{} <= {} ms",
            slo.entry,
            (slo.quantile * 100.0).round(),
            slo.threshold_ms
        );
    }
    let closed_loop = config.actuation.enabled;
    println!(
        "  faults are injected at random; alerts appear below as they happen{}. Ctrl-C stops.\n",
        if closed_loop {
            ", and augur's actions are applied to the simulated cluster ([actuation] enabled)"
        } else {
            ""
        }
    );
    let (feedback_tx, feedback_rx) = crossbeam_channel::unbounded();
    let lead_ms = config.window.allowed_lateness_ms + sim_config.delays.min_ms();
    let mut detectors = vec![config.detector.name];
    let what_if = JobWhatIf::for_job(&config, &mut detectors);
    let feedback = closed_loop.then(|| {
        let lateness = config.window.allowed_lateness_ms;
        Box::new(
            ClosedLoop::new(
                Actuator::Policy(ActuationPolicy::new(config.actuation.clone()))
                    .with_what_if(what_if.model()),
                lateness,
                feedback_tx,
            )
            .on_action(move |event| println!("{}", action_line(event, lateness))),
        ) as Box<dyn crate::run::JobFeedback>
    });

    let (note_tx, note_rx): (Sender<String>, Receiver<String>) = crossbeam_channel::unbounded();
    let speed = config.simulator.speed;
    let duration_ms = args.duration.map(|d| d.as_millis() as u64);
    let spec = JobSpec {
        decide_log: None,
        graph_board: what_if.board.clone(),
        log_miners: Default::default(),
        detectors,
        slos,
        workers: args.job.workers,
        config,
    };
    let make_source = move |index: usize, _peers: usize| -> anyhow::Result<Box<dyn WorkerSource>> {
        if index == 0 {
            let sim = Simulator::new(sim_config.clone())?;
            let source =
                SimulatorSource::new(sim, duration_ms, Some(speed)).announcing(note_tx.clone());
            Ok(Box::new(if closed_loop {
                source.with_feedback(feedback_rx.clone(), lead_ms)
            } else {
                source
            }))
        } else {
            Ok(Box::new(EmptySource))
        }
    };
    let mut windows_seen = 0usize;
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            progress: None,
            keep_windows: false,
            feedback,
            ..RunOptions::default()
        },
        stop_on_signal(),
        |alert| println!("{}", alert_line(alert)),
        |window| {
            for note in note_rx.try_iter() {
                println!("{}  [simulator] {note}", clock(window.window_end));
            }
            // After the input stops, the graph retires its edges in windows without traffic.
            if window.services.is_empty() {
                return;
            }
            windows_seen += 1;
            if windows_seen % STATUS_EVERY == 0 {
                println!("{}", window_line(window));
            }
        },
    )?;
    println!(
        "\n{} windows, {} spans, {} alerts, {} dead letters",
        windows_seen,
        crate::stats::JobStats::get(&outcome.stats.spans),
        outcome
            .alerts
            .iter()
            .filter(|a| a.ends_at.is_none())
            .count(),
        crate::stats::JobStats::get(&outcome.stats.dead_letters)
    );
    Ok(())
}

/// One decided action, as the demo prints it (applied after its delay; the simulator's note
/// says when).
fn action_line(event: &CloudEvent, lateness_ms: u64) -> String {
    let what = match (&event.data.resource, event.data.scale_factor) {
        (Some(r), Some(f)) if event.is_scale_up() => format!("{r} x{f}"),
        _ => format!("+{} replica(s)", event.data.replicas_delta),
    };
    format!(
        "{}  ACTION {} {} {what} — {} (from {})",
        clock(event.data.window_end + lateness_ms),
        event.kind.trim_start_matches("augur."),
        event.data.service,
        event.data.summary,
        event.data.reason
    )
}

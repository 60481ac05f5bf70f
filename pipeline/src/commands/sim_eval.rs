//! `augur eval --simulate --topology T --seed N [--duration D] [--scenario S] [--drop-metrics X]
//! [--drop-spans X]`: the simulator in process through the job, scored like a replay of its
//! files (the same windows, alerts and labels, without writing and parsing OTLP JSON), and
//! [`simulate_job`], the in-process run it and `--closed-loop` share.
//!
//! In: a job config (`[simulator]` delays and instrumentation, overridden by the flags)
//! and the flags. Out: the reports on stdout. No state.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use augur_connectors::simulator::{
    FaultChoice, FaultPlan, Labels, ScenarioKind, SimConfig, Simulator, Topology, scenario,
};
use augur_models::DetectorKind;

use crate::actuation::closed_loop::{Actuator, ActuatorKind, ClosedLoop};
use crate::actuation::what_if::JobWhatIf;
use crate::cli::EvalArgs;
use crate::commands::{load_config, slos_of};
use crate::config::Config;
use crate::dataflow::JobSpec;
use crate::eval::score::ScoreParams;
use crate::run::{JobFeedback, RunOptions, RunOutcome, run as run_job};
use crate::source::WorkerSource;
use crate::source::simulator::{EmptySource, SimulatorSource};

/// Simulated time without `--duration` or a scenario.
const DEFAULT_DURATION_MS: u64 = 600_000;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub topology: String,
    pub seed: u64,
    /// The fault plan (`none`, `random`, `random-ramp` or a plan file).
    pub faults: FaultChoice,
    /// A scripted scenario of deployment changes, if any.
    pub scenario: Option<ScenarioKind>,
    /// Simulated time; `None`: the scenario's length, else 10 minutes.
    pub duration_ms: Option<u64>,
    /// The detector whose diagnoses an actuation policy acts on (`--closed-loop`).
    pub detector: DetectorKind,
}

impl Experiment {
    /// From the flags, else the config's `[simulator]`; the policy's detector is the one
    /// `--detector` names, else `sage`.
    pub fn of(args: &EvalArgs, config: &Config) -> Experiment {
        let detector = match args.detector.as_ref().map(|list| list.0.as_slice()) {
            Some(&[kind]) => kind,
            _ => DetectorKind::Sage,
        };
        let run = &args.run;
        Experiment {
            topology: run
                .topology
                .clone()
                .unwrap_or_else(|| config.simulator.topology.clone()),
            seed: run.seed.unwrap_or(config.simulator.seed),
            faults: run.faults.clone().unwrap_or_else(|| {
                if run.scenario.is_some() {
                    FaultChoice::None
                } else {
                    config.simulator.faults.clone()
                }
            }),
            scenario: run.scenario,
            duration_ms: run.duration.map(|d| d.as_millis() as u64),
            detector,
        }
    }
}

/// Runs the simulator through the job as fast as possible with `detectors`; with an
/// `actuator` the loop is closed: its commands go back to
/// the simulated cluster. Gives the run's outcome (windows kept) and the labels.
pub fn simulate_job(
    config: &Config,
    exp: &Experiment,
    mut detectors: Vec<DetectorKind>,
    actuator: Option<ActuatorKind>,
) -> anyhow::Result<(RunOutcome, Labels)> {
    // Only the policy asks what-ifs.
    let what_if = if actuator == Some(ActuatorKind::Policy) {
        JobWhatIf::for_job(config, &mut detectors)
    } else {
        JobWhatIf::default()
    };
    let topology = Topology::load(&exp.topology)?;
    let slos = if config.slo.is_empty() {
        slos_of(&topology)
    } else {
        config.slo.clone()
    };
    let mut sim_config = SimConfig::new(topology, exp.seed);
    config.simulator.apply_to(&mut sim_config);
    let mut duration_ms = DEFAULT_DURATION_MS;
    if let Some(kind) = exp.scenario {
        let s = scenario(kind, &sim_config.topology)?;
        sim_config.topology = s.topology;
        sim_config.changes = s.changes;
        duration_ms = s.duration_ms;
    }
    let duration_ms = exp.duration_ms.unwrap_or(duration_ms);
    sim_config.faults = FaultPlan::load(&exp.faults)?;
    Simulator::new(sim_config.clone())?;
    let lateness = config.window.allowed_lateness_ms;
    let lead_ms = lateness + sim_config.delays.min_ms();
    let (to_sim, from_job) = crossbeam_channel::unbounded();
    let feedback = actuator.map(|kind| -> Box<dyn JobFeedback> {
        Box::new(ClosedLoop::new(
            Actuator::of(kind, &config.actuation).with_what_if(what_if.model()),
            lateness,
            to_sim,
        ))
    });
    let closed = feedback.is_some();
    let labels_slot: Arc<Mutex<Option<Labels>>> = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&labels_slot);
    let make_source = move |index: usize, _peers: usize| -> anyhow::Result<Box<dyn WorkerSource>> {
        if index == 0 {
            let sim = Simulator::new(sim_config.clone())?;
            let source =
                SimulatorSource::new(sim, Some(duration_ms), None).labels_to(Arc::clone(&slot));
            Ok(Box::new(if closed {
                source.with_feedback(from_job.clone(), lead_ms)
            } else {
                source
            }))
        } else {
            Ok(Box::new(EmptySource))
        }
    };
    let spec = JobSpec {
        decide_log: None,
        graph_board: what_if.board.clone(),
        log_miners: Default::default(),
        config: config.clone(),
        slos,
        detectors,
        workers: 1,
    };
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            keep_windows: true,
            feedback,
            ..RunOptions::default()
        },
        Arc::new(AtomicBool::new(false)),
        |_| {},
        |_| {},
    )?;
    let labels = labels_slot
        .lock()
        .map_err(|_| anyhow::anyhow!("labels lock poisoned"))?
        .take()
        .context("the simulator left no labels")?;
    Ok((outcome, labels))
}

/// `augur eval --simulate`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.job.config.as_deref())?;
    if let Some(share) = args.drop_metrics {
        config.simulator.drop_metrics = share;
    }
    if let Some(share) = args.drop_spans {
        config.simulator.drop_spans = share;
    }
    for (flag, share) in [
        ("--drop-metrics", config.simulator.drop_metrics),
        ("--drop-spans", config.simulator.drop_spans),
    ] {
        if !(0.0..=1.0).contains(&share) {
            anyhow::bail!("{flag} {share}: a share of services must be in [0, 1]");
        }
    }
    let detectors = crate::commands::detector_list(args.detector.as_ref(), &config)?;
    let exp = Experiment::of(args, &config);
    let params = ScoreParams {
        window_ms: config.window.length_ms,
        horizon_ms: config.window.horizon_ms,
        slack_ms: 5 * config.window.length_ms,
    };
    let (outcome, labels) = simulate_job(&config, &exp, detectors.clone(), None)?;
    super::eval_report::print_reports(
        args,
        &detectors,
        &outcome,
        &labels,
        params,
        &config.detector.fluxion,
        false,
    )
}

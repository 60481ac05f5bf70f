//! Command-line interface.

use std::path::PathBuf;
use std::str::FromStr;

use augur_connectors::simulator::{FaultChoice, ScenarioKind};
use augur_models::{DetectorKind, UnknownDetector};
use clap::{Args, Parser, Subcommand};

pub use crate::cluster::ClusterArgs;

#[derive(Debug, Parser)]
#[command(
    name = "augur",
    version,
    about = "Predicts QoS violations in microservices, finds their causes, forecasts latency"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulator → pipeline → live alerts in the terminal (no broker, no files). Ctrl-C stops.
    Demo(DemoArgs),
    /// Simulate a cluster with fault injection; write OTLP JSON lines and labels.json.
    Simulate(SimulateArgs),
    /// Run the dataflow over recorded files as fast as possible.
    Replay(ReplayArgs),
    /// Replay and score detectors against the ground truth.
    Eval(EvalArgs),
    /// Check a config file; exits non-zero with the field and the reason when it is wrong.
    Validate(ValidateArgs),
    /// The stream job: Kafka spans and metrics in; alerts, actions and dead letters out.
    /// Resumes from the group's committed offsets; SIGTERM/Ctrl-C stops with a final commit.
    Run(RunArgs),
    /// Subscribe to the alert topic and print alerts as they arrive.
    Alerts(AlertsArgs),
    /// Replay recorded files and write per-window feature tensors with labels (Arrow IPC).
    Record(RecordArgs),
    /// Train a model on recorded datasets; writes the next checkpoint version.
    Train(TrainArgs),
    /// What caused what happened at a moment: services ranked by how their own signals
    /// moved against the minutes before, with the evidence. Needs no model or labels.
    Diagnose(DiagnoseArgs),
    /// Fit a digital twin (a simulator topology) from an application's traces, or check one
    /// against held-back real data.
    Twin(TwinArgs),
}

/// `augur twin`: fit (default), `--check` or `--baseline`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("comparing").args(["check", "baseline"])))]
pub struct TwinArgs {
    /// Directories with traces.otlp.jsonl[.zst|.gz] of the application running normally.
    #[arg(long, num_args = 1.., required_unless_present = "brokers")]
    pub input: Vec<PathBuf>,
    /// Instead of `--input`, a time range of Kafka topics (`--from`, `--to`): the spans
    /// topic, and the metrics topic when it exists.
    #[command(flatten)]
    pub topics: TopicInput,
    /// Job config (TOML) with the Kafka settings for `--brokers` (topics, encodings,
    /// librdkafka properties); defaults apply to everything it leaves out.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Where the fitted twin is written.
    #[arg(long, default_value = "twin.toml", conflicts_with = "comparing")]
    pub out: PathBuf,
    /// The twin's `name` (default: the last input directory's parent and name, e.g.
    /// `train-ticket-2023-01-29`).
    #[arg(long)]
    pub name: Option<String>,
    /// Share of each input's time range held back: fitting reads the traces that start in
    /// the first `1 - holdout` of it, `--check` the rest. 0 fits on everything; with
    /// `--check`, 1 checks against everything (inputs the twin was not fitted on, such as
    /// another day's recording).
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Check this twin against the held-back part of `--input` instead of fitting.
    #[arg(long)]
    pub check: Option<PathBuf>,
    /// Instead of a twin, compare these recordings with the held-back part of `--input`,
    /// as `--check` compares a twin: how far the application itself moves between two
    /// ranges, the bar a twin can be held to. They are read as a fit reads its input (the
    /// first `1 - holdout` of each; all of them with `--holdout 1`), and with `--load
    /// observed` their rates are scaled to the checked range's request rate.
    #[arg(long, num_args = 1..)]
    pub baseline: Vec<PathBuf>,
    /// With --check: simulated time (default: ten times the real range checked, within 10
    /// min to 1 h, so the twin's side adds little sampling noise; never less than the real
    /// range).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// With --check: the load to simulate at (with --baseline: to scale the baseline's
    /// rates to).
    #[arg(long, value_enum, default_value_t = TwinLoad::Observed)]
    pub load: TwinLoad,
    /// With --check: simulation seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// With --check or --baseline: print one JSON object instead of a table.
    #[arg(long, requires = "comparing")]
    pub json: bool,
    /// With --check or --baseline: also write an SVG of each service's p50, p90 and p99,
    /// real beside twin, here.
    #[arg(long, requires = "comparing")]
    pub plot: Option<PathBuf>,
}

/// The load `augur twin --check` simulates at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TwinLoad {
    /// The held-back range's own request rate (the twin's mix and structure are checked).
    Observed,
    /// The twin's fitted rate (the rate's stationarity is checked too).
    Fitted,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The moment to explain (RFC 3339, or ms since the epoch), e.g. when an incident began.
    #[arg(long)]
    pub at: String,
    /// Directory with traces.otlp.jsonl[.zst|.gz], metrics.otlp.jsonl[...] and
    /// logs.otlp.jsonl[...] (any of them: without traces, metrics and logs alone are read),
    /// or one file of OTLP/JSON lines of any signals (a shared file exporter's).
    #[arg(long, required_unless_present = "brokers")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub topics: TopicInput,
    /// How much of the time before `--at` is the normal (default: the config's
    /// `diagnose.before_ms`, 2 min).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub before: Option<std::time::Duration>,
    /// How much of the time after `--at` is examined (default: `diagnose.after_ms`, 1 min).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub after: Option<std::time::Duration>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Brokers (overrides the config's `kafka.brokers`).
    #[arg(long)]
    pub brokers: Option<String>,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Brokers (default: the config's `kafka.brokers`).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Job config, for the topic name and client properties.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Topic (default: the config's `kafka.alerts_topic`).
    #[arg(long)]
    pub topic: Option<String>,
    /// Print the raw alert JSON, one per line.
    #[arg(long)]
    pub json: bool,
    /// Start from the oldest alert instead of new ones only.
    #[arg(long)]
    pub from_beginning: bool,
    /// Exit after this many alerts.
    #[arg(long)]
    pub count: Option<usize>,
    /// Exit when no alert arrived for this long (e.g. `10s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_exit: Option<std::time::Duration>,
}

#[derive(Clone, Debug, Args)]
pub struct JobArgs {
    /// Job config (TOML); defaults apply to everything it leaves out.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Timely workers in this process.
    #[arg(long, short = 'w', default_value_t = 1)]
    pub workers: usize,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Detector to run (default: `seer`, the shipped Seer checkpoint, or with `--config`
    /// the file's `[detector] name`).
    #[arg(long)]
    pub detector: Option<DetectorKind>,
    /// Built-in topology name or TOML file (default: the config's `simulator.topology`).
    #[arg(long)]
    pub topology: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated seconds per wall-clock second.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Stop after this much simulated time (e.g. `2m`); runs until Ctrl-C otherwise.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Built-in topology (chain, fanout, social-network, hotel-reservation, online-boutique) or a TOML file.
    #[arg(long, default_value = "social-network")]
    pub topology: String,
    /// Simulated time, e.g. `10m` (default 10m, or the scenario's length).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `random` (step faults), `random-ramp` (the same schedule, faults ramping up over 3–10 s), `none`, or a fault-plan file (TOML or JSON).
    /// Default `random`, or `none` with a scenario.
    #[arg(long)]
    pub faults: Option<FaultChoice>,
    /// A scripted sequence of deployment changes, recorded in labels.json: `scale-replace`
    /// (an RPS change, scale-out of 1, 2, 3 services, all ×3, a replaced service, one every
    /// 4 min after a 4 min warm-up, under a ±30 % load swing; 28 min), `load-ramp` (three
    /// flash crowds: the load rising for 90 s to 3.5× the topology's, past saturation,
    /// after a 3 min warm-up; 15 min) or `add-remove` (a proxy added in front of a leaf,
    /// then another leaf removed, 4 min apart after a 4 min warm-up, under the same swing;
    /// 12 min).
    #[arg(long)]
    pub scenario: Option<ScenarioKind>,
    /// Output directory (created) for OTLP JSON lines and labels.json.
    #[arg(long, required_unless_present = "kafka")]
    pub out: Option<PathBuf>,
    /// Produce to Kafka at these brokers instead: spans and metrics (OTLP protobuf, as the
    /// Collector's Kafka exporter writes them) to their topics, labels to `--labels-topic`.
    #[arg(long, conflicts_with = "out")]
    pub kafka: Option<String>,
    /// With --kafka: job config for topic names, encodings and client properties.
    #[arg(long, short = 'c', requires = "kafka")]
    pub config: Option<PathBuf>,
    /// With --kafka: simulated seconds per wall-clock second (default: as fast as possible).
    #[arg(long, requires = "kafka")]
    pub speed: Option<f64>,
    /// With --kafka: topic for the ground-truth labels (one JSON message at the end).
    #[arg(long, default_value = "augur.labels")]
    pub labels_topic: String,
    /// With --kafka: also write labels.json here.
    #[arg(long, requires = "kafka")]
    pub labels_out: Option<PathBuf>,
    /// With --kafka: also produce this many corrupt messages to the spans topic (spread
    /// over the run), to exercise the dead-letter path.
    #[arg(long, default_value_t = 0, requires = "kafka")]
    pub corrupt: u64,
    /// Compress the JSON lines with zstd (`*.jsonl.zst`).
    #[arg(long)]
    pub zstd: bool,
    /// Multiplies the topology's request rate.
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Incomplete instrumentation: share of services (0–1, chosen from the seed) that
    /// export no metrics. The simulation itself is unchanged; labels.json lists them.
    #[arg(long, default_value_t = 0.0)]
    pub drop_metrics: f64,
    /// Share of services (0–1, never an entry service) that export no spans.
    #[arg(long, default_value_t = 0.0)]
    pub drop_spans: f64,
}

impl SimulateArgs {
    /// The fault plan: `--faults`, else `none` with a scenario and `random` without.
    pub fn faults(&self) -> FaultChoice {
        match (&self.faults, &self.scenario) {
            (Some(f), _) => f.clone(),
            (None, Some(_)) => FaultChoice::None,
            (None, None) => FaultChoice::Random,
        }
    }
}

#[derive(Clone, Debug, Args)]
pub struct TopicInput {
    /// Read Kafka topics at these brokers instead of files.
    #[arg(long, conflicts_with = "input")]
    pub brokers: Option<String>,
    /// Spans topic (default: the config's `kafka.spans_topic`).
    #[arg(long, requires = "brokers")]
    pub topic: Option<String>,
    /// Metrics topic (default: the config's `kafka.metrics_topic`).
    #[arg(long, requires = "brokers")]
    pub metrics_topic: Option<String>,
    /// Logs topic (default: the config's `kafka.logs_topic`; read only when it exists).
    #[arg(long, requires = "brokers")]
    pub logs_topic: Option<String>,
    /// Only records at or after this time (RFC 3339, or ms since the epoch).
    #[arg(long, requires = "brokers")]
    pub from: Option<String>,
    /// Only records before this time (RFC 3339, or ms since the epoch).
    #[arg(long, requires = "brokers")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub job: JobArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Directory with traces.otlp.jsonl[.zst|.gz], metrics.otlp.jsonl[...] and
    /// logs.otlp.jsonl[...] (any of them: without traces, metrics and logs alone are read),
    /// or one file of OTLP/JSON lines of any signals (a shared file exporter's).
    #[arg(long, required_unless_present = "brokers")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub topics: TopicInput,
    /// Write alerts as JSON lines here (otherwise they're printed).
    #[arg(long)]
    pub alerts_out: Option<PathBuf>,
    /// Detector to run (default: the config's `detector.name`).
    #[arg(long)]
    pub detector: Option<DetectorKind>,
}

/// `augur eval replay|simulate|closed-loop|cases`, or the flag form of the same modes
/// (`--input`/`--brokers`, `--simulate`, `--closed-loop`, `--cases DIR`), kept for scripts.
#[derive(Clone, Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    #[command(flatten)]
    pub job: JobArgs,
    /// Directory with the recorded files and labels.json.
    #[arg(long, required_unless_present_any = ["brokers", "closed_loop", "simulate", "cases"])]
    pub input: Option<PathBuf>,
    /// Instead of one input: every directory under this one that holds a `labels.json`
    /// and recorded files is a case; each labelled fault is diagnosed at its start
    /// (`augur diagnose --at`) and scored per application and fault kind, beside simple
    /// baselines on the same windows.
    #[arg(long, conflicts_with_all = ["input", "brokers", "closed_loop", "simulate"])]
    pub cases: Option<PathBuf>,
    /// With --cases: diagnose each fault this long after its labelled start, as a person
    /// who noticed it late would ask (`30s`, `1m`; the first alerts are unaffected).
    /// Default 0.
    #[arg(long, requires = "cases", value_parser = humantime::parse_duration)]
    pub late: Option<std::time::Duration>,
    #[command(flatten)]
    pub topics: TopicInput,
    /// With --brokers: the labels file (default: the last message of `--labels-topic`).
    #[arg(long, requires = "brokers")]
    pub labels: Option<PathBuf>,
    /// With --brokers: the topic `augur simulate --kafka` wrote the labels to.
    #[arg(long, default_value = "augur.labels")]
    pub labels_topic: String,
    /// Detector(s) to score, comma-separated, or `all` (default: the config's `detector.name`).
    #[arg(long)]
    pub detector: Option<DetectorList>,
    /// Print one JSON object per detector (one per line) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Instead of replaying input: simulate three times with the same faults — the
    /// detector's (default `sage`) diagnoses acted on and fed back, no action, the CPU
    /// autoscaler — and report per fault how long QoS stayed violated.
    #[arg(long, conflicts_with_all = ["input", "brokers", "simulate"])]
    pub closed_loop: bool,
    /// Instead of replaying input: run the simulator in process through the job and score
    /// it like a replay of its files (no OTLP JSON written or parsed).
    #[arg(long, conflicts_with_all = ["input", "brokers"])]
    pub simulate: bool,
    /// With --closed-loop/--simulate: the simulated run.
    #[command(flatten)]
    pub run: SimulatedRun,
    /// With --simulate: share of services exporting no metrics (default: the config's
    /// `simulator.drop_metrics`).
    #[arg(long, requires = "simulate")]
    pub drop_metrics: Option<f64>,
    /// With --simulate: share of services exporting no spans (default: the config's
    /// `simulator.drop_spans`).
    #[arg(long, requires = "simulate")]
    pub drop_spans: Option<f64>,
    /// Write a report here (created): with --closed-loop, `closed_loop.json` and `p99.svg`;
    /// otherwise `alerts.jsonl` (every alert of the run) and, per detector with RCA cases,
    /// `rca-<detector>.md` (each case: the fault, the alert it was scored by, its culprits);
    /// with `fluxion`, also `forecast.svg` (forecast vs observed p90 over time, changes
    /// marked) and `forecast.md` (the per-change table).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The modes of `augur eval` as subcommands, each with only the flags it reads.
#[derive(Clone, Debug, Subcommand)]
pub enum EvalCommand {
    /// Replay recorded files (or topics) and score detectors against `labels.json` (as
    /// `augur eval --input DIR`).
    Replay(EvalReplayArgs),
    /// Run the simulator in process through the job and score it like a replay of its files
    /// (as `augur eval --simulate`).
    Simulate(EvalSimulateArgs),
    /// Simulate three times with the same faults (the detector's diagnoses acted on, no
    /// action, the CPU autoscaler) and report per fault how long QoS stayed violated (as
    /// `augur eval --closed-loop`).
    ClosedLoop(EvalClosedLoopArgs),
    /// Diagnose each labelled fault of every case directory under DIR at its start and
    /// score per application and fault kind (as `augur eval --cases DIR`).
    Cases(EvalCasesArgs),
}

/// Flags every eval mode reads.
#[derive(Clone, Debug, Args)]
pub struct EvalCommon {
    #[command(flatten)]
    pub job: JobArgs,
    /// Print one JSON object per detector (one per line) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, Args)]
pub struct EvalReplayArgs {
    #[command(flatten)]
    pub common: EvalCommon,
    /// Directory with the recorded files and labels.json.
    #[arg(long, required_unless_present = "brokers")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub topics: TopicInput,
    /// With --brokers: the labels file (default: the last message of `--labels-topic`).
    #[arg(long, requires = "brokers")]
    pub labels: Option<PathBuf>,
    /// With --brokers: the topic `augur simulate --kafka` wrote the labels to.
    #[arg(long, default_value = "augur.labels")]
    pub labels_topic: String,
    /// Detector(s) to score, comma-separated, or `all` (default: the config's `detector.name`).
    #[arg(long)]
    pub detector: Option<DetectorList>,
    /// Write `alerts.jsonl`, per detector with RCA cases `rca-<detector>.md`, and with
    /// `fluxion` `forecast.svg` and `forecast.md` here (created).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The simulated run of `simulate` and `closed-loop`.
#[derive(Clone, Debug, Args)]
pub struct SimulatedRun {
    /// Topology (default: the config's `simulator.topology`).
    #[arg(long)]
    pub topology: Option<String>,
    /// Simulator seed (default: the config's `simulator.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fault plan (default: the config's `simulator.faults`).
    #[arg(long)]
    pub faults: Option<FaultChoice>,
    /// A scripted sequence of deployment changes (`scale-replace`, `load-ramp`,
    /// `add-remove`), as `augur simulate --scenario`; the fault plan defaults to `none`.
    #[arg(long)]
    pub scenario: Option<ScenarioKind>,
    /// Simulated time per run (default 10m, or the scenario's length).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
}

#[derive(Clone, Debug, Args)]
pub struct EvalSimulateArgs {
    #[command(flatten)]
    pub common: EvalCommon,
    #[command(flatten)]
    pub run: SimulatedRun,
    /// Detector(s) to score, comma-separated, or `all` (default: the config's `detector.name`).
    #[arg(long)]
    pub detector: Option<DetectorList>,
    /// Share of services exporting no metrics (default: the config's
    /// `simulator.drop_metrics`).
    #[arg(long)]
    pub drop_metrics: Option<f64>,
    /// Share of services exporting no spans (default: the config's `simulator.drop_spans`).
    #[arg(long)]
    pub drop_spans: Option<f64>,
    /// Write `alerts.jsonl`, per detector with RCA cases `rca-<detector>.md`, and with
    /// `fluxion` `forecast.svg` and `forecast.md` here (created).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct EvalClosedLoopArgs {
    #[command(flatten)]
    pub common: EvalCommon,
    #[command(flatten)]
    pub run: SimulatedRun,
    /// The detector whose diagnoses are acted on (default `sage`).
    #[arg(long)]
    pub detector: Option<DetectorKind>,
    /// Write `closed_loop.json` and `p99.svg` here (created).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct EvalCasesArgs {
    #[command(flatten)]
    pub common: EvalCommon,
    /// Every directory under this one that holds a `labels.json` and recorded files is a
    /// case.
    pub dir: PathBuf,
    /// Diagnose each fault this long after its labelled start, as a person who noticed it
    /// late would ask (`30s`, `1m`; the first alerts are unaffected). Default 0.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub late: Option<std::time::Duration>,
}

impl EvalArgs {
    /// The flag form of these arguments: a subcommand's flags moved into the one list the
    /// modes read (the flags themselves when no subcommand was given).
    pub fn flag_form(&self) -> EvalArgs {
        let Some(command) = &self.command else {
            return self.clone();
        };
        let common = match command {
            EvalCommand::Replay(r) => &r.common,
            EvalCommand::Simulate(s) => &s.common,
            EvalCommand::ClosedLoop(l) => &l.common,
            EvalCommand::Cases(c) => &c.common,
        };
        let mut args = EvalArgs {
            command: None,
            job: common.job.clone(),
            input: None,
            cases: None,
            late: None,
            topics: TopicInput {
                brokers: None,
                topic: None,
                metrics_topic: None,
                logs_topic: None,
                from: None,
                to: None,
            },
            labels: None,
            labels_topic: "augur.labels".to_string(),
            detector: None,
            json: common.json,
            closed_loop: false,
            simulate: false,
            run: SimulatedRun {
                topology: None,
                seed: None,
                faults: None,
                scenario: None,
                duration: None,
            },
            drop_metrics: None,
            drop_spans: None,
            report: None,
        };
        match command {
            EvalCommand::Replay(r) => {
                args.input = r.input.clone();
                args.topics = r.topics.clone();
                args.labels = r.labels.clone();
                args.labels_topic = r.labels_topic.clone();
                args.detector = r.detector.clone();
                args.report = r.report.clone();
            }
            EvalCommand::Simulate(s) => {
                args.simulate = true;
                args.run = s.run.clone();
                args.detector = s.detector.clone();
                args.drop_metrics = s.drop_metrics;
                args.drop_spans = s.drop_spans;
                args.report = s.report.clone();
            }
            EvalCommand::ClosedLoop(l) => {
                args.closed_loop = true;
                args.run = l.run.clone();
                args.detector = l.detector.map(|kind| DetectorList(vec![kind]));
                args.report = l.report.clone();
            }
            EvalCommand::Cases(c) => {
                args.cases = Some(c.dir.clone());
                args.late = c.late;
            }
        }
        args
    }
}

/// `--detector D[,D...]` or `all`: detectors by name, comma-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectorList(pub Vec<DetectorKind>);

impl FromStr for DetectorList {
    type Err = UnknownDetector;

    fn from_str(list: &str) -> Result<DetectorList, UnknownDetector> {
        if list == "all" {
            return Ok(DetectorList(DetectorKind::ALL.to_vec()));
        }
        list.split(',')
            .map(|name| name.trim().parse())
            .collect::<Result<_, _>>()
            .map(DetectorList)
    }
}

/// What `augur eval` scores, chosen by its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalMode<'a> {
    /// Recorded files (`--input`) or topics (`--brokers`), replayed once.
    Replay,
    /// Every case directory under `--cases`, each fault diagnosed at its start.
    Cases(&'a std::path::Path),
    /// The same faults simulated under three actuators (`--closed-loop`).
    ClosedLoop,
    /// The simulator run in process through the job (`--simulate`).
    Simulate,
}

impl EvalArgs {
    /// The mode the flags choose (clap lets at most one of them through).
    pub fn mode(&self) -> EvalMode<'_> {
        if self.closed_loop {
            EvalMode::ClosedLoop
        } else if self.simulate {
            EvalMode::Simulate
        } else if let Some(dir) = &self.cases {
            EvalMode::Cases(dir)
        } else {
            EvalMode::Replay
        }
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Directory with the recorded files and labels.json.
    #[arg(long, required_unless_present = "brokers")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub topics: TopicInput,
    /// With --brokers: the labels file (default: the last message of `--labels-topic`).
    #[arg(long, requires = "brokers")]
    pub labels: Option<PathBuf>,
    /// With --brokers: the topic `augur simulate --kafka` wrote the labels to.
    #[arg(long, default_value = "augur.labels")]
    pub labels_topic: String,
    /// Arrow IPC file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `augur train seer|sage|fluxion`, or the older form with `--model` and every model's
/// flags in one list (kept for scripts; it becomes the same typed command).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub model: Option<TrainModel>,
    #[command(flatten)]
    pub flags: TrainFlags,
}

/// The model to train, with the flags it reads.
#[derive(Clone, Debug, Subcommand)]
pub enum TrainModel {
    /// Seer, on datasets written by `augur record`.
    Seer(SeerTrainArgs),
    /// Sage, on replays of directories written by `augur simulate --out`.
    Sage(SageTrainArgs),
    /// Fluxion, on replays of directories written by `augur simulate --out`.
    Fluxion(FluxionTrainArgs),
    /// An application's normal for `augur diagnose` and `eval --cases`, from any OTLP
    /// directories of its fault-free telemetry (no labels).
    Normal(NormalTrainArgs),
}

/// Flags every model's training reads.
#[derive(Clone, Debug, Args)]
pub struct TrainCommon {
    #[command(flatten)]
    pub job: JobArgs,
    /// Seed of weight initialization and shuffling.
    #[arg(long, default_value_t = 1)]
    pub seed: i64,
    /// Directory the checkpoint is written to, created if needed (default: the config's
    /// `detector.<model>.models_dir`; for `normal`, `diagnose.normal_dir`).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Checkpoint version to write (default: the newest in the directory + 1).
    #[arg(long)]
    pub version: Option<u64>,
    /// libtorch intra-op threads.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Where Seer scores culprits from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CulpritFrom {
    /// Each service's own inputs.
    #[default]
    Inputs,
    /// The first convolution across neighbouring services (as v2).
    Conv,
}

impl CulpritFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            CulpritFrom::Inputs => "inputs",
            CulpritFrom::Conv => "conv",
        }
    }
}

#[derive(Clone, Debug, Args)]
pub struct SeerTrainArgs {
    #[command(flatten)]
    pub common: TrainCommon,
    /// Dataset(s) written by `augur record`; repeat for several.
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Training epochs (default 30).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[command(flatten)]
    pub seer: SeerFlags,
}

/// The flags only Seer's training reads.
#[derive(Clone, Debug, Default, Args)]
pub struct SeerFlags {
    /// Seer: windows of history per prediction (default 5).
    #[arg(long)]
    pub history: Option<usize>,
    /// Seer: LSTM hidden size (default 48).
    #[arg(long)]
    pub hidden: Option<i64>,
    /// Seer: networks trained side by side from different initial weights, their
    /// probabilities averaged (an ensemble; default 1).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=16))]
    pub members: Option<i64>,
    /// Seer: loss weight of windows just before a violation starts (default 1).
    #[arg(long)]
    pub ahead_weight: Option<f64>,
    /// Seer: choose the epoch and threshold by the validation split's ahead recall
    /// (positive windows whose violation hasn't started yet) instead of its recall.
    #[arg(long)]
    pub select_ahead: bool,
    /// Seer: the features to train on, comma-separated (default: every feature of the
    /// data, e.g. `outstanding,latency_p99_ms,callee_p99_max_ms`).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// Seer: score culprits from each service's own inputs (`inputs`, the default) or
    /// from the first convolution across neighbouring services (`conv`, as v2).
    #[arg(long, value_enum)]
    pub culprit_from: Option<CulpritFrom>,
}

impl SeerTrainArgs {
    /// `--epochs`, default 30.
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(30)
    }

    /// `--members`, default 1.
    pub fn members(&self) -> i64 {
        self.seer.members.unwrap_or(1)
    }

    /// `--culprit-from`, default `inputs`.
    pub fn culprit_from(&self) -> CulpritFrom {
        self.seer.culprit_from.unwrap_or_default()
    }
}

#[derive(Clone, Debug, Args)]
pub struct SageTrainArgs {
    #[command(flatten)]
    pub common: TrainCommon,
    /// Directories written by `augur simulate --out` to replay for unlabelled windows;
    /// repeat for several (only their spans, metrics and SLOs are read).
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Checkpoint name (default `sage-<topology>`, the topology of the first input; a name
    /// without the `sage-` prefix gets it).
    #[arg(long)]
    pub name: Option<String>,
    /// Training epochs (default 30).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// The resources in each service's metric node X, comma-separated (default
    /// `cpu,memory,network,disk`; add `queue` to model a service's queue as its state).
    #[arg(long, value_delimiter = ',', value_parser = ["cpu", "memory", "network", "disk", "queue"])]
    pub x_resources: Vec<String>,
}

impl SageTrainArgs {
    /// `--epochs`, default 30.
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(30)
    }
}

#[derive(Clone, Debug, Args)]
pub struct FluxionTrainArgs {
    #[command(flatten)]
    pub common: TrainCommon,
    /// Directories written by `augur simulate --out` to replay for unlabelled windows;
    /// repeat for several (only their spans, metrics and SLOs are read).
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Checkpoint name (default `fluxion-<topology>`, the topology of the first input; a
    /// name without the `fluxion-` prefix gets it).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Args)]
pub struct NormalTrainArgs {
    #[command(flatten)]
    pub common: TrainCommon,
    /// Directories of OTLP files (traces.otlp.jsonl[.zst|.gz], metrics, logs), or files of
    /// OTLP/JSON lines of any signals, of the application running normally; repeat for
    /// several.
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Name of the normal (default `<topology>`, the topology in the first input's
    /// labels.json); written as `normal-<name>.json`.
    #[arg(long)]
    pub name: Option<String>,
}

impl TrainArgs {
    /// The model to train and its flags: the subcommand, or the older flag form checked
    /// for flags its `--model` doesn't read.
    pub fn model(&self) -> anyhow::Result<TrainModel> {
        match &self.model {
            Some(model) => Ok(model.clone()),
            None => self.flags.to_model(),
        }
    }
}

/// The older form of `augur train`: `--model` (default `seer`) and every model's flags.
#[derive(Debug, Args)]
pub struct TrainFlags {
    #[command(flatten)]
    pub common: TrainCommon,
    /// Model to train (or name it as a subcommand: `augur train sage ...`; `normal`: an
    /// application's normal for `augur diagnose`, from `--input` directories of its
    /// fault-free telemetry).
    #[arg(long, default_value = "seer", value_parser = ["seer", "sage", "fluxion", "normal"])]
    pub model: String,
    /// Dataset(s) written by `augur record`; repeat for several (seer).
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Directories written by `augur simulate --out` to replay for unlabelled windows;
    /// repeat for several (sage, fluxion, normal; only their telemetry and SLOs are read).
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Checkpoint name for sage, fluxion or normal (default `<model>-<topology>`, the
    /// topology in the first input's labels.json).
    #[arg(long)]
    pub name: Option<String>,
    /// Training epochs (seer, sage; default 30).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[command(flatten)]
    pub seer: SeerFlags,
    /// Sage: the resources in each service's metric node X, comma-separated (default
    /// `cpu,memory,network,disk`; add `queue` to model a service's queue as its state).
    #[arg(long, value_delimiter = ',', value_parser = ["cpu", "memory", "network", "disk", "queue"])]
    pub x_resources: Vec<String>,
}

impl TrainFlags {
    /// The typed command these flags stand for; an error naming the flags given that
    /// `--model` doesn't read (rather than quietly ignoring, say, `--members 3` for sage).
    pub fn to_model(&self) -> anyhow::Result<TrainModel> {
        let foreign = self.foreign_flags();
        if !foreign.is_empty() {
            let list: Vec<String> = foreign
                .iter()
                .map(|(flag, models)| format!("{flag} (read by {models})"))
                .collect();
            anyhow::bail!(
                "--model {} doesn't read {}; leave {} out",
                self.model,
                list.join(", "),
                if list.len() == 1 { "it" } else { "them" }
            );
        }
        let common = self.common.clone();
        Ok(match self.model.as_str() {
            "sage" => TrainModel::Sage(SageTrainArgs {
                common,
                input: self.input.clone(),
                name: self.name.clone(),
                epochs: self.epochs,
                x_resources: self.x_resources.clone(),
            }),
            "fluxion" => TrainModel::Fluxion(FluxionTrainArgs {
                common,
                input: self.input.clone(),
                name: self.name.clone(),
            }),
            "normal" => TrainModel::Normal(NormalTrainArgs {
                common,
                input: self.input.clone(),
                name: self.name.clone(),
            }),
            _ => TrainModel::Seer(SeerTrainArgs {
                common,
                data: self.data.clone(),
                epochs: self.epochs,
                seer: self.seer.clone(),
            }),
        })
    }

    /// The flags given that `--model` doesn't read, each with the models that do.
    pub fn foreign_flags(&self) -> Vec<(&'static str, &'static str)> {
        const SEER: &str = "seer";
        const REPLAYS: &str = "sage, fluxion, normal";
        const SEER_SAGE: &str = "seer, sage";
        const SAGE: &str = "sage";
        let given = [
            ("--data", !self.data.is_empty(), SEER),
            ("--input", !self.input.is_empty(), REPLAYS),
            ("--name", self.name.is_some(), REPLAYS),
            ("--epochs", self.epochs.is_some(), SEER_SAGE),
            ("--history", self.seer.history.is_some(), SEER),
            ("--hidden", self.seer.hidden.is_some(), SEER),
            ("--members", self.seer.members.is_some(), SEER),
            ("--ahead-weight", self.seer.ahead_weight.is_some(), SEER),
            ("--select-ahead", self.seer.select_ahead, SEER),
            ("--features", !self.seer.features.is_empty(), SEER),
            ("--culprit-from", self.seer.culprit_from.is_some(), SEER),
            ("--x-resources", !self.x_resources.is_empty(), SAGE),
        ];
        given
            .into_iter()
            .filter(|(_, set, models)| *set && !models.split(", ").any(|m| m == self.model))
            .map(|(flag, _, models)| (flag, models))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, CulpritFrom, TrainArgs, TrainModel};

    fn train_args(args: &[&str]) -> TrainArgs {
        let argv = ["augur", "train"].iter().chain(args);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Train(t)) => t,
            other => panic!("not a train command: {other:?}"),
        }
    }

    #[test]
    fn train_names_the_flags_its_model_does_not_read() {
        let sage = train_args(&[
            "--model",
            "sage",
            "--input",
            "d",
            "--members",
            "3",
            "--epochs",
            "5",
        ]);
        assert_eq!(sage.flags.foreign_flags(), vec![("--members", "seer")]);
        assert!(sage.model().is_err());
        let fluxion = train_args(&[
            "--model",
            "fluxion",
            "--input",
            "d",
            "--epochs",
            "5",
            "--x-resources",
            "cpu",
        ]);
        assert_eq!(
            fluxion.flags.foreign_flags(),
            vec![("--epochs", "seer, sage"), ("--x-resources", "sage")]
        );
        let seer = train_args(&[
            "--data",
            "a.arrow",
            "--input",
            "d",
            "--culprit-from",
            "conv",
        ]);
        assert_eq!(
            seer.flags.foreign_flags(),
            vec![("--input", "sage, fluxion, normal")]
        );
        let normal = train_args(&["--model", "normal", "--input", "d", "--name", "shop"]);
        match normal.model() {
            Ok(TrainModel::Normal(n)) => {
                assert_eq!((n.input.len(), n.name.as_deref()), (1, Some("shop")))
            }
            other => panic!("not normal: {other:?}"),
        }
        let plain = train_args(&["--data", "a.arrow"]);
        assert!(plain.flags.foreign_flags().is_empty());
        match plain.model() {
            Ok(TrainModel::Seer(seer)) => assert_eq!(
                (seer.epochs(), seer.members(), seer.culprit_from()),
                (30, 1, CulpritFrom::Inputs)
            ),
            other => panic!("not seer: {other:?}"),
        }
    }

    fn eval_args(args: &[&str]) -> super::EvalArgs {
        let argv = ["augur", "eval"].iter().chain(args);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Eval(e)) => e,
            other => panic!("not an eval command: {other:?}"),
        }
    }

    /// Each eval subcommand is the flag form of the same mode.
    #[test]
    fn eval_subcommands_are_the_flag_forms() {
        let pairs: [(&[&str], &[&str]); 4] = [
            (
                &[
                    "simulate",
                    "--topology",
                    "chain",
                    "--seed",
                    "3",
                    "--json",
                    "-w",
                    "2",
                ],
                &[
                    "--simulate",
                    "--topology",
                    "chain",
                    "--seed",
                    "3",
                    "--json",
                    "-w",
                    "2",
                ],
            ),
            (
                &["closed-loop", "--faults", "f.toml", "--report", "r"],
                &["--closed-loop", "--faults", "f.toml", "--report", "r"],
            ),
            (
                &[
                    "replay",
                    "--input",
                    "d",
                    "--detector",
                    "all",
                    "-c",
                    "x.toml",
                ],
                &["--input", "d", "--detector", "all", "-c", "x.toml"],
            ),
            (&["cases", "dir", "--json"], &["--cases", "dir", "--json"]),
        ];
        for (sub, flags) in pairs {
            let (sub, flags) = (eval_args(sub).flag_form(), eval_args(flags).flag_form());
            assert_eq!(format!("{sub:?}"), format!("{flags:?}"));
            assert_eq!(sub.mode(), flags.mode());
        }
        // A subcommand reads only its own mode's flags.
        let argv = ["augur", "eval", "closed-loop", "--drop-spans", "0.5"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    /// `--detector` takes the names the config uses: one, a comma-separated list or `all`;
    /// an unknown name is refused with the known ones.
    #[test]
    fn detectors_are_parsed_by_name() {
        use super::DetectorList;
        use augur_models::DetectorKind;
        let listed = eval_args(&["simulate", "--detector", "nsigma, evidence"]).flag_form();
        assert_eq!(
            listed.detector,
            Some(DetectorList(vec![
                DetectorKind::NSigma,
                DetectorKind::Evidence
            ]))
        );
        let all = eval_args(&["--input", "d", "--detector", "all"]);
        assert_eq!(all.detector, Some(DetectorList(DetectorKind::ALL.to_vec())));
        let one = eval_args(&["closed-loop", "--detector", "cpu-threshold-70"]).flag_form();
        assert_eq!(
            one.detector,
            Some(DetectorList(vec![DetectorKind::CpuThreshold70]))
        );
        let argv = [
            "augur",
            "eval",
            "--input",
            "d",
            "--detector",
            "nsigma,magic",
        ];
        let err = Cli::try_parse_from(argv)
            .expect_err("unknown name")
            .to_string();
        assert!(
            err.contains("unknown detector `magic`; known detectors: nsigma,"),
            "{err}"
        );
        let argv = ["augur", "eval", "closed-loop", "--detector", "sage,nsigma"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    /// `augur train sage ...` and `augur train --model sage ...` are the same command.
    #[test]
    fn the_subcommand_and_the_flag_form_agree() {
        let args = [
            "--input", "d", "--epochs", "5", "--seed", "3", "-c", "x.toml",
        ];
        let typed = train_args(&[&["sage"][..], &args[..]].concat());
        let flags = train_args(&[&["--model", "sage"][..], &args[..]].concat());
        assert_eq!(
            format!("{:?}", typed.model().ok()),
            format!("{:?}", flags.model().ok())
        );
        assert!(matches!(typed.model(), Ok(TrainModel::Sage(_))));
        // A subcommand reads only its own model's flags.
        let argv = ["augur", "train", "fluxion", "--input", "d", "--epochs", "5"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}

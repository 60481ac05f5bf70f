//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Replay recorded files and write per-window feature tensors with labels (Arrow IPC).
    Record(RecordArgs),
    /// Train a model on recorded datasets; writes the next checkpoint version.
    Train(TrainArgs),
}

#[derive(Debug, Args)]
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
    /// Simulated time, e.g. `10m`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub duration: std::time::Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `random`, `none`, or a fault-plan file (TOML or JSON).
    #[arg(long, default_value = "random")]
    pub faults: String,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Compress the JSON lines with zstd (`*.jsonl.zst`).
    #[arg(long)]
    pub zstd: bool,
    /// Multiplies the topology's request rate.
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Directory with traces.otlp.jsonl[.zst|.gz] and metrics.otlp.jsonl[...].
    #[arg(long)]
    pub input: PathBuf,
    /// Write alerts as JSON lines here (otherwise they're printed).
    #[arg(long)]
    pub alerts_out: Option<PathBuf>,
    /// Detector to run (default: the config's `detector.name`).
    #[arg(long)]
    pub detector: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Directory with the recorded files and labels.json.
    #[arg(long)]
    pub input: PathBuf,
    /// Detector(s) to score, comma-separated, or `all` (default: the config's `detector.name`).
    #[arg(long)]
    pub detector: Option<String>,
    /// Print one JSON object per detector (one per line) instead of a table.
    #[arg(long)]
    pub json: bool,
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
    #[arg(long)]
    pub input: PathBuf,
    /// Arrow IPC file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Model to train.
    #[arg(long, default_value = "seer")]
    pub model: String,
    /// Dataset(s) written by `augur record`; repeat for several.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Seed of weight initialization and shuffling.
    #[arg(long, default_value_t = 1)]
    pub seed: i64,
    /// Checkpoint directory (default: the config's `detector.seer.models_dir`).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Checkpoint version to write (default: the newest in the directory + 1).
    #[arg(long)]
    pub version: Option<u64>,
    /// Windows of history per prediction (default 5).
    #[arg(long)]
    pub history: Option<usize>,
    /// LSTM hidden size (default 48).
    #[arg(long)]
    pub hidden: Option<i64>,
    /// libtorch intra-op threads.
    #[arg(long)]
    pub threads: Option<usize>,
}

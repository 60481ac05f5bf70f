//! One module per `augur` command, and what they share.

pub mod alerts;
pub mod closed_loop;
pub mod demo;
pub mod diagnose;
pub mod eval;
pub mod eval_cases;
pub mod eval_report;
pub mod record;
pub mod replay;
pub mod run;
pub mod sim_eval;
pub mod simulate;
pub mod supervise;
pub mod train;
pub mod train_fluxion;
pub mod train_normal;
pub mod train_sage;
pub mod train_seer;
pub mod twin;
pub mod validate;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use augur_connectors::otlp::MetricNames;
use augur_connectors::simulator::{Labels, Topology};
use augur_models::DetectorKind;
use augur_operators::qos_check::Slo;

use crate::cli::DetectorList;
use crate::config::Config;

/// The config at `path`, or the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::default()),
    }
}

/// The SLOs a built-in (or TOML) topology declares.
pub fn topology_slos(topology: &str) -> anyhow::Result<Vec<Slo>> {
    let topology =
        Topology::load(topology).with_context(|| format!("loading topology `{topology}`"))?;
    Ok(slos_of(&topology))
}

pub fn slos_of(topology: &Topology) -> Vec<Slo> {
    topology
        .slos()
        .iter()
        .map(|s| Slo {
            entry: s.entry.clone(),
            operation: s.operation.clone(),
            quantile: s.quantile,
            threshold_ms: s.threshold_ms,
            error_rate: None,
        })
        .collect()
}

/// Metric names: the semantic-convention defaults plus the config's extras.
pub fn metric_names(config: &Config) -> MetricNames {
    config
        .metrics
        .names
        .iter()
        .fold(MetricNames::default(), |names, (name, resource)| {
            names.with(name, *resource)
        })
}

/// How long a stop of `augur run` may take before the process exits anyway.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// A flag set on the first Ctrl-C / SIGTERM; a second one exits at once.
pub fn stop_on_signal() -> Arc<AtomicBool> {
    stop_on_signal_within(None)
}

/// [`stop_on_signal`], and with `grace` the first signal also exits after that long. One
/// handler per process: commands that replay several inputs share its flag (Ctrl-C stops
/// every replay after the current one too); the first call's `grace` holds.
pub fn stop_on_signal_within(grace: Option<std::time::Duration>) -> Arc<AtomicBool> {
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    Arc::clone(STOP.get_or_init(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let installed = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                exit_now(130);
            }
            eprintln!(
                "stopping: emitting the closed windows (and committing offsets, when reading Kafka); Ctrl-C again to quit now"
            );
            if let Some(grace) = grace {
                exit_after(grace);
            }
        });
        if let Err(e) = installed {
            tracing::warn!("cannot install the Ctrl-C handler: {e}");
        }
        stop
    }))
}

/// Ends the process at once, without the exit handlers `std::process::exit` runs: those
/// include libtorch's C++ static destructors, which must not run while a model thread is
/// still inside libtorch (a quit that doesn't wait for the threads: a second Ctrl-C, the
/// stop watchdog); the thread's next operation then fails on the torn-down context
/// (`Invalid (backend, op) pair`) and panics as the process goes down.
#[allow(unsafe_code)]
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and is async-signal-safe; it ends every thread at
    // once, which is what quitting now means.
    unsafe { libc::_exit(code) }
}

/// A stop that can't finish (a broker that doesn't answer) must not hang the process:
/// after `grace` it exits without the last commit, which at-least-once delivery allows (a
/// restart re-reads from the previous one).
fn exit_after(grace: std::time::Duration) {
    let watchdog = std::thread::Builder::new()
        .name("augur-stop-watchdog".to_string())
        .spawn(move || {
            std::thread::sleep(grace);
            eprintln!(
                "still stopping after {} s: exiting now (a restart resumes from the last commit)",
                grace.as_secs()
            );
            exit_now(1);
        });
    if let Err(e) = watchdog {
        eprintln!("warning: no stop watchdog ({e}); a second Ctrl-C or SIGTERM quits now");
    }
}

/// The SLOs to check: the config's, else those of the built-in topology named in the
/// input's `labels.json` (a simulator recording). Otherwise none, said once on stderr: a
/// recording of another application is never checked against a simulator topology's SLO.
pub fn resolve_slos(config: &Config, input: &Path) -> anyhow::Result<Vec<Slo>> {
    if !config.slo.is_empty() {
        return Ok(config.slo.clone());
    }
    let topology = input
        .join("labels.json")
        .is_file()
        .then(|| read_labels::<Labels>(input))
        .transpose()?
        .and_then(|labels| labels.topology().map(str::to_owned));
    if let Some(topology) = &topology
        && augur_connectors::simulator::Topology::load(topology).is_ok()
    {
        return topology_slos(topology);
    }
    eprintln!(
        "warning: no [[slo]] in the config{}: no end-to-end latency is checked (no QoS \
         verdicts); diagnoses that need none (`augur diagnose`, --detector evidence) still \
         work. Add `[[slo]] entry = \"<root service>\" quantile = 0.99 threshold_ms = ...`.",
        match &topology {
            Some(t) => format!(" and `{t}` is not a built-in topology"),
            None => String::new(),
        }
    );
    Ok(Vec::new())
}

/// The SLOs of a job without labels: the config's, else those of the config's simulator
/// topology (what `augur simulate --kafka` produces), said on stderr with the entry point
/// they check, since for any other application they are the wrong ones.
pub fn job_slos(config: &Config) -> anyhow::Result<Vec<Slo>> {
    if !config.slo.is_empty() {
        return Ok(config.slo.clone());
    }
    let slos = topology_slos(&config.simulator.topology)
        .context("no [[slo]] in the config, and the simulator topology gives none")?;
    let entries: Vec<&str> = slos.iter().map(|s| s.entry.as_str()).collect();
    eprintln!(
        "warning: no [[slo]] in the config: checking the SLOs of the simulator topology `{}` \
         (entry {}), right only for input from `augur simulate`; for your application add \
         `[[slo]] entry = \"<root service>\" quantile = 0.99 threshold_ms = ...`",
        config.simulator.topology,
        entries.join(", ")
    );
    Ok(slos)
}

/// A time on the command line: RFC 3339 or ms since the epoch.
pub fn parse_time_ms(text: &str) -> anyhow::Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("`{text}` is not an RFC 3339 time or ms since the epoch"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0))
}

/// The detectors `--detector` names (`a,b`, `all`, or the config's when absent), each built
/// once so a bad model fails before any input is read.
pub fn detector_list(
    arg: Option<&DetectorList>,
    config: &Config,
) -> anyhow::Result<Vec<DetectorKind>> {
    let detectors = match arg {
        None => vec![config.detector.name],
        Some(list) => list.0.clone(),
    };
    for kind in &detectors {
        augur_models::build(*kind, &config.detector.settings(), config.window.horizon_ms)?;
    }
    Ok(detectors)
}

/// `DIR/labels.json`, typed: [`Labels`] (or any form it deserializes to).
pub fn read_labels<T: serde::de::DeserializeOwned>(input: &Path) -> anyhow::Result<T> {
    let path = input.join("labels.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Loads the learned normal `[detector.evidence] normal` names (from `[diagnose]
/// normal_dir`) into `config` for the `evidence` detector of a job, and returns the log
/// template miners restored from it, so the job's template ids are the normal's. Says on
/// stderr which normal the job serves, or, when `evidence` runs without one, that the
/// windows before are its only normal.
pub fn load_job_normal(
    config: &mut Config,
    detectors: &[DetectorKind],
) -> anyhow::Result<augur_operators::LogMiners> {
    use augur_models::evidence::NormalProfile;
    let Some(name) = config.detector.evidence.normal.clone() else {
        if detectors.contains(&DetectorKind::Evidence) {
            eprintln!(
                "evidence: no learned normal ([detector.evidence] normal): moves are judged against the windows before only"
            );
        }
        return Ok(augur_operators::LogMiners::default());
    };
    let path = config
        .diagnose
        .normal_dir
        .join(NormalProfile::file_name(&name));
    let normal = NormalProfile::load(&path).with_context(|| {
        format!("[detector.evidence] normal = {name:?} (learn it with `augur train normal --name {name}`)")
    })?;
    let normal = Arc::new(normal);
    let miners = serve_normal(config, &path, Arc::clone(&normal))?;
    eprintln!(
        "evidence: learned normal {} ({} services, {} windows with requests)",
        path.display(),
        normal.services.len(),
        normal.windows
    );
    Ok(miners)
}

/// Hands the learned `normal` (read from `path`) to the `evidence` detector of `config`,
/// and returns the log template miners restored from it, for the job's replay or run.
pub fn serve_normal(
    config: &mut Config,
    path: &Path,
    normal: Arc<augur_models::evidence::NormalProfile>,
) -> anyhow::Result<augur_operators::LogMiners> {
    let miners = augur_operators::LogMiners::restore(&normal.miner_snapshots(path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    config.detector.evidence.learned = augur_models::evidence::LearnedNormal(Some(normal));
    Ok(miners)
}

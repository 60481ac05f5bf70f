//! `augur train --model sage --input DIR [--input DIR ...] [--name sage-T] [--epochs N]`:
//! replay simulator output (or any recorded OTLP files) through the same dataflow, keep
//! every window snapshot, and train Sage's GVAE on them — unlabelled: `labels.json` is
//! read only for the topology name (the SLOs and the default checkpoint name), never for
//! its faults. Writes the next version of `sage-<topology>` into `--models-dir`, else the
//! config's `detector.sage.models_dir`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use augur_connectors::simulator::Labels;
use augur_models::checkpoint::latest_version;
use augur_models::device::resolve;
use augur_models::sage::{GvaeHyper, SageTrainSettings, check_windows, train};
use augur_operators::{Resource, WindowSnapshot};

use crate::cli::{SageTrainArgs, TrainCommon};
use crate::commands::{load_config, metric_names, read_labels, resolve_slos, stop_on_signal};
use crate::config::Config;
use crate::dataflow::JobSpec;
use crate::run::{RunOptions, run as run_job};
use crate::source::{FileSource, WorkerSource, input_files};

/// Every window snapshot of one replay of `input`.
pub fn replay_windows(
    config: &crate::config::Config,
    input: &std::path::Path,
    workers: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Vec<WindowSnapshot>> {
    input_files(input)?;
    let slos = resolve_slos(config, input)?;
    let names = metric_names(config);
    let dir = input.to_path_buf();
    let spec = JobSpec {
        decide_log: None,
        graph_board: None,
        log_miners: Default::default(),
        config: config.clone(),
        slos,
        detectors: Vec::new(),
        workers,
    };
    let make_source = move |index: usize, peers: usize| -> anyhow::Result<Box<dyn WorkerSource>> {
        Ok(Box::new(FileSource::open(
            &dir,
            names.clone(),
            index,
            peers,
        )?))
    };
    let outcome = run_job(
        spec,
        make_source,
        RunOptions {
            progress: Some("input bytes"),
            keep_windows: true,
            ..RunOptions::default()
        },
        stop,
        |_| {},
        |_| {},
    )?;
    Ok(outcome.windows)
}

/// The job config of a model trained on replays (`--input DIR...`, required), with
/// libtorch's thread count set from `--threads`.
pub fn replay_training_setup(
    common: &TrainCommon,
    input: &[PathBuf],
    model: &str,
) -> anyhow::Result<Config> {
    let config = load_config(common.job.config.as_deref())?;
    if input.is_empty() {
        bail!(
            "--model {model} trains on replays: give --input DIR (written by `augur simulate --out`)"
        );
    }
    if let Some(threads) = common.threads {
        augur_models::runtime::set_threads(threads);
    }
    Ok(config)
}

/// `--name`, else `<model>-<topology>` (a normal: `<topology>`) from the first input's
/// labels.json. Sage and
/// Fluxion find their checkpoints by the `<model>-` prefix, so a name without it gets it
/// (`--name shop` writes `sage-shop`); a learned normal's file adds its own prefix.
pub fn checkpoint_name(
    name: Option<&str>,
    input: &[PathBuf],
    model: &str,
) -> anyhow::Result<String> {
    if let Some(name) = name {
        let prefix = format!("{model}-");
        if model == "normal" || name.starts_with(&prefix) {
            return Ok(name.to_string());
        }
        return Ok(format!("{prefix}{name}"));
    }
    let labels: Labels = read_labels(&input[0])?;
    let topology = labels
        .topology()
        .context("labels.json names no topology; give --name")?;
    if model == "normal" {
        // Written as `normal-<name>.json`.
        return Ok(topology.to_string());
    }
    Ok(format!("{model}-{topology}"))
}

pub fn run(args: &SageTrainArgs) -> anyhow::Result<()> {
    let config = replay_training_setup(&args.common, &args.input, "sage")?;
    let name = checkpoint_name(args.name.as_deref(), &args.input, "sage")?;
    let mut windows = Vec::new();
    let stop = stop_on_signal();
    for input in &args.input {
        let w = replay_windows(
            &config,
            input,
            args.common.job.workers,
            std::sync::Arc::clone(&stop),
        )
        .with_context(|| format!("replaying {}", input.display()))?;
        println!("{}: {} windows", input.display(), w.len());
        windows.extend(w);
    }
    // Written to the configured directory (created if needed), never to the cache of
    // shipped checkpoints the detector reads when it doesn't exist.
    let dir = args
        .common
        .models_dir
        .clone()
        .unwrap_or_else(|| config.detector.sage.models_dir.clone());
    let version = args
        .common
        .version
        .unwrap_or_else(|| latest_version(&dir, &name).map_or(1, |v| v + 1));
    let defaults = SageTrainSettings::default();
    let x_resources = if args.x_resources.is_empty() {
        defaults.x_resources.clone()
    } else {
        Resource::ALL
            .into_iter()
            .filter(|r| args.x_resources.iter().any(|a| a == r.as_str()))
            .collect()
    };
    let resources_arg = x_resources
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let settings = SageTrainSettings {
        epochs: args.epochs(),
        seed: args.common.seed,
        x_resources,
        ..defaults
    };
    let useful = check_windows(&windows, &settings)
        .with_context(|| format!("too little data to train {name}"))?;
    println!("training {name} on {useful} windows with requests and RPC calls");
    let provenance = format!(
        "augur train --model sage --name {name} --epochs {} --seed {} --x-resources {resources_arg} {}",
        args.epochs(),
        args.common.seed,
        args.input
            .iter()
            .map(|p| format!("--input {}", p.display()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let device = resolve(config.detector.sage.device)?;
    let start = std::time::Instant::now();
    let mut model = train(
        &windows,
        &name,
        GvaeHyper::default(),
        &settings,
        provenance,
        device,
        |epoch, loss| {
            if epoch == 1 || epoch % 5 == 0 || epoch == args.epochs() {
                println!("epoch {epoch:>3}: loss {loss:.4}");
            }
        },
    )?;
    model.layout.version = version;
    let path = model.save(&dir)?;
    println!(
        "wrote {} ({} units, {} RPCs, {} parameters; {} windows, {} violating) in {:.1} s",
        path.display(),
        model.layout.cbn.units.len(),
        model.layout.cbn.rpcs.len(),
        model.parameters(),
        model.layout.windows,
        model.layout.violating,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::checkpoint_name;

    /// The detectors look for `sage-*` and `fluxion-*`: `--name shop` must give a checkpoint
    /// they find, and a name that has the prefix keeps it once.
    #[test]
    fn a_checkpoint_name_gets_its_models_prefix() {
        let name = |n: &str, model: &str| checkpoint_name(Some(n), &[], model).unwrap_or_default();
        assert_eq!(name("shop", "sage"), "sage-shop");
        assert_eq!(name("sage-shop", "sage"), "sage-shop");
        assert_eq!(name("shop", "fluxion"), "fluxion-shop");
        assert_eq!(name("shop", "normal"), "shop");
    }

    /// Without `--name`, the topology in labels.json names the checkpoint; a normal's file
    /// adds `normal-` itself, so its name is the topology alone.
    #[test]
    fn a_default_name_comes_from_the_topology() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("labels.json"), r#"{"topology": "shop"}"#)?;
        let input = [dir.path().to_path_buf()];
        assert_eq!(checkpoint_name(None, &input, "sage")?, "sage-shop");
        assert_eq!(checkpoint_name(None, &input, "normal")?, "shop");
        Ok(())
    }
}

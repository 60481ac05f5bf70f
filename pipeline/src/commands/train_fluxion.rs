//! `augur train --model fluxion --input DIR [--input DIR ...] [--name fluxion-T]`: replay
//! simulator output (or any recorded OTLP files) through the same dataflow, keep every
//! window, and fit Fluxion's inference graph on them (every vertex, leaves → entry). Writes
//! the next version of `fluxion-<topology>` (one JSON file with the command that made it)
//! into `--models-dir`, else the config's `detector.fluxion.models_dir`. `labels.json` is
//! read only for the topology name.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use augur_models::fluxion::{
    AssignmentSettings, FluxionCheckpoint, InferenceGraph, P90, Sample, latest_version, sample,
};

use crate::cli::FluxionTrainArgs;
use crate::commands::stop_on_signal;
use crate::commands::train_sage::{checkpoint_name, replay_training_setup, replay_windows};

pub fn run(args: &FluxionTrainArgs) -> anyhow::Result<()> {
    let config = replay_training_setup(&args.common, &args.input, "fluxion")?;
    augur_models::runtime::seed(args.common.seed);
    let name = checkpoint_name(args.name.as_deref(), &args.input, "fluxion")?;
    let stop = stop_on_signal();
    let mut samples: Vec<Sample> = Vec::new();
    for input in &args.input {
        let windows = replay_windows(
            &config,
            input,
            args.common.job.workers,
            std::sync::Arc::clone(&stop),
        )
        .with_context(|| format!("replaying {}", input.display()))?;
        let before = samples.len();
        samples.extend(
            windows
                .iter()
                .filter(|w| !w.services.is_empty())
                .map(sample),
        );
        println!("{}: {} windows", input.display(), samples.len() - before);
    }
    let Some(entry) = samples
        .iter()
        .find_map(|s| s.entry.as_ref().map(|e| e.0.clone()))
    else {
        bail!("no window measured an entry point's end-to-end latency (no SLO?)");
    };
    let start = std::time::Instant::now();
    let graph = InferenceGraph::fit(&samples, &entry, AssignmentSettings::default());
    let fit_s = start.elapsed().as_secs_f64();
    // Training error of the end-to-end p90 (composed through the graph).
    let predicted = graph.predict_batch(&samples);
    let (sum, n) = samples
        .iter()
        .zip(&predicted)
        .filter_map(|(s, p)| Some((s.e2e(&entry)?[P90], p.get(&entry)?[P90])))
        .fold((0.0f64, 0usize), |(sum, n), (a, b)| {
            (sum + f64::from((a - b).abs()), n + 1)
        });
    // Written to the configured directory (created if needed), never to the cache of
    // shipped checkpoints the detector reads when it doesn't exist.
    let dir = match &args.common.models_dir {
        Some(dir) => dir.clone(),
        None if config.detector.fluxion.models_dir.as_os_str().is_empty() => {
            bail!("detector.fluxion.models_dir is empty; give --models-dir")
        }
        None => config.detector.fluxion.models_dir.clone(),
    };
    let version = args
        .common
        .version
        .unwrap_or_else(|| latest_version(&dir, &name).map_or(1, |v| v + 1));
    let provenance = format!(
        "augur train --model fluxion --name {name} --seed {} {}",
        args.common.seed,
        args.input
            .iter()
            .map(|p| format!("--input {}", p.display()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let services: BTreeSet<String> = graph.services().cloned().collect();
    let checkpoint = FluxionCheckpoint {
        name,
        version,
        provenance,
        windows: samples.len(),
        services: services.into_iter().collect(),
        graph: graph.state(),
    };
    let path = checkpoint.save(&dir)?;
    println!(
        "wrote {} ({} services, entry {entry}; {} windows; training MAE of end-to-end p90 {:.2} ms) in {fit_s:.1} s",
        path.display(),
        checkpoint.services.len(),
        samples.len(),
        if n == 0 { 0.0 } else { sum / n as f64 }
    );
    Ok(())
}

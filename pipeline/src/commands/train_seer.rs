//! `augur train seer --data FILE.arrow [--data ...] [--epochs N]`: train a Seer
//! model on recorded datasets and write the next checkpoint version into `--models-dir`,
//! else the config's `detector.seer.models_dir`, with a progress bar and a validation
//! score per epoch.

use anyhow::bail;
use augur_models::checkpoint::latest_version;
use augur_models::device::resolve;
use augur_models::seer::{Dataset, Layout, TrainSettings, train};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{CulpritFrom, SeerTrainArgs};
use crate::commands::load_config;

pub fn run(args: &SeerTrainArgs) -> anyhow::Result<()> {
    if args.data.is_empty() {
        bail!(
            "--model seer trains on datasets: give --data FILE.arrow (written by `augur record`)"
        );
    }
    let config = load_config(args.common.job.config.as_deref())?;
    let seer = &config.detector.seer;
    if let Some(threads) = args.common.threads {
        augur_models::runtime::set_threads(threads);
    }
    let datasets: Vec<Dataset> = args
        .data
        .iter()
        .map(|p| {
            let ds = Dataset::read(p)?;
            if args.seer.features.is_empty() {
                return Ok(ds);
            }
            ds.select_features(&args.seer.features).map_err(|missing| {
                anyhow::anyhow!(
                    "--features: {} has no feature `{missing}` (it has {})",
                    p.display(),
                    ds.features.join(", ")
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let Some(first) = datasets.first() else {
        bail!("no --data given");
    };
    // Seer learns from windows followed by an SLO violation; without one it would write a
    // model that never fires.
    if !datasets.iter().flat_map(|d| &d.rows).any(|r| r.positive) {
        bail!(
            "no window of the {} --data file(s) ({} windows) is followed by an SLO violation: \
             Seer learns from violations and needs some. Record runs whose faults violate the \
             SLO the recording was made with (`augur simulate --faults random`, a higher \
             `--rate-scale`), or record with the application's own `[[slo]]`",
            datasets.len(),
            datasets.iter().map(|d| d.rows.len()).sum::<usize>()
        );
    }
    // Services: every dataset's, in the order first seen (each is back end first).
    let mut services: Vec<String> = Vec::new();
    for ds in &datasets {
        for s in &ds.services {
            if !services.contains(s) {
                services.push(s.clone());
            }
        }
    }
    // Written to the configured directory (created if needed), never to the cache of
    // shipped checkpoints the detector reads when it doesn't exist.
    let dir = args
        .common
        .models_dir
        .clone()
        .unwrap_or_else(|| seer.models_dir.clone());
    let version = args
        .common
        .version
        .unwrap_or_else(|| latest_version(&dir, "seer").map_or(1, |v| v + 1));
    let mut settings = TrainSettings {
        epochs: args.epochs(),
        seed: args.common.seed,
        ..TrainSettings::default()
    };
    if let Some(h) = args.seer.history {
        settings.hyper.history = h;
    }
    if let Some(hidden) = args.seer.hidden {
        settings.hyper.hidden = hidden;
    }
    if let Some(w) = args.seer.ahead_weight {
        settings.ahead_weight = w;
    }
    settings.hyper.members = args.members();
    settings.select_ahead = args.seer.select_ahead;
    settings.hyper.culprit_inputs = args.culprit_from() == CulpritFrom::Inputs;
    let layout = Layout {
        model: "seer".into(),
        version,
        services,
        features: first.features.clone(),
        hyper: settings.hyper.clone(),
        mean: Vec::new(),
        std: Vec::new(),
        threshold: 0.5,
        window_ms: first.window_ms,
        horizon_ms: first.horizon_ms,
        provenance: format!(
            "augur train --model seer --epochs {} --seed {} --history {} --ahead-weight {} --members {}{} --culprit-from {}{} {}",
            args.epochs(),
            args.common.seed,
            settings.hyper.history,
            settings.ahead_weight,
            args.members(),
            if settings.select_ahead {
                " --select-ahead"
            } else {
                ""
            },
            args.culprit_from().as_str(),
            if args.seer.features.is_empty() {
                String::new()
            } else {
                format!(" --features {}", args.seer.features.join(","))
            },
            args.data
                .iter()
                .map(|p| format!("--data {}", p.display()))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    let device = resolve(seer.device)?;
    println!(
        "training seer v{version}: {} windows from {} file(s), {} services × {} features, H = {}, on {device:?}",
        datasets.iter().map(|d| d.rows.len()).sum::<usize>(),
        datasets.len(),
        layout.services.len(),
        layout.features.len(),
        settings.hyper.history
    );
    let bar = ProgressBar::new(args.epochs() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let model = train(&datasets, layout, &settings, device, |r| {
        let line = format!(
            "epoch {:>3}: loss {:.4}  validation recall {:.3} (ahead {:.3}) FPR {:.3} culprit AC@1 {:.3}  ({:.1} s)",
            r.epoch,
            r.train_loss,
            r.val_recall,
            r.val_ahead_recall,
            r.val_fpr,
            r.val_ac1,
            r.seconds
        );
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    let path = model.save(&dir)?;
    println!(
        "wrote {} (threshold {:.2}, {} parameters) in {:.1} s",
        path.display(),
        model.layout.threshold,
        model
            .vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum::<usize>(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

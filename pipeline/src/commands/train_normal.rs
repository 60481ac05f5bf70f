//! `augur train normal --input DIR [--input DIR ...] [--name N]`: learn an
//! application's normal from any OTLP directory of its fault-free telemetry, no labels:
//! every window of the replays pooled per service, and the log template miners that mined
//! them ([`NormalProfile`]). Writes `normal-<name>.json` into `--models-dir`, else the
//! config's `diagnose.normal_dir`, where `augur diagnose` and `augur eval --cases` find it.

use anyhow::Context;
use augur_models::evidence::NormalProfile;
use augur_operators::LogMiners;

use crate::cli::NormalTrainArgs;
use crate::commands::diagnose::{Shown, windows_of};
use crate::commands::load_config;
use crate::commands::train_sage::checkpoint_name;

pub fn run(args: &NormalTrainArgs) -> anyhow::Result<()> {
    let config = load_config(args.common.job.config.as_deref())?;
    if args.input.is_empty() {
        anyhow::bail!(
            "--model normal learns from recorded telemetry: give --input DIR (OTLP files of the application running normally)"
        );
    }
    let name = checkpoint_name(args.name.as_deref(), &args.input, "normal")?;
    // One set of miners for every input: one template id per template across them.
    let miners = LogMiners::default();
    let mut windows = Vec::new();
    for input in &args.input {
        let (w, _) = windows_of(
            &config,
            Some(input.clone()),
            None,
            args.common.job.workers,
            Shown::ProgressAndSummary,
            &[],
            &miners,
        )
        .with_context(|| format!("replaying {}", input.display()))?;
        println!("{}: {} windows", input.display(), w.len());
        windows.extend(w);
    }
    let profile = NormalProfile::learn(&name, &windows, &miners.snapshots())
        .with_context(|| format!("learning the normal {name}"))?;
    let dir = args
        .common
        .models_dir
        .clone()
        .unwrap_or_else(|| config.diagnose.normal_dir.clone());
    let path = profile.save(&dir)?;
    println!(
        "wrote {}: {} services, {} windows with requests, {} to {}",
        path.display(),
        profile.services.len(),
        profile.windows,
        augur_operators::decide::rfc3339(profile.from_ms),
        augur_operators::decide::rfc3339(profile.to_ms),
    );
    Ok(())
}

//! `augur diagnose --at TIME (--input DIR | --brokers B)`: replay the telemetry around a
//! moment and rank the services whose own signals moved at it, with the evidence
//! ([`augur_models::evidence`]). No model, SLO or labels needed.

use std::sync::Arc;

use anyhow::Context;
use augur_models::evidence::{Diagnosis, EvidenceParams, diagnose};
use augur_operators::WindowSnapshot;

use crate::cli::DiagnoseArgs;
use crate::commands::replay::topic_source_spec;
use crate::commands::{load_config, metric_names, parse_time_ms, stop_on_signal};
use crate::config::Config;
use crate::dataflow::JobSpec;
use crate::job_metrics::JobMetrics;
use crate::run::{RunOptions, run as run_job};
use crate::source::input_files;
use crate::source::replay_sources;

pub fn run(args: &DiagnoseArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.job.config.as_deref())?;
    let at = parse_time_ms(&args.at).context("--at")?;
    if let Some(d) = args.before {
        config.diagnose.before_ms = d.as_millis() as u64;
    }
    if let Some(d) = args.after {
        config.diagnose.after_ms = d.as_millis() as u64;
    }
    let params = config.diagnose.clone();
    let (input, topic) = match &args.input {
        Some(input) => {
            input_files(input)?;
            (Some(input.clone()), None)
        }
        None => {
            // Only the records the diagnosis reads.
            let mut topics = args.topics.clone();
            topics.from = Some(at.saturating_sub(params.before_ms).to_string());
            topics.to = Some((at + params.after_ms).to_string());
            let spec = topic_source_spec(&config, &topics, metric_names(&config))?;
            (None, Some(spec))
        }
    };
    let (windows, _) = windows_of(&config, input, topic, args.job.workers, !args.json, &[])?;
    let d = diagnose(&windows, at, &params);
    if args.json {
        println!("{}", serde_json::to_string(&d)?);
    } else {
        print!("{}", table(&d, &params));
    }
    if d.windows_before == 0 || d.windows_after == 0 {
        anyhow::bail!(
            "no requests {} {}: the input covers {}",
            if d.windows_before == 0 {
                "before"
            } else {
                "after"
            },
            augur_operators::decide::rfc3339(at),
            coverage(&windows)
        );
    }
    Ok(())
}

/// Every closed window of a replay of files or a topic range, and the alerts of the
/// `detectors` run on it (none: no alerts).
pub fn windows_of(
    config: &Config,
    input: Option<std::path::PathBuf>,
    topic: Option<crate::source::KafkaSourceSpec>,
    workers: usize,
    progress: bool,
    detectors: &[String],
) -> anyhow::Result<(Vec<WindowSnapshot>, Vec<augur_operators::Alert>)> {
    let names = metric_names(config);
    let has_input = input.is_some();
    let spec = JobSpec {
        decide_log: None,
        graph_board: None,
        config: config.clone(),
        slos: config.slo.clone(),
        detectors: detectors.to_vec(),
        workers,
    };
    let metrics = Arc::new(JobMetrics::default());
    let outcome = run_job(
        spec,
        replay_sources(input, topic, names, metrics),
        RunOptions {
            progress: progress.then_some(if has_input { "input bytes" } else { "offsets" }),
            keep_windows: true,
            ..RunOptions::default()
        },
        stop_on_signal(),
        |_| {},
        |_| {},
    )?;
    Ok((outcome.windows, outcome.alerts))
}

/// The time range the windows cover, for errors.
fn coverage(windows: &[WindowSnapshot]) -> String {
    match (windows.first(), windows.last()) {
        (Some(a), Some(b)) => format!(
            "{} to {}",
            augur_operators::decide::rfc3339(a.window_end.saturating_sub(a.window_ms)),
            augur_operators::decide::rfc3339(b.window_end)
        ),
        _ => "no windows".into(),
    }
}

/// The diagnosis as a readable table.
pub fn table(d: &Diagnosis, params: &EvidenceParams) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "diagnosis at {}: {} windows before (normal, {} s), {} after ({} s)",
        augur_operators::decide::rfc3339(d.at),
        d.windows_before,
        params.before_ms / 1000,
        d.windows_after,
        params.after_ms / 1000
    );
    if d.culprits.is_empty() {
        let _ = writeln!(out, "no service's own signals moved significantly");
    }
    for (rank, c) in d.culprits.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>2}. {:<32} score {:>7.2}  resource {}",
            rank + 1,
            c.service,
            c.score,
            c.resource
        );
        for e in &c.evidence {
            let on =
                e.on.as_deref()
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default();
            let _ = writeln!(
                out,
                "      {:?}{on}: {:.3} -> {:.3} (z {:.1})",
                e.signal, e.before, e.after, e.z
            );
        }
    }
    out
}

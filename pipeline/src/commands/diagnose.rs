//! `augur diagnose --at TIME (--input DIR | --brokers B)`: replay the telemetry around a
//! moment and rank the services whose own signals moved at it, with the evidence
//! ([`augur_models::evidence`]). No model, SLO or labels needed.

use std::sync::Arc;

use anyhow::Context;
use augur_models::evidence::{Diagnosis, EvidenceParams, NormalProfile, diagnose_with_normal};
use augur_operators::{LogMiners, WindowSnapshot};

use crate::cli::DiagnoseArgs;
use crate::commands::replay::topic_source_spec;
use crate::commands::{load_config, metric_names, parse_time_ms, serve_normal, stop_on_signal};
use crate::config::Config;
use crate::dataflow::JobSpec;
use crate::job_metrics::JobMetrics;
use crate::run::{RunOptions, run as run_job};
use crate::source::replay_sources;
use crate::source::{input_files, services_in_head};

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
    let replay = replay_with_normal(&config, input, topic, args.job.workers, !args.json, &[])?;
    let windows = replay.windows;
    let d = diagnose_with_normal(&windows, at, &params, replay.normal.as_deref());
    if args.json {
        println!("{}", serde_json::to_string(&d)?);
    } else {
        print!("{}", table(&d, &params));
    }
    // A moment outside the data is an error; one inside it with no requests on a side
    // (an application without tracing, a gap in its traces) is read from metrics and logs.
    let telemetry = |from: u64, to: u64| {
        windows
            .iter()
            .any(|w| w.window_end > from && w.window_end <= to)
    };
    let before = telemetry(at.saturating_sub(params.before_ms), at);
    let after = telemetry(at, at + params.after_ms);
    if d.culprits.is_empty() && !(before && after) {
        anyhow::bail!(
            "no telemetry {} {}: the input covers {}",
            if before { "after" } else { "before" },
            augur_operators::decide::rfc3339(at),
            coverage(&windows)
        );
    }
    Ok(())
}

/// Lines of each input file looked at to guess the learned normal before the replay: an
/// OTLP export request per line holds many spans, so a few lines name most services.
const HEAD_LINES: usize = 100;

/// A replay's windows and alerts, and the learned normal that fits its services.
pub struct Replay {
    pub windows: Vec<WindowSnapshot>,
    pub alerts: Vec<augur_operators::Alert>,
    pub normal: Option<Arc<NormalProfile>>,
}

/// [`windows_of`], with the learned normal in `diagnose.normal_dir` that knows the most of
/// the replay's services (at least half; said on stderr either way). The input is read with
/// that normal's template miners restored, so its template ids are the normal's, and the
/// `detectors` judge against it. Which normal fits is known only from the services read; the
/// first read takes the likely one ([`NormalProfile::guess`]: the one the config's
/// `[detector.evidence] normal` names, else the only one there is, else the one that knows
/// the services of the input's first lines), and the input is read again only when another
/// fits, or none does and detectors ran.
pub fn replay_with_normal(
    config: &Config,
    input: Option<std::path::PathBuf>,
    topic: Option<crate::source::KafkaSourceSpec>,
    workers: usize,
    progress: bool,
    detectors: &[augur_models::DetectorKind],
) -> anyhow::Result<Replay> {
    let dir = &config.diagnose.normal_dir;
    let seen = match &input {
        Some(input) => services_in_head(input, HEAD_LINES, &metric_names(config))?,
        None => Default::default(),
    };
    let guess = NormalProfile::guess(dir, config.detector.evidence.normal.as_deref(), &seen)?
        .map(|(path, normal)| (path, Arc::new(normal)));
    let mut first = config.clone();
    let miners = match &guess {
        Some((path, normal)) => serve_normal(&mut first, path, Arc::clone(normal))?,
        None => LogMiners::default(),
    };
    let (windows, alerts) = windows_of(
        &first,
        input.clone(),
        topic.clone(),
        workers,
        if progress {
            Shown::ProgressAndSummary
        } else {
            Shown::Summary
        },
        detectors,
        &miners,
    )?;
    let services: std::collections::BTreeSet<String> = windows
        .iter()
        .flat_map(|w| {
            w.services
                .iter()
                .map(|s| s.service.clone())
                .chain(w.logs.iter().map(|l| l.service.clone()))
        })
        .collect();
    let found = NormalProfile::find(dir, &services)?;
    match &found {
        Some((path, normal, overlap)) => eprintln!(
            "normal: {} ({} windows; knows {:.0} % of the {} services seen)",
            path.display(),
            normal.windows,
            overlap * 100.0,
            services.len()
        ),
        None => eprintln!(
            "normal: none learned for these services in {} (augur train --model normal): the normal is the telemetry's own, before the moment",
            dir.display()
        ),
    }
    let found_path = found.as_ref().map(|(path, ..)| path);
    let read_with = guess.as_ref().map(|(path, _)| path);
    // Read again when the first read took another normal than the one that fits and that
    // matters: the detectors judged against it, or the one that fits numbers templates.
    let read_again = found_path != read_with
        && (!detectors.is_empty() || found.as_ref().is_some_and(|(_, n, _)| n.has_miners()));
    let found = found.map(|(path, normal, _)| (path, Arc::new(normal)));
    if !read_again {
        return Ok(Replay {
            windows,
            alerts,
            normal: found.map(|(_, normal)| normal),
        });
    }
    let mut config = config.clone();
    let miners = match &found {
        Some((path, normal)) => {
            eprintln!(
                "reading the input again with {}'s log templates{}",
                path.display(),
                if detectors.is_empty() {
                    ""
                } else {
                    " and the detectors judging against it"
                }
            );
            serve_normal(&mut config, path, Arc::clone(normal))?
        }
        None => {
            eprintln!("reading the input again: the detectors judged it against another normal");
            LogMiners::default()
        }
    };
    let (windows, alerts) = windows_of(
        &config,
        input,
        topic,
        workers,
        Shown::Nothing,
        detectors,
        &miners,
    )?;
    Ok(Replay {
        windows,
        alerts,
        normal: found.map(|(_, normal)| normal),
    })
}

/// What a replay shows on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// A progress bar, then the summary of the input (span shape, metrics not read).
    ProgressAndSummary,
    /// The summary only.
    Summary,
    /// Nothing: a second read of an input already summarized.
    Nothing,
}

/// Every closed window of a replay of files or a topic range, and the alerts of the
/// `detectors` run on it (none: no alerts); log templates are mined by `miners`.
pub fn windows_of(
    config: &Config,
    input: Option<std::path::PathBuf>,
    topic: Option<crate::source::KafkaSourceSpec>,
    workers: usize,
    shown: Shown,
    detectors: &[augur_models::DetectorKind],
    miners: &LogMiners,
) -> anyhow::Result<(Vec<WindowSnapshot>, Vec<augur_operators::Alert>)> {
    let names = metric_names(config);
    let has_input = input.is_some();
    let spec = JobSpec {
        decide_log: None,
        graph_board: None,
        log_miners: miners.clone(),
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
            progress: (shown == Shown::ProgressAndSummary).then_some(if has_input {
                "input bytes"
            } else {
                "offsets"
            }),
            keep_windows: true,
            quiet: shown == Shown::Nothing,
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
        "diagnosis at {}: {} windows before (normal, {} s{}), {} after ({} s)",
        augur_operators::decide::rfc3339(d.at),
        d.windows_before,
        params.before_ms / 1000,
        if d.history_windows > 0 {
            format!(
                ", with {} fault-free windows from earlier in the telemetry",
                d.history_windows
            )
        } else {
            String::new()
        },
        d.windows_after,
        params.after_ms / 1000
    );
    if let Some(onset) = d.onset {
        let _ = writeln!(
            out,
            "a departure from the normal was under way: it began at {} ({} s before), so the normal ends and the examined range starts there",
            augur_operators::decide::rfc3339(onset),
            d.at.saturating_sub(onset) / 1000
        );
    }
    if let Some(from) = d.examined_from {
        let _ = writeln!(
            out,
            "no requests in the {} s after it: examined the {} s from the first after, {} ({} s later)",
            params.after_ms / 1000,
            params.after_ms / 1000,
            augur_operators::decide::rfc3339(from),
            from.saturating_sub(d.onset.unwrap_or(d.at)) / 1000
        );
    }
    if let Some((before, after)) = d.entry_ms {
        let _ = writeln!(
            out,
            "entry latency (services no other calls): {before:.1} ms -> {after:.1} ms per request"
        );
    }
    if d.weak {
        let _ = writeln!(
            out,
            "no move reached z {:.1}: the strongest below it (z at least {:.1}), weak evidence",
            params.min_z,
            params.min_z / 2.0
        );
    }
    if d.culprits.is_empty() {
        let _ = writeln!(out, "no service's own signals moved significantly");
    }
    if d.windows_before == 0 || d.windows_after == 0 {
        let _ = writeln!(
            out,
            "no requests {}: read from metrics and logs only",
            if d.windows_before == 0 {
                "before"
            } else {
                "after"
            }
        );
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
        if let Some(ms) = c.repair_ms
            && ms >= 0.05
        {
            let _ = writeln!(
                out,
                "      had it stayed normal: entry latency -{ms:.1} ms per request (at most)"
            );
        }
        if let Some(op) = &c.operation {
            let _ = writeln!(
                out,
                "      most in operation {}: own time {:.3} -> {:.3} ms per request",
                op.name, op.before, op.after
            );
        }
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

//! The reports of `augur eval` (replay or in-process simulation): each detector scored
//! against the run's windows and labels, printed as a table or JSON lines, and with
//! `--report DIR` written out with every alert, the RCA cases and the forecast plots.

use anyhow::Context;
use augur_connectors::simulator::Labels;

use crate::cli::EvalArgs;
use crate::eval::forecast::{self, changes_from_labels};
use crate::eval::plot;
use crate::eval::score::ScoreParams;
use crate::eval::{ModelFigures, PipelineFigures, report_for, table, window_truth};
use crate::stats::JobStats;
use augur_operators::quantile::{Rank, quantile};

/// Scores every detector of a finished run against its windows and labels, and prints the
/// reports (a table, or one JSON object per detector with `--json`).
pub fn print_reports(
    args: &EvalArgs,
    detectors: &[augur_models::DetectorKind],
    outcome: &crate::run::RunOutcome,
    labels: &Labels,
    params: ScoreParams,
    fluxion_config: &augur_models::fluxion::FluxionConfig,
    interrupted: bool,
) -> anyhow::Result<()> {
    let secs = outcome.wall.as_secs_f64().max(1e-9);
    let spans = JobStats::get(&outcome.stats.spans);
    let pipeline = PipelineFigures {
        spans,
        spans_per_s: spans as f64 / secs,
        alert_latency_ms_p99: quantile(&outcome.alert_latency_ms, 99.0 / 100.0, Rank::Nearest),
        wall_s: secs,
        workers: args.job.workers,
        dead_letters: JobStats::get(&outcome.stats.dead_letters),
        late: JobStats::get(&outcome.stats.late),
        interrupted,
        span_kinds: outcome
            .stats
            .span_kind_counts()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| (kind.to_string(), *n))
            .collect(),
        log_records: JobStats::get(&outcome.stats.log_records),
    };
    let truth = window_truth(&outcome.windows);
    let faults = &labels.faults;
    let reports: Vec<_> = detectors
        .iter()
        .map(|d| {
            let mut report = report_for(
                d.name(),
                &truth,
                &outcome.alerts,
                faults,
                params,
                pipeline.clone(),
            );
            report.model = ModelFigures::of(outcome.stats.inference.of(d.name()));
            report
        })
        .collect();
    let mut reports = reports;
    for report in reports.iter_mut().filter(|r| r.detector == "fluxion") {
        let changes = changes_from_labels(labels);
        let forecast = forecast::evaluate(
            &outcome.windows,
            &changes,
            fluxion_config,
            params.window_ms,
            params.horizon_ms,
        )
        .context("evaluating the fluxion forecasts")?;
        report.forecast = Some(forecast);
    }
    if let Some(dir) = &args.report {
        write_report(dir, &reports, labels, &outcome.alerts)?;
    }
    if args.json {
        for report in &reports {
            println!("{}", serde_json::to_string(report)?);
        }
    } else {
        println!("{}", table(&reports));
        println!(
            "pipeline: {spans} spans in {secs:.1} s ({:.0} spans/s on {} worker(s)); window-close→alert p99 {:.1} ms; {} dead letters",
            pipeline.spans_per_s,
            pipeline.workers,
            pipeline.alert_latency_ms_p99,
            pipeline.dead_letters
        );
        println!(
            "{}",
            crate::display::inference_summary(&outcome.stats.inference)
        );
        for r in &reports {
            if let Some(f) = &r.forecast {
                println!(
                    "fluxion forecast of the next window's end-to-end p90 ({} windows): MAE \
                     graph {:.2} ms, monolithic {:.2} ms; no model: last value {:.2} ms, \
                     run mean {:.2} ms\n{}",
                    f.windows,
                    f.mae_ms,
                    f.baseline_mae_ms,
                    f.persistence_mae_ms,
                    f.spread_ms,
                    forecast::change_table(f)
                );
            }
        }
    }
    Ok(())
}

/// `--report DIR`: every alert of the run (`alerts.jsonl`, as written to the alerts topic),
/// each detector's RCA cases and how each was scored (`rca-<detector>.md`, when it has
/// any), and the forecast plot and table of each report that has them.
fn write_report(
    dir: &std::path::Path,
    reports: &[crate::eval::Report],
    labels: &Labels,
    alerts: &[augur_operators::Alert],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let topology = labels.topology().unwrap_or("input");
    let seed = labels.seed;
    let mut lines = String::new();
    for alert in alerts {
        lines.push_str(&serde_json::to_string(alert)?);
        lines.push('\n');
    }
    let path = dir.join("alerts.jsonl");
    std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))?;
    let start_ms = labels.start_ms;
    for r in reports.iter().filter(|r| !r.score.cases.is_empty()) {
        let path = dir.join(format!("rca-{}.md", r.detector));
        let text = format!(
            "# {topology} seed {seed}: {} RCA cases, scored by {} (times in s from the run's start)\n\n{}",
            r.score.cases.len(),
            r.detector,
            crate::eval::score::case_table(&r.score.cases, start_ms)
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("wrote the alerts and RCA cases to {}", dir.display());
    for r in reports {
        let Some(f) = &r.forecast else {
            continue;
        };
        let title = format!(
            "{topology} seed {seed}: next-window end-to-end p90, {} forecast vs observed",
            r.detector
        );
        let svg = dir.join("forecast.svg");
        std::fs::write(&svg, plot::forecast_svg(f, &title))
            .with_context(|| format!("writing {}", svg.display()))?;
        let md = dir.join("forecast.md");
        std::fs::write(&md, format!("# {title}\n\n{}", forecast::change_table(f)))
            .with_context(|| format!("writing {}", md.display()))?;
        eprintln!("wrote {} and {}", svg.display(), md.display());
    }
    Ok(())
}

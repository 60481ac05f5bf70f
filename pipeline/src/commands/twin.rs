//! `augur twin --input DIR... [--out twin.toml]`: fit a digital twin of the application
//! whose traces are in the directories, or in a time range of Kafka topics (`--brokers B
//! --from T --to T`) (a simulator topology, see [`augur_connectors::twin`]); `augur twin
//! --check twin.toml --input DIR...`: simulate the twin at the observed load and compare
//! it with the held-back part of the same data, per service; `--baseline DIR...`: the
//! same comparison with recordings in the twin's place. Progress goes to stderr, results
//! to stdout.

use std::path::{Path, PathBuf};

use anyhow::Context;
use augur_connectors::simulator::Topology;
use augur_connectors::twin::topics::{TopicData, TopicRange, read_topics};
use augur_connectors::twin::{
    self, Comparison, FitInput, Names, Part, ServiceRow, compare, hops_of, summarize,
};
use augur_operators::records::Span;
use serde::Serialize;

use crate::cli::{TwinArgs, TwinLoad};
use crate::commands::load_config;
use crate::commands::replay::topic_choice;

/// Simulated time of a check unless `--duration` says otherwise: this many times the real
/// range checked, so the twin's side of each comparison has a tenth of the real side's
/// sampling variance; at least [`MIN_CHECK_S`], at most [`MAX_CHECK_S`] (and never less than
/// the real range).
const CHECK_TIMES_REAL: f64 = 10.0;
const MIN_CHECK_S: f64 = 600.0;
const MAX_CHECK_S: f64 = 3600.0;
/// Simulated time dropped at the start of a check (the cluster filling up), s.
const WARMUP_S: f64 = 10.0;

pub fn run(args: &TwinArgs) -> anyhow::Result<()> {
    holdout_is_valid(
        args.holdout,
        args.check.is_some() || !args.baseline.is_empty(),
    )?;
    match &args.check {
        None if !args.baseline.is_empty() => against_baseline(args),
        None => fit(args),
        Some(path) => check(args, path),
    }
}

/// A check may hold back all of its inputs (data the twin was not fitted on); a fit needs
/// some of them.
fn holdout_is_valid(holdout: f64, checking: bool) -> anyhow::Result<()> {
    if checking && (0.0..=1.0).contains(&holdout) || (0.0..1.0).contains(&holdout) {
        return Ok(());
    }
    if checking {
        anyhow::bail!("--holdout must be in [0, 1], got {holdout}");
    }
    anyhow::bail!(
        "--holdout must be in [0, 1) when fitting (1 leaves nothing to fit on), got {holdout}"
    )
}

/// Where the real data of a fit or check comes from: directories, or a range of topics
/// read once (with its metric points and a label for messages).
enum Source {
    Dirs(Vec<PathBuf>),
    Topics {
        data: TopicData,
        label: String,
        topic: String,
    },
}

impl Source {
    /// `--input`, or the `--brokers` range read now.
    fn of(args: &TwinArgs) -> anyhow::Result<Source> {
        let Some(brokers) = &args.topics.brokers else {
            return Ok(Source::Dirs(args.input.clone()));
        };
        if let Some(logs) = &args.topics.logs_topic {
            eprintln!("a twin is fitted from spans and metrics: --logs-topic {logs} is not read");
        }
        let config = load_config(args.config.as_deref())?;
        let kafka = &config.kafka;
        let topics = &args.topics;
        let choice = topic_choice(&config, topics, "twin")?;
        let range = TopicRange {
            settings: choice.settings,
            spans_topic: choice.spans_topic,
            spans_encoding: kafka.spans_encoding,
            metrics_topic: choice.metrics_topic,
            metrics_encoding: kafka.metrics_encoding,
            from_ms: choice.from_ms,
            to_ms: choice.to_ms,
            offsets_for_times: kafka.offsets_for_times,
        };
        let time = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
        let label = format!(
            "{brokers}/{} [{}, {})",
            range.spans_topic,
            time(&topics.from),
            time(&topics.to)
        );
        let data = read_topics(&range).with_context(|| format!("reading {label}"))?;
        eprintln!(
            "{label}: {} spans from {} messages, {} metric points from {} messages{}",
            data.spans.len(),
            data.messages.0,
            data.metrics.len(),
            data.messages.1,
            if data.undecodable > 0 {
                format!(
                    " ({} undecodable messages or records skipped)",
                    data.undecodable
                )
            } else {
                String::new()
            }
        );
        Ok(Source::Topics {
            data,
            label,
            topic: range.spans_topic,
        })
    }

    fn labels(&self) -> Vec<String> {
        match self {
            Source::Dirs(dirs) => dirs.iter().map(|p| p.display().to_string()).collect(),
            Source::Topics { label, .. } => vec![label.clone()],
        }
    }
}

/// The spans of one part of every input, and the total length of those parts, s. A topic
/// range's spans are taken out of `source` (each command reads one part once).
fn read_part(source: &mut Source, holdout: f64, part: Part) -> anyhow::Result<(Vec<Span>, f64)> {
    let part_name = match part {
        Part::Fit => "fitting",
        Part::Check => "held-back",
    };
    let mut all = Vec::new();
    let mut duration_s = 0.0;
    let mut take = |label: &str, spans: Vec<Span>, bad: u64| {
        let total = spans.len();
        if total == 0 {
            eprintln!("{label}: no spans, skipped");
            return;
        }
        let (kept, seconds) = twin::split(spans, holdout, part);
        eprintln!(
            "{label}: {total} spans{}, {} in the {part_name} part ({seconds:.1} s)",
            if bad > 0 {
                format!(" ({bad} undecodable records skipped)")
            } else {
                String::new()
            },
            kept.len(),
        );
        all.extend(kept);
        duration_s += seconds;
    };
    match source {
        Source::Dirs(dirs) => {
            for dir in dirs {
                let (spans, bad) =
                    twin::read_spans(dir).with_context(|| format!("reading {}", dir.display()))?;
                take(&dir.display().to_string(), spans, bad);
            }
        }
        Source::Topics { data, label, .. } => take(label, std::mem::take(&mut data.spans), 0),
    }
    if all.is_empty() {
        anyhow::bail!(
            "no spans to use in {} (nothing recorded, or nothing in the {part_name} part)",
            source.labels().join(", ")
        );
    }
    Ok((all, duration_s))
}

/// `<parent>-<dir>` of the last input, e.g. `train-ticket-2023-01-29`.
fn default_name(inputs: &[PathBuf]) -> String {
    let Some(last) = inputs.last() else {
        return "twin".into();
    };
    let abs = std::fs::canonicalize(last).unwrap_or_else(|_| last.clone());
    let name = |p: Option<&Path>| {
        p.and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    };
    match (name(abs.parent()), name(Some(&abs))) {
        (Some(parent), Some(dir)) => format!("{parent}-{dir}"),
        (None, Some(dir)) => dir,
        _ => "twin".into(),
    }
}

fn fit(args: &TwinArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut source = Source::of(args)?;
    let (spans, duration_s) = read_part(&mut source, args.holdout, Part::Fit)?;
    let mut names = Names::default();
    let hops = hops_of(&spans, &mut names);
    let telemetry = match &source {
        Source::Dirs(dirs) => {
            let dirs: Vec<&Path> = dirs.iter().map(|p| p.as_path()).collect();
            twin::read::telemetry_of(&spans, &dirs).context("reading the metrics")?
        }
        Source::Topics { data, .. } => twin::read::telemetry_of_points(
            &spans,
            data.metrics_read.then_some(data.metrics.as_slice()),
        ),
    };
    drop(spans);
    let name = args.name.clone().unwrap_or_else(|| match &source {
        Source::Dirs(dirs) => default_name(dirs),
        Source::Topics { topic, .. } => topic.clone(),
    });
    let sources = source.labels();
    let fitted = twin::fit(&FitInput {
        name: &name,
        hops: &hops,
        names: &names,
        duration_s,
        sources,
        telemetry,
    })
    .context("fitting the twin")?;
    let text = twin::to_toml(&fitted);
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    let spec = &fitted.spec;
    let ops: usize = spec.services.iter().map(|s| s.operations.len()).sum();
    let calls: usize = spec
        .services
        .iter()
        .flat_map(|s| &s.operations)
        .map(|o| o.stages.iter().map(Vec::len).sum::<usize>())
        .sum();
    println!(
        "wrote {}: {} services, {} operations, {} calls, {} request types, {:.3} requests/s (fitted on {} service hops over {:.1} s in {:.1} s)",
        args.out.display(),
        spec.services.len(),
        ops,
        calls,
        spec.requests.len(),
        spec.load.rate_per_s,
        hops.len(),
        duration_s,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--check --json` output.
#[derive(Serialize)]
struct CheckReport<'a> {
    twin: String,
    real_seconds: f64,
    twin_seconds: f64,
    real_requests_per_s: f64,
    twin_requests_per_s: f64,
    rate_scale: f64,
    #[serde(flatten)]
    comparison: &'a Comparison,
}

/// The simulated time of a check of `real_s` seconds of real data: `requested`, or
/// [`CHECK_TIMES_REAL`] times the real range within [`MIN_CHECK_S`, `MAX_CHECK_S`]; never
/// less than the real range.
fn check_seconds(requested: Option<f64>, real_s: f64) -> f64 {
    requested
        .unwrap_or_else(|| (CHECK_TIMES_REAL * real_s).clamp(MIN_CHECK_S, MAX_CHECK_S))
        .max(real_s)
}

fn check(args: &TwinArgs, path: &Path) -> anyhow::Result<()> {
    let topology = Topology::load(&path.display().to_string())
        .with_context(|| format!("loading the twin {}", path.display()))?;
    let mut source = Source::of(args)?;
    let (spans, real_s) = read_part(&mut source, args.holdout, Part::Check)?;
    let mut real_names = Names::default();
    let real_hops = hops_of(&spans, &mut real_names);
    drop(spans);
    let real_roots = real_hops.iter().filter(|h| h.parent.is_none()).count();
    let real_rate = real_roots as f64 / real_s.max(1e-9);
    let fitted_rate = topology.spec().load.rate_per_s;
    let rate_scale = match args.load {
        TwinLoad::Observed if real_rate > 0.0 => real_rate / fitted_rate,
        _ => 1.0,
    };
    let seconds = check_seconds(args.duration.map(|d| d.as_secs_f64()), real_s);
    eprintln!(
        "simulating {} for {seconds:.0} s at {:.3} requests/s",
        topology.name(),
        fitted_rate * rate_scale
    );
    let (sim_spans, _metrics) =
        twin::simulate::run(&topology, rate_scale, WARMUP_S, seconds, args.seed)
            .context("simulating the twin")?;
    let mut twin_names = Names::default();
    let twin_hops = hops_of(&sim_spans, &mut twin_names);
    let twin_roots = twin_hops.iter().filter(|h| h.parent.is_none()).count();
    let real = summarize(&real_hops, &real_names, real_s);
    let sim = summarize(&twin_hops, &twin_names, seconds);
    let comparison = compare(&real, &sim);
    print_report(
        args,
        &CheckReport {
            twin: path.display().to_string(),
            real_seconds: real_s,
            twin_seconds: seconds,
            real_requests_per_s: real_rate,
            twin_requests_per_s: twin_roots as f64 / seconds,
            rate_scale,
            comparison: &comparison,
        },
    )
}

/// `--baseline`: recordings in the twin's place (the part a twin would be fitted on),
/// their rates scaled to the checked range's request rate (`--load observed`).
fn against_baseline(args: &TwinArgs) -> anyhow::Result<()> {
    let mut source = Source::of(args)?;
    let (spans, real_s) = read_part(&mut source, args.holdout, Part::Check)?;
    let mut real_names = Names::default();
    let real_hops = hops_of(&spans, &mut real_names);
    drop(spans);
    // Read as a twin fitted on them would be: the first `1 - holdout` of each (so the same
    // directories as `--input` split into the two parts), all of them with `--holdout 1`.
    let base_holdout = if args.holdout >= 1.0 {
        0.0
    } else {
        args.holdout
    };
    let (spans, base_s) = read_part(
        &mut Source::Dirs(args.baseline.clone()),
        base_holdout,
        Part::Fit,
    )?;
    let mut base_names = Names::default();
    let base_hops = hops_of(&spans, &mut base_names);
    drop(spans);
    let roots = |hops: &[augur_connectors::twin::hops::Hop]| {
        hops.iter().filter(|h| h.parent.is_none()).count() as f64
    };
    let real_rate = roots(&real_hops) / real_s.max(1e-9);
    let base_rate = roots(&base_hops) / base_s.max(1e-9);
    let rate_scale = match args.load {
        TwinLoad::Observed if real_rate > 0.0 && base_rate > 0.0 => real_rate / base_rate,
        _ => 1.0,
    };
    let real = summarize(&real_hops, &real_names, real_s);
    // The baseline's time stretched to the checked range's load: its rates times the scale.
    let base = summarize(&base_hops, &base_names, base_s / rate_scale);
    let comparison = compare(&real, &base);
    let dirs: Vec<String> = args
        .baseline
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    print_report(
        args,
        &CheckReport {
            twin: format!("recording {}", dirs.join(", ")),
            real_seconds: real_s,
            twin_seconds: base_s,
            real_requests_per_s: real_rate,
            twin_requests_per_s: base_rate,
            rate_scale,
            comparison: &comparison,
        },
    )
}

fn print_report(args: &TwinArgs, report: &CheckReport<'_>) -> anyhow::Result<()> {
    if let Some(path) = &args.plot {
        let title = format!(
            "{} vs {:.1} s of real data",
            report.twin, report.real_seconds
        );
        let svg = crate::eval::twin_plot::twin_check_svg(&report.comparison.services, &title);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("plot written to {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_table(report);
    }
    Ok(())
}

fn pct(x: Option<f64>) -> String {
    match x {
        Some(x) => format!("{:+.0}%", 100.0 * x),
        None => "-".into(),
    }
}

fn print_table(report: &CheckReport<'_>) {
    let c = report.comparison;
    // A baseline recording's label says so; a twin's is its file.
    let other = if report.twin.starts_with("recording ") {
        report.twin.clone()
    } else {
        format!("twin {}", report.twin)
    };
    println!(
        "{other} vs {:.1} s of held-back real data ({:.2} requests/s real, {:.2} twin over {:.0} s)",
        report.real_seconds,
        report.real_requests_per_s,
        report.twin_requests_per_s,
        report.twin_seconds
    );
    println!(
        "call edges: {}{}{}",
        if c.edges_match { "match" } else { "differ" },
        if c.missing_edges.is_empty() {
            String::new()
        } else {
            format!("; twin lacks {}", edge_list(&c.missing_edges))
        },
        if c.extra_edges.is_empty() {
            String::new()
        } else {
            format!("; twin adds {}", edge_list(&c.extra_edges))
        }
    );
    if !c.edges_match {
        println!(
            "call edges, leaving out twin edges expected < {} times in the real range: {} ({} such edges)",
            twin::compare::RARE_EDGE_CALLS,
            if c.edges_match_expected {
                "match"
            } else {
                "differ"
            },
            c.rare_extra_edges.len()
        );
    }
    println!(
        "{:<34} {:>6} {:>8} {:>8} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>7}",
        "service",
        "spans",
        "rate/s",
        "twin",
        "err",
        "p50 ms",
        "twin",
        "err",
        "p90 ms",
        "twin",
        "err",
        "p99 ms",
        "twin",
        "err",
        "err pp"
    );
    for r in &c.services {
        print_row(r);
    }
}

fn print_row(r: &ServiceRow) {
    println!(
        "{:<34} {:>6} {:>8.3} {:>8.3} {:>6} {:>9.2} {:>9.2} {:>6} {:>9.2} {:>9.2} {:>6} {:>9.2} {:>9.2} {:>6} {:>+7.2}",
        r.service,
        r.spans,
        r.real_rate_per_s,
        r.twin_rate_per_s,
        pct(r.rate_err),
        r.real_p50_ms,
        r.twin_p50_ms,
        pct(r.p50_err),
        r.real_p90_ms,
        r.twin_p90_ms,
        pct(r.p90_err),
        r.real_p99_ms,
        r.twin_p99_ms,
        pct(r.p99_err),
        r.error_rate_diff_pp
    );
}

fn edge_list(edges: &[(String, String)]) -> String {
    edges
        .iter()
        .map(|(a, b)| format!("{a}->{b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{check_seconds, holdout_is_valid};

    #[test]
    fn a_check_simulates_ten_times_the_real_range_within_its_bounds() {
        assert_eq!(check_seconds(None, 12.0), 600.0);
        assert_eq!(check_seconds(None, 328.0), 3280.0);
        assert_eq!(check_seconds(None, 1484.0), 3600.0);
        assert_eq!(check_seconds(Some(60.0), 328.0), 328.0);
        assert_eq!(check_seconds(Some(900.0), 12.0), 900.0);
    }

    #[test]
    fn a_check_may_hold_back_everything_and_a_fit_may_not() {
        assert!(holdout_is_valid(1.0, true).is_ok());
        assert!(holdout_is_valid(0.0, false).is_ok());
        let err = holdout_is_valid(1.0, false).unwrap_err().to_string();
        assert!(err.contains("nothing to fit on"), "{err}");
        assert!(holdout_is_valid(1.5, true).is_err());
        assert!(holdout_is_valid(-0.1, false).is_err());
    }
}

//! `augur eval --cases DIR`: root-cause accuracy over a directory of labelled incidents.
//!
//! Every directory under `DIR` that holds a `labels.json` and recorded files is a case. A
//! case is replayed once; each labelled fault is diagnosed at its start, as `augur diagnose
//! --at` would, and by the simple rankings of [`augur_models::evidence::baselines`] on the
//! same windows. Scores per application (`labels.json` → `topology`) and fault kind: AC@k
//! (the faulty service among the first k), Avg@5 (the mean of AC@1..5), cases without an
//! answer (an empty ranking) and seconds per case.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use augur_connectors::simulator::Labels;
use augur_models::evidence::diagnose_with_baselines;
use augur_operators::AlertKind;
use serde::Serialize;

use crate::cli::EvalArgs;
use crate::commands::diagnose::replay_with_normal;
use crate::commands::{load_config, read_labels};

/// The method `augur diagnose` uses, as named in the report.
const DIAGNOSE: &str = "diagnose";
/// The first `root_cause` alert of the `evidence` detector, run on the case as a job
/// would, that fired at or after the fault's start.
const ALERTS: &str = "alerts";

/// One fault of one case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub app: String,
    pub kind: String,
    pub service: String,
    /// The resource the fault is on, as labelled.
    pub resource: String,
    /// Per method that names resources, its top culprit's.
    pub top_resources: BTreeMap<String, String>,
    /// The fault's labelled start.
    pub at_ms: u64,
    /// Where `diagnose` was asked, when not at the start (`--late`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked_ms: Option<u64>,
    /// Where `diagnose` found the departure under way at the moment asked had begun.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onset_ms: Option<u64>,
    /// Per method, the faulty service's rank (1 = first), `None` when not ranked.
    pub ranks: BTreeMap<String, Option<usize>>,
    /// Per method, its first five services.
    pub top: BTreeMap<String, Vec<String>>,
    /// Replay and diagnosis time of the case.
    pub seconds: f64,
    /// How long after the fault's start the first `alerts` answer came, ms.
    pub alert_after_ms: Option<u64>,
    /// `root_cause` alerts fired before the fault's start (false alarms).
    pub alerts_before: usize,
    /// Telemetry before the fault's start (from the start of the case's first window), ms:
    /// the time `alerts_before` were raised in.
    pub observed_before_ms: u64,
}

/// Root-cause alerts raised before the faults of an application's cases, over the time
/// observed before them (each case counted once, up to its first fault).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertsBefore {
    pub app: String,
    pub alerts: usize,
    pub minutes: f64,
}

/// The scores of one method over a group of cases.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub app: String,
    pub kind: String,
    pub method: String,
    pub cases: usize,
    pub ac1: f64,
    pub ac3: f64,
    pub avg5: f64,
    /// Share of the cases whose first culprit is the faulty service named for the fault's
    /// resource; `None` for methods that name no resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_ac1: Option<f64>,
    pub no_answer: usize,
    pub seconds_mean: f64,
}

pub fn run(args: &EvalArgs, dir: &Path) -> anyhow::Result<()> {
    let config = load_config(args.job.config.as_deref())?;
    let CaseDirs {
        cases: dirs,
        without_inputs,
    } = case_dirs(dir)?;
    if !without_inputs.is_empty() {
        let names: Vec<String> = without_inputs
            .iter()
            .map(|d| d.strip_prefix(dir).unwrap_or(d).display().to_string())
            .collect();
        eprintln!(
            "skipped {} director{} with labels.json and no traces, metrics or logs (traces.otlp.jsonl, metrics.otlp.jsonl, logs.otlp.jsonl, each may end in .zst or .gz): {}",
            names.len(),
            if names.len() == 1 { "y" } else { "ies" },
            crate::display::listed(&names, 8)
        );
    }
    if dirs.is_empty() {
        anyhow::bail!(
            "no case under {}: a case is a directory with labels.json and traces.otlp.jsonl, metrics.otlp.jsonl or logs.otlp.jsonl (each may end in .zst or .gz)",
            dir.display()
        );
    }
    eprintln!("{} cases under {}", dirs.len(), dir.display());
    let late_ms = args.late.map_or(0, |d| d.as_millis() as u64);
    let mut results = Vec::new();
    for (i, case) in dirs.iter().enumerate() {
        let name = case.strip_prefix(dir).unwrap_or(case).display().to_string();
        // On stderr with --json too: the progress of a long run, and the case each
        // replay's summary lines (span shape, metrics not read) belong to.
        eprintln!("[{}/{}] {name}", i + 1, dirs.len());
        let started = Instant::now();
        let labels: Labels = serde_json::from_value(read_labels(case)?)
            .with_context(|| format!("{}: labels.json", case.display()))?;
        let detectors = vec![augur_models::DetectorKind::Evidence];
        let replay = replay_with_normal(
            &config,
            Some(case.clone()),
            None,
            args.job.workers,
            false,
            &detectors,
        )
        .with_context(|| format!("replaying {}", case.display()))?;
        let (windows, alerts, normal) = (replay.windows, replay.alerts, replay.normal);
        let mut case_results = Vec::new();
        for fault in &labels.faults {
            let (d, baseline_rankings) = diagnose_with_baselines(
                &windows,
                fault.start_ms + late_ms,
                &config.diagnose,
                normal.as_deref(),
            );
            let first_alert = alerts
                .iter()
                .filter(|a| a.kind == AlertKind::RootCause && a.ends_at.is_none())
                .filter(|a| a.window_end > fault.start_ms)
                .min_by_key(|a| a.window_end);
            let mut rankings: Vec<(String, Vec<String>)> = vec![
                (
                    DIAGNOSE.to_string(),
                    d.culprits.iter().map(|c| c.service.clone()).collect(),
                ),
                (
                    ALERTS.to_string(),
                    first_alert
                        .map(|a| a.culprits.iter().map(|c| c.service.clone()).collect())
                        .unwrap_or_default(),
                ),
            ];
            let mut top_resources = BTreeMap::new();
            if let Some(c) = d.culprits.first() {
                top_resources.insert(DIAGNOSE.to_string(), c.resource.clone());
            }
            if let Some(c) = first_alert.and_then(|a| a.culprits.first()) {
                // The evidence detector's culprits name no resource only for errors.
                let resource = c.resource.map_or("errors", |r| r.as_str());
                top_resources.insert(ALERTS.to_string(), resource.to_string());
            }
            rankings.extend(
                baseline_rankings
                    .into_iter()
                    .map(|(m, r)| (m.to_string(), r)),
            );
            case_results.push(CaseResult {
                alert_after_ms: first_alert.map(|a| a.window_end.saturating_sub(fault.start_ms)),
                observed_before_ms: windows.first().map_or(0, |w| {
                    fault.start_ms.saturating_sub(w.window_end - w.window_ms)
                }),
                alerts_before: alerts
                    .iter()
                    .filter(|a| a.kind == AlertKind::RootCause && a.ends_at.is_none())
                    .filter(|a| a.window_end <= fault.start_ms)
                    .count(),
                case: name.clone(),
                app: labels.topology.clone(),
                kind: fault.kind.clone(),
                service: fault.service.clone(),
                resource: fault.resource.clone(),
                top_resources,
                at_ms: fault.start_ms,
                asked_ms: (late_ms > 0).then_some(fault.start_ms + late_ms),
                onset_ms: d.onset,
                ranks: rankings
                    .iter()
                    .map(|(m, r)| {
                        (
                            m.clone(),
                            r.iter().position(|s| *s == fault.service).map(|p| p + 1),
                        )
                    })
                    .collect(),
                top: rankings
                    .into_iter()
                    .map(|(m, mut r)| {
                        r.truncate(5);
                        (m, r)
                    })
                    .collect(),
                seconds: 0.0,
            });
        }
        let per_fault = started.elapsed().as_secs_f64() / case_results.len().max(1) as f64;
        results.extend(case_results.into_iter().map(|r| CaseResult {
            seconds: per_fault,
            ..r
        }));
    }
    let scores = summarize(&results);
    let before = alerts_before(&results);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"cases": results, "scores": scores, "alerts_before_faults": before})
        );
    } else {
        print!("{}", table(&scores));
        for b in &before {
            println!(
                "{}: {} root_cause alerts before the faults, in {:.1} min of telemetry before them",
                b.app, b.alerts, b.minutes
            );
        }
    }
    Ok(())
}

/// Per application and over all, the alerts raised before each case's first fault and the
/// time observed before it.
pub fn alerts_before(results: &[CaseResult]) -> Vec<AlertsBefore> {
    let mut first: BTreeMap<&str, &CaseResult> = BTreeMap::new();
    for r in results {
        let kept = first.entry(r.case.as_str()).or_insert(r);
        if r.at_ms < kept.at_ms {
            *kept = r;
        }
    }
    let mut per_app: BTreeMap<String, AlertsBefore> = BTreeMap::new();
    for r in first.values() {
        for app in [r.app.as_str(), "all"] {
            let e = per_app.entry(app.to_string()).or_insert(AlertsBefore {
                app: app.to_string(),
                alerts: 0,
                minutes: 0.0,
            });
            e.alerts += r.alerts_before;
            e.minutes += r.observed_before_ms as f64 / 60_000.0;
        }
    }
    per_app.into_values().collect()
}

/// The case directories under a directory.
#[derive(Debug, PartialEq)]
struct CaseDirs {
    /// With a labels.json and a traces, metrics or logs file, sorted. A case without
    /// traces is diagnosed from its metrics and logs.
    cases: Vec<PathBuf>,
    /// With a labels.json and none of those files (files under other names), sorted: said,
    /// not silently passed over.
    without_inputs: Vec<PathBuf>,
}

/// The case directories under `dir` (itself included), at any depth.
fn case_dirs(dir: &Path) -> anyhow::Result<CaseDirs> {
    let mut out = Vec::new();
    let mut without_inputs = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        let mut has_labels = false;
        for e in entries {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let path = e.path();
            let file_name = e.file_name();
            let name = file_name.to_string_lossy();
            if path.is_dir() {
                stack.push(path);
            } else if name == "labels.json" {
                has_labels = true;
            }
        }
        if has_labels {
            // What a replay of it would read.
            match crate::source::input_files(&d) {
                Ok(_) => out.push(d),
                Err(_) => without_inputs.push(d),
            }
        }
    }
    out.sort();
    without_inputs.sort();
    Ok(CaseDirs {
        cases: out,
        without_inputs,
    })
}

/// Scores per (app, kind, method), with `all` rows per app and over every app.
pub fn summarize(results: &[CaseResult]) -> Vec<Scores> {
    let methods: std::collections::BTreeSet<&String> =
        results.iter().flat_map(|r| r.ranks.keys()).collect();
    let mut groups: BTreeMap<(String, String), Vec<&CaseResult>> = BTreeMap::new();
    for r in results {
        for (app, kind) in [
            (r.app.clone(), r.kind.clone()),
            (r.app.clone(), "all".to_string()),
            ("all".to_string(), "all".to_string()),
        ] {
            groups.entry((app, kind)).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for ((app, kind), cases) in groups {
        for method in &methods {
            let ranks: Vec<Option<usize>> = cases
                .iter()
                .map(|c| c.ranks.get(*method).copied().flatten())
                .collect();
            let n = ranks.len();
            let ac = |k: usize| {
                ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count() as f64 / n as f64
            };
            out.push(Scores {
                app: app.clone(),
                kind: kind.clone(),
                method: (*method).clone(),
                cases: n,
                ac1: ac(1),
                ac3: ac(3),
                avg5: (1..=5).map(ac).sum::<f64>() / 5.0,
                resource_ac1: cases
                    .iter()
                    .any(|c| c.top_resources.contains_key(*method))
                    .then(|| {
                        cases
                            .iter()
                            .filter(|c| {
                                c.ranks.get(*method).copied().flatten() == Some(1)
                                    && c.top_resources.get(*method).is_some_and(|r| {
                                        crate::eval::score::resource_matches(r, &c.resource)
                                    })
                            })
                            .count() as f64
                            / n as f64
                    }),
                no_answer: cases
                    .iter()
                    .filter(|c| c.top.get(*method).is_none_or(|t| t.is_empty()))
                    .count(),
                seconds_mean: cases.iter().map(|c| c.seconds).sum::<f64>() / n as f64,
            });
        }
    }
    out
}

fn table(scores: &[Scores]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<16} {:<11} {:>5} {:>6} {:>6} {:>6} {:>9} {:>9} {:>7}",
        "app",
        "fault kind",
        "method",
        "cases",
        "AC@1",
        "AC@3",
        "Avg@5",
        "resource",
        "no answer",
        "s/case"
    );
    for s in scores {
        let resource = s
            .resource_ac1
            .map_or_else(|| "–".to_string(), |r| format!("{r:.2}"));
        let _ = writeln!(
            out,
            "{:<18} {:<16} {:<11} {:>5} {:>6.2} {:>6.2} {:>6.2} {:>9} {:>9} {:>7.1}",
            s.app,
            s.kind,
            s.method,
            s.cases,
            s.ac1,
            s.ac3,
            s.avg5,
            resource,
            s.no_answer,
            s.seconds_mean
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_dirs_are_found_at_any_depth_and_labels_without_inputs_are_said() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for (dir, files) in [
            ("a", &["labels.json", "traces.otlp.jsonl"][..]),
            ("b", &["labels.json", "traces.json"][..]),
            (
                "normal/day",
                &["traces.otlp.jsonl.zst", "metrics.otlp.jsonl"][..],
            ),
            ("app/c", &["labels.json", "traces.otlp.jsonl.zst"][..]),
            // No tracing: metrics and logs only.
            (
                "app/d",
                &["labels.json", "metrics.otlp.jsonl.gz", "logs.otlp.jsonl"][..],
            ),
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            for f in files {
                std::fs::write(root.join(dir).join(f), "").unwrap();
            }
        }
        assert_eq!(
            case_dirs(root).unwrap(),
            CaseDirs {
                cases: vec![root.join("a"), root.join("app/c"), root.join("app/d")],
                without_inputs: vec![root.join("b")],
            }
        );
    }

    fn case(app: &str, kind: &str, rank: Option<usize>) -> CaseResult {
        CaseResult {
            case: format!("{app}-{kind}"),
            app: app.into(),
            kind: kind.into(),
            service: "s".into(),
            resource: "cpu".into(),
            top_resources: BTreeMap::new(),
            at_ms: 0,
            asked_ms: None,
            onset_ms: None,
            ranks: [(DIAGNOSE.to_string(), rank)].into_iter().collect(),
            top: [(
                DIAGNOSE.to_string(),
                if rank.is_some() {
                    vec!["s".to_string()]
                } else {
                    Vec::new()
                },
            )]
            .into_iter()
            .collect(),
            seconds: 2.0,
            alert_after_ms: None,
            alerts_before: 0,
            observed_before_ms: 0,
        }
    }

    #[test]
    fn scores_by_hand() {
        let results = vec![
            case("ob", "cpu", Some(1)),
            case("ob", "cpu", Some(3)),
            case("ob", "delay", None),
            case("tt", "cpu", Some(6)),
        ];
        let scores = summarize(&results);
        let get = |app: &str, kind: &str| {
            scores
                .iter()
                .find(|s| s.app == app && s.kind == kind)
                .cloned()
                .expect("row")
        };
        let ob_cpu = get("ob", "cpu");
        assert_eq!((ob_cpu.cases, ob_cpu.ac1, ob_cpu.ac3), (2, 0.5, 1.0));
        // AC@1..5 = 0.5, 0.5, 1, 1, 1.
        assert!((ob_cpu.avg5 - 0.8).abs() < 1e-12);
        let ob = get("ob", "all");
        assert_eq!((ob.cases, ob.no_answer), (3, 1));
        assert!((ob.ac1 - 1.0 / 3.0).abs() < 1e-12);
        let all = get("all", "all");
        assert_eq!((all.cases, all.ac1, all.ac3), (4, 0.25, 0.5));
        assert_eq!(all.seconds_mean, 2.0);
        assert_eq!(all.resource_ac1, None, "no method named a resource");
    }

    /// Resource AC@1: the faulty service first *and* named for the fault's resource, over
    /// all cases of the group.
    #[test]
    fn resource_scores_by_hand() {
        let named = |rank: Option<usize>, resource: &str| CaseResult {
            top_resources: [(DIAGNOSE.to_string(), resource.to_string())]
                .into_iter()
                .collect(),
            ..case("ob", "cpu", rank)
        };
        let results = vec![
            named(Some(1), "cpu"),
            named(Some(1), "network"),
            named(Some(2), "cpu"),
            case("ob", "cpu", None),
        ];
        let scores = summarize(&results);
        let ob_cpu = scores
            .iter()
            .find(|s| s.app == "ob" && s.kind == "cpu")
            .expect("row");
        assert_eq!(ob_cpu.resource_ac1, Some(0.25));
        assert!(table(&scores).contains("0.25"));
    }

    /// A case with two faults counts its alerts and time once, up to its first fault.
    #[test]
    fn alerts_before_count_each_case_once() {
        let fault = |case_name: &str, app: &str, at_ms: u64, alerts: usize| CaseResult {
            case: case_name.into(),
            at_ms,
            alerts_before: alerts,
            observed_before_ms: at_ms,
            ..case(app, "cpu", Some(1))
        };
        let results = vec![
            fault("a", "ob", 120_000, 1),
            fault("a", "ob", 300_000, 4),
            fault("b", "ob", 60_000, 0),
            fault("c", "tt", 30_000, 2),
        ];
        let before = alerts_before(&results);
        let get = |app: &str| before.iter().find(|b| b.app == app).cloned().expect("row");
        assert_eq!((get("ob").alerts, get("ob").minutes), (1, 3.0));
        assert_eq!((get("tt").alerts, get("tt").minutes), (2, 0.5));
        assert_eq!((get("all").alerts, get("all").minutes), (3, 3.5));
    }
}

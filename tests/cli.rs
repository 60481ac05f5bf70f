//! End-to-end tests of the `augur` binary: simulate → replay / eval, as a user runs them.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{augur, cpu_fault_plan, ok, simulate};
use std::path::{Path, PathBuf};

/// A CPU fault on the back-end tier of a 5-tier chain, 40 s into a 90 s run.
fn simulate_chain(dir: &Path) -> PathBuf {
    let plan = cpu_fault_plan(dir, "tier-4", 40_000, 20_000, 5.0);
    simulate(dir, "chain", "chain", "90s", 7, &plan)
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn simulate_then_eval_scores_the_injected_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simulate_chain(tmp.path());
    for file in ["traces.otlp.jsonl", "metrics.otlp.jsonl", "labels.json"] {
        assert!(data.join(file).exists(), "{file} missing");
    }
    let report = tmp.path().join("report");
    let stdout = ok(&augur(
        &[
            "eval",
            "--input",
            data.to_str().unwrap(),
            "--detector",
            "all",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(reports.len(), augur_models::DetectorKind::ALL.len());
    for r in &reports {
        for field in [
            "/detector",
            "/windows",
            "/violations",
            "/detection/recall",
            "/detection/precision",
            "/detection/fpr",
            "/detection/lead_time_ms_p50",
            "/rca/cases",
            "/rca/ac1",
            "/rca/ac3",
            "/pipeline/spans",
            "/pipeline/spans_per_s",
            "/pipeline/alert_latency_ms_p99",
        ] {
            assert!(r.pointer(field).is_some(), "{field} missing in {r}");
        }
        assert!(r["windows"].as_u64().unwrap() >= 80, "{r}");
        assert!(r["pipeline"]["spans"].as_u64().unwrap() > 10_000, "{r}");
    }
    let nsigma = reports.iter().find(|r| r["detector"] == "nsigma").unwrap();
    // The fault makes the entry point violate its SLO, and n-sigma sees it and blames tier-4.
    assert!(nsigma["violations"].as_u64().unwrap() >= 1, "{nsigma}");
    assert!(
        nsigma["detection"]["recall"].as_f64().unwrap() > 0.0,
        "{nsigma}"
    );
    assert!(nsigma["rca"]["cases"].as_u64().unwrap() >= 1, "{nsigma}");
    assert!(nsigma["rca"]["ac3"].as_f64().unwrap() > 0.0, "{nsigma}");
    // The report: every alert of the run, and each RCA case with the alert that scored it.
    let alerts = std::fs::read_to_string(report.join("alerts.jsonl")).unwrap();
    let alerts: Vec<serde_json::Value> = alerts
        .lines()
        .map(|l| serde_json::from_str(l).expect("one alert per line"))
        .collect();
    assert!(
        alerts.iter().any(|a| a["model"]["name"] == "nsigma"),
        "{} alerts, none of nsigma's",
        alerts.len()
    );
    let cases = std::fs::read_to_string(report.join("rca-nsigma.md")).unwrap();
    let rows = cases
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("tier-"))
        .count();
    assert_eq!(
        rows as u64,
        nsigma["rca"]["cases"].as_u64().unwrap(),
        "{cases}"
    );
}

#[test]
fn one_and_two_workers_give_the_same_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simulate_chain(tmp.path());
    let mut runs = Vec::new();
    for workers in ["1", "2"] {
        let alerts = tmp.path().join(format!("alerts-{workers}.jsonl"));
        ok(&augur(
            &[
                "replay",
                "--input",
                data.to_str().unwrap(),
                "-w",
                workers,
                "--alerts-out",
                alerts.to_str().unwrap(),
            ],
            tmp.path(),
        ));
        runs.push(sorted_lines(&alerts));
    }
    assert!(!runs[0].is_empty(), "the fault should raise alerts");
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn bad_lines_are_dead_lettered_and_the_replay_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simulate_chain(tmp.path());
    let traces = data.join("traces.otlp.jsonl");
    let mut text = std::fs::read_to_string(&traces).unwrap();
    let good_lines = text.lines().count();
    // A line that isn't JSON, and one whose only span has end < start.
    text.insert_str(0, "{not json\n");
    text.push_str(
        r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"op","kind":2,"startTimeUnixNano":"1700000000500000000","endTimeUnixNano":"1700000000000000000"}]}]}]}"#,
    );
    text.push('\n');
    std::fs::write(&traces, text).unwrap();
    let dlq = tmp.path().join("dlq.jsonl");
    let config = tmp.path().join("job.toml");
    std::fs::write(
        &config,
        format!("[dead_letter]\npath = {:?}\n", dlq.to_str().unwrap()),
    )
    .unwrap();
    let out = augur(
        &[
            "replay",
            "--input",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        tmp.path(),
    );
    ok(&out);
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(&dlq)
        .expect("a dead-letter file")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["offset"], 1);
    assert_eq!(dead[1]["offset"], (good_lines + 2) as u64);
    assert!(
        dead.iter()
            .all(|d| !d["reason"].as_str().unwrap().is_empty())
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 dead letters"));
}

#[test]
fn validate_names_the_bad_field() {
    let tmp = tempfile::tempdir().unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.toml");
    ok(&augur(&["validate", good.to_str().unwrap()], tmp.path()));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[window]\nlength_ms = 0\n").unwrap();
    let out = augur(&["validate", bad.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("window.length_ms"));
}

/// `augur simulate` of hotel-reservation's `scale-replace` scenario into `dir/hr`.
fn simulate_scale_replace(dir: &Path, seed: &str, rate_scale: &str, duration: &str) -> PathBuf {
    let out = dir.join("hr");
    ok(&augur(
        &[
            "simulate",
            "--topology",
            "hotel-reservation",
            "--scenario",
            "scale-replace",
            "--seed",
            seed,
            "--rate-scale",
            rate_scale,
            "--duration",
            duration,
            "--out",
            out.to_str().unwrap(),
        ],
        dir,
    ));
    out
}

#[test]
fn scale_replace_scenario_labels_the_change_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    // Light load: only the changes matter here; 1445 s covers the six steps (every 240 s).
    let out = simulate_scale_replace(tmp.path(), "3", "0.05", "1445s");
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("labels.json")).unwrap()).unwrap();
    // No faults unless asked for.
    assert_eq!(labels["faults"].as_array().unwrap().len(), 0);
    let changes = labels["changes"].as_array().unwrap();
    let start = labels["start_ms"].as_u64().unwrap();
    let mut steps: std::collections::BTreeMap<u64, Vec<(String, String)>> = Default::default();
    for c in changes {
        steps
            .entry((c["at_ms"].as_u64().unwrap() - start) / 1000)
            .or_default()
            .push((
                c["kind"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            ));
    }
    let times: Vec<u64> = steps.keys().copied().collect();
    assert_eq!(times, vec![240, 480, 720, 960, 1200, 1440]);
    let kinds = |t: u64| -> Vec<&str> { steps[&t].iter().map(|(k, _)| k.as_str()).collect() };
    assert_eq!(kinds(240), vec!["rps_change"]);
    assert!(
        steps[&240][0].1.contains("-> 35 requests/s"),
        "{:?}",
        steps[&240]
    );
    assert_eq!(kinds(480), vec!["scale_out"]);
    assert_eq!(kinds(720), vec!["scale_out"; 2]);
    assert_eq!(kinds(960), vec!["scale_out"; 3]);
    // All ×3: every service, each to three times its count.
    assert!(kinds(1200).len() >= 10 && kinds(1200).iter().all(|k| *k == "scale_out"));
    for (_, detail) in &steps[&1200] {
        let counts: Vec<u32> = detail
            .trim_start_matches("replicas ")
            .split(" -> ")
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(counts[1], 3 * counts[0], "{detail}");
    }
    assert_eq!(kinds(1440), vec!["replace"]);
}

/// The `fluxion` detector in the job, as `augur eval` runs it on a replay: no checkpoint, so
/// it learns the inference graph from the stream after 60 windows, then forecasts each next
/// window's end-to-end p90 through the scenario's first change (offered load 500 → 700/s at
/// 240 s). A forecast that learnt nothing does no better than the run's mean (`spread_ms`);
/// the graph's error is about half of it here (0.93 vs 1.72 ms when written).
#[test]
fn fluxion_learns_the_end_to_end_latency_from_a_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simulate_scale_replace(tmp.path(), "5", "1", "300s");
    let config = tmp.path().join("fluxion.toml");
    std::fs::write(
        &config,
        "[detector.fluxion]\nmodels_dir = \"\"\nmin_train_windows = 60\n",
    )
    .unwrap();
    let report = tmp.path().join("report");
    let stdout = ok(&augur(
        &[
            "eval",
            "--config",
            config.to_str().unwrap(),
            "--input",
            data.to_str().unwrap(),
            "--detector",
            "fluxion",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let forecast = &json["forecast"];
    assert!(forecast["checkpoint"].is_null(), "{forecast}");
    // 300 windows, 60 of warm-up, one ahead.
    let scored = forecast["windows"].as_u64().unwrap();
    assert!((220..=240).contains(&scored), "{forecast}");
    let mae = forecast["mae_ms"].as_f64().unwrap();
    let spread = forecast["spread_ms"].as_f64().unwrap();
    assert!(
        mae < 0.7 * spread,
        "graph MAE {mae} ms vs spread {spread} ms"
    );
    assert!(forecast["baseline_mae_ms"].as_f64().unwrap() > 0.0);
    assert!(forecast["persistence_mae_ms"].as_f64().unwrap() > 0.0);
    let changes = forecast["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{forecast}");
    assert!(
        changes[0]["change"]
            .as_str()
            .unwrap()
            .starts_with("rps_change"),
        "{forecast}"
    );
    assert!(changes[0]["samples_to_adapt"].is_u64(), "{forecast}");
    for key in [
        "samples_to_match_baseline",
        "baseline_samples_to_match_graph",
    ] {
        let v = changes[0].get(key);
        assert!(
            v.is_some_and(|v| v.is_u64() || v.is_null()),
            "{key}: {forecast}"
        );
    }
    for file in ["forecast.svg", "forecast.md"] {
        assert!(report.join(file).exists(), "{file} missing");
    }
}

/// A fault plan: a CPU fault on `service` from 20 s to 40 s of the run.
fn cpu_fault(dir: &Path, service: &str, magnitude: f64) -> PathBuf {
    cpu_fault_plan(dir, service, 20_000, 20_000, magnitude)
}

/// The newest version of checkpoint `name` in the source tree's models/checkpoints.
fn newest_shipped(name: &str) -> u64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/checkpoints");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let file = e.unwrap().file_name().into_string().unwrap();
            file.strip_prefix(&format!("{name}-v"))?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()
        })
        .max()
        .unwrap()
}

/// `augur` copied out of the build tree and run in an empty directory with a fresh home:
/// its `models_dir` (`models/checkpoints`, relative) doesn't exist there, so it extracts
/// the checkpoints shipped inside the binary into the cache and diagnoses a chain fault
/// with the shipped `sage-chain` checkpoint.
#[test]
fn a_copied_binary_uses_the_checkpoints_shipped_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin").join("augur");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(common::augur_bin(), &bin).unwrap();
    let work = tmp.path().join("work");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let plan = cpu_fault(tmp.path(), "tier-4", 5.0);
    let out = std::process::Command::new(&bin)
        .args([
            "eval",
            "--simulate",
            "--topology",
            "chain",
            "--seed",
            "1",
            "--duration",
            "1m",
            "--faults",
            plan.to_str().unwrap(),
            "--detector",
            "sage",
            "--json",
        ])
        .current_dir(&work)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("AUGUR_MODELS_DIR")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let expected = format!("sage-chain-v{}", newest_shipped("sage-chain"));
    assert_eq!(json["model"]["version"], expected.as_str(), "{json}");
    assert!(json["rca"]["cases"].as_u64().unwrap() >= 1, "{json}");
    assert_eq!(json["model"]["unserved_windows"], 0, "{json}");
    // Extracted once, into the cache under <version>-<hash>; nothing written where it ran.
    let cache = home.join(".cache/augur/checkpoints");
    let extracted: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(extracted.len(), 1, "{extracted:?}");
    assert!(
        extracted[0]
            .join(format!("{expected}.safetensors"))
            .exists()
    );
    assert!(extracted[0].join(".augur-shipped").exists());
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}

/// Sage on an application none of whose services any shipped checkpoint knows: it keeps
/// running, diagnoses nothing, and says so once (naming the services it sees and how to
/// train a checkpoint); the report counts the violating windows it could not serve.
#[test]
fn sage_says_once_that_no_checkpoint_matches_an_unknown_application() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = cpu_fault(tmp.path(), "cartservice", 8.0);
    let out = augur(
        &[
            "eval",
            "--simulate",
            "--topology",
            "online-boutique",
            "--seed",
            "3",
            "--duration",
            "1m",
            "--faults",
            plan.to_str().unwrap(),
            "--detector",
            "sage",
            "--json",
        ],
        tmp.path(),
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("no checkpoint matches").count(),
        1,
        "{stderr}"
    );
    for said in [
        "cartservice",
        "sage-chain-v",
        "augur train --model sage --input DIR --name sage-<app>",
    ] {
        assert!(stderr.contains(said), "{said} not in {stderr}");
    }
    let violating = json["violating_windows"].as_u64().unwrap();
    assert!(violating >= 1, "{json}");
    assert_eq!(json["model"]["unserved_windows"], violating, "{json}");
    assert_eq!(json["detection"]["alerts"], 0, "{json}");
}

/// `augur train --model sage` on input with metrics but no spans, or on too few windows,
/// fails with an error that says what is missing and how much is needed, and writes no
/// checkpoint.
#[test]
fn train_sage_without_spans_or_with_too_few_windows_fails_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("short");
    ok(&augur(
        &[
            "simulate",
            "--topology",
            "chain",
            "--duration",
            "30s",
            "--seed",
            "2",
            "--out",
            data.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    let models = tmp.path().join("models");
    let train = |input: &Path| {
        augur(
            &[
                "train",
                "--model",
                "sage",
                "--input",
                input.to_str().unwrap(),
                "--models-dir",
                models.to_str().unwrap(),
                "--epochs",
                "1",
            ],
            tmp.path(),
        )
    };
    // 30 s of traffic: fewer windows than one training batch.
    let out = train(&data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("windows have requests and RPC calls"),
        "{stderr}"
    );
    assert!(stderr.contains("at least 64"), "{stderr}");
    // The same metrics without spans.
    std::fs::write(data.join("traces.otlp.jsonl"), "").unwrap();
    let out = train(&data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no spans"), "{stderr}");
    assert!(stderr.contains("at least 64"), "{stderr}");
    assert!(!models.exists(), "a checkpoint directory was written");
}

/// `augur train seer` on recorded windows none of which precedes an SLO violation fails and
/// says why, instead of writing a model that never fires.
#[test]
fn train_seer_without_a_violation_fails_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("calm");
    ok(&augur(
        &[
            "simulate",
            "--topology",
            "chain",
            "--duration",
            "40s",
            "--seed",
            "3",
            "--faults",
            "none",
            "--out",
            data.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    let arrow = tmp.path().join("calm.arrow");
    ok(&augur(
        &[
            "record",
            "--input",
            data.to_str().unwrap(),
            "--out",
            arrow.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    let models = tmp.path().join("models");
    let out = augur(
        &[
            "train",
            "seer",
            "--data",
            arrow.to_str().unwrap(),
            "--models-dir",
            models.to_str().unwrap(),
            "--epochs",
            "1",
        ],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("followed by an SLO violation"), "{stderr}");
    assert!(!models.exists(), "a checkpoint directory was written");
}

/// `augur twin --baseline`: a recording against itself moves by nothing; against its own
/// first part, the two parts split the range as a fit and a check would.
#[test]
fn a_recording_compared_with_itself_has_no_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simulate_chain(tmp.path());
    let dir = data.display().to_string();
    let plot = tmp.path().join("check.svg");
    let report = |extra: &[&str]| -> serde_json::Value {
        let args = [
            &["twin", "--baseline", &dir, "--input", &dir, "--json"],
            extra,
        ]
        .concat();
        serde_json::from_str(&ok(&augur(&args, tmp.path()))).unwrap()
    };
    let same = report(&["--holdout", "1", "--plot", plot.to_str().unwrap()]);
    assert_eq!(same["edges_match"], true, "{same}");
    let services = same["services"].as_array().unwrap();
    assert_eq!(services.len(), 5, "{same}");
    for s in services {
        for field in ["rate_err", "p50_err", "p99_err", "error_rate_diff_pp"] {
            assert_eq!(s[field].as_f64(), Some(0.0), "{field} of {s}");
        }
    }
    // The plot of the same comparison: a row per service, both sides' three percentiles.
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_eq!(svg.matches("<circle").count(), 5 * 6, "{svg}");
    let parts = report(&["--holdout", "0.25"]);
    let (checked, baseline) = (
        parts["real_seconds"].as_f64().unwrap(),
        parts["twin_seconds"].as_f64().unwrap(),
    );
    let ratio = baseline / checked;
    assert!(
        (2.5..3.5).contains(&ratio),
        "{checked} s checked, {baseline} s baseline"
    );
}

//! `augur diagnose --at` and `augur eval --cases` on a simulated incident with a known
//! answer, with SERVER/CLIENT spans and with every span kind stripped (as kind-less
//! instrumentation exports them).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{augur, cpu_fault_plan, ok, simulate};
use std::path::{Path, PathBuf};

/// A CPU fault on the middle tier of a 5-tier chain, 70 s into a 2-minute run.
fn simulate_case(dir: &Path, name: &str) -> PathBuf {
    let plan = cpu_fault_plan(dir, "tier-2", 70_000, 40_000, 5.0);
    simulate(dir, name, "chain", "2m", 11, &plan)
}

/// Rewrites the traces file with every span's kind set to 0 (SPAN_KIND_UNSPECIFIED).
fn strip_kinds(case: &Path) {
    let path = case.join("traces.otlp.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let stripped = text
        .replace("\"kind\":2", "\"kind\":0")
        .replace("\"kind\":3", "\"kind\":0");
    assert_ne!(text, stripped, "the simulator writes span kinds");
    std::fs::write(&path, stripped).unwrap();
}

fn fault_start(case: &Path) -> u64 {
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("labels.json")).unwrap()).unwrap();
    labels["faults"][0]["start_ms"].as_u64().unwrap()
}

/// `augur diagnose --at AT --input CASE --json` run in `cwd`: its answer, and the run.
fn diagnose_json(case: &Path, at: &str, cwd: &Path) -> (serde_json::Value, std::process::Output) {
    let out = augur(
        &[
            "diagnose",
            "--at",
            at,
            "--input",
            case.to_str().unwrap(),
            "--json",
        ],
        cwd,
    );
    (serde_json::from_str(&ok(&out)).unwrap(), out)
}

/// `augur eval --cases CASES --json` run in `cwd`: its report.
fn eval_cases_json(cases: &Path, cwd: &Path) -> serde_json::Value {
    let report = ok(&augur(
        &["eval", "--cases", cases.to_str().unwrap(), "--json"],
        cwd,
    ));
    serde_json::from_str(&report).unwrap()
}

#[test]
fn diagnose_names_the_faulty_service_with_and_without_span_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let kinded = simulate_case(tmp.path(), "cases/kinded");
    let kindless = simulate_case(tmp.path(), "cases/kindless");
    strip_kinds(&kindless);
    for case in [&kinded, &kindless] {
        let at = fault_start(case).to_string();
        let (d, out) = diagnose_json(case, &at, tmp.path());
        assert_eq!(d["at"].as_u64().unwrap().to_string(), at);
        let top = &d["culprits"][0];
        assert_eq!(top["service"], "tier-2", "{}: {d:#}", case.display());
        assert_eq!(top["resource"], "cpu", "{d:#}");
        assert!(top["score"].as_f64().unwrap() > 0.0);
        assert!(!top["evidence"].as_array().unwrap().is_empty());
        // Its own time rose, in the operation its spans name.
        let op = &top["operation"];
        assert!(op["name"].as_str().is_some_and(|n| !n.is_empty()), "{d:#}");
        assert!(
            op["after"].as_f64().unwrap() > op["before"].as_f64().unwrap(),
            "{d:#}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shape = if case == &kindless {
            "span shape: kind-less"
        } else {
            "span shape: client/server pairs"
        };
        assert!(stderr.contains(shape), "{stderr}");
    }
    // The same moment as RFC 3339 gives the same answer; a moment outside the data fails.
    let out = augur(
        &[
            "diagnose",
            "--at",
            "2001-01-01T00:00:00Z",
            "--input",
            kinded.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no telemetry before"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both cases scored: the faulty service first in each.
    let r = eval_cases_json(&tmp.path().join("cases"), tmp.path());
    assert_eq!(r["cases"].as_array().unwrap().len(), 2, "{r:#}");
    let overall = r["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["app"] == "all" && s["kind"] == "all" && s["method"] == "diagnose")
        .unwrap();
    assert_eq!(overall["cases"], 2);
    assert_eq!(overall["ac1"], 1.0, "{r:#}");
    assert_eq!(overall["no_answer"], 0);
}

/// A recording of an application augur doesn't know, with no labels and no `[[slo]]`: the
/// replay runs (no QoS verdicts, said once) and the `evidence` detector still diagnoses;
/// a simulator topology's SLO is never applied to it; metrics it does not read are listed.
#[test]
fn a_replay_without_slo_or_labels_runs_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let case = simulate_case(tmp.path(), "mine");
    strip_kinds(&case);
    std::fs::remove_file(case.join("labels.json")).unwrap();
    // Metrics augur does not read: an unmapped gauge (3 points) and a histogram (1 point).
    let unread = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tier-1"}}]},"scopeMetrics":[{"metrics":[{"name":"jvm.gc.pause","gauge":{"dataPoints":[{"timeUnixNano":"1000000000","asDouble":1},{"timeUnixNano":"2000000000","asDouble":2},{"timeUnixNano":"3000000000","asDouble":3}]}},{"name":"http.server.duration","histogram":{"dataPoints":[{"timeUnixNano":"1000000000","count":"4"}]}}]}]}]}"#;
    let metrics = case.join("metrics.otlp.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    std::fs::write(&metrics, format!("{unread}\n{text}")).unwrap();
    let alerts = tmp.path().join("alerts.jsonl");
    let out = augur(
        &[
            "replay",
            "--input",
            case.to_str().unwrap(),
            "--detector",
            "evidence",
            "--alerts-out",
            alerts.to_str().unwrap(),
        ],
        tmp.path(),
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("no [[slo]] in the config").count(),
        1,
        "{stderr}"
    );
    // What was not read is listed, by name and count.
    assert!(
        stderr.contains(
            "metrics not read: 4 points of 2 names: jvm.gc.pause (3), http.server.duration (1)"
        ),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&alerts).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("an alert")).unwrap();
    assert_eq!(first["kind"], "root_cause", "{first:#}");
    assert_eq!(first["culprits"][0]["service"], "tier-2", "{first:#}");
}

/// `augur train --model normal` on a fault-free recording with no labels.json; then a
/// diagnosis whose own minutes before the moment are cut off (`--before 0s`) still names
/// the faulty service, from the learned normal, and says which normal it used. Without one
/// the same diagnosis has no normal and fails. Too little data fails the training loudly.
/// The input's summary (span shape) is printed once, though it is read twice.
#[test]
fn a_learned_normal_answers_when_the_minutes_before_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let empty_plan = tmp.path().join("no-faults.toml");
    std::fs::write(&empty_plan, "").unwrap();
    let normal_run = simulate(tmp.path(), "normal-run", "chain", "1m", 5, &empty_plan);
    std::fs::remove_file(normal_run.join("labels.json")).unwrap();
    let models = tmp.path().join("learned");
    let out = ok(&augur(
        &[
            "train",
            "--model",
            "normal",
            "--input",
            normal_run.to_str().unwrap(),
            "--name",
            "chain-app",
            "--models-dir",
            models.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    assert!(out.contains("normal-chain-app.json"), "{out}");
    assert!(models.join("normal-chain-app.json").exists());

    let case = simulate_case(tmp.path(), "case");
    let at = fault_start(&case).to_string();
    let diagnose = |config: &str| {
        let cfg = tmp.path().join("diagnose.toml");
        std::fs::write(&cfg, config).unwrap();
        augur(
            &[
                "diagnose",
                "-c",
                cfg.to_str().unwrap(),
                "--at",
                &at,
                "--before",
                "0s",
                "--input",
                case.to_str().unwrap(),
                "--json",
            ],
            tmp.path(),
        )
    };
    let with = diagnose(&format!(
        "[diagnose]\nnormal_dir = \"{}\"\n",
        models.display()
    ));
    let d: serde_json::Value = serde_json::from_str(&ok(&with)).unwrap();
    assert_eq!(d["culprits"][0]["service"], "tier-2", "{d:#}");
    let stderr = String::from_utf8_lossy(&with.stderr);
    assert!(stderr.contains("normal-chain-app.json"), "{stderr}");
    // The only normal there is was read with at once: one read.
    assert!(!stderr.contains("reading the input again"), "{stderr}");
    // `eval --cases` runs the detector, judging against the normal. With two normals to
    // choose from, a first look at the input's services picks one to read with; the
    // services read decide, and the case is read again when they pick another (here: the
    // config names a normal that knows the chain no better than the one found first). The
    // input's summary is said once either way.
    let eval = |normal_dir: &Path, named: Option<&str>| {
        let cfg = tmp.path().join("eval.toml");
        let named = named
            .map(|n| format!("[detector.evidence]\nnormal = \"{n}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &cfg,
            format!(
                "[diagnose]\nnormal_dir = \"{}\"\n{named}",
                normal_dir.display()
            ),
        )
        .unwrap();
        let out = augur(
            &[
                "eval",
                "-c",
                cfg.to_str().unwrap(),
                "--cases",
                case.to_str().unwrap(),
                "--json",
            ],
            tmp.path(),
        );
        ok(&out);
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let stderr = eval(&models, None);
    assert!(stderr.contains("normal-chain-app.json"), "{stderr}");
    assert!(!stderr.contains("reading the input again"), "{stderr}");
    assert_eq!(stderr.matches("span shape:").count(), 1, "{stderr}");
    let two = tmp.path().join("two-normals");
    std::fs::create_dir_all(&two).unwrap();
    for name in ["normal-chain-app.json", "normal-other.json"] {
        std::fs::copy(models.join("normal-chain-app.json"), two.join(name)).unwrap();
    }
    let stderr = eval(&two, None);
    assert!(stderr.contains("normal-chain-app.json"), "{stderr}");
    assert!(!stderr.contains("reading the input again"), "{stderr}");
    assert_eq!(stderr.matches("span shape:").count(), 1, "{stderr}");
    let stderr = eval(&two, Some("other"));
    assert!(
        stderr.contains("reading the input again with") && stderr.contains("normal-chain-app"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("span shape:").count(), 1, "{stderr}");
    let without = diagnose(&format!(
        "[diagnose]\nnormal_dir = \"{}\"\n",
        tmp.path().join("nothing-here").display()
    ));
    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("normal: none learned"), "{stderr}");

    // Ten seconds of traffic are not a normal.
    let short = simulate(tmp.path(), "short-run", "chain", "10s", 5, &empty_plan);
    let out = augur(
        &[
            "train",
            "--model",
            "normal",
            "--input",
            short.to_str().unwrap(),
            "--name",
            "short",
            "--models-dir",
            models.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("too little data") && stderr.contains("at least 30"),
        "{stderr}"
    );

    // A job's evidence detector serves the normal its config names, and says so; a name
    // that was never learned stops the job at start, naming the field.
    let replay = |normal: &str| {
        let cfg = tmp.path().join("replay.toml");
        std::fs::write(
            &cfg,
            format!(
                "[diagnose]\nnormal_dir = \"{}\"\n[detector.evidence]\nnormal = \"{normal}\"\n",
                models.display()
            ),
        )
        .unwrap();
        augur(
            &[
                "replay",
                "-c",
                cfg.to_str().unwrap(),
                "--detector",
                "evidence",
                "--input",
                case.to_str().unwrap(),
            ],
            tmp.path(),
        )
    };
    let served = replay("chain-app");
    ok(&served);
    let stderr = String::from_utf8_lossy(&served.stderr);
    assert!(
        stderr.contains("evidence: learned normal") && stderr.contains("normal-chain-app.json"),
        "{stderr}"
    );
    let missing = replay("never-learned");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("[detector.evidence] normal") && stderr.contains("never-learned"),
        "{stderr}"
    );
}

/// Pod metrics named by a Kubernetes workload that is not the spans' `service.name` (no
/// `service.name` on the metrics' resources, as kubeletstats exports them): they join the
/// traced service of their instance, the run says so, and the CPU fault is named with its
/// resource.
/// The top culprit is `tier-2`, with its CPU usage in its evidence (under the workload's
/// name, not joined to the traced service, it would not be).
fn assert_top_is_tier_2_with_its_cpu(d: &serde_json::Value) {
    let top = &d["culprits"][0];
    assert_eq!(top["service"], "tier-2", "{d:#}");
    assert!(
        top["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["signal"] == "cpu"),
        "{d:#}"
    );
}

#[test]
fn metrics_named_by_their_workload_join_the_traced_service_of_their_pod() {
    let tmp = tempfile::tempdir().unwrap();
    let case = simulate_case(tmp.path(), "cases/workload-named");
    let path = case.join("metrics.otlp.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let renamed = text.replace(
        r#"{"key":"service.name","value":{"stringValue":"tier-"#,
        r#"{"key":"k8s.deployment.name","value":{"stringValue":"demo-tier-"#,
    );
    assert_ne!(text, renamed, "the simulator names the metrics' services");
    // A scrape 10 s before the first span: joined too (a replay reads the traces' first
    // lines before the metrics'), not left under the workload's name.
    let early = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"k8s.deployment.name","value":{"stringValue":"demo-tier-2"}},{"key":"service.instance.id","value":{"stringValue":"tier-2-0"}}]},"scopeMetrics":[{"metrics":[{"name":"container.cpu.utilization","gauge":{"dataPoints":[{"timeUnixNano":"1699999990000000000","asDouble":0.1}]}}]}]}]}"#;
    std::fs::write(&path, format!("{early}\n{renamed}")).unwrap();
    let (d, out) = diagnose_json(&case, &fault_start(&case).to_string(), tmp.path());
    assert_top_is_tier_2_with_its_cpu(&d);
    assert_eq!(d["culprits"][0]["resource"], "cpu", "{d:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("demo-tier-2 → tier-2"), "{stderr}");
    assert!(!stderr.contains("metrics name none"), "{stderr}");
    assert!(!stderr.contains("kept their name"), "{stderr}");
}

/// Spans whose SDK sets `service.instance.id` to a UUID of its own and carry the pod
/// (as the Collector's `k8sattributes` processor adds it) join the pod metrics by the pod.
#[test]
fn pod_metrics_join_spans_whose_sdk_names_its_own_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let case = simulate_case(tmp.path(), "cases/sdk-instance");
    let pod_key = r#"{"key":"service.instance.id","value":{"stringValue":"tier-"#;
    let traces_path = case.join("traces.otlp.jsonl");
    let traces = std::fs::read_to_string(&traces_path).unwrap();
    assert!(traces.contains(pod_key), "the simulator names instances");
    let mut with_uuids = traces.clone();
    for tier in 0..10 {
        with_uuids = with_uuids.replace(
            &format!(r#"{pod_key}{tier}-"#),
            &format!(
                r#"{{"key":"service.instance.id","value":{{"stringValue":"6f1c2a9e-0b7d-4e3a-9c55-00000000000{tier}"}}}},{{"key":"k8s.pod.name","value":{{"stringValue":"tier-{tier}-"#
            ),
        );
    }
    assert_ne!(traces, with_uuids);
    std::fs::write(&traces_path, with_uuids).unwrap();
    let metrics_path = case.join("metrics.otlp.jsonl");
    let metrics = std::fs::read_to_string(&metrics_path).unwrap();
    let renamed = metrics
        .replace(
            r#"{"key":"service.name","value":{"stringValue":"tier-"#,
            r#"{"key":"k8s.deployment.name","value":{"stringValue":"demo-tier-"#,
        )
        .replace(
            pod_key,
            r#"{"key":"k8s.pod.name","value":{"stringValue":"tier-"#,
        );
    std::fs::write(&metrics_path, renamed).unwrap();
    let (d, out) = diagnose_json(&case, &fault_start(&case).to_string(), tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("demo-tier-2 → tier-2"), "{stderr}");
    assert_top_is_tier_2_with_its_cpu(&d);
}

/// An application without tracing: with the traces file removed, `diagnose` ranks from the
/// metrics alone and says what is not measured, and `eval --cases` scores the case. A
/// moment with telemetry on both sides and nothing moved is an answer, not an error.
#[test]
fn without_traces_the_metrics_name_the_faulty_service() {
    let tmp = tempfile::tempdir().unwrap();
    let case = simulate_case(tmp.path(), "cases/untraced");
    std::fs::remove_file(case.join("traces.otlp.jsonl")).unwrap();
    let (d, out) = diagnose_json(&case, &fault_start(&case).to_string(), tmp.path());
    assert_top_is_tier_2_with_its_cpu(&d);
    assert_eq!(d["culprits"][0]["resource"], "cpu", "{d:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("span shape: no spans"), "{stderr}");

    // The minute after this moment ends before the fault.
    let quiet = (fault_start(&case) - 61_000).to_string();
    let (d, _) = diagnose_json(&case, &quiet, tmp.path());
    assert!(d["culprits"].as_array().unwrap().is_empty(), "{d:#}");

    let r = eval_cases_json(&tmp.path().join("cases"), tmp.path());
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "{r:#}");
    assert_eq!(cases[0]["ranks"]["diagnose"], 1, "{r:#}");
}

/// A Collector whose pipelines share one file exporter writes every signal to one file, in
/// the order it exports them: `diagnose --input FILE` reads each line as its signal, spans
/// and metrics alike (the culprit is named with its CPU, which only the metrics show).
#[test]
fn one_file_of_every_signal_is_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let case = simulate_case(tmp.path(), "cases/shared");
    // The first time a line carries: the simulator writes each file in time order, and a
    // shared exporter interleaves them so.
    let first_ns = |line: &str| -> u64 {
        let at = line.find("UnixNano\":").unwrap() + "UnixNano\":".len();
        line[at..]
            .trim_start_matches('"')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let mut lines: Vec<String> = ["traces.otlp.jsonl", "metrics.otlp.jsonl"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(case.join(f))
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort_by_key(|l| first_ns(l));
    let shared = tmp.path().join("agent.out");
    std::fs::write(&shared, lines.join("\n")).unwrap();
    let (d, _) = diagnose_json(&shared, &fault_start(&case).to_string(), tmp.path());
    assert_top_is_tier_2_with_its_cpu(&d);
    // Scoring needs the labels beside the files: a file is said to be the wrong input.
    let out = augur(&["eval", "--input", shared.to_str().unwrap()], tmp.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a file"), "{stderr}");
}

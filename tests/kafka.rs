//! End-to-end tests against a real Kafka-protocol broker (tansu, started by
//! `scripts/broker start`; `scripts/test` does it and sets `AUGUR_BROKER`). Without
//! `AUGUR_BROKER` these tests say so and pass without running.
//!
//! One scenario, as a user runs it: `augur simulate --kafka` (social network, a CPU fault
//! on home-timeline-service, corrupt messages) → `augur run -w 2` uninterrupted; the same
//! again killed with SIGKILL at three points of the stream and restarted each time; `augur replay` and `augur eval` of
//! the topic, and `augur eval` of the equivalent files; `augur record` of the topic and of
//! the files. Then the logs topic in both OTLP encodings, and what production Kafka does
//! (poison messages, an unreachable broker, a tenfold spike in the message rate).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{augur, augur_bin, ok};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Offset, TopicPartitionList};

fn broker() -> Option<String> {
    let b = std::env::var("AUGUR_BROKER").ok().filter(|b| !b.is_empty());
    if b.is_none() {
        eprintln!("AUGUR_BROKER is not set: skipping (run `scripts/broker start`, then set it)");
    }
    b
}

fn spawn_run(config: &Path, cwd: &Path, log: &str) -> Child {
    spawn_run_with(config, cwd, log, &[])
}

/// `augur run -w 2 --config CONFIG EXTRA...`, output to `LOG.out`/`LOG.err` in `cwd`.
fn spawn_run_with(config: &Path, cwd: &Path, log: &str, extra: &[&str]) -> Child {
    Command::new(augur_bin())
        .args(["run", "-w", "2", "--config", config.to_str().unwrap()])
        .args(extra)
        .current_dir(cwd)
        .env("OMP_NUM_THREADS", "1")
        .stdout(std::fs::File::create(cwd.join(format!("{log}.out"))).unwrap())
        .stderr(std::fs::File::create(cwd.join(format!("{log}.err"))).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("augur run starts")
}

/// The job's Prometheus text, or "" while the endpoint isn't up.
fn scrape(port: u16) -> String {
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    // Before the job listens, a connect whose ephemeral source port happens to be `port`
    // connects the socket to itself (TCP simultaneous open): that is nobody listening, and
    // it would hold the port the job is about to bind. A read timeout bounds the rest.
    if conn.local_addr().ok() == conn.peer_addr().ok() {
        return String::new();
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body
}

/// Sum of a metric's samples (all label sets).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the job on `port` has read something and has no lag, then lets a lag sample
/// (every 5 s) confirm it and idle partitions close the last windows.
fn wait_caught_up(what: &str, port: u16) {
    wait_for(
        &format!("{what} to catch up"),
        Duration::from_secs(120),
        || {
            let m = scrape(port);
            !m.is_empty()
                && metric(&m, "augur_consumer_lag") == 0.0
                && metric(&m, "augur_records_in_total") > 0.0
        },
    );
    std::thread::sleep(Duration::from_secs(6));
}

fn sigterm_and_wait(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "augur run didn't stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A message's headers, values as text.
fn headers_of(m: &rdkafka::message::BorrowedMessage<'_>) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            headers.insert(
                header.key.to_string(),
                String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
            );
        }
    }
    headers
}

/// A consumer assigned to every partition of `topic` from its first offset, and how many
/// messages the topic holds.
fn from_the_start(brokers: &str, topic: &str) -> (BaseConsumer, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        remaining += high - low;
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    (consumer, remaining)
}

/// Every message of a topic: (key, payload, headers).
type Record = (Vec<u8>, Vec<u8>, BTreeMap<String, String>);

fn read_topic(brokers: &str, topic: &str) -> Vec<Record> {
    let (consumer, mut remaining) = from_the_start(brokers, topic);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Instant::now();
    // Until the end offsets are reached and nothing more came for a while.
    while (remaining > 0 || last.elapsed() < Duration::from_millis(1500))
        && Instant::now() < deadline
    {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        remaining -= 1;
        let headers = headers_of(&m);
        out.push((
            m.key().unwrap_or_default().to_vec(),
            m.payload().unwrap_or_default().to_vec(),
            headers,
        ));
    }
    assert!(remaining <= 0, "could not read all of {topic}");
    out
}

/// Every span on an OTLP protobuf spans topic.
fn spans_on_topic(brokers: &str, topic: &str) -> Vec<augur_operators::records::Span> {
    let names = augur_connectors::otlp::MetricNames::default();
    let (mut spans, mut points) = (Vec::new(), Vec::new());
    let mut rates = augur_connectors::otlp::Rates::default();
    for (_, payload, _) in read_topic(brokers, topic) {
        augur_connectors::kafka::decode_message(
            &payload,
            false,
            augur_connectors::kafka::Encoding::OtlpProto,
            &names,
            &mut rates,
            &mut spans,
            &mut points,
        )
        .unwrap();
    }
    spans
}

/// Alerts by id; asserts that duplicates (same id) are identical.
fn dedup_alerts(records: &[Record]) -> BTreeMap<String, serde_json::Value> {
    let mut by_id = BTreeMap::new();
    for (_, payload, _) in records {
        let alert: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let id = format!(
            "{}{}",
            alert["id"].as_str().unwrap(),
            if alert.get("endsAt").is_some() {
                "/resolved"
            } else {
                ""
            }
        );
        if let Some(earlier) = by_id.insert(id.clone(), alert.clone()) {
            assert_eq!(earlier, alert, "two different alerts with id {id}");
        }
    }
    by_id
}

fn job_config(dir: &Path, prefix: &str, run: &str, port: u16) -> std::path::PathBuf {
    let path = dir.join(format!("{run}.toml"));
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{prefix}.{run}\"\n\
             spans_topic = \"{prefix}.spans\"\nmetrics_topic = \"{prefix}.metrics\"\n\
             logs_topic = \"{prefix}.logs\"\n\
             alerts_topic = \"{prefix}.{run}.alerts\"\nactions_topic = \"{prefix}.{run}.actions\"\n\
             dlq_topic = \"{prefix}.{run}.dlq\"\nidle_timeout_ms = 1500\n\
             # tansu's memory engine needs one message per producer batch\n\
             \"batch.num.messages\" = 1\n\
             [job_metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            brokers = std::env::var("AUGUR_BROKER").unwrap(),
        ),
    )
    .unwrap();
    path
}

/// [`job_config`] with each `(from, to)` text of it replaced.
fn job_config_edited(
    dir: &Path,
    prefix: &str,
    run: &str,
    port: u16,
    edits: &[(String, String)],
) -> std::path::PathBuf {
    let path = job_config(dir, prefix, run, port);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from.as_str()),
            "{from:?} not in the job config"
        );
        text = text.replace(from.as_str(), to);
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// What a test over the fault plan needs: a temporary directory holding `faults.toml`,
/// a topic prefix and a base port, both unique to this test process. Ports stay below
/// Linux's ephemeral range (32768 up): a scrape's connect before the job listens could
/// otherwise be given the job's port as its own source port and hold it.
struct Fixture {
    tmp: tempfile::TempDir,
    prefix: String,
    plan: std::path::PathBuf,
    port_base: u16,
}

impl Fixture {
    fn new(tag: &str, port_base: u16, port_spread: u32) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let plan = tmp.path().join("faults.toml");
        std::fs::write(&plan, FAULT_PLAN).unwrap();
        Fixture {
            prefix: format!("{tag}{}", std::process::id()),
            plan,
            port_base: port_base + (std::process::id() % port_spread) as u16,
            tmp,
        }
    }
}

/// The message count `augur simulate --kafka` reports (`... in N messages ...`).
fn produced_messages(out: &std::process::Output) -> f64 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .split(" in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("message count in: {stderr}"))
}

const FAULT_PLAN: &str = "[[fault]]\nkind = \"cpu_contention\"\nservice = \"home-timeline-service\"\nstart_ms = 50000\nduration_ms = 30000\nmagnitude = 5.0\n";

#[test]
fn kafka_end_to_end() {
    let Some(brokers) = broker() else { return };
    let Fixture {
        tmp,
        prefix,
        plan,
        port_base,
    } = Fixture::new("e2e", 10_000, 10_000);
    let dir = tmp.path();
    let config_a = job_config(dir, &prefix, "a", port_base);
    let config_b = job_config(dir, &prefix, "b", port_base + 1);
    let labels_topic = format!("{prefix}.labels");

    // The simulated social network, with corrupt messages, into the topics.
    let sim_args = [
        "--topology",
        "social-network",
        "--duration",
        "150s",
        "--seed",
        "7",
        "--faults",
        plan.to_str().unwrap(),
    ];
    let mut args = vec![
        "simulate",
        "--kafka",
        &brokers,
        "-c",
        config_a.to_str().unwrap(),
    ];
    args.extend(sim_args);
    args.extend(["--corrupt", "3", "--labels-topic", &labels_topic]);
    let out = augur(&args, dir);
    ok(&out);
    let messages = produced_messages(&out);

    // Run A: uninterrupted. Read everything, let idle partitions close the windows, SIGTERM.
    let mut a = spawn_run(&config_a, dir, "a");
    wait_for(
        "run A to read every message",
        Duration::from_secs(120),
        || metric(&scrape(port_base), "augur_records_in_total") >= messages,
    );
    // The lag gauge is sampled every few seconds: wait for a sample taken after the last read.
    wait_for(
        "run A's consumer lag to reach 0",
        Duration::from_secs(30),
        || metric(&scrape(port_base), "augur_consumer_lag") == 0.0,
    );
    std::thread::sleep(Duration::from_secs(4));
    let metrics_a = scrape(port_base);
    assert!(sigterm_and_wait(&mut a).success(), "run A exits cleanly");
    assert_eq!(
        metric(&metrics_a, "augur_dead_letters_total"),
        3.0,
        "{metrics_a}"
    );
    assert_eq!(metric(&metrics_a, "augur_consumer_lag"), 0.0, "{metrics_a}");
    assert!(
        metric(&metrics_a, "augur_alert_latency_seconds_count") >= 1.0,
        "{metrics_a}"
    );

    let alerts_a = dedup_alerts(&read_topic(&brokers, &format!("{prefix}.a.alerts")));
    let culprit_named = alerts_a.values().any(|a| {
        a["kind"] == "qos_violation_predicted"
            && a["culprits"][0]["service"] == "home-timeline-service"
    });
    assert!(culprit_named, "no alert names the culprit: {alerts_a:?}");
    let actions = read_topic(&brokers, &format!("{prefix}.a.actions"));
    assert!(!actions.is_empty(), "no actions");
    for (key, payload, headers) in &actions {
        let event: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert!(event["type"].as_str().unwrap().starts_with("augur.scale_"));
        assert_eq!(event["subject"], "default/home-timeline-service");
        assert_eq!(key.as_slice(), b"default/home-timeline-service");
        assert!(alerts_a.contains_key(event["data"]["reason"].as_str().unwrap()));
        assert!(headers["content-type"].starts_with("application/cloudevents+json"));
    }
    let dlq = read_topic(&brokers, &format!("{prefix}.a.dlq"));
    assert_eq!(dlq.len(), 3, "one DLQ record per corrupt message");
    for (_, payload, headers) in &dlq {
        assert!(String::from_utf8_lossy(payload).contains("corrupt message"));
        assert_eq!(headers["augur.source.topic"], format!("{prefix}.spans"));
        assert!(headers["augur.source.offset"].parse::<u64>().is_ok());
        assert!(headers["augur.source.partition"].parse::<i32>().is_ok());
        assert!(
            headers["augur.reason"].contains("otlp_proto"),
            "{headers:?}"
        );
    }
    // `augur alerts` prints them readably.
    let printed = ok(&augur(
        &[
            "alerts",
            "--brokers",
            &brokers,
            "--topic",
            &format!("{prefix}.a.alerts"),
            "--from-beginning",
            "--idle-exit",
            "3s",
        ],
        dir,
    ));
    assert!(
        printed.contains("PREDICTED") && printed.contains("home-timeline-service"),
        "{printed}"
    );

    // Run B: killed with SIGKILL at three points of the stream (each life reads 30 % of
    // the input past where the last one's offsets were committed, re-reading what wasn't),
    // restarted each time, then stopped with SIGTERM.
    for life in 1..=3 {
        let mut b = spawn_run(&config_b, dir, &format!("b{life}"));
        wait_for(
            &format!("run B (life {life}) to read 30% of the input"),
            Duration::from_secs(120),
            || metric(&scrape(port_base + 1), "augur_records_in_total") >= 0.3 * messages,
        );
        b.kill().unwrap(); // SIGKILL
        b.wait().unwrap();
    }
    let mut b = spawn_run(&config_b, dir, "b4");
    wait_caught_up("restarted run B", port_base + 1);
    assert!(sigterm_and_wait(&mut b).success(), "run B exits cleanly");
    let alerts_b = dedup_alerts(&read_topic(&brokers, &format!("{prefix}.b.alerts")));
    assert_eq!(
        alerts_b.keys().collect::<BTreeSet<_>>(),
        alerts_a.keys().collect::<BTreeSet<_>>(),
        "the restarted job lost or changed windows"
    );
    assert_eq!(alerts_b, alerts_a);

    // Run C: a restart that re-reads less input than the open episode is old (the QoS
    // episode runs from 51 s to 84 s; killed 15 s into it, re-reading 12 s): the restarted
    // job continues the episode from the saved decide state and resolves it under the id
    // it fired with. Its own topics are fed at 8 simulated s per s while it runs, so the
    // kill lands inside the episode. (Compared for the QoS alerts only: n-sigma's
    // baseline isn't rebuilt from 12 s.)
    let config_c = job_config(dir, &prefix, "c", port_base + 2);
    let text = std::fs::read_to_string(&config_c).unwrap();
    std::fs::write(
        &config_c,
        text.replace("[kafka]\n", "[kafka]\nrestart_replay_ms = 12000\n")
            .replace(&format!("{prefix}.spans"), &format!("{prefix}.c.spans"))
            .replace(&format!("{prefix}.metrics"), &format!("{prefix}.c.metrics")),
    )
    .unwrap();
    let mut args = vec![
        "simulate",
        "--kafka",
        &brokers,
        "-c",
        config_c.to_str().unwrap(),
        "--speed",
        "8",
        "--labels-topic",
    ];
    let c_labels = format!("{prefix}.c.labels");
    args.push(&c_labels);
    args.extend(sim_args);
    let mut producer = Command::new(augur_bin())
        .args(&args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("c-sim.err")).unwrap())
        .spawn()
        .unwrap();
    let mut c = spawn_run(&config_c, dir, "c1");
    let c_alerts = format!("{prefix}.c.alerts");
    let mut fired_at = 0.0;
    wait_for(
        "run C to fire the QoS alert",
        Duration::from_secs(120),
        || {
            let fired = dedup_alerts(&read_topic(&brokers, &c_alerts));
            match fired.values().find(|a| a["kind"] == "qos_violation") {
                Some(a) => {
                    fired_at = a["window_end"].as_f64().unwrap() / 1000.0;
                    true
                }
                None => false,
            }
        },
    );
    // Kill it once the outputs 15 s into the episode are durable: offsets are then
    // committed past the episode's start (15 s - 12 s of replay).
    wait_for(
        "run C's durable frontier to pass 15 s into the episode",
        Duration::from_secs(120),
        || metric(&scrape(port_base + 2), "augur_durable_frontier_seconds") >= fired_at + 15.0,
    );
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    assert!(
        producer.wait().unwrap().success(),
        "simulate --kafka for run C"
    );
    let before = read_topic(&brokers, &c_alerts);
    let mut c = spawn_run(&config_c, dir, "c2");
    wait_caught_up("restarted run C", port_base + 2);
    assert!(sigterm_and_wait(&mut c).success(), "run C exits cleanly");
    let qos = |alerts: &BTreeMap<String, serde_json::Value>| -> BTreeSet<String> {
        alerts
            .iter()
            .filter(|(_, a)| a["kind"] == "qos_violation")
            .map(|(id, _)| id.clone())
            .collect()
    };
    let alerts_c = dedup_alerts(&read_topic(&brokers, &c_alerts));
    let fired_before_kill = qos(&dedup_alerts(&before));
    assert!(
        !fired_before_kill.is_empty()
            && fired_before_kill
                .iter()
                .all(|id| !id.ends_with("/resolved")),
        "run C was killed inside the QoS episode: {fired_before_kill:?}"
    );
    assert_eq!(
        qos(&alerts_c),
        qos(&alerts_a),
        "the restarted job's QoS episodes"
    );

    // Replay of the topic: the live run's alerts.
    let replayed = dir.join("replay.jsonl");
    let replay_out = augur(
        &[
            "replay",
            "--brokers",
            &brokers,
            "-c",
            config_a.to_str().unwrap(),
            "-w",
            "2",
            "--alerts-out",
            replayed.to_str().unwrap(),
        ],
        dir,
    );
    ok(&replay_out);
    let replay_records: Vec<Record> = std::fs::read_to_string(&replayed)
        .unwrap()
        .lines()
        .map(|l| (Vec::new(), l.as_bytes().to_vec(), BTreeMap::new()))
        .collect();
    assert_eq!(
        dedup_alerts(&replay_records).keys().collect::<Vec<_>>(),
        alerts_a.keys().collect::<Vec<_>>(),
        "replay: {}",
        String::from_utf8_lossy(&replay_out.stderr)
    );
    assert_eq!(dedup_alerts(&replay_records), alerts_a);

    // Eval over the topic gives the figures of eval over the equivalent files.
    let files = dir.join("files");
    let mut args = vec!["simulate", "--out", files.to_str().unwrap()];
    args.extend(sim_args);
    ok(&augur(&args, dir));
    let topic_eval = ok(&augur(
        &[
            "eval",
            "--brokers",
            &brokers,
            "-c",
            config_a.to_str().unwrap(),
            "--labels-topic",
            &labels_topic,
            "--json",
        ],
        dir,
    ));
    let file_eval = ok(&augur(
        &["eval", "--input", files.to_str().unwrap(), "--json"],
        dir,
    ));
    let figures = |text: &str| {
        let mut v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        // Throughput and inference times differ from run to run.
        v.as_object_mut().unwrap().remove("pipeline");
        v.as_object_mut().unwrap().remove("model");
        v
    };
    let topic_figures = figures(&topic_eval);
    assert_eq!(topic_figures, figures(&file_eval));
    assert_eq!(topic_figures["rca"]["ac1"], 1.0, "{topic_figures}");

    // Recording the topic gives the training data of recording the equivalent files.
    let topic_arrow = dir.join("topic.arrow");
    let files_arrow = dir.join("files.arrow");
    let topic_record = ok(&augur(
        &[
            "record",
            "--brokers",
            &brokers,
            "-c",
            config_a.to_str().unwrap(),
            "--labels-topic",
            &labels_topic,
            "--out",
            topic_arrow.to_str().unwrap(),
        ],
        dir,
    ));
    ok(&augur(
        &[
            "record",
            "--input",
            files.to_str().unwrap(),
            "--out",
            files_arrow.to_str().unwrap(),
        ],
        dir,
    ));
    let from_topic = augur_models::seer::dataset::Dataset::read(&topic_arrow).unwrap();
    let from_files = augur_models::seer::dataset::Dataset::read(&files_arrow).unwrap();
    assert!(from_topic.rows.len() >= 100, "{topic_record}");
    assert!(
        from_topic
            .rows
            .iter()
            .any(|r| r.positive && r.culprit.is_some()),
        "the fault gives labelled positive windows: {topic_record}"
    );
    assert_eq!(from_topic, from_files);
}

/// Replays `config`'s input topics in one process (2 workers); the alerts, deduplicated.
fn replay_alerts(brokers: &str, config: &Path, dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let out_path = dir.join(format!(
        "{}.replay.jsonl",
        config.file_stem().unwrap().to_str().unwrap()
    ));
    ok(&augur(
        &[
            "replay",
            "--brokers",
            brokers,
            "-c",
            config.to_str().unwrap(),
            "-w",
            "2",
            "--alerts-out",
            out_path.to_str().unwrap(),
        ],
        dir,
    ));
    let records: Vec<Record> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| (Vec::new(), l.as_bytes().to_vec(), BTreeMap::new()))
        .collect();
    dedup_alerts(&records)
}

/// Committed offsets of `group` for every partition of `topic`.
fn committed(brokers: &str, group: &str, topic: &str) -> Vec<(i32, Option<i64>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let found = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    found
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.partition(), offset)
        })
        .collect()
}

/// Two `augur run -n 2 -p 0|1 -w 2` processes (a hostfile on 127.0.0.1) consume the topics
/// while `augur simulate --kafka --speed` is still producing them; SIGTERM to one process
/// stops both. Their alerts equal a one-process replay of the same topics; every partition
/// is committed (each by the process whose worker owns it); actions are binary-mode
/// CloudEvents.
#[test]
fn kafka_cluster_consumes_while_the_simulator_produces() {
    let Some(brokers) = broker() else { return };
    let Fixture {
        tmp,
        prefix,
        plan,
        port_base,
    } = Fixture::new("cl", 21_000, 10_000);
    let dir = tmp.path();
    let config_0 = job_config(dir, &prefix, "c", port_base);
    let text = std::fs::read_to_string(&config_0).unwrap().replace(
        "\n[job_metrics]",
        "\nactions_mode = \"binary\"\n[job_metrics]",
    );
    std::fs::write(&config_0, &text).unwrap();
    let config_1 = dir.join("c1.toml");
    std::fs::write(
        &config_1,
        text.replace(
            &format!("127.0.0.1:{port_base}"),
            &format!("127.0.0.1:{}", port_base + 1),
        ),
    )
    .unwrap();
    let hostfile = dir.join("hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", port_base + 2, port_base + 3),
    )
    .unwrap();
    let hosts = hostfile.to_str().unwrap();

    // The job first: it creates the topics and waits for input.
    let mut p0 = spawn_run_with(
        &config_0,
        dir,
        "p0",
        &["-n", "2", "-p", "0", "--hostfile", hosts],
    );
    let mut p1 = spawn_run_with(
        &config_1,
        dir,
        "p1",
        &["-n", "2", "-p", "1", "--hostfile", hosts],
    );
    let logs = || {
        ["p0.err", "p1.err"]
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
            .join("\n")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while scrape(port_base).is_empty() || scrape(port_base + 1).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no metrics endpoints: {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Produce at 10 simulated seconds per second while the job consumes.
    let out = augur(
        &[
            "simulate",
            "--kafka",
            &brokers,
            "-c",
            config_0.to_str().unwrap(),
            "--topology",
            "social-network",
            "--duration",
            "120s",
            "--seed",
            "11",
            "--faults",
            plan.to_str().unwrap(),
            "--speed",
            "10",
        ],
        dir,
    );
    ok(&out);
    let messages = produced_messages(&out);
    let read = || {
        metric(&scrape(port_base), "augur_records_in_total")
            + metric(&scrape(port_base + 1), "augur_records_in_total")
    };
    wait_for(
        "the cluster to read every message",
        Duration::from_secs(60),
        || read() >= messages,
    );
    let (m0, m1) = (scrape(port_base), scrape(port_base + 1));
    assert!(
        metric(&m0, "augur_records_in_total") > 0.0 && metric(&m1, "augur_records_in_total") > 0.0,
        "both processes read partitions:\n{m0}\n{m1}"
    );
    wait_for(
        "the cluster's lag to reach 0",
        Duration::from_secs(30),
        || {
            metric(&scrape(port_base), "augur_consumer_lag") == 0.0
                && metric(&scrape(port_base + 1), "augur_consumer_lag") == 0.0
        },
    );
    std::thread::sleep(Duration::from_secs(4)); // idle partitions close the last windows
    // A signal to one process stops the whole job.
    assert!(
        sigterm_and_wait(&mut p1).success(),
        "process 1 exits cleanly"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = p0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "process 0 didn't stop with process 1"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "process 0 exits cleanly");

    let alerts = dedup_alerts(&read_topic(&brokers, &format!("{prefix}.c.alerts")));
    assert!(
        alerts
            .values()
            .any(|a| a["kind"] == "qos_violation_predicted"
                && a["culprits"][0]["service"] == "home-timeline-service"),
        "no alert names the culprit: {alerts:?}"
    );
    let replayed = replay_alerts(&brokers, &config_0, dir);
    assert_eq!(
        alerts.keys().collect::<Vec<_>>(),
        replayed.keys().collect::<Vec<_>>(),
        "the cluster's alerts differ from a one-process replay"
    );
    assert_eq!(alerts, replayed);

    // Every input partition was committed (by the process owning it).
    for topic in [format!("{prefix}.spans"), format!("{prefix}.metrics")] {
        let commits = committed(&brokers, &format!("{prefix}.c"), &topic);
        assert_eq!(commits.len(), 2, "{commits:?}");
        for (partition, offset) in commits {
            assert!(
                offset.is_some_and(|o| o > 0),
                "{topic}/{partition} not committed"
            );
        }
    }

    // Binary-mode CloudEvents: attributes in ce_* headers, the data as the value.
    let actions = read_topic(&brokers, &format!("{prefix}.c.actions"));
    assert!(!actions.is_empty(), "no actions");
    for (key, payload, headers) in &actions {
        let data: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(headers["ce_specversion"], "1.0");
        assert!(headers["ce_type"].starts_with("augur.scale_"));
        let subject = format!("default/{}", data["service"].as_str().unwrap());
        assert_eq!(headers["ce_subject"], subject);
        assert_eq!(headers["ce_source"], "augur");
        assert!(headers["ce_id"].starts_with(data["reason"].as_str().unwrap()));
        assert!(headers["ce_time"].ends_with('Z'), "{headers:?}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(key.as_slice(), subject.as_bytes());
        assert!(alerts.contains_key(data["reason"].as_str().unwrap()));
    }
}

/// `augur replay --from --to` with `offsets_for_times = false` (the path for a broker that
/// can't answer it): scans from the start and keeps exactly the spans in `[from, to)`,
/// counted here by decoding the topic.
#[test]
fn kafka_replay_by_time_without_offsets_for_times() {
    let Some(brokers) = broker() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let prefix = format!("t{}", std::process::id());
    let config = job_config(dir, &prefix, "t", 0);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "\n[job_metrics]",
        "\noffsets_for_times = false\n[job_metrics]",
    );
    std::fs::write(&config, text).unwrap();
    let sim = [
        "simulate",
        "--kafka",
        &brokers,
        "-c",
        config.to_str().unwrap(),
        "--topology",
        "chain",
        "--duration",
        "60s",
        "--seed",
        "5",
    ];
    ok(&augur(&sim, dir));

    // Event times of every span on the topic.
    let times: Vec<u64> = spans_on_topic(&brokers, &format!("{prefix}.spans"))
        .iter()
        .map(|s| s.event_ms())
        .collect();
    let first = *times.iter().min().unwrap();
    let (from, to) = (first + 20_000, first + 35_000);
    let expected = times.iter().filter(|&&t| t >= from && t < to).count();
    assert!(
        expected > 0 && expected < times.len() / 2,
        "{expected} of {}",
        times.len()
    );

    let out = Command::new(augur_bin())
        .args([
            "replay",
            "--brokers",
            &brokers,
            "-c",
            config.to_str().unwrap(),
        ])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .args(["--alerts-out", dir.join("alerts.jsonl").to_str().unwrap()])
        .current_dir(dir)
        .env("OMP_NUM_THREADS", "1")
        .env("RUST_LOG", "augur_connectors=info")
        .output()
        .unwrap();
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("offsets_for_times disabled; scanning from the start"),
        "{stderr}"
    );
    let replayed: usize = stderr
        .split("replayed ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("span count in: {stderr}"));
    assert_eq!(replayed, expected, "{stderr}");
}

/// `augur twin --brokers --from --to`: a twin fitted from a time range of the topics reads
/// exactly the spans that start in it, recovers the chain's five tiers and their calls, and
/// its check against the same range's held-back part matches the call edges and rates.
#[test]
fn kafka_twin_from_a_topic_range() {
    let Some(brokers) = broker() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let prefix = format!("w{}", std::process::id());
    let config = job_config(dir, &prefix, "w", 0);
    let cfg = config.to_str().unwrap();
    let sim = [
        "simulate",
        "--kafka",
        &brokers,
        "-c",
        cfg,
        "--topology",
        "chain",
        "--duration",
        "60s",
        "--seed",
        "6",
        "--faults",
        "none",
        "--rate-scale",
        "0.25",
    ];
    ok(&augur(&sim, dir));
    let starts: Vec<u64> = spans_on_topic(&brokers, &format!("{prefix}.spans"))
        .iter()
        .map(|s| s.start_ns / 1_000_000)
        .collect();
    let first = *starts.iter().min().unwrap();
    let (from, to) = ((first + 10_000).to_string(), (first + 50_000).to_string());
    let expected = starts
        .iter()
        .filter(|&&t| t >= first + 10_000 && t < first + 50_000)
        .count();
    assert!(
        expected > 0 && expected < starts.len(),
        "{expected} of {}",
        starts.len()
    );

    let twin = dir.join("twin.toml");
    let range = [
        "--brokers",
        &brokers,
        "-c",
        cfg,
        "--from",
        &from,
        "--to",
        &to,
    ];
    let out = augur(
        &[&["twin", "--out", twin.to_str().unwrap()], &range[..]].concat(),
        dir,
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let read: usize = stderr
        .split(&format!("{prefix}.spans [{from}, {to}): "))
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("span count in: {stderr}"));
    assert_eq!(read, expected, "{stderr}");
    let topology = augur_connectors::simulator::Topology::load(twin.to_str().unwrap()).unwrap();
    let mut services: Vec<&str> = topology
        .spec()
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    services.sort_unstable();
    assert_eq!(services, ["tier-0", "tier-1", "tier-2", "tier-3", "tier-4"]);

    let out = augur(
        &[
            &["twin", "--check", twin.to_str().unwrap(), "--json"],
            &range[..],
        ]
        .concat(),
        dir,
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["edges_match"], true, "{report}");
    for s in report["services"].as_array().unwrap() {
        let err = s["rate_err"].as_f64().unwrap();
        assert!(err.abs() < 0.2, "{s}");
    }
}

/// Writes each payload as its own message (tansu needs one message per batch); messages up
/// to 10 MB.
fn produce(brokers: &str, topic: &str, payloads: &[&[u8]]) {
    let mut settings = augur_connectors::kafka::KafkaSettings::new(brokers, "test-producer");
    settings
        .properties
        .insert("message.max.bytes".into(), "10000000".into());
    let mut producer = augur_connectors::kafka::OutputProducer::unbatched(&settings).unwrap();
    for payload in payloads {
        producer
            .send(topic, None, None, payload, &[], None)
            .unwrap();
    }
    producer.flush().unwrap();
}

/// `n` log records of `service`, one per 100 ms before now: `(otlp_proto, otlp_json)`
/// encodings of one `ExportLogsServiceRequest`, the JSON as the Collector writes it.
fn logs_request(service: &str, n: u64) -> (Vec<u8>, Vec<u8>) {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message as _;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let times: Vec<u64> = (0..n).map(|i| now_ns - (n - i) * 100_000_000).collect();
    let text = |v: &str| AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    };
    let proto = augur_connectors::otlp::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(text(service)),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: times
                    .iter()
                    .enumerate()
                    .map(|(i, t)| LogRecord {
                        time_unix_nano: *t,
                        severity_number: 9,
                        body: Some(text(&format!("request {i} served"))),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let records: Vec<String> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                r#"{{"timeUnixNano":"{t}","severityNumber":9,"body":{{"stringValue":"request {i} served"}}}}"#
            )
        })
        .collect();
    let json = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );
    (proto.encode_to_vec(), json.into_bytes())
}

/// The logs topic in `otlp_proto` and in `otlp_json` (a job each, side by side): every
/// good record is counted, and a message that isn't an export request is dead-lettered with
/// its original bytes and its real coordinates.
#[test]
fn kafka_logs_topic_in_both_encodings() {
    let Some(brokers) = broker() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let prefix = format!("logs{}", std::process::id());
    let port = 31_100 + (std::process::id() % 500) as u16;
    let settings = augur_connectors::kafka::KafkaSettings::new(&brokers, "test-admin");
    let mut jobs = Vec::new();
    for (i, encoding) in ["otlp_proto", "otlp_json"].into_iter().enumerate() {
        let run = encoding.replace('_', "-");
        let (dir, port) = (dir.join(&run), port + i as u16);
        std::fs::create_dir(&dir).unwrap();
        let topics = format!("{prefix}.{run}");
        let config = job_config(&dir, &topics, "job", port);
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "[kafka]\n",
            &format!("[kafka]\nlogs_encoding = \"{encoding}\"\n"),
        );
        std::fs::write(&config, text).unwrap();
        let logs = format!("{topics}.logs");
        augur_connectors::kafka::ensure_topics(&settings, &[(&logs, 1)]).unwrap();
        let (cart, frontend) = (logs_request("cart", 3), logs_request("frontend", 2));
        let (a, b) = match encoding {
            "otlp_proto" => (cart.0, frontend.0),
            _ => (cart.1, frontend.1),
        };
        let bad = b"not an export request".to_vec();
        produce(&brokers, &logs, &[&a, &bad, &b]);
        jobs.push((spawn_run(&config, &dir, "run"), port, logs, bad));
    }
    for (mut job, port, logs, bad) in jobs {
        wait_for(
            &format!("the job on {logs} to count its log records"),
            Duration::from_secs(60),
            || metric(&scrape(port), "augur_log_records_total") >= 5.0,
        );
        let metrics = scrape(port);
        assert!(
            sigterm_and_wait(&mut job).success(),
            "{logs}: exits cleanly"
        );
        assert_eq!(
            metric(&metrics, "augur_log_records_total"),
            5.0,
            "{metrics}"
        );
        assert_eq!(
            metric(&metrics, "augur_dead_letters_total"),
            1.0,
            "{metrics}"
        );
        let dlq = read_topic(&brokers, &logs.replace(".logs", ".job.dlq"));
        assert_eq!(dlq.len(), 1, "{logs}: {dlq:?}");
        let (_, payload, headers) = &dlq[0];
        assert_eq!(payload, &bad, "{logs}: the original bytes");
        assert_eq!(headers["augur.source.topic"], logs);
        assert_eq!(headers["augur.source.partition"], "0");
        assert_eq!(headers["augur.source.offset"], "1");
    }
}

/// Waits (up to 60 s) until the metrics of the job on `port` satisfy `f`; on timeout,
/// fails with them and the job's stderr.
fn wait_for_job(what: &str, port: u16, stderr: &Path, mut f: impl FnMut(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = scrape(port);
        if f(&m) {
            return;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(stderr).unwrap_or_default();
            panic!("timed out waiting for {what}\n{m}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An `otlp_proto` spans message: `n` one-span traces of `frontend`, ending at `end_ms`.
fn spans_message(end_ms: u64, n: u64) -> Vec<u8> {
    use augur_operators::{Span, SpanKind};
    let spans: Vec<Span> = (0..n)
        .map(|i| Span {
            trace_id: (u128::from(end_ms) << 32) | (u128::from(i) + 1),
            span_id: i + 1,
            parent_span_id: None,
            service: "frontend".into(),
            instance: "frontend-1".into(),
            kind: SpanKind::Server,
            name: "/home".into(),
            start_ns: (end_ms - 20) * 1_000_000,
            end_ns: end_ms * 1_000_000,
            error: false,
            peer_service: None,
            version: None,
        })
        .collect();
    augur_connectors::otlp::encode_traces_proto(&spans)
}

/// A job config (`job.toml` in a temporary directory) whose spans topic, of one partition,
/// exists; topics and metrics port unique to this test process.
struct OneSpansTopic {
    tmp: tempfile::TempDir,
    prefix: String,
    port: u16,
    config: std::path::PathBuf,
    spans: String,
}

impl OneSpansTopic {
    fn new(brokers: &str, tag: &str, port_base: u16) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let prefix = format!("{tag}{}", std::process::id());
        let port = port_base + (std::process::id() % 500) as u16;
        let config = job_config(tmp.path(), &prefix, "job", port);
        let spans = format!("{prefix}.spans");
        let settings = augur_connectors::kafka::KafkaSettings::new(brokers, "test-admin");
        augur_connectors::kafka::ensure_topics(&settings, &[(&spans, 1)]).unwrap();
        OneSpansTopic {
            tmp,
            prefix,
            port,
            config,
            spans,
        }
    }
}

/// Poison on the spans topic of a running job: an empty message, 5 MB of garbage, spans
/// dated in 2100 and spans for windows long closed, between good ones. The job keeps
/// running; each bad message is one dead letter with its real coordinates (the garbage cut
/// to `dlq_max_bytes`, with its size); the 2100 spans never move the watermark; SIGTERM
/// stops it.
#[test]
fn kafka_poison_is_dead_lettered_and_the_job_keeps_running() {
    let Some(brokers) = broker() else { return };
    let OneSpansTopic {
        tmp,
        prefix,
        port,
        config,
        spans,
    } = OneSpansTopic::new(&brokers, "poison", 31_700);
    let dir = tmp.path();
    let now = now_ms();
    let garbage: Vec<u8> = (0..5_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    let year_2100 = spans_message(4_102_444_799_000, 3);
    produce(
        &brokers,
        &spans,
        &[
            &spans_message(now - 10_000, 5),
            b"",
            &garbage,
            &year_2100,
            &spans_message(now - 5_000, 5),
        ],
    );
    let mut job = spawn_run(&config, dir, "job");
    // The partition goes idle after the last message: the windows up to it close.
    let err = dir.join("job.err");
    wait_for_job("the good spans' windows to close", port, &err, |m| {
        metric(m, "augur_records_in_total") >= 5.0
            && metric(m, "augur_durable_frontier_seconds") * 1000.0 >= (now - 8_000) as f64
    });
    let late = spans_message(now - 60_000, 4);
    produce(&brokers, &spans, &[&late]);
    wait_for_job("the late message", port, &err, |m| {
        metric(m, "augur_records_in_total") >= 6.0
    });
    std::thread::sleep(Duration::from_secs(2));
    let m = scrape(port);
    assert!(job.try_wait().unwrap().is_none(), "the job keeps running");
    assert!(sigterm_and_wait(&mut job).success(), "stops on SIGTERM");
    assert_eq!(metric(&m, "augur_spans_total"), 10.0, "{m}");
    assert_eq!(metric(&m, "augur_empty_messages_total"), 1.0, "{m}");
    assert_eq!(metric(&m, "augur_decode_errors_total"), 1.0, "{m}");
    assert_eq!(metric(&m, "augur_future_records_total"), 3.0, "{m}");
    assert_eq!(metric(&m, "augur_late_records_total"), 4.0, "{m}");
    assert_eq!(metric(&m, "augur_dead_letters_total"), 4.0, "{m}");
    let frontier_ms = metric(&m, "augur_durable_frontier_seconds") * 1000.0;
    assert!(frontier_ms < (now + 3_600_000) as f64, "{m}");

    let dlq = read_topic(&brokers, &format!("{prefix}.job.dlq"));
    let by_offset: BTreeMap<&str, &Record> = dlq
        .iter()
        .map(|r| (r.2["augur.source.offset"].as_str(), r))
        .collect();
    assert_eq!(dlq.len(), 4, "{:?}", by_offset.keys());
    for (offset, record) in &by_offset {
        assert_eq!(record.2["augur.source.topic"], spans, "{offset}");
        assert_eq!(record.2["augur.source.partition"], "0", "{offset}");
    }
    let (_, empty, headers) = by_offset["1"];
    assert!(empty.is_empty());
    assert_eq!(headers["augur.reason"], "empty");
    let (_, cut, headers) = by_offset["2"];
    assert_eq!(cut.len(), 900_000);
    assert_eq!(cut[..], garbage[..900_000]);
    assert_eq!(headers["augur.payload.truncated"], "true");
    assert_eq!(headers["augur.payload.size"], "5000000");
    let (_, future, headers) = by_offset["3"];
    assert_eq!(future, &year_2100, "the original bytes");
    assert_eq!(headers["augur.records"], "3");
    assert!(headers["augur.reason"].starts_with("future"), "{headers:?}");
    let (_, late_letter, headers) = by_offset["5"];
    assert_eq!(late_letter, &late, "the original bytes");
    assert_eq!(headers["augur.records"], "4");
    assert!(headers["augur.reason"].starts_with("late"), "{headers:?}");
}

/// The job process of a supervised `augur run` (`[restart] strategy = "exponential"`,
/// the default): the supervisor's only child.
fn job_process(supervisor: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The job process dies as a crash in a native library kills it (SIGABRT, as a failed
/// assertion in libtorch or a corrupt heap in librdkafka does; a SIGSEGV sent with `kill`
/// only resets Rust's stack-overflow handler): the supervisor
/// starts it again from the committed offsets; it reads what came after, counts the
/// restart, and SIGTERM still stops both.
#[test]
fn kafka_job_process_is_restarted_after_a_crash() {
    let Some(brokers) = broker() else { return };
    let OneSpansTopic {
        tmp,
        port,
        config,
        spans,
        ..
    } = OneSpansTopic::new(&brokers, "crash", 30_700);
    let dir = tmp.path();
    let now = now_ms();
    produce(&brokers, &spans, &[&spans_message(now - 20_000, 5)]);
    let mut job = KillOnDrop(spawn_run(&config, dir, "job"));
    let supervisor = job.0.id();
    let err = dir.join("job.err");
    wait_for_job("the first message", port, &err, |m| {
        metric(m, "augur_spans_total") >= 5.0
    });
    let first = job_process(supervisor).expect("the job runs in a child process");
    assert_ne!(first, supervisor);
    let killed = Command::new("kill")
        .args(["-ABRT", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    produce(&brokers, &spans, &[&spans_message(now - 10_000, 7)]);
    // The new job process counts the restart and reads the message produced after the
    // crash (and, at least once, whatever was read but not committed before it).
    wait_for_job("the restarted job to read on", port, &err, |m| {
        metric(m, "augur_job_restarts_total") == 1.0 && metric(m, "augur_spans_total") >= 7.0
    });
    let second = job_process(supervisor).expect("a job process again");
    assert_ne!(second, first);
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(
        log.contains("killed by signal 6 (SIGABRT)") && log.contains("restart 1 of at most 10"),
        "{log}"
    );
    assert!(sigterm_and_wait(&mut job.0).success(), "stops on SIGTERM");
    assert!(
        !std::path::Path::new(&format!("/proc/{second}")).exists()
            || std::fs::read_to_string(format!("/proc/{second}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the job process ends with its supervisor"
    );
}

/// A broker address where nothing listens: `augur run` says which, and exits.
#[test]
fn kafka_unreachable_broker_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(augur_bin())
        .args(["run", "--brokers", "127.0.0.1:1"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for("augur run to give up", Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(tmp.path().join("err")).unwrap();
    assert!(!status.unwrap().success(), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:1") && stderr.contains("unreachable"),
        "{stderr}"
    );
    // A job that never started is not restarted: the error is the answer.
    assert!(!stderr.contains("starting it again"), "{stderr}");
}

/// Every message of a topic as `(partition, payload, headers)`, in offset order per
/// partition, read until the end offsets at the start (for topics of up to millions of
/// messages: `patience` is how long to wait with nothing arriving).
fn read_partitions(
    brokers: &str,
    topic: &str,
    patience: Duration,
    mut f: impl FnMut(i32, &[u8], BTreeMap<String, String>),
) -> i64 {
    let (consumer, mut remaining) = from_the_start(brokers, topic);
    let total = remaining;
    let mut last = Instant::now();
    while remaining > 0 && last.elapsed() < patience {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        remaining -= 1;
        let headers = headers_of(&m);
        f(m.partition(), m.payload().unwrap_or_default(), headers);
    }
    assert!(
        remaining <= 0,
        "could not read all of {topic}: {remaining} left"
    );
    total
}

/// An `otlp_proto` logs message: one record of `service` at `time_ns`.
fn log_at(service: &str, time_ns: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message as _;
    augur_connectors::otlp::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: time_ns,
                    severity_number: 9,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The peak resident set (`VmHWM`) of the job process of `augur run` started as `pid`
/// (its child, when supervised), in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let pid = job_process(pid).unwrap_or(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The poison kinds of [`kafka_poison_mix_leaves_alerts_unchanged`], in the order they
/// take turns.
const POISON_KINDS: [&str; 6] = [
    "random bytes",
    "truncated protobuf",
    "wrong-shape JSON",
    "empty",
    "future-dated spans",
    "past-dated spans",
];

/// Poison message `i` (of kind `i % 6`, or for every 20000th from the 350th, larger than the DLQ's
/// `dlq_max_bytes`), made from `normal`, a good spans message just before it; `past` is
/// whether past-dated spans are late by now. Returns the kind and the bytes; every one
/// is a message the job must dead-letter whole.
fn poison(i: u64, normal: &[u8], past: bool) -> (&'static str, Vec<u8>) {
    // splitmix64: deterministic per message.
    let mut state = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = move |below: usize| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % below.max(1) as u64) as usize
    };
    let fails = |b: &[u8]| augur_connectors::otlp::decode_traces_proto(b, &mut Vec::new()).is_err();
    if i % 20_000 == 350 {
        // 1.2 MB that doesn't decode (a length past the end up front).
        let mut b = vec![0x0a, 0xff, 0xff, 0xff, 0x7f];
        b.extend((0..1_200_000u32).map(|k| (k % 251) as u8));
        return ("oversized", b);
    }
    let mut kind = (i % 6) as usize;
    if kind == 5 && !past {
        kind = 0;
    }
    let bytes = match kind {
        0 => loop {
            let n = 1 + next(300);
            let b: Vec<u8> = (0..n).map(|_| next(256) as u8).collect();
            if fails(&b) {
                break b;
            }
        },
        1 => {
            // Cut short until it no longer decodes (a cut at a field boundary would).
            let mut cut = 1 + next(normal.len().max(2) - 1);
            while cut > 1 && !fails(&normal[..cut]) {
                cut -= 1;
            }
            normal[..cut].to_vec()
        }
        2 => {
            // JSON of other shapes: `{` and `[` are protobuf wire type 3, never valid.
            let shapes = [
                r#"{"resourceSpans":"not a list"}"#.to_string(),
                format!("[{}]", "[".repeat(200) + &"]".repeat(200)),
                format!(
                    r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"startTimeUnixNano":{}}}]}}]}}]}}"#,
                    "9".repeat(400)
                ),
                format!(r#"{{"name":"{}"}}"#, "x".repeat(next(5000))),
                "[1e400,-0,18446744073709551616]".to_string(),
            ];
            shapes[next(shapes.len())].clone().into_bytes()
        }
        3 => Vec::new(),
        // Two spans of a service of its own in 2100 (future), or in 2001 (late).
        4 => spans_message(4_102_444_799_000, 2),
        _ => spans_message(1_000_000_000_000, 2),
    };
    (POISON_KINDS[kind], bytes)
}

/// A normal simulated stream on the spans topic with `AUGUR_POISON_COUNT` (default 700)
/// poison messages mixed in — random bytes, truncated protobuf, JSON of other shapes,
/// empty messages, spans dated in 2100 and in 2001, and every 20000th one over 1.2 MB —
/// read by `augur run -w 2`, against the same stream without them: the job never stops,
/// every poison message is exactly one dead letter (by kind, with the counters to match),
/// the alerts are those of the poison-free run (by id), and the peak RSS is reported and
/// bounded. `scripts/kafka-poison` runs it at volume.
#[test]
fn kafka_poison_mix_leaves_alerts_unchanged() {
    let Some(brokers) = broker() else { return };
    let count: u64 = std::env::var("AUGUR_POISON_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(700);
    let Fixture {
        tmp,
        prefix,
        plan,
        port_base,
    } = Fixture::new("mix", 20_000, 5_000);
    let dir = tmp.path();
    let config = |run: &str, port: u16, spans: &str| {
        // A partition goes idle only after 5 s without a message (the default), however
        // long the poison takes to read.
        job_config_edited(
            dir,
            &prefix,
            run,
            port,
            &[
                ("idle_timeout_ms = 1500\n".into(), String::new()),
                (
                    format!("spans_topic = \"{prefix}.spans\""),
                    format!("spans_topic = \"{spans}\""),
                ),
            ],
        )
    };
    let clean_spans = format!("{prefix}.spans");
    let poisoned_spans = format!("{prefix}.poisoned.spans");
    let config_clean = config("clean", port_base, &clean_spans);
    let config_poisoned = config("poisoned", port_base + 1, &poisoned_spans);

    // The normal stream: 100 simulated s with a CPU fault from 50 s.
    let out = augur(
        &[
            "simulate",
            "--kafka",
            &brokers,
            "-c",
            config_clean.to_str().unwrap(),
            "--topology",
            "social-network",
            "--duration",
            "100s",
            "--seed",
            "11",
            "--faults",
            plan.to_str().unwrap(),
            "--labels-topic",
            &format!("{prefix}.labels"),
        ],
        dir,
    );
    ok(&out);

    // The same spans messages, partition by partition, with the poison between them.
    let mut normal: Vec<(i32, Vec<u8>)> = Vec::new();
    read_partitions(
        &brokers,
        &clean_spans,
        Duration::from_secs(30),
        |p, payload, _| {
            normal.push((p, payload.to_vec()));
        },
    );
    let settings = augur_connectors::kafka::KafkaSettings::new(&brokers, "test-admin");
    let logs_topic = format!("{prefix}.logs");
    augur_connectors::kafka::ensure_topics(&settings, &[(&poisoned_spans, 2), (&logs_topic, 2)])
        .unwrap();
    // One log record at the stream's start in each logs partition (read by both runs): a
    // partition that never delivered holds a worker's watermark at 0 until it goes idle,
    // and with no window closed, spans from 2001 would not be late yet.
    let mut first = Vec::new();
    augur_connectors::otlp::decode_traces_proto(&normal[0].1, &mut first).unwrap();
    let start_ns = first.iter().map(|s| s.start_ns).min().unwrap();
    let log = log_at("stream-start", start_ns);
    let mut seed = augur_connectors::kafka::OutputProducer::unbatched(&settings).unwrap();
    for p in 0..2 {
        seed.send(&logs_topic, Some(p), None, &log, &[], None)
            .unwrap();
    }
    seed.flush().unwrap();
    let mut producer_settings =
        augur_connectors::kafka::KafkaSettings::new(&brokers, "test-producer");
    producer_settings
        .properties
        .insert("message.max.bytes".into(), "10000000".into());
    let mut producer =
        augur_connectors::kafka::OutputProducer::unbatched(&producer_settings).unwrap();
    let mut sent: BTreeMap<&str, u64> = BTreeMap::new();
    let mut poisoned = 0u64;
    let started = Instant::now();
    // Spread evenly over each partition's messages; past-dated spans only from half of a
    // partition on, once the job has windows behind it.
    let partitions: BTreeSet<i32> = normal.iter().map(|(p, _)| *p).collect();
    let mut share_left = count;
    for (i, partition) in partitions.iter().enumerate() {
        let messages: Vec<&Vec<u8>> = normal
            .iter()
            .filter(|(p, _)| p == partition)
            .map(|(_, m)| m)
            .collect();
        let share = if i + 1 == partitions.len() {
            share_left
        } else {
            count * messages.len() as u64 / normal.len() as u64
        };
        share_left -= share;
        let mut mixed = 0u64;
        for (k, payload) in messages.iter().enumerate() {
            producer
                .send(&poisoned_spans, Some(*partition), None, payload, &[], None)
                .unwrap();
            let due = share * (k as u64 + 1) / messages.len() as u64;
            let past = k >= messages.len() / 2;
            while mixed < due {
                let (kind, bytes) = poison(poisoned, payload, past);
                producer
                    .send(&poisoned_spans, Some(*partition), None, &bytes, &[], None)
                    .unwrap();
                *sent.entry(kind).or_default() += 1;
                mixed += 1;
                poisoned += 1;
                if poisoned % 1000 == 0 {
                    producer.flush().unwrap();
                }
            }
        }
    }
    producer.flush().unwrap();
    let messages = normal.len() as u64 + poisoned;
    eprintln!(
        "produced {} normal and {poisoned} poison spans messages in {:.1} s: {sent:?}",
        normal.len(),
        started.elapsed().as_secs_f64()
    );

    // Both runs, one after the other (the machine is small), each to the end of its input.
    let mut results = Vec::new();
    for (run, config, port, spans_messages) in [
        ("clean", &config_clean, port_base, normal.len() as u64),
        ("poisoned", &config_poisoned, port_base + 1, messages),
    ] {
        let started = Instant::now();
        let mut job = KillOnDrop(spawn_run(config, dir, run));
        let pid = job.0.id();
        let mut rss_samples = Vec::new();
        wait_for(
            &format!("the {run} run to read its {spans_messages} spans messages"),
            Duration::from_secs(3600),
            || {
                assert!(job.0.try_wait().unwrap().is_none(), "the {run} run stopped");
                rss_samples.push(peak_rss_kb(pid));
                let m = scrape(port);
                let read: f64 = m
                    .lines()
                    .filter(|l| l.starts_with("augur_records_in_total") && l.contains(".spans\""))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                read >= spans_messages as f64
            },
        );
        let read_secs = started.elapsed().as_secs_f64();
        wait_caught_up(run, port);
        // Until the dead letters stop coming (10 s without one).
        let mut last = (-1.0, Instant::now());
        while last.1.elapsed() < Duration::from_secs(10) {
            let dead = metric(&scrape(port), "augur_dead_letters_total");
            if dead != last.0 {
                last = (dead, Instant::now());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let m = scrape(port);
        let peak_kb = peak_rss_kb(pid);
        let counters: Vec<&str> = m
            .lines()
            .filter(|l| {
                [
                    "dead_letters",
                    "decode_errors",
                    "empty",
                    "future",
                    "late",
                    "spans_total",
                ]
                .iter()
                .any(|c| l.starts_with(&format!("augur_{c}")))
            })
            .collect();
        eprintln!("{run} run: {}", counters.join(", "));
        assert!(
            sigterm_and_wait(&mut job.0).success(),
            "the {run} run exits cleanly"
        );
        let alerts = dedup_alerts(&read_topic(&brokers, &format!("{prefix}.{run}.alerts")));
        eprintln!(
            "{run} run: read {spans_messages} spans messages in {read_secs:.1} s, peak RSS {} MB, {} alerts",
            peak_kb / 1024,
            alerts.len()
        );
        results.push((m, peak_kb, alerts));
    }
    let (clean_metrics, clean_kb, clean_alerts) = &results[0];
    let (m, poisoned_kb, poisoned_alerts) = &results[1];
    assert_eq!(
        metric(clean_metrics, "augur_dead_letters_total"),
        0.0,
        "{clean_metrics}"
    );
    assert!(!clean_alerts.is_empty(), "the fault raised no alert");
    assert_eq!(
        poisoned_alerts.keys().collect::<BTreeSet<_>>(),
        clean_alerts.keys().collect::<BTreeSet<_>>(),
        "the poison changed the alerts"
    );
    assert_eq!(poisoned_alerts, clean_alerts);

    // Each poison message is one dead letter, counted as its kind — except a past-dated
    // message read before the job closed any window of its partition's worker: no window it
    // belongs to has closed, so it is data (two spans more than the clean run), not late.
    let n = |kind: &str| sent.get(kind).copied().unwrap_or(0) as f64;
    let accepted_past =
        (metric(m, "augur_spans_total") - metric(clean_metrics, "augur_spans_total")) / 2.0;
    assert!(
        (0.0..=n("past-dated spans")).contains(&accepted_past) && accepted_past.fract() == 0.0,
        "{accepted_past} past-dated messages taken as data; {m}"
    );
    let dead_lettered = poisoned - accepted_past as u64;
    assert_eq!(
        metric(m, "augur_dead_letters_total"),
        dead_lettered as f64,
        "{m}"
    );
    assert_eq!(metric(m, "augur_empty_messages_total"), n("empty"), "{m}");
    assert_eq!(
        metric(m, "augur_future_records_total"),
        2.0 * n("future-dated spans"),
        "{m}"
    );
    assert_eq!(
        metric(m, "augur_late_records_total"),
        2.0 * (n("past-dated spans") - accepted_past),
        "{m}"
    );
    assert_eq!(
        metric(m, "augur_decode_errors_total"),
        n("random bytes") + n("truncated protobuf") + n("wrong-shape JSON") + n("oversized"),
        "{m}"
    );
    let mut letters: BTreeMap<String, u64> = BTreeMap::new();
    let mut coordinates = BTreeSet::new();
    let total = read_partitions(
        &brokers,
        &format!("{prefix}.poisoned.dlq"),
        Duration::from_secs(60),
        |_, payload, headers| {
            let reason = &headers["augur.reason"];
            let kind = if reason == "empty" {
                "empty"
            } else if reason.starts_with("future") {
                "future-dated spans"
            } else if reason.starts_with("late") {
                "past-dated spans"
            } else if headers.contains_key("augur.payload.truncated") {
                assert!(payload.len() <= 900_000);
                "oversized"
            } else {
                assert!(
                    reason.starts_with("otlp_proto: invalid protobuf"),
                    "{reason}"
                );
                "undecodable"
            };
            *letters.entry(kind.to_string()).or_default() += 1;
            coordinates.insert((
                headers["augur.source.partition"].clone(),
                headers["augur.source.offset"].clone(),
            ));
        },
    );
    assert_eq!(
        total as u64, dead_lettered,
        "one dead letter per poison message"
    );
    assert_eq!(
        coordinates.len() as u64,
        dead_lettered,
        "each for a different message"
    );
    assert_eq!(
        letters.get("empty").copied().unwrap_or(0) as f64,
        n("empty")
    );
    assert_eq!(
        letters.get("oversized").copied().unwrap_or(0) as f64,
        n("oversized")
    );
    assert_eq!(
        letters.get("undecodable").copied().unwrap_or(0) as f64,
        n("random bytes") + n("truncated protobuf") + n("wrong-shape JSON")
    );
    // The poison costs memory only while in flight: bounded by the clean run's peak plus
    // a margin, whatever the count.
    eprintln!(
        "peak RSS: clean {} MB, poisoned {} MB",
        clean_kb / 1024,
        poisoned_kb / 1024
    );
    assert!(
        *poisoned_kb < clean_kb + 256 * 1024,
        "peak RSS {poisoned_kb} kB with the poison, {clean_kb} kB without"
    );
}

/// Messages the job on `port` has read.
fn records_in(port: u16) -> f64 {
    metric(&scrape(port), "augur_records_in_total")
}

/// A live stream whose message rate jumps tenfold for a while: 100 simulated s of the
/// social network with a CPU fault and corrupt messages, copied message by message from
/// the topics `augur simulate` filled into the topics `augur run -w 2` reads — the first
/// 30 % at a base rate, the next 30 % at ten times it, the rest at the base rate. The job
/// never stops, reads every message, dead-letters every corrupt message, and raises the alerts a
/// replay of the source topics raises (by id and content); its resident memory grows by
/// less than 256 MB from before the spike.
#[test]
fn kafka_ten_times_spike_leaves_alerts_unchanged() {
    let Some(brokers) = broker() else { return };
    let Fixture {
        tmp,
        prefix,
        plan,
        port_base,
    } = Fixture::new("spike", 31_000, 1_000);
    let dir = tmp.path();
    let config_source = job_config(dir, &prefix, "source", port_base);
    let live_spans = format!("{prefix}.live.spans");
    let live_metrics = format!("{prefix}.live.metrics");
    let live_dlq = format!("{prefix}.live.dlq");
    let config_live = job_config_edited(
        dir,
        &prefix,
        "live",
        port_base,
        &[
            (
                format!("spans_topic = \"{prefix}.spans\""),
                format!("spans_topic = \"{live_spans}\""),
            ),
            (
                format!("metrics_topic = \"{prefix}.metrics\""),
                format!("metrics_topic = \"{live_metrics}\""),
            ),
        ],
    );
    ok(&augur(
        &[
            "simulate",
            "--kafka",
            &brokers,
            "-c",
            config_source.to_str().unwrap(),
            "--topology",
            "social-network",
            "--duration",
            "100s",
            "--seed",
            "13",
            "--faults",
            plan.to_str().unwrap(),
            "--corrupt",
            "6",
            "--labels-topic",
            &format!("{prefix}.labels"),
        ],
        dir,
    ));
    let reference = replay_alerts(&brokers, &config_source, dir);
    assert!(!reference.is_empty(), "the fault raised no alert");

    // Every source message, per topic and partition, merged in stream order (each
    // partition's k-th of n messages at position (k + 1) / n).
    let mut per_partition: BTreeMap<(String, i32), Vec<Vec<u8>>> = BTreeMap::new();
    let mut partition_counts = Vec::new();
    for (source, live) in [
        (format!("{prefix}.spans"), &live_spans),
        (format!("{prefix}.metrics"), &live_metrics),
    ] {
        let mut partitions = BTreeSet::new();
        read_partitions(
            &brokers,
            &source,
            Duration::from_secs(30),
            |p, payload, _| {
                partitions.insert(p);
                per_partition
                    .entry((live.clone(), p))
                    .or_default()
                    .push(payload.to_vec());
            },
        );
        partition_counts.push((live.clone(), partitions.len() as i32));
    }
    let mut stream: Vec<(f64, &str, i32, &[u8])> = Vec::new();
    for ((topic, p), messages) in &per_partition {
        let n = messages.len() as f64;
        for (k, m) in messages.iter().enumerate() {
            stream.push(((k + 1) as f64 / n, topic, *p, m));
        }
    }
    stream.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = stream.len();
    let settings = augur_connectors::kafka::KafkaSettings::new(&brokers, "test-admin");
    let counts: Vec<(&str, i32)> = partition_counts
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    augur_connectors::kafka::ensure_topics(&settings, &counts).unwrap();
    let undecodable = |topic: &str, m: &[u8]| {
        topic == live_spans
            && augur_connectors::otlp::decode_traces_proto(m, &mut Vec::new()).is_err()
    };

    let mut job = KillOnDrop(spawn_run(&config_live, dir, "live"));
    let pid = job.0.id();
    let producer_settings = augur_connectors::kafka::KafkaSettings::new(&brokers, "test-copier");
    let mut producer =
        augur_connectors::kafka::OutputProducer::unbatched(&producer_settings).unwrap();
    // About 45 s of copying: the base rate r over 70 % of the messages, 10 r over 30 %.
    let base_rate = 0.73 * total as f64 / 45.0;
    let spike = (total * 3 / 10)..(total * 6 / 10);
    let mut copy = |range: std::ops::Range<usize>, rate: f64, job: &mut KillOnDrop| {
        let started = Instant::now();
        for (i, (_, topic, p, m)) in stream[range.clone()].iter().enumerate() {
            producer.send(topic, Some(*p), None, m, &[], None).unwrap();
            let due = Duration::from_secs_f64((i + 1) as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            if i % 200 == 0 {
                assert!(job.0.try_wait().unwrap().is_none(), "the job stopped");
            }
        }
        producer.flush().unwrap();
        started.elapsed().as_secs_f64()
    };
    let secs = copy(0..spike.start, base_rate, &mut job);
    let rss_before = peak_rss_kb(pid);
    eprintln!(
        "{} messages at {base_rate:.0}/s in {secs:.1} s; peak RSS {} MB",
        spike.start,
        rss_before / 1024
    );
    let secs = copy(spike.clone(), 10.0 * base_rate, &mut job);
    let spike_end = Instant::now();
    wait_for(
        "the job to read what the spike brought",
        Duration::from_secs(120),
        || records_in(port_base) >= spike.end as f64,
    );
    eprintln!(
        "{} messages at {:.0}/s in {secs:.1} s, all read {:.1} s after the last was produced",
        spike.len(),
        10.0 * base_rate,
        spike_end.elapsed().as_secs_f64()
    );

    let secs = copy(spike.end..total, base_rate, &mut job);
    eprintln!(
        "{} messages at {base_rate:.0}/s in {secs:.1} s",
        total - spike.end
    );
    wait_for(
        "the job to read every message",
        Duration::from_secs(120),
        || records_in(port_base) >= total as f64,
    );
    wait_caught_up("the live job", port_base);
    let m = scrape(port_base);
    let peak_kb = peak_rss_kb(pid);
    assert!(
        sigterm_and_wait(&mut job.0).success(),
        "the job exits cleanly"
    );

    let corrupt = stream
        .iter()
        .filter(|(_, topic, _, m)| undecodable(topic, m))
        .count();
    assert!(corrupt > 0, "no corrupt message in the stream");
    assert_eq!(
        metric(&m, "augur_dead_letters_total"),
        corrupt as f64,
        "{m}"
    );
    assert_eq!(metric(&m, "augur_late_records_total"), 0.0, "{m}");
    let letters = read_topic(&brokers, &live_dlq);
    assert_eq!(letters.len(), corrupt, "dead letters");
    let alerts = dedup_alerts(&read_topic(&brokers, &format!("{prefix}.live.alerts")));
    eprintln!(
        "{} alerts (replay of the source: {}); peak RSS {} MB, {} MB before the spike",
        alerts.len(),
        reference.len(),
        peak_kb / 1024,
        rss_before / 1024
    );
    assert_eq!(
        alerts.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    assert_eq!(alerts, reference);
    assert!(
        peak_kb < rss_before + 256 * 1024,
        "peak RSS {peak_kb} kB, {rss_before} kB before the spike"
    );
}

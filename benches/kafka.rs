//! Kafka harness against a real broker on loopback (`scripts/broker start`, then
//! `AUGUR_BROKER=127.0.0.1:9092 cargo bench --bench kafka [-- SECONDS]`; without
//! `AUGUR_BROKER` it says so and exits). A simulated social network (default 300 simulated
//! seconds) is produced to fresh topics with `augur simulate --kafka` (produce rate), the
//! topics are read raw with a `BaseConsumer` (consume rate), then `augur replay --brokers`
//! runs the whole dataflow over them on 1 and 2 workers (Kafka → alerts, spans/s per worker).

use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn augur(args: &[&str], dir: &std::path::Path) -> anyhow::Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_augur"))
        .args(args)
        .current_dir(dir)
        .env("OMP_NUM_THREADS", "1")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(out.status.success(), "augur {args:?} failed: {stderr}");
    Ok(stderr)
}

/// Reads every message of the topics once; (messages, bytes, seconds).
fn consume(brokers: &str, topics: &[String]) -> anyhow::Result<(u64, u64, f64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for p in 0..metadata.topics()[0].partitions().len() as i32 {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            remaining += high - low;
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let (mut messages, mut bytes) = (0u64, 0u64);
    while remaining > 0 && started.elapsed() < Duration::from_secs(120) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            remaining -= 1;
            messages += 1;
            bytes += m.payload().map_or(0, |p| p.len() as u64);
        }
    }
    Ok((messages, bytes, started.elapsed().as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    let Some(brokers) = std::env::var("AUGUR_BROKER").ok().filter(|b| !b.is_empty()) else {
        eprintln!("AUGUR_BROKER is not set: start a broker (scripts/broker start) and set it");
        return Ok(());
    };
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir()?;
    let prefix = format!("bench{}", std::process::id());
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nspans_topic = \"{prefix}.spans\"\nmetrics_topic = \"{prefix}.metrics\"\n"
        ),
    )?;
    let config = config.to_str().unwrap_or_default().to_string();
    let duration = format!("{seconds}s");
    let labels = format!("{prefix}.labels");
    let produced = augur(
        &[
            "simulate",
            "--kafka",
            &brokers,
            "-c",
            &config,
            "--topology",
            "social-network",
            "--duration",
            &duration,
            "--seed",
            "3",
            "--labels-topic",
            &labels,
        ],
        dir.path(),
    )?;
    println!("produce: {}", produced.trim());
    let (messages, bytes, secs) = consume(
        &brokers,
        &[format!("{prefix}.spans"), format!("{prefix}.metrics")],
    )?;
    println!(
        "consume (BaseConsumer, raw): {messages} messages, {:.1} MB in {secs:.2} s: {:.0} msg/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        messages as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    for workers in ["1", "2"] {
        let out = augur(
            &[
                "replay",
                "--brokers",
                &brokers,
                "-c",
                &config,
                "-w",
                workers,
            ],
            dir.path(),
        )?;
        let line = out
            .lines()
            .find(|l| l.starts_with("replayed"))
            .unwrap_or_default();
        // "replayed N spans in S s (X spans/s); ..."
        let rate: f64 = line
            .split('(')
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        let w: f64 = workers.parse().unwrap_or(1.0);
        println!(
            "kafka → alerts, {workers} worker(s): {line}  => {:.0} spans/s per worker",
            rate / w
        );
    }
    Ok(())
}

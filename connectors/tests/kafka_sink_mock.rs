//! The Kafka sink's dead letters against librdkafka's in-process MockCluster: one too large
//! to write is cut to `dlq_max_bytes`, and one the producer still refuses is written as a
//! reference; neither is an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use augur_connectors::dead_letter::{DeadLetter, DeadLetterKind};
use augur_connectors::kafka::{KafkaMetrics, KafkaSettings, KafkaSink, OutputTopics};
use augur_connectors::sink::Outputs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};

struct NoMetrics;

impl KafkaMetrics for NoMetrics {
    fn records_in(&self, _: &str, _: u64) {}
    fn record_out(&self, _: &str) {}
    fn lag(&self, _: &str, _: i32, _: i64) {}
    fn windows_open(&self, _: u64) {}
}

/// Every message of partition 0 of `topic`: (value, headers).
fn read(
    settings: &KafkaSettings,
    topic: &str,
    want: usize,
) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
    let consumer: BaseConsumer = settings.consumer().create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < want && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let mut headers = BTreeMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_string(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push((m.payload().unwrap_or_default().to_vec(), headers));
    }
    out
}

fn dead_letter(size: usize, offset: u64) -> DeadLetter {
    DeadLetter {
        source: "otlp_spans/3".to_string(),
        offset,
        reason: "otlp_proto: invalid protobuf".to_string(),
        kind: DeadLetterKind::Invalid,
        payload: (0..size).map(|i| (i % 251) as u8).collect(),
    }
}

#[test]
fn oversized_dead_letters_are_cut_or_referenced_never_an_error() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("augur.dlq", 1, 1).expect("topic");
    let settings = KafkaSettings::new(&cluster.bootstrap_servers(), "augur-test");
    let topics = OutputTopics {
        partitions: 1,
        alerts: "augur.alerts".to_string(),
        actions: "augur.actions".to_string(),
        dlq: "augur.dlq".to_string(),
        state: "augur.state".to_string(),
        state_prefix: "augur/".to_string(),
    };
    let mut sink = KafkaSink::new(&settings, topics.clone(), Arc::new(NoMetrics)).expect("sink");
    // 5 MB: over the default producer limit (1 MB); cut to dlq_max_bytes.
    let big = dead_letter(5_000_000, 17);
    sink.dead_letter(&big)
        .expect("a big dead letter is written");
    sink.flush().expect("acknowledged");
    // A limit above what the producer accepts: the dead letter goes as a reference.
    let mut lax = KafkaSink::new(&settings, topics, Arc::new(NoMetrics))
        .expect("sink")
        .with_dlq_max_bytes(2_000_000);
    lax.dead_letter(&dead_letter(1_500_000, 18))
        .expect("a refused dead letter is written as a reference");
    lax.flush().expect("acknowledged");

    let got = read(&settings, "augur.dlq", 2);
    assert_eq!(got.len(), 2);
    let (cut, headers) = &got[0];
    assert_eq!(cut[..], big.payload[..900_000]);
    assert_eq!(headers["augur.payload.truncated"], "true");
    assert_eq!(headers["augur.payload.size"], "5000000");
    assert_eq!(headers["augur.source.topic"], "otlp_spans");
    assert_eq!(headers["augur.source.partition"], "3");
    assert_eq!(headers["augur.source.offset"], "17");
    let (reference, headers) = &got[1];
    assert!(reference.is_empty());
    assert_eq!(headers["augur.payload.truncated"], "true");
    assert_eq!(headers["augur.payload.size"], "1500000");
    assert_eq!(headers["augur.source.offset"], "18");
}

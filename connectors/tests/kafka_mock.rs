//! The Kafka connectors against librdkafka's in-process MockCluster: produce OTLP, read
//! it back split over two workers, decode, commit, resume from the commit.

use std::time::Duration;

use augur_connectors::kafka::{
    Encoding, KafkaSettings, OffsetTracker, OutputProducer, PartitionConsumer, StartAt,
    decode_message,
};
use augur_connectors::otlp::{MetricNames, encode_traces_proto};
use augur_operators::records::{Span, SpanKind};
use rdkafka::mocking::MockCluster;

const LONG: Duration = Duration::from_secs(10);

fn span(i: u64) -> Span {
    Span {
        trace_id: u128::from(i) + 1,
        span_id: i + 1,
        parent_span_id: None,
        service: format!("svc-{}", i % 3),
        instance: "i-0".to_string(),
        kind: SpanKind::Server,
        name: "op".to_string(),
        start_ns: 1_700_000_000_000_000_000 + i * 1_000_000,
        end_ns: 1_700_000_000_000_000_000 + i * 1_000_000 + 500_000,
        error: false,
        peer_service: None,
        version: None,
    }
}

/// Reads everything a fresh consumer of `worker`/`peers` sees until `want` messages or 10 s.
fn read_all(
    settings: &KafkaSettings,
    worker: usize,
    peers: usize,
    start: StartAt,
    want: usize,
    patience: Duration,
) -> (PartitionConsumer, Vec<(i32, i64, Vec<Span>)>) {
    let topics = vec!["otlp_spans".to_string()];
    let mut consumer =
        PartitionConsumer::open(settings, &topics, worker, peers, start, false).expect("opens");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + patience;
    while got.len() < want && std::time::Instant::now() < deadline {
        consumer.poll(100, Duration::from_millis(50), |m| {
            let mut spans = Vec::new();
            let mut points = Vec::new();
            decode_message(
                m.payload,
                false,
                Encoding::OtlpProto,
                &MetricNames::default(),
                &mut augur_connectors::otlp::Rates::default(),
                &mut spans,
                &mut points,
            )
            .expect("decodes");
            got.push((m.partition, m.offset, spans));
        });
    }
    (consumer, got)
}

#[test]
fn produce_consume_split_commit_resume() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("otlp_spans", 2, 1).expect("topic");
    let settings = KafkaSettings::new(&cluster.bootstrap_servers(), "augur-test");
    let mut producer = OutputProducer::unbatched(&settings).expect("producer");
    for i in 0..20u64 {
        let payload = encode_traces_proto(&[span(i)]);
        let key = format!("k{i}");
        producer
            .send(
                "otlp_spans",
                None,
                Some(key.as_bytes()),
                &payload,
                &[],
                None,
            )
            .expect("send");
    }
    producer.flush().expect("flush");
    assert_eq!(producer.delivered(), 20);

    // Two workers split the two partitions and see every message once.
    // Worker 0 reads until partition 0 is quiet for a while; worker 1 reads the rest.
    let (c0, got0) = read_all(
        &settings,
        0,
        2,
        StartAt::Beginning,
        20,
        Duration::from_secs(2),
    );
    let (_c1, got1) = read_all(&settings, 1, 2, StartAt::Beginning, 20 - got0.len(), LONG);
    assert_eq!(c0.assignment(), vec![(0, 0)]);
    assert!(got0.iter().all(|(p, _, _)| *p == 0));
    assert!(got1.iter().all(|(p, _, _)| *p == 1));
    let mut ids: Vec<u64> = got0
        .iter()
        .chain(&got1)
        .flat_map(|(_, _, s)| s.iter().map(|s| s.span_id))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());

    // One worker reads both, commits what the first window covers, and a new consumer
    // resumes right after the commit.
    let (c, got) = read_all(&settings, 0, 1, StartAt::Committed, 20, LONG);
    assert_eq!(got.len(), 20);
    let mut tracker = OffsetTracker::default();
    for (topic, p, o) in c.start_offsets() {
        tracker.start(&topic, p, o);
    }
    for (p, o, _) in &got {
        tracker.read("otlp_spans", *p, *o, if *o < 3 { 1000 } else { 2000 });
    }
    let commits = tracker.advance(1001);
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert!(commits.iter().all(|(_, _, next)| *next == 3));
    c.commit(&commits, "1001", true).expect("commit");
    drop(c);
    let remaining = got.iter().filter(|(_, o, _)| *o >= 3).count();
    let (c, resumed) = read_all(&settings, 0, 1, StartAt::Committed, remaining, LONG);
    assert_eq!(resumed.len(), remaining);
    assert_eq!(
        c.resumed_metadata(),
        &[Some("1001".to_string()), Some("1001".to_string())],
        "the commit metadata carries the durable frontier"
    );
    assert!(
        resumed.iter().all(|(_, o, _)| *o >= 3),
        "{:?}",
        resumed.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>()
    );
}

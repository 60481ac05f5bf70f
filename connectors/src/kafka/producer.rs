//! The output producer: in, messages for the output topics (alerts, actions, dead letters)
//! with keys and headers; out, the same on the broker, idempotently (`enable.idempotence`,
//! `acks=all`). [`OutputProducer::flush`] waits until everything sent so far is
//! acknowledged and fails if any delivery failed — the job commits source offsets only
//! after a successful flush. State: the producer and a count of failed deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::message::{Header as RdHeader, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::error::KafkaError;
use super::settings::KafkaSettings;

/// A message header.
pub type Header<'a> = (&'a str, &'a [u8]);

#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

struct Context(Arc<Deliveries>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                // Purged: the producer is being replaced (the messages are sent again).
                if !matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                ) {
                    tracing::error!("kafka delivery failed: {e}");
                }
                self.0.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

pub struct OutputProducer {
    producer: ThreadedProducer<Context>,
    deliveries: Arc<Deliveries>,
    failed_seen: u64,
    flush_timeout: Duration,
    brokers: String,
}

/// How long one [`OutputProducer::flush`] waits for acknowledgements before it says
/// which are still pending (the caller retries; nothing is dropped).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl OutputProducer {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Self::with_config(settings.producer())
    }

    /// A producer that sends each message as its own batch (`batch.num.messages=1`), for
    /// brokers that serve whole batches (tansu's memory engine) and tests.
    pub fn unbatched(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let mut config = settings.producer();
        config.set("batch.num.messages", "1");
        Self::with_config(config)
    }

    fn with_config(config: rdkafka::ClientConfig) -> Result<Self, KafkaError> {
        let brokers = config
            .get("bootstrap.servers")
            .unwrap_or_default()
            .to_string();
        let deliveries = Arc::new(Deliveries::default());
        let producer = config
            .create_with_context(Context(Arc::clone(&deliveries)))
            .map_err(KafkaError::client("creating the producer"))?;
        Ok(OutputProducer {
            producer,
            deliveries,
            failed_seen: 0,
            flush_timeout: FLUSH_TIMEOUT,
            brokers,
        })
    }

    /// Queues one message; waits (briefly, repeatedly) while the local queue is full.
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[Header<'_>],
        timestamp_ms: Option<i64>,
    ) -> Result<(), KafkaError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            owned = owned.insert(RdHeader {
                key: k,
                value: Some(*v),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).payload(payload).headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((e, back)) => {
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    return Err(KafkaError::Client {
                        op: format!("producing to {topic}"),
                        source: e,
                    });
                }
            }
        }
    }

    /// Waits until every message sent so far is acknowledged; an error if any failed, and
    /// [`KafkaError::Unacknowledged`] if some are still pending after a few seconds (they
    /// stay queued: call again).
    pub fn flush(&mut self) -> Result<(), KafkaError> {
        if let Err(e) = self.producer.flush(self.flush_timeout) {
            if e.rdkafka_error_code() != Some(RDKafkaErrorCode::OperationTimedOut) {
                return Err(KafkaError::Client {
                    op: "flushing the producer".to_string(),
                    source: e,
                });
            }
            return Err(KafkaError::Unacknowledged {
                pending: self.producer.in_flight_count(),
                brokers: self.brokers.clone(),
                waited: self.flush_timeout,
            });
        }
        let failed = self.deliveries.failed.load(Ordering::Relaxed);
        if failed > self.failed_seen {
            let new = failed - self.failed_seen;
            self.failed_seen = failed;
            return Err(KafkaError::Undelivered { count: new });
        }
        Ok(())
    }

    /// [`OutputProducer::flush`] again while messages are pending, for up to `patience`
    /// in all (a producer that sent a large backlog).
    pub fn flush_waiting(&mut self, patience: Duration) -> Result<(), KafkaError> {
        let started = std::time::Instant::now();
        loop {
            match self.flush() {
                Err(KafkaError::Unacknowledged { .. }) if started.elapsed() < patience => {}
                result => return result,
            }
        }
    }

    /// Messages acknowledged by the broker so far.
    pub fn delivered(&self) -> u64 {
        self.deliveries.ok.load(Ordering::Relaxed)
    }
}

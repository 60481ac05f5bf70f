//! Kafka outputs: in, alerts, dead letters, decide states and encoded actuation commands;
//! out, `augur.alerts` (alert JSON, key = service), `augur.actions` (the record as given,
//! key = subject), `augur.dlq` (the original bytes; reason and source
//! topic/partition/offset in headers) and the decide states to `augur.state` (key =
//! `<group>/<detector>`, see [`state_key`]), through one idempotent producer. A dead letter
//! never stops the job for its size: a value over `dlq_max_bytes` is cut to it, and one the
//! producer still refuses is written as a reference (headers only; the original stays at its
//! source coordinates). Outputs the broker doesn't acknowledge are kept until it does:
//! missing output topics are recreated, and a producer stuck for 20 s (messages pending, none
//! acknowledged: a slow broker that still acknowledges is waited for) is replaced and the
//! unconfirmed messages sent again; so is one whose deliveries failed, up to
//! [`RESENDS_ON_FAILURE`] times in a row before the flush fails. State: the producer, copies
//! of the messages since the last confirmed flush, and the counters it reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use augur_operators::Alert;
use augur_operators::decide::DeciderState;

use super::admin::{ensure_compacted_topic, ensure_topics};
use super::error::KafkaError;
use super::metrics::KafkaMetrics;
use super::producer::{Header, OutputProducer};
use super::settings::KafkaSettings;
use crate::dead_letter::DeadLetter;
use crate::otlp::cut_at_char;
use crate::sink::{Outputs, SinkError};

/// Output topics: their names, and the partitions of those recreated when missing.
#[derive(Clone, Debug)]
pub struct OutputTopics {
    pub partitions: i32,
    pub alerts: String,
    pub actions: String,
    pub dlq: String,
    /// The job-state topic, and this job's key prefix in it (`<group>/`).
    pub state: String,
    pub state_prefix: String,
}

/// The key of a detector's decide state in the state topic.
pub fn state_key(prefix: &str, detector: &str) -> String {
    format!("{prefix}{detector}")
}

pub struct KafkaSink {
    settings: KafkaSettings,
    producer: OutputProducer,
    /// Copies of the messages sent since the last confirmed flush.
    outbox: Vec<Unconfirmed>,
    /// Since when the producer has had messages pending and delivered none.
    pending_since: Option<Instant>,
    /// The producer's acknowledged messages when `pending_since` was last set.
    delivered_seen: u64,
    /// When a topic the job writes was last (re)created because outputs were pending.
    last_recreate: Option<Instant>,
    topics: OutputTopics,
    metrics: Arc<dyn KafkaMetrics>,
    dlq_max_bytes: usize,
    /// Producers replaced in a row because deliveries failed.
    resends: u32,
}

/// Dead-letter reasons longer than this are cut (they name the error, not the input).
const MAX_REASON_BYTES: usize = 1024;

/// The largest dead-letter value by default: under the default `message.max.bytes`
/// (1000000) with room for the headers.
pub const DLQ_MAX_BYTES: usize = 900_000;

impl KafkaSink {
    pub fn new(
        settings: &KafkaSettings,
        topics: OutputTopics,
        metrics: Arc<dyn KafkaMetrics>,
    ) -> Result<Self, SinkError> {
        Ok(KafkaSink {
            settings: settings.clone(),
            producer: OutputProducer::new(settings)?,
            outbox: Vec::new(),
            pending_since: None,
            delivered_seen: 0,
            last_recreate: None,
            topics,
            metrics,
            dlq_max_bytes: DLQ_MAX_BYTES,
            resends: 0,
        })
    }

    /// Dead-letter values over `bytes` are cut to it.
    pub fn with_dlq_max_bytes(mut self, bytes: usize) -> Self {
        self.dlq_max_bytes = bytes;
        self
    }

    /// Writes one actuation command (already encoded) to the actions topic.
    pub fn action(
        &mut self,
        subject: &str,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> Result<(), SinkError> {
        let topic = self.topics.actions.clone();
        self.send(&topic, Some(subject.as_bytes()), value, headers)?;
        self.metrics.record_out(&self.topics.actions);
        Ok(())
    }
}

impl KafkaSink {
    /// Hands one message to the producer and keeps a copy until a flush confirms it.
    fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> Result<(), KafkaError> {
        self.producer.send(topic, None, key, value, headers, None)?;
        self.outbox.push(Unconfirmed {
            topic: topic.to_string(),
            key: key.map(<[u8]>::to_vec),
            value: value.to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.to_vec()))
                .collect(),
        });
        Ok(())
    }

    /// A producer that hasn't delivered for [`RENEW_AFTER`] is replaced, and everything
    /// not yet confirmed is sent again through the new one (a broker that came back without
    /// its state can leave librdkafka's idempotent producer waiting for good). Some may
    /// have been delivered: duplicates, which at-least-once allows.
    fn renew_producer(&mut self, why: &str) -> Result<(), KafkaError> {
        tracing::warn!(
            "kafka: {why}: replacing the producer and sending {} unconfirmed messages again",
            self.outbox.len()
        );
        self.producer = OutputProducer::new(&self.settings)?;
        // The new producer's clock: nothing delivered yet, pending from now.
        self.delivered_seen = 0;
        self.pending_since = Some(Instant::now());
        for m in &self.outbox {
            let headers: Vec<Header<'_>> = m
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            self.producer
                .send(&m.topic, None, m.key.as_deref(), &m.value, &headers, None)?;
        }
        Ok(())
    }

    /// Outputs wait for acknowledgement: maybe a topic the job writes was deleted (brokers
    /// such as tansu don't auto-create). Creates whichever is missing, at most every
    /// [`RECREATE_EVERY`]; existing topics are left alone, and a broker that doesn't answer
    /// is only logged (the producer keeps retrying).
    fn recreate_topics(&mut self) {
        if self
            .last_recreate
            .is_some_and(|t| t.elapsed() < RECREATE_EVERY)
        {
            return;
        }
        self.last_recreate = Some(Instant::now());
        let t = &self.topics;
        let owned = [
            (t.alerts.as_str(), t.partitions),
            (t.actions.as_str(), t.partitions),
            (t.dlq.as_str(), t.partitions),
        ];
        let created = ensure_topics(&self.settings, &owned)
            .and_then(|()| ensure_compacted_topic(&self.settings, &t.state));
        if let Err(e) = created {
            tracing::warn!("recreating the output topics: {e}");
        }
    }
}

/// One message handed to the producer and not yet confirmed.
struct Unconfirmed {
    topic: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// How long outputs may go unacknowledged before the producer is replaced.
const RENEW_AFTER: Duration = Duration::from_secs(20);

/// Producers replaced in a row after failed deliveries before a flush fails (the job then
/// stops without committing past them): a refusal that outlasts this many fresh producers
/// is the message's or the configuration's, not a passing state of the broker.
const RESENDS_ON_FAILURE: u32 = 3;

/// How often (at most) a sink whose outputs wait checks that its topics exist.
const RECREATE_EVERY: Duration = Duration::from_secs(10);

/// `topic/partition` as the Kafka source names a dead letter's origin.
fn split_source(source: &str) -> (&str, Option<&str>) {
    match source.rsplit_once('/') {
        Some((topic, partition)) if partition.parse::<i32>().is_ok() => (topic, Some(partition)),
        _ => (source, None),
    }
}

impl Outputs for KafkaSink {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let json = serde_json::to_vec(alert).map_err(|source| SinkError::Encode {
            what: "an alert",
            source,
        })?;
        let topic = self.topics.alerts.clone();
        self.send(
            &topic,
            Some(alert.service.as_bytes()),
            &json,
            &[
                ("content-type", b"application/json"),
                ("augur.alert_id", alert.id.as_bytes()),
            ],
        )?;
        self.metrics.record_out(&self.topics.alerts);
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<(), SinkError> {
        let (topic, partition) = split_source(&dead.source);
        let offset = dead.offset.to_string();
        let size = dead.payload.len().to_string();
        let records = dead.kind.records().map(|n| n.to_string());
        let reason = cut_at_char(&dead.reason, MAX_REASON_BYTES);
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("augur.reason", reason.as_bytes()),
            ("augur.source", dead.source.as_bytes()),
            ("augur.source.topic", topic.as_bytes()),
            ("augur.source.offset", offset.as_bytes()),
            ("augur.payload.size", size.as_bytes()),
        ];
        if let Some(p) = partition {
            headers.push(("augur.source.partition", p.as_bytes()));
        }
        if let Some(n) = &records {
            headers.push(("augur.records", n.as_bytes()));
        }
        let cut = dead.payload.len() > self.dlq_max_bytes;
        if cut {
            headers.push(("augur.payload.truncated", b"true"));
        }
        let value = &dead.payload[..dead.payload.len().min(self.dlq_max_bytes)];
        let key = Some(dead.source.as_bytes());
        let dlq = self.topics.dlq.clone();
        if let Err(e) = self.send(&dlq, key, value, &headers) {
            // Refused as it is (too large for this producer's `message.max.bytes`, ...):
            // the reference alone.
            tracing::warn!(
                "dead letter from {} offset {offset} ({size} bytes): {e}; writing it without its payload",
                dead.source
            );
            if !cut {
                headers.push(("augur.payload.truncated", b"true"));
            }
            self.send(&dlq, key, &[], &headers)?;
        }
        self.metrics.record_out(&self.topics.dlq);
        Ok(())
    }

    fn decider_state(&mut self, detector: &str, state: &DeciderState) -> Result<(), SinkError> {
        let json = serde_json::to_vec(state).map_err(|source| SinkError::Encode {
            what: "a decide state",
            source,
        })?;
        let key = state_key(&self.topics.state_prefix, detector);
        let topic = self.topics.state.clone();
        self.send(
            &topic,
            Some(key.as_bytes()),
            &json,
            &[("content-type", b"application/json")],
        )?;
        self.metrics.record_out(&self.topics.state);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let result = self.producer.flush();
        match &result {
            Ok(()) => {
                self.outbox.clear();
                self.pending_since = None;
                self.delivered_seen = self.producer.delivered();
            }
            Err(KafkaError::Unacknowledged { .. }) => {
                self.recreate_topics();
                // Progress restarts the clock: only a producer that delivers nothing is stuck
                // (replacing one that is merely slower than the input resends its backlog).
                let delivered = self.producer.delivered();
                if delivered > self.delivered_seen {
                    self.delivered_seen = delivered;
                    self.pending_since = Some(Instant::now());
                }
                let since = *self.pending_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= RENEW_AFTER {
                    let why = format!("outputs unacknowledged for {} s", RENEW_AFTER.as_secs());
                    self.renew_producer(&why)?;
                }
            }
            Err(KafkaError::Undelivered { count }) if self.resends < RESENDS_ON_FAILURE => {
                // A refused delivery can be the broker's state, not the message (a topic
                // deleted and recreated under an idempotent producer: `ProducerFenced`):
                // topics checked, a new producer, everything unconfirmed sent again.
                let count = *count;
                self.last_recreate = None;
                self.recreate_topics();
                self.renew_producer(&format!("{count} deliveries failed"))?;
                self.resends += 1;
                return Err(KafkaError::Resent {
                    count,
                    resent: self.outbox.len(),
                    attempt: self.resends,
                    max: RESENDS_ON_FAILURE,
                }
                .into());
            }
            Err(_) => {}
        }
        if result.is_ok() {
            self.resends = 0;
        }
        Ok(result?)
    }
}

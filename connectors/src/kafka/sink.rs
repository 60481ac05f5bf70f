//! Kafka outputs: in, alerts, dead letters, decide states and encoded actuation commands;
//! out, `augur.alerts` (alert JSON, key = service), `augur.actions` (the record as given,
//! key = subject), `augur.dlq` (the original bytes; reason and source
//! topic/partition/offset in headers) and the decide states to `augur.state` (key =
//! `<group>/<detector>`, see [`state_key`]), through one idempotent producer. State: the
//! producer and the counters it reports.

use std::sync::Arc;

use augur_operators::Alert;
use augur_operators::decide::DeciderState;

use super::metrics::KafkaMetrics;
use super::producer::{Header, OutputProducer};
use super::settings::KafkaSettings;
use crate::dead_letter::DeadLetter;
use crate::sink::{Outputs, SinkError};

/// Output topic names.
#[derive(Clone, Debug)]
pub struct OutputTopics {
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
    producer: OutputProducer,
    topics: OutputTopics,
    metrics: Arc<dyn KafkaMetrics>,
}

impl KafkaSink {
    pub fn new(
        settings: &KafkaSettings,
        topics: OutputTopics,
        metrics: Arc<dyn KafkaMetrics>,
    ) -> Result<Self, SinkError> {
        Ok(KafkaSink {
            producer: OutputProducer::new(settings)?,
            topics,
            metrics,
        })
    }

    /// Writes one actuation command (already encoded) to the actions topic.
    pub fn action(
        &mut self,
        subject: &str,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> Result<(), SinkError> {
        self.producer.send(
            &self.topics.actions,
            None,
            Some(subject.as_bytes()),
            value,
            headers,
            None,
        )?;
        self.metrics.record_out(&self.topics.actions);
        Ok(())
    }
}

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
        self.producer.send(
            &self.topics.alerts,
            None,
            Some(alert.service.as_bytes()),
            &json,
            &[
                ("content-type", b"application/json"),
                ("augur.alert_id", alert.id.as_bytes()),
            ],
            None,
        )?;
        self.metrics.record_out(&self.topics.alerts);
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<(), SinkError> {
        let (topic, partition) = split_source(&dead.source);
        let offset = dead.offset.to_string();
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("augur.reason", dead.reason.as_bytes()),
            ("augur.source", dead.source.as_bytes()),
            ("augur.source.topic", topic.as_bytes()),
            ("augur.source.offset", offset.as_bytes()),
        ];
        if let Some(p) = partition {
            headers.push(("augur.source.partition", p.as_bytes()));
        }
        self.producer.send(
            &self.topics.dlq,
            None,
            Some(dead.source.as_bytes()),
            &dead.payload,
            &headers,
            None,
        )?;
        self.metrics.record_out(&self.topics.dlq);
        Ok(())
    }

    fn decider_state(&mut self, detector: &str, state: &DeciderState) -> Result<(), SinkError> {
        let json = serde_json::to_vec(state).map_err(|source| SinkError::Encode {
            what: "a decide state",
            source,
        })?;
        let key = state_key(&self.topics.state_prefix, detector);
        self.producer.send(
            &self.topics.state,
            None,
            Some(key.as_bytes()),
            &json,
            &[("content-type", b"application/json")],
            None,
        )?;
        self.metrics.record_out(&self.topics.state);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.producer.flush()?)
    }
}

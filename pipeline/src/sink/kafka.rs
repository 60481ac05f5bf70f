//! Kafka outputs: in, alerts and dead letters; out, `augur.alerts` (alert JSON, key =
//! service), `augur.actions` (CloudEvents 1.0 from the actuation policy, structured or
//! binary mode, key = subject), `augur.dlq` (the original bytes; reason and source
//! topic/partition/offset in headers) and the decide states to `augur.state` (key =
//! `<group>/<detector>`, see [`state_key`]), through one idempotent producer. State: the
//! producer, the actuation policy's cooldowns, counts of records out per topic.

use std::sync::Arc;

use anyhow::Context;
use augur_connectors::dead_letter::DeadLetter;
use augur_connectors::kafka::{KafkaSettings, OutputProducer};
use augur_operators::Alert;
use augur_operators::decide::DeciderState;

use super::Outputs;
use super::cloudevents::{ActionsMode, encode};
use crate::actuation::{ActuationConfig, ActuationPolicy, WhatIfModel};
use crate::job_metrics::JobMetrics;

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

pub struct KafkaOutputs {
    producer: OutputProducer,
    topics: OutputTopics,
    actions_mode: ActionsMode,
    policy: ActuationPolicy,
    metrics: Arc<JobMetrics>,
}

impl KafkaOutputs {
    pub fn new(
        settings: &KafkaSettings,
        topics: OutputTopics,
        actions_mode: ActionsMode,
        actuation: ActuationConfig,
        metrics: Arc<JobMetrics>,
    ) -> anyhow::Result<Self> {
        Ok(KafkaOutputs {
            producer: OutputProducer::new(settings)?,
            topics,
            actions_mode,
            policy: ActuationPolicy::new(actuation),
            metrics,
        })
    }

    /// The actuation policy consults `model` (Fluxion's what-if) before each scale-up.
    pub fn with_what_if(mut self, model: Option<Box<dyn WhatIfModel>>) -> Self {
        self.policy.set_what_if(model);
        self
    }
}

/// `topic/partition` as the Kafka source names a dead letter's origin.
fn split_source(source: &str) -> (&str, Option<&str>) {
    match source.rsplit_once('/') {
        Some((topic, partition)) if partition.parse::<i32>().is_ok() => (topic, Some(partition)),
        _ => (source, None),
    }
}

impl Outputs for KafkaOutputs {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()> {
        let json = serde_json::to_vec(alert).context("encoding an alert")?;
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
        if let Some(event) = self.policy.decide(alert) {
            let encoded = encode(&event, self.actions_mode)?;
            let headers: Vec<(&str, &[u8])> = encoded
                .headers
                .iter()
                .map(|(k, v)| (*k, v.as_slice()))
                .collect();
            self.producer.send(
                &self.topics.actions,
                None,
                Some(event.subject.as_bytes()),
                &encoded.value,
                &headers,
                None,
            )?;
            self.metrics.record_out(&self.topics.actions);
        }
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> anyhow::Result<()> {
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

    fn decider_state(&mut self, detector: &str, state: &DeciderState) -> anyhow::Result<()> {
        let json = serde_json::to_vec(state).context("encoding a decide state")?;
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

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(self.producer.flush()?)
    }
}

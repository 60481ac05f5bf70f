//! The job's Kafka outputs: the connector's [`KafkaSink`] plus the actuation policy, which
//! turns alerts into CloudEvents on the actions topic. State: the policy's cooldowns.

use augur_connectors::dead_letter::DeadLetter;
use augur_connectors::kafka::KafkaSink;
use augur_connectors::sink::{Outputs, SinkError};
use augur_operators::Alert;
use augur_operators::decide::DeciderState;

use super::cloudevents::{ActionsMode, encode};
use crate::actuation::{ActuationConfig, ActuationPolicy, WhatIfModel};

pub struct KafkaOutputs {
    sink: KafkaSink,
    actions_mode: ActionsMode,
    policy: ActuationPolicy,
}

impl KafkaOutputs {
    pub fn new(sink: KafkaSink, actions_mode: ActionsMode, actuation: ActuationConfig) -> Self {
        KafkaOutputs {
            sink,
            actions_mode,
            policy: ActuationPolicy::new(actuation),
        }
    }

    /// The actuation policy consults `model` (Fluxion's what-if) before each scale-up.
    pub fn with_what_if(mut self, model: Option<Box<dyn WhatIfModel>>) -> Self {
        self.policy.set_what_if(model);
        self
    }
}

impl Outputs for KafkaOutputs {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.sink.alert(alert)?;
        if let Some(event) = self.policy.decide(alert) {
            let encoded = encode(&event, self.actions_mode).map_err(SinkError::other)?;
            let headers: Vec<(&str, &[u8])> = encoded
                .headers
                .iter()
                .map(|(k, v)| (*k, v.as_slice()))
                .collect();
            self.sink.action(&event.subject, &encoded.value, &headers)?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<(), SinkError> {
        self.sink.dead_letter(dead)
    }

    fn decider_state(&mut self, detector: &str, state: &DeciderState) -> Result<(), SinkError> {
        self.sink.decider_state(detector, state)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.sink.flush()
    }
}

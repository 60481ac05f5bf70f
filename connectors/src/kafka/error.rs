//! Errors of the Kafka connectors: in, rdkafka errors and what we were doing; out, one
//! error type whose messages name the broker operation (never a secret).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KafkaError {
    #[error("kafka {op}: {source}")]
    Client {
        op: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("kafka {0}")]
    Other(String),
}

impl KafkaError {
    pub(crate) fn client(op: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let op = op.into();
        move |source| KafkaError::Client { op, source }
    }
}

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
    /// Messages handed to the producer are not all acknowledged yet (the broker is away, or
    /// a topic is missing); none is lost: they stay queued and go out when it answers.
    #[error("kafka: {pending} messages not yet acknowledged by {brokers} after {waited:?}")]
    Unacknowledged {
        pending: i32,
        brokers: String,
        waited: std::time::Duration,
    },
    /// Deliveries the broker refused (each is logged as it fails).
    #[error("kafka {count} messages were not delivered")]
    Undelivered { count: u64 },
    /// Deliveries failed and everything not yet confirmed was handed to a new producer:
    /// none lost, the next flush tells whether they went out.
    #[error(
        "kafka: {count} messages were not delivered; {resent} unconfirmed messages sent again through a new producer (attempt {attempt} of {max})"
    )]
    Resent {
        count: u64,
        resent: usize,
        attempt: u32,
        max: u32,
    },
    #[error("kafka brokers {brokers} unreachable within {waited:?}: {source}")]
    Unreachable {
        brokers: String,
        waited: std::time::Duration,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl KafkaError {
    pub(crate) fn client(op: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let op = op.into();
        move |source| KafkaError::Client { op, source }
    }
}

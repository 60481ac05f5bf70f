//! Sinks for a job's outputs (the trait lives in `augur_connectors::sink`): CloudEvents
//! encoding of actuation commands and the job's Kafka outputs.

pub mod cloudevents;
pub mod kafka;

pub use augur_connectors::sink::{Outputs, SinkError};

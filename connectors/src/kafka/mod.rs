//! Kafka: the job's `[kafka]` config, a source (this worker's share of the input topics'
//! partitions, decoded, with at-least-once offset commits) and a sink (alerts, actions,
//! dead letters and job state through one idempotent producer); underneath, client
//! settings, topic admin, a partition consumer with batched polling, offset tracking and
//! the message encodings augur reads (`otlp_proto`, `otlp_json`, `prom_json`).
//!
//! Everything here is plain rdkafka (`BaseConsumer`, `ThreadedProducer`, `AdminClient`);
//! nothing needs an async runtime.

mod actions_mode;
mod admin;
mod block_on;
mod config;
mod consumer;
mod encoding;
mod error;
mod latest;
mod metrics;
mod offsets;
mod producer;
mod prom_json;
mod records;
mod settings;
mod sink;
mod source;

pub use actions_mode::ActionsMode;
pub use admin::{
    BROKER_WAIT, ensure_compacted_topic, ensure_reachable, ensure_topics, topic_exists,
    topic_partitions,
};
pub use config::{KafkaConfig, table as config_table};
pub use consumer::{KafkaRecord, PartitionConsumer, PollOutcome, StartAt};
pub use encoding::{Decoded, Encoding, Stream, decode_into, decode_logs_message, decode_message};
pub use error::KafkaError;
pub use latest::latest_by_key;
pub use metrics::KafkaMetrics;
pub use offsets::OffsetTracker;
pub use producer::{Header, OutputProducer};
pub use prom_json::decode_prom_json;
pub use settings::KafkaSettings;
pub use sink::{DLQ_MAX_BYTES, KafkaSink, OutputTopics, state_key};
pub use source::{KafkaSource, KafkaSourceSpec};

//! Kafka: client settings, topic admin, a partition consumer with batched polling and
//! at-least-once offset tracking, an idempotent producer that confirms delivery, and the
//! message encodings augur reads (`otlp_proto`, `otlp_json`, `prom_json`).
//!
//! Everything here is plain rdkafka (`BaseConsumer`, `ThreadedProducer`, `AdminClient`);
//! nothing needs an async runtime.

mod admin;
mod block_on;
mod consumer;
mod encoding;
mod error;
mod latest;
mod offsets;
mod producer;
mod prom_json;
mod settings;

pub use admin::{ensure_compacted_topic, ensure_topics, topic_partitions};
pub use consumer::{KafkaRecord, PartitionConsumer, PollOutcome, StartAt};
pub use encoding::{Decoded, Encoding, decode_message};
pub use error::KafkaError;
pub use latest::latest_by_key;
pub use offsets::OffsetTracker;
pub use producer::{Header, OutputProducer};
pub use prom_json::decode_prom_json;
pub use settings::KafkaSettings;

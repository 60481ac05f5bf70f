//! The newest value per key of a small keyed topic (the job-state topic): in, a topic and a
//! key prefix; out, for every key with that prefix, the value of its last message. Reads
//! every partition from the beginning to its end at the time of the call; no group, no
//! commits. Keys are expected to be few and to change rarely, so a full read is cheap
//! (with `cleanup.policy=compact` the broker keeps it so).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::error::KafkaError;
use super::settings::KafkaSettings;

const TIMEOUT: Duration = Duration::from_secs(15);

/// The last value of each key starting with `prefix`, in `topic`. A missing topic reads as
/// empty.
pub fn latest_by_key(
    settings: &KafkaSettings,
    topic: &str,
    prefix: &str,
) -> Result<BTreeMap<String, Vec<u8>>, KafkaError> {
    let mut config = settings.consumer();
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer = config
        .create()
        .map_err(KafkaError::client("creating the state reader"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(KafkaError::client(format!("metadata of {topic}")))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(BTreeMap::new());
    };
    if found.error().is_some() || found.partitions().is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for p in found.partitions() {
        let (low, high) =
            consumer
                .fetch_watermarks(topic, p.id(), TIMEOUT)
                .map_err(KafkaError::client(format!(
                    "watermarks of {topic}/{}",
                    p.id()
                )))?;
        if high > low {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .map_err(KafkaError::client("assigning the state topic"))?;
            remaining += 1;
        }
    }
    let mut latest = BTreeMap::new();
    if remaining == 0 {
        return Ok(latest);
    }
    consumer
        .assign(&assignment)
        .map_err(KafkaError::client("assigning the state topic"))?;
    let deadline = Instant::now() + TIMEOUT * 4;
    while remaining > 0 {
        if Instant::now() > deadline {
            return Err(KafkaError::Other(format!(
                "reading {topic}: no end of partition after {:?}",
                TIMEOUT * 4
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(RdKafkaError::PartitionEOF(_))) => remaining -= 1,
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => {
                remaining -= 1
            }
            Some(Err(e)) => {
                return Err(KafkaError::Other(format!("reading {topic}: {e}")));
            }
            Some(Ok(message)) => {
                let key = message
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .filter(|k| k.starts_with(prefix));
                if let (Some(key), Some(value)) = (key, message.payload()) {
                    latest.insert(key.to_string(), value.to_vec());
                }
            }
        }
    }
    Ok(latest)
}

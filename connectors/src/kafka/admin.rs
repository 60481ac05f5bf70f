//! Topic admin: in, topic names with partition counts; out, the topics exist (created
//! through the admin API — brokers like tansu don't auto-create), or their partition count.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::block_on::block_on;
use super::error::KafkaError;
use super::settings::KafkaSettings;

const TIMEOUT: Duration = Duration::from_secs(15);

/// Creates each topic that doesn't exist yet; existing topics are left as they are.
pub fn ensure_topics(settings: &KafkaSettings, topics: &[(&str, i32)]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .admin()
        .create()
        .map_err(KafkaError::client("creating the admin client"))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = block_on(admin.create_topics(new.iter(), &options))
        .map_err(KafkaError::client("creating topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Other(format!("creating topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// Creates a one-partition, compacted topic for keyed state (`cleanup.policy=compact`, so
/// the broker keeps the newest value per key); a broker that refuses the setting gets a
/// plain topic. An existing topic is left as it is.
pub fn ensure_compacted_topic(settings: &KafkaSettings, topic: &str) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .admin()
        .create()
        .map_err(KafkaError::client("creating the admin client"))?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let compacted =
        NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let results = block_on(admin.create_topics([&compacted], &options))
        .map_err(KafkaError::client("creating topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                tracing::warn!(
                    "creating {topic} compacted: {code}; creating it without compaction"
                );
                return ensure_topics(settings, &[(topic, 1)]);
            }
        }
    }
    Ok(())
}

/// How long the brokers may take to answer when a command starts.
pub const BROKER_WAIT: Duration = Duration::from_secs(10);

/// Checks that the brokers answer a metadata request within `timeout`: a clear error
/// naming them, instead of each later request waiting out its own timeout.
pub fn ensure_reachable(settings: &KafkaSettings, timeout: Duration) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = settings
        .consumer()
        .create()
        .map_err(KafkaError::client("creating the consumer"))?;
    consumer
        .fetch_metadata(None, timeout)
        .map(|_| ())
        .map_err(|source| KafkaError::Unreachable {
            brokers: settings.brokers.clone(),
            waited: timeout,
            source,
        })
}

/// Whether `topic` exists (with at least one partition).
pub fn topic_exists(settings: &KafkaSettings, topic: &str) -> Result<bool, KafkaError> {
    let consumer: BaseConsumer = settings
        .consumer()
        .create()
        .map_err(KafkaError::client("creating the consumer"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(KafkaError::client(format!("metadata of {topic}")))?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

/// The number of partitions of `topic` (an error when it doesn't exist).
pub fn topic_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<i32, KafkaError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(KafkaError::client(format!("metadata of {topic}")))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(KafkaError::Other(format!("topic {topic} not found")));
    };
    if let Some(err) = t.error() {
        return Err(KafkaError::Other(format!(
            "topic {topic}: {:?} (create it first, e.g. `augur simulate --kafka`)",
            RDKafkaErrorCode::from(err)
        )));
    }
    Ok(t.partitions().len() as i32)
}

//! Kafka client settings: in, the brokers, a consumer group and pass-through librdkafka
//! properties (`security.protocol`, SASL, TLS, ...) from the job config; out, rdkafka
//! `ClientConfig`s for consumers, producers and admin clients. Secrets never appear in
//! `Debug` output or logs: [`KafkaSettings::redacted`] masks them.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group (offsets are committed under it).
    pub group_id: String,
    /// Extra librdkafka properties, passed through unchanged.
    pub properties: BTreeMap<String, String>,
}

/// Property names whose values are secret.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "key.pem",
        "keystore",
        "jaas",
        "credentials",
    ]
    .iter()
    .any(|s| name.contains(s))
        || name == "ssl.key.location"
}

impl KafkaSettings {
    pub fn new(brokers: &str, group_id: &str) -> Self {
        KafkaSettings {
            brokers: brokers.to_string(),
            group_id: group_id.to_string(),
            properties: BTreeMap::new(),
        }
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    /// A consumer that commits only when told (manual offsets, no auto-commit), prefetching
    /// at most 16 MB per partition (librdkafka's default is 64 MB: a backlog of large
    /// messages held that much per partition).
    pub fn consumer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("queued.max.messages.kbytes", "16384");
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    /// An idempotent producer (`acks=all`, retries without duplicates or reordering) whose
    /// messages never expire (`message.timeout.ms=0`): while the broker is away they wait
    /// in the queue, and the job waits with them instead of losing or failing them. The
    /// queue holds at most 64 MB (librdkafka's default is 1 GB): beyond it, sending waits,
    /// so a broker slower than the dead letters coming in slows reading, not memory.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.kbytes", "65536");
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    pub fn admin(&self) -> ClientConfig {
        self.base()
    }

    /// The properties with secret values replaced by `***`, for logs.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let v = if is_secret(k) {
                    "***".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("properties", &self.redacted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_properties_pass_through() {
        let mut s = KafkaSettings::new("b:9092", "g");
        s.properties
            .insert("sasl.password".into(), "hunter2".into());
        s.properties.insert("sasl.mechanism".into(), "PLAIN".into());
        s.properties.insert("linger.ms".into(), "50".into());
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("PLAIN"), "{debug}");
        assert_eq!(s.producer().get("linger.ms"), Some("50"));
        assert_eq!(s.consumer().get("sasl.password"), Some("hunter2"));
        assert_eq!(s.consumer().get("enable.auto.commit"), Some("false"));
    }
}

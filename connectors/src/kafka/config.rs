//! `[kafka]` in the job config: in, TOML; out, typed settings for the Kafka source and
//! sinks. Keys with a dot (`"security.protocol"`, `"sasl.password"`, ...) are librdkafka
//! properties passed through to every client unchanged; any other key must be one of the
//! fields below. Secrets never appear in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::actions_mode::ActionsMode;
use super::encoding::Encoding;
use super::settings::KafkaSettings;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`. Default `127.0.0.1:9092`.
    pub brokers: String,
    /// Consumer group whose committed offsets the job resumes from. Default `augur`.
    pub group_id: String,
    /// Default `otlp_spans`.
    pub spans_topic: String,
    /// `otlp_proto` or `otlp_json`. Default `otlp_proto`.
    pub spans_encoding: Encoding,
    /// Default `otlp_metrics`.
    pub metrics_topic: String,
    /// `otlp_proto`, `otlp_json` or `prom_json`. Default `otlp_proto`.
    pub metrics_encoding: Encoding,
    /// OTLP logs (`ExportLogsServiceRequest`, as the Collector's Kafka exporter writes them
    /// to its `otlp_logs` topic). Default `otlp_logs`.
    pub logs_topic: String,
    /// `otlp_proto` or `otlp_json`. Default `otlp_proto`.
    pub logs_encoding: Encoding,
    /// Default `augur.alerts`.
    pub alerts_topic: String,
    /// Default `augur.actions`.
    pub actions_topic: String,
    /// CloudEvents content mode of the actions: `structured` (the event as JSON) or
    /// `binary` (`ce_*` headers, the value is the data). Default `structured`.
    pub actions_mode: ActionsMode,
    /// Default `augur.dlq`.
    pub dlq_topic: String,
    /// Where `augur run` saves its alert-episode state (one compacted partition, key
    /// `<group_id>/<detector>`), so a restarted job resolves episodes that began before the
    /// restart under their own ids. Default `augur.state`.
    pub state_topic: String,
    /// A partition with no message for this long (wall time) stops holding the watermark
    /// back, ms. Default 5000.
    pub idle_timeout_ms: u64,
    /// Partitions of the topics augur creates when they're missing. Default 2.
    pub partitions: i32,
    /// Committed offsets trail the last emitted window by this much event time, so a
    /// restarted job re-reads enough input to rebuild its window state (detector history,
    /// trace assembly) before emitting again; at least (detector history + 10) windows +
    /// allowed lateness + trace TTL. Default 90000.
    pub restart_replay_ms: u64,
    /// Records dated more than this after the wall clock are dead-lettered and counted
    /// (`augur_future_records_total`), never read as event time: one record from a broken
    /// clock would otherwise move the watermark past every real record, ms. Default
    /// 3600000 (1 h).
    pub max_future_ms: u64,
    /// Largest dead-letter value written to `dlq_topic`, bytes: a bigger message is cut to
    /// this size (headers `augur.payload.truncated`, `augur.payload.size`; the original
    /// stays at its source topic/partition/offset). Keep it below the broker's and the
    /// producer's `message.max.bytes` (default 1000000) less room for the headers.
    /// Default 900000.
    pub dlq_max_bytes: usize,
    /// Replay/eval `--from`: ask the broker where that time starts (`offsets_for_times`).
    /// Set false for a broker that lacks it or answers by append time rather than the
    /// records' timestamps: the read then scans from the start, keeping records in range.
    /// Default true.
    pub offsets_for_times: bool,
    /// librdkafka properties (the dotted keys).
    #[serde(skip)]
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_string(),
            group_id: "augur".to_string(),
            spans_topic: "otlp_spans".to_string(),
            spans_encoding: Encoding::OtlpProto,
            metrics_topic: "otlp_metrics".to_string(),
            metrics_encoding: Encoding::OtlpProto,
            logs_topic: "otlp_logs".to_string(),
            logs_encoding: Encoding::OtlpProto,
            alerts_topic: "augur.alerts".to_string(),
            actions_topic: "augur.actions".to_string(),
            actions_mode: ActionsMode::Structured,
            dlq_topic: "augur.dlq".to_string(),
            state_topic: "augur.state".to_string(),
            idle_timeout_ms: 5000,
            partitions: 2,
            restart_replay_ms: 90_000,
            max_future_ms: 3_600_000,
            dlq_max_bytes: super::sink::DLQ_MAX_BYTES,
            offsets_for_times: true,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Client settings (brokers, group, properties), optionally with other brokers.
    pub fn settings(&self, brokers: Option<&str>) -> KafkaSettings {
        KafkaSettings {
            brokers: brokers.unwrap_or(&self.brokers).to_string(),
            group_id: self.group_id.clone(),
            properties: self.properties.clone(),
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("spans_topic", &self.spans_topic)
            .field("metrics_topic", &self.metrics_topic)
            .field("logs_topic", &self.logs_topic)
            .field("properties", &self.settings(None).redacted())
            .finish_non_exhaustive()
    }
}

/// `#[serde(with)]` for the `[kafka]` table: dotted keys become properties.
pub mod table {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KafkaConfig, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let dotted: Vec<String> = table.keys().filter(|k| k.contains('.')).cloned().collect();
        let mut properties = BTreeMap::new();
        for key in dotted {
            if let Some(value) = table.remove(&key) {
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Float(x) => x.to_string(),
                    other => {
                        return Err(serde::de::Error::custom(format!(
                            "kafka property `{key}` must be a string, number or boolean, not {}",
                            other.type_str()
                        )));
                    }
                };
                properties.insert(key, value);
            }
        }
        let mut config: KafkaConfig = table.try_into().map_err(serde::de::Error::custom)?;
        config.properties = properties;
        Ok(config)
    }

    pub fn serialize<S: Serializer>(config: &KafkaConfig, s: S) -> Result<S::Ok, S::Error> {
        let mut table = toml::Table::try_from(config).map_err(serde::ser::Error::custom)?;
        for (k, v) in &config.properties {
            table.insert(k.clone(), toml::Value::String(v.clone()));
        }
        table.serialize(s)
    }
}

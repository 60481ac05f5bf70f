//! The job config: typed, `deny_unknown_fields`, every field defaulted and documented.
//! `configs/default.toml` spells out every default; `augur validate` checks a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use augur_connectors::kafka::KafkaConfig;
use augur_connectors::simulator::SimError;
pub use augur_connectors::simulator::SimulatorConfig;
use augur_models::baselines::NSigmaConfig;
use augur_models::fluxion::FluxionConfig;
use augur_models::sage::SageConfig;
use augur_models::seer::SeerConfig;
use augur_models::{DetectorKind, DetectorSettings};
use augur_operators::Resource;
use augur_operators::decide::DecideConfig;
use augur_operators::qos_check::Slo;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::actuation::ActuationConfig;
use crate::job_metrics::JobMetricsConfig;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub window: WindowConfig,
    pub features: FeaturesConfig,
    /// SLOs per entry point (`[[slo]]`). When empty and the input comes from the built-in
    /// simulator, the topology's own SLOs are used.
    pub slo: Vec<Slo>,
    pub detector: DetectorConfig,
    pub models: ModelsConfig,
    pub decide: DecideConfig,
    pub metrics: MetricsConfig,
    pub dead_letter: DeadLetterConfig,
    pub simulator: SimulatorConfig,
    /// Kafka in and out (`augur run`, `simulate --kafka`, `alerts`, replay/eval of topics).
    #[serde(with = "augur_connectors::kafka::config_table")]
    pub kafka: KafkaConfig,
    pub actuation: ActuationConfig,
    pub job_metrics: JobMetricsConfig,
    /// What `augur run` does when its job process dies (`[restart]`).
    pub restart: crate::commands::supervise::RestartConfig,
    /// `augur diagnose` and the per-case evaluation: the normal and examined ranges.
    pub diagnose: augur_models::evidence::EvidenceParams,
}

/// Event-time windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Tumbling window length, ms. Default 1000.
    pub length_ms: u64,
    /// How far behind the newest event time a record may arrive and still count, ms;
    /// later records are counted and dead-lettered as late. Default 2000.
    pub allowed_lateness_ms: u64,
    /// How far ahead violations are predicted, ms. Default 1000.
    pub horizon_ms: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            length_ms: 1000,
            allowed_lateness_ms: 2000,
            horizon_ms: 1000,
        }
    }
}

/// Trace assembly and the dependency graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    /// How long an unmatched span waits for its parent or child, ms. Default 10000.
    pub trace_ttl_ms: u64,
    /// An RPC edge not seen for this long leaves the dependency graph, ms. Default 60000.
    pub graph_retention_ms: u64,
    /// How long a service's latest sampled resource usage stands in windows without a
    /// sample, ms (as Prometheus' lookback; 0: not at all). Default 300000.
    pub metric_stale_ms: u64,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            trace_ttl_ms: 10_000,
            graph_retention_ms: 60_000,
            metric_stale_ms: augur_operators::metric_hold::DEFAULT_METRIC_STALE_MS,
        }
    }
}

/// Which detector runs in the job, and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// One of `nsigma`, `cpu-threshold-50`, `cpu-threshold-70`, `seer`, `sage`, `fluxion`,
    /// `evidence`. Default `nsigma`.
    #[serde(deserialize_with = "detector_name")]
    pub name: DetectorKind,
    pub nsigma: NSigmaConfig,
    pub seer: SeerConfig,
    pub sage: SageConfig,
    pub fluxion: FluxionConfig,
    pub evidence: augur_models::evidence::EvidenceDetectorConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            name: DetectorKind::NSigma,
            nsigma: NSigmaConfig::default(),
            seer: SeerConfig::default(),
            sage: SageConfig::default(),
            fluxion: FluxionConfig::default(),
            evidence: Default::default(),
        }
    }
}

/// `detector.name`, an unknown name reported with the field it is in.
fn detector_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DetectorKind, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse()
        .map_err(|e| serde::de::Error::custom(format!("field `detector.name`: {e}")))
}

impl DetectorConfig {
    pub fn settings(&self) -> DetectorSettings {
        DetectorSettings {
            nsigma: self.nsigma.clone(),
            seer: self.seer.clone(),
            fluxion: self.fluxion.clone(),
            sage: self.sage.clone(),
            evidence: self.evidence.clone(),
        }
    }
}

/// Where detectors and models run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Timely workers that host models (each with its own inference thread): `"all"`, or
    /// a list of worker indices such as `[0]`. Detector `i` of the job runs on the `i`-th
    /// listed worker (cycling). Indices beyond the job's workers are ignored. Default `"all"`.
    pub workers: ModelWorkers,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            workers: ModelWorkers::Named(AllWorkers::All),
        }
    }
}

/// `"all"` or a list of worker indices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelWorkers {
    Named(AllWorkers),
    List(Vec<usize>),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllWorkers {
    All,
}

impl ModelsConfig {
    /// The configured worker list; `None` for all workers.
    pub fn worker_list(&self) -> Option<&[usize]> {
        match &self.workers {
            ModelWorkers::Named(AllWorkers::All) => None,
            ModelWorkers::List(list) => Some(list),
        }
    }
}

/// Metric names, beyond the OpenTelemetry semantic-convention defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Extra metric name → resource mappings, e.g. `"my_cpu_seconds" = "cpu"`.
    pub names: BTreeMap<String, Resource>,
}

/// Where bad input goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// JSON-lines file of dead letters (every command but `augur run`, which writes
    /// `kafka.dlq_topic` instead). Default `augur-dlq.jsonl`.
    pub path: PathBuf,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            path: PathBuf::from("augur-dlq.jsonl"),
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}: field `{field}`: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config
            .check()
            .map_err(|(field, reason)| ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                reason,
            })?;
        Ok(config)
    }

    /// Semantic checks that types can't express: `(field, reason)` of the first problem.
    pub fn check(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, reason: &str| Err((field.to_string(), reason.to_string()));
        if self.window.length_ms == 0 {
            return fail("window.length_ms", "must be at least 1");
        }
        if self.window.horizon_ms == 0 {
            return fail("window.horizon_ms", "must be at least 1");
        }
        if let Err((field, reason)) = self.restart.check() {
            return fail(field, reason);
        }
        if self.models.worker_list().is_some_and(|l| l.is_empty()) {
            return fail(
                "models.workers",
                "must name at least one worker (or be \"all\")",
            );
        }
        if self.features.graph_retention_ms < self.window.length_ms {
            return fail(
                "features.graph_retention_ms",
                "must be at least one window (window.length_ms)",
            );
        }
        for (i, slo) in self.slo.iter().enumerate() {
            if !(slo.quantile > 0.0 && slo.quantile < 1.0) {
                return fail(
                    &format!("slo[{i}].quantile"),
                    "must be in (0, 1), e.g. 0.99",
                );
            }
            if !is_positive(slo.threshold_ms) {
                return fail(
                    &format!("slo[{i}].threshold_ms"),
                    "must be a positive number",
                );
            }
            if slo.entry.is_empty() {
                return fail(&format!("slo[{i}].entry"), "must name the entry service");
            }
            if let Some(rate) = slo.error_rate
                && !(0.0..1.0).contains(&rate)
            {
                return fail(
                    &format!("slo[{i}].error_rate"),
                    "must be in [0, 1), a share of requests, e.g. 0.01",
                );
            }
        }
        if let Some(name) = &self.detector.evidence.normal
            && (name.is_empty() || name.contains(['/', '\\']))
        {
            return fail(
                "detector.evidence.normal",
                "must be the name a normal was learned under (`augur train normal --name N`), not a path",
            );
        }
        if !(0.0..=1.0).contains(&self.detector.evidence.min_explained) {
            return fail(
                "detector.evidence.min_explained",
                "must be in [0, 1], a share of the entry latency's rise (0 turns the check off)",
            );
        }
        if !is_positive(self.detector.nsigma.sigma) {
            return fail("detector.nsigma.sigma", "must be positive");
        }
        if !(0.0..=1.0).contains(&self.detector.sage.min_overlap) {
            return fail("detector.sage.min_overlap", "must be in [0, 1]");
        }
        if self.detector.nsigma.history < self.detector.nsigma.min_history.max(2) {
            return fail(
                "detector.nsigma.history",
                "must be at least detector.nsigma.min_history (and 2)",
            );
        }
        if self.decide.fire_after == 0 || self.decide.clear_after == 0 {
            return fail(
                "decide.fire_after",
                "fire_after and clear_after must be at least 1",
            );
        }
        if self.kafka.brokers.trim().is_empty() {
            return fail("kafka.brokers", "must name at least one broker (host:port)");
        }
        if self.kafka.partitions < 1 {
            return fail("kafka.partitions", "must be at least 1");
        }
        if self.kafka.spans_encoding == augur_connectors::kafka::Encoding::PromJson {
            return fail(
                "kafka.spans_encoding",
                "prom_json is a metrics encoding; spans are otlp_proto or otlp_json",
            );
        }
        if self.kafka.logs_encoding == augur_connectors::kafka::Encoding::PromJson {
            return fail(
                "kafka.logs_encoding",
                "prom_json is a metrics encoding; logs are otlp_proto or otlp_json",
            );
        }
        if let Err(SimError::Field { field, reason }) = self.simulator.check() {
            return fail(&format!("simulator.{field}"), reason);
        }
        self.actuation.check()?;
        Ok(())
    }
}

/// A finite number above zero (false for NaN).
fn is_positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn default_toml_spells_out_the_defaults() {
        let text = include_str!("../../configs/default.toml");
        assert_eq!(parse(text).expect("default.toml parses"), Config::default());
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse("[window]\nlenght_ms = 5\n")
            .expect_err("typo must fail")
            .to_string();
        assert!(err.contains("lenght_ms"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let err = parse(
            "[[slo]]\nentry = \"fe\"\nquantile = 0.99\nthreshold_ms = 200.0\nerror_rate = 5.0\n",
        )
        .expect_err("error rate 5 must fail")
        .to_string();
        assert!(err.contains("slo[0].error_rate"), "{err}");
        let err = parse("[[slo]]\nentry = \"fe\"\nquantile = 99.0\nthreshold_ms = 200.0\n")
            .expect_err("quantile 99 must fail")
            .to_string();
        assert!(err.contains("slo[0].quantile"), "{err}");
        let err = parse("[detector]\nname = \"magic\"\n")
            .expect_err("unknown detector")
            .to_string();
        assert!(
            err.contains("detector.name") && err.contains("nsigma"),
            "{err}"
        );
        let err = parse("[window]\nlength_ms = 0\n")
            .expect_err("zero window")
            .to_string();
        assert!(err.contains("window.length_ms"), "{err}");
        let err = parse("[restart]\nmax_restarts = 0\n")
            .expect_err("no restarts with a restart strategy")
            .to_string();
        assert!(err.contains("restart.max_restarts"), "{err}");
        let err = parse("[kafka]\nspans_encoding = \"prom_json\"\n")
            .expect_err("prom_json spans")
            .to_string();
        assert!(err.contains("kafka.spans_encoding"), "{err}");
        let err = parse("[kafka]\nlogs_encoding = \"prom_json\"\n")
            .expect_err("prom_json logs")
            .to_string();
        assert!(err.contains("kafka.logs_encoding"), "{err}");
        let err = parse("[detector.evidence]\nmin_explained = 50.0\n")
            .expect_err("a share of 50")
            .to_string();
        assert!(err.contains("detector.evidence.min_explained"), "{err}");
    }

    #[test]
    fn kafka_properties_pass_through_and_typos_fail() {
        let config = parse(
            "[kafka]\nbrokers = \"k:9093\"\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.password\" = \"hunter2\"\n\"fetch.max.bytes\" = 1048576\n",
        )
        .expect("parses");
        assert_eq!(config.kafka.brokers, "k:9093");
        assert_eq!(config.kafka.properties["security.protocol"], "SASL_SSL");
        assert_eq!(config.kafka.properties["fetch.max.bytes"], "1048576");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let settings = config.kafka.settings(None);
        assert_eq!(settings.consumer().get("sasl.password"), Some("hunter2"));
        let err = parse("[kafka]\nbrokerz = \"x\"\n")
            .expect_err("typo")
            .to_string();
        assert!(err.contains("brokerz"), "{err}");
        // Round trip through TOML keeps the properties.
        let text = toml::to_string(&config).expect("serializes");
        assert_eq!(parse(&text).expect("reparses"), config);
    }
}

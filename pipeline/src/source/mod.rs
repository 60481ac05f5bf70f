//! Sources as each timely worker sees them (the traits live in `augur_connectors::source`):
//! the connectors' file and Kafka sources, the built-in simulator, and the factory a
//! replay uses.

pub mod simulator;

pub use augur_connectors::files::{FileSource, input_files, services_in_head};
pub use augur_connectors::kafka::{KafkaSource, KafkaSourceSpec};
pub use augur_connectors::source::{
    Batch, PartitionWatermarks, SourceError, SourceState, WorkerSource,
};

/// The source factory of a replay (`replay`, `eval`, `record`): recorded files when `input`
/// is set, else the history of the Kafka topics in `topic`.
pub fn replay_sources(
    input: Option<std::path::PathBuf>,
    topic: Option<KafkaSourceSpec>,
    names: augur_connectors::otlp::MetricNames,
    metrics: std::sync::Arc<crate::job_metrics::JobMetrics>,
) -> impl Fn(usize, usize) -> anyhow::Result<Box<dyn WorkerSource>> + Send + Sync + 'static {
    move |index, peers| match (&input, &topic) {
        (Some(input), _) => Ok(Box::new(FileSource::open(
            input,
            names.clone(),
            index,
            peers,
        )?)),
        (None, Some(spec)) => Ok(Box::new(KafkaSource::open(
            spec.clone(),
            index,
            peers,
            std::sync::Arc::clone(&metrics)
                as std::sync::Arc<dyn augur_connectors::kafka::KafkaMetrics>,
        )?)),
        (None, None) => anyhow::bail!("no input: give --input DIR or a topic"),
    }
}

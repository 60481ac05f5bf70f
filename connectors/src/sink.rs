//! Sinks for a job's outputs: in, alerts and dead letters from the main thread; out,
//! wherever the sink writes them. `flush` returns only once everything handed over is
//! durable — the job commits source offsets after it.

use std::error::Error;

use augur_operators::Alert;
use augur_operators::decide::DeciderState;
use thiserror::Error;

use crate::dead_letter::DeadLetter;
use crate::kafka::KafkaError;

/// Why a sink couldn't take or confirm an output.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A sink defined outside this crate.
    #[error(transparent)]
    Other(Box<dyn Error + Send + Sync>),
}

impl SinkError {
    /// Outputs are not all acknowledged yet, none lost: flush again later.
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            SinkError::Kafka(KafkaError::Unacknowledged { .. } | KafkaError::Resent { .. })
        )
    }

    pub fn other(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        SinkError::Other(error.into())
    }
}

pub trait Outputs {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError>;
    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<(), SinkError>;
    /// A detector's decide state after the alerts handed over before it (saved so a
    /// restarted job continues the episodes); sinks without state storage drop it.
    fn decider_state(&mut self, _detector: &str, _state: &DeciderState) -> Result<(), SinkError> {
        Ok(())
    }
    /// Blocks until everything handed over so far is acknowledged.
    fn flush(&mut self) -> Result<(), SinkError>;
}

//! Sinks for a job's outputs: in, alerts and dead letters from the main thread; out,
//! wherever the sink writes them. `flush` returns only once everything handed over is
//! durable — the job commits source offsets after it.

pub mod cloudevents;
pub mod kafka;

use augur_connectors::dead_letter::DeadLetter;
use augur_operators::Alert;
use augur_operators::decide::DeciderState;

pub trait Outputs {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()>;
    fn dead_letter(&mut self, dead: &DeadLetter) -> anyhow::Result<()>;
    /// A detector's decide state after the alerts handed over before it (saved so a
    /// restarted job continues the episodes); sinks without state storage drop it.
    fn decider_state(&mut self, _detector: &str, _state: &DeciderState) -> anyhow::Result<()> {
        Ok(())
    }
    /// Blocks until everything handed over so far is acknowledged.
    fn flush(&mut self) -> anyhow::Result<()>;
}

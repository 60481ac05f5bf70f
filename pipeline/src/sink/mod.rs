//! Sinks for a job's outputs: in, alerts and dead letters from the main thread; out,
//! wherever the sink writes them. `flush` returns only once everything handed over is
//! durable — the job commits source offsets after it.

pub mod cloudevents;
pub mod kafka;

use augur_connectors::dead_letter::DeadLetter;
use augur_operators::Alert;

pub trait Outputs {
    fn alert(&mut self, alert: &Alert) -> anyhow::Result<()>;
    fn dead_letter(&mut self, dead: &DeadLetter) -> anyhow::Result<()>;
    /// Blocks until everything handed over so far is acknowledged.
    fn flush(&mut self) -> anyhow::Result<()>;
}

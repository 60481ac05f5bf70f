//! Sources as each timely worker sees them: a worker pulls batches of decoded records and
//! learns how far event time has advanced in its share of the input.

use std::error::Error;

use augur_operators::{EventTime, LogRecord, MetricPoint, Span};
use thiserror::Error;

use crate::dead_letter::DeadLetter;
use crate::files::FileError;
use crate::kafka::KafkaError;
use crate::otlp::DecodeError;

/// What one poll produced.
#[derive(Default)]
pub struct Batch {
    pub spans: Vec<Span>,
    pub metrics: Vec<MetricPoint>,
    pub logs: Vec<LogRecord>,
    /// Input that failed to decode or validate, with the reason.
    pub dead: Vec<DeadLetter>,
    /// Messages (lines, Kafka messages) read, good or bad.
    pub messages: u64,
    /// Metric points not read, by metric name (names not mapped to a resource,
    /// histograms, summaries).
    pub ignored_metrics: Vec<(String, u64)>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.spans.clear();
        self.metrics.clear();
        self.logs.clear();
        self.dead.clear();
        self.messages = 0;
        self.ignored_metrics.clear();
    }
}

/// Where a worker's share of the input stands after a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// More may come; no future record of this worker's share is older than `watermark_ms`
    /// (before allowed lateness is applied). `idle` is true when the poll found nothing,
    /// so the driver may park for a moment.
    Active { watermark_ms: EventTime, idle: bool },
    /// More may come, but nothing read so far bounds this worker's event time (no
    /// partitions, or none has delivered and all are idle): its windows close as the other
    /// workers' do, and a record that arrives later for a closed window is late.
    NoWatermark,
    /// This worker's share is done.
    Exhausted,
}

/// Why a source can't go on (bad input is a dead letter, never an error).
#[derive(Debug, Error)]
pub enum SourceError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A source defined outside this crate.
    #[error(transparent)]
    Other(Box<dyn Error + Send + Sync>),
}

impl SourceError {
    pub fn other(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        SourceError::Other(error.into())
    }
}

/// A worker's view of a source.
pub trait WorkerSource {
    /// Appends what's available (a bounded amount) to `batch` and says where the input stands.
    fn poll(&mut self, batch: &mut Batch) -> Result<SourceState, SourceError>;
    /// Work done and total, in the source's own unit (bytes, ms of simulated time), for progress.
    fn progress(&self) -> (u64, u64);
    /// The worker has closed every window ending before `before` (records for them are
    /// late from now on).
    fn windows_closed(&mut self, before: EventTime) {
        let _ = before;
    }
    /// Every output of windows ending before `frontier` is durable (emitted and
    /// acknowledged): the source may commit the input that fed only those windows.
    /// `last` comes once, when the job stops, and should commit synchronously.
    fn durable(&mut self, frontier: EventTime, last: bool) -> Result<(), SourceError> {
        let _ = (frontier, last);
        Ok(())
    }
    /// Outputs of windows ending before this were already delivered by an earlier run of
    /// the job (found when resuming from committed offsets); 0 when nothing was.
    fn resume_frontier(&self) -> EventTime {
        0
    }
    /// Whether a stopped job can leave open windows to a restart (the source re-reads
    /// their input); otherwise stopping emits them as they are.
    fn resumable(&self) -> bool {
        false
    }
}

/// The watermark of several partitions: the slowest active partition's newest event time.
/// A partition that has seen nothing yet holds it at zero; exhausted partitions don't count.
#[derive(Clone, Debug, Default)]
pub struct PartitionWatermarks {
    newest: Vec<Option<EventTime>>,
    done: Vec<bool>,
}

impl PartitionWatermarks {
    pub fn new(partitions: usize) -> Self {
        PartitionWatermarks {
            newest: vec![None; partitions],
            done: vec![false; partitions],
        }
    }

    pub fn observe(&mut self, partition: usize, event_ms: EventTime) {
        let slot = &mut self.newest[partition];
        *slot = Some(slot.map_or(event_ms, |t| t.max(event_ms)));
    }

    pub fn finish(&mut self, partition: usize) {
        self.done[partition] = true;
    }

    pub fn all_done(&self) -> bool {
        self.done.iter().all(|d| *d)
    }

    /// The slowest active partition's newest event time (`u64::MAX` when all are done).
    pub fn watermark(&self) -> EventTime {
        self.newest
            .iter()
            .zip(&self.done)
            .filter(|(_, done)| !**done)
            .map(|(newest, _)| newest.unwrap_or(0))
            .min()
            .unwrap_or(EventTime::MAX)
    }

    /// The active partition that is furthest behind: the one to read next.
    pub fn slowest(&self) -> Option<usize> {
        (0..self.newest.len())
            .filter(|p| !self.done[*p])
            .min_by_key(|p| self.newest[*p].unwrap_or(0))
    }
}

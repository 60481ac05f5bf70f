//! The records one message added to a batch: in, the batch's lengths before the message was
//! decoded; out, the event times of what it added, and filtering of those records by event
//! time. Stateless beyond the marks.

use augur_operators::EventTime;

use crate::source::Batch;

/// Where a message's records start in each of the batch's record lists.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Marks {
    spans: usize,
    metrics: usize,
    logs: usize,
}

impl Marks {
    pub(crate) fn of(batch: &Batch) -> Self {
        Marks {
            spans: batch.spans.len(),
            metrics: batch.metrics.len(),
            logs: batch.logs.len(),
        }
    }

    /// Keeps the message's records whose event time `keep` accepts; returns how many it
    /// dropped.
    pub(crate) fn retain(&self, batch: &mut Batch, mut keep: impl FnMut(EventTime) -> bool) -> u64 {
        let before = batch.spans.len() + batch.metrics.len() + batch.logs.len();
        retain_from(&mut batch.spans, self.spans, |s| keep(s.event_ms()));
        retain_from(&mut batch.metrics, self.metrics, |p| keep(p.event_ms()));
        retain_from(&mut batch.logs, self.logs, |r| keep(r.event_ms()));
        (before - batch.spans.len() - batch.metrics.len() - batch.logs.len()) as u64
    }

    /// The newest event time among the message's records.
    pub(crate) fn newest(&self, batch: &Batch) -> Option<EventTime> {
        batch.spans[self.spans..]
            .iter()
            .map(|s| s.event_ms())
            .chain(batch.metrics[self.metrics..].iter().map(|p| p.event_ms()))
            .chain(batch.logs[self.logs..].iter().map(|r| r.event_ms()))
            .max()
    }
}

/// Keeps the records from `start` on that `keep` accepts (order is not preserved).
fn retain_from<R>(records: &mut Vec<R>, start: usize, mut keep: impl FnMut(&R) -> bool) {
    let mut i = start;
    while i < records.len() {
        if keep(&records[i]) {
            i += 1;
        } else {
            records.swap_remove(i);
        }
    }
}

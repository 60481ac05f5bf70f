//! The records one message added to a batch: in, the batch's lengths before the message was
//! decoded; out, the event times of what it added, and filtering of those records by event
//! time (a time range; dates too far ahead of the wall clock; windows already closed).
//! Stateless beyond the marks.

use augur_operators::{EventTime, window_end};

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

    /// Drops the message's records dated after `future_after` (they would move the
    /// watermark past every real record), then those whose window ends before
    /// `closed_before` (already closed); says how many of each it dropped.
    pub(crate) fn screen(
        &self,
        batch: &mut Batch,
        future_after: EventTime,
        closed_before: EventTime,
        window_ms: u64,
    ) -> Screened {
        let future = self.retain(batch, |t| t <= future_after);
        let late = self.retain(batch, |t| window_end(t, window_ms) >= closed_before);
        Screened { future, late }
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

/// Records of one message dropped by [`Marks::screen`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Screened {
    pub future: u64,
    pub late: u64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::records::{MetricPoint, Resource};

    fn point(ms: u64) -> MetricPoint {
        MetricPoint {
            service: "s".into(),
            instance: "s-1".into(),
            resource: Resource::Cpu,
            time_ns: ms * 1_000_000,
            value: 0.5,
        }
    }

    #[test]
    fn screening_drops_future_and_closed_records_of_one_message_only() {
        let mut batch = Batch::default();
        // An earlier message's records, older than anything: never touched.
        batch.metrics.push(point(1_000));
        let marks = Marks::of(&batch);
        for ms in [9_500, 10_200, 12_000, 4_102_444_799_000, 7_000] {
            batch.metrics.push(point(ms));
        }
        // Windows of 1 s; windows ending before 11 000 are closed; at most 20 000.
        let screened = marks.screen(&mut batch, 20_000, 11_000, 1_000);
        assert_eq!(screened, Screened { future: 1, late: 2 });
        let mut left: Vec<u64> = batch.metrics.iter().map(|p| p.event_ms()).collect();
        left.sort_unstable();
        assert_eq!(left, vec![1_000, 10_200, 12_000]);
        assert_eq!(marks.newest(&batch), Some(12_000));
        // A message whose records are all dropped has no event time to move a watermark.
        let marks = Marks::of(&batch);
        batch.metrics.push(point(4_102_444_799_000));
        assert_eq!(marks.screen(&mut batch, 20_000, 11_000, 1_000).future, 1);
        assert_eq!(marks.newest(&batch), None);
    }
}

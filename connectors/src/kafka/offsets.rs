//! At-least-once offset tracking for one consumer: in, every message read (partition,
//! offset, and the latest window its records — or its dead letters — belong to) and the
//! job's durable frontier `F` (every window ending before `F` has been emitted and its
//! outputs acknowledged by the broker); out, per partition, the offset to commit.
//!
//! The commit point trails the durable frontier by `replay_ms` of event time: a restarted
//! job re-reads that much input to rebuild its window state (detector history, trace
//! assembly), and suppresses the outputs of windows before `F`, which it finds in the
//! commit metadata. Every partition is committed at every advance, so their metadata
//! agree. State: per partition, the messages read but not yet released, in offset order.

use std::collections::{BTreeMap, VecDeque};

use augur_operators::records::EventTime;

#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// (topic, partition) → pending messages and the commit point.
    pending: BTreeMap<(String, i32), Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    messages: VecDeque<(i64, EventTime)>,
    /// The highest window end of any message so far: a message never waits for less than
    /// its predecessors.
    high: EventTime,
    /// The next offset to read after a restart.
    committable: i64,
}

impl OffsetTracker {
    /// Registers a partition whose reading starts at `offset`.
    pub fn start(&mut self, topic: &str, partition: i32, offset: i64) {
        self.pending
            .entry((topic.to_string(), partition))
            .or_default()
            .committable = offset;
    }

    /// Notes a message read at `offset` whose outputs belong to windows ending at or before
    /// `window_end`.
    pub fn read(&mut self, topic: &str, partition: i32, offset: i64, window_end: EventTime) {
        let slot = self
            .pending
            .entry((topic.to_string(), partition))
            .or_default();
        slot.high = slot.high.max(window_end);
        slot.messages.push_back((offset, slot.high));
        if slot.messages.len() == 1 && slot.committable > offset {
            slot.committable = offset;
        }
    }

    /// Releases the messages that fed only windows ending before `point` and returns every
    /// partition with its commit offset (the next offset to read).
    pub fn advance(&mut self, point: EventTime) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((topic, partition), slot) in &mut self.pending {
            while let Some(&(offset, window)) = slot.messages.front() {
                if window >= point {
                    break;
                }
                slot.messages.pop_front();
                slot.committable = offset + 1;
            }
            out.push((topic.clone(), *partition, slot.committable));
        }
        out
    }

    /// Forgets what was read from a partition and restarts it at `offset` (its topic was
    /// recreated: the old offsets mean nothing there).
    pub fn reset(&mut self, topic: &str, partition: i32, offset: i64) {
        let slot = self
            .pending
            .entry((topic.to_string(), partition))
            .or_default();
        slot.messages.clear();
        slot.committable = offset;
    }

    /// Messages read and not yet released.
    pub fn in_flight(&self) -> usize {
        self.pending.values().map(|p| p.messages.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_what_durable_windows_cover() {
        let mut t = OffsetTracker::default();
        t.start("s", 0, 10);
        t.start("s", 1, 5);
        t.start("s", 2, 7); // nothing read: still committed, at its start
        t.read("s", 0, 10, 1000);
        t.read("s", 0, 11, 2000);
        t.read("s", 0, 12, 1000); // waits for window 2000 like its predecessor
        t.read("s", 1, 5, 3000);
        let at =
            |v: Vec<(String, i32, i64)>| v.into_iter().map(|(_, p, o)| (p, o)).collect::<Vec<_>>();
        assert_eq!(
            at(t.advance(1000)),
            vec![(0, 10), (1, 5), (2, 7)],
            "window 1000 isn't durable"
        );
        assert_eq!(at(t.advance(1001)), vec![(0, 11), (1, 5), (2, 7)]);
        assert_eq!(at(t.advance(2001)), vec![(0, 13), (1, 5), (2, 7)]);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(at(t.advance(u64::MAX)), vec![(0, 13), (1, 6), (2, 7)]);
        assert_eq!(t.in_flight(), 0);
    }
}

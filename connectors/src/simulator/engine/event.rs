//! The event queue: what happens to a call next, ordered by time and then by the order it
//! was scheduled in.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum EventKind {
    /// A request reaches its replica (after the network delay).
    Arrive,
    /// Local processing before the children is done (core released): start the first stage.
    PreDone,
    /// Local processing after the children is done (core released): reply.
    PostDone,
    /// The reply reaches the caller (after the network delay).
    Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Event {
    pub(super) time_ns: u64,
    seq: u64,
    pub(super) kind: EventKind,
    pub(super) call: u32,
}

#[derive(Debug)]
pub(super) struct EventQueue {
    heap: BinaryHeap<Reverse<Event>>,
    /// Scheduling order, the tie-break of events at the same time.
    seq: u64,
}

impl Default for EventQueue {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(1 << 16),
            seq: 0,
        }
    }
}

impl EventQueue {
    pub(super) fn schedule(&mut self, time_ns: u64, kind: EventKind, call: u32) {
        self.seq += 1;
        self.heap.push(Reverse(Event {
            time_ns,
            seq: self.seq,
            kind,
            call,
        }));
    }

    /// The time of the next event; `u64::MAX` when there is none.
    pub(super) fn next_time(&self) -> u64 {
        self.heap.peek().map_or(u64::MAX, |e| e.0.time_ns)
    }

    pub(super) fn pop(&mut self) -> Option<Event> {
        self.heap.pop().map(|Reverse(event)| event)
    }
}

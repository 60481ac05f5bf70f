//! The job's control plane: a small dataflow beside the main one through which every
//! worker (in every process) tells every other what only it knows, so decisions that need
//! all of them come out the same everywhere:
//!
//! - `Resume`: the frontier below which the worker's source says outputs were delivered by
//!   an earlier run; workers start reading only once all have spoken, and all skip the
//!   same (lowest) frontier.
//! - `Durable`: how far its process's outputs are confirmed by the sinks. Outputs are
//!   written by the process whose worker emits them (alerts on the worker the detectors
//!   run on, dead letters where they were read), so a source may commit input only up to
//!   the lowest of these — the frontier below which *every* process's outputs are confirmed.
//! - `Cap`: the windows before this are closed on the worker (its watermark less the
//!   allowed lateness), or `None` while its source has no watermark (no partitions, or
//!   none delivered). Such a worker closes its windows at the lowest cap of the others,
//!   so it never holds the job back and never runs ahead of it.
//! - `Stopped`: the worker stopped reading (a signal in any process stops them all), and
//!   the window its input had reached; the job emits up to the lowest of these.
//! - `Final`: its process's last confirmed frontier; the final commit uses the lowest.
//!
//! In: messages from this worker; out (through [`Control::state`]), what every worker has
//! said. State: per kind, the latest value from each worker.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use augur_operators::EventTime;
use serde::{Deserialize, Serialize};
use timely::dataflow::InputHandleVec;
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::vec::{Broadcast, Input};

/// What a worker tells all workers; the first field is the sender's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMessage {
    Resume(usize, EventTime),
    Durable(usize, EventTime),
    Cap(usize, Option<EventTime>),
    Stopped(usize, EventTime),
    Final(usize, EventTime),
}

/// Per kind, the latest value each worker sent.
#[derive(Debug, Default)]
pub struct ControlState {
    pub resume: BTreeMap<usize, EventTime>,
    pub durable: BTreeMap<usize, EventTime>,
    pub caps: BTreeMap<usize, Option<EventTime>>,
    pub stopped: BTreeMap<usize, EventTime>,
    pub finals: BTreeMap<usize, EventTime>,
}

impl ControlState {
    fn note(&mut self, message: ControlMessage) {
        if let ControlMessage::Cap(worker, cap) = message {
            // A worker's caps only grow, but it may stop having one.
            let slot = self.caps.entry(worker).or_insert(cap);
            *slot = cap.map(|c| slot.map_or(c, |s| s.max(c)));
            return;
        }
        let (map, worker, value) = match message {
            ControlMessage::Cap(..) => return,
            ControlMessage::Resume(w, v) => (&mut self.resume, w, v),
            ControlMessage::Durable(w, v) => (&mut self.durable, w, v),
            ControlMessage::Stopped(w, v) => (&mut self.stopped, w, v),
            ControlMessage::Final(w, v) => (&mut self.finals, w, v),
        };
        let slot = map.entry(worker).or_insert(value);
        *slot = (*slot).max(value);
    }
}

impl ControlState {
    /// The lowest cap of the workers that have one.
    pub fn slowest_cap(&self) -> Option<EventTime> {
        self.caps.values().flatten().copied().min()
    }
}

/// The lowest value once all `peers` workers have sent one.
pub fn lowest_of_all(map: &BTreeMap<usize, EventTime>, peers: usize) -> Option<EventTime> {
    (map.len() >= peers).then(|| map.values().copied().min().unwrap_or(0))
}

/// This worker's end of the control plane.
pub struct Control {
    input: Option<InputHandleVec<u64, ControlMessage>>,
    state: Rc<RefCell<ControlState>>,
}

impl Control {
    /// Builds the control dataflow on this worker (every worker must, in the same order
    /// relative to its other dataflows).
    pub fn new(worker: &mut timely::worker::Worker) -> Self {
        let state = Rc::new(RefCell::new(ControlState::default()));
        let seen = Rc::clone(&state);
        let input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, stream) = scope.new_input::<ControlMessage>();
            stream
                .broadcast()
                .inspect(move |m: &ControlMessage| seen.borrow_mut().note(*m));
            input
        });
        Control {
            input: Some(input),
            state,
        }
    }

    /// Sends `message` to every worker (this one included); it arrives as the workers step.
    pub fn send(&mut self, message: ControlMessage) {
        if let Some(input) = self.input.as_mut() {
            input.send(message);
            input.flush();
        }
    }

    pub fn state(&self) -> std::cell::Ref<'_, ControlState> {
        self.state.borrow()
    }

    /// Closes this worker's side (its messages were all sent); the dataflow ends when every
    /// worker has closed.
    pub fn close(&mut self) {
        self.input = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_counts_only_once_everyone_spoke() {
        let mut state = ControlState::default();
        state.note(ControlMessage::Durable(0, 5_000));
        assert_eq!(lowest_of_all(&state.durable, 2), None);
        state.note(ControlMessage::Durable(1, 3_000));
        assert_eq!(lowest_of_all(&state.durable, 2), Some(3_000));
        // Values only go forward per worker; the lowest follows the slowest.
        state.note(ControlMessage::Durable(1, 2_000));
        assert_eq!(lowest_of_all(&state.durable, 2), Some(3_000));
        state.note(ControlMessage::Durable(1, 9_000));
        assert_eq!(lowest_of_all(&state.durable, 2), Some(5_000));
    }

    #[test]
    fn workers_without_a_watermark_follow_the_slowest_that_has_one() {
        let mut state = ControlState::default();
        assert_eq!(state.slowest_cap(), None);
        state.note(ControlMessage::Cap(0, Some(5_000)));
        state.note(ControlMessage::Cap(1, Some(1_000)));
        assert_eq!(state.slowest_cap(), Some(1_000));
        // Worker 1 loses its watermark (its partitions went idle before delivering): it no
        // longer holds the others at its stale cap.
        state.note(ControlMessage::Cap(1, None));
        assert_eq!(state.slowest_cap(), Some(5_000));
        state.note(ControlMessage::Cap(0, Some(4_000)));
        assert_eq!(state.slowest_cap(), Some(5_000), "caps only grow");
        state.note(ControlMessage::Cap(1, Some(7_000)));
        assert_eq!(state.slowest_cap(), Some(5_000));
    }

    #[test]
    fn every_worker_hears_every_message() -> anyhow::Result<()> {
        let results = timely::execute(timely::Config::process(3), |worker| {
            let mut control = Control::new(worker);
            let me = worker.index();
            let peers = worker.peers();
            control.send(ControlMessage::Final(me, 1_000 * (me as u64 + 1)));
            while lowest_of_all(&control.state().finals, peers).is_none() {
                worker.step();
            }
            let lowest = lowest_of_all(&control.state().finals, peers);
            control.close();
            lowest
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .join();
        for result in results {
            assert_eq!(result.map_err(|e| anyhow::anyhow!("{e}"))?, Some(1_000));
        }
        Ok(())
    }
}

//! Detect: runs detectors and the decide step over closed windows, in window order, on
//! model workers, without blocking any timely worker on a model.
//!
//! In: `WindowSnapshot`s (one per window; the snapshot gather puts them on worker 0).
//! Each detector stage is placed on one model worker ([`ModelPlacement`]); every snapshot
//! is sent to each worker that hosts a stage. Out: `Alert`s stamped with their window;
//! each detector's alerts carry its name in `model.name`.
//! State: snapshots whose window the input frontier hasn't passed yet (with a capability
//! each), so windows go to the model strictly in order even when several arrive in one
//! activation; then, per window submitted to this worker's inference thread
//! ([`crate::model_worker`]), its capability, released when the thread sends the window's
//! alerts back. The thread wakes the operator when results arrive; nothing polls.

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

pub use crate::detect_stage::DetectStage;

use crate::alert::Alert;
use crate::inference_times::InferenceTimes;
use crate::model_worker::ModelWorker;
use crate::records::{EventTime, WindowSnapshot};

/// Which timely workers run models: stage `i` runs on `workers[i % workers.len()]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPlacement {
    workers: Vec<usize>,
}

impl ModelPlacement {
    /// Model workers from a configured list; indices at or above `peers` are dropped, and
    /// an empty result means every worker.
    pub fn new(configured: Option<&[usize]>, peers: usize) -> Self {
        let peers = peers.max(1);
        let mut workers: Vec<usize> = configured
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|w| *w < peers)
            .collect();
        workers.dedup();
        if workers.is_empty() {
            workers = (0..peers).collect();
        }
        ModelPlacement { workers }
    }

    /// The worker that runs stage `stage`.
    pub fn worker_of(&self, stage: usize) -> usize {
        self.workers[stage % self.workers.len()]
    }
}

/// Runs `stages` (the same list on every worker) over the snapshots; see the module docs.
pub fn detect<'scope>(
    snapshots: Stream<'scope, EventTime, Vec<WindowSnapshot>>,
    stages: Vec<DetectStage>,
    placement: &ModelPlacement,
    times: Arc<InferenceTimes>,
) -> Stream<'scope, EventTime, Vec<Alert>> {
    let scope = snapshots.scope();
    let index = scope.index();
    let mut targets: Vec<usize> = (0..stages.len()).map(|i| placement.worker_of(i)).collect();
    targets.sort_unstable();
    targets.dedup();
    let mine: Vec<DetectStage> = stages
        .into_iter()
        .enumerate()
        .filter(|(i, _)| placement.worker_of(*i) == index)
        .map(|(_, s)| s)
        .collect();
    let routed = snapshots.flat_map(move |snapshot| {
        let Some((last, rest)) = targets.split_last() else {
            return Vec::new();
        };
        let mut out: Vec<(usize, WindowSnapshot)> =
            rest.iter().map(|t| (*t, snapshot.clone())).collect();
        out.push((*last, snapshot));
        out
    });
    routed.unary_frontier(
        Exchange::new(|(target, _): &(usize, WindowSnapshot)| *target as u64),
        "Detect",
        move |_cap, info| {
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            let mut model = if mine.is_empty() {
                None
            } else {
                match ModelWorker::spawn(mine, times, wake, index) {
                    Ok(model) => Some(model),
                    Err(e) => panic!("worker {index}: cannot start the model thread: {e}"),
                }
            };
            let mut waiting: BTreeMap<EventTime, (Capability<EventTime>, Vec<WindowSnapshot>)> =
                BTreeMap::new();
            let mut submitted: BTreeMap<EventTime, Capability<EventTime>> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(time) = cap.least().copied() else {
                        return;
                    };
                    let slot = waiting
                        .entry(time)
                        .or_insert_with(|| (cap.delayed(&time, output.output_index()), Vec::new()));
                    slot.1.extend(data.drain(..).map(|(_, snapshot)| snapshot));
                });
                let Some(model) = model.as_mut() else {
                    waiting.clear();
                    return;
                };
                while let Some(entry) = waiting.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (time, (cap, windows)) = entry.remove_entry();
                    if !model.submit(time, windows) {
                        panic!("worker {index}: the model thread stopped");
                    }
                    submitted.insert(time, cap);
                }
                for (time, alerts) in model.results() {
                    if let Some(cap) = submitted.remove(&time) {
                        output.session(&cap).give_iterator(alerts.into_iter());
                    }
                }
                if !submitted.is_empty() && model.is_dead() {
                    panic!("worker {index}: the model thread stopped (a detector panicked)");
                }
            }
        },
    )
}

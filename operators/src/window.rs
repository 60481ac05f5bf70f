//! Tumbling-window fold: the building block of every per-window operator.
//!
//! **In:** a `Vec` stream whose timestamps are window ends (see [`crate::records::window_end`]),
//! partitioned by a parallelization contract (`Pipeline` for per-worker partial aggregates,
//! an `Exchange` by key for the merge stage, an `Exchange` to worker 0 for gathers).
//!
//! **Out:** for each window `E` that received at least one record on this worker, the records
//! returned by `finish(E, state)`, stamped `E`, once the input frontier has passed `E`.
//! Windows are finished in increasing order of `E`.
//!
//! **State:** one accumulator `A` and one capability per open window; both are dropped when
//! the window is finished, so the output frontier follows the input frontier.
//!
//! Each input message is read at the least time of its stamp: sources must send each
//! window's records under a single-time stamp (timely inputs and the operators of this crate
//! do).

use std::collections::BTreeMap;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::{Capability, Operator};

/// Folds each window's records into an `A` and emits `finish(window_end, A)` when the window
/// closes. `finish` is called in window order, so it may carry state across windows.
pub fn window_fold<'s, D, O, A, P, F, G>(
    stream: StreamVec<'s, u64, D>,
    pact: P,
    name: &str,
    mut fold: F,
    mut finish: G,
) -> StreamVec<'s, u64, O>
where
    D: Clone + 'static,
    O: Clone + 'static,
    A: Default + 'static,
    P: ParallelizationContract<u64, Vec<D>>,
    F: FnMut(&mut A, D) + 'static,
    G: FnMut(u64, A) -> Vec<O> + 'static,
{
    stream.unary_frontier::<CapacityContainerBuilder<Vec<O>>, _, _, _>(
        pact,
        name,
        move |_cap, _info| {
            let mut open: BTreeMap<u64, (Capability<u64>, A)> = BTreeMap::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|cap, data| {
                    let Some(&t) = cap.least() else { return };
                    let slot = open
                        .entry(t)
                        .or_insert_with(|| (cap.delayed(&t, port), A::default()));
                    for batch in data {
                        for x in batch.drain(..) {
                            fold(&mut slot.1, x);
                        }
                    }
                });
                while let Some(entry) = open.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (t, (cap, state)) = entry.remove_entry();
                    let out = finish(t, state);
                    if !out.is_empty() {
                        output.session(&cap).give_iterator(out.into_iter());
                    }
                }
            }
        },
    )
}

/// A stable 64-bit hash for routing records between workers (fixed seed: identical in every
/// worker and process).
pub fn route<K: std::hash::Hash + ?Sized>(key: &K) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Latency quantiles of a sketch at `qs`; zeros when the sketch is empty.
pub fn sketch_quantiles<const N: usize>(
    sketch: &sketches_ddsketch::DDSketch,
    qs: &[f64; N],
) -> [f64; N] {
    let mut out = [0.0; N];
    for (o, q) in out.iter_mut().zip(qs) {
        *o = sketch_quantile(sketch, *q);
    }
    out
}

/// One quantile of a sketch (`q` clamped to `[0, 1]`); 0 when the sketch is empty.
pub fn sketch_quantile(sketch: &sketches_ddsketch::DDSketch, q: f64) -> f64 {
    sketch
        .quantile(q.clamp(0.0, 1.0))
        .ok()
        .flatten()
        .unwrap_or(0.0)
}

/// Quantile of sorted values with linear interpolation between closest ranks (NumPy's
/// default): position `q * (n - 1)`. 0 for an empty slice.
pub fn interpolated_quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Sum of values in a canonical order, so the result doesn't depend on arrival order.
pub fn stable_sum(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.iter().sum()
}

//! An operation's call structure from its observed instances: which calls it makes, how
//! often, and which of them run in parallel (a stage) or one after another (stages).
//!
//! Each instance's calls are numbered per callee: the first call to `b:/y` is slot
//! `(b:/y, 0)`, the second `(b:/y, 1)`, ... A slot's probability is the share of instances
//! that make it, so the number of calls to each callee keeps its observed distribution's
//! tail (P(at least k calls)). Slots are ordered by their mean start offset within the caller
//! (and, where two occurred together, by the order they usually had);
//! consecutive slots share a stage when their client intervals overlapped in most of the
//! instances where both occurred, else a new stage begins.
//!
//! In: per instance, the caller's start and own (self) time and its calls' intervals. Out:
//! the stages and the share of the self time spent before the first call. Keeps no state.

use std::collections::HashMap;

/// A callee: (service id, operation id) as in [`super::hops::Names`].
pub type Callee = (u32, u32);

/// One call made by an instance: the callee and the interval the caller waited on it.
#[derive(Clone, Copy, Debug)]
pub struct ObservedCall {
    pub callee: Callee,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// One observed execution of the operation.
#[derive(Clone, Debug)]
pub struct Instance {
    pub start_ns: u64,
    pub end_ns: u64,
    pub self_ns: u64,
    /// The calls, sorted by start.
    pub calls: Vec<ObservedCall>,
}

/// A call of a fitted stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FittedCall {
    pub callee: Callee,
    /// Share of instances that make this call, in (0, 1].
    pub probability: f64,
}

/// The fitted call structure of an operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub stages: Vec<Vec<FittedCall>>,
    /// Median share of the self time before the first call; `None` without calls.
    pub pre_fraction: Option<f64>,
}

/// A slot: the k-th call to a callee within an instance.
type Slot = (Callee, u32);

#[derive(Default)]
struct SlotStats {
    count: u64,
    /// Sum of the call's start offsets from the caller's start, ns.
    offset_sum: f64,
}

/// Two slots' co-occurrences and how many of them overlapped in time.
#[derive(Default, Clone, Copy)]
struct PairStats {
    together: u64,
    overlapped: u64,
    /// Times the pair's first slot (in key order) started first.
    first_led: u64,
}

/// Fits the call structure of one operation from its instances.
pub fn infer(instances: &[Instance]) -> Shape {
    let mut slots: HashMap<Slot, SlotStats> = HashMap::new();
    let mut pairs: HashMap<(Slot, Slot), PairStats> = HashMap::new();
    let mut pre = Vec::new();
    let mut numbered: Vec<(Slot, u64, u64)> = Vec::new();
    for inst in instances {
        numbered.clear();
        let mut seen: HashMap<Callee, u32> = HashMap::new();
        for c in &inst.calls {
            let k = seen.entry(c.callee).or_insert(0);
            numbered.push(((c.callee, *k), c.start_ns, c.end_ns));
            *k += 1;
        }
        for &(slot, start, _) in &numbered {
            let s = slots.entry(slot).or_default();
            s.count += 1;
            s.offset_sum += start.saturating_sub(inst.start_ns) as f64;
        }
        for (i, &(a, a0, a1)) in numbered.iter().enumerate() {
            for &(b, b0, b1) in &numbered[i + 1..] {
                let (key, first_start, second_start) = if a <= b {
                    ((a, b), a0, b0)
                } else {
                    ((b, a), b0, a0)
                };
                let p = pairs.entry(key).or_default();
                p.together += 1;
                if first_start <= second_start {
                    p.first_led += 1;
                }
                if a0 < b1 && b0 < a1 {
                    p.overlapped += 1;
                }
            }
        }
        if let Some(first) = inst.calls.first()
            && inst.self_ns > 0
        {
            let before = first.start_ns.saturating_sub(inst.start_ns) as f64;
            pre.push((before / inst.self_ns as f64).clamp(0.0, 1.0));
        }
    }
    let n = instances.len().max(1) as f64;
    let mut order: Vec<(Slot, f64, f64)> = slots
        .iter()
        .map(|(slot, s)| (*slot, s.offset_sum / s.count as f64, s.count as f64 / n))
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let parallel = |a: Slot, b: Slot| -> Option<bool> {
        let key = if a <= b { (a, b) } else { (b, a) };
        let p = pairs.get(&key)?;
        (p.together > 0).then(|| 2 * p.overlapped > p.together)
    };
    // Mean offsets mix instances that make different calls; where two slots occurred
    // together, the order they usually had wins (adjacent swaps until none applies).
    let leads = |a: Slot, b: Slot| -> bool {
        let (key, a_is_first) = if a <= b {
            ((a, b), true)
        } else {
            ((b, a), false)
        };
        pairs.get(&key).is_some_and(|p| {
            let a_led = if a_is_first {
                p.first_led
            } else {
                p.together - p.first_led
            };
            2 * a_led > p.together && 2 * p.overlapped <= p.together
        })
    };
    for _ in 0..order.len() {
        let mut swapped = false;
        for i in 1..order.len() {
            if leads(order[i].0, order[i - 1].0) {
                order.swap(i, i - 1);
                swapped = true;
            }
        }
        if !swapped {
            break;
        }
    }
    let mut stages: Vec<Vec<(Slot, f64)>> = Vec::new();
    for (slot, _, probability) in order {
        let joins = stages.last().is_some_and(|stage| {
            let verdicts: Vec<bool> = stage
                .iter()
                .filter_map(|(m, _)| parallel(*m, slot))
                .collect();
            !verdicts.is_empty() && verdicts.iter().all(|v| *v)
        });
        if joins && let Some(stage) = stages.last_mut() {
            stage.push((slot, probability));
        } else {
            stages.push(vec![(slot, probability)]);
        }
    }
    Shape {
        stages: stages
            .into_iter()
            .map(|stage| {
                stage
                    .into_iter()
                    .map(|((callee, _), probability)| FittedCall {
                        callee,
                        probability: round_probability(probability),
                    })
                    .collect()
            })
            .collect(),
        pre_fraction: median(&mut pre),
    }
}

/// Probabilities to 3 decimals; within 0.5 % of 1 is 1 (always called).
fn round_probability(p: f64) -> f64 {
    if p >= 0.995 {
        1.0
    } else {
        ((p * 1000.0).round() / 1000.0).max(0.001)
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(callee: u32, start_ns: u64, end_ns: u64) -> ObservedCall {
        ObservedCall {
            callee: (callee, 0),
            start_ns,
            end_ns,
        }
    }

    #[test]
    fn parallel_then_sequential_with_an_optional_call() {
        // Callees 1 and 2 in parallel, then 3; 3 is called in half of the instances, and
        // 1 is called a second time (after 3) in one instance of four.
        let mut instances = Vec::new();
        for i in 0..4u64 {
            let mut calls = vec![call(1, 10, 40), call(2, 12, 45)];
            if i % 2 == 0 {
                calls.push(call(3, 50, 70));
            }
            if i == 0 {
                calls.push(call(1, 75, 90));
            }
            instances.push(Instance {
                start_ns: 0,
                end_ns: 100,
                self_ns: 20,
                calls,
            });
        }
        let shape = infer(&instances);
        let stages: Vec<Vec<(u32, f64)>> = shape
            .stages
            .iter()
            .map(|s| s.iter().map(|c| (c.callee.0, c.probability)).collect())
            .collect();
        assert_eq!(
            stages,
            vec![vec![(1, 1.0), (2, 1.0)], vec![(3, 0.5)], vec![(1, 0.25)]]
        );
        assert_eq!(shape.pre_fraction, Some(0.5));
    }
}

//! Request types hidden behind one entry span name: many applications name every request
//! at the front door alike (Online Boutique's frontend: `hipstershop.Frontend/Recv.` for
//! the home page, a product page, the cart and checkout). The simulator draws an
//! operation's calls independently, so one operation for all of them would mix the request
//! types' call sets. When the independent-calls model does not explain the call sets seen
//! at an entry operation, its root spans are split by call set into variants, each its own
//! operation (and request type) of the twin.
//!
//! In: the root hops' entry operation and set of callees. Out: per root hop, a variant
//! number (0: the operation is not split; 1, 2, ...: variants by decreasing count; the last,
//! for call sets too rare to stand alone, pools them). Keeps no state.

use std::collections::{BTreeSet, HashMap};

/// The independent-calls model explains the call sets when the total variation distance
/// between the observed and predicted call-set distributions is below this.
const MAX_DISTANCE: f64 = 0.1;
/// A call set seen fewer times than this (and under 1 % of the operation's roots) joins
/// the pooled variant.
const MIN_VARIANT_COUNT: usize = 5;
const MIN_VARIANT_SHARE: f64 = 0.01;

/// A root: its (service, operation) and the distinct callees it called.
pub type Root = ((u32, u32), BTreeSet<(u32, u32)>);

/// Variant numbers for `roots` (same order); see the module doc.
pub fn variants(roots: &[Root]) -> Vec<u32> {
    let mut by_op: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    for (i, (op, _)) in roots.iter().enumerate() {
        by_op.entry(*op).or_default().push(i);
    }
    let mut out = vec![0u32; roots.len()];
    for members in by_op.values() {
        let n = members.len() as f64;
        let mut sets: HashMap<&BTreeSet<(u32, u32)>, usize> = HashMap::new();
        let mut calls: HashMap<(u32, u32), usize> = HashMap::new();
        for &i in members {
            *sets.entry(&roots[i].1).or_default() += 1;
            for c in &roots[i].1 {
                *calls.entry(*c).or_default() += 1;
            }
        }
        if sets.len() < 2 {
            continue;
        }
        // The independent model's probability of each observed call set.
        let p: HashMap<(u32, u32), f64> = calls.iter().map(|(c, k)| (*c, *k as f64 / n)).collect();
        let mut predicted_seen = 0.0;
        let mut distance = 0.0;
        for (set, count) in &sets {
            let predicted: f64 = p
                .iter()
                .map(|(c, q)| if set.contains(c) { *q } else { 1.0 - q })
                .product();
            predicted_seen += predicted;
            distance += (*count as f64 / n - predicted).abs();
        }
        distance = 0.5 * (distance + (1.0 - predicted_seen).max(0.0));
        if distance < MAX_DISTANCE {
            continue;
        }
        let mut ranked: Vec<(&BTreeSet<(u32, u32)>, usize)> = sets.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let standalone: Vec<&BTreeSet<(u32, u32)>> = ranked
            .iter()
            .filter(|(_, k)| *k >= MIN_VARIANT_COUNT || *k as f64 >= MIN_VARIANT_SHARE * n)
            .map(|(s, _)| *s)
            .collect();
        let pooled = standalone.len() as u32 + 1;
        for &i in members {
            out[i] = standalone
                .iter()
                .position(|s| **s == roots[i].1)
                .map_or(pooled, |k| k as u32 + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(calls: &[u32]) -> Root {
        ((0, 0), calls.iter().map(|&c| (c, 0)).collect())
    }

    #[test]
    fn independent_optional_calls_stay_one_operation() {
        // Call 1 always, call 2 in 30 %: exactly what independent draws give.
        let roots: Vec<Root> = (0..100)
            .map(|i| {
                if i % 10 < 3 {
                    root(&[1, 2])
                } else {
                    root(&[1])
                }
            })
            .collect();
        assert!(variants(&roots).iter().all(|&v| v == 0));
    }

    #[test]
    fn exclusive_request_types_split() {
        // Two request types with disjoint calls, and one rare odd call set.
        let mut roots: Vec<Root> = (0..100)
            .map(|i| {
                if i % 2 == 0 {
                    root(&[1, 2])
                } else {
                    root(&[3])
                }
            })
            .collect();
        roots.push(root(&[1, 3]));
        let v = variants(&roots);
        assert_eq!(v[0], v[2]);
        assert_ne!(v[0], v[1]);
        assert!(v[0] >= 1 && v[1] >= 1);
        assert_eq!(v[100], 3, "the rare call set is pooled");
    }
}

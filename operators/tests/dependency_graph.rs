//! The dependency graph against a from-scratch recomputation at every window.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use augur_operators::records::{GraphUpdate, Span, SpanKind};
use augur_operators::{back_end_first, dependency_graph, trace_assembly};
use common::{Feed, run, span};

const W: u64 = 100;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn name(i: u64) -> String {
    format!("s{i:02}")
}

/// Random sightings `(window_end, caller, callee)` over `windows` windows; callers have a
/// smaller index than callees (an acyclic graph) unless `cyclic`.
fn sightings(seed: u64, windows: u64, cyclic: bool) -> Vec<(u64, String, String)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for w in 1..=windows {
        // Some windows see nothing at all.
        if rng.below(6) == 0 {
            continue;
        }
        for _ in 0..rng.below(5) {
            let a = rng.below(7);
            let b = if cyclic {
                rng.below(8)
            } else {
                a + 1 + rng.below(7 - a)
            };
            if a != b {
                out.push((w * W, name(a), name(b)));
            }
        }
    }
    out
}

/// Each sighting as a trace of two server spans (no client span) in that window.
fn feed(sightings: &[(u64, String, String)]) -> Feed {
    let mut spans: Vec<Span> = Vec::new();
    for (i, (w, a, b)) in sightings.iter().enumerate() {
        let trace = i as u128 + 1;
        let end = w - W + 50;
        spans.push(span(trace, 1, None, a, a, SpanKind::Server, "op", end, 10));
        spans.push(span(
            trace,
            2,
            Some(1),
            b,
            b,
            SpanKind::Server,
            "op",
            end - 1,
            5,
        ));
    }
    Feed::new(spans, vec![], W)
}

fn check(seed: u64, workers: usize, windows: u64, retention_windows: u64, cyclic: bool) {
    let seen = sightings(seed, windows, cyclic);
    let retention = retention_windows * W;
    let mut out = run(workers, feed(&seen), W, move |s, _| {
        dependency_graph(trace_assembly(s, 10_000).0, retention)
    });
    out.sort_by_key(|a| a.0);
    let updates: BTreeMap<u64, GraphUpdate> = out
        .iter()
        .map(|(t, u)| {
            assert_eq!(*t, u.window_end);
            (*t, u.clone())
        })
        .collect();
    assert_eq!(updates.len(), out.len(), "at most one update per window");

    let mut state: BTreeSet<(String, String)> = BTreeSet::new();
    for w in (1..=windows + retention_windows + 1).map(|i| i * W) {
        // From scratch: pairs seen in windows (w - retention, w].
        let expected: BTreeSet<(String, String)> = seen
            .iter()
            .filter(|(t, _, _)| *t <= w && *t + retention > w)
            .map(|(_, a, b)| (a.clone(), b.clone()))
            .collect();
        if let Some(u) = updates.get(&w) {
            assert!(
                !u.added.is_empty() || !u.removed.is_empty(),
                "empty update at {w}"
            );
            assert!(
                u.added.windows(2).all(|p| p[0] < p[1])
                    && u.removed.windows(2).all(|p| p[0] < p[1])
            );
            for e in &u.added {
                assert!(state.insert(e.clone()), "added twice: {e:?} at {w}");
            }
            for e in &u.removed {
                assert!(state.remove(e), "removed absent {e:?} at {w}");
            }
            // order: every service of the graph once.
            let nodes: BTreeSet<&String> = state.iter().flat_map(|(a, b)| [a, b]).collect();
            let pos: BTreeMap<&String, usize> =
                u.order.iter().enumerate().map(|(i, n)| (n, i)).collect();
            assert_eq!(pos.len(), u.order.len(), "no duplicates in {:?}", u.order);
            assert_eq!(
                pos.keys().copied().collect::<BTreeSet<_>>(),
                nodes,
                "order covers the graph at {w}"
            );
            if !cyclic {
                for (a, b) in &state {
                    assert!(
                        pos[b] < pos[a],
                        "callee {b} before caller {a} in {:?}",
                        u.order
                    );
                }
            }
            assert_eq!(u.order, back_end_first(&state));
        }
        assert_eq!(state, expected, "seed {seed}, window {w}");
    }
    assert!(
        state.is_empty(),
        "everything retires after the input closes"
    );
    assert!(
        updates
            .keys()
            .all(|t| *t <= (windows + retention_windows) * W)
    );
}

#[test]
fn matches_recomputation_acyclic() {
    for seed in 1..=12u64 {
        check(seed * 7919, 1, 40, 1 + seed % 4, false);
    }
}

#[test]
fn matches_recomputation_cyclic_two_workers() {
    for seed in 1..=4u64 {
        check(seed * 104_729, 2, 30, 3, true);
    }
}

#[test]
fn back_end_first_breaks_cycles_deterministically() {
    let e = |a: &str, b: &str| (a.to_string(), b.to_string());
    // a → b → c → a (cycle), d → a, c → e.
    let edges = [
        e("a", "b"),
        e("b", "c"),
        e("c", "a"),
        e("d", "a"),
        e("c", "e"),
    ];
    // Ready first: e; then the cycle is broken at the smallest remaining name, a; then its
    // callers become ready in name order.
    let order = back_end_first(&edges);
    assert_eq!(order, ["e", "a", "c", "b", "d"]);
    let mut rev = edges.to_vec();
    rev.reverse();
    assert_eq!(back_end_first(&rev), order);
}

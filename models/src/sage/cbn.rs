//! Sage's causal Bayesian network (CBN), built from a window's RPC graph.
//!
//! In: the RPC edges `(caller, callee)` of the dependency graph and its service order
//! (back end → front end). Out: a [`Cbn`]: *units* (one per service, or one meta-node per
//! strongly connected component when calls are bidirectional or cyclic — Sage merges those
//! so the network stays a DAG), *RPCs* between units, and the explicit node/arc list of the
//! network. State: none.
//!
//! Nodes and arcs follow Sage's rules (ASPLOS '21, §3.3.1, eq. 2–5):
//! - `X(u)` (metrics of unit `u`) → `Z(u)` (its latent); per RPC `i`, `Xnet(i)` → `Znet(i)`.
//! - `Ys(u)` (server-side latency of `u`) ← `Yc` of every RPC `u` invokes, `X(u)`, `Z(u)`.
//! - `Yc(i)` (client-side latency of RPC `i`, caller `u`, callee `v`) ← `Ys(v)`, `Ynet(i)`,
//!   `X(u)`, `Z(u)`.
//! - `Ynet(i)` (request + response network delay of `i`) ← `Xnet(i)`, `Znet(i)`.
//!
//! Arcs point from cause to effect, so they run against the RPC direction: the latency of
//! a call is caused by the latencies of the calls it makes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A CBN unit: one service, or a meta-node of services that call each other in a cycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The members joined with `+` (one member: its name).
    pub name: String,
    /// Sorted.
    pub members: Vec<String>,
}

/// An RPC edge between two different units (calls inside a meta-node are internal to it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rpc {
    pub caller: String,
    pub callee: String,
    pub caller_unit: usize,
    pub callee_unit: usize,
    /// Other callees of the same caller whose calls overlap this one's in time: parallel
    /// calls, whose latencies combine by their maximum rather than their sum (see
    /// [`Cbn::mark_parallel`]). Empty in checkpoints from before spans told them apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parallel: Vec<String>,
}

/// Share of an RPC's calls that must overlap calls to another callee from the same caller
/// span for the two to count as parallel (fixed, not tuned: a stage of parallel calls
/// overlaps nearly always, sequential calls never).
pub const PARALLEL_SHARE: f64 = 0.5;

/// Per RPC `(caller, callee)`: its calls, and per other callee the calls that overlapped
/// one to it (summed over windows, from `EdgeFeatures::{calls, parallel}`).
pub type Overlaps = BTreeMap<(String, String), (u64, BTreeMap<String, u64>)>;

impl Rpc {
    /// `caller->callee`, the RPC's identity across windows and checkpoints.
    pub fn key(&self) -> String {
        format!("{}->{}", self.caller, self.callee)
    }
}

/// A node of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    X(usize),
    Z(usize),
    Ys(usize),
    Yc(usize),
    Xnet(usize),
    Znet(usize),
    Ynet(usize),
}

/// The network: units back end first (every unit after all units it calls), RPCs, arcs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cbn {
    pub units: Vec<Unit>,
    /// Sorted by (caller, callee).
    pub rpcs: Vec<Rpc>,
}

impl Cbn {
    /// Builds the network of an RPC graph. `order` (back end first, as the dependency graph
    /// gives it) breaks ties between units that don't depend on each other; services that
    /// appear only in `edges` follow, by name.
    pub fn build(edges: &[(String, String)], order: &[String]) -> Cbn {
        let mut services: Vec<String> = Vec::new();
        for s in order {
            if !services.contains(s) {
                services.push(s.clone());
            }
        }
        let mut extra: BTreeSet<&String> = BTreeSet::new();
        for (a, b) in edges {
            for s in [a, b] {
                if !services.contains(s) {
                    extra.insert(s);
                }
            }
        }
        services.extend(extra.into_iter().cloned());
        let index: BTreeMap<&str, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        let n = services.len();
        let mut adj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for (a, b) in edges {
            if a != b {
                adj[index[a.as_str()]].insert(index[b.as_str()]);
            }
        }
        let component = strongly_connected(&adj);
        // Units: components, named by their sorted members.
        let mut members: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (s, c) in component.iter().enumerate() {
            members.entry(*c).or_default().push(services[s].clone());
        }
        // Condensed graph and a topological order (callees first), ties by the position of
        // the unit's first member in `services`.
        let comps: Vec<usize> = members.keys().copied().collect();
        let first_pos =
            |c: usize| -> usize { component.iter().position(|x| *x == c).unwrap_or(usize::MAX) };
        let mut callees: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (a, outs) in adj.iter().enumerate() {
            for b in outs {
                let (ca, cb) = (component[a], component[*b]);
                if ca != cb {
                    callees.entry(ca).or_default().insert(cb);
                }
            }
        }
        let mut placed: Vec<usize> = Vec::new();
        let mut remaining: Vec<usize> = comps.clone();
        remaining.sort_by_key(|c| first_pos(*c));
        while !remaining.is_empty() {
            // The first (by order) unit whose callees are all placed; one always exists in a DAG.
            let pick = remaining
                .iter()
                .position(|c| {
                    callees
                        .get(c)
                        .is_none_or(|cs| cs.iter().all(|x| placed.contains(x)))
                })
                .unwrap_or(0);
            placed.push(remaining.remove(pick));
        }
        let unit_of_comp: BTreeMap<usize, usize> =
            placed.iter().enumerate().map(|(u, c)| (*c, u)).collect();
        let units: Vec<Unit> = placed
            .iter()
            .map(|c| {
                let mut m = members[c].clone();
                m.sort();
                Unit {
                    name: m.join("+"),
                    members: m,
                }
            })
            .collect();
        let mut rpcs: Vec<Rpc> = Vec::new();
        for (a, b) in edges {
            let (ia, ib) = (index[a.as_str()], index[b.as_str()]);
            let (ua, ub) = (unit_of_comp[&component[ia]], unit_of_comp[&component[ib]]);
            if ua == ub {
                continue;
            }
            let rpc = Rpc {
                caller: a.clone(),
                callee: b.clone(),
                caller_unit: ua,
                callee_unit: ub,
                parallel: Vec::new(),
            };
            if !rpcs.contains(&rpc) {
                rpcs.push(rpc);
            }
        }
        rpcs.sort_by(|x, y| (&x.caller, &x.callee).cmp(&(&y.caller, &y.callee)));
        Cbn { units, rpcs }
    }

    /// Marks, per RPC, the other callees of its caller that at least [`PARALLEL_SHARE`] of
    /// its calls overlapped.
    pub fn mark_parallel(&mut self, overlaps: &Overlaps) {
        for r in &mut self.rpcs {
            r.parallel.clear();
            let Some((calls, with)) = overlaps.get(&(r.caller.clone(), r.callee.clone())) else {
                continue;
            };
            for (other, n) in with {
                if *calls > 0 && *n as f64 >= PARALLEL_SHARE * *calls as f64 && *other != r.callee {
                    r.parallel.push(other.clone());
                }
            }
        }
    }

    /// The RPCs unit `u` invokes, as positions in [`Cbn::invoked`], grouped into sets of
    /// calls that run in parallel (one caller; either side marked the other); a call
    /// made on its own is a group of one. Groups in order of their first position.
    pub fn parallel_groups(&self, u: usize) -> Vec<Vec<usize>> {
        let invoked = self.invoked(u);
        let mut group: Vec<usize> = (0..invoked.len()).collect();
        fn root(group: &mut [usize], mut k: usize) -> usize {
            while group[k] != k {
                group[k] = group[group[k]];
                k = group[k];
            }
            k
        }
        for a in 0..invoked.len() {
            for b in a + 1..invoked.len() {
                let (ra, rb) = (&self.rpcs[invoked[a]], &self.rpcs[invoked[b]]);
                let parallel = ra.caller == rb.caller
                    && (ra.parallel.contains(&rb.callee) || rb.parallel.contains(&ra.callee));
                if parallel {
                    let (x, y) = (root(&mut group, a), root(&mut group, b));
                    group[x.max(y)] = x.min(y);
                }
            }
        }
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut at: BTreeMap<usize, usize> = BTreeMap::new();
        for k in 0..invoked.len() {
            let r = root(&mut group, k);
            match at.get(&r) {
                Some(&g) => out[g].push(k),
                None => {
                    at.insert(r, out.len());
                    out.push(vec![k]);
                }
            }
        }
        out
    }

    /// The unit holding `service`.
    pub fn unit_of(&self, service: &str) -> Option<usize> {
        self.units
            .iter()
            .position(|u| u.members.iter().any(|m| m == service))
    }

    /// RPCs that unit `u` invokes, in `rpcs` order.
    pub fn invoked(&self, u: usize) -> Vec<usize> {
        (0..self.rpcs.len())
            .filter(|i| self.rpcs[*i].caller_unit == u)
            .collect()
    }

    /// RPCs that unit `u` serves.
    pub fn served(&self, u: usize) -> Vec<usize> {
        (0..self.rpcs.len())
            .filter(|i| self.rpcs[*i].callee_unit == u)
            .collect()
    }

    /// Units that (transitively) call `u`, not including `u`.
    pub fn ancestors(&self, u: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut stack = vec![u];
        while let Some(v) = stack.pop() {
            for r in &self.rpcs {
                if r.callee_unit == v && out.insert(r.caller_unit) {
                    stack.push(r.caller_unit);
                }
            }
        }
        out.remove(&u);
        out
    }

    /// Every arc of the network, cause → effect, sorted.
    pub fn arcs(&self) -> Vec<(Node, Node)> {
        let mut arcs = Vec::new();
        for u in 0..self.units.len() {
            arcs.push((Node::X(u), Node::Z(u)));
            arcs.push((Node::X(u), Node::Ys(u)));
            arcs.push((Node::Z(u), Node::Ys(u)));
            for i in self.invoked(u) {
                arcs.push((Node::Yc(i), Node::Ys(u)));
            }
        }
        for (i, r) in self.rpcs.iter().enumerate() {
            arcs.push((Node::Xnet(i), Node::Znet(i)));
            arcs.push((Node::Xnet(i), Node::Ynet(i)));
            arcs.push((Node::Znet(i), Node::Ynet(i)));
            arcs.push((Node::Ys(r.callee_unit), Node::Yc(i)));
            arcs.push((Node::Ynet(i), Node::Yc(i)));
            arcs.push((Node::X(r.caller_unit), Node::Yc(i)));
            arcs.push((Node::Z(r.caller_unit), Node::Yc(i)));
        }
        arcs.sort();
        arcs
    }

    /// Longest chain of decoders (Ys → Yc → Ys ...) from a back end to a front end: how
    /// many decoders run one after another when latencies are regenerated.
    pub fn depth(&self) -> usize {
        let mut depth = vec![1usize; self.units.len()];
        for u in 0..self.units.len() {
            for i in self.invoked(u) {
                let v = self.rpcs[i].callee_unit;
                depth[u] = depth[u].max(depth[v] + 2);
            }
        }
        depth.into_iter().max().unwrap_or(0)
    }
}

/// Tarjan's strongly connected components (iterative). Returns a component id per vertex.
fn strongly_connected(adj: &[BTreeSet<usize>]) -> Vec<usize> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut comp = vec![usize::MAX; n];
    let mut next = 0usize;
    let mut ncomp = 0usize;
    let succ: Vec<Vec<usize>> = adj.iter().map(|s| s.iter().copied().collect()).collect();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (vertex, next successor position)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if *pos < succ[v].len() {
                let w = succ[v][*pos];
                *pos += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = ncomp;
                        if w == v {
                            break;
                        }
                    }
                    ncomp += 1;
                }
            }
        }
    }
    comp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    fn s(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    /// The 3-service chain of Sage's Fig. 5: a → b → c.
    #[test]
    fn chain_gives_exactly_sages_arcs() {
        let cbn = Cbn::build(&[e("a", "b"), e("b", "c")], &s(&["c", "b", "a"]));
        let names: Vec<&str> = cbn.units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        assert_eq!(cbn.rpcs.len(), 2);
        let (c, b, a) = (0, 1, 2);
        // rpcs sorted: a->b = 0, b->c = 1.
        assert_eq!(cbn.rpcs[0].key(), "a->b");
        let (ab, bc) = (0, 1);
        use Node::*;
        let mut expected = vec![
            (X(c), Z(c)),
            (X(c), Ys(c)),
            (Z(c), Ys(c)),
            (X(b), Z(b)),
            (X(b), Ys(b)),
            (Z(b), Ys(b)),
            (Yc(bc), Ys(b)),
            (X(a), Z(a)),
            (X(a), Ys(a)),
            (Z(a), Ys(a)),
            (Yc(ab), Ys(a)),
            (Xnet(ab), Znet(ab)),
            (Xnet(ab), Ynet(ab)),
            (Znet(ab), Ynet(ab)),
            (Ys(b), Yc(ab)),
            (Ynet(ab), Yc(ab)),
            (X(a), Yc(ab)),
            (Z(a), Yc(ab)),
            (Xnet(bc), Znet(bc)),
            (Xnet(bc), Ynet(bc)),
            (Znet(bc), Ynet(bc)),
            (Ys(c), Yc(bc)),
            (Ynet(bc), Yc(bc)),
            (X(b), Yc(bc)),
            (Z(b), Yc(bc)),
        ];
        expected.sort();
        assert_eq!(cbn.arcs(), expected);
        assert_eq!(cbn.ancestors(c), BTreeSet::from([a, b]));
        assert_eq!(cbn.depth(), 5);
    }

    #[test]
    fn fanout_orders_callees_first() {
        let cbn = Cbn::build(
            &[e("fe", "x"), e("fe", "y"), e("x", "z")],
            &s(&["fe", "x", "y", "z"]), // a bad order: the build must still put callees first
        );
        let pos = |n: &str| cbn.units.iter().position(|u| u.name == n).unwrap_or(99);
        assert!(pos("z") < pos("x"));
        assert!(pos("x") < pos("fe"));
        assert!(pos("y") < pos("fe"));
        assert_eq!(cbn.invoked(pos("fe")).len(), 2);
    }

    #[test]
    fn a_cycle_becomes_one_meta_node() {
        // fe → a ⇄ b → c, and a → c.
        let cbn = Cbn::build(
            &[
                e("fe", "a"),
                e("a", "b"),
                e("b", "a"),
                e("b", "c"),
                e("a", "c"),
            ],
            &s(&["c", "b", "a", "fe"]),
        );
        let names: Vec<&str> = cbn.units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["c", "a+b", "fe"]);
        // a⇄b is internal; a→c and b→c are two RPCs from the meta-node.
        let keys: Vec<String> = cbn.rpcs.iter().map(|r| r.key()).collect();
        assert_eq!(keys, ["a->c", "b->c", "fe->a"]);
        assert_eq!(cbn.rpcs[0].caller_unit, 1);
        assert_eq!(cbn.unit_of("b"), Some(1));
        // Still a DAG: every arc from a unit's Yc goes to its own Ys, callees come first.
        for r in &cbn.rpcs {
            assert!(r.callee_unit < r.caller_unit);
        }
    }

    /// Calls group by overlap share: `x`–`y` from `x`'s side (60 %), `y`–`z` from `z`'s
    /// side only (`z` is called less often), `w` overlaps `x` in 10 % of its calls (below
    /// the share): `{x, y, z}` run in parallel, `w` on its own. An RPC without overlap
    /// counts (an old checkpoint's) stays alone.
    #[test]
    fn parallel_calls_group_by_their_overlap_share() {
        let edges = [
            e("c", "w"),
            e("c", "x"),
            e("c", "y"),
            e("c", "z"),
            e("d", "c"),
        ];
        let mut cbn = Cbn::build(&edges, &s(&["w", "x", "y", "z", "c", "d"]));
        let c = cbn.unit_of("c").unwrap();
        assert_eq!(
            cbn.parallel_groups(c),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
        let with = |xs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            xs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        let mut overlaps = Overlaps::new();
        overlaps.insert(e("c", "w"), (100, with(&[("x", 10)])));
        overlaps.insert(e("c", "x"), (100, with(&[("y", 60), ("w", 10)])));
        overlaps.insert(e("c", "y"), (100, with(&[("x", 40), ("z", 30)])));
        overlaps.insert(e("c", "z"), (30, with(&[("y", 30)])));
        cbn.mark_parallel(&overlaps);
        // invoked(c) = c->w, c->x, c->y, c->z.
        assert_eq!(cbn.parallel_groups(c), vec![vec![0], vec![1, 2, 3]]);
        assert_eq!(cbn.rpcs[1].parallel, s(&["y"]));
        let d = cbn.unit_of("d").unwrap();
        assert_eq!(cbn.parallel_groups(d), vec![vec![0]]);
    }
}

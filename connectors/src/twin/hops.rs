//! Service hops: the spans of one trace grouped into the visits a request pays to services.
//!
//! A hop is a maximal set of spans of one service connected by parent links inside a trace:
//! its *entry span* is a span whose parent is in another service (or absent: the root), and
//! every span under it in the same service (handlers, client calls, database queries) belongs
//! to it. The hop's children are the hops whose entry span's parent lies in this hop. This
//! works the same with span kinds (the simulator's server and client spans) and without
//! (Nezha's kind-less spans, where a span whose parent belongs to another service is a call
//! from that service).
//!
//! When the caller's span that parents a hop is not the caller's own entry span and has that
//! hop as its only child, it is the caller's side of the call (a client span): its interval
//! is kept as the hop's [`Hop::call`], which gives the network time of the call. A client
//! span naming a `peer.service` that emits no spans becomes a hop of that service, marked
//! not instrumented.
//!
//! In: spans in any order. Out: hops with names interned in a [`Names`] table. No state is
//! kept between calls except the names.

use std::collections::HashMap;

use augur_operators::records::{Span, SpanKind};

/// An interning table for service, operation and instance names.
#[derive(Clone, Debug, Default)]
pub struct Names {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    /// The id of `name`, added if new.
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    /// The id of `name` if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// One visit of a request to a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    /// Index of the trace among the traces of the input (dense, from 0).
    pub trace: u32,
    pub service: u32,
    pub instance: u32,
    /// The entry span's name.
    pub op: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    /// The entry span failed.
    pub error: bool,
    /// Index of the calling hop in the same vector; `None` for a trace's root.
    pub parent: Option<usize>,
    /// The caller's client-side interval of the call, when the caller has a span for it.
    pub call: Option<(u64, u64)>,
    /// False for a hop made from a client span's `peer.service`.
    pub instrumented: bool,
}

impl Hop {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The interval the caller waited for this hop: the client span if known, else the hop.
    pub fn waited(&self) -> (u64, u64) {
        self.call.unwrap_or((self.start_ns, self.end_ns))
    }
}

/// Groups `spans` into hops (see the module doc). Hops of one trace are contiguous, a parent
/// before its children; traces are ordered by their first span's start.
pub fn hops_of(spans: &[Span], names: &mut Names) -> Vec<Hop> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_unstable_by_key(|&i| (spans[i].trace_id, spans[i].start_ns, spans[i].span_id));
    // Traces in order of their first start, so hop order follows time.
    let mut traces: Vec<&[usize]> = order
        .chunk_by(|&a, &b| spans[a].trace_id == spans[b].trace_id)
        .collect();
    traces.sort_by_key(|t| spans[t[0]].start_ns);
    let mut hops = Vec::with_capacity(spans.len() / 2);
    for (t, members) in traces.iter().enumerate() {
        trace_hops(spans, members, t as u32, names, &mut hops);
    }
    hops
}

/// The hops of one trace (`members`: indices into `spans`, sorted by start).
fn trace_hops(
    spans: &[Span],
    members: &[usize],
    trace: u32,
    names: &mut Names,
    out: &mut Vec<Hop>,
) {
    let n = members.len();
    let local: HashMap<u64, usize> = members
        .iter()
        .enumerate()
        .map(|(k, &i)| (spans[i].span_id, k))
        .collect();
    let parent: Vec<Option<usize>> = members
        .iter()
        .map(|&i| spans[i].parent_span_id.and_then(|p| local.get(&p).copied()))
        .collect();
    let mut children = vec![0u32; n];
    for p in parent.iter().flatten() {
        children[*p] += 1;
    }
    let is_entry: Vec<bool> = (0..n)
        .map(|k| match parent[k] {
            None => true,
            Some(p) => spans[members[p]].service != spans[members[k]].service,
        })
        .collect();
    // The hop of each span: follow parents up to the nearest entry span.
    let mut hop_of: Vec<Option<usize>> = vec![None; n];
    let first = out.len();
    for k in 0..n {
        if hop_of[k].is_some() {
            continue;
        }
        let mut path = Vec::new();
        let mut at = k;
        let hop = loop {
            if let Some(h) = hop_of[at] {
                break h;
            }
            path.push(at);
            if is_entry[at] {
                let s = &spans[members[at]];
                out.push(Hop {
                    trace,
                    service: names.id(&s.service),
                    instance: names.id(&s.instance),
                    op: names.id(&s.name),
                    start_ns: s.start_ns,
                    end_ns: s.end_ns.max(s.start_ns),
                    error: s.error,
                    parent: None,
                    call: None,
                    instrumented: true,
                });
                break out.len() - 1;
            }
            match parent[at] {
                Some(p) if path.len() <= n => at = p,
                // A parent cycle (malformed ids): cut it here as an entry.
                _ => {
                    let s = &spans[members[at]];
                    out.push(Hop {
                        trace,
                        service: names.id(&s.service),
                        instance: names.id(&s.instance),
                        op: names.id(&s.name),
                        start_ns: s.start_ns,
                        end_ns: s.end_ns.max(s.start_ns),
                        error: s.error,
                        parent: None,
                        call: None,
                        instrumented: true,
                    });
                    break out.len() - 1;
                }
            }
        };
        for p in path {
            hop_of[p] = Some(hop);
        }
    }
    // Links between hops, and the client side of each call.
    for k in 0..n {
        if !is_entry[k] {
            continue;
        }
        let Some(p) = parent[k] else { continue };
        let (Some(h), Some(ph)) = (hop_of[k], hop_of[p]) else {
            continue;
        };
        if h == ph {
            continue;
        }
        out[h].parent = Some(ph);
        let caller_span = &spans[members[p]];
        if !is_entry[p] && children[p] == 1 {
            out[h].call = Some((
                caller_span.start_ns,
                caller_span.end_ns.max(caller_span.start_ns),
            ));
        }
    }
    // Client spans to peers that emit no spans: a hop of the peer.
    for k in 0..n {
        let s = &spans[members[k]];
        let (Some(peer), 0) = (&s.peer_service, children[k]) else {
            continue;
        };
        if s.kind != SpanKind::Client {
            continue;
        }
        let Some(ph) = hop_of[k] else { continue };
        let end = s.end_ns.max(s.start_ns);
        out.push(Hop {
            trace,
            service: names.id(peer),
            instance: names.id(peer),
            op: names.id(&s.name),
            start_ns: s.start_ns,
            end_ns: end,
            error: s.error,
            parent: Some(ph),
            call: Some((s.start_ns, end)),
            instrumented: false,
        });
    }
    // Parents before children: order this trace's hops by start (a parent starts first
    // unless clocks are skewed; then by the link depth).
    let mut idx: Vec<usize> = (first..out.len()).collect();
    let depth = |mut h: usize, out: &Vec<Hop>| {
        let mut d = 0;
        while let Some(p) = out[h].parent {
            d += 1;
            h = p;
            if d > n {
                break;
            }
        }
        d
    };
    let depths: Vec<usize> = idx.iter().map(|&h| depth(h, out)).collect();
    let mut keyed: Vec<(usize, u64, usize)> = idx
        .iter()
        .zip(&depths)
        .map(|(&h, &d)| (d, out[h].start_ns, h))
        .collect();
    keyed.sort_unstable();
    idx = keyed.into_iter().map(|(_, _, h)| h).collect();
    let mut new_pos = vec![0usize; out.len() - first];
    for (pos, &h) in idx.iter().enumerate() {
        new_pos[h - first] = first + pos;
    }
    let mut reordered: Vec<Hop> = idx.iter().map(|&h| out[h].clone()).collect();
    for hop in &mut reordered {
        if let Some(p) = hop.parent {
            hop.parent = Some(new_pos[p - first]);
        }
    }
    out.truncate(first);
    out.extend(reordered);
}

/// Per hop, the time spent in its own service: the duration minus the union of the
/// intervals it waited on its children, ns. `hops` as [`hops_of`] returns them.
pub fn self_times_ns(hops: &[Hop]) -> Vec<u64> {
    hops.iter()
        .zip(call_waits(hops).iter_mut())
        .map(|(h, w)| {
            let busy = union_within(w, h.start_ns, h.end_ns);
            h.duration_ns().saturating_sub(busy)
        })
        .collect()
}

/// Per hop, the intervals of its own work, in order: its span less the intervals it
/// waited on its children, ns (their lengths sum to [`self_times_ns`]).
pub fn own_work_ns(hops: &[Hop]) -> Vec<Vec<(u64, u64)>> {
    hops.iter()
        .zip(call_waits(hops).iter_mut())
        .map(|(h, w)| {
            w.sort_unstable();
            let mut own = Vec::new();
            let mut at = h.start_ns;
            for &(a, b) in w.iter() {
                let (a, b) = (a.clamp(h.start_ns, h.end_ns), b.clamp(h.start_ns, h.end_ns));
                if a > at {
                    own.push((at, a));
                }
                at = at.max(b);
            }
            if h.end_ns > at {
                own.push((at, h.end_ns));
            }
            own
        })
        .collect()
}

/// Per hop, the intervals it waited on each of its children.
fn call_waits(hops: &[Hop]) -> Vec<Vec<(u64, u64)>> {
    let mut waits: Vec<Vec<(u64, u64)>> = vec![Vec::new(); hops.len()];
    for h in hops {
        if let Some(p) = h.parent {
            waits[p].push(h.waited());
        }
    }
    waits
}

/// Total length of the union of `intervals` clipped to `[lo, hi]`.
pub fn union_within(intervals: &mut [(u64, u64)], lo: u64, hi: u64) -> u64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(u64, u64)> = None;
    for &(a, b) in intervals.iter() {
        let (a, b) = (a.max(lo), b.min(hi));
        if b <= a {
            continue;
        }
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = cur {
        total += cb - ca;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u64, parent: Option<u64>, service: &str, name: &str, start: u64, end: u64) -> Span {
        Span {
            trace_id: 1,
            span_id: id,
            parent_span_id: parent,
            service: service.into(),
            instance: format!("{service}-0"),
            kind: SpanKind::Unspecified,
            name: name.into(),
            start_ns: start,
            end_ns: end,
            error: false,
            peer_service: None,
            version: None,
        }
    }

    #[test]
    fn kindless_spans_group_into_hops_with_client_intervals() {
        // a:/x (0..100) has an internal span that calls b twice in sequence through client
        // spans, and b:/y has a database span of its own.
        let spans = vec![
            span(1, None, "a", "/x", 0, 100),
            span(2, Some(1), "a", "handler", 5, 95),
            span(3, Some(2), "a", "GET b", 10, 40),
            span(4, Some(3), "b", "/y", 12, 38),
            span(5, Some(4), "b", "SELECT", 15, 30),
            span(6, Some(2), "a", "GET b", 50, 80),
            span(7, Some(6), "b", "/y", 52, 78),
        ];
        let mut names = Names::default();
        let hops = hops_of(&spans, &mut names);
        assert_eq!(hops.len(), 3);
        assert_eq!(names.name(hops[0].service), "a");
        assert_eq!(hops[0].parent, None);
        assert_eq!(names.name(hops[1].op), "/y");
        assert_eq!(hops[1].parent, Some(0));
        assert_eq!(hops[1].call, Some((10, 40)));
        assert_eq!(hops[2].call, Some((50, 80)));
        let own = self_times_ns(&hops);
        assert_eq!(own, vec![100 - 30 - 30, 26, 26]);
        let segments = own_work_ns(&hops);
        assert_eq!(segments[0], vec![(0, 10), (40, 50), (80, 100)]);
        for (total, parts) in own.iter().zip(&segments) {
            assert_eq!(*total, parts.iter().map(|(a, b)| b - a).sum::<u64>());
        }
    }

    #[test]
    fn union_merges_overlaps_and_clips() {
        let mut v = vec![(0, 10), (5, 20), (30, 40), (35, 100)];
        assert_eq!(union_within(&mut v, 2, 50), 18 + 20);
    }
}

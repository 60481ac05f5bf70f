//! Own time: what each service spent on its own, per window, from whole span trees.
//!
//! **In:** [`SpanTiming`]s (the parts of a span own time needs, from
//! [`crate::span_fanout`]) stamped with the window end of their span's end; exchanged by
//! trace id, so a span and its children meet on one worker.
//!
//! **Out:** per window and service with spans on this worker, a [`ServicePartial`] holding
//! only the own time ([`ServicePartial::own_ns`]) and its split by span name
//! ([`ServicePartial::own_by_operation`]), emitted when the window closes, sorted by
//! service; [`crate::service_features`] merges them into
//! [`crate::records::ServiceFeatures::own_ms`] and
//! [`crate::records::ServiceFeatures::operations`].
//!
//! A span's own time is its duration less its children's. A span that is the caller's side
//! of a call — a `Client`/`Producer` span with a child in another service or a
//! `peer.service`, or a kind-less span covering a child in another service (as
//! [`crate::trace_assembly`] reads them) — has none: its time is the call's (the callee's
//! time and the network). Every span's own time lands in the window the span ended, with its
//! children subtracted whatever window they ended in. Taking a window's busy time less the
//! calls that ended in it instead charges a request with none of the calls it made in
//! earlier windows: a two-second request whose calls ended in the window before shows two
//! seconds of own time, and at one request a second that is what a window holds.
//!
//! Only children in the span's window or earlier count, so the result doesn't depend on
//! arrival order or the number of workers; a child that ends after its parent (clock skew
//! between hosts) in a later window is not subtracted. Own time of a service's internal span
//! that ends in an earlier window than its request lands in that earlier window.
//!
//! **State:** per worker, the open windows' spans (freed when the window closes) and,
//! by parent, the children of spans not yet closed, freed when their parent's window closes
//! or, for parents never seen, `ttl_ms` after the newest child's window (as trace assembly's
//! `trace_ttl_ms`: a request longer than that is not charged with calls that ended more than
//! `ttl_ms` before it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;

use crate::names::Names;
use crate::records::{Span, SpanKind};
use crate::service_features::ServicePartial;
use crate::window::{route, window_fold};

/// What own time needs of a span.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanTiming {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub service: String,
    /// The span's name: its operation.
    pub name: String,
    pub kind: SpanKind,
    /// `end_ns - start_ns` (saturating).
    pub duration_ns: u64,
    /// A `Client` span naming a `peer.service` other than its own: a call to an
    /// uninstrumented peer.
    pub peer_call: bool,
}

impl SpanTiming {
    pub fn of(span: &Span) -> SpanTiming {
        SpanTiming {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            service: span.service.clone(),
            name: span.name.clone(),
            kind: span.kind,
            duration_ns: span.end_ns.saturating_sub(span.start_ns),
            peer_call: span
                .kind
                .calls_peer(&span.service, span.peer_service.as_deref()),
        }
    }
}

/// A child as its parent needs it.
struct Child {
    /// The window the child ended in.
    window: u64,
    duration_ns: u64,
    service: Arc<str>,
}

type Hasher = foldhash::fast::RandomState;

/// The own time of `span` given its children (all of them in its window or earlier).
pub fn own_ns<'a>(span: &SpanTiming, children: impl IntoIterator<Item = (&'a str, u64)>) -> i128 {
    let mut sum: i128 = 0;
    let mut remote_min: Option<u64> = None;
    for (service, duration_ns) in children {
        sum += i128::from(duration_ns);
        if service != span.service {
            remote_min = Some(remote_min.map_or(duration_ns, |m| m.min(duration_ns)));
        }
    }
    // The shortest remote child is the one a kind-less span most likely covers.
    let call_side =
        span.peer_call || remote_min.is_some_and(|m| span.kind.is_call_side(span.duration_ns, m));
    if call_side {
        0
    } else {
        i128::from(span.duration_ns) - sum
    }
}

type Key = (u128, u64);

/// Own time per window and service; see the module docs.
pub fn own_time<'s>(
    spans: StreamVec<'s, u64, SpanTiming>,
    ttl_ms: u64,
) -> StreamVec<'s, u64, (String, ServicePartial)> {
    // Children by parent, carried across windows (`finish` runs in window order).
    let mut children: HashMap<Key, Vec<Child>, Hasher> = HashMap::default();
    let mut names = Names::default();
    let mut expiry: BTreeMap<u64, Vec<Key>> = BTreeMap::new();
    window_fold(
        spans,
        Exchange::new(|s: &SpanTiming| route(&s.trace_id)),
        "OwnTime",
        |acc: &mut Vec<SpanTiming>, s: SpanTiming| acc.push(s),
        move |window, spans: Vec<SpanTiming>| {
            for s in &spans {
                if let Some(p) = s.parent_span_id {
                    let key = (s.trace_id, p);
                    let list = children.entry(key).or_default();
                    if list.is_empty() {
                        expiry
                            .entry(window.saturating_add(ttl_ms))
                            .or_default()
                            .push(key);
                    }
                    list.push(Child {
                        window,
                        duration_ns: s.duration_ns,
                        service: names.intern(&s.service),
                    });
                }
            }
            // Only windows up to this one have been folded in: a child ending in a later
            // window (clock skew) is never among a span's children, whatever the arrival
            // order.
            let mut by_service: BTreeMap<&str, (i128, BTreeMap<&str, i128>)> = BTreeMap::new();
            for s in &spans {
                let kids = children
                    .remove(&(s.trace_id, s.span_id))
                    .unwrap_or_default();
                let own = own_ns(s, kids.iter().map(|c| (&*c.service, c.duration_ns)));
                let (total, by_operation) = by_service.entry(s.service.as_str()).or_default();
                *total += own;
                *by_operation.entry(s.name.as_str()).or_default() += own;
            }
            // Children whose parent never closed here: a parent outside the data, or one
            // that ended long after them.
            while let Some(entry) = expiry.first_entry() {
                if *entry.key() > window {
                    break;
                }
                for key in entry.remove() {
                    let newest = children
                        .get(&key)
                        .and_then(|l| l.iter().map(|c| c.window).max());
                    match newest {
                        Some(w) if w.saturating_add(ttl_ms) > window => expiry
                            .entry(w.saturating_add(ttl_ms))
                            .or_default()
                            .push(key),
                        Some(_) => {
                            children.remove(&key);
                        }
                        None => {}
                    }
                }
            }
            names.sweep();
            by_service
                .into_iter()
                .map(|(service, (own_ns, by_operation))| {
                    let by_operation = by_operation
                        .into_iter()
                        .map(|(name, ns)| (name.to_owned(), ns))
                        .collect();
                    (
                        service.to_owned(),
                        ServicePartial::of_own_time(own_ns, by_operation),
                    )
                })
                .collect()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(
        span_id: u64,
        parent: Option<u64>,
        service: &str,
        kind: SpanKind,
        dur: u64,
    ) -> SpanTiming {
        SpanTiming {
            trace_id: 1,
            span_id,
            parent_span_id: parent,
            service: service.to_owned(),
            name: "op".to_owned(),
            kind,
            duration_ns: dur,
            peer_call: false,
        }
    }

    #[test]
    fn a_call_side_span_has_no_own_time() {
        let client = timing(2, Some(1), "a", SpanKind::Unspecified, 100);
        // Covers its remote child: the caller's side of the call.
        assert_eq!(own_ns(&client, [("b", 90)]), 0);
        // Shorter than its remote child: not the call's client side but a span that made
        // the call (as trace assembly reads it): the call is subtracted.
        let handler = timing(2, Some(1), "a", SpanKind::Unspecified, 80);
        assert_eq!(own_ns(&handler, [("b", 90)]), -10);
        assert_eq!(own_ns(&handler, [("a", 10), ("a", 20)]), 50);
        let explicit = timing(2, Some(1), "a", SpanKind::Client, 100);
        assert_eq!(own_ns(&explicit, [("b", 90)]), 0);
        // A client span with no callee seen (a database driver's) is the service's own time.
        assert_eq!(own_ns(&explicit, []), 100);
        let peer = SpanTiming {
            peer_call: true,
            ..explicit
        };
        assert_eq!(own_ns(&peer, []), 0);
        let server = timing(1, None, "a", SpanKind::Server, 300);
        assert_eq!(own_ns(&server, [("a", 100), ("a", 150)]), 50);
    }
}

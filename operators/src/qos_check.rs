//! QoS check (design step 6): end-to-end latency of entry points against their SLOs.
//!
//! **In:** [`Span`]s stamped with window ends, and the configured [`Slo`]s. Root spans (no
//! parent) of kind `Server`, or with no kind recorded, are end-to-end requests; their
//! service is the entry point.
//!
//! **Out:** per window and per SLO with at least one matching request, one [`QosVerdict`]
//! stamped with the window end, emitted when the window closes. Matching: the root span's
//! service equals `entry` and, if the SLO names an `operation`, the span's name equals it
//! (the verdict's `entry` is then `"service operation"`). `latency_ms` holds DDSketch
//! quantiles (1 % relative accuracy) at [`LATENCY_QUANTILES`]; `measured_ms` is the
//! sketch's value at the SLO's quantile (lower nearest rank, `q = 0`/`1` give the exact
//! min/max); `violated = measured_ms > threshold_ms`, or, when the SLO sets an
//! `error_rate`, the window's share of requests with error status is above it. Sketches merge exactly (integer bin
//! counts), so verdicts are identical for any number of workers. All verdicts of a window
//! come from one worker, sorted by entry (then SLO position).
//!
//! **State:** stage 1 keeps per worker, window and SLO a count and a sketch ([`QosPartials`]);
//! stage 2 gathers them on one worker. Freed when the frontier passes the window.
//! [`qos_check`] runs both stages; [`qos_verdicts`] takes stage 1 from elsewhere (the
//! [`crate::span_fanout`], which reads each span once for all its consumers).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};

use crate::records::{LATENCY_QUANTILES, QosVerdict, Span, SpanKind};
use crate::window::{sketch_quantile, sketch_quantiles, window_fold};

/// A latency objective for one entry point, e.g. p99 ≤ 200 ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Service of the root server spans.
    pub entry: String,
    /// Only root spans with this name count, if set.
    #[serde(default)]
    pub operation: Option<String>,
    /// Quantile in `[0, 1]`, e.g. 0.99.
    pub quantile: f64,
    pub threshold_ms: f64,
    /// Share of the entry's requests with error status above which a window violates the
    /// objective too (e.g. 0.01), beside the latency; `None` (default): latency only. With
    /// few requests per window one error is a large share: set it with the traffic in mind.
    #[serde(default)]
    pub error_rate: Option<f64>,
}

impl Slo {
    /// Whether a span is an end-to-end request this SLO covers.
    pub fn matches(&self, span: &Span) -> bool {
        span.parent_span_id.is_none()
            && matches!(span.kind, SpanKind::Server | SpanKind::Unspecified)
            && span.service == self.entry
            && self.operation.as_ref().is_none_or(|op| *op == span.name)
    }

    /// The verdict's entry label: `service` or `"service operation"`.
    pub fn label(&self) -> String {
        match &self.operation {
            Some(op) => format!("{} {}", self.entry, op),
            None => self.entry.clone(),
        }
    }
}

/// Partial aggregate of one SLO's requests in one window on one worker.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct QosPartial {
    requests: u64,
    errors: u64,
    latency: DDSketch,
}

/// Stage 1 over the spans of one window on one worker: a [`QosPartial`] per SLO (by position)
/// with at least one matching request.
#[derive(Default)]
pub struct QosPartials {
    by_slo: BTreeMap<usize, QosPartial>,
}

impl QosPartials {
    pub fn add(&mut self, slos: &[Slo], span: &Span) {
        // Cheap test first: only root server spans can match.
        if span.parent_span_id.is_some()
            || !matches!(span.kind, SpanKind::Server | SpanKind::Unspecified)
        {
            return;
        }
        for (i, slo) in slos.iter().enumerate() {
            if slo.matches(span) {
                let p = self.by_slo.entry(i).or_default();
                p.requests += 1;
                p.errors += u64::from(span.error);
                p.latency.add(span.duration_ms());
            }
        }
    }

    pub fn finish(self) -> Vec<(usize, QosPartial)> {
        self.by_slo.into_iter().collect()
    }
}

/// QoS verdicts per window and SLO; see the module docs.
pub fn qos_check<'s>(
    spans: StreamVec<'s, u64, Span>,
    slos: &[Slo],
) -> StreamVec<'s, u64, QosVerdict> {
    let slos1 = slos.to_vec();
    let partials = window_fold(
        spans,
        Pipeline,
        "QosPartials",
        move |acc: &mut QosPartials, s: Span| acc.add(&slos1, &s),
        |_t, acc| acc.finish(),
    );
    qos_verdicts(partials, slos)
}

/// [`qos_check`] from stage 1 ([`QosPartials::finish`] per window and worker).
pub fn qos_verdicts<'s>(
    partials: StreamVec<'s, u64, (usize, QosPartial)>,
    slos: &[Slo],
) -> StreamVec<'s, u64, QosVerdict> {
    let slos2 = slos.to_vec();
    // All SLOs of a window meet on worker 0: root spans are few and the verdicts come sorted.
    window_fold(
        partials,
        Exchange::new(|_: &(usize, QosPartial)| 0),
        "QosCheck",
        |acc: &mut BTreeMap<usize, QosPartial>, (i, p): (usize, QosPartial)| match acc.get_mut(&i) {
            Some(mine) => {
                mine.requests += p.requests;
                mine.errors += p.errors;
                mine.latency
                    .merge(&p.latency)
                    .expect("all sketches share the default config");
            }
            None => {
                acc.insert(i, p);
            }
        },
        move |t, acc| {
            let mut out: Vec<(usize, QosVerdict)> = acc
                .into_iter()
                .filter_map(|(i, p)| {
                    let slo = slos2.get(i)?;
                    let measured = sketch_quantile(&p.latency, slo.quantile);
                    Some((
                        i,
                        QosVerdict {
                            window_end: t,
                            entry: slo.label(),
                            requests: p.requests,
                            errors: p.errors,
                            latency_ms: sketch_quantiles(&p.latency, &LATENCY_QUANTILES),
                            quantile: slo.quantile,
                            slo_ms: slo.threshold_ms,
                            measured_ms: measured,
                            violated: measured > slo.threshold_ms
                                || slo.error_rate.is_some_and(|max| {
                                    p.requests > 0 && p.errors as f64 / p.requests as f64 > max
                                }),
                        },
                    ))
                })
                .collect();
            out.sort_by(|a, b| a.1.entry.cmp(&b.1.entry).then(a.0.cmp(&b.0)));
            out.into_iter().map(|(_, v)| v).collect()
        },
    )
}

//! Span fan-out: one pass over each span container for all consumers of spans.
//!
//! Four operators read spans (trace assembly, own time, service features, QoS check). Giving them the
//! same stream would make timely clone every container (and every span's strings) for all
//! but one of them; instead this operator reads each container once, by reference, and
//! moves it on.
//!
//! **In:** [`Span`]s stamped with window ends (each message under a single-time stamp), and
//! the configured [`Slo`]s.
//!
//! **Out:** three streams, stamped like the input:
//! 0. the span containers themselves, unchanged (for [`crate::trace_assembly`]);
//! 1. per window with spans on this worker, the span side of stage 1 of
//!    [`crate::service_features`] ([`SpanPartials::finish`]: `(service, partial)` sorted by
//!    service), emitted when the window closes;
//! 2. per window with matching requests on this worker, stage 1 of [`crate::qos_check`]
//!    ([`QosPartials::finish`]: `(SLO position, partial)`), emitted when the window closes;
//! 3. each span's [`SpanTiming`] (for [`crate::own_time`]), as its span arrives.
//!
//! **State:** per open window, the two accumulators and a capability for each of outputs 1
//! and 2; freed when the input frontier passes the window's end.

use std::collections::BTreeMap;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::own_time::SpanTiming;
use crate::qos_check::{QosPartial, QosPartials, Slo};
use crate::records::Span;
use crate::service_features::{ServicePartial, SpanPartials};

/// The four outputs of [`span_fanout`].
pub type FannedOut<'s> = (
    StreamVec<'s, u64, Span>,
    StreamVec<'s, u64, (String, ServicePartial)>,
    StreamVec<'s, u64, (usize, QosPartial)>,
    StreamVec<'s, u64, SpanTiming>,
);

struct Open {
    services_cap: Capability<u64>,
    qos_cap: Capability<u64>,
    services: SpanPartials,
    qos: QosPartials,
}

/// Splits spans for their consumers; see the module docs.
pub fn span_fanout<'s>(spans: StreamVec<'s, u64, Span>, slos: &[Slo]) -> FannedOut<'s> {
    let slos = slos.to_vec();
    let mut builder = OperatorBuilder::new("SpanFanout".to_owned(), spans.scope());
    let mut input = builder.new_input(spans, Pipeline);
    let (mut span_out, span_stream) = builder.new_output::<Vec<Span>>();
    let (mut service_out, service_stream) = builder.new_output::<Vec<(String, ServicePartial)>>();
    let (mut qos_out, qos_stream) = builder.new_output::<Vec<(usize, QosPartial)>>();
    let (mut timing_out, timing_stream) = builder.new_output::<Vec<SpanTiming>>();
    builder.build(move |_initial| {
        // The initial capabilities are dropped: outputs are produced only under input times.
        let mut open: BTreeMap<u64, Open> = BTreeMap::new();
        move |frontiers| {
            let mut span_out = span_out.activate();
            let mut service_out = service_out.activate();
            let mut qos_out = qos_out.activate();
            let mut timing_out = timing_out.activate();
            let (service_port, qos_port) = (service_out.output_index(), qos_out.output_index());
            input.for_each_stamp(|cap, data| {
                let Some(&t) = cap.least() else { return };
                let slot = open.entry(t).or_insert_with(|| Open {
                    services_cap: cap.delayed(&t, service_port),
                    qos_cap: cap.delayed(&t, qos_port),
                    services: SpanPartials::default(),
                    qos: QosPartials::default(),
                });
                for batch in data {
                    let mut timings = Vec::with_capacity(batch.len());
                    for span in batch.iter() {
                        slot.services.add(span);
                        slot.qos.add(&slos, span);
                        timings.push(SpanTiming::of(span));
                    }
                    timing_out.give(&cap, &mut timings);
                    span_out.give(&cap, batch);
                }
            });
            while let Some(entry) = open.first_entry() {
                if frontiers[0].less_equal(entry.key()) {
                    break;
                }
                let window = entry.remove();
                let mut services = window.services.finish();
                if !services.is_empty() {
                    service_out.give(&window.services_cap, &mut services);
                }
                let mut qos = window.qos.finish();
                if !qos.is_empty() {
                    qos_out.give(&window.qos_cap, &mut qos);
                }
            }
        }
    });
    (span_stream, service_stream, qos_stream, timing_stream)
}

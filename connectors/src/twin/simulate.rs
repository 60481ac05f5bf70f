//! Running a twin: the simulator at a given load for a given time, its spans and CPU
//! samples collected, the first seconds (the cluster filling up) dropped.
//!
//! In: a topology, a rate scale, run and warm-up lengths, a seed. Out: spans and metric
//! points of the measured part. Keeps no state.

use augur_operators::records::{MetricPoint, Span};

use super::TwinError;
use crate::simulator::{SimConfig, Simulator, Topology};

/// Simulates `topology` for `warmup_s + seconds` at `rate_scale` times its load; returns the
/// spans of traces that started after the warm-up and the metric samples after it.
pub fn run(
    topology: &Topology,
    rate_scale: f64,
    warmup_s: f64,
    seconds: f64,
    seed: u64,
) -> Result<(Vec<Span>, Vec<MetricPoint>), TwinError> {
    let mut config = SimConfig::new(topology.clone(), seed);
    config.rate_scale = rate_scale;
    config.in_flight_interval_ms = 0;
    config.metrics_interval_ms = 1000;
    let mut sim = Simulator::new(config).map_err(TwinError::Sim)?;
    let start = sim.now_ms();
    let measure_from_ns = (start + (warmup_s * 1e3) as u64) * 1_000_000;
    let end = start + ((warmup_s + seconds) * 1e3) as u64;
    let (mut spans, mut metrics) = (Vec::new(), Vec::new());
    let mut kept = Vec::new();
    let mut kept_metrics = Vec::new();
    // In steps of 10 s, so memory holds one step's spans at a time before filtering.
    let mut t = start;
    let mut roots_before = std::collections::HashSet::new();
    while t < end {
        t = (t + 10_000).min(end);
        sim.advance_to(t, &mut spans, &mut metrics);
        for s in spans.drain(..) {
            if s.parent_span_id.is_none() && s.start_ns < measure_from_ns {
                roots_before.insert(s.trace_id);
            }
            kept.push(s);
        }
        kept_metrics.extend(metrics.drain(..).filter(|m| m.time_ns > measure_from_ns));
    }
    // A trace is measured if its root started after the warm-up and it ended in the run.
    let complete: std::collections::HashSet<u128> = kept
        .iter()
        .filter(|s| s.parent_span_id.is_none() && s.start_ns >= measure_from_ns)
        .map(|s| s.trace_id)
        .collect();
    kept.retain(|s| complete.contains(&s.trace_id) && !roots_before.contains(&s.trace_id));
    Ok((kept, kept_metrics))
}

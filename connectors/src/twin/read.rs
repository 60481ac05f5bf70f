//! Reading a directory's spans with augur's OTLP/JSON decoder, and splitting them in time
//! into the range a twin is fitted on and the held-back range it is checked against.
//!
//! In: a directory holding `traces.otlp.jsonl[.zst|.gz]`. Out: its spans (undecodable
//! records are counted and skipped), then two sets of whole traces. Keeps no state.

use std::collections::HashMap;
use std::path::Path;

use augur_operators::records::{MetricPoint, Resource, Span, SpanKind};

use super::TwinError;
use crate::files::{LineReader, find_input};
use crate::otlp::{MetricNames, decode_metrics_json, decode_traces_json};
use crate::simulator::{SpanShape, TelemetrySpec};

/// The spans of `dir`'s traces file and the number of records or lines that did not decode.
pub fn read_spans(dir: &Path) -> Result<(Vec<Span>, u64), TwinError> {
    let path = find_input(dir, "traces.otlp").map_err(TwinError::File)?;
    let mut reader = LineReader::open(&path).map_err(TwinError::File)?;
    let mut spans = Vec::new();
    let mut bad = 0u64;
    let mut line = Vec::new();
    while reader
        .next_line(&mut line)
        .map_err(TwinError::File)?
        .is_some()
    {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_traces_json(&line, &mut spans) {
            Ok(errors) => bad += errors.len() as u64,
            Err(_) => bad += 1,
        }
    }
    Ok((spans, bad))
}

/// What the telemetry looks like: calls as one span per hop when no span states a kind;
/// the metrics' sample interval (the median gap between consecutive samples of one
/// instance's resource) when `dirs` hold metrics, and which resources they measure (none
/// when `dirs` hold no metrics). Undecodable metric lines are skipped.
pub fn telemetry_of(spans: &[Span], dirs: &[&Path]) -> Result<TelemetrySpec, TwinError> {
    let names = MetricNames::default();
    let mut times = SampleTimes::default();
    let mut points: Vec<MetricPoint> = Vec::new();
    let mut line = Vec::new();
    for dir in dirs {
        let Ok(path) = find_input(dir, "metrics.otlp") else {
            continue;
        };
        let mut reader = LineReader::open(&path).map_err(TwinError::File)?;
        let mut rates = crate::otlp::Rates::default();
        while reader
            .next_line(&mut line)
            .map_err(TwinError::File)?
            .is_some()
        {
            points.clear();
            let Ok(decoded) = decode_metrics_json(&line, &names, &mut points) else {
                continue;
            };
            rates.extend(&decoded.cumulative, &mut points);
            points.iter().for_each(|p| times.add(p));
        }
    }
    Ok(times.telemetry(spans, !dirs.is_empty()))
}

/// [`telemetry_of`] from metric points already read (`None`: no metrics source at all, so
/// the simulator's own metrics).
pub fn telemetry_of_points(spans: &[Span], points: Option<&[MetricPoint]>) -> TelemetrySpec {
    let mut times = SampleTimes::default();
    points.into_iter().flatten().for_each(|p| times.add(p));
    times.telemetry(spans, points.is_some())
}

/// Sample times (ms) per instance and resource.
#[derive(Default)]
struct SampleTimes(HashMap<(String, String, Resource), Vec<u64>>);

impl SampleTimes {
    fn add(&mut self, p: &MetricPoint) {
        self.0
            .entry((p.service.clone(), p.instance.clone(), p.resource))
            .or_default()
            .push(p.time_ns / 1_000_000);
    }

    /// The telemetry spec; `read_metrics`: whether there was a metrics source (else the
    /// simulator's own metrics).
    fn telemetry(mut self, spans: &[Span], read_metrics: bool) -> TelemetrySpec {
        let kind_less = !spans.is_empty() && spans.iter().all(|s| s.kind == SpanKind::Unspecified);
        let mut gaps: Vec<u64> = Vec::new();
        for times in self.0.values_mut() {
            times.sort_unstable();
            times.dedup();
            gaps.extend(times.windows(2).map(|w| w[1] - w[0]));
        }
        gaps.sort_unstable();
        let mut resources: Vec<Resource> = self.0.keys().map(|k| k.2).collect();
        resources.sort();
        resources.dedup();
        TelemetrySpec {
            spans: if kind_less {
                SpanShape::OnePerHop
            } else {
                SpanShape::ClientServer
            },
            metrics_interval_ms: gaps.get(gaps.len() / 2).copied().filter(|&ms| ms > 0),
            // With inputs to read, what they hold; without, the simulator's own.
            metrics: read_metrics.then_some(resources),
        }
    }
}

/// Which part of a directory's time range to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The traces starting in the first `1 - holdout` of the range.
    Fit,
    /// The traces starting in the last `holdout` of the range.
    Check,
}

/// One part of the spans, as whole traces (a trace belongs to the part its first span
/// starts in), and the length of that part's time range, s.
pub fn split(spans: Vec<Span>, holdout: f64, part: Part) -> (Vec<Span>, f64) {
    let mut first: HashMap<u128, u64> = HashMap::new();
    for s in &spans {
        let e = first.entry(s.trace_id).or_insert(s.start_ns);
        *e = (*e).min(s.start_ns);
    }
    let (Some(&lo), Some(&hi)) = (first.values().min(), first.values().max()) else {
        return (Vec::new(), 0.0);
    };
    let cut = lo + ((hi - lo) as f64 * (1.0 - holdout.clamp(0.0, 1.0))) as u64;
    let keep = |start: u64| match part {
        Part::Fit => start < cut || holdout <= 0.0,
        Part::Check => start >= cut,
    };
    let duration_ns = match part {
        Part::Fit if holdout <= 0.0 => hi - lo,
        Part::Fit => cut - lo,
        Part::Check => hi - cut,
    };
    let kept = spans
        .into_iter()
        .filter(|s| first.get(&s.trace_id).is_some_and(|&t| keep(t)))
        .collect();
    (kept, duration_ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::records::SpanKind;

    /// One root span per trace, trace `t` starting at `t` seconds.
    fn traces(n: u64) -> Vec<Span> {
        (0..n)
            .map(|t| Span {
                trace_id: u128::from(t),
                span_id: t,
                parent_span_id: None,
                service: "a".into(),
                instance: "a-0".into(),
                kind: SpanKind::Server,
                name: "/x".into(),
                start_ns: t * 1_000_000_000,
                end_ns: t * 1_000_000_000 + 1_000_000,
                error: false,
                peer_service: None,
                version: None,
            })
            .collect()
    }

    #[test]
    fn the_parts_cover_the_range_and_a_full_holdout_checks_everything() {
        let (fit, fit_s) = split(traces(11), 0.2, Part::Fit);
        let (check, check_s) = split(traces(11), 0.2, Part::Check);
        assert_eq!((fit.len(), check.len()), (8, 3));
        assert_eq!((fit_s, check_s), (8.0, 2.0));
        let (all, all_s) = split(traces(11), 1.0, Part::Check);
        assert_eq!((all.len(), all_s), (11, 10.0));
        let (all, all_s) = split(traces(11), 0.0, Part::Fit);
        assert_eq!((all.len(), all_s), (11, 10.0));
    }
}

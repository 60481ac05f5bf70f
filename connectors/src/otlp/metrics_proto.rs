//! Protobuf `ExportMetricsServiceRequest` bytes → [`MetricPoint`]s, walking the wire format
//! directly. Gauge and sum number points of mapped metric names become points (a monotonic
//! delta sum as its rate, a monotonic cumulative one in [`MetricsDecoded::cumulative`]);
//! points of unmapped names, histograms and summaries are counted as ignored; bad points
//! are [`RecordError`]s. Malformed protobuf is a [`DecodeError`] and leaves `out` as it was.

use augur_operators::records::MetricPoint;

use super::error::DecodeError;
use super::metric_names::MetricNames;
use super::metrics::{Accumulation, MetricsDecoded, RawPoint, SeriesKey, route};
use super::view::ResourceAttrs;
use super::wire::{Fields, WireError, add_attr, resource_attrs, string_attr};

/// The deprecated field number of `ResourceMetrics.instrumentation_library_metrics`.
const INSTRUMENTATION_LIBRARY_METRICS: u32 = 1000;

/// Decodes one protobuf `ExportMetricsServiceRequest`; good points are appended to `out`.
pub fn decode_metrics_proto(
    bytes: &[u8],
    names: &MetricNames,
    out: &mut Vec<MetricPoint>,
) -> Result<MetricsDecoded, DecodeError> {
    let before = out.len();
    let mut d = MetricsDecoded::default();
    match request(bytes, names, out, &mut d) {
        Ok(()) => Ok(d),
        Err(e) => {
            out.truncate(before);
            Err(e.into())
        }
    }
}

fn request(
    bytes: &[u8],
    names: &MetricNames,
    out: &mut Vec<MetricPoint>,
    d: &mut MetricsDecoded,
) -> Result<(), WireError> {
    let mut f = Fields::new(bytes);
    while let Some((n, v)) = f.next()? {
        if n != 1 {
            continue;
        }
        let rm = v.bytes("resource_metrics")?;
        let mut res = ResourceAttrs::default();
        let mut rf = Fields::new(rm);
        while let Some((n, v)) = rf.next()? {
            if n == 1 {
                res = resource_attrs(v.bytes("ResourceMetrics.resource")?)?;
            }
        }
        let mut rf = Fields::new(rm);
        while let Some((n, v)) = rf.next()? {
            // 1000: `instrumentation_library_metrics` of OTLP 0.15–0.18 senders, laid out
            // as scope metrics are.
            if n != 2 && n != INSTRUMENTATION_LIBRARY_METRICS {
                continue;
            }
            let mut sf = Fields::new(v.bytes("ResourceMetrics.scope_metrics")?);
            while let Some((n, v)) = sf.next()? {
                if n == 2 {
                    metric(v.bytes("ScopeMetrics.metrics")?, &res, names, out, d)?;
                }
            }
        }
    }
    Ok(())
}

fn metric(
    m: &[u8],
    res: &ResourceAttrs<'_>,
    names: &MetricNames,
    out: &mut Vec<MetricPoint>,
    d: &mut MetricsDecoded,
) -> Result<(), WireError> {
    let mut name = "";
    let mut f = Fields::new(m);
    while let Some((n, v)) = f.next()? {
        if n == 1 {
            name = v.str("Metric.name")?;
        }
    }
    let resource = names.resource(name);
    let mut f = Fields::new(m);
    while let Some((n, v)) = f.next()? {
        match (n, resource) {
            // gauge, sum of a mapped name
            (5 | 7, Some(resource)) => {
                let data = v.bytes("Metric.data")?;
                let accumulation = if n == 7 {
                    let (mut temporality, mut monotonic) = (0, false);
                    let mut sf = Fields::new(data);
                    while let Some((n, v)) = sf.next()? {
                        match n {
                            2 => temporality = v.varint("Sum.aggregation_temporality")?,
                            3 => monotonic = v.varint("Sum.is_monotonic")? != 0,
                            _ => {}
                        }
                    }
                    Accumulation::of_sum(temporality, monotonic)
                } else {
                    Accumulation::Level
                };
                let mut pf = Fields::new(data);
                while let Some((n, v)) = pf.next()? {
                    if n == 1 {
                        let (raw, pattrs, start_ns, series) =
                            point(v.bytes("data_points")?, name, resource)?;
                        match raw.validate(res, &pattrs, d.errors.len()) {
                            Ok(p) => route(name, p, accumulation, start_ns, series, out, d),
                            Err(e) => d.errors.push(e),
                        }
                    }
                }
            }
            // gauge or sum of an unmapped name; histogram, exponential histogram, summary
            (5 | 7, None) | (9..=11, _) => {
                let mut pf = Fields::new(v.bytes("Metric.data")?);
                let mut points = 0;
                while let Some((n, _)) = pf.next()? {
                    if n == 1 {
                        points += 1;
                    }
                }
                d.ignore(name, points);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A data point: its raw value, identity attributes, start time and series.
fn point<'a>(
    p: &'a [u8],
    metric: &'a str,
    resource: augur_operators::records::Resource,
) -> Result<(RawPoint<'a>, ResourceAttrs<'a>, u64, SeriesKey), WireError> {
    let mut raw = RawPoint {
        metric,
        resource,
        time_ns: 0,
        value: None,
    };
    let mut attrs = ResourceAttrs::default();
    let mut start_ns = 0;
    let mut series = SeriesKey::of_metric(metric);
    let mut f = Fields::new(p);
    while let Some((n, v)) = f.next()? {
        match n {
            2 => start_ns = v.fixed64("NumberDataPoint.start_time_unix_nano")?,
            3 => raw.time_ns = v.fixed64("NumberDataPoint.time_unix_nano")?,
            4 => raw.value = Some(f64::from_bits(v.fixed64("NumberDataPoint.as_double")?)),
            6 => raw.value = Some(v.fixed64("NumberDataPoint.as_int")? as i64 as f64),
            7 => {
                let kv = v.bytes("NumberDataPoint.attributes")?;
                if let (key, Some(value)) = string_attr(kv)? {
                    series.attr(key, value);
                }
                add_attr(&mut attrs, kv)?;
            }
            _ => {}
        }
    }
    Ok((raw, attrs, start_ns, series))
}

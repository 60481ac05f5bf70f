//! OTLP/JSON `ExportMetricsServiceRequest` (one Collector file-exporter line or Kafka
//! message) → [`MetricPoint`]s. Gauge and sum number points (`asDouble`, or `asInt` as a
//! string or number) of mapped names become points (a monotonic delta sum as its rate, a
//! monotonic cumulative one in [`MetricsDecoded::cumulative`]); points of unmapped names,
//! histograms and summaries are counted as ignored; bad points are [`RecordError`]s
//! (in [`MetricsDecoded`]). JSON that isn't an export request is a [`DecodeError`].

use augur_operators::records::MetricPoint;
use serde::Deserialize;

use super::error::{DecodeError, not_an_export};
use super::json_model::{Count, F64, I64, PointAttrs, Str, Temporality, U64};
use super::metric_names::MetricNames;
use super::metrics::{Accumulation, MetricsDecoded, RawPoint, route};
use super::traces_json::Resource;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow, default, alias = "resource_metrics")]
    resource_metrics: Option<Vec<ResourceMetrics<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceMetrics<'a> {
    #[serde(borrow, default)]
    resource: Option<Resource<'a>>,
    // Exports before OTLP 0.15 name the scopes instrumentation libraries.
    #[serde(
        borrow,
        default,
        alias = "scope_metrics",
        alias = "instrumentationLibraryMetrics",
        alias = "instrumentation_library_metrics"
    )]
    scope_metrics: Option<Vec<ScopeMetrics<'a>>>,
}

#[derive(Deserialize)]
struct ScopeMetrics<'a> {
    #[serde(borrow, default)]
    metrics: Option<Vec<Metric<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metric<'a> {
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    gauge: Option<Numbers<'a>>,
    #[serde(borrow, default)]
    sum: Option<Numbers<'a>>,
    #[serde(default)]
    histogram: Option<Counted>,
    #[serde(default, alias = "exponential_histogram")]
    exponential_histogram: Option<Counted>,
    #[serde(default)]
    summary: Option<Counted>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Numbers<'a> {
    #[serde(borrow, default, alias = "data_points")]
    data_points: Option<Vec<NumberPoint<'a>>>,
    #[serde(default, alias = "aggregation_temporality")]
    aggregation_temporality: Option<Temporality>,
    #[serde(default, alias = "is_monotonic")]
    is_monotonic: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counted {
    #[serde(default, alias = "data_points")]
    data_points: Count,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NumberPoint<'a> {
    #[serde(borrow, default)]
    attributes: PointAttrs<'a>,
    #[serde(default, alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<U64>,
    #[serde(default, alias = "time_unix_nano")]
    time_unix_nano: Option<U64>,
    #[serde(default, alias = "as_double")]
    as_double: Option<F64>,
    #[serde(default, alias = "as_int")]
    as_int: Option<I64>,
}

/// Decodes one OTLP/JSON `ExportMetricsServiceRequest`; good points are appended to `out`.
pub fn decode_metrics_json(
    bytes: &[u8],
    names: &MetricNames,
    out: &mut Vec<MetricPoint>,
) -> Result<MetricsDecoded, DecodeError> {
    let req: Request<'_> = serde_json::from_slice(bytes)?;
    let Some(resource_metrics) = req.resource_metrics else {
        // `{}` is an empty request (proto3 JSON leaves out empty lists); other keys alone
        // are another format.
        not_an_export(bytes, "ExportMetricsServiceRequest", "resourceMetrics")?;
        return Ok(MetricsDecoded::default());
    };
    let mut d = MetricsDecoded::default();
    for rm in &resource_metrics {
        let res = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.resource())
            .unwrap_or_default();
        for m in rm
            .scope_metrics
            .iter()
            .flatten()
            .flat_map(|sm| sm.metrics.iter().flatten())
        {
            let name = m.name.as_ref().map_or("", Str::as_str);
            for c in [&m.histogram, &m.exponential_histogram, &m.summary]
                .into_iter()
                .flatten()
            {
                d.ignore(name, c.data_points.0);
            }
            let resource = names.resource(name);
            let sum = m.sum.as_ref().map(|n| {
                let accumulation = Accumulation::of_sum(
                    n.aggregation_temporality.unwrap_or_default().0,
                    n.is_monotonic.unwrap_or(false),
                );
                (n, accumulation)
            });
            for (p, accumulation) in m
                .gauge
                .as_ref()
                .map(|n| (n, Accumulation::Level))
                .into_iter()
                .chain(sum)
                .flat_map(|(n, a)| n.data_points.iter().flatten().map(move |p| (p, a)))
            {
                let Some(resource) = resource else {
                    d.ignore(name, 1);
                    continue;
                };
                let raw = RawPoint {
                    metric: name,
                    resource,
                    time_ns: p.time_unix_nano.unwrap_or_default().0,
                    value: p.as_double.map(|v| v.0).or(p.as_int.map(|i| i.0 as f64)),
                };
                match raw.validate(&res, &p.attributes.attrs.resource(), d.errors.len()) {
                    Ok(mp) => {
                        let start_ns = p.start_time_unix_nano.unwrap_or_default().0;
                        let series = p.attributes.series.named(name);
                        route(name, mp, accumulation, start_ns, series, out, &mut d);
                    }
                    Err(e) => d.errors.push(e),
                }
            }
        }
    }
    Ok(d)
}

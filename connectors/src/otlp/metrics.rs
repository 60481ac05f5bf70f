//! Metric points ↔ OTLP metric export requests: the validation of one number data point
//! shared by the decoders, decoding from a prost `ExportMetricsServiceRequest`, and encoding
//! [`MetricPoint`]s as double gauges (one `ResourceMetrics` per `(service, instance)`) into a
//! request, its protobuf bytes, or one OTLP/JSON line.

use augur_operators::records::{MetricPoint, Resource};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1 as otlp;
use prost::Message;

use super::error::{RECORD_CONTEXTS, RecordError};
use super::group::by_resource;
use super::json_write::{push_f64, push_str, push_str_truncated, push_u64_str};
use super::metric_names::MetricNames;
use super::rates::CumulativePoint;
use super::traces::{SCOPE_NAME, otlp_resource, otlp_scope, push_json_resource, resource_attrs};
use super::view::ResourceAttrs;

/// What a metrics request held besides the good points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsDecoded {
    /// Data points that failed validation.
    pub errors: Vec<RecordError>,
    /// Data points of metrics whose names aren't mapped, or of histograms and summaries,
    /// or delta sums without a start time: normal, counted, not errors.
    pub ignored: u64,
    /// Points of monotonic cumulative sums (counters): a rate needs the series' previous
    /// point, which [`super::Rates`] keeps.
    pub cumulative: Vec<CumulativePoint>,
    /// The names of the metrics whose points were ignored (unmapped names, histograms,
    /// summaries), each with its points, so a job can list what it does not read.
    pub ignored_names: Vec<(String, u64)>,
}

impl MetricsDecoded {
    /// Counts `points` points of `name` as ignored.
    pub(crate) fn ignore(&mut self, name: &str, points: u64) {
        if points == 0 {
            return;
        }
        self.ignored += points;
        match self.ignored_names.iter_mut().find(|(n, _)| n == name) {
            Some((_, n)) => *n += points,
            None => self.ignored_names.push((name.to_owned(), points)),
        }
    }
}

/// How a number data point's value reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Accumulation {
    /// A level (gauges, and sums that go up and down): the value is the sample.
    #[default]
    Level,
    /// A monotonic cumulative sum: the total since the point's start time.
    Cumulative,
    /// A monotonic delta sum: the increase since the point's start time.
    Delta,
}

impl Accumulation {
    /// A sum's, from its `aggregation_temporality` (1 delta, 2 cumulative) and
    /// `is_monotonic`.
    pub fn of_sum(temporality: u64, monotonic: bool) -> Self {
        match (temporality, monotonic) {
            (1, true) => Accumulation::Delta,
            (2, true) => Accumulation::Cumulative,
            _ => Accumulation::Level,
        }
    }
}

/// What sets one series of a metric apart from the others of the same service and instance:
/// its name and the point's string attributes, in any order.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SeriesKey(u64);

impl SeriesKey {
    pub fn of_metric(name: &str) -> Self {
        SeriesKey(hash_of(&("metric", name)))
    }

    /// This key (of a point's attributes alone) with the metric's name.
    pub fn named(self, name: &str) -> Self {
        let mut key = SeriesKey::of_metric(name);
        key.0 = key.0.wrapping_add(self.0);
        key
    }

    /// Adds one attribute (order does not matter).
    pub fn attr(&mut self, key: &[u8], value: &[u8]) {
        self.0 = self.0.wrapping_add(hash_of(&(key, value)));
    }
}

fn hash_of(x: &impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(x)
}

/// Where a validated point of `metric` goes: a level into `out`; a counter's total to
/// `d.cumulative`; a delta as its rate since `start_ns` (ignored without one).
pub(crate) fn route(
    metric: &str,
    point: MetricPoint,
    accumulation: Accumulation,
    start_ns: u64,
    series: SeriesKey,
    out: &mut Vec<MetricPoint>,
    d: &mut MetricsDecoded,
) {
    match accumulation {
        Accumulation::Level => out.push(point),
        Accumulation::Cumulative => d.cumulative.push(CumulativePoint {
            point,
            series: series.0,
            start_ns,
        }),
        Accumulation::Delta if start_ns > 0 && start_ns < point.time_ns => {
            let seconds = (point.time_ns - start_ns) as f64 / 1e9;
            out.push(MetricPoint {
                value: point.value / seconds,
                ..point
            });
        }
        Accumulation::Delta => d.ignore(metric, 1),
    }
}

/// One number data point as found on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawPoint<'a> {
    pub metric: &'a str,
    pub resource: Resource,
    pub time_ns: u64,
    pub value: Option<f64>,
}

impl RawPoint<'_> {
    /// Validates the point: identity from the point's own attributes when they name a
    /// service, workload or pod (the Prometheus receiver's `pod` label of cAdvisor metrics,
    /// whose resource is the scrape job) and give a service, else from the resource's; a
    /// time; a finite value. A rejection has the point's context when `rejected` (the
    /// message's so far) is below [`RECORD_CONTEXTS`].
    pub fn validate(
        &self,
        res: &ResourceAttrs<'_>,
        point: &ResourceAttrs<'_>,
        rejected: usize,
    ) -> Result<MetricPoint, RecordError> {
        // A point that names what it describes has a resource that is who reported it (a
        // scrape job), whose host stays only as the instance of last resort; unless the
        // point's names give no service (a pod name of no deployment's shape).
        let own = point
            .names_workload()
            .then(|| {
                point.or(ResourceAttrs {
                    host: res.host,
                    ..ResourceAttrs::default()
                })
            })
            .filter(|own| own.identity().is_some());
        let attrs = own.unwrap_or_else(|| res.or(*point));
        let identity = attrs.identity();
        let reason = match (identity, attrs.too_long(), self.value) {
            (None, _, _) => "missing service.name".to_owned(),
            (_, Some(too_long), _) => too_long,
            _ if self.time_ns == 0 => "missing time (timeUnixNano is 0)".to_owned(),
            (_, _, None) => "data point has no value".to_owned(),
            (_, _, Some(v)) if !v.is_finite() => format!("value {v} is not finite"),
            (Some((service, instance)), None, Some(value)) => {
                return Ok(MetricPoint {
                    service: service.to_owned(),
                    instance: instance.to_owned(),
                    resource: self.resource,
                    time_ns: self.time_ns,
                    value,
                });
            }
        };
        if rejected >= RECORD_CONTEXTS {
            return Err(RecordError {
                reason,
                record: String::new(),
            });
        }
        let mut record = String::with_capacity(128);
        record.push_str("{\"metric\":");
        push_str_truncated(&mut record, self.metric, 256);
        if let Some((service, instance)) = identity {
            record.push_str(",\"service\":");
            push_str_truncated(&mut record, service, 64);
            record.push_str(",\"instance\":");
            push_str_truncated(&mut record, instance, 64);
        }
        record.push_str(",\"timeUnixNano\":");
        push_u64_str(&mut record, self.time_ns);
        if let Some(v) = self.value {
            record.push_str(",\"value\":");
            push_f64(&mut record, v);
        }
        record.push('}');
        Err(RecordError { reason, record })
    }
}

/// Decodes an already-parsed request: good points are appended to `out`.
pub fn decode_metrics(
    req: &ExportMetricsServiceRequest,
    names: &MetricNames,
    out: &mut Vec<MetricPoint>,
) -> MetricsDecoded {
    let mut d = MetricsDecoded::default();
    for rm in &req.resource_metrics {
        let res = resource_attrs(rm.resource.as_ref());
        for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
            let (points, accumulation) = match &m.data {
                Some(otlp::metric::Data::Gauge(g)) => (&g.data_points, Accumulation::Level),
                Some(otlp::metric::Data::Sum(s)) => (
                    &s.data_points,
                    Accumulation::of_sum(s.aggregation_temporality as u64, s.is_monotonic),
                ),
                Some(otlp::metric::Data::Histogram(h)) => {
                    d.ignore(&m.name, h.data_points.len() as u64);
                    continue;
                }
                Some(otlp::metric::Data::ExponentialHistogram(h)) => {
                    d.ignore(&m.name, h.data_points.len() as u64);
                    continue;
                }
                Some(otlp::metric::Data::Summary(s)) => {
                    d.ignore(&m.name, s.data_points.len() as u64);
                    continue;
                }
                None => continue,
            };
            let Some(resource) = names.resource(&m.name) else {
                d.ignore(&m.name, points.len() as u64);
                continue;
            };
            for p in points {
                let mut pattrs = ResourceAttrs::default();
                let mut series = SeriesKey::of_metric(&m.name);
                for kv in &p.attributes {
                    if let Some(any_value::Value::StringValue(v)) =
                        kv.value.as_ref().and_then(|v| v.value.as_ref())
                    {
                        pattrs.set(&kv.key, v);
                        series.attr(kv.key.as_bytes(), v.as_bytes());
                    }
                }
                let raw = RawPoint {
                    metric: &m.name,
                    resource,
                    time_ns: p.time_unix_nano,
                    value: p.value.map(|v| match v {
                        otlp::number_data_point::Value::AsDouble(x) => x,
                        otlp::number_data_point::Value::AsInt(i) => i as f64,
                    }),
                };
                match raw.validate(&res, &pattrs, d.errors.len()) {
                    Ok(mp) => route(
                        &m.name,
                        mp,
                        accumulation,
                        p.start_time_unix_nano,
                        series,
                        out,
                        &mut d,
                    ),
                    Err(e) => d.errors.push(e),
                }
            }
        }
    }
    d
}

/// Groups one resource's points by [`Resource`], in order of first appearance.
fn by_metric<'a>(points: &[&'a MetricPoint]) -> Vec<(Resource, Vec<&'a MetricPoint>)> {
    let mut groups: Vec<(Resource, Vec<&'a MetricPoint>)> = Vec::new();
    for &p in points {
        match groups.iter_mut().find(|(r, _)| *r == p.resource) {
            Some((_, g)) => g.push(p),
            None => groups.push((p.resource, vec![p])),
        }
    }
    groups
}

/// Encodes points as one request of double gauges named by [`MetricNames::canonical`], one
/// `ResourceMetrics` per `(service, instance)` with `service.name` and `service.instance.id`.
pub fn encode_metrics(points: &[MetricPoint]) -> ExportMetricsServiceRequest {
    let resource_metrics = by_resource(points, |p| (p.service.as_str(), p.instance.as_str()))
        .into_iter()
        .map(|((service, instance), group)| otlp::ResourceMetrics {
            resource: Some(otlp_resource(service, instance, None)),
            scope_metrics: vec![otlp::ScopeMetrics {
                scope: Some(otlp_scope()),
                metrics: by_metric(&group)
                    .into_iter()
                    .map(|(r, ps)| otlp::Metric {
                        name: MetricNames::canonical(r).to_owned(),
                        data: Some(otlp::metric::Data::Gauge(otlp::Gauge {
                            data_points: ps
                                .into_iter()
                                .map(|p| otlp::NumberDataPoint {
                                    time_unix_nano: p.time_ns,
                                    value: Some(otlp::number_data_point::Value::AsDouble(p.value)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// Encodes points as protobuf `ExportMetricsServiceRequest` bytes (see [`encode_metrics`]).
pub fn encode_metrics_proto(points: &[MetricPoint]) -> Vec<u8> {
    encode_metrics(points).encode_to_vec()
}

/// Encodes points as one OTLP/JSON line (no trailing newline), Collector file-exporter shape.
pub fn encode_metrics_json(points: &[MetricPoint]) -> String {
    let mut out = String::with_capacity(64 + points.len() * 80);
    out.push_str("{\"resourceMetrics\":[");
    for (i, ((service, instance), group)) in
        by_resource(points, |p| (p.service.as_str(), p.instance.as_str()))
            .into_iter()
            .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        push_json_resource(&mut out, service, instance, None);
        out.push_str(",\"scopeMetrics\":[{\"scope\":{\"name\":\"");
        out.push_str(SCOPE_NAME);
        out.push_str("\"},\"metrics\":[");
        for (j, (r, ps)) in by_metric(&group).into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            push_str(&mut out, MetricNames::canonical(r));
            out.push_str(",\"gauge\":{\"dataPoints\":[");
            for (k, p) in ps.into_iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                out.push_str("{\"timeUnixNano\":");
                push_u64_str(&mut out, p.time_ns);
                out.push_str(",\"asDouble\":");
                push_f64(&mut out, p.value);
                out.push('}');
            }
            out.push_str("]}}");
        }
        out.push_str("]}]}");
    }
    out.push_str("]}");
    out
}

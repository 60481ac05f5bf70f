//! Job metrics in the Prometheus text format: in, counts from the sources, sinks and main
//! thread (records in/out per topic, decode errors, dead letters, late records, consumer
//! lag per partition, window-close→alert latency, windows open, inference time per window
//! and detector, windows each detector had no model for); out, `/metrics` over HTTP
//! on a local address. State: the counters, behind one mutex (updated per batch, not per
//! record) and a few atomics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use augur_connectors::kafka::KafkaMetrics;
use serde::{Deserialize, Serialize};

use crate::stats::JobStats;

/// Bucket upper bounds of the alert latency histogram, seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct JobMetrics {
    records_in: Mutex<BTreeMap<String, u64>>,
    records_out: Mutex<BTreeMap<String, u64>>,
    /// (topic, partition) → lag in messages.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    latency: Mutex<([u64; LATENCY_BUCKETS.len()], u64, f64)>,
    pub windows_open: AtomicU64,
}

impl JobMetrics {
    pub fn records_in(&self, topic: &str, n: u64) {
        if let Ok(mut m) = self.records_in.lock() {
            *m.entry(topic.to_string()).or_default() += n;
        }
    }

    pub fn record_out(&self, topic: &str) {
        if let Ok(mut m) = self.records_out.lock() {
            *m.entry(topic.to_string()).or_default() += 1;
        }
    }

    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        if let Ok(mut m) = self.lag.lock() {
            m.insert((topic.to_string(), partition), lag);
        }
    }

    pub fn alert_latency(&self, seconds: f64) {
        if let Ok(mut h) = self.latency.lock() {
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.0[i] += 1;
                }
            }
            h.1 += 1;
            h.2 += seconds;
        }
    }

    /// The Prometheus text exposition of everything, with the job's counters.
    pub fn render(&self, stats: &JobStats) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let per_topic =
            |out: &mut String, name: &str, help: &str, m: &Mutex<BTreeMap<String, u64>>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                if let Ok(m) = m.lock() {
                    for (topic, v) in m.iter() {
                        let _ = writeln!(out, "{name}{{topic=\"{}\"}} {v}", escape(topic));
                    }
                }
            };
        per_topic(
            &mut out,
            "augur_records_in_total",
            "Messages read per topic.",
            &self.records_in,
        );
        per_topic(
            &mut out,
            "augur_records_out_total",
            "Messages written per topic.",
            &self.records_out,
        );
        counter(
            &mut out,
            "augur_spans_total",
            "Spans decoded.",
            JobStats::get(&stats.spans),
        );
        let _ = writeln!(
            out,
            "# HELP augur_spans_by_kind_total Spans decoded, by span kind (all unspecified: kind-less instrumentation).\n# TYPE augur_spans_by_kind_total counter"
        );
        for (kind, n) in stats.span_kind_counts() {
            let _ = writeln!(out, "augur_spans_by_kind_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP augur_metric_points_ignored_total Metric points not read, by metric name (not mapped to a resource, histograms, summaries; at most 100 names).\n# TYPE augur_metric_points_ignored_total counter"
        );
        if let Ok(m) = stats.ignored_metrics.lock() {
            for (name, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "augur_metric_points_ignored_total{{metric=\"{}\"}} {n}",
                    escape(name)
                );
            }
        }
        counter(
            &mut out,
            "augur_log_records_total",
            "Log records decoded.",
            JobStats::get(&stats.log_records),
        );
        counter(
            &mut out,
            "augur_metric_points_total",
            "Metric points decoded.",
            JobStats::get(&stats.metric_points),
        );
        counter(
            &mut out,
            "augur_decode_errors_total",
            "Messages or records that failed to decode or validate.",
            JobStats::get(&stats.decode_errors),
        );
        counter(
            &mut out,
            "augur_dead_letters_total",
            "Dead letters (decode errors, empty messages, messages with late or future-dated records).",
            JobStats::get(&stats.dead_letters),
        );
        counter(
            &mut out,
            "augur_empty_messages_total",
            "Empty messages.",
            JobStats::get(&stats.empty),
        );
        counter(
            &mut out,
            "augur_late_records_total",
            "Records that arrived after their window closed.",
            JobStats::get(&stats.late),
        );
        counter(
            &mut out,
            "augur_future_records_total",
            "Records dated more than max_future_ms after the wall clock.",
            JobStats::get(&stats.future),
        );
        let _ = writeln!(
            out,
            "# HELP augur_consumer_lag Messages between the consumer position and the partition end.\n# TYPE augur_consumer_lag gauge"
        );
        if let Ok(m) = self.lag.lock() {
            for ((topic, partition), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "augur_consumer_lag{{topic=\"{}\",partition=\"{partition}\"}} {v}",
                    escape(topic)
                );
            }
        }
        counter(
            &mut out,
            "augur_job_restarts_total",
            "Times the job process was started again after it died (`[restart]`).",
            crate::commands::supervise::restarts_so_far(),
        );
        let _ = writeln!(
            out,
            "# HELP augur_windows_open Windows the sources have opened and the job has not yet emitted.\n# TYPE augur_windows_open gauge\naugur_windows_open {}",
            self.windows_open.load(Ordering::Relaxed)
        );
        // Event time below which every window's outputs are acknowledged by the broker (the
        // frontier offsets are committed by, less `restart_replay_ms`).
        let durable = JobStats::get(&stats.durable);
        let _ = writeln!(
            out,
            "# HELP augur_durable_frontier_seconds Event time (Unix seconds) before which every window's outputs are acknowledged.\n# TYPE augur_durable_frontier_seconds gauge\naugur_durable_frontier_seconds {}",
            if durable == u64::MAX {
                "+Inf".to_string()
            } else {
                format!("{:.3}", durable as f64 / 1000.0)
            }
        );
        let _ = writeln!(
            out,
            "# HELP augur_alert_latency_seconds Window close to alert delivery.\n# TYPE augur_alert_latency_seconds histogram"
        );
        if let Ok(h) = self.latency.lock() {
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "augur_alert_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                    h.0[i]
                );
            }
            let _ = writeln!(
                out,
                "augur_alert_latency_seconds_bucket{{le=\"+Inf\"}} {}\naugur_alert_latency_seconds_sum {}\naugur_alert_latency_seconds_count {}",
                h.1, h.2, h.1
            );
        }
        let inference = stats.inference.snapshot();
        let _ = writeln!(
            out,
            "# HELP augur_detector_unserved_windows_total Windows a detector had no model for (e.g. no checkpoint matching the services); its log says why.\n# TYPE augur_detector_unserved_windows_total counter"
        );
        for (detector, times) in &inference {
            let _ = writeln!(
                out,
                "augur_detector_unserved_windows_total{{detector=\"{}\"}} {}",
                escape(detector),
                times.unserved_windows
            );
        }
        let _ = writeln!(
            out,
            "# HELP augur_inference_seconds Model inference time per window, per detector (on the model workers' inference threads).\n# TYPE augur_inference_seconds summary"
        );
        for (detector, times) in inference {
            let d = escape(&detector);
            for q in [0.5, 0.99] {
                let _ = writeln!(
                    out,
                    "augur_inference_seconds{{detector=\"{d}\",quantile=\"{q}\"}} {}",
                    times.percentile_ms(q * 100.0) / 1000.0
                );
            }
            let _ = writeln!(
                out,
                "augur_inference_seconds_sum{{detector=\"{d}\"}} {}\naugur_inference_seconds_count{{detector=\"{d}\"}} {}",
                times.total_ms / 1000.0,
                times.windows
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Serves `GET /metrics` on `addr` from a background thread; returns the bound address.
pub fn serve(
    addr: &str,
    metrics: Arc<JobMetrics>,
    stats: Arc<JobStats>,
) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("binding the metrics endpoint {addr}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("augur-metrics".to_string())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /metrics") {
                    ("200 OK", metrics.render(&stats))
                } else {
                    ("404 Not Found", "see /metrics\n".to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })
        .context("starting the metrics thread")?;
    Ok(bound)
}

/// `[job_metrics]`: the Prometheus endpoint of `augur run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobMetricsConfig {
    /// Address of `GET /metrics`; empty disables it. Default `127.0.0.1:9464`.
    pub listen: String,
}

impl Default for JobMetricsConfig {
    fn default() -> Self {
        JobMetricsConfig {
            listen: "127.0.0.1:9464".to_string(),
        }
    }
}

impl KafkaMetrics for JobMetrics {
    fn records_in(&self, topic: &str, n: u64) {
        JobMetrics::records_in(self, topic, n);
    }

    fn record_out(&self, topic: &str) {
        JobMetrics::record_out(self, topic);
    }

    fn lag(&self, topic: &str, partition: i32, lag: i64) {
        JobMetrics::lag(self, topic, partition, lag);
    }

    fn windows_open(&self, windows: u64) {
        self.windows_open.store(windows, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_serves_prometheus_text() {
        let metrics = Arc::new(JobMetrics::default());
        let stats = Arc::new(JobStats::default());
        metrics.records_in("otlp_spans", 7);
        metrics.record_out("augur.alerts");
        metrics.lag("otlp_spans", 1, 42);
        metrics.alert_latency(0.03);
        JobStats::add(&stats.late, 2);
        JobStats::add(&stats.decode_errors, 3);
        JobStats::add(&stats.dead_letters, 5);
        stats.inference.record("seer", 2, 4.0);
        stats.inference.record("sage", 3, 1.0);
        stats.inference.note("sage", "4", 3);
        let addr = serve("127.0.0.1:0", Arc::clone(&metrics), stats).expect("serves");
        let mut conn = std::net::TcpStream::connect(addr).expect("connects");
        write!(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("writes");
        let mut body = String::new();
        conn.read_to_string(&mut body).expect("reads");
        assert!(
            body.contains("augur_records_in_total{topic=\"otlp_spans\"} 7"),
            "{body}"
        );
        assert!(
            body.contains("augur_records_out_total{topic=\"augur.alerts\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("augur_consumer_lag{topic=\"otlp_spans\",partition=\"1\"} 42"),
            "{body}"
        );
        assert!(body.contains("augur_late_records_total 2"), "{body}");
        assert!(
            body.contains("augur_inference_seconds{detector=\"seer\",quantile=\"0.5\"} 0.004"),
            "{body}"
        );
        assert!(
            body.contains("augur_detector_unserved_windows_total{detector=\"sage\"} 3"),
            "{body}"
        );
        assert!(
            body.contains("augur_inference_seconds_count{detector=\"seer\"} 2"),
            "{body}"
        );
        assert!(body.contains("augur_decode_errors_total 3"), "{body}");
        assert!(
            body.contains("augur_alert_latency_seconds_bucket{le=\"0.05\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("augur_alert_latency_seconds_bucket{le=\"0.025\"} 0"),
            "{body}"
        );
    }
}

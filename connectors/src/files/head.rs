//! The services a recorded directory names in its first lines: a cheap look at an input
//! before it is replayed, to choose what the replay needs (the learned normal of the
//! application) without reading it twice.

use std::collections::BTreeSet;
use std::path::Path;

use super::lines::{FileError, LineReader};
use super::signal::Signal;
use super::source::input_files;
use crate::otlp::{MetricNames, decode_logs_json, decode_metrics_json, decode_traces_json};

/// The `service.name`s of the spans, metric points (of the metrics `names` reads) and log
/// records in the first `lines` lines of each of the input's files (each line read as the
/// signal it holds). An input with none of them is an error; lines that don't decode are
/// skipped, and a file that can't be read further (a truncated compressed file) is read up
/// to there: the replay itself counts them and sends them to the dead letters, or fails
/// saying why.
pub fn services_in_head(
    input: &Path,
    lines: usize,
    names: &MetricNames,
) -> Result<BTreeSet<String>, FileError> {
    let files = input_files(input)?;
    let mut services = BTreeSet::new();
    let (mut line, mut spans, mut points, mut records) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (default, path) in [
        (Signal::Traces, &files.traces),
        (Signal::Metrics, &files.metrics),
        (Signal::Logs, &files.logs),
        (Signal::Traces, &files.single),
    ] {
        let Some(Ok(mut reader)) = path.as_deref().map(LineReader::open) else {
            continue;
        };
        for _ in 0..lines {
            match reader.next_line(&mut line) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
            match Signal::of_line(&line, default) {
                Signal::Traces => {
                    let _ = decode_traces_json(&line, &mut spans);
                    services.extend(spans.drain(..).map(|s| s.service));
                }
                Signal::Metrics => {
                    let _ = decode_metrics_json(&line, names, &mut points);
                    services.extend(points.drain(..).map(|p| p.service));
                }
                Signal::Logs => {
                    let _ = decode_logs_json(&line, &mut records);
                    services.extend(records.drain(..).map(|r| r.service));
                }
            }
        }
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_of_the_first_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let span = |service: &str| {
            format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"op","kind":2,"startTimeUnixNano":"1000000000","endTimeUnixNano":"1002000000"}}]}}]}}]}}"#
            )
        };
        let traces = [span("a"), "not json".to_string(), span("b"), span("c")].join("\n");
        std::fs::write(dir.path().join("traces.otlp.jsonl"), traces).unwrap();
        let gauge = |service: &str, metric: &str| {
            format!(
                r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"{metric}","gauge":{{"dataPoints":[{{"timeUnixNano":"1000000000","asDouble":0.5}}]}}}}]}}]}}]}}"#
            )
        };
        let metrics = [
            gauge("m", "container.cpu.utilization"),
            gauge("unread", "no.such.metric"),
        ];
        std::fs::write(dir.path().join("metrics.otlp.jsonl"), metrics.join("\n")).unwrap();
        let log = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"l"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1000000000","body":{"stringValue":"hi"}}]}]}]}"#;
        std::fs::write(dir.path().join("logs.otlp.jsonl"), log).unwrap();
        let names = MetricNames::default();
        let seen = services_in_head(dir.path(), 3, &names).unwrap();
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["a", "b", "l", "m"].map(String::from)
        );
        assert!(services_in_head(&dir.path().join("missing"), 3, &names).is_err());

        // No tracing: the metrics' services.
        let untraced = tempfile::tempdir().unwrap();
        std::fs::write(
            untraced.path().join("metrics.otlp.jsonl"),
            metrics.join("\n"),
        )
        .unwrap();
        let seen = services_in_head(untraced.path(), 3, &names).unwrap();
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["m"].map(String::from)
        );

        // A compressed traces file cut off after its first lines (the Collector stopped
        // mid-frame): what was read counts.
        let cut = tempfile::tempdir().unwrap();
        let mut packed = zstd::encode_all(format!("{}\n", span("a")).as_bytes(), 3).unwrap();
        let rest = zstd::encode_all(span("b").repeat(50).as_bytes(), 3).unwrap();
        packed.extend_from_slice(&rest[..rest.len() / 2]);
        std::fs::write(cut.path().join("traces.otlp.jsonl.zst"), &packed).unwrap();
        std::fs::write(cut.path().join("metrics.otlp.jsonl"), "").unwrap();
        let seen = services_in_head(cut.path(), 100, &names).unwrap();
        assert!(seen.contains("a"), "{seen:?}");
    }
}

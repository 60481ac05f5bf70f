//! Readable one-line rendering of alerts and windows for terminals.

use augur_operators::{Alert, AlertKind, WindowSnapshot, decide::rfc3339};

/// `HH:MM:SS.mmm` of an event time.
pub fn clock(t_ms: u64) -> String {
    let stamp = rfc3339(t_ms);
    stamp.get(11..23).unwrap_or(&stamp).to_string()
}

/// The first `shown` of `items`, comma-separated, then `and N more` for the rest.
pub fn listed<S: AsRef<str>>(items: &[S], shown: usize) -> String {
    let head: Vec<&str> = items.iter().take(shown).map(AsRef::as_ref).collect();
    let more = items.len().saturating_sub(shown);
    if more > 0 {
        format!("{} and {more} more", head.join(", "))
    } else {
        head.join(", ")
    }
}

/// An error and its causes on one line, `outer: cause: …`, each cause once: errors that
/// already end with their cause's text (`cannot read config F: No such file …`, whose
/// source is that io error) don't repeat it, nor does a cause that begins with the path
/// (or name) the line ends with (`replaying D` then `D: no such directory`).
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        let last_word = line.rsplit(' ').next().unwrap_or_default();
        let text = match text.strip_prefix(last_word) {
            Some(rest) if !last_word.is_empty() && rest.starts_with(": ") => rest,
            _ => {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                &text
            }
        };
        line.push_str(text);
    }
    line
}

pub fn alert_line(alert: &Alert) -> String {
    let when = clock(alert.window_end);
    if let Some(ends_at) = &alert.ends_at {
        // Shown at the time it resolved; the start is in the message.
        let ended = ends_at.get(11..23).unwrap_or(ends_at);
        return format!(
            "{ended}  RESOLVED  {:<24} {}  (fired {when}, {})",
            alert.kind.as_str(),
            alert.service,
            alert.model.name
        );
    }
    let marker = match alert.kind {
        AlertKind::QosViolation => "VIOLATION",
        AlertKind::QosViolationPredicted => "PREDICTED",
        AlertKind::RootCause => "ROOTCAUSE",
        AlertKind::LatencyForecast => "FORECAST ",
        AlertKind::TopologyChanged => "TOPOLOGY ",
    };
    let mut line = format!(
        "{when}  {marker} {:<24} {}  p={:.2}",
        alert.kind.as_str(),
        alert.service,
        alert.probability
    );
    if alert.horizon_ms > 0 {
        line.push_str(&format!(" within {} ms", alert.horizon_ms));
    }
    if !alert.culprits.is_empty() {
        let culprits: Vec<String> = alert
            .culprits
            .iter()
            .take(3)
            .map(|c| match c.resource {
                Some(r) => format!("{}[{}] {:.2}", c.service, r.as_str(), c.score),
                None => format!("{} {:.2}", c.service, c.score),
            })
            .collect();
        line.push_str(&format!("  culprits: {}", culprits.join(", ")));
    }
    if let Some(summary) = alert.annotations.get("summary") {
        line.push_str(&format!("  — {summary}"));
    }
    line
}

/// A status line for a window: each entry point's latency against its SLO.
pub fn window_line(window: &WindowSnapshot) -> String {
    let entries: Vec<String> = window
        .qos
        .iter()
        .map(|q| {
            format!(
                "{} p{} {:.0} ms / SLO {:.0} ms{}",
                q.entry,
                (q.quantile * 100.0).round(),
                q.measured_ms,
                q.slo_ms,
                if q.violated { " VIOLATED" } else { "" }
            )
        })
        .collect();
    let requests: u64 = window.services.iter().map(|s| s.requests).sum();
    format!(
        "{}  window: {} services, {} requests, {}",
        clock(window.window_end),
        window.services.len(),
        requests,
        if entries.is_empty() {
            "no entry traffic".to_string()
        } else {
            entries.join("; ")
        }
    )
}

/// `inference per window: seer p50 0.41 ms, p99 1.20 ms (600 windows); ...` for run and
/// replay summaries.
pub fn inference_summary(times: &augur_operators::InferenceTimes) -> String {
    let parts: Vec<String> = times
        .snapshot()
        .iter()
        .map(|(detector, t)| {
            let unserved = if t.unserved_windows > 0 {
                format!(", {} unserved: see the log", t.unserved_windows)
            } else {
                String::new()
            };
            format!(
                "{detector} p50 {:.2} ms, p99 {:.2} ms ({} windows{unserved})",
                t.percentile_ms(50.0),
                t.percentile_ms(99.0),
                t.windows
            )
        })
        .collect();
    if parts.is_empty() {
        "inference per window: no detector ran".to_string()
    } else {
        format!("inference per window: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::{error_line, listed};

    #[test]
    fn lists_the_first_and_counts_the_rest() {
        assert_eq!(listed(&["a", "b", "c"], 2), "a, b and 1 more");
        assert_eq!(listed(&["a", "b"], 2), "a, b");
        assert_eq!(listed::<&str>(&[], 2), "");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(Read {
            path: "a.toml".into(),
            source: io,
        })
        .context("loading the job");
        assert_eq!(
            error_line(&e),
            "loading the job: cannot read config a.toml: No such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&plain), "outer: inner");
        let path = anyhow::anyhow!("/data/x: no such directory").context("replaying /data/x");
        assert_eq!(error_line(&path), "replaying /data/x: no such directory");
        let other = anyhow::anyhow!("/data/y: no such directory").context("replaying /data/x");
        assert_eq!(
            error_line(&other),
            "replaying /data/x: /data/y: no such directory"
        );
    }
}

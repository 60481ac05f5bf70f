//! Which signal an OTLP/JSON line holds, by its first key: the Collector's file exporter
//! writes every signal of the pipelines it serves to one file when they share it, one
//! export request per line, so a file's name says what it mostly holds, not each line.

/// What an input file, or one of its lines, holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    /// The signal of an export request line by its first key (`resourceSpans`,
    /// `resourceMetrics`, `resourceLogs`); `default` (the file's) for any other line, whose
    /// decoder then says what is wrong with it.
    pub(crate) fn of_line(line: &[u8], default: Signal) -> Signal {
        match first_key(line) {
            Some(b"resourceSpans") => Signal::Traces,
            Some(b"resourceMetrics") => Signal::Metrics,
            Some(b"resourceLogs") => Signal::Logs,
            _ => default,
        }
    }
}

/// The first key of a JSON object line, without decoding the rest.
fn first_key(line: &[u8]) -> Option<&[u8]> {
    let mut rest = line.trim_ascii_start().strip_prefix(b"{")?;
    rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read_as_the_signal_its_first_key_names() {
        let of = |line: &str| Signal::of_line(line.as_bytes(), Signal::Traces);
        assert_eq!(of(r#"{"resourceSpans":[]}"#), Signal::Traces);
        assert_eq!(of(r#" { "resourceMetrics" : []}"#), Signal::Metrics);
        assert_eq!(
            of(r#"{"resourceLogs":[{"x":"resourceSpans"}]}"#),
            Signal::Logs
        );
        // Anything else is the file's.
        assert_eq!(
            Signal::of_line(br#"{"data":[]}"#, Signal::Metrics),
            Signal::Metrics
        );
        assert_eq!(Signal::of_line(b"not json", Signal::Logs), Signal::Logs);
        assert_eq!(Signal::of_line(b"", Signal::Logs), Signal::Logs);
        assert_eq!(
            Signal::of_line(br#"{"resource\"Logs":1}"#, Signal::Traces),
            Signal::Traces
        );
    }
}

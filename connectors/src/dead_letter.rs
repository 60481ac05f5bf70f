//! Dead letters: bad input is never silently dropped. A [`DeadLetter`] (source, offset,
//! what was wrong, the original bytes) goes in; one JSON line
//! `{"source","offset","reason","records"?,"payload" | "payload_base64","time"}` comes out
//! in a [`DeadLetterFile`] (compressed by extension, like any [`LineWriter`]).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Serialize;

use crate::files::{FileError, LineWriter};

/// One rejected message or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// File path, or Kafka topic/partition.
    pub source: String,
    /// Line number, or Kafka offset.
    pub offset: u64,
    pub reason: String,
    pub kind: DeadLetterKind,
    /// The original bytes (or the one bad record re-encoded as JSON).
    pub payload: Vec<u8>,
}

/// What was wrong, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// The message or one of its records failed to decode or validate.
    Invalid,
    /// The message was empty.
    Empty,
    /// `records` of the message's records arrived after their windows closed.
    Late { records: u64 },
    /// `records` of the message's records were dated too far after the wall clock.
    Future { records: u64 },
}

impl DeadLetterKind {
    /// The records of the message this dead letter stands for, when not all of it.
    pub fn records(self) -> Option<u64> {
        match self {
            DeadLetterKind::Late { records } | DeadLetterKind::Future { records } => Some(records),
            DeadLetterKind::Invalid | DeadLetterKind::Empty => None,
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    source: &'a str,
    offset: u64,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    time: String,
}

/// A JSON-lines dead-letter file.
#[derive(Debug)]
pub struct DeadLetterFile {
    writer: LineWriter,
    count: u64,
    line: Vec<u8>,
}

impl DeadLetterFile {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> Result<Self, FileError> {
        Ok(DeadLetterFile {
            writer: LineWriter::create(path)?,
            count: 0,
            line: Vec::new(),
        })
    }

    /// Appends one dead letter: the payload as a string when it is UTF-8, else base64 under
    /// `payload_base64`; `time` is when it was written (RFC 3339, UTC).
    pub fn write(&mut self, dl: &DeadLetter) -> Result<(), FileError> {
        let (payload, payload_base64) = match std::str::from_utf8(&dl.payload) {
            Ok(s) => (Some(s), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&dl.payload)),
            ),
        };
        let line = Line {
            source: &dl.source,
            offset: dl.offset,
            reason: &dl.reason,
            records: dl.kind.records(),
            payload,
            payload_base64,
            time: rfc3339(SystemTime::now()),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &line).map_err(|e| FileError::Write {
            path: self.writer.path().to_owned(),
            source: e.into(),
        })?;
        self.writer.write_line(&self.line)?;
        self.count += 1;
        Ok(())
    }

    /// Dead letters written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes written lines to the file.
    pub fn flush(&mut self) -> Result<(), FileError> {
        self.writer.flush()
    }

    /// Flushes and closes the file (finalizing any compression).
    pub fn finish(self) -> Result<(), FileError> {
        self.writer.finish()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123); // 2024-02-29T23:59:59.123Z
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }
}

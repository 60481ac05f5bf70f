//! Dead letters: bad input is never silently dropped. A [`DeadLetter`] (source, offset,
//! what was wrong, the original bytes) goes in; one JSON line
//! `{"source","offset","reason","records"?,"payload" | "payload_base64","time"}` comes out
//! in a [`DeadLetterFile`] (compressed by extension, like any [`LineWriter`]).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use augur_operators::decide::rfc3339;
use base64::Engine as _;
use serde::Serialize;

use crate::files::{FileError, LineWriter};

/// One rejected message, or what was rejected of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// File path, or Kafka topic/partition.
    pub source: String,
    /// Line number, or Kafka offset.
    pub offset: u64,
    pub reason: String,
    pub kind: DeadLetterKind,
    /// The original bytes.
    pub payload: Vec<u8>,
}

/// What was wrong, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// The message failed to decode.
    Invalid,
    /// `records` of the message's records failed validation (the rest were read).
    Rejected { records: u64 },
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
            DeadLetterKind::Late { records }
            | DeadLetterKind::Future { records }
            | DeadLetterKind::Rejected { records } => Some(records),
            DeadLetterKind::Invalid | DeadLetterKind::Empty => None,
        }
    }
}

/// The reason of the dead letter for a message some of whose records failed validation:
/// how many, and the first one's reason. `None` when none did.
pub fn rejected_reason(reasons: &[crate::otlp::RecordError]) -> Option<(DeadLetterKind, String)> {
    let first = reasons.first()?;
    let records = reasons.len() as u64;
    let reason = if records == 1 {
        first.reason.clone()
    } else {
        format!(
            "{records} records failed validation, the first: {}",
            first.reason
        )
    };
    Some((DeadLetterKind::Rejected { records }, reason))
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

/// Characters of the first dead letter's reason a summary repeats.
const FIRST_REASON_CHARS: usize = 200;

/// A JSON-lines dead-letter file.
#[derive(Debug)]
pub struct DeadLetterFile {
    writer: LineWriter,
    count: u64,
    line: Vec<u8>,
    /// Where the first dead letter came from and why, for the summary.
    first: Option<String>,
}

impl DeadLetterFile {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> Result<Self, FileError> {
        Ok(DeadLetterFile {
            writer: LineWriter::create(path)?,
            count: 0,
            line: Vec::new(),
            first: None,
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
            time: rfc3339(now_ms()),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &line).map_err(|e| FileError::Write {
            path: self.writer.path().to_owned(),
            source: e.into(),
        })?;
        self.writer.write_line(&self.line)?;
        self.count += 1;
        if self.first.is_none() {
            let mut reason = dl.reason.clone();
            if let Some((cut, _)) = reason.char_indices().nth(FIRST_REASON_CHARS) {
                reason.truncate(cut);
                reason.push('…');
            }
            self.first = Some(format!("{} at {}: {reason}", dl.source, dl.offset));
        }
        Ok(())
    }

    /// Where the first dead letter came from (source and offset) and why; `None` before
    /// any was written.
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
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

/// The wall clock, ms since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

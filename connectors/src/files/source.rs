//! Replay of recorded OTLP JSON-lines files (`traces.otlp.jsonl[.zst|.gz]`,
//! `metrics.otlp.jsonl[...]` and `logs.otlp.jsonl[...]` in a directory, whichever are
//! there: an application without tracing has metrics and logs only; or one file given
//! itself, as a Collector whose pipelines share one file exporter writes it), as fast as
//! possible. Each line is read as the signal its first key names, whatever file holds it.
//!
//! Every worker reads every file but decodes only the lines `line % workers == index`, so
//! decoding — the expensive part — is spread over workers. Each file is a partition with
//! its own watermark; the worker reads from whichever file is further behind in event time.
//! A file that can't be read to its end (a compressed file cut off mid-frame) is read up
//! to where it breaks, the rest one dead letter saying so.

use std::path::{Path, PathBuf};

use super::lines::{FileError, LineReader, find_input};
use super::signal::Signal;
use crate::dead_letter::{DeadLetter, DeadLetterKind, rejected_reason};
use crate::otlp::{MetricNames, Rates, decode_logs_json, decode_metrics_json, decode_traces_json};
use crate::source::{Batch, PartitionWatermarks, SourceError, SourceState, WorkerSource};

/// Lines read per poll per partition: bounds the batch size.
const LINES_PER_POLL: usize = 64;

pub struct FileSource {
    /// Per input file: the signal of its lines whose first key names none, its path, its
    /// reader.
    readers: Vec<(Signal, PathBuf, LineReader)>,
    watermarks: PartitionWatermarks,
    names: MetricNames,
    /// Counters' previous points, for their rates.
    rates: Rates,
    index: u64,
    peers: u64,
    line: Vec<u8>,
}

/// The input files of a recorded directory, each `None` when the directory has none; or
/// the one file given as the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFiles {
    pub traces: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    pub logs: Option<PathBuf>,
    /// The input itself, when it is a file: lines of any signal.
    pub single: Option<PathBuf>,
}

/// The input files at `input`: a file is read whole, whatever signals its lines hold; a
/// directory needs at least one of traces, metrics and logs ([`FileError::NoInputs`] when
/// it has none; a missing path is its own error).
pub fn input_files(input: &Path) -> Result<InputFiles, FileError> {
    if input.is_file() {
        return Ok(InputFiles {
            traces: None,
            metrics: None,
            logs: None,
            single: Some(input.to_owned()),
        });
    }
    let dir = input;
    let find = |stem: &str| match find_input(dir, stem) {
        Ok(path) => Ok(Some(path)),
        Err(FileError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    };
    let files = InputFiles {
        traces: find("traces.otlp")?,
        metrics: find("metrics.otlp")?,
        logs: find("logs.otlp")?,
        single: None,
    };
    if files.traces.is_none() && files.metrics.is_none() && files.logs.is_none() {
        return Err(FileError::NoInputs {
            dir: dir.to_owned(),
        });
    }
    Ok(files)
}

impl FileSource {
    /// The source of worker `index` of `peers` over the input files at `input` (a
    /// directory, or one file: [`input_files`]).
    pub fn open(
        input: &Path,
        names: MetricNames,
        index: usize,
        peers: usize,
    ) -> Result<Self, FileError> {
        let files = input_files(input)?;
        let mut readers = Vec::new();
        for (signal, path) in [
            (Signal::Traces, files.traces),
            (Signal::Metrics, files.metrics),
            (Signal::Logs, files.logs),
            // Mostly spans, as a shared file exporter's output usually is; each line is
            // read as its own signal either way.
            (Signal::Traces, files.single),
        ] {
            if let Some(path) = path {
                let reader = LineReader::open(&path)?;
                readers.push((signal, path, reader));
            }
        }
        Ok(FileSource {
            watermarks: PartitionWatermarks::new(readers.len()),
            readers,
            names,
            rates: Rates::default(),
            index: index as u64,
            peers: peers.max(1) as u64,
            line: Vec::new(),
        })
    }
}

impl WorkerSource for FileSource {
    fn poll(&mut self, batch: &mut Batch) -> Result<SourceState, SourceError> {
        let Some(partition) = self.watermarks.slowest() else {
            return Ok(SourceState::Exhausted);
        };
        let (default, path, reader) = &mut self.readers[partition];
        let default = *default;
        for _ in 0..LINES_PER_POLL {
            let line_no = match reader.next_line(&mut self.line) {
                Ok(Some(line_no)) => line_no,
                Ok(None) => {
                    self.watermarks.finish(partition);
                    break;
                }
                // A file that can't be read further (cut off mid-frame when its writer
                // stopped, a bad block) is read up to there: the rest is one dead letter,
                // from the worker the line falls to, and the job goes on with what was read.
                Err(FileError::Read { line, source, .. }) => {
                    if line % self.peers == self.index {
                        batch.messages += 1;
                        batch.dead.push(DeadLetter {
                            source: path.display().to_string(),
                            offset: line,
                            reason: format!("unreadable from this line to the end: {source}"),
                            kind: DeadLetterKind::Invalid,
                            payload: std::mem::take(&mut self.line),
                        });
                    }
                    self.watermarks.finish(partition);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if line_no % self.peers != self.index {
                continue;
            }
            batch.messages += 1;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                batch.dead.push(DeadLetter {
                    source: path.display().to_string(),
                    offset: line_no,
                    reason: "empty line".to_string(),
                    kind: DeadLetterKind::Empty,
                    payload: self.line.clone(),
                });
                continue;
            }
            let (spans, points, records) =
                (batch.spans.len(), batch.metrics.len(), batch.logs.len());
            let decoded = match Signal::of_line(&self.line, default) {
                Signal::Traces => decode_traces_json(&self.line, &mut batch.spans),
                Signal::Logs => decode_logs_json(&self.line, &mut batch.logs),
                Signal::Metrics => decode_metrics_json(&self.line, &self.names, &mut batch.metrics)
                    .map(|decoded| {
                        self.rates.extend(&decoded.cumulative, &mut batch.metrics);
                        batch.ignored_metrics.extend(decoded.ignored_names);
                        decoded.errors
                    }),
            };
            // The file's watermark follows every record of the line, whatever its signal.
            let times = (batch.spans[spans..].iter().map(|s| s.event_ms()))
                .chain(batch.metrics[points..].iter().map(|p| p.event_ms()))
                .chain(batch.logs[records..].iter().map(|r| r.event_ms()));
            for t in times {
                self.watermarks.observe(partition, t);
            }
            match decoded {
                Ok(record_errors) => {
                    // One dead letter for the line however many of its records failed.
                    if let Some((kind, reason)) = rejected_reason(&record_errors) {
                        batch.dead.push(DeadLetter {
                            source: path.display().to_string(),
                            offset: line_no,
                            reason,
                            kind,
                            payload: self.line.clone(),
                        });
                    }
                }
                Err(error) => batch.dead.push(DeadLetter {
                    source: path.display().to_string(),
                    offset: line_no,
                    reason: error.to_string(),
                    kind: DeadLetterKind::Invalid,
                    payload: self.line.clone(),
                }),
            }
        }
        if self.watermarks.all_done() {
            return Ok(SourceState::Exhausted);
        }
        Ok(SourceState::Active {
            watermark_ms: self.watermarks.watermark(),
            idle: false,
        })
    }

    fn progress(&self) -> (u64, u64) {
        self.readers
            .iter()
            .fold((0, 0), |(done, total), (_, _, r)| {
                let (d, t) = r.progress();
                (done + d, total + t)
            })
    }
}

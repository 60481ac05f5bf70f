//! Kafka as a worker's source: in, this worker's share of the spans, metrics and (when
//! given) logs topics' partitions (see `PartitionConsumer`); out, decoded spans, metric
//! points and log records, dead letters (`source` = `topic/partition`, `offset` = the Kafka
//! offset, the original bytes), and the watermark. Event time comes from the records; each
//! partition has its own watermark (its newest event time) and the worker's is the slowest
//! partition's, except that a partition with no message for `idle_ms` of wall time stops
//! counting (so an idle partition doesn't stall the windows; it counts again when it
//! delivers).
//!
//! Every message is screened before its records count: an empty message, records dated more
//! than `max_future_ms` after the wall clock (they would move the watermark past every real
//! record) and records whose windows have closed are each one dead letter per message, with
//! the original bytes and the number of records concerned. The closed windows are the
//! dataflow's: the same watermark less the same allowed lateness.
//!
//! At-least-once: every message read is noted with the latest window it can affect (its
//! records' windows, and for dead letters the window being filled when it was read); when
//! the job says windows before `t` are durable, offsets of messages that fed only those
//! windows are committed. State: the consumer, the offset tracker, per-partition
//! watermarks and last-message times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use augur_operators::{EventTime, window_end};

use super::admin::topic_exists;
use super::consumer::{PartitionConsumer, StartAt};
use super::encoding::{Encoding, Stream, decode_into};
use super::error::KafkaError;
use super::metrics::KafkaMetrics;
use super::offsets::OffsetTracker;
use super::records::Marks;
use super::settings::KafkaSettings;
use crate::dead_letter::{DeadLetter, DeadLetterKind, rejected_reason};
use crate::otlp::{MetricNames, Rates};
use crate::source::{Batch, SourceError, SourceState, WorkerSource};

/// Messages read per poll at most.
const MESSAGES_PER_POLL: usize = 256;
/// The most one poll advances the poll clock that partitions' silence is measured on: a
/// worker that could not poll for longer (its dead letters waiting for a slow broker, say)
/// has not seen its partitions go quiet, and must not let them stop holding the watermark.
const POLL_GAP_MAX: Duration = Duration::from_secs(1);
/// How often consumer lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// How often worker 0 checks the topics' partition counts (live jobs).
const PARTITIONS_EVERY: Duration = Duration::from_secs(30);

/// What a worker's Kafka source reads and how.
#[derive(Clone, Debug)]
pub struct KafkaSourceSpec {
    pub settings: KafkaSettings,
    pub spans_topic: String,
    pub spans_encoding: Encoding,
    pub metrics_topic: String,
    pub metrics_encoding: Encoding,
    /// The logs topic; `None` reads no logs.
    pub logs_topic: Option<String>,
    pub logs_encoding: Encoding,
    pub names: MetricNames,
    pub window_ms: u64,
    pub lateness_ms: u64,
    /// A partition silent this long (wall time) stops holding the watermark back.
    pub idle_ms: u64,
    pub start: StartAt,
    /// Read to the end offsets captured at the start, then finish (replay).
    pub bounded: bool,
    /// Keep only records with event time in `[from, to)`, ms.
    pub time_range: (EventTime, EventTime),
    /// Commit offsets under the group as windows become durable (the stream job); replays don't.
    pub commit: bool,
    /// The commit point trails the durable frontier by this much event time, so a restart
    /// rebuilds the window state (detector history, trace assembly) before it emits, ms.
    pub replay_ms: u64,
    /// Records dated more than this after the wall clock are dead-lettered: they would move
    /// the watermark past every real record, ms.
    pub max_future_ms: u64,
}

struct Partition {
    newest: Option<EventTime>,
    /// The poll clock at its last message.
    last_message: Duration,
    /// Messages were waiting in it at the last lag measurement: a partition with a backlog
    /// is slow (a busy broker, a worker behind), never idle.
    behind: bool,
    done: bool,
}

pub struct KafkaSource {
    spec: KafkaSourceSpec,
    consumer: PartitionConsumer,
    topics: Vec<String>,
    /// What each of `topics` carries.
    streams: Vec<Stream>,
    tracker: OffsetTracker,
    parts: Vec<Partition>,
    cap: EventTime,
    metrics: Arc<dyn KafkaMetrics>,
    last_lag: Instant,
    /// Worker 0 of a live job: when the partition counts were last checked.
    last_partition_check: Option<Instant>,
    read: Vec<(usize, i32, i64, EventTime)>,
    /// Counters' previous points, for their rates.
    rates: Rates,
    durable_seen: EventTime,
    last_commit: Instant,
    resume_frontier: EventTime,
    poll_clock: PollClock,
}

/// Time spent polling: wall time, but at most [`POLL_GAP_MAX`] per gap between polls.
struct PollClock {
    elapsed: Duration,
    last: Instant,
}

impl PollClock {
    fn new(now: Instant) -> Self {
        PollClock {
            elapsed: Duration::ZERO,
            last: now,
        }
    }

    /// A poll at `now`: the clock after it.
    fn tick(&mut self, now: Instant) -> Duration {
        self.elapsed += now.saturating_duration_since(self.last).min(POLL_GAP_MAX);
        self.last = now;
        self.elapsed
    }
}

/// Commits at most this often (the last one always happens).
const COMMIT_EVERY: Duration = Duration::from_millis(500);

impl KafkaSourceSpec {
    fn encoding(&self, stream: Stream) -> Encoding {
        match stream {
            Stream::Spans => self.spans_encoding,
            Stream::Metrics => self.metrics_encoding,
            Stream::Logs => self.logs_encoding,
        }
    }
}

impl KafkaSource {
    pub fn open(
        spec: KafkaSourceSpec,
        index: usize,
        peers: usize,
        metrics: Arc<dyn KafkaMetrics>,
    ) -> Result<Self, KafkaError> {
        let mut topics = vec![spec.spans_topic.clone(), spec.metrics_topic.clone()];
        let mut streams = vec![Stream::Spans, Stream::Metrics];
        if let Some(logs) = &spec.logs_topic {
            // A replay of topics written without logs has no logs topic: nothing to read.
            if !spec.bounded || topic_exists(&spec.settings, logs)? {
                topics.push(logs.clone());
                streams.push(Stream::Logs);
            }
        }
        let last_partition_check = (index == 0 && !spec.bounded).then(Instant::now);
        let consumer = PartitionConsumer::open(
            &spec.settings,
            &topics,
            index,
            peers,
            spec.start,
            spec.bounded,
        )?;
        let now = Instant::now();
        let mut tracker = OffsetTracker::default();
        for (topic, partition, offset) in consumer.start_offsets() {
            tracker.start(&topic, partition, offset);
        }
        // Outputs before the lowest committed frontier were delivered by the last run.
        let resume_frontier = if spec.commit {
            consumer
                .resumed_metadata()
                .iter()
                .map(|m| {
                    m.as_deref()
                        .and_then(|m| m.parse::<EventTime>().ok())
                        .unwrap_or(0)
                })
                .min()
                .unwrap_or(EventTime::MAX) // no partitions: no constraint
        } else {
            0
        };
        if resume_frontier > 0 && resume_frontier < EventTime::MAX {
            tracing::info!("resuming: windows before {resume_frontier} were already emitted");
        }
        let parts = consumer
            .assignment()
            .iter()
            .enumerate()
            .map(|(slot, _)| Partition {
                newest: None,
                last_message: Duration::ZERO,
                behind: false,
                done: spec.bounded && consumer.done(slot),
            })
            .collect();
        Ok(KafkaSource {
            spec,
            consumer,
            topics,
            streams,
            tracker,
            rates: Rates::default(),
            parts,
            cap: 0,
            metrics,
            last_lag: now - LAG_EVERY,
            last_partition_check,
            read: Vec::new(),
            durable_seen: 0,
            last_commit: now,
            resume_frontier,
            poll_clock: PollClock::new(now),
        })
    }

    fn watermark(&self) -> Option<EventTime> {
        let idle = (!self.spec.bounded).then(|| Duration::from_millis(self.spec.idle_ms));
        watermark(&self.parts, idle, self.poll_clock.elapsed)
    }
}

/// Milliseconds since the epoch, now.
fn wall_clock_ms() -> EventTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as EventTime)
}

/// The slowest counting partition's newest event time. A partition counts unless it is
/// done, or (with `idle`) has no backlog and has had no message for that long of the poll
/// clock (`now`); when none counts, the newest event time of any (everything read has been
/// read), and `None` when none has delivered anything (nothing here holds the windows back).
fn watermark(parts: &[Partition], idle: Option<Duration>, now: Duration) -> Option<EventTime> {
    let counting = parts.iter().filter(|p| {
        !p.done && (p.behind || idle.is_none_or(|idle| now.saturating_sub(p.last_message) < idle))
    });
    match counting.map(|p| p.newest.unwrap_or(0)).min() {
        Some(wm) => Some(wm),
        None => parts.iter().filter_map(|p| p.newest).max(),
    }
}

impl WorkerSource for KafkaSource {
    fn poll(&mut self, batch: &mut Batch) -> Result<SourceState, SourceError> {
        if self.parts.is_empty() && !self.spec.bounded {
            // More workers than partitions: this one never holds the windows back.
            return Ok(SourceState::NoWatermark);
        }
        if self.parts.iter().all(|p| p.done) {
            return Ok(SourceState::Exhausted);
        }
        // `augur run` created its input topics at the start: it recreates them too. A
        // broker that fails again mid-recovery is tried again at the next poll.
        match self
            .consumer
            .recover(&self.spec.settings, !self.spec.bounded)
        {
            Ok(reset) => {
                for (topic, partition, offset) in reset {
                    self.tracker.reset(&topic, partition, offset);
                }
            }
            Err(e) => tracing::warn!("{e}; trying again"),
        }
        let poll_clock = self.poll_clock.tick(Instant::now());
        let KafkaSource {
            spec,
            consumer,
            topics,
            streams,
            parts,
            read,
            cap,
            rates,
            ..
        } = self;
        let window_ms = spec.window_ms;
        let (from, to) = spec.time_range;
        // Windows before the cap are closed (the dataflow closes them at the same point:
        // this worker's watermark as of the last poll, less the allowed lateness).
        let closed_before = *cap;
        let future_after = wall_clock_ms().saturating_add(spec.max_future_ms);
        let mut per_topic = vec![0u64; topics.len()];
        let outcome = consumer.poll(MESSAGES_PER_POLL, Duration::from_millis(20), |m| {
            batch.messages += 1;
            per_topic[m.topic] += 1;
            let stream = streams[m.topic];
            let encoding = spec.encoding(stream);
            let marks = Marks::of(batch);
            let source = format!("{}/{}", topics[m.topic], m.partition);
            let offset = m.offset.max(0) as u64;
            let dead = |kind, reason: String| DeadLetter {
                source: source.clone(),
                offset,
                reason,
                kind,
                payload: m.payload.to_vec(),
            };
            if m.payload.is_empty() {
                // Not an empty export request: the producer sent nothing.
                batch.dead.push(dead(DeadLetterKind::Empty, "empty".to_string()));
            } else {
                match decode_into(m.payload, stream, encoding, &spec.names, rates, batch) {
                    Ok(decoded) => {
                        batch.ignored_metrics.extend(decoded.ignored_metrics);
                        // One dead letter for the message however many of its records
                        // failed: each would repeat the whole message.
                        if let Some((kind, reason)) = rejected_reason(&decoded.record_errors) {
                            batch.dead.push(dead(kind, reason));
                        }
                    }
                    Err(error) => batch.dead.push(dead(
                        DeadLetterKind::Invalid,
                        format!("{}: {error}", encoding.as_str()),
                    )),
                }
            }
            // Records outside the time range are skipped (replay by time).
            if from > 0 || to < EventTime::MAX {
                marks.retain(batch, |t| t >= from && t < to);
            }
            let screened = marks.screen(batch, future_after, closed_before, window_ms);
            if screened.future > 0 {
                batch.dead.push(dead(
                    DeadLetterKind::Future {
                        records: screened.future,
                    },
                    format!(
                        "future: {} records dated more than {} ms after the wall clock (after {future_after} ms)",
                        screened.future, spec.max_future_ms
                    ),
                ));
            }
            if screened.late > 0 {
                batch.dead.push(dead(
                    DeadLetterKind::Late {
                        records: screened.late,
                    },
                    format!(
                        "late: {} records after their windows closed (windows before {closed_before} ms are closed)",
                        screened.late
                    ),
                ));
            }
            let newest = marks.newest(batch);
            let part = &mut parts[m.slot];
            part.last_message = poll_clock;
            if let Some(t) = newest {
                part.newest = Some(part.newest.map_or(t, |n| n.max(t)));
            }
            read.push((
                m.topic,
                m.partition,
                m.offset,
                newest.map_or(0, |t| window_end(t, window_ms)),
            ));
        });
        for (slot, part) in self.parts.iter_mut().enumerate() {
            if self.spec.bounded && !part.done && self.consumer.done(slot) {
                part.done = true;
            }
        }
        for (topic, n) in per_topic.iter().enumerate() {
            if *n > 0 {
                self.metrics.records_in(&self.topics[topic], *n);
            }
        }
        let watermark = self.watermark();
        if let Some(watermark) = watermark {
            self.cap = self.cap.max(window_end(
                watermark.saturating_sub(self.spec.lateness_ms),
                window_ms,
            ));
        }
        for (topic, partition, offset, window) in self.read.drain(..) {
            self.tracker
                .read(&self.topics[topic], partition, offset, window.max(self.cap));
        }
        if let Some(newest) = self.parts.iter().filter_map(|p| p.newest).max() {
            let open =
                window_end(newest, window_ms).saturating_sub(self.durable_seen.max(self.cap));
            self.metrics.windows_open(open / window_ms + 1);
        }
        if self.last_lag.elapsed() >= LAG_EVERY {
            self.last_lag = Instant::now();
            for (slot, topic, partition, lag) in self.consumer.lag() {
                self.metrics.lag(&self.topics[topic], partition, lag);
                self.parts[slot].behind = lag > 0;
            }
        }
        if let Some(last) = self.last_partition_check {
            if last.elapsed() >= PARTITIONS_EVERY {
                self.last_partition_check = Some(Instant::now());
                for (topic, then, now) in self.consumer.partition_changes() {
                    tracing::warn!(
                        "{} now has {now} partitions (the job was assigned {then}): restart the job to read the new ones (partitions are assigned statically)",
                        self.topics[topic]
                    );
                }
            }
        }
        if self.parts.iter().all(|p| p.done) {
            return Ok(SourceState::Exhausted);
        }
        Ok(match watermark {
            Some(watermark_ms) => SourceState::Active {
                watermark_ms,
                idle: outcome.messages == 0,
            },
            None => SourceState::NoWatermark,
        })
    }

    fn progress(&self) -> (u64, u64) {
        self.consumer.progress()
    }

    fn windows_closed(&mut self, before: EventTime) {
        self.cap = self.cap.max(before);
    }

    fn durable(&mut self, frontier: EventTime, last: bool) -> Result<(), SourceError> {
        self.durable_seen = self.durable_seen.max(frontier);
        if !self.spec.commit || (!last && self.last_commit.elapsed() < COMMIT_EVERY) {
            return Ok(());
        }
        self.last_commit = Instant::now();
        // Never record a frontier beyond the input actually read (a finished input
        // reports EventTime::MAX).
        let newest = self
            .parts
            .iter()
            .filter_map(|p| p.newest)
            .max()
            .unwrap_or(0);
        let frontier = frontier.min(window_end(newest, self.spec.window_ms));
        let frontier = frontier.max(self.resume_frontier);
        let point = frontier.saturating_sub(self.spec.replay_ms);
        let commits = self.tracker.advance(point);
        if let Err(e) = self.consumer.commit(&commits, &frontier.to_string(), last) {
            // Nothing is lost: a restart re-reads from the previous commit.
            tracing::warn!("{e} (a restart re-reads from the previous commit)");
        }
        Ok(())
    }

    fn resume_frontier(&self) -> EventTime {
        self.resume_frontier
    }

    fn resumable(&self) -> bool {
        self.spec.commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker that could not poll for 30 s (its dead letters waiting on a slow broker) has
    /// not seen its partitions fall silent: a partition that had a message at the last poll
    /// still holds the watermark, while one silent over 5 s of polling does not.
    #[test]
    fn a_stalled_worker_does_not_take_its_partitions_for_idle() {
        let t0 = Instant::now();
        let mut clock = PollClock::new(t0);
        let mut polled = Duration::ZERO;
        for ms in (20..=1000).step_by(20) {
            polled = clock.tick(t0 + Duration::from_millis(ms));
        }
        assert_eq!(polled, Duration::from_secs(1));
        let part = |newest, last_message| Partition {
            newest: Some(newest),
            last_message,
            behind: false,
            done: false,
        };
        // The metrics partition was read to its end long ago; the spans one is behind.
        let parts = [part(100_000, Duration::ZERO), part(40_000, polled)];
        let idle = Some(Duration::from_millis(5000));
        let after_stall = clock.tick(t0 + Duration::from_secs(31));
        assert_eq!(after_stall, Duration::from_secs(2));
        assert_eq!(watermark(&parts, idle, after_stall), Some(40_000));
        // Polling on for 6 s with nothing from the spans partition: now it is idle.
        let mut later = after_stall;
        for ms in (20..=6000).step_by(20) {
            later = clock.tick(t0 + Duration::from_secs(31) + Duration::from_millis(ms));
        }
        assert_eq!(watermark(&parts, idle, later), Some(100_000));
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark() {
        // The poll clock is at 60 s; a partition silent for `silent_ms` of it.
        let start = Duration::from_secs(60);
        let part = |newest: Option<EventTime>, silent_ms: u64, done: bool| Partition {
            newest,
            last_message: start - Duration::from_millis(silent_ms),
            behind: false,
            done,
        };
        let idle = Some(Duration::from_millis(5000));
        // Both active: the slowest holds the watermark.
        let parts = [part(Some(10_000), 0, false), part(Some(4_000), 100, false)];
        assert_eq!(watermark(&parts, idle, start), Some(4_000));
        // The slow one has been silent past the idle timeout: it no longer counts.
        let parts = [
            part(Some(10_000), 0, false),
            part(Some(4_000), 6_000, false),
        ];
        assert_eq!(watermark(&parts, idle, start), Some(10_000));
        // A partition that never delivered holds it at zero until it is idle.
        let parts = [part(Some(10_000), 0, false), part(None, 1_000, false)];
        assert_eq!(watermark(&parts, idle, start), Some(0));
        let parts = [part(Some(10_000), 0, false), part(None, 9_000, false)];
        assert_eq!(watermark(&parts, idle, start), Some(10_000));
        // Everything idle: as far as anything got, so the last windows close.
        let parts = [
            part(Some(10_000), 9_000, false),
            part(Some(7_000), 9_000, false),
        ];
        assert_eq!(watermark(&parts, idle, start), Some(10_000));
        // Bounded reads (replay) never skip a partition for idleness; done ones don't count.
        let parts = [
            part(Some(10_000), 0, false),
            part(Some(4_000), 60_000, false),
        ];
        assert_eq!(watermark(&parts, None, start), Some(4_000));
        let parts = [part(Some(10_000), 0, false), part(Some(4_000), 0, true)];
        assert_eq!(watermark(&parts, None, start), Some(10_000));

        // Idle partitions that never delivered bound nothing: the worker follows the others.
        let parts = [part(None, 9_000, false), part(None, 9_000, false)];
        assert_eq!(watermark(&parts, idle, start), None);

        // Silent but with messages waiting (the broker slow to serve them): still counts.
        let parts = [
            part(Some(10_000), 0, false),
            Partition {
                behind: true,
                ..part(Some(4_000), 60_000, false)
            },
        ];
        assert_eq!(watermark(&parts, idle, start), Some(4_000));
    }
}

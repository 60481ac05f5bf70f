//! A consumer of one worker's share of some topics' partitions: in, the topics, this
//! worker's index among `peers`, where to start (committed offsets, the beginning, or a
//! time); out, batches of messages read with `BaseConsumer` (batched polling), and offset
//! commits when told. Partitions are assigned, not balanced by the group: partition `i` of
//! the sorted list of all `(topic, partition)` pairs goes to worker `i % peers`, so every
//! worker (in every process) knows its share without a rebalance. Offsets are still
//! committed under the consumer group, so a restarted job resumes where it left off; a
//! partition added since then has no commit and is read from its beginning (logged).
//! Partitions added while the job runs are noticed ([`PartitionConsumer::partition_changes`])
//! but read only after a restart (docs/kafka.md, "Partition assignment", says why).
//! A consumer that saw the broker go away or a topic vanish is dropped and replaced once
//! they are back ([`PartitionConsumer::recover`]): reusing it can crash librdkafka 2.12.1.
//! State: the consumer, the assignment, each partition's next offset and (for bounded
//! reads) the end offset captured at the start, whether the consumer was lost.

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::admin::{ensure_topics, topic_partitions};
use super::error::KafkaError;
use super::settings::KafkaSettings;

const TIMEOUT: Duration = Duration::from_secs(15);

/// How often (at most) a consumer whose topic vanished checks whether it is back.
const RECOVER_EVERY: Duration = Duration::from_secs(5);

/// Where reading starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The group's committed offsets; the beginning where there are none.
    Committed,
    Beginning,
    /// Only messages written from now on.
    End,
    /// The first message with a timestamp at or after `ms` (since the epoch), by
    /// `offsets_for_times` when `ask` is set; from the beginning when it isn't, or when the
    /// broker can't answer (the caller filters records by time either way).
    Time {
        ms: u64,
        ask: bool,
    },
}

/// One message as the caller sees it.
#[derive(Debug)]
pub struct KafkaRecord<'a> {
    /// Index into the topics given to [`PartitionConsumer::open`].
    pub topic: usize,
    /// Index of the partition in this consumer's assignment.
    pub slot: usize,
    pub partition: i32,
    pub offset: i64,
    pub payload: &'a [u8],
    /// CreateTime (or LogAppendTime), ms, when the message has one.
    pub timestamp_ms: Option<i64>,
}

/// What a poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollOutcome {
    pub messages: usize,
}

#[derive(Debug, Clone)]
struct Assigned {
    topic: usize,
    partition: i32,
    /// The next offset to read, once known.
    next: Option<i64>,
    /// First offset at the start (for progress).
    start: i64,
    /// End offset captured at the start (bounded reads).
    end: i64,
}

pub struct PartitionConsumer {
    consumer: BaseConsumer<LossWatch>,
    settings: KafkaSettings,
    /// Set by the consumer's client on errors after which it must be replaced (see
    /// [`LossWatch`]).
    watch: Arc<AtomicBool>,
    /// Since when some assigned partition's topic has been missing on the broker (it was
    /// deleted, or the broker came back without it), and when recovery was last tried.
    lost: Option<(Instant, Option<Instant>)>,
    topics: Vec<String>,
    assigned: Vec<Assigned>,
    bounded: bool,
    resumed: Vec<Option<String>>,
    /// Partitions per topic when the assignment was made.
    counts: Vec<i32>,
}

impl PartitionConsumer {
    /// Opens the consumer and assigns this worker's partitions. With `bounded`, the end
    /// offsets are captured now and [`PartitionConsumer::done`] tells when they're reached.
    pub fn open(
        settings: &KafkaSettings,
        topics: &[String],
        index: usize,
        peers: usize,
        start: StartAt,
        bounded: bool,
    ) -> Result<Self, KafkaError> {
        let watch = Arc::new(AtomicBool::new(false));
        let consumer = watched_consumer(settings, &watch)?;
        let mut all = Vec::new();
        let mut counts = Vec::new();
        for (t, topic) in topics.iter().enumerate() {
            let n = topic_partitions(&consumer, topic)?;
            counts.push(n);
            all.extend((0..n).map(|p| (t, p)));
        }
        let peers = peers.max(1);
        let mut assigned: Vec<Assigned> = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % peers == index)
            .map(|(_, (topic, partition))| Assigned {
                topic,
                partition,
                next: None,
                start: 0,
                end: 0,
            })
            .collect();
        let mut tpl = TopicPartitionList::new();
        for a in &mut assigned {
            let topic = &topics[a.topic];
            let (low, high) = consumer
                .fetch_watermarks(topic, a.partition, TIMEOUT)
                .map_err(KafkaError::client(format!(
                    "watermarks of {topic}/{}",
                    a.partition
                )))?;
            a.start = low;
            a.end = high;
        }
        let (offsets, resumed) = start_offsets(&consumer, topics, &assigned, start)?;
        for (a, offset) in assigned.iter_mut().zip(offsets) {
            if let Offset::Offset(o) = offset {
                a.start = o;
                a.next = Some(o);
            }
            tpl.add_partition_offset(&topics[a.topic], a.partition, offset)
                .map_err(KafkaError::client("building the assignment"))?;
        }
        consumer
            .assign(&tpl)
            .map_err(KafkaError::client("assigning partitions"))?;
        Ok(PartitionConsumer {
            consumer,
            settings: settings.clone(),
            watch,
            lost: None,
            topics: topics.to_vec(),
            assigned,
            bounded,
            resumed,
            counts,
        })
    }

    /// Where each assigned partition starts: `(topic, partition, offset)`.
    pub fn start_offsets(&self) -> Vec<(String, i32, i64)> {
        self.assigned
            .iter()
            .map(|a| {
                (
                    self.topics[a.topic].clone(),
                    a.partition,
                    a.next.unwrap_or(a.start),
                )
            })
            .collect()
    }

    /// The commit metadata found at the start (`StartAt::Committed`), one per assigned
    /// partition; `None` for a partition without a commit or metadata.
    pub fn resumed_metadata(&self) -> &[Option<String>] {
        &self.resumed
    }

    /// Partitions assigned to this worker: `(topic index, partition)`.
    pub fn assignment(&self) -> Vec<(usize, i32)> {
        self.assigned
            .iter()
            .map(|a| (a.topic, a.partition))
            .collect()
    }

    /// Reads up to `max` messages, waiting at most `wait` for the first; `f` sees each.
    pub fn poll(
        &mut self,
        max: usize,
        wait: Duration,
        mut f: impl FnMut(KafkaRecord<'_>),
    ) -> PollOutcome {
        let mut out = PollOutcome::default();
        if self.watch.swap(false, Ordering::Relaxed) && self.lost.is_none() {
            self.drop_consumer();
        }
        if self.lost.is_some() {
            // Nothing to read until `recover` has a new consumer.
            std::thread::sleep(wait);
            return out;
        }
        let mut timeout = wait;
        while out.messages < max {
            let Some(result) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let Ok(message) = result else {
                // Partition EOF and transient broker errors: librdkafka retries. A topic
                // that vanished is not fetched again by librdkafka: see `recover`.
                if let Err(e) = result {
                    let code = e.rdkafka_error_code();
                    if matches!(
                        code,
                        Some(
                            RDKafkaErrorCode::UnknownPartition
                                | RDKafkaErrorCode::UnknownTopicOrPartition
                                | RDKafkaErrorCode::UnknownTopic
                        )
                    ) {
                        self.watch.store(true, Ordering::Relaxed);
                    }
                    tracing::debug!("kafka poll: {e}");
                }
                continue;
            };
            let topic = message.topic();
            let Some(slot) = self
                .assigned
                .iter()
                .position(|a| a.partition == message.partition() && self.topics[a.topic] == topic)
            else {
                continue;
            };
            let a = &mut self.assigned[slot];
            a.next = Some(message.offset() + 1);
            if self.bounded && message.offset() >= a.end {
                continue;
            }
            out.messages += 1;
            f(KafkaRecord {
                topic: a.topic,
                slot,
                partition: a.partition,
                offset: message.offset(),
                payload: message.payload().unwrap_or_default(),
                timestamp_ms: message.timestamp().to_millis(),
            });
        }
        out
    }

    /// Replaces the consumer by one without an assignment (the old one is dropped with its
    /// metadata cache) and starts waiting for the broker and topics to be back.
    fn drop_consumer(&mut self) {
        tracing::warn!(
            "kafka: the broker went away or a topic vanished: consumer paused until they are back"
        );
        self.lost = Some((Instant::now(), None));
        match watched_consumer(&self.settings, &self.watch) {
            Ok(idle) => self.consumer = idle,
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// After the broker went away or a topic vanished (see `poll`): once every topic exists
    /// again — created here,
    /// with its partition count at the start, when `recreate` — assigns the partitions
    /// anew. A partition whose next offset is now beyond its end (the topic was recreated)
    /// is read from its beginning; those are returned as `(topic, partition, offset)`.
    /// Tries at most every [`RECOVER_EVERY`]; a no-op while nothing is lost.
    pub fn recover(
        &mut self,
        settings: &KafkaSettings,
        recreate: bool,
    ) -> Result<Vec<(String, i32, i64)>, KafkaError> {
        let Some((since, tried)) = self.lost else {
            return Ok(Vec::new());
        };
        if tried.is_some_and(|t| t.elapsed() < RECOVER_EVERY) {
            return Ok(Vec::new());
        }
        self.lost = Some((since, Some(Instant::now())));
        // Checked with a throwaway client: the broker may be away still.
        let probe: BaseConsumer = self
            .settings
            .consumer()
            .create()
            .map_err(KafkaError::client("creating the consumer"))?;
        if probe.fetch_metadata(None, RECOVER_EVERY).is_err() {
            return Ok(Vec::new());
        }
        for (t, topic) in self.topics.iter().enumerate() {
            if topic_partitions(&probe, topic).is_err() {
                if !recreate {
                    return Ok(Vec::new());
                }
                let partitions = self.counts.get(t).copied().unwrap_or(1);
                tracing::warn!("{topic} is missing: creating it ({partitions} partitions)");
                ensure_topics(settings, &[(topic, partitions)])?;
            }
        }
        let mut tpl = TopicPartitionList::new();
        let mut reset = Vec::new();
        for a in &mut self.assigned {
            let topic = &self.topics[a.topic];
            let (low, high) = probe
                .fetch_watermarks(topic, a.partition, TIMEOUT)
                .map_err(KafkaError::client(format!(
                    "watermarks of {topic}/{}",
                    a.partition
                )))?;
            let next = a.next.unwrap_or(a.start);
            let offset = if next > high || next < low {
                tracing::warn!(
                    "{topic}/{}: offset {next} is outside [{low}, {high}] (the topic was recreated): reading it from {low}",
                    a.partition
                );
                reset.push((topic.clone(), a.partition, low));
                (a.start, a.next) = (low, Some(low));
                low
            } else {
                next
            };
            tpl.add_partition_offset(topic, a.partition, Offset::Offset(offset))
                .map_err(KafkaError::client("building the assignment"))?;
        }
        self.watch.store(false, Ordering::Relaxed);
        let consumer = watched_consumer(&self.settings, &self.watch)?;
        consumer
            .assign(&tpl)
            .map_err(KafkaError::client("reassigning partitions"))?;
        self.consumer = consumer;
        tracing::warn!(
            "kafka consumer recreated and its partitions reassigned {:.1} s after the broker or a topic went away",
            since.elapsed().as_secs_f64()
        );
        self.lost = None;
        Ok(reset)
    }

    /// Whether the partition in `slot` has reached its end offset captured at the start.
    pub fn done(&self, slot: usize) -> bool {
        let a = &self.assigned[slot];
        a.end <= a.start || a.next.is_some_and(|n| n >= a.end)
    }

    /// Offsets read and offsets to read in total (bounded reads; live reads count up).
    pub fn progress(&self) -> (u64, u64) {
        self.assigned.iter().fold((0, 0), |(d, t), a| {
            let done = a.next.unwrap_or(a.start).saturating_sub(a.start).max(0) as u64;
            let total = a.end.saturating_sub(a.start).max(0) as u64;
            (d + done.min(total.max(done)), t + total.max(done))
        })
    }

    /// Commits `(topic, partition, next offset)` under the group, each with `metadata`.
    pub fn commit(
        &self,
        offsets: &[(String, i32, i64)],
        metadata: &str,
        sync: bool,
    ) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(KafkaError::client("building the commit"))?;
            if let Some(mut elem) = tpl.find_partition(topic, *partition) {
                elem.set_metadata(metadata);
            }
        }
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.consumer
            .commit(&tpl, mode)
            .map_err(KafkaError::client("committing offsets"))
    }

    /// Per assigned partition, `(slot in the assignment, topic index, partition, messages
    /// behind the end)`; asks the broker for the end offsets (a round trip per partition).
    pub fn lag(&self) -> Vec<(usize, usize, i32, i64)> {
        if self.lost.is_some() {
            return Vec::new();
        }
        self.assigned
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(&self.topics[a.topic], a.partition, Duration::from_secs(1))
                    .ok()?;
                Some((
                    slot,
                    a.topic,
                    a.partition,
                    (high - a.next.unwrap_or(a.start)).max(0),
                ))
            })
            .collect()
    }

    /// Topics whose partition count differs from the one the assignment was made with:
    /// `(topic index, then, now)`. Asks the broker (a metadata round trip per topic).
    pub fn partition_changes(&self) -> Vec<(usize, i32, i32)> {
        // A throwaway client: metadata of a vanished topic must not reach the consumer's.
        let Ok(probe) = self.settings.consumer().create::<BaseConsumer>() else {
            return Vec::new();
        };
        if self.lost.is_some() {
            return Vec::new();
        }
        self.topics
            .iter()
            .enumerate()
            .filter_map(|(t, topic)| {
                let now = topic_partitions(&probe, topic).ok()?;
                let then = self.counts.get(t).copied()?;
                (now != then).then_some((t, then, now))
            })
            .collect()
    }

    pub fn topic_name(&self, topic: usize) -> &str {
        &self.topics[topic]
    }
}

/// Watches a consumer's client-level errors for those after which it must be replaced:
/// all brokers down (the broker may come back without the topics) and a vanished topic.
/// librdkafka 2.12 can crash (SIGSEGV in `rd_kafka_metadata_cache_find`) when a client
/// that knew a topic gets metadata from a broker that came back without it; a new client
/// doesn't.
pub(crate) struct LossWatch(Arc<AtomicBool>);

impl ClientContext for LossWatch {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
            )
        ) {
            self.0.store(true, Ordering::Relaxed);
        }
        tracing::warn!("librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for LossWatch {}

fn watched_consumer(
    settings: &KafkaSettings,
    watch: &Arc<AtomicBool>,
) -> Result<BaseConsumer<LossWatch>, KafkaError> {
    settings
        .consumer()
        .create_with_context(LossWatch(Arc::clone(watch)))
        .map_err(KafkaError::client("creating the consumer"))
}

/// Start offsets for the assignment, and the commit metadata found.
fn start_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[String],
    assigned: &[Assigned],
    start: StartAt,
) -> Result<(Vec<Offset>, Vec<Option<String>>), KafkaError> {
    let none = vec![None; assigned.len()];
    match start {
        StartAt::Beginning => Ok((
            assigned.iter().map(|a| Offset::Offset(a.start)).collect(),
            none,
        )),
        StartAt::End => Ok((
            assigned.iter().map(|a| Offset::Offset(a.end)).collect(),
            none,
        )),
        StartAt::Committed => {
            let mut tpl = TopicPartitionList::new();
            for a in assigned {
                tpl.add_partition(&topics[a.topic], a.partition);
            }
            let committed = consumer
                .committed_offsets(tpl, TIMEOUT)
                .map_err(KafkaError::client("reading committed offsets"))?;
            let mut offsets = Vec::new();
            let mut metadata = Vec::new();
            for a in assigned {
                let elem = committed.find_partition(&topics[a.topic], a.partition);
                let (offset, meta) = match elem.as_ref().map(|e| (e.offset(), e.metadata())) {
                    Some((Offset::Offset(o), meta)) if o >= a.start => (
                        Offset::Offset(o),
                        (!meta.is_empty()).then(|| meta.to_string()),
                    ),
                    _ => {
                        // A partition added since the last run (or a new group): all of it.
                        tracing::warn!(
                            "{}/{}: no committed offset in this group; reading it from offset {} (the partition is new to the group)",
                            topics[a.topic],
                            a.partition,
                            a.start
                        );
                        (Offset::Offset(a.start), None)
                    }
                };
                offsets.push(offset);
                metadata.push(meta);
            }
            Ok((offsets, metadata))
        }
        StartAt::Time { ms, ask } => {
            let mut tpl = TopicPartitionList::new();
            for a in assigned {
                tpl.add_partition_offset(&topics[a.topic], a.partition, Offset::Offset(ms as i64))
                    .map_err(KafkaError::client("building the time query"))?;
            }
            let found = if !ask {
                tracing::info!("offsets_for_times disabled; scanning from the start");
                None
            } else {
                match consumer.offsets_for_times(tpl, TIMEOUT) {
                    Ok(found) => Some(found),
                    Err(e) => {
                        tracing::warn!("offsets_for_times failed ({e}); scanning from the start");
                        None
                    }
                }
            };
            Ok((
                assigned
                    .iter()
                    .map(|a| {
                        let o = found
                            .as_ref()
                            .and_then(|f| f.find_partition(&topics[a.topic], a.partition))
                            .map(|e| e.offset());
                        match o {
                            Some(Offset::Offset(o)) if o >= a.start => Offset::Offset(o),
                            Some(Offset::End) => Offset::Offset(a.end),
                            _ => Offset::Offset(a.start),
                        }
                    })
                    .collect(),
                none,
            ))
        }
    }
}

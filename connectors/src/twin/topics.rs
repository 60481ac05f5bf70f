//! Reading a time range of Kafka topics for a twin: the spans topic (required) and the
//! metrics topic (optional: without it the twin takes the simulator's metrics), from the
//! first message at or after `from` to the end offsets at the start, records outside
//! `[from, to)` left out.
//!
//! In: a [`TopicRange`]. Out: spans, metric points and counts of what did not decode. Keeps
//! no state; commits nothing (a throwaway consumer group).

use std::time::{Duration, Instant};

use augur_operators::records::{MetricPoint, Span};

use super::TwinError;
use crate::kafka::{Encoding, KafkaSettings, PartitionConsumer, StartAt, decode_message};
use crate::otlp::MetricNames;

/// A bounded read that gets no message for this long while offsets remain fails.
const STALL: Duration = Duration::from_secs(30);

/// Where and what to read.
#[derive(Clone, Debug)]
pub struct TopicRange {
    pub settings: KafkaSettings,
    pub spans_topic: String,
    pub spans_encoding: Encoding,
    pub metrics_topic: String,
    pub metrics_encoding: Encoding,
    /// ms since the epoch; `None`: from the beginning / to the end.
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// Find `from`'s offsets with `offsets_for_times` (else read from the beginning).
    pub offsets_for_times: bool,
}

/// What a read found.
#[derive(Debug, Default)]
pub struct TopicData {
    pub spans: Vec<Span>,
    pub metrics: Vec<MetricPoint>,
    /// Whether the metrics topic exists.
    pub metrics_read: bool,
    /// Messages read per topic (spans, metrics).
    pub messages: (u64, u64),
    /// Messages that did not decode, and records inside messages that did not.
    pub undecodable: u64,
}

/// Reads the range's spans and metric points (see the module doc).
pub fn read_topics(range: &TopicRange) -> Result<TopicData, TwinError> {
    let mut data = TopicData::default();
    let start = range
        .from_ms
        .map_or(StartAt::Beginning, |ms| StartAt::Time {
            ms,
            ask: range.offsets_for_times,
        });
    let (lo_ns, hi_ns) = (
        range.from_ms.map_or(0, |ms| ms.saturating_mul(1_000_000)),
        range
            .to_ms
            .map_or(u64::MAX, |ms| ms.saturating_mul(1_000_000)),
    );
    let names = MetricNames::default();
    for (topic, metrics, encoding) in [
        (&range.spans_topic, false, range.spans_encoding),
        (&range.metrics_topic, true, range.metrics_encoding),
    ] {
        let mut consumer = match PartitionConsumer::open(
            &range.settings,
            std::slice::from_ref(topic),
            0,
            1,
            start,
            true,
        ) {
            Ok(c) => c,
            // Metrics are optional; a spans topic that can't be read is an error.
            Err(e) if metrics => {
                eprintln!("{topic}: not read ({e}); the twin takes the simulator's metrics");
                continue;
            }
            Err(e) => return Err(TwinError::Kafka(format!("{topic}: {e}"))),
        };
        data.metrics_read |= metrics;
        let slots = consumer.assignment().len();
        let (mut spans, mut points) = (Vec::new(), Vec::new());
        let mut rates = crate::otlp::Rates::default();
        let mut last_read = Instant::now();
        while !(0..slots).all(|slot| consumer.done(slot)) {
            if last_read.elapsed() > STALL {
                let (done, total) = consumer.progress();
                return Err(TwinError::Kafka(format!(
                    "{topic}: nothing read for {} s with {} of {total} offsets left (is the broker up?)",
                    STALL.as_secs(),
                    total.saturating_sub(done)
                )));
            }
            let mut read = 0u64;
            let mut undecodable = 0u64;
            consumer.poll(1000, Duration::from_millis(200), |m| {
                read += 1;
                match decode_message(
                    m.payload,
                    metrics,
                    encoding,
                    &names,
                    &mut rates,
                    &mut spans,
                    &mut points,
                ) {
                    Ok(d) => undecodable += d.record_errors.len() as u64,
                    Err(_) => undecodable += 1,
                }
            });
            data.undecodable += undecodable;
            if read > 0 {
                last_read = Instant::now();
            }
            if metrics {
                data.messages.1 += read;
                data.metrics.extend(
                    points
                        .drain(..)
                        .filter(|p| (lo_ns..hi_ns).contains(&p.time_ns)),
                );
            } else {
                data.messages.0 += read;
                data.spans.extend(
                    spans
                        .drain(..)
                        .filter(|s| (lo_ns..hi_ns).contains(&s.start_ns)),
                );
            }
        }
    }
    Ok(data)
}

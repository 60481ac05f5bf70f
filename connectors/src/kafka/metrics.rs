//! What the Kafka source and sink report as they go (messages in and out per topic,
//! consumer lag, open windows), for the application to expose however it likes.

/// Receives the Kafka connectors' counters; implementations must be cheap and thread-safe
/// (every worker's source calls them).
pub trait KafkaMetrics: Send + Sync {
    /// `n` more messages read from `topic`.
    fn records_in(&self, topic: &str, n: u64);
    /// One more message written to `topic`.
    fn record_out(&self, topic: &str);
    /// Messages behind the end of `topic`/`partition`.
    fn lag(&self, topic: &str, partition: i32, lag: i64);
    /// Windows not yet durable, as this worker sees them.
    fn windows_open(&self, windows: u64);
}

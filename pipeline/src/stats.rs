//! Job counters shared by workers and the main thread.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use augur_connectors::dead_letter::DeadLetterKind;
use augur_operators::{EventTime, InferenceTimes, SpanKind};
use std::sync::Arc;

/// Names of [`SpanKind`]s, in its order (`span.kind` values in OTLP, lower case).
pub const SPAN_KIND_NAMES: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

#[derive(Default)]
pub struct JobStats {
    /// Lines or messages read, good or bad.
    pub messages: AtomicU64,
    pub spans: AtomicU64,
    /// Spans by OpenTelemetry kind (indexed as [`SpanKind`]): which instrumentation shape
    /// the job sees (see [`JobStats::span_shape`]).
    pub span_kinds: [AtomicU64; 6],
    pub metric_points: AtomicU64,
    pub log_records: AtomicU64,
    /// Dead letters: messages or records that failed to decode or validate, empty
    /// messages, and messages with late or future-dated records.
    pub dead_letters: AtomicU64,
    /// Messages or records that failed to decode or validate (also dead-lettered).
    pub decode_errors: AtomicU64,
    /// Empty messages (also dead-lettered).
    pub empty: AtomicU64,
    /// Records that arrived after their window had closed (dead-lettered).
    pub late: AtomicU64,
    /// Records dated too far after the wall clock (dead-lettered).
    pub future: AtomicU64,
    /// Outputs of this process's windows ending before this are durable (set by the main
    /// thread after the sinks confirmed them; `EventTime::MAX` at the end). Sources commit
    /// up to the lowest of all processes' (see `control`).
    pub durable: AtomicU64,
    /// Set by the main thread when the outputs of everything before `durable` are
    /// confirmed for the last time: workers make their final commit.
    pub finished: std::sync::atomic::AtomicBool,
    /// The lowest resume frontier of the workers' sources (see `WorkerSource`).
    pub resume_from: Mutex<Option<EventTime>>,
    /// Set when outputs can't be delivered: workers stop waiting to commit.
    pub aborted: std::sync::atomic::AtomicBool,
    /// Per worker: (done, total) progress in the source's unit.
    pub progress: Mutex<BTreeMap<usize, (u64, u64)>>,
    /// When each window was released by the sources (the last worker to pass it).
    pub window_closed_at: Mutex<BTreeMap<EventTime, Instant>>,
    /// Inference time per window, per detector (recorded by the model workers).
    pub inference: Arc<InferenceTimes>,
    /// Metric points not read, by metric name (at most [`IGNORED_NAMES`] names; the
    /// rest under [`OTHER_NAMES`]).
    pub ignored_metrics: Mutex<BTreeMap<String, u64>>,
    /// The services spans and metrics name, and metrics and logs joined to their
    /// instance's traced service.
    pub service_join: Arc<crate::service_join::ServiceJoin>,
}

/// Metric names counted one by one among those not read.
pub const IGNORED_NAMES: usize = 100;
/// Where the points of further names not read are counted.
pub const OTHER_NAMES: &str = "(other names)";

impl JobStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one dead letter and what it stands for.
    pub fn count_dead_letter(&self, kind: DeadLetterKind) {
        Self::add(&self.dead_letters, 1);
        match kind {
            DeadLetterKind::Invalid => Self::add(&self.decode_errors, 1),
            DeadLetterKind::Rejected { records } => Self::add(&self.decode_errors, records),
            DeadLetterKind::Empty => Self::add(&self.empty, 1),
            DeadLetterKind::Late { records } => Self::add(&self.late, records),
            DeadLetterKind::Future { records } => Self::add(&self.future, records),
        }
    }

    /// Adds a batch's spans per kind (indexed as [`SpanKind`]).
    pub fn add_span_kinds(&self, per_kind: [u64; 6]) {
        for (counter, k) in self.span_kinds.iter().zip(per_kind) {
            if k > 0 {
                counter.fetch_add(k, Ordering::Relaxed);
            }
        }
    }

    /// Counts metric points not read, by name.
    pub fn add_ignored_metrics(&self, names: &[(String, u64)]) {
        if names.is_empty() {
            return;
        }
        if let Ok(mut m) = self.ignored_metrics.lock() {
            for (name, n) in names {
                if let Some(count) = m.get_mut(name) {
                    *count += n;
                } else if m.len() < IGNORED_NAMES {
                    m.insert(name.clone(), *n);
                } else {
                    *m.entry(OTHER_NAMES.to_string()).or_default() += n;
                }
            }
        }
    }

    /// What the metrics not read were, in one line; `None` when every point was read.
    pub fn ignored_metrics_line(&self) -> Option<String> {
        let m = self.ignored_metrics.lock().ok()?;
        if m.is_empty() {
            return None;
        }
        let mut names: Vec<(&String, &u64)> = m.iter().collect();
        names.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let total: u64 = names.iter().map(|(_, n)| **n).sum();
        let counted: Vec<String> = names
            .iter()
            .map(|(name, n)| format!("{name} ({n})"))
            .collect();
        Some(format!(
            "metrics not read: {total} points of {} names: {} (histograms and summaries are not read; map gauges and sums to a resource in [metrics.names])",
            names.len(),
            crate::display::listed(&counted, 10),
        ))
    }

    /// Spans seen per kind, `(kind name, count)`, in [`SpanKind`] order.
    pub fn span_kind_counts(&self) -> [(&'static str, u64); 6] {
        let names = SPAN_KIND_NAMES;
        std::array::from_fn(|i| (names[i], self.span_kinds[i].load(Ordering::Relaxed)))
    }

    /// The instrumentation shape the spans so far show, in one line; with no span, that
    /// there are none (an application without tracing, or the wrong input), as what is
    /// not measured then is much.
    pub fn span_shape(&self) -> String {
        let n = self.span_kind_counts().map(|(_, k)| k);
        let total: u64 = n.iter().sum();
        if total == 0 {
            return "span shape: no spans: requests, latency, calls and network gaps are not \
                    measured; moves are read from metrics and logs only"
                .to_string();
        }
        let kindless = n[SpanKind::Unspecified as usize];
        let (server, client) = (n[SpanKind::Server as usize], n[SpanKind::Client as usize]);
        let shape = if kindless == total {
            "kind-less: no span states its kind; a span whose parent is in another service is \
             taken as a call to its service, its kind-less parent as the caller's side"
        } else if kindless > 0 {
            "mixed: some spans state no kind; those are read as in the kind-less shape"
        } else if server > 0 && client > 0 {
            "client/server pairs"
        } else if server > 0 {
            "server spans only: calls have no client side (network gaps read as 0)"
        } else {
            "no server spans: no requests or calls can be counted"
        };
        let counts: Vec<String> = self
            .span_kind_counts()
            .iter()
            .filter(|(_, k)| *k > 0)
            .map(|(name, k)| format!("{k} {name}"))
            .collect();
        format!("span shape: {shape} ({})", counts.join(", "))
    }

    /// Summed progress over workers.
    pub fn progress(&self) -> (u64, u64) {
        match self.progress.lock() {
            Ok(p) => p.values().fold((0, 0), |(d, t), (a, b)| (d + a, t + b)),
            Err(_) => (0, 0),
        }
    }

    /// Outputs of windows before this were delivered by an earlier run.
    pub fn resume_from(&self) -> EventTime {
        self.resume_from.lock().ok().and_then(|r| *r).unwrap_or(0)
    }

    pub fn closed_at(&self, window_end: EventTime) -> Option<Instant> {
        self.window_closed_at.lock().ok()?.get(&window_end).copied()
    }
}

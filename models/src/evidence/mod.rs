//! Training-free root-cause diagnosis: which service changed its behaviour at a moment, and
//! how, judged against the application's own recent past.
//!
//! **In:** closed windows ([`WindowSnapshot`]s, in order) and a moment `at`. The windows up
//! to `at` (at most [`EvidenceParams::before_ms`] of them) are the application's normal;
//! those after it (at most [`EvidenceParams::after_ms`]) are what happened.
//!
//! **Out:** a [`Diagnosis`]: services ranked by how strongly one of their own signals moved,
//! each with the resource it points at and the evidence (signal, before, after, z).
//!
//! Each signal is a per-request (or per-call) mean pooled over a range of windows, so it
//! stays meaningful at one request per second as at thousands: a pooled mean over a minute
//! of windows, not a per-window percentile of one or two requests. A move counts when it is
//! significant (`z ≥` [`EvidenceParams::min_z`], the standard error taken from the spread
//! of the per-window means of the normal range, with a floor relative to the mean), and is
//! scored by its size relative to the normal level, so signals of different units compare.
//! The signals are chosen so that a fault's effect shows at its own service, not at the
//! services that wait for it:
//! - **self time** (→ `cpu`): a service's mean request latency minus the client latency of
//!   the calls it makes, per request. A slow callee raises its callers' latency but not
//!   their self time.
//! - **network** (→ `network`): per call edge the mean gap between the caller's and the
//!   callee's view of a call; a service's score pools the edges it takes part in (a delay
//!   on one service's network shows on every edge that touches it, and on few others).
//! - **errors** (→ `errors`): the share of a service's requests with error status.
//! - **call pattern** (→ `errors`): calls per request from a service to each callee, either
//!   way: code that throws or returns early stops making the calls that follow it.
//! - **cpu** (→ `cpu`): CPU utilisation where metrics are exported (any scrape interval: only
//!   windows with a sample count).
//! - **traffic** (→ `network`): a fall of a service's network bytes per second where metrics
//!   are exported: a delayed or lossy link, or an instance that stopped serving, moves fewer
//!   bytes. A rise follows the load, so it is not read.
//! - **memory** (→ `memory`), **disk** (→ `disk`): a rise of a service's memory in use, of
//!   its disk bytes per second, where metrics are exported. A service whose own time rose
//!   along with its memory or disk use, and not its CPU, is named for that resource.
//! - **log errors, log templates, log flow** (→ `errors`): the share of a service's log
//!   records at error severity, of each template, and, within each trace, how often one
//!   log statement follows another: code that throws stops writing the lines that follow.
//!
//! State: none; a pure function of its input.

mod delays;
mod detector;
mod normal;
mod onset;
mod repair;
mod stats;

pub use detector::{EvidenceDetector, EvidenceDetectorConfig, LearnedNormal};
pub use normal::{MIN_NORMAL_WINDOWS, MIN_OVERLAP, NormalError, NormalProfile};

use std::collections::BTreeMap;

use augur_operators::{EventTime, Resource, WindowSnapshot};
use serde::{Deserialize, Serialize};

use stats::Pooled;

/// Parameters of a diagnosis (config `[diagnose]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceParams {
    /// The normal: windows ending in `(at - before_ms, at]`. Default 120000.
    pub before_ms: u64,
    /// What happened: windows ending in `(at, at + after_ms]`. Default 60000.
    pub after_ms: u64,
    /// Smallest z of a move that counts. Default 3.
    pub min_z: f64,
    /// Culprits listed. Default 5.
    pub max_culprits: usize,
    /// Where learned normals (`normal-<name>.json`, written by `augur train --model
    /// normal`) are found and written. The one that knows the most of a replay's services
    /// (at least half) joins the normal. Default `models/normals` (apart from the model
    /// checkpoints: a directory of normals alone must not hide the shipped checkpoints).
    pub normal_dir: std::path::PathBuf,
    /// The signals read (to leave one out, or to measure what each contributes). Default
    /// all: `self_time`, `network`, `errors`, `call_pattern`, `cpu`, `log_errors`,
    /// `log_template`, `log_flow`, `traffic`, `memory`, `disk`.
    pub signals: Vec<Signal>,
    /// Diagnose a departure under way at the moment asked from where it began (found by
    /// the `evidence` detector run over the telemetry before it; see `onset`), when it had
    /// lasted at least the detector's recent range. `false`: the normal always ends at the
    /// moment asked. Default true.
    pub follow_onset: bool,
}

impl Default for EvidenceParams {
    fn default() -> Self {
        EvidenceParams {
            before_ms: 120_000,
            after_ms: 60_000,
            min_z: 3.0,
            max_culprits: 5,
            normal_dir: std::path::PathBuf::from("models/normals"),
            signals: Signal::ALL.to_vec(),
            follow_onset: true,
        }
    }
}

/// What moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    SelfTime,
    Network,
    Errors,
    CallPattern,
    Cpu,
    /// The share of a service's log records at error severity or above.
    LogErrors,
    /// The share of a service's log records of one template (mined online), either way: a
    /// new template, or a usual one gone.
    LogTemplate,
    /// Within requests, how often a log statement follows another, either way: code that
    /// throws or returns early stops writing the lines that usually follow.
    LogFlow,
    /// A fall of the network bytes per second of a service's instances (metrics).
    Traffic,
    /// A rise of the memory in use by a service's instances (metrics).
    Memory,
    /// A rise of the disk bytes per second of a service's instances (metrics).
    Disk,
}

impl Signal {
    pub const ALL: [Signal; 11] = [
        Signal::SelfTime,
        Signal::Network,
        Signal::Errors,
        Signal::CallPattern,
        Signal::Cpu,
        Signal::LogErrors,
        Signal::LogTemplate,
        Signal::LogFlow,
        Signal::Traffic,
        Signal::Memory,
        Signal::Disk,
    ];

    /// The resource a move of this signal points at.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::SelfTime | Signal::Cpu => "cpu",
            Signal::Network | Signal::Traffic => "network",
            Signal::Memory => "memory",
            Signal::Disk => "disk",
            Signal::Errors
            | Signal::CallPattern
            | Signal::LogErrors
            | Signal::LogTemplate
            | Signal::LogFlow => "errors",
        }
    }
}

/// One signal of one service (or one of its edges), before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub signal: Signal,
    /// The edge or callee the signal is about (`caller->callee`), if not the service itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// Pooled means in the normal range and after `at` (ms for times, a share for errors,
    /// calls per request, utilisation).
    pub before: f64,
    pub after: f64,
    pub z: f64,
    /// The move's size relative to the normal level (0 when not significant or the wrong
    /// way): what ranks services.
    pub score: f64,
}

/// A ranked culprit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Culprit {
    pub service: String,
    pub score: f64,
    /// The resource its evidence points at: the strongest move's, except that a rise of own
    /// time at least a tenth of a wider network gap's (by score) comes before the gap, and
    /// memory or disk that rose with own time, CPU not, before own time ([`resource_of`]).
    pub resource: String,
    /// The service's signals that moved significantly, strongest first.
    pub evidence: Vec<Evidence>,
    /// The counterfactual: how many ms lower the entry services' mean request latency
    /// would have been after the moment had this service's own time and its calls' network
    /// gaps stayed at their normal levels (calls taken as sequential: an upper bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_ms: Option<f64>,
    /// Where its own time rose: the operation whose own time per request of the service
    /// rose the most, when the service's self time moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationMove>,
}

/// An operation's own time per request of its service, ms, before and after the moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationMove {
    /// The span name.
    pub name: String,
    pub before: f64,
    pub after: f64,
}

/// The answer to "what caused what happened at `at`?".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub at: EventTime,
    /// Windows in the normal range and after `at` that had any request.
    pub windows_before: usize,
    pub windows_after: usize,
    /// Mean request latency at the entry services (those no other service calls), in the
    /// normal range and after `at`, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_ms: Option<(f64, f64)>,
    /// Services that moved, strongest first (at most `max_culprits`).
    pub culprits: Vec<Culprit>,
    /// Where the examined range started instead of `at`: no window within `after_ms` of
    /// `at` had a request, and the first `after_ms` of telemetry after it were examined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examined_from: Option<EventTime>,
    /// Of `windows_before`, those from earlier in the telemetry than the normal range: the
    /// fault-free windows the `evidence` detector would have kept as its long-term normal.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_windows: usize,
    /// No move passed `min_z`: the culprits are the moves with z of at least half of it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weak: bool,
    /// Where the diagnosis was made instead of `at`: a departure from the normal was under
    /// way at `at` and had begun here (the normal range ends here, the examined range
    /// starts here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<EventTime>,
}

/// Per service, its signals over one range of windows. Maps are stored as lists of
/// pairs (JSON has no tuple keys).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    #[serde(with = "as_pairs")]
    self_time: BTreeMap<String, Pooled>,
    #[serde(with = "as_pairs")]
    latency: BTreeMap<String, Pooled>,
    #[serde(with = "as_pairs")]
    errors: BTreeMap<String, (f64, f64)>,
    #[serde(with = "as_pairs")]
    requests: BTreeMap<String, f64>,
    #[serde(with = "as_pairs")]
    calls: BTreeMap<(String, String), f64>,
    /// Per call edge: Σ over windows of calls² / the caller's requests, for the spread of
    /// calls per request between windows ([`Range::dispersion`]).
    #[serde(with = "as_pairs", default)]
    calls_sq: BTreeMap<(String, String), f64>,
    #[serde(with = "as_pairs")]
    gap: BTreeMap<(String, String), Pooled>,
    /// Per call edge: the calls with a gap, then of them those with a gap of at least each
    /// of [`augur_operators::GAP_LEVELS_MS`] ([`delays`]).
    #[serde(with = "as_pairs", default)]
    gap_over: BTreeMap<(String, String), [f64; delays::LADDER]>,
    #[serde(with = "as_pairs")]
    client: BTreeMap<(String, String), Pooled>,
    #[serde(with = "as_pairs")]
    cpu: BTreeMap<String, Pooled>,
    /// Per service: network bytes per second (metrics).
    #[serde(with = "as_pairs", default)]
    traffic: BTreeMap<String, Pooled>,
    /// Per service: memory in use, bytes (metrics).
    #[serde(with = "as_pairs", default)]
    memory: BTreeMap<String, Pooled>,
    /// Per service: disk bytes per second (metrics).
    #[serde(with = "as_pairs", default)]
    disk: BTreeMap<String, Pooled>,
    /// Per service: log records and, of them, at error severity or above.
    #[serde(with = "as_pairs")]
    logs: BTreeMap<String, (f64, f64)>,
    /// Per (service, template id): records and the template's latest text.
    #[serde(with = "as_pairs")]
    templates: BTreeMap<(String, u64), (f64, String)>,
    /// Per (service, from template, to template): how often, within a trace, one followed
    /// the other.
    #[serde(with = "as_pairs", default)]
    transitions: BTreeMap<(String, u64, u64), f64>,
    /// Per service, per operation: Σ own time, ms, over the windows where the operation
    /// was among the service's [`augur_operators::MAX_OPERATIONS`] with the most.
    #[serde(with = "as_pairs", default)]
    operations: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per service: requests of the windows whose own time came from span trees (so its
    /// operations are known), the whole `operations` are per.
    #[serde(with = "as_pairs", default)]
    operation_requests: BTreeMap<String, f64>,
    /// Windows with a request.
    windows: usize,
    /// Windows with any record (a request, a metric sample, a log record): the normal of
    /// an application without tracing is counted in these.
    #[serde(default)]
    telemetry_windows: usize,
}

/// A map (de)serialized as a list of `[key, value]` pairs.
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, K: Serialize, V: Serialize>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Whether any service of `w` had a request.
fn has_requests(w: &WindowSnapshot) -> bool {
    w.services.iter().any(|s| s.requests > 0)
}

/// Whether `w` holds any record: a request, a metric sample, a log record.
fn has_records(w: &WindowSnapshot) -> bool {
    !w.services.is_empty() || !w.logs.is_empty()
}

impl Range {
    /// Its windows with a request, or, for an application without tracing (`traced`
    /// false), with any record.
    fn windows_counted(&self, traced: bool) -> usize {
        if traced {
            self.windows
        } else {
            self.telemetry_windows
        }
    }

    /// Pools `other`'s windows into this range.
    fn absorb(&mut self, other: &Range) {
        /// Adds each of `from`'s values into `into`'s under the same key; a key is copied
        /// only when `into` lacks it (a long-term normal absorbs every window).
        fn merge<K: Ord + Clone, V: Default>(
            into: &mut BTreeMap<K, V>,
            from: &BTreeMap<K, V>,
            add: impl Fn(&mut V, &V),
        ) {
            for (k, v) in from {
                match into.get_mut(k) {
                    Some(slot) => add(slot, v),
                    None => add(into.entry(k.clone()).or_default(), v),
                }
            }
        }
        let pooled = |into: &mut Pooled, p: &Pooled| into.absorb(p);
        let count = |into: &mut f64, c: &f64| *into += c;
        let share = |into: &mut (f64, f64), s: &(f64, f64)| {
            into.0 += s.0;
            into.1 += s.1;
        };
        merge(&mut self.self_time, &other.self_time, pooled);
        merge(&mut self.latency, &other.latency, pooled);
        merge(&mut self.errors, &other.errors, share);
        merge(&mut self.requests, &other.requests, count);
        merge(&mut self.calls, &other.calls, count);
        merge(&mut self.calls_sq, &other.calls_sq, count);
        merge(&mut self.transitions, &other.transitions, count);
        merge(&mut self.operations, &other.operations, |into, ops| {
            merge(into, ops, count)
        });
        merge(
            &mut self.operation_requests,
            &other.operation_requests,
            count,
        );
        merge(&mut self.gap, &other.gap, pooled);
        merge(&mut self.gap_over, &other.gap_over, |into, over| {
            for (a, b) in into.iter_mut().zip(over) {
                *a += b;
            }
        });
        merge(&mut self.client, &other.client, pooled);
        merge(&mut self.cpu, &other.cpu, pooled);
        merge(&mut self.traffic, &other.traffic, pooled);
        merge(&mut self.memory, &other.memory, pooled);
        merge(&mut self.disk, &other.disk, pooled);
        merge(&mut self.logs, &other.logs, share);
        merge(&mut self.templates, &other.templates, |into, (c, text)| {
            into.0 += c;
            into.1.clone_from(text);
        });
        self.windows += other.windows;
        self.telemetry_windows += other.telemetry_windows;
    }

    /// How much more calls per request on `edge` vary between windows than independent
    /// requests would (Pearson's χ² over the windows / degrees of freedom; at least 1):
    /// requests come in clusters (a search fans out to every train it lists, each calling
    /// the same callee), and a share moves by whole clusters. 1 with fewer than 3 windows.
    fn dispersion(&self, edge: &(String, String), binomial: bool) -> f64 {
        let (Some(&c), Some(&n), Some(&sq)) = (
            self.calls.get(edge),
            self.requests.get(&edge.0),
            self.calls_sq.get(edge),
        ) else {
            return 1.0;
        };
        let windows = self.self_time.get(&edge.0).map_or(0.0, |p| p.windows());
        let r = c / n;
        let var = if binomial { r * (1.0 - r) } else { r };
        if windows < 3.0 || var <= 0.0 {
            return 1.0;
        }
        ((sq - r * c) / (var * (windows - 1.0))).max(1.0)
    }

    /// Replaces `service`'s log records, templates and log flow with `other`'s.
    fn logs_from(&mut self, other: &Range, service: &str) {
        match other.logs.get(service) {
            Some(&counts) => {
                self.logs.insert(service.to_string(), counts);
            }
            None => {
                self.logs.remove(service);
            }
        }
        self.templates.retain(|(s, _), _| s != service);
        self.templates.extend(
            other
                .templates
                .iter()
                .filter(|((s, _), _)| s == service)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        self.transitions.retain(|(s, _, _), _| s != service);
        self.transitions.extend(
            other
                .transitions
                .iter()
                .filter(|((s, _, _), _)| s == service)
                .map(|(k, v)| (k.clone(), *v)),
        );
    }

    /// Per callee, the services that called it (calls to itself left out).
    fn callers_of(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut callers_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (caller, callee) in self.client.keys() {
            if caller != callee {
                callers_of.entry(callee).or_default().push(caller);
            }
        }
        callers_of
    }

    /// Services seen in any signal.
    fn services(&self) -> std::collections::BTreeSet<&str> {
        self.requests
            .keys()
            .chain(self.cpu.keys())
            .chain(self.traffic.keys())
            .chain(self.memory.keys())
            .chain(self.disk.keys())
            .chain(self.logs.keys())
            .map(String::as_str)
            .collect()
    }

    fn of<'a>(windows: impl Iterator<Item = &'a WindowSnapshot>) -> Range {
        let mut r = Range::default();
        // Counts per edge, keyed by the windows' own names until the end (no copies per
        // window).
        let mut calls: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
        let mut gap_over: BTreeMap<(&str, &str), [f64; delays::LADDER]> = BTreeMap::new();
        for w in windows {
            let mut out_client: BTreeMap<&str, f64> = BTreeMap::new();
            let requests: BTreeMap<&str, f64> = w
                .services
                .iter()
                .filter(|s| s.requests > 0)
                .map(|s| (s.service.as_str(), s.requests as f64))
                .collect();
            for e in &w.edges {
                let count = calls
                    .entry((e.caller.as_str(), e.callee.as_str()))
                    .or_default();
                count.0 += e.calls as f64;
                if let Some(n) = requests.get(e.caller.as_str()) {
                    count.1 += (e.calls as f64).powi(2) / n;
                }
                *out_client.entry(e.caller.as_str()).or_default() += e.client_total_ms;
                r.client
                    .entry((e.caller.clone(), e.callee.clone()))
                    .or_default()
                    .add(e.client_total_ms, e.calls as f64);
                if e.gap_calls > 0 {
                    let over = gap_over
                        .entry((e.caller.as_str(), e.callee.as_str()))
                        .or_default();
                    over[0] += e.gap_calls as f64;
                    for (o, c) in over[1..].iter_mut().zip(e.gap_over) {
                        *o += c as f64;
                    }
                    r.gap
                        .entry((e.caller.clone(), e.callee.clone()))
                        .or_default()
                        .add(e.gap_total_ms, e.gap_calls as f64);
                }
            }
            for l in &w.logs {
                let e = r.logs.entry(l.service.clone()).or_default();
                e.0 += l.records as f64;
                e.1 += l.errors as f64;
                for t in &l.transitions {
                    *r.transitions
                        .entry((l.service.clone(), t.from, t.to))
                        .or_default() += t.count as f64;
                }
                for t in &l.templates {
                    let slot = r
                        .templates
                        .entry((l.service.clone(), t.id))
                        .or_insert_with(|| (0.0, String::new()));
                    slot.0 += t.count as f64;
                    slot.1.clone_from(&t.template);
                }
            }
            let mut any = false;
            for s in &w.services {
                // Samples only: usage held from an earlier window is not a new observation.
                let sampled = |r: Resource| !s.usage_held[r.index()];
                let cpu = s.usage[Resource::Cpu.index()][2];
                if cpu > 0.0 && sampled(Resource::Cpu) {
                    r.cpu.entry(s.service.clone()).or_default().add(cpu, 1.0);
                }
                for (resource, into) in [
                    (Resource::Network, &mut r.traffic),
                    (Resource::Memory, &mut r.memory),
                    (Resource::Disk, &mut r.disk),
                ] {
                    let level = s.usage[resource.index()][2];
                    if level > 0.0 && sampled(resource) {
                        into.entry(s.service.clone()).or_default().add(level, 1.0);
                    }
                }
                if s.requests == 0 {
                    continue;
                }
                any = true;
                let n = s.requests as f64;
                let busy_ms = s.outstanding * w.window_ms as f64;
                // Own time from whole span trees where taken; else the window's busy time
                // less the calls that ended in it.
                let own = s.own_ms.unwrap_or_else(|| {
                    busy_ms - out_client.get(s.service.as_str()).copied().unwrap_or(0.0)
                });
                r.self_time
                    .entry(s.service.clone())
                    .or_default()
                    .add(own, n);
                if s.own_ms.is_some() {
                    *r.operation_requests.entry(s.service.clone()).or_default() += n;
                }
                if !s.operations.is_empty() {
                    let ops = match r.operations.get_mut(s.service.as_str()) {
                        Some(ops) => ops,
                        None => r.operations.entry(s.service.clone()).or_default(),
                    };
                    for op in &s.operations {
                        match ops.get_mut(op.name.as_str()) {
                            Some(ms) => *ms += op.own_ms,
                            None => {
                                ops.insert(op.name.clone(), op.own_ms);
                            }
                        }
                    }
                }
                r.latency
                    .entry(s.service.clone())
                    .or_default()
                    .add(busy_ms, n);
                let e = r.errors.entry(s.service.clone()).or_default();
                e.0 += s.errors as f64;
                e.1 += n;
                *r.requests.entry(s.service.clone()).or_default() += n;
            }
            r.windows += usize::from(any);
            r.telemetry_windows += usize::from(has_records(w));
        }
        for ((caller, callee), (n, sq)) in calls {
            let edge = (caller.to_string(), callee.to_string());
            if sq > 0.0 {
                r.calls_sq.insert(edge.clone(), sq);
            }
            r.calls.insert(edge, n);
        }
        r.gap_over = gap_over
            .into_iter()
            .map(|((caller, callee), over)| ((caller.to_string(), callee.to_string()), over))
            .collect();
        r
    }
}

/// The normal range and the examined range around `at`.
/// The normal and the examined range around `at`, and where the examined range starts
/// ([`examined_from`]).
fn ranges(
    windows: &[WindowSnapshot],
    at: EventTime,
    params: &EvidenceParams,
) -> (Range, Range, EventTime) {
    let before = Range::of(
        windows
            .iter()
            .filter(|w| w.window_end <= at && w.window_end + params.before_ms > at),
    );
    let from = examined_from(windows, at, params);
    let after = Range::of(
        windows
            .iter()
            .filter(|w| w.window_end > from && w.window_end <= from + params.after_ms),
    );
    (before, after, from)
}

/// Where the examined range starts: `at`, or, when no window in `(at, at + after_ms]` had
/// a request (a gap in the telemetry), the start of the first window after it that had one.
fn examined_from(windows: &[WindowSnapshot], at: EventTime, params: &EvidenceParams) -> EventTime {
    let later = windows
        .iter()
        .filter(|w| w.window_end > at && has_requests(w));
    match later
        .map(|w| w.window_end.saturating_sub(w.window_ms))
        .min()
    {
        Some(first) if first >= at + params.after_ms => first,
        _ => at,
    }
}

/// [`diagnose_with_normal`], and simple rankings over the same ranges for comparison:
/// services by the ratio of their mean request latency after `at` to before (`latency`), of
/// their mean self time (`self-time`), and by the z-score of their CPU utilisation
/// (`cpu-zscore`); no significance test. Each list holds every service with data on both
/// sides.
pub fn diagnose_with_baselines(
    windows: &[WindowSnapshot],
    at: EventTime,
    params: &EvidenceParams,
    normal: Option<&NormalProfile>,
) -> (Diagnosis, Vec<(&'static str, Vec<String>)>) {
    let examined = ranges_with_normal(windows, at, params, normal);
    (
        diagnosis_of(&examined, at, params),
        baselines(&examined.before, &examined.after),
    )
}

fn baselines(before: &Range, after: &Range) -> Vec<(&'static str, Vec<String>)> {
    let ratio = |b: &BTreeMap<String, Pooled>, a: &BTreeMap<String, Pooled>| {
        let mut v: Vec<(String, f64)> = a
            .iter()
            .filter_map(|(s, pa)| {
                let pb = b.get(s)?;
                Some((s.clone(), stats::ratio(pb, pa)))
            })
            .collect();
        v.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        v.into_iter().map(|(s, _)| s).collect::<Vec<_>>()
    };
    let mut cpu: Vec<(String, f64)> = after
        .cpu
        .iter()
        .filter_map(|(s, pa)| Some((s.clone(), stats::zscore(before.cpu.get(s)?, pa))))
        .collect();
    cpu.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    vec![
        ("latency", ratio(&before.latency, &after.latency)),
        ("self-time", ratio(&before.self_time, &after.self_time)),
        ("cpu-zscore", cpu.into_iter().map(|(s, _)| s).collect()),
    ]
}

/// Diagnoses what happened at `at`; see the module docs.
pub fn diagnose(windows: &[WindowSnapshot], at: EventTime, params: &EvidenceParams) -> Diagnosis {
    diagnose_with_normal(windows, at, params, None)
}

/// [`diagnose`] with a learned normal pooled into the windows before `at`.
pub fn diagnose_with_normal(
    windows: &[WindowSnapshot],
    at: EventTime,
    params: &EvidenceParams,
    normal: Option<&NormalProfile>,
) -> Diagnosis {
    diagnosis_of(&ranges_with_normal(windows, at, params, normal), at, params)
}

/// The diagnosis of `examined` at `at`: weak moves when none passes the bar.
fn diagnosis_of(examined: &Examined, at: EventTime, params: &EvidenceParams) -> Diagnosis {
    let Examined {
        before,
        after,
        at: onset,
        from,
        history_windows,
    } = examined;
    let mut d = diagnose_ranges(before, after, at, params);
    if d.culprits.is_empty() {
        // Nothing passed the bar: the strongest moves below it, said to be weak, rather
        // than no answer.
        let relaxed = EvidenceParams {
            min_z: params.min_z / 2.0,
            ..params.clone()
        };
        d = diagnose_ranges(before, after, at, &relaxed);
        d.weak = !d.culprits.is_empty();
    }
    d.onset = (*onset != at).then_some(*onset);
    d.examined_from = (from != onset).then_some(*from);
    d.history_windows = *history_windows;
    d
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The ranges a diagnosis compares: the normal (the windows before, a learned normal and
/// the telemetry's own earlier history, pooled) and the examined windows from `from`.
struct Examined {
    before: Range,
    after: Range,
    /// Where the normal ends: the moment asked about, or the onset of a departure under
    /// way at it.
    at: EventTime,
    from: EventTime,
    /// Windows of earlier history in `before`.
    history_windows: usize,
}

/// [`ranges`], with a learned normal and the telemetry's own earlier history pooled into
/// the normal range, from the onset of a departure under way at `at` if there is one
/// ([`onset::onset`]).
fn ranges_with_normal(
    windows: &[WindowSnapshot],
    at: EventTime,
    params: &EvidenceParams,
    normal: Option<&NormalProfile>,
) -> Examined {
    // The detector run over the telemetry as a job would have: what it kept as normal is
    // the history (a long recording needs no learned normal), and what it was following at
    // `at` a departure under way.
    let moves = detector::moves(windows, at, normal);
    let at = params
        .follow_onset
        .then(|| onset::onset(windows, at, params, normal, &moves))
        .flatten()
        .unwrap_or(at);
    let history = moves.history(windows, at);
    let (before, after, from) = pooled_ranges(
        windows,
        at,
        params,
        normal,
        history.as_ref().map(|(h, _)| h),
    );
    Examined {
        before,
        after,
        at,
        from,
        history_windows: history.as_ref().map_or(0, |(_, n)| *n),
    }
}

/// [`ranges`] at `at`, the normal range pooled with the learned normal and `history`; a
/// service already failing in the minutes before ([`failing_already`]) keeps the learned
/// normal alone as the normal of its logs.
fn pooled_ranges(
    windows: &[WindowSnapshot],
    at: EventTime,
    params: &EvidenceParams,
    normal: Option<&NormalProfile>,
    history: Option<&Range>,
) -> (Range, Range, EventTime) {
    let (mut before, after, from) = ranges(windows, at, params);
    // Pooled with the minutes before, not instead of them: those carry the current load
    // and deployment (on nezha-dev, pooling named 38 of 53 culprits first, the learned
    // normal alone 36, the minutes before alone 27).
    let failing = normal.map_or_else(Vec::new, |n| failing_already(n.range(), &before, params));
    if let Some(normal) = normal {
        before.absorb(normal.range());
    }
    if let Some(history) = history {
        before.absorb(history);
    }
    if let Some(normal) = normal {
        for service in &failing {
            before.logs_from(normal.range(), service);
        }
    }
    (before, after, from)
}

/// The services that call `service` directly or through others, by [`Range::callers_of`]
/// (`service` itself only where the calls come back to it).
fn upstream<'a>(
    callers_of: &BTreeMap<&'a str, Vec<&'a str>>,
    service: &'a str,
) -> std::collections::BTreeSet<&'a str> {
    let mut reached = std::collections::BTreeSet::new();
    let mut stack = vec![service];
    while let Some(callee) = stack.pop() {
        for &caller in callers_of.get(callee).into_iter().flatten() {
            if reached.insert(caller) {
                stack.push(caller);
            }
        }
    }
    reached
}

/// Services whose share of error log records in `live` (the minutes before a moment) is
/// significantly above the learned normal's (the `log_errors` test): failing before the
/// moment, as an injected defect that outlives its first incident, or an incident asked
/// about well after it began. Pooled into the normal, their failure would hide a failure
/// that goes on.
fn failing_already(learned: &Range, live: &Range, params: &EvidenceParams) -> Vec<String> {
    if !params.signals.contains(&Signal::LogErrors) {
        return Vec::new();
    }
    live.logs
        .iter()
        .filter(|&(service, &(na, ea))| {
            learned.logs.get(service).is_some_and(|&(nb, eb)| {
                stats::share_increase(eb, nb, ea, na, params.min_z).is_some()
            })
        })
        .map(|(service, _)| service.clone())
        .collect()
}

/// [`diagnose`] with the normal and the examined windows given apart (`params`' ranges
/// are not applied).
pub fn diagnose_split<'a>(
    before: impl Iterator<Item = &'a WindowSnapshot>,
    after: impl Iterator<Item = &'a WindowSnapshot>,
    at: EventTime,
    params: &EvidenceParams,
) -> Diagnosis {
    diagnose_ranges(&Range::of(before), &Range::of(after), at, params)
}

fn diagnose_ranges(
    before: &Range,
    after: &Range,
    at: EventTime,
    params: &EvidenceParams,
) -> Diagnosis {
    let mut by_service: BTreeMap<String, Vec<Evidence>> = BTreeMap::new();
    let z_min = params.min_z;
    let reads = |signal: Signal| params.signals.contains(&signal);
    for (service, a) in after.self_time.iter().filter(|_| reads(Signal::SelfTime)) {
        if let Some(b) = before.self_time.get(service)
            && let Some(ev) = stats::own_time_increase(b, a, z_min)
        {
            by_service.entry(service.clone()).or_default().push(ev);
        }
    }
    // CPU utilisation: floors 10 %, 0.02.
    for (service, a) in after.cpu.iter().filter(|_| reads(Signal::Cpu)) {
        if let Some(b) = before.cpu.get(service)
            && let Some(ev) = stats::increase(Signal::Cpu, None, b, a, 0.1, 0.02, z_min)
        {
            by_service.entry(service.clone()).or_default().push(ev);
        }
    }
    // Network traffic, its fall (scored as a rise against the smaller level): floors 10 %,
    // 1 kB/s.
    for (service, a) in after.traffic.iter().filter(|_| reads(Signal::Traffic)) {
        if let Some(b) = before.traffic.get(service)
            && let Some(ev) = stats::fall(Signal::Traffic, b, a, 0.1, 1000.0, z_min)
        {
            by_service.entry(service.clone()).or_default().push(ev);
        }
    }
    // Memory in use and disk bytes per second, their rise: floors 10 %, 1 MiB and 10 kB/s.
    for (signal, b_range, a_range, floor) in [
        (Signal::Memory, &before.memory, &after.memory, 1048576.0),
        (Signal::Disk, &before.disk, &after.disk, 10_000.0),
    ] {
        for (service, a) in a_range.iter().filter(|_| reads(signal)) {
            if let Some(b) = b_range.get(service)
                && let Some(ev) = stats::increase(signal, None, b, a, 0.1, floor, z_min)
            {
                by_service.entry(service.clone()).or_default().push(ev);
            }
        }
    }
    // Errors: a two-proportion z, scored by the rise over max(normal share, 1 %).
    for (service, &(ea, na)) in after.errors.iter().filter(|_| reads(Signal::Errors)) {
        if let Some(&(eb, nb)) = before.errors.get(service)
            && let Some(ev) = stats::share_increase(eb, nb, ea, na, z_min)
        {
            by_service.entry(service.clone()).or_default().push(ev);
        }
    }
    // Logs: the error share, and each template's share of the service's records.
    for (service, &(na, ea)) in &after.logs {
        let Some(&(nb, eb)) = before.logs.get(service) else {
            continue;
        };
        if reads(Signal::LogErrors)
            && let Some(mut ev) = stats::share_increase(eb, nb, ea, na, z_min)
        {
            ev.signal = Signal::LogErrors;
            by_service.entry(service.clone()).or_default().push(ev);
        }
        // Templates per request where the service serves requests in both ranges (a code
        // path that stops writing a line writes it less per request, whatever its other
        // lines do), else per log record.
        let (ub, ua) = match (before.requests.get(service), after.requests.get(service)) {
            (Some(&rb), Some(&ra)) if rb > 0.0 && ra > 0.0 => (rb, ra),
            _ => (nb, na),
        };
        let ids: std::collections::BTreeSet<u64> = before
            .templates
            .keys()
            .chain(after.templates.keys())
            .filter(|(s, _)| s == service && reads(Signal::LogTemplate))
            .map(|(_, id)| *id)
            .collect();
        let strongest = ids
            .into_iter()
            .filter_map(|id| {
                let key = (service.clone(), id);
                let (cb, tb) = before.templates.get(&key).cloned().unwrap_or_default();
                let (ca, ta) = after.templates.get(&key).cloned().unwrap_or_default();
                let text = if ta.is_empty() { tb } else { ta };
                // A first occurrence counts as half a record before.
                stats::count_change(
                    Signal::LogTemplate,
                    &text,
                    (cb, ub),
                    (ca, ua),
                    0.5,
                    0.02,
                    z_min,
                )
            })
            .max_by(|a, b| a.score.total_cmp(&b.score));
        if let Some(ev) = strongest {
            by_service.entry(service.clone()).or_default().push(ev);
        }
    }
    // Call pattern: calls per request of the caller, to each callee, either way.
    let callees: std::collections::BTreeSet<&(String, String)> = before
        .calls
        .keys()
        .chain(after.calls.keys())
        .filter(|_| reads(Signal::CallPattern))
        .collect();
    for edge in callees {
        let (Some(&nb), Some(&na)) = (before.requests.get(&edge.0), after.requests.get(&edge.0))
        else {
            continue;
        };
        let cb = before.calls.get(edge).copied().unwrap_or(0.0);
        let ca = after.calls.get(edge).copied().unwrap_or(0.0);
        // At most one call per request: the share of requests making it; else a count.
        let binomial = cb <= nb && ca <= na;
        // Requests that come in clusters move the share by whole clusters: the bar rises
        // with the normal's own spread between windows.
        let spread = before.dispersion(edge, binomial).sqrt();
        let change = if binomial {
            stats::proportion_change(
                Signal::CallPattern,
                &edge.1,
                (cb, nb),
                (ca, na),
                0.1,
                z_min * spread,
            )
        } else {
            stats::count_change(
                Signal::CallPattern,
                &edge.1,
                (cb, nb),
                (ca, na),
                0.0,
                0.1,
                z_min * spread,
            )
        };
        if let Some(ev) = change {
            by_service.entry(edge.0.clone()).or_default().push(ev);
        }
    }
    // Log flow: per service and template, the share of its records that the records of
    // each other template follow within a trace, either way; the strongest per service.
    fn from_totals(range: &Range) -> BTreeMap<(&str, u64), f64> {
        let mut totals: BTreeMap<(&str, u64), f64> = BTreeMap::new();
        for ((service, from, _), c) in &range.transitions {
            *totals.entry((service.as_str(), *from)).or_default() += c;
        }
        totals
    }
    let (from_before, from_after) = (from_totals(before), from_totals(after));
    let pairs: std::collections::BTreeSet<&(String, u64, u64)> = before
        .transitions
        .keys()
        .chain(after.transitions.keys())
        .filter(|_| reads(Signal::LogFlow))
        .collect();
    let mut flows: BTreeMap<&str, (Evidence, u64, u64)> = BTreeMap::new();
    for key in pairs {
        let (service, from, to) = key;
        let (Some(&nb), Some(&na)) = (
            from_before.get(&(service.as_str(), *from)),
            from_after.get(&(service.as_str(), *from)),
        ) else {
            continue;
        };
        let cb = before.transitions.get(key).copied().unwrap_or(0.0);
        let ca = after.transitions.get(key).copied().unwrap_or(0.0);
        if let Some(ev) = stats::share_change(Signal::LogFlow, (cb, nb), (ca, na), 0.5, 0.05, z_min)
        {
            let best = flows
                .entry(service.as_str())
                .or_insert_with(|| (ev.clone(), *from, *to));
            if ev.score > best.0.score {
                *best = (ev, *from, *to);
            }
        }
    }
    // Named only for the moves kept.
    for (service, (mut ev, from, to)) in flows {
        let text = |id: u64| {
            let key = (service.to_string(), id);
            before
                .templates
                .get(&key)
                .or_else(|| after.templates.get(&key))
                .map_or_else(|| format!("#{id}"), |t| t.1.clone())
        };
        let next = if to == augur_operators::END_OF_TRACE {
            "end".to_string()
        } else {
            text(to)
        };
        ev.on = Some(format!("{} -> {next}", text(from)));
        by_service.entry(service.to_string()).or_default().push(ev);
    }
    // Network: per edge, then pooled over the edges each service takes part in.
    let mut touching: BTreeMap<&str, Vec<Evidence>> = BTreeMap::new();
    for (edge, a) in after.gap.iter().filter(|_| reads(Signal::Network)) {
        let Some(b) = before.gap.get(edge) else {
            continue;
        };
        let on = format!("{}->{}", edge.0, edge.1);
        let ev = gap_increase(Some(on), b, a, z_min)
            .unwrap_or_else(|| stats::unmoved(Signal::Network, b, a));
        touching
            .entry(edge.0.as_str())
            .or_default()
            .push(ev.clone());
        touching.entry(edge.1.as_str()).or_default().push(ev);
    }
    for (service, evs) in touching {
        // Σ scores / √edges: a service whose every edge moved outranks one that shares a
        // single moved edge with it.
        let score = evs.iter().map(|e| e.score).sum::<f64>() / (evs.len() as f64).sqrt();
        if score <= 0.0 {
            continue;
        }
        let Some(strongest) = evs
            .iter()
            .filter(|e| e.score > 0.0)
            .max_by(|a, b| a.score.total_cmp(&b.score))
        else {
            continue;
        };
        by_service
            .entry(service.to_string())
            .or_default()
            .push(Evidence {
                score,
                ..strongest.clone()
            });
    }
    let (entry_before, entry_after) = (repair::entry(before), repair::entry(after));
    let mut culprits: Vec<Culprit> = by_service
        .into_iter()
        .filter_map(|(service, mut evidence)| {
            evidence.retain(|e| e.score > 0.0);
            evidence.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.z.total_cmp(&a.z)));
            let top = evidence.first()?;
            let operation = evidence
                .iter()
                .any(|e| e.signal == Signal::SelfTime)
                .then(|| operation_move(&service, before, after))
                .flatten();
            Some(Culprit {
                repair_ms: entry_after
                    .map(|(requests, _)| repair::repair_ms(&service, before, after, requests)),
                operation,
                service,
                score: top.score,
                resource: resource_of(&evidence).to_string(),
                evidence,
            })
        })
        .collect();
    culprits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.service.cmp(&b.service))
    });
    let culprits = explained_last(culprits, before, after, params.min_z, params.max_culprits);
    Diagnosis {
        at,
        windows_before: before.windows,
        windows_after: after.windows,
        entry_ms: entry_before.zip(entry_after).map(|((_, b), (_, a))| (b, a)),
        culprits,
        examined_from: None,
        history_windows: 0,
        weak: false,
        onset: None,
    }
}

/// The operation of `service` whose own time per request of the service rose the most
/// from `before` to `after` (the service's self time is the sum of its operations'), if any
/// rose.
fn operation_move(service: &str, before: &Range, after: &Range) -> Option<OperationMove> {
    let requests = |r: &Range| {
        r.operation_requests
            .get(service)
            .copied()
            .filter(|&n| n > 0.0)
    };
    let (nb, na) = (requests(before)?, requests(after)?);
    let b = before.operations.get(service);
    after
        .operations
        .get(service)?
        .iter()
        .map(|(op, &ms)| OperationMove {
            name: op.clone(),
            before: b.and_then(|b| b.get(op)).copied().unwrap_or(0.0) / nb,
            after: ms / na,
        })
        .filter(|m| m.after > m.before)
        .max_by(|x, y| {
            (x.after - x.before)
                .total_cmp(&(y.after - y.before))
                .then_with(|| y.name.cmp(&x.name))
        })
}

/// A call edge's network gap rising significantly from `before` to `after` ([`stats::increase`],
/// floors 10 % of the normal gap and 1 ms): the test of a network move, in the diagnosis and
/// in what a detection rests on.
fn gap_increase(
    on: Option<String>,
    before: &Pooled,
    after: &Pooled,
    min_z: f64,
) -> Option<Evidence> {
    stats::increase(Signal::Network, on, before, after, 0.1, 1.0, min_z)
}

/// A network move comes second to an own-time move this large relative to it (scores).
const OWN_OVER_NETWORK: f64 = 0.1;

/// The resource a service's evidence points at: its strongest signal's, except that own
/// time that rose with memory or disk use, and not with CPU, points at that resource (own
/// time is what any starved resource slows).
fn resource_of(evidence: &[Evidence]) -> &'static str {
    let Some(top) = evidence.first() else {
        return Signal::SelfTime.resource();
    };
    match evidence
        .iter()
        .find(|e| e.signal == Signal::SelfTime && e.score >= OWN_OVER_NETWORK * top.score)
    {
        Some(own) if top.signal == Signal::Network => resource_led_by(own, evidence),
        _ => resource_led_by(top, evidence),
    }
}

/// [`resource_of`] by the strongest signal alone.
fn strongest_resource(evidence: &[Evidence]) -> &'static str {
    evidence.first().map_or(Signal::SelfTime.resource(), |top| {
        resource_led_by(top, evidence)
    })
}

/// The resource `top` points at, own time pointing at memory or disk where those rose and
/// CPU did not.
fn resource_led_by(top: &Evidence, evidence: &[Evidence]) -> &'static str {
    if top.signal != Signal::SelfTime || evidence.iter().any(|e| e.signal == Signal::Cpu) {
        return top.signal.resource();
    }
    evidence
        .iter()
        .find(|e| matches!(e.signal, Signal::Memory | Signal::Disk))
        .map_or(top.signal.resource(), |e| e.signal.resource())
}

/// Effects travel from callees to callers: a saturated callee fills its callers' queues,
/// fails their calls, makes them retry. A culprit may only be showing another culprit's
/// effect when it reaches, directly or through other services, a culprit whose evidence is
/// errors (a failure shows upstream as errors, retries, waits and other code paths, not as
/// delays on the wire: a culprit named for its network is not explained so), or
/// when its evidence is own time, CPU, memory or disk and it reaches a culprit named for
/// one of those through calls that each slowed significantly, by at least 20 %, along with
/// their callee's latency (a slower callee holds its callers' threads, and theirs; it
/// neither changes their code paths nor delays the calls into them; a callee named for its
/// network only is not one: the service whose every edge moved already has the higher
/// pooled score). Such culprits come after the others, each group in score order.
fn explained_last(
    culprits: Vec<Culprit>,
    before: &Range,
    after: &Range,
    min_z: f64,
    max: usize,
) -> Vec<Culprit> {
    // Culprit → the resource its strongest evidence points at (a network gap's, whatever
    // own time rose beside it: what travels along calls is told by the strongest move).
    let kinds: BTreeMap<&str, &str> = culprits
        .iter()
        .map(|c| (c.service.as_str(), strongest_resource(&c.evidence)))
        .collect();
    let (errors, cpu) = (Signal::Errors.resource(), Signal::SelfTime.resource());
    // Failures travel up in every form: a failing callee's callers, and theirs, see errors,
    // retry, wait for timeouts, take other code paths.
    let failing: Vec<&str> = kinds
        .iter()
        .filter(|(_, r)| **r == errors)
        .map(|(s, _)| *s)
        .collect();
    // The network of calls is not among them: a failing callee neither delays a caller's
    // calls on the wire nor the calls into it.
    let delayed_on_the_wire: std::collections::BTreeSet<&str> = culprits
        .iter()
        .filter(|c| {
            c.evidence
                .first()
                .is_some_and(|e| e.signal == Signal::Network)
        })
        .map(|c| c.service.as_str())
        .collect();
    let callers_of = after.callers_of();
    let mut explained: std::collections::BTreeSet<String> = failing
        .iter()
        .flat_map(|&f| {
            upstream(&callers_of, f)
                .into_iter()
                .filter(move |&c| c != f)
        })
        .filter(|c| !delayed_on_the_wire.contains(c))
        .map(str::to_string)
        .collect();
    // A slower callee explains a caller's slowness (its own time, its CPU), not a change of
    // its code path nor the delay of the calls into it; and so on up every chain of calls
    // that slowed (a saturated back end holds its callers' threads, whose callers then
    // queue: their own time rises too).
    let own = [cpu, Signal::Memory.resource(), Signal::Disk.resource()];
    let rose = |b: Option<&Pooled>, a: Option<&Pooled>| match (b, a) {
        (Some(b), Some(a)) => stats::own_time_increase(b, a, min_z).is_some_and(|e| e.score >= 0.2),
        _ => false,
    };
    // The calls slowed because the callee did (its own latency rose), not because the
    // caller, starved itself, is slow to send and receive them.
    let slowed = |caller: &str, callee: &str| {
        let key = (caller.to_string(), callee.to_string());
        rose(before.client.get(&key), after.client.get(&key))
            && rose(before.latency.get(callee), after.latency.get(callee))
    };
    let mut stack: Vec<&str> = kinds
        .iter()
        .filter(|(_, r)| own.contains(r))
        .map(|(s, _)| *s)
        .collect();
    let mut visited: std::collections::BTreeSet<&str> = stack.iter().copied().collect();
    while let Some(callee) = stack.pop() {
        for &caller in callers_of.get(callee).into_iter().flatten() {
            if !slowed(caller, callee) {
                continue;
            }
            if kinds.get(caller).is_some_and(|r| own.contains(r)) {
                explained.insert(caller.to_string());
            }
            if visited.insert(caller) {
                stack.push(caller);
            }
        }
    }
    let (first, rest): (Vec<Culprit>, Vec<Culprit>) = culprits
        .into_iter()
        .partition(|c| !explained.contains(&c.service));
    first.into_iter().chain(rest).take(max).collect()
}

#[cfg(test)]
mod tests;

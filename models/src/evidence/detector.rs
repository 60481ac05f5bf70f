//! The `evidence` detector: [`super::diagnose`] run continuously, so a diagnosis is made
//! whenever a service departs from its own normal, whether or not an SLO is crossed.
//!
//! **In:** closed windows, in order. **Out:** per window, at most one `root_cause`
//! detection: when, over the latest `recent_ms`, some service's own signal moved by at least
//! `min_score` with `z ≥ min_z` against the windows before (the normal), its culprits.
//!
//! With a learned normal ([`LearnedNormal`], from `augur train normal`), a move also has to
//! stand against it: the top service's move must be significant against the learned normal
//! alone as well as against the windows before, so a swing the application is known to make
//! is not a detection. The culprits are then ranked against both pooled, as `augur diagnose`
//! ranks them. A detection whose top culprit moved in latency must also account for half of
//! the entry latency's rise, if it rose (`min_explained`): a passing slow call elsewhere on
//! top while the fault's own calls are still one window waits until they are named. A
//! detection naming a service for its network must rest on two or more delayed calls of
//! its edges, and one naming it for its own time on requests in two or more windows: one
//! slow call on a quiet edge, or one slow request of a quiet service, waits for the next.
//! A pending move's `pending_ms` runs in event time: when it falls due in a stretch without
//! windows longer than `recent_ms` (a service whose spans stopped, metrics scraped once a
//! minute), the next window brings its detection, from the diagnosis of the last window
//! before the stretch; after a shorter stretch the move's windows are still in the next
//! window's recent range, which judges them with what came since.
//! Figures: docs/models/evidence.md.
//!
//! The job also learns a normal of its own: windows that age out of `before_ms` without
//! having been part of a detection are pooled into a long-term normal reaching back
//! `long_normal_ms` (a day by default), used exactly as a learned normal is (pooled with
//! it where both exist). A job started on an application augur never saw thus judges moves
//! against more than the two minutes before once it has run a while.
//!
//! **State:** the latest `recent_ms` of windows, up to `before_ms` of earlier windows as the
//! normal, and the long-term normal: two pooled ranges (the older and the newer half of
//! `long_normal_ms`; a half that fills replaces the older), so its memory is bounded by the
//! application's services, edges and log templates, not by time. A window that was part of
//! a detection never joins either normal, so a lasting fault does not become normal while it
//! lasts. Nothing is diagnosed until the
//! recent range is full and the normal holds `min_normal_windows` windows with requests
//! (until a request is seen, windows with any record: an application without tracing),
//! a learned normal's windows counting: with the defaults, the first diagnosis can come
//! 20 s after the job starts seeing traffic with a learned normal, 50 s without.

use std::collections::VecDeque;
use std::sync::Arc;

use augur_operators::{AlertKind, Culprit, Detection, Detector, Resource, WindowSnapshot};
use serde::{Deserialize, Serialize};

use super::{
    Diagnosis, EvidenceParams, NormalProfile, Range, Signal, delays, diagnose_ranges, has_records,
    has_requests, repair,
};

/// Settings of the `evidence` detector (`[detector.evidence]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceDetectorConfig {
    /// The normal: up to this much time before the recent range, ms. Default 120000.
    pub before_ms: u64,
    /// The recent range examined every window, ms. Default 20000.
    pub recent_ms: u64,
    /// Windows with requests the normal needs before anything is diagnosed (windows with
    /// any metric sample or log record, for an application without tracing). Default 30.
    pub min_normal_windows: usize,
    /// Smallest z of a move that counts. Default 4 (every service and signal is tested
    /// every window: a stricter bar than a one-off `augur diagnose`).
    pub min_z: f64,
    /// Smallest score (move relative to the normal level) that makes a detection.
    /// Default 0.5.
    pub min_score: f64,
    /// How long a move must last before it is a detection, ms: the windows of this span
    /// must each find one (as a Prometheus rule's `for`). A short-lived move (a burst of
    /// slow calls, a retry storm that clears) is no detection, and the culprits of the one
    /// made rest on more of the change. Time without windows counts as the move going on
    /// (Prometheus keeps a series' last sample): a move pending when the telemetry stops for
    /// longer than `recent_ms` is a detection at the next window. Default 5000.
    pub pending_ms: u64,
    /// Culprits listed per detection. Default 5.
    pub max_culprits: usize,
    /// The share of the application's departure a detection has to account for. When the
    /// top culprit's move is one of latency (own time, network, CPU) and the entry services'
    /// mean request latency rose by at least a fifth, the culprit, with the services that
    /// call it directly or through others and whose own time rose (the queues it fills
    /// upstream), has to take back at least this share of the rise had it stayed normal
    /// (its counterfactual repair). Less, and what raised the latency is not in view yet — a
    /// passing slow call elsewhere is on top — so the move stays pending (a run that has
    /// made a detection is not held back again). 0 turns this off. Default 0.5.
    pub min_explained: f64,
    /// How far back the job's own long-term normal reaches, ms: windows leaving the normal
    /// range (`before_ms`) without having been part of a detection are pooled into it, in
    /// two halves, so it covers between half of this and all of it. Once it holds
    /// `min_normal_windows` windows with requests it is used as a learned normal is. Default
    /// 86400000 (a day); 0 keeps none.
    pub long_normal_ms: u64,
    /// The learned normal (`normal-<name>.json` in `[diagnose] normal_dir`) a job judges
    /// moves against as well, with its log template miners. Default none: the windows
    /// before and the long-term normal are the only normal. `augur diagnose` and `augur eval --cases` pick one by
    /// the services they see, whatever this says.
    pub normal: Option<String>,
    /// The learned normal itself, loaded by the job (not configured).
    #[serde(skip)]
    pub learned: LearnedNormal,
}

/// A loaded learned normal, shared by the detectors of a job; equal when their names are.
#[derive(Clone, Default)]
pub struct LearnedNormal(pub Option<Arc<NormalProfile>>);

impl PartialEq for LearnedNormal {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().map(|n| &n.name) == other.0.as_ref().map(|n| &n.name)
    }
}

impl std::fmt::Debug for LearnedNormal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(n) => write!(f, "LearnedNormal({})", n.name),
            None => write!(f, "LearnedNormal(none)"),
        }
    }
}

impl Default for EvidenceDetectorConfig {
    fn default() -> Self {
        EvidenceDetectorConfig {
            before_ms: 120_000,
            recent_ms: 20_000,
            min_normal_windows: 30,
            min_z: 4.0,
            min_score: 0.5,
            pending_ms: 5_000,
            max_culprits: 5,
            min_explained: 0.5,
            long_normal_ms: 86_400_000,
            normal: None,
            learned: LearnedNormal::default(),
        }
    }
}

pub struct EvidenceDetector {
    config: EvidenceDetectorConfig,
    normal: VecDeque<WindowSnapshot>,
    /// Recent windows, and whether each was part of a detection.
    recent: VecDeque<(WindowSnapshot, bool)>,
    /// End of the first window of the current run of windows that each found a move.
    moving_since: Option<u64>,
    /// Whether the current run has made a detection: from then on it is not held back for
    /// `min_explained` (an alert that fires stays one while the move lasts).
    run_detected: bool,
    /// Start of the first window seen.
    started: Option<u64>,
    /// Whether any window has had a request (the application is traced).
    traced: bool,
    long_normal: LongNormal,
    /// The end of the last window observed, and the diagnosis of the move it found pending
    /// (with whether it accounted for the departure), if it did.
    previous: Option<(u64, Option<(Diagnosis, bool)>)>,
}

/// The detector's own long-term normal: windows pooled into two halves of `long_normal_ms`.
#[derive(Default)]
pub(super) struct LongNormal {
    older: Range,
    newer: Range,
    /// End of the first window in `newer`.
    newer_since: Option<u64>,
}

impl LongNormal {
    /// Pools a window that left the normal range; the newer half becomes the older once it
    /// spans half of `reach_ms`.
    pub(super) fn add(&mut self, window: &WindowSnapshot, reach_ms: u64) {
        if reach_ms == 0 {
            return;
        }
        let since = *self.newer_since.get_or_insert(window.window_end);
        if window.window_end >= since + reach_ms / 2 {
            self.older = std::mem::take(&mut self.newer);
            self.newer_since = Some(window.window_end);
        }
        self.newer.absorb(&Range::of(std::iter::once(window)));
    }

    /// Its windows with a request, or, for an application without tracing (`traced`
    /// false), with any record.
    fn windows(&self, traced: bool) -> usize {
        self.older.windows_counted(traced) + self.newer.windows_counted(traced)
    }

    /// Both halves pooled.
    pub(super) fn range(&self) -> Range {
        let mut r = self.older.clone();
        r.absorb(&self.newer);
        r
    }
}

impl EvidenceDetector {
    pub fn new(config: EvidenceDetectorConfig) -> Self {
        EvidenceDetector {
            config,
            normal: VecDeque::new(),
            recent: VecDeque::new(),
            moving_since: None,
            run_detected: false,
            started: None,
            traced: false,
            long_normal: LongNormal::default(),
            previous: None,
        }
    }

    /// The normal's windows with a request; until a request is seen (an application
    /// without tracing), its windows with any record: metrics and logs are then the
    /// application's only telemetry, and the detector diagnoses from them.
    fn normal_windows(&self) -> usize {
        let counted = if self.traced {
            has_requests
        } else {
            has_records
        };
        self.normal.iter().filter(|w| counted(w)).count()
    }
}

fn resource(name: &str) -> Option<Resource> {
    match name {
        "cpu" => Some(Resource::Cpu),
        "network" => Some(Resource::Network),
        "memory" => Some(Resource::Memory),
        "disk" => Some(Resource::Disk),
        _ => None,
    }
}

impl Detector for EvidenceDetector {
    fn name(&self) -> &str {
        "evidence"
    }

    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        let now = window.window_end;
        let due = self.due_in_gap(now, window.window_ms);
        let Some((d, accounted)) = self.diagnose(window) else {
            self.moving_since = None;
            self.run_detected = false;
            self.previous = Some((now, None));
            return due;
        };
        // The move's windows stay out of the normal while it is pending, too.
        if let Some(last) = self.recent.back_mut() {
            last.1 = true;
        }
        let since = *self.moving_since.get_or_insert(now);
        if now + window.window_ms < since + self.config.pending_ms
            || !(accounted || self.run_detected)
        {
            // Pending: kept, in case its time comes while no window arrives.
            self.previous = Some((now, Some((d, accounted))));
            return due;
        }
        self.previous = Some((now, None));
        self.run_detected = true;
        // This window's own diagnosis, fresher than the one that fell due in the gap.
        let now_detected: Vec<Detection> = detection_of(&d).into_iter().collect();
        if now_detected.is_empty() {
            due
        } else {
            now_detected
        }
    }
}

impl EvidenceDetector {
    /// The detection a pending move came to while no window arrived: event time that
    /// passes without telemetry (a service that stopped answering, spans that stopped
    /// coming, a sparse stream) runs its `pending_ms` clock as empty windows would, and
    /// nothing came to undo it. Made from the last window's diagnosis (empty windows leave
    /// the recent range as it was), when the first window at which the move had lasted
    /// `pending_ms` falls in the gap before `now` and the gap outlasts the recent range
    /// (the move's windows are gone from it by `now`).
    fn due_in_gap(&mut self, now: u64, window_ms: u64) -> Vec<Detection> {
        let (Some(since), Some((last_end, Some((d, accounted))))) =
            (self.moving_since, self.previous.as_ref())
        else {
            return Vec::new();
        };
        let fires_at = (since + self.config.pending_ms).saturating_sub(window_ms);
        // A gap the move's windows outlast is the next window's to judge: they are still in
        // its recent range.
        let judged_next = *last_end + self.config.recent_ms > now;
        if self.run_detected
            || !accounted
            || judged_next
            || fires_at <= *last_end
            || fires_at >= now
        {
            return Vec::new();
        }
        let due: Vec<Detection> = detection_of(d).into_iter().collect();
        self.run_detected = !due.is_empty();
        due
    }

    /// Takes in `window` and diagnoses the recent range against the normal: the diagnosis
    /// when some service moved enough to be a detection, and whether it accounts for the
    /// application's departure (`min_explained`).
    fn diagnose(&mut self, window: &WindowSnapshot) -> Option<(Diagnosis, bool)> {
        let now = window.window_end;
        self.traced |= has_requests(window);
        self.recent.push_back((window.clone(), false));
        // Windows leaving the recent range join the normal unless they were detected.
        while let Some((w, _)) = self.recent.front()
            && w.window_end + self.config.recent_ms <= now
        {
            if let Some((w, detected)) = self.recent.pop_front()
                && !detected
            {
                self.normal.push_back(w);
            }
        }
        while let Some(w) = self.normal.front()
            && w.window_end + self.config.recent_ms + self.config.before_ms <= now
        {
            if let Some(w) = self.normal.pop_front() {
                self.long_normal.add(&w, self.config.long_normal_ms);
            }
        }
        // The learned normal and the job's own long-term one stand in for live windows not
        // yet seen; the recent range has to be full either way.
        let reference_windows = self
            .config
            .learned
            .0
            .as_ref()
            .map_or(0, |n| n.range().windows)
            + self.long_normal.windows(self.traced);
        // Full once the job has seen `recent_ms` of time, however sparse its windows (metrics
        // scraped once a minute give one window a minute).
        let started = *self
            .started
            .get_or_insert(now.saturating_sub(window.window_ms));
        let recent_full = started + self.config.recent_ms <= now;
        if self.normal_windows() + reference_windows < self.config.min_normal_windows
            || !recent_full
        {
            return None;
        }
        let at = self.normal.back().map_or(0, |w| w.window_end);
        let params = EvidenceParams {
            before_ms: self.config.before_ms,
            after_ms: now.saturating_sub(at),
            min_z: self.config.min_z,
            max_culprits: self.config.max_culprits,
            ..EvidenceParams::default()
        };
        let before = Range::of(self.normal.iter());
        let after = Range::of(self.recent.iter().map(|(w, _)| w));
        let live = diagnose_ranges(&before, &after, at, &params);
        let top = live.culprits.first()?;
        if top.score < self.config.min_score {
            return None;
        }
        // Built only for a move: pooling the learned normal every window would copy it.
        let reference = (reference_windows >= self.config.min_normal_windows)
            .then(|| self.reference())
            .flatten();
        let (d, normal) = match reference {
            None => (live, before),
            Some(reference) => {
                let against_reference = diagnose_ranges(&reference, &after, at, &params);
                if !against_reference
                    .culprits
                    .iter()
                    .any(|c| c.service == top.service && c.score >= self.config.min_score)
                {
                    return None;
                }
                let mut pooled = before;
                pooled.absorb(&reference);
                let d = diagnose_ranges(&pooled, &after, at, &params);
                // The live culprits stand when the pooled normal leaves none; what they
                // account for is judged against the pooled normal either way.
                (if d.culprits.is_empty() { live } else { d }, pooled)
            }
        };
        let accounted =
            accounts_for_departure(&d, &normal, &after, &params, self.config.min_explained)
                && corroborated(&d, &normal, &after, params.min_z);
        Some((d, accounted))
    }
}

/// Which of `windows` a job running the detector over them up to `at` would have found a
/// move in (pending or a detection), with the learned normal, if any: per window from
/// `from` on, in order. Windows older than a diagnosis at `at` could take as history are
/// not observed: a long recording costs no more than a day of it.
pub(super) struct Moves {
    pub(super) from: usize,
    pub(super) moving: Vec<bool>,
}

pub(super) fn moves(windows: &[WindowSnapshot], at: u64, learned: Option<&NormalProfile>) -> Moves {
    let mut detector = EvidenceDetector::new(EvidenceDetectorConfig {
        learned: LearnedNormal(learned.map(|n| Arc::new(n.clone()))),
        ..EvidenceDetectorConfig::default()
    });
    let config = &detector.config;
    let oldest = at.saturating_sub(config.before_ms + config.long_normal_ms + config.recent_ms);
    let from = windows.partition_point(|w| w.window_end < oldest);
    let to = windows.partition_point(|w| w.window_end <= at);
    let moving = windows[from..to.max(from)]
        .iter()
        .map(|w| {
            detector.observe(w);
            // A window is marked when it is observed, never after.
            detector.recent.back().is_some_and(|(_, m)| *m)
        })
        .collect();
    Moves { from, moving }
}

impl Moves {
    /// The fault-free history of a diagnosis at `at`: the windows ending before its normal
    /// range (`before_ms`), back to `long_normal_ms` before that, in which the detector
    /// found no move — what its long-term normal and the windows it held had kept, its
    /// detections left out, and how many windows it holds that have a request (that have
    /// any record, for an application without tracing). `None` when that is none.
    pub(super) fn history(&self, windows: &[WindowSnapshot], at: u64) -> Option<(Range, usize)> {
        let config = EvidenceDetectorConfig::default();
        let through = at.saturating_sub(config.before_ms);
        let oldest = through.saturating_sub(config.long_normal_ms + config.recent_ms);
        let kept = windows[self.from..]
            .iter()
            .zip(&self.moving)
            .filter(|(w, moving)| !**moving && w.window_end >= oldest && w.window_end <= through)
            .map(|(w, _)| w);
        let history = Range::of(kept);
        let counted = history.windows_counted(windows.iter().any(has_requests));
        (counted > 0).then_some((history, counted))
    }

    /// Per window observed, its end and whether it was part of a move.
    pub(super) fn ends<'a>(
        &'a self,
        windows: &'a [WindowSnapshot],
    ) -> impl DoubleEndedIterator<Item = (u64, bool)> + 'a {
        windows[self.from..]
            .iter()
            .zip(&self.moving)
            .map(|(w, m)| (w.window_end, *m))
    }
}

impl EvidenceDetector {
    /// The normal beyond the live windows: the learned one and the job's own long-term one,
    /// pooled; `None` when there is neither.
    fn reference(&self) -> Option<Range> {
        let learned = self.config.learned.0.as_ref().map(|n| n.range());
        match (learned, self.long_normal.windows(self.traced)) {
            (None, 0) => None,
            (Some(l), 0) => Some(l.clone()),
            (learned, _) => {
                let mut r = self.long_normal.range();
                if let Some(l) = learned {
                    r.absorb(l);
                }
                Some(r)
            }
        }
    }
}

/// Whether a diagnosis's top culprit accounts for at least `min_share` of the rise of the
/// entry latency (see `min_explained`); always when its move is not one of latency or the
/// entry latency did not rise by a fifth.
fn accounts_for_departure(
    d: &Diagnosis,
    normal: &Range,
    after: &Range,
    params: &EvidenceParams,
    min_share: f64,
) -> bool {
    // A fifth of the entry latency: smaller rises are the recent range's own noise at a
    // request a second.
    const RISE: f64 = 0.2;
    let Some(top) = d.culprits.first() else {
        return true;
    };
    let latency = top
        .evidence
        .first()
        .is_some_and(|e| matches!(e.signal, Signal::SelfTime | Signal::Network | Signal::Cpu));
    match d.entry_ms {
        Some((before, now)) if latency && min_share > 0.0 && now - before >= RISE * before => {
            repair::explained_ms(&top.service, normal, after, params.min_z)
                >= min_share * (now - before)
        }
        _ => true,
    }
}

/// Whether a diagnosis's top culprit, when named for its network or its own time, rests on
/// more than one of its units. Network: the calls of the edges the service takes part in
/// whose gap rose significantly must be delayed more often than the application's calls
/// are normally delayed as much ([`delays`], at `min_z` less one: the move itself already
/// stood at `min_z`), by two or more calls. One call's gap (a lost packet's retransmission,
/// which Linux waits at least 200 ms for, or a connection being set up) is no service's
/// network, and neither are a few such calls where the application's calls show them every
/// minute. Without delayed calls counted in the normal (a learned normal saved before they
/// were), two or more delayed calls suffice. Own time: requests in two or more windows of
/// the recent range (a rise must then stand without its slowest window); one slow request
/// of a quiet service is no service's slowness. A real fault shows again on the next call
/// or request. Always true for other top culprits.
fn corroborated(d: &Diagnosis, normal: &Range, after: &Range, min_z: f64) -> bool {
    let Some(top) = d.culprits.first() else {
        return true;
    };
    match top.evidence.first().map(|e| e.signal) {
        Some(Signal::SelfTime) => {
            return after
                .self_time
                .get(&top.service)
                .is_some_and(|p| p.windows() >= 2.0);
        }
        Some(Signal::Network) => {}
        _ => return true,
    }
    let mut calls = 0.0;
    let mut delayed = Vec::new();
    for (edge, a) in &after.gap {
        if edge.0 != top.service && edge.1 != top.service {
            continue;
        }
        if let Some(b) = normal.gap.get(edge)
            && super::gap_increase(None, b, a, min_z).is_some()
        {
            calls += a.units();
            delayed.push(edge);
        }
    }
    match delays::delayed_calls_z(normal, after, delayed, 2.0) {
        Some(z) => z >= min_z - 1.0,
        None => calls >= 2.0,
    }
}

/// The detection a diagnosis makes: about its top culprit (none without culprits).
fn detection_of(d: &Diagnosis) -> Option<Detection> {
    let top = d.culprits.first()?;
    let summary = top
        .evidence
        .first()
        .map(|e| {
            let on =
                e.on.as_deref()
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default();
            let operation = top
                .operation
                .as_ref()
                .filter(|_| e.signal == Signal::SelfTime)
                .map(|op| {
                    format!(
                        ", most in {} ({:.3} -> {:.3} ms per request)",
                        op.name, op.before, op.after
                    )
                })
                .unwrap_or_default();
            format!(
                "{} {:?}{on} {:.3} -> {:.3} (z {:.1}){operation}",
                top.service, e.signal, e.before, e.after, e.z
            )
        })
        .unwrap_or_default();
    Some(Detection {
        kind: AlertKind::RootCause,
        service: top.service.clone(),
        probability: (top.score / (1.0 + top.score)).clamp(0.0, 1.0),
        horizon_ms: 0,
        culprits: d
            .culprits
            .iter()
            .map(|c| Culprit {
                service: c.service.clone(),
                score: c.score,
                resource: resource(&c.resource),
                operation: c.operation.as_ref().map(|op| op.name.clone()),
            })
            .collect(),
        summary,
    })
}

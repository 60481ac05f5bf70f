//! Assembles augur's dataflow on every worker and drives it from a source.
//!
//! Source → unordered inputs stamped by window end (records older than the input's
//! capability are late: counted and dead-lettered) → features (trace assembly, per-service
//! and per-edge windows, dependency graph, QoS check, gathered per window on worker 0) →
//! detectors + decide on the model workers' inference threads → events to the main thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use augur_connectors::dead_letter::{DeadLetter, DeadLetterKind};
use augur_models::DetectorKind;
use augur_models::fluxion::GraphBoard;
use augur_operators::decide_log::DecideLog;
use augur_operators::detect::{DetectStage, ModelPlacement, detect};
use augur_operators::qos_check::Slo;
use augur_operators::{
    Alert, EventTime, FeatureParams, LogMiners, LogRecord, MetricPoint, Span, WindowSnapshot,
    features_dataflow_with_logs, window_end,
};
use crossbeam_channel::Sender;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandleVec;
use timely::dataflow::operators::core::{UnorderedHandle, UnorderedInput};
use timely::dataflow::operators::{ActivateCapability, Inspect, Probe};

use crate::cluster::{Cluster, timely_config};
use crate::config::Config;
use crate::control::{Control, ControlMessage, lowest_of_all};
use crate::source::{Batch, SourceState, WorkerSource};
use crate::stats::JobStats;

/// What the job tells the main thread.
pub enum Event {
    /// A closed window, with its features and QoS verdicts.
    Window(Box<WindowSnapshot>),
    /// An alert, and the window whose close emitted it (a resolution carries the window
    /// it fired in, but is emitted later).
    Alert(Alert, EventTime),
    DeadLetter(DeadLetter),
    /// Every output of windows ending before this time has been sent on this channel
    /// (from the probe of this process's first worker, after the outputs themselves).
    Frontier(EventTime),
    /// A worker's input is done and the dataflow has drained; it waits for
    /// `JobStats::durable` to reach `EventTime::MAX` before its final commit.
    WorkerDone(usize),
}

/// What to run.
#[derive(Clone)]
pub struct JobSpec {
    pub config: Config,
    pub slos: Vec<Slo>,
    /// The detectors; each gets its own decide state. Usually one.
    pub detectors: Vec<DetectorKind>,
    pub workers: usize,
    /// Where the decide steps resume from and publish their state (`augur run`: the
    /// state topic); `None` keeps it in memory only.
    pub decide_log: Option<Arc<DecideLog>>,
    /// Where a `fluxion` detector publishes its graph for the actuation policy's what-if
    /// (`[actuation] what_if`); `None`: nowhere.
    pub graph_board: Option<Arc<GraphBoard>>,
    /// The log template miners (seeded from a learned normal, so template ids match it).
    pub log_miners: LogMiners,
}

/// Windows the source may run ahead of the dataflow's output before it waits.
const MAX_WINDOWS_IN_FLIGHT: u64 = 8;

/// Runs the job to the end of its input (or until `stop` is set); events go to `events`.
/// With a `cluster`, this process runs its `spec.workers` share of the job's workers;
/// `make_source` gets global worker indices.
pub fn run_job<F>(
    spec: JobSpec,
    cluster: Option<Cluster>,
    make_source: F,
    events: Sender<Event>,
    stats: Arc<JobStats>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()>
where
    F: Fn(usize, usize) -> anyhow::Result<Box<dyn WorkerSource>> + Send + Sync + 'static,
{
    let timely_config = timely_config(spec.workers, cluster.as_ref());
    let guards = timely::execute(timely_config, move |worker| {
        run_worker(worker, &spec, &make_source, &events, &stats, &stop)
    })
    .map_err(|e| anyhow!("starting workers: {e}"))?;
    for result in guards.join() {
        result.map_err(|e| anyhow!("worker panicked: {e}"))??;
    }
    Ok(())
}

/// One worker of the job: builds the dataflow, agrees with the other workers where the
/// outputs resume, reads its source into the dataflow until the input ends or a stop,
/// drains what is to be emitted, and makes the final commit.
fn run_worker<F>(
    worker: &mut timely::worker::Worker,
    spec: &JobSpec,
    make_source: &F,
    events: &Sender<Event>,
    stats: &JobStats,
    stop: &AtomicBool,
) -> anyhow::Result<()>
where
    F: Fn(usize, usize) -> anyhow::Result<Box<dyn WorkerSource>>,
{
    let index = worker.index();
    let peers = worker.peers();
    let (mut inputs, probe) = build_dataflow(worker, spec, events, stats)?;
    let mut control = Control::new(worker);
    let mut source = match make_source(index, peers) {
        Ok(source) => source,
        Err(e) => {
            control.send(ControlMessage::Resume(index, 0));
            give_up(&mut control, index, stop);
            return Err(e);
        }
    };
    agree_on_resume(worker, &mut control, source.as_ref(), stats);
    let mut reader = Reader {
        index,
        peers,
        // This process's first worker reports the output frontier to the main thread.
        leader: index % spec.workers.max(1) == 0,
        window_ms: spec.config.window.length_ms,
        lateness: spec.config.window.allowed_lateness_ms,
        events,
        stats,
        stop,
        probe: &probe,
        cap_time: 0,
        cap_announced: false,
        following: false,
        frontier_sent: 0,
        durable_sent: 0,
        durable_seen: 0,
    };
    let stopped = match reader.read(worker, &mut control, source.as_mut(), &mut inputs) {
        Ok(stopped) => stopped,
        Err(e) => {
            give_up(&mut control, index, stop);
            return Err(e);
        }
    };
    if stopped && source.resumable() {
        reader.drain_stopped(worker, &mut control);
    } else {
        inputs.close();
        reader.drain_finished(worker);
    }
    // Every output to keep has been sent; the main thread makes them durable, then says so.
    let _ = events.send(Event::WorkerDone(index));
    reader.final_commit(worker, control, source.as_mut(), inputs)
}

/// The job's inputs: spans, metric points and log records, each stamped with the end of
/// its window.
struct Inputs {
    spans: WindowedInput<Span>,
    metrics: WindowedInput<MetricPoint>,
    logs: WindowedInput<LogRecord>,
    /// The `(service, instance)` pairs this process learns from its spans, for every
    /// worker of the job ([`crate::service_join::share_pairs`]); `None` once closed.
    instance_pairs: Option<InputHandleVec<u64, (String, String)>>,
}

impl Inputs {
    /// Moves a batch's records into their windows (late ones dead-lettered) and gives them
    /// to the dataflow.
    fn give(
        &mut self,
        batch: &mut Batch,
        (window_ms, cap_time): (u64, EventTime),
        late_to: LateTo,
    ) {
        let mut per_kind = [0u64; 6];
        let join = &late_to.0.service_join;
        let learned = join.learn(&batch.spans);
        if let Some(pairs) = self.instance_pairs.as_mut()
            && !learned.is_empty()
        {
            for pair in learned {
                pairs.send(pair);
            }
            pairs.flush();
        }
        self.spans.give(
            &mut batch.spans,
            |span| {
                per_kind[span.kind as usize] += 1;
                span.event_ms()
            },
            (window_ms, cap_time),
            late_to,
        );
        late_to.0.add_span_kinds(per_kind);
        late_to.0.add_ignored_metrics(&batch.ignored_metrics);
        batch.ignored_metrics.clear();
        let windows = (window_ms, cap_time);
        self.metrics
            .give(&mut batch.metrics, MetricPoint::event_ms, windows, late_to);
        self.logs
            .give(&mut batch.logs, LogRecord::event_ms, windows, late_to);
    }

    /// Closes the windows before `to`.
    fn downgrade(&mut self, to: EventTime) {
        self.spans.downgrade(to);
        self.metrics.downgrade(to);
        self.logs.downgrade(to);
    }

    /// Ends the input: every window still open may close.
    fn close(&mut self) {
        self.instance_pairs = None;
        self.spans.cap = None;
        self.metrics.cap = None;
        self.logs.cap = None;
    }
}

/// One input of the dataflow and the capability that holds its open windows (none once
/// the input has ended).
struct WindowedInput<R: 'static> {
    /// `span`, `metric point` or `log record`, for dead letters.
    what: &'static str,
    handle: UnorderedHandle<EventTime, CapacityContainerBuilder<Vec<R>>>,
    cap: Option<ActivateCapability<EventTime>>,
}

impl<R: serde::Serialize + 'static> WindowedInput<R> {
    fn new(
        what: &'static str,
        (handle, cap): (
            UnorderedHandle<EventTime, CapacityContainerBuilder<Vec<R>>>,
            ActivateCapability<EventTime>,
        ),
    ) -> Self {
        WindowedInput {
            what,
            handle,
            cap: Some(cap),
        }
    }

    /// Gives `records` to the dataflow in the windows of their event time (`event_ms`,
    /// called once per record); late ones are dead-lettered instead.
    fn give(
        &mut self,
        records: &mut Vec<R>,
        event_ms: impl FnMut(&R) -> EventTime,
        windows: (u64, EventTime),
        late_to: LateTo,
    ) {
        let mut by_window = BTreeMap::new();
        into_windows(
            records,
            self.what,
            event_ms,
            windows,
            &mut by_window,
            late_to,
        );
        if let Some(cap) = &self.cap {
            for (end, mut records) in by_window {
                self.handle
                    .activate()
                    .session(&cap.delayed(&end))
                    .give_container(&mut records);
            }
        }
    }

    fn downgrade(&mut self, to: EventTime) {
        if let Some(cap) = self.cap.as_mut() {
            cap.downgrade(&to);
        }
    }
}

/// Where late records are counted and dead-lettered.
type LateTo<'a> = (&'a JobStats, &'a Sender<Event>);

/// Builds the job's dataflow on this worker: the inputs, the features, the detectors and
/// decide steps, and the events they send to the main thread; gives the inputs and the
/// probe of the alerts.
fn build_dataflow(
    worker: &mut timely::worker::Worker,
    spec: &JobSpec,
    events: &Sender<Event>,
    stats: &JobStats,
) -> anyhow::Result<(
    Inputs,
    timely::dataflow::operators::probe::Handle<EventTime>,
)> {
    let params = FeatureParams {
        window_ms: spec.config.window.length_ms,
        trace_ttl_ms: spec.config.features.trace_ttl_ms,
        graph_retention_ms: spec.config.features.graph_retention_ms,
        metric_stale_ms: spec.config.features.metric_stale_ms,
        slos: spec.slos.clone(),
        log_miners: spec.log_miners.clone(),
    };
    let mut stages = Vec::new();
    for kind in &spec.detectors {
        let detector = augur_models::build_sharing(
            *kind,
            &spec.config.detector.settings(),
            spec.config.window.horizon_ms,
            spec.graph_board.as_ref(),
        )?;
        let stage = DetectStage::new(detector, spec.config.decide.clone());
        stages.push(match &spec.decide_log {
            Some(log) => stage.with_log(Arc::clone(log)),
            None => stage,
        });
    }
    let placement = ModelPlacement::new(spec.config.models.worker_list(), worker.peers());
    let inference = Arc::clone(&stats.inference);
    let window_events = events.clone();
    let alert_events = events.clone();
    let service_join = Arc::clone(&stats.service_join);
    let (spans, metrics, logs, probe) = worker.dataflow::<EventTime, _, _>(|scope| {
        let (span_handles, spans) =
            scope.new_unordered_input::<CapacityContainerBuilder<Vec<Span>>>();
        let (metric_handles, metrics) =
            scope.new_unordered_input::<CapacityContainerBuilder<Vec<MetricPoint>>>();
        let (log_handles, logs) =
            scope.new_unordered_input::<CapacityContainerBuilder<Vec<LogRecord>>>();
        let (metrics, logs) =
            crate::service_join::join_at_window_close(metrics, logs, &service_join);
        let snapshots = features_dataflow_with_logs(spans, metrics, logs, &params).0;
        let snapshots = snapshots.inspect(move |snapshot: &WindowSnapshot| {
            let _ = window_events.send(Event::Window(Box::new(snapshot.clone())));
        });
        let alerts = detect(snapshots, stages, &placement, inference).inspect_core(
            move |event: Result<
                (&timely::progress::Stamp<EventTime>, &Vec<Alert>),
                &[EventTime],
            >| {
                if let Ok((stamp, alerts)) = event {
                    let at = stamp.least().copied().unwrap_or(0);
                    for alert in alerts {
                        let _ = alert_events.send(Event::Alert(alert.clone(), at));
                    }
                }
            },
        );
        let (probe, _) = alerts.probe();
        (span_handles, metric_handles, log_handles, probe)
    });
    let instance_pairs = crate::service_join::share_pairs(worker, Arc::clone(&stats.service_join));
    let inputs = Inputs {
        spans: WindowedInput::new("span", spans),
        metrics: WindowedInput::new("metric point", metrics),
        logs: WindowedInput::new("log record", logs),
        instance_pairs: Some(instance_pairs),
    };
    Ok((inputs, probe))
}

/// Every worker skips the same outputs: those below the lowest resume frontier of all
/// workers' sources. Waits until every worker has said its own.
fn agree_on_resume(
    worker: &mut timely::worker::Worker,
    control: &mut Control,
    source: &dyn WorkerSource,
    stats: &JobStats,
) {
    control.send(ControlMessage::Resume(
        worker.index(),
        source.resume_frontier(),
    ));
    let resume = loop {
        if let Some(resume) = lowest_of_all(&control.state().resume, worker.peers()) {
            break resume;
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
    };
    if let Ok(mut slot) = stats.resume_from.lock() {
        *slot = Some(resume);
    }
}

/// A worker reading its source: where its windows close, and what it has told the main
/// thread and the other workers.
struct Reader<'a> {
    index: usize,
    peers: usize,
    /// Reports the output frontier to the main thread (this process's first worker).
    leader: bool,
    window_ms: u64,
    lateness: u64,
    events: &'a Sender<Event>,
    stats: &'a JobStats,
    stop: &'a AtomicBool,
    probe: &'a timely::dataflow::operators::probe::Handle<EventTime>,
    /// The windows before this are closed.
    cap_time: EventTime,
    /// A cap of this worker's own watermark has been sent.
    cap_announced: bool,
    /// The source has no watermark: the windows close with the slowest other worker's.
    following: bool,
    frontier_sent: EventTime,
    durable_sent: EventTime,
    durable_seen: EventTime,
}

impl Reader<'_> {
    /// Reads the source into the dataflow until it is exhausted (`false`) or a stop
    /// anywhere (`true`), committing input as the outputs become durable everywhere.
    fn read(
        &mut self,
        worker: &mut timely::worker::Worker,
        control: &mut Control,
        source: &mut dyn WorkerSource,
        inputs: &mut Inputs,
    ) -> anyhow::Result<bool> {
        let mut batch = Batch::default();
        loop {
            if self.stop.load(Ordering::Relaxed) || !control.state().stopped.is_empty() {
                // A stop anywhere stops every worker of every process.
                self.stop.store(true, Ordering::SeqCst);
                return Ok(true);
            }
            if self.leader {
                send_frontier(self.probe, self.events, &mut self.frontier_sent);
            }
            self.commit_durable(control, source)?;
            batch.clear();
            let state = source.poll(&mut batch)?;
            self.ingest(&mut batch, inputs);
            if let Ok(mut progress) = self.stats.progress.lock() {
                progress.insert(self.index, source.progress());
            }
            let Some((next, idle)) = self.next_cap(control, state) else {
                return Ok(false);
            };
            if next > self.cap_time {
                if self.cap_time > 0 {
                    note_closed(self.stats, self.cap_time, next, self.window_ms);
                }
                self.cap_time = next;
                inputs.downgrade(next);
                source.windows_closed(next);
            }
            if idle {
                worker.step_or_park(Some(Duration::from_millis(5)));
            } else {
                worker.step();
            }
            // Don't let the source run far ahead of the dataflow.
            let behind = self
                .cap_time
                .saturating_sub(MAX_WINDOWS_IN_FLIGHT * self.window_ms);
            while self.probe.less_than(&behind) && !self.stop.load(Ordering::Relaxed) {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
        }
    }

    /// Tells the other workers how far this process's outputs are confirmed, and commits
    /// the source up to where every process's are.
    fn commit_durable(
        &mut self,
        control: &mut Control,
        source: &mut dyn WorkerSource,
    ) -> anyhow::Result<()> {
        let local = JobStats::get(&self.stats.durable);
        if local > self.durable_sent {
            self.durable_sent = local;
            control.send(ControlMessage::Durable(self.index, local));
        }
        let durable = lowest_of_all(&control.state().durable, self.peers).unwrap_or(0);
        if durable > self.durable_seen {
            self.durable_seen = durable;
            source.durable(durable, false)?;
        }
        Ok(())
    }

    /// Counts a polled batch, sends its dead letters and gives its records to the inputs.
    fn ingest(&self, batch: &mut Batch, inputs: &mut Inputs) {
        let stats = self.stats;
        JobStats::add(&stats.messages, batch.messages);
        JobStats::add(&stats.spans, batch.spans.len() as u64);
        JobStats::add(&stats.metric_points, batch.metrics.len() as u64);
        JobStats::add(&stats.log_records, batch.logs.len() as u64);
        for dead in batch.dead.drain(..) {
            stats.count_dead_letter(dead.kind);
            let _ = self.events.send(Event::DeadLetter(dead));
        }
        inputs.give(batch, (self.window_ms, self.cap_time), (stats, self.events));
    }

    /// Where this worker's windows may close after a poll, and whether the source is idle;
    /// `None` when the source is exhausted.
    fn next_cap(&mut self, control: &mut Control, state: SourceState) -> Option<(EventTime, bool)> {
        match state {
            SourceState::Exhausted => None,
            SourceState::Active { watermark_ms, idle } => {
                let next = window_end(watermark_ms.saturating_sub(self.lateness), self.window_ms);
                if self.following || !self.cap_announced || next > self.cap_time {
                    // Workers without a watermark of their own follow this.
                    control.send(ControlMessage::Cap(
                        self.index,
                        Some(next.max(self.cap_time)),
                    ));
                    (self.cap_announced, self.following) = (true, false);
                }
                Some((next, idle))
            }
            // Close windows no further than the slowest worker that has a watermark.
            SourceState::NoWatermark => {
                if !self.following {
                    control.send(ControlMessage::Cap(self.index, None));
                    self.following = true;
                }
                Some((control.state().slowest_cap().unwrap_or(0), true))
            }
        }
    }

    /// After a stop: emits every window all sources have closed, so that is committed, and
    /// drops the open (incomplete) windows — a restart recomputes them from the input.
    fn drain_stopped(&mut self, worker: &mut timely::worker::Worker, control: &mut Control) {
        control.send(ControlMessage::Stopped(self.index, self.cap_time));
        let target = loop {
            if let Some(target) = lowest_of_all(&control.state().stopped, self.peers) {
                break target;
            }
            if self.stats.aborted.load(Ordering::SeqCst) {
                break self.cap_time;
            }
            worker.step_or_park(Some(Duration::from_millis(1)));
        };
        while self.probe.less_than(&target) && !self.stats.aborted.load(Ordering::SeqCst) {
            worker.step_or_park(Some(Duration::from_millis(1)));
            if self.leader {
                send_frontier(self.probe, self.events, &mut self.frontier_sent);
            }
        }
        if self.leader {
            send_frontier(self.probe, self.events, &mut self.frontier_sent);
        }
    }

    /// After the input ended (its capabilities dropped): every window closes now, and the
    /// dataflow runs until it has emitted all of them.
    fn drain_finished(&mut self, worker: &mut timely::worker::Worker) {
        let final_close = Instant::now();
        if let Ok(mut closed) = self.stats.window_closed_at.lock() {
            // Everything still open closes now.
            closed.entry(EventTime::MAX).or_insert(final_close);
        }
        while !self.probe.done() {
            worker.step_or_park(Some(Duration::from_millis(1)));
            if self.leader {
                send_frontier(self.probe, self.events, &mut self.frontier_sent);
            }
        }
    }

    /// Waits for the main thread to confirm the outputs, then commits the source up to
    /// where every process's outputs are confirmed (nothing, when they aren't in time).
    fn final_commit(
        &self,
        worker: &mut timely::worker::Worker,
        mut control: Control,
        source: &mut dyn WorkerSource,
        inputs: Inputs,
    ) -> anyhow::Result<()> {
        let (index, stats) = (self.index, self.stats);
        let deadline = Instant::now() + FINAL_COMMIT_WAIT;
        while !stats.finished.load(Ordering::SeqCst) {
            if stats.aborted.load(Ordering::SeqCst) {
                // What was confirmed before the failure still counts for the other processes.
                control.send(ControlMessage::Final(index, JobStats::get(&stats.durable)));
                return Ok(());
            }
            if Instant::now() > deadline {
                tracing::warn!("worker {index}: outputs not confirmed in time; not committing");
                control.send(ControlMessage::Final(index, JobStats::get(&stats.durable)));
                return Ok(());
            }
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        // The final commit: up to where every process's outputs are confirmed.
        control.send(ControlMessage::Final(index, JobStats::get(&stats.durable)));
        let last = loop {
            if let Some(last) = lowest_of_all(&control.state().finals, self.peers) {
                break Some(last);
            }
            if Instant::now() > deadline {
                tracing::warn!(
                    "worker {index}: other processes didn't confirm in time; not committing"
                );
                break None;
            }
            worker.step_or_park(Some(Duration::from_millis(5)));
        };
        if let Some(last) = last {
            source.durable(last, true)?;
        }
        // Dropping the inputs lets timely finish the dataflow; outputs after `finished` are
        // discarded by the main thread.
        drop(inputs);
        control.close();
        Ok(())
    }
}

/// A worker that fails tells the others it stopped with nothing to add, so they don't wait
/// for it: they stop too and commit nothing past what was confirmed.
fn give_up(control: &mut Control, index: usize, stop: &AtomicBool) {
    control.send(ControlMessage::Stopped(index, 0));
    control.send(ControlMessage::Final(index, 0));
    stop.store(true, Ordering::SeqCst);
}

/// How long a finished worker waits for the main thread to confirm the outputs.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(120);

/// Tells the main thread when the output frontier advanced.
fn send_frontier(
    probe: &timely::dataflow::operators::probe::Handle<EventTime>,
    events: &Sender<Event>,
    sent: &mut EventTime,
) {
    let frontier = probe.with_frontier(|f| f.first().copied().unwrap_or(EventTime::MAX));
    if frontier > *sent {
        *sent = frontier;
        let _ = events.send(Event::Frontier(frontier));
    }
}

/// Records that windows ending in `[from, to)` closed now. The first watermark jumps from
/// zero to the present, so only the last few thousand windows are recorded.
fn note_closed(stats: &JobStats, from: EventTime, to: EventTime, window_ms: u64) {
    const MAX_WINDOWS: u64 = 4096;
    let now = Instant::now();
    if let Ok(mut closed) = stats.window_closed_at.lock() {
        let mut end = from.max(window_end(
            to.saturating_sub(MAX_WINDOWS * window_ms),
            window_ms,
        ));
        while end < to {
            let slot = closed.entry(end).or_insert(now);
            *slot = (*slot).max(now);
            end += window_ms;
        }
    }
}

/// Moves `records` into the windows of their event time (`event_ms`, called once per
/// record); a record whose window is before `cap_time` (closed) is counted and
/// dead-lettered as late instead.
fn into_windows<R: serde::Serialize>(
    records: &mut Vec<R>,
    what: &str,
    mut event_ms: impl FnMut(&R) -> EventTime,
    (window_ms, cap_time): (u64, EventTime),
    windows: &mut BTreeMap<EventTime, Vec<R>>,
    (stats, events): LateTo,
) {
    for record in records.drain(..) {
        let t = event_ms(&record);
        let end = window_end(t, window_ms);
        if end >= cap_time {
            windows.entry(end).or_default().push(record);
            continue;
        }
        let kind = DeadLetterKind::Late { records: 1 };
        stats.count_dead_letter(kind);
        let _ = events.send(Event::DeadLetter(DeadLetter {
            kind,
            source: "watermark".to_string(),
            offset: t,
            reason: format!(
                "late {what}: event time {t} ms is before the closed windows (windows before {cap_time} ms are closed)"
            ),
            payload: serde_json::to_vec(&record).unwrap_or_default(),
        }));
    }
}

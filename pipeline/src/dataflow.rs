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
use timely::dataflow::operators::core::UnorderedInput;
use timely::dataflow::operators::{Inspect, Probe};

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
    // This process's first worker reports the output frontier to the main thread.
    let leader = index % spec.workers.max(1) == 0;
    let window_ms = spec.config.window.length_ms;
    let lateness = spec.config.window.allowed_lateness_ms;
    let params = FeatureParams {
        window_ms,
        trace_ttl_ms: spec.config.features.trace_ttl_ms,
        graph_retention_ms: spec.config.features.graph_retention_ms,
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
    let placement = ModelPlacement::new(spec.config.models.worker_list(), peers);
    let inference = Arc::clone(&stats.inference);
    let window_events = events.clone();
    let alert_events = events.clone();

    let (
        (mut span_input, span_cap),
        (mut metric_input, metric_cap),
        (mut log_input, log_cap),
        probe,
    ) = worker.dataflow::<EventTime, _, _>(|scope| {
        let (span_handles, spans) =
            scope.new_unordered_input::<timely::container::CapacityContainerBuilder<Vec<Span>>>();
        let (metric_handles, metrics) = scope
            .new_unordered_input::<timely::container::CapacityContainerBuilder<Vec<MetricPoint>>>();
        let (log_handles, logs) = scope
            .new_unordered_input::<timely::container::CapacityContainerBuilder<Vec<LogRecord>>>();
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

    let mut span_cap = Some(span_cap);
    let mut metric_cap = Some(metric_cap);
    let mut log_cap = Some(log_cap);
    let mut control = Control::new(worker);
    let mut source = match make_source(index, peers) {
        Ok(source) => source,
        Err(e) => {
            control.send(ControlMessage::Resume(index, 0));
            give_up(&mut control, index, stop);
            return Err(e);
        }
    };
    // Every worker skips the same outputs: those below the lowest resume frontier.
    control.send(ControlMessage::Resume(index, source.resume_frontier()));
    let resume = loop {
        if let Some(resume) = lowest_of_all(&control.state().resume, peers) {
            break resume;
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
    };
    if let Ok(mut slot) = stats.resume_from.lock() {
        *slot = Some(resume);
    }
    let mut batch = Batch::default();
    let mut cap_time: EventTime = 0;
    let mut cap_announced = false;
    let mut following = false;
    let mut by_window_spans: BTreeMap<EventTime, Vec<Span>> = BTreeMap::new();
    let mut by_window_metrics: BTreeMap<EventTime, Vec<MetricPoint>> = BTreeMap::new();
    let mut by_window_logs: BTreeMap<EventTime, Vec<LogRecord>> = BTreeMap::new();
    let mut frontier_sent: EventTime = 0;
    let mut stopped = false;
    let mut durable_sent: EventTime = 0;
    let mut durable_seen: EventTime = 0;

    loop {
        if stop.load(Ordering::Relaxed) || !control.state().stopped.is_empty() {
            // A stop anywhere stops every worker of every process.
            stop.store(true, Ordering::SeqCst);
            stopped = true;
            break;
        }
        if leader {
            send_frontier(&probe, events, &mut frontier_sent);
        }
        let local = JobStats::get(&stats.durable);
        if local > durable_sent {
            durable_sent = local;
            control.send(ControlMessage::Durable(index, local));
        }
        // Input may be committed only where every process's outputs are confirmed.
        let durable = lowest_of_all(&control.state().durable, peers).unwrap_or(0);
        if durable > durable_seen {
            durable_seen = durable;
            if let Err(e) = source.durable(durable, false) {
                give_up(&mut control, index, stop);
                return Err(e.into());
            }
        }
        batch.clear();
        let state = match source.poll(&mut batch) {
            Ok(state) => state,
            Err(e) => {
                give_up(&mut control, index, stop);
                return Err(e.into());
            }
        };
        JobStats::add(&stats.messages, batch.messages);
        JobStats::add(&stats.spans, batch.spans.len() as u64);
        JobStats::add(&stats.metric_points, batch.metrics.len() as u64);
        JobStats::add(&stats.log_records, batch.logs.len() as u64);
        for dead in batch.dead.drain(..) {
            stats.count_dead_letter(dead.kind);
            let _ = events.send(Event::DeadLetter(dead));
        }
        let mut per_kind = [0u64; 6];
        let late_to = (stats, events);
        into_windows(
            &mut batch.spans,
            "span",
            |span| {
                per_kind[span.kind as usize] += 1;
                span.event_ms()
            },
            (window_ms, cap_time),
            &mut by_window_spans,
            late_to,
        );
        stats.add_span_kinds(per_kind);
        into_windows(
            &mut batch.metrics,
            "metric point",
            MetricPoint::event_ms,
            (window_ms, cap_time),
            &mut by_window_metrics,
            late_to,
        );
        into_windows(
            &mut batch.logs,
            "log record",
            LogRecord::event_ms,
            (window_ms, cap_time),
            &mut by_window_logs,
            late_to,
        );
        if let Some(cap) = &log_cap {
            for (end, mut records) in std::mem::take(&mut by_window_logs) {
                log_input
                    .activate()
                    .session(&cap.delayed(&end))
                    .give_container(&mut records);
            }
        }
        if let Some(cap) = &span_cap {
            for (end, mut spans) in std::mem::take(&mut by_window_spans) {
                span_input
                    .activate()
                    .session(&cap.delayed(&end))
                    .give_container(&mut spans);
            }
        }
        if let Some(cap) = &metric_cap {
            for (end, mut points) in std::mem::take(&mut by_window_metrics) {
                metric_input
                    .activate()
                    .session(&cap.delayed(&end))
                    .give_container(&mut points);
            }
        }
        if let Ok(mut progress) = stats.progress.lock() {
            progress.insert(index, source.progress());
        }
        let (next, idle) = match state {
            SourceState::Exhausted => break,
            SourceState::Active { watermark_ms, idle } => {
                let next = window_end(watermark_ms.saturating_sub(lateness), window_ms);
                if following || !cap_announced || next > cap_time {
                    // Workers without a watermark of their own follow this.
                    control.send(ControlMessage::Cap(index, Some(next.max(cap_time))));
                    (cap_announced, following) = (true, false);
                }
                (next, idle)
            }
            // Close windows no further than the slowest worker that has a watermark.
            SourceState::NoWatermark => {
                if !following {
                    control.send(ControlMessage::Cap(index, None));
                    following = true;
                }
                (control.state().slowest_cap().unwrap_or(0), true)
            }
        };
        if next > cap_time {
            if cap_time > 0 {
                note_closed(stats, cap_time, next, window_ms);
            }
            cap_time = next;
            if let Some(cap) = span_cap.as_mut() {
                cap.downgrade(&cap_time);
            }
            if let Some(cap) = metric_cap.as_mut() {
                cap.downgrade(&cap_time);
            }
            if let Some(cap) = log_cap.as_mut() {
                cap.downgrade(&cap_time);
            }
            source.windows_closed(cap_time);
        }
        if idle {
            worker.step_or_park(Some(Duration::from_millis(5)));
        } else {
            worker.step();
        }
        // Don't let the source run far ahead of the dataflow.
        let behind = cap_time.saturating_sub(MAX_WINDOWS_IN_FLIGHT * window_ms);
        while probe.less_than(&behind) && !stop.load(Ordering::Relaxed) {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
    }
    if stopped && source.resumable() {
        // Stopped: emit every window all sources have closed, commit that, and drop the
        // open (incomplete) windows — a restart recomputes them from the input.
        control.send(ControlMessage::Stopped(index, cap_time));
        let target = loop {
            if let Some(target) = lowest_of_all(&control.state().stopped, peers) {
                break target;
            }
            if stats.aborted.load(Ordering::SeqCst) {
                break cap_time;
            }
            worker.step_or_park(Some(Duration::from_millis(1)));
        };
        while probe.less_than(&target) && !stats.aborted.load(Ordering::SeqCst) {
            worker.step_or_park(Some(Duration::from_millis(1)));
            if leader {
                send_frontier(&probe, events, &mut frontier_sent);
            }
        }
        if leader {
            send_frontier(&probe, events, &mut frontier_sent);
        }
    } else {
        span_cap = None;
        metric_cap = None;
        drop(log_cap.take());
        drop((span_cap.take(), metric_cap.take()));
        let final_close = Instant::now();
        if let Ok(mut closed) = stats.window_closed_at.lock() {
            // Everything still open closes now.
            closed.entry(EventTime::MAX).or_insert(final_close);
        }
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(1)));
            if leader {
                send_frontier(&probe, events, &mut frontier_sent);
            }
        }
    }
    // Every output to keep has been sent; the main thread makes them durable, then says so.
    let _ = events.send(Event::WorkerDone(index));
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
        if let Some(last) = lowest_of_all(&control.state().finals, peers) {
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
    drop((span_cap, metric_cap));
    control.close();
    Ok(())
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
    (stats, events): (&JobStats, &Sender<Event>),
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

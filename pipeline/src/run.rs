//! Runs a job on a background thread and consumes its events on the calling thread:
//! dead letters to the DLQ file, alerts to a callback, windows kept for scoring, a
//! progress bar for finite inputs. With [`Outputs`] (Kafka), alerts and dead letters go
//! there too, and the main thread turns the job's output frontier into the durable frontier
//! the sources commit by: after a successful [`Outputs::flush`] of everything received
//! before a `Frontier(t)` event, windows before `t` are durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use augur_connectors::dead_letter::DeadLetterFile;
use augur_operators::{Alert, EventTime, WindowSnapshot};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster::Cluster;
use crate::dataflow::{Event, JobSpec, run_job};
use crate::sink::Outputs;
use crate::source::WorkerSource;
use crate::stats::JobStats;

/// How the caller wants events handled.
#[derive(Default)]
pub struct RunOptions {
    /// Show a progress bar (finite inputs); its unit.
    pub progress: Option<&'static str>,
    /// Keep every window snapshot (for eval).
    pub keep_windows: bool,
    /// Print no summary of the input on stderr (span shape, metrics not read): a second
    /// read of an input already summarized.
    pub quiet: bool,
    /// Where alerts and dead letters go besides the callbacks (instead of the DLQ file).
    pub outputs: Option<Box<dyn Outputs>>,
    /// Called once with the job's counters when it starts (e.g. to serve them).
    pub on_start: Option<Box<dyn FnOnce(Arc<JobStats>)>>,
    /// Sees each window-close → alert latency, ms.
    pub on_latency: Option<Box<dyn FnMut(f64)>>,
    /// Acts on the job's outputs as they come (the simulator's closed loop).
    pub feedback: Option<Box<dyn JobFeedback>>,
    /// Run as one process of a cluster (`spec.workers` is this process's share).
    pub cluster: Option<Cluster>,
}

/// Sees the job's outputs in order on the main thread and may act on them: every alert with
/// the window whose close emitted it, every closed window, and the output frontier (every
/// output of windows ending before it has been seen).
pub trait JobFeedback {
    fn alert(&mut self, alert: &Alert, emitted_at: EventTime);
    fn window(&mut self, window: &WindowSnapshot);
    fn frontier(&mut self, frontier: EventTime);
}

/// How often (at most) the main thread flushes the outputs to advance the durable frontier.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// How often the outputs are flushed when no window closes.
const IDLE_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How often (at most) pending outputs are logged while the broker doesn't acknowledge.
const PENDING_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long the last flush waits for a broker that doesn't acknowledge.
const FINAL_FLUSH_WAIT: Duration = Duration::from_secs(10);

/// What a finished run leaves.
pub struct RunOutcome {
    pub windows: Vec<WindowSnapshot>,
    pub alerts: Vec<Alert>,
    /// Window-close → alert delivery, per firing alert, ms.
    pub alert_latency_ms: Vec<f64>,
    pub stats: Arc<JobStats>,
    pub wall: Duration,
}

/// Runs the job; `on_alert` sees every alert as it arrives, `on_window` every closed window.
pub fn run<F>(
    spec: JobSpec,
    make_source: F,
    mut options: RunOptions,
    stop: Arc<AtomicBool>,
    mut on_alert: impl FnMut(&Alert),
    mut on_window: impl FnMut(&WindowSnapshot),
) -> anyhow::Result<RunOutcome>
where
    F: Fn(usize, usize) -> anyhow::Result<Box<dyn WorkerSource>> + Send + Sync + 'static,
{
    let dlq_path = spec.config.dead_letter.path.clone();
    let decide_log = spec.decide_log.clone();
    let workers = spec.workers.max(1);
    let stats = Arc::new(JobStats::default());
    let abort_stop = Arc::clone(&stop);
    if let Some(on_start) = options.on_start.take() {
        on_start(Arc::clone(&stats));
    }
    let cluster = options.cluster.take();
    let (sender, receiver) = crossbeam_channel::bounded::<Event>(65_536);
    let started = Instant::now();
    let job = {
        let stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("augur-job".to_string())
            .spawn(move || run_job(spec, cluster, make_source, sender, stats, stop))
            .context("starting the job thread")?
    };

    let bar = options.progress.map(|unit| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{percent}}% of {unit} · {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut dlq: Option<DeadLetterFile> = None;
    let mut outcome = RunOutcome {
        windows: Vec::new(),
        alerts: Vec::new(),
        alert_latency_ms: Vec::new(),
        stats: Arc::clone(&stats),
        wall: Duration::ZERO,
    };
    let mut last_tick = Instant::now();
    let mut trim = crate::memory::Trim::default();
    let mut pending_frontier = 0;
    let mut last_flush = Instant::now();
    let mut workers_done = 0;
    let mut failure: Option<anyhow::Error> = None;
    let mut last_pending_log: Option<Instant> = None;
    loop {
        if failure.is_none() {
            // Also flushed now and then without a new frontier, so outputs that wait on
            // the broker are noticed (and their copies released) whatever the windows do.
            let due = (pending_frontier > JobStats::get(&stats.durable)
                || last_flush.elapsed() >= IDLE_FLUSH_EVERY)
                && last_flush.elapsed() >= FLUSH_EVERY
                && options.outputs.is_some();
            if due || workers_done == workers {
                last_flush = Instant::now();
                // Stopped jobs end at the last frontier (open windows are dropped);
                // finished inputs have emitted everything.
                let frontier = if workers_done == workers && !abort_stop.load(Ordering::SeqCst) {
                    augur_operators::EventTime::MAX
                } else {
                    pending_frontier
                };
                let flushed = match options.outputs.as_mut() {
                    Some(outputs) => {
                        // The decide states of the windows this flush makes durable go
                        // with their alerts.
                        let states = decide_log
                            .as_ref()
                            .map(|log| log.take_before(frontier))
                            .unwrap_or_default();
                        states
                            .iter()
                            .try_for_each(|(detector, state)| {
                                outputs.decider_state(detector, state)
                            })
                            .and_then(|()| outputs.flush())
                    }
                    None => Ok(()),
                };
                match flushed {
                    Ok(()) => {
                        stats.durable.fetch_max(frontier, Ordering::SeqCst);
                        if workers_done == workers {
                            stats.finished.store(true, Ordering::SeqCst);
                            if abort_stop.load(Ordering::SeqCst) {
                                // Stopped: whatever comes now is from open windows that
                                // weren't committed; a restart emits them.
                                options.outputs = None;
                                workers_done = usize::MAX;
                            } else {
                                workers_done = usize::MAX - 1;
                            }
                        }
                    }
                    Err(e) if e.is_pending() => {
                        // The broker is away or an output topic is missing: nothing is
                        // lost or committed meanwhile; the next flush tries again.
                        if last_pending_log.is_none_or(|t| t.elapsed() >= PENDING_LOG_EVERY) {
                            last_pending_log = Some(Instant::now());
                            tracing::warn!("{e}; retrying (no offsets are committed meanwhile)");
                        }
                    }
                    Err(e) => failure = Some(e.into()),
                }
            }
        }
        if failure.is_some() && !stats.aborted.swap(true, Ordering::SeqCst) {
            // Outputs can't be confirmed: stop without committing anything more.
            abort_stop.store(true, Ordering::SeqCst);
        }
        let wait = if pending_frontier > JobStats::get(&stats.durable) {
            FLUSH_EVERY
        } else {
            Duration::from_millis(200)
        };
        match receiver.recv_timeout(wait) {
            Ok(Event::Frontier(frontier)) => {
                pending_frontier = pending_frontier.max(frontier);
                if let Some(feedback) = options.feedback.as_mut() {
                    feedback.frontier(frontier);
                }
            }
            Ok(Event::WorkerDone(_)) => workers_done = workers_done.saturating_add(1),
            Ok(Event::Window(window)) => {
                if let Some(feedback) = options.feedback.as_mut() {
                    feedback.window(&window);
                }
                on_window(&window);
                if options.keep_windows {
                    outcome.windows.push(*window);
                }
            }
            Ok(Event::Alert(alert, emitted_at)) => {
                if alert.ends_at.is_none() {
                    let closed = stats
                        .closed_at(alert.window_end)
                        .or_else(|| stats.closed_at(augur_operators::EventTime::MAX));
                    if let Some(closed) = closed {
                        let ms = closed.elapsed().as_secs_f64() * 1000.0;
                        outcome.alert_latency_ms.push(ms);
                        if let Some(f) = options.on_latency.as_mut() {
                            f(ms);
                        }
                    }
                }
                if workers_done == usize::MAX {
                    continue; // from a dropped (incomplete) window
                }
                if emitted_at < stats.resume_from() {
                    continue; // delivered by an earlier run
                }
                if let Some(feedback) = options.feedback.as_mut() {
                    feedback.alert(&alert, emitted_at);
                }
                on_alert(&alert);
                if let (Some(outputs), None) = (options.outputs.as_mut(), failure.as_ref()) {
                    if let Err(e) = outputs.alert(&alert) {
                        failure = Some(e.into());
                    }
                }
                outcome.alerts.push(alert);
            }
            Ok(Event::DeadLetter(dead)) => {
                if workers_done == usize::MAX {
                    continue;
                }
                if let Some(outputs) = options.outputs.as_mut() {
                    if failure.is_none() {
                        if let Err(e) = outputs.dead_letter(&dead) {
                            failure = Some(e.into());
                        }
                    }
                    continue;
                }
                if dlq.is_none() {
                    dlq = Some(DeadLetterFile::create(&dlq_path).with_context(|| {
                        format!("creating the dead-letter file {}", dlq_path.display())
                    })?);
                }
                if let Some(file) = dlq.as_mut() {
                    file.write(&dead)
                        .with_context(|| format!("writing {}", dlq_path.display()))?;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        trim.tick();
        if let Some(bar) = &bar {
            if last_tick.elapsed() > Duration::from_millis(100) {
                last_tick = Instant::now();
                let (done, total) = stats.progress();
                bar.set_length(total.max(1));
                bar.set_position(done);
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "{} spans ({:.0}/s) · {} windows · {} dead letters",
                    JobStats::get(&stats.spans),
                    JobStats::get(&stats.spans) as f64 / secs,
                    outcome.windows.len(),
                    JobStats::get(&stats.dead_letters)
                ));
            }
        }
    }
    if let (Some(outputs), None) = (options.outputs.as_mut(), failure.as_ref()) {
        let deadline = Instant::now() + FINAL_FLUSH_WAIT;
        loop {
            match outputs.flush() {
                Ok(()) => break,
                Err(e) if e.is_pending() && Instant::now() < deadline => {
                    tracing::warn!("{e}; retrying before exit");
                }
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
    }
    let result = job
        .join()
        .map_err(|_| anyhow::anyhow!("the job thread panicked"))?;
    outcome.wall = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if !options.quiet {
        eprintln!("{}", stats.span_shape());
        if let Some(ignored) = stats.ignored_metrics_line() {
            eprintln!("{ignored}");
        }
        if let Some(joined) = stats.service_join.summary_line() {
            eprintln!("{joined}");
        }
        if let Some(join) = stats.service_join.coverage_line() {
            eprintln!("{join}");
        }
    }
    if let Some(mut file) = dlq {
        file.flush().context("flushing the dead-letter file")?;
        eprintln!(
            "{} dead letters written to {}{}",
            file.count(),
            dlq_path.display(),
            file.first()
                .map(|first| format!(" (the first: {first})"))
                .unwrap_or_default()
        );
    }
    result?;
    if let Some(e) = failure {
        return Err(
            e.context("delivering outputs (no offsets committed past the last confirmed window)")
        );
    }
    Ok(outcome)
}

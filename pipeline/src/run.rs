//! Runs a job on a background thread and consumes its events on the calling thread:
//! dead letters to the DLQ file, alerts to a callback, windows kept for scoring, a
//! progress bar for finite inputs.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use augur_connectors::dead_letter::DeadLetterFile;
use augur_operators::{Alert, WindowSnapshot};
use indicatif::{ProgressBar, ProgressStyle};

use crate::dataflow::{Event, JobSpec, run_job};
use crate::source::WorkerSource;
use crate::stats::JobStats;

/// How the caller wants events handled.
pub struct RunOptions {
    /// Show a progress bar (finite inputs); its unit.
    pub progress: Option<&'static str>,
    /// Keep every window snapshot (for eval).
    pub keep_windows: bool,
}

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
    options: RunOptions,
    stop: Arc<AtomicBool>,
    mut on_alert: impl FnMut(&Alert),
    mut on_window: impl FnMut(&WindowSnapshot),
) -> anyhow::Result<RunOutcome>
where
    F: Fn(usize, usize) -> anyhow::Result<Box<dyn WorkerSource>> + Send + Sync + 'static,
{
    let dlq_path = spec.config.dead_letter.path.clone();
    let stats = Arc::new(JobStats::default());
    let (sender, receiver) = crossbeam_channel::bounded::<Event>(65_536);
    let started = Instant::now();
    let job = {
        let stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("augur-job".to_string())
            .spawn(move || run_job(spec, make_source, sender, stats, stop))
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
    loop {
        match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Window(window)) => {
                on_window(&window);
                if options.keep_windows {
                    outcome.windows.push(*window);
                }
            }
            Ok(Event::Alert(alert)) => {
                if alert.ends_at.is_none() {
                    let closed = stats
                        .closed_at(alert.window_end)
                        .or_else(|| stats.closed_at(augur_operators::EventTime::MAX));
                    if let Some(closed) = closed {
                        outcome
                            .alert_latency_ms
                            .push(closed.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                on_alert(&alert);
                outcome.alerts.push(alert);
            }
            Ok(Event::DeadLetter(dead)) => {
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
    let result = job
        .join()
        .map_err(|_| anyhow::anyhow!("the job thread panicked"))?;
    outcome.wall = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(mut file) = dlq {
        file.flush().context("flushing the dead-letter file")?;
        eprintln!(
            "{} dead letters written to {}",
            file.count(),
            dlq_path.display()
        );
    }
    result?;
    Ok(outcome)
}

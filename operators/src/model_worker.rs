//! A model worker's inference thread: runs detector stages off the timely worker's thread.
//!
//! In (crossbeam channel from the `Detect` operator): per timely time, that window's
//! snapshots, in window order. Out (a second channel): per time, the alerts of every stage
//! hosted here, in submission order; after each batch the thread wakes the operator
//! through its `SyncActivator`, so the operator needs no polling and an idle worker parks.
//! State: the stages (detectors with their decide state); while the thread works on a
//! batch, newly submitted windows queue up and are run as the next batch, which is how a
//! slow model catches up (`Detector::observe_batch`). Inference time per window and
//! detector goes to [`InferenceTimes`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryIter};
use timely::scheduling::SyncActivator;

use crate::alert::Alert;
use crate::detect_stage::DetectStage;
use crate::inference_times::InferenceTimes;
use crate::records::{EventTime, WindowSnapshot};

/// One timely time's windows, or its alerts.
type Job = (EventTime, Vec<WindowSnapshot>);
type Done = (EventTime, Vec<Alert>);

/// The handle the operator keeps: submit windows, collect alerts. Dropping it ends the
/// thread after its current batch.
pub struct ModelWorker {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl ModelWorker {
    /// Starts the inference thread for `stages`.
    pub fn spawn(
        stages: Vec<DetectStage>,
        times: Arc<InferenceTimes>,
        wake: SyncActivator,
        worker_index: usize,
    ) -> std::io::Result<ModelWorker> {
        let (jobs, inbox) = crossbeam_channel::unbounded::<Job>();
        let (outbox, done) = crossbeam_channel::unbounded::<Done>();
        let thread = std::thread::Builder::new()
            .name(format!("augur-model-{worker_index}"))
            .spawn(move || serve(stages, &inbox, &outbox, &times, &wake))?;
        Ok(ModelWorker {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Queues one time's windows. False when the thread is gone.
    pub fn submit(&self, time: EventTime, windows: Vec<WindowSnapshot>) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send((time, windows)).is_ok())
    }

    /// Results that arrived, in submission order.
    pub fn results(&self) -> TryIter<'_, Done> {
        self.done.try_iter()
    }

    /// The thread ended (a detector panicked) — its pending windows will never complete.
    pub fn is_dead(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished()) && self.done.is_empty()
    }
}

impl Drop for ModelWorker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    mut stages: Vec<DetectStage>,
    inbox: &Receiver<Job>,
    outbox: &Sender<Done>,
    times: &InferenceTimes,
    wake: &SyncActivator,
) {
    while let Ok(first) = inbox.recv() {
        let mut jobs = vec![first];
        jobs.extend(inbox.try_iter());
        let sizes: Vec<(EventTime, usize)> = jobs.iter().map(|(t, w)| (*t, w.len())).collect();
        let windows: Vec<WindowSnapshot> = jobs.into_iter().flat_map(|(_, w)| w).collect();
        let mut per_stage = Vec::with_capacity(stages.len());
        for stage in stages.iter_mut() {
            let start = Instant::now();
            let alerts = stage.observe_batch(&windows);
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            if !windows.is_empty() {
                times.record(stage.name(), windows.len(), ms / windows.len() as f64);
                times.note(stage.name(), stage.version(), stage.unserved_windows());
            }
            per_stage.push(alerts.into_iter());
        }
        // Each time's alerts: its windows in order, and per window the stages in order.
        for (time, count) in sizes {
            let mut alerts = Vec::new();
            for _ in 0..count {
                for stage in per_stage.iter_mut() {
                    alerts.extend(stage.next().unwrap_or_default());
                }
            }
            if outbox.send((time, alerts)).is_err() {
                return;
            }
        }
        if wake.activate().is_err() {
            return; // the dataflow is gone
        }
    }
}

//! Periodic online retraining of the `sage` detector's model (Sage §4.2: retrain on recent
//! data interleaved with older data, so the model follows the application without
//! forgetting what it learned; violating windows oversampled).
//!
//! In: every window the detector sees (its node values and QoS verdict — never labels) and
//! the model serving now. Out: every `every` windows a retrained copy of that model,
//! handed back when ready; the detector swaps it in, and the old one serves meanwhile.
//! State: the `recent` latest windows, a uniform reservoir (algorithm R) of `older` windows
//! from before them, windows since the last retraining, and at most one retraining in
//! flight (a thread fine-tuning a copy, and the channel it answers on). Dropping the
//! retrainer stops that thread at its next optimizer step and waits for it: libtorch must
//! not be torn down under a running training when the process exits.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::thread::JoinHandle;

use augur_operators::WindowSnapshot;
use serde::{Deserialize, Serialize};

use super::features::{Sample, raw_blocks};
use super::model::SageModel;
use super::train::{SageTrainSettings, fit_until, transfer};

/// Settings of the online retraining (`[detector.sage.online]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineConfig {
    /// Retrain every this many windows; 0 turns it off. Default 0.
    pub every: usize,
    /// Latest windows kept. Default 600.
    pub recent: usize,
    /// Older windows kept, a uniform sample of everything before the recent ones. Default 600.
    pub older: usize,
    /// Epochs of each retraining (from the serving model's weights). Default 5.
    pub epochs: usize,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            every: 0,
            recent: 600,
            older: 600,
            epochs: 5,
        }
    }
}

type Kept = (BTreeMap<String, Vec<f32>>, bool);

/// Keeps the windows and runs the retrainings.
pub struct Retrainer {
    config: OnlineConfig,
    recent: VecDeque<Kept>,
    older: Vec<Kept>,
    /// Windows that left `recent` so far (algorithm R's count).
    aged: u64,
    since: usize,
    rng: u64,
    pending: Option<(Receiver<SageModel>, JoinHandle<()>)>,
    done: usize,
    /// Set on drop: the retraining in flight stops at its next optimizer step.
    stop: Arc<AtomicBool>,
}

impl Retrainer {
    pub fn new(config: OnlineConfig) -> Retrainer {
        Retrainer {
            config,
            recent: VecDeque::new(),
            older: Vec::new(),
            aged: 0,
            since: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            pending: None,
            done: 0,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Retrainings finished so far.
    pub fn retrains(&self) -> usize {
        self.done
    }

    /// Whether a retraining is running.
    pub fn running(&self) -> bool {
        self.pending.is_some()
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Keeps `window`; starts a retraining of `serving` when one is due; returns a
    /// retrained model when one has finished.
    pub fn observe(
        &mut self,
        serving: Option<&SageModel>,
        window: &WindowSnapshot,
    ) -> Option<SageModel> {
        if self.config.every == 0 {
            return None;
        }
        if !window.services.is_empty() {
            self.recent
                .push_back((raw_blocks(window), window.violated()));
        }
        while self.recent.len() > self.config.recent.max(1) {
            let Some(old) = self.recent.pop_front() else {
                break;
            };
            self.aged += 1;
            if self.older.len() < self.config.older {
                self.older.push(old);
            } else {
                let j = (self.next() % self.aged) as usize;
                if let Some(slot) = self.older.get_mut(j) {
                    *slot = old;
                }
            }
        }
        self.since += 1;
        let ready = match &self.pending {
            Some((rx, _)) => match rx.try_recv() {
                Ok(model) => {
                    self.pending = None;
                    self.done += 1;
                    Some(model)
                }
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    tracing::error!("sage: an online retraining failed");
                    self.pending = None;
                    None
                }
            },
            None => None,
        };
        if self.pending.is_none() && self.since >= self.config.every {
            if let Some(model) = serving {
                self.start(model);
            }
        }
        ready
    }

    /// Fine-tunes a copy of `serving` on the kept windows, on a thread.
    fn start(&mut self, serving: &SageModel) {
        self.since = 0;
        let layout = &serving.layout;
        let kept = self.older.iter().chain(self.recent.iter());
        let (samples, violated): (Vec<Sample>, Vec<bool>) = kept
            .map(|(raw, v)| (layout.sample(raw.clone()), *v))
            .unzip();
        if samples.len() < 2 {
            return;
        }
        let mut copy = SageModel::new(layout.clone(), serving.device());
        transfer(serving, &mut copy);
        let settings = SageTrainSettings {
            epochs: self.config.epochs,
            seed: (self.done + 1) as i64,
            ..SageTrainSettings::default()
        };
        let (tx, rx) = channel();
        let stop = Arc::clone(&self.stop);
        let spawned = std::thread::Builder::new()
            .name("sage-retrain".into())
            .spawn(move || {
                let units: Vec<usize> = (0..copy.layout.cbn.units.len()).collect();
                let channels: Vec<usize> = (0..copy.layout.cbn.rpcs.len()).collect();
                let start = std::time::Instant::now();
                fit_until(
                    &mut copy,
                    &samples,
                    &violated,
                    &units,
                    &channels,
                    &settings,
                    &stop,
                    |_, _| {},
                );
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                tracing::info!(
                    "sage: retrained online on {} windows in {:.1} s",
                    samples.len(),
                    start.elapsed().as_secs_f64()
                );
                // The detector may be gone; then nobody wants the model.
                let _ = tx.send(copy);
            });
        match spawned {
            Ok(handle) => self.pending = Some((rx, handle)),
            Err(e) => tracing::error!("sage: cannot start an online retraining: {e}"),
        }
    }
}

impl Drop for Retrainer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some((_, handle)) = self.pending.take() {
            if handle.join().is_err() {
                tracing::error!("sage: an online retraining panicked");
            }
        }
    }
}

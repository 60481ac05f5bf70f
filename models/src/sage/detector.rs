//! The `sage` detector: counterfactual root-cause analysis behind the [`Detector`] trait.
//!
//! In: closed windows, in order. Out: for a window whose QoS check failed, one
//! `root_cause` detection with services ranked by how much repairing them lowers the
//! end-to-end latency (the greedy set first), the top culprit's resource, and the
//! counterfactual latencies in the summary. Windows that meet QoS cost nothing.
//! State: the model, loaded on the first violating window from the checkpoint whose
//! services best match the window's (or the configured one), and re-chosen when the set
//! of services the job sees changes; with `episode_windows` > 1 the current episode's
//! diagnoses ([`super::episode`]); with `online.every` > 0 the kept windows and the
//! retraining in flight ([`super::online`]) — a retrained model replaces the serving one
//! when it is ready (the version gets a `+rN` suffix).

use std::collections::BTreeSet;
use std::path::PathBuf;

use augur_operators::{AlertKind, Culprit, Detection, Detector, WindowSnapshot};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::counterfactual::{Diagnosis, diagnose};
use super::episode::{Consensus, Episode};
use super::features::raw_blocks;
use super::model::{SageModel, available, overlaps, select};
use super::online::{OnlineConfig, Retrainer};
use crate::checkpoint::CheckpointError;
use crate::device::{DeviceChoice, resolve};
use crate::shipped::{ShippedError, checkpoint_dir};

/// Settings of the `sage` detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SageConfig {
    /// Directory of versioned checkpoints (`sage-<topology>-vN.safetensors` + `.json`);
    /// `augur train --model sage` writes here (creating it). Default `models/checkpoints`
    /// (relative to the working directory). When it doesn't exist, the checkpoints
    /// shipped inside the binary are used, extracted once into a cache directory
    /// ([`crate::shipped`]).
    pub models_dir: PathBuf,
    /// `auto`, `cpu` or `cuda:N`. Default `auto`.
    pub device: DeviceChoice,
    /// Checkpoint to use (e.g. `sage-chain`); empty picks the one whose services best
    /// match the services seen. Default empty.
    pub checkpoint: String,
    /// With `checkpoint` empty: the least Jaccard overlap (shared services / services of
    /// either) between a checkpoint's services and the services the job sees for that
    /// checkpoint to be chosen. Below it on every checkpoint nothing matches: the detector
    /// keeps running but diagnoses nothing, says so once in its log (the services it sees,
    /// the checkpoints and their overlaps, how to train one) and counts the violating
    /// windows as unserved. Default 0.5: at least half of the two sets' services shared —
    /// the application a checkpoint was trained on still matches with a few services not
    /// reporting or added, another application sharing a few common names doesn't (a
    /// model that doesn't know the entry point or most services can't diagnose it).
    pub min_overlap: f64,
    /// Culprits listed per alert. Default 5.
    pub max_culprits: usize,
    /// Violating windows of an episode whose diagnoses are pooled before the culprits are
    /// named (see [`super::episode`]); 1 names them at the episode's first violating
    /// window, from it alone. Default 1: the first window names the culprit as often as a
    /// pool of two, and a pool never alerts on an episode shorter than itself
    /// (docs/experiments/sage.md).
    pub episode_windows: usize,
    /// Periodic online retraining (off by default).
    pub online: OnlineConfig,
}

impl Default for SageConfig {
    fn default() -> Self {
        SageConfig {
            models_dir: PathBuf::from("models/checkpoints"),
            device: DeviceChoice::Auto,
            checkpoint: String::new(),
            min_overlap: 0.5,
            max_culprits: 5,
            episode_windows: 1,
            online: OnlineConfig::default(),
        }
    }
}

impl SageConfig {
    /// The checkpoint directory to read (see `models_dir`).
    pub fn dir(&self) -> Result<PathBuf, ShippedError> {
        checkpoint_dir(&self.models_dir)
    }
}

pub struct Sage {
    config: SageConfig,
    model: Option<SageModel>,
    version: String,
    /// Services of the window the model was chosen for.
    chosen_for: BTreeSet<String>,
    /// A model given in memory is never replaced.
    pinned: bool,
    /// The current violation episode's diagnoses (`episode_windows` > 1).
    episode: Episode,
    /// Kept windows and the retraining in flight (`online.every` > 0).
    retrainer: Retrainer,
    /// Violating windows left undiagnosed for want of a model that fits them.
    unserved: u64,
    /// Whether the log was told that no checkpoint matches the services seen.
    said_unmatched: bool,
    /// Whether the log was told that the model doesn't know a violating entry point.
    said_unknown_entry: bool,
}

impl Sage {
    /// Checks that a `sage-*` checkpoint exists; the model loads on the first violation.
    pub fn new(config: SageConfig) -> Result<Self, CheckpointError> {
        let dir = config.dir()?;
        let found = available(&dir);
        let wanted = |name: &str| config.checkpoint.is_empty() || config.checkpoint == name;
        let Some((_, version, _)) = found.iter().find(|(name, _, _)| wanted(name)) else {
            return Err(CheckpointError::Missing {
                model: if config.checkpoint.is_empty() {
                    "sage-*".into()
                } else {
                    config.checkpoint.clone()
                },
                dir,
            });
        };
        Ok(Sage {
            version: version.to_string(),
            episode: Episode::new(config.episode_windows),
            retrainer: Retrainer::new(config.online.clone()),
            config,
            model: None,
            chosen_for: BTreeSet::new(),
            pinned: false,
            unserved: 0,
            said_unmatched: false,
            said_unknown_entry: false,
        })
    }

    /// A detector around a model already in memory (tests, benches, retraining studies).
    pub fn with_model(model: SageModel) -> Self {
        Sage {
            version: model.layout.version.to_string(),
            config: SageConfig::default(),
            chosen_for: model.layout.services(),
            model: Some(model),
            pinned: true,
            episode: Episode::new(SageConfig::default().episode_windows),
            retrainer: Retrainer::new(OnlineConfig::default()),
            unserved: 0,
            said_unmatched: false,
            said_unknown_entry: false,
        }
    }

    pub fn model(&self) -> Option<&SageModel> {
        self.model.as_ref()
    }

    /// The model, giving the detector up.
    pub fn into_model(self) -> Option<SageModel> {
        self.model
    }

    /// Loads the checkpoint that fits `services` when it differs from the loaded one.
    fn ensure_model(&mut self, services: BTreeSet<String>) {
        if self.pinned || (self.model.is_some() && services == self.chosen_for) {
            return;
        }
        if self.said_unmatched && self.model.is_none() && services == self.chosen_for {
            // Nothing matched these services a window ago either.
            return;
        }
        if self.model.is_some() && !self.config.checkpoint.is_empty() {
            return;
        }
        let dir = match self.config.dir() {
            Ok(dir) => dir,
            Err(e) => {
                tracing::error!("sage: no checkpoint directory: {e}");
                return;
            }
        };
        let choice = if self.config.checkpoint.is_empty() {
            let choice = select(&dir, &services, self.config.min_overlap);
            if choice.is_none() && self.model.is_none() && !self.said_unmatched {
                self.said_unmatched = true;
                self.say_unmatched(&dir, &services);
            }
            choice
        } else {
            available(&dir)
                .into_iter()
                .find(|(n, _, _)| *n == self.config.checkpoint)
                .map(|(n, v, _)| (n, v))
        };
        self.chosen_for = services;
        let Some((name, version)) = choice else {
            return;
        };
        if let Some(m) = &self.model {
            if m.layout.model == name && m.layout.version == version {
                return;
            }
        }
        let device = resolve(self.config.device).unwrap_or(Device::Cpu);
        match SageModel::load(&dir, &name, version, device) {
            Ok(m) => {
                tracing::info!(
                    "sage: using {name}-v{version} ({} services)",
                    m.layout.services().len()
                );
                self.version = format!("{name}-v{version}");
                self.model = Some(m);
            }
            Err(e) => tracing::error!("sage: cannot load {name}-v{version}: {e}"),
        }
    }

    /// Says loudly that no checkpoint in `dir` matches `services`, and what to do.
    fn say_unmatched(&self, dir: &std::path::Path, services: &BTreeSet<String>) {
        const SHOWN: usize = 20;
        let mut seen: Vec<&str> = services.iter().map(String::as_str).take(SHOWN).collect();
        if services.len() > SHOWN {
            seen.push("…");
        }
        let checkpoints: Vec<String> = overlaps(dir, services)
            .iter()
            .map(|(name, version, score)| format!("{name}-v{version} {score:.2}"))
            .collect();
        tracing::warn!(
            "sage: no checkpoint matches this application, so sage will diagnose nothing (it \
             keeps running). It sees {} services [{}]; the checkpoints in {} and their overlap \
             with them (Jaccard; at least {:.2} needed, detector.sage.min_overlap): {}. Train \
             one on this application's traces: augur train --model sage --input DIR --name \
             sage-<app> (DIR written by `augur record` or `augur simulate --out`), or name a \
             checkpoint in detector.sage.checkpoint",
            services.len(),
            seen.join(", "),
            dir.display(),
            self.config.min_overlap,
            if checkpoints.is_empty() {
                "none".to_string()
            } else {
                checkpoints.join(", ")
            }
        );
    }

    /// Whether no checkpoint matched the services seen, so no model is loaded (said once
    /// in the log).
    pub fn unmatched(&self) -> bool {
        self.said_unmatched && self.model.is_none()
    }

    /// Counts a violating window that got no diagnosis, and says why once.
    fn unserved_window(&mut self, window: &WindowSnapshot) {
        self.unserved += 1;
        let Some(model) = &self.model else {
            // No checkpoint matched: `ensure_model` said so.
            return;
        };
        if self.said_unknown_entry {
            return;
        }
        let known = model.layout.services();
        let entries: Vec<&str> = window
            .qos
            .iter()
            .filter(|q| q.violated)
            .map(|q| q.entry.split(' ').next().unwrap_or(&q.entry))
            .collect();
        if entries.iter().any(|e| known.contains(*e)) {
            return;
        }
        self.said_unknown_entry = true;
        tracing::warn!(
            "sage: {} doesn't know the entry point {} of the violating windows, so it can't \
             diagnose them; train a checkpoint on this application's traces: augur train \
             --model sage --input DIR --name sage-<app>",
            self.version,
            entries.join(", ")
        );
    }

    /// The diagnosis of one window (violating or not), if the model knows its entry point.
    pub fn diagnose(&mut self, window: &WindowSnapshot) -> Option<Diagnosis> {
        let services: BTreeSet<String> = window
            .services
            .iter()
            .map(|s| s.service.clone())
            .chain(window.order.iter().cloned())
            .collect();
        self.ensure_model(services);
        let model = self.model.as_ref()?;
        let sample = model.layout.sample(raw_blocks(window));
        diagnose(model, &sample, &window.qos)
    }

    /// The detection a diagnosis makes.
    pub fn detection(&self, d: &Diagnosis) -> Detection {
        let t = &d.target;
        let excess = (t.observed_ms - t.slo_ms).max(1e-9);
        let top_resource = d.resources.first().map(|r| r.0);
        let culprits: Vec<Culprit> = d
            .ranked
            .iter()
            .take(self.config.max_culprits.max(1))
            .enumerate()
            .map(|(k, (service, ms))| Culprit {
                service: service.clone(),
                score: ((t.observed_ms - ms) / t.observed_ms.max(1e-9)).clamp(0.0, 1.0),
                resource: if k == 0 { top_resource } else { None },
                operation: None,
            })
            .collect();
        let top = d.ranked.first().cloned().unwrap_or_default();
        let q = (t.quantile * 100.0).round();
        let mut summary = format!(
            "repairing {}: p{q} {:.0}→{:.0} ms (SLO {:.0} ms)",
            top.0, t.observed_ms, top.1, t.slo_ms
        );
        if let Some(caller) = &d.queued_caller {
            summary.push_str(&format!(" with {caller} queued behind it"));
        }
        if let Some((r, ms)) = d.resources.first() {
            summary.push_str(&format!("; its {}: →{:.0} ms", r.as_str(), ms));
        }
        if d.set.len() > 1 {
            summary.push_str(&format!(
                "; together {}: →{:.0} ms",
                d.set.join(" + "),
                d.set_ms
            ));
        }
        if let Some(next) = d.ranked.get(1) {
            summary.push_str(&format!("; next {}: →{:.0} ms", next.0, next.1));
        }
        Detection {
            kind: AlertKind::RootCause,
            service: top.0.clone(),
            probability: ((t.observed_ms - d.set_ms) / excess).clamp(0.0, 1.0),
            // A root cause is about the window itself, not a forecast.
            horizon_ms: 0,
            culprits,
            summary,
        }
    }
}

impl Sage {
    /// The detection of an episode's consensus; the summary is the latest window's.
    pub fn consensus_detection(&self, d: &Diagnosis, c: &Consensus) -> Detection {
        let mut detection = self.detection(d);
        let t = &d.target;
        detection.culprits = c
            .ranked
            .iter()
            .take(self.config.max_culprits.max(1))
            .enumerate()
            .map(|(k, (service, share))| Culprit {
                service: service.clone(),
                score: share.clamp(0.0, 1.0),
                resource: if k == 0 { c.resource } else { None },
                operation: None,
            })
            .collect();
        if let Some((top, share)) = c.ranked.first() {
            detection.service = top.clone();
            detection.probability = share.clamp(0.0, 1.0);
            detection.summary = format!(
                "over {} violating windows, repairing {top} closes {:.0} % of the p{} excess \
                 on average; latest window: {}",
                c.windows,
                share * 100.0,
                (t.quantile * 100.0).round(),
                detection.summary
            );
        }
        detection
    }

    /// Turns online retraining on or off (tests, studies); windows kept so far are dropped.
    pub fn set_online(&mut self, online: OnlineConfig) {
        self.retrainer = Retrainer::new(online.clone());
        self.config.online = online;
    }

    /// Online retrainings swapped in so far, and whether one is running.
    pub fn retrains(&self) -> (usize, bool) {
        (self.retrainer.retrains(), self.retrainer.running())
    }

    /// Sets how many violating windows an episode's diagnosis pools (tests, studies).
    pub fn set_episode_windows(&mut self, windows: usize) {
        self.config.episode_windows = windows;
        self.episode = Episode::new(windows);
    }
}

impl Detector for Sage {
    fn name(&self) -> &str {
        "sage"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn unserved_windows(&self) -> u64 {
        self.unserved
    }

    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        if let Some(retrained) = self.retrainer.observe(self.model.as_ref(), window) {
            self.version = format!(
                "{}+r{}",
                self.version.split('+').next().unwrap_or_default(),
                self.retrainer.retrains()
            );
            self.model = Some(retrained);
        }
        if !window.violated() {
            self.episode.pass();
            return Vec::new();
        }
        let Some(d) = self.diagnose(window) else {
            self.unserved_window(window);
            return Vec::new();
        };
        let single = self.detection(&d);
        tracing::debug!(
            target: "augur_models::sage::diagnosis",
            window_end = window.window_end,
            culprits = %single
                .culprits
                .iter()
                .map(|c| format!("{}:{:.3}", c.service, c.score))
                .collect::<Vec<_>>()
                .join(","),
            resource = d.resources.first().map_or("", |r| r.0.as_str()),
            "{}",
            single.summary
        );
        tracing::trace!(
            target: "augur_models::sage::diagnosis",
            window_end = window.window_end,
            "every single repair, ms: {}",
            d.ranked
                .iter()
                .map(|(service, ms)| format!("{service}:{ms:.1}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        if self.config.episode_windows <= 1 {
            return vec![single];
        }
        match self.episode.violate(&d) {
            Some(c) => vec![self.consensus_detection(&d, &c)],
            None => Vec::new(),
        }
    }
}
